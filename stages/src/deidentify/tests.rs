//! Tests of the de-identification core (synthetic data, the standard's table, the shared corpus).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};

use super::table::{table, Action, ProfileOption, Row, TagPattern};
use super::testgen::{generate, to_bytes};
use super::*;

use crate::testing::{corpus_dir, standard_dir};

fn keys() -> Keys {
    Keys::new(b"unit-test-secret-0123456789")
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    regex::bytes::RegexBuilder::new(&regex::escape(needle))
        .case_insensitive(true)
        .unicode(false)
        .build()
        .map(|re| re.is_match(hay))
        .unwrap_or(false)
}

fn parse_back(bytes: &[u8]) -> FileDicomObject<InMemDicomObject> {
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(bytes)
        .expect("written file parses back")
}

fn str_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}

#[test]
#[cfg_attr(
    not(dcmflow_standard),
    ignore = "needs ../shared/standard (see README)"
)]
fn copied_tables_match_shared_standard() {
    let dir = standard_dir();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    for f in [
        "ps3.15-table-e1-1.csv",
        "ps3.15-table-e3-10-1-safe-private.csv",
        "ps3.15-table-e1-1a-action-codes.csv",
    ] {
        let a = std::fs::read(here.join(f)).unwrap();
        let b = std::fs::read(dir.join(f)).unwrap();
        assert!(a == b, "{f} differs from the shared standard copy");
    }
    let a = std::fs::read(here.join("STANDARD-README.md")).unwrap();
    assert_eq!(a, std::fs::read(dir.join("README.md")).unwrap());
}

#[test]
fn tables_parse() {
    let t = table();
    assert_eq!(t.rows.len(), 657);
    assert!(t.safe_private_len() > 400);
    assert_eq!(t.action_codes.len(), 11);
    let count = |a: Action| t.rows.iter().filter(|r| r.basic == a).count();
    assert_eq!(
        (
            count(Action::X),
            count(Action::D),
            count(Action::U),
            count(Action::Z)
        ),
        (417, 93, 55, 42)
    );
    assert_eq!(count(Action::XZU), 2);
    assert_eq!(t.lookup(Tag(0x0010, 0x0010)).unwrap().basic, Action::Z);
    assert_eq!(
        t.lookup(Tag(0x6002, 0x3000)).unwrap().pattern,
        TagPattern::Overlay(0x3000)
    );
    assert_eq!(
        t.lookup(Tag(0x5010, 0x1234)).unwrap().pattern,
        TagPattern::Curve
    );
    assert_eq!(
        t.lookup(Tag(0x0029, 0x1010)).unwrap().pattern,
        TagPattern::Private
    );
    assert!(t.lookup(Tag(0x6000, 0x0010)).is_none());
    assert!(t.is_safe_private(0x7053, " philips pet private group ", 0x00));
    assert!(!t.is_safe_private(0x7053, "OTHER", 0x00));
}

#[test]
fn generated_files_roundtrip() {
    let g = generate();
    assert_eq!(g.instances.len(), 24);
    for inst in &g.instances {
        let bytes = to_bytes(&inst.obj).unwrap();
        let back = parse_back(&bytes);
        assert_eq!(str_of(&back, Tag(0x0008, 0x0018)).unwrap(), inst.sop_uid);
        assert_eq!(
            back.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            inst.sop_uid
        );
    }
}

fn run_set(
    opts: &DeidOptions,
) -> (
    Vec<(super::testgen::GenInstance, DeidReport, Vec<u8>)>,
    super::testgen::Generated,
) {
    let de = Deidentifier::new(opts).unwrap();
    let k = keys();
    let g = generate();
    let planted = super::testgen::Generated {
        instances: vec![],
        planted_values: g.planted_values.clone(),
        planted_uids: g.planted_uids.clone(),
    };
    let mut out = Vec::new();
    for mut inst in g.instances {
        let rep = de.apply(&mut inst.obj, &k).expect("apply");
        let bytes = to_bytes(&inst.obj).unwrap();
        out.push((inst, rep, bytes));
    }
    (out, planted)
}

fn check_common(opts: &DeidOptions) -> Vec<(super::testgen::GenInstance, DeidReport, Vec<u8>)> {
    let (out, planted) = run_set(opts);
    let k = keys();
    let mut per_patient: HashMap<usize, HashSet<String>> = HashMap::new();
    for (inst, rep, bytes) in &out {
        for v in &planted.planted_values {
            assert!(
                !contains_ci(bytes, v),
                "planted value survived (instance {} {} {} {})",
                inst.patient,
                inst.study,
                inst.series,
                inst.instance
            );
        }
        for u in &planted.planted_uids {
            assert!(!contains_ci(bytes, u), "original UID survived");
        }
        let back = parse_back(bytes);
        // references resolve to the remapped UID of the referenced instance
        let refd = back
            .get(Tag(0x0008, 0x1140))
            .and_then(|e| e.items().map(|i| i[0].clone()))
            .expect("ReferencedImageSequence kept");
        assert_eq!(
            str_of(&refd, Tag(0x0008, 0x1155)).unwrap(),
            k.uid(&inst.references)
        );
        assert_eq!(
            str_of(&back, Tag(0x0008, 0x0018)).unwrap(),
            k.uid(&inst.sop_uid)
        );
        assert_eq!(
            back.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            k.uid(&inst.sop_uid)
        );
        assert!(back.meta().source_application_entity_title().is_none());
        assert!(rep
            .uid_map
            .iter()
            .any(|(o, n)| o == &inst.sop_uid && n == &k.uid(&inst.sop_uid)));
        // one pseudonym per patient, name == id
        let id = str_of(&back, Tag(0x0010, 0x0020)).unwrap();
        assert_eq!(str_of(&back, Tag(0x0010, 0x0010)).unwrap(), id);
        assert!(id.starts_with("SUBJ") && id.len() == 16);
        assert_eq!(rep.patient_map.len(), 1);
        assert_eq!(rep.patient_map[0].1, id);
        per_patient.entry(inst.patient).or_default().insert(id);
        // marks
        assert_eq!(str_of(&back, Tag(0x0012, 0x0062)).as_deref(), Some("YES"));
        assert!(str_of(&back, Tag(0x0012, 0x0063))
            .unwrap()
            .contains("Basic Profile"));
        let codes: Vec<String> = back
            .get(Tag(0x0012, 0x0064))
            .unwrap()
            .items()
            .unwrap()
            .iter()
            .map(|i| str_of(i, Tag(0x0008, 0x0100)).unwrap())
            .collect();
        assert_eq!(codes[0], "113100");
        // private tags: the unsafe block is gone entirely
        assert!(back.get(Tag(0x0009, 0x0010)).is_none() && back.get(Tag(0x0009, 0x1002)).is_none());
        // no report text carries a planted value
        for (p, _) in &rep.actions {
            for v in &planted.planted_values {
                assert!(!p.to_ascii_uppercase().contains(&v.to_ascii_uppercase()));
            }
        }
    }
    let all: HashSet<&String> = per_patient.values().flatten().collect();
    assert_eq!(all.len(), 3);
    assert!(per_patient.values().all(|s| s.len() == 1));
    out
}

#[test]
fn default_profile_removes_planted_phi() {
    let out = check_common(&DeidOptions::default());
    for (_, _, bytes) in &out {
        let back = parse_back(bytes);
        assert!(back
            .get(Tag(0x0008, 0x0020))
            .map(|e| e.to_str().unwrap().trim().is_empty())
            .unwrap_or(true));
        assert_eq!(
            str_of(&back, Tag(0x0028, 0x0303)).as_deref(),
            Some("REMOVED")
        );
        assert!(back.get(Tag(0x7053, 0x1000)).is_none());
        assert!(back.get(Tag(0x0020, 0x4000)).is_none());
        assert!(back.get(Tag(0x0010, 0x1010)).is_none());
        // unlisted sequence kept, with its nested PHI cleaned
        let pcs = back.get(Tag(0x0008, 0x1032)).unwrap().items().unwrap()[0].clone();
        assert_eq!(
            str_of(&pcs, Tag(0x0008, 0x0100)).as_deref(),
            Some("CTCHEST")
        );
        let inner = pcs.get(Tag(0x0040, 0x0260)).unwrap().items().unwrap()[0].clone();
        assert!(inner.get(Tag(0x0040, 0x0006)).is_none());
        assert_eq!(
            str_of(&inner, Tag(0x0008, 0x0104)).as_deref(),
            Some("Protocol one")
        );
    }
}

fn longitudinal() -> DeidOptions {
    DeidOptions {
        retain_longitudinal_modified_dates: true,
        retain_patient_characteristics: true,
        retain_safe_private: true,
        clean_descriptors: true,
        clean_structured_content: true,
        descriptors: DescriptorPolicy::Scrub,
        ..Default::default()
    }
}

#[test]
fn longitudinal_options_shift_and_scrub() {
    let de = Deidentifier::new(&longitudinal()).unwrap();
    assert!(matches!(de.effective_dates(), DatePolicy::Shift { .. }));
    let out = check_common(&longitudinal());
    let mut by_patient: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    for (inst, _, bytes) in &out {
        let back = parse_back(bytes);
        let new_date = str_of(&back, Tag(0x0008, 0x0020)).unwrap();
        assert_ne!(new_date, inst.study_date);
        assert_eq!(
            str_of(&back, Tag(0x0028, 0x0303)).as_deref(),
            Some("MODIFIED")
        );
        let dt = str_of(&back, Tag(0x0008, 0x002A)).unwrap();
        assert_eq!(dt, format!("{new_date}101502.250000"));
        assert_eq!(
            str_of(&back, Tag(0x0008, 0x0030)).as_deref(),
            Some("101010")
        );
        by_patient
            .entry(inst.patient)
            .or_default()
            .push((inst.study_date.clone(), new_date));
        // patient characteristics: 095Y capped
        if inst.patient == 0 {
            assert_eq!(str_of(&back, Tag(0x0010, 0x1010)).as_deref(), Some("090Y"));
        }
        // safe private kept with its creator, unsafe one in the same block removed
        assert_eq!(str_of(&back, Tag(0x7053, 0x1000)).as_deref(), Some("1.5"));
        assert!(back.get(Tag(0x7053, 0x0010)).is_some());
        assert!(back.get(Tag(0x7053, 0x1001)).is_none());
        // descriptors scrubbed but kept
        let desc = str_of(&back, Tag(0x0008, 0x1030)).unwrap();
        assert_eq!(desc, "CT chest *** follow-up");
        let comments = str_of(&back, Tag(0x0020, 0x4000)).unwrap();
        assert!(
            comments.starts_with("Patient *** ***"),
            "scrubbed comment shape"
        );
        assert_eq!(
            back.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            keys().uid(&inst.sop_uid)
        );
    }
    // intervals between studies of one patient preserved
    for (_, v) in by_patient {
        let (o0, n0) = &v[0];
        for (o, n) in &v {
            for delta in -400i64..=400 {
                if super::dates::shift_da(o0, delta).as_deref() == Some(o.as_str()) {
                    assert_eq!(
                        super::dates::shift_da(n0, delta).as_deref(),
                        Some(n.as_str())
                    );
                }
            }
        }
    }
}

#[test]
fn year_only_and_keep_policies() {
    let g = generate();
    let k = keys();
    for (dates, expect) in [
        (DatePolicy::YearOnly, "MODIFIED"),
        (DatePolicy::Keep, "UNMODIFIED"),
    ] {
        let de = Deidentifier::new(&DeidOptions {
            dates: dates.clone(),
            ..Default::default()
        })
        .unwrap();
        let mut obj = g.instances[0].obj.clone();
        de.apply(&mut obj, &k).unwrap();
        assert_eq!(str_of(&obj, Tag(0x0028, 0x0303)).as_deref(), Some(expect));
        let sd = str_of(&obj, Tag(0x0008, 0x0020)).unwrap();
        match dates {
            DatePolicy::YearOnly => {
                assert_eq!(sd, format!("{}0101", &g.instances[0].study_date[..4]));
                assert_eq!(str_of(&obj, Tag(0x0008, 0x0030)).as_deref(), Some(""));
                assert_eq!(str_of(&obj, Tag(0x0008, 0x002A)).unwrap(), sd);
            }
            _ => assert_eq!(sd, g.instances[0].study_date),
        }
        // birth date is not longitudinal: emptied per table
        assert_eq!(str_of(&obj, Tag(0x0010, 0x0030)).as_deref(), Some(""));
    }
    // unparseable dates never pass through, not even under keep
    let de = Deidentifier::new(&DeidOptions {
        dates: DatePolicy::Keep,
        ..Default::default()
    })
    .unwrap();
    let mut obj = g.instances[0].obj.clone();
    obj.put(DataElement::new(
        Tag(0x0008, 0x0023),
        VR::DA,
        PrimitiveValue::from("QUIXBLATT"),
    ));
    obj.put(DataElement::new(
        Tag(0x0008, 0x0033),
        VR::TM,
        PrimitiveValue::from("noon"),
    ));
    de.apply(&mut obj, &k).unwrap();
    assert_eq!(str_of(&obj, Tag(0x0008, 0x0023)).as_deref(), Some(""));
    assert_eq!(str_of(&obj, Tag(0x0008, 0x0033)).as_deref(), Some(""));
    assert_eq!(
        str_of(&obj, Tag(0x0008, 0x0012)).as_deref(),
        Some(g.instances[0].study_date.as_str())
    );
    let de = Deidentifier::new(&DeidOptions {
        dates: DatePolicy::Shift {
            min_days: -10,
            max_days: -5,
        },
        ..Default::default()
    })
    .unwrap();
    let mut obj = g.instances[0].obj.clone();
    obj.put(DataElement::new(
        Tag(0x0008, 0x0020),
        VR::DA,
        PrimitiveValue::from("2020-13-45"),
    ));
    obj.put(DataElement::new(
        Tag(0x0008, 0x0021),
        VR::DA,
        PrimitiveValue::from("garbage"),
    ));
    de.apply(&mut obj, &k).unwrap();
    assert_eq!(str_of(&obj, Tag(0x0008, 0x0020)).as_deref(), Some(""));
    // Series Date is X/D (Type 1 somewhere): emptied, never passed through
    assert_eq!(str_of(&obj, Tag(0x0008, 0x0021)).as_deref(), Some(""));
}

#[test]
fn lookup_mode_and_errors() {
    let dir = std::env::temp_dir().join(format!("deid_scratch_lookup_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("ids.csv");
    std::fs::write(&f, "id_old,id_new\nPIDQX48213,STUDY-001\n").unwrap();
    let de = Deidentifier::new(&DeidOptions {
        patient_id: PatientIdPolicy::Lookup { table: f.clone() },
        ..Default::default()
    })
    .unwrap();
    let g = generate();
    let k = keys();
    let mut a = g.instances[0].obj.clone();
    let rep = de.apply(&mut a, &k).unwrap();
    assert_eq!(
        str_of(&a, Tag(0x0010, 0x0020)).as_deref(),
        Some("STUDY-001")
    );
    assert_eq!(
        str_of(&a, Tag(0x0010, 0x0010)).as_deref(),
        Some("STUDY-001")
    );
    assert_eq!(
        rep.patient_map,
        vec![("PIDQX48213".to_string(), "STUDY-001".to_string())]
    );
    let dbg = format!("{rep:?}");
    assert!(!dbg.contains("PIDQX") && !dbg.contains("1.2.826"));
    let mut b = g.instances.last().unwrap().obj.clone();
    let err = de.apply(&mut b, &k).unwrap_err();
    assert!(matches!(err, DeidError::Quarantine(_)));
    assert!(!err.to_string().contains("PIDGL"));
    let missing = dir.join("nope.csv");
    let e = Deidentifier::new(&DeidOptions {
        patient_id: PatientIdPolicy::Lookup { table: missing },
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.contains("nope.csv"));
    std::fs::write(&f, "id_old,id_new\nSECRETVALUE\n").unwrap();
    let e = Deidentifier::new(&DeidOptions {
        patient_id: PatientIdPolicy::Lookup { table: f },
        ..Default::default()
    })
    .unwrap_err();
    assert!(!e.contains("SECRETVALUE"));
    // overrides
    assert!(Deidentifier::new(&DeidOptions {
        keep: vec!["NotAKeyword".into()],
        ..Default::default()
    })
    .is_err());
    // An attribute kept on purpose is still searched for the patient's identifiers.
    let kept_description = DeidOptions {
        keep: vec!["StudyDescription".into()],
        remove: vec!["(0008,0060)".into()],
        ..Default::default()
    };
    let de = Deidentifier::new(&kept_description).unwrap();
    let mut c = g.instances[0].obj.clone();
    let err = de.apply(&mut c, &k).unwrap_err().to_string();
    assert!(
        err.contains("(0008,1030) StudyDescription holds a value of PatientName"),
        "{err}"
    );
    let de = Deidentifier::new(&DeidOptions {
        echo_check: super::EchoCheck(false),
        ..kept_description
    })
    .unwrap();
    let mut c = g.instances[0].obj.clone();
    de.apply(&mut c, &k).unwrap();
    assert!(str_of(&c, Tag(0x0008, 0x1030))
        .unwrap()
        .starts_with("CT chest"));
    assert!(c.get(Tag(0x0008, 0x0060)).is_none());
    // conflicting date options
    assert!(Deidentifier::new(&DeidOptions {
        retain_longitudinal_full_dates: true,
        dates: DatePolicy::YearOnly,
        ..Default::default()
    })
    .is_err());
    // Send + Sync, Debug without the secret
    fn ss<T: Send + Sync>() {}
    ss::<Deidentifier>();
    ss::<Keys>();
    assert!(!format!("{:?}", keys()).contains("unit-test-secret"));
    let d = Deidentifier::new(&longitudinal()).unwrap().describe();
    assert!(d.contains("113107") && d.contains("shifted"));
    let mut m = g.instances[0].obj.clone();
    add_clean_pixel_mark(&mut m);
    add_clean_pixel_mark(&mut m);
    assert_eq!(
        m.get(Tag(0x0012, 0x0064)).unwrap().items().unwrap().len(),
        1
    );
    let schema = schemars::schema_for!(DeidOptions);
    let text = schema.as_value().to_string();
    assert!(text.contains("retain_safe_private") && text.contains("year_only"));
}

// ---------- conformance: one element per Table E.1-1 row ----------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Exp {
    Absent,
    Empty,
    Changed,
    Same,
    Present,
}

fn test_tag(row: &Row) -> Option<Tag> {
    match row.pattern {
        TagPattern::Exact(t) => Some(t),
        TagPattern::Curve => Some(Tag(0x5000, 0x3000)),
        TagPattern::Overlay(e) => Some(Tag(0x6000, e)),
        TagPattern::Private => None, // covered by the synthetic-data tests
    }
}

fn test_vr(tag: Tag) -> VR {
    match tag {
        Tag(0x5000, 0x3000) | Tag(0x6000, 0x3000) => VR::OW,
        Tag(0x6000, 0x4000) => VR::LT,
        _ => StandardDataDictionary
            .by_tag(tag)
            .map(|e| e.vr().relaxed())
            .unwrap_or(VR::LO),
    }
}

fn sample(tag: Tag, vr: VR) -> DataElement<InMemDicomObject> {
    let v: Value<InMemDicomObject, _> = match vr {
        VR::SQ => {
            let item = InMemDicomObject::from_element_iter([DataElement::new(
                Tag(0x0008, 0x0100),
                VR::SH,
                PrimitiveValue::from("X1"),
            )]);
            return DataElement::new(
                tag,
                VR::SQ,
                DataSetSequence::new(vec![item], Length::UNDEFINED),
            );
        }
        VR::PN => PrimitiveValue::from("DOE^JOHN").into(),
        VR::DA => PrimitiveValue::from("20200102").into(),
        VR::DT => PrimitiveValue::from("20200102030405").into(),
        VR::TM => PrimitiveValue::from("030405").into(),
        VR::UI => PrimitiveValue::from("1.2.3.4.5.6").into(),
        VR::AS => PrimitiveValue::from("045Y").into(),
        VR::IS => PrimitiveValue::from("7").into(),
        VR::DS => PrimitiveValue::from("1.5").into(),
        VR::AE => PrimitiveValue::from("AETITLE").into(),
        VR::CS => PrimitiveValue::from("ABC").into(),
        VR::UR => PrimitiveValue::from("http://example.com/a").into(),
        VR::US => PrimitiveValue::from(7u16).into(),
        VR::SS => PrimitiveValue::from(7i16).into(),
        VR::UL => PrimitiveValue::from(7u32).into(),
        VR::SL => PrimitiveValue::from(7i32).into(),
        VR::FL => PrimitiveValue::from(1.5f32).into(),
        VR::FD => PrimitiveValue::from(1.5f64).into(),
        VR::UV => PrimitiveValue::U64([7u64].as_slice().into()).into(),
        VR::SV => PrimitiveValue::I64([7i64].as_slice().into()).into(),
        VR::AT => PrimitiveValue::Tags([Tag(0x0010, 0x0010)].as_slice().into()).into(),
        VR::OB | VR::OW | VR::UN | VR::OF | VR::OD | VR::OL | VR::OV => {
            PrimitiveValue::U8([1u8, 2, 3, 4].as_slice().into()).into()
        }
        _ => PrimitiveValue::from("Some text").into(),
    };
    DataElement::new(tag, vr, v)
}

fn is_text(vr: VR) -> bool {
    matches!(
        vr,
        VR::LO | VR::LT | VR::ST | VR::UT | VR::SH | VR::UC | VR::PN
    )
}

fn expected(row: &Row, code: Action, vr: VR, tag: Tag, opt: Option<ProfileOption>) -> Exp {
    let seq = vr == VR::SQ;
    match code {
        Action::X => Exp::Absent,
        Action::Z if [Tag(0x0008, 0x0050), Tag(0x0020, 0x0010)].contains(&tag) => Exp::Changed,
        Action::Z => Exp::Empty,
        Action::D if seq => Exp::Empty,
        Action::D => Exp::Changed,
        Action::K if seq => Exp::Present,
        Action::K => Exp::Same,
        Action::U if seq => Exp::Present,
        Action::U => Exp::Changed,
        Action::C => {
            if seq {
                Exp::Present
            } else if matches!(row.pattern, TagPattern::Overlay(_) | TagPattern::Curve)
                || (is_text(vr) && !matches!(vr, VR::DA | VR::DT | VR::TM))
            {
                expected(row, row.basic, vr, tag, None)
            } else if matches!(vr, VR::DA | VR::DT)
                && opt == Some(ProfileOption::RetainLongitudinalModifiedDates)
            {
                Exp::Changed
            } else if vr == VR::TM {
                Exp::Present
            } else {
                Exp::Changed
            }
        }
        _ if !row.in_std_comp_iod => Exp::Absent,
        // A Type 3 sequence may not be present with zero items: X/Z means X for it.
        Action::XZ if seq && tag == Tag(0x0008, 0x1110) => Exp::Absent,
        Action::XZ => Exp::Empty,
        Action::XD | Action::XZD | Action::ZD => {
            if seq {
                Exp::Empty
            } else {
                Exp::Changed
            }
        }
        Action::XZU => {
            if seq {
                Exp::Present
            } else if vr == VR::UI {
                Exp::Changed
            } else {
                Exp::Empty
            }
        }
    }
}

fn prim_str(e: &DataElement<InMemDicomObject>) -> String {
    match e.value() {
        Value::Primitive(p) => p.to_str().trim_end_matches(['\0', ' ']).to_string(),
        _ => String::from("<seq>"),
    }
}

#[test]
fn conformance_with_table_e1_1() {
    let t = table();
    let special = [
        Tag(0x0010, 0x0010),
        Tag(0x0010, 0x0020),
        Tag(0x0012, 0x0062),
        Tag(0x0012, 0x0063),
        Tag(0x0012, 0x0064),
        Tag(0x0028, 0x0303),
    ];
    let mut base = InMemDicomObject::new_empty();
    let mut rows: Vec<(&Row, Tag, VR)> = Vec::new();
    for row in &t.rows {
        let Some(tag) = test_tag(row) else { continue };
        if special.contains(&tag) || tag.group() == 0x0002 {
            continue;
        }
        let vr = test_vr(tag);
        base.put(sample(tag, vr));
        rows.push((row, tag, vr));
    }
    assert!(rows.len() > 640);
    // Every text attribute holds a sample value here, so the identifier echo check (tested on
    // its own) would see the same strings everywhere: this test is about the table alone.
    let no_echo = DeidOptions {
        echo_check: super::EchoCheck(false),
        ..Default::default()
    };
    let mut configs: Vec<(Option<ProfileOption>, DeidOptions)> = vec![(None, no_echo.clone())];
    for o in ProfileOption::ALL {
        let mut d = no_echo.clone();
        match o {
            ProfileOption::RetainSafePrivate => d.retain_safe_private = true,
            ProfileOption::RetainUids => d.retain_uids = true,
            ProfileOption::RetainDeviceIdentity => d.retain_device_identity = true,
            ProfileOption::RetainInstitutionIdentity => d.retain_institution_identity = true,
            ProfileOption::RetainPatientCharacteristics => d.retain_patient_characteristics = true,
            ProfileOption::RetainLongitudinalFullDates => d.retain_longitudinal_full_dates = true,
            ProfileOption::RetainLongitudinalModifiedDates => {
                d.retain_longitudinal_modified_dates = true
            }
            ProfileOption::CleanDescriptors => d.clean_descriptors = true,
            ProfileOption::CleanStructuredContent => d.clean_structured_content = true,
            ProfileOption::CleanGraphics => d.clean_graphics = true,
        }
        configs.push((Some(o), d));
    }
    let k = keys();
    let mut failures = Vec::new();
    for (opt, d) in configs {
        let de = Deidentifier::new(&d).unwrap();
        let mut obj = FileDicomObject::new_empty_with_meta(
            dicom_object::meta::FileMetaTableBuilder::new()
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                .media_storage_sop_instance_uid("1.2.3.4.5.6")
                .transfer_syntax("1.2.840.10008.1.2.1")
                .build()
                .unwrap(),
        );
        for e in base.iter() {
            obj.put(e.clone());
        }
        de.apply(&mut obj, &k).unwrap();
        for (row, tag, vr) in &rows {
            let code = opt.and_then(|o| row.option(o)).unwrap_or(row.basic);
            let exp = expected(row, code, *vr, *tag, opt);
            let got = obj.get(*tag);
            let orig = prim_str(&sample(*tag, *vr));
            let ok = match (exp, got) {
                (Exp::Absent, None) => true,
                (Exp::Absent, Some(_)) => false,
                (_, None) => false,
                (Exp::Empty, Some(e)) => match e.value() {
                    Value::Sequence(s) => s.items().is_empty(),
                    _ => prim_str(e).is_empty(),
                },
                (Exp::Changed, Some(e)) => prim_str(e) != orig,
                (Exp::Same, Some(e)) => prim_str(e) == orig,
                (Exp::Present, Some(_)) => true,
            };
            if !ok {
                failures.push(format!(
                    "{:?} {} {} {:?} expected {:?}",
                    opt,
                    row.name,
                    code.code(),
                    vr,
                    exp
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------- corpus ----------

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| !n.ends_with(".csv") && !n.ends_with(".md"))
            .unwrap_or(false)
        {
            out.push(p);
        }
    }
}

#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn corpus_files_apply_and_write() {
    let dir = corpus_dir();
    let mut files = Vec::new();
    walk(&dir, &mut files);
    assert!(files.len() >= 100);
    let de = Deidentifier::new(&DeidOptions::default()).unwrap();
    let de2 = Deidentifier::new(&longitudinal()).unwrap();
    let k = keys();
    let dcmdump = crate::testing::required(
        "/usr/bin/dcmdump",
        Path::new("/usr/bin/dcmdump").is_file().then_some(()),
    )
    .is_some();
    let tmp = std::env::temp_dir().join(format!("deid_scratch_corpus_{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (mut opened, mut applied, mut dumped) = (0, 0, 0);
    let mut problems = Vec::new();
    for (n, f) in files.iter().enumerate() {
        let rel = f.strip_prefix(&dir).unwrap().display().to_string();
        let t0 = std::time::Instant::now();
        let Ok(orig) = dicom_object::open_file(f) else {
            continue;
        };
        let t_open = t0.elapsed();
        opened += 1;
        for (which, d) in [(0, &de), (1, &de2)] {
            let mut obj = orig.clone();
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.apply(&mut obj, &k)));
            match r {
                Err(_) => problems.push(format!("{rel}: panic in apply")),
                Ok(Err(e)) => {
                    assert!(matches!(e, DeidError::Failed(_) | DeidError::Quarantine(_)));
                }
                Ok(Ok(_)) => {
                    applied += 1;
                    let mut v = Vec::new();
                    if let Err(e) = obj.write_all(&mut v) {
                        // only acceptable if the untouched original cannot be written either
                        let mut w = Vec::new();
                        if orig.write_all(&mut w).is_ok() {
                            problems.push(format!("{rel}: write failed after apply: {e}"));
                        }
                        continue;
                    }
                    if which == 0 && v.len() < (4 << 20) {
                        let manufacturer = orig
                            .get(Tag(0x0008, 0x0070))
                            .and_then(|e| e.to_str().ok())
                            .map(|s| s.trim().to_string())
                            .unwrap_or_default();
                        for t in [
                            Tag(0x0010, 0x0020),
                            Tag(0x0010, 0x0010),
                            Tag(0x0008, 0x0018),
                            Tag(0x0020, 0x000D),
                            Tag(0x0020, 0x000E),
                            Tag(0x0008, 0x0090),
                            Tag(0x0008, 0x0080),
                            Tag(0x0008, 0x0050),
                        ] {
                            let val = orig
                                .get(t)
                                .and_then(|e| e.to_str().ok())
                                .map(|s| s.trim_matches(['\0', ' ']).to_string())
                                .unwrap_or_default();
                            // values that are generic placeholders / well-known UIDs / also the manufacturer are not PHI
                            let generic = val.to_ascii_lowercase().contains("anonym")
                                || val.starts_with("1.2.840.10008.")
                                || manufacturer
                                    .to_ascii_lowercase()
                                    .contains(&val.to_ascii_lowercase());
                            if val.len() >= 6 && !generic && contains_ci(&v, &val) {
                                problems.push(format!("{rel}: value of {t} survived"));
                            }
                        }
                        if dcmdump && (n % 6 == 0 || std::env::var_os("DEID_DCMDUMP_ALL").is_some())
                        {
                            let out = tmp.join(format!("f{n}.dcm"));
                            std::fs::write(&out, &v).unwrap();
                            let st = std::process::Command::new("/usr/bin/dcmdump")
                                .arg("-q")
                                .arg(&out)
                                .output()
                                .unwrap();
                            if !st.status.success()
                                || String::from_utf8_lossy(&st.stderr).contains("E: ")
                            {
                                problems.push(format!("{rel}: dcmdump failed on output"));
                            }
                            dumped += 1;
                        }
                    }
                }
            }
        }
        if t0.elapsed().as_millis() > 400 {
            eprintln!("slow: {rel} open {:?} total {:?}", t_open, t0.elapsed());
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "corpus: {} files, {opened} opened, {applied} applies ok, {dumped} dcmdump checks",
        files.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(opened > 100);
}

#[test]
fn dcmdump_reads_generated_output() {
    if !Path::new("/usr/bin/dcmdump").is_file() {
        return;
    }
    let de = Deidentifier::new(&longitudinal()).unwrap();
    let mut g = generate();
    let inst = &mut g.instances[0];
    de.apply(&mut inst.obj, &keys()).unwrap();
    let tmp = std::env::temp_dir().join(format!("deid_scratch_gen_{}.dcm", std::process::id()));
    std::fs::write(&tmp, to_bytes(&inst.obj).unwrap()).unwrap();
    let out = std::process::Command::new("/usr/bin/dcmdump")
        .arg(&tmp)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&tmp);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PatientIdentityRemoved") && text.contains("113107"));
}

#[test]
fn options_deserialize_from_maps() {
    use serde::de::value::{Error as DeErr, MapDeserializer};
    use serde::de::IntoDeserializer;
    use serde::Deserialize;
    let map =
        |kv: Vec<(&'static str, &'static str)>| MapDeserializer::<_, DeErr>::new(kv.into_iter());
    assert_eq!(
        DatePolicy::deserialize(map(vec![("policy", "keep")])).unwrap(),
        DatePolicy::Keep
    );
    assert_eq!(
        DatePolicy::deserialize(map(vec![("policy", "year_only")])).unwrap(),
        DatePolicy::YearOnly
    );
    assert_eq!(
        DatePolicy::deserialize(map(vec![("policy", "shift")])).unwrap(),
        DatePolicy::Shift {
            min_days: -365,
            max_days: -1
        }
    );
    // serde enforces deny_unknown_fields for struct variants (not for unit variants of an internally tagged enum)
    assert!(DatePolicy::deserialize(map(vec![("policy", "shift"), ("bogus", "1")])).is_err());
    assert_eq!(
        PatientIdPolicy::deserialize(map(vec![("mode", "keyed")])).unwrap(),
        PatientIdPolicy::Keyed {
            prefix: "SUBJ".into()
        }
    );
    assert!(matches!(
        PatientIdPolicy::deserialize(map(vec![("mode", "lookup"), ("table", "ids.csv")])).unwrap(),
        PatientIdPolicy::Lookup { .. }
    ));
    let d: Result<DescriptorPolicy, DeErr> =
        DescriptorPolicy::deserialize("scrub".into_deserializer());
    assert_eq!(d.unwrap(), DescriptorPolicy::Scrub);
    let o = DeidOptions::deserialize(MapDeserializer::<_, DeErr>::new(std::iter::empty::<(
        &str,
        &str,
    )>()))
    .unwrap();
    assert!(
        !o.retain_uids
            && o.dates == DatePolicy::Remove
            && o.descriptors == DescriptorPolicy::Remove
    );
    assert!(DeidOptions::deserialize(map(vec![("no_such_option", "x")])).is_err());
}

#[test]
#[ignore]
fn explore_corpus_survivors() {
    let dir = corpus_dir();
    let mut files = Vec::new();
    walk(&dir, &mut files);
    let de = Deidentifier::new(&DeidOptions::default()).unwrap();
    let k = keys();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    fn rec(
        o: &InMemDicomObject,
        counts: &mut std::collections::BTreeMap<String, usize>,
        path: &str,
    ) {
        for e in o.iter() {
            let t = e.header().tag;
            if let Value::Sequence(s) = e.value() {
                for it in s.items() {
                    rec(it, counts, &format!("{path}{t}."));
                }
                continue;
            }
            let vr = e.vr();
            let s = match e.value() {
                Value::Primitive(p) => p.to_str().to_string(),
                _ => continue,
            };
            let s = s.trim_matches(['\0', ' ']);
            if s.is_empty() {
                continue;
            }
            let kw = StandardDataDictionary
                .by_tag(t)
                .map(|x| x.alias().to_string())
                .unwrap_or_default();
            if vr == VR::UI && !s.starts_with("1.2.840.10008.") && !s.starts_with("2.25.") {
                *counts.entry(format!("UID {t} {kw}")).or_default() += 1;
            }
            if matches!(vr, VR::DA | VR::DT) {
                *counts.entry(format!("DATE {t} {kw} {s}")).or_default() += 1;
            }
            if matches!(vr, VR::PN) && s != "ANONYMOUS" && !s.starts_with("SUBJ") {
                *counts.entry(format!("PN {t} {kw}")).or_default() += 1;
            }
            if matches!(vr, VR::LO | VR::SH | VR::LT | VR::ST | VR::UT)
                && path.is_empty()
                && [0x0050u16, 0x0080, 0x1010, 0x1000, 0x1030, 0x0010].contains(&t.element())
            {
                *counts.entry(format!("TEXT {t} {kw} {s}")).or_default() += 1;
            }
        }
    }
    for f in &files {
        let Ok(mut o) = dicom_object::open_file(f) else {
            continue;
        };
        if de.apply(&mut o, &k).is_ok() {
            rec(&o, &mut counts, "");
        }
    }
    for (k, v) in counts {
        eprintln!("{v:5} {k}");
    }
}

#[test]
fn un_vr_elements_and_sequences() {
    let g = generate();
    let k = keys();
    let de = Deidentifier::new(&DeidOptions::default()).unwrap();
    let mut obj = g.instances[0].obj.clone();
    // a standard sequence that arrived as UN but was parsed into items
    let item = InMemDicomObject::from_element_iter([
        DataElement::new(
            Tag(0x0008, 0x1150),
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.7"),
        ),
        DataElement::new(
            Tag(0x0008, 0x1155),
            VR::UI,
            PrimitiveValue::from("1.2.826.0.1.3680043.10.777.9.9"),
        ),
        DataElement::new(
            Tag(0x0008, 0x1050),
            VR::PN,
            PrimitiveValue::from("UNSEQ^PERSON"),
        ),
    ]);
    obj.put(DataElement::new(
        Tag(0x0008, 0x1140),
        VR::UN,
        Value::Sequence(DataSetSequence::new(vec![item], Length::UNDEFINED)),
    ));
    // a sequence left as raw UN bytes cannot be inspected: removed
    obj.put(DataElement::new(
        Tag(0x0040, 0x0260),
        VR::UN,
        PrimitiveValue::U8([0xFEu8, 0xFF, 0x00, 0xE0].as_slice().into()),
    ));
    // UN bytes of a PN / DA attribute: handled with the dictionary VR
    obj.put(DataElement::new(
        Tag(0x0008, 0x1070),
        VR::UN,
        PrimitiveValue::U8(b"UNBYTES^OPERATOR".as_slice().into()),
    ));
    obj.put(DataElement::new(
        Tag(0x0010, 0x0010),
        VR::UN,
        PrimitiveValue::U8(b"UNBYTES^PATIENT ".as_slice().into()),
    ));
    de.apply(&mut obj, &k).unwrap();
    let seq = obj.get(Tag(0x0008, 0x1140)).unwrap();
    assert_eq!(seq.vr(), VR::SQ);
    let it = &seq.items().unwrap()[0];
    assert_eq!(
        str_of(it, Tag(0x0008, 0x1155)).unwrap(),
        k.uid("1.2.826.0.1.3680043.10.777.9.9")
    );
    assert!(it.get(Tag(0x0008, 0x1050)).is_none());
    assert!(obj.get(Tag(0x0040, 0x0260)).is_none());
    let op = obj.get(Tag(0x0008, 0x1070)).unwrap();
    assert_eq!(
        (op.vr(), str_of(&obj, Tag(0x0008, 0x1070)).unwrap().as_str()),
        (VR::PN, "ANONYMOUS")
    );
    assert!(str_of(&obj, Tag(0x0010, 0x0010))
        .unwrap()
        .starts_with("SUBJ"));
    let bytes = to_bytes(&obj).unwrap();
    assert!(!contains_ci(&bytes, "UNBYTES") && !contains_ci(&bytes, "UNSEQ"));
    parse_back(&bytes);
}

#[test]
#[ignore]
fn show_describe_and_report() {
    let de = Deidentifier::new(&longitudinal()).unwrap();
    eprintln!(
        "{}\n",
        Deidentifier::new(&DeidOptions::default())
            .unwrap()
            .describe()
    );
    eprintln!("{}\n", de.describe());
    let mut g = generate();
    let rep = de.apply(&mut g.instances[0].obj, &keys()).unwrap();
    for (p, a) in rep.actions.iter().take(200) {
        eprintln!("{a:8} {p}");
    }
}

#[test]
fn too_deep_nesting_is_an_error_not_a_crash() {
    let g = generate();
    let mut obj = g.instances[0].obj.clone();
    let mut inner = InMemDicomObject::from_element_iter([DataElement::new(
        Tag(0x0008, 0x0100),
        VR::SH,
        PrimitiveValue::from("X"),
    )]);
    for _ in 0..80 {
        inner = InMemDicomObject::from_element_iter([DataElement::new(
            Tag(0x0008, 0x1032),
            VR::SQ,
            DataSetSequence::new(vec![inner], Length::UNDEFINED),
        )]);
    }
    obj.put(DataElement::new(
        Tag(0x0008, 0x1032),
        VR::SQ,
        DataSetSequence::new(vec![inner], Length::UNDEFINED),
    ));
    let err = Deidentifier::new(&DeidOptions::default())
        .unwrap()
        .apply(&mut obj, &keys())
        .unwrap_err();
    assert!(matches!(err, DeidError::Failed(ref m) if m.contains("(0008,1032)")));
}

#[test]
fn shared_across_threads_is_deterministic() {
    let de = Deidentifier::new(&longitudinal()).unwrap();
    let k = keys();
    let g1 = generate();
    let g2 = generate();
    type Out = Vec<(Vec<(String, String)>, Vec<u8>)>;
    let run = |g: super::testgen::Generated| -> Out {
        g.instances
            .into_iter()
            .map(|mut i| {
                let r = de.apply(&mut i.obj, &k).unwrap();
                (r.uid_map, to_bytes(&i.obj).unwrap())
            })
            .collect()
    };
    let (a, b) = std::thread::scope(|s| {
        let h1 = s.spawn(|| run(g1));
        let h2 = s.spawn(|| run(g2));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "same input, same key -> identical output bytes");
    }
}

#[test]
fn declared_safe_private_blocks() {
    let g = generate();
    let k = keys();
    let mut obj = g.instances[0].obj.clone();
    obj.put(DataElement::new(
        Tag(0x0019, 0x0010),
        VR::LO,
        PrimitiveValue::from("ACME MIXED"),
    ));
    obj.put(DataElement::new(
        Tag(0x0019, 0x1001),
        VR::DS,
        PrimitiveValue::from("2.5"),
    ));
    obj.put(DataElement::new(
        Tag(0x0019, 0x1002),
        VR::LO,
        PrimitiveValue::from("QUIXBLATT"),
    ));
    obj.put(DataElement::new(
        Tag(0x0021, 0x0010),
        VR::LO,
        PrimitiveValue::from("ACME SAFE"),
    ));
    obj.put(DataElement::new(
        Tag(0x0021, 0x1005),
        VR::US,
        PrimitiveValue::from(3u16),
    ));
    let decl = |g: u16, c: &str, status: &str, lows: &[u16]| {
        let mut it = InMemDicomObject::from_element_iter([
            DataElement::new(Tag(0x0008, 0x0301), VR::US, PrimitiveValue::from(g)),
            DataElement::new(Tag(0x0008, 0x0302), VR::LO, PrimitiveValue::from(c)),
            DataElement::new(Tag(0x0008, 0x0303), VR::CS, PrimitiveValue::from(status)),
        ]);
        if !lows.is_empty() {
            it.put(DataElement::new(
                Tag(0x0008, 0x0304),
                VR::US,
                PrimitiveValue::U16(lows.into()),
            ));
        }
        it
    };
    obj.put(DataElement::new(
        Tag(0x0008, 0x0300),
        VR::SQ,
        DataSetSequence::new(
            vec![
                decl(0x0019, "ACME MIXED", "MIXED", &[0x01]),
                decl(0x0021, "ACME SAFE", "SAFE", &[]),
            ],
            Length::UNDEFINED,
        ),
    ));
    for trust in [false, true] {
        let de = Deidentifier::new(&DeidOptions {
            retain_safe_private: true,
            trust_declared_safe_private: trust,
            ..Default::default()
        })
        .unwrap();
        let mut o = obj.clone();
        de.apply(&mut o, &k).unwrap();
        assert_eq!(o.get(Tag(0x0019, 0x1001)).is_some(), trust);
        assert_eq!(o.get(Tag(0x0019, 0x0010)).is_some(), trust);
        assert_eq!(o.get(Tag(0x0021, 0x1005)).is_some(), trust);
        assert!(o.get(Tag(0x0019, 0x1002)).is_none());
        assert_eq!(str_of(&o, Tag(0x7053, 0x1000)).as_deref(), Some("1.5"));
    }
}

/// A bare instance with a patient name and ID, in the given character set.
fn echo_fixture(charset: &str, name: &str) -> FileDicomObject<InMemDicomObject> {
    let mut obj = FileDicomObject::new_empty_with_meta(
        dicom_object::meta::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
            .media_storage_sop_instance_uid("1.2.3.4.5.6.7")
            .transfer_syntax("1.2.840.10008.1.2.1")
            .build()
            .unwrap(),
    );
    for (t, vr, v) in [
        (Tag(0x0008, 0x0005), VR::CS, charset),
        (Tag(0x0008, 0x0016), VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        (Tag(0x0008, 0x0018), VR::UI, "1.2.3.4.5.6.7"),
        (Tag(0x0010, 0x0010), VR::PN, name),
        (Tag(0x0010, 0x0020), VR::LO, "PX-0042817"),
        (Tag(0x0009, 0x0010), VR::LO, "ACME 1.0"),
    ] {
        obj.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
    }
    obj
}

#[test]
fn a_kept_private_value_of_unknown_vr_that_reads_as_text_in_the_data_sets_charset_is_searched() {
    // ISO_IR 100 (Latin-1): the private UN bytes spell "Müller" only when decoded as Latin-1.
    let mut obj = echo_fixture("ISO_IR 100", "Müller^Jörg");
    let mut bytes = b"reviewed by M\xfcller, ref PX 0042817".to_vec();
    bytes.push(0);
    obj.put(DataElement::new(
        Tag(0x0009, 0x1010),
        VR::UN,
        PrimitiveValue::U8(bytes.into()),
    ));
    let opts = DeidOptions {
        keep: vec!["(0009,1010)".into()],
        ..Default::default()
    };
    let de = Deidentifier::new(&opts).unwrap();
    let err = de.apply(&mut obj.clone(), &keys()).unwrap_err().to_string();
    assert!(
        err.contains("(0009,1010) holds a value of PatientName"),
        "{err}"
    );
    assert!(
        !err.to_lowercase().contains("ller"),
        "no value in the reason: {err}"
    );
    // With `scrub`, the value that cannot be rewritten goes.
    let de = Deidentifier::new(&DeidOptions {
        descriptors: DescriptorPolicy::Scrub,
        ..opts
    })
    .unwrap();
    let rep = de.apply(&mut obj, &keys()).unwrap();
    assert!(obj.get(Tag(0x0009, 0x1010)).is_none());
    assert!(rep
        .actions
        .iter()
        .any(|(p, a)| p.starts_with("(0009,1010)") && *a == "removed"));
}

#[test]
fn the_echo_check_finds_ids_with_other_separators_and_birth_dates_in_written_forms() {
    for (text, source) in [
        ("order PX 0042817 done", "PatientID"),
        ("born 03/07/1961", "PatientBirthDate"),
        ("born 7 March 1961", "PatientBirthDate"),
    ] {
        let mut obj = echo_fixture("ISO_IR 192", "Roe^Richard");
        obj.put(DataElement::new(
            Tag(0x0010, 0x0030),
            VR::DA,
            PrimitiveValue::from("19610307"),
        ));
        // (0018,1016) SecondaryCaptureDeviceManufacturer is not in Table E.1-1: kept as it is.
        obj.put(DataElement::new(
            Tag(0x0018, 0x1016),
            VR::LO,
            PrimitiveValue::from(text),
        ));
        let de = Deidentifier::new(&DeidOptions {
            dates: DatePolicy::Keep,
            ..Default::default()
        })
        .unwrap();
        let err = de.apply(&mut obj, &keys()).unwrap_err().to_string();
        assert!(
            err.contains("SecondaryCaptureDeviceManufacturer holds a value of")
                && err.contains(source),
            "{text}: {err}"
        );
    }
}

#[test]
fn placeholder_names_and_vendor_words_do_not_quarantine() {
    // "ANONYMOUS" as the name, the model's words as the station name, a test patient named
    // after the vendor: none of it identifies anyone.
    let mut obj = echo_fixture("ISO_IR 192", "ANONYMOUS");
    obj.put(DataElement::new(
        Tag(0x0010, 0x1001),
        VR::PN,
        PrimitiveValue::from("ACME^Patient"),
    ));
    for (t, vr, v) in [
        (Tag(0x0008, 0x0070), VR::LO, "ACME Medical"),
        (Tag(0x0008, 0x1090), VR::LO, "Scanmaster 3000"),
        (Tag(0x0008, 0x1010), VR::SH, "SCANMASTER"),
        (
            Tag(0x0018, 0x1016),
            VR::LO,
            "Anonymous export via Scanmaster",
        ),
        (Tag(0x0018, 0x1020), VR::LO, "Build 2001-09-25"),
    ] {
        obj.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
    }
    let de = Deidentifier::new(&DeidOptions::default()).unwrap();
    de.apply(&mut obj, &keys()).unwrap();
}
