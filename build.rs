//! Tells the tests whether the shared corpus is beside the repository (`../shared/corpus`): with
//! it, or under CI (`CI` set), `cfg(dcmflow_corpus)` is on and the corpus tests run; without it
//! they are compiled as ignored, so `cargo test` reports them as not run instead of passed.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dcmflow_corpus)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("../shared/corpus/MANIFEST.csv");
    let shared = root.join("../shared");
    // Watch only what exists (a missing watched path would rebuild on every run): the manifest,
    // else `../shared` (so adding the corpus to it is seen). Adding `../shared` itself after a
    // build needs `touch build.rs` (see the README).
    if manifest.is_file() {
        println!("cargo::rerun-if-changed={}", manifest.display());
    } else if shared.is_dir() {
        println!("cargo::rerun-if-changed={}", shared.display());
    }
    if manifest.is_file() || std::env::var_os("CI").is_some() {
        println!("cargo::rustc-cfg=dcmflow_corpus");
    }
}
