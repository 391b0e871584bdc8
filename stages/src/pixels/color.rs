//! Colour helpers: YBR -> RGB conversion and PALETTE COLOR lookup tables
//! (normal and segmented, 8- and 16-bit).

use dicom_core::Tag;
use dicom_dictionary_std::tags;

use super::attrs::{self, Obj};
use super::decode::{Lut, Samples};
use super::PixelError;

fn ybr_pixel(y: f64, cb: f64, cr: f64, half: f64, max: f64) -> [f64; 3] {
    let r = y + 1.402 * (cr - half);
    let g = y - 0.344136 * (cb - half) - 0.714136 * (cr - half);
    let b = y + 1.772 * (cb - half);
    [
        r.round().clamp(0.0, max),
        g.round().clamp(0.0, max),
        b.round().clamp(0.0, max),
    ]
}

/// YBR_FULL (interleaved) -> RGB in place.
pub(super) fn ybr_full_to_rgb(s: &mut Samples, bits_stored: u16) {
    let bs = bits_stored.clamp(1, 31) as u32;
    let max = ((1u64 << bs) - 1) as f64;
    let half = (1u64 << (bs - 1)) as f64;
    macro_rules! conv {
        ($v:expr, $t:ty) => {
            for px in $v.chunks_exact_mut(3) {
                let o = ybr_pixel(px[0] as f64, px[1] as f64, px[2] as f64, half, max);
                px[0] = o[0] as $t;
                px[1] = o[1] as $t;
                px[2] = o[2] as $t;
            }
        };
    }
    match s {
        Samples::U8(v) => conv!(v, u8),
        Samples::U16(v) => conv!(v, u16),
        Samples::U32(v) => conv!(v, u32),
    }
}

/// Uncompressed 8-bit YBR_FULL_422 (Y1 Y2 Cb Cr per pixel pair) -> interleaved RGB.
pub(super) fn ybr422_to_rgb(
    bytes: &[u8],
    rows: u32,
    cols: u32,
    frames: u32,
) -> Result<Vec<u8>, PixelError> {
    if !cols.is_multiple_of(2) {
        return Err(PixelError::InvalidAttribute {
            name: "Columns",
            reason: "YBR_FULL_422 needs an even number of columns".into(),
        });
    }
    let pixels = rows as usize * cols as usize;
    let needed = pixels * 2 * frames as usize;
    if bytes.len() < needed {
        return Err(PixelError::Truncated {
            needed,
            found: bytes.len(),
        });
    }
    let mut out = Vec::with_capacity(pixels * 3 * frames as usize);
    for q in bytes[..needed].chunks_exact(4) {
        let (y1, y2, cb, cr) = (q[0] as f64, q[1] as f64, q[2] as f64, q[3] as f64);
        for y in [y1, y2] {
            let o = ybr_pixel(y, cb, cr, 128.0, 255.0);
            out.extend_from_slice(&[o[0] as u8, o[1] as u8, o[2] as u8]);
        }
    }
    Ok(out)
}

const RED: (Tag, Tag, Tag) = (
    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
);
const GREEN: (Tag, Tag, Tag) = (
    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
);
const BLUE: (Tag, Tag, Tag) = (
    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
);

/// Read the three palette LUTs. If a table claims 16-bit entries but all
/// entries of all three fit in 8 bits, it is treated as 8-bit.
pub(super) fn read_palette(obj: &Obj, signed: bool) -> Result<[Lut; 3], PixelError> {
    let mut luts = [
        read_channel(obj, RED, signed)?,
        read_channel(obj, GREEN, signed)?,
        read_channel(obj, BLUE, signed)?,
    ];
    if luts.iter().all(|l| l.bits > 8) && luts.iter().all(|l| l.max_value() <= 255) {
        for l in luts.iter_mut() {
            l.bits = 8;
        }
    }
    Ok(luts)
}

fn read_channel(obj: &Obj, t: (Tag, Tag, Tag), signed: bool) -> Result<Lut, PixelError> {
    let missing = PixelError::MissingAttribute("Palette Color Lookup Table Descriptor/Data");
    let (n, first, bits) = attrs::lut_descriptor(obj, t.0, signed).ok_or(missing)?;
    let data = if let Some(words) = attrs::lut_words(obj, t.1) {
        let mut d = words;
        if bits <= 8 && d.len() * 2 == n {
            d = d.iter().flat_map(|w| [(*w & 0xff), (*w >> 8)]).collect();
        }
        d
    } else if let Some(seg) = attrs::lut_words(obj, t.2) {
        expand_segmented(&seg, n)
    } else {
        return Err(PixelError::MissingAttribute(
            "Palette Color Lookup Table Data",
        ));
    };
    if data.is_empty() {
        return Err(PixelError::InvalidAttribute {
            name: "Palette Color Lookup Table Data",
            reason: "empty".into(),
        });
    }
    let mut data = data;
    data.truncate(n);
    Ok(Lut { first, bits, data })
}

/// Expand Segmented Palette Color LUT Data (PS3.3 C.7.9.2): discrete (0),
/// linear (1) and indirect (2) segments. Output is limited to `max_len` entries.
pub(super) fn expand_segmented(seg: &[u16], max_len: usize) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    expand_range(seg, 0, seg.len(), max_len, &mut out, true);
    out
}

fn expand_range(
    seg: &[u16],
    mut i: usize,
    end: usize,
    max_len: usize,
    out: &mut Vec<u16>,
    allow_indirect: bool,
) {
    let end = end.min(seg.len());
    let mut segments_left = usize::MAX;
    expand_inner(
        seg,
        &mut i,
        end,
        max_len,
        out,
        allow_indirect,
        &mut segments_left,
    );
}

fn expand_inner(
    seg: &[u16],
    i: &mut usize,
    end: usize,
    max_len: usize,
    out: &mut Vec<u16>,
    allow_indirect: bool,
    segments_left: &mut usize,
) {
    while *i + 1 < end && *segments_left > 0 && out.len() < max_len {
        *segments_left -= 1;
        let op = seg[*i];
        let n = seg[*i + 1] as usize;
        *i += 2;
        match op {
            0 => {
                let stop = (*i + n).min(end);
                out.extend_from_slice(&seg[*i..stop]);
                *i = stop;
            }
            1 => {
                let Some(&y1) = seg.get(*i) else { return };
                *i += 1;
                let y0 = out.last().copied().unwrap_or(y1) as f64;
                for k in 1..=n {
                    let v = y0 + (y1 as f64 - y0) * k as f64 / n as f64;
                    out.push(v.round() as u16);
                }
            }
            2 if allow_indirect => {
                if *i + 1 >= end {
                    return;
                }
                let off = seg[*i] as usize | ((seg[*i + 1] as usize) << 16);
                *i += 2;
                let mut j = off;
                let mut left = n;
                expand_inner(seg, &mut j, seg.len(), max_len, out, false, &mut left);
            }
            _ => return,
        }
    }
    out.truncate(max_len);
}
