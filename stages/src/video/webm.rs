//! Built-in WebM/AV1 encoder: rav1e (pure Rust; its nasm assembly is the opt-in cargo feature
//! `av1-asm`) + a minimal EBML/Matroska muxer.
//!
//! rav1e settings: speed preset 10 (fastest), constant quantizer from `quality`, 8-bit 4:2:0,
//! BT.601 limited range signalled, a keyframe at least every 5 seconds.
//!
//! File layout: EBML header; Segment { Info (TimestampScale 1 ms, Duration, MuxingApp and
//! WritingApp "dcmflow"; no Title, no DateUTC), Tracks (one V_AV1 track with av1C
//! CodecPrivate, DefaultDuration, BT.601 limited-range Colour), Cues (one per cluster, placed
//! before the clusters so players can seek at once), Clusters (one per keyframe) of
//! SimpleBlocks }. Temporal-delimiter OBUs are removed from blocks, as the Matroska AV1
//! mapping asks. Encoded packets are kept in memory until `finish` so that every size is known.

use rav1e::prelude::{
    ChromaSampling, ColorDescription, ColorPrimaries, Config, Context, EncoderConfig,
    EncoderStatus, FrameType, MatrixCoefficients, PixelRange, Rational, SpeedSettings,
    TransferCharacteristics,
};

use super::convert::{Geometry, Yuv420};
use super::rate::fps_rational;
use super::{quality_map, Frame, VideoEncoder, VideoError};

struct Packet {
    frameno: u64,
    key: bool,
    data: Vec<u8>,
}

pub struct WebmAv1Encoder {
    geom: Geometry,
    fps: f64,
    ctx: Context<u8>,
    yuv: Yuv420,
    sent: u64,
    packets: Vec<Packet>,
}

fn enc_err(what: &str, e: impl std::fmt::Debug) -> VideoError {
    VideoError::Encoder(format!("rav1e {what}: {e:?}"))
}

impl WebmAv1Encoder {
    pub fn new(geom: Geometry, fps: f64, quality: u8) -> Result<Self, VideoError> {
        // rav1e rejects pictures smaller than 16 pixels in either dimension.
        let geom = geom.with_min(16);
        let (num, den) = fps_rational(fps);
        let mut ec = EncoderConfig::with_speed_preset(10);
        ec.width = geom.padded_width as usize;
        ec.height = geom.padded_height as usize;
        ec.time_base = Rational::new(den as u64, num as u64);
        ec.bit_depth = 8;
        ec.chroma_sampling = ChromaSampling::Cs420;
        ec.pixel_range = PixelRange::Limited;
        ec.color_description = Some(ColorDescription {
            color_primaries: ColorPrimaries::BT601,
            transfer_characteristics: TransferCharacteristics::BT601,
            matrix_coefficients: MatrixCoefficients::BT601,
        });
        ec.quantizer = quality_map(quality, 230.0, 30.0).clamp(0, 255) as usize;
        ec.min_key_frame_interval = 1;
        ec.max_key_frame_interval = (fps * 5.0).round().max(1.0) as u64;
        ec.speed_settings = SpeedSettings::from_preset(10);
        let cfg = Config::new().with_encoder_config(ec);
        let ctx: Context<u8> = cfg.new_context().map_err(|e| enc_err("config", e))?;
        Ok(WebmAv1Encoder {
            geom,
            fps,
            ctx,
            yuv: Yuv420::new(geom),
            sent: 0,
            packets: Vec::new(),
        })
    }

    /// Collect finished packets; returns true once the encoder reports it is done.
    fn drain(&mut self) -> Result<bool, VideoError> {
        loop {
            match self.ctx.receive_packet() {
                Ok(p) => {
                    let mut data = p.data;
                    // Drop a leading temporal delimiter OBU (header 0x12, size 0).
                    if data.len() >= 2 && data[0] == 0x12 && data[1] == 0x00 {
                        data.drain(..2);
                    }
                    self.packets.push(Packet {
                        frameno: p.input_frameno,
                        key: p.frame_type == FrameType::KEY,
                        data,
                    });
                }
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData) => return Ok(false),
                Err(EncoderStatus::LimitReached) => return Ok(true),
                Err(e) => return Err(enc_err("encode", e)),
            }
        }
    }
}

impl VideoEncoder for WebmAv1Encoder {
    fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        let (data, ch) = self.geom.check(frame)?;
        self.yuv.fill(
            data,
            ch,
            self.geom.width as usize,
            self.geom.height as usize,
        );
        let mut f = self.ctx.new_frame();
        let w = self.yuv.width;
        f.planes[0].copy_from_raw_u8(&self.yuv.y, w, 1);
        f.planes[1].copy_from_raw_u8(&self.yuv.u, w / 2, 1);
        f.planes[2].copy_from_raw_u8(&self.yuv.v, w / 2, 1);
        self.ctx
            .send_frame(f)
            .map_err(|e| enc_err("send_frame", e))?;
        self.sent += 1;
        self.drain()?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, VideoError> {
        if self.sent == 0 {
            return Err(VideoError::BadFrame("no frames were pushed".into()));
        }
        self.ctx.flush();
        while !self.drain()? {}
        if self.packets.len() as u64 != self.sent {
            return Err(VideoError::Encoder(format!(
                "rav1e returned {} packets for {} frames",
                self.packets.len(),
                self.sent
            )));
        }
        let codec_private = self.ctx.container_sequence_header();
        Ok(mux(&MuxInput {
            width: self.geom.padded_width,
            height: self.geom.padded_height,
            fps: self.fps,
            codec_private: &codec_private,
            packets: &self.packets,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// EBML writing

/// Element ID bytes as written (IDs already carry their length marker).
fn put_id(out: &mut Vec<u8>, id: u32) {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count();
    out.extend_from_slice(&b[skip..]);
}

/// Data size as a minimal EBML variable-length integer.
fn put_size(out: &mut Vec<u8>, size: u64) {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let v = size | (1u64 << (7 * len));
    out.extend_from_slice(&v.to_be_bytes()[8 - len..]);
}

fn el(out: &mut Vec<u8>, id: u32, payload: &[u8]) {
    put_id(out, id);
    put_size(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn el_uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count().min(7);
    el(out, id, &b[skip..]);
}

/// Unsigned integer with a fixed 8-byte payload (size independent of value).
fn el_uint8(out: &mut Vec<u8>, id: u32, v: u64) {
    el(out, id, &v.to_be_bytes());
}

fn el_float(out: &mut Vec<u8>, id: u32, v: f64) {
    el(out, id, &v.to_be_bytes());
}

fn el_master(out: &mut Vec<u8>, id: u32, f: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    f(&mut inner);
    el(out, id, &inner);
}

const EBML: u32 = 0x1A45DFA3;
const SEGMENT: u32 = 0x18538067;
const INFO: u32 = 0x1549A966;
const TRACKS: u32 = 0x1654AE6B;
const CUES: u32 = 0x1C53BB6B;
const CLUSTER: u32 = 0x1F43B675;

struct MuxInput<'a> {
    width: u32,
    height: u32,
    fps: f64,
    codec_private: &'a [u8],
    packets: &'a [Packet],
}

fn mux(m: &MuxInput) -> Vec<u8> {
    let ms = |frameno: u64| (frameno as f64 * 1000.0 / m.fps).round() as u64;
    let mut out = Vec::new();
    el_master(&mut out, EBML, |e| {
        el_uint(e, 0x4286, 1); // EBMLVersion
        el_uint(e, 0x42F7, 1); // EBMLReadVersion
        el_uint(e, 0x42F2, 4); // EBMLMaxIDLength
        el_uint(e, 0x42F3, 8); // EBMLMaxSizeLength
        el(e, 0x4282, b"webm"); // DocType
        el_uint(e, 0x4287, 4); // DocTypeVersion
        el_uint(e, 0x4285, 2); // DocTypeReadVersion
    });

    let mut head = Vec::new();
    el_master(&mut head, INFO, |e| {
        el_uint(e, 0x2AD7B1, 1_000_000); // TimestampScale: 1 ms
        el_float(e, 0x4489, m.packets.len() as f64 * 1000.0 / m.fps); // Duration (ms)
        el(e, 0x4D80, b"dcmflow"); // MuxingApp
        el(e, 0x5741, b"dcmflow"); // WritingApp
    });
    el_master(&mut head, TRACKS, |e| {
        el_master(e, 0xAE, |t| {
            el_uint(t, 0xD7, 1); // TrackNumber
            el_uint(t, 0x73C5, 1); // TrackUID
            el_uint(t, 0x83, 1); // TrackType: video
            el_uint(t, 0x9C, 0); // FlagLacing
            el(t, 0x22B59C, b"und"); // Language
            el(t, 0x86, b"V_AV1"); // CodecID
            el(t, 0x63A2, m.codec_private); // CodecPrivate (av1C)
            el_uint(t, 0x23E383, (1e9 / m.fps).round() as u64); // DefaultDuration (ns)
            el_master(t, 0xE0, |v| {
                el_uint(v, 0xB0, m.width as u64); // PixelWidth
                el_uint(v, 0xBA, m.height as u64); // PixelHeight
                el_master(v, 0x55B0, |c| {
                    el_uint(c, 0x55B1, 6); // MatrixCoefficients: BT.601
                    el_uint(c, 0x55B9, 1); // Range: broadcast (limited)
                    el_uint(c, 0x55BA, 6); // TransferCharacteristics: BT.601
                    el_uint(c, 0x55BB, 6); // Primaries: BT.601
                });
            });
        });
    });

    // Clusters: a new one at every keyframe, or when block offsets would overflow i16.
    let mut clusters: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut cur: Option<(u64, Vec<u8>)> = None;
    for p in m.packets {
        let t = ms(p.frameno);
        let start_new = match &cur {
            None => true,
            Some((ct, _)) => p.key || t - ct > 30_000,
        };
        if start_new {
            if let Some(c) = cur.take() {
                clusters.push(c);
            }
            let mut body = Vec::new();
            el_uint(&mut body, 0xE7, t); // Cluster Timestamp
            cur = Some((t, body));
        }
        let (ct, body) = cur.as_mut().expect("cluster");
        let rel = (t - *ct) as i16;
        let mut block = Vec::with_capacity(p.data.len() + 4);
        block.push(0x81); // track number 1 as a vint
        block.extend_from_slice(&rel.to_be_bytes());
        block.push(if p.key { 0x80 } else { 0x00 });
        block.extend_from_slice(&p.data);
        el(body, 0xA3, &block); // SimpleBlock
    }
    if let Some(c) = cur.take() {
        clusters.push(c);
    }
    let cluster_bytes: Vec<Vec<u8>> = clusters
        .iter()
        .map(|(_, body)| {
            let mut v = Vec::new();
            el(&mut v, CLUSTER, body);
            v
        })
        .collect();

    // Cues before the clusters; positions are relative to the start of the Segment payload.
    // Fixed-width positions make the Cues size independent of the offsets it stores.
    let build_cues = |first_cluster_pos: u64| {
        let mut cues = Vec::new();
        el_master(&mut cues, CUES, |c| {
            let mut pos = first_cluster_pos;
            for ((t, _), bytes) in clusters.iter().zip(&cluster_bytes) {
                el_master(c, 0xBB, |cp| {
                    el_uint8(cp, 0xB3, *t); // CueTime
                    el_master(cp, 0xB7, |ctp| {
                        el_uint(ctp, 0xF7, 1); // CueTrack
                        el_uint8(ctp, 0xF1, pos); // CueClusterPosition
                    });
                });
                pos += bytes.len() as u64;
            }
        });
        cues
    };
    let probe = build_cues(0);
    let cues = build_cues((head.len() + probe.len()) as u64);

    let seg_len = head.len() + cues.len() + cluster_bytes.iter().map(Vec::len).sum::<usize>();
    put_id(&mut out, SEGMENT);
    put_size(&mut out, seg_len as u64);
    out.extend_from_slice(&head);
    out.extend_from_slice(&cues);
    for c in &cluster_bytes {
        out.extend_from_slice(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vint_sizes() {
        let enc = |n: u64| {
            let mut v = Vec::new();
            put_size(&mut v, n);
            v
        };
        assert_eq!(enc(0), vec![0x80]);
        assert_eq!(enc(126), vec![0xFE]);
        assert_eq!(enc(127), vec![0x40, 0x7F]); // all-ones is reserved, so 127 needs 2 bytes
        assert_eq!(enc(16382), vec![0x7F, 0xFE]);
        assert_eq!(enc(16383), vec![0x20, 0x3F, 0xFF]);
        let mut v = Vec::new();
        put_id(&mut v, EBML);
        assert_eq!(v, vec![0x1A, 0x45, 0xDF, 0xA3]);
    }
}
