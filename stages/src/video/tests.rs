//! End-to-end tests. Those that need `ffprobe`/`ffmpeg` are skipped (with a message) when
//! the programs are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn have(prog: &str) -> bool {
    crate::testing::required(prog, have_inner(prog).then_some(())).is_some()
}

fn have_inner(prog: &str) -> bool {
    Command::new(prog)
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("video_scratch_test_{}_{name}", std::process::id()))
}

/// Gray frame whose mean brightness identifies its index: base = 20 + 7*i, plus a small texture.
fn gray_frame(w: u32, h: u32, i: usize) -> Frame {
    let base = 20 + 7 * i as u32;
    let mut d = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            d.push((base + (x + y) % 8) as u8);
        }
    }
    Frame {
        width: w,
        height: h,
        channels: 1,
        data: FrameData::U8(d),
    }
}

fn gray_mean_expected(i: usize) -> f64 {
    20.0 + 7.0 * i as f64 + 3.5
}

#[allow(dead_code)]
fn rgb_frame(w: u32, h: u32, i: usize) -> Frame {
    let mut d = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            d.push((x * 4 + i as u32 * 5) as u8);
            d.push((y * 5) as u8);
            d.push(((x + y) * 2) as u8);
        }
    }
    Frame {
        width: w,
        height: h,
        channels: 3,
        data: FrameData::U8(d),
    }
}

fn encode(
    opts: &VideoOptions,
    w: u32,
    h: u32,
    fps: f64,
    frames: impl Iterator<Item = Frame>,
) -> Vec<u8> {
    let mut enc = encoder(opts, w, h, fps).unwrap();
    for f in frames {
        enc.push(&f).unwrap();
    }
    enc.finish().unwrap()
}

/// ffprobe stream fields as key=value, with frames counted.
fn probe(path: &Path) -> std::collections::HashMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,pix_fmt,width,height,r_frame_rate,avg_frame_rate,nb_frames,nb_read_frames,duration:format=duration:format_tags:stream_tags")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut map = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            // stream and format both have "duration": keep the first (stream).
            map.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    map.insert("_raw".into(), text);
    map
}

/// Decode to 8-bit gray frames with ffmpeg.
fn decode_gray(path: &Path, w: usize, h: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg decode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len() % (w * h), 0);
    out.stdout.chunks(w * h).map(|c| c.to_vec()).collect()
}

/// Every decoded frame i has mean close to the input's, and is closest to input i (order check).
fn check_gray_order(frames: &[Vec<u8>], w: usize, h: usize, src_w: usize, src_h: usize) {
    for (i, f) in frames.iter().enumerate() {
        // Mean over the un-padded area.
        let mut sum = 0u64;
        for y in 0..src_h {
            for x in 0..src_w {
                sum += f[y * w + x] as u64;
            }
        }
        let mean = sum as f64 / (src_w * src_h) as f64;
        let want = gray_mean_expected(i);
        assert!(
            (mean - want).abs() < 2.5,
            "frame {i}: decoded mean {mean:.2}, expected {want:.2}"
        );
        let _ = h;
    }
}

#[test]
fn u16_frames_are_rejected() {
    let opts = VideoOptions {
        format: VideoFormat::Gif,
        ..Default::default()
    };
    let Ok(mut enc) = encoder(&opts, 4, 4, 10.0) else {
        return;
    };
    let f = Frame {
        width: 4,
        height: 4,
        channels: 1,
        data: FrameData::U16(vec![0; 16]),
    };
    let e = enc.push(&f).unwrap_err();
    assert!(matches!(e, VideoError::SixteenBit), "{e}");
    assert!(e.to_string().contains("8-bit"));
}

#[test]
fn options_deserialize_and_validate() {
    let o: VideoOptions = serde_json::from_str(r#"{"format":"mp4_x264","quality":50}"#).unwrap();
    assert_eq!(o.format, VideoFormat::Mp4X264);
    assert_eq!(o.quality, 50);
    assert_eq!(o.fps, None);
    let d: VideoOptions = serde_json::from_str("{}").unwrap();
    assert_eq!((d.format, d.quality, d.fps), (VideoFormat::Mp4, 75, None));
    let f: VideoOptions = serde_json::from_str(r#"{"format":"webm_vp9","fps":12.5}"#).unwrap();
    assert_eq!((f.format, f.fps), (VideoFormat::WebmVp9, Some(12.5)));
    assert!(serde_json::from_str::<VideoOptions>(r#"{"qualty":5}"#).is_err());
    assert!(serde_json::from_str::<VideoOptions>(r#"{"format":"avi"}"#).is_err());
    let bad = VideoOptions {
        quality: 0,
        ..Default::default()
    };
    assert!(matches!(
        encoder(&bad, 8, 8, 10.0),
        Err(VideoError::InvalidOption(_))
    ));
    let bad = VideoOptions {
        quality: 101,
        ..Default::default()
    };
    assert!(matches!(
        encoder(&bad, 8, 8, 10.0),
        Err(VideoError::InvalidOption(_))
    ));
    assert!(matches!(
        encoder(&VideoOptions::default(), 8, 8, 0.0),
        Err(VideoError::InvalidOption(_))
    ));
    let schema = serde_json::to_string(&schemars::schema_for!(VideoOptions)).unwrap();
    assert!(
        schema.contains("webm_vp9") && schema.contains("quality"),
        "{schema}"
    );
}

#[cfg(feature = "h264")]
#[test]
fn mp4_h264_30_frames_18fps() {
    let (w, h) = (64u32, 48u32);
    let bytes = encode(
        &VideoOptions::default(),
        w,
        h,
        18.0,
        (0..30).map(|i| gray_frame(w, h, i)),
    );
    // Layout: ftyp, moov, mdat (fast start); no udta anywhere.
    let boxes = mp4::top_level_boxes(&bytes);
    let kinds: Vec<&[u8]> = boxes.iter().map(|b| &b.0[..]).collect();
    assert_eq!(kinds, vec![&b"ftyp"[..], b"moov", b"mdat"]);
    assert!(!bytes
        .windows(4)
        .any(|w| w == b"udta" || w == b"\xa9nam" || w == b"\xa9cmt"));
    if !have("ffprobe") || !have("ffmpeg") {
        eprintln!("SKIP ffprobe checks: ffprobe/ffmpeg not found");
        return;
    }
    let path = tmp("h264.mp4");
    std::fs::write(&path, &bytes).unwrap();
    let p = probe(&path);
    assert_eq!(p["codec_name"], "h264", "{}", p["_raw"]);
    assert_eq!(p["pix_fmt"], "yuv420p");
    assert_eq!(p["r_frame_rate"], "18/1");
    assert_eq!(p["avg_frame_rate"], "18/1");
    assert_eq!(p["nb_frames"], "30");
    assert_eq!(p["nb_read_frames"], "30");
    assert!(!p["_raw"].contains("creation_time"), "{}", p["_raw"]);
    assert!(!p["_raw"].to_lowercase().contains("title"), "{}", p["_raw"]);
    let frames = decode_gray(&path, 64, 48);
    assert_eq!(frames.len(), 30);
    check_gray_order(&frames, 64, 48, 64, 48);
    let _ = std::fs::remove_file(path);
}

#[cfg(feature = "h264")]
#[test]
fn mp4_h264_odd_size_rgb() {
    let (w, h) = (63u32, 47u32);
    let bytes = encode(
        &VideoOptions {
            quality: 40,
            ..Default::default()
        },
        w,
        h,
        10.0,
        (0..5).map(|i| rgb_frame(w, h, i)),
    );
    if !have("ffprobe") || !have("ffmpeg") {
        eprintln!("SKIP ffprobe checks: ffprobe/ffmpeg not found");
        return;
    }
    let path = tmp("odd.mp4");
    std::fs::write(&path, &bytes).unwrap();
    let p = probe(&path);
    assert_eq!((p["width"].as_str(), p["height"].as_str()), ("64", "48"));
    assert_eq!(p["nb_read_frames"], "5");
    // Gray input at odd size: decoded content matches, padding is black.
    let bytes = encode(
        &VideoOptions::default(),
        w,
        h,
        10.0,
        (0..4).map(|i| gray_frame(w, h, i)),
    );
    std::fs::write(&path, &bytes).unwrap();
    let frames = decode_gray(&path, 64, 48);
    assert_eq!(frames.len(), 4);
    check_gray_order(&frames, 64, 48, 63, 47);
    let last_col_mean: f64 = (0..47).map(|y| frames[3][y * 64 + 63] as f64).sum::<f64>() / 47.0;
    assert!(
        last_col_mean < 8.0,
        "padding column should be black, mean {last_col_mean}"
    );
    let _ = std::fs::remove_file(path);
}

#[cfg(feature = "h264")]
#[test]
fn mp4_rejects_wrong_frame_size() {
    let mut enc = encoder(&VideoOptions::default(), 16, 16, 10.0).unwrap();
    let e = enc.push(&gray_frame(8, 8, 0)).unwrap_err();
    assert!(matches!(e, VideoError::BadFrame(_)), "{e}");
}

#[cfg(feature = "gif")]
fn read_gif(bytes: &[u8]) -> (Vec<u8>, Vec<(u16, Vec<u8>)>) {
    let mut opts = ::gif::DecodeOptions::new();
    opts.set_color_output(::gif::ColorOutput::Indexed);
    let mut dec = opts.read_info(bytes).unwrap();
    let pal = dec.global_palette().unwrap().to_vec();
    let mut frames = Vec::new();
    while let Some(f) = dec.read_next_frame().unwrap() {
        assert!(f.palette.is_none(), "no local palettes expected");
        frames.push((f.delay, f.buffer.to_vec()));
    }
    (pal, frames)
}

#[cfg(feature = "gif")]
#[test]
fn gif_gray_30_frames_18fps() {
    let (w, h) = (64u32, 48u32);
    let opts = VideoOptions {
        format: VideoFormat::Gif,
        ..Default::default()
    };
    let bytes = encode(&opts, w, h, 18.0, (0..30).map(|i| gray_frame(w, h, i)));
    assert!(
        bytes.windows(11).any(|x| x == b"NETSCAPE2.0"),
        "loop extension present"
    );
    let (pal, frames) = read_gif(&bytes);
    assert_eq!(pal.len(), 256 * 3);
    assert_eq!(frames.len(), 30);
    let delays: Vec<u16> = frames.iter().map(|f| f.0).collect();
    assert_eq!(&delays[..4], &[6, 5, 6, 5]);
    assert_eq!(delays.iter().map(|&d| d as u32).sum::<u32>(), 167); // round(30/18 s) in cs
    for (i, (_, buf)) in frames.iter().enumerate() {
        // Gray palette is exact: indices are the input samples.
        let FrameData::U8(src) = gray_frame(w, h, i).data else {
            unreachable!()
        };
        assert_eq!(buf, &src, "frame {i}");
    }
    if have("ffprobe") {
        let path = tmp("gray.gif");
        std::fs::write(&path, &bytes).unwrap();
        let p = probe(&path);
        assert_eq!(p["codec_name"], "gif");
        assert_eq!(p["nb_read_frames"], "30");
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(feature = "gif")]
#[test]
fn gif_rgb_palette_close() {
    let (w, h) = (40u32, 30u32);
    let opts = VideoOptions {
        format: VideoFormat::Gif,
        quality: 90,
        ..Default::default()
    };
    let bytes = encode(&opts, w, h, 10.0, (0..3).map(|i| rgb_frame(w, h, i)));
    let (pal, frames) = read_gif(&bytes);
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f.0 == 10));
    for (i, (_, buf)) in frames.iter().enumerate() {
        let FrameData::U8(src) = rgb_frame(w, h, i).data else {
            unreachable!()
        };
        let mut err = 0u64;
        for (k, &idx) in buf.iter().enumerate() {
            for c in 0..3 {
                err += (pal[idx as usize * 3 + c] as i64 - src[k * 3 + c] as i64).unsigned_abs();
            }
        }
        let mean = err as f64 / (buf.len() * 3) as f64;
        assert!(mean < 8.0, "frame {i}: mean abs error {mean}");
    }
    // Channel count may not change within a clip.
    let mut enc = encoder(&opts, w, h, 10.0).unwrap();
    enc.push(&rgb_frame(w, h, 0)).unwrap();
    assert!(matches!(
        enc.push(&gray_frame(w, h, 0)),
        Err(VideoError::BadFrame(_))
    ));
}

fn ffmpeg_roundtrip(format: VideoFormat, codec: &str, ext: &str) {
    if !have("ffmpeg") || !have("ffprobe") {
        eprintln!("SKIP {}: ffmpeg/ffprobe not found", format.name());
        return;
    }
    let (w, h) = (64u32, 48u32);
    let opts = VideoOptions {
        format,
        ..Default::default()
    };
    let bytes = encode(&opts, w, h, 18.0, (0..12).map(|i| gray_frame(w, h, i)));
    let path = tmp(&format!("ff_{}.{ext}", format.name()));
    std::fs::write(&path, &bytes).unwrap();
    let p = probe(&path);
    assert_eq!(p["codec_name"], codec, "{}", p["_raw"]);
    assert_eq!(p["pix_fmt"], "yuv420p");
    assert_eq!(p["nb_read_frames"], "12");
    assert_eq!(p["r_frame_rate"], "18/1");
    let raw = p["_raw"].to_lowercase();
    // ffmpeg always writes an encoder tag; with +bitexact it carries no version numbers.
    for bad in [
        "creation_time",
        "title",
        "comment",
        "lavf6",
        "lavc6",
        "lavf5",
        "lavc5",
    ] {
        assert!(!raw.contains(bad), "{bad} in {raw}");
    }
    let frames = decode_gray(&path, 64, 48);
    assert_eq!(frames.len(), 12);
    check_gray_order(&frames, 64, 48, 64, 48);
    let _ = std::fs::remove_file(path);
}

#[test]
fn ffmpeg_hevc() {
    ffmpeg_roundtrip(VideoFormat::Hevc, "hevc", "mp4");
}

#[test]
fn ffmpeg_x264() {
    ffmpeg_roundtrip(VideoFormat::Mp4X264, "h264", "mp4");
}

#[test]
fn ffmpeg_vp9() {
    ffmpeg_roundtrip(VideoFormat::WebmVp9, "vp9", "webm");
}

#[test]
fn ffmpeg_missing_program_is_a_clear_error() {
    let missing = Path::new("/nonexistent-dir-for-test/ffmpeg");
    for format in [
        VideoFormat::Hevc,
        VideoFormat::Mp4X264,
        VideoFormat::WebmVp9,
    ] {
        let opts = VideoOptions {
            format,
            ..Default::default()
        };
        let err = match encoder_with_ffmpeg_program(&opts, 16, 16, 10.0, Some(missing)) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        };
        let msg = err.to_string();
        assert!(matches!(err, VideoError::ProgramNotFound { .. }), "{msg}");
        assert!(
            msg.contains(format.name()) && msg.contains("ffmpeg") && msg.contains("not found"),
            "{msg}"
        );
    }
    // A bare program name that is not on PATH gives the same kind of error.
    let opts = VideoOptions {
        format: VideoFormat::Hevc,
        ..Default::default()
    };
    let err = encoder_with_ffmpeg_program(
        &opts,
        16,
        16,
        10.0,
        Some(Path::new("ffmpeg-not-installed-xyz")),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "format hevc needs the `ffmpeg-not-installed-xyz` program on PATH; it was not found"
    );
}

#[test]
fn ffmpeg_failure_reports_stderr() {
    if !have("ffmpeg") {
        return;
    }
    // `false` accepts no input and exits 1: push or finish must fail with the program named.
    let opts = VideoOptions {
        format: VideoFormat::Hevc,
        ..Default::default()
    };
    let Ok(mut enc) = encoder_with_ffmpeg_program(&opts, 16, 16, 10.0, Some(Path::new("false")))
    else {
        return;
    };
    let mut res = Ok(());
    for i in 0..50 {
        res = enc.push(&gray_frame(16, 16, i % 30));
        if res.is_err() {
            break;
        }
    }
    let err = match res {
        Err(e) => e,
        Ok(()) => enc.finish().unwrap_err(),
    };
    assert!(matches!(err, VideoError::External { .. }), "{err}");
    assert!(err.to_string().starts_with("false failed"), "{err}");
}

#[cfg(feature = "av1")]
#[test]
fn webm_av1_30_frames_18fps() {
    let (w, h) = (64u32, 48u32);
    let opts = VideoOptions {
        format: VideoFormat::Webm,
        ..Default::default()
    };
    let bytes = encode(&opts, w, h, 18.0, (0..30).map(|i| gray_frame(w, h, i)));
    assert_eq!(&bytes[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
    assert!(bytes.windows(5).any(|x| x == b"V_AV1"));
    if !have("ffprobe") || !have("ffmpeg") {
        eprintln!("SKIP ffprobe checks: ffprobe/ffmpeg not found");
        return;
    }
    let path = tmp("av1.webm");
    std::fs::write(&path, &bytes).unwrap();
    let p = probe(&path);
    assert_eq!(p["codec_name"], "av1", "{}", p["_raw"]);
    assert_eq!(p["nb_read_frames"], "30", "{}", p["_raw"]);
    assert_eq!(p["r_frame_rate"], "18/1", "{}", p["_raw"]);
    let raw = p["_raw"].to_lowercase();
    assert!(
        !raw.contains("title") && !raw.contains("creation_time"),
        "{raw}"
    );
    // Per-frame timestamps: frame i at round(i*1000/18) ms.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let pts: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pts.len(), 30);
    for (i, t) in pts.iter().enumerate() {
        assert!((t - i as f64 / 18.0).abs() < 0.0015, "packet {i} at {t}");
    }
    let frames = decode_gray(&path, 64, 48);
    assert_eq!(frames.len(), 30);
    check_gray_order(&frames, 64, 48, 64, 48);
    let _ = std::fs::remove_file(path);
}

#[cfg(feature = "h264")]
#[test]
fn mp4_quality_changes_size_and_tiny_sizes_work() {
    let (w, h) = (64u32, 48u32);
    let clip = |q: u8| {
        encode(
            &VideoOptions {
                quality: q,
                ..Default::default()
            },
            w,
            h,
            10.0,
            (0..6).map(|i| rgb_frame(w, h, i)),
        )
        .len()
    };
    let (lo, mid, hi) = (clip(5), clip(75), clip(100));
    assert!(lo < mid && mid < hi, "sizes {lo} {mid} {hi}");
    assert_eq!(h264::qp_for_quality(75), 19);
    for (tw, th) in [(1u32, 1u32), (8, 8), (17, 9)] {
        let bytes = encode(
            &VideoOptions::default(),
            tw,
            th,
            5.0,
            (0..3).map(|i| gray_frame(tw, th, i)),
        );
        if have("ffprobe") {
            let path = tmp(&format!("tiny_{tw}x{th}.mp4"));
            std::fs::write(&path, &bytes).unwrap();
            let p = probe(&path);
            assert_eq!(p["nb_read_frames"], "3", "{tw}x{th}: {}", p["_raw"]);
            assert_eq!(p["width"], (tw + tw % 2).max(16).to_string());
            assert_eq!(p["height"], (th + th % 2).max(16).to_string());
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn finish_to_writes_the_same_bytes() {
    let opts = VideoOptions {
        format: VideoFormat::Gif,
        ..Default::default()
    };
    let Ok(mut a) = encoder(&opts, 8, 8, 10.0) else {
        return;
    };
    let mut b = encoder(&opts, 8, 8, 10.0).unwrap();
    for i in 0..3 {
        a.push(&gray_frame(8, 8, i)).unwrap();
        b.push(&gray_frame(8, 8, i)).unwrap();
    }
    let mut out = std::io::Cursor::new(Vec::new());
    let n = b.finish_to(&mut out).unwrap();
    let bytes = a.finish().unwrap();
    assert_eq!(n as usize, bytes.len());
    assert_eq!(out.into_inner(), bytes);
}

#[test]
fn tiny_pictures_other_formats() {
    let mut formats = vec![
        VideoFormat::Hevc,
        VideoFormat::Mp4X264,
        VideoFormat::WebmVp9,
    ];
    if cfg!(feature = "av1") {
        formats.push(VideoFormat::Webm);
    }
    if !have("ffmpeg") {
        formats.retain(|f| *f == VideoFormat::Webm);
    }
    for format in formats {
        let opts = VideoOptions {
            format,
            ..Default::default()
        };
        let bytes = encode(&opts, 3, 5, 10.0, (0..2).map(|i| gray_frame(3, 5, i)));
        assert!(bytes.len() > 100, "{}", format.name());
    }
}
