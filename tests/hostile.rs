//! Hostile input: truncated copies of every corpus file (at many offsets) run through a
//! de-identification recipe. Every copy gives an error with a reason or a complete output;
//! nothing panics, and no output is left unmarked as de-identified.

mod common;

use common::*;
use std::path::PathBuf;

/// Where to cut a file of `len` bytes: 24 cuts across its first 8 KiB (where the headers
/// are), 24 across its first MiB (past that, big files only repeat pixel data), its middle
/// and one byte short of its end. Up to 50 distinct offsets.
fn cut_offsets(len: usize) -> Vec<usize> {
    let head = len.min(8 << 10);
    let body = len.min(1 << 20);
    let mut cuts: Vec<usize> = (1..=24)
        .map(|k| head * k / 25)
        .chain((1..=24).map(|k| body * k / 25))
        .chain([len / 2, len.saturating_sub(1)])
        .filter(|&c| c > 0 && c < len)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Every leaf of a data set, by path (`gggg,eeee` steps, `[i]` for items), with its value's
/// bytes (text trimmed of padding). The file meta group, group lengths and pixel data are
/// left out.
fn leaves(obj: &dicom_object::InMemDicomObject) -> std::collections::BTreeMap<String, Vec<u8>> {
    use dicom_core::value::Value;
    fn walk(
        obj: &dicom_object::InMemDicomObject,
        prefix: &str,
        out: &mut std::collections::BTreeMap<String, Vec<u8>>,
    ) {
        for e in obj.iter() {
            let t = e.header().tag;
            if t.0 == 0x0002 || t.1 == 0x0000 || t == dicom_dictionary_std::tags::PIXEL_DATA {
                continue;
            }
            let path = format!("{prefix}{:04X},{:04X}", t.0, t.1);
            match e.value() {
                Value::Sequence(seq) => {
                    for (i, item) in seq.items().iter().enumerate() {
                        walk(item, &format!("{path}[{i}]/"), out);
                    }
                }
                Value::PixelSequence(_) => {}
                Value::Primitive(v) => {
                    let bytes = match v.to_str() {
                        std::borrow::Cow::Borrowed(s) => s.as_bytes().to_vec(),
                        std::borrow::Cow::Owned(s) => s.into_bytes(),
                    };
                    let text = String::from_utf8_lossy(&bytes);
                    out.insert(path, text.trim_end_matches(['\0', ' ']).as_bytes().to_vec());
                }
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(obj, "", &mut out);
    out
}

/// Run the safe-harbor recipe (burned-in check off: this is about headers) over `input`.
fn deid_run(input: &std::path::Path, out: &std::path::Path) -> serde_json::Value {
    let o = run_with_test_secret(
        "recipes/deid-safe-harbor.yaml",
        input,
        out,
        &["--quiet", "--set", "burned_in=allow"],
    );
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", text(&o));
    let report = run_report(out);
    for p in report["problems"].as_array().unwrap() {
        let reason = p["reason"].as_str().unwrap();
        assert!(
            !reason.is_empty() && !reason.contains("internal error"),
            "{}: {reason}",
            p["input"]
        );
    }
    report
}

/// The written DICOM files of a run, parsed, with their leaves.
fn outputs(out: &std::path::Path) -> Vec<(PathBuf, dicom_object::DefaultDicomObject)> {
    files_below(out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .map(|p| {
            let obj =
                dicom_object::open_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, obj)
        })
        .collect()
}

fn text_of(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}

/// Truncations of every corpus file at up to 50 offsets, run through the safe-harbor recipe
/// beside the whole files. Every truncated copy gives an error with a reason or an output;
/// nothing panics; and no output of a truncated copy holds a value the whole file's output
/// does not, where that value is one de-identification took out of some original (so a cut
/// never makes the parser, and then the de-identifier, see less than was there).
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn truncated_corpus_files_give_errors_or_outputs_never_less_de_identified_than_whole_ones() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&whole).unwrap();
    std::fs::create_dir_all(&cut).unwrap();
    let mut made = 0;
    let mut originals = Vec::new();
    for (i, f) in files_below(&corpus).into_iter().enumerate() {
        let bytes = std::fs::read(&f).unwrap();
        if bytes.len() < 132
            || !(bytes[128..132] == *b"DICM" || f.extension().is_some_and(|e| e == "dcm"))
        {
            continue;
        }
        std::fs::write(whole.join(format!("f{i:03}.dcm")), &bytes).unwrap();
        originals.push(f.clone());
        for (k, c) in cut_offsets(bytes.len()).into_iter().enumerate() {
            std::fs::write(cut.join(format!("f{i:03}_{k:02}.dcm")), &bytes[..c]).unwrap();
            made += 1;
        }
    }
    assert!(made > 4000, "made {made} truncated copies");

    // What de-identification takes out: every value of an original that its whole output
    // does not hold at the same place (removed or replaced), 4 bytes or longer.
    let whole_out = dir.path().join("whole-out");
    deid_run(&whole, &whole_out);
    let full: Vec<_> = outputs(&whole_out);
    let mut by_sop: std::collections::HashMap<String, Vec<_>> = Default::default();
    for (_, obj) in &full {
        if let Some(sop) = text_of(obj, dicom_dictionary_std::tags::SOP_INSTANCE_UID) {
            by_sop.entry(sop).or_default().push(leaves(obj));
        }
    }
    let kept: std::collections::HashSet<Vec<u8>> = full
        .iter()
        .flat_map(|(_, o)| leaves(o).into_values())
        .collect();
    let mut taken_out: std::collections::HashSet<Vec<u8>> = Default::default();
    for f in &originals {
        let Ok(obj) = dicom_object::OpenFileOptions::new()
            .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
            .open_file(f)
        else {
            continue;
        };
        for v in leaves(&obj).into_values() {
            if v.len() >= 4 && !kept.contains(&v) {
                taken_out.insert(v);
            }
        }
    }
    assert!(
        taken_out.len() > 500,
        "{} values taken out",
        taken_out.len()
    );

    let cut_out = dir.path().join("cut-out");
    let report = deid_run(&cut, &cut_out);
    let written = outputs(&cut_out);
    let (mut compared, mut alone) = (0, 0);
    for (p, obj) in &written {
        let removed = text_of(obj, dicom_dictionary_std::tags::PATIENT_IDENTITY_REMOVED);
        assert_eq!(removed.as_deref(), Some("YES"), "{}", p.display());
        let sop = text_of(obj, dicom_dictionary_std::tags::SOP_INSTANCE_UID).unwrap_or_default();
        let candidates = by_sop.get(&sop);
        let mine = leaves(obj);
        // Against the whole file's output when there is one (the same instance in several
        // transfer syntaxes gives several: any may match).
        let leak = |whole: Option<&std::collections::BTreeMap<String, Vec<u8>>>| {
            mine.iter()
                .find(|(path, v)| {
                    whole.and_then(|w| w.get(*path)) != Some(*v) && taken_out.contains(*v)
                })
                .map(|(path, v)| format!("{path} = {:?}", String::from_utf8_lossy(v)))
        };
        let found = match candidates {
            Some(c) => {
                compared += 1;
                c.iter()
                    .map(|w| leak(Some(w)))
                    .min_by_key(|l| l.is_some())
                    .flatten()
            }
            None => {
                alone += 1;
                leak(None)
            }
        };
        assert!(
            found.is_none(),
            "{}: holds {} that de-identification takes out of the whole file",
            p.display(),
            found.unwrap()
        );
    }
    eprintln!(
        "{made} truncated copies of {} files: {} written ({compared} compared with the whole \
         file's output, {alone} whose whole file gave none), {} refused with a reason",
        originals.len(),
        written.len(),
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
        "--report-paths",
        "plain",
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

/// A CT instance from explicit elements (ascending tags, values already encoded).
fn ct_with(sop: &str, elems: &[(u16, u16, &[u8; 2], Vec<u8>)]) -> Vec<u8> {
    let class = b"1.2.840.10008.5.1.4.1.1.2\0";
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
    let mut all: Vec<(u16, u16, &[u8; 2], Vec<u8>)> = elems.to_vec();
    all.push((8, 0x16, b"UI", class.to_vec()));
    all.push((8, 0x18, b"UI", uid));
    all.push((8, 0x60, b"CS", b"CT".to_vec()));
    all.sort_by_key(|e| (e.0, e.1));
    for (g, e, vr, mut v) in all {
        if v.len() % 2 == 1 {
            v.push(if vr == b"UI" { 0 } else { b' ' });
        }
        f.extend(el(g, e, vr, &v));
    }
    f
}

/// Whether a path component is safe on every common file system.
fn component_problem(c: &str) -> Option<&'static str> {
    const RESERVED: &[&str] = &[
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
        "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if c.is_empty() {
        return Some("empty");
    }
    if c.starts_with('.') {
        return Some("hidden, . or ..");
    }
    if c.ends_with('.') || c.ends_with(' ') {
        return Some("ends with a dot or space");
    }
    if c.len() > 255 {
        return Some("longer than 255 bytes");
    }
    if c.chars()
        .any(|ch| ch.is_control() || "<>:\"/\\|?*".contains(ch))
    {
        return Some("control or reserved character");
    }
    let stem = c.split('.').next().unwrap_or("").to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        return Some("reserved device name");
    }
    None
}

#[test]
fn hostile_patient_ids_and_names_land_inside_the_output_folder_under_safe_names() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let long_a = "A".repeat(5000);
    let long_e = "é".repeat(5000);
    let iso2022_name =
        b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
            .to_vec();
    // (charset, PatientID, PatientName)
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("", b"../../etc".to_vec(), b"../../etc^passwd".to_vec()),
        ("", b"/abs".to_vec(), b"/abs/olute".to_vec()),
        ("", b"a\0b".to_vec(), b"a\0b^c".to_vec()),
        (
            "",
            b"\x01\x07\t\x1b[31m\x7f".to_vec(),
            b"x\r\ny\x08".to_vec(),
        ),
        ("", long_a.clone().into_bytes(), long_a.into_bytes()),
        (
            "ISO_IR 192",
            long_e.clone().into_bytes(),
            long_e.into_bytes(),
        ),
        ("", b"CON".to_vec(), b"nul.txt".to_vec()),
        ("", b"COM1.dcm".to_vec(), b"LPT9".to_vec()),
        ("", b"..".to_vec(), b".".to_vec()),
        ("", b"...".to_vec(), b".hidden".to_vec()),
        ("", b"C:\\Windows".to_vec(), b"a:b|c*d?e<f>g\"h".to_vec()),
        ("", b"trailing. ".to_vec(), b"x/../../..".to_vec()),
        (
            "ISO_IR 192",
            "患者01".as_bytes().to_vec(),
            "山田^太郎".as_bytes().to_vec(),
        ),
        (
            "ISO_IR 192",
            "\u{202E}gpj.exe".as_bytes().to_vec(),
            "\u{200B}\u{FEFF}^\u{2028}".as_bytes().to_vec(),
        ),
        (
            "\\ISO 2022 IR 87",
            b"\x1b$B;3ED\x1b(B".to_vec(),
            iso2022_name,
        ),
    ];
    for (i, (charset, id, name)) in cases.iter().enumerate() {
        let mut elems: Vec<(u16, u16, &[u8; 2], Vec<u8>)> = vec![
            (0x10, 0x10, b"PN", name.clone()),
            (0x10, 0x20, b"LO", id.clone()),
        ];
        if !charset.is_empty() {
            elems.push((8, 5, b"CS", charset.as_bytes().to_vec()));
        }
        std::fs::write(
            input.join(format!("case{i:02}.dcm")),
            ct_with(&format!("1.2.826.0.1.3680043.10.97.{i}"), &elems),
        )
        .unwrap();
    }
    let recipe = dir.path().join("names.yaml");
    std::fs::write(
        &recipe,
        "version: 1\nstages:\n  - id: read\n    type: read_dicom\n  - id: write\n    type: write_dicom\n    inputs: [read]\n    with:\n      path: \"{PatientID}/{PatientName}/{SOPInstanceUID}.dcm\"\n      if_exists: suffix\n",
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
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let root = std::fs::canonicalize(&out).unwrap();
    let outputs = files_below(&out);
    let dcm: Vec<_> = outputs
        .iter()
        .filter(|p| p.file_name().unwrap() != "run.json")
        .collect();
    assert_eq!(dcm.len(), cases.len(), "{dcm:?}");
    // Nothing was written next to the output folder (e.g. by "../../etc").
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let mut beside_sorted = beside.clone();
    beside_sorted.sort();
    assert_eq!(beside_sorted, ["in", "names.yaml", "out"]);
    for p in dcm {
        let canon = std::fs::canonicalize(p).unwrap();
        assert!(canon.starts_with(&root), "{}", p.display());
        let rel = p.strip_prefix(&out).unwrap();
        eprintln!("{}", rel.display());
        assert_eq!(rel.components().count(), 3, "{}", rel.display());
        for c in rel.components() {
            let c = c.as_os_str().to_str().expect("UTF-8 name");
            assert!(
                component_problem(c).is_none(),
                "{:?} in {}: {:?}",
                c,
                rel.display(),
                component_problem(c)
            );
        }
        dicom_object::open_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

/// Run `recipe_text` over `input` into `out`; returns the exit code and the report.
fn run_recipe(
    dir: &std::path::Path,
    recipe_text: &str,
    input: &std::path::Path,
    out: &std::path::Path,
) -> (Option<i32>, serde_json::Value) {
    let recipe = dir.join(format!(
        "r{}.yaml",
        out.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&recipe, recipe_text).unwrap();
    let o = dcmflow(&[
        "run",
        recipe.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
        // reason_for finds inputs by file name.
        "--report-paths",
        "plain",
    ]);
    assert!(out.join("run.json").is_file(), "{}", text(&o));
    (o.status.code(), run_report(out))
}

/// The reason run.json gives for an input (problems and skipped lists), by file name.
fn reason_for(report: &serde_json::Value, name: &str) -> Option<String> {
    ["problems", "skipped"].iter().find_map(|k| {
        report[*k].as_array().unwrap().iter().find_map(|p| {
            p["input"]
                .as_str()
                .unwrap()
                .ends_with(name)
                .then(|| format!("{}: {}", p["outcome"], p["reason"].as_str().unwrap()))
        })
    })
}

#[test]
fn symlinks_loops_fifos_and_unreadable_files_each_get_a_reason_and_the_run_goes_on() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir_all(input.join("loop")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        input.join("a_good.dcm"),
        small_ct(
            "P1",
            "1.2.826.0.1.3680043.10.96",
            "1.2.826.0.1.3680043.10.96.1",
            "1.2.826.0.1.3680043.10.96.1.1",
            1,
        ),
    )
    .unwrap();
    std::fs::write(
        outside.join("target.dcm"),
        small_ct(
            "P1",
            "1.2.826.0.1.3680043.10.96",
            "1.2.826.0.1.3680043.10.96.1",
            "1.2.826.0.1.3680043.10.96.1.2",
            2,
        ),
    )
    .unwrap();
    symlink(outside.join("target.dcm"), input.join("b_link.dcm")).unwrap();
    symlink(&input, input.join("loop").join("c_back")).unwrap();
    let fifo = input.join("d_fifo.dcm");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    // Unreadable: under root chmod 000 does not stop reading, so that case is checked only
    // when the permission really holds.
    let locked = input.join("e_locked.dcm");
    std::fs::write(
        &locked,
        small_ct(
            "P1",
            "1.2.826.0.1.3680043.10.96",
            "1.2.826.0.1.3680043.10.96.1",
            "1.2.826.0.1.3680043.10.96.1.3",
            3,
        ),
    )
    .unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let unreadable = std::fs::File::open(&locked).is_err();
    if !unreadable {
        eprintln!(
            "running as root: chmod 000 does not prevent reading; unreadable-file case skipped"
        );
        std::fs::remove_file(&locked).unwrap();
    }
    let copy = |follow: bool| {
        format!("version: 1\nstages:\n  - id: read\n    type: read_dicom\n    with: {{ follow_symlinks: {follow} }}\n  - id: write\n    type: write_dicom\n    inputs: [read]\n    with: {{ path: \"{{SOPInstanceUID}}.dcm\" }}\n")
    };

    // Links not followed: the link and the FIFO are skipped with a reason.
    let out1 = dir.path().join("out1");
    let (code, report) = run_recipe(dir.path(), &copy(false), &input, &out1);
    assert!(out1.join("1.2.826.0.1.3680043.10.96.1.1.dcm").is_file());
    let link = reason_for(&report, "b_link.dcm").expect("the link has a reason");
    assert!(
        link.contains("skipped") && link.contains("symbolic link not followed"),
        "{link}"
    );
    let f = reason_for(&report, "d_fifo.dcm").expect("the FIFO has a reason");
    assert!(
        f.contains("skipped") && f.contains("not a regular file"),
        "{f}"
    );
    if unreadable {
        let r = reason_for(&report, "e_locked.dcm").expect("the unreadable file has a reason");
        assert!(
            r.contains("failed") && r.contains("ermission denied"),
            "{r}"
        );
        assert_eq!(code, Some(1));
    } else {
        assert_eq!(code, Some(0), "{report}");
    }

    // Links followed: the link is read, the loop is reported, the rest goes on.
    let out2 = dir.path().join("out2");
    let (code, report) = run_recipe(dir.path(), &copy(true), &input, &out2);
    assert_eq!(code, Some(1), "{report}");
    assert!(out2.join("1.2.826.0.1.3680043.10.96.1.1.dcm").is_file());
    assert!(out2.join("1.2.826.0.1.3680043.10.96.1.2.dcm").is_file());
    let l = reason_for(&report, "c_back").expect("the loop has a reason");
    assert!(
        l.contains("failed") && l.contains("symbolic link loop"),
        "{l}"
    );
    let f = reason_for(&report, "d_fifo.dcm").expect("the FIFO has a reason");
    assert!(f.contains("not a regular file"), "{f}");
    for p in report["problems"].as_array().unwrap() {
        assert!(!p["reason"].as_str().unwrap().contains("internal error"));
    }
}

/// A sample of the corpus: DICOM files (`.dcm`, preamble) under 1 MiB, every fourth one.
fn corpus_sample(corpus: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    files_below(corpus)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .filter_map(|p| {
            let b = std::fs::read(&p).ok()?;
            (b.len() < 1 << 20 && b.len() > 132 && &b[128..132] == b"DICM").then(|| {
                let name = p
                    .strip_prefix(corpus)
                    .unwrap()
                    .to_string_lossy()
                    .replace('/', "_");
                (name, b)
            })
        })
        .enumerate()
        .filter(|(i, _)| i % 4 == 0)
        .map(|(_, x)| x)
        .collect()
}

/// Transfer syntaxes grouped by UID length, for same-length replacements.
const TS_UIDS: &[&str] = &[
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.1.99",
];

/// Hostile variants of one file: flipped bytes in the first 2 KiB, lying element lengths,
/// another transfer syntax in the meta, bad VR codes.
fn hostile_variants(bytes: &[u8], rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for k in 0..20 {
        let mut b = bytes.to_vec();
        let span = b.len().min(2048);
        for _ in 0..1 + rng.below(8) {
            let i = rng.below(span);
            b[i] ^= 1 + rng.below(255) as u8;
        }
        out.push((format!("flip{k:02}"), b));
    }
    let headers = element_headers(bytes, 200);
    if headers.len() > 4 {
        let picks = [
            2,
            5,
            headers.len() / 2,
            headers.len() - 2,
            rng.below(headers.len()),
        ];
        for (j, &h) in picks
            .iter()
            .map(|&i| &headers[i.min(headers.len() - 1)])
            .enumerate()
        {
            for (m, name) in ["plus1", "minus1", "huge"].iter().enumerate() {
                let mut b = bytes.to_vec();
                let at = h.len_at;
                if h.len_width == 2 {
                    let v = u16::from_le_bytes([b[at], b[at + 1]]);
                    let v = [v.wrapping_add(1), v.wrapping_sub(1), 0xFFFF][m];
                    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
                } else {
                    let v = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
                    let v = [v.wrapping_add(1), v.wrapping_sub(1), 0xFFFF_FFF0][m];
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                out.push((format!("len{j}_{name}"), b));
            }
            if let Some(vr_at) = h.vr_at {
                for (m, vr) in [b"ZZ", b"\0\0", b"SQ", b"OB", b"UN", b"ui"]
                    .iter()
                    .enumerate()
                {
                    let mut b = bytes.to_vec();
                    b[vr_at..vr_at + 2].copy_from_slice(*vr);
                    out.push((format!("vr{j}_{m}"), b));
                }
            }
        }
    }
    let head = &bytes[..bytes.len().min(1024)];
    if let Some(ts) = TS_UIDS.iter().find(|ts| {
        head.windows(ts.len() + 1)
            .any(|w| &w[..ts.len()] == ts.as_bytes() && matches!(w[ts.len()], 0 | b' '))
    }) {
        let at = head
            .windows(ts.len() + 1)
            .position(|w| &w[..ts.len()] == ts.as_bytes() && matches!(w[ts.len()], 0 | b' '))
            .unwrap();
        for other in TS_UIDS.iter().filter(|o| o.len() == ts.len() && o != &ts) {
            let mut b = bytes.to_vec();
            b[at..at + ts.len()].copy_from_slice(other.as_bytes());
            out.push((format!("ts_{}", other.rsplit('.').next().unwrap()), b));
        }
    }
    out
}

#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn flipped_bytes_lying_lengths_wrong_transfer_syntaxes_and_bad_vrs_never_crash_or_leak() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut rng = Rng::new(20261127);
    let mut made = 0;
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for (name, bytes) in corpus_sample(&corpus) {
        for (variant, b) in hostile_variants(&bytes, &mut rng) {
            let kind: String = variant
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            *kinds.entry(kind).or_default() += 1;
            std::fs::write(input.join(format!("{name}.{variant}.dcm")), b).unwrap();
            made += 1;
        }
    }
    for (kind, least) in [("flip", 200), ("len", 100), ("vr", 100), ("ts", 10)] {
        assert!(kinds.get(kind).copied().unwrap_or(0) >= least, "{kinds:?}");
    }
    let out = dir.path().join("out");
    let o = dcmflow_with_env(
        &run_args(
            "recipes/deid-safe-harbor.yaml",
            &input,
            &out,
            &["--quiet", "--set", "burned_in=allow"],
        ),
        &[("DCMFLOW_SECRET", "hostile-test-secret-0123456789")],
    );
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{:?} {}",
        o.status,
        text(&o)
    );
    let report = run_report(&out);
    let problems = report["problems"].as_array().unwrap();
    for p in problems {
        let reason = p["reason"].as_str().unwrap();
        assert!(
            !reason.contains("internal error"),
            "{}: {reason}",
            p["input"]
        );
        assert!(!reason.is_empty());
    }
    let mut outputs = 0;
    for p in files_with_ext(&out, "dcm") {
        let obj = dicom_object::open_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let removed = obj
            .element(dicom_dictionary_std::tags::PATIENT_IDENTITY_REMOVED)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(removed.trim(), "YES", "{}", p.display());
        outputs += 1;
    }
    eprintln!(
        "{made} hostile copies {kinds:?}: {outputs} written, {} refused with a reason",
        problems.len()
    );
}

/// Files that claim far more than they hold, each in a way the parser once took at its word
/// (the last four were found by the fuzz targets): refused, and the whole run, all of them
/// included, stays under 64 MiB of resident memory (run.json's `peak_memory_mib`).
fn lying_files() -> Vec<(&'static str, Vec<u8>)> {
    let big_ob = |tag: (u16, u16), len: u32| {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_le_bytes());
        v.extend_from_slice(&tag.1.to_le_bytes());
        v.extend_from_slice(b"OB\0\0");
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&[0u8; 200]);
        v
    };
    // 4 GB of pixel data declared in a file of under 1 KB.
    let four_gb = file_with("1.2.3.1", &big_ob((0x7FE0, 0x0010), 0xFFFF_FFF0));
    // A stray tag inside the meta group's declared length, then a 2 GB claim.
    let stray_meta = {
        let mut f = file_with("1.2.3.2", &big_ob((0x8D03, 0xFC03), 0x7E00_0042));
        let at = 132 + 12 + 14; // after (0002,0000) and (0002,0001)
        f[at..at + 2].copy_from_slice(&0x0026u16.to_le_bytes());
        f
    };
    // A UN of undefined length is a sequence in implicit VR (CP-246). Its content once came
    // from the fuzzer as implicit VR that the parser read as explicit ("ABCD" a 1 GB length);
    // it is now read as implicit VR, so the lie is a 1 GB implicit length inside the item.
    let implicit_in_un = {
        let mut t = vec![
            0x09, 0x00, 0x10, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        t.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        t.extend_from_slice(&[0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0]);
        t.extend_from_slice(b"ABCD");
        t.extend_from_slice(&[0x10, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x40]);
        t.extend_from_slice(b"ABCD");
        t.extend_from_slice(&[
            0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0,
        ]);
        file_with("1.2.3.3", &t)
    };
    // Explicit VR content inside such a UN: read as implicit VR, an OB header's VR bytes and
    // its reserved bytes are a length far past the end of the file.
    let explicit_in_un = {
        let mut t = vec![
            0x09, 0x00, 0x10, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        t.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        t.extend_from_slice(&[0x09, 0x00, 0x11, 0x10, b'O', b'B', 0xFF, 0x7F]);
        t.extend_from_slice(&0x7000_0000u32.to_le_bytes());
        t.extend_from_slice(&[
            0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0,
        ]);
        file_with("1.2.3.6", &t)
    };
    // An FD of length 2: the parser reads no value and moves on 0 bytes, out of step with the
    // file, into a length of about 1.5 GB.
    let fd_len_2 = {
        let mut t = el(0x0020, 0x0013, b"FD", &[0x31, 0x20]);
        t.extend(big_ob((0x2031, 0x0020), 0x5C4C_4E41));
        file_with("1.2.3.4", &t)
    };
    // (0002,0000) written with another VR: the parser checks only tag and length.
    let meta_vr = {
        let mut f = file_with("1.2.3.5", &big_ob((0x0009, 0x0010), 0x7000_0000));
        f[136..138].copy_from_slice(b"PN");
        f
    };
    vec![
        ("four_gb", four_gb),
        ("stray_meta", stray_meta),
        ("implicit_in_un", implicit_in_un),
        ("explicit_in_un", explicit_in_un),
        ("fd_len_2", fd_len_2),
        ("meta_vr", meta_vr),
    ]
}

#[test]
fn files_claiming_gigabytes_are_refused_and_the_run_stays_under_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let files = lying_files();
    for (name, bytes) in &files {
        assert!(bytes.len() < 1024, "{name} is {} bytes", bytes.len());
        std::fs::write(input.join(format!("{name}.dcm")), bytes).unwrap();
    }
    // The inputs the fuzz targets once made allocate gigabytes, kept in tests/data/crashers.
    let mut crashers = 0;
    for p in files_with_ext(&root().join("tests/data/crashers"), "dcm") {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("fuzz-") && name.contains("-oom-") {
            std::fs::copy(&p, input.join(&name)).unwrap();
            crashers += 1;
        }
    }
    assert!(crashers >= 4, "{crashers} saved fuzz finds");
    for recipe in ["recipes/deid-safe-harbor.yaml", "recipes/stills.yaml"] {
        let out = dir.path().join(format!("out-{}", recipe.len()));
        let o = run_with_test_secret(
            recipe,
            &input,
            &out,
            &["--quiet", "--threads", "1", "--report-paths", "plain"],
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let report = run_report(&out);
        for (name, _) in &files {
            let reason = reason_for(&report, &format!("{name}.dcm"))
                .unwrap_or_else(|| panic!("{name} is not reported: {report}"));
            assert!(
                reason.contains("refusing") && !reason.contains("internal error"),
                "{name}: {reason}"
            );
        }
        assert_eq!(report["outputs"], 0, "{recipe}: {report}");
        let peak = report["peak_memory_mib"]
            .as_f64()
            .expect("peak_memory_mib in run.json");
        eprintln!("{recipe}: peak {peak} MiB");
        assert!(peak < 64.0, "{recipe}: peak {peak} MiB");
    }
}
