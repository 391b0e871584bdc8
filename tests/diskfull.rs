//! Faults of the output file system, for real: a small tmpfs that fills up part way through a
//! run, one too small for even the report, and a read-only one. Every file under a final name
//! is complete, no temporary file is left, the report (or standard error) says what failed and
//! why, and `--resume` finishes the job once there is room.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); where `mount` is refused the tests say why and pass,
//! under CI too, since CI may run in a container without mount rights.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct Mount {
    dir: PathBuf,
}

impl Mount {
    /// Mount a tmpfs of `size` (e.g. "700k") at `dir`, or say why not.
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Mount {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "skipping: cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping: cannot run mount: {e}");
                None
            }
        }
    }

    fn remount(&self, opts: &str) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "remount {opts}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a child still running): detach it so nothing is left mounted.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn copy_run(input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = run_args("recipes/copy.yaml", input, out, &["--threads", "1"]);
    args.extend_from_slice(extra);
    dcmflow(&args)
}

/// run.json, or the report printed on standard output when run.json could not be written.
fn report_of(out: &Path, o: &std::process::Output) -> serde_json::Value {
    match std::fs::read(out.join("run.json")) {
        Ok(b) => serde_json::from_slice(&b).unwrap(),
        Err(_) => {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("cannot write run.json"), "{err}");
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
                panic!("no run.json and no report on stdout ({e}): {}", text(o))
            })
        }
    }
}

fn outputs(out: &Path) -> Vec<PathBuf> {
    files_with_journal(out)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap();
            n != "run.json" && n != ".dcmflow-journal"
        })
        .collect()
}

fn assert_no_temporaries(out: &Path) {
    let left: Vec<_> = files_with_journal(out)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".tmp") || n.ends_with(".dcmflow-tmp")
        })
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// Identifying values of the inputs (patient names and IDs), which no message may carry.
fn identifying_values(input: &Path) -> Vec<String> {
    use dicom_dictionary_std::tags;
    let mut v = Vec::new();
    for p in files_below(input) {
        let Ok(obj) = dicom_object::open_file(&p) else {
            continue;
        };
        for t in [tags::PATIENT_NAME, tags::PATIENT_ID] {
            if let Some(s) = obj
                .element_opt(t)
                .ok()
                .flatten()
                .and_then(|e| e.to_str().ok())
            {
                let s = s.trim_matches(|c: char| c == '\0' || c == ' ').to_string();
                if s.len() >= 4 {
                    v.push(s);
                }
            }
        }
    }
    v
}

#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn a_disk_that_fills_up_leaves_only_complete_files_and_resume_finishes_the_job() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for f in ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm"] {
        std::fs::copy(root().join("tests/data/sample").join(f), input.join(f)).unwrap();
    }
    for f in [
        "ct/693_UNCR.dcm",
        "ct/CT-MONO2-16-ankle.dcm",
        "ct/ctbrain1.dcm",
        "mr/phantom.dcm",
    ] {
        let name = f.replace('/', "_");
        std::fs::copy(corpus.join(f), input.join(name)).unwrap();
    }

    let reference = dir.path().join("ref");
    let o = copy_run(&input, &reference, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let expected = outputs(&reference);
    assert_eq!(expected.len(), 7);

    let out = dir.path().join("full");
    let Some(mount) = Mount::tmpfs(&out, "700k") else {
        return;
    };
    let o = copy_run(&input, &out, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        !t.contains("panicked") && !t.contains("internal error"),
        "{t}"
    );
    assert_no_temporaries(&out);
    let written = outputs(&out);
    assert!(
        !written.is_empty() && written.len() < expected.len(),
        "the disk should take some but not all outputs: {written:?}"
    );
    for p in &written {
        let rel = p.strip_prefix(&out).unwrap();
        dicom_object::open_file(p)
            .unwrap_or_else(|e| panic!("partial file {}: {e}", rel.display()));
        assert_eq!(
            std::fs::read(p).unwrap(),
            std::fs::read(reference.join(rel)).unwrap(),
            "{} differs from an unconstrained run",
            rel.display()
        );
    }
    let report = report_of(&out, &o);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(
        problems.len() + written.len(),
        expected.len(),
        "every input is either written or listed: {problems:?}"
    );
    let secrets = identifying_values(&input);
    assert!(!secrets.is_empty());
    for p in problems {
        let reason = p["reason"].as_str().unwrap();
        assert_eq!(p["outcome"], "failed");
        assert!(
            reason.contains("No space left on device") && reason.contains("cannot write"),
            "{reason}"
        );
        assert!(
            reason.contains(".dcm"),
            "the reason names the path: {reason}"
        );
        for s in &secrets {
            assert!(!reason.contains(s.as_str()), "{reason}");
        }
    }

    // Room again: a resumed run writes what is missing and keeps what was written.
    mount.remount("size=8m");
    let o = copy_run(&input, &out, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_no_temporaries(&out);
    let report = report_of(&out, &o);
    assert_eq!(report["resumed"].as_u64(), Some(written.len() as u64));
    let rel = |v: &[PathBuf], base: &Path| -> Vec<PathBuf> {
        v.iter()
            .map(|p| p.strip_prefix(base).unwrap().to_path_buf())
            .collect()
    };
    assert_eq!(rel(&outputs(&out), &out), rel(&expected, &reference));
    for p in &expected {
        let r = p.strip_prefix(&reference).unwrap();
        assert_eq!(
            std::fs::read(out.join(r)).unwrap(),
            std::fs::read(p).unwrap()
        );
    }
    drop(mount);
}

#[test]
fn no_room_for_the_journal_or_the_report_is_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_files(&input, 40);
    let out = dir.path().join("tiny");
    // One page: the journal's header fits, its later lines and every output do not.
    let Some(_mount) = Mount::tmpfs(&out, "4k") else {
        return;
    };
    let o = copy_run(&input, &out, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        !t.contains("panicked") && !t.contains("internal error"),
        "{t}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot append to the journal") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(err.contains("cannot write run.json"), "{err}");
    let report = report_of(&out, &o);
    assert_eq!(report["problems"].as_array().unwrap().len(), 40);
    assert!(report["journal_error"]
        .as_str()
        .unwrap()
        .contains("No space left on device"));
    assert!(outputs(&out).is_empty(), "{:?}", outputs(&out));
    assert_no_temporaries(&out);
}

#[test]
fn a_read_only_output_folder_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("tests/data/sample");
    let out = dir.path().join("ro");
    let Some(mount) = Mount::tmpfs(&out, "1m") else {
        return;
    };
    mount.remount("ro");
    let o = copy_run(&input, &out, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("Read-only file system"), "{t}");
    assert!(
        t.contains(".dcmflow-journal"),
        "the message names the path: {t}"
    );
    assert!(!t.contains("panicked"), "{t}");
    assert!(files_with_journal(&out).is_empty());
    // --resume says the same, and writes nothing either.
    let o = copy_run(&input, &out, &["--resume"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("Read-only file system"), "{}", text(&o));
    assert!(files_with_journal(&out).is_empty());
}
