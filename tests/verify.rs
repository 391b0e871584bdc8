//! `dcmflow verify`: finds the PHI that a deliberately weakened recipe leaves behind (free text,
//! a private attribute, a nested sequence, a date, UIDs), and reports nothing on the outputs of
//! the shipped de-identification recipes for the same inputs.

mod common;

use common::*;
use dcmflow_stages::deidentify::testgen;
use std::path::Path;

const SECRET: &str = "verify-test-secret-0123456789";

fn write_originals(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, g) in testgen::generate().instances.iter().enumerate() {
        std::fs::write(
            dir.join(format!("i{i:03}.dcm")),
            testgen::to_bytes(&g.obj).unwrap(),
        )
        .unwrap();
    }
}

/// The synthetic studies are secondary captures (modality OT): a site rule declares them free
/// of burned-in text, so de-identification lets them through.
fn mask_rules(dir: &Path) -> String {
    let p = dir.join("mask-rules.yaml");
    std::fs::write(
        &p,
        "- name: synthetic test images carry no text\n  when: { Modality: OT }\n  rects: []\n",
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

fn run(recipe: &str, input: &Path, out: &Path, rules: &str) {
    let o = dcmflow_with_env(
        &[
            "run",
            recipe,
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--quiet",
            "--set",
            &format!("mask_rules={rules}"),
        ],
        &[("DCMFLOW_SECRET", SECRET)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

fn verify(orig: Option<&Path>, out: &Path) -> (i32, serde_json::Value) {
    let json = out.with_extension("verify.json");
    let mut args = vec![
        "verify",
        "--output",
        out.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    if let Some(o) = orig {
        args.extend(["--original", o.to_str().unwrap()]);
    }
    let o = dcmflow(&args);
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (o.status.code().unwrap(), report)
}

#[test]
fn shipped_recipes_pass_verify_and_a_weakened_recipe_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("orig");
    write_originals(&orig);
    let rules = mask_rules(dir.path());

    for recipe in [
        "recipes/deid-safe-harbor.yaml",
        "recipes/deid-longitudinal.yaml",
    ] {
        let out = dir.path().join(Path::new(recipe).file_stem().unwrap());
        run(recipe, &orig, &out, &rules);
        let (code, report) = verify(Some(&orig), &out);
        assert_eq!(
            report["findings"],
            serde_json::json!([]),
            "{recipe}: {report:#}"
        );
        assert_eq!(code, 0);
        assert!(
            report["identifiers"].as_u64().unwrap() > 20,
            "the originals gave identifiers to look for"
        );
        let (code, report) = verify(None, &out);
        assert_eq!(
            (code, report["findings"].clone()),
            (0, serde_json::json!([])),
            "{recipe} header checks"
        );
    }

    // Weakened: free text, a private attribute, a name in a nested sequence, a date and the UIDs
    // are kept, and the identifier echo check (which would withhold every instance) is off.
    let weak = dir.path().join("weak.yaml");
    let yaml = std::fs::read_to_string(root().join("recipes/deid-safe-harbor.yaml"))
        .unwrap()
        .replace(
            "      clean_graphics: true\n",
            "      clean_graphics: true\n      echo_check: false\n      retain_uids: true\n      keep: [ImageComments, \"(0009,1001)\", ScheduledPerformingPhysicianName, StudyDate]\n",
        )
        .replace("dates: { policy: year_only }", "dates: { policy: keep }");
    std::fs::write(&weak, yaml).unwrap();
    let out = dir.path().join("weak-out");
    run(weak.to_str().unwrap(), &orig, &out, &rules);
    let (code, report) = verify(Some(&orig), &out);
    assert_eq!(code, 1);
    let findings = report["findings"].as_array().unwrap();
    let leaked: std::collections::BTreeSet<&str> = findings
        .iter()
        .filter_map(|f| f["value"].as_str())
        .collect();
    // Values are masked: only initials show. The planted values are known, so check by mask.
    let planted = testgen::generate();
    assert!(
        leaked.contains(dcmflow_stages::verify::mask("privatepayload-phi").as_str()),
        "private value not found: {leaked:?}"
    );
    let uid = &planted.planted_uids[0];
    assert!(
        leaked.contains(dcmflow_stages::verify::mask(uid).as_str()),
        "UID not found: {leaked:?}"
    );
    assert!(findings.len() >= 5, "{report:#}");
    // No finding shows a value in full.
    for f in findings {
        let v = f["value"].as_str().unwrap();
        assert!(
            planted
                .planted_values
                .iter()
                .all(|p| p.len() < 3 || !v.contains(p.as_str())),
            "unmasked value in {f}"
        );
    }
    let (code, report) = verify(None, &out);
    assert_eq!(
        code, 1,
        "header checks alone flag the private attribute: {report:#}"
    );
}
