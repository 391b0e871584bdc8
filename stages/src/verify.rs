//! `dcmflow verify`: an independent check of an output tree before it leaves the institution.
//! It does not trust the pipeline that made the outputs: with the originals, every identifying
//! value found in them (attributes that PS3.15 Table E.1-1 does not keep, private attributes,
//! UIDs, names in several spellings, dates in several formats) is searched for in every output
//! file's bytes; without them, header checks look for what should not be there (missing
//! PatientIdentityRemoved, private attributes not on the safe list, phone/e-mail/SSN-shaped
//! text, pixels that may carry burned-in text with no mask recorded). Findings name the file and
//! tag and show values masked (`J*** S****`).

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
    /// Distinct identifying strings searched for.
    pub identifiers: u64,
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
) {
    if depth > 64 {
        return;
    }
    for e in obj.iter() {
        let tag = e.tag();
        if let Value::Sequence(seq) = e.value() {
            for item in seq.items() {
                collect_identifiers(item, depth + 1, out, kept);
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
        if depth > 64 {
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
        self.walk(obj, rel, &mut Vec::new(), out, 0);
    }
}

/// Check an output tree, with the originals when given.
pub fn verify(originals: &[PathBuf], output: &Path) -> Result<VerifyReport, String> {
    let mut report = VerifyReport::default();
    let mut ids = BTreeSet::new();
    let mut kept = BTreeSet::new();
    for root in originals {
        let list = if root.is_dir() {
            files(root)
        } else {
            vec![root.clone()]
        };
        for f in list {
            if let Ok(obj) = crate::read_dicom::open_dicom(&f, false) {
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
                collect_identifiers(&obj, 0, &mut ids, &mut kept);
            }
        }
    }
    ids.retain(|v| !kept.contains(&v.to_ascii_lowercase()));
    report.identifiers = ids.len() as u64;
    let patterns: Vec<&String> = ids.iter().collect();
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(&patterns)
        .map_err(|e| format!("cannot build the search: {e}"))?;
    let checks = HeaderChecks::new();
    for f in files(output) {
        let rel = f.strip_prefix(output).unwrap_or(&f).display().to_string();
        let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        report.files_checked += 1;
        let mut seen = BTreeSet::new();
        for m in ac.find_overlapping_iter(&bytes) {
            // Whole words only: "MARY" inside "PRIMARY" is not a name.
            let word = |i: Option<&u8>| i.is_some_and(|b| b.is_ascii_alphanumeric());
            let start_ok = m.start() == 0 || !word(bytes.get(m.start() - 1));
            if !start_ok || word(bytes.get(m.end())) {
                continue;
            }
            if seen.insert(m.pattern().as_usize()) {
                report.findings.push(Finding {
                    file: rel.clone(),
                    kind: "value from the originals found in the file".into(),
                    tag: None,
                    value: mask(patterns[m.pattern().as_usize()]),
                });
            }
        }
        let is_dicom = bytes.len() > 132 && &bytes[128..132] == b"DICM";
        if is_dicom {
            if let Ok(obj) = crate::read_dicom::open_dicom(&f, true) {
                report.dicom_files += 1;
                checks.check(&obj, &rel, &mut report.findings);
            }
        }
    }
    report.findings.sort();
    report.findings.dedup();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

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
