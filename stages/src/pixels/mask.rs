//! Blanking rectangles in rendered frames and in stored Pixel Data,
//! ultrasound regions and rectangle complements.

use dicom_core::value::{PrimitiveValue, C};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::attrs;
use super::decode::{self, Decoded, Model, Samples};
use super::{Frame, FrameData, PixelError, Rect};

/// Clip a rectangle to the image; `None` when nothing is left.
fn clip(r: &Rect, w: u32, h: u32) -> Option<(usize, usize, usize, usize)> {
    let x0 = r.x.min(w);
    let y0 = r.y.min(h);
    let x1 = r.x.saturating_add(r.width).min(w);
    let y1 = r.y.saturating_add(r.height).min(h);
    if x1 > x0 && y1 > y0 {
        Some((x0 as usize, y0 as usize, x1 as usize, y1 as usize))
    } else {
        None
    }
}

/// Whether any of `rects` covers at least one pixel of a `w` x `h` image.
pub fn any_inside(rects: &[Rect], w: u32, h: u32) -> bool {
    rects.iter().any(|r| clip(r, w, h).is_some())
}

/// Fill the rectangles; returns how many pixels were set (overlaps counted once per rectangle).
fn fill<T: Copy>(data: &mut [T], w: u32, h: u32, ch: usize, rects: &[Rect], value: &[T]) -> usize {
    let stride = w as usize * ch;
    let mut set = 0;
    for r in rects {
        if let Some((x0, y0, x1, y1)) = clip(r, w, h) {
            set += (x1 - x0) * (y1 - y0);
            for y in y0..y1 {
                let row = &mut data[y * stride..(y + 1) * stride];
                for x in x0..x1 {
                    for c in 0..ch {
                        row[x * ch + c] = value[c.min(value.len() - 1)];
                    }
                }
            }
        }
    }
    set
}

/// Blank (set to 0 = black) the rectangles in a rendered frame. Parts of
/// rectangles outside the frame are ignored.
pub fn mask_frame(frame: &mut Frame, rects: &[Rect]) {
    let (w, h, ch) = (frame.width, frame.height, frame.channels as usize);
    if ch == 0 || frame.data.len() < w as usize * h as usize * ch {
        return;
    }
    match &mut frame.data {
        FrameData::U8(v) => {
            fill(v, w, h, ch, rects, &[0u8]);
        }
        FrameData::U16(v) => {
            fill(v, w, h, ch, rects, &[0u16]);
        }
    }
}

/// Stored word that renders black for a grayscale/palette image.
fn black_word(dec: &Decoded) -> u32 {
    let (lo, hi) = dec.stored_range();
    let stored = match dec.model {
        Model::Rgb => return 0,
        Model::Palette => {
            // darkest palette entry
            let Some(l) = &dec.palette else { return 0 };
            let n = l.iter().map(|t| t.data.len()).min().unwrap_or(0);
            let best = (0..n)
                .min_by_key(|&i| l.iter().map(|t| t.data[i] as u32).sum::<u32>())
                .unwrap_or(0);
            l[0].first + best as i64
        }
        Model::Mono1 | Model::Mono2 => {
            let modal = |s: i64| -> f64 {
                if let Some(lut) = &dec.modality_lut {
                    lut.lookup(s as f64) as f64
                } else {
                    let p = dec.params(0);
                    s as f64 * p.slope + p.intercept
                }
            };
            let lo_is_darker = modal(lo) <= modal(hi);
            let mut want_low = lo_is_darker;
            if dec.model == Model::Mono1 || dec.presentation_inverse {
                want_low = !want_low;
            }
            if want_low {
                lo
            } else {
                hi
            }
        }
    };
    let bs = dec.bits_stored.clamp(1, 32) as u32;
    let mask: u64 = if bs >= 32 {
        u32::MAX as u64
    } else {
        (1u64 << bs) - 1
    };
    let shift = (dec.high_bit as u32 + 1).saturating_sub(bs);
    (((stored as u64) & mask) << shift) as u32
}

/// Blank (fill with black / minimum) the rectangles in every frame of the instance's Pixel Data and store it back
/// uncompressed (Explicit VR Little Endian; update the file meta transfer syntax, PhotometricInterpretation when colour
/// was converted e.g. YBR -> RGB, PlanarConfiguration, and clear LossyImageCompression only if appropriate — keep it "01" if the source was lossy).
///
/// Black is the stored value that renders darkest: the low or high end of
/// the stored range depending on MONOCHROME1/2, Presentation LUT Shape and
/// the sign of the rescale slope; 0 for RGB; the darkest palette entry for
/// PALETTE COLOR. Colour data is always written interleaved (PlanarConfiguration 0),
/// YBR data as RGB.
///
/// Returns the number of pixels blanked in each frame (a frame with 0 was not masked).
pub fn mask_instance(
    obj: &mut FileDicomObject<InMemDicomObject>,
    rects: &[Rect],
) -> Result<Vec<usize>, PixelError> {
    let mut dec = decode::decode(obj)?;
    let l = decode::layout(obj)?;
    let black = black_word(&dec);
    let (w, h, ch) = (dec.cols, dec.rows, dec.spp as usize);
    let flen = dec.frame_len();
    let frames = dec.frames as usize;
    let mut blanked = Vec::with_capacity(frames);
    match &mut dec.samples {
        Samples::U8(v) => {
            for f in 0..frames {
                blanked.push(fill(
                    &mut v[f * flen..(f + 1) * flen],
                    w,
                    h,
                    ch,
                    rects,
                    &[black as u8],
                ));
            }
        }
        Samples::U16(v) => {
            for f in 0..frames {
                blanked.push(fill(
                    &mut v[f * flen..(f + 1) * flen],
                    w,
                    h,
                    ch,
                    rects,
                    &[black as u16],
                ));
            }
        }
        Samples::U32(v) => {
            for f in 0..frames {
                blanked.push(fill(
                    &mut v[f * flen..(f + 1) * flen],
                    w,
                    h,
                    ch,
                    rects,
                    &[black],
                ));
            }
        }
    }

    let total = flen * frames;
    let element = match (&dec.samples, l.ba) {
        (Samples::U8(v), 1) => {
            // repack bits, least significant bit first, continuous over frames
            let mut bytes = vec![0u8; total.div_ceil(8)];
            for (i, b) in v[..total].iter().enumerate() {
                if *b & 1 == 1 {
                    bytes[i / 8] |= 1 << (i % 8);
                }
            }
            if bytes.len() % 2 == 1 {
                bytes.push(0);
            }
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::U8(C::from_vec(bytes)),
            )
        }
        (Samples::U8(v), _) => {
            let mut bytes = v[..total].to_vec();
            if bytes.len() % 2 == 1 {
                bytes.push(0);
            }
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::U8(C::from_vec(bytes)),
            )
        }
        (Samples::U16(v), _) => DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(v[..total].to_vec())),
        ),
        (Samples::U32(v), _) => {
            let words: Vec<u16> = v[..total]
                .iter()
                .flat_map(|x| [(*x & 0xffff) as u16, (*x >> 16) as u16])
                .collect();
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::U16(C::from_vec(words)),
            )
        }
    };
    obj.put(element);

    if dec.spp == 3 {
        if dec.color_converted {
            obj.put(DataElement::new(
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                PrimitiveValue::from("RGB"),
            ));
        }
        obj.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
    }
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    if dec.source_lossy {
        // the pixels went through lossy compression: keep that fact
        obj.put(DataElement::new(
            tags::LOSSY_IMAGE_COMPRESSION,
            VR::CS,
            PrimitiveValue::from("01"),
        ));
        if attrs::prim(obj, tags::LOSSY_IMAGE_COMPRESSION_METHOD).is_none() {
            let method = match ts.as_str() {
                "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" => Some("ISO_10918_1"),
                "1.2.840.10008.1.2.4.81" => Some("ISO_14495_1"),
                "1.2.840.10008.1.2.4.91" | "1.2.840.10008.1.2.4.93" => Some("ISO_15444_1"),
                _ => None,
            };
            if let Some(m) = method {
                obj.put(DataElement::new(
                    tags::LOSSY_IMAGE_COMPRESSION_METHOD,
                    VR::CS,
                    PrimitiveValue::from(m),
                ));
            }
        }
    }
    // A lossless source keeps whatever LossyImageCompression it had: "01"
    // records earlier lossy history and must not be cleared.
    obj.meta_mut().set_transfer_syntax(
        &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased(),
    );
    obj.meta_mut().update_information_group_length();
    Ok(blanked)
}

/// Ultrasound: regions from SequenceOfUltrasoundRegions (0018,6011) as Rects
/// (RegionLocationMinX0/MinY0/MaxX1/MaxY1, inclusive) — the caller blanks
/// everything outside them. Items with missing or inverted coordinates are skipped.
pub fn ultrasound_regions(obj: &FileDicomObject<InMemDicomObject>) -> Vec<Rect> {
    attrs::items(obj, tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .iter()
        .filter_map(|it| {
            let x0 = attrs::uint(it, tags::REGION_LOCATION_MIN_X0)?;
            let y0 = attrs::uint(it, tags::REGION_LOCATION_MIN_Y0)?;
            let x1 = attrs::uint(it, tags::REGION_LOCATION_MAX_X1)?;
            let y1 = attrs::uint(it, tags::REGION_LOCATION_MAX_Y1)?;
            if x1 < x0 || y1 < y0 {
                return None;
            }
            Some(Rect {
                x: x0,
                y: y0,
                width: x1 - x0 + 1,
                height: y1 - y0 + 1,
            })
        })
        .collect()
}

/// Rectangles covering every pixel of a `width` x `height` image that is not
/// inside any of `keep` (horizontal bands; vertically adjacent bands with
/// the same gaps are merged).
pub fn complement(width: u32, height: u32, keep: &[Rect]) -> Vec<Rect> {
    let clipped: Vec<(u32, u32, u32, u32)> = keep
        .iter()
        .filter_map(|r| {
            clip(r, width, height).map(|(a, b, c, d)| (a as u32, b as u32, c as u32, d as u32))
        })
        .collect();
    let mut ys: Vec<u32> = vec![0, height];
    for r in &clipped {
        ys.push(r.1);
        ys.push(r.3);
    }
    ys.sort_unstable();
    ys.dedup();
    let mut out: Vec<Rect> = Vec::new();
    let mut prev: Vec<(u32, u32)> = Vec::new();
    let mut prev_start: Vec<usize> = Vec::new();
    for band in ys.windows(2) {
        let (y0, y1) = (band[0], band[1]);
        if y1 <= y0 {
            continue;
        }
        let mut iv: Vec<(u32, u32)> = clipped
            .iter()
            .filter(|r| r.1 <= y0 && r.3 >= y1)
            .map(|r| (r.0, r.2))
            .collect();
        iv.sort_unstable();
        let mut gaps = Vec::new();
        let mut x = 0u32;
        for (a, b) in iv {
            if a > x {
                gaps.push((x, a));
            }
            x = x.max(b);
        }
        if x < width {
            gaps.push((x, width));
        }
        if gaps == prev {
            for &i in &prev_start {
                out[i].height += y1 - y0;
            }
        } else {
            prev_start.clear();
            for &(a, b) in &gaps {
                prev_start.push(out.len());
                out.push(Rect {
                    x: a,
                    y: y0,
                    width: b - a,
                    height: y1 - y0,
                });
            }
            prev = gaps;
        }
    }
    out
}
