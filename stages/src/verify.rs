//! `dcmflow verify`: an independent check of an output tree before it leaves the institution.
//! It does not trust the pipeline that made the outputs: with the originals, every identifying
//! value found in them (attributes that PS3.15 Table E.1-1 does not keep, private attributes,
//! UIDs, names in several spellings, dates in several formats) is searched for in every output
//! file's bytes; without them, header checks look for what should not be there (missing
//! PatientIdentityRemoved, private attributes not on the safe list, phone/e-mail/SSN-shaped
//! text, pixels that may carry burned-in text with no mask recorded). Findings name the file and
//! tag and show values masked (`J*** S****`). It fails closed: an output or original it
//! cannot read or parse, a folder it cannot walk, a link or device in the output tree, an
//! archive or an embedded document whose compressed content it cannot search is a finding
//! ("could not be checked: ...", naming the file and the reason, never a value), so the exit
//! code is 1 whenever something went unchecked. Deflated data sets and compressed PNG text are
//! inflated before the byte search, and DICOM outputs (with or without the preamble) are also
//! searched attribute by attribute in their decoded text, in their own character set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use regex::Regex;
use serde::Serialize;

use crate::deidentify::table::{table, Action};

/// One thing that looks like PHI.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The output file, relative to the output folder.
    pub file: String,
    /// What was found.
    pub kind: String,
    /// The attribute, when the finding is in a DICOM header.
    pub tag: Option<String>,
    /// The value, masked (first letter of each word kept).
    pub value: String,
}

/// What `verify` checked and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Output files read.
    pub files_checked: u64,
    /// Of which DICOM.
    pub dicom_files: u64,
    /// Original files read for identifiers.
    pub originals_read: u64,
    /// Original files that are not DICOM (or not regular files): the pipeline does not read
    /// them either.
    pub originals_skipped: u64,
    /// Distinct identifying strings searched for.
    pub identifiers: u64,
    /// Outputs and originals that could not be checked (each is also a finding).
    pub not_checked: u64,
    /// Everything that looks like PHI.
    pub findings: Vec<Finding>,
}

/// Mask a value for messages: keep the first character of each word, star the rest.
pub fn mask(v: &str) -> String {
    v.split(|c: char| c.is_whitespace() || c == '^')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            let first = cs.next().unwrap_or('*');
            format!("{first}{}", "*".repeat(cs.count().min(8)))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One entry of a walked tree.
enum Entry {
    /// A regular file.
    File(PathBuf),
    /// A link not followed, a FIFO, socket or device.
    Other(PathBuf),
    /// A folder or file the walk could not read, with the reason.
    Unreadable(PathBuf, String),
}

/// Every entry below `root` (or `root` itself when it is a file), in file-name order. Nothing
/// is left out silently: what is not a regular file, and what cannot be read, is listed.
fn walk(root: &Path, follow_links: bool) -> Vec<Entry> {
    let mut v = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(follow_links)
        .sort_by_file_name()
    {
        match entry {
            Ok(e) if e.file_type().is_file() => v.push(Entry::File(e.into_path())),
            Ok(e) if e.file_type().is_dir() => {}
            Ok(e) => v.push(Entry::Other(e.into_path())),
            // A link back to a folder being walked: its files are walked already.
            Err(err) if err.loop_ancestor().is_some() => {}
            Err(err) => {
                let path = err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                let why = err
                    .io_error()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| err.to_string());
                v.push(Entry::Unreadable(path, format!("cannot read it: {why}")));
            }
        }
    }
    v
}

/// How a finding names an original: "original: " and its path below the `--original` root.
fn original_name(root: &Path, p: &Path) -> String {
    let rel = p
        .strip_prefix(root)
        .ok()
        .filter(|r| !r.as_os_str().is_empty())
        .or_else(|| p.file_name().map(Path::new))
        .unwrap_or(p);
    format!("original: {}", rel.display())
}

/// The finding for something that could not be checked.
fn unchecked(file: String, why: impl std::fmt::Display) -> Finding {
    Finding {
        file,
        kind: format!("could not be checked: {why}"),
        tag: None,
        value: String::new(),
    }
}

fn text_values(e: &dicom_object::mem::InMemElement) -> Vec<String> {
    match e.to_multi_str() {
        Ok(v) => v
            .iter()
            .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Placeholder words that de-identifiers (and test data) use everywhere: not evidence of PHI.
const GENERIC: &[&str] = &[
    "anon",
    "anonymous",
    "anonymized",
    "anonymised",
    "patient",
    "unknown",
    "none",
    "test",
    "name",
    "removed",
    "dummy",
    "nobody",
];

/// Spellings of a value to search for, by VR. Short values, short numbers and generic
/// placeholder words are left out (they would match everywhere).
fn variants(vr: VR, v: &str, out: &mut BTreeSet<String>) {
    let v = v.trim();
    let digits = v
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-');
    if v.chars().count() < 4
        || (digits && v.len() < 6 && vr != VR::DA)
        || GENERIC.contains(&v.to_ascii_lowercase().as_str())
    {
        return;
    }
    if v.chars().all(|c| c == '^' || c == ' ' || c == '0') {
        return;
    }
    match vr {
        VR::PN => {
            let parts: Vec<&str> = v
                .split('=')
                .next()
                .unwrap_or("")
                .split('^')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            out.insert(v.to_string());
            if parts.len() >= 2 {
                out.insert(format!("{} {}", parts[1], parts[0]));
                out.insert(format!("{}, {}", parts[0], parts[1]));
                out.insert(format!("{} {}", parts[0], parts[1]));
            }
            for p in parts {
                if p.chars().count() >= 4 && !GENERIC.contains(&p.to_ascii_lowercase().as_str()) {
                    out.insert(p.to_string());
                }
            }
        }
        VR::DA | VR::DT => {
            let d = &v[..v.len().min(8)];
            if d.len() == 8 && d.chars().all(|c| c.is_ascii_digit()) {
                let (y, m, dd) = (&d[..4], &d[4..6], &d[6..8]);
                out.insert(d.to_string());
                out.insert(format!("{y}-{m}-{dd}"));
                out.insert(format!("{m}/{dd}/{y}"));
                out.insert(format!("{dd}.{m}.{y}"));
                out.insert(format!("{dd}/{m}/{y}"));
            }
        }
        VR::UI => {
            if !v.starts_with("1.2.840.10008.") && v.len() >= 10 {
                out.insert(v.to_string());
            }
        }
        _ => {
            out.insert(v.to_string());
        }
    }
}

/// Whether PS3.15 keeps the attribute under the Basic profile (so its value is not identifying
/// by the standard's account).
fn kept_by_profile(tag: Tag) -> bool {
    match table().lookup(tag) {
        Some(row) => row.basic == Action::K,
        None => true,
    }
}

/// How deep items are walked (the reader refuses files nested deeper than this, so a deeper
/// object is reported, not skipped).
const MAX_DEPTH: usize = crate::read_dicom::MAX_NESTING / 2;

const TEXT_VRS: &[VR] = &[
    VR::PN,
    VR::LO,
    VR::SH,
    VR::LT,
    VR::ST,
    VR::UT,
    VR::UC,
    VR::DA,
    VR::DT,
    VR::UI,
    VR::AE,
];

/// Identifying values of an original (into `out`) and values the profile keeps (into `kept`:
/// a value kept in one attribute, such as Manufacturer, is not evidence of a leak elsewhere).
fn collect_identifiers(
    obj: &InMemDicomObject,
    depth: usize,
    out: &mut BTreeSet<String>,
    kept: &mut BTreeSet<String>,
    too_deep: &mut bool,
) {
    if depth > MAX_DEPTH {
        *too_deep = true;
        return;
    }
    for e in obj.iter() {
        let tag = e.tag();
        if let Value::Sequence(seq) = e.value() {
            for item in seq.items() {
                collect_identifiers(item, depth + 1, out, kept, too_deep);
            }
            continue;
        }
        if tag.group() % 2 == 1 && tag.element() < 0x1000 {
            continue; // private creators name vendors, not people
        }
        let private = tag.group() % 2 == 1;
        if !private && kept_by_profile(tag) {
            for v in text_values(e) {
                kept.insert(v.trim().to_ascii_lowercase());
            }
            continue;
        }
        let vr = if e.vr() == VR::UN { VR::LO } else { e.vr() };
        if private && !TEXT_VRS.contains(&vr) && vr != VR::UN {
            continue;
        }
        if !private && !TEXT_VRS.contains(&vr) {
            continue;
        }
        for v in text_values(e) {
            variants(vr, &v, out);
        }
    }
}

struct HeaderChecks {
    email: Regex,
    phone: Regex,
    ssn: Regex,
}

impl HeaderChecks {
    fn new() -> Self {
        HeaderChecks {
            email: Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}").expect("valid"),
            phone: Regex::new(r"\(?\b\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b").expect("valid"),
            ssn: Regex::new(r"\b\d{3}-\d{2}-\d{4}\b").expect("valid"),
        }
    }

    fn walk(
        &self,
        obj: &InMemDicomObject,
        rel: &str,
        creators: &mut Vec<(u16, u8, String)>,
        out: &mut Vec<Finding>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            out.push(unchecked(
                rel.into(),
                format!("items nested more than {MAX_DEPTH} deep were not checked"),
            ));
            return;
        }
        for e in obj.iter() {
            let tag = e.tag();
            if tag.group() % 2 == 1 && (0x0010..=0x00FF).contains(&tag.element()) {
                let c = text_values(e).join("");
                creators.push((tag.group(), tag.element() as u8, c));
            }
        }
        for e in obj.iter() {
            let tag = e.tag();
            let name = crate::attr::tag_name(tag);
            if tag.group() % 2 == 1 && tag.element() >= 0x1000 {
                let block = (tag.element() >> 8) as u8;
                let creator = creators
                    .iter()
                    .find(|(g, b, _)| *g == tag.group() && *b == block)
                    .map(|c| c.2.clone())
                    .unwrap_or_default();
                if !table().is_safe_private(tag.group(), &creator, tag.element() as u8) {
                    out.push(Finding {
                        file: rel.into(),
                        kind: "private attribute not on the safe list (Table E.3.10-1)".into(),
                        tag: Some(name.clone()),
                        value: String::new(),
                    });
                }
            }
            if let Value::Sequence(seq) = e.value() {
                for item in seq.items() {
                    let mut inner = Vec::new();
                    self.walk(item, rel, &mut inner, out, depth + 1);
                }
                continue;
            }
            if matches!(
                e.vr(),
                VR::LO | VR::SH | VR::LT | VR::ST | VR::UT | VR::UC | VR::PN
            ) {
                for v in text_values(e) {
                    for (re, what) in [
                        (&self.email, "e-mail address"),
                        (&self.ssn, "SSN-shaped number"),
                        (&self.phone, "phone number"),
                    ] {
                        if let Some(m) = re.find(&v) {
                            out.push(Finding {
                                file: rel.into(),
                                kind: format!("{what} in text"),
                                tag: Some(name.clone()),
                                value: mask(m.as_str()),
                            });
                        }
                    }
                }
            }
        }
    }

    fn check(
        &self,
        obj: &dicom_object::FileDicomObject<InMemDicomObject>,
        rel: &str,
        out: &mut Vec<Finding>,
    ) {
        let get = |t| obj.get(t).map(text_values).map(|v| v.join("\\"));
        if get(tags::PATIENT_IDENTITY_REMOVED).as_deref() != Some("YES") {
            out.push(Finding {
                file: rel.into(),
                kind: "PatientIdentityRemoved is not YES".into(),
                tag: Some(crate::attr::tag_name(tags::PATIENT_IDENTITY_REMOVED)),
                value: String::new(),
            });
        }
        // The shared rule of what may carry burned-in text; masked or declared pixels pass.
        if let Some(why) = crate::burned_in::carrier_reason(obj) {
            if crate::burned_in::recorded_pixels(obj) == crate::burned_in::RecordedPixels::Untouched
            {
                out.push(Finding {
                    file: rel.into(),
                    kind: format!(
                        "pixels may carry burned-in text ({why}) and no Clean Pixel Data (113101) is recorded"
                    ),
                    tag: Some(crate::attr::tag_name(tags::BURNED_IN_ANNOTATION)),
                    value: String::new(),
                });
            }
        }
        if obj.get(tags::ENCAPSULATED_DOCUMENT).is_some() {
            out.push(unchecked(
                rel.into(),
                "an encapsulated document, whose content (e.g. compressed PDF streams) is not searched",
            ));
        }
        self.walk(obj, rel, &mut Vec::new(), out, 0);
    }
}

/// The identifiers to search for, and how to find them as whole words.
struct Search {
    patterns: Vec<String>,
    ac: AhoCorasick,
}

impl Search {
    /// Patterns found in `hay` as whole words ("MARY" inside "PRIMARY" is not a name).
    fn hits<'a>(&'a self, hay: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
        let word = |i: Option<&u8>| i.is_some_and(|b| b.is_ascii_alphanumeric());
        self.ac.find_overlapping_iter(hay).filter_map(move |m| {
            let start_ok = m.start() == 0 || !word(hay.get(m.start() - 1));
            (start_ok && !word(hay.get(m.end()))).then(|| m.pattern().as_usize())
        })
    }

    fn finding(&self, rel: &str, pattern: usize, tag: Option<String>) -> Finding {
        Finding {
            file: rel.into(),
            kind: "value from the originals found in the file".into(),
            tag,
            value: mask(&self.patterns[pattern]),
        }
    }

    /// Search the decoded text of every attribute at every depth (in the data set's own
    /// character set, which a byte search of UTF-8 spellings would miss).
    fn in_values(
        &self,
        obj: &InMemDicomObject,
        rel: &str,
        seen: &mut BTreeSet<usize>,
        out: &mut Vec<Finding>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return; // reported by the header checks
        }
        for e in obj.iter() {
            if let Value::Sequence(seq) = e.value() {
                for item in seq.items() {
                    self.in_values(item, rel, seen, out, depth + 1);
                }
                continue;
            }
            if is_binary_vr(e.vr()) {
                continue; // searched as bytes
            }
            for v in text_values(e) {
                for p in self.hits(v.as_bytes()).collect::<Vec<_>>() {
                    if seen.insert(p) {
                        out.push(self.finding(rel, p, Some(crate::attr::tag_name(e.tag()))));
                    }
                }
            }
        }
    }

    /// Search raw (or inflated) bytes; patterns already reported for the file are not again.
    fn in_bytes(
        &self,
        bytes: &[u8],
        rel: &str,
        seen: &mut BTreeSet<usize>,
        out: &mut Vec<Finding>,
    ) {
        for p in self.hits(bytes).collect::<Vec<_>>() {
            if seen.insert(p) {
                out.push(self.finding(rel, p, None));
            }
        }
    }
}

/// VRs whose values are not text (searched as bytes only).
fn is_binary_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OW
            | VR::OF
            | VR::OD
            | VR::OL
            | VR::OV
            | VR::UN
            | VR::FL
            | VR::FD
            | VR::SL
            | VR::SS
            | VR::UL
            | VR::US
            | VR::SV
            | VR::UV
            | VR::AT
    )
}

const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// The kind of compressed archive a file is, by its magic bytes (dcmflow writes none).
fn archive_kind(b: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| b.starts_with(m);
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") || starts(b"PK\x07\x08") {
        Some("a ZIP")
    } else if starts(&[0x1F, 0x8B]) {
        Some("a gzip")
    } else if starts(b"BZh") && b.get(4..10) == Some(b"1AY&SY") {
        Some("a bzip2")
    } else if starts(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
        Some("an xz")
    } else if starts(&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C]) {
        Some("a 7-Zip")
    } else if starts(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Some("a zstd")
    } else {
        None
    }
}

/// The compressed text of a PNG (zTXt chunks, compressed iTXt chunks), inflated; tEXt and
/// uncompressed iTXt are plain bytes that the byte search sees already.
fn png_compressed_text(b: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use std::io::Read;
    const LIMIT: u64 = 64 << 20;
    let inflate = |z: &[u8]| -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(z)
            .take(LIMIT + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("a compressed PNG text chunk does not inflate: {e}"))?;
        if out.len() as u64 > LIMIT {
            return Err("a compressed PNG text chunk inflates beyond 64 MiB".into());
        }
        Ok(out)
    };
    let mut texts = Vec::new();
    let mut pos = 8;
    while pos + 12 <= b.len() {
        let len = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
        let kind = &b[pos + 4..pos + 8];
        let Some(data) = b.get(pos + 8..pos + 8 + len) else {
            return Err("a PNG chunk runs past the end of the file".into());
        };
        let after_keyword = data.iter().position(|&c| c == 0).map(|i| i + 1);
        match (kind, after_keyword) {
            (b"zTXt", Some(k)) => texts.push(inflate(data.get(k + 1..).unwrap_or(&[]))?),
            (b"iTXt", Some(k)) if data.get(k) == Some(&1) => {
                // flag, method, language tag\0, translated keyword\0, text
                let rest = data.get(k + 2..).unwrap_or(&[]);
                let mut nul = rest
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c == 0)
                    .map(|(i, _)| i);
                let (_, Some(t)) = (nul.next(), nul.next()) else {
                    return Err("a compressed PNG iTXt chunk is malformed".into());
                };
                texts.push(inflate(&rest[t + 1..])?);
            }
            (b"zTXt" | b"iTXt", None) => return Err("a PNG text chunk is malformed".into()),
            (b"IEND", _) => break,
            _ => {}
        }
        pos += 12 + len;
    }
    Ok(texts)
}

/// Check an output tree, with the originals when given.
pub fn verify(originals: &[PathBuf], output: &Path) -> Result<VerifyReport, String> {
    let mut report = VerifyReport::default();
    let mut ids = BTreeSet::new();
    let mut kept = BTreeSet::new();
    let mut problems = Vec::new();
    for root in originals {
        for entry in walk(root, true) {
            let f = match entry {
                Entry::File(f) => f,
                // The pipeline does not read these either.
                Entry::Other(_) => {
                    report.originals_skipped += 1;
                    continue;
                }
                Entry::Unreadable(p, why) => {
                    problems.push(unchecked(
                        original_name(root, &p),
                        format!(
                            "the original could not be read, so its identifying values were not searched for: {why}"
                        ),
                    ));
                    continue;
                }
            };
            match crate::read_dicom::open_dicom(&f, false) {
                Ok(obj) => {
                    report.originals_read += 1;
                    // File meta values name software, not people.
                    let m = obj.meta();
                    for v in [
                        m.implementation_class_uid(),
                        m.media_storage_sop_class_uid(),
                    ] {
                        kept.insert(v.trim_end_matches('\0').to_ascii_lowercase());
                    }
                    if let Some(v) = &m.implementation_version_name {
                        kept.insert(v.trim_end_matches(['\0', ' ']).to_ascii_lowercase());
                    }
                    let mut too_deep = false;
                    collect_identifiers(&obj, 0, &mut ids, &mut kept, &mut too_deep);
                    if too_deep {
                        problems.push(unchecked(
                            original_name(root, &f),
                            format!("the original's items nested more than {MAX_DEPTH} deep were not searched for identifying values"),
                        ));
                    }
                }
                // Not DICOM: the pipeline does not read it either.
                Err(dcmflow_engine::ItemError::Skipped(_)) => report.originals_skipped += 1,
                Err(e) => problems.push(unchecked(
                    original_name(root, &f),
                    format!(
                        "the original could not be read, so its identifying values were not searched for: {}",
                        e.reason()
                    ),
                )),
            }
        }
    }
    if !originals.is_empty() && report.originals_read == 0 {
        problems.push(unchecked(
            "original: (none)".into(),
            "no original could be read as DICOM, so there are no identifying values to search for",
        ));
    }
    ids.retain(|v| !kept.contains(&v.to_ascii_lowercase()));
    report.identifiers = ids.len() as u64;
    let patterns: Vec<String> = ids.into_iter().collect();
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(&patterns)
        .map_err(|e| format!("cannot build the search: {e}"))?;
    let search = Search { patterns, ac };
    let checks = HeaderChecks::new();
    let rel_of = |p: &Path| match p.strip_prefix(output) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_string(), // the output folder itself
        Ok(r) => r.display().to_string(),
        Err(_) => p.display().to_string(),
    };
    for entry in walk(output, false) {
        let f = match entry {
            Entry::File(f) => f,
            Entry::Other(p) => {
                problems.push(unchecked(
                    rel_of(&p),
                    "not a regular file (a symbolic link, FIFO, socket or device)",
                ));
                continue;
            }
            Entry::Unreadable(p, why) => {
                problems.push(unchecked(rel_of(&p), why));
                continue;
            }
        };
        let rel = rel_of(&f);
        let bytes = match std::fs::read(&f) {
            Ok(b) => b,
            Err(e) => {
                problems.push(unchecked(rel, format!("cannot read it: {e}")));
                continue;
            }
        };
        report.files_checked += 1;
        let mut seen = BTreeSet::new();
        // Bytes to search besides the file's own: inflated data sets and text chunks.
        let mut inflated = Vec::new();
        if crate::read_dicom::looks_like_dicom(&bytes) {
            match crate::read_dicom::open_dicom(&f, true) {
                Ok(obj) => {
                    report.dicom_files += 1;
                    search.in_values(&obj, &rel, &mut seen, &mut report.findings, 0);
                    if obj.meta().transfer_syntax().trim_end_matches('\0') == DEFLATED {
                        match crate::read_dicom::inflated_data_set(&bytes) {
                            Some(Ok(ds)) => inflated.push(ds),
                            Some(Err(e)) => problems.push(unchecked(
                                rel.clone(),
                                format!("the deflated data set was not searched: {}", e.reason()),
                            )),
                            None => problems.push(unchecked(
                                rel.clone(),
                                "the deflated data set was not found after the file meta group",
                            )),
                        }
                    }
                    checks.check(&obj, &rel, &mut report.findings);
                }
                Err(e) => problems.push(unchecked(
                    rel.clone(),
                    format!("not readable as DICOM: {}", e.reason()),
                )),
            }
        } else if let Some(kind) = archive_kind(&bytes) {
            problems.push(unchecked(
                rel.clone(),
                format!("{kind} archive, whose compressed content is not searched"),
            ));
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            match png_compressed_text(&bytes) {
                Ok(texts) => inflated.extend(texts),
                Err(why) => problems.push(unchecked(rel.clone(), why)),
            }
        }
        search.in_bytes(&bytes, &rel, &mut seen, &mut report.findings);
        for b in &inflated {
            search.in_bytes(b, &rel, &mut seen, &mut report.findings);
        }
    }
    report.not_checked = problems.len() as u64;
    report.findings.extend(problems);
    report.findings.sort();
    report.findings.dedup();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_png_text_is_inflated_for_the_search() {
        use std::io::Write;
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0; 4]); // CRC, not checked
            c
        };
        let zlib = |t: &[u8]| {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(t).unwrap();
            z.finish().unwrap()
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ztxt = b"Comment\0\0".to_vec();
        ztxt.extend(zlib(b"Doe^Jane"));
        png.extend(chunk(b"zTXt", &ztxt));
        let mut itxt = b"Author\0\x01\0en\0\0".to_vec();
        itxt.extend(zlib(b"Jane Doe"));
        png.extend(chunk(b"iTXt", &itxt));
        png.extend(chunk(b"IEND", &[]));
        let texts = png_compressed_text(&png).unwrap();
        assert_eq!(texts, vec![b"Doe^Jane".to_vec(), b"Jane Doe".to_vec()]);
        // A chunk that runs past the end is reported, not skipped.
        let e = png_compressed_text(&png[..png.len() - 20]).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
    }

    #[test]
    fn archives_are_recognised_so_they_are_reported_as_not_checked() {
        assert_eq!(archive_kind(b"PK\x03\x04rest"), Some("a ZIP"));
        assert_eq!(archive_kind(&[0x1F, 0x8B, 8, 0]), Some("a gzip"));
        assert_eq!(archive_kind(b"{\"run\": 1}"), None);
        assert_eq!(archive_kind(b"\x89PNG\r\n\x1a\n"), None);
    }

    #[test]
    fn masked_values_keep_only_initials() {
        assert_eq!(mask("John^Smith"), "J*** S****");
        assert_eq!(mask("20240102"), "2*******");
    }

    #[test]
    fn names_and_dates_are_searched_in_several_spellings() {
        let mut out = BTreeSet::new();
        variants(VR::PN, "Doe^John", &mut out);
        assert!(out.contains("John Doe") && out.contains("Doe, John"));
        variants(VR::DA, "20240102", &mut out);
        assert!(out.contains("2024-01-02") && out.contains("01/02/2024"));
        variants(VR::UI, "1.2.840.10008.5.1.4.1.1.2", &mut out);
        assert!(!out.iter().any(|v| v.starts_with("1.2.840.10008")));
    }
}
