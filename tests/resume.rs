//! `dcmflow run --resume`: a run killed part way (SIGKILL), re-run with `--resume`, ends with the
//! same output tree as an uninterrupted run, without redoing what was complete; a resume with
//! another secret or parameter is refused and writes nothing; a torn journal line is tolerated;
//! outputs deleted or cut short by hand are written again.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const JOURNAL: &str = ".dcmflow-journal";

/// `--set mask_rules=...` for the sample studies: their derived MR images count as possible
/// carriers of burned-in text, and the rule file declares them free of it.
fn sample_rules() -> String {
    format!(
        "mask_rules={}",
        root().join("tests/data/sample-mask-rules.yaml").display()
    )
}

fn deid(input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let rules = sample_rules();
    let mut extra = extra.to_vec();
    extra.extend(["--set", rules.as_str()]);
    run_with_test_secret("recipes/deid-longitudinal.yaml", input, out, &extra)
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap()
}

/// Every output file (not run.json, not the journal) with its SHA-256, by relative path.
fn tree(out: &Path) -> Vec<(PathBuf, String)> {
    checksums(out)
        .into_iter()
        .filter(|(p, _)| p != Path::new("run.json"))
        .collect()
}

fn no_temporaries(out: &Path) {
    let left: Vec<_> = files_with_journal(out)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".dcmflow-tmp") || n.ends_with(".tmp")
        })
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// The inputs a journal records as complete (ok), with their outputs.
fn journal_complete(out: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(out.join(JOURNAL)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["line"] == "input" && v["ok"] == true)
        .map(|v| {
            (
                v["input"].as_str().unwrap().to_string(),
                v["outputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["path"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn inode_and_mtime(p: &Path) -> (u64, i64, i64) {
    let m = std::fs::metadata(p).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec())
}

#[test]
fn sigkill_mid_run_then_resume_gives_the_uninterrupted_tree_without_redoing_complete_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_files(&input, 3000);

    let reference = dir.path().join("ref");
    let o = deid(&input, &reference, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let expected = tree(&reference);
    assert_eq!(expected.len(), 3000);

    let out = dir.path().join("out");
    let rules = sample_rules();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dcmflow"))
        .args(run_args(
            "recipes/deid-longitudinal.yaml",
            &input,
            &out,
            &["--quiet", "--threads", "2", "--set", &rules],
        ))
        .current_dir(root())
        .env("DCMFLOW_SECRET", TEST_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL: no handler runs) once a few hundred inputs are recorded.
    let start = Instant::now();
    while journal_complete(&out).len() < 300 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal, not finished");
    assert!(
        !out.join("run.json").exists(),
        "a killed run writes no report"
    );

    let complete = journal_complete(&out);
    assert!(complete.len() >= 300);
    // The journal leaves with the outputs: it names inputs by a keyed hash, never by path
    // (hospital folder names carry patient names).
    let journal = std::fs::read_to_string(out.join(JOURNAL)).unwrap();
    for leak in ["f00001.dcm", "d000/", input.to_str().unwrap()] {
        assert!(
            !journal.contains(leak),
            "the journal names an input path ({leak})"
        );
    }
    assert!(
        complete.len() < 3000,
        "the run finished before it was killed"
    );
    // Whatever is under a final name is whole, even without the journal's word for it.
    for p in files_below(&out) {
        if p.extension().is_some_and(|e| e == "dcm") {
            dicom_object::open_file(&p)
                .unwrap_or_else(|e| panic!("partial file {}: {e}", p.display()));
        }
    }
    let before: Vec<(PathBuf, (u64, i64, i64))> = complete
        .iter()
        .flat_map(|(_, outs)| outs.iter())
        .map(|rel| (PathBuf::from(rel), inode_and_mtime(&out.join(rel))))
        .collect();
    assert_eq!(before.len(), complete.len());

    let o = deid(&input, &out, &["--resume", "--threads", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    no_temporaries(&out);
    assert_eq!(tree(&out), expected, "same tree as the uninterrupted run");
    let r = report(&out);
    let resumed = r["resumed"].as_u64().unwrap();
    assert_eq!(resumed as usize, complete.len());
    assert_eq!(r["outputs_before"].as_u64(), Some(resumed));
    assert_eq!(r["outputs"].as_u64().unwrap() + resumed, 3000);
    assert_eq!(
        r["stages"]["deid"]["received"].as_u64().unwrap() + resumed,
        3000
    );
    assert!(
        text(&o).contains(&format!("{resumed} inputs resumed")),
        "{}",
        text(&o)
    );
    // Complete inputs were not redone: their files are the very same files.
    for (rel, was) in &before {
        assert_eq!(
            &inode_and_mtime(&out.join(rel)),
            was,
            "{} was rewritten",
            rel.display()
        );
    }
    // A second resume has nothing left to do.
    let o = deid(&input, &out, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = report(&out);
    assert_eq!(r["resumed"].as_u64(), Some(3000));
    assert_eq!(r["outputs"].as_u64(), Some(0));
    assert_eq!(tree(&out), expected);
}

/// Every file below `dir` (journal included) with its bytes and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, i64, i64)> {
    files_with_journal(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes, m.mtime(), m.mtime_nsec())
        })
        .collect()
}

#[test]
fn resume_with_another_secret_or_parameter_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("tests/data/sample");
    let out = dir.path().join("out");
    let o = deid(&input, &out, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Leave something for a resume to do: one output gone, a temporary file left.
    let victim = files_with_ext(&out, "dcm").remove(0);
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(out.join(".x.dcm.1-1.dcmflow-tmp"), b"half").unwrap();
    let before = snapshot(&out);

    let other_secret = "another-test-secret-not-for-real-use";
    let o = dcmflow_with_secret(
        &[
            "run",
            "recipes/deid-longitudinal.yaml",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--resume",
        ],
        other_secret,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("the project secret changed"), "{t}");
    assert!(
        t.contains(".dcmflow-journal"),
        "the message names the journal: {t}"
    );
    assert!(!t.contains(other_secret) && !t.contains(TEST_SECRET), "{t}");
    assert_eq!(snapshot(&out), before, "a refused resume writes nothing");

    let o = deid(&input, &out, &["--resume", "--set", "shift_min_days=-800"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("the parameters"), "{t}");
    assert!(!t.contains("project secret changed"), "{t}");
    assert_eq!(snapshot(&out), before, "a refused resume writes nothing");

    // The same recipe, parameters and secret resume.
    let o = deid(&input, &out, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(victim.is_file());
    no_temporaries(&out);
}

#[test]
fn a_torn_last_journal_line_is_accepted_and_that_input_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("tests/data/sample");
    let reference = dir.path().join("ref");
    let o = deid(&input, &reference, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let out = dir.path().join("out");
    let o = deid(&input, &out, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Cut the journal in the middle of its last line, as a kill during the append would.
    let j = out.join(JOURNAL);
    let text_before = std::fs::read_to_string(&j).unwrap();
    let last_start = text_before.trim_end().rfind('\n').unwrap() + 1;
    let cut = last_start + (text_before.len() - last_start) / 2;
    std::fs::write(&j, &text_before[..cut]).unwrap();
    assert_eq!(journal_complete(&out).len(), 2);

    let o = deid(&input, &out, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = report(&out);
    assert_eq!(r["resumed"].as_u64(), Some(2));
    // The torn input's file was already there with the same bytes: kept, not suffixed.
    assert_eq!(r["outputs"].as_u64(), Some(1));
    assert_eq!(tree(&out), tree(&reference));
    // The torn fragment stays on a line of its own; the journal now has all three.
    assert_eq!(journal_complete(&out).len(), 3);
    let o = deid(&input, &out, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(report(&out)["resumed"].as_u64(), Some(3));
}

#[test]
fn outputs_deleted_or_cut_short_by_hand_are_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("tests/data/sample");
    let out = dir.path().join("out");
    let o = deid(&input, &out, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let expected = tree(&out);
    let dcms = files_with_ext(&out, "dcm");
    assert_eq!(dcms.len(), 3);
    std::fs::remove_file(&dcms[0]).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&dcms[1])
        .unwrap();
    f.set_len(100).unwrap();
    drop(f);
    let untouched = inode_and_mtime(&dcms[2]);

    let o = deid(&input, &out, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = report(&out);
    assert_eq!(r["resumed"].as_u64(), Some(1));
    assert_eq!(r["outputs"].as_u64(), Some(2));
    assert_eq!(tree(&out), expected);
    assert_eq!(inode_and_mtime(&dcms[2]), untouched);
    no_temporaries(&out);
}

#[test]
fn a_file_written_but_not_recorded_is_kept_under_if_exists_error() {
    // Default policy (error): a file the killed run wrote before it could record the input is
    // taken as written when its bytes are the same, and refused when they are not.
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("strict.yaml");
    std::fs::write(
        &recipe,
        "version: 1\nstages:\n  - id: read\n    type: read_dicom\n  - id: write\n    type: write_dicom\n    inputs: [read]\n    with: { path: \"{SOPInstanceUID}.dcm\" }\n",
    )
    .unwrap();
    let input = dir.path().join("in");
    make_files(&input, 5);
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            recipe.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        dcmflow(&args)
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let expected = tree(&out);
    // Forget the last two inputs, as if killed after their files were named.
    let j = out.join(JOURNAL);
    let lines: Vec<String> = std::fs::read_to_string(&j)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    std::fs::write(&j, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    let o = run(&["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = report(&out);
    assert_eq!(r["resumed"].as_u64(), Some(3));
    assert_eq!(r["outputs"].as_u64(), Some(2));
    assert_eq!(tree(&out), expected);

    // Different bytes under the name: the policy applies (error), the file is kept.
    let lines: Vec<String> = std::fs::read_to_string(&j)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    std::fs::write(&j, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let forgotten: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let victim = out.join(forgotten["outputs"][0]["path"].as_str().unwrap());
    std::fs::write(&victim, b"not the same bytes").unwrap();
    let o = run(&["--resume"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"not the same bytes");
}

#[test]
fn without_resume_the_journal_starts_afresh_and_if_exists_applies() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("tests/data/sample");
    let out = dir.path().join("out");
    let o = deid(&input, &out, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let first = std::fs::read_to_string(out.join(JOURNAL)).unwrap();
    let count = |t: &str, kind: &str| {
        t.lines()
            .filter(|l| l.contains(&format!("\"line\":\"{kind}\"")))
            .count()
    };
    assert_eq!(count(&first, "run"), 1);
    assert_eq!(count(&first, "input"), 3);
    // A second plain run of the same command finds every file already there with the same
    // bytes: the tree is unchanged (no `~hash` copies), and its journal holds only itself.
    let before = tree(&out);
    let o = deid(&input, &out, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(tree(&out), before);
    let second = std::fs::read_to_string(out.join(JOURNAL)).unwrap();
    assert_eq!(count(&second, "run"), 1);
    assert_eq!(count(&second, "input"), 3);
    assert_eq!(report(&out)["resumed"].as_u64(), Some(0));
    // With another secret the files differ: if_exists applies (deid-longitudinal: suffix keeps
    // both) and nothing of the first run is replaced.
    let rules = sample_rules();
    let o = dcmflow_with_secret(
        &run_args(
            "recipes/deid-longitudinal.yaml",
            &input,
            &out,
            &["--quiet", "--set", &rules],
        ),
        "another-secret-of-enough-length-0123456789",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after = tree(&out);
    assert_eq!(after.len(), before.len() * 2, "{after:?}");
    for (path, bytes) in &before {
        assert!(
            after.iter().any(|(p, b)| p == path && b == bytes),
            "{path:?} changed"
        );
    }
}
