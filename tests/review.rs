//! `dcmflow verify --report`: the review sheet of an output tree made by the shipped recipes
//! (stills as JPEG and TIFF, cine clips as MP4 and GIF, de-identified DICOM) is one
//! self-contained page with a thumbnail per exported file, no external references and no
//! original values; headless Chromium renders it (a non-blank screenshot) and its DOM holds one
//! thumbnail `<img>` per still, clip and DICOM file.

mod common;

use common::*;
use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The planted original name: must not appear on the sheet in any spelling.
const FAMILY: &str = "Quillfeather";
const GIVEN: &str = "Rosalind";
const ORIGINAL_ID: &str = "MRN-REVIEW-7731";
const STUDY: &str = "1.2.826.0.1.3680043.10.777.1";

fn ct_slice(n: u16) -> Vec<u8> {
    let (r, c) = (32u16, 32u16);
    let px: Vec<u16> = (0..r as usize * c as usize)
        .map(|i| {
            let (x, y) = (i % c as usize, i / c as usize);
            (((x * x + y * y) as u16 * 3 + n * 200) % 4000) + 50
        })
        .collect();
    image_instance(&ImageSpec {
        patient_name: &format!("{FAMILY}^{GIVEN}"),
        patient_id: ORIGINAL_ID,
        study: STUDY,
        series: &format!("{STUDY}.1"),
        sop: &format!("{STUDY}.1.{n}"),
        modality: "CT",
        sop_class: uids::CT_IMAGE_STORAGE,
        rows: r,
        cols: c,
        frames: 1,
        samples: Samples::U16(px),
        extra: vec![
            (tags::INSTANCE_NUMBER, VR::IS, n.to_string()),
            (tags::STUDY_DATE, VR::DA, "20240317".into()),
            (tags::PATIENT_SEX, VR::CS, "F".into()),
            (tags::PATIENT_AGE, VR::AS, "054Y".into()),
            (tags::BODY_PART_EXAMINED, VR::CS, "CHEST".into()),
            (tags::WINDOW_CENTER, VR::DS, "2000".into()),
            (tags::WINDOW_WIDTH, VR::DS, "4000".into()),
        ],
        transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN,
    })
}

fn us_cine() -> Vec<u8> {
    let (r, c, frames) = (48u16, 64u16, 8u32);
    let mut px = Vec::new();
    for f in 0..frames {
        for y in 0..r as usize {
            for x in 0..c as usize {
                px.push((30 + 20 * f as usize + (x * 3 + y) % 40) as u8);
            }
        }
    }
    image_instance(&ImageSpec {
        patient_name: &format!("{FAMILY}^{GIVEN}"),
        patient_id: ORIGINAL_ID,
        study: STUDY,
        series: &format!("{STUDY}.2"),
        sop: &format!("{STUDY}.2.1"),
        modality: "US",
        sop_class: uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE,
        rows: r,
        cols: c,
        frames,
        samples: Samples::U8(px),
        extra: vec![
            (tags::RECOMMENDED_DISPLAY_FRAME_RATE, VR::IS, "10".into()),
            (tags::BURNED_IN_ANNOTATION, VR::CS, "YES".into()),
        ],
        transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN,
    })
}

fn run(recipe: &str, input: &Path, out: &Path, sets: &[&str]) {
    let mut args = vec![
        "run",
        recipe,
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = dcmflow_with_test_secret(&args);
    assert_eq!(o.status.code(), Some(0), "{recipe}: {}", text(&o));
}

/// Chromium's program name when installed. Under CI its absence is a failure.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium (or chromium-browser) is missing under CI");
        }
        eprintln!("skipping the browser checks: chromium not found");
    }
    found
}

/// Run headless Chromium on a page with extra arguments; stdout, with a time limit.
fn headless(program: &str, page: &Path, extra: &[String]) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(program)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).ok();
        v
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if start.elapsed() > Duration::from_secs(180) {
            child.kill().ok();
            child.wait().ok();
            panic!("chromium did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::new();
    for q in s.as_bytes().chunks(4) {
        let pad = q.iter().filter(|c| **c == b'=').count();
        let n = q
            .iter()
            .fold(0u32, |n, c| n << 6 | if *c == b'=' { 0 } else { val(*c) });
        out.extend(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

/// The `src` values of the `<img>` elements of a page.
fn img_sources(html: &str) -> Vec<String> {
    html.split("<img")
        .skip(1)
        .map(|rest| {
            let tag = &rest[..rest.find('>').unwrap()];
            let s = tag.find("src=\"").expect("img without src") + 5;
            tag[s..s + tag[s..].find('"').unwrap()].to_string()
        })
        .collect()
}

fn count_ext(dir: &Path, exts: &[&str]) -> usize {
    exts.iter().map(|e| files_with_ext(dir, e).len()).sum()
}

#[test]
fn review_sheet_shows_every_export_in_headless_chromium_and_no_original_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for n in 1..=3 {
        std::fs::write(input.join(format!("ct{n}.dcm")), ct_slice(n)).unwrap();
    }
    std::fs::write(input.join("us.dcm"), us_cine()).unwrap();
    let rules = dir.path().join("mask-rules.yaml");
    std::fs::write(
        &rules,
        "- {name: synthetic US, when: {Modality: US}, rects: [{x: 0, y: 0, width: 20, height: 10}]}\n",
    )
    .unwrap();
    let mask = format!("mask_rules={}", rules.display());

    let out = dir.path().join("out");
    run(
        "recipes/stills.yaml",
        &input,
        &out.join("stills-jpeg"),
        &[&mask],
    );
    run(
        "recipes/stills.yaml",
        &input,
        &out.join("stills-tiff"),
        &[&mask, "format=tiff"],
    );
    run(
        "recipes/cine-mp4.yaml",
        &input,
        &out.join("cine-mp4"),
        &[&mask],
    );
    run(
        "recipes/cine-mp4.yaml",
        &input,
        &out.join("cine-gif"),
        &[&mask, "format=gif"],
    );
    run(
        "recipes/deid-longitudinal.yaml",
        &input,
        &out.join("dicom"),
        &[&mask],
    );
    // A planted leak: the original name in a stray text file, which verify must flag.
    std::fs::write(out.join("notes.txt"), format!("scan of {GIVEN} {FAMILY}\n")).unwrap();

    let stills = count_ext(&out, &["jpg", "jpeg", "tif", "tiff", "png"]);
    let videos = count_ext(&out, &["mp4", "webm"]);
    let gifs = count_ext(&out, &["gif"]);
    let dicoms = count_ext(&out, &["dcm"]);
    // 4 instances as JPEG and TIFF (3 CT slices + 8 cine frames each), 1 MP4, 1 GIF, 4 DICOM.
    assert_eq!((stills, videos, gifs, dicoms), (22, 1, 1, 4));

    let sheet = dir.path().join("review.html");
    let o = dcmflow(&[
        "verify",
        "--output",
        out.to_str().unwrap(),
        "--original",
        input.to_str().unwrap(),
        "--report",
        sheet.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "the planted leak: {}", text(&o));
    assert!(text(&o).contains("notes.txt"), "{}", text(&o));
    let html = std::fs::read_to_string(&sheet).unwrap();

    // Self-contained: every image is a data: URI, nothing refers to the web, no script.
    for scheme in ["http://", "https://", "<script", "<link", "<iframe", "url("] {
        assert!(!html.contains(scheme), "the sheet contains {scheme}");
    }
    let sources = img_sources(&html);
    let ffmpeg = have_tool("ffmpeg");
    let expected = stills + gifs + dicoms + if ffmpeg { videos } else { 0 };
    assert_eq!(sources.len(), expected, "one thumbnail per export");
    if !ffmpeg {
        assert!(html.contains("ffmpeg is not on PATH"));
    }
    for src in &sources {
        let b64 = src
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| panic!("not an embedded PNG: {}", &src[..src.len().min(40)]));
        let img = image::load_from_memory(&decode_base64(b64)).expect("thumbnail decodes");
        assert!(img.width() > 0 && img.width() <= 192 && img.height() <= 192);
    }

    // No original values: name in any spelling, the original ID and study UID.
    let lower = html.to_ascii_lowercase();
    for v in [FAMILY, GIVEN, ORIGINAL_ID, STUDY, "20240317"] {
        assert!(
            !lower.contains(&v.to_ascii_lowercase()),
            "an original value is on the sheet"
        );
    }
    // The finding is shown masked beside its file; retained header values are shown.
    assert!(html.contains(&dcmflow_stages::verify::mask(FAMILY)));
    assert!(html.contains("card flagged") || html.contains("<li><code>notes.txt</code><ul"));
    assert!(html.contains("<th>Modality</th><td>CT</td>"));
    assert!(html.contains("<th>PatientAge</th><td>054Y</td>"));
    assert!(html.contains("<th>BodyPartExamined</th><td>CHEST</td>"));
    // One keyed pseudonym for the patient in every run (same secret), one study; series: the
    // two from the DICOM headers and stills' folders, and none for the clips (their path has
    // no series folder).
    assert_eq!(html.matches("<h2>Patient ").count(), 1);
    assert_eq!(html.matches("<h3>Study ").count(), 1);
    assert_eq!(html.matches("<h4>Series ").count(), 3);

    let Some(browser) = chromium() else {
        return;
    };
    let shot = dir.path().join("shot.png");
    headless(
        browser,
        &sheet,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".into(),
        ],
    );
    let bytes = std::fs::read(&shot).expect("a screenshot was written");
    assert!(!bytes.is_empty());
    let img = image::load_from_memory(&bytes).unwrap().to_luma8();
    assert_eq!((img.width(), img.height()), (1280, 2000));
    let n = img.len() as f64;
    let mean = img.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = img.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    eprintln!("screenshot: mean {mean:.1}, variance {var:.1}");
    assert!(var > 500.0, "the page looks blank (variance {var:.1})");

    let dom = String::from_utf8(headless(browser, &sheet, &["--dump-dom".into()])).unwrap();
    assert!(dom.contains("dcmflow review sheet"), "no DOM dumped");
    assert_eq!(
        dom.matches("<img ").count(),
        expected,
        "thumbnail <img> elements in the rendered DOM"
    );
    assert_eq!(img_sources(&dom).len(), expected);
}
