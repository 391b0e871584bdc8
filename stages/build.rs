//! Tells the tests whether the shared folders are beside the repository: `cfg(dcmflow_corpus)`
//! when `shared/corpus` (with its MANIFEST.csv) is found, `cfg(dcmflow_standard)` when
//! `shared/standard` is, both looked up where the tests look (`../../shared` from this crate, or
//! `../shared`). Under CI (`CI` set) both are on whatever is found, so a missing folder fails the
//! tests that need it; elsewhere those tests are compiled as ignored instead of passing unrun.

use std::path::Path;

/// Whether `shared/<what>` is found (`<what>` itself, or `<what>/<file>` when given), watching
/// what exists so that adding or removing it re-runs this script.
fn found(what: &str, file: Option<&str>) -> bool {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut any = false;
    for base in ["../../shared", "../shared"].map(|b| here.join(b)) {
        let dir = base.join(what);
        let target = file.map_or(dir.clone(), |f| dir.join(f));
        let present = if file.is_some() {
            target.is_file()
        } else {
            target.is_dir()
        };
        // A missing watched path would re-run the build every time: watch the nearest folder
        // that exists (none when `shared` itself is absent; see the README).
        if present {
            println!("cargo::rerun-if-changed={}", target.display());
        } else if dir.is_dir() {
            println!("cargo::rerun-if-changed={}", dir.display());
        } else if base.is_dir() {
            println!("cargo::rerun-if-changed={}", base.display());
        }
        any |= present;
    }
    any
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dcmflow_corpus, dcmflow_standard)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    let ci = std::env::var_os("CI").is_some();
    if found("corpus", Some("MANIFEST.csv")) || ci {
        println!("cargo::rustc-cfg=dcmflow_corpus");
    }
    if found("standard", None) || ci {
        println!("cargo::rustc-cfg=dcmflow_standard");
    }
}
