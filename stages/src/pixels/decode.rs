//! Decoding: turns the Pixel Data of one instance into plain interleaved
//! sample words plus everything needed to render any frame later.
//!
//! * Native pixel data (any endianness, 1/8/16/32 bits allocated, planar
//!   configuration 0/1, YBR_FULL and YBR_FULL_422) is unpacked here.
//! * RLE Lossless is decoded here (all bit depths, including 32-bit).
//! * JPEG, JPEG 2000 (openjp2) and, with the `charls` feature, JPEG-LS are
//!   decoded through `dicom-pixeldata`; the codec is guarded so that a panic
//!   inside it becomes a [`PixelError`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::attrs::{self, Obj};
use super::color;
use super::PixelError;

/// Default ceiling on the decoded size of one instance (bytes of sample words): 2 GiB.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 2 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Model {
    Mono1,
    Mono2,
    Rgb,
    Palette,
}

/// Sample words in interleaved order (RGBRGB...), frames one after another.
/// Words are the raw container values; bits stored/high bit/sign are applied
/// when a frame is read (see [`Decoded::frame_stored`]).
#[derive(Clone, Debug)]
pub(super) enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// A lookup table (modality, VOI or one palette channel).
#[derive(Clone, Debug)]
pub(super) struct Lut {
    pub first: i64,
    pub bits: u32,
    pub data: Vec<u16>,
}

impl Lut {
    pub fn lookup(&self, x: f64) -> u16 {
        let n = self.data.len() as i64;
        if n == 0 {
            return 0;
        }
        let i = (x.round() as i64)
            .saturating_sub(self.first)
            .clamp(0, n - 1);
        self.data[i as usize]
    }

    pub fn max_value(&self) -> u16 {
        self.data.iter().copied().max().unwrap_or(0)
    }

    pub fn min_value(&self) -> u16 {
        self.data.iter().copied().min().unwrap_or(0)
    }
}

/// Per-frame rendering parameters (top level, shared and per-frame
/// functional groups merged).
#[derive(Clone, Debug)]
pub(super) struct FrameParams {
    pub slope: f64,
    pub intercept: f64,
    pub windows: Vec<(f64, f64)>,
    pub function: VoiFunction,
    /// (row spacing = vertical, column spacing = horizontal)
    pub spacing: Option<(f64, f64)>,
}

/// Decode once; frames rendered on demand. Holds the decoded pixel data of one instance.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub(super) rows: u32,
    pub(super) cols: u32,
    pub(super) frames: u32,
    pub(super) spp: u8,
    pub(super) model: Model,
    pub(super) bits_allocated: u16,
    pub(super) bits_stored: u16,
    pub(super) high_bit: u16,
    pub(super) signed: bool,
    pub(super) samples: Samples,
    pub(super) params: Vec<FrameParams>,
    pub(super) modality_lut: Option<Lut>,
    pub(super) voi_luts: Vec<Lut>,
    pub(super) palette: Option<[Lut; 3]>,
    pub(super) presentation_inverse: bool,
    /// Pixel Padding Value (stored units): excluded from automatic windows.
    pub(super) padding: Option<i64>,
    /// Photometric interpretation of the source was converted (YBR -> RGB).
    pub(super) color_converted: bool,
    pub(super) source_lossy: bool,
}

impl Decoded {
    /// Number of frames held.
    pub fn frame_count(&self) -> u32 {
        self.frames
    }

    /// Width (columns) of every frame before aspect correction.
    pub fn columns(&self) -> u32 {
        self.cols
    }

    /// Height (rows) of every frame before aspect correction.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Samples per pixel of the decoded data (1, or 3 for RGB after any
    /// colour conversion).
    pub fn samples_per_pixel(&self) -> u8 {
        self.spp
    }

    /// Bits allocated per decoded sample word (8, 16 or 32; 1-bit data is
    /// held as 8-bit words).
    pub fn bits_allocated(&self) -> u16 {
        self.bits_allocated
    }

    /// True when the pixels went through lossy compression (lossy transfer
    /// syntax or LossyImageCompression "01").
    pub fn is_lossy(&self) -> bool {
        self.source_lossy
    }

    pub(super) fn frame_len(&self) -> usize {
        self.rows as usize * self.cols as usize * self.spp as usize
    }

    pub(super) fn params(&self, frame: u32) -> &FrameParams {
        let i = (frame as usize).min(self.params.len().saturating_sub(1));
        &self.params[i]
    }

    /// Raw container words of one frame.
    pub(super) fn frame_words(&self, frame: u32) -> Result<Vec<u32>, PixelError> {
        if frame >= self.frames {
            return Err(PixelError::FrameOutOfRange {
                frame,
                count: self.frames,
            });
        }
        let n = self.frame_len();
        let s = frame as usize * n;
        Ok(match &self.samples {
            Samples::U8(v) => v[s..s + n].iter().map(|x| *x as u32).collect(),
            Samples::U16(v) => v[s..s + n].iter().map(|x| *x as u32).collect(),
            Samples::U32(v) => v[s..s + n].to_vec(),
        })
    }

    /// Stored pixel values of one frame (bits stored / high bit / sign applied).
    pub(super) fn frame_stored(&self, frame: u32) -> Result<Vec<i64>, PixelError> {
        let words = self.frame_words(frame)?;
        Ok(words.into_iter().map(|w| self.stored_value(w)).collect())
    }

    pub(super) fn stored_value(&self, word: u32) -> i64 {
        let bs = self.bits_stored as u32;
        let shift = (self.high_bit as u32 + 1).saturating_sub(bs);
        let mask: u64 = if bs >= 32 {
            u32::MAX as u64
        } else {
            (1u64 << bs) - 1
        };
        let v = ((word as u64) >> shift) & mask;
        if self.signed && bs > 0 && (v >> (bs - 1)) & 1 == 1 {
            v as i64 - (1i64 << bs)
        } else {
            v as i64
        }
    }

    /// Smallest and largest representable stored value.
    pub(super) fn stored_range(&self) -> (i64, i64) {
        let bs = self.bits_stored.clamp(1, 32) as u32;
        if self.signed {
            (-(1i64 << (bs - 1)), (1i64 << (bs - 1)) - 1)
        } else {
            (0, (1i64 << bs) - 1)
        }
    }
}

const LOSSY_TS: &[&str] = &[
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.100",
    "1.2.840.10008.1.2.4.101",
    "1.2.840.10008.1.2.4.102",
    "1.2.840.10008.1.2.4.103",
    "1.2.840.10008.1.2.4.104",
    "1.2.840.10008.1.2.4.105",
    "1.2.840.10008.1.2.4.106",
    "1.2.840.10008.1.2.4.107",
    "1.2.840.10008.1.2.4.108",
    "1.2.840.10008.1.2.4.110",
    "1.2.840.10008.1.2.4.112",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

pub(super) fn is_lossy_ts(uid: &str) -> bool {
    LOSSY_TS.contains(&uid)
}

fn ts_uid(obj: &FileDicomObject<InMemDicomObject>) -> String {
    obj.meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Image pixel module attributes, validated.
pub(super) struct Layout {
    pub rows: u32,
    pub cols: u32,
    pub frames: u32,
    pub spp: u16,
    pub ba: u16,
    pub bs: u16,
    pub hb: u16,
    pub signed: bool,
    pub planar: bool,
    pub pi: String,
}

pub(super) fn layout(obj: &Obj) -> Result<Layout, PixelError> {
    let rows = attrs::uint(obj, tags::ROWS).ok_or(PixelError::MissingAttribute("Rows"))?;
    let cols = attrs::uint(obj, tags::COLUMNS).ok_or(PixelError::MissingAttribute("Columns"))?;
    if rows == 0 || cols == 0 || rows > 65535 || cols > 65535 {
        return Err(PixelError::InvalidAttribute {
            name: "Rows/Columns",
            reason: "must be between 1 and 65535".into(),
        });
    }
    let spp = attrs::uint(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if spp != 1 && spp != 3 {
        return Err(PixelError::InvalidAttribute {
            name: "SamplesPerPixel",
            reason: "only 1 or 3 are supported".into(),
        });
    }
    let ba = attrs::uint(obj, tags::BITS_ALLOCATED)
        .ok_or(PixelError::MissingAttribute("BitsAllocated"))?;
    if ![1, 8, 16, 32].contains(&ba) {
        return Err(PixelError::InvalidAttribute {
            name: "BitsAllocated",
            reason: "only 1, 8, 16 or 32 are supported".into(),
        });
    }
    let bs = attrs::uint(obj, tags::BITS_STORED).unwrap_or(ba);
    let bs = if bs == 0 || bs > ba { ba } else { bs };
    let hb = attrs::uint(obj, tags::HIGH_BIT).unwrap_or(bs - 1);
    let hb = if hb >= ba || hb + 1 < bs { bs - 1 } else { hb };
    let signed = attrs::int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let frames = match attrs::int(obj, tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(n) if (1..=1_000_000).contains(&n) => n as u32,
        Some(0) => 1,
        Some(_) => {
            return Err(PixelError::InvalidAttribute {
                name: "NumberOfFrames",
                reason: "out of range".into(),
            })
        }
    };
    let planar = spp == 3 && attrs::int(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0) == 1;
    let pi = attrs::string(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| {
        if spp == 3 {
            "RGB".into()
        } else {
            "MONOCHROME2".into()
        }
    });
    Ok(Layout {
        rows,
        cols,
        frames,
        spp: spp as u16,
        ba: ba as u16,
        bs: bs as u16,
        hb: hb as u16,
        signed,
        planar,
        pi,
    })
}

/// Decode the Pixel Data of `obj` once, with the default ceiling
/// ([`DEFAULT_MAX_DECODED_BYTES`]).
pub fn decode(obj: &FileDicomObject<InMemDicomObject>) -> Result<Decoded, PixelError> {
    decode_with_limit(obj, DEFAULT_MAX_DECODED_BYTES)
}

/// Decode the Pixel Data of `obj` once, refusing (before allocating anything for the
/// samples) an instance whose header claims more than `max_bytes` of decoded sample words.
pub fn decode_with_limit(
    obj: &FileDicomObject<InMemDicomObject>,
    max_bytes: u64,
) -> Result<Decoded, PixelError> {
    let pixel = obj.get(tags::PIXEL_DATA).ok_or(PixelError::NoPixelData)?;
    let l = layout(obj)?;
    // In u128 no product of these four 32-bit-or-less factors can overflow.
    let claimed = l.rows as u128
        * l.cols as u128
        * l.spp as u128
        * l.frames as u128
        * (l.ba as u128).div_ceil(8);
    if claimed > max_bytes as u128 {
        return Err(PixelError::TooLarge {
            needed_mib: claimed.div_ceil(1 << 20),
            limit_mib: max_bytes >> 20,
        });
    }
    let ts = ts_uid(obj);

    let model = match l.pi.as_str() {
        "MONOCHROME1" if l.spp == 1 => Model::Mono1,
        "MONOCHROME2" if l.spp == 1 => Model::Mono2,
        "PALETTE COLOR" if l.spp == 1 => Model::Palette,
        "RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_RCT" | "YBR_ICT" if l.spp == 3 => Model::Rgb,
        _ => {
            return Err(PixelError::UnsupportedPhotometric(format!(
                "{} with {} samples per pixel",
                sanitize_cs(&l.pi),
                l.spp
            )))
        }
    };
    if model == Model::Palette && l.ba > 16 {
        return Err(PixelError::InvalidAttribute {
            name: "BitsAllocated",
            reason: "PALETTE COLOR needs 8 or 16 bits".into(),
        });
    }

    let pixels_per_frame = l.rows as usize * l.cols as usize;
    let samples_total = pixels_per_frame
        .checked_mul(l.spp as usize)
        .and_then(|x| x.checked_mul(l.frames as usize))
        .ok_or_else(|| PixelError::InvalidAttribute {
            name: "Rows/Columns/NumberOfFrames",
            reason: "image too large".into(),
        })?;
    let bytes_per_sample = (l.ba as usize).div_ceil(8);

    let mut color_converted = false;
    let mut bits_allocated = l.ba;
    let mut bits_stored = l.bs;
    let mut high_bit = l.hb;

    let samples = match pixel.value() {
        Value::Primitive(p) => {
            let big_endian = ts == "1.2.840.10008.1.2.2";
            if l.ba == 1 {
                let bytes = le_bytes(p, big_endian, 8)?;
                let needed = samples_total.div_ceil(8);
                if bytes.len() < needed {
                    return Err(PixelError::Truncated {
                        needed,
                        found: bytes.len(),
                    });
                }
                let v: Vec<u8> = (0..samples_total)
                    .map(|i| (bytes[i / 8] >> (i % 8)) & 1)
                    .collect();
                bits_allocated = 8;
                bits_stored = 1;
                high_bit = 0;
                Samples::U8(v)
            } else if l.spp == 3 && l.pi == "YBR_FULL_422" {
                if l.ba != 8 {
                    return Err(PixelError::UnsupportedPhotometric(
                        "uncompressed YBR_FULL_422 with more than 8 bits".into(),
                    ));
                }
                let bytes = le_bytes(p, big_endian, 8)?;
                color_converted = true;
                Samples::U8(color::ybr422_to_rgb(&bytes, l.rows, l.cols, l.frames)?)
            } else {
                let bytes = le_bytes(p, big_endian, l.ba)?;
                let needed = samples_total * bytes_per_sample;
                if bytes.len() < needed {
                    return Err(PixelError::Truncated {
                        needed,
                        found: bytes.len(),
                    });
                }
                let mut s = samples_from_le(&bytes[..needed], l.ba);
                if l.planar {
                    s = deplanarize(s, pixels_per_frame, l.frames);
                }
                if l.spp == 3 && l.pi == "YBR_FULL" {
                    color::ybr_full_to_rgb(&mut s, l.bs);
                    color_converted = true;
                }
                s
            }
        }
        Value::PixelSequence(seq) => {
            let s = decode_encapsulated(obj, seq, &l, &ts, samples_total)?;
            if l.spp == 3 && l.pi != "RGB" {
                color_converted = true;
            }
            if l.spp == 3 && ts == "1.2.840.10008.1.2.5" && l.pi == "YBR_FULL" {
                let mut s = s;
                color::ybr_full_to_rgb(&mut s, l.bs);
                s
            } else {
                s
            }
        }
        Value::Sequence(_) => {
            return Err(PixelError::InvalidAttribute {
                name: "PixelData",
                reason: "is a sequence".into(),
            })
        }
    };

    let palette = if model == Model::Palette {
        Some(color::read_palette(obj, l.signed)?)
    } else {
        None
    };

    let modality_lut = attrs::items(obj, tags::MODALITY_LUT_SEQUENCE)
        .first()
        .and_then(|it| read_lut(it, l.signed));
    let voi_luts: Vec<Lut> = attrs::items(obj, tags::VOILUT_SEQUENCE)
        .iter()
        .filter_map(|it| read_lut(it, l.signed))
        .collect();
    let presentation_inverse =
        attrs::string(obj, tags::PRESENTATION_LUT_SHAPE).as_deref() == Some("INVERSE");
    let source_lossy = is_lossy_ts(&ts)
        || attrs::string(obj, tags::LOSSY_IMAGE_COMPRESSION).as_deref() == Some("01");

    Ok(Decoded {
        rows: l.rows,
        cols: l.cols,
        frames: l.frames,
        spp: l.spp as u8,
        model,
        bits_allocated,
        bits_stored,
        high_bit,
        signed: l.signed,
        samples,
        params: frame_params(obj, l.frames),
        modality_lut,
        voi_luts,
        palette,
        presentation_inverse,
        padding: attrs::int(obj, tags::PIXEL_PADDING_VALUE).map(|v| {
            // stored as US or SS depending on Pixel Representation
            if l.signed && v > 32767 && v < 65536 {
                v - 65536
            } else {
                v
            }
        }),
        color_converted,
        source_lossy,
    })
}

/// Keep only characters of a code string (defined terms), never free text.
fn sanitize_cs(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_' || *c == ' ')
        .take(24)
        .collect()
}

pub(super) fn read_lut(item: &Obj, signed: bool) -> Option<Lut> {
    let (n, first, bits) = attrs::lut_descriptor(item, tags::LUT_DESCRIPTOR, signed)?;
    let mut data = attrs::lut_words(item, tags::LUT_DATA)?;
    if bits <= 8 && data.len() * 2 == n {
        // 8-bit entries packed two per 16-bit word
        data = data.iter().flat_map(|w| [(*w & 0xff), (*w >> 8)]).collect();
    }
    if data.is_empty() {
        return None;
    }
    data.truncate(n);
    Some(Lut { first, bits, data })
}

/// Raw sample bytes in little-endian order, undoing the in-memory
/// representation of the parser (which already swapped OW words).
fn le_bytes(p: &PrimitiveValue, big_endian: bool, ba: u16) -> Result<Vec<u8>, PixelError> {
    Ok(match p {
        PrimitiveValue::U8(v) => {
            let mut b = v.to_vec();
            if big_endian && ba == 16 {
                b.chunks_exact_mut(2).for_each(|c| c.swap(0, 1));
            } else if big_endian && ba == 32 {
                b.chunks_exact_mut(4).for_each(|c| c.reverse());
            }
            b
        }
        PrimitiveValue::U16(_) | PrimitiveValue::I16(_) => {
            let words: Vec<u16> = match p {
                PrimitiveValue::U16(v) => v.to_vec(),
                PrimitiveValue::I16(v) => v.iter().map(|x| *x as u16).collect(),
                _ => unreachable!(),
            };
            if ba == 32 {
                let mut out = Vec::with_capacity(words.len() * 2);
                for c in words.chunks_exact(2) {
                    let v = if big_endian {
                        ((c[0] as u32) << 16) | c[1] as u32
                    } else {
                        c[0] as u32 | ((c[1] as u32) << 16)
                    };
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out
            } else {
                words.iter().flat_map(|w| w.to_le_bytes()).collect()
            }
        }
        PrimitiveValue::U32(v) => v.iter().flat_map(|w| w.to_le_bytes()).collect(),
        PrimitiveValue::I32(v) => v.iter().flat_map(|w| w.to_le_bytes()).collect(),
        PrimitiveValue::Empty => Vec::new(),
        _ => {
            return Err(PixelError::InvalidAttribute {
                name: "PixelData",
                reason: "unexpected value representation".into(),
            })
        }
    })
}

pub(super) fn samples_from_le(bytes: &[u8], ba: u16) -> Samples {
    match ba {
        8 => Samples::U8(bytes.to_vec()),
        16 => Samples::U16(
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        _ => Samples::U32(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    }
}

/// Planar configuration 1 (RRR..GGG..BBB.. per frame) -> interleaved.
fn deplanarize(s: Samples, pixels: usize, frames: u32) -> Samples {
    fn go<T: Copy>(v: &[T], pixels: usize, frames: u32) -> Vec<T> {
        let mut out = Vec::with_capacity(v.len());
        for f in 0..frames as usize {
            let base = f * pixels * 3;
            for i in 0..pixels {
                for c in 0..3 {
                    out.push(v[base + c * pixels + i]);
                }
            }
        }
        out
    }
    match s {
        Samples::U8(v) => Samples::U8(go(&v, pixels, frames)),
        Samples::U16(v) => Samples::U16(go(&v, pixels, frames)),
        Samples::U32(v) => Samples::U32(go(&v, pixels, frames)),
    }
}

fn decode_encapsulated(
    obj: &FileDicomObject<InMemDicomObject>,
    seq: &PixelFragmentSequence<Vec<u8>>,
    l: &Layout,
    ts: &str,
    samples_total: usize,
) -> Result<Samples, PixelError> {
    let bytes_per_sample = (l.ba as usize).div_ceil(8);
    if l.ba == 1 {
        return Err(PixelError::UnsupportedTransferSyntax {
            uid: ts.to_string(),
            reason: "1-bit pixel data must be uncompressed".into(),
        });
    }
    match ts {
        "1.2.840.10008.1.2.5" => {
            let frames = frame_fragments(seq, l.frames)?;
            let mut out = Vec::with_capacity(samples_total * bytes_per_sample);
            for f in &frames {
                out.extend(rle_decode_frame(f, l)?);
            }
            return Ok(samples_from_le(&out, l.ba));
        }
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" if !cfg!(feature = "charls") => {
            return Err(PixelError::JpegLsNeedsCharls(ts.to_string()));
        }
        "1.2.840.10008.1.2.4.51" if l.bs > 8 => return Err(PixelError::Jpeg12BitLossy),
        _ => {}
    }
    check_codestream_headers(seq.fragments(), l)?;
    if l.spp == 3
        && l.pi == "RGB"
        && l.ba == 8
        && matches!(ts, "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51")
        && seq
            .fragments()
            .first()
            .is_some_and(|f| !jpeg_declares_colorspace(f))
    {
        // PhotometricInterpretation RGB means the JPEG components are R, G, B
        // (no colour transform); without JFIF/Adobe markers the generic
        // decoder guesses YCbCr from the component ids, so decode these
        // frames here with the transform off.
        let frames = frame_fragments(seq, l.frames)?;
        let mut out = Vec::with_capacity(samples_total);
        for f in &frames {
            let res = catch_unwind(AssertUnwindSafe(|| {
                let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(f.as_slice()));
                d.set_color_transform(jpeg_decoder::ColorTransform::RGB);
                d.decode()
            }));
            match res {
                Ok(Ok(px)) if px.len() == samples_total / l.frames as usize => out.extend(px),
                Ok(Ok(_)) => {
                    return Err(PixelError::Decode(
                        "JPEG frame size does not match Rows x Columns".into(),
                    ))
                }
                Ok(Err(e)) => return Err(PixelError::Decode(format!("JPEG: {e}"))),
                Err(_) => {
                    return Err(PixelError::Decode(
                        "the JPEG codec crashed on this data".into(),
                    ))
                }
            }
        }
        return Ok(Samples::U8(out));
    }
    use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
    use dicom_pixeldata::PixelDecoder;
    let known = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(ts)
        .is_some();
    if !known {
        return Err(PixelError::UnsupportedTransferSyntax {
            uid: sanitize_uid(ts),
            reason: "unknown transfer syntax".into(),
        });
    }
    let res = catch_unwind(AssertUnwindSafe(|| {
        obj.decode_pixel_data().map(|d| d.into_data())
    }));
    let data = match res {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            // top-level message plus its causes (codec messages, no values)
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            if msg.contains("not supported")
                || msg.contains("Unsupported")
                || msg.contains("unsupported")
            {
                return Err(PixelError::UnsupportedTransferSyntax {
                    uid: sanitize_uid(ts),
                    reason: msg,
                });
            }
            return Err(PixelError::Decode(msg));
        }
        Err(_) => return Err(PixelError::Decode("the codec crashed on this data".into())),
    };
    let needed = samples_total * bytes_per_sample;
    if data.len() < needed {
        return Err(PixelError::Truncated {
            needed,
            found: data.len(),
        });
    }
    Ok(samples_from_le(&data[..needed], l.ba))
}

/// The image size a JPEG (SOF, including JPEG-LS SOF55) or JPEG 2000 (SIZ) codestream declares
/// in its header: (columns, rows, components). None when `b` does not start a codestream or
/// its header cannot be found.
pub(super) fn codestream_size(b: &[u8]) -> Option<(u32, u32, u32)> {
    let be16 = |i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as u32);
    let be32 = |i: usize| {
        Some(u32::from_be_bytes([
            *b.get(i)?,
            *b.get(i + 1)?,
            *b.get(i + 2)?,
            *b.get(i + 3)?,
        ]))
    };
    match b.get(..4)? {
        // JPEG 2000: SOC then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz
        [0xFF, 0x4F, 0xFF, 0x51] => {
            let (x, y, xo, yo) = (be32(8)?, be32(12)?, be32(16)?, be32(20)?);
            Some((x.checked_sub(xo)?, y.checked_sub(yo)?, be16(40)?))
        }
        [0xFF, 0xD8, ..] => {
            let mut i = 2;
            loop {
                // Fill bytes (0xFF runs) may precede a marker.
                while *b.get(i)? == 0xFF && *b.get(i + 1)? == 0xFF {
                    i += 1;
                }
                if *b.get(i)? != 0xFF {
                    return None;
                }
                let marker = *b.get(i + 1)?;
                match marker {
                    0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xF7 => {
                        // length, precision, height, width, components
                        return Some((be16(i + 7)?, be16(i + 5)?, *b.get(i + 9)? as u32));
                    }
                    0xDA | 0xD9 => return None, // scan data or end before any frame header
                    0x01 | 0xD0..=0xD7 => i += 2,
                    _ => i += 2 + be16(i + 2)? as usize,
                }
            }
        }
        _ => None,
    }
}

/// Every fragment that starts a JPEG or JPEG 2000 codestream must declare the image size the
/// header does. The codecs size their buffers from the codestream, not from Rows and Columns:
/// a small file whose JPEG claims 65535 x 65535 would make the decoder allocate gigabytes
/// (past the `max_decoded_mib` check, which reads the header), and a JPEG larger than the
/// header makes dicom-rs's JPEG adapter overrun its buffer and panic.
fn check_codestream_headers(fragments: &[Vec<u8>], l: &Layout) -> Result<(), PixelError> {
    for f in fragments {
        let Some((cols, rows, comps)) = codestream_size(f) else {
            continue;
        };
        if cols != l.cols || rows != l.rows || comps != l.spp as u32 {
            return Err(PixelError::Decode(format!(
                "the compressed frame declares {cols} x {rows} pixels with {comps} components, \
                 but Columns x Rows is {} x {} with {} samples per pixel; refusing to decode it",
                l.cols, l.rows, l.spp
            )));
        }
    }
    Ok(())
}

/// True when the JPEG stream states its colour space itself (JFIF APP0 or
/// Adobe APP14 marker before the frame header); such streams are decoded as
/// they declare.
fn jpeg_declares_colorspace(b: &[u8]) -> bool {
    if b.len() < 4 || b[0] != 0xff || b[1] != 0xd8 {
        return false;
    }
    let mut i = 2;
    while i + 4 <= b.len() && b[i] == 0xff {
        let m = b[i + 1];
        if m == 0xff {
            i += 1;
            continue;
        }
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        let body = &b[(i + 4).min(b.len())..(i + 2 + len).min(b.len())];
        if (m == 0xe0 && body.starts_with(b"JFIF")) || (m == 0xee && body.starts_with(b"Adobe")) {
            return true;
        }
        if ((0xc0..=0xcf).contains(&m) && m != 0xc4 && m != 0xc8 && m != 0xcc) || m == 0xda {
            return false;
        }
        i += 2 + len;
    }
    false
}

fn sanitize_uid(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .take(64)
        .collect()
}

/// Group the fragments of an encapsulated Pixel Data into frames: one
/// fragment per frame, or by the Basic Offset Table, or all in one frame.
pub(super) fn frame_fragments(
    seq: &PixelFragmentSequence<Vec<u8>>,
    frames: u32,
) -> Result<Vec<Vec<u8>>, PixelError> {
    let frags = seq.fragments();
    let n = frames as usize;
    if frags.len() == n {
        return Ok(frags.to_vec());
    }
    if n == 1 && !frags.is_empty() {
        return Ok(vec![frags.iter().flatten().copied().collect()]);
    }
    let bot = seq.offset_table();
    if bot.len() == n && frags.len() > n {
        // positions of fragments relative to the first item (8-byte item headers)
        let mut pos = Vec::with_capacity(frags.len());
        let mut p = 0u64;
        for f in frags {
            pos.push(p);
            p += f.len() as u64 + 8;
        }
        let mut out = vec![Vec::new(); n];
        for (fi, f) in frags.iter().enumerate() {
            let frame = bot
                .iter()
                .rposition(|o| (*o as u64) <= pos[fi])
                .unwrap_or(0);
            out[frame].extend_from_slice(f);
        }
        if out.iter().all(|f| !f.is_empty()) {
            return Ok(out);
        }
    }
    Err(PixelError::InvalidAttribute {
        name: "PixelData",
        reason: format!(
            "{} fragments cannot be matched to {} frames",
            frags.len(),
            n
        ),
    })
}

/// DICOM RLE (PS3.5 Annex G) for one frame; returns little-endian
/// interleaved sample bytes.
fn rle_decode_frame(data: &[u8], l: &Layout) -> Result<Vec<u8>, PixelError> {
    let bad = |r: &str| PixelError::Decode(format!("RLE: {r}"));
    if data.len() < 64 {
        return Err(bad("fragment shorter than the RLE header"));
    }
    let rd =
        |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
    let nseg = rd(0);
    let bps = (l.ba as usize) / 8;
    let spp = l.spp as usize;
    if nseg != bps * spp || nseg > 15 {
        return Err(bad(
            "segment count does not match BitsAllocated x SamplesPerPixel",
        ));
    }
    let pixels = l.rows as usize * l.cols as usize;
    let mut ranges = Vec::with_capacity(nseg);
    for s in 0..nseg {
        let start = rd(4 + 4 * s);
        let end = if s + 1 < nseg {
            rd(8 + 4 * s)
        } else {
            data.len()
        };
        if start < 64 || start > end || end > data.len() {
            return Err(bad("segment offsets out of range"));
        }
        // PackBits yields at most 128 bytes per 2 input bytes: refuse a segment that cannot
        // fill Rows x Columns before allocating the frame.
        if pixels / 64 > end - start {
            return Err(bad("segment shorter than Rows x Columns"));
        }
        ranges.push((start, end));
    }
    let mut out = vec![0u8; pixels * spp * bps];
    for (s, &(start, end)) in ranges.iter().enumerate() {
        let seg = packbits(&data[start..end], pixels)
            .ok_or_else(|| bad("segment shorter than Rows x Columns"))?;
        let sample = s / bps;
        let byte_in_sample = bps - 1 - (s % bps); // first segment = most significant byte
        for (i, b) in seg.into_iter().enumerate() {
            out[(i * spp + sample) * bps + byte_in_sample] = b;
        }
    }
    Ok(out)
}

/// PackBits decode to exactly `len` bytes (extra output is dropped);
/// `None` when the segment yields fewer.
fn packbits(src: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while i < src.len() && out.len() < len {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let cnt = n as usize + 1;
            let end = (i + cnt).min(src.len());
            out.extend_from_slice(&src[i..end]);
            i = end;
        } else if n != -128 {
            let cnt = 1 - n as isize;
            if let Some(b) = src.get(i) {
                out.extend(std::iter::repeat_n(*b, cnt as usize));
            }
            i += 1;
        }
    }
    if out.len() < len {
        return None;
    }
    out.truncate(len);
    Some(out)
}

fn voi_function(s: Option<String>) -> VoiFunction {
    match s.as_deref() {
        Some("SIGMOID") => VoiFunction::Sigmoid,
        Some("LINEAR_EXACT") => VoiFunction::LinearExact,
        _ => VoiFunction::Linear,
    }
}

fn windows_of(obj: &Obj) -> Option<Vec<(f64, f64)>> {
    let c = attrs::floats(obj, tags::WINDOW_CENTER)?;
    let w = attrs::floats(obj, tags::WINDOW_WIDTH)?;
    let v: Vec<(f64, f64)> = c.into_iter().zip(w).filter(|(_, w)| *w > 0.0).collect();
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

fn spacing_of(obj: &Obj) -> Option<(f64, f64)> {
    let ok = |v: Vec<f64>| {
        if v.len() >= 2 && v[0] > 0.0 && v[1] > 0.0 {
            Some((v[0], v[1]))
        } else {
            None
        }
    };
    attrs::floats(obj, tags::PIXEL_SPACING)
        .and_then(ok)
        .or_else(|| attrs::floats(obj, tags::IMAGER_PIXEL_SPACING).and_then(ok))
        .or_else(|| attrs::floats(obj, tags::PIXEL_ASPECT_RATIO).and_then(ok))
}

fn apply_groups(p: &mut FrameParams, fg: &Obj) {
    if let Some(t) = attrs::items(fg, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE).first() {
        if let Some(s) = attrs::float(t, tags::RESCALE_SLOPE) {
            p.slope = s;
        }
        if let Some(i) = attrs::float(t, tags::RESCALE_INTERCEPT) {
            p.intercept = i;
        }
    }
    if let Some(v) = attrs::items(fg, tags::FRAME_VOILUT_SEQUENCE).first() {
        if let Some(w) = windows_of(v) {
            p.windows = w;
        }
        if let Some(f) = attrs::string(v, tags::VOILUT_FUNCTION) {
            p.function = voi_function(Some(f));
        }
    }
    if let Some(m) = attrs::items(fg, tags::PIXEL_MEASURES_SEQUENCE).first() {
        if let Some(s) = attrs::floats(m, tags::PIXEL_SPACING) {
            if s.len() >= 2 && s[0] > 0.0 && s[1] > 0.0 {
                p.spacing = Some((s[0], s[1]));
            }
        }
    }
}

fn frame_params(obj: &Obj, frames: u32) -> Vec<FrameParams> {
    let top = FrameParams {
        slope: attrs::float(obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
        intercept: attrs::float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        windows: windows_of(obj).unwrap_or_default(),
        function: voi_function(attrs::string(obj, tags::VOILUT_FUNCTION)),
        spacing: spacing_of(obj),
    };
    let shared = attrs::items(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).first();
    let per = attrs::items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let mut base = top;
    if let Some(s) = shared {
        apply_groups(&mut base, s);
    }
    let fix = |mut p: FrameParams| {
        if !p.slope.is_finite() || p.slope == 0.0 {
            p.slope = 1.0;
        }
        if !p.intercept.is_finite() {
            p.intercept = 0.0;
        }
        p
    };
    if per.is_empty() {
        return vec![fix(base)];
    }
    (0..frames as usize)
        .map(|i| {
            let mut p = base.clone();
            if let Some(fg) = per.get(i) {
                apply_groups(&mut p, fg);
            }
            fix(p)
        })
        .collect()
}
