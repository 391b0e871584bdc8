//! Rendering: Modality LUT -> VOI -> presentation (MONOCHROME1 / INVERSE),
//! palette and RGB output, then optional aspect correction.

use serde::Deserialize;

use super::aspect;
use super::decode::{Decoded, Model, VoiFunction};
use super::{Frame, FrameData, PixelError};

/// How grayscale images are windowed (VOI) for 8-bit output.
///
/// YAML: `window: file`, `window: auto`, `window: min_max`, a preset name such
/// as `window: lung`, or an explicit window `window: {center: 40, width: 400}`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum WindowSpec {
    /// A named mode or preset.
    Named(WindowName),
    /// An explicit window in modality units (e.g. Hounsfield units for CT).
    Explicit(ExplicitWindow),
}

/// Explicit window centre and width, in modality units (after Rescale
/// Slope/Intercept or the Modality LUT). Uses the DICOM linear VOI function.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExplicitWindow {
    /// Window centre (level).
    pub center: f64,
    /// Window width; must be at least 1.
    pub width: f64,
}

/// Named window modes and CT presets. Presets are (centre/width) in
/// Hounsfield units and make sense for CT only.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WindowName {
    /// The window stored in the file: per-frame functional groups first, then
    /// Window Center/Width (with VOI LUT Function LINEAR, LINEAR_EXACT or
    /// SIGMOID), then a VOI LUT Sequence. Falls back to `auto` when the file
    /// has none.
    File,
    /// Percentile window over the frame's modality values: from the
    /// `auto_percentiles[0]` to the `auto_percentiles[1]` percentile
    /// (default 0.5 % .. 99.5 %). Falls back to min..max when that range is
    /// empty. Pixels equal to Pixel Padding Value are left out.
    Auto,
    /// Full range of the frame's modality values (minimum..maximum), Pixel
    /// Padding Value left out.
    MinMax,
    /// Lung: centre -600, width 1500.
    Lung,
    /// Mediastinum: centre 50, width 350.
    Mediastinum,
    /// Bone: centre 400, width 1800.
    Bone,
    /// Brain: centre 40, width 80.
    Brain,
    /// Subdural: centre 75, width 215.
    Subdural,
    /// Stroke: centre 40, width 40.
    Stroke,
    /// Abdomen: centre 60, width 400.
    Abdomen,
    /// Liver: centre 60, width 160.
    Liver,
    /// Soft tissue: centre 40, width 400.
    SoftTissue,
    /// Temporal bone: centre 600, width 2800.
    TemporalBone,
    /// CT angiography: centre 300, width 600.
    Angio,
}

impl WindowName {
    /// (centre, width) of a preset; `None` for the modes file/auto/min_max.
    pub fn preset(self) -> Option<(f64, f64)> {
        use WindowName::*;
        Some(match self {
            File | Auto | MinMax => return None,
            Lung => (-600.0, 1500.0),
            Mediastinum => (50.0, 350.0),
            Bone => (400.0, 1800.0),
            Brain => (40.0, 80.0),
            Subdural => (75.0, 215.0),
            Stroke => (40.0, 40.0),
            Abdomen => (60.0, 400.0),
            Liver => (60.0, 160.0),
            SoftTissue => (40.0, 400.0),
            TemporalBone => (600.0, 2800.0),
            Angio => (300.0, 600.0),
        })
    }
}

fn default_window() -> WindowSpec {
    WindowSpec::Named(WindowName::File)
}
fn default_bits() -> u8 {
    8
}
fn default_true() -> bool {
    true
}
fn default_percentiles() -> [f64; 2] {
    [0.5, 99.5]
}

/// Options for rendering one frame of an image.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowOptions {
    /// Which VOI window to apply to grayscale images for 8-bit output:
    /// `file` (default: the file's own window, per-frame functional groups
    /// first; falls back to `auto`), `auto` (percentile based), `min_max`, a
    /// CT preset (`lung`, `mediastinum`, `bone`, `brain`, `subdural`, `stroke`,
    /// `abdomen`, `liver`, `soft_tissue`, `temporal_bone`, `angio`) or an
    /// explicit `{center: 40, width: 400}` in modality units. Ignored for
    /// colour images and for `bits: 16`.
    #[serde(default = "default_window")]
    pub window: WindowSpec,
    /// Which of the file's windows to use when it stores several (0-based;
    /// default 0). Out of range picks the last one. Only used with `window: file`.
    #[serde(default)]
    pub window_index: usize,
    /// Output bit depth: 8 (default) or 16.
    ///
    /// 8: grayscale goes through Modality LUT -> VOI window -> 0..255;
    /// colour is scaled to 8 bits per channel.
    ///
    /// 16: no VOI window. Grayscale modality values (Rescale Slope/Intercept or
    /// Modality LUT applied) are mapped linearly so that the whole
    /// representable range of the stored values (from BitsStored and Pixel
    /// Representation; for a Modality LUT, the LUT's output range) becomes
    /// 0..65535. For data with up to 16 bits stored this is lossless (every
    /// stored value keeps a distinct output value). MONOCHROME1 and
    /// Presentation LUT Shape INVERSE are still inverted so that the image
    /// looks right. Colour channels and palette entries are scaled to 0..65535.
    /// JPEG output needs 8 bits (16-bit frames are reduced by `encode`).
    #[serde(default = "default_bits")]
    pub bits: u8,
    /// Resample so that non-square pixels (PixelSpacing, ImagerPixelSpacing or
    /// PixelAspectRatio, per-frame Pixel Measures for enhanced images) get
    /// their true aspect ratio (default true). The axis with the larger
    /// spacing is stretched (bilinear), the other axis is kept; the stretch is
    /// limited to 8x and ratios within 0.1 % of 1 are left alone.
    #[serde(default = "default_true")]
    pub correct_aspect: bool,
    /// Lower and upper percentile (0..100) used by `window: auto` and by the
    /// `file` fallback (default [0.5, 99.5]).
    #[serde(default = "default_percentiles")]
    pub auto_percentiles: [f64; 2],
}

impl Default for WindowOptions {
    fn default() -> Self {
        WindowOptions {
            window: default_window(),
            window_index: 0,
            bits: 8,
            correct_aspect: true,
            auto_percentiles: default_percentiles(),
        }
    }
}

/// Render one frame of a decoded instance.
pub fn render(dec: &Decoded, frame: u32, opts: &WindowOptions) -> Result<Frame, PixelError> {
    if opts.bits != 8 && opts.bits != 16 {
        return Err(PixelError::InvalidOption("bits must be 8 or 16".into()));
    }
    if let WindowSpec::Explicit(w) = &opts.window {
        if !w.center.is_finite() || !w.width.is_finite() || w.width < 1.0 {
            return Err(PixelError::InvalidOption(
                "window width must be a finite number >= 1".into(),
            ));
        }
    }
    let p = opts.auto_percentiles;
    if !(p[0] >= 0.0 && p[0] < p[1] && p[1] <= 100.0) {
        return Err(PixelError::InvalidOption(
            "auto_percentiles must satisfy 0 <= low < high <= 100".into(),
        ));
    }
    let stored = dec.frame_stored(frame)?;
    let sixteen = opts.bits == 16;
    let (channels, data) = match dec.model {
        Model::Rgb => (3u8, render_rgb(dec, &stored, sixteen)),
        Model::Palette => (3u8, render_palette(dec, &stored, sixteen)),
        Model::Mono1 | Model::Mono2 => (1u8, render_mono(dec, frame, stored, opts)?),
    };
    let out = Frame {
        width: dec.cols,
        height: dec.rows,
        channels,
        data,
    };
    if opts.correct_aspect {
        if let Some((row_sp, col_sp)) = dec.params(frame).spacing {
            return Ok(aspect::correct(out, row_sp, col_sp));
        }
    }
    Ok(out)
}

/// Most modality values sampled (evenly over all frames) by [`clip_window`].
const CLIP_SAMPLES: usize = 1 << 22;

/// One window for every frame of a multi-frame grayscale instance whose window comes from the
/// data (`auto`, `min_max`, or `file` when the file stores no window), computed over all
/// frames with the same rule as the per-frame window. Rendering each frame with its own
/// automatic window would flatten brightness changes between frames (a contrast bolus, a
/// fade) and make clips flicker. `None` when the instance has one frame, is colour, renders
/// at 16 bits, or has a window of its own (file, preset or explicit).
pub fn clip_window(dec: &Decoded, opts: &WindowOptions) -> Result<Option<WindowSpec>, PixelError> {
    if dec.frames < 2 || opts.bits != 8 || !matches!(dec.model, Model::Mono1 | Model::Mono2) {
        return Ok(None);
    }
    let min_max = match &opts.window {
        WindowSpec::Named(WindowName::MinMax) => true,
        WindowSpec::Named(WindowName::Auto) => false,
        WindowSpec::Named(WindowName::File) => {
            let stored_window = (0..dec.frames).any(|f| !dec.params(f).windows.is_empty());
            if stored_window || !dec.voi_luts.is_empty() {
                return Ok(None);
            }
            false
        }
        _ => return Ok(None),
    };
    let total = dec.frame_len() * dec.frames as usize;
    let step = total.div_ceil(CLIP_SAMPLES).max(1);
    let mut vals = Vec::with_capacity(total / step + 1);
    let mut offset = 0usize;
    for f in 0..dec.frames {
        let stored = dec.frame_stored(f)?;
        let n = stored.len();
        let kept: Vec<i64> = stored
            .into_iter()
            .skip((step - offset % step) % step)
            .step_by(step)
            .filter(|s| dec.padding != Some(*s))
            .collect();
        vals.extend(modality(dec, f, kept));
        offset += n;
    }
    if vals.is_empty() {
        return Ok(None);
    }
    let [plo, phi] = opts.auto_percentiles;
    let (lo, hi) = if min_max {
        minmax(&vals)
    } else {
        percentile_window(&vals, plo, phi)
    };
    // The linear VOI function maps c - 0.5 - (w - 1) / 2 to black and c - 0.5 + (w - 1) / 2
    // to white: w = hi - lo + 1 and c = (lo + hi) / 2 + 0.5 put lo and hi there.
    // A constant clip renders as the lowest output, as a constant frame does.
    let (center, width) = if hi > lo {
        ((lo + hi) / 2.0 + 0.5, hi - lo + 1.0)
    } else {
        (lo + 1.5, 1.0)
    };
    Ok(Some(WindowSpec::Explicit(ExplicitWindow { center, width })))
}

fn scale_to(v: i64, max_in: f64, sixteen: bool) -> f64 {
    let max_out = if sixteen { 65535.0 } else { 255.0 };
    if max_in <= 0.0 {
        return 0.0;
    }
    ((v.max(0) as f64) * max_out / max_in)
        .round()
        .clamp(0.0, max_out)
}

fn pack(vals: impl Iterator<Item = f64>, sixteen: bool) -> FrameData {
    if sixteen {
        FrameData::U16(vals.map(|v| v as u16).collect())
    } else {
        FrameData::U8(vals.map(|v| v as u8).collect())
    }
}

fn render_rgb(dec: &Decoded, stored: &[i64], sixteen: bool) -> FrameData {
    let (_, max) = dec.stored_range();
    let max = max as f64;
    pack(stored.iter().map(|v| scale_to(*v, max, sixteen)), sixteen)
}

fn render_palette(dec: &Decoded, stored: &[i64], sixteen: bool) -> FrameData {
    let Some(luts) = &dec.palette else {
        return pack(std::iter::empty(), sixteen);
    };
    let max_in: [f64; 3] = [0, 1, 2].map(|c| ((1u64 << luts[c].bits.clamp(1, 16)) - 1) as f64);
    pack(
        stored.iter().flat_map(|v| {
            (0..3).map(move |c| scale_to(luts[c].lookup(*v as f64) as i64, max_in[c], sixteen))
        }),
        sixteen,
    )
}

/// Modality LUT stage: stored values -> modality values.
fn modality(dec: &Decoded, frame: u32, stored: Vec<i64>) -> Vec<f64> {
    if let Some(lut) = &dec.modality_lut {
        return stored
            .into_iter()
            .map(|v| lut.lookup(v as f64) as f64)
            .collect();
    }
    let p = dec.params(frame);
    let (s, i) = (p.slope, p.intercept);
    stored.into_iter().map(|v| v as f64 * s + i).collect()
}

/// Range of modality values the stored range can produce.
fn modality_range(dec: &Decoded, frame: u32) -> (f64, f64) {
    if let Some(lut) = &dec.modality_lut {
        return (lut.min_value() as f64, lut.max_value() as f64);
    }
    let (lo, hi) = dec.stored_range();
    let p = dec.params(frame);
    let a = lo as f64 * p.slope + p.intercept;
    let b = hi as f64 * p.slope + p.intercept;
    (a.min(b), a.max(b))
}

enum Voi<'a> {
    Window(f64, f64, VoiFunction),
    Lut(&'a super::decode::Lut),
}

fn percentile_window(vals: &[f64], lo_p: f64, hi_p: f64) -> (f64, f64) {
    let mut v: Vec<f64> = vals.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    let n = v.len();
    let idx = |p: f64| (((p / 100.0) * (n - 1) as f64).round() as usize).min(n - 1);
    let (il, ih) = (idx(lo_p), idx(hi_p));
    let cmp = |a: &f64, b: &f64| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
    let lo = *v.select_nth_unstable_by(il, cmp).1;
    let hi = *v.select_nth_unstable_by(ih, cmp).1;
    if hi > lo {
        (lo, hi)
    } else {
        minmax(vals)
    }
}

fn minmax(vals: &[f64]) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in vals.iter().filter(|x| x.is_finite()) {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if lo > hi {
        (0.0, 1.0)
    } else {
        (lo, hi)
    }
}

/// Window from a value range [lo, hi] such that lo maps to 0 and hi to max.
fn range_window(lo: f64, hi: f64) -> Voi<'static> {
    if hi > lo {
        Voi::Window((lo + hi) / 2.0, hi - lo, VoiFunction::LinearExact)
    } else {
        // constant image: render it as the lowest output (black for
        // MONOCHROME2, white for MONOCHROME1)
        Voi::Window(lo + 1.0, 1.0, VoiFunction::LinearExact)
    }
}

fn render_mono(
    dec: &Decoded,
    frame: u32,
    stored: Vec<i64>,
    opts: &WindowOptions,
) -> Result<FrameData, PixelError> {
    // values that count for automatic windows: Pixel Padding Value excluded
    let keep: Option<Vec<bool>> = dec
        .padding
        .map(|pad| stored.iter().map(|s| *s != pad).collect());
    let vals = modality(dec, frame, stored);
    let stats_vals: Vec<f64> = match &keep {
        Some(k) if k.iter().any(|b| *b) => vals
            .iter()
            .zip(k)
            .filter(|(_, b)| **b)
            .map(|(v, _)| *v)
            .collect(),
        _ => Vec::new(),
    };
    let stats: &[f64] = if stats_vals.is_empty() {
        &vals
    } else {
        &stats_vals
    };
    let invert = dec.model == Model::Mono1 || dec.presentation_inverse;
    if opts.bits == 16 {
        let (lo, hi) = modality_range(dec, frame);
        let span = if hi > lo { hi - lo } else { 1.0 };
        return Ok(FrameData::U16(
            vals.iter()
                .map(|v| {
                    let y = ((v - lo) / span).clamp(0.0, 1.0);
                    let y = if invert { 1.0 - y } else { y };
                    (y * 65535.0).round() as u16
                })
                .collect(),
        ));
    }
    let [plo, phi] = opts.auto_percentiles;
    let auto = |vals: &[f64]| {
        let (lo, hi) = percentile_window(vals, plo, phi);
        range_window(lo, hi)
    };
    let voi = match &opts.window {
        WindowSpec::Explicit(w) => Voi::Window(w.center, w.width, VoiFunction::Linear),
        WindowSpec::Named(WindowName::Auto) => auto(stats),
        WindowSpec::Named(WindowName::MinMax) => {
            let (lo, hi) = minmax(stats);
            range_window(lo, hi)
        }
        WindowSpec::Named(WindowName::File) => {
            let p = dec.params(frame);
            if !p.windows.is_empty() {
                let (c, w) = p.windows[opts.window_index.min(p.windows.len() - 1)];
                Voi::Window(c, w, p.function)
            } else if !dec.voi_luts.is_empty() {
                Voi::Lut(&dec.voi_luts[opts.window_index.min(dec.voi_luts.len() - 1)])
            } else {
                auto(stats)
            }
        }
        WindowSpec::Named(n) => {
            let (c, w) = n.preset().unwrap_or((0.0, 1.0));
            Voi::Window(c, w, VoiFunction::Linear)
        }
    };
    let f: Box<dyn Fn(f64) -> f64 + '_> = match voi {
        Voi::Window(c, w, func) => Box::new(move |x| voi_window(x, c, w, func)),
        Voi::Lut(lut) => {
            let max_bits = lut.bits.clamp(1, 16);
            let mut max = ((1u64 << max_bits) - 1) as f64;
            let actual = lut.max_value() as f64;
            if actual > max {
                max = actual;
            }
            Box::new(move |x| lut.lookup(x) as f64 / max)
        }
    };
    Ok(FrameData::U8(
        vals.iter()
            .map(|v| {
                let y = f(*v).clamp(0.0, 1.0);
                let y = if invert { 1.0 - y } else { y };
                (y * 255.0).round() as u8
            })
            .collect(),
    ))
}

/// DICOM VOI functions (PS3.3 C.11.2.1.2/3), output normalised to 0..1.
pub(super) fn voi_window(x: f64, c: f64, w: f64, func: VoiFunction) -> f64 {
    match func {
        VoiFunction::Linear => {
            if w <= 1.0 {
                return if x < c - 0.5 { 0.0 } else { 1.0 };
            }
            let lo = c - 0.5 - (w - 1.0) / 2.0;
            let hi = c - 0.5 + (w - 1.0) / 2.0;
            if x <= lo {
                0.0
            } else if x > hi {
                1.0
            } else {
                (x - (c - 0.5)) / (w - 1.0) + 0.5
            }
        }
        VoiFunction::LinearExact => {
            if w <= 0.0 {
                return if x < c { 0.0 } else { 1.0 };
            }
            ((x - c) / w + 0.5).clamp(0.0, 1.0)
        }
        VoiFunction::Sigmoid => {
            if w <= 0.0 {
                return if x < c { 0.0 } else { 1.0 };
            }
            1.0 / (1.0 + (-4.0 * (x - c) / w).exp())
        }
    }
}
