//! Hostile input: truncated copies of every corpus file (at many offsets) run through a
//! de-identification recipe. Every copy gives an error with a reason or a complete output;
//! nothing panics, and no output is left unmarked as de-identified.

mod common;

use common::*;

#[test]
fn truncated_corpus_files_give_errors_or_complete_outputs_never_a_panic() {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let offsets = 10;
    let mut made = 0;
    for (i, f) in files_below(&corpus).into_iter().enumerate() {
        let bytes = std::fs::read(&f).unwrap();
        // Big files make the test slow without finding more: their headers are covered by
        // the cuts in the first 4 KiB.
        let len = bytes.len().min(256 << 10);
        for k in 1..=offsets {
            let cut = if k <= 4 {
                4096 * k / 4
            } else {
                len * (k - 4) / (offsets - 3)
            };
            if cut == 0 || cut >= bytes.len() {
                continue;
            }
            std::fs::write(input.join(format!("f{i:03}_{k:02}.dcm")), &bytes[..cut]).unwrap();
            made += 1;
        }
    }
    assert!(made > 500, "made {made} truncated copies");
    let out = dir.path().join("out");
    let o = dcmflow_with_env(
        &[
            "run",
            "recipes/deid-safe-harbor.yaml",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--quiet",
            "--set",
            "burned_in=allow",
        ],
        &[("DCMFLOW_SECRET", "hostile-test-secret-0123456789")],
    );
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    for p in report["problems"].as_array().unwrap() {
        let reason = p["reason"].as_str().unwrap();
        assert!(
            !reason.contains("internal error"),
            "{}: {reason}",
            p["input"]
        );
        assert!(!reason.is_empty());
    }
    let mut outputs = 0;
    for p in files_below(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
    {
        let obj = dicom_object::open_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let removed = obj
            .element(dicom_dictionary_std::tags::PATIENT_IDENTITY_REMOVED)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(removed.trim(), "YES");
        outputs += 1;
    }
    eprintln!(
        "{made} truncated copies: {outputs} written, {} refused with a reason",
        report["problems"].as_array().unwrap().len()
    );
}
