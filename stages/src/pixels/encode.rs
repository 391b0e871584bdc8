//! Still-image encoding (JPEG/PNG/TIFF) without any metadata.

use std::io::Cursor;

use image::{ExtendedColorType, ImageEncoder};

use super::{Frame, FrameData, PixelError};

/// Output still format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// Baseline JPEG, 8 bits per channel; quality 1..=100. 16-bit frames are
    /// reduced to 8 bits (high byte) first.
    Jpeg { quality: u8 },
    /// PNG; 16-bit frames are written as 16-bit PNG.
    Png,
    /// Uncompressed baseline TIFF; 16-bit frames are written as 16-bit TIFF.
    Tiff,
}

/// Encoded bytes with NO metadata (no EXIF, no text chunks). PNG/TIFF write
/// 16-bit frames as 16-bit; JPEG reduces 16-bit frames to 8-bit (v >> 8).
/// The JPEG stream carries only the JFIF APP0 header written by the encoder.
pub fn encode(frame: &Frame, format: &ImageFormat) -> Result<Vec<u8>, PixelError> {
    let (w, h) = (frame.width, frame.height);
    let n = w as usize * h as usize * frame.channels as usize;
    if w == 0 || h == 0 || frame.data.len() != n {
        return Err(PixelError::Encode(
            "frame size does not match its sample count".into(),
        ));
    }
    let ct = match (frame.channels, &frame.data) {
        (1, FrameData::U8(_)) => ExtendedColorType::L8,
        (3, FrameData::U8(_)) => ExtendedColorType::Rgb8,
        (1, FrameData::U16(_)) => ExtendedColorType::L16,
        (3, FrameData::U16(_)) => ExtendedColorType::Rgb16,
        _ => {
            return Err(PixelError::Encode(
                "only 1 or 3 channels can be encoded".into(),
            ))
        }
    };
    let enc_err = |e: image::ImageError| PixelError::Encode(e.to_string());
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg { quality } => {
            if !(1..=100).contains(quality) {
                return Err(PixelError::InvalidOption(
                    "JPEG quality must be 1..=100".into(),
                ));
            }
            let (bytes, ct8) = match &frame.data {
                FrameData::U8(v) => (v.clone(), ct),
                FrameData::U16(v) => (
                    v.iter().map(|x| (x >> 8) as u8).collect(),
                    if frame.channels == 1 {
                        ExtendedColorType::L8
                    } else {
                        ExtendedColorType::Rgb8
                    },
                ),
            };
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, *quality)
                .write_image(&bytes, w, h, ct8)
                .map_err(enc_err)?;
        }
        ImageFormat::Png => {
            let bytes = ne_bytes(&frame.data);
            image::codecs::png::PngEncoder::new(&mut out)
                .write_image(&bytes, w, h, ct)
                .map_err(enc_err)?;
        }
        ImageFormat::Tiff => {
            let bytes = ne_bytes(&frame.data);
            let mut cur = Cursor::new(&mut out);
            image::codecs::tiff::TiffEncoder::new(&mut cur)
                .write_image(&bytes, w, h, ct)
                .map_err(enc_err)?;
        }
    }
    Ok(out)
}

/// The `image` encoders take 16-bit samples as native-endian bytes.
fn ne_bytes(d: &FrameData) -> Vec<u8> {
    match d {
        FrameData::U8(v) => v.clone(),
        FrameData::U16(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
    }
}
