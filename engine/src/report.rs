//! The run report, `run.json` in the output folder: what ran (dcmflow version, recipe and its
//! SHA-256, params with redactions), when, and what happened to every item. Reasons name tags
//! and problems, never PHI values; the secret is never written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

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
    /// The input the item came from.
    pub input: PathBuf,
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
    /// Inputs as given.
    pub inputs: Vec<PathBuf>,
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
