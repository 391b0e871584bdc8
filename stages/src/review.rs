//! `dcmflow verify --report review.html`: a self-contained review sheet of an output tree, for
//! the person who signs it off before it leaves the institution. Every exported still, the
//! poster frame of every clip and a rendering of every DICOM file appear as thumbnails
//! (embedded as `data:` URIs: the page loads nothing and runs no script), grouped by
//! pseudonymous patient / study / series, with the retained header values of DICOM files and
//! every `verify` finding beside its file. Findings carry masked values only; header values are
//! those the output files keep, HTML-escaped.
//!
//! Grouping: DICOM files by their PatientID / StudyInstanceUID / SeriesInstanceUID; stills and
//! clips by their folders below the run folder (the nearest folder holding a `run.json`, else
//! the output folder), as the shipped recipes write `PatientID/Study/Series/...`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use image::DynamicImage;

use crate::pixels::{FrameData, WindowOptions};
use crate::verify::{Finding, VerifyReport};

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 192;

/// Header values shown beside each DICOM thumbnail, in this order.
pub const HEADER_FIELDS: &[(&str, Tag)] = &[
    ("Modality", tags::MODALITY),
    ("PatientID", tags::PATIENT_ID),
    ("PatientSex", tags::PATIENT_SEX),
    ("PatientAge", tags::PATIENT_AGE),
    ("StudyDate", tags::STUDY_DATE),
    ("SeriesDescription", tags::SERIES_DESCRIPTION),
    ("BodyPartExamined", tags::BODY_PART_EXAMINED),
    ("Manufacturer", tags::MANUFACTURER),
    ("ManufacturerModelName", tags::MANUFACTURER_MODEL_NAME),
];

/// What kind of output a file is, from its name (and, for DICOM, its `DICM` marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// JPEG, PNG or TIFF still.
    Image,
    /// Animated GIF.
    Gif,
    /// MP4 (H.264, HEVC) or WebM clip.
    Video,
    /// DICOM file.
    Dicom,
    /// Anything else (run.json, ...): listed, no thumbnail.
    Other,
}

/// Settings of the review sheet.
#[derive(Clone, Debug)]
pub struct ReviewOptions {
    /// The `ffmpeg` program for poster frames of clips; `None` shows a placeholder instead.
    pub ffmpeg: Option<PathBuf>,
    /// Longest side of a thumbnail.
    pub thumb_side: u32,
}

impl ReviewOptions {
    /// `ffmpeg` from PATH when there, thumbnails of [`THUMB_SIDE`].
    pub fn from_env() -> Self {
        ReviewOptions {
            ffmpeg: find_on_path("ffmpeg"),
            thumb_side: THUMB_SIDE,
        }
    }
}

/// A program's path when it is on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Classify a file of the output tree.
pub fn media_kind(path: &Path) -> MediaKind {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" | "png" | "tif" | "tiff" => MediaKind::Image,
        "gif" => MediaKind::Gif,
        "mp4" | "m4v" | "mov" | "webm" | "mkv" | "hevc" => MediaKind::Video,
        _ if is_dicom(path) => MediaKind::Dicom,
        _ => MediaKind::Other,
    }
}

fn is_dicom(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head[128..132] == b"DICM"
}

/// A thumbnail: PNG bytes, or why there is none (shown in a placeholder box).
pub type Thumb = Result<Vec<u8>, String>;

fn to_png(img: DynamicImage, side: u32) -> Thumb {
    let img = if img.width() > side || img.height() > side {
        img.thumbnail(side, side)
    } else {
        img
    };
    // 16-bit and alpha samples are not needed for a thumbnail.
    let img = match img {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => img,
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA8(_) => {
            DynamicImage::ImageLuma8(img.to_luma8())
        }
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    };
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .map_err(|e| format!("thumbnail encoding failed: {e}"))?;
    Ok(out)
}

fn decode_bytes(bytes: &[u8]) -> Result<DynamicImage, String> {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?
        .decode()
        .map_err(|e| format!("cannot decode the image: {e}"))
}

/// The first frame of a clip as PNG bytes, from `ffmpeg`.
fn ffmpeg_first_frame(ffmpeg: &Path, clip: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(clip)
        .args(["-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err("ffmpeg could not extract the first frame".into());
    }
    Ok(out.stdout)
}

#[cfg(feature = "gif")]
fn gif_first_frame(path: &Path, _opts: &ReviewOptions) -> Result<DynamicImage, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let mut o = gif::DecodeOptions::new();
    o.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = o
        .read_info(std::io::BufReader::new(file))
        .map_err(|e| format!("cannot read the GIF: {e}"))?;
    let (w, h) = (dec.width() as u32, dec.height() as u32);
    let frame = dec
        .read_next_frame()
        .map_err(|e| format!("cannot decode the GIF: {e}"))?
        .ok_or("the GIF has no frame")?;
    // The first frame may cover part of the logical screen: draw it onto a black canvas.
    let mut canvas = image::RgbaImage::from_pixel(w, h, image::Rgba([0, 0, 0, 255]));
    let (fw, fh) = (frame.width as u32, frame.height as u32);
    for y in 0..fh {
        for x in 0..fw {
            let i = 4 * (y * fw + x) as usize;
            let (cx, cy) = (frame.left as u32 + x, frame.top as u32 + y);
            if cx < w && cy < h && frame.buffer.get(i + 3).is_some_and(|a| *a > 0) {
                let p = &frame.buffer[i..i + 4];
                canvas.put_pixel(cx, cy, image::Rgba([p[0], p[1], p[2], 255]));
            }
        }
    }
    Ok(DynamicImage::ImageRgba8(canvas))
}

#[cfg(not(feature = "gif"))]
fn gif_first_frame(path: &Path, opts: &ReviewOptions) -> Result<DynamicImage, String> {
    let ffmpeg = opts
        .ffmpeg
        .as_deref()
        .ok_or("no poster frame: ffmpeg is not on PATH")?;
    decode_bytes(&ffmpeg_first_frame(ffmpeg, path)?)
}

/// DICOM header values of [`HEADER_FIELDS`] (absent ones left out) and the grouping keys.
struct DicomInfo {
    header: Vec<(&'static str, String)>,
    group: (String, String, String),
    thumb: Thumb,
    pixels: Option<String>,
}

/// What the header records about burned-in text in the pixels, for the note beside the
/// thumbnail: masked (113101), declared free of text by a site rule (which rule is named in
/// `run.json`, not in the file), or not masked although the file may carry text. Files that are
/// not carriers and were not masked get no note.
pub fn pixel_note(
    obj: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>,
) -> Option<String> {
    use crate::burned_in::{carrier_reason, recorded_pixels, RecordedPixels};
    match recorded_pixels(obj) {
        RecordedPixels::Masked => {
            Some("pixels masked: Clean Pixel Data (113101) recorded".into())
        }
        RecordedPixels::DeclaredNoText => Some(
            "pixels not masked: a site mask rule declares that this device draws no text (run.json names the rule); BurnedInAnnotation not set"
                .into(),
        ),
        RecordedPixels::Untouched => carrier_reason(obj)
            .map(|why| format!("pixels not masked and may carry burned-in text: {why}")),
    }
}

fn dicom_info(path: &Path, side: u32) -> Result<DicomInfo, String> {
    let obj = crate::read_dicom::open_dicom(path, true)
        .map_err(|_| "cannot read the file as DICOM".to_string())?;
    let text = |t: Tag| crate::attr::text_of(&obj, t).filter(|v| !v.is_empty());
    let header = HEADER_FIELDS
        .iter()
        .filter_map(|(name, tag)| text(*tag).map(|v| (*name, v)))
        .collect();
    let group = (
        text(tags::PATIENT_ID).unwrap_or_default(),
        text(tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        text(tags::SERIES_INSTANCE_UID).unwrap_or_default(),
    );
    let thumb = if obj.get(tags::PIXEL_DATA).is_none() {
        Err("no pixel data".to_string())
    } else {
        render_dicom(&obj, side)
    };
    Ok(DicomInfo {
        header,
        group,
        thumb,
        pixels: pixel_note(&obj),
    })
}

fn render_dicom(
    obj: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>,
    side: u32,
) -> Thumb {
    let dec = crate::pixels::decode(obj).map_err(|e| format!("cannot decode the pixels: {e}"))?;
    let frame = crate::pixels::render(&dec, 0, &WindowOptions::default())
        .map_err(|e| format!("cannot render the pixels: {e}"))?;
    let (w, h) = (frame.width, frame.height);
    let bad = || "rendered frame has an unexpected size".to_string();
    let img = match (frame.channels, frame.data) {
        (1, FrameData::U8(v)) => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, v).ok_or_else(bad)?)
        }
        (3, FrameData::U8(v)) => {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, v).ok_or_else(bad)?)
        }
        (1, FrameData::U16(v)) => {
            DynamicImage::ImageLuma16(image::ImageBuffer::from_raw(w, h, v).ok_or_else(bad)?)
        }
        (3, FrameData::U16(v)) => {
            DynamicImage::ImageRgb16(image::ImageBuffer::from_raw(w, h, v).ok_or_else(bad)?)
        }
        _ => return Err("rendered frame has an unexpected layout".into()),
    };
    to_png(img, side)
}

/// The thumbnail of one output file (PNG bytes), or why there is none. DICOM files are
/// rendered with the file's own window (first frame); clips show their first frame.
pub fn thumbnail(path: &Path, kind: MediaKind, opts: &ReviewOptions) -> Thumb {
    match kind {
        MediaKind::Image => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
            to_png(decode_bytes(&bytes)?, opts.thumb_side)
        }
        MediaKind::Gif => to_png(gif_first_frame(path, opts)?, opts.thumb_side),
        MediaKind::Video => {
            let ffmpeg = opts
                .ffmpeg
                .as_deref()
                .ok_or("no poster frame: ffmpeg is not on PATH")?;
            to_png(
                decode_bytes(&ffmpeg_first_frame(ffmpeg, path)?)?,
                opts.thumb_side,
            )
        }
        MediaKind::Dicom => dicom_info(path, opts.thumb_side)?.thumb,
        MediaKind::Other => Err("not an image".into()),
    }
}

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One file on the sheet.
struct Card {
    rel: String,
    kind: MediaKind,
    thumb: Thumb,
    header: Vec<(&'static str, String)>,
    /// The note on burned-in text (DICOM only).
    pixels: Option<String>,
}

type Groups = BTreeMap<(String, String, String), Vec<Card>>;

/// The nearest folder from `file` up to `root` that holds a `run.json` (else `root`).
fn run_folder(root: &Path, file: &Path) -> PathBuf {
    let mut d = file.parent();
    while let Some(dir) = d {
        if !dir.starts_with(root) {
            break;
        }
        if dir.join("run.json").is_file() {
            return dir.to_path_buf();
        }
        if dir == root {
            break;
        }
        d = dir.parent();
    }
    root.to_path_buf()
}

/// Patient / study / series from the folders of a still or clip below its run folder.
fn path_group(root: &Path, file: &Path) -> (String, String, String) {
    let base = run_folder(root, file);
    let dirs: Vec<String> = file
        .parent()
        .and_then(|p| p.strip_prefix(&base).ok())
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (
        dirs.first().cloned().unwrap_or_default(),
        dirs.get(1).cloned().unwrap_or_default(),
        dirs.get(2..).map(|d| d.join("/")).unwrap_or_default(),
    )
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#111;background:#fafafa}\
h1{font-size:20px}h2{font-size:18px;border-bottom:2px solid #333;margin-top:28px}\
h3{font-size:15px;margin:14px 0 4px}h4{font-size:13px;margin:8px 0 4px;color:#444}\
code{font-size:12px;word-break:break-all}\
.summary{padding:8px 12px;border:1px solid #999;background:#fff}\
.summary.bad{border:2px solid #c00;background:#fee}\
.grid{display:flex;flex-wrap:wrap;gap:12px}\
.card{width:220px;border:1px solid #bbb;background:#fff;padding:6px}\
.card.flagged{border:3px solid #c00;background:#fff0f0}\
.thumb{width:192px;height:192px;background:#000;display:flex;align-items:center;justify-content:center}\
.thumb img{width:100%;height:100%;object-fit:contain;image-rendering:pixelated}\
.placeholder{width:176px;height:176px;padding:8px;background:#ddd;color:#333;border:2px dashed #888;\
display:flex;align-items:center;justify-content:center;text-align:center}\
.kind{font-size:11px;text-transform:uppercase;color:#666}\
table.hdr{font-size:12px;border-collapse:collapse}table.hdr th{text-align:left;padding-right:6px;color:#555}\
ul.findings{margin:4px 0;padding-left:18px;color:#900;font-size:12px}\
p.pixels{margin:4px 0;font-size:12px;color:#333}";

fn kind_label(k: MediaKind) -> &'static str {
    match k {
        MediaKind::Image => "still",
        MediaKind::Gif => "clip (GIF, first frame)",
        MediaKind::Video => "clip (first frame)",
        MediaKind::Dicom => "DICOM",
        MediaKind::Other => "other",
    }
}

fn findings_html(findings: &[&Finding]) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let mut h = String::from("<ul class=\"findings\">");
    for f in findings {
        h.push_str("<li>");
        h.push_str(&escape(&f.kind));
        if let Some(t) = &f.tag {
            h.push_str(&format!(" [{}]", escape(t)));
        }
        if !f.value.is_empty() {
            h.push_str(&format!(": {}", escape(&f.value)));
        }
        h.push_str("</li>");
    }
    h.push_str("</ul>");
    h
}

fn card_html(c: &Card, findings: &[&Finding]) -> String {
    let mut h = format!(
        "<div class=\"card{}\" data-file=\"{}\"><div class=\"kind\">{}</div><div class=\"thumb\">",
        if findings.is_empty() { "" } else { " flagged" },
        escape(&c.rel),
        kind_label(c.kind)
    );
    match &c.thumb {
        Ok(png) => h.push_str(&format!(
            "<img class=\"thumbnail\" alt=\"{}\" src=\"data:image/png;base64,{}\">",
            escape(&c.rel),
            base64(png)
        )),
        Err(why) => h.push_str(&format!("<div class=\"placeholder\">{}</div>", escape(why))),
    }
    h.push_str(&format!("</div><code>{}</code>", escape(&c.rel)));
    if c.kind == MediaKind::Dicom && !c.header.is_empty() {
        h.push_str("<table class=\"hdr\">");
        for (k, v) in &c.header {
            h.push_str(&format!("<tr><th>{k}</th><td>{}</td></tr>", escape(v)));
        }
        h.push_str("</table>");
    }
    if let Some(note) = &c.pixels {
        h.push_str(&format!("<p class=\"pixels\">{}</p>", escape(note)));
    }
    h.push_str(&findings_html(findings));
    h.push_str("</div>");
    h
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() {
        "(none)".into()
    } else {
        escape(s)
    }
}

/// The review sheet of an output folder and its `verify` report, as one HTML page.
pub fn review_html(report: &VerifyReport, output: &Path) -> String {
    review_html_with(report, output, &ReviewOptions::from_env())
}

/// [`review_html`] with explicit settings.
pub fn review_html_with(report: &VerifyReport, output: &Path, opts: &ReviewOptions) -> String {
    let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        by_file.entry(f.file.as_str()).or_default().push(f);
    }
    let mut groups: Groups = BTreeMap::new();
    let mut others: Vec<String> = Vec::new();
    let (mut images, mut clips, mut dicoms) = (0u64, 0u64, 0u64);
    for f in files(output) {
        let rel = f.strip_prefix(output).unwrap_or(&f).display().to_string();
        let kind = media_kind(&f);
        let (group, thumb, header, pixels) = match kind {
            MediaKind::Other => {
                others.push(rel);
                continue;
            }
            MediaKind::Dicom => {
                dicoms += 1;
                match dicom_info(&f, opts.thumb_side) {
                    Ok(info) => (info.group, info.thumb, info.header, info.pixels),
                    Err(e) => (Default::default(), Err(e), Vec::new(), None),
                }
            }
            _ => {
                if kind == MediaKind::Image {
                    images += 1;
                } else {
                    clips += 1;
                }
                (
                    path_group(output, &f),
                    thumbnail(&f, kind, opts),
                    Vec::new(),
                    None,
                )
            }
        };
        groups.entry(group).or_default().push(Card {
            rel,
            kind,
            thumb,
            header,
            pixels,
        });
    }

    let n = report.findings.len();
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>dcmflow review sheet</title><style>",
    );
    h.push_str(STYLE);
    h.push_str("</style></head><body><h1>dcmflow review sheet</h1>");
    h.push_str(&format!(
        "<div class=\"summary{}\"><p>{} files checked ({} DICOM) against {} identifying values from {} originals: <strong>{} finding(s)</strong>.</p>\
<p>On this sheet: {} still(s), {} clip(s), {} DICOM file(s), {} other file(s).</p>",
        if n > 0 { " bad" } else { "" },
        report.files_checked,
        report.dicom_files,
        report.identifiers,
        report.originals_read,
        n,
        images,
        clips,
        dicoms,
        others.len()
    ));
    if n > 0 {
        h.push_str("<p>Files with findings (marked in red below):</p><ul>");
        for (file, fs) in &by_file {
            h.push_str(&format!(
                "<li><code>{}</code>: {} finding(s)</li>",
                escape(file),
                fs.len()
            ));
        }
        h.push_str("</ul>");
    }
    h.push_str("</div>");

    let mut last: (Option<&str>, Option<&str>) = (None, None);
    for ((patient, study, series), cards) in &groups {
        if last.0 != Some(patient.as_str()) {
            h.push_str(&format!("<h2>Patient {}</h2>", or_unknown(patient)));
            last = (Some(patient.as_str()), None);
        }
        if last.1 != Some(study.as_str()) {
            h.push_str(&format!(
                "<h3>Study <code>{}</code></h3>",
                or_unknown(study)
            ));
            last.1 = Some(study.as_str());
        }
        h.push_str(&format!(
            "<h4>Series <code>{}</code></h4><div class=\"grid\">",
            or_unknown(series)
        ));
        for c in cards {
            let fs = by_file.get(c.rel.as_str()).cloned().unwrap_or_default();
            h.push_str(&card_html(c, &fs));
        }
        h.push_str("</div>");
    }
    if !others.is_empty() {
        h.push_str("<h2>Other files</h2><ul>");
        for rel in &others {
            let fs = by_file.get(rel.as_str()).cloned().unwrap_or_default();
            h.push_str(&format!(
                "<li><code>{}</code>{}</li>",
                escape(rel),
                findings_html(&fs)
            ));
        }
        h.push_str("</ul>");
    }
    // Findings on files no longer in the tree still show in the summary list above.
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn sheet_groups_by_folders_flags_findings_and_shows_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let run = root.join("stills");
        let series = run.join("SUBJ1/STUDY1/SERIES1");
        std::fs::create_dir_all(&series).unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        let img = image::GrayImage::from_fn(300, 200, |x, y| image::Luma([((x + y) % 256) as u8]));
        img.save(series.join("a-0.png")).unwrap();
        std::fs::write(series.join("clip.mp4"), b"not a clip").unwrap();
        std::fs::write(series.join("broken.jpg"), b"not a jpeg <script>").unwrap();
        let report = VerifyReport {
            findings: vec![Finding {
                file: "stills/SUBJ1/STUDY1/SERIES1/a-0.png".into(),
                kind: "value from the originals <found>".into(),
                tag: None,
                value: "J*** S****".into(),
            }],
            ..Default::default()
        };
        let opts = ReviewOptions {
            ffmpeg: None,
            thumb_side: 64,
        };
        let html = review_html_with(&report, root, &opts);
        assert_eq!(html.matches("<img ").count(), 1, "{html}");
        assert!(html.contains("Patient SUBJ1") && html.contains("<code>SERIES1</code>"));
        assert!(html.contains("ffmpeg is not on PATH"));
        assert!(html.contains("cannot decode the image"));
        assert!(html.contains("card flagged"));
        assert!(html.contains("value from the originals &lt;found&gt;: J*** S****"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        // The thumbnail is downscaled to the longest side.
        let start = html.find("base64,").unwrap() + 7;
        let end = start + html[start..].find('"').unwrap();
        let png = decode_b64(&html[start..end]);
        let t = image::load_from_memory(&png).unwrap();
        assert_eq!((t.width(), t.height()), (64, 43));
    }

    #[test]
    fn dicom_without_pixels_gets_a_placeholder_and_escaped_header_values() {
        use dicom_core::{DataElement, PrimitiveValue, VR};
        use dicom_dictionary_std::uids;
        let dir = tempfile::tempdir().unwrap();
        let mut o = dicom_object::InMemDicomObject::new_empty();
        for (t, vr, v) in [
            (tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
            (tags::SOP_INSTANCE_UID, VR::UI, "2.25.1"),
            (tags::STUDY_INSTANCE_UID, VR::UI, "2.25.2"),
            (tags::SERIES_INSTANCE_UID, VR::UI, "2.25.3"),
            (tags::PATIENT_ID, VR::LO, "SUBJ42"),
            (tags::MODALITY, VR::CS, "CT"),
            (tags::SERIES_DESCRIPTION, VR::LO, "<img src=x>"),
        ] {
            o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
        }
        let meta = dicom_object::meta::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
            .media_storage_sop_instance_uid("2.25.1")
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .build()
            .unwrap();
        // Named without .dcm: DICOM is recognised by its marker.
        let file = dir.path().join("a/b/instance");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        o.with_exact_meta(meta).write_to_file(&file).unwrap();
        let opts = ReviewOptions {
            ffmpeg: None,
            thumb_side: 64,
        };
        let html = review_html_with(&VerifyReport::default(), dir.path(), &opts);
        assert_eq!(html.matches("<img").count(), 0, "{html}");
        assert!(html.contains("<div class=\"placeholder\">no pixel data</div>"));
        assert!(html.contains("<th>SeriesDescription</th><td>&lt;img src=x&gt;</td>"));
        assert!(html.contains("Patient SUBJ42") && html.contains("<code>2.25.3</code>"));
        assert!(!html.contains("card flagged"));
    }

    fn decode_b64(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        } as u32;
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
}
