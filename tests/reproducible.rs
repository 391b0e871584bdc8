//! Reproducibility: the same inputs, recipe, params and secret give byte-identical output trees
//! (every file but run.json) whether the run uses one thread or four, and whatever the order and
//! the names of the input files.

mod common;

use common::*;
use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use std::path::{Path, PathBuf};

const STUDY_A: &str = "1.2.826.0.1.3680043.10.991.1";
const STUDY_B: &str = "1.2.826.0.1.3680043.10.991.2";

/// One CT slice of 16x16 whose pixels depend on the slice.
fn slice(patient: &str, study: &str, series: u32, n: u32, ts: &str) -> Vec<u8> {
    let px: Vec<u16> = (0..256u32)
        .map(|i| ((i * 13 + n * 101 + series * 7) % 3000) as u16 + 24)
        .collect();
    image_instance(&ImageSpec {
        patient_name: &format!("{patient}^Repro"),
        patient_id: patient,
        study,
        series: &format!("{study}.{series}"),
        sop: &format!("{study}.{series}.{n}"),
        modality: "CT",
        sop_class: uids::CT_IMAGE_STORAGE,
        rows: 16,
        cols: 16,
        frames: 1,
        samples: Samples::U16(px),
        extra: vec![
            (tags::INSTANCE_NUMBER, VR::IS, n.to_string()),
            (tags::STUDY_DATE, VR::DA, "20230105".into()),
            (tags::SERIES_DESCRIPTION, VR::LO, format!("series {series}")),
        ],
        transfer_syntax: ts,
    })
}

/// The fixture files, in a fixed order: two patients, three series, eight instances, no
/// instance twice; with `duplicate`, a ninth file holds the first instance again in Implicit VR
/// Little Endian (the same SOPInstanceUID, so the same pseudonymous output name).
fn fixtures(duplicate: bool) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for (patient, study, series) in [
        ("REPRO-A", STUDY_A, 1),
        ("REPRO-A", STUDY_A, 2),
        ("REPRO-B", STUDY_B, 1),
    ] {
        for n in 1..=3 {
            if patient == "REPRO-B" && n == 3 {
                continue;
            }
            v.push((
                format!("{patient}-s{series}-i{n}.dcm"),
                slice(patient, study, series, n, uids::EXPLICIT_VR_LITTLE_ENDIAN),
            ));
        }
    }
    if duplicate {
        v.push((
            "zz-REPRO-A-s1-i1-implicit.dcm".into(),
            slice("REPRO-A", STUDY_A, 1, 1, uids::IMPLICIT_VR_LITTLE_ENDIAN),
        ));
    }
    v
}

/// Write `files` into `dir` under their own names; return the paths in order.
fn write_plain(dir: &Path, files: &[(String, Vec<u8>)]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    files
        .iter()
        .map(|(name, bytes)| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect()
}

/// Write `files` into `dir` under shuffled, unrelated names; return the paths in the original
/// order of `files`.
fn write_shuffled(dir: &Path, files: &[(String, Vec<u8>)]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let n = files.len();
    // A fixed permutation (multiplication by a unit mod n), so the test is repeatable.
    let k = (2..n).find(|k| gcd(*k, n) == 1 && *k != 1).unwrap_or(1);
    files
        .iter()
        .enumerate()
        .map(|(i, (_, bytes))| {
            let p = dir.join(format!("z{:02}.bin", (i * k + 3) % n));
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn run(recipe: &str, inputs: &[PathBuf], out: &Path, threads: &str, sets: &[&str]) {
    let mut args = vec!["run", recipe];
    for i in inputs {
        args.extend(["--input", i.to_str().unwrap()]);
    }
    args.extend([
        "--output",
        out.to_str().unwrap(),
        "--threads",
        threads,
        "--quiet",
    ]);
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = dcmflow_with_test_secret(&args);
    assert_eq!(o.status.code(), Some(0), "{recipe}: {}", text(&o));
}

/// Checksums of every output file but run.json.
fn tree(out: &Path) -> Vec<(PathBuf, String)> {
    checksums(out)
        .into_iter()
        .filter(|(p, _)| p != Path::new("run.json"))
        .collect()
}

/// Run `recipe` on the plain folder with one thread and on the shuffled copies, given one by
/// one in reverse order, with four threads; the trees must be identical.
fn check(recipe: &str, sets: &[&str], ext: &str, expected_files: usize, duplicate: bool) {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures(duplicate);
    let plain = dir.path().join("plain");
    write_plain(&plain, &files);
    let mut shuffled = write_shuffled(&dir.path().join("shuffled"), &files);
    shuffled.reverse();

    let one = dir.path().join("one-thread");
    run(recipe, std::slice::from_ref(&plain), &one, "1", sets);
    let four = dir.path().join("four-threads");
    run(recipe, &shuffled, &four, "4", sets);

    let (a, b) = (tree(&one), tree(&four));
    assert_eq!(a.len(), expected_files, "{recipe}: {a:?}");
    assert!(a
        .iter()
        .all(|(p, _)| p.extension().is_some_and(|e| e == ext)));
    let differing: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.0.display().to_string())
        .collect();
    assert!(
        a.len() == b.len() && differing.is_empty(),
        "{recipe}: output trees differ ({} vs {} files); differing: {differing:?}",
        a.len(),
        b.len()
    );
}

#[test]
fn deid_longitudinal_output_is_byte_identical_across_threads_and_input_order() {
    check("recipes/deid-longitudinal.yaml", &[], "dcm", 8, false);
}

#[test]
fn png_stills_are_byte_identical_across_threads_and_input_order() {
    check("recipes/stills.yaml", &["format=png"], "png", 8, false);
}

/// The same instance twice (here in two transfer syntaxes) maps to one pseudonymous name;
/// `if_exists: suffix` must name the copies by content, not by arrival order (this used to
/// swap `X.dcm` and `X~2.dcm` between runs).
#[test]
fn duplicate_instances_get_the_same_output_names_whatever_the_input_order() {
    check("recipes/deid-longitudinal.yaml", &[], "dcm", 9, true);
}
