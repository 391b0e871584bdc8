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

// ---- fail closed (issue #11, point 4) ----

/// A family name that nothing else in the fixtures contains.
const PLANTED_FAMILY: &str = "Quintavalle";
const PLANTED_GIVEN: &str = "Rosamund";

/// A small CT instance in `transfer_syntax` with the given name and extra text attributes.
fn ct_instance(
    name: &str,
    sop: &str,
    extra: Vec<(dicom_core::Tag, dicom_core::VR, String)>,
    transfer_syntax: &str,
) -> Vec<u8> {
    image_instance(&ImageSpec {
        patient_name: name,
        patient_id: "MRN-4711-0815",
        study: "1.2.826.0.1.3680043.10.77.1",
        series: "1.2.826.0.1.3680043.10.77.1.1",
        sop,
        modality: "CT",
        sop_class: "1.2.840.10008.5.1.4.1.1.2",
        rows: 4,
        cols: 4,
        frames: 1,
        samples: Samples::U16((0..16).collect()),
        extra,
        transfer_syntax,
    })
}

/// An original carrying the planted name, in `dir/orig`.
fn planted_original(dir: &Path) -> std::path::PathBuf {
    let orig = dir.join("orig");
    std::fs::create_dir_all(&orig).unwrap();
    std::fs::write(
        orig.join("o.dcm"),
        ct_instance(
            &format!("{PLANTED_FAMILY}^{PLANTED_GIVEN}"),
            "1.2.826.0.1.3680043.10.77.1.1.1",
            vec![],
            "1.2.840.10008.1.2.1",
        ),
    )
    .unwrap();
    orig
}

/// An output that looks de-identified but has the planted name in ImageComments and an e-mail
/// address in StudyDescription.
fn leaky_output(transfer_syntax: &str) -> Vec<u8> {
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    ct_instance(
        "ANONYMOUS",
        "2.25.1234567890",
        vec![
            (tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES".into()),
            (
                tags::STUDY_DESCRIPTION,
                VR::LO,
                "results to rq.desk@example.org".into(),
            ),
            (
                tags::IMAGE_COMMENTS,
                VR::LT,
                format!("reviewed with {PLANTED_GIVEN} {PLANTED_FAMILY} present"),
            ),
        ],
        transfer_syntax,
    )
}

fn findings_for<'a>(report: &'a serde_json::Value, file: &str) -> Vec<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["file"].as_str().is_some_and(|p| p.ends_with(file)))
        .collect()
}

/// No finding shows the planted name in full.
fn assert_masked(report: &serde_json::Value) {
    let all = report.to_string();
    assert!(
        !all.contains(PLANTED_FAMILY) && !all.contains(PLANTED_GIVEN),
        "a planted value shows unmasked: {report:#}"
    );
}

#[test]
fn a_name_planted_in_a_deflated_output_is_found_with_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let orig = planted_original(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let bytes = leaky_output("1.2.840.10008.1.2.1.99");
    // Deflated for real: the name is not in the file's bytes as written.
    assert!(!bytes
        .windows(PLANTED_FAMILY.len())
        .any(|w| w == PLANTED_FAMILY.as_bytes()));
    std::fs::write(out.join("deflated.dcm"), bytes).unwrap();

    let (code, report) = verify(Some(&orig), &out);
    assert_eq!(code, 1, "{report:#}");
    let found = findings_for(&report, "deflated.dcm");
    assert!(
        found.iter().any(
            |f| f["value"] == dcmflow_stages::verify::mask(PLANTED_FAMILY).as_str()
                && f["tag"]
                    .as_str()
                    .is_some_and(|t| t.contains("ImageComments"))
        ),
        "the planted name in the deflated data set is not reported: {report:#}"
    );
    assert_masked(&report);
}

/// A DICOM file whose PatientName claims more bytes than the file holds: no reader parses it.
fn damaged(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let at = b
        .windows(6)
        .position(|w| w == [0x10, 0x00, 0x10, 0x00, b'P', b'N'])
        .expect("PatientName in explicit VR");
    b[at + 6..at + 8].copy_from_slice(&0xFFF0u16.to_le_bytes());
    b
}

#[test]
fn an_output_or_original_that_cannot_be_parsed_is_reported_and_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let orig = planted_original(dir.path());
    std::fs::write(
        orig.join("broken-original.dcm"),
        damaged(&ct_instance(
            "Other^Person",
            "1.2.826.0.1.3680043.10.77.1.1.2",
            vec![],
            "1.2.840.10008.1.2.1",
        )),
    )
    .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("broken.dcm"),
        damaged(&leaky_output("1.2.840.10008.1.2.1")),
    )
    .unwrap();

    for originals in [None, Some(orig.as_path())] {
        let (code, report) = verify(originals, &out);
        assert_eq!(code, 1, "{report:#}");
        let found = findings_for(&report, "broken.dcm");
        assert!(
            found.iter().any(|f| f["kind"]
                .as_str()
                .is_some_and(|k| k.contains("could not be checked") && k.contains("(0010,0010)"))),
            "the unparseable output is not reported: {report:#}"
        );
        assert_masked(&report);
    }
    let (_, report) = verify(Some(&orig), &out);
    let found = findings_for(&report, "broken-original.dcm");
    assert!(
        found.iter().any(|f| f["kind"]
            .as_str()
            .is_some_and(|k| k.contains("original") && k.contains("could not be read"))),
        "the unparseable original is not reported: {report:#}"
    );
}

#[test]
fn outputs_without_the_preamble_are_parsed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let orig = planted_original(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let full = leaky_output("1.2.840.10008.1.2.1");
    // "DICM" at the start (no preamble), and a bare data set (no preamble, no meta group).
    std::fs::write(out.join("magic-only.dcm"), &full[128..]).unwrap();
    let meta_len = u32::from_le_bytes(full[140..144].try_into().unwrap()) as usize;
    std::fs::write(out.join("bare.dcm"), &full[144 + meta_len..]).unwrap();
    // The e-mail address is only seen by the header checks, which parse the file.
    let (code, report) = verify(None, &out);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["dicom_files"], 2, "{report:#}");
    for file in ["magic-only.dcm", "bare.dcm"] {
        assert!(
            !findings_for(&report, file).is_empty(),
            "{file}: the header checks did not run: {report:#}"
        );
    }
    let (code, report) = verify(Some(&orig), &out);
    assert_eq!(code, 1, "{report:#}");
    for file in ["magic-only.dcm", "bare.dcm"] {
        assert!(
            findings_for(&report, file)
                .iter()
                .any(|f| f["value"] == dcmflow_stages::verify::mask(PLANTED_FAMILY).as_str()),
            "{file}: the planted name is not found: {report:#}"
        );
    }
    assert_masked(&report);
}

#[test]
fn a_missing_output_folder_or_unreadable_originals_do_not_pass_as_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = verify(None, &dir.path().join("no-such-output"));
    assert_eq!(code, 1, "{report:#}");
    assert!(
        report["findings"][0]["kind"]
            .as_str()
            .is_some_and(|k| k.starts_with("could not be checked: cannot read it")),
        "{report:#}"
    );
    // Originals that give nothing to search for: the byte search would be empty.
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("x.dcm"), leaky_output("1.2.840.10008.1.2.1")).unwrap();
    let (code, report) = verify(Some(&dir.path().join("no-such-originals")), &out);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"]
                .as_str()
                .is_some_and(|k| k.contains("no original could be read"))),
        "{report:#}"
    );
}
