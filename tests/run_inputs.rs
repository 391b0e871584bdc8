//! What a run takes in and what its report says about its inputs, through the `dcmflow` command
//! line: `--set` values stay one value in the field that refers to them, the project secret is
//! used as the bytes it is (never lossily converted), and `run.json` names inputs by a keyed hash
//! unless `--report-paths plain` asks for paths.

mod common;

use common::*;

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
