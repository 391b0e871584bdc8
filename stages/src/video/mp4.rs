//! Minimal ISO-BMFF (MP4) muxer for one H.264 video track, "fast start" layout:
//! `ftyp`, `moov`, then `mdat`. No title/comment/udta; all creation and modification times 0.
//!
//! Samples are AVCC (4-byte big-endian length before each NAL unit). All samples live in a
//! single chunk, so the sample table needs one `stsc` entry and one `stco` offset.

/// H.264 parameters for the `avcC` box.
pub struct AvcConfig {
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
}

/// One encoded sample (access unit) already in AVCC form.
pub struct Sample {
    pub size: u32,
    pub sync: bool,
}

pub struct Mp4Track {
    pub width: u32,
    pub height: u32,
    /// Ticks per second for media time.
    pub timescale: u32,
    /// Ticks per sample (constant frame rate).
    pub sample_delta: u32,
    pub avc: AvcConfig,
    pub samples: Vec<Sample>,
}

struct W(Vec<u8>);

impl W {
    fn new() -> Self {
        W(Vec::new())
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    /// Append a box: size, type, payload written by `f`.
    fn boxed(&mut self, kind: &[u8; 4], f: impl FnOnce(&mut W)) -> &mut Self {
        let start = self.0.len();
        self.u32(0).bytes(kind);
        f(self);
        let size = (self.0.len() - start) as u32;
        self.0[start..start + 4].copy_from_slice(&size.to_be_bytes());
        self
    }
    /// Full box: adds version and flags.
    fn full(
        &mut self,
        kind: &[u8; 4],
        version: u8,
        flags: u32,
        f: impl FnOnce(&mut W),
    ) -> &mut Self {
        self.boxed(kind, |w| {
            w.u32(((version as u32) << 24) | (flags & 0x00ff_ffff));
            f(w);
        })
    }
    fn matrix(&mut self) -> &mut Self {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
        self
    }
}

/// Build the complete file from the track description and the concatenated sample data.
pub fn write_mp4(track: &Mp4Track, mdat_payload: &[u8]) -> Vec<u8> {
    let ftyp = {
        let mut w = W::new();
        w.boxed(b"ftyp", |w| {
            w.bytes(b"isom")
                .u32(0x200)
                .bytes(b"isom")
                .bytes(b"iso2")
                .bytes(b"avc1")
                .bytes(b"mp41");
        });
        w.0
    };
    let large = mdat_payload.len() as u64 + 8 > u32::MAX as u64;
    let mdat_header_len = if large { 16 } else { 8 };
    // moov's size does not depend on the chunk offset value, so build it twice.
    let probe = moov(track, 0);
    let offset = (ftyp.len() + probe.len() + mdat_header_len) as u64;
    let moov_box = moov(track, offset);
    debug_assert_eq!(probe.len(), moov_box.len());

    let mut out =
        Vec::with_capacity(ftyp.len() + moov_box.len() + mdat_header_len + mdat_payload.len());
    out.extend_from_slice(&ftyp);
    out.extend_from_slice(&moov_box);
    if large {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(&(mdat_payload.len() as u64 + 16).to_be_bytes());
    } else {
        out.extend_from_slice(&(mdat_payload.len() as u32 + 8).to_be_bytes());
        out.extend_from_slice(b"mdat");
    }
    out.extend_from_slice(mdat_payload);
    out
}

fn moov(t: &Mp4Track, chunk_offset: u64) -> Vec<u8> {
    let n = t.samples.len() as u64;
    let duration = n * t.sample_delta as u64;
    let v1 = duration > u32::MAX as u64;
    let mut w = W::new();
    w.boxed(b"moov", |w| {
        // Movie header: same timescale as the media.
        w.full(b"mvhd", v1 as u8, 0, |w| {
            if v1 {
                w.u64(0).u64(0).u32(t.timescale).u64(duration);
            } else {
                w.u32(0).u32(0).u32(t.timescale).u32(duration as u32);
            }
            w.u32(0x0001_0000)
                .u16(0x0100)
                .zeros(10)
                .matrix()
                .zeros(24)
                .u32(2);
        });
        w.boxed(b"trak", |w| {
            // flags 3 = enabled | in movie.
            w.full(b"tkhd", v1 as u8, 3, |w| {
                if v1 {
                    w.u64(0).u64(0).u32(1).u32(0).u64(duration);
                } else {
                    w.u32(0).u32(0).u32(1).u32(0).u32(duration as u32);
                }
                w.zeros(8).u16(0).u16(0).u16(0).u16(0).matrix();
                w.u32(t.width << 16).u32(t.height << 16);
            });
            w.boxed(b"mdia", |w| {
                w.full(b"mdhd", v1 as u8, 0, |w| {
                    if v1 {
                        w.u64(0).u64(0).u32(t.timescale).u64(duration);
                    } else {
                        w.u32(0).u32(0).u32(t.timescale).u32(duration as u32);
                    }
                    // Language "und" packed as 3 x 5 bits.
                    w.u16(0x55c4).u16(0);
                });
                w.full(b"hdlr", 0, 0, |w| {
                    w.u32(0).bytes(b"vide").zeros(12).bytes(b"VideoHandler\0");
                });
                w.boxed(b"minf", |w| {
                    w.full(b"vmhd", 0, 1, |w| {
                        w.zeros(8);
                    });
                    w.boxed(b"dinf", |w| {
                        w.full(b"dref", 0, 0, |w| {
                            w.u32(1);
                            w.full(b"url ", 0, 1, |_| {});
                        });
                    });
                    w.boxed(b"stbl", |w| stbl(w, t, chunk_offset));
                });
            });
        });
    });
    w.0
}

fn stbl(w: &mut W, t: &Mp4Track, chunk_offset: u64) {
    w.full(b"stsd", 0, 0, |w| {
        w.u32(1);
        w.boxed(b"avc1", |w| {
            w.zeros(6).u16(1); // reserved, data_reference_index
            w.zeros(16); // pre_defined, reserved
            w.u16(t.width as u16).u16(t.height as u16);
            w.u32(0x0048_0000).u32(0x0048_0000); // 72 dpi
            w.u32(0).u16(1); // reserved, frame_count
            w.zeros(32); // compressorname: empty
            w.u16(0x0018).u16(0xffff);
            w.boxed(b"avcC", |w| {
                let sps = &t.avc.sps;
                w.u8(1).u8(sps[1]).u8(sps[2]).u8(sps[3]);
                w.u8(0xff); // 4-byte NAL lengths
                w.u8(0xe1).u16(sps.len() as u16).bytes(sps);
                w.u8(1).u16(t.avc.pps.len() as u16).bytes(&t.avc.pps);
            });
            // Colour: BT.601 (SMPTE 170M), limited range — matches the conversion we do.
            w.boxed(b"colr", |w| {
                w.bytes(b"nclx").u16(6).u16(6).u16(6).u8(0);
            });
            w.boxed(b"pasp", |w| {
                w.u32(1).u32(1);
            });
        });
    });
    let n = t.samples.len() as u32;
    w.full(b"stts", 0, 0, |w| {
        if n == 0 {
            w.u32(0);
        } else {
            w.u32(1).u32(n).u32(t.sample_delta);
        }
    });
    if t.samples.iter().any(|s| !s.sync) {
        let syncs: Vec<u32> = t
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        w.full(b"stss", 0, 0, |w| {
            w.u32(syncs.len() as u32);
            for s in &syncs {
                w.u32(*s);
            }
        });
    }
    w.full(b"stsc", 0, 0, |w| {
        if n == 0 {
            w.u32(0);
        } else {
            w.u32(1).u32(1).u32(n).u32(1);
        }
    });
    w.full(b"stsz", 0, 0, |w| {
        w.u32(0).u32(n);
        for s in &t.samples {
            w.u32(s.size);
        }
    });
    if chunk_offset > u32::MAX as u64 {
        w.full(b"co64", 0, 0, |w| {
            w.u32(if n == 0 { 0 } else { 1 });
            if n > 0 {
                w.u64(chunk_offset);
            }
        });
    } else {
        w.full(b"stco", 0, 0, |w| {
            w.u32(if n == 0 { 0 } else { 1 });
            if n > 0 {
                w.u32(chunk_offset as u32);
            }
        });
    }
}

/// Top-level boxes of an MP4 file as (type, offset, size); for tests and checks.
#[allow(dead_code)]
pub fn top_level_boxes(data: &[u8]) -> Vec<([u8; 4], usize, u64)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let mut size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        if size == 1 && pos + 16 <= data.len() {
            size = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap());
        } else if size == 0 {
            size = (data.len() - pos) as u64;
        }
        if size < 8 {
            break;
        }
        out.push((kind, pos, size));
        pos += size as usize;
    }
    out
}
