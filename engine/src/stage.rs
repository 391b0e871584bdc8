//! What a stage kind is to the engine: a typed config (parsed from the stage's `with`, checked at
//! plan time) that builds a runtime worker. The engine knows stage kinds only through the
//! [`Registry`] handed to it, so it names no concrete stage.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::item::{Item, ItemKind};
use crate::keys::Secret;

/// How a stage consumes its input stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Enumerates the run's `--input` paths and turns each into items; has no recipe inputs.
    Source,
    /// Processes each item on its own; runs on several threads.
    PerItem,
    /// Needs the whole stream (e.g. sorting a series); flushes when its input ends.
    Barrier,
}

/// Why one item did not come out of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemError {
    /// Processing failed. The chain names what went wrong, never a PHI value.
    Failed(Vec<String>),
    /// The item must not reach an output folder (e.g. it could not be fully de-identified).
    Quarantined(String),
    /// Not an error: the input is not something this stage handles (e.g. not DICOM).
    Skipped(String),
    /// Not an error: a filter let it go.
    Dropped(String),
}

impl ItemError {
    /// A failure with one message.
    pub fn failed(msg: impl Into<String>) -> Self {
        ItemError::Failed(vec![msg.into()])
    }

    /// A failure with context in front of an underlying error's chain.
    pub fn context(msg: impl Into<String>, err: &dyn std::error::Error) -> Self {
        let mut chain = vec![msg.into(), err.to_string()];
        let mut cur = err.source();
        while let Some(e) = cur {
            chain.push(e.to_string());
            cur = e.source();
        }
        chain.dedup();
        ItemError::Failed(chain)
    }

    /// A quarantine with a reason (tags, never values).
    pub fn quarantine(reason: impl Into<String>) -> Self {
        ItemError::Quarantined(reason.into())
    }

    /// Whether this outcome counts against the run (exit code 1).
    pub fn is_problem(&self) -> bool {
        matches!(self, ItemError::Failed(_) | ItemError::Quarantined(_))
    }

    /// One line for messages and reports.
    pub fn reason(&self) -> String {
        match self {
            ItemError::Failed(chain) => chain.join(": "),
            ItemError::Quarantined(r) | ItemError::Skipped(r) | ItemError::Dropped(r) => r.clone(),
        }
    }

    /// The outcome's name in reports.
    pub fn outcome(&self) -> &'static str {
        match self {
            ItemError::Failed(_) => "failed",
            ItemError::Quarantined(_) => "quarantined",
            ItemError::Skipped(_) => "skipped",
            ItemError::Dropped(_) => "dropped",
        }
    }
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.outcome(), self.reason())
    }
}

/// Everything a stage may know about the run when it builds its worker.
#[derive(Clone)]
pub struct BuildContext {
    /// The stage's id in the recipe.
    pub stage_id: String,
    /// The run's output folder (created before building).
    pub output_dir: PathBuf,
    /// The run's inputs as given.
    pub inputs: Vec<PathBuf>,
    /// The project secret, when one was given (or made up for this run).
    pub secret: Option<Secret>,
    /// Whether any stage downstream of this one needs pixel data.
    pub pixels_needed_downstream: bool,
    /// Set when the run is being stopped (Ctrl-C or --fail-fast).
    pub cancel: Arc<AtomicBool>,
    /// Plan only: report what would change without writing anything.
    pub dry_run: bool,
    /// On a resumed run: files a killed run may have left unrecorded, which a sink takes as
    /// written when its bytes are identical (see [`crate::journal::Leftovers`]).
    pub leftovers: Option<Arc<crate::journal::Leftovers>>,
    /// Where sinks report renames of files already written (for the run journal).
    pub moves: Option<Arc<dyn crate::journal::MoveLog>>,
}

impl BuildContext {
    /// The secret, or an error saying how to give one.
    pub fn require_secret(&self) -> Result<&Secret, String> {
        self.secret.as_ref().ok_or_else(|| {
            format!(
                "stage \"{}\" needs the project secret: set DCMFLOW_SECRET or pass --secret-file FILE \
                 (or --set ephemeral_secret=true for pseudonyms valid in this run only)",
                self.stage_id
            )
        })
    }
}

/// A source: enumerates the inputs, then turns each into items (in parallel). Enumeration
/// streams, so memory does not grow with the number of inputs; `count` runs first so progress
/// can show a total.
pub trait SourceWorker: Send + Sync {
    /// How many units `discover` will yield (for progress; may walk the inputs once).
    fn count(&self, inputs: &[PathBuf]) -> u64;
    /// Yield each unit of work (or a problem with one input, so the rest of the run goes on).
    /// Stop early when `yield_one` returns false.
    fn discover(
        &self,
        inputs: &[PathBuf],
        yield_one: &mut dyn FnMut(Result<PathBuf, (PathBuf, ItemError)>) -> bool,
    );
    /// Turn one discovered path into zero or more items.
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError>;
}

/// A per-item worker: shared by all of the stage's threads.
pub trait ItemWorker: Send + Sync {
    /// Process one item into zero or more items.
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError>;
    /// After the run: a summary for run.json (counts only, never values).
    fn summary(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A barrier worker: sees the whole stream on one thread.
pub trait BarrierWorker: Send {
    /// Take one item; may emit items early.
    fn push(&mut self, item: Item) -> Result<Vec<Item>, ItemError>;
    /// The input ended: emit what is left. Failures name the source they belong to.
    fn finish(&mut self) -> Vec<Result<Item, (Arc<PathBuf>, ItemError)>>;
}

/// A stage's runtime, built from its config.
pub enum Runtime {
    /// See [`SourceWorker`].
    Source(Arc<dyn SourceWorker>),
    /// See [`ItemWorker`].
    PerItem(Arc<dyn ItemWorker>),
    /// See [`BarrierWorker`].
    Barrier(Box<dyn BarrierWorker>),
}

/// A stage's typed configuration: parsed from `with`, checked at plan time, builds the runtime.
pub trait StageConfig: Send + Sync + std::fmt::Debug {
    /// Item kinds this stage accepts on its inputs (empty for a source).
    fn accepts(&self) -> &'static [ItemKind];
    /// The item kind it emits.
    fn emits(&self) -> ItemKind;
    /// Source, per-item or barrier.
    fn mode(&self) -> Mode {
        Mode::PerItem
    }
    /// Problems with the settings that the types cannot express (each a message; no values).
    fn check(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether this stage reads pixel data (so the source must load it).
    fn needs_pixels(&self) -> bool {
        false
    }
    /// Whether this stage derives keyed values and so needs the project secret.
    fn needs_secret(&self) -> bool {
        false
    }
    /// Whether the stage writes files into the output folder (a sink's output is terminal).
    fn is_sink(&self) -> bool {
        self.emits() == ItemKind::Output
    }
    /// A plain-words account of what the stage does, for methods sections.
    fn explain(&self) -> String {
        String::new()
    }
    /// Build the runtime worker.
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String>;
}

/// A parser for one stage kind: the recipe source and the stage's index in `stages`.
pub type ParseFn =
    fn(&crate::recipe::Source, usize) -> Result<Box<dyn StageConfig>, crate::Diagnostic>;

/// One stage kind in the registry.
#[derive(Clone, Copy)]
pub struct StageKind {
    /// The `type` in recipes, a verb on a noun (`read_dicom`, `mask_regions`).
    pub name: &'static str,
    /// Parse the stage's `with` into its typed config.
    pub parse: ParseFn,
    /// The JSON Schema of its `with`.
    pub schema: fn() -> schemars::Schema,
    /// Item kinds it accepts (for docs).
    pub accepts: &'static [ItemKind],
    /// Item kind it emits (for docs).
    pub emits: ItemKind,
}

/// The closed list of stage kinds a build knows.
#[derive(Clone, Copy)]
pub struct Registry(pub &'static [StageKind]);

impl Registry {
    /// Every kind.
    pub fn kinds(&self) -> &'static [StageKind] {
        self.0
    }
    /// One kind by name.
    pub fn get(&self, name: &str) -> Option<&'static StageKind> {
        self.0.iter().find(|k| k.name == name)
    }
}

/// The JSON Schema of a config type (the registry's generic schema function).
pub fn schema_of<C: schemars::JsonSchema>() -> schemars::Schema {
    schemars::schema_for!(C)
}

/// The first sentence of a schema's description (the config type's doc comment).
pub fn summary_of(schema: &schemars::Schema) -> String {
    let d = schema
        .get("description")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let first = d.split("\n\n").next().unwrap_or("").replace('\n', " ");
    first.trim().to_string()
}
