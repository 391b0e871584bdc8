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
