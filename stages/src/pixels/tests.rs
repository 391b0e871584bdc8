//! Tests of the pixel pipeline. Corpus-based tests are reported as ignored when the shared
//! corpus is not present (see `crate::testing`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{open_file, DefaultDicomObject};

use super::*;

use crate::testing::corpus_dir;

/// A file of the shared corpus, opened.
fn open(rel: &str) -> DefaultDicomObject {
    open_file(corpus_dir().join(rel)).unwrap_or_else(|e| panic!("cannot open {rel}: {e}"))
}

fn opts_default() -> WindowOptions {
    WindowOptions::default()
}

fn u8_data(f: &Frame) -> &[u8] {
    match &f.data {
        FrameData::U8(v) => v,
        FrameData::U16(_) => panic!("expected 8-bit frame"),
    }
}

fn mean_std(v: &[u8]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if !matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("csv") | Some("md")
            ) {
                out.push(p);
            }
        }
    }
}

fn error_kind(e: &PixelError) -> String {
    match e {
        PixelError::NoPixelData => "no Pixel Data".into(),
        PixelError::MissingAttribute(a) => format!("missing {a}"),
        PixelError::InvalidAttribute { name, .. } => format!("invalid {name}"),
        PixelError::JpegLsNeedsCharls(_) => "JPEG-LS needs `charls`".into(),
        PixelError::Jpeg12BitLossy => "12-bit lossy JPEG".into(),
        PixelError::UnsupportedTransferSyntax { uid, .. } => format!("unsupported TS {uid}"),
        PixelError::UnsupportedPhotometric(p) => format!("unsupported photometric {p}"),
        PixelError::Truncated { .. } => "Pixel Data truncated".into(),
        PixelError::FrameOutOfRange { .. } => "frame out of range".into(),
        PixelError::Decode(_) => "codec error".into(),
        PixelError::InvalidOption(_) => "invalid option".into(),
        PixelError::Encode(_) => "encode error".into(),
        PixelError::TooLarge { .. } => "too large".into(),
    }
}

/// (g) Every corpus file either renders all frames or returns a PixelError;
/// never a panic. Run with `--nocapture` to see the summary.
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn corpus_sweep_never_panics() {
    let dir = corpus_dir();
    let mut files = Vec::new();
    walk(&dir, &mut files);
    let mut summary: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut panics = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&dir).unwrap().display().to_string();
        let t0 = std::time::Instant::now();
        let res = std::panic::catch_unwind(|| -> Result<String, String> {
            let obj = match open_file(path) {
                Ok(o) => o,
                Err(_) => return Err("not readable as a DICOM file (dicom-object)".into()),
            };
            let dec = decode(&obj).map_err(|e| error_kind(&e))?;
            for f in 0..dec.frame_count() {
                let fr = render(&dec, f, &opts_default())
                    .map_err(|e| format!("render: {}", error_kind(&e)))?;
                assert_eq!(
                    fr.data.len(),
                    (fr.width * fr.height * fr.channels as u32) as usize
                );
            }
            // one encode per file keeps encoders exercised on odd shapes
            let fr = render(&dec, 0, &opts_default()).map_err(|e| error_kind(&e))?;
            encode(&fr, &ImageFormat::Png).map_err(|e| error_kind(&e))?;
            Ok(format!("rendered ({} frames)", dec.frame_count()))
        });
        if t0.elapsed().as_millis() > 500 {
            println!("  slow: {rel} {:?}", t0.elapsed());
        }
        match res {
            Ok(Ok(_)) => summary
                .entry("rendered all frames".into())
                .or_default()
                .push(rel),
            Ok(Err(reason)) => summary.entry(reason).or_default().push(rel),
            Err(_) => panics.push(rel),
        }
    }
    println!("corpus sweep over {} files:", files.len());
    for (reason, list) in &summary {
        if reason == "rendered all frames" {
            println!("  {:>3}  {reason}", list.len());
        } else {
            println!("  {:>3}  {reason}: {}", list.len(), list.join(", "));
        }
    }
    assert!(panics.is_empty(), "panicked on: {panics:?}");
}

// ---------------------------------------------------------------- golden

/// Window used for both the reference tool and our renderer.
#[derive(Clone, Copy, Debug)]
enum GoldWin {
    /// Colour / palette: no VOI.
    None,
    /// `+Wm` in dcmj2pnm, `window: min_max` here.
    MinMax,
    /// `+Ww c w` in dcmj2pnm, explicit window here.
    Explicit(f64, f64),
    /// `+Wi n` (1-based) in dcmj2pnm, `window: file` with index n-1 here.
    File(usize),
}

struct Gold {
    file: &'static str,
    frame: u32,
    win: GoldWin,
    /// allowed mean absolute difference (8-bit levels)
    tol: f64,
}

/// Lossless/native: <= 1.0 level mean absolute difference (rounding only).
/// Lossy JPEG: <= 3.0 (different IDCT / upsampling implementations).
const TOL_LOSSLESS: f64 = 1.0;
const TOL_LOSSY: f64 = 3.0;

const GOLD_DCMTK: &[Gold] = &[
    Gold {
        file: "ct/CT_small.dcm",
        frame: 0,
        win: GoldWin::Explicit(40.0, 400.0),
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "ct/CT_small_deflated.dcm",
        frame: 0,
        win: GoldWin::Explicit(40.0, 400.0),
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "ct/CT-MONO2-16-ankle.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "ct/693_UNCR.dcm",
        frame: 0,
        win: GoldWin::Explicit(40.0, 400.0),
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "mr/MR_small_bigendian.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "mr/MR_small_implicit.dcm",
        frame: 0,
        win: GoldWin::File(1),
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "mr/MR_small_RLE.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "mr/MR-SIEMENS-DICOM-WithOverlays.dcm",
        frame: 0,
        win: GoldWin::File(1),
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "enhanced/emri_small_big_endian.dcm",
        frame: 3,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "cr_dx/RG3_UNCR.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/simple-test.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/mlut_18.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "broken/bad_sequence.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "xa/jpeg_baseline_8bit.dcm",
        frame: 5,
        win: GoldWin::MinMax,
        tol: TOL_LOSSY,
    },
    Gold {
        file: "us/US-PAL-8-10x-echo.dcm",
        frame: 2,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "us/color-pl.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "us/color-px.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "us/ExplVR_BigEnd.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/SC_ybr_full_422_uncompressed.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/SC_rgb_rle_2frame.dcm",
        frame: 1,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/SC_rgb_16bit.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/SC_rgb_jpeg_gdcm.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/SC_rgb_jpeg_dcmtk.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSY,
    },
    Gold {
        file: "sc/SC_rgb_dcmtk_+eb+cy+s2.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSY,
    },
    Gold {
        file: "sc/SC_jpeg_no_color_transform.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSY,
    },
    Gold {
        file: "us/examples_ybr_color.dcm",
        frame: 7,
        win: GoldWin::None,
        tol: TOL_LOSSY,
    },
    Gold {
        file: "ct/ctbrain1.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSY,
    },
];

fn tool(name: &str) -> Option<PathBuf> {
    crate::testing::required(name, tool_inner(name))
}

fn tool_inner(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pixels_test_{}_{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// (width, height, channels, samples) of a PNG written by a reference tool.
fn read_png(path: &Path) -> (u32, u32, u8, Vec<u8>) {
    let img = image::open(path).unwrap_or_else(|e| panic!("reference {}: {e}", path.display()));
    match img {
        image::DynamicImage::ImageLuma8(i) => (i.width(), i.height(), 1, i.into_raw()),
        other => {
            let i = other.to_rgb8();
            (i.width(), i.height(), 3, i.into_raw())
        }
    }
}

fn our_render(obj: &DefaultDicomObject, frame: u32, win: GoldWin) -> Frame {
    let dec = decode(obj).expect("decode");
    let window = match win {
        GoldWin::None | GoldWin::MinMax => WindowSpec::Named(WindowName::MinMax),
        GoldWin::Explicit(c, w) => WindowSpec::Explicit(ExplicitWindow {
            center: c,
            width: w,
        }),
        GoldWin::File(_) => WindowSpec::Named(WindowName::File),
    };
    let window_index = if let GoldWin::File(n) = win { n - 1 } else { 0 };
    let opts = WindowOptions {
        window,
        window_index,
        correct_aspect: false,
        ..Default::default()
    };
    render(&dec, frame, &opts).expect("render")
}

fn mad(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum::<f64>()
        / a.len().max(1) as f64
}

/// (a) Golden comparison against dcmtk's dcmj2pnm, run at test time.
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn golden_against_dcmj2pnm() {
    let dir = corpus_dir();
    let Some(dcmj2pnm) = tool("dcmj2pnm") else {
        eprintln!("dcmj2pnm not installed, skipping");
        return;
    };
    let tmp = tmpdir("dcmtk");
    let mut failures = Vec::new();
    for (i, g) in GOLD_DCMTK.iter().enumerate() {
        let src = dir.join(g.file);
        let out = tmp.join(format!("ref_{i}.png"));
        let mut cmd = std::process::Command::new(&dcmj2pnm);
        cmd.arg("--write-png")
            .arg("+F")
            .arg((g.frame + 1).to_string());
        match g.win {
            GoldWin::None => {}
            GoldWin::MinMax => {
                cmd.arg("+Wm");
            }
            GoldWin::Explicit(c, w) => {
                cmd.arg("+Ww").arg(c.to_string()).arg(w.to_string());
            }
            GoldWin::File(n) => {
                cmd.arg("+Wi").arg(n.to_string());
            }
        }
        let st = cmd.arg(&src).arg(&out).output().expect("run dcmj2pnm");
        if !st.status.success() || !out.is_file() {
            failures.push(format!("{}: dcmj2pnm failed", g.file));
            continue;
        }
        let (w, h, ch, refdata) = read_png(&out);
        let obj = open_file(&src).unwrap();
        let ours = our_render(&obj, g.frame, g.win);
        if (ours.width, ours.height, ours.channels) != (w, h, ch) {
            failures.push(format!(
                "{}: shape {}x{}x{} vs reference {w}x{h}x{ch}",
                g.file, ours.width, ours.height, ours.channels
            ));
            continue;
        }
        let d = mad(u8_data(&ours), &refdata);
        println!(
            "golden dcmj2pnm {:<45} frame {:>2} {:?}: mean abs diff {d:.3} (tol {})",
            g.file, g.frame, g.win, g.tol
        );
        if d > g.tol {
            failures.push(format!("{}: mean abs diff {d:.3} > {}", g.file, g.tol));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "golden failures: {failures:#?}");
}

/// Reference renderer for files dcmtk cannot read (JPEG 2000, segmented
/// palettes, 32-bit): pydicom + pylibjpeg decode, numpy windowing written
/// independently from the Rust code. argv: src out frame mode [c w]
const PYDICOM_REF: &str = r#"
import sys
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_color_lut
from PIL import Image
src, out, frame, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ds = pydicom.dcmread(src)
arr = ds.pixel_array
nf = int(getattr(ds, "NumberOfFrames", 1) or 1)
if nf > 1:
    arr = arr[frame]
pi = ds.PhotometricInterpretation
if pi == "PALETTE COLOR":
    rgb = apply_color_lut(arr, ds).astype(np.float64)
    bits = ds.RedPaletteColorLookupTableDescriptor[2]
    if bits > 8 and rgb.max() <= 255:
        bits = 8
    img = np.round(rgb * 255.0 / (2 ** bits - 1))
elif arr.ndim == 3:
    img = np.round(arr.astype(np.float64) * 255.0 / (2 ** ds.BitsStored - 1))
else:
    slope = inter = None
    for name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = list(ds.get(name, []) or [])
        item = items[0] if name.startswith("Shared") and items else (items[frame] if frame < len(items) else None)
        if item is not None and "PixelValueTransformationSequence" in item:
            t = item.PixelValueTransformationSequence[0]
            slope, inter = float(t.RescaleSlope), float(t.RescaleIntercept)
    if slope is not None:
        x = arr.astype(np.float64) * slope + inter
    else:
        x = apply_modality_lut(arr, ds).astype(np.float64)
    if mode == "minmax":
        lo, hi = x.min(), x.max()
        y = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    else:
        c, w = float(sys.argv[5]), float(sys.argv[6])
        y = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
        y[x <= c - 0.5 - (w - 1) / 2] = 0
        y[x > c - 0.5 + (w - 1) / 2] = 1
    if pi == "MONOCHROME1":
        y = 1 - y
    img = np.round(np.clip(y, 0, 1) * 255)
Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out)
"#;

fn pydicom_python() -> Option<PathBuf> {
    crate::testing::required(
        "python with pydicom, pylibjpeg, numpy and pillow (PYDICOM_PYTHON)",
        pydicom_python_inner(),
    )
}

fn pydicom_python_inner() -> Option<PathBuf> {
    let mut cands = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")];
    if let Some(p) = std::env::var_os("PYDICOM_PYTHON") {
        cands.insert(0, PathBuf::from(p));
    }
    cands.push(PathBuf::from("python3"));
    cands.into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import pydicom, numpy, PIL, pylibjpeg, openjpeg"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

const GOLD_PYDICOM: &[Gold] = &[
    Gold {
        file: "ct/693_J2KR.dcm",
        frame: 0,
        win: GoldWin::Explicit(40.0, 400.0),
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "ct/explicit_VR-UN.dcm",
        frame: 0,
        win: GoldWin::Explicit(-600.0, 1500.0),
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "ct/693_J2KI.dcm",
        frame: 0,
        win: GoldWin::Explicit(40.0, 400.0),
        tol: TOL_LOSSY,
    },
    Gold {
        file: "mr/MR_small_jp2klossless.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "enhanced/emri_small_jpeg_2k_lossless.dcm",
        frame: 6,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "enhanced/eCT_Supplemental.dcm",
        frame: 1,
        win: GoldWin::Explicit(40.0, 400.0),
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "cr_dx/RG3_J2KI.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSY,
    },
    Gold {
        file: "sc/JPEG2000.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSY,
    },
    Gold {
        file: "sc/GDCMJ2K_TextGBR.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/SC_rgb_gdcm_KY.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSY,
    },
    Gold {
        file: "us/gdcm-US-ALOKA-16.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/SC_rgb_rle_32bit.dcm",
        frame: 0,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "sc/SC_rgb_expb_32bit_2frame.dcm",
        frame: 1,
        win: GoldWin::None,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "non_image/rtdose.dcm",
        frame: 4,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
    Gold {
        file: "enhanced/liver_1frame.dcm",
        frame: 0,
        win: GoldWin::MinMax,
        tol: TOL_LOSSLESS,
    },
];

/// (a) Golden comparison against pydicom + pylibjpeg (independent decoders),
/// run at test time when such a Python is available.
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn golden_against_pydicom() {
    let dir = corpus_dir();
    let Some(py) = pydicom_python() else {
        eprintln!("python with pydicom/pylibjpeg/numpy/pillow not found, skipping");
        return;
    };
    let tmp = tmpdir("pydicom");
    let script = tmp.join("ref.py");
    std::fs::write(&script, PYDICOM_REF).unwrap();
    let mut failures = Vec::new();
    for (i, g) in GOLD_PYDICOM.iter().enumerate() {
        let src = dir.join(g.file);
        let out = tmp.join(format!("ref_{i}.png"));
        let mut cmd = std::process::Command::new(&py);
        cmd.arg(&script)
            .arg(&src)
            .arg(&out)
            .arg(g.frame.to_string());
        match g.win {
            GoldWin::Explicit(c, w) => {
                cmd.arg("explicit").arg(c.to_string()).arg(w.to_string());
            }
            _ => {
                cmd.arg("minmax");
            }
        }
        let o = cmd.output().expect("run python");
        if !o.status.success() {
            failures.push(format!(
                "{}: reference failed: {}",
                g.file,
                String::from_utf8_lossy(&o.stderr)
            ));
            continue;
        }
        let (w, h, ch, refdata) = read_png(&out);
        let obj = open_file(&src).unwrap();
        let ours = our_render(&obj, g.frame, g.win);
        if (ours.width, ours.height, ours.channels) != (w, h, ch) {
            failures.push(format!(
                "{}: shape {}x{}x{} vs reference {w}x{h}x{ch}",
                g.file, ours.width, ours.height, ours.channels
            ));
            continue;
        }
        let d = mad(u8_data(&ours), &refdata);
        println!(
            "golden pydicom {:<45} frame {:>2} {:?}: mean abs diff {d:.3} (tol {})",
            g.file, g.frame, g.win, g.tol
        );
        if d > g.tol {
            failures.push(format!("{}: mean abs diff {d:.3} > {}", g.file, g.tol));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "golden failures: {failures:#?}");
}

// ------------------------------------------------------- behaviour tests

fn render_default(obj: &DefaultDicomObject, frame: u32) -> Frame {
    let dec = decode(obj).expect("decode");
    render(&dec, frame, &WindowOptions::default()).expect("render")
}

/// (b) Signed CT without window tags renders visible anatomy (no default-VOI black).
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn ct_signed_without_window_shows_anatomy() {
    for rel in ["ct/CT_small.dcm", "ct/693_UNCR.dcm", "ct/693_J2KR.dcm"] {
        let mut obj = open(rel);
        obj.remove_element(tags::WINDOW_CENTER);
        obj.remove_element(tags::WINDOW_WIDTH);
        obj.remove_element(tags::VOILUT_SEQUENCE);
        let dec = decode(&obj).unwrap();
        assert!(dec.signed, "{rel} should be signed");
        let f = render(&dec, 0, &WindowOptions::default()).unwrap();
        let px = u8_data(&f);
        let (m, sd) = mean_std(px);
        let mid = px.iter().filter(|v| (48..=208).contains(*v)).count() as f64 / px.len() as f64;
        println!("{rel}: mean {m:.1} sd {sd:.1} mid-grey fraction {mid:.3}");
        assert!(sd > 30.0, "{rel}: std dev {sd}");
        assert!(m > 20.0 && m < 235.0, "{rel}: mean {m}");
        assert!(mid > 0.10, "{rel}: only {mid} of pixels in mid-grey");
        // presets and explicit windows work on the same data
        for w in [
            WindowSpec::Named(WindowName::Lung),
            WindowSpec::Explicit(ExplicitWindow {
                center: 40.0,
                width: 400.0,
            }),
        ] {
            let f = render(
                &dec,
                0,
                &WindowOptions {
                    window: w,
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(mean_std(u8_data(&f)).1 > 10.0);
        }
    }
}

/// (c) MONOCHROME1 CR: low stored values (bone, collimated edges) must
/// render bright and high stored values (direct exposure) dark, with the
/// file window and with the automatic window. (dcmj2pnm agreement for the
/// same file is checked in the golden test.)
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn monochrome1_renders_bone_bright() {
    for rel in ["cr_dx/RG3_UNCR.dcm", "cr_dx/RG3_J2KI.dcm"] {
        let obj = open(rel);
        let dec = decode(&obj).unwrap();
        let stored = dec.frame_stored(0).unwrap();
        let mut sorted = stored.clone();
        sorted.sort_unstable();
        let p05 = sorted[sorted.len() / 20];
        let p95 = sorted[sorted.len() * 19 / 20];
        for window in [
            WindowSpec::Named(WindowName::File),
            WindowSpec::Named(WindowName::Auto),
        ] {
            let opts = WindowOptions {
                window: window.clone(),
                correct_aspect: false,
                ..Default::default()
            };
            let f = render(&dec, 0, &opts).unwrap();
            let px = u8_data(&f);
            let mean_where = |pred: &dyn Fn(i64) -> bool| {
                let v: Vec<f64> = stored
                    .iter()
                    .zip(px)
                    .filter(|(s, _)| pred(**s))
                    .map(|(_, p)| *p as f64)
                    .collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            let dense = mean_where(&|s| s <= p05);
            let open_beam = mean_where(&|s| s >= p95);
            println!("{rel} {window:?}: low stored (bone) mean {dense:.1}, high stored (direct beam) mean {open_beam:.1}");
            assert!(
                dense > 200.0 && open_beam < 60.0,
                "{rel}: bone {dense} vs beam {open_beam}"
            );
        }
    }
}

fn reread(obj: &DefaultDicomObject) -> DefaultDicomObject {
    let mut buf = Vec::new();
    obj.write_all(&mut buf).expect("write");
    dicom_object::from_reader(&buf[128..]).expect("re-read")
}

/// (d) mask_instance on multi-frame cines: the rectangle is constant black in
/// every frame after storing and re-decoding; the result is Explicit VR LE,
/// RGB interleaved, and still flagged lossy.
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn mask_instance_multiframe_cine() {
    for (rel, expect_pi) in [
        ("us/examples_ybr_color.dcm", "RGB"),
        ("xa/jpeg_baseline_8bit.dcm", "MONOCHROME2"),
        ("us/US-PAL-8-10x-echo.dcm", "PALETTE COLOR"),
    ] {
        let mut obj = open(rel);
        let before = decode(&obj).unwrap();
        let rect = Rect {
            x: 10,
            y: 20,
            width: 60,
            height: 30,
        };
        mask_instance(&mut obj, &[rect]).unwrap();
        let back = reread(&obj);
        assert_eq!(
            back.meta().transfer_syntax().trim_end_matches('\0'),
            "1.2.840.10008.1.2.1"
        );
        let pi = back
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(pi, expect_pi, "{rel}");
        if rel.starts_with("us/examples") || rel.starts_with("xa/") {
            let lossy = back
                .element(tags::LOSSY_IMAGE_COMPRESSION)
                .unwrap()
                .to_str()
                .unwrap()
                .trim()
                .to_string();
            assert_eq!(lossy, "01", "{rel}");
        }
        let dec = decode(&back).unwrap();
        assert_eq!(dec.frame_count(), before.frame_count());
        let opts = WindowOptions {
            window: WindowSpec::Explicit(ExplicitWindow {
                center: 127.5,
                width: 256.0,
            }),
            correct_aspect: false,
            ..Default::default()
        };
        for f in 0..dec.frame_count() {
            let fr = render(&dec, f, &opts).unwrap();
            let px = u8_data(&fr);
            let ch = fr.channels as usize;
            let w = fr.width as usize;
            let first = px[(rect.y as usize * w + rect.x as usize) * ch];
            let mut inside_all_same = true;
            for y in rect.y..rect.y + rect.height {
                for x in rect.x..rect.x + rect.width {
                    for c in 0..ch {
                        inside_all_same &= px[(y as usize * w + x as usize) * ch + c] == first;
                    }
                }
            }
            assert!(inside_all_same, "{rel} frame {f}: rectangle not constant");
            let (_, sd) = mean_std(px);
            assert!(sd > 1.0, "{rel} frame {f}: rest of the image lost");
        }
        // an independent reader must accept the rewritten file too
        if let Some(dcmj2pnm) = tool("dcmj2pnm") {
            let tmp = tmpdir("mask");
            let path = tmp.join("masked.dcm");
            obj.write_to_file(&path).unwrap();
            let out = tmp.join("masked.png");
            let st = std::process::Command::new(dcmj2pnm)
                .arg("--write-png")
                .arg("+Wm")
                .arg(&path)
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                st.status.success() && out.is_file(),
                "{rel}: dcmj2pnm rejects the masked file"
            );
            let (_, _, ch, refpx) = read_png(&out);
            let w = dec.columns() as usize;
            let p = (rect.y as usize * w + rect.x as usize + 1) * ch as usize;
            assert!(
                refpx[p..p + ch as usize].iter().all(|v| *v == refpx[p]),
                "{rel}: dcmtk sees the rectangle"
            );
            let _ = std::fs::remove_dir_all(&tmp);
        }
        println!("{rel}: {} frames masked and re-read", dec.frame_count());
    }
}

/// (e) A non-square pixel file (PixelSpacing 0.5\1.0 = rows 0.5 mm apart,
/// columns 1.0 mm apart) exports with the true aspect ratio.
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn non_square_pixels_get_true_aspect() {
    let mut obj = open("mr/MR_small.dcm");
    obj.put(dicom_core::DataElement::new(
        tags::PIXEL_SPACING,
        dicom_core::VR::DS,
        dicom_core::PrimitiveValue::from("0.5\\1.0"),
    ));
    let dec = decode(&obj).unwrap();
    let f = render(&dec, 0, &WindowOptions::default()).unwrap();
    assert_eq!(
        (f.width, f.height),
        (128, 64),
        "pixels are twice as wide as tall"
    );
    let png = encode(&f, &ImageFormat::Png).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (128, 64));
    let off = render(
        &dec,
        0,
        &WindowOptions {
            correct_aspect: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((off.width, off.height), (64, 64));
    // the other orientation, via PixelAspectRatio (vertical\horizontal)
    obj.remove_element(tags::PIXEL_SPACING);
    obj.put(dicom_core::DataElement::new(
        tags::PIXEL_ASPECT_RATIO,
        dicom_core::VR::IS,
        dicom_core::PrimitiveValue::from("3\\2"),
    ));
    let f = render(&decode(&obj).unwrap(), 0, &WindowOptions::default()).unwrap();
    assert_eq!((f.width, f.height), (64, 96));
}

fn png_chunks(b: &[u8]) -> Vec<String> {
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    let mut i = 8;
    let mut out = Vec::new();
    while i + 8 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        out.push(String::from_utf8_lossy(&b[i + 4..i + 8]).to_string());
        i += 12 + len;
    }
    out
}

fn jpeg_markers(b: &[u8]) -> Vec<u8> {
    assert_eq!(&b[..2], &[0xff, 0xd8]);
    let mut i = 2;
    let mut out = Vec::new();
    while i + 4 <= b.len() && b[i] == 0xff {
        let m = b[i + 1];
        out.push(m);
        if m == 0xda {
            break;
        }
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        i += 2 + len;
    }
    out
}

fn tiff_tags(b: &[u8]) -> Vec<u16> {
    let le = &b[..2] == b"II";
    let r16 = |i: usize| {
        if le {
            u16::from_le_bytes([b[i], b[i + 1]])
        } else {
            u16::from_be_bytes([b[i], b[i + 1]])
        }
    };
    let r32 = |i: usize| {
        if le {
            u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
        } else {
            u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
        }
    };
    let mut out = Vec::new();
    let mut ifd = r32(4) as usize;
    while ifd != 0 && ifd + 2 <= b.len() {
        let n = r16(ifd) as usize;
        for k in 0..n {
            out.push(r16(ifd + 2 + 12 * k));
        }
        ifd = r32(ifd + 2 + 12 * n) as usize;
    }
    out
}

fn test_frame(channels: u8, sixteen: bool) -> Frame {
    let (w, h) = (37u32, 21u32);
    let n = (w * h * channels as u32) as usize;
    let data = if sixteen {
        FrameData::U16((0..n).map(|i| (i * 97 % 65536) as u16).collect())
    } else {
        FrameData::U8((0..n).map(|i| (i * 7 % 256) as u8).collect())
    };
    Frame {
        width: w,
        height: h,
        channels,
        data,
    }
}

/// (f) Encoded stills carry no metadata; 16-bit stays 16-bit in PNG/TIFF.
#[test]
fn encode_has_no_metadata() {
    // baseline TIFF tags only: size, bits, compression, photometric, strips,
    // samples, rows per strip, resolution, planar config, resolution unit,
    // predictor, extra samples, sample format
    let allowed: &[u16] = &[
        254, 256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 284, 296, 317, 338, 339,
    ];
    for ch in [1u8, 3] {
        for sixteen in [false, true] {
            let f = test_frame(ch, sixteen);
            let png = encode(&f, &ImageFormat::Png).unwrap();
            let chunks = png_chunks(&png);
            for c in &chunks {
                assert!(
                    ["IHDR", "IDAT", "IEND"].contains(&c.as_str()),
                    "PNG chunk {c}"
                );
            }
            let img = image::load_from_memory(&png).unwrap();
            assert_eq!(
                img.color().bytes_per_pixel() as usize,
                ch as usize * if sixteen { 2 } else { 1 }
            );
            let round_trip: Vec<u8> = match (&f.data, sixteen) {
                (FrameData::U8(v), false) => v.clone(),
                _ => Vec::new(),
            };
            if !sixteen {
                let raw = if ch == 1 {
                    img.to_luma8().into_raw()
                } else {
                    img.to_rgb8().into_raw()
                };
                assert_eq!(raw, round_trip, "PNG is lossless");
            }

            let jpg = encode(&f, &ImageFormat::Jpeg { quality: 90 }).unwrap();
            let markers = jpeg_markers(&jpg);
            for m in &markers {
                assert!(
                    !(0xe1..=0xef).contains(m),
                    "JPEG APP{} segment present",
                    m - 0xe0
                );
                assert_ne!(*m, 0xfe, "JPEG COM segment present");
            }
            assert!(image::load_from_memory(&jpg).is_ok());

            let tif = encode(&f, &ImageFormat::Tiff).unwrap();
            for t in tiff_tags(&tif) {
                assert!(
                    allowed.contains(&t),
                    "TIFF tag {t} is not a required/baseline tag"
                );
            }
            let img = image::load_from_memory(&tif).unwrap();
            assert_eq!(
                img.color().bytes_per_pixel() as usize,
                ch as usize * if sixteen { 2 } else { 1 }
            );
        }
    }
    assert!(encode(&test_frame(1, false), &ImageFormat::Jpeg { quality: 0 }).is_err());
}

/// Writes a few renderings to $PIXELS_VIEW_DIR for eyeballing (ignored by default).
#[test]
#[ignore = "writes PNGs for manual inspection"]
fn dump_for_viewing() {
    let out = PathBuf::from(
        std::env::var("PIXELS_VIEW_DIR").unwrap_or_else(|_| "/tmp/pixels_view".into()),
    );
    std::fs::create_dir_all(&out).unwrap();
    for rel in [
        "cr_dx/RG3_UNCR.dcm",
        "us/gdcm-US-ALOKA-16.dcm",
        "sc/SC_jpeg_no_color_transform.dcm",
        "enhanced/philips_mprage.dcm",
    ] {
        let obj = open(rel);
        let dec = decode(&obj).unwrap();
        let mut f = render_default(&obj, dec.frame_count() / 2);
        if f.width > 600 {
            f = super::aspect::resize_bilinear(&f, f.width / 4, f.height / 4);
        }
        std::fs::write(
            out.join(rel.replace('/', "_") + ".png"),
            encode(&f, &ImageFormat::Png).unwrap(),
        )
        .unwrap();
    }
}

// ------------------------------------------------ synthetic (no corpus)

use dicom_core::value::{PrimitiveValue, C};
use dicom_core::{DataElement, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

fn us(tag: dicom_core::Tag, v: u16) -> dicom_object::mem::InMemElement {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}
fn cs(tag: dicom_core::Tag, v: &str) -> dicom_object::mem::InMemElement {
    DataElement::new(tag, VR::CS, PrimitiveValue::from(v))
}
fn ds(tag: dicom_core::Tag, v: &[&str]) -> dicom_object::mem::InMemElement {
    DataElement::new(
        tag,
        VR::DS,
        PrimitiveValue::Strs(v.iter().map(|s| s.to_string()).collect()),
    )
}

#[allow(clippy::too_many_arguments)]
fn synth(
    ts: &str,
    rows: u16,
    cols: u16,
    ba: u16,
    bs: u16,
    signed: bool,
    pi: &str,
    spp: u16,
    pixel: PrimitiveValue,
    extra: Vec<dicom_object::mem::InMemElement>,
) -> DefaultDicomObject {
    let mut o = InMemDicomObject::new_empty();
    o.put(us(tags::ROWS, rows));
    o.put(us(tags::COLUMNS, cols));
    o.put(us(tags::BITS_ALLOCATED, ba));
    o.put(us(tags::BITS_STORED, bs));
    o.put(us(tags::HIGH_BIT, bs.saturating_sub(1)));
    o.put(us(tags::PIXEL_REPRESENTATION, signed as u16));
    o.put(us(tags::SAMPLES_PER_PIXEL, spp));
    o.put(cs(tags::PHOTOMETRIC_INTERPRETATION, pi));
    let vr = if matches!(pixel, PrimitiveValue::U8(_)) {
        VR::OB
    } else {
        VR::OW
    };
    o.put(DataElement::new(tags::PIXEL_DATA, vr, pixel));
    for e in extra {
        o.put(e);
    }
    o.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(ts)
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid("1.2.3.4"),
    )
    .unwrap()
}

const LE: &str = "1.2.840.10008.1.2.1";

fn ramp16(n: usize, signed: bool) -> PrimitiveValue {
    if signed {
        PrimitiveValue::I16((0..n).map(|i| i as i16 - 100).collect())
    } else {
        PrimitiveValue::U16((0..n).map(|i| i as u16).collect())
    }
}

#[test]
fn voi_functions_follow_the_standard() {
    use super::decode::VoiFunction::*;
    use super::window::voi_window;
    // linear: c=40 w=400 -> x <= -160 is 0, x > 239 is 1
    assert_eq!(voi_window(-160.0, 40.0, 400.0, Linear), 0.0);
    assert_eq!(voi_window(240.0, 40.0, 400.0, Linear), 1.0);
    assert!((voi_window(39.5, 40.0, 400.0, Linear) - 0.5).abs() < 1e-9);
    assert!((voi_window(40.0, 40.0, 400.0, LinearExact) - 0.5).abs() < 1e-9);
    assert!((voi_window(40.0, 40.0, 400.0, Sigmoid) - 0.5).abs() < 1e-9);
    assert!(voi_window(1000.0, 40.0, 400.0, Sigmoid) > 0.99);
}

#[test]
fn signed_ct_window_and_inverse_presentation() {
    let n = 16 * 16;
    let extra = vec![
        ds(tags::RESCALE_INTERCEPT, &["-1024"]),
        ds(tags::RESCALE_SLOPE, &["1"]),
    ];
    let obj = synth(
        LE,
        16,
        16,
        16,
        12,
        true,
        "MONOCHROME2",
        1,
        ramp16(n, true),
        extra.clone(),
    );
    let dec = decode(&obj).unwrap();
    // stored -100..155 -> HU -1124..-869; lung window puts them low but not black
    let f = render(
        &dec,
        0,
        &WindowOptions {
            window: WindowSpec::Named(WindowName::Lung),
            ..Default::default()
        },
    )
    .unwrap();
    let px = u8_data(&f);
    assert!(px[0] < px[n - 1]);
    // default (no window in file) -> auto -> full spread
    let f = render(&dec, 0, &WindowOptions::default()).unwrap();
    let px = u8_data(&f).to_vec();
    assert!(
        px[2] <= 2 && px[n - 3] >= 253,
        "auto window spreads the range"
    );
    // Presentation LUT Shape INVERSE flips it
    let mut e2 = extra.clone();
    e2.push(cs(tags::PRESENTATION_LUT_SHAPE, "INVERSE"));
    let inv = synth(
        LE,
        16,
        16,
        16,
        12,
        true,
        "MONOCHROME2",
        1,
        ramp16(n, true),
        e2,
    );
    let g = render(&decode(&inv).unwrap(), 0, &WindowOptions::default()).unwrap();
    let q = u8_data(&g);
    assert!(px
        .iter()
        .zip(q)
        .all(|(a, b)| (*a as i32 + *b as i32 - 255).abs() <= 1));
    // 16-bit output: lossless linear map of the representable range, no VOI
    let f16 = render(
        &dec,
        0,
        &WindowOptions {
            bits: 16,
            ..Default::default()
        },
    )
    .unwrap();
    let FrameData::U16(v) = &f16.data else {
        panic!()
    };
    // stored -100 in a 12-bit signed range [-2048, 2047]
    let expect = ((-100.0f64 + 2048.0) / 4095.0 * 65535.0).round() as u16;
    assert_eq!(v[0], expect);
    let mut d = v.clone();
    d.dedup();
    assert_eq!(d.len(), n, "distinct stored values stay distinct");
}

#[test]
fn file_window_per_frame_functional_groups() {
    // 2 frames; frame 1 has its own window and rescale in the per-frame groups
    let n = 4 * 4;
    let pv = PrimitiveValue::U16((0..2 * n).map(|i| (i % n) as u16 * 10).collect());
    let item = |c: &str, w: &str, slope: &str| {
        let voi = InMemDicomObject::from_element_iter([
            ds(tags::WINDOW_CENTER, &[c]),
            ds(tags::WINDOW_WIDTH, &[w]),
        ]);
        let pvt = InMemDicomObject::from_element_iter([
            ds(tags::RESCALE_SLOPE, &[slope]),
            ds(tags::RESCALE_INTERCEPT, &["0"]),
        ]);
        InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::FRAME_VOILUT_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![voi]),
            ),
            DataElement::new(
                tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![pvt]),
            ),
        ])
    };
    let per = vec![item("75", "150", "1"), item("1000", "10", "1")];
    let extra = vec![
        DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from("2")),
        DataElement::new(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(per),
        ),
    ];
    let obj = synth(LE, 4, 4, 16, 12, false, "MONOCHROME2", 1, pv, extra);
    let dec = decode(&obj).unwrap();
    assert_eq!(dec.frame_count(), 2);
    let a = render(&dec, 0, &WindowOptions::default()).unwrap();
    let b = render(&dec, 1, &WindowOptions::default()).unwrap();
    assert!(mean_std(u8_data(&a)).1 > 50.0);
    assert!(
        u8_data(&b).iter().all(|v| *v == 0),
        "frame 1 window 1000/10 puts 0..150 below the window"
    );
    assert!(matches!(
        render(&dec, 2, &WindowOptions::default()),
        Err(PixelError::FrameOutOfRange { .. })
    ));
}

#[test]
fn planar_configuration_and_ybr() {
    // 2x1 RGB, planar configuration 1: RR GG BB
    let pc1 = synth(
        LE,
        1,
        2,
        8,
        8,
        false,
        "RGB",
        3,
        PrimitiveValue::U8(C::from_vec(vec![10, 20, 30, 40, 50, 60])),
        vec![us(tags::PLANAR_CONFIGURATION, 1)],
    );
    let f = render(&decode(&pc1).unwrap(), 0, &WindowOptions::default()).unwrap();
    assert_eq!(u8_data(&f), &[10, 30, 50, 20, 40, 60]);
    // YBR_FULL grey (Y=100, Cb=Cr=128) -> RGB 100,100,100
    let ybr = synth(
        LE,
        1,
        2,
        8,
        8,
        false,
        "YBR_FULL",
        3,
        PrimitiveValue::U8(C::from_vec(vec![100, 128, 128, 200, 128, 128])),
        vec![],
    );
    let f = render(&decode(&ybr).unwrap(), 0, &WindowOptions::default()).unwrap();
    assert_eq!(u8_data(&f), &[100, 100, 100, 200, 200, 200]);
    // native YBR_FULL_422: Y1 Y2 Cb Cr
    let y422 = synth(
        LE,
        1,
        2,
        8,
        8,
        false,
        "YBR_FULL_422",
        3,
        PrimitiveValue::U8(C::from_vec(vec![50, 60, 128, 128])),
        vec![],
    );
    let f = render(&decode(&y422).unwrap(), 0, &WindowOptions::default()).unwrap();
    assert_eq!(u8_data(&f), &[50, 50, 50, 60, 60, 60]);
}

#[test]
fn palette_color_normal_and_segmented() {
    // 8-bit palette with 4 entries starting at 0, 16-bit entries
    let lut_desc =
        |t| DataElement::new(t, VR::US, PrimitiveValue::U16(C::from_vec(vec![4, 0, 16])));
    let data = |t, v: Vec<u16>| DataElement::new(t, VR::OW, PrimitiveValue::U16(C::from_vec(v)));
    let extra = vec![
        lut_desc(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR),
        lut_desc(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR),
        lut_desc(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR),
        data(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            vec![0, 65535, 0, 0],
        ),
        data(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            vec![0, 0, 65535, 0],
        ),
        // blue as a segmented table: discrete [0], linear to 65535 over 3 entries
        data(
            tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            vec![0, 1, 0, 1, 3, 65535],
        ),
    ];
    let obj = synth(
        LE,
        1,
        4,
        8,
        8,
        false,
        "PALETTE COLOR",
        1,
        PrimitiveValue::U8(C::from_vec(vec![0, 1, 2, 3])),
        extra,
    );
    let f = render(&decode(&obj).unwrap(), 0, &WindowOptions::default()).unwrap();
    assert_eq!(f.channels, 3);
    assert_eq!(u8_data(&f), &[0, 0, 0, 255, 0, 85, 0, 255, 170, 0, 0, 255]);
    // indirect segment replays earlier segments
    let seg = super::color::expand_segmented(&[0, 2, 5, 6, 2, 1, 0, 0], 10);
    assert_eq!(seg, vec![5, 6, 5, 6]);
}

#[test]
fn inconsistent_inputs_return_errors() {
    // pixel data too short
    let short = synth(
        LE,
        10,
        10,
        16,
        16,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U16(C::from_vec(vec![0; 50])),
        vec![],
    );
    assert!(matches!(decode(&short), Err(PixelError::Truncated { .. })));
    // frames claim more than present
    let mf = synth(
        LE,
        2,
        2,
        8,
        8,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U8(C::from_vec(vec![0; 8])),
        vec![DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from("3"),
        )],
    );
    let e = decode(&mf).err().unwrap();
    assert!(
        e.to_string()
            .contains("Pixel Data shorter than Rows x Columns x frames needs"),
        "{e}"
    );
    // odd bit depth / samples / photometric
    let b12 = synth(
        LE,
        2,
        2,
        12,
        12,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U16(C::from_vec(vec![0; 4])),
        vec![],
    );
    assert!(matches!(
        decode(&b12),
        Err(PixelError::InvalidAttribute { .. })
    ));
    let cmyk = synth(
        LE,
        2,
        2,
        8,
        8,
        false,
        "CMYK",
        1,
        PrimitiveValue::U8(C::from_vec(vec![0; 4])),
        vec![],
    );
    assert!(matches!(
        decode(&cmyk),
        Err(PixelError::UnsupportedPhotometric(_))
    ));
    let zero = synth(
        LE,
        0,
        2,
        8,
        8,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U8(C::from_vec(vec![0; 4])),
        vec![],
    );
    assert!(decode(&zero).is_err());
    // palette without tables
    let pal = synth(
        LE,
        2,
        2,
        8,
        8,
        false,
        "PALETTE COLOR",
        1,
        PrimitiveValue::U8(C::from_vec(vec![0; 4])),
        vec![],
    );
    assert!(matches!(decode(&pal), Err(PixelError::MissingAttribute(_))));
    // bad options
    let ok = synth(
        LE,
        2,
        2,
        8,
        8,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U8(C::from_vec(vec![0, 1, 2, 3])),
        vec![],
    );
    let dec = decode(&ok).unwrap();
    assert!(render(
        &dec,
        0,
        &WindowOptions {
            bits: 12,
            ..Default::default()
        }
    )
    .is_err());
    let bad = WindowOptions {
        window: WindowSpec::Explicit(ExplicitWindow {
            center: 0.0,
            width: 0.0,
        }),
        ..Default::default()
    };
    assert!(render(&dec, 0, &bad).is_err());
}

#[test]
fn big_endian_and_32_bit_native() {
    // 16-bit explicit BE: the parser already holds native u16 words
    let be = synth(
        "1.2.840.10008.1.2.2",
        1,
        3,
        16,
        16,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U16(C::from_vec(vec![0, 1000, 2000])),
        vec![],
    );
    let d = decode(&be).unwrap();
    assert_eq!(d.frame_stored(0).unwrap(), vec![0, 1000, 2000]);
    // 32-bit BE stored as OW words: high word first
    let be32 = synth(
        "1.2.840.10008.1.2.2",
        1,
        1,
        32,
        32,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U16(C::from_vec(vec![0x0001, 0x0002])),
        vec![],
    );
    assert_eq!(
        decode(&be32).unwrap().frame_stored(0).unwrap(),
        vec![0x0001_0002]
    );
    let le32 = synth(
        LE,
        1,
        1,
        32,
        32,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U16(C::from_vec(vec![0x0001, 0x0002])),
        vec![],
    );
    assert_eq!(
        decode(&le32).unwrap().frame_stored(0).unwrap(),
        vec![0x0002_0001]
    );
}

#[test]
fn mask_instance_synthetic_keeps_geometry_and_flags() {
    let n = 8 * 8;
    let mut obj = synth(
        LE,
        8,
        8,
        16,
        12,
        true,
        "MONOCHROME1",
        1,
        ramp16(n, true),
        vec![cs(tags::LOSSY_IMAGE_COMPRESSION, "01")],
    );
    mask_instance(
        &mut obj,
        &[Rect {
            x: 6,
            y: 6,
            width: 100,
            height: 100,
        }],
    )
    .unwrap();
    let back = reread(&obj);
    let lossy = back
        .element(tags::LOSSY_IMAGE_COMPRESSION)
        .unwrap()
        .to_str()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(lossy, "01", "an earlier lossy history is kept");
    let d = decode(&back).unwrap();
    let s = d.frame_stored(0).unwrap();
    // MONOCHROME1: black is the largest stored value (12-bit signed max 2047)
    assert_eq!(s[7 * 8 + 7], 2047);
    assert_eq!(s[0], -100);
    let f = render(
        &d,
        0,
        &WindowOptions {
            window: WindowSpec::Named(WindowName::MinMax),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(u8_data(&f)[63], 0, "blanked area renders black");
}

#[test]
fn mask_frame_and_complement() {
    let mut f = test_frame(3, false);
    mask_frame(
        &mut f,
        &[Rect {
            x: 30,
            y: 15,
            width: 50,
            height: 50,
        }],
    );
    let px = u8_data(&f);
    assert_eq!(&px[((20 * 37) + 36) * 3..((20 * 37) + 37) * 3], &[0, 0, 0]);
    assert_ne!(&px[0..3], &[0, 0, 0][..]);
    // complement covers exactly the pixels outside `keep`
    let keep = [
        Rect {
            x: 2,
            y: 3,
            width: 5,
            height: 4,
        },
        Rect {
            x: 5,
            y: 5,
            width: 10,
            height: 10,
        },
        Rect {
            x: 18,
            y: 0,
            width: 100,
            height: 1,
        },
    ];
    let (w, h) = (20u32, 12u32);
    let comp = complement(w, h, &keep);
    let inside = |rs: &[Rect], x: u32, y: u32| {
        rs.iter()
            .filter(|r| x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height)
            .count()
    };
    for y in 0..h {
        for x in 0..w {
            let k = inside(&keep, x, y) > 0;
            let c = inside(&comp, x, y);
            assert_eq!(c, if k { 0 } else { 1 }, "pixel {x},{y}");
        }
    }
    assert_eq!(
        complement(4, 4, &[]),
        vec![Rect {
            x: 0,
            y: 0,
            width: 4,
            height: 4
        }]
    );
    assert!(complement(
        4,
        4,
        &[Rect {
            x: 0,
            y: 0,
            width: 9,
            height: 9
        }]
    )
    .is_empty());
}

#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn ultrasound_regions_from_corpus() {
    let obj = open("us/examples_ybr_color.dcm");
    let regions = ultrasound_regions(&obj);
    assert_eq!(regions.len(), 1);
    let r = regions[0];
    // RegionLocationMinX0/MinY0/MaxX1/MaxY1 = 84/31/595/414 (inclusive); the
    // frames of this file were downsized, so the region exceeds them
    assert_eq!(
        r,
        Rect {
            x: 84,
            y: 31,
            width: 512,
            height: 384
        }
    );
    let outside = complement(320, 240, &regions);
    assert_eq!(
        outside,
        vec![
            Rect {
                x: 0,
                y: 0,
                width: 320,
                height: 31
            },
            Rect {
                x: 0,
                y: 31,
                width: 84,
                height: 209
            }
        ]
    );
}

#[test]
fn window_options_yaml_shapes_and_schema() {
    let p = |s: &str| serde_saphyr::from_str::<WindowOptions>(s);
    assert_eq!(p("{}").unwrap(), WindowOptions::default());
    assert_eq!(
        p("window: file").unwrap().window,
        WindowSpec::Named(WindowName::File)
    );
    assert_eq!(
        p("window: lung").unwrap().window,
        WindowSpec::Named(WindowName::Lung)
    );
    assert_eq!(
        p("window: soft_tissue").unwrap().window,
        WindowSpec::Named(WindowName::SoftTissue)
    );
    assert_eq!(
        p("window: auto\nbits: 16\ncorrect_aspect: false")
            .unwrap()
            .bits,
        16
    );
    assert_eq!(
        p("window: {center: 40, width: 400}").unwrap().window,
        WindowSpec::Explicit(ExplicitWindow {
            center: 40.0,
            width: 400.0
        })
    );
    assert_eq!(p("window_index: 2").unwrap().window_index, 2);
    assert!(p("window: nonsense").is_err());
    assert!(p("window: {center: 40, width: 400, extra: 1}").is_err());
    assert!(p("colour: red").is_err(), "unknown fields are rejected");
    let schema = serde_json::to_string(&schemars::schema_for!(WindowOptions)).unwrap();
    assert!(schema.contains("correct_aspect") && schema.contains("Output bit depth"));
}

/// JPEG-LS: without the `charls` feature a clear per-file error; with it,
/// the lossless JPEG-LS copy of MR_small renders exactly like the original.
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn jpeg_ls_feature_gate() {
    let ls = open("mr/MR_small_jpeg_ls_lossless.dcm");
    let res = decode(&ls);
    if cfg!(feature = "charls") {
        let native = open("mr/MR_small.dcm");
        let a = render(
            &res.expect("JPEG-LS decodes with charls"),
            0,
            &WindowOptions::default(),
        )
        .unwrap();
        let b = render(&decode(&native).unwrap(), 0, &WindowOptions::default()).unwrap();
        assert_eq!(a, b);
    } else {
        let e = res.expect_err("JPEG-LS must fail without charls");
        assert!(e.to_string().contains("needs the `charls` feature"), "{e}");
    }
}

#[test]
fn lut_sequences_and_monochrome1_inverse() {
    let lut_item = |first: u16, bits: u16, data: Vec<u16>| {
        InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::LUT_DESCRIPTOR,
                VR::US,
                PrimitiveValue::U16(C::from_vec(vec![data.len() as u16, first, bits])),
            ),
            DataElement::new(
                tags::LUT_DATA,
                VR::OW,
                PrimitiveValue::U16(C::from_vec(data)),
            ),
        ])
    };
    let px = PrimitiveValue::U8(C::from_vec(vec![0, 1, 2, 3]));
    // Modality LUT maps 0..3 -> 100,200,300,400; VOI LUT (8-bit) maps 100.. -> ramp
    let voi: Vec<u16> = (0..301).map(|i| (i * 255 / 300) as u16).collect();
    let extra = vec![
        DataElement::new(
            tags::MODALITY_LUT_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![lut_item(
                0,
                16,
                vec![100, 200, 300, 400],
            )]),
        ),
        DataElement::new(
            tags::VOILUT_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![lut_item(100, 8, voi)]),
        ),
    ];
    let obj = synth(
        LE,
        1,
        4,
        8,
        8,
        false,
        "MONOCHROME2",
        1,
        px.clone(),
        extra.clone(),
    );
    let f = render(&decode(&obj).unwrap(), 0, &WindowOptions::default()).unwrap();
    assert_eq!(u8_data(&f), &[0, 85, 170, 255]);
    // MONOCHROME1 inverts; an additional INVERSE shape does not invert twice
    let m1 = synth(
        LE,
        1,
        4,
        8,
        8,
        false,
        "MONOCHROME1",
        1,
        px.clone(),
        extra.clone(),
    );
    let g = render(&decode(&m1).unwrap(), 0, &WindowOptions::default()).unwrap();
    assert_eq!(u8_data(&g), &[255, 170, 85, 0]);
    let mut e2 = extra;
    e2.push(cs(tags::PRESENTATION_LUT_SHAPE, "INVERSE"));
    let m1i = synth(LE, 1, 4, 8, 8, false, "MONOCHROME1", 1, px, e2);
    let h = render(&decode(&m1i).unwrap(), 0, &WindowOptions::default()).unwrap();
    assert_eq!(u8_data(&h), &[255, 170, 85, 0]);
}

/// Corrupted headers and codestreams give errors, never panics.
#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn corrupted_inputs_do_not_panic() {
    use dicom_core::value::PixelFragmentSequence;
    type Mutation = Box<dyn Fn(&mut DefaultDicomObject)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.put(us(tags::ROWS, 65535));
            }),
        ),
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.put(DataElement::new(
                    tags::NUMBER_OF_FRAMES,
                    VR::IS,
                    PrimitiveValue::from("999999"),
                ));
            }),
        ),
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.put(us(tags::BITS_STORED, 40));
                o.put(us(tags::HIGH_BIT, 99));
            }),
        ),
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.put(us(tags::SAMPLES_PER_PIXEL, 3));
                o.put(cs(tags::PHOTOMETRIC_INTERPRETATION, "RGB"));
            }),
        ),
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.put(cs(tags::PHOTOMETRIC_INTERPRETATION, "PALETTE COLOR"));
            }),
        ),
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.put(DataElement::new(
                    tags::RESCALE_SLOPE,
                    VR::DS,
                    PrimitiveValue::from("nan"),
                ));
            }),
        ),
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.put(DataElement::new(
                    tags::WINDOW_WIDTH,
                    VR::DS,
                    PrimitiveValue::from("-5"),
                ));
            }),
        ),
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.put(DataElement::new(
                    tags::PIXEL_SPACING,
                    VR::DS,
                    PrimitiveValue::from("0\\1e300"),
                ));
            }),
        ),
        (
            "ct/CT_small.dcm",
            Box::new(|o| {
                o.remove_element(tags::BITS_ALLOCATED);
            }),
        ),
        (
            "sc/SC_ybr_full_422_uncompressed.dcm",
            Box::new(|o| {
                o.put(us(tags::COLUMNS, 99));
            }),
        ),
        (
            "us/color-pl.dcm",
            Box::new(|o| {
                o.put(us(tags::ROWS, 200));
            }),
        ),
        (
            "mr/MR_small_RLE.dcm",
            Box::new(|o| {
                o.put(us(tags::BITS_ALLOCATED, 8));
            }),
        ),
        (
            "mr/MR_small_RLE.dcm",
            Box::new(|o| {
                o.put(DataElement::new(
                    tags::NUMBER_OF_FRAMES,
                    VR::IS,
                    PrimitiveValue::from("3"),
                ));
            }),
        ),
    ];
    // truncated / garbled codestreams for each codec
    let mut codec_cases: Vec<&str> = vec![
        "xa/jpeg_baseline_8bit.dcm",
        "sc/SC_jpeg_no_color_transform.dcm",
        "ct/693_J2KR.dcm",
        "mr/MR_small_RLE.dcm",
        "sc/SC_rgb_jpeg_gdcm.dcm",
        "us/examples_ybr_color.dcm",
    ];
    let mut outcomes = Vec::new();
    for (rel, mutate) in &cases {
        let mut obj = open(rel);
        mutate(&mut obj);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decode(&obj).and_then(|d| render(&d, 0, &WindowOptions::default()).map(|_| ()))
        }));
        assert!(r.is_ok(), "{rel}: panicked");
        outcomes.push(format!(
            "{rel}: {:?}",
            r.unwrap().err().map(|e| e.to_string())
        ));
    }
    for rel in codec_cases.drain(..) {
        for mode in 0..2 {
            let mut obj = open(rel);
            let Some(dicom_core::value::Value::PixelSequence(seq)) =
                obj.get(tags::PIXEL_DATA).map(|e| e.value().clone())
            else {
                panic!()
            };
            let frags: Vec<Vec<u8>> = seq
                .fragments()
                .iter()
                .map(|f| {
                    let mut f = f.clone();
                    if mode == 0 {
                        f.truncate(f.len() / 3);
                    } else {
                        let n = f.len();
                        for b in f.iter_mut().skip(n / 4).step_by(7) {
                            *b ^= 0x5a;
                        }
                    }
                    f
                })
                .collect();
            let v = dicom_core::value::Value::PixelSequence(PixelFragmentSequence::new(
                seq.offset_table().to_vec(),
                frags,
            ));
            obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, v));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decode(&obj).and_then(|d| render(&d, 0, &WindowOptions::default()).map(|_| ()))
            }));
            assert!(r.is_ok(), "{rel} mode {mode}: panicked");
            outcomes.push(format!(
                "{rel} corrupted({mode}): {:?}",
                r.unwrap().err().map(|e| e.to_string())
            ));
        }
    }
    for o in outcomes {
        println!("{o}");
    }
}

#[test]
fn clip_window_keeps_brightness_changes_between_frames() {
    // Three 4x4 frames at levels 10, 50 and 90 with a texture of 0..3.
    let px: Vec<u8> = (0..3u8)
        .flat_map(|f| (0..16u8).map(move |i| 10 + 40 * f + i % 4))
        .collect();
    let cine = |extra: Vec<dicom_object::mem::InMemElement>| {
        let mut e = vec![DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from("3"),
        )];
        e.extend(extra);
        synth(
            LE,
            4,
            4,
            8,
            8,
            false,
            "MONOCHROME2",
            1,
            PrimitiveValue::U8(px.clone().into()),
            e,
        )
    };
    let dec = decode(&cine(vec![])).unwrap();
    let mean = |opts: &WindowOptions, f| mean_std(u8_data(&render(&dec, f, opts).unwrap())).0;

    // Per frame, the automatic window stretches every frame alike.
    let per_frame: Vec<f64> = (0..3).map(|f| mean(&opts_default(), f)).collect();
    assert!((per_frame[0] - per_frame[2]).abs() < 1.0, "{per_frame:?}");

    // One window for the clip (min 10 .. max 93) keeps the levels apart and in order.
    let w = clip_window(&dec, &opts_default())
        .unwrap()
        .expect("a clip window");
    let opts = WindowOptions {
        window: w,
        ..opts_default()
    };
    let clip: Vec<f64> = (0..3).map(|f| mean(&opts, f)).collect();
    let want = |level: f64| (level + 1.5 - 10.0) * 255.0 / 83.0;
    for (f, level) in [10.0, 50.0, 90.0].into_iter().enumerate() {
        assert!((clip[f] - want(level)).abs() < 4.0, "{clip:?}");
    }
    assert_eq!(render(&dec, 2, &opts).unwrap().data.len(), 16);

    // A window of the file's own, a preset, 16 bits or a single frame: no clip window.
    let windowed = decode(&cine(vec![
        ds(tags::WINDOW_CENTER, &["50"]),
        ds(tags::WINDOW_WIDTH, &["100"]),
    ]))
    .unwrap();
    assert!(clip_window(&windowed, &opts_default()).unwrap().is_none());
    let lung = WindowOptions {
        window: WindowSpec::Named(WindowName::Lung),
        ..opts_default()
    };
    assert!(clip_window(&dec, &lung).unwrap().is_none());
    let sixteen = WindowOptions {
        bits: 16,
        ..opts_default()
    };
    assert!(clip_window(&dec, &sixteen).unwrap().is_none());
    let single = synth(
        LE,
        4,
        4,
        8,
        8,
        false,
        "MONOCHROME2",
        1,
        PrimitiveValue::U8(px[..16].to_vec().into()),
        vec![],
    );
    assert!(clip_window(&decode(&single).unwrap(), &opts_default())
        .unwrap()
        .is_none());
}

/// An RLE frame whose segment cannot fill Rows x Columns (PackBits yields at most 64 bytes per
/// input byte) is refused before the frame is allocated; a 1-byte-per-128-pixels stream that
/// can fill it still decodes.
#[test]
fn rle_segment_too_short_for_the_claimed_size_is_refused() {
    use dicom_core::value::{PixelFragmentSequence, Value};
    let rle = |rows: u16, cols: u16, runs: usize| {
        let mut frag = vec![0u8; 64];
        frag[0] = 1; // one segment
        frag[4] = 64; // starting after the header
        for _ in 0..runs {
            frag.extend_from_slice(&[0x81, 9]); // 128 copies of 9
        }
        let mut o = synth(
            "1.2.840.10008.1.2.5",
            rows,
            cols,
            8,
            8,
            false,
            "MONOCHROME2",
            1,
            PrimitiveValue::U8(vec![0u8; 2].into()),
            vec![],
        );
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::PixelSequence(PixelFragmentSequence::new(vec![], vec![frag])),
        ));
        o
    };
    // 256 x 256 = 65536 pixels = 512 runs of 128.
    let ok = decode(&rle(256, 256, 512)).unwrap();
    assert_eq!(ok.frame_count(), 1);
    let e = decode(&rle(40000, 40000, 4)).unwrap_err();
    assert!(
        e.to_string()
            .contains("RLE: segment shorter than Rows x Columns"),
        "{e}"
    );
}

#[test]
fn the_decoded_size_ceiling_is_checked_without_overflow() {
    let o = synth(
        LE,
        65535,
        65535,
        32,
        32,
        false,
        "RGB",
        3,
        PrimitiveValue::U8(vec![0u8; 2].into()),
        vec![DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from("1000000"),
        )],
    );
    let e = decode_with_limit(&o, u64::MAX).unwrap_err();
    assert!(matches!(e, PixelError::Truncated { .. }), "{e}");
    let e = decode_with_limit(&o, 1 << 20).unwrap_err();
    assert!(e.to_string().contains("over the limit of 1 MiB"), "{e}");
}

/// A baseline JPEG of 16 x 8 pixels, one component, made here with the `image` crate.
fn tiny_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x * 16 + y) as u8]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

/// The codestream header is read as the codecs will read it: JPEG SOF and JPEG 2000 SIZ.
#[test]
fn codestream_sizes_are_read_from_jpeg_and_jpeg_2000_headers() {
    assert_eq!(decode::codestream_size(&tiny_jpeg(16, 8)), Some((16, 8, 1)));
    // SOC, SIZ: Lsiz 41, Rsiz 0, Xsiz 700, Ysiz 500, XOsiz 100, YOsiz 0, tiles, Csiz 3.
    let mut j2k = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
    for v in [700u32, 500, 100, 0, 700, 500, 0, 0] {
        j2k.extend_from_slice(&v.to_be_bytes());
    }
    j2k.extend_from_slice(&3u16.to_be_bytes());
    assert_eq!(decode::codestream_size(&j2k), Some((600, 500, 3)));
    assert_eq!(decode::codestream_size(b"not a codestream"), None);
    assert_eq!(decode::codestream_size(&[0xFF, 0xD8, 0xFF]), None);
}

/// Found by the `pixels_window` fuzz target: a JPEG frame larger than Rows x Columns made
/// dicom-rs's JPEG adapter overrun its buffer and panic; and a small file whose JPEG declares
/// 65535 x 65535 would make the decoder allocate gigabytes past the decode ceiling. Both are
/// refused from the codestream header, before any decoder runs.
#[test]
fn a_jpeg_frame_whose_header_disagrees_with_rows_and_columns_is_refused() {
    use dicom_core::value::{PixelFragmentSequence, Value};
    let with_jpeg = |rows: u16, cols: u16, jpeg: Vec<u8>| {
        let mut o = synth(
            "1.2.840.10008.1.2.4.50",
            rows,
            cols,
            8,
            8,
            false,
            "MONOCHROME2",
            1,
            PrimitiveValue::U8(vec![0u8; 2].into()),
            vec![],
        );
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::PixelSequence(PixelFragmentSequence::new(vec![], vec![jpeg])),
        ));
        o
    };
    let ok = decode(&with_jpeg(8, 16, tiny_jpeg(16, 8))).unwrap();
    assert_eq!((ok.columns(), ok.rows()), (16, 8));
    let e = decode(&with_jpeg(8, 8, tiny_jpeg(16, 8))).unwrap_err();
    assert!(
        e.to_string()
            .contains("declares 16 x 8 pixels with 1 components, but Columns x Rows is 8 x 8"),
        "{e}"
    );
    let mut bomb = tiny_jpeg(16, 8);
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bomb[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let e = decode(&with_jpeg(8, 16, bomb)).unwrap_err();
    assert!(e.to_string().contains("declares 65535 x 65535"), "{e}");
}
