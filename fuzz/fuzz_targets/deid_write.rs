//! DICOM bytes -> read (with the length/depth pre-scan) -> de-identify (Basic profile plus the
//! clean options) -> write. Whatever is written must read back as DICOM and carry the
//! de-identified mark. bench/fuzz.sh runs it with -malloc_limit_mb=64: no single allocation
//! may exceed 64 MiB for an input of at most 256 KiB.
#![no_main]

use std::sync::OnceLock;

use dcmflow_stages::deidentify::{DeidOptions, Deidentifier, Keys};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn deid() -> &'static (Deidentifier, Keys) {
    static D: OnceLock<(Deidentifier, Keys)> = OnceLock::new();
    D.get_or_init(|| {
        let opts = DeidOptions {
            clean_descriptors: true,
            clean_structured_content: true,
            clean_graphics: true,
            ..DeidOptions::default()
        };
        (
            Deidentifier::new(&opts).expect("options"),
            Keys::new(b"fuzz-secret-0123456789abcdef"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(mut obj) = common::open(data, true) else {
        return;
    };
    let (d, keys) = deid();
    if d.apply(&mut obj, keys).is_err() {
        return;
    }
    // The write stage refuses a meta group whose UIDs are not UIDs (the parser would not read
    // the file back); what it accepts must read back.
    if dcmflow_stages::write_dicom::check_meta_uids(obj.meta()).is_err() {
        return;
    }
    let mut out = Vec::new();
    if obj.write_all(&mut out).is_err() {
        return;
    }
    let back = dicom_object::from_reader(&out[128..])
        .expect("a de-identified file that was written must read back");
    let mark = back
        .element(dicom_object::Tag(0x0012, 0x0062))
        .expect("PatientIdentityRemoved is present")
        .to_str()
        .expect("PatientIdentityRemoved is text");
    assert_eq!(mark.trim(), "YES");
});
