//! Mutation harness, standing in for libFuzzer (which needs nightly): corpus seeds are mutated
//! with a fixed-seed generator and run through the in-process pipeline pieces (`open_dicom` on
//! a temporary file, de-identification, the DICOM writer, `pixels::decode` and `render`) under
//! `catch_unwind`. A panic fails the test and saves the input to `tests/data/crashers/`, where
//! a regression test runs it every time. `bench/fuzz.sh SECONDS` runs the long variant.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use dcmflow_stages::deidentify::{DeidOptions, Deidentifier, Keys};
use dcmflow_stages::pixels::{decode, render, WindowOptions};
use dcmflow_stages::read_dicom::open_dicom;

/// Run one input through the pieces; panics propagate to the caller.
fn pipeline_pieces(bytes: &[u8], scratch: &Path, deid: &Deidentifier, keys: &Keys) {
    let p = scratch.join("input.dcm");
    std::fs::write(&p, bytes).unwrap();
    let Ok(obj) = open_dicom(&p, true) else {
        return;
    };
    if let Ok(dec) = decode(&obj) {
        for f in 0..dec.frame_count().min(2) {
            let _ = render(&dec, f, &WindowOptions::default());
        }
    }
    let mut obj = obj;
    if deid.apply(&mut obj, keys).is_ok() {
        let mut out = Vec::new();
        let _ = obj.write_all(&mut out);
    }
}

fn crashers_dir() -> PathBuf {
    root().join("tests/data/crashers")
}

/// Seeds: every DICOM file of the corpus under 256 KiB, plus the shipped samples.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut dirs = vec![root().join("tests/data/sample")];
    match corpus_if_present() {
        Some(c) => dirs.push(c),
        None => eprintln!("../shared/corpus not found: seeds are the shipped samples only"),
    }
    let mut out = Vec::new();
    for d in dirs {
        for p in files_below(&d) {
            let Ok(b) = std::fs::read(&p) else { continue };
            if b.len() < 256 << 10 && b.len() > 132 && &b[128..132] == b"DICM" {
                let name = p.file_stem().unwrap().to_string_lossy().to_string();
                out.push((name, b));
            }
        }
    }
    out
}

/// One mutation: flip, overwrite with an interesting value, insert, delete or splice.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if b.is_empty() {
            break;
        }
        // Most of the structure is in the headers: aim at the first 4 KiB most of the time.
        let span = if rng.below(4) == 0 {
            b.len()
        } else {
            b.len().min(4096)
        };
        let at = rng.below(span);
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = [0x00, 0xFF, 0x7F, 0x80, 0xFE, 0x01][rng.below(6)],
            2 => {
                let v: [u8; 4] = [
                    [0xFF, 0xFF, 0xFF, 0xFF],
                    [0x00, 0x00, 0x00, 0x00],
                    [0xFE, 0xFF, 0x00, 0xE0],
                    [0xFE, 0xFF, 0xDD, 0xE0],
                    [0xF0, 0xFF, 0xFF, 0x7F],
                ][rng.below(5)];
                let end = (at + 4).min(b.len());
                b[at..end].copy_from_slice(&v[..end - at]);
            }
            3 => {
                let n = 1 + rng.below(16);
                let byte = rng.below(256) as u8;
                b.splice(at..at, std::iter::repeat_n(byte, n));
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(b.len());
                b.drain(at..end);
            }
            _ => {
                // Copy a run of the file over another place (duplicated headers).
                let from = rng.below(b.len());
                let n = (1 + rng.below(32)).min(b.len() - from).min(b.len() - at);
                let chunk = b[from..from + n].to_vec();
                b[at..at + n].copy_from_slice(&chunk);
            }
        }
    }
    b
}

/// Mutate for `budget` (or `max_iterations`), saving and reporting every panicking input.
fn run_harness(budget: Duration, max_iterations: u64, seed: u64) -> (u64, Vec<PathBuf>) {
    let seeds = seeds();
    assert!(!seeds.is_empty());
    let scratch = tempfile::tempdir().unwrap();
    let deid = Deidentifier::new(&DeidOptions::default()).unwrap();
    let keys = Keys::new(b"mutation-harness-secret-0123456789");
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut crashes = Vec::new();
    let mut n = 0;
    // Quiet the default hook: panics are expected to be caught and reported here.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while n < max_iterations && start.elapsed() < budget {
        let (name, seed_bytes) = &seeds[rng.below(seeds.len())];
        let input = mutate(seed_bytes, &mut rng);
        let res = catch_unwind(AssertUnwindSafe(|| {
            pipeline_pieces(&input, scratch.path(), &deid, &keys)
        }));
        if res.is_err() {
            let dir = crashers_dir();
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join(format!("{name}-{seed}-{n}.dcm"));
            std::fs::write(&p, &input).unwrap();
            crashes.push(p);
        }
        n += 1;
    }
    std::panic::set_hook(hook);
    (n, crashes)
}

#[test]
fn mutated_corpus_files_never_panic_the_pipeline_pieces() {
    let (n, crashes) = run_harness(Duration::from_secs(20), 1500, 1);
    eprintln!("{n} mutated inputs");
    assert!(crashes.is_empty(), "panics, inputs saved: {crashes:?}");
}

/// The long variant: `DCMFLOW_FUZZ_SECONDS=300 cargo test --release --test mutate -- --ignored`
/// (see `bench/fuzz.sh`).
#[test]
#[ignore]
fn mutation_harness_long() {
    let secs: u64 = std::env::var("DCMFLOW_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("DCMFLOW_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let (n, crashes) = run_harness(Duration::from_secs(secs), u64::MAX, seed);
    eprintln!(
        "mutation harness: {n} iterations in {secs} s, {} crashes",
        crashes.len()
    );
    assert!(crashes.is_empty(), "panics, inputs saved: {crashes:?}");
}

#[test]
fn every_saved_crasher_runs_through_the_pipeline_pieces_without_panicking() {
    let scratch = tempfile::tempdir().unwrap();
    let deid = Deidentifier::new(&DeidOptions::default()).unwrap();
    let keys = Keys::new(b"mutation-harness-secret-0123456789");
    let mut ran = 0;
    for p in files_with_ext(&crashers_dir(), "dcm") {
        let bytes = std::fs::read(&p).unwrap();
        let res = catch_unwind(AssertUnwindSafe(|| {
            pipeline_pieces(&bytes, scratch.path(), &deid, &keys)
        }));
        assert!(res.is_ok(), "{} panics again", p.display());
        ran += 1;
    }
    eprintln!("{ran} saved crashers ran");
}
