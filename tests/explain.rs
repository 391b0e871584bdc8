//! `dcmflow explain`: the methods-section text of every shipped recipe is pinned by a snapshot
//! (reviewed by a person when it changes: run with DCMFLOW_UPDATE_SNAPSHOTS=1 to rewrite them),
//! and it follows the recipe's settings.

mod common;

use common::*;

fn explain(args: &[&str]) -> String {
    let mut a = vec!["explain"];
    a.extend_from_slice(args);
    let o = dcmflow(&a);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn explain_of_every_shipped_recipe_matches_its_reviewed_snapshot() {
    let update = std::env::var_os("DCMFLOW_UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for p in files_below(&root().join("recipes")) {
        let rel = p
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let got = explain(&[&rel]);
        let snap = root().join("tests/snapshots").join(format!(
            "explain-{}.md",
            p.file_stem().unwrap().to_string_lossy()
        ));
        if update {
            std::fs::write(&snap, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&snap).unwrap_or_default();
        if want != got {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "explain output changed for {stale:?}; review it and run DCMFLOW_UPDATE_SNAPSHOTS=1 cargo test --test explain"
    );
}

#[test]
fn explain_follows_profile_options_and_params() {
    let base = explain(&["recipes/deid-longitudinal.yaml"]);
    assert!(
        base.contains("113100") && base.contains("113107") && base.contains("113111"),
        "{base}"
    );
    assert!(base.contains("between -730 and -30 days"), "{base}");
    let scrub = explain(&[
        "recipes/deid-longitudinal.yaml",
        "--set",
        "descriptors=scrub",
    ]);
    assert_ne!(base, scrub, "a changed option changes the text");
    let shift = explain(&[
        "recipes/deid-longitudinal.yaml",
        "--set",
        "shift_min_days=-100",
    ]);
    assert!(shift.contains("between -100 and -30 days"), "{shift}");

    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("uids.yaml");
    let yaml = std::fs::read_to_string(root().join("recipes/deid-safe-harbor.yaml")).unwrap();
    std::fs::write(
        &r,
        yaml.replace(
            "clean_graphics: true",
            "clean_graphics: true\n      retain_uids: true",
        ),
    )
    .unwrap();
    let kept = explain(&[r.to_str().unwrap()]);
    assert!(
        kept.contains("113110"),
        "Retain UIDs Option is named: {kept}"
    );
    assert!(!explain(&["recipes/deid-safe-harbor.yaml"]).contains("113110"));
}

#[test]
fn explain_never_shows_redacted_params_or_the_secret() {
    let o = common::dcmflow_with_env(
        &[
            "explain",
            "recipes/deid-longitudinal.yaml",
            "--set",
            "linkage=/secure/trial42-linkage",
        ],
        &[("DCMFLOW_SECRET", "explain-test-secret-value-1234")],
    );
    let t = text(&o);
    assert!(
        !t.contains("trial42-linkage") && !t.contains("explain-test-secret-value"),
        "{t}"
    );
    assert!(t.contains("<redacted>"));
}
