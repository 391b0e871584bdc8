//! In-memory synthetic studies with planted (fake) PHI, for end-to-end tests.
//!
//! `generate()` builds 3 patients x 2 studies x 2 series x 2 instances of an 8x8
//! MONOCHROME2 16-bit Secondary Capture image, with PHI planted in standard
//! attributes, free text, nested sequences (two levels), private attributes and a
//! private sequence, UIDs and references. All values are invented.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};

pub const SC_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// One generated instance and where it sits.
pub struct GenInstance {
    pub obj: FileDicomObject<InMemDicomObject>,
    pub patient: usize,
    pub study: usize,
    pub series: usize,
    pub instance: usize,
    /// Original SOP Instance UID of this instance.
    pub sop_uid: String,
    /// Original SOP Instance UID this instance references in ReferencedImageSequence.
    pub references: String,
    /// Original StudyDate (YYYYMMDD).
    pub study_date: String,
}

pub struct Generated {
    pub instances: Vec<GenInstance>,
    /// Identifying strings planted anywhere (none may survive de-identification).
    pub planted_values: Vec<String>,
    /// All original UIDs except well-known class/transfer syntax UIDs.
    pub planted_uids: Vec<String>,
}

const PATIENTS: [(&str, &str, &str, &str); 3] = [
    ("QUIXBLATT^HORTENSIA^M", "PIDQX48213", "19470312", "095Y"),
    ("VORNDRAKE^ODALRIC", "PIDVR77120", "19830701", "041Y"),
    ("GLIMMERTON^PERPETUA", "PIDGL90355", "20010929", "024Y"),
];

fn s(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn sq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

fn uid(p: usize, st: usize, se: usize, i: usize, kind: u32) -> String {
    format!(
        "1.2.826.0.1.3680043.10.777.{kind}.{}.{}.{}.{}",
        p + 1,
        st + 1,
        se + 1,
        i + 1
    )
}

fn add_days(da: &str, days: i64) -> String {
    super::dates::shift_da(da, days).expect("valid generated date")
}

/// Build the synthetic set.
pub fn generate() -> Generated {
    let mut instances = Vec::new();
    let mut planted_values: Vec<String> = vec![
        "HOSPITAL OF SAINT ZEBEDEE".into(),
        "12 Gribbleford Crescent, Upper Wallop".into(),
        "Gribbleford".into(),
        "ZEBEDEE-CT-07".into(),
        "SN-ZX-4417".into(),
        "DRPLUMWOOD^AMBROSE".into(),
        "PLUMWOOD".into(),
        "SCHEDULIX^BERNARDINE".into(),
        "SCHEDULIX".into(),
        "NESTWORTH^CLEMENTINE".into(),
        "NESTWORTH".into(),
        "OPERATRIX^DELPHINE".into(),
        "OPERATRIX".into(),
        "RQPID-55612".into(),
        "SPSID-99120".into(),
        "privatepayload-phi".into(),
        "PRIVSEQNAME^EUSTACE".into(),
        "+44 1632 960415".into(),
        "hortensia.q@example.org".into(),
    ];
    let mut planted_uids = Vec::new();
    for (p, (name, pid, birth, age)) in PATIENTS.iter().enumerate() {
        planted_values.push(name.to_string());
        for comp in name.split('^') {
            if comp.len() > 2 {
                planted_values.push(comp.to_string());
            }
        }
        planted_values.push(pid.to_string());
        planted_values.push(birth.to_string());
        let base_date = ["20190304", "20200815", "20211120"][p];
        for st in 0..2 {
            let study_date = add_days(base_date, if st == 0 { 0 } else { 37 + 11 * p as i64 });
            let study_uid = uid(p, st, 0, 0, 1);
            let accession = format!("ACCZ{}{}8812", p + 1, st + 1);
            planted_values.push(accession.clone());
            planted_uids.push(study_uid.clone());
            for se in 0..2 {
                let series_uid = uid(p, st, se, 0, 2);
                let for_uid = uid(p, st, se, 0, 3);
                planted_uids.push(series_uid.clone());
                planted_uids.push(for_uid.clone());
                for i in 0..2 {
                    let sop = uid(p, st, se, i, 4);
                    let other = uid(p, st, se, 1 - i, 4);
                    planted_uids.push(sop.clone());
                    let obj = instance(&Inst {
                        name,
                        pid,
                        birth,
                        age,
                        study_date: &study_date,
                        study_uid: &study_uid,
                        series_uid: &series_uid,
                        for_uid: &for_uid,
                        sop: &sop,
                        other: &other,
                        accession: &accession,
                        st,
                        se,
                        i,
                    });
                    instances.push(GenInstance {
                        obj,
                        patient: p,
                        study: st,
                        series: se,
                        instance: i,
                        sop_uid: sop,
                        references: other,
                        study_date: study_date.clone(),
                    });
                }
            }
        }
    }
    Generated {
        instances,
        planted_values,
        planted_uids,
    }
}

struct Inst<'a> {
    name: &'a str,
    pid: &'a str,
    birth: &'a str,
    age: &'a str,
    study_date: &'a str,
    study_uid: &'a str,
    series_uid: &'a str,
    for_uid: &'a str,
    sop: &'a str,
    other: &'a str,
    accession: &'a str,
    st: usize,
    se: usize,
    i: usize,
}

fn instance(a: &Inst) -> FileDicomObject<InMemDicomObject> {
    let surname = a.name.split('^').next().unwrap_or("");
    let given = a.name.split('^').nth(1).unwrap_or("");
    let mut o = InMemDicomObject::new_empty();
    let put = |o: &mut InMemDicomObject, e| {
        o.put(e);
    };
    put(&mut o, s(Tag(0x0008, 0x0005), VR::CS, "ISO_IR 100"));
    put(&mut o, s(Tag(0x0008, 0x0008), VR::CS, "DERIVED\\SECONDARY"));
    put(&mut o, s(Tag(0x0008, 0x0012), VR::DA, a.study_date));
    put(&mut o, s(Tag(0x0008, 0x0013), VR::TM, "101500"));
    put(&mut o, s(Tag(0x0008, 0x0016), VR::UI, SC_IMAGE_STORAGE));
    put(&mut o, s(Tag(0x0008, 0x0018), VR::UI, a.sop));
    put(&mut o, s(Tag(0x0008, 0x0020), VR::DA, a.study_date));
    put(&mut o, s(Tag(0x0008, 0x0021), VR::DA, a.study_date));
    put(&mut o, s(Tag(0x0008, 0x0023), VR::DA, a.study_date));
    put(
        &mut o,
        s(
            Tag(0x0008, 0x002A),
            VR::DT,
            &format!("{}101502.250000", a.study_date),
        ),
    );
    put(&mut o, s(Tag(0x0008, 0x0030), VR::TM, "101010"));
    put(&mut o, s(Tag(0x0008, 0x0050), VR::SH, a.accession));
    put(&mut o, s(Tag(0x0008, 0x0060), VR::CS, "OT"));
    put(&mut o, s(Tag(0x0008, 0x0064), VR::CS, "WSD"));
    put(
        &mut o,
        s(Tag(0x0008, 0x0080), VR::LO, "HOSPITAL OF SAINT ZEBEDEE"),
    );
    put(
        &mut o,
        s(
            Tag(0x0008, 0x0081),
            VR::ST,
            "12 Gribbleford Crescent, Upper Wallop",
        ),
    );
    put(&mut o, s(Tag(0x0008, 0x0090), VR::PN, "DRPLUMWOOD^AMBROSE"));
    put(&mut o, s(Tag(0x0008, 0x0094), VR::SH, "+44 1632 960415"));
    put(&mut o, s(Tag(0x0008, 0x1010), VR::SH, "ZEBEDEE-CT-07"));
    put(
        &mut o,
        s(
            Tag(0x0008, 0x1030),
            VR::LO,
            &format!("CT chest {surname} follow-up"),
        ),
    );
    put(
        &mut o,
        s(
            Tag(0x0008, 0x103E),
            VR::LO,
            &format!("series {} for {given}", a.se + 1),
        ),
    );
    put(&mut o, s(Tag(0x0008, 0x1070), VR::PN, "OPERATRIX^DELPHINE"));
    put(&mut o, s(Tag(0x0018, 0x1000), VR::LO, "SN-ZX-4417"));
    put(&mut o, s(Tag(0x0010, 0x0010), VR::PN, a.name));
    put(&mut o, s(Tag(0x0010, 0x0020), VR::LO, a.pid));
    put(&mut o, s(Tag(0x0010, 0x0030), VR::DA, a.birth));
    put(&mut o, s(Tag(0x0010, 0x0040), VR::CS, "F"));
    put(&mut o, s(Tag(0x0010, 0x1010), VR::AS, a.age));
    put(
        &mut o,
        s(
            Tag(0x0010, 0x1040),
            VR::LO,
            "12 Gribbleford Crescent, Upper Wallop",
        ),
    );
    put(&mut o, s(Tag(0x0010, 0x2154), VR::SH, "+44 1632 960415"));
    put(&mut o, s(Tag(0x0020, 0x000D), VR::UI, a.study_uid));
    put(&mut o, s(Tag(0x0020, 0x000E), VR::UI, a.series_uid));
    put(
        &mut o,
        s(
            Tag(0x0020, 0x0010),
            VR::SH,
            &format!("{}{}", &a.pid[3..], a.st),
        ),
    );
    put(
        &mut o,
        s(Tag(0x0020, 0x0011), VR::IS, &(a.se + 1).to_string()),
    );
    put(
        &mut o,
        s(Tag(0x0020, 0x0013), VR::IS, &(a.i + 1).to_string()),
    );
    put(&mut o, s(Tag(0x0020, 0x0052), VR::UI, a.for_uid));
    put(
        &mut o,
        s(
            Tag(0x0020, 0x4000),
            VR::LT,
            &format!(
                "Patient {} {} ({}) born {} mail hortensia.q@example.org",
                given, surname, a.pid, a.birth
            ),
        ),
    );
    // ReferencedStudySequence
    put(
        &mut o,
        sq(
            Tag(0x0008, 0x1110),
            vec![InMemDicomObject::from_element_iter([
                s(Tag(0x0008, 0x1150), VR::UI, "1.2.840.10008.3.1.2.3.1"),
                s(Tag(0x0008, 0x1155), VR::UI, a.study_uid),
            ])],
        ),
    );
    // ReferencedImageSequence -> the other instance of this series
    put(
        &mut o,
        sq(
            Tag(0x0008, 0x1140),
            vec![InMemDicomObject::from_element_iter([
                s(Tag(0x0008, 0x1150), VR::UI, SC_IMAGE_STORAGE),
                s(Tag(0x0008, 0x1155), VR::UI, a.other),
            ])],
        ),
    );
    // RequestAttributesSequence with names and IDs, and a nested sequence.
    put(
        &mut o,
        sq(
            Tag(0x0040, 0x0275),
            vec![InMemDicomObject::from_element_iter([
                s(Tag(0x0040, 0x0006), VR::PN, "SCHEDULIX^BERNARDINE"),
                s(Tag(0x0040, 0x0009), VR::SH, "SPSID-99120"),
                s(Tag(0x0040, 0x1001), VR::SH, "RQPID-55612"),
                s(Tag(0x0008, 0x0050), VR::SH, a.accession),
                sq(
                    Tag(0x0008, 0x1110),
                    vec![InMemDicomObject::from_element_iter([
                        s(Tag(0x0008, 0x1150), VR::UI, "1.2.840.10008.3.1.2.3.1"),
                        s(Tag(0x0008, 0x1155), VR::UI, a.study_uid),
                    ])],
                ),
            ])],
        ),
    );
    // A sequence that is NOT in Table E.1-1 (kept and cleaned), two levels deep.
    put(
        &mut o,
        sq(
            Tag(0x0008, 0x1032),
            vec![InMemDicomObject::from_element_iter([
                s(Tag(0x0008, 0x0100), VR::SH, "CTCHEST"),
                s(Tag(0x0008, 0x0102), VR::SH, "99LOCAL"),
                s(Tag(0x0008, 0x0104), VR::LO, "CT chest"),
                sq(
                    Tag(0x0040, 0x0260),
                    vec![InMemDicomObject::from_element_iter([
                        s(Tag(0x0008, 0x0100), VR::SH, "P1"),
                        s(Tag(0x0008, 0x0104), VR::LO, "Protocol one"),
                        s(Tag(0x0040, 0x0006), VR::PN, "NESTWORTH^CLEMENTINE"),
                        s(Tag(0x0010, 0x0020), VR::LO, a.pid),
                        s(Tag(0x0010, 0x0010), VR::PN, a.name),
                        s(Tag(0x0008, 0x1155), VR::UI, a.other),
                    ])],
                ),
            ])],
        ),
    );
    // Private block (unsafe) with a private sequence, and a safe private element.
    put(
        &mut o,
        s(Tag(0x0009, 0x0010), VR::LO, "DCMFLOW TEST PRIVATE"),
    );
    put(&mut o, s(Tag(0x0009, 0x1001), VR::LO, "privatepayload-phi"));
    put(
        &mut o,
        sq(
            Tag(0x0009, 0x1002),
            vec![InMemDicomObject::from_element_iter([
                s(Tag(0x0010, 0x0010), VR::PN, "PRIVSEQNAME^EUSTACE"),
                s(Tag(0x0010, 0x0020), VR::LO, a.pid),
            ])],
        ),
    );
    put(
        &mut o,
        s(Tag(0x7053, 0x0010), VR::LO, "Philips PET Private Group"),
    );
    put(&mut o, s(Tag(0x7053, 0x1000), VR::DS, "1.5"));
    put(&mut o, s(Tag(0x7053, 0x1001), VR::LO, "privatepayload-phi"));
    // Image pixel module: 8x8 MONOCHROME2, 16 bits allocated, 12 stored.
    put(
        &mut o,
        DataElement::new(Tag(0x0028, 0x0002), VR::US, PrimitiveValue::from(1u16)),
    );
    put(&mut o, s(Tag(0x0028, 0x0004), VR::CS, "MONOCHROME2"));
    put(
        &mut o,
        DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(8u16)),
    );
    put(
        &mut o,
        DataElement::new(Tag(0x0028, 0x0011), VR::US, PrimitiveValue::from(8u16)),
    );
    put(
        &mut o,
        DataElement::new(Tag(0x0028, 0x0100), VR::US, PrimitiveValue::from(16u16)),
    );
    put(
        &mut o,
        DataElement::new(Tag(0x0028, 0x0101), VR::US, PrimitiveValue::from(12u16)),
    );
    put(
        &mut o,
        DataElement::new(Tag(0x0028, 0x0102), VR::US, PrimitiveValue::from(11u16)),
    );
    put(
        &mut o,
        DataElement::new(Tag(0x0028, 0x0103), VR::US, PrimitiveValue::from(0u16)),
    );
    let pixels: Vec<u16> = (0..64u16).map(|k| k * 50).collect();
    put(
        &mut o,
        DataElement::new(
            Tag(0x7FE0, 0x0010),
            VR::OW,
            PrimitiveValue::U16(pixels.into()),
        ),
    );
    o.with_meta(
        FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(SC_IMAGE_STORAGE)
            .media_storage_sop_instance_uid(a.sop)
            .transfer_syntax(EXPLICIT_VR_LE)
            .source_application_entity_title("ZEBEDEE-CT-07"),
    )
    .expect("generated meta is complete")
}

/// Serialise a file object (preamble, meta, dataset) to bytes.
pub fn to_bytes(obj: &FileDicomObject<InMemDicomObject>) -> Result<Vec<u8>, String> {
    let mut v = Vec::new();
    obj.write_all(&mut v)
        .map_err(|e| format!("write failed: {e}"))?;
    Ok(v)
}
