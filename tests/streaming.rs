//! Streaming at scale and stopping cleanly: 10,000 files through read -> write, and a run
//! interrupted with SIGINT leaves no partial file.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ten_thousand_files_stream_through_read_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_files(&input, 10_000);
    let out = dir.path().join("out");
    let o = dcmflow(&[
        "run",
        "recipes/copy.yaml",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
        "--set",
        "layout={SOPInstanceUID}.dcm",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(report["outputs"].as_u64(), Some(10_000));
    assert_eq!(files_below(&out).len(), 10_001);
}

#[test]
fn sigint_mid_run_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_files(&input, 4000);
    let out = dir.path().join("out");
    let child = Command::new(env!("CARGO_BIN_EXE_dcmflow"))
        .args([
            "run",
            "recipes/copy.yaml",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--quiet",
            "--threads",
            "2",
        ])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some files are out, then interrupt.
    let start = Instant::now();
    while files_below(&out).len() < 100 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let result = child.wait_with_output().unwrap();
    let files = files_below(&out);
    assert!(
        files
            .iter()
            .all(|p| !p.to_string_lossy().contains("dcmflow-tmp")),
        "temporary files left"
    );
    let dcms: Vec<_> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    for p in &dcms {
        dicom_object::open_file(p).unwrap_or_else(|e| panic!("partial file {}: {e}", p.display()));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    if dcms.len() < 4000 {
        assert_eq!(
            report["cancelled"],
            true,
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert_eq!(result.status.code(), Some(1));
    }
    assert_eq!(report["outputs"].as_u64().unwrap() as usize, dcms.len());
}
