//! Frame validation and gray/RGB -> YUV 4:2:0 (BT.601, limited range) conversion with
//! even-size padding.

use super::{Frame, FrameData, VideoError};

/// Input size and the even (padded) size used by 4:2:0 encoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub padded_width: u32,
    pub padded_height: u32,
}

impl Geometry {
    pub fn new(width: u32, height: u32) -> Self {
        Geometry {
            width,
            height,
            padded_width: width + (width & 1),
            padded_height: height + (height & 1),
        }
    }

    /// Like `new`, but also pads each dimension up to at least `min` (an even number), for
    /// encoders with a minimum picture size.
    pub fn with_min(self, min: u32) -> Self {
        Geometry {
            padded_width: self.padded_width.max(min),
            padded_height: self.padded_height.max(min),
            ..self
        }
    }

    /// Check a frame against this geometry; return its 8-bit samples and channel count.
    pub fn check<'a>(&self, frame: &'a Frame) -> Result<(&'a [u8], usize), VideoError> {
        let data = match &frame.data {
            FrameData::U8(d) => d.as_slice(),
            FrameData::U16(_) => return Err(VideoError::SixteenBit),
        };
        if frame.width != self.width || frame.height != self.height {
            return Err(VideoError::BadFrame(format!(
                "frame is {}x{} but the clip is {}x{}",
                frame.width, frame.height, self.width, self.height
            )));
        }
        let ch = frame.channels as usize;
        if ch != 1 && ch != 3 {
            return Err(VideoError::BadFrame(format!(
                "{} channels; only 1 (gray) or 3 (RGB) are supported",
                frame.channels
            )));
        }
        let need = self.width as usize * self.height as usize * ch;
        if data.len() != need {
            return Err(VideoError::BadFrame(format!(
                "{} samples for {}x{}x{}; expected {need}",
                data.len(),
                self.width,
                self.height,
                ch
            )));
        }
        Ok((data, ch))
    }
}

/// Planar YUV 4:2:0 buffers at the padded size.
#[derive(Clone, Debug)]
pub struct Yuv420 {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Yuv420 {
    pub fn new(geom: Geometry) -> Self {
        let w = geom.padded_width as usize;
        let h = geom.padded_height as usize;
        Yuv420 {
            width: w,
            height: h,
            y: vec![16; w * h],
            u: vec![128; (w / 2) * (h / 2)],
            v: vec![128; (w / 2) * (h / 2)],
        }
    }

    /// Planes concatenated as yuv420p raw video.
    pub fn write_raw(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.y)?;
        out.write_all(&self.u)?;
        out.write_all(&self.v)
    }

    /// Fill from 8-bit gray (`ch == 1`) or RGB (`ch == 3`) samples of size `sw` x `sh`.
    /// The padding column/row (if any) stays black (Y=16, U=V=128).
    pub fn fill(&mut self, data: &[u8], ch: usize, sw: usize, sh: usize) {
        let w = self.width;
        let cw = w / 2;
        if ch == 1 {
            for row in 0..sh {
                let src = &data[row * sw..row * sw + sw];
                let dst = &mut self.y[row * w..row * w + sw];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = gray_to_y(s);
                }
            }
            self.u.fill(128);
            self.v.fill(128);
            return;
        }
        for row in 0..sh {
            let src = &data[row * sw * 3..(row * sw + sw) * 3];
            let dst = &mut self.y[row * w..row * w + sw];
            for (d, px) in dst.iter_mut().zip(src.chunks_exact(3)) {
                *d = rgb_to_y(px[0] as i32, px[1] as i32, px[2] as i32);
            }
        }
        // Chroma: average each 2x2 block of the *unpadded* picture (pixels outside count as
        // black so the padded border matches what a decoder shows there).
        for cy in 0..self.height / 2 {
            for cx in 0..cw {
                let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
                for dy in 0..2 {
                    for dx in 0..2 {
                        let (x, y) = (cx * 2 + dx, cy * 2 + dy);
                        if x < sw && y < sh {
                            let i = (y * sw + x) * 3;
                            r += data[i] as i32;
                            g += data[i + 1] as i32;
                            b += data[i + 2] as i32;
                        }
                    }
                }
                let (u, v) = rgb_to_uv((r + 2) / 4, (g + 2) / 4, (b + 2) / 4);
                self.u[cy * cw + cx] = u;
                self.v[cy * cw + cx] = v;
            }
        }
    }
}

/// Full-range gray -> limited-range luma: 0 -> 16, 255 -> 235.
#[inline]
pub fn gray_to_y(g: u8) -> u8 {
    (16 + (219 * g as u32 + 127) / 255) as u8
}

/// BT.601 limited range, 8-bit fixed point (coefficients scaled by 256).
#[inline]
pub fn rgb_to_y(r: i32, g: i32, b: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16).clamp(16, 235) as u8
}

#[inline]
pub fn rgb_to_uv(r: i32, g: i32, b: i32) -> (u8, u8) {
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u.clamp(16, 240) as u8, v.clamp(16, 240) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_points() {
        assert_eq!(gray_to_y(0), 16);
        assert_eq!(gray_to_y(255), 235);
        assert_eq!(rgb_to_y(0, 0, 0), 16);
        assert_eq!(rgb_to_y(255, 255, 255), 235);
        assert_eq!(rgb_to_uv(128, 128, 128), (128, 128));
        assert_eq!(rgb_to_uv(0, 0, 255).0, 240);
        assert_eq!(rgb_to_uv(255, 0, 0).1, 240);
    }

    #[test]
    fn odd_size_pads_black() {
        let g = Geometry::new(3, 3);
        assert_eq!((g.padded_width, g.padded_height), (4, 4));
        let mut yuv = Yuv420::new(g);
        yuv.fill(&[255; 27], 3, 3, 3);
        assert_eq!(yuv.y[0], 235);
        assert_eq!(yuv.y[3], 16); // padding column
        assert_eq!(yuv.y[12], 16); // padding row
        assert_eq!(yuv.y.len(), 16);
        assert_eq!(yuv.u.len(), 4);
    }
}
