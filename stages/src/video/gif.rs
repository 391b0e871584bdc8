//! Built-in animated GIF encoder (pure Rust `gif` crate), one global palette per clip,
//! loops forever.
//!
//! Palette: grayscale clips use the exact 256-level gray palette (lossless for 8-bit gray).
//! RGB clips get a 256-colour palette trained (NeuQuant) on the first frame plus a gray ramp
//! and a coarse 6x6x6 colour cube, so colours that only appear later still map sensibly;
//! the palette is fixed for the clip (no per-frame palettes, so no flicker), and it can be
//! chosen without holding frames in memory. All frames of a clip must have the channel count
//! of the first frame.
//!
//! Timing: GIF delays are whole centiseconds. Frame i is shown at round(100·i/fps) cs and its
//! delay is the difference to the next frame's time, so delays alternate (e.g. 18 fps gives
//! 6,5,6,5,… cs) and the total duration is exact to 1 cs. Delays are at least 2 cs
//! because browsers slow down anything shorter, so clips faster than 50 fps play at 50 fps.

use std::borrow::Cow;

use color_quant::NeuQuant;

use super::convert::Geometry;
use super::{quality_map, Frame, VideoEncoder, VideoError};

enum Palette {
    Gray,
    Rgb {
        nq: NeuQuant,
        cache: Vec<u8>,
        known: Vec<u64>,
    },
}

pub struct GifEncoder {
    geom: Geometry,
    fps: f64,
    samplefac: i32,
    enc: Option<gif::Encoder<Vec<u8>>>,
    palette: Option<Palette>,
    channels: usize,
    index: u64,
    indices: Vec<u8>,
}

impl GifEncoder {
    pub fn new(geom: Geometry, fps: f64, quality: u8) -> Result<Self, VideoError> {
        if geom.width > u16::MAX as u32 || geom.height > u16::MAX as u32 {
            return Err(VideoError::InvalidOption(format!(
                "{}x{} is too large for GIF (max 65535x65535)",
                geom.width, geom.height
            )));
        }
        Ok(GifEncoder {
            geom,
            fps,
            samplefac: quality_map(quality, 30.0, 1.0).clamp(1, 30) as i32,
            enc: None,
            palette: None,
            channels: 0,
            index: 0,
            indices: Vec::new(),
        })
    }

    /// Delay of frame `i` in centiseconds (see module docs).
    pub fn delay_cs(fps: f64, i: u64) -> u16 {
        let t = |k: u64| (k as f64 * 100.0 / fps).round();
        (t(i + 1) - t(i)).clamp(2.0, u16::MAX as f64) as u16
    }

    fn start(&mut self, data: &[u8], ch: usize) -> Result<(), VideoError> {
        let (palette, table) = if ch == 1 {
            let table: Vec<u8> = (0..=255u8).flat_map(|g| [g, g, g]).collect();
            (Palette::Gray, table)
        } else {
            // Training data: first frame + gray ramp + colour cube (RGBA for NeuQuant).
            let mut train: Vec<u8> = Vec::with_capacity(data.len() / 3 * 4 + 4096);
            for px in data.chunks_exact(3) {
                train.extend_from_slice(&[px[0], px[1], px[2], 255]);
            }
            let extra_weight = (data.len() / 3 / 2048).max(1);
            for _ in 0..extra_weight {
                for g in (0..=255u8).step_by(4) {
                    train.extend_from_slice(&[g, g, g, 255]);
                }
                for r in 0..6u8 {
                    for g in 0..6u8 {
                        for b in 0..6u8 {
                            train.extend_from_slice(&[r * 51, g * 51, b * 51, 255]);
                        }
                    }
                }
            }
            let nq = NeuQuant::new(self.samplefac, 256, &train);
            let table = nq.color_map_rgb();
            (
                Palette::Rgb {
                    nq,
                    cache: vec![0; 1 << 24],
                    known: vec![0; (1 << 24) / 64],
                },
                table,
            )
        };
        let mut enc = gif::Encoder::new(
            Vec::new(),
            self.geom.width as u16,
            self.geom.height as u16,
            &table,
        )
        .map_err(|e| VideoError::Encoder(format!("gif: {e}")))?;
        enc.set_repeat(gif::Repeat::Infinite)
            .map_err(|e| VideoError::Encoder(format!("gif: {e}")))?;
        self.enc = Some(enc);
        self.palette = Some(palette);
        self.channels = ch;
        Ok(())
    }
}

impl VideoEncoder for GifEncoder {
    fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        let (data, ch) = self.geom.check(frame)?;
        if self.enc.is_none() {
            self.start(data, ch)?;
        } else if ch != self.channels {
            return Err(VideoError::BadFrame(format!(
                "frame has {ch} channels but the clip started with {}",
                self.channels
            )));
        }
        let indices: Cow<[u8]> = match self.palette.as_mut().expect("started") {
            Palette::Gray => Cow::Borrowed(data),
            Palette::Rgb { nq, cache, known } => {
                self.indices.clear();
                for px in data.chunks_exact(3) {
                    let key = (px[0] as usize) << 16 | (px[1] as usize) << 8 | px[2] as usize;
                    let (word, bit) = (key / 64, 1u64 << (key % 64));
                    if known[word] & bit == 0 {
                        cache[key] = nq.index_of(&[px[0], px[1], px[2], 255]) as u8;
                        known[word] |= bit;
                    }
                    self.indices.push(cache[key]);
                }
                Cow::Borrowed(&self.indices[..])
            }
        };
        let gf = gif::Frame {
            width: self.geom.width as u16,
            height: self.geom.height as u16,
            delay: Self::delay_cs(self.fps, self.index),
            buffer: indices,
            ..Default::default()
        };
        self.enc
            .as_mut()
            .expect("started")
            .write_frame(&gf)
            .map_err(|e| VideoError::Encoder(format!("gif: {e}")))?;
        self.index += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, VideoError> {
        let enc = self
            .enc
            .take()
            .ok_or_else(|| VideoError::BadFrame("no frames were pushed".into()))?;
        enc.into_inner()
            .map_err(|e| VideoError::Encoder(format!("gif: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_track_exact_time() {
        let d: Vec<u16> = (0..6).map(|i| GifEncoder::delay_cs(18.0, i)).collect();
        assert_eq!(d, vec![6, 5, 6, 5, 6, 5]);
        let total: u32 = (0..18).map(|i| GifEncoder::delay_cs(18.0, i) as u32).sum();
        assert_eq!(total, 100);
        assert_eq!(GifEncoder::delay_cs(10.0, 3), 10);
        assert_eq!(GifEncoder::delay_cs(100.0, 0), 2);
    }
}
