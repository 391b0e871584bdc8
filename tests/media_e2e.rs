//! End-to-end tests of the pixel and video recipes (`cine-mp4`, `series-mp4`, `stills`, and a
//! masking recipe written here): small synthetic DICOM built in the test goes through the
//! binary, and the outputs are checked with independent readers: ffprobe/ffmpeg for clips, the
//! `image` crate and hand-written container parsers for stills and GIFs, dicom-rs for DICOM.
//! Expected values come from the fixtures (pixel values, window tags), never from dcmflow.

mod common;

use common::*;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Pixel samples of a fixture, all frames one after the other.
enum Px {
    U8(Vec<u8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
}

/// A synthetic single- or multi-frame grayscale instance.
struct Fixture {
    modality: &'static str,
    sop_class: &'static str,
    sop: String,
    series: String,
    rows: u16,
    cols: u16,
    frames: u32,
    photometric: &'static str,
    bits_stored: u16,
    px: Px,
    extra: Vec<(Tag, VR, String)>,
}

const STUDY: &str = "1.2.826.0.1.3680043.10.543.7";

impl Fixture {
    fn new(
        modality: &'static str,
        sop_class: &'static str,
        rows: u16,
        cols: u16,
        frames: u32,
        px: Px,
    ) -> Self {
        let bits_stored = match px {
            Px::U8(_) => 8,
            _ => 16,
        };
        Fixture {
            modality,
            sop_class,
            sop: format!("{STUDY}.1.1"),
            series: format!("{STUDY}.1"),
            rows,
            cols,
            frames,
            photometric: "MONOCHROME2",
            bits_stored,
            px,
            extra: Vec::new(),
        }
    }

    fn attr(mut self, tag: Tag, vr: VR, value: &str) -> Self {
        self.extra.push((tag, vr, value.to_string()));
        self
    }

    fn write(&self, path: &Path) {
        let n = self.rows as usize * self.cols as usize * self.frames as usize;
        let mut o = InMemDicomObject::new_empty();
        let mut s = |t: Tag, vr: VR, v: &str| {
            o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
        };
        s(tags::SOP_CLASS_UID, VR::UI, self.sop_class);
        s(tags::SOP_INSTANCE_UID, VR::UI, &self.sop);
        s(tags::STUDY_INSTANCE_UID, VR::UI, STUDY);
        s(tags::SERIES_INSTANCE_UID, VR::UI, &self.series);
        s(tags::PATIENT_NAME, VR::PN, "Media^Test");
        s(tags::PATIENT_ID, VR::LO, "MEDIA-E2E-1");
        s(tags::MODALITY, VR::CS, self.modality);
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, self.photometric);
        if self.frames > 1 {
            s(tags::NUMBER_OF_FRAMES, VR::IS, &self.frames.to_string());
        }
        for (t, vr, v) in &self.extra {
            s(*t, *vr, v);
        }
        let us = |o: &mut InMemDicomObject, t: Tag, v: u16| {
            o.put(DataElement::new(t, VR::US, PrimitiveValue::from(v)));
        };
        us(&mut o, tags::ROWS, self.rows);
        us(&mut o, tags::COLUMNS, self.cols);
        us(&mut o, tags::SAMPLES_PER_PIXEL, 1);
        let (allocated, signed, value, vr) = match &self.px {
            Px::U8(v) => {
                assert_eq!(v.len(), n);
                (8, 0, PrimitiveValue::U8(v.clone().into()), VR::OB)
            }
            Px::U16(v) => {
                assert_eq!(v.len(), n);
                (16, 0, PrimitiveValue::U16(v.clone().into()), VR::OW)
            }
            Px::I16(v) => {
                assert_eq!(v.len(), n);
                let words: Vec<u16> = v.iter().map(|x| *x as u16).collect();
                (16, 1, PrimitiveValue::U16(words.into()), VR::OW)
            }
        };
        us(&mut o, tags::BITS_ALLOCATED, allocated);
        us(&mut o, tags::BITS_STORED, self.bits_stored);
        us(&mut o, tags::HIGH_BIT, self.bits_stored - 1);
        us(&mut o, tags::PIXEL_REPRESENTATION, signed);
        o.put(DataElement::new(tags::PIXEL_DATA, vr, value));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(self.sop_class)
            .media_storage_sop_instance_uid(&self.sop)
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .build()
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        o.with_exact_meta(meta).write_to_file(path).unwrap();
    }
}

const W: u16 = 64;
const H: u16 = 48;
/// The fake burned-in text: a bright block inside the mask rectangle of [`RULE_RECT`].
const TEXT: (usize, usize, usize, usize) = (2, 2, 18, 8); // x0, y0, x1, y1 (exclusive)
const RULE_RECT: &str = "{x: 0, y: 0, width: 20, height: 10}";
const CINE_FRAMES: u32 = 30;

/// Background level of cine frame `f` (all different, darkest first).
fn cine_level(f: u32) -> u8 {
    20 + 7 * f as u8
}

/// Whether (x, y) is inside the mask rectangle of [`RULE_RECT`].
fn in_rule_rect(x: usize, y: usize) -> bool {
    x < 20 && y < 10
}

/// Sample (x, y) of cine frame `f`: the frame's level plus a small texture, and a bright
/// "text" block in the top-left corner when `text` is set.
fn cine_sample(x: usize, y: usize, f: u32, text: bool) -> u8 {
    let (x0, y0, x1, y1) = TEXT;
    if text && (x0..x1).contains(&x) && (y0..y1).contains(&y) && !x.is_multiple_of(3) {
        return 255;
    }
    cine_level(f) + ((x + 2 * y) % 8) as u8
}

fn cine_pixels(frames: u32, text: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for f in 0..frames {
        for y in 0..H as usize {
            for x in 0..W as usize {
                v.push(cine_sample(x, y, f, text));
            }
        }
    }
    v
}

/// A 30-frame 8-bit cine with burned-in text and RecommendedDisplayFrameRate 18.
fn cine(modality: &'static str, sop_class: &'static str) -> Fixture {
    Fixture::new(
        modality,
        sop_class,
        H,
        W,
        CINE_FRAMES,
        Px::U8(cine_pixels(CINE_FRAMES, true)),
    )
    .attr(tags::RECOMMENDED_DISPLAY_FRAME_RATE, VR::IS, "18")
    .attr(tags::BURNED_IN_ANNOTATION, VR::CS, "YES")
}

/// A mask rule file matching `modality`, blanking [`RULE_RECT`].
fn rule_file(dir: &Path, modality: &str) -> PathBuf {
    let p = dir.join("mask-rules.yaml");
    std::fs::write(
        &p,
        format!("- {{name: synthetic, when: {{Modality: {modality}}}, rects: [{RULE_RECT}]}}\n"),
    )
    .unwrap();
    p
}

// ---------------------------------------------------------------------------------------------
// Running and reading outputs

fn run_recipe(recipe: &str, input: &Path, out: &Path, sets: &[String]) -> Output {
    let mut args = vec![
        "run",
        recipe,
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
        // Checks name the inputs listed in run.json by path.
        "--report-paths",
        "plain",
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    dcmflow_with_test_secret(&args)
}

/// The only file with extension `ext` below `dir`.
fn only_output(dir: &Path, ext: &str) -> PathBuf {
    let v = files_with_ext(dir, ext);
    assert_eq!(
        v.len(),
        1,
        "one .{ext} expected below {}: {v:?}",
        dir.display()
    );
    v.into_iter().next().unwrap()
}

/// ffprobe's view of the first video stream (packets and frames counted) and the format.
fn ffprobe(path: &Path) -> (serde_json::Value, serde_json::Value) {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-count_frames", "-show_entries"])
        .arg("stream=codec_name,pix_fmt,r_frame_rate,nb_read_packets,nb_read_frames,width,height:format=duration,format_name")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (v["streams"][0].clone(), v["format"].clone())
}

fn count(v: &serde_json::Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every frame of a clip decoded by ffmpeg to 8-bit gray, full range.
fn decode_gray(path: &Path, w: usize, h: usize) -> Vec<Vec<u8>> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout.len() % (w * h), 0, "frames of {w}x{h}");
    o.stdout.chunks(w * h).map(|c| c.to_vec()).collect()
}

fn mean_where(frame: &[u8], w: usize, keep: impl Fn(usize, usize) -> bool) -> f64 {
    let (mut sum, mut n) = (0.0, 0.0);
    for (i, v) in frame.iter().enumerate() {
        if keep(i % w, i / w) {
            sum += *v as f64;
            n += 1.0;
        }
    }
    sum / n
}

/// Top-level MP4 box types in file order.
fn mp4_boxes(b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= b.len() {
        let size = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as u64;
        out.push(String::from_utf8_lossy(&b[i + 4..i + 8]).into_owned());
        let len = match size {
            0 => (b.len() - i) as u64,
            1 => u64::from_be_bytes(b[i + 8..i + 16].try_into().unwrap()),
            n => n,
        };
        if len < 8 {
            break;
        }
        i += len as usize;
    }
    out
}

/// Frame count and delays (centiseconds) of a GIF, from its block structure.
fn gif_frames(b: &[u8]) -> (usize, Vec<u16>) {
    assert!(
        b.starts_with(b"GIF89a") || b.starts_with(b"GIF87a"),
        "not a GIF"
    );
    let table = |flags: u8| {
        if flags & 0x80 != 0 {
            3 * (1usize << ((flags & 7) + 1))
        } else {
            0
        }
    };
    let skip_sub_blocks = |mut i: usize| loop {
        let n = b[i] as usize;
        i += 1;
        if n == 0 {
            return i;
        }
        i += n;
    };
    let mut i = 13 + table(b[10]);
    let (mut frames, mut delays) = (0, Vec::new());
    loop {
        match b[i] {
            0x21 => {
                if b[i + 1] == 0xF9 {
                    delays.push(u16::from_le_bytes([b[i + 4], b[i + 5]]));
                }
                i = skip_sub_blocks(i + 2);
            }
            0x2C => {
                frames += 1;
                i += 10 + table(b[i + 9]) + 1; // descriptor, local table, LZW code size
                i = skip_sub_blocks(i);
            }
            0x3B => break,
            x => panic!("unexpected GIF block 0x{x:02x} at byte {i}"),
        }
    }
    (frames, delays)
}

fn problems(report: &serde_json::Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["input"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Cine to MP4, GIF, WebM, HEVC

/// A US cine and its mask rule file in a fresh temp dir: (dir, input folder, rule file).
fn us_cine_input() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    cine("US", uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE).write(&input.join("cine.dcm"));
    let rules = rule_file(dir.path(), "US");
    (dir, input, rules)
}

#[test]
fn cine_to_mp4_is_h264_yuv420p_at_the_recorded_18_fps_with_30_frames_in_order_and_moov_first() {
    if !have_tool("ffprobe") || !have_tool("ffmpeg") {
        return;
    }
    let (dir, input, rules) = us_cine_input();
    let out = dir.path().join("out");
    let o = run_recipe(
        "recipes/cine-mp4.yaml",
        &input,
        &out,
        &[format!("mask_rules={}", rules.display())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mp4 = only_output(&out, "mp4");
    let (s, _) = ffprobe(&mp4);
    assert_eq!(s["codec_name"], "h264", "{s}");
    assert_eq!(s["pix_fmt"], "yuv420p", "{s}");
    assert_eq!(s["r_frame_rate"], "18/1", "{s}");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(64), Some(48))
    );
    assert_eq!(count(&s["nb_read_packets"]), 30, "{s}");
    assert_eq!(count(&s["nb_read_frames"]), 30, "{s}");

    let boxes = mp4_boxes(&std::fs::read(&mp4).unwrap());
    let pos = |t: &str| boxes.iter().position(|b| b == t);
    assert!(
        pos("moov").is_some() && pos("moov") < pos("mdat"),
        "moov must precede mdat (fast start): {boxes:?}"
    );

    // Frames come out in order, each at its own brightness (the levels rise by 7 per frame
    // over 20..230, so one window for the clip keeps steps of 7 or more), and the text block
    // is black.
    let frames = decode_gray(&mp4, 64, 48);
    assert_eq!(frames.len(), 30);
    let means: Vec<f64> = frames
        .iter()
        .map(|frame| mean_where(frame, 64, |x, _| x >= 24))
        .collect();
    assert!(means[0] < 40.0 && means[29] > 215.0, "{means:.1?}");
    for f in 1..30 {
        let step = means[f] - means[f - 1];
        assert!(
            (5.0..12.0).contains(&step),
            "frame {f}: brightness step {step:.1} from the previous frame: {means:.1?}"
        );
    }
    for (f, frame) in frames.iter().enumerate() {
        let masked = mean_where(frame, 64, |x, y| {
            (2..17).contains(&x) && (2..8).contains(&y)
        });
        assert!(masked < 12.0, "frame {f}: masked block mean {masked}");
    }
}

#[test]
fn cine_to_gif_has_30_frames_whose_delays_sum_to_30_over_18_seconds() {
    let (dir, input, rules) = us_cine_input();
    let out = dir.path().join("out");
    let o = run_recipe(
        "recipes/cine-mp4.yaml",
        &input,
        &out,
        &[
            format!("mask_rules={}", rules.display()),
            "format=gif".into(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (frames, delays) = gif_frames(&std::fs::read(only_output(&out, "gif")).unwrap());
    assert_eq!(frames, 30);
    assert_eq!(delays.len(), 30);
    let total: u32 = delays.iter().map(|d| *d as u32).sum();
    let want = 100.0 * 30.0 / 18.0;
    assert!(
        (total as f64 - want).abs() <= 1.0,
        "delays sum to {total} cs, want {want:.1}: {delays:?}"
    );
    assert!(delays.iter().all(|d| (5..=6).contains(d)), "{delays:?}");
}

#[test]
fn cine_to_webm_is_av1_with_30_frames_lasting_30_over_18_seconds() {
    if !have_tool("ffprobe") {
        return;
    }
    let (dir, input, rules) = us_cine_input();
    let out = dir.path().join("out");
    let o = run_recipe(
        "recipes/cine-mp4.yaml",
        &input,
        &out,
        &[
            format!("mask_rules={}", rules.display()),
            "format=webm".into(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let webm = only_output(&out, "webm");
    let (s, f) = ffprobe(&webm);
    assert_eq!(s["codec_name"], "av1", "{s}");
    assert!(f["format_name"].as_str().unwrap().contains("webm"), "{f}");
    assert_eq!(count(&s["nb_read_packets"]), 30, "{s}");
    assert_eq!(count(&s["nb_read_frames"]), 30, "{s}");
    let duration: f64 = f["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (duration - 30.0 / 18.0).abs() < 0.02,
        "duration {duration}, want {}",
        30.0 / 18.0
    );
}

#[test]
fn cine_to_hevc_through_ffmpeg_and_a_clear_failure_when_ffmpeg_is_not_on_path() {
    let (dir, input, rules) = us_cine_input();
    let sets = [
        format!("mask_rules={}", rules.display()),
        "format=hevc".to_string(),
    ];

    // Without ffmpeg on PATH: the item fails, naming the program; exit code 1; no clip.
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let out = dir.path().join("out-no-ffmpeg");
    let mut args = vec![
        "run",
        "recipes/cine-mp4.yaml",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ];
    for s in &sets {
        args.push("--set");
        args.push(s);
    }
    let o = dcmflow_with_env(
        &args,
        &[
            ("DCMFLOW_SECRET", TEST_SECRET.as_ref()),
            ("PATH", empty.as_os_str()),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = run_report(&out);
    let p = problems(&report);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].1.contains("`ffmpeg`"), "{}", p[0].1);
    assert!(files_with_ext(&out, "mp4").is_empty());

    // With ffmpeg: an HEVC MP4 of 30 frames at 18 fps.
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return;
    }
    let out = dir.path().join("out");
    let o = run_recipe("recipes/cine-mp4.yaml", &input, &out, &sets);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (s, _) = ffprobe(&only_output(&out, "mp4"));
    assert_eq!(s["codec_name"], "hevc", "{s}");
    assert_eq!(s["r_frame_rate"], "18/1", "{s}");
    assert_eq!(count(&s["nb_read_frames"]), 30, "{s}");
}

// ---------------------------------------------------------------------------------------------
// 2. Series order

/// The 8-bit rendering of a modality value through the DICOM linear VOI function
/// (PS3.3 C.11.2.1.2.1).
fn linear_window(x: f64, c: f64, w: f64) -> f64 {
    let y = if x <= c - 0.5 - (w - 1.0) / 2.0 {
        0.0
    } else if x > c - 0.5 + (w - 1.0) / 2.0 {
        1.0
    } else {
        (x - (c - 0.5)) / (w - 1.0) + 0.5
    };
    y * 255.0
}

const SLICES: i32 = 12;

/// Stored level of the slice with InstanceNumber `n` (1-based): a permutation, so neither file
/// order nor UID order nor a monotonic ramp gives it away.
fn slice_level(n: i32) -> u16 {
    16 * (20 + 18 * ((n * 5) % SLICES) as u16)
}

/// A CT series of [`SLICES`] slices with window tags (centre 2048, width 4096), written in a
/// shuffled order under names that do not follow InstanceNumber.
fn write_ct_series(input: &Path, text: bool) {
    let order = [7, 2, 11, 5, 1, 9, 12, 3, 8, 10, 4, 6];
    assert_eq!(order.len(), SLICES as usize);
    for n in order {
        let level = slice_level(n);
        let px: Vec<u16> = (0..H as usize * W as usize)
            .map(|i| {
                let (x, y) = (i % W as usize, i / W as usize);
                let (x0, y0, x1, y1) = TEXT;
                if text && (x0..x1).contains(&x) && (y0..y1).contains(&y) {
                    4000
                } else {
                    level + ((x + y) % 4) as u16
                }
            })
            .collect();
        let mut fx = Fixture::new("CT", uids::CT_IMAGE_STORAGE, H, W, 1, Px::U16(px))
            .attr(tags::INSTANCE_NUMBER, VR::IS, &n.to_string())
            .attr(tags::WINDOW_CENTER, VR::DS, "2048")
            .attr(tags::WINDOW_WIDTH, VR::DS, "4096")
            .attr(tags::RESCALE_SLOPE, VR::DS, "1")
            .attr(tags::RESCALE_INTERCEPT, VR::DS, "0");
        fx.bits_stored = 12;
        fx.sop = format!("{STUDY}.1.{}", (n * 7) % 13 + 100);
        let name = format!("{:08x}.dcm", (n as u32).wrapping_mul(2_654_435_761));
        fx.write(&input.join(name));
    }
}

#[test]
fn series_video_frames_follow_instance_number_not_file_order() {
    if !have_tool("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_ct_series(&input, false);
    let out = dir.path().join("out");
    let o = run_recipe("recipes/series-mp4.yaml", &input, &out, &["fps=8".into()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let frames = decode_gray(&only_output(&out, "mp4"), 64, 48);
    assert_eq!(frames.len(), SLICES as usize);
    for (i, frame) in frames.iter().enumerate() {
        let n = i as i32 + 1;
        let want = linear_window(slice_level(n) as f64 + 1.5, 2048.0, 4096.0);
        let got = mean_where(frame, 64, |_, _| true);
        assert!(
            (got - want).abs() < 6.0,
            "frame {i}: mean {got:.1}, want {want:.1} (InstanceNumber {n})"
        );
    }
}

#[test]
fn series_video_keeps_the_masked_pixels() {
    if !have_tool("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_ct_series(&input, true);
    let rules = rule_file(dir.path(), "CT");
    let out = dir.path().join("out");
    let o = run_recipe(
        "recipes/series-mp4.yaml",
        &input,
        &out,
        &["fps=8".into(), format!("mask_rules={}", rules.display())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let frames = decode_gray(&only_output(&out, "mp4"), 64, 48);
    assert_eq!(frames.len(), SLICES as usize);
    for (i, frame) in frames.iter().enumerate() {
        let masked = mean_where(frame, 64, |x, y| {
            (3..17).contains(&x) && (3..7).contains(&y)
        });
        assert!(masked < 12.0, "slice {i}: masked block mean {masked:.1}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Masking into DICOM and PNG

const MASK_RECIPE: &str = r#"version: 1
name: mask-test
stages:
  - id: read
    type: read_dicom
  - id: mask
    type: mask_regions
    inputs: [read]
    with:
      rules: [{name: synthetic, when: {Modality: XA}, rects: [RECT]}]
  - id: deid
    type: deidentify
    inputs: [mask]
  - id: write
    type: write_dicom
    inputs: [deid]
    with: { path: "dicom/{SOPInstanceUID}.dcm" }
  - id: decode
    type: decode_pixels
    inputs: [deid]
  - id: window
    type: apply_window
    inputs: [decode]
  - id: png
    type: encode_image
    inputs: [window]
    with: { format: png, path: "png/{frame}.{ext}" }
"#;

#[test]
fn masked_rectangle_is_black_in_every_frame_of_the_dicom_and_png_outputs_and_nothing_else_changes()
{
    let frames = 6;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    // Window centre 128, width 256 renders stored values 0..255 unchanged (linear VOI).
    Fixture::new(
        "XA",
        uids::X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE,
        H,
        W,
        frames,
        Px::U8(cine_pixels(frames, true)),
    )
    .attr(tags::RECOMMENDED_DISPLAY_FRAME_RATE, VR::IS, "15")
    .attr(tags::BURNED_IN_ANNOTATION, VR::CS, "YES")
    .attr(tags::WINDOW_CENTER, VR::DS, "128")
    .attr(tags::WINDOW_WIDTH, VR::DS, "256")
    .write(&input.join("xa.dcm"));
    let recipe = dir.path().join("mask.yaml");
    std::fs::write(&recipe, MASK_RECIPE.replace("RECT", RULE_RECT)).unwrap();
    let out = dir.path().join("out");
    let o = run_recipe(recipe.to_str().unwrap(), &input, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let (w, h) = (W as usize, H as usize);
    let check = |what: &str, f: u32, px: &[u8]| {
        assert_eq!(px.len(), w * h, "{what}");
        for y in 0..h {
            for x in 0..w {
                let got = px[y * w + x];
                if in_rule_rect(x, y) {
                    assert_eq!(got, 0, "{what}: ({x},{y}) inside the mask is not black");
                } else {
                    assert_eq!(
                        got,
                        cine_sample(x, y, f, true),
                        "{what}: ({x},{y}) outside the mask changed"
                    );
                }
            }
        }
    };

    // DICOM: every frame masked, header says so.
    let dcm = only_output(&out, "dcm");
    let obj = dicom_object::open_file(&dcm).unwrap();
    let s = |t| {
        obj.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(['\0', ' '])
            .to_string()
    };
    assert_eq!(s(tags::BURNED_IN_ANNOTATION), "NO");
    assert_ne!(s(tags::PATIENT_NAME), "Media^Test");
    let codes: Vec<String> = obj
        .element(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .iter()
        .map(|it| {
            it.element(tags::CODE_VALUE)
                .unwrap()
                .to_str()
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert!(codes.iter().any(|c| c == "113101"), "{codes:?}");
    assert_eq!(
        obj.meta().transfer_syntax().trim_end_matches('\0'),
        uids::EXPLICIT_VR_LITTLE_ENDIAN
    );
    let bytes = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    assert!(bytes.len() >= w * h * frames as usize);
    for f in 0..frames {
        let px = &bytes[f as usize * w * h..(f as usize + 1) * w * h];
        check(&format!("DICOM frame {}", f + 1), f, px);
    }

    // PNG: one per frame, same pixels.
    let pngs = files_with_ext(&out, "png");
    assert_eq!(pngs.len(), frames as usize, "{pngs:?}");
    for f in 0..frames {
        let p = out.join(format!("png/{:04}.png", f + 1));
        let img = image::open(&p).unwrap();
        assert_eq!(img.color(), image::ColorType::L8);
        check(&format!("PNG frame {}", f + 1), f, img.to_luma8().as_raw());
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Stills

/// Mean and standard deviation of 8-bit gray samples.
fn mean_std(px: &[u8]) -> (f64, f64) {
    let n = px.len() as f64;
    let mean = px.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = px.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Run `stills` on `input` with `sets` and return the decoded gray images.
fn stills(input: &Path, out: &Path, sets: &[&str]) -> Vec<image::DynamicImage> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let o = run_recipe("recipes/stills.yaml", input, out, &sets);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ext = if sets.iter().any(|s| s == "format=tiff") {
        "tiff"
    } else {
        "png"
    };
    files_with_ext(out, ext)
        .iter()
        .map(|p| image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn ct_with_signed_pixels_and_no_window_tags_renders_visible_anatomy() {
    let corpus = corpus();
    let mut obj = dicom_object::open_file(corpus.join("ct/CT_small.dcm")).unwrap();
    assert_eq!(
        obj.element(tags::PIXEL_REPRESENTATION)
            .unwrap()
            .to_int::<u16>()
            .unwrap(),
        1,
        "the fixture must have signed pixels"
    );
    for t in [
        tags::WINDOW_CENTER,
        tags::WINDOW_WIDTH,
        tags::WINDOW_CENTER_WIDTH_EXPLANATION,
        tags::VOILUT_FUNCTION,
        tags::VOILUT_SEQUENCE,
    ] {
        obj.remove_element(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    obj.write_to_file(input.join("ct.dcm")).unwrap();
    let imgs = stills(&input, &dir.path().join("out"), &["format=png"]);
    assert_eq!(imgs.len(), 1);
    let px = imgs[0].to_luma8().into_raw();
    let (mean, std) = mean_std(&px);
    let extremes = px.iter().filter(|v| **v == 0 || **v == 255).count();
    assert!(std > 30.0, "flat rendering: mean {mean:.1}, std {std:.1}");
    assert!((20.0..235.0).contains(&mean), "mean {mean:.1}");
    assert!(
        extremes * 2 < px.len(),
        "{extremes} of {} clipped",
        px.len()
    );
}

#[test]
fn monochrome1_renders_higher_stored_values_darker() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    // Stored values rise from left (0) to right (~4000).
    let px: Vec<u16> = (0..64 * 64)
        .map(|i| ((i % 64) * 63 + (i / 64) % 4) as u16)
        .collect();
    let mut fx = Fixture::new(
        "CR",
        uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
        64,
        64,
        1,
        Px::U16(px),
    );
    fx.photometric = "MONOCHROME1";
    fx.bits_stored = 12;
    fx.write(&input.join("cr.dcm"));
    let imgs = stills(&input, &dir.path().join("out"), &["format=png"]);
    assert_eq!(imgs.len(), 1);
    let g = imgs[0].to_luma8();
    let column_mean = |x: u32| (0..64).map(|y| g.get_pixel(x, y)[0] as f64).sum::<f64>() / 64.0;
    let cols: Vec<f64> = (0..64).map(column_mean).collect();
    assert!(cols[0] > 200.0 && cols[63] < 55.0, "{cols:?}");
    assert!(cols.windows(2).all(|p| p[1] <= p[0]), "{cols:?}");
}

#[test]
fn non_square_pixels_export_at_their_true_aspect_ratio() {
    for (spacing, want) in [("0.5\\1.0", (128, 64)), ("1.0\\0.5", (64, 128))] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let px: Vec<i16> = (0..64 * 64).map(|i| ((i % 64) * 10 - 300) as i16).collect();
        Fixture::new("CT", uids::CT_IMAGE_STORAGE, 64, 64, 1, Px::I16(px))
            .attr(tags::PIXEL_SPACING, VR::DS, spacing)
            .write(&input.join("ct.dcm"));
        let imgs = stills(&input, &dir.path().join("out"), &["format=png"]);
        assert_eq!(imgs.len(), 1);
        assert_eq!(
            (imgs[0].width(), imgs[0].height()),
            want,
            "PixelSpacing {spacing} (row\\column)"
        );
    }
}

/// JPEG markers before the scan.
fn jpeg_markers(b: &[u8]) -> Vec<u8> {
    assert_eq!(&b[..2], &[0xFF, 0xD8], "not a JPEG");
    let mut i = 2;
    let mut out = Vec::new();
    while i + 4 <= b.len() {
        assert_eq!(b[i], 0xFF, "marker expected at byte {i}");
        let m = b[i + 1];
        out.push(m);
        if m == 0xDA {
            break;
        }
        i += 2 + u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
    }
    out
}

/// PNG chunk types in file order.
fn png_chunks(b: &[u8]) -> Vec<String> {
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let mut i = 8;
    let mut out = Vec::new();
    while i + 8 <= b.len() {
        let len = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&b[i + 4..i + 8]).into_owned());
        i += 12 + len;
    }
    out
}

/// Tags (and first values) of the first TIFF directory.
fn tiff_tags(b: &[u8]) -> BTreeMap<u16, u32> {
    let le = match &b[..4] {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => panic!("not a TIFF"),
    };
    let u16_at = |i: usize| {
        let a = [b[i], b[i + 1]];
        if le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    };
    let u32_at = |i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let ifd = u32_at(4) as usize;
    (0..u16_at(ifd) as usize)
        .map(|k| {
            let e = ifd + 2 + 12 * k;
            let (tag, kind, n) = (u16_at(e), u16_at(e + 2), u32_at(e + 4));
            let value = match kind {
                3 if n <= 2 => u16_at(e + 8) as u32,
                3 => u16_at(u32_at(e + 8) as usize) as u32,
                _ => u32_at(e + 8),
            };
            (tag, value)
        })
        .collect()
}

/// A CT and an MR fixture for the format checks.
fn ct_and_mr(input: &Path) {
    let ramp: Vec<i16> = (0..64 * 64)
        .map(|i| ((i % 64) * 20 + (i / 64) * 5 - 800) as i16)
        .collect();
    Fixture::new("CT", uids::CT_IMAGE_STORAGE, 64, 64, 1, Px::I16(ramp))
        .attr(tags::RESCALE_INTERCEPT, VR::DS, "0")
        .attr(tags::RESCALE_SLOPE, VR::DS, "1")
        .write(&input.join("ct.dcm"));
    let mut mr = Fixture::new(
        "MR",
        uids::MR_IMAGE_STORAGE,
        H,
        W,
        1,
        Px::U16((0..H as u32 * W as u32).map(|i| (i % 997) as u16).collect()),
    );
    mr.sop = format!("{STUDY}.2.1");
    mr.series = format!("{STUDY}.2");
    mr.write(&input.join("mr.dcm"));
}

#[test]
fn jpeg_and_png_stills_carry_no_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    ct_and_mr(&input);

    let out = dir.path().join("jpeg");
    let o = run_recipe("recipes/stills.yaml", &input, &out, &["format=jpeg".into()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let jpgs = files_with_ext(&out, "jpg");
    assert_eq!(jpgs.len(), 2);
    for p in &jpgs {
        let markers = jpeg_markers(&std::fs::read(p).unwrap());
        assert!(
            markers.contains(&0xDB) && markers.contains(&0xC0),
            "{markers:x?}"
        );
        // APP1..APP15 (EXIF, XMP, ...) and COM are metadata; APP0 (JFIF) is not.
        let meta: Vec<_> = markers
            .iter()
            .filter(|m| (0xE1..=0xEF).contains(*m) || **m == 0xFE)
            .collect();
        assert!(meta.is_empty(), "{}: {meta:x?}", p.display());
    }

    let out = dir.path().join("png");
    let o = run_recipe("recipes/stills.yaml", &input, &out, &["format=png".into()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let pngs = files_with_ext(&out, "png");
    assert_eq!(pngs.len(), 2);
    for p in &pngs {
        let chunks = png_chunks(&std::fs::read(p).unwrap());
        assert_eq!(chunks.first().map(String::as_str), Some("IHDR"));
        assert_eq!(chunks.last().map(String::as_str), Some("IEND"));
        for c in ["tEXt", "iTXt", "zTXt", "eXIf", "tIME"] {
            assert!(
                !chunks.iter().any(|x| x == c),
                "{}: {chunks:?}",
                p.display()
            );
        }
    }
}

#[test]
fn tiff_with_bits_16_writes_16_bit_samples() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    ct_and_mr(&input);
    let out = dir.path().join("out");
    let imgs = stills(&input, &out, &["format=tiff", "bits=16"]);
    assert_eq!(imgs.len(), 2);
    for p in files_with_ext(&out, "tiff") {
        let t = tiff_tags(&std::fs::read(&p).unwrap());
        assert_eq!(t.get(&258), Some(&16), "BitsPerSample: {t:?}");
        assert_eq!(t.get(&277), Some(&1), "SamplesPerPixel: {t:?}");
        for meta in [270, 305, 306, 315] {
            assert!(!t.contains_key(&meta), "metadata tag {meta}: {t:?}");
        }
    }
    for img in &imgs {
        let px = img.as_luma16().expect("16-bit gray").as_raw();
        let distinct: std::collections::BTreeSet<u16> = px.iter().copied().collect();
        // The CT ramp has > 1000 distinct stored values; 8-bit output could keep at most 256.
        assert!(distinct.len() > 256, "{} distinct values", distinct.len());
    }
}

// ---------------------------------------------------------------------------------------------
// 5. The corpus through stills

/// MANIFEST.csv rows: file -> (modality, frames, image-bearing).
fn manifest(corpus: &Path) -> BTreeMap<String, (String, u64, bool)> {
    let text = std::fs::read_to_string(corpus.join("MANIFEST.csv")).unwrap();
    let mut rows = text.lines();
    let header = split_csv(rows.next().unwrap());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (file, modality, dims, frames, decode) = (
        col("file"),
        col("modality"),
        col("rows_x_cols"),
        col("frames"),
        col("pydicom_decode"),
    );
    rows.map(split_csv)
        .map(|r| {
            let image = !r[dims].is_empty() && !r[decode].starts_with("n/a");
            let n = r[frames].parse().unwrap_or(1);
            (r[file].clone(), (r[modality].clone(), n, image))
        })
        .collect()
}

/// One CSV line (double-quoted fields may hold commas).
fn split_csv(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// NumberOfFrames from a header (1 when absent).
fn header_frames(path: &Path) -> u64 {
    dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .ok()
        .and_then(|o| o.element(tags::NUMBER_OF_FRAMES).ok()?.to_int::<u64>().ok())
        .unwrap_or(1)
}

/// A reason without the parts that differ between files (numbers), for counting.
fn reason_kind(reason: &str) -> String {
    let r: String = reason
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    r.chars().take(110).collect()
}

#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn corpus_sweep_through_stills_exports_every_image_or_says_why() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // CT and MR captures and reformats (Secondary Capture, ImageType SECONDARY) may carry
    // burned-in text and are quarantined by default; this site rule vouches for the corpus's
    // CT and MR images so that their decoders are exercised.
    let rules = dir.path().join("mask-rules.yaml");
    std::fs::write(
        &rules,
        "- name: corpus CT and MR images carry no text\n  when: { Modality: [CT, MR] }\n  rects: []\n",
    )
    .unwrap();
    let o = run_recipe(
        "recipes/stills.yaml",
        &corpus,
        &out,
        &[
            "format=png".into(),
            format!("mask_rules={}", rules.display()),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "some files fail, none crash: {t}");
    assert!(!t.contains("panicked"), "{t}");
    let report = run_report(&out);

    let rel = |p: &str| {
        let p = Path::new(p);
        p.strip_prefix(&corpus)
            .unwrap_or_else(|_| panic!("{} is not in the corpus", p.display()))
            .to_string_lossy()
            .into_owned()
    };
    // input -> (stage, reason) for failures, quarantines and skips.
    let mut listed: BTreeMap<String, (String, String)> = BTreeMap::new();
    for key in ["problems", "skipped"] {
        for p in report[key].as_array().unwrap() {
            let reason = p["reason"].as_str().unwrap().to_string();
            assert!(!reason.trim().is_empty(), "{p}");
            listed.insert(
                rel(p["input"].as_str().unwrap()),
                (p["stage"].as_str().unwrap().to_string(), reason),
            );
        }
    }

    let rows = manifest(&corpus);
    let files: Vec<String> = files_below(&corpus)
        .iter()
        .map(|p| rel(p.to_str().unwrap()))
        .collect();
    let (mut exported, mut expected_pngs) = (Vec::new(), 0);
    let mut exported_broken = Vec::new();
    let mut failed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut images = 0;
    for f in &files {
        let row = rows.get(f);
        let image = row.is_some_and(|r| r.2);
        images += image as usize;
        match listed.get(f) {
            Some((stage, reason)) => {
                if image {
                    failed
                        .entry(format!("{stage}: {}", reason_kind(reason)))
                        .or_default()
                        .push(f.clone());
                }
            }
            None => {
                // Not listed: it was exported. The manifest says how many frames, unless pydicom
                // could not read the pixels (a damaged file dcmflow still decoded).
                let frames = if image {
                    row.unwrap().1
                } else {
                    assert!(
                        f.starts_with("broken/"),
                        "{f} is neither exported nor listed in run.json"
                    );
                    exported_broken.push(f.clone());
                    header_frames(&corpus.join(f))
                };
                exported.push(f.clone());
                expected_pngs += frames;
            }
        }
    }
    let pngs = files_with_ext(&out, "png");
    assert_eq!(
        pngs.len() as u64,
        expected_pngs,
        "one PNG per frame of every exported file"
    );
    for p in pngs.iter().step_by(7) {
        image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }

    println!(
        "corpus sweep (stills, png): {} files, {images} image-bearing by MANIFEST.csv: {} exported, {} not; {} PNGs",
        files.len(),
        exported.len() - exported_broken.len(),
        failed.values().map(Vec::len).sum::<usize>(),
        pngs.len(),
    );
    if !exported_broken.is_empty() {
        println!(
            "  exported although pydicom cannot read their pixels: {}",
            exported_broken.join(" ")
        );
    }
    for (reason, fs) in &failed {
        println!("  {:2} {reason}\n       {}", fs.len(), fs.join(" "));
    }
    // Plain CT and MR must export (JPEG-LS only with the charls feature; broken/ on purpose).
    for (f, (modality, _, image)) in &rows {
        let plain = (f.starts_with("ct/") || f.starts_with("mr/")) && !f.contains("jpeg_ls");
        if plain && *image && (modality == "CT" || modality == "MR") {
            assert!(exported.contains(f), "{f}: {:?}", listed.get(f));
        }
    }
}
