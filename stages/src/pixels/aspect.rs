//! Non-square pixel correction: stretch the axis with the larger spacing
//! (bilinear interpolation) so that one output pixel is square. Skipped for
//! ratios within 0.1 % of 1, stretches above 8x, or results above 2^28 samples.

use super::{Frame, FrameData};

/// Largest stretch factor applied; beyond it the spacing is taken as bogus.
const MAX_STRETCH: f64 = 8.0;

/// `row_spacing` is the distance between rows (vertical size of a pixel),
/// `col_spacing` the distance between columns (horizontal size).
pub(super) fn correct(frame: Frame, row_spacing: f64, col_spacing: f64) -> Frame {
    let valid = |v: f64| v.is_finite() && v > 0.0;
    if !valid(row_spacing) || !valid(col_spacing) {
        return frame;
    }
    let ratio = row_spacing / col_spacing;
    if (ratio - 1.0).abs() < 1e-3 || !(1.0 / MAX_STRETCH..=MAX_STRETCH).contains(&ratio) {
        return frame;
    }
    let (w, h) = (frame.width, frame.height);
    let (nw, nh) = if ratio > 1.0 {
        (w, ((h as f64) * ratio).round().max(1.0) as u32)
    } else {
        (((w as f64) / ratio).round().max(1.0) as u32, h)
    };
    if nw as u64 * nh as u64 * frame.channels as u64 > MAX_OUTPUT_SAMPLES {
        return frame;
    }
    resize_bilinear(&frame, nw, nh)
}

/// Aspect correction is skipped when the result would exceed this many samples.
const MAX_OUTPUT_SAMPLES: u64 = 1 << 28;

/// Bilinear resize (pixel centres aligned), any channel count and depth.
pub(super) fn resize_bilinear(frame: &Frame, nw: u32, nh: u32) -> Frame {
    let (w, h, ch) = (
        frame.width as usize,
        frame.height as usize,
        frame.channels as usize,
    );
    let (nw_, nh_) = (nw as usize, nh as usize);
    if w == 0 || h == 0 || ch == 0 || frame.data.len() < w * h * ch {
        return frame.clone();
    }
    let get = |i: usize| -> f64 {
        match &frame.data {
            FrameData::U8(v) => v[i] as f64,
            FrameData::U16(v) => v[i] as f64,
        }
    };
    let axis = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f64)> {
        (0..n_out)
            .map(|o| {
                let s = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5)
                    .clamp(0.0, (n_in - 1) as f64);
                let i0 = s.floor() as usize;
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, s - i0 as f64)
            })
            .collect()
    };
    let xs = axis(nw_, w);
    let ys = axis(nh_, h);
    let mut out = Vec::with_capacity(nw_ * nh_ * ch);
    for &(y0, y1, fy) in &ys {
        for &(x0, x1, fx) in &xs {
            for c in 0..ch {
                let p = |x: usize, y: usize| get((y * w + x) * ch + c);
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                out.push((top * (1.0 - fy) + bot * fy).round());
            }
        }
    }
    let data = match &frame.data {
        FrameData::U8(_) => {
            FrameData::U8(out.into_iter().map(|v| v.clamp(0.0, 255.0) as u8).collect())
        }
        FrameData::U16(_) => FrameData::U16(
            out.into_iter()
                .map(|v| v.clamp(0.0, 65535.0) as u16)
                .collect(),
        ),
    };
    Frame {
        width: nw,
        height: nh,
        channels: frame.channels,
        data,
    }
}
