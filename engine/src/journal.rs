//! The run journal, `OUT/.dcmflow-journal`: what a run has finished, so that `dcmflow run
//! --resume` can skip it after a crash, a kill or a full disk. JSON lines, append-only: each run
//! starts with a header (dcmflow version and a fingerprint of recipe, params and secret), then
//! one line per input once everything derived from it has been written or has
//! ended. A torn last line (the process died mid-write) is ignored on reading.
//!
//! Sits beside the runtime: the runtime counts the items in flight per input and records an
//! input here when its count drops to zero; sinks claim files a killed run left behind through
//! [`Leftovers`] when the bytes they would write are identical.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::Secret;
use crate::recipe::{hex, Recipe};

/// The journal's file name in the output folder.
pub const JOURNAL_NAME: &str = ".dcmflow-journal";

/// What makes two runs produce the same outputs: recipe, params, secret and dcmflow version.
/// Only digests are kept; the secret enters as a keyed hash of a fixed label, never itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 over the four fields below.
    pub fingerprint: String,
    /// dcmflow version.
    pub dcmflow_version: String,
    /// SHA-256 of the recipe text (as in run.json).
    pub recipe: String,
    /// SHA-256 of the effective param values (defaults and `--set`).
    pub params: String,
    /// HMAC-SHA256 of a fixed label keyed with the secret, or "none".
    pub secret: String,
}

impl Fingerprint {
    /// The fingerprint of a run of `recipe` with `secret`.
    pub fn new(recipe: &Recipe, secret: Option<&Secret>) -> Fingerprint {
        let params: std::collections::BTreeMap<&str, serde_json::Value> = recipe
            .params
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    serde_json::to_value(&p.value).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        let params = hex(&Sha256::digest(
            serde_json::to_string(&params)
                .unwrap_or_default()
                .as_bytes(),
        ));
        let secret = secret
            .map(|s| hex(&s.mac("dcmflow journal fingerprint", b"")))
            .unwrap_or_else(|| "none".into());
        let version = crate::VERSION.to_string();
        let mut h = Sha256::new();
        for part in [&version, &recipe.sha256, &params, &secret] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        Fingerprint {
            fingerprint: hex(&h.finalize()),
            dcmflow_version: version,
            recipe: recipe.sha256.clone(),
            params,
            secret,
        }
    }

    /// What differs from an earlier run's fingerprint, in words (no values).
    pub fn differences(&self, earlier: &Fingerprint) -> Vec<&'static str> {
        let mut d = Vec::new();
        if self.recipe != earlier.recipe {
            d.push("the recipe changed");
        }
        if self.params != earlier.params {
            d.push("the parameters (defaults or --set values) changed");
        }
        if self.secret != earlier.secret {
            d.push("the project secret changed");
        }
        if self.dcmflow_version != earlier.dcmflow_version {
            d.push("the dcmflow version changed");
        }
        if d.is_empty() && self.fingerprint != earlier.fingerprint {
            d.push("the run fingerprint changed");
        }
        d
    }
}

/// How the journal names an input: HMAC-SHA256 of its path keyed with the project secret, so
/// nobody without the secret can confirm a guessed path; plain SHA-256 when the recipe runs
/// without one (nothing is de-identified then).
pub fn input_key(secret: Option<&Secret>, path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    match secret {
        Some(s) => hex(&s.mac("dcmflow journal input", bytes)),
        None => hex(&Sha256::digest(bytes)),
    }
}

/// One file an input produced, relative to the output folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputFile {
    /// Path relative to the output folder.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// One input that a run finished with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Done {
    /// The input's path as the run found it, as a keyed hash ([`input_key`]): the journal sits
    /// in the output folder, and folder names in a hospital often carry patient names.
    pub input: String,
    /// Its size when the run read it.
    pub size: u64,
    /// Its modification time, nanoseconds since 1970.
    pub mtime_ns: u64,
    /// Every item derived from it was written, dropped or skipped; none failed or was
    /// quarantined. Only such inputs are skipped on resume.
    pub ok: bool,
    /// The files written from it.
    pub outputs: Vec<OutputFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "snake_case")]
enum Line {
    Run {
        #[serde(flatten)]
        fingerprint: Fingerprint,
        started: String,
    },
    Input(Done),
    /// A sink renamed a file after its input was recorded (if_exists: suffix moves the holder
    /// of a name aside when a copy with a lower hash arrives): the record with this path and
    /// size now means `to`.
    Moved {
        from: PathBuf,
        to: PathBuf,
        size: u64,
    },
}

/// Told by sinks when they rename a file already written (paths absolute, size of the file).
pub trait MoveLog: Send + Sync {
    /// `from` (of `size` bytes) is now `to`.
    fn moved(&self, from: &Path, to: &Path, size: u64);
}

/// Apply a rename to recorded outputs.
pub fn apply_move(outputs: &mut [OutputFile], from: &Path, to: &Path, size: u64) {
    for o in outputs.iter_mut() {
        if o.path == from && o.size == size {
            o.path = to.to_path_buf();
        }
    }
}

/// Size and modification time of a file (following links).
pub fn stat(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0);
    Some((m.len(), mtime))
}

/// The journal being written by this run.
pub struct JournalWriter {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl JournalWriter {
    /// Start a fresh journal in `dir` (replacing any earlier one atomically) with this run's
    /// header.
    pub fn fresh(dir: &Path, fp: &Fingerprint, started: &str) -> std::io::Result<JournalWriter> {
        let path = dir.join(JOURNAL_NAME);
        let tmp = dir.join(format!("{JOURNAL_NAME}.{}.tmp", std::process::id()));
        let header = header_line(fp, started);
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(header.as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(JournalWriter {
            path,
            file: Mutex::new(file),
        })
    }

    /// Continue the journal in `dir` with this run's header (after a torn last line, on a line
    /// of its own).
    pub fn append(dir: &Path, fp: &Fingerprint, started: &str) -> std::io::Result<JournalWriter> {
        let path = dir.join(JOURNAL_NAME);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let mut header = header_line(fp, started);
        if text.last().is_some_and(|&b| b != b'\n') {
            header.insert(0, '\n');
        }
        file.write_all(header.as_bytes())?;
        file.flush()?;
        Ok(JournalWriter {
            path,
            file: Mutex::new(file),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one finished input (one write of one whole line).
    pub fn record(&self, done: Done) -> std::io::Result<()> {
        self.line(&Line::Input(done))
    }

    /// Append a rename of a recorded output (paths relative to the output folder).
    pub fn record_move(&self, from: &Path, to: &Path, size: u64) -> std::io::Result<()> {
        self.line(&Line::Moved {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            size,
        })
    }

    fn line(&self, line: &Line) -> std::io::Result<()> {
        let mut line = serde_json::to_string(line).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(line.as_bytes())?;
        f.flush()
    }
}

fn header_line(fp: &Fingerprint, started: &str) -> String {
    let mut s = serde_json::to_string(&Line::Run {
        fingerprint: fp.clone(),
        started: started.to_string(),
    })
    .unwrap_or_default();
    s.push('\n');
    s
}

/// Files under the output folder that were there when a resumed run started and that no
/// finished input accounts for: a killed run may have written them without recording them.
/// A sink that would write identical bytes at such a path takes the file as written.
#[derive(Debug, Default)]
pub struct Leftovers {
    files: Mutex<HashSet<PathBuf>>,
}

impl Leftovers {
    /// Leftovers at these absolute paths.
    pub fn new(files: HashSet<PathBuf>) -> Leftovers {
        Leftovers {
            files: Mutex::new(files),
        }
    }

    /// If `target` is a leftover and `same()` says its bytes are the ones to be written, take it
    /// (once) and return true. Decided under a lock, so two items never take one file.
    pub fn claim(&self, target: &Path, same: impl FnOnce() -> bool) -> bool {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.contains(target) && same() {
            files.remove(target);
            true
        } else {
            false
        }
    }

    /// If `target` is a leftover, forget it and return true (the caller replaces it).
    pub fn take(&self, target: &Path) -> bool {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(target)
    }

    /// A leftover was moved from `from` to `to` (or removed, when `to` is None).
    pub fn moved(&self, from: &Path, to: Option<&Path>) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.remove(from) {
            if let Some(to) = to {
                files.insert(to.to_path_buf());
            }
        }
    }

    /// How many are left unclaimed.
    pub fn len(&self) -> usize {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a resumed run takes over from the journal.
#[derive(Debug, Default)]
pub struct Resume {
    /// Inputs finished by an earlier run whose outputs are all in place, by [`input_key`]. The
    /// runtime skips one only when its size and modification time are still the recorded ones.
    pub complete: HashMap<String, Done>,
    /// Files present but accounted for by no complete input.
    pub leftovers: Leftovers,
    /// Temporary files of a killed run that were removed.
    pub temporaries_removed: usize,
    /// Recorded outputs found damaged (wrong size) and removed, to be written again.
    pub damaged_removed: usize,
    /// Journal lines that could not be read (a torn last line).
    pub unreadable_lines: usize,
    /// Whether a journal was found at all.
    pub journal_found: bool,
}

/// Why a run may not resume.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The journal was written with another recipe, params, secret or version.
    #[error("cannot resume: the journal {path} was written by a different run ({what}); outputs would not match. Resume with the same recipe, parameters and secret, or run without --resume into a new output folder")]
    Mismatch {
        /// The journal.
        path: PathBuf,
        /// What differs, in words.
        what: String,
    },
    /// The journal or the output folder could not be read.
    #[error("cannot resume from {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Read the journal in `dir` and check it against this run's fingerprint. Reads only: nothing is
/// changed, so a refused resume writes nothing.
pub fn read_journal(dir: &Path, current: &Fingerprint) -> Result<Resume, ResumeError> {
    let path = dir.join(JOURNAL_NAME);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resume::default()),
        Err(source) => return Err(ResumeError::Io { path, source }),
    };
    let mut resume = Resume {
        journal_found: true,
        ..Resume::default()
    };
    for raw in text.split(|&b| b == b'\n') {
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice::<Line>(raw) {
            Ok(Line::Run { fingerprint, .. }) => {
                let what = current.differences(&fingerprint);
                if !what.is_empty() {
                    return Err(ResumeError::Mismatch {
                        path,
                        what: what.join(", "),
                    });
                }
            }
            Ok(Line::Input(done)) => {
                resume.complete.insert(done.input.clone(), done);
            }
            Ok(Line::Moved { from, to, size }) => {
                for done in resume.complete.values_mut() {
                    apply_move(&mut done.outputs, &from, &to, size);
                }
            }
            Err(_) => resume.unreadable_lines += 1,
        }
    }
    Ok(resume)
}

/// After [`read_journal`] accepted the journal: keep only the inputs that can be skipped, remove
/// temporary files and damaged recorded outputs, and list the files no skipped input accounts
/// for as leftovers. `dir` is the (canonical) output folder.
pub fn prepare(dir: &Path, mut resume: Resume) -> Result<Resume, ResumeError> {
    // A recorded path may be named by two inputs: under if_exists: suffix a later copy with a
    // lower hash moves the first holder aside, and the first record goes stale. So a file is
    // damaged only when its size matches no record of its path.
    let mut sizes: HashMap<PathBuf, Vec<u64>> = HashMap::new();
    for done in resume.complete.values() {
        for o in &done.outputs {
            sizes.entry(dir.join(&o.path)).or_default().push(o.size);
        }
    }
    let mut keep = HashSet::new();
    let mut complete = HashMap::new();
    for (input, done) in std::mem::take(&mut resume.complete) {
        let mut whole = true;
        for o in &done.outputs {
            let p = dir.join(&o.path);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_file() && m.len() == o.size => {}
                Ok(m) if m.is_file() => {
                    whole = false;
                    // Our output, cut short or grown: its input is done again.
                    let recorded = sizes.get(&p).is_some_and(|s| s.contains(&m.len()));
                    if !recorded && std::fs::remove_file(&p).is_ok() {
                        resume.damaged_removed += 1;
                    }
                }
                _ => whole = false,
            }
        }
        if done.ok && whole {
            keep.extend(done.outputs.iter().map(|o| dir.join(&o.path)));
            complete.insert(input, done);
        }
    }
    resume.complete = complete;
    let mut leftovers = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|source| ResumeError::Io {
            path: d.clone(),
            source,
        })?;
        for e in rd.flatten() {
            let p = e.path();
            let Ok(t) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if t.is_dir() {
                stack.push(p);
            } else if name.ends_with(".dcmflow-tmp") {
                if std::fs::remove_file(&p).is_ok() {
                    resume.temporaries_removed += 1;
                }
            } else if t.is_file()
                && !(d == dir
                    && (name == JOURNAL_NAME
                        || name == "run.json"
                        || (name.starts_with(JOURNAL_NAME) && name.ends_with(".tmp"))
                        || (name.starts_with(".run.json.") && name.ends_with(".tmp"))))
                && !keep.contains(&p)
            {
                leftovers.insert(p);
            }
        }
    }
    resume.leftovers = Leftovers::new(leftovers);
    Ok(resume)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(text: &str, sets: &[(String, String)]) -> Recipe {
        Recipe::parse("r.yaml", text.to_string(), sets).unwrap()
    }

    const TEXT: &str = "version: 1\nparams:\n  p: { type: string, default: a }\nstages:\n  - id: read\n    type: read_dicom\n";

    #[test]
    fn fingerprint_names_what_changed_and_never_holds_the_secret() {
        let s1 = Secret::from_bytes(b"0123456789abcdef-one", "t").unwrap();
        let s2 = Secret::from_bytes(b"0123456789abcdef-two", "t").unwrap();
        let a = Fingerprint::new(&recipe(TEXT, &[]), Some(&s1));
        assert_eq!(a, Fingerprint::new(&recipe(TEXT, &[]), Some(&s1)));
        let b = Fingerprint::new(&recipe(TEXT, &[]), Some(&s2));
        assert_eq!(b.differences(&a), vec!["the project secret changed"]);
        let c = Fingerprint::new(&recipe(TEXT, &[("p".into(), "b".into())]), Some(&s1));
        assert_eq!(
            c.differences(&a),
            vec!["the parameters (defaults or --set values) changed"]
        );
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("0123456789abcdef"));
    }

    #[test]
    fn torn_last_line_is_ignored_and_the_next_run_starts_on_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let fp = Fingerprint::new(&recipe(TEXT, &[]), None);
        let j = JournalWriter::fresh(dir.path(), &fp, "t0").unwrap();
        j.record(Done {
            input: input_key(None, Path::new("a.dcm")),
            size: 1,
            mtime_ns: 2,
            ok: true,
            outputs: vec![],
        })
        .unwrap();
        drop(j);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_NAME))
            .unwrap();
        f.write_all(b"{\"line\":\"input\",\"inp").unwrap();
        drop(f);
        let r = read_journal(dir.path(), &fp).unwrap();
        assert_eq!(r.unreadable_lines, 1);
        assert!(r
            .complete
            .contains_key(&input_key(None, Path::new("a.dcm"))));
        JournalWriter::append(dir.path(), &fp, "t1").unwrap();
        let r = read_journal(dir.path(), &fp).unwrap();
        assert_eq!(r.unreadable_lines, 1, "the header is on a line of its own");
    }
}
