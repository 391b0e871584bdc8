//! Pixel pipeline: decode DICOM pixel data, render frames (modality LUT -> VOI ->
//! presentation), correct non-square pixels, blank rectangles, and encode stills.
//!
//! Self-contained: sibling modules are referenced with `super::`/`self::` only,
//! so this folder can be moved into another crate as `crate::pixels`.
//!
//! Flow: [`decode`] once per instance ([`Decoded`] keeps raw sample words of
//! all frames, colour already converted to RGB) -> [`render`] per frame
//! ([`WindowOptions`]) -> optional [`mask_frame`] -> [`encode`].
//! [`mask_instance`] rewrites the Pixel Data itself (Explicit VR Little Endian).
//!
//! Decoding support:
//! * native: implicit/explicit LE, explicit BE, deflated; 1/8/16/32 bits
//!   allocated, any bits stored/high bit, signed or unsigned; planar
//!   configuration 0 and 1; YBR_FULL and YBR_FULL_422 converted to RGB;
//! * RLE Lossless: own decoder (8/16/32-bit, 1 or 3 samples);
//! * JPEG baseline/extended (8-bit)/lossless via dicom-pixeldata (PI RGB
//!   baseline JPEGs are decoded without the YCbCr transform); 12-bit lossy
//!   JPEG (.4.51) is refused with [`PixelError::Jpeg12BitLossy`];
//! * JPEG 2000 (.4.90/.4.91) via the pure-Rust openjp2 port;
//! * JPEG-LS only with the cargo feature `charls` (needs cmake + C++).
//!
//! Rendering: Rescale Slope/Intercept (per-frame functional groups first) or
//! Modality LUT Sequence -> VOI (file window with LINEAR/LINEAR_EXACT/SIGMOID,
//! VOI LUT Sequence, preset, explicit, auto percentile, min/max) ->
//! MONOCHROME1 / Presentation LUT Shape INVERSE inversion. PALETTE COLOR
//! (normal, segmented, 8/16-bit tables) is applied here.

mod aspect;
mod attrs;
mod color;
mod decode;
mod encode;
mod mask;
mod window;

pub use self::decode::{decode, decode_with_limit, Decoded, DEFAULT_MAX_DECODED_BYTES};
pub use self::encode::{encode, ImageFormat};
pub use self::mask::{any_inside, complement, mask_frame, mask_instance, ultrasound_regions};
pub use self::window::{
    clip_window, render, ExplicitWindow, WindowName, WindowOptions, WindowSpec,
};

/// One rendered frame, ready to encode (the engine's frame type, shared with the video stages).
pub use dcmflow_engine::{Frame, FrameData};

/// A rectangle in pixel coordinates (x = column, y = row, origin top-left).
/// Parts outside the image are ignored wherever rectangles are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Errors of the pixel pipeline. Messages describe what is wrong with the
/// file or the request and never contain attribute values from the dataset
/// (only structural numbers such as sizes and UIDs of transfer syntaxes).
#[derive(Debug, thiserror::Error)]
pub enum PixelError {
    #[error("the instance has no Pixel Data (7FE0,0010)")]
    NoPixelData,
    #[error("required attribute {0} is missing")]
    MissingAttribute(&'static str),
    #[error("attribute {name} is invalid: {reason}")]
    InvalidAttribute { name: &'static str, reason: String },
    #[error("JPEG-LS ({0}) needs the `charls` feature, which is not enabled in this build")]
    JpegLsNeedsCharls(String),
    #[error("12-bit lossy JPEG (1.2.840.10008.1.2.4.51) is not supported by the decoder")]
    Jpeg12BitLossy,
    #[error("transfer syntax {uid} is not supported: {reason}")]
    UnsupportedTransferSyntax { uid: String, reason: String },
    #[error("photometric interpretation {0} is not supported")]
    UnsupportedPhotometric(String),
    #[error("Pixel Data shorter than Rows x Columns x frames needs ({needed} bytes needed, {found} present)")]
    Truncated { needed: usize, found: usize },
    #[error("frame {frame} is out of range (the instance has {count} frames)")]
    FrameOutOfRange { frame: u32, count: u32 },
    #[error("the decoded pixel data would take {needed_mib} MiB (Rows x Columns x SamplesPerPixel x NumberOfFrames x bytes per sample), over the limit of {limit_mib} MiB; refusing to decode it")]
    TooLarge { needed_mib: u128, limit_mib: u64 },
    #[error("pixel data could not be decoded: {0}")]
    Decode(String),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("image encoding failed: {0}")]
    Encode(String),
}

#[cfg(test)]
mod tests;
