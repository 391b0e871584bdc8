//! What a run takes in and what its report says about its inputs, through the `dcmflow` command
//! line: `--set` values stay one value in the field that refers to them, the project secret is
//! used as the bytes it is (never lossily converted), and `run.json` names inputs by a keyed hash
//! unless `--report-paths plain` asks for paths.

mod common;

use common::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// A rules file that masks nothing (valid for `mask_regions`).
const RULES: &str = "- name: no text here\n  when: { Modality: CR }\n  rects: []\n";

#[test]
fn a_rule_file_path_with_backslashes_reaches_mask_regions_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // On Unix a backslash is an ordinary character of a file name, as in a Windows path.
    let rules = dir.path().join(r"site\rules\new.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let set = format!("mask_rules={}", rules.to_str().unwrap());
    let o = dcmflow(&["validate", "recipes/deid-safe-harbor.yaml", "--set", &set]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_set_value_cannot_add_a_second_rule_file_to_the_list_it_is_quoted_in() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(&a, RULES).unwrap();
    std::fs::write(&b, RULES).unwrap();
    // Spliced into `rule_files: ["${mask_rules}"]` as text, this would make a list of two
    // existing files; as a value it is one file name, which does not exist.
    let value = format!("{}\", \"{}", a.display(), b.display());
    let set = format!("mask_rules={value}");
    let o = dcmflow(&["validate", "recipes/deid-safe-harbor.yaml", "--set", &set]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("rule file {value}:")),
        "the whole value is one file name: {}",
        text(&o)
    );
}

/// SHA-256 of every `.dcm` output below `out`, by relative path.
fn dcm_outputs(out: &Path) -> Vec<(std::path::PathBuf, String)> {
    checksums(out)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "dcm"))
        .collect()
}

#[test]
fn two_non_utf8_secrets_that_differ_only_in_their_invalid_bytes_give_different_pseudonyms() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_files(&input, 1);
    let secret = |first: u8| {
        let mut b = vec![first];
        b.extend_from_slice(b"-the-same-long-project-secret-text");
        OsString::from_vec(b)
    };
    let run = |name: &str, s: OsString| {
        let out = dir.path().join(name);
        let o = dcmflow_with_env(
            &run_args("recipes/deid-safe-harbor.yaml", &input, &out, &["--quiet"]),
            &[("DCMFLOW_SECRET", s)],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        dcm_outputs(&out)
    };
    let ff = run("ff", secret(0xFF));
    let ff_again = run("ff-again", secret(0xFF));
    let fe = run("fe", secret(0xFE));
    assert_eq!(ff.len(), 1);
    assert_eq!(ff, ff_again, "the same secret gives the same pseudonyms");
    assert_ne!(
        ff, fe,
        "0xFF and 0xFE would both become U+FFFD in a lossy conversion; as bytes they differ"
    );
}

/// An input folder named like a patient, holding a file that fails (cut short), one that is
/// quarantined (burned-in annotation, no mask rule) and one that is not DICOM.
fn patient_folder(root: &Path) -> std::path::PathBuf {
    let folder = root.join("in").join("DOE^JANE 1961-02-03");
    std::fs::create_dir_all(&folder).unwrap();
    let ct = small_ct(
        "P1",
        "1.2.826.0.1.3680043.10.7",
        "1.2.826.0.1.3680043.10.7.1",
        "1.2.826.0.1.3680043.10.7.1.1",
        1,
    );
    std::fs::write(folder.join("cut.dcm"), &ct[..ct.len() / 2]).unwrap();
    let plain = root.join("plain.dcm");
    std::fs::write(&plain, &ct).unwrap();
    let mut obj = dicom_object::open_file(&plain).unwrap();
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::BURNED_IN_ANNOTATION,
        dicom_core::VR::CS,
        dicom_core::PrimitiveValue::from("YES"),
    ));
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::SOP_INSTANCE_UID,
        dicom_core::VR::UI,
        dicom_core::PrimitiveValue::from("1.2.826.0.1.3680043.10.7.1.2"),
    ));
    obj.write_to_file(folder.join("burned.dcm")).unwrap();
    std::fs::write(folder.join("notes.txt"), "not DICOM").unwrap();
    folder
}

#[test]
fn run_json_names_inputs_by_a_keyed_hash_unless_plain_paths_are_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let folder = patient_folder(dir.path());
    for (recipe, secret) in [
        ("recipes/deid-safe-harbor.yaml", Some(TEST_SECRET)),
        ("recipes/copy.yaml", None),
    ] {
        let name = Path::new(recipe).file_stem().unwrap().to_str().unwrap();
        let env: Vec<(&str, &str)> = secret.map(|s| ("DCMFLOW_SECRET", s)).into_iter().collect();
        for (mode, extra) in [
            ("hashed", &[][..]),
            ("plain", &["--report-paths", "plain"][..]),
        ] {
            let out = dir.path().join(format!("{name}-{mode}"));
            let mut args = run_args(recipe, &folder, &out, &["--quiet"]);
            args.extend_from_slice(extra);
            let o = dcmflow_with_env(&args, &env);
            assert_eq!(o.status.code(), Some(1), "{recipe} {mode}: {}", text(&o));
            let bytes = std::fs::read(out.join("run.json")).unwrap();
            let json = String::from_utf8_lossy(&bytes);
            let report = run_report(&out);
            let problems = report["problems"].as_array().unwrap();
            assert!(
                problems.iter().any(|p| p["outcome"] == "failed"),
                "{recipe}: {problems:?}"
            );
            if recipe.contains("deid") {
                assert!(
                    problems.iter().any(|p| p["outcome"] == "quarantined"),
                    "{recipe}: {problems:?}"
                );
            }
            assert!(!report["skipped"].as_array().unwrap().is_empty());
            if mode == "hashed" {
                assert!(
                    !json.contains("DOE") && !json.contains("1961"),
                    "{recipe}: run.json names the patient's folder: {json}"
                );
                assert_eq!(report["report_paths"], "hashed", "{json}");
                for p in problems.iter().chain(report["skipped"].as_array().unwrap()) {
                    let key = p["input"].as_str().unwrap();
                    assert_eq!(key.len(), 64, "{key}");
                    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
                }
            } else {
                assert!(
                    json.contains("DOE^JANE 1961-02-03"),
                    "{recipe}: plain paths asked for: {json}"
                );
                assert!(problems
                    .iter()
                    .any(|p| p["input"].as_str().unwrap().ends_with("/cut.dcm")));
                assert_eq!(report["report_paths"], "plain", "{json}");
            }
        }
    }
}

#[test]
fn with_a_secret_run_json_and_the_journal_name_an_input_by_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let folder = patient_folder(dir.path());
    let out = dir.path().join("out");
    let o = run_with_test_secret("recipes/deid-safe-harbor.yaml", &folder, &out, &["--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = run_report(&out);
    let journal = std::fs::read_to_string(out.join(".dcmflow-journal")).unwrap();
    let keys: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["line"] == "input")
        .map(|v| v["input"].as_str().unwrap().to_string())
        .collect();
    for p in report["problems"].as_array().unwrap() {
        let key = p["input"].as_str().unwrap();
        assert!(
            keys.iter().any(|k| k == key),
            "{key} is not in the journal: {keys:?}"
        );
    }
}
