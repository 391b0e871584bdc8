//! Shared helpers for the end-to-end tests: the binary, the shared corpus, small DICOM fixtures
//! built in code.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared corpus, for tests marked
/// `#[cfg_attr(not(dcmflow_corpus), ignore = "...")]`: build.rs turns `dcmflow_corpus` on when
/// `../shared/corpus` is found, or under CI, so without it those tests are reported as ignored,
/// and when they do run its absence is a failure.
pub fn corpus() -> PathBuf {
    corpus_if_present().unwrap_or_else(|| {
        panic!(
            "../shared/corpus is missing (it was there when the tests were built): put it back, \
             or rebuild (`cargo test`) so the tests that need it are reported as ignored"
        )
    })
}

/// The shared corpus when present, for tests that only add it to what they check anyway. Under
/// CI its absence is an error.
pub fn corpus_if_present() -> Option<PathBuf> {
    let p = root().join("../shared/corpus");
    if p.join("MANIFEST.csv").is_file() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("../shared/corpus is missing under CI");
    }
    None
}

/// Run the dcmflow binary.
pub fn dcmflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dcmflow"))
        .args(args)
        .current_dir(root())
        .env_remove("DCMFLOW_SECRET")
        .output()
        .expect("run dcmflow")
}

/// Run the dcmflow binary with the project secret in `DCMFLOW_SECRET`.
pub fn dcmflow_with_secret(args: &[&str], secret: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dcmflow"))
        .args(args)
        .current_dir(root())
        .env("DCMFLOW_SECRET", secret)
        .output()
        .expect("run dcmflow")
}

/// Whether an external tool is on PATH. Under CI its absence is an error, not a skip.
pub fn tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !found && std::env::var_os("CI").is_some() {
        panic!("{name} is not on PATH under CI");
    }
    if !found {
        eprintln!("skipping {name} checks: not on PATH");
    }
    found
}

/// Text of stdout + stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A small CT-like instance (8x8, 16-bit) with the given identifiers.
pub fn small_ct(patient: &str, study: &str, series: &str, sop: &str, number: i32) -> Vec<u8> {
    let mut o = InMemDicomObject::new_empty();
    let s = |o: &mut InMemDicomObject, t, vr, v: &str| {
        o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
    };
    s(&mut o, tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
    s(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop);
    s(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, study);
    s(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, series);
    s(
        &mut o,
        tags::PATIENT_NAME,
        VR::PN,
        &format!("{patient}^Test"),
    );
    s(&mut o, tags::PATIENT_ID, VR::LO, patient);
    s(&mut o, tags::MODALITY, VR::CS, "CT");
    s(&mut o, tags::INSTANCE_NUMBER, VR::IS, &number.to_string());
    o.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(8u16),
    ));
    o.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(8u16),
    ));
    o.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    s(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    o.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    o.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(12u16),
    ));
    o.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(11u16),
    ));
    o.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    let px: Vec<u16> = (0..64).map(|i| (i * 37 + number as u16) % 4096).collect();
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(px.into()),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(sop)
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .build()
        .unwrap();
    let file = o.with_exact_meta(meta);
    let mut buf = Vec::new();
    file.write_all(&mut buf).unwrap();
    buf
}

/// Write `n` small instances (one series) into `dir`, in nested folders of 1,000.
pub fn make_files(dir: &Path, n: usize) {
    for i in 0..n {
        let sub = dir.join(format!("d{:03}", i / 1000));
        std::fs::create_dir_all(&sub).unwrap();
        let bytes = small_ct(
            "P1",
            "1.2.826.0.1.3680043.10.1",
            "1.2.826.0.1.3680043.10.1.1",
            &format!("1.2.826.0.1.3680043.10.1.1.{i}"),
            i as i32,
        );
        std::fs::write(sub.join(format!("f{i:05}.dcm")), bytes).unwrap();
    }
}

/// Every file below a folder, sorted, except the run journal (`.dcmflow-journal`, the
/// bookkeeping of `--resume`, whose lines follow thread timing); `files_with_journal` keeps it.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    files_with_journal(dir)
        .into_iter()
        .filter(|p| p.file_name().is_none_or(|n| n != ".dcmflow-journal"))
        .collect()
}

/// Every file below a folder, sorted, the run journal included.
pub fn files_with_journal(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// SHA-256 of every file below a folder, by relative path.
pub fn checksums(dir: &Path) -> Vec<(PathBuf, String)> {
    use sha2::{Digest, Sha256};
    files_below(dir)
        .into_iter()
        .map(|p| {
            let d = Sha256::digest(std::fs::read(&p).unwrap());
            (p.strip_prefix(dir).unwrap().to_path_buf(), format!("{d:x}"))
        })
        .collect()
}

/// A project secret for tests (at least 16 bytes); never a real one.
pub const TEST_SECRET: &str = "dcmflow-test-secret-not-for-real-use";

/// Run the dcmflow binary with `DCMFLOW_SECRET` set to [`TEST_SECRET`].
pub fn dcmflow_with_test_secret(args: &[&str]) -> Output {
    dcmflow_with_env(args, &[("DCMFLOW_SECRET", TEST_SECRET)])
}

/// Run the dcmflow binary with extra environment variables (the secret is removed first, so
/// pass it here when needed).
pub fn dcmflow_with_env<V: AsRef<std::ffi::OsStr>>(args: &[&str], env: &[(&str, V)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcmflow"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("DCMFLOW_SECRET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dcmflow")
}

/// Whether an external program (ffprobe, ffmpeg, dcmdump, ...) can be started. Under CI its
/// absence is an error (CI installs them); elsewhere the caller skips with a message.
pub fn have_tool(program: &str) -> bool {
    let found = Command::new(program)
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{program} is missing under CI");
        }
        eprintln!("skipping: {program} not found");
    }
    found
}

/// The run report of an output folder.
pub fn run_report(out: &Path) -> serde_json::Value {
    let bytes = std::fs::read(out.join("run.json"))
        .unwrap_or_else(|e| panic!("{}/run.json: {e}", out.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// Files below a folder whose name ends with `.ext`.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    files_below(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect()
}

/// Pixel samples of a fixture built by [`image_instance`], all frames one after the other.
pub enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// A grayscale instance for end-to-end tests: identifiers, geometry and samples given, plus
/// extra text attributes (`extra`) such as dates or a frame rate.
pub struct ImageSpec<'a> {
    pub patient_name: &'a str,
    pub patient_id: &'a str,
    pub study: &'a str,
    pub series: &'a str,
    pub sop: &'a str,
    pub modality: &'a str,
    pub sop_class: &'a str,
    pub rows: u16,
    pub cols: u16,
    pub frames: u32,
    pub samples: Samples,
    pub extra: Vec<(dicom_core::Tag, VR, String)>,
    pub transfer_syntax: &'a str,
}

/// The bytes of a DICOM file for `spec` (Explicit or Implicit VR Little Endian).
pub fn image_instance(spec: &ImageSpec) -> Vec<u8> {
    let mut o = InMemDicomObject::new_empty();
    let mut s = |t, vr, v: &str| {
        o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
    };
    s(tags::SOP_CLASS_UID, VR::UI, spec.sop_class);
    s(tags::SOP_INSTANCE_UID, VR::UI, spec.sop);
    s(tags::STUDY_INSTANCE_UID, VR::UI, spec.study);
    s(tags::SERIES_INSTANCE_UID, VR::UI, spec.series);
    s(tags::PATIENT_NAME, VR::PN, spec.patient_name);
    s(tags::PATIENT_ID, VR::LO, spec.patient_id);
    s(tags::MODALITY, VR::CS, spec.modality);
    s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    if spec.frames > 1 {
        s(tags::NUMBER_OF_FRAMES, VR::IS, &spec.frames.to_string());
    }
    for (t, vr, v) in &spec.extra {
        s(*t, *vr, v);
    }
    let us = |o: &mut InMemDicomObject, t, v: u16| {
        o.put(DataElement::new(t, VR::US, PrimitiveValue::from(v)));
    };
    us(&mut o, tags::ROWS, spec.rows);
    us(&mut o, tags::COLUMNS, spec.cols);
    us(&mut o, tags::SAMPLES_PER_PIXEL, 1);
    let n = spec.rows as usize * spec.cols as usize * spec.frames as usize;
    let (bits, value, vr) = match &spec.samples {
        Samples::U8(v) => {
            assert_eq!(v.len(), n, "sample count");
            (8, PrimitiveValue::U8(v.clone().into()), VR::OB)
        }
        Samples::U16(v) => {
            assert_eq!(v.len(), n, "sample count");
            (16, PrimitiveValue::U16(v.clone().into()), VR::OW)
        }
    };
    us(&mut o, tags::BITS_ALLOCATED, bits);
    us(&mut o, tags::BITS_STORED, if bits == 8 { 8 } else { 12 });
    us(&mut o, tags::HIGH_BIT, if bits == 8 { 7 } else { 11 });
    us(&mut o, tags::PIXEL_REPRESENTATION, 0);
    o.put(DataElement::new(tags::PIXEL_DATA, vr, value));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(spec.sop_class)
        .media_storage_sop_instance_uid(spec.sop)
        .transfer_syntax(spec.transfer_syntax)
        .build()
        .unwrap();
    let mut buf = Vec::new();
    o.with_exact_meta(meta).write_all(&mut buf).unwrap();
    buf
}

/// A small fixed-seed pseudo-random generator (xorshift64*), so hostile inputs are the same on
/// every run and a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; 0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One element header found by [`element_headers`].
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Offset of the tag.
    pub at: usize,
    /// Offset of the VR (explicit VR only).
    pub vr_at: Option<usize>,
    /// Offset and width (2 or 4 bytes) of the length field.
    pub len_at: usize,
    pub len_width: usize,
}

/// Element headers of a file with a preamble, walked linearly (the file meta group, then the
/// data set in explicit or implicit VR little endian; sequences are entered, values skipped),
/// at most `max` of them.
pub fn element_headers(b: &[u8], max: usize) -> Vec<Header> {
    let mut out = Vec::new();
    if b.len() < 132 || &b[128..132] != b"DICM" {
        return out;
    }
    let mut pos = 132;
    let mut implicit = false;
    let u16_at = |p: usize| u16::from_le_bytes([b[p], b[p + 1]]);
    let u32_at = |p: usize| u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]);
    while pos + 8 <= b.len() && out.len() < max {
        let group = u16_at(pos);
        let in_meta = group == 2;
        if group == 0xFFFE {
            // Items and delimiters: an item's elements follow its header.
            out.push(Header {
                at: pos,
                vr_at: None,
                len_at: pos + 4,
                len_width: 4,
            });
            pos += 8;
            continue;
        }
        let (len, next, h) = if in_meta || !implicit {
            let vr = [b[pos + 4], b[pos + 5]];
            if matches!(
                &vr,
                b"OB"
                    | b"OW"
                    | b"OF"
                    | b"SQ"
                    | b"UT"
                    | b"UN"
                    | b"UC"
                    | b"UR"
                    | b"OD"
                    | b"OL"
                    | b"OV"
                    | b"SV"
                    | b"UV"
            ) {
                if pos + 12 > b.len() {
                    break;
                }
                (
                    u32_at(pos + 8),
                    pos + 12,
                    Header {
                        at: pos,
                        vr_at: Some(pos + 4),
                        len_at: pos + 8,
                        len_width: 4,
                    },
                )
            } else {
                (
                    u16_at(pos + 6) as u32,
                    pos + 8,
                    Header {
                        at: pos,
                        vr_at: Some(pos + 4),
                        len_at: pos + 6,
                        len_width: 2,
                    },
                )
            }
        } else {
            (
                u32_at(pos + 4),
                pos + 8,
                Header {
                    at: pos,
                    vr_at: None,
                    len_at: pos + 4,
                    len_width: 4,
                },
            )
        };
        out.push(h);
        if in_meta && u16_at(pos + 2) == 0x0010 && next + len as usize <= b.len() {
            let ts = String::from_utf8_lossy(&b[next..next + len as usize]);
            implicit = ts.trim_end_matches(['\0', ' ']) == "1.2.840.10008.1.2";
            if ts.contains("1.2.840.10008.1.2.2") || ts.contains("1.2.840.10008.1.2.1.99") {
                // Big endian or deflated data set: only the meta group is walked.
                pos = next + len as usize;
                while pos + 8 <= b.len() && u16_at(pos) == 2 && out.len() < max {
                    pos += 8 + u16_at(pos + 6) as usize;
                }
                break;
            }
        }
        let is_sq = b.get(pos + 4..pos + 6) == Some(b"SQ") && !implicit;
        pos = if len == u32::MAX || is_sq {
            next
        } else {
            next + len as usize
        };
    }
    out
}

/// The arguments of `dcmflow run RECIPE --input IN --output OUT EXTRA...`.
pub fn run_args<'a>(
    recipe: &'a str,
    input: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        recipe,
        "--input",
        input.to_str().expect("UTF-8 test path"),
        "--output",
        out.to_str().expect("UTF-8 test path"),
    ];
    args.extend_from_slice(extra);
    args
}

/// `dcmflow run RECIPE --input IN --output OUT EXTRA...` with the test secret set.
pub fn run_with_test_secret(recipe: &str, input: &Path, out: &Path, extra: &[&str]) -> Output {
    dcmflow_with_test_secret(&run_args(recipe, input, out, extra))
}
