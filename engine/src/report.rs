//! The run report, `run.json` in the output folder: what ran (dcmflow version, recipe and its
//! SHA-256, params with redactions), when, and what happened to every item. Reasons name tags
//! and problems, never PHI values; the secret is never written. Inputs are named by a keyed hash
//! of their path unless plain paths are asked for ([`ReportPaths`]): the report leaves with the
//! outputs, and folder names in a hospital often carry patient names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::journal;
use crate::keys::Secret;

/// How the report names inputs (`dcmflow run --report-paths`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportPaths {
    /// A keyed hash of the path, as the journal names it ([`journal::input_key`]): HMAC-SHA256
    /// with the project secret, or, when the run has none, with a random key made for this run
    /// and never kept (a plain hash of a short, guessable path could be confirmed by hashing
    /// guesses).
    #[default]
    Hashed,
    /// The path as found, for reports that stay where the inputs are.
    Plain,
}

/// Names inputs in a report the way [`ReportPaths`] says.
#[derive(Clone, Debug)]
pub struct InputNames {
    mode: ReportPaths,
    key: Secret,
}

impl InputNames {
    /// Names for a run with `secret` (None: a one-run key).
    pub fn new(mode: ReportPaths, secret: Option<&Secret>) -> InputNames {
        InputNames {
            mode,
            key: secret.cloned().unwrap_or_else(Secret::ephemeral),
        }
    }

    /// The name of one input.
    pub fn name(&self, path: &Path) -> String {
        match self.mode {
            ReportPaths::Hashed => journal::input_key(Some(&self.key), path),
            ReportPaths::Plain => path.to_string_lossy().into_owned(),
        }
    }

    /// The naming mode.
    pub fn mode(&self) -> ReportPaths {
        self.mode
    }

    /// What the hashes are keyed with, when inputs are hashed.
    pub fn key_label(&self) -> Option<&'static str> {
        match (self.mode, self.key.is_ephemeral()) {
            (ReportPaths::Plain, _) => None,
            (ReportPaths::Hashed, false) => Some("project secret"),
            (ReportPaths::Hashed, true) => Some("one-run random key"),
        }
    }
}

/// Counts for one stage.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StageCounts {
    /// Stage kind.
    pub kind: String,
    /// Items taken in (for a source: inputs discovered).
    pub received: u64,
    /// Items passed on (or, for a sink, files written).
    pub emitted: u64,
    /// Items that failed.
    pub failed: u64,
    /// Items quarantined.
    pub quarantined: u64,
    /// Items skipped as not applicable (e.g. not DICOM).
    pub skipped: u64,
    /// Items dropped by a filter.
    pub dropped: u64,
}

/// One item that did not come through a stage.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ItemProblem {
    /// The stage id.
    pub stage: String,
    /// The input the item came from: a keyed hash of its path (as in `.dcmflow-journal`), or
    /// its path with `--report-paths plain` (see [`RunReport::report_paths`]).
    pub input: String,
    /// failed, quarantined, skipped or dropped.
    pub outcome: String,
    /// Why (tags and problems, no values).
    pub reason: String,
}

/// The recipe as run.
#[derive(Clone, Debug, Serialize)]
pub struct RecipeInfo {
    /// Path as given.
    pub path: String,
    /// Its name.
    pub name: String,
    /// SHA-256 of its text.
    pub sha256: String,
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// dcmflow version.
    pub dcmflow_version: String,
    /// The recipe.
    pub recipe: RecipeInfo,
    /// Params in force (redacted where declared).
    pub params: BTreeMap<String, serde_json::Value>,
    /// Where the secret came from (never its value): env, file, ephemeral or none.
    pub secret_source: String,
    /// How inputs are named here (in `inputs`, `problems` and `skipped`): `hashed` (HMAC-SHA256
    /// of the path, see `input_hash_key`) or `plain` (paths).
    pub report_paths: ReportPaths,
    /// What the input hashes are keyed with: `project secret` (the same names as in
    /// `.dcmflow-journal`) or `one-run random key` (no secret in use, or a one-run secret: the
    /// names match nothing outside this report). Absent with plain paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_hash_key: Option<String>,
    /// Inputs as given, named as `report_paths` says.
    pub inputs: Vec<String>,
    /// The output folder.
    pub output: PathBuf,
    /// Start, UTC.
    pub started: String,
    /// End, UTC.
    pub finished: String,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Worker threads used.
    pub threads: usize,
    /// Peak resident memory of the process in MiB when the run ended (Linux `VmHWM`; absent
    /// where the system does not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_mib: Option<f64>,
    /// Whether the run was stopped before the end (Ctrl-C or --fail-fast).
    pub cancelled: bool,
    /// Counts per stage id.
    pub stages: BTreeMap<String, StageCounts>,
    /// Files written by this run (a resumed run counts only what it wrote itself).
    pub outputs: u64,
    /// Inputs a resumed run skipped because an earlier run into this folder finished them
    /// (recorded in `.dcmflow-journal`, unchanged since, every output in place).
    pub resumed: u64,
    /// Files those inputs had written, kept as they were. `outputs + outputs_before` is the
    /// folder's whole output; `.dcmflow-journal` lists every file by input.
    pub outputs_before: u64,
    /// Set when the journal could not be appended to (e.g. the disk is full): inputs finished
    /// after that are not recorded and a resumed run redoes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_error: Option<String>,
    /// Every failed or quarantined item.
    pub problems: Vec<ItemProblem>,
    /// Inputs skipped as not applicable (e.g. not DICOM), with the reason.
    pub skipped: Vec<ItemProblem>,
    /// Items a filter dropped.
    pub dropped: u64,
    /// Per-stage summaries (e.g. how often each tag was removed), counts only.
    pub summaries: BTreeMap<String, serde_json::Value>,
}

impl RunReport {
    /// Whether every item came through (exit code 0).
    pub fn all_ok(&self) -> bool {
        self.problems.is_empty() && !self.cancelled
    }

    /// Write `run.json` into the folder atomically.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("run.json");
        let tmp = dir.join(format!(".run.json.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, (text + "\n").as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            // Never leave a partial report behind (a full disk, a read-only folder).
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(path)
    }
}

/// Peak resident set size of this process so far, in MiB (Linux only).
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}
