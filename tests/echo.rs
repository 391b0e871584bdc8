//! The identifier echo check end to end: instances built the way real archives hold them, with
//! the patient's identifiers also in text that Table E.1-1 does not list (a code meaning, a free
//! text attribute, SR TEXT and PNAME content items in mixed case, a phone number). Through every
//! shipped de-identifying recipe, each instance is either quarantined with a reason that names
//! the attribute (never the value) or written with none of the planted values in any byte.

mod common;

use std::path::Path;

use common::*;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

/// What the fixtures plant; none of it may leave (matched case-insensitively).
const PLANTED: &[&str] = &[
    "okonkwo", "adaeze", "4471923", "maria", "berg", "a7781234", "555-0142", "5550142", "555 0142",
    "555.0142",
];

fn text_el(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

fn code(value: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text_el(tags::CODE_VALUE, VR::SH, value),
        text_el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "99LOCAL"),
        text_el(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

fn write(dir: &Path, name: &str, sop_class: &str, sop: &str, o: InMemDicomObject) {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop)
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .build()
        .unwrap();
    let mut buf = Vec::new();
    o.with_exact_meta(meta).write_all(&mut buf).unwrap();
    std::fs::write(dir.join(name), buf).unwrap();
}

/// A CT slice whose patient name also stands in a code meaning nested in a sequence and in a
/// free-text attribute Table E.1-1 does not list, in other case and order.
fn ct_with_name_in_unlisted_text(dir: &Path) {
    let sop = "1.2.826.0.1.3680043.10.77.1.1";
    let mut o = InMemDicomObject::new_empty();
    for (t, vr, v) in [
        (tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        (tags::SOP_INSTANCE_UID, VR::UI, sop),
        (
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.77.1",
        ),
        (
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.77.1.0",
        ),
        (tags::PATIENT_NAME, VR::PN, "OKONKWO^ADAEZE"),
        (tags::PATIENT_ID, VR::LO, "MRN4471923"),
        (tags::MODALITY, VR::CS, "CT"),
        (tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        // Not in Table E.1-1: kept by the profile.
        (
            tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER,
            VR::LO,
            "typed by Adaeze Okonkwo",
        ),
    ] {
        o.put(text_el(t, vr, v));
    }
    o.put(seq(
        tags::ANATOMIC_REGION_SEQUENCE,
        vec![code("T-D3000", "Chest of okonkwo, adaeze")],
    ));
    for (t, v) in [
        (tags::ROWS, 8u16),
        (tags::COLUMNS, 8),
        (tags::SAMPLES_PER_PIXEL, 1),
        (tags::BITS_ALLOCATED, 16),
        (tags::BITS_STORED, 12),
        (tags::HIGH_BIT, 11),
        (tags::PIXEL_REPRESENTATION, 0),
    ] {
        o.put(DataElement::new(t, VR::US, PrimitiveValue::from(v)));
    }
    let px: Vec<u16> = (0..64).map(|i| i * 50).collect();
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(px.into()),
    ));
    write(dir, "ct.dcm", uids::CT_IMAGE_STORAGE, sop, o);
}

/// A Basic Text SR whose TEXT items repeat the patient's first name, MRN and phone number, and
/// whose PNAME item names the patient in mixed case.
fn basic_text_sr(dir: &Path) {
    let sop = "1.2.826.0.1.3680043.10.77.2.1";
    let item = |value_type: &str, concept: InMemDicomObject, el: DataElement<InMemDicomObject>| {
        let mut it = InMemDicomObject::from_element_iter([
            text_el(tags::RELATIONSHIP_TYPE, VR::CS, "CONTAINS"),
            text_el(tags::VALUE_TYPE, VR::CS, value_type),
            seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![concept]),
        ]);
        it.put(el);
        it
    };
    let mut nested = item(
        "TEXT",
        code("121106", "Comment"),
        text_el(tags::TEXT_VALUE, VR::UT, "Call maria back on 617.555.0142"),
    );
    nested.put(text_el(tags::RELATIONSHIP_TYPE, VR::CS, "HAS PROPERTIES"));
    let mut finding = item(
        "TEXT",
        code("121071", "Finding"),
        text_el(
            tags::TEXT_VALUE,
            VR::UT,
            "Maria (MRN A7781234, tel (617) 555-0142) has no acute findings.",
        ),
    );
    finding.put(seq(tags::CONTENT_SEQUENCE, vec![nested]));
    let person = item(
        "PNAME",
        code("121008", "Person Observer Name"),
        text_el(tags::PERSON_NAME, VR::PN, "van der Berg^Maria"),
    );
    let mut o = InMemDicomObject::new_empty();
    for (t, vr, v) in [
        (tags::SOP_CLASS_UID, VR::UI, uids::BASIC_TEXT_SR_STORAGE),
        (tags::SOP_INSTANCE_UID, VR::UI, sop),
        (
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.77.2",
        ),
        (
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.77.2.0",
        ),
        (tags::PATIENT_NAME, VR::PN, "VAN DER BERG^MARIA"),
        (tags::PATIENT_ID, VR::LO, "A7781234"),
        (tags::PATIENT_TELEPHONE_NUMBERS, VR::SH, "+1 617 555 0142"),
        (tags::MODALITY, VR::CS, "SR"),
        (tags::VALUE_TYPE, VR::CS, "CONTAINER"),
        (tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"),
        (tags::COMPLETION_FLAG, VR::CS, "COMPLETE"),
        (tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"),
    ] {
        o.put(text_el(t, vr, v));
    }
    o.put(seq(
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code("11528-7", "Radiology Report")],
    ));
    o.put(seq(tags::CONTENT_SEQUENCE, vec![finding, person]));
    write(dir, "sr.dcm", uids::BASIC_TEXT_SR_STORAGE, sop, o);
}

/// Every string value of a DICOM file (any depth), read through dicom-object (which inflates
/// deflated data sets), joined.
fn parsed_text(path: &Path) -> String {
    fn walk(o: &InMemDicomObject, out: &mut String) {
        for e in o.iter() {
            if let Some(items) = e.items() {
                for it in items {
                    walk(it, out);
                }
            } else if let Ok(s) = e.to_str() {
                out.push_str(&s);
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    let f = dicom_object::open_file(path)
        .unwrap_or_else(|e| panic!("{}: not readable DICOM: {e}", path.display()));
    walk(&f, &mut out);
    out
}

/// Planted values found in an output file's bytes, its parsed text or its path below `out`.
fn leaks(out: &Path, file: &Path) -> Vec<String> {
    let bytes = std::fs::read(file).unwrap();
    let hay = format!(
        "{}\n{}\n{}",
        String::from_utf8_lossy(&bytes),
        parsed_text(file),
        file.strip_prefix(out).unwrap().display()
    )
    .to_lowercase();
    PLANTED
        .iter()
        .filter(|p| hay.contains(*p))
        .map(|p| format!("{}: {p}", file.display()))
        .collect()
}

fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ct_with_name_in_unlisted_text(dir.path());
    basic_text_sr(dir.path());
    dir
}

/// One recipe run over the fixtures: the written files and the quarantine reasons.
struct Run {
    _out: tempfile::TempDir,
    written: Vec<std::path::PathBuf>,
    reasons: Vec<String>,
}

fn run(recipe: &str, extra: &[&str]) -> Run {
    let input = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = run_with_test_secret(recipe, input.path(), &out, extra);
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "{recipe}: {}",
        text(&o)
    );
    let report = run_report(&out);
    let reasons: Vec<String> = report["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["reason"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    let written: Vec<_> = files_below(&out)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n != "run.json" && n != ".dcmflow-journal")
        })
        .collect();
    let leaked: Vec<String> = written.iter().flat_map(|f| leaks(&out, f)).collect();
    assert!(leaked.is_empty(), "{recipe} {extra:?} leaked: {leaked:?}");
    // run.json and the journal name no planted value either.
    for f in ["run.json", ".dcmflow-journal"] {
        if let Ok(b) = std::fs::read(out.join(f)) {
            let t = String::from_utf8_lossy(&b).to_lowercase();
            for p in PLANTED {
                assert!(!t.contains(p), "{recipe}: {f} names {p}");
            }
        }
    }
    Run {
        _out: tmp,
        written,
        reasons,
    }
}

#[test]
fn safe_harbor_quarantines_instances_whose_kept_text_repeats_the_patients_identifiers() {
    let Run {
        _out: _keep,
        written,
        reasons,
    } = run("recipes/deid-safe-harbor.yaml", &[]);
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("identifier echo")
            && r.contains("TextValue")
            && r.contains("PatientName")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("identifier echo") && r.contains("CodeMeaning")),
        "{reasons:?}"
    );
}

#[test]
fn longitudinal_quarantines_echoes_by_default_and_scrubs_them_with_descriptors_scrub() {
    // The SR's content goes whole (no Clean Structured Content); the CT's kept text echoes.
    let Run {
        _out: _keep,
        written,
        reasons,
    } = run("recipes/deid-longitudinal.yaml", &[]);
    assert_eq!(written.len(), 1, "{reasons:?}");
    assert!(
        reasons.len() == 1
            && reasons[0].contains("identifier echo")
            && reasons[0].contains("CodeMeaning"),
        "{reasons:?}"
    );
    let Run {
        _out: _keep,
        written,
        reasons,
    } = run(
        "recipes/deid-longitudinal.yaml",
        &["--set", "descriptors=scrub"],
    );
    assert_eq!(written.len(), 2, "{reasons:?}");
    let ct = written
        .iter()
        .map(|f| parsed_text(f))
        .find(|t| t.contains("Chest of"))
        .expect("the CT is written, its kept text scrubbed");
    assert!(ct.contains("Chest of ***\n"), "{ct}");
    assert!(ct.contains("typed by *** ***"), "{ct}");
}

#[test]
fn stills_export_nothing_of_an_instance_whose_kept_text_names_the_patient() {
    let Run {
        _out: _keep,
        written,
        reasons,
    } = run("recipes/stills.yaml", &["--set", "format=png"]);
    assert!(written.is_empty(), "{written:?}");
    assert!(
        reasons.iter().any(|r| r.contains("identifier echo")),
        "{reasons:?}"
    );
}

#[test]
fn echo_reasons_name_attributes_never_values() {
    let Run { reasons, .. } = run("recipes/deid-safe-harbor.yaml", &[]);
    for r in &reasons {
        let low = r.to_lowercase();
        for p in PLANTED {
            assert!(!low.contains(p), "reason carries {p}: {r}");
        }
    }
}

#[test]
fn clip_recipes_export_nothing_of_an_instance_whose_kept_text_names_the_patient() {
    // `run` asserts that nothing planted is in any written file. cine-mp4 takes multi-frame
    // instances only, so the single-frame fixtures go no further than its filter.
    run("recipes/cine-mp4.yaml", &["--set", "format=gif"]);
    let r = run("recipes/series-mp4.yaml", &["--set", "format=gif"]);
    assert!(
        r.reasons.iter().any(|x| x.contains("identifier echo")),
        "{:?}",
        r.reasons
    );
}
