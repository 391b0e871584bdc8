//! End-to-end tests of the `dcmflow` command line: diagnostics, the copy recipe over the shared
//! corpus, folder safety, generated docs that must stay current.

mod common;

use common::*;
use std::path::Path;

#[test]
fn cycle_unknown_input_and_misspelt_field_are_all_reported_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("bad.yaml");
    std::fs::write(
        &recipe,
        "version: 1\nstages:\n  - id: read\n    type: read_dicom\n  - id: keep\n    type: filter\n    inputs: [read, again]\n    with:\n      conditions: [{attribute: Modality, equals: CT}]\n  - id: again\n    type: filter\n    inputs: [keep]\n    with:\n      conditions: [{attribute: Modality, equals: CT}]\n  - id: write\n    type: write_dicom\n    inputs: [keep, raed]\n    with:\n      paht: \"{SOPInstanceUID}.dcm\"\n",
    )
    .unwrap();
    let r = recipe.to_str().unwrap();
    let o = dcmflow(&["validate", r]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains(":5:5: stage \"keep\" (filter): cycle: keep -> again feed each other"),
        "{t}"
    );
    assert!(
        t.contains(
            ":17:20: stage \"write\" (write_dicom): unknown input \"raed\", did you mean \"read\"?"
        ),
        "{t}"
    );
    assert!(
        t.contains(
            ":19:7: stage \"write\" (write_dicom): unknown field \"paht\", did you mean \"path\"?"
        ),
        "{t}"
    );

    let out = dir.path().join("out");
    let o = dcmflow(&[
        "run",
        r,
        "--input",
        "tests",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !out.exists(),
        "nothing is run, not even the output folder made"
    );
}

#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn copy_recipe_over_the_corpus_writes_every_readable_file_and_leaves_the_corpus_untouched() {
    let corpus = corpus();
    let before = checksums(&corpus);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = dcmflow(&[
        "run",
        "recipes/copy.yaml",
        "--input",
        corpus.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
        // The checks below read the paths of the inputs listed.
        "--report-paths",
        "plain",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "broken files make the exit code 1: {}",
        text(&o)
    );
    assert_eq!(checksums(&corpus), before, "inputs are never modified");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    for p in problems {
        let input = p["input"].as_str().unwrap();
        assert!(!p["reason"].as_str().unwrap().is_empty());
        // Only files that are broken on purpose, or are not instances, may fail.
        assert!(
            input.contains("/broken/")
                || input.contains("DICOMDIR")
                || input.ends_with("nested_priv_SQ.dcm"),
            "unexpected failure: {input}: {}",
            p["reason"]
        );
    }
    // Everything read was written, and every output is complete, parseable DICOM.
    let read = &report["stages"]["read"];
    let written = report["outputs"].as_u64().unwrap();
    assert_eq!(
        written,
        report["stages"]["write"]["emitted"].as_u64().unwrap()
    );
    assert!(written >= 100, "wrote {written}");
    let skipped_at = |stage: &str| {
        report["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["stage"] == stage)
            .count()
    };
    assert_eq!(
        read["skipped"].as_u64().unwrap() as usize,
        skipped_at("read")
    );
    // Byte-identical copies of one instance are kept once (if_exists: suffix), and listed.
    assert_eq!(
        report["stages"]["write"]["skipped"].as_u64().unwrap() as usize,
        skipped_at("write")
    );
    let outputs: Vec<_> = files_below(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    assert_eq!(outputs.len() as u64, written);
    for p in &outputs {
        dicom_object::open_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    // Non-DICOM files are skipped, not errors.
    let skipped = report["skipped"].as_array().unwrap();
    assert!(skipped
        .iter()
        .any(|s| s["input"].as_str().unwrap().ends_with("MANIFEST.csv")));
    // The report records what ran.
    assert_eq!(report["recipe"]["sha256"].as_str().unwrap().len(), 64);
    assert!(report["dcmflow_version"].is_string());
}

#[test]
fn output_folder_inside_an_input_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_files(dir.path(), 2);
    let out = dir.path().join("out");
    let o = dcmflow(&[
        "run",
        "recipes/copy.yaml",
        "--input",
        dir.path().to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("is inside the input folder"),
        "{}",
        text(&o)
    );
}

#[test]
fn every_shipped_recipe_and_example_validates() {
    let mut n = 0;
    for dir in ["recipes", "examples"] {
        for p in files_below(&root().join(dir)) {
            if p.extension().is_some_and(|e| e == "yaml") {
                let o = dcmflow(&["validate", p.to_str().unwrap()]);
                assert!(o.status.success(), "{}: {}", p.display(), text(&o));
                n += 1;
            }
        }
    }
    assert!(n >= 2);
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let a = s
        .find(start)
        .unwrap_or_else(|| panic!("marker {start} missing"))
        + start.len();
    let b = s[a..].find(end).unwrap() + a;
    &s[a..b]
}

#[test]
fn checked_in_schema_and_readme_stage_table_are_current() {
    let o = dcmflow(&["schema"]);
    assert!(o.status.success());
    let fresh = String::from_utf8(o.stdout).unwrap();
    let stored = std::fs::read_to_string(root().join("schemas/recipe.schema.json")).unwrap();
    assert!(
        stored.trim() == fresh.trim(),
        "schemas/recipe.schema.json is stale: run `bash .ci/gen-docs`"
    );

    let o = dcmflow(&["stages", "--format", "markdown"]);
    let table = String::from_utf8(o.stdout).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        between(&readme, "<!-- stages:begin -->\n", "<!-- stages:end -->").trim() == table.trim(),
        "README stage table is stale: run `bash .ci/gen-docs`"
    );
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let o = dcmflow(&["graph", "recipes/copy.yaml"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("\"read\" -> \"write\" [label=\"instance\"]"),
        "{t}"
    );
    let o = dcmflow(&["graph", "recipes/copy.yaml", "--format", "mermaid"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("s0 -->|instance| s1"));
}

#[test]
fn unknown_set_param_is_a_recipe_error() {
    let o = dcmflow(&["validate", "recipes/copy.yaml", "--set", "layot=x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("did you mean \"layout\""), "{}", text(&o));
    let _ = Path::new(".");
}
