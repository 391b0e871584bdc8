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
    // As the write stage does: dcmflow's own implementation UID and name in the meta group,
    // which must read back (or the instance fails there); then what is written must read back.
    let Ok(meta) = dcmflow_stages::write_dicom::output_meta(obj.meta()) else {
        return;
    };
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    if meta.write(&mut out).is_err() || obj.write_dataset(&mut out).is_err() {
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
