//! `encode_image`, a sink: writes each rendered frame as JPEG, PNG or TIFF (one file per frame
//! for multi-frame input), with no metadata in the file (no EXIF, no text chunks).

use std::sync::Arc;

use dcmflow_engine::{
    BuildContext, Item, ItemError, ItemKind, ItemWorker, Payload, Runtime, StageConfig,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::path_template::PathTemplate;
use crate::pixels::{encode, ImageFormat};
use crate::write_dicom::{IfExists, Output};

/// Image file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StillFormat {
    /// Baseline JPEG, 8 bits (default).
    #[default]
    Jpeg,
    /// PNG, 8 or 16 bits as rendered, lossless.
    Png,
    /// TIFF, 8 or 16 bits as rendered, uncompressed (lossless).
    Tiff,
}

impl StillFormat {
    fn ext(self) -> &'static str {
        match self {
            StillFormat::Jpeg => "jpg",
            StillFormat::Png => "png",
            StillFormat::Tiff => "tiff",
        }
    }
}

/// Write rendered frames as JPEG, PNG or TIFF files (one per frame) that carry no DICOM
/// metadata.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncodeImageConfig {
    /// jpeg (default), png or tiff.
    #[serde(default)]
    pub format: StillFormat,
    /// JPEG quality 1..100. Default: 95.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Output path relative to the output folder: attribute keywords in braces as for
    /// write_dicom, plus `{frame}` (1-based, 4 digits) and `{ext}`. Default:
    /// `{StudyInstanceUID|no-study}/{SeriesInstanceUID|no-series}/{SOPInstanceUID}-{frame}.{ext}`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Policy when the path is taken: error (default), overwrite, skip or suffix.
    #[serde(default)]
    pub if_exists: IfExists,
    /// Refuse frames of instances that no deidentify stage processed. Default: true.
    #[serde(default = "yes")]
    pub require_deidentified: bool,
}

fn default_quality() -> u8 {
    95
}
fn default_path() -> String {
    "{StudyInstanceUID|no-study}/{SeriesInstanceUID|no-series}/{SOPInstanceUID}-{frame}.{ext}"
        .into()
}
fn yes() -> bool {
    true
}

impl StageConfig for EncodeImageConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Frames]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Output
    }
    fn check(&self) -> Vec<String> {
        let mut out: Vec<String> = PathTemplate::parse(&self.path, &["frame", "ext"])
            .err()
            .into_iter()
            .collect();
        if !(1..=100).contains(&self.quality) {
            out.push(format!("quality must be 1..100, not {}", self.quality));
        }
        out
    }
    fn explain(&self) -> String {
        format!(
            "Frames were written as {} files{} without metadata.",
            self.format.ext().to_uppercase(),
            if self.format == StillFormat::Jpeg {
                format!(" (quality {})", self.quality)
            } else {
                String::new()
            }
        )
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        let inputs = ctx
            .inputs
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        Ok(Runtime::PerItem(Arc::new(EncodeImage {
            format: match self.format {
                StillFormat::Jpeg => ImageFormat::Jpeg {
                    quality: self.quality,
                },
                StillFormat::Png => ImageFormat::Png,
                StillFormat::Tiff => ImageFormat::Tiff,
            },
            ext: self.format.ext(),
            template: PathTemplate::parse(&self.path, &["frame", "ext"])?,
            if_exists: self.if_exists,
            require_deidentified: self.require_deidentified,
            out: Output::new(&ctx.output_dir, inputs, ctx.dry_run)?.journaled(ctx),
        })))
    }
}

/// The runtime of `encode_image`.
pub struct EncodeImage {
    format: ImageFormat,
    ext: &'static str,
    template: PathTemplate,
    if_exists: IfExists,
    require_deidentified: bool,
    out: Output,
}

/// The refusal for outputs of instances the recipe did not de-identify.
pub fn not_deidentified() -> ItemError {
    ItemError::quarantine(
        "the instance was not de-identified by this recipe; add a deidentify stage before export \
         (or set require_deidentified: false for internal use)",
    )
}

impl ItemWorker for EncodeImage {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let Payload::Frames(frames) = &item.payload else {
            return Err(ItemError::failed("encode_image takes rendered frames"));
        };
        if self.require_deidentified && frames.instance.deidentified_by.is_empty() {
            return Err(not_deidentified());
        }
        let mut written = Vec::with_capacity(frames.frames.len());
        for (i, frame) in frames.frames.iter().enumerate() {
            let bytes = encode(frame, &self.format)
                .map_err(|e| ItemError::failed(format!("frame {}: {e}", i + 1)))?;
            let extras = [
                ("frame", format!("{:04}", i + 1)),
                ("ext", self.ext.to_string()),
            ];
            let rel = self
                .template
                .render_with_meta(
                    &frames.instance.obj,
                    Some(frames.instance.obj.meta()),
                    &extras,
                )
                .map_err(ItemError::failed)?;
            let path = self.out.write(&rel, self.if_exists, |w| {
                std::io::Write::write_all(w, &bytes)
            })?;
            written.push(item.with(Payload::Output(path)));
        }
        Ok(written)
    }
}
