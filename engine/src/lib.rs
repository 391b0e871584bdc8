//! dcmflow-engine: the recipe model, planning into a checked DAG, the threaded runtime, progress
//! and the run report. It names no concrete stage: stage kinds come in through a [`Registry`]
//! (a closed list that the `dcmflow-stages` crate provides).
//!
//! Flow: recipe text -> [`recipe::Recipe`] (envelope + params, every problem with line:col) ->
//! [`plan::Plan`] (typed stage configs in a petgraph DAG, every problem at once) ->
//! [`runtime::run`] (one bounded channel per edge, worker threads) -> [`report::RunReport`].

pub mod diagnostic;
pub mod docs;
pub mod interpolate;
pub mod item;
pub mod journal;
pub mod keys;
pub mod plan;
pub mod progress;
pub mod recipe;
pub mod report;
pub mod runtime;
pub mod stage;
pub mod timefmt;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use item::{
    Frame, FrameData, Frames, Instance, Item, ItemKind, Payload, PixelMark, Series, SourceStamp,
};
pub use journal::Leftovers;
pub use keys::Secret;
pub use plan::Plan;
pub use stage::{
    BarrierWorker, BuildContext, ItemError, ItemWorker, Mode, Registry, Runtime, SourceWorker,
    StageConfig, StageKind,
};

/// The dcmflow version recorded in run reports and provenance.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
