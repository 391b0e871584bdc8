//! Burned-in text, end to end: instances whose pixels may carry text (by what they are, not only
//! their Modality) are quarantined by every shipped de-identifying and export recipe unless a
//! mask rule blanked them; a site rule that declares "this device draws no text" lets them
//! through without claiming Clean Pixel Data; a mask rule that blanks nothing masks nothing.
//! Fixtures are built here; the binary runs them.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids};

/// The patient name planted in every fixture's header (and, on a real dose screen, its pixels).
const NAME: &str = "Dosescreen^Jane";

const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
const MULTI_FRAME_GRAYSCALE_BYTE_SC: &str = "1.2.840.10008.5.1.4.1.1.7.2";
const VIDEO_ENDOSCOPIC: &str = "1.2.840.10008.5.1.4.1.1.77.1.1.1";
const XRAY_RADIATION_DOSE_SR: &str = "1.2.840.10008.5.1.4.1.1.88.67";

/// A 16x16 8-bit instance of `sop_class` and `modality` with these extra attributes.
fn fixture(
    sop_class: &str,
    modality: &str,
    frames: u32,
    extra: Vec<(Tag, VR, String)>,
    sop: &str,
) -> Vec<u8> {
    let (rows, cols) = (16u16, 16u16);
    let n = rows as usize * cols as usize * frames as usize;
    image_instance(&ImageSpec {
        patient_name: NAME,
        patient_id: "MRN-4711",
        study: "1.2.826.0.1.3680043.10.543.77",
        series: "1.2.826.0.1.3680043.10.543.77.1",
        sop,
        modality,
        sop_class,
        rows,
        cols,
        frames,
        samples: Samples::U8((0..n).map(|i| (i % 251) as u8).collect()),
        extra,
        transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN,
    })
}

/// The example: a CT dose screen stored as Secondary Capture, Modality CT, ImageType
/// DERIVED\SECONDARY\SCREEN SAVE, no BurnedInAnnotation.
fn dose_screen(frames: u32) -> Vec<u8> {
    let class = if frames > 1 {
        MULTI_FRAME_GRAYSCALE_BYTE_SC
    } else {
        SECONDARY_CAPTURE
    };
    fixture(
        class,
        "CT",
        frames,
        vec![(
            tags::IMAGE_TYPE,
            VR::CS,
            "DERIVED\\SECONDARY\\SCREEN SAVE".into(),
        )],
        "1.2.826.0.1.3680043.10.543.77.1.1",
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn run(recipe: &str, input: &Path, out: &Path, sets: &[String]) -> std::process::Output {
    let mut extra = vec!["--quiet"];
    for s in sets {
        extra.extend(["--set", s.as_str()]);
    }
    run_with_test_secret(recipe, input, out, &extra)
}

/// Output files of a run (its report and journal left out).
fn outputs(out: &Path) -> Vec<PathBuf> {
    files_below(out)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "run.json"))
        .collect()
}

/// (stage, outcome, reason) of every problem in `run.json`.
fn problems(out: &Path) -> Vec<(String, String, String)> {
    let r = run_report(out);
    r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            (s("stage"), s("outcome"), s("reason"))
        })
        .collect()
}

/// Code values of DeidentificationMethodCodeSequence.
fn method_codes(obj: &dicom_object::DefaultDicomObject) -> Vec<String> {
    obj.get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .and_then(|e| e.items())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get(tags::CODE_VALUE)?.to_str().ok())
                .map(|v| v.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn str_of(obj: &dicom_object::DefaultDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
}

fn assert_quarantined_naming(recipe: &str, out: &Path, attribute: &str) {
    assert!(
        outputs(out).is_empty(),
        "{recipe}: nothing is written: {:?}",
        outputs(out)
    );
    let ps = problems(out);
    assert_eq!(ps.len(), 1, "{recipe}: {ps:?}");
    let (stage, outcome, reason) = &ps[0];
    assert_eq!(outcome, "quarantined", "{recipe}: {ps:?}");
    assert_eq!(stage, "deid", "{recipe}: {ps:?}");
    assert!(
        reason.contains(attribute),
        "{recipe}: the reason names {attribute}: {reason}"
    );
    assert!(
        !reason.to_ascii_lowercase().contains("dosescreen"),
        "{recipe}: no value in the reason: {reason}"
    );
}

#[test]
fn a_screen_save_secondary_capture_with_modality_ct_is_quarantined_by_every_shipped_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    write(&single, "dose.dcm", &dose_screen(1));
    let multi = dir.path().join("multi");
    write(&multi, "dose.dcm", &dose_screen(2));
    for (recipe, input) in [
        ("recipes/deid-safe-harbor.yaml", &single),
        ("recipes/deid-longitudinal.yaml", &single),
        ("recipes/stills.yaml", &single),
        ("recipes/series-mp4.yaml", &single),
        // cine-mp4 takes multi-frame instances only: the same screen with two frames.
        ("recipes/cine-mp4.yaml", &multi),
    ] {
        let name = Path::new(recipe).file_stem().unwrap().to_str().unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let o = run(recipe, input, &out, &[]);
        assert_eq!(o.status.code(), Some(1), "{recipe}: {}", text(&o));
        assert_quarantined_naming(recipe, &out, "SOPClassUID (0008,0016)");
        let (_, _, reason) = &problems(&out)[0];
        assert!(
            reason.contains("ImageType (0008,0008)"),
            "{recipe}: {reason}"
        );
    }
}

#[test]
fn instances_are_carriers_by_image_type_conversion_type_video_class_and_dose_report() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a CT Image Storage screen save",
            fixture(
                uids::CT_IMAGE_STORAGE,
                "CT",
                1,
                vec![(
                    tags::IMAGE_TYPE,
                    VR::CS,
                    "DERIVED\\SECONDARY\\SCREEN SAVE".into(),
                )],
                "1.2.826.0.1.3680043.10.543.78.1",
            ),
            "ImageType (0008,0008)",
        ),
        (
            "an image with ConversionType WSD",
            fixture(
                uids::CT_IMAGE_STORAGE,
                "CT",
                1,
                vec![
                    (tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL".into()),
                    (tags::CONVERSION_TYPE, VR::CS, "WSD".into()),
                ],
                "1.2.826.0.1.3680043.10.543.78.2",
            ),
            "ConversionType (0008,0064)",
        ),
        (
            "a Video Endoscopic image with Modality XC",
            fixture(
                VIDEO_ENDOSCOPIC,
                "XC",
                2,
                vec![],
                "1.2.826.0.1.3680043.10.543.78.3",
            ),
            "SOPClassUID (0008,0016)",
        ),
        (
            "a dose report with pixel data",
            fixture(
                XRAY_RADIATION_DOSE_SR,
                "SR",
                1,
                vec![],
                "1.2.826.0.1.3680043.10.543.78.4",
            ),
            "SOPClassUID (0008,0016)",
        ),
    ];
    for (k, (what, bytes, attribute)) in cases.into_iter().enumerate() {
        let input = dir.path().join(format!("in{k}"));
        write(&input, "x.dcm", &bytes);
        let out = dir.path().join(format!("out{k}"));
        let o = run("recipes/deid-safe-harbor.yaml", &input, &out, &[]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o));
        assert_quarantined_naming(what, &out, attribute);
    }
}

#[test]
fn verify_flags_an_unmasked_dose_screen_that_burned_in_allow_let_through() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write(&input, "dose.dcm", &dose_screen(1));
    let out = dir.path().join("out");
    let o = run(
        "recipes/deid-safe-harbor.yaml",
        &input,
        &out,
        &["burned_in=allow".into()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let json = dir.path().join("findings.json");
    let o = dcmflow(&[
        "verify",
        "--output",
        out.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(
        kinds.iter().any(|k| k.contains("burned-in text")),
        "{report:#}"
    );
}
/// A single-frame ultrasound image without SequenceOfUltrasoundRegions.
fn ultrasound(sop: &str) -> Vec<u8> {
    fixture(uids::ULTRASOUND_IMAGE_STORAGE, "US", 1, vec![], sop)
}

fn rule_file(dir: &Path, yaml: &str) -> String {
    let p = write(dir, "mask-rules.yaml", yaml.as_bytes());
    format!("mask_rules={}", p.display())
}

#[test]
fn a_site_rule_with_no_rectangles_passes_an_ultrasound_without_claiming_clean_pixel_data() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write(
        &input,
        "us.dcm",
        &ultrasound("1.2.826.0.1.3680043.10.543.79.1"),
    );
    let rules = rule_file(
        dir.path(),
        "- name: Our US carts draw no text\n  when: { Modality: US }\n  rects: []\n",
    );
    let out = dir.path().join("out");
    let o = run("recipes/deid-safe-harbor.yaml", &input, &out, &[rules]);
    assert_eq!(o.status.code(), Some(0), "the site vouched: {}", text(&o));
    let written = outputs(&out);
    assert_eq!(written.len(), 1, "{written:?}");
    let obj = dicom_object::open_file(&written[0]).unwrap();
    assert!(
        !method_codes(&obj).iter().any(|c| c == "113101"),
        "no Clean Pixel Data claim: {:?}",
        method_codes(&obj)
    );
    assert_ne!(
        str_of(&obj, tags::BURNED_IN_ANNOTATION).as_deref(),
        Some("NO"),
        "BurnedInAnnotation is not set to NO by a declaration"
    );
    assert!(
        str_of(&obj, tags::DEIDENTIFICATION_METHOD)
            .unwrap_or_default()
            .contains("Pixels not masked: site rule declares no burned-in text"),
        "the file says nothing was masked"
    );
    let report = run_report(&out);
    assert_eq!(
        report["summaries"]["mask"]["declared_no_text"]["Our US carts draw no text"], 1,
        "{:#}",
        report["summaries"]
    );
    assert!(report["summaries"]["mask"].get("masked").is_none());

    // verify takes the site's word (the file records it), and the review sheet says which it is.
    let json = dir.path().join("findings.json");
    let sheet = dir.path().join("review.html");
    let o = dcmflow(&[
        "verify",
        "--output",
        out.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--report",
        sheet.to_str().unwrap(),
    ]);
    let findings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        !findings.to_string().contains("burned-in"),
        "{}: {findings:#}",
        text(&o)
    );
    let html = std::fs::read_to_string(&sheet).unwrap();
    assert!(
        html.contains("a site mask rule declares that this device draws no text"),
        "review sheet note"
    );
    assert!(!html.contains("Clean Pixel Data (113101) recorded"));
}

#[test]
fn a_mask_rule_whose_rectangles_miss_the_image_does_not_mark_it_masked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write(
        &input,
        "us.dcm",
        &ultrasound("1.2.826.0.1.3680043.10.543.79.2"),
    );
    let rules = rule_file(
        dir.path(),
        "- name: band of a bigger screen\n  when: { Modality: US }\n  rects: [{ x: 600, y: 400, width: 40, height: 20 }]\n",
    );
    let out = dir.path().join("out");
    let o = run("recipes/deid-safe-harbor.yaml", &input, &out, &[rules]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(outputs(&out).is_empty(), "{:?}", outputs(&out));
    let ps = problems(&out);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].1, "quarantined", "{ps:?}");
}
