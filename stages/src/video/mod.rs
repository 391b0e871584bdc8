//! Video encoding for dcmflow: DICOM cine clips / CT series -> MP4 (H.264), GIF, WebM (AV1),
//! plus ffmpeg-backed HEVC / x264 / VP9.
//!
//! Frames are pushed one at a time into a [`VideoEncoder`]; raw frames are never accumulated.
//! Containers that need sizes up front (MP4 with `moov` before `mdat`, WebM with known sizes)
//! keep only the *encoded* (compressed) samples in memory until [`VideoEncoder::finish`].
//!
//! Odd widths/heights are padded to the next even number with black on the right/bottom
//! (4:2:0 chroma needs even dimensions); every frame of a clip gets the same padding.
//! The built-in MP4/H.264 and WebM/AV1 encoders and ffmpeg's x265 also need at least 16
//! pixels per dimension, so smaller pictures are padded (black, right/bottom) up to 16 there.
//! GIF is never padded.
//! Outputs carry no title, comment or creation/modification date.

mod convert;
pub mod ffmpeg;
#[cfg(feature = "gif")]
mod gif;
#[cfg(feature = "h264")]
mod h264;
#[cfg(feature = "h264")]
mod mp4;
pub mod rate;
#[cfg(feature = "av1")]
mod webm;

use std::path::Path;

pub use rate::{fps_rational, frame_rate, FrameRate};

/// Frames come as the engine's frame type, shared with the pixel stages.
pub use dcmflow_engine::{Frame, FrameData};

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
pub enum VideoFormat {
    /// MP4 with H.264 (yuv420p) from the built-in OpenH264 encoder. Default.
    #[default]
    #[serde(rename = "mp4")]
    Mp4,
    /// Animated GIF, one global palette per clip, loops forever.
    #[serde(rename = "gif")]
    Gif,
    /// WebM with AV1 from the built-in rav1e encoder.
    #[serde(rename = "webm")]
    Webm,
    /// MP4 with HEVC (libx265) via the external `ffmpeg` program.
    #[serde(rename = "hevc")]
    Hevc,
    /// MP4 with H.264 from libx264 via the external `ffmpeg` program.
    #[serde(rename = "mp4_x264")]
    Mp4X264,
    /// WebM with VP9 from libvpx-vp9 via the external `ffmpeg` program.
    #[serde(rename = "webm_vp9")]
    WebmVp9,
}

impl VideoFormat {
    /// Name as written in options.
    pub fn name(self) -> &'static str {
        match self {
            VideoFormat::Mp4 => "mp4",
            VideoFormat::Gif => "gif",
            VideoFormat::Webm => "webm",
            VideoFormat::Hevc => "hevc",
            VideoFormat::Mp4X264 => "mp4_x264",
            VideoFormat::WebmVp9 => "webm_vp9",
        }
    }

    /// Usual file extension of the output.
    pub fn extension(self) -> &'static str {
        match self {
            VideoFormat::Mp4 | VideoFormat::Hevc | VideoFormat::Mp4X264 => "mp4",
            VideoFormat::Gif => "gif",
            VideoFormat::Webm | VideoFormat::WebmVp9 => "webm",
        }
    }
}

/// Options for video output.
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VideoOptions {
    /// Output format: `mp4` (H.264, built in, default), `gif` (built in), `webm` (AV1, built in),
    /// `hevc` (MP4/HEVC via the `ffmpeg` program), `mp4_x264` (MP4/H.264 via ffmpeg's libx264),
    /// `webm_vp9` (WebM/VP9 via ffmpeg's libvpx-vp9).
    pub format: VideoFormat,
    /// Quality 1..=100 (default 75); higher is better and larger. Mapping, with q = quality:
    /// mp4 (OpenH264) constant QP = round(45 − 35·(q−1)/99) (q=75 → 19, 100 → 10, 1 → 45);
    /// mp4_x264 CRF = same value; hevc (x265) CRF = that value + 4 (q=75 → 23);
    /// webm_vp9 CRF = round(55 − 45·(q−1)/99) (q=75 → 21) with unconstrained bitrate;
    /// webm (rav1e) quantizer = round(230 − 200·(q−1)/99) (q=75 → 81, range 0..255);
    /// gif: grayscale clips use an exact 256-level palette (quality unused); RGB clips use
    /// NeuQuant with sample factor round(1 + 29·(100−q)/99) (q=100 → 1 = slowest/best).
    pub quality: u8,
    /// Frames per second to use instead of the rate derived from the DICOM header
    /// (must be > 0 and <= 1000). Default: none (use the header; see [`frame_rate`]).
    pub fps: Option<f64>,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            format: VideoFormat::Mp4,
            quality: 75,
            fps: None,
        }
    }
}

/// Errors from the video module.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("no usable frame rate in the DICOM header{}; pass an fps override", fmt_notes(.notes))]
    NoFrameRate { notes: Vec<String> },
    #[error("invalid video option: {0}")]
    InvalidOption(String),
    #[error("video frames must be 8-bit; got 16-bit samples (apply window/level to 8 bits first)")]
    SixteenBit,
    #[error("unsupported frame: {0}")]
    BadFrame(String),
    #[error("format {format} needs the `{program}` program on PATH; it was not found")]
    ProgramNotFound {
        format: &'static str,
        program: String,
    },
    #[error("format {format} is not built into this dcmflow (cargo feature `{feature}` is off)")]
    NotBuiltIn {
        format: &'static str,
        feature: &'static str,
    },
    #[error("{program} failed: {message}")]
    External { program: String, message: String },
    #[error("encoder error: {0}")]
    Encoder(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

fn fmt_notes(notes: &[String]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

/// Streaming encoder. Push frames in display order, then call `finish`.
pub trait VideoEncoder: Send {
    /// Encode one frame. Every frame must have the size and channel count given at creation.
    fn push(&mut self, frame: &Frame) -> Result<(), VideoError>;
    /// Flush the encoder and return the complete container file.
    fn finish(self: Box<Self>) -> Result<Vec<u8>, VideoError>;
    /// Like `finish`, writing the container to `out` instead; returns the number of bytes.
    fn finish_to(self: Box<Self>, out: &mut dyn std::io::Write) -> Result<u64, VideoError> {
        let bytes = self.finish()?;
        out.write_all(&bytes)?;
        out.flush()?;
        Ok(bytes.len() as u64)
    }
}

/// Create an encoder for `width` x `height` frames at `fps` (see [`frame_rate`]).
/// Options `fps` is not applied here: pass it to [`frame_rate`] as the override.
pub fn encoder(
    opts: &VideoOptions,
    width: u32,
    height: u32,
    fps: f64,
) -> Result<Box<dyn VideoEncoder>, VideoError> {
    encoder_with_ffmpeg_program(opts, width, height, fps, None)
}

/// [`encoder`] with an explicit path for the `ffmpeg` program (used by the ffmpeg-backed
/// formats only). `None` means `ffmpeg` looked up on PATH.
pub fn encoder_with_ffmpeg_program(
    opts: &VideoOptions,
    width: u32,
    height: u32,
    fps: f64,
    ffmpeg_program: Option<&Path>,
) -> Result<Box<dyn VideoEncoder>, VideoError> {
    if !(1..=100).contains(&opts.quality) {
        return Err(VideoError::InvalidOption(format!(
            "quality {} is outside 1..=100",
            opts.quality
        )));
    }
    if !(fps.is_finite() && fps > 0.0 && fps <= rate::MAX_FPS) {
        return Err(VideoError::InvalidOption(format!(
            "fps {fps} is not usable"
        )));
    }
    if width == 0 || height == 0 {
        return Err(VideoError::InvalidOption(format!(
            "frame size {width}x{height} is empty"
        )));
    }
    if width > 16384 || height > 16384 {
        return Err(VideoError::InvalidOption(format!(
            "frame size {width}x{height} is too large"
        )));
    }
    let geom = convert::Geometry::new(width, height);
    match opts.format {
        VideoFormat::Mp4 => {
            #[cfg(feature = "h264")]
            {
                Ok(Box::new(h264::Mp4H264Encoder::new(
                    geom,
                    fps,
                    opts.quality,
                )?))
            }
            #[cfg(not(feature = "h264"))]
            {
                Err(VideoError::NotBuiltIn {
                    format: "mp4",
                    feature: "h264",
                })
            }
        }
        VideoFormat::Gif => {
            #[cfg(feature = "gif")]
            {
                Ok(Box::new(gif::GifEncoder::new(geom, fps, opts.quality)?))
            }
            #[cfg(not(feature = "gif"))]
            {
                Err(VideoError::NotBuiltIn {
                    format: "gif",
                    feature: "gif",
                })
            }
        }
        VideoFormat::Webm => {
            #[cfg(feature = "av1")]
            {
                Ok(Box::new(webm::WebmAv1Encoder::new(
                    geom,
                    fps,
                    opts.quality,
                )?))
            }
            #[cfg(not(feature = "av1"))]
            {
                Err(VideoError::NotBuiltIn {
                    format: "webm",
                    feature: "av1",
                })
            }
        }
        VideoFormat::Hevc | VideoFormat::Mp4X264 | VideoFormat::WebmVp9 => Ok(Box::new(
            ffmpeg::FfmpegEncoder::spawn(opts.format, geom, fps, opts.quality, ffmpeg_program)?,
        )),
    }
}

/// Linear map of quality 1..=100 onto `[at_q1, at_q100]`, rounded.
pub(super) fn quality_map(quality: u8, at_q1: f64, at_q100: f64) -> i64 {
    let q = quality.clamp(1, 100) as f64;
    (at_q1 + (at_q100 - at_q1) * (q - 1.0) / 99.0).round() as i64
}

#[cfg(test)]
mod tests;
