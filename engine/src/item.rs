//! Items: what flows along the edges of the plan. Each edge carries one [`ItemKind`]; planning
//! checks that a stage's input kinds match what its upstream emits. Payloads that fan out to
//! several stages are shared behind `Arc` and copied only when a stage changes them.

use std::path::PathBuf;
use std::sync::Arc;

use dicom_object::{FileDicomObject, InMemDicomObject};
use schemars::JsonSchema;
use serde::Serialize;

/// The kind of item on an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A path to a file that may be DICOM.
    File,
    /// A parsed DICOM instance (header, and pixel data when a later stage needs it).
    Instance,
    /// Decoded pixel data of one instance (decoded once, shared by every branch).
    Pixels,
    /// Rendered frames of one instance or one series, ready to encode.
    Frames,
    /// A group of instances of one series, in order.
    Series,
    /// A file that a sink wrote.
    Output,
}

impl ItemKind {
    /// The name used in recipes, docs and messages.
    pub fn name(self) -> &'static str {
        match self {
            ItemKind::File => "file",
            ItemKind::Instance => "instance",
            ItemKind::Pixels => "pixels",
            ItemKind::Frames => "frames",
            ItemKind::Series => "series",
            ItemKind::Output => "output",
        }
    }
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed DICOM instance and what the pipeline has done to it so far.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The object, file meta included.
    pub obj: FileDicomObject<InMemDicomObject>,
    /// Whether Pixel Data was read (header-only reads stop before it).
    pub pixels_loaded: bool,
    /// Stage ids that de-identified this instance (empty: it still carries its original header).
    pub deidentified_by: Vec<String>,
    /// What stages established about burned-in text in the pixels, in order.
    pub pixel_marks: Vec<PixelMark>,
    /// The input file as it was when this instance was read from it (None: not read from a
    /// file). Pixel data read back later must come from the same file.
    pub source_stamp: Option<SourceStamp>,
}

/// What a stage established about burned-in text in an instance's pixels. De-identification
/// lets a possible carrier of text through on either mark; only [`PixelMark::Masked`] is Clean
/// Pixel Data (113101).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PixelMark {
    /// `stage` blanked the regions of `rule` in every frame.
    Masked {
        /// The masking stage's id.
        stage: String,
        /// The rule's name.
        rule: String,
    },
    /// `stage` matched `rule`, a site rule declaring that the device draws no text: the pixels
    /// are unchanged and nothing was masked.
    DeclaredNoText {
        /// The masking stage's id.
        stage: String,
        /// The rule's name.
        rule: String,
    },
}

/// What an input file was when its header was read: pixel data read back from it later (after
/// a header-only pass, or after a barrier dropped it) is used only when all three still match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, when the file system records one.
    pub modified: Option<std::time::SystemTime>,
    /// SHA-256 of the header bytes: everything before the top-level Pixel Data element (the
    /// first MiB when the file's own bytes show no such element, as in a deflated data set).
    pub header_sha256: [u8; 32],
}

impl Instance {
    /// Wrap a freshly read object.
    pub fn new(obj: FileDicomObject<InMemDicomObject>, pixels_loaded: bool) -> Self {
        Instance {
            obj,
            pixels_loaded,
            deidentified_by: Vec::new(),
            pixel_marks: Vec::new(),
            source_stamp: None,
        }
    }

    /// Whether a stage blanked burned-in regions in every frame.
    pub fn is_masked(&self) -> bool {
        self.pixel_marks
            .iter()
            .any(|m| matches!(m, PixelMark::Masked { .. }))
    }

    /// Whether a site rule declared the pixels free of text (and nothing masked them).
    pub fn declared_no_text(&self) -> bool {
        !self.is_masked()
            && self
                .pixel_marks
                .iter()
                .any(|m| matches!(m, PixelMark::DeclaredNoText { .. }))
    }

    /// The string value of a top-level attribute, trimmed, if present and readable.
    pub fn str_of(&self, tag: dicom_core::Tag) -> Option<String> {
        // `get`, not `element_opt`: dicom-rs builds (and captures a backtrace for) an error
        // on every missing tag before `element_opt` turns it into None.
        self.obj
            .get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_string())
    }
}

/// Sample storage of one rendered frame.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameData {
    /// 8 bits per sample.
    U8(Vec<u8>),
    /// 16 bits per sample.
    U16(Vec<u16>),
}

impl FrameData {
    /// Number of samples (width x height x channels).
    pub fn len(&self) -> usize {
        match self {
            FrameData::U8(v) => v.len(),
            FrameData::U16(v) => v.len(),
        }
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One rendered frame: grey (1 channel) or RGB (3 channels), interleaved.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// The samples, row by row.
    pub data: FrameData,
}

/// Rendered frames with the instance (or first instance of a series) they came from.
#[derive(Clone, Debug)]
pub struct Frames {
    /// The header the frames came from (already de-identified when the recipe did so).
    pub instance: Arc<Instance>,
    /// The frames, in display order.
    pub frames: Vec<Frame>,
    /// Frames per second, when known, and where the figure came from.
    pub fps: Option<(f64, String)>,
    /// A name for outputs derived from these frames (e.g. a series or instance label).
    pub label: String,
}

/// The instances of one series, sorted.
#[derive(Clone, Debug)]
pub struct Series {
    /// StudyInstanceUID of the series.
    pub study_uid: String,
    /// SeriesInstanceUID of the series.
    pub series_uid: String,
    /// The instances in order.
    pub instances: Vec<Arc<Instance>>,
    /// The input file of each instance (same order), for reading pixel data back.
    pub sources: Vec<Arc<PathBuf>>,
    /// Notes about gaps or duplicates (no values).
    pub notes: Vec<String>,
}

/// What an item carries.
#[derive(Clone)]
pub enum Payload {
    /// A path (the item's source).
    File,
    /// A parsed instance.
    Instance(Arc<Instance>),
    /// Decoded pixels with their instance; the decoded form is a stage's own type.
    Pixels(Arc<Instance>, Arc<dyn std::any::Any + Send + Sync>),
    /// Rendered frames.
    Frames(Arc<Frames>),
    /// A sorted series.
    Series(Arc<Series>),
    /// A written file.
    Output(PathBuf),
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload::{}", self.kind())
    }
}

impl Payload {
    /// The kind of this payload.
    pub fn kind(&self) -> ItemKind {
        match self {
            Payload::File => ItemKind::File,
            Payload::Instance(_) => ItemKind::Instance,
            Payload::Pixels(..) => ItemKind::Pixels,
            Payload::Frames(_) => ItemKind::Frames,
            Payload::Series(_) => ItemKind::Series,
            Payload::Output(_) => ItemKind::Output,
        }
    }
}

/// One unit of work flowing through the graph.
#[derive(Clone, Debug)]
pub struct Item {
    /// The input this item came from (a file path, or a label for a group of inputs).
    pub source: Arc<PathBuf>,
    /// What it carries.
    pub payload: Payload,
}

impl Item {
    /// A file item for a path.
    pub fn file(path: PathBuf) -> Self {
        Item {
            source: Arc::new(path),
            payload: Payload::File,
        }
    }

    /// An instance item derived from `source`.
    pub fn of_instance(source: Arc<PathBuf>, inst: Instance) -> Self {
        Item {
            source,
            payload: Payload::Instance(Arc::new(inst)),
        }
    }

    /// A new item with the same source and another payload.
    pub fn with(&self, payload: Payload) -> Self {
        Item {
            source: self.source.clone(),
            payload,
        }
    }

    /// The instance, or an error naming the kind actually carried.
    pub fn instance(&self) -> Result<&Arc<Instance>, crate::ItemError> {
        match &self.payload {
            Payload::Instance(i) => Ok(i),
            other => Err(crate::ItemError::failed(format!(
                "expected an instance, got {}",
                other.kind()
            ))),
        }
    }

    /// Take the instance out for editing (copied only when shared with another branch).
    pub fn into_instance(self) -> Result<(Arc<PathBuf>, Instance), crate::ItemError> {
        match self.payload {
            Payload::Instance(i) => Ok((self.source, Arc::unwrap_or_clone(i))),
            other => Err(crate::ItemError::failed(format!(
                "expected an instance, got {}",
                other.kind()
            ))),
        }
    }
}
