//! The identifier echo check: Table E.1-1 lists where identifiers are *meant* to be, but they
//! also turn up where the profile keeps text (attributes the table does not list, kept private
//! attributes, SR content items, graphic and overlay text, values stored as UN). Before the
//! profile runs, [`collect`] takes the instance's identifying values (every person name and its
//! components of 3+ letters, patient and request IDs, accession numbers, dates, addresses, phone
//! numbers, e-mail addresses, institution and station names); after it, [`sweep`] searches every
//! text value left at every depth for them (see `text.rs` for how text is compared), and for
//! e-mail addresses, phone numbers and (unless dates are kept) calendar dates by pattern. A hit is
//! scrubbed where the recipe cleans descriptors with `scrub`; otherwise the instance is
//! quarantined, naming the attribute and where the value came from, never the value.

use std::collections::HashSet;

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_encoding::text::{SpecificCharacterSet, TextCodec};
use dicom_object::InMemDicomObject;

use super::actions::{dict_vr, keyword, max_len, path_of, str_value, truncate_chars, value_string};
use super::table::ProfileOption;
use super::text::{self, normalize, pattern_hits, redact, Matcher, Pattern, Terms};
use super::{DatePolicy, DeidError, Deidentifier};

const SPECIFIC_CHARSET: Tag = Tag(0x0008, 0x0005);
const PATIENT_BIRTH_DATE: Tag = Tag(0x0010, 0x0030);
const MANUFACTURER: Tag = Tag(0x0008, 0x0070);
const MANUFACTURER_MODEL: Tag = Tag(0x0008, 0x1090);
const INSTITUTION: [Tag; 3] = [
    Tag(0x0008, 0x0080), // InstitutionName
    Tag(0x0008, 0x0081), // InstitutionAddress
    Tag(0x0008, 0x1040), // InstitutionalDepartmentName
];
const STATION_NAME: Tag = Tag(0x0008, 0x1010);
const REGION_OF_RESIDENCE: Tag = Tag(0x0010, 0x2152);
/// Identifiers of the patient, the visit and the request.
const ID_TAGS: [Tag; 12] = [
    Tag(0x0010, 0x0020), // PatientID
    Tag(0x0010, 0x1000), // OtherPatientIDs
    Tag(0x0010, 0x1090), // MedicalRecordLocator
    Tag(0x0008, 0x0050), // AccessionNumber
    Tag(0x0020, 0x0010), // StudyID
    Tag(0x0038, 0x0010), // AdmissionID
    Tag(0x0038, 0x0060), // ServiceEpisodeID
    Tag(0x0040, 0x1001), // RequestedProcedureID
    Tag(0x0040, 0x2016), // PlacerOrderNumberImagingServiceRequest
    Tag(0x0040, 0x2017), // FillerOrderNumberImagingServiceRequest
    Tag(0x0040, 0x0009), // ScheduledProcedureStepID
    Tag(0x0040, 0x0253), // PerformedProcedureStepID
];
/// Attributes the device fills in (its maker, model and software): no one types a patient's
/// details there, and a test patient named after the vendor ("GDCM^Patient" on a "GDCM Factory"
/// device) is no leak. Not searched.
const DEVICE_FILLED: [Tag; 4] = [
    Tag(0x0008, 0x0070), // Manufacturer
    Tag(0x0008, 0x1090), // ManufacturerModelName
    Tag(0x0018, 0x1019), // SecondaryCaptureDeviceSoftwareVersions
    Tag(0x0018, 0x1020), // SoftwareVersions
];
/// Attributes that hold serial numbers and codes, where dates and numbers are versions and codes:
/// searched for the instance's identifiers, not for patterns.
const NO_PATTERNS: [Tag; 4] = [
    Tag(0x0018, 0x1000), // DeviceSerialNumber
    Tag(0x0008, 0x0100), // CodeValue
    Tag(0x0008, 0x0102), // CodingSchemeDesignator
    Tag(0x0008, 0x0103), // CodingSchemeVersion
];
/// Attributes dcmflow writes after the sweep, or writes itself: not searched.
const OWN_TAGS: [Tag; 4] = [
    Tag(0x0012, 0x0062),
    Tag(0x0012, 0x0063),
    Tag(0x0012, 0x0064),
    Tag(0x0028, 0x0303),
];
const MAX_DEPTH: usize = 64;

/// The instance's identifying values, taken before the profile runs.
pub(super) fn collect(obj: &InMemDicomObject, de: &Deidentifier) -> Matcher {
    let mut c = Collector {
        de,
        terms: Terms::default(),
        device_words: [MANUFACTURER, MANUFACTURER_MODEL]
            .iter()
            .filter_map(|t| obj.get(*t).and_then(value_string))
            .flat_map(|s| {
                let n = normalize(&s);
                let mut v: Vec<String> = n.split(' ').map(String::from).collect();
                v.push(n);
                v
            })
            .collect(),
    };
    c.level(obj, 0);
    c.terms.matcher()
}

struct Collector<'a> {
    de: &'a Deidentifier,
    terms: Terms,
    /// Words of the manufacturer and model: a station named after its model identifies no one.
    device_words: HashSet<String>,
}

impl Collector<'_> {
    fn level(&mut self, obj: &InMemDicomObject, depth: usize) {
        for e in obj.iter() {
            let tag = e.tag();
            if let Value::Sequence(seq) = e.value() {
                if depth < MAX_DEPTH {
                    for it in seq.items() {
                        self.level(it, depth + 1);
                    }
                }
                continue;
            }
            if tag == SPECIFIC_CHARSET || self.de.keep.contains(&tag) {
                continue;
            }
            let vr = if e.vr() == VR::UN {
                dict_vr(tag).unwrap_or(VR::UN)
            } else {
                e.vr()
            };
            // Private attributes: only explicit person names are known to be identifying. Only
            // names, dates and text hold terms (formatting pixel data as text would cost more
            // than the whole de-identification).
            if (tag.group() % 2 == 1 && vr != VR::PN)
                || !matches!(
                    vr,
                    VR::PN | VR::DA | VR::DT | VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC
                )
            {
                continue;
            }
            let Some(s) = value_string(e) else { continue };
            for v in s.split('\\').map(str::trim).filter(|v| !v.is_empty()) {
                self.value(tag, vr, v);
            }
        }
    }

    fn value(&mut self, tag: Tag, vr: VR, v: &str) {
        let dates_leave = self.de.dates != DatePolicy::Keep;
        match vr {
            // A private name may be a vendor's workflow label ("SyngoWorkflow^RIS"): only the
            // whole name is searched for, not its words.
            VR::PN if tag.group() % 2 == 1 && normalize(v).contains(' ') => {
                self.terms.add_words(v, tag, 5);
            }
            VR::PN if tag.group() % 2 == 1 => {}
            VR::PN => self.name(tag, v),
            VR::DA | VR::DT if tag == PATIENT_BIRTH_DATE || dates_leave => {
                for d in text::date_variants(v) {
                    self.terms.add_words(&d, tag, 6);
                }
            }
            VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC => {
                let kw = keyword(tag);
                if ID_TAGS.contains(&tag) {
                    if !self.terms.add_compact(v, tag, 6) {
                        self.terms.add_words(v, tag, 4);
                    }
                } else if kw.contains("Telephone") {
                    self.phone(tag, v);
                } else if kw.contains("Telecom") {
                    for w in v.split_whitespace().filter(|w| w.contains('@')) {
                        self.terms.add_words(w, tag, 5);
                    }
                    self.phone(tag, v);
                } else if INSTITUTION.contains(&tag) {
                    if !self.de.option_on(ProfileOption::RetainInstitutionIdentity) {
                        self.place(tag, v);
                    }
                } else if tag == STATION_NAME {
                    if !self.de.option_on(ProfileOption::RetainDeviceIdentity) {
                        self.place(tag, v);
                    }
                } else if kw.ends_with("Address") || tag == REGION_OF_RESIDENCE {
                    self.place(tag, v);
                }
            }
            _ => {}
        }
    }

    /// A person name: each component word (3+ letters; 2+ in scripts without Latin letters) and,
    /// for names of several words, the whole name (which catches two-letter surnames in context).
    fn name(&mut self, tag: Tag, v: &str) {
        for group in v.split('=') {
            let n = normalize(group);
            let words: Vec<&str> = n.split(' ').filter(|w| !w.is_empty()).collect();
            for w in &words {
                let latin = w.chars().any(|c| c.is_ascii_alphanumeric());
                self.terms.add_words(w, tag, if latin { 3 } else { 2 });
            }
            if words.len() >= 2 {
                self.terms.add_words(&n, tag, 3);
            }
        }
    }

    /// Phone numbers: the last ten (or all, if fewer) of 7 or more digits, compared compact.
    fn phone(&mut self, tag: Tag, v: &str) {
        for part in v.split([',', ';', '/']) {
            let digits: String = part.chars().filter(|c| c.is_ascii_digit()).collect();
            if digits.len() >= 7 {
                self.terms
                    .add_compact(&digits[digits.len().saturating_sub(10)..], tag, 7);
            }
        }
    }

    /// Institution, station, address or region: the whole value and its comma- or caret-separated
    /// parts of 5+ characters, unless they are the manufacturer's or model's words.
    fn place(&mut self, tag: Tag, v: &str) {
        let mut add = |s: &str, min: usize| {
            if !self.device_words.contains(&normalize(s)) {
                self.terms.add_words(s, tag, min);
            }
        };
        add(v, 4);
        if v.contains([',', '^', ';', '\n']) {
            for part in v.split([',', '^', ';', '\n']) {
                add(part, 5);
            }
        }
    }
}

/// What the sweep does with a hit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum OnHit {
    /// Replace the identifying part by `***` (a UN value is removed).
    Scrub,
    /// Report it: the caller quarantines the instance.
    Quarantine,
}

/// Search every text value of the de-identified data set for the instance's identifying values
/// (and for contacts, and dates unless `dates` is keep). With [`OnHit::Scrub`] the hits are
/// replaced and recorded in `actions`; with [`OnHit::Quarantine`] the instance is refused.
pub(super) fn sweep(
    obj: &mut InMemDicomObject,
    matcher: &Matcher,
    de: &Deidentifier,
    on_hit: OnHit,
    actions: &mut Vec<(String, &'static str)>,
) -> Result<(), DeidError> {
    let charset = obj
        .get(SPECIFIC_CHARSET)
        .and_then(|e| e.to_str().ok())
        .and_then(|s| {
            s.split('\\')
                .map(str::trim)
                .rfind(|c| !c.is_empty())
                .and_then(SpecificCharacterSet::from_code)
        });
    let mut s = Sweep {
        matcher,
        dates: de.dates != DatePolicy::Keep,
        on_hit,
        charset,
        found: Vec::new(),
        actions,
    };
    s.level(obj, "", 0)?;
    if s.found.is_empty() {
        return Ok(());
    }
    let mut seen = HashSet::new();
    let mut parts = Vec::new();
    for (path, source) in &s.found {
        let what = match source {
            Some(t) => format!("{path} holds a value of {}", path_of_kw(*t)),
            None => format!("{path} holds an e-mail address, phone number or date"),
        };
        if seen.insert(what.clone()) {
            parts.push(what);
        }
    }
    let n = parts.len();
    parts.truncate(3);
    let more = if n > 3 {
        format!(" (and {} more)", n - 3)
    } else {
        String::new()
    };
    Err(DeidError::Quarantine(format!(
        "identifier echo: {}{more}; clean descriptors with `descriptors: scrub` to scrub such text instead",
        parts.join("; ")
    )))
}

fn path_of_kw(tag: Tag) -> String {
    let kw = keyword(tag);
    let p = path_of("", tag);
    if kw.is_empty() {
        p
    } else {
        format!("{kw} {p}")
    }
}

struct Sweep<'a> {
    matcher: &'a Matcher,
    dates: bool,
    on_hit: OnHit,
    charset: Option<SpecificCharacterSet>,
    /// (element path with keyword, the attribute whose value it echoes).
    found: Vec<(String, Option<Tag>)>,
    actions: &'a mut Vec<(String, &'static str)>,
}

fn is_searched_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UR | VR::UT
    )
}

impl Sweep<'_> {
    fn level(
        &mut self,
        obj: &mut InMemDicomObject,
        prefix: &str,
        depth: usize,
    ) -> Result<(), DeidError> {
        if depth > MAX_DEPTH {
            return Err(DeidError::Failed(format!(
                "{prefix}: sequences nested deeper than {MAX_DEPTH}"
            )));
        }
        let tags: Vec<Tag> = obj.tags().collect();
        for tag in tags {
            if (depth == 0 && OWN_TAGS.contains(&tag)) || DEVICE_FILLED.contains(&tag) {
                continue;
            }
            let Some(e) = obj.get(tag) else { continue };
            let path = || {
                let kw = keyword(tag);
                let p = path_of(prefix, tag);
                if kw.is_empty() {
                    p
                } else {
                    format!("{p} {kw}")
                }
            };
            if matches!(e.value(), Value::Sequence(_)) {
                let Some(elem) = obj.take(tag) else { continue };
                let base = path_of(prefix, tag);
                let Value::Sequence(seq) = elem.into_value() else {
                    unreachable!()
                };
                let mut items = seq.into_items();
                let mut res = Ok(());
                for (i, item) in items.iter_mut().enumerate() {
                    res = self.level(item, &format!("{base}[{i}]."), depth + 1);
                    if res.is_err() {
                        break;
                    }
                }
                obj.put(DataElement::new(
                    tag,
                    VR::SQ,
                    DataSetSequence::new(items, Length::UNDEFINED),
                ));
                res?;
                continue;
            }
            let vr = e.vr();
            let text = if is_searched_vr(vr) {
                value_string(e)
            } else if vr == VR::UN && dict_vr(tag).is_none_or(is_searched_vr) {
                self.un_text(e.value())
            } else {
                None
            };
            let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
                continue;
            };
            let mut hits = self.matcher.terms_in(&text);
            if !NO_PATTERNS.contains(&tag) {
                hits.extend(pattern_hits(&text, Pattern::Contact));
                if self.dates {
                    hits.extend(pattern_hits(&text, Pattern::Date));
                }
            }
            if hits.is_empty() {
                continue;
            }
            match self.on_hit {
                OnHit::Quarantine => {
                    let source = hits.iter().find_map(|h| h.source);
                    self.found.push((path(), source));
                }
                OnHit::Scrub if vr == VR::UN => {
                    obj.remove_element(tag);
                    self.actions.push((path(), "removed"));
                }
                OnHit::Scrub => {
                    let cleaned = truncate_chars(&redact(&text, &hits), max_len(vr));
                    obj.put(DataElement::new(tag, vr, str_value(&cleaned)));
                    self.actions.push((path(), "scrubbed"));
                }
            }
        }
        Ok(())
    }

    /// A UN value that reads as text (in the data set's character set): its text.
    fn un_text(
        &self,
        v: &Value<InMemDicomObject, dicom_object::mem::InMemFragment>,
    ) -> Option<String> {
        let Value::Primitive(PrimitiveValue::U8(b)) = v else {
            return None;
        };
        let b: &[u8] = b;
        let end = b
            .iter()
            .rposition(|&c| c != 0 && c != b' ')
            .map_or(0, |p| p + 1);
        let b = &b[..end];
        if b.len() < 3 {
            return None;
        }
        let printable = b
            .iter()
            .filter(|&&c| c >= 0x20 || matches!(c, b'\t' | b'\r' | b'\n' | 0x1b))
            .count();
        if printable * 10 < b.len() * 9 {
            return None;
        }
        let decoded = self.charset.as_ref().and_then(|cs| cs.decode(b).ok());
        Some(decoded.unwrap_or_else(|| String::from_utf8_lossy(b).into_owned()))
    }
}
