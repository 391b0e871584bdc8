//! Hostile input: truncated copies of every corpus file (at many offsets) run through a
//! de-identification recipe. Every copy gives an error with a reason or a complete output;
//! nothing panics, and no output is left unmarked as de-identified.

mod common;

use common::*;

#[test]
fn truncated_corpus_files_give_errors_or_complete_outputs_never_a_panic() {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let offsets = 10;
    let mut made = 0;
    for (i, f) in files_below(&corpus).into_iter().enumerate() {
        let bytes = std::fs::read(&f).unwrap();
        // Big files make the test slow without finding more: their headers are covered by
        // the cuts in the first 4 KiB.
        let len = bytes.len().min(256 << 10);
        for k in 1..=offsets {
            let cut = if k <= 4 {
                4096 * k / 4
            } else {
                len * (k - 4) / (offsets - 3)
            };
            if cut == 0 || cut >= bytes.len() {
                continue;
            }
            std::fs::write(input.join(format!("f{i:03}_{k:02}.dcm")), &bytes[..cut]).unwrap();
            made += 1;
        }
    }
    assert!(made > 500, "made {made} truncated copies");
    let out = dir.path().join("out");
    let o = dcmflow_with_env(
        &[
            "run",
            "recipes/deid-safe-harbor.yaml",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--quiet",
            "--set",
            "burned_in=allow",
        ],
        &[("DCMFLOW_SECRET", "hostile-test-secret-0123456789")],
    );
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    for p in report["problems"].as_array().unwrap() {
        let reason = p["reason"].as_str().unwrap();
        assert!(
            !reason.contains("internal error"),
            "{}: {reason}",
            p["input"]
        );
        assert!(!reason.is_empty());
    }
    let mut outputs = 0;
    for p in files_below(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
    {
        let obj = dicom_object::open_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let removed = obj
            .element(dicom_dictionary_std::tags::PATIENT_IDENTITY_REMOVED)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(removed.trim(), "YES");
        outputs += 1;
    }
    eprintln!(
        "{made} truncated copies: {outputs} written, {} refused with a reason",
        report["problems"].as_array().unwrap().len()
    );
}

/// One explicit VR little endian element (long-header VRs get the 4-byte length).
fn el(g: u16, e: u16, vr: &[u8; 2], val: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&g.to_le_bytes());
    v.extend_from_slice(&e.to_le_bytes());
    v.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&(val.len() as u32).to_le_bytes());
    } else {
        v.extend_from_slice(&(val.len() as u16).to_le_bytes());
    }
    v.extend_from_slice(val);
    v
}

/// Preamble, file meta group (explicit VR LE) and the SOP class/instance of a small file,
/// followed by `tail` (data set elements after (0008,0018)).
fn file_with(sop: &str, tail: &[u8]) -> Vec<u8> {
    file_of_class(b"1.2.840.10008.5.1.4.1.1.7\0", sop, tail)
}

/// As [`file_with`], with the SOP class UID given (even length, NUL-padded).
fn file_of_class(class: &[u8], sop: &str, tail: &[u8]) -> Vec<u8> {
    let mut uid = sop.as_bytes().to_vec();
    if uid.len() % 2 == 1 {
        uid.push(0);
    }
    let mut meta = el(2, 1, b"OB", &[0, 1]);
    meta.extend(el(2, 2, b"UI", class));
    meta.extend(el(2, 3, b"UI", &uid));
    meta.extend(el(2, 0x10, b"UI", b"1.2.840.10008.1.2.1\0"));
    let mut f = vec![0u8; 128];
    f.extend_from_slice(b"DICM");
    f.extend(el(2, 0, b"UL", &(meta.len() as u32).to_le_bytes()));
    f.extend(meta);
    f.extend(el(8, 0x16, b"UI", class));
    f.extend(el(8, 0x18, b"UI", &uid));
    f.extend_from_slice(tail);
    f
}

/// A ContentSequence holding an item holding a ContentSequence ... `depth` levels deep, all of
/// undefined length, closed by delimiters.
fn nested_sequences(depth: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..depth {
        v.extend_from_slice(&0x0040u16.to_le_bytes());
        v.extend_from_slice(&0xA730u16.to_le_bytes());
        v.extend_from_slice(b"SQ\0\0");
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        v.extend_from_slice(&0xFFFEu16.to_le_bytes());
        v.extend_from_slice(&0xE000u16.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    for _ in 0..depth {
        for e in [0xE00Du16, 0xE0DD] {
            v.extend_from_slice(&0xFFFEu16.to_le_bytes());
            v.extend_from_slice(&e.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
        }
    }
    v
}

#[test]
fn sequences_nested_5000_deep_are_refused_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("a_deep.dcm"),
        file_with("1.2.826.0.1.3680043.10.99.1", &nested_sequences(5000)),
    )
    .unwrap();
    std::fs::write(
        input.join("b_ok.dcm"),
        file_with("1.2.826.0.1.3680043.10.99.2", &nested_sequences(3)),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = dcmflow(&[
        "run",
        "recipes/copy.yaml",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = run_report(&out);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0]["input"]
        .as_str()
        .unwrap()
        .ends_with("a_deep.dcm"));
    let reason = problems[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("nested more than 128 levels deep"),
        "{reason}"
    );
    assert_eq!(files_with_ext(&out, "dcm").len(), 1);
}

/// A CT image whose header claims `rows` x `cols` x `frames` 8-bit samples, with 64 bytes of
/// pixel data.
fn huge_claim(sop: &str, rows: u16, cols: u16, frames: u32) -> Vec<u8> {
    let mut t = el(8, 0x60, b"CS", b"CT");
    t.extend(el(0x10, 0x10, b"PN", b"Huge^Claim"));
    t.extend(el(0x10, 0x20, b"LO", b"HUGE01"));
    t.extend(el(0x28, 0x02, b"US", &1u16.to_le_bytes()));
    t.extend(el(0x28, 0x04, b"CS", b"MONOCHROME2 "));
    let mut n = frames.to_string().into_bytes();
    if n.len() % 2 == 1 {
        n.push(b' ');
    }
    t.extend(el(0x28, 0x08, b"IS", &n));
    t.extend(el(0x28, 0x10, b"US", &rows.to_le_bytes()));
    t.extend(el(0x28, 0x11, b"US", &cols.to_le_bytes()));
    for (e, v) in [(0x100u16, 8u16), (0x101, 8), (0x102, 7), (0x103, 0)] {
        t.extend(el(0x28, e, b"US", &v.to_le_bytes()));
    }
    t.extend(el(0x7FE0, 0x10, b"OB", &[7u8; 64]));
    file_of_class(b"1.2.840.10008.5.1.4.1.1.2\0", sop, &t)
}

#[test]
fn a_small_file_claiming_65535_by_65535_by_a_million_frames_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let bytes = huge_claim("1.2.826.0.1.3680043.10.98.1", 65535, 65535, 1_000_000);
    assert!(bytes.len() < 1024);
    std::fs::write(input.join("huge.dcm"), bytes).unwrap();
    let out = dir.path().join("out");
    let o = dcmflow_with_test_secret(&[
        "run",
        "recipes/stills.yaml",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = run_report(&out);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["stage"], "decode", "{problems:?}");
    let reason = problems[0]["reason"].as_str().unwrap();
    // 65535 x 65535 x 1,000,000 bytes, in MiB, rounded up.
    assert!(
        reason.contains("would take 4095875001 MiB")
            && reason.contains("over the limit of 2048 MiB"),
        "{reason}"
    );
    assert!(!reason.contains("HUGE01") && !reason.contains("Huge"));
}

#[test]
fn decode_pixels_max_decoded_mib_lowers_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // 1024 x 1024 x 2 frames = 2 MiB claimed (with 64 bytes present).
    std::fs::write(
        input.join("two_mib.dcm"),
        huge_claim("1.2.826.0.1.3680043.10.98.2", 1024, 1024, 2),
    )
    .unwrap();
    let recipe = dir.path().join("r.yaml");
    std::fs::write(
        &recipe,
        "version: 1\nstages:\n  - id: read\n    type: read_dicom\n  - id: decode\n    type: decode_pixels\n    inputs: [read]\n    with: { max_decoded_mib: 1 }\n  - id: window\n    type: apply_window\n    inputs: [decode]\n  - id: encode\n    type: encode_image\n    inputs: [window]\n    with: { format: png, require_deidentified: false, path: \"{frame}.png\" }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = dcmflow(&[
        "run",
        recipe.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = run_report(&out);
    let reason = report["problems"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("would take 2 MiB") && reason.contains("over the limit of 1 MiB"),
        "{reason}"
    );
}
