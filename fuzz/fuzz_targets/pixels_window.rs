//! DICOM bytes -> read -> decode pixels (own RLE/palette code, dicom-pixeldata codecs) -> VOI
//! window and render the first and last frame, with the file's window and with auto.
//! bench/fuzz.sh runs it with -malloc_limit_mb=512.
#![no_main]

use dcmflow_stages::pixels::{decode_with_limit, render, WindowName, WindowOptions, WindowSpec};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(obj) = common::open(data, true) else {
        return;
    };
    // A 256 MiB decode ceiling (the default is 2 GiB): with -malloc_limit_mb=512, any single
    // allocation past the ceiling is reported as a crash.
    let Ok(dec) = decode_with_limit(&obj, 256 << 20) else {
        return;
    };
    let n = dec.frame_count();
    let auto = WindowOptions {
        window: WindowSpec::Named(WindowName::Auto),
        ..WindowOptions::default()
    };
    for f in [0, n.saturating_sub(1)] {
        if f < n {
            let _ = render(&dec, f, &WindowOptions::default());
            let _ = render(&dec, f, &auto);
        }
    }
});
