//! `encode_video`, a sink: turns the frames of a cine instance, or the slices of a sorted
//! series, into one clip (MP4/H.264, GIF and WebM/AV1 built in; HEVC, libx264 and VP9 through
//! the `ffmpeg` program). Frames stream into the encoder: a series is decoded one slice at a
//! time. The frame rate comes from the header (or `fps`), never from a silent default.

use std::sync::Arc;

use dcmflow_engine::{
    BuildContext, Frame, Instance, Item, ItemError, ItemKind, ItemWorker, Payload, Runtime,
    StageConfig,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::encode_image::not_deidentified;
use crate::path_template::PathTemplate;
use crate::pixels::{decode, render, WindowOptions};
use crate::video::{encoder, VideoEncoder, VideoFormat, VideoOptions};
use crate::write_dicom::{IfExists, Output};

/// Encode the frames of a cine instance, or the slices of a sorted series, into one video clip
/// with no metadata in the container (no title, comment or creation time).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncodeVideoConfig {
    /// mp4 (H.264, built in; default), gif, webm (AV1, built in), hevc, mp4_x264 or webm_vp9
    /// (the last three need the `ffmpeg` program on PATH).
    #[serde(default)]
    pub format: VideoFormat,
    /// Quality 1..100 (default 75), mapped to each encoder's own scale.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Frames per second. For cine instances it overrides the header (RecommendedDisplayFrameRate,
    /// CineRate, FrameTime, FrameTimeVector, in that order); series videos need it. Default: none.
    #[serde(default)]
    pub fps: Option<f64>,
    /// How series slices are rendered (same settings as apply_window). Default: the file's
    /// window, 8 bits, true aspect ratio.
    #[serde(default)]
    pub render: WindowOptions,
    /// Output path relative to the output folder; attribute keywords of the (first) instance in
    /// braces, plus `{ext}`. Default:
    /// `{StudyInstanceUID|no-study}/{SeriesInstanceUID|no-series}/{SOPInstanceUID}.{ext}`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Policy when the path is taken: error (default), overwrite, skip or suffix.
    #[serde(default)]
    pub if_exists: IfExists,
    /// Refuse instances that no deidentify stage processed. Default: true.
    #[serde(default = "yes")]
    pub require_deidentified: bool,
}

fn default_quality() -> u8 {
    75
}
fn default_path() -> String {
    "{StudyInstanceUID|no-study}/{SeriesInstanceUID|no-series}/{SOPInstanceUID}.{ext}".into()
}
fn yes() -> bool {
    true
}

fn ext(f: VideoFormat) -> &'static str {
    match f {
        VideoFormat::Gif => "gif",
        VideoFormat::Webm | VideoFormat::WebmVp9 => "webm",
        _ => "mp4",
    }
}

impl StageConfig for EncodeVideoConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Frames, ItemKind::Series]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Output
    }
    fn needs_pixels(&self) -> bool {
        true
    }
    fn check(&self) -> Vec<String> {
        let mut out: Vec<String> = PathTemplate::parse(&self.path, &["ext"])
            .err()
            .into_iter()
            .collect();
        if !(1..=100).contains(&self.quality) {
            out.push(format!("quality must be 1..100, not {}", self.quality));
        }
        if let Some(f) = self.fps {
            if !(f > 0.0 && f <= 1000.0) {
                out.push(format!("fps must be above 0 and at most 1000, not {f}"));
            }
        }
        out.extend(StageConfig::check(&self.render));
        out
    }
    fn explain(&self) -> String {
        format!(
            "Clips were encoded as {:?} (quality {}) at {}.",
            self.format,
            self.quality,
            self.fps
                .map(|f| format!("{f} frames per second"))
                .unwrap_or_else(|| "the frame rate recorded in each file".into())
        )
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        let inputs = ctx
            .inputs
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        Ok(Runtime::PerItem(Arc::new(EncodeVideo {
            cfg: self.clone(),
            template: PathTemplate::parse(&self.path, &["ext"])?,
            out: Output::new(&ctx.output_dir, inputs, ctx.dry_run)?.journaled(ctx),
        })))
    }
}

/// The runtime of `encode_video`.
pub struct EncodeVideo {
    cfg: EncodeVideoConfig,
    template: PathTemplate,
    out: Output,
}

/// Frames pushed one at a time into an encoder made for the first frame's size.
struct Clip<'a> {
    cfg: &'a EncodeVideoConfig,
    fps: f64,
    enc: Option<(Box<dyn VideoEncoder>, u32, u32, u8)>,
    count: usize,
}

impl Clip<'_> {
    fn push(&mut self, f: &Frame, what: &dyn Fn() -> String) -> Result<(), ItemError> {
        if self.enc.is_none() {
            let opts = VideoOptions {
                format: self.cfg.format,
                quality: self.cfg.quality,
                fps: None,
            };
            let e = encoder(&opts, f.width, f.height, self.fps)
                .map_err(|e| ItemError::failed(e.to_string()))?;
            self.enc = Some((e, f.width, f.height, f.channels));
        }
        let (enc, w, h, c) = self.enc.as_mut().expect("made above");
        if (f.width, f.height, f.channels) != (*w, *h, *c) {
            return Err(ItemError::failed(format!(
                "{}: frame size {}x{}x{} differs from the first frame's {w}x{h}x{c}",
                what(),
                f.width,
                f.height,
                f.channels
            )));
        }
        enc.push(f)
            .map_err(|e| ItemError::failed(format!("{}: {e}", what())))?;
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>, ItemError> {
        let Some((enc, ..)) = self.enc else {
            return Err(ItemError::failed("no frames to encode"));
        };
        enc.finish().map_err(|e| ItemError::failed(e.to_string()))
    }
}

impl EncodeVideo {
    fn write(&self, first: &Instance, bytes: Vec<u8>, item: &Item) -> Result<Vec<Item>, ItemError> {
        let extras = [("ext", ext(self.cfg.format).to_string())];
        let rel = self
            .template
            .render_with_meta(&first.obj, Some(first.obj.meta()), &extras)
            .map_err(ItemError::failed)?;
        let path = self.out.write(&rel, self.cfg.if_exists, |w| {
            std::io::Write::write_all(w, &bytes)
        })?;
        Ok(vec![item.with(Payload::Output(path))])
    }
}

impl ItemWorker for EncodeVideo {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        match &item.payload {
            Payload::Frames(frames) => {
                if self.cfg.require_deidentified && frames.instance.deidentified_by.is_empty() {
                    return Err(not_deidentified());
                }
                let fps = match (self.cfg.fps, &frames.fps) {
                    (Some(f), _) => f,
                    (None, Some((f, _))) => *f,
                    (None, None) => {
                        return Err(ItemError::failed(
                            "no frame rate in the header (RecommendedDisplayFrameRate, CineRate, FrameTime, \
                             FrameTimeVector); set `fps` in encode_video",
                        ))
                    }
                };
                let mut clip = Clip {
                    cfg: &self.cfg,
                    fps,
                    enc: None,
                    count: 0,
                };
                for (i, f) in frames.frames.iter().enumerate() {
                    clip.push(f, &|| format!("frame {}", i + 1))?;
                }
                let bytes = clip.finish()?;
                self.write(&frames.instance, bytes, &item)
            }
            Payload::Series(series) => {
                let Some(fps) = self.cfg.fps else {
                    return Err(ItemError::failed("series videos take their frame rate from the recipe: set `fps` in encode_video"));
                };
                let first = series
                    .instances
                    .first()
                    .ok_or_else(|| ItemError::failed("empty series"))?;
                if self.cfg.require_deidentified
                    && series
                        .instances
                        .iter()
                        .any(|i| i.deidentified_by.is_empty())
                {
                    return Err(not_deidentified());
                }
                let mut clip = Clip {
                    cfg: &self.cfg,
                    fps,
                    enc: None,
                    count: 0,
                };
                for (n, (inst, source)) in series.instances.iter().zip(&series.sources).enumerate()
                {
                    // One slice at a time: read its pixels back, decode, render, push, drop.
                    let mut slice = Instance::clone(inst);
                    crate::read_dicom::ensure_pixels(&mut slice, source)?;
                    let dec = decode(&slice.obj)
                        .map_err(|e| ItemError::failed(format!("slice {}: {e}", n + 1)))?;
                    drop(slice);
                    for f in 0..dec.frame_count() {
                        let frame = render(&dec, f, &self.cfg.render).map_err(|e| {
                            ItemError::failed(format!("slice {} frame {}: {e}", n + 1, f + 1))
                        })?;
                        clip.push(&frame, &|| format!("slice {}", n + 1))?;
                    }
                }
                let bytes = clip.finish()?;
                self.write(first, bytes, &item)
            }
            other => Err(ItemError::failed(format!(
                "encode_video takes frames or a series, got {}",
                other.kind()
            ))),
        }
    }
}
