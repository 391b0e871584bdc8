//! Test support shared by the stage modules' tests: shared-folder lookup and external tools,
//! which are optional on a developer machine but required under CI (where a missing one is a
//! failure, so no test silently passes by skipping).
//!
//! Tests that need the shared corpus or standard carry
//! `#[cfg_attr(not(dcmflow_corpus), ignore = "...")]` (resp. `dcmflow_standard`): `build.rs`
//! turns the cfg on when the folder is found, or under CI, so without it they are reported as
//! ignored; when they do run, the folder's absence is a failure.

#![cfg(test)]

use std::path::{Path, PathBuf};

/// `Some(x)` as given; when `None` under CI (`CI` set), panic naming what is missing.
pub fn required<T>(what: &str, v: Option<T>) -> Option<T> {
    if v.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{what} is required under CI but was not found");
        }
        eprintln!("skipping: {what} not found");
    }
    v
}

/// The shared corpus (`shared/corpus` with its MANIFEST.csv). For tests run under
/// `cfg(dcmflow_corpus)`: panics when it is not found.
pub fn corpus_dir() -> PathBuf {
    shared("corpus", |p| p.join("MANIFEST.csv").is_file())
}

/// The shared copy of the standard's tables (`shared/standard`). For tests run under
/// `cfg(dcmflow_standard)`: panics when it is not found.
pub fn standard_dir() -> PathBuf {
    shared("standard", |p| p.is_dir())
}

/// `shared/<what>` where build.rs looks: `../../shared` from this crate (beside the repository),
/// or `../shared`.
fn shared(what: &str, ok: impl Fn(&Path) -> bool) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["../../shared", "../shared"]
        .iter()
        .map(|b| here.join(b).join(what))
        .find(|p| ok(p))
        .unwrap_or_else(|| {
            if std::env::var_os("CI").is_some() {
                panic!("../shared/{what} is required under CI but was not found");
            }
            panic!(
                "../shared/{what} is missing (it was there when the tests were built): put it \
                 back, or rebuild (`cargo test`) so the tests that need it are reported as ignored"
            )
        })
}
