//! What real archives hold and the default build must read (issue #14): sequences stored as UN
//! of undefined length (CP-246, read as implicit VR little endian), and file meta groups without
//! a group length, out of order, or with a wrong one (read the way dcmtk reads them). Fixtures
//! are built byte by byte here and run through the shipped de-identification recipes by the
//! binary; the outputs must read back (dicom-rs, and dcmdump when installed) and carry none of
//! the planted names.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use dicom_dictionary_std::tags;

const RECIPES: [&str; 2] = [
    "recipes/deid-safe-harbor.yaml",
    "recipes/deid-longitudinal.yaml",
];

/// Names planted in the fixtures; none may be in any output byte.
const PLANTED: [&str; 4] = [
    "Plantedtop^Alice",
    "Plantedprivate^Bob",
    "Plantedstandard^Carol",
    "Plantedinner^Dave",
];

/// One explicit VR little endian element.
fn ex(g: u16, e: u16, vr: &[u8; 2], val: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&g.to_le_bytes());
    v.extend_from_slice(&e.to_le_bytes());
    v.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT" | b"UC" | b"UR") {
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&(val.len() as u32).to_le_bytes());
    } else {
        v.extend_from_slice(&(val.len() as u16).to_le_bytes());
    }
    v.extend_from_slice(val);
    v
}

/// One explicit VR big endian element (short VRs only).
fn ex_be(g: u16, e: u16, vr: &[u8; 2], val: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&g.to_be_bytes());
    v.extend_from_slice(&e.to_be_bytes());
    v.extend_from_slice(vr);
    v.extend_from_slice(&(val.len() as u16).to_be_bytes());
    v.extend_from_slice(val);
    v
}

/// One implicit VR little endian element.
fn im(g: u16, e: u16, val: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&g.to_le_bytes());
    v.extend_from_slice(&e.to_le_bytes());
    v.extend_from_slice(&(val.len() as u32).to_le_bytes());
    v.extend_from_slice(val);
    v
}

/// A value padded to even length with `pad`.
fn even(s: &str, pad: u8) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

const ITEM: [u8; 4] = [0xFE, 0xFF, 0x00, 0xE0];
const ITEM_END: [u8; 8] = [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0];
const SEQ_END: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
const UNDEFINED: [u8; 4] = [0xFF; 4];

/// An explicit VR UN element header of undefined length.
fn un_undefined(g: u16, e: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&g.to_le_bytes());
    v.extend_from_slice(&e.to_le_bytes());
    v.extend_from_slice(b"UN\0\0");
    v.extend_from_slice(&UNDEFINED);
    v
}

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const SOP: &str = "1.2.826.0.1.3680043.10.1.14.1";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";

/// The meta group elements after (0002,0000), in the usual order.
fn meta_elements(ts: &str) -> Vec<Vec<u8>> {
    vec![
        ex(2, 1, b"OB", &[0, 1]),
        ex(2, 2, b"UI", &even(CT, 0)),
        ex(2, 3, b"UI", &even(SOP, 0)),
        ex(2, 0x10, b"UI", &even(ts, 0)),
        ex(2, 0x12, b"UI", &even("1.2.826.0.1.3680043.10.1.99", 0)),
    ]
}

/// Preamble, "DICM", (0002,0000) saying `group_length` (None: no such element), the meta
/// elements, then the data set.
fn file(group_length: Option<u32>, meta: &[Vec<u8>], ds: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 128];
    f.extend_from_slice(b"DICM");
    if let Some(n) = group_length {
        f.extend(ex(2, 0, b"UL", &n.to_le_bytes()));
    }
    for m in meta {
        f.extend_from_slice(m);
    }
    f.extend_from_slice(ds);
    f
}

fn meta_len(meta: &[Vec<u8>]) -> u32 {
    meta.iter().map(|m| m.len() as u32).sum()
}

/// The leading data set elements of a CT instance (explicit VR LE), its PatientName planted.
fn ds_head() -> Vec<u8> {
    let mut ds = Vec::new();
    ds.extend(ex(8, 0x16, b"UI", &even(CT, 0)));
    ds.extend(ex(8, 0x18, b"UI", &even(SOP, 0)));
    ds.extend(ex(8, 0x20, b"DA", b"20240102"));
    ds.extend(ex(8, 0x60, b"CS", b"CT"));
    ds
}

/// The data set's patient and study identifiers, after `ds_head` and whatever follows it in
/// tag order up to group 0010.
fn ds_patient_and_study() -> Vec<u8> {
    let mut ds = Vec::new();
    ds.extend(ex(0x10, 0x10, b"PN", &even(PLANTED[0], b' ')));
    ds.extend(ex(0x10, 0x20, b"LO", b"PID-0014"));
    ds.extend(ex(
        0x20,
        0x0D,
        b"UI",
        &even("1.2.826.0.1.3680043.10.1.14.2", 0),
    ));
    ds.extend(ex(
        0x20,
        0x0E,
        b"UI",
        &even("1.2.826.0.1.3680043.10.1.14.3", 0),
    ));
    ds
}

/// A plain data set (no UN sequences).
fn plain_ds() -> Vec<u8> {
    let mut ds = ds_head();
    ds.extend(ds_patient_and_study());
    ds
}

/// A data set holding two CP-246 elements: DerivationCodeSequence (0008,9215), a standard SQ
/// stored as UN of undefined length, its item (defined length, implicit VR) holding a code, a
/// PatientName and a private block; and a private (0029,1010) of an unknown creator, UN of
/// undefined length, its item (undefined length) holding a PatientName.
fn cp246_ds() -> Vec<u8> {
    let mut ds = ds_head();
    // (0008,9215) as UN, undefined length; the item's content in implicit VR LE.
    let mut item = Vec::new();
    item.extend(im(8, 0x100, b"T-0014"));
    item.extend(im(8, 0x102, b"DCM "));
    item.extend(im(8, 0x104, b"Derived code"));
    item.extend(im(9, 0x10, &even("ACME INNER", b' ')));
    item.extend(im(9, 0x1001, &even(PLANTED[3], b' ')));
    item.extend(im(0x10, 0x10, &even(PLANTED[2], b' ')));
    ds.extend(un_undefined(8, 0x9215));
    ds.extend_from_slice(&ITEM);
    ds.extend_from_slice(&(item.len() as u32).to_le_bytes());
    ds.extend(item);
    ds.extend_from_slice(&SEQ_END);
    ds.extend(ds_patient_and_study());
    // A private block: creator (0029,0010), then (0029,1010) as UN of undefined length.
    ds.extend(ex(0x29, 0x10, b"LO", &even("ACME ARCHIVE 1", b' ')));
    ds.extend(un_undefined(0x29, 0x1010));
    ds.extend_from_slice(&ITEM);
    ds.extend_from_slice(&UNDEFINED);
    ds.extend(im(0x10, 0x10, &even(PLANTED[1], b' ')));
    ds.extend(im(0x29, 0x1011, b"1234"));
    ds.extend_from_slice(&ITEM_END);
    ds.extend_from_slice(&SEQ_END);
    ds
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn contains_ci(haystack: &[u8], needle: &str) -> bool {
    let n = needle.to_ascii_lowercase().into_bytes();
    haystack
        .windows(n.len())
        .any(|w| w.eq_ignore_ascii_case(&n))
}

/// Run `recipe` over the single file `bytes`; returns the one written `.dcm` file's bytes.
fn run_one(recipe: &str, name: &str, bytes: &[u8]) -> (Vec<u8>, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join(name), bytes).unwrap();
    let out = dir.join("out");
    let o = dcmflow_with_test_secret(&[
        "run",
        recipe,
        "--input",
        s(&input),
        "--output",
        s(&out),
        "--quiet",
    ]);
    let written = files_with_ext(&out, "dcm");
    assert!(
        o.status.success() && written.len() == 1,
        "{recipe} on {name}: exit {:?}, {} outputs: {}",
        o.status.code(),
        written.len(),
        text(&o)
    );
    (std::fs::read(&written[0]).unwrap(), written[0].clone(), tmp)
}

/// dcmdump reads the whole file without an error (skipped when dcmdump is not installed).
fn assert_dcmdump_reads(p: &Path) {
    if !have_tool("dcmdump") {
        return;
    }
    let o = Command::new("dcmdump").arg("-q").arg(p).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success()
            && !err
                .lines()
                .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "dcmdump cannot read {} cleanly: {err}",
        p.display()
    );
}

/// The written file's meta group: starts with a (0002,0000) whose value is the byte count of
/// the group-0002 elements after it, in ascending tag order, and names the explicit VR LE
/// transfer syntax `ts` and the instance's SOP class.
fn assert_correct_meta_group(bytes: &[u8], ts: &str) {
    assert_eq!(&bytes[128..132], b"DICM");
    assert_eq!(&bytes[132..140], &[2, 0, 0, 0, b'U', b'L', 4, 0]);
    let declared = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let mut pos = 144;
    let mut last = 0u16;
    while u16::from_le_bytes([bytes[pos], bytes[pos + 1]]) == 2 {
        let e = u16::from_le_bytes([bytes[pos + 2], bytes[pos + 3]]);
        assert!(e > last, "meta elements out of order at (0002,{e:04X})");
        last = e;
        let vr = &bytes[pos + 4..pos + 6];
        pos += if vr == b"OB" {
            12 + u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize
        } else {
            8 + u16::from_le_bytes([bytes[pos + 6], bytes[pos + 7]]) as usize
        };
    }
    assert_eq!(
        pos - 144,
        declared,
        "the group length is not the group's size"
    );
    let obj = dicom_object::OpenFileOptions::new()
        .from_reader(&bytes[128..])
        .unwrap();
    assert_eq!(obj.meta().transfer_syntax().trim_end_matches('\0'), ts);
    assert_eq!(
        obj.meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0'),
        CT
    );
}

#[test]
fn a_un_element_of_undefined_length_is_read_as_an_implicit_le_sequence_and_de_identified() {
    let input = file(
        Some(meta_len(&meta_elements(EXPLICIT_LE))),
        &meta_elements(EXPLICIT_LE),
        &cp246_ds(),
    );
    for recipe in RECIPES {
        let (out, path, _tmp) = run_one(recipe, "cp246.dcm", &input);
        for name in PLANTED {
            assert!(
                !contains_ci(&out, name),
                "{recipe}: {name} is in the output"
            );
        }
        assert_dcmdump_reads(&path);
        // The standard sequence is de-identified like any other: written as SQ, its code kept.
        let obj = dicom_object::open_file(&path).unwrap();
        let seq = obj
            .element(tags::DERIVATION_CODE_SEQUENCE)
            .unwrap_or_else(|e| panic!("{recipe}: DerivationCodeSequence: {e}"));
        assert_eq!(seq.vr(), dicom_core::VR::SQ, "{recipe}");
        let items = seq.items().expect("a sequence");
        assert_eq!(items.len(), 1, "{recipe}");
        let code = items[0]
            .element(tags::CODE_VALUE)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(code.trim(), "T-0014", "{recipe}");
        // The private element of an unknown creator is private data: removed.
        assert!(
            obj.element(dicom_core::Tag(0x0029, 0x1010)).is_err(),
            "{recipe}: the private UN sequence survived"
        );
    }
}

#[test]
fn a_meta_group_without_its_group_length_is_read_and_written_correctly() {
    let input = file(None, &meta_elements(EXPLICIT_LE), &plain_ds());
    for recipe in RECIPES {
        let (out, path, _tmp) = run_one(recipe, "nolength.dcm", &input);
        assert_correct_meta_group(&out, EXPLICIT_LE);
        assert!(!contains_ci(&out, PLANTED[0]), "{recipe}");
        assert_dcmdump_reads(&path);
    }
    // The transfer syntax it names is the one the data set is read in (here explicit VR big
    // endian), not one guessed from the data set's first bytes.
    let mut ds = Vec::new();
    ds.extend(ex_be(8, 0x16, b"UI", &even(CT, 0)));
    ds.extend(ex_be(8, 0x18, b"UI", &even(SOP, 0)));
    ds.extend(ex_be(8, 0x60, b"CS", b"CT"));
    ds.extend(ex_be(0x10, 0x10, b"PN", &even(PLANTED[0], b' ')));
    ds.extend(ex_be(
        0x20,
        0x0D,
        b"UI",
        &even("1.2.826.0.1.3680043.10.1.14.2", 0),
    ));
    ds.extend(ex_be(
        0x20,
        0x0E,
        b"UI",
        &even("1.2.826.0.1.3680043.10.1.14.3", 0),
    ));
    let input = file(None, &meta_elements(EXPLICIT_BE), &ds);
    for recipe in RECIPES {
        let (out, path, _tmp) = run_one(recipe, "nolength-be.dcm", &input);
        assert_correct_meta_group(&out, EXPLICIT_BE);
        assert!(!contains_ci(&out, PLANTED[0]), "{recipe}");
        assert_dcmdump_reads(&path);
    }
}

#[test]
fn a_meta_group_with_elements_out_of_order_is_read_and_written_correctly() {
    let mut meta = meta_elements(EXPLICIT_LE);
    meta.swap(1, 3); // (0002,0010) before (0002,0002)
    meta.swap(0, 4); // (0002,0012) first
    let input = file(Some(meta_len(&meta)), &meta, &plain_ds());
    for recipe in RECIPES {
        let (out, path, _tmp) = run_one(recipe, "outoforder.dcm", &input);
        assert_correct_meta_group(&out, EXPLICIT_LE);
        assert!(!contains_ci(&out, PLANTED[0]), "{recipe}");
        assert_dcmdump_reads(&path);
    }
}

#[test]
fn a_meta_group_with_a_wrong_group_length_is_read_by_its_group_and_written_correctly() {
    let meta = meta_elements(EXPLICIT_LE);
    let right = meta_len(&meta);
    // Too short: ends after (0002,0002), before the transfer syntax. Too long: reaches 20
    // bytes into the data set.
    let short = (meta[0].len() + meta[1].len()) as u32;
    for (what, declared) in [("short", short), ("long", right + 20)] {
        let input = file(Some(declared), &meta, &plain_ds());
        for recipe in RECIPES {
            let (out, path, _tmp) = run_one(recipe, &format!("{what}.dcm"), &input);
            assert_correct_meta_group(&out, EXPLICIT_LE);
            assert!(!contains_ci(&out, PLANTED[0]), "{recipe}, {what}");
            assert_dcmdump_reads(&path);
            // Nothing of the data set was taken for the meta group: the SOP class is there.
            let obj = dicom_object::open_file(&path).unwrap();
            assert_eq!(
                obj.element(tags::SOP_CLASS_UID)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim_end_matches('\0'),
                CT,
                "{recipe}, {what}"
            );
        }
    }
}
