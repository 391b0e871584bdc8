//! The walker: applies the resolved Table E.1-1 action to every element at every depth.

use std::collections::{HashMap, HashSet};

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::mem::InMemElement;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::dates;
use super::echo::{self, OnHit};
use super::table::{normalize_creator, table, Action, ProfileOption, Row};
use super::text::{self, Matcher};
use super::{DatePolicy, DeidError, DeidReport, Deidentifier, DescriptorPolicy, Keys};

const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
const PATIENT_AGE: Tag = Tag(0x0010, 0x1010);
const PATIENT_BIRTH_DATE: Tag = Tag(0x0010, 0x0030);
const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
/// Recomputed at the end of `apply`, so any incoming values are dropped first.
const MARK_TAGS: [Tag; 4] = [
    Tag(0x0012, 0x0062),
    Tag(0x0012, 0x0063),
    Tag(0x0012, 0x0064),
    Tag(0x0028, 0x0303),
];
/// Identifiers under Z that still get a keyed pseudonym (keeps linkage, no PHI).
const Z_PSEUDONYM: [Tag; 2] = [Tag(0x0008, 0x0050), Tag(0x0020, 0x0010)];

/// Simple (non-compound) action after resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simple {
    X,
    Z,
    D,
    K,
    C,
    U,
}

/// Sequences with action X/Z that are Type 3 in every composite IOD that uses them
/// (ReferencedStudySequence: General Study module, Request Attributes macro).
const TYPE3_ONLY_SEQUENCES: &[Tag] = &[Tag(0x0008, 0x1110)];

struct Ctx<'a> {
    de: &'a Deidentifier,
    keys: &'a Keys,
    date_offset: i64,
    patient_new: String,
    /// The instance's identifying values (echo check and `scrub` descriptors).
    matcher: Option<Matcher>,
    report: DeidReport,
    uid_seen: HashSet<String>,
    depth: usize,
}

/// Deeper nesting than this is refused (protects the stack; no real IOD comes close).
const MAX_DEPTH: usize = 64;

pub(super) fn keyword(tag: Tag) -> &'static str {
    StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.alias())
        .unwrap_or("")
}

pub(super) fn dict_vr(tag: Tag) -> Option<VR> {
    StandardDataDictionary.by_tag(tag).map(|e| e.vr().relaxed())
}

fn tag_str(tag: Tag) -> String {
    let mut s = String::with_capacity(11);
    push_tag(&mut s, tag);
    s
}

/// Append `(GGGG,EEEE)` (upper-case hex) without the formatting machinery: this runs for every
/// element of every file.
fn push_tag(s: &mut String, tag: Tag) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let push16 = |s: &mut String, v: u16| {
        for shift in [12, 8, 4, 0] {
            s.push(HEX[((v >> shift) & 0xF) as usize] as char);
        }
    };
    s.push('(');
    push16(s, tag.group());
    s.push(',');
    push16(s, tag.element());
    s.push(')');
}

/// `prefix` followed by the tag, as element paths are written in reports.
pub(super) fn path_of(prefix: &str, tag: Tag) -> String {
    let mut s = String::with_capacity(prefix.len() + 11);
    s.push_str(prefix);
    push_tag(&mut s, tag);
    s
}

fn is_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::LO | VR::LT | VR::ST | VR::UT | VR::SH | VR::UC | VR::PN
    )
}

pub(super) fn max_len(vr: VR) -> usize {
    match vr {
        VR::SH | VR::AE | VR::CS => 16,
        VR::LO | VR::PN | VR::UI => 64,
        VR::ST => 1024,
        VR::LT => 10240,
        _ => usize::MAX,
    }
}

pub(super) fn truncate_chars(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// String content of a primitive element; UN/OB bytes decoded leniently.
pub(super) fn value_string(e: &InMemElement) -> Option<String> {
    match e.value() {
        Value::Primitive(PrimitiveValue::U8(b)) => Some(
            String::from_utf8_lossy(b)
                .trim_end_matches(['\0', ' '])
                .to_string(),
        ),
        Value::Primitive(p) => {
            Some(p.to_str()).map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        }
        _ => None,
    }
}

pub(super) fn str_value(s: &str) -> PrimitiveValue {
    if s.contains('\\') {
        PrimitiveValue::Strs(s.split('\\').map(|x| x.to_string()).collect())
    } else {
        PrimitiveValue::Str(s.to_string())
    }
}

fn is_identifier_keyword(tag: Tag, kw: &str) -> bool {
    matches!(
        tag.group(),
        0x0008 | 0x0010 | 0x0020 | 0x0032 | 0x0038 | 0x0040 | 0x0070 | 0x0400
    ) && (kw.ends_with("ID")
        || kw.ends_with("IDs")
        || kw.ends_with("Number")
        || kw.ends_with("Identifier"))
}

impl<'a> Ctx<'a> {
    fn record(&mut self, path: &str, tag: Tag, action: &'static str) {
        let kw = keyword(tag);
        let mut p = String::with_capacity(path.len() + 1 + kw.len());
        p.push_str(path);
        if !kw.is_empty() {
            p.push(' ');
            p.push_str(kw);
        }
        self.report.actions.push((p, action));
    }

    fn map_uid(&mut self, old: &str) -> String {
        let old = old.trim_matches(['\0', ' ']);
        if old.is_empty() || old.starts_with("1.2.840.10008.") {
            return old.to_string();
        }
        let new = self.keys.uid(old);
        if self.uid_seen.insert(old.to_string()) {
            self.report.uid_map.push((old.to_string(), new.clone()));
        }
        new
    }

    /// Resolve the row's action under the enabled options (an option's C beats an option's K).
    fn row_action(&self, row: &Row) -> Action {
        let mut k = None;
        let mut c = None;
        for o in ProfileOption::ALL {
            let on = match o {
                // The longitudinal columns follow the effective date policy, see mod.rs.
                ProfileOption::RetainLongitudinalFullDates => self.de.dates == DatePolicy::Keep,
                ProfileOption::RetainLongitudinalModifiedDates => {
                    matches!(
                        self.de.dates,
                        DatePolicy::Shift { .. } | DatePolicy::YearOnly
                    )
                }
                _ => self.de.option_on(o),
            };
            if !on {
                continue;
            }
            match row.option(o) {
                Some(Action::C) => c = Some(Action::C),
                Some(a) => {
                    k.get_or_insert(a);
                }
                None => {}
            }
        }
        c.or(k).unwrap_or(row.basic)
    }

    fn simplify(&self, a: Action, row: &Row, is_seq: bool, vr: VR) -> Simple {
        let compound = matches!(
            a,
            Action::ZD | Action::XZ | Action::XD | Action::XZD | Action::XZU
        );
        if compound && !row.in_std_comp_iod {
            return Simple::X;
        }
        match a {
            Action::X => Simple::X,
            Action::Z => Simple::Z,
            Action::D => Simple::D,
            Action::K => Simple::K,
            Action::C => Simple::C,
            Action::U => Simple::U,
            Action::XZ => Simple::Z,
            Action::XD | Action::XZD | Action::ZD => {
                if is_seq {
                    Simple::Z
                } else {
                    Simple::D
                }
            }
            Action::XZU => {
                if is_seq || vr == VR::UI {
                    Simple::U
                } else {
                    Simple::Z
                }
            }
        }
    }

    /// Process all elements of one dataset (any depth).
    fn walk(&mut self, obj: &mut InMemDicomObject, prefix: &str) -> Result<(), DeidError> {
        let tags: Vec<Tag> = obj.tags().collect();
        // private creators at this level: (group, block) -> creator
        let mut creators: HashMap<(u16, u8), String> = HashMap::new();
        for &t in &tags {
            if t.group() % 2 == 1 && (0x0010..=0x00FF).contains(&t.element()) {
                if let Some(e) = obj.get(t) {
                    creators.insert(
                        (t.group(), t.element() as u8),
                        value_string(e).unwrap_or_default(),
                    );
                }
            }
        }
        let declared = if self.de.opts.trust_declared_safe_private
            && self.de.option_on(ProfileOption::RetainSafePrivate)
        {
            declared_safe(obj)
        } else {
            Vec::new()
        };
        let mut kept_blocks: HashSet<(u16, u8)> = HashSet::new();
        for &tag in &tags {
            if tag.group() % 2 == 1 && (0x0010..=0x00FF).contains(&tag.element()) {
                continue; // creators decided after their blocks
            }
            let Some(elem) = obj.take(tag) else { continue };
            let path = path_of(prefix, tag);
            let out = self.element(elem, &path, &creators, &declared)?;
            if let Some(e) = out {
                if tag.group() % 2 == 1 && tag.element() > 0x00FF {
                    kept_blocks.insert((tag.group(), (tag.element() >> 8) as u8));
                }
                obj.put(e);
            }
        }
        for &tag in &tags {
            if tag.group() % 2 == 1 && (0x0010..=0x00FF).contains(&tag.element()) {
                let path = path_of(prefix, tag);
                if kept_blocks.contains(&(tag.group(), tag.element() as u8)) {
                    self.record(&path, tag, "kept");
                } else {
                    obj.remove_element(tag);
                    self.record(&path, tag, "removed");
                }
            }
        }
        Ok(())
    }

    fn recurse_items(&mut self, elem: InMemElement, path: &str) -> Result<InMemElement, DeidError> {
        let tag = elem.tag();
        match elem.into_value() {
            Value::Sequence(seq) => {
                if self.depth >= MAX_DEPTH {
                    return Err(DeidError::Failed(format!(
                        "{}: sequences nested deeper than {MAX_DEPTH}",
                        tag_str(tag)
                    )));
                }
                self.depth += 1;
                let mut items = seq.into_items();
                for (i, item) in items.iter_mut().enumerate() {
                    self.walk(item, &format!("{path}[{i}]."))?;
                }
                self.depth -= 1;
                Ok(DataElement::new(
                    tag,
                    VR::SQ,
                    DataSetSequence::new(items, Length::UNDEFINED),
                ))
            }
            _ => Err(DeidError::Failed(format!(
                "{}: expected a sequence value",
                tag_str(tag)
            ))),
        }
    }

    fn element(
        &mut self,
        elem: InMemElement,
        path: &str,
        creators: &HashMap<(u16, u8), String>,
        declared: &[Declared],
    ) -> Result<Option<InMemElement>, DeidError> {
        let tag = elem.tag();
        let is_seq = matches!(elem.value(), Value::Sequence(_));
        // group length elements are stale after editing
        if tag.element() == 0x0000 || MARK_TAGS.contains(&tag) {
            self.record(path, tag, "removed");
            return Ok(None);
        }
        if self.de.remove.contains(&tag) {
            self.record(path, tag, "removed");
            return Ok(None);
        }
        if self.de.keep.contains(&tag) {
            self.record(path, tag, "kept");
            return Ok(Some(if is_seq {
                self.recurse_items(elem, path)?
            } else {
                elem
            }));
        }
        // Private data elements.
        if tag.group() % 2 == 1 {
            let low = tag.element() as u8;
            let safe = self.de.option_on(ProfileOption::RetainSafePrivate)
                && tag.element() > 0x00FF
                && creators
                    .get(&(tag.group(), (tag.element() >> 8) as u8))
                    .map(|c| {
                        table().is_safe_private(tag.group(), c, low)
                            || declared.iter().any(|d| {
                                d.group == tag.group()
                                    && d.creator == normalize_creator(c)
                                    && d.lows.as_ref().map(|l| l.contains(&low)).unwrap_or(true)
                            })
                    })
                    .unwrap_or(false);
            if safe {
                self.record(path, tag, "kept");
                return Ok(Some(if is_seq {
                    self.recurse_items(elem, path)?
                } else {
                    elem
                }));
            }
            self.record(path, tag, "removed");
            return Ok(None);
        }
        // Patient identity.
        if tag == PATIENT_ID || tag == PATIENT_NAME {
            let vr = if tag == PATIENT_ID { VR::LO } else { VR::PN };
            self.record(path, tag, "dummy");
            return Ok(Some(DataElement::new(
                tag,
                vr,
                PrimitiveValue::from(self.patient_new.as_str()),
            )));
        }
        let row = table().lookup(tag);
        let hdr_vr = elem.vr();
        let vr = if hdr_vr == VR::UN {
            dict_vr(tag).unwrap_or(VR::UN)
        } else {
            hdr_vr
        };
        if !is_seq && vr == VR::SQ {
            // A sequence dicom-rs could not parse (e.g. UN bytes): it cannot be inspected, so it goes.
            self.record(path, tag, "removed");
            return Ok(None);
        }
        let Some(row) = row else {
            // Not in the table: kept (dates still follow a shift/year_only policy; sequences are cleaned).
            if is_seq {
                return Ok(Some(self.recurse_items(elem, path)?));
            }
            if matches!(vr, VR::DA | VR::DT)
                && matches!(
                    self.de.dates,
                    DatePolicy::Shift { .. } | DatePolicy::YearOnly
                )
            {
                return Ok(self.temporal(elem, path, vr, Simple::X));
            }
            return Ok(Some(elem));
        };
        let resolved = self.row_action(row);
        let mut simple = self.simplify(resolved, row, is_seq, vr);
        // X/Z is X for a Type 3 attribute: a Type 3 sequence may not be present with zero items
        // (dciodvfy: "Bad Sequence number of Items 0"), so an emptied one breaks the file.
        if is_seq
            && simple == Simple::Z
            && resolved == Action::XZ
            && TYPE3_ONLY_SEQUENCES.contains(&tag)
        {
            simple = Simple::X;
        }

        // Dates and times.
        if !is_seq && matches!(vr, VR::DA | VR::DT | VR::TM) && simple != Simple::U {
            let temporal = row
                .option(ProfileOption::RetainLongitudinalFullDates)
                .is_some()
                || row
                    .option(ProfileOption::RetainLongitudinalModifiedDates)
                    .is_some();
            let strict = self.simplify(row.basic, row, false, vr);
            if tag == PATIENT_BIRTH_DATE
                && self.de.dates == DatePolicy::YearOnly
                && self
                    .de
                    .option_on(ProfileOption::RetainPatientCharacteristics)
            {
                return Ok(self.temporal(elem, path, vr, Simple::Z));
            }
            if temporal && self.de.dates != DatePolicy::Remove {
                return Ok(self.temporal(elem, path, vr, strict));
            }
            if simple == Simple::C {
                simple = strict;
            }
            return self.apply_simple(elem, path, vr, simple, row);
        }
        if tag == PATIENT_AGE && simple == Simple::K {
            return Ok(match value_string(&elem).as_deref().map(dates::cap_age) {
                Some(Some(a)) => {
                    self.record(path, tag, "cleaned");
                    Some(DataElement::new(tag, VR::AS, PrimitiveValue::from(a)))
                }
                Some(None) => {
                    self.record(path, tag, "removed");
                    None
                }
                None => Some(elem),
            });
        }
        if simple == Simple::C && !is_seq {
            if is_text_vr(vr) && self.de.opts.descriptors == DescriptorPolicy::Scrub {
                if let Some(cleaned) = value_string(&elem)
                    .and_then(|s| self.matcher.as_ref().and_then(|m| text::scrub(m, &s)))
                {
                    self.record(path, tag, "cleaned");
                    let cleaned = truncate_chars(&cleaned, max_len(vr));
                    return Ok(Some(DataElement::new(tag, vr, str_value(&cleaned))));
                }
                simple = self.simplify(row.basic, row, false, vr);
            } else if is_text_vr(vr)
                || matches!(
                    row.pattern,
                    super::table::TagPattern::Overlay(_) | super::table::TagPattern::Curve
                )
            {
                // "remove" descriptor policy, and bitmaps we cannot clean: the Basic action.
                simple = self.simplify(row.basic, row, false, vr);
            } else {
                simple = Simple::D;
            }
        }
        self.apply_simple(elem, path, vr, simple, row)
    }

    fn apply_simple(
        &mut self,
        elem: InMemElement,
        path: &str,
        vr: VR,
        simple: Simple,
        row: &Row,
    ) -> Result<Option<InMemElement>, DeidError> {
        if matches!(elem.value(), Value::Sequence(_))
            && matches!(simple, Simple::K | Simple::C | Simple::U)
        {
            let tag = elem.tag();
            self.record(
                path,
                tag,
                if simple == Simple::K {
                    "kept"
                } else {
                    "cleaned"
                },
            );
            return self.recurse_items(elem, path).map(Some);
        }
        Ok(self.apply_simple_value(elem, path, vr, simple, row))
    }

    fn apply_simple_value(
        &mut self,
        elem: InMemElement,
        path: &str,
        vr: VR,
        simple: Simple,
        row: &Row,
    ) -> Option<InMemElement> {
        let tag = elem.tag();
        let is_seq = matches!(elem.value(), Value::Sequence(_));
        match simple {
            Simple::X => {
                self.record(path, tag, "removed");
                None
            }
            Simple::K | Simple::C => {
                self.record(path, tag, "kept");
                Some(elem)
            }
            Simple::U => {
                if self.de.option_on(ProfileOption::RetainUids)
                    && row.option(ProfileOption::RetainUids).is_some()
                {
                    self.record(path, tag, "kept");
                    return Some(elem);
                }
                match value_string(&elem) {
                    Some(s) if vr == VR::UI => {
                        let mapped: Vec<String> = s.split('\\').map(|u| self.map_uid(u)).collect();
                        self.record(path, tag, "uid");
                        Some(DataElement::new(tag, VR::UI, str_value(&mapped.join("\\"))))
                    }
                    _ => {
                        self.record(path, tag, "emptied");
                        Some(DataElement::empty(tag, vr))
                    }
                }
            }
            Simple::Z => {
                if is_seq {
                    self.record(path, tag, "emptied");
                    return Some(DataElement::new(
                        tag,
                        VR::SQ,
                        DataSetSequence::<InMemDicomObject>::empty(),
                    ));
                }
                if Z_PSEUDONYM.contains(&tag) {
                    if let Some(s) = value_string(&elem).filter(|s| !s.trim().is_empty()) {
                        let p = self.keys.pseudonym(keyword(tag), &s, 16);
                        self.record(path, tag, "dummy");
                        return Some(DataElement::new(tag, vr, PrimitiveValue::from(p)));
                    }
                }
                self.record(path, tag, "emptied");
                Some(DataElement::empty(tag, vr))
            }
            Simple::D => {
                if is_seq {
                    self.record(path, tag, "emptied");
                    return Some(DataElement::new(
                        tag,
                        VR::SQ,
                        DataSetSequence::<InMemDicomObject>::empty(),
                    ));
                }
                let orig = value_string(&elem).unwrap_or_default();
                let kw = keyword(tag);
                let v: Option<PrimitiveValue> = match vr {
                    VR::PN => Some("ANONYMOUS".into()),
                    VR::LO | VR::SH | VR::UC | VR::LT | VR::ST | VR::UT
                        if is_identifier_keyword(tag, kw) =>
                    {
                        Some(self.keys.pseudonym(kw, &orig, max_len(vr).min(16)).into())
                    }
                    VR::LO | VR::SH | VR::UC | VR::LT | VR::ST | VR::UT | VR::CS | VR::AE => {
                        Some("ANONYMIZED".into())
                    }
                    VR::UR => Some("urn:anonymized".into()),
                    VR::DA => Some("19000101".into()),
                    VR::DT => Some("19000101000000".into()),
                    VR::TM => Some("000000".into()),
                    VR::AS => Some("000D".into()),
                    VR::IS | VR::DS => Some("0".into()),
                    VR::UI => {
                        let mapped: Vec<String> =
                            orig.split('\\').map(|u| self.map_uid(u)).collect();
                        self.record(path, tag, "uid");
                        return Some(DataElement::new(tag, VR::UI, str_value(&mapped.join("\\"))));
                    }
                    VR::US => Some(PrimitiveValue::from(0u16)),
                    VR::SS => Some(PrimitiveValue::from(0i16)),
                    VR::UL => Some(PrimitiveValue::from(0u32)),
                    VR::SL => Some(PrimitiveValue::from(0i32)),
                    VR::FL => Some(PrimitiveValue::from(0f32)),
                    VR::FD => Some(PrimitiveValue::from(0f64)),
                    _ => None,
                };
                match v {
                    Some(v) => {
                        self.record(path, tag, "dummy");
                        Some(DataElement::new(tag, vr, v))
                    }
                    None => {
                        self.record(path, tag, "emptied");
                        Some(DataElement::empty(tag, vr))
                    }
                }
            }
        }
    }

    /// Temporal DA/DT/TM under keep/shift/year_only. `strict` is what happens to values that
    /// cannot be handled (X removes, anything else empties).
    fn temporal(
        &mut self,
        elem: InMemElement,
        path: &str,
        vr: VR,
        strict: Simple,
    ) -> Option<InMemElement> {
        let tag = elem.tag();
        let fail = |me: &mut Self| {
            if strict == Simple::X {
                me.record(path, tag, "removed");
                None
            } else {
                me.record(path, tag, "emptied");
                Some(DataElement::empty(tag, vr))
            }
        };
        let Some(s) = value_string(&elem) else {
            return fail(self);
        };
        if s.trim().is_empty() {
            self.record(path, tag, "kept");
            return Some(DataElement::empty(tag, vr));
        }
        let policy = if tag == PATIENT_BIRTH_DATE {
            DatePolicy::YearOnly
        } else {
            self.de.dates.clone()
        };
        let out = match (&policy, vr) {
            (DatePolicy::Keep, VR::DA) => {
                dates::map_multi(&s, |v| dates::parse_da(v).map(|_| v.to_string()))
            }
            (DatePolicy::Keep, VR::DT) => {
                dates::map_multi(&s, |v| dates::year_only_dt(v).map(|_| v.to_string()))
            }
            (DatePolicy::Keep | DatePolicy::Shift { .. }, VR::TM) => {
                dates::map_multi(&s, dates::valid_tm)
            }
            (DatePolicy::Shift { .. }, VR::DA) => {
                dates::map_multi(&s, |v| dates::shift_da(v, self.date_offset))
            }
            (DatePolicy::Shift { .. }, VR::DT) => {
                dates::map_multi(&s, |v| dates::shift_dt(v, self.date_offset))
            }
            (DatePolicy::YearOnly, VR::DA) => dates::map_multi(&s, dates::year_only_da),
            (DatePolicy::YearOnly, VR::DT) => dates::map_multi(&s, dates::year_only_dt),
            _ => None,
        };
        match out {
            Some(v) => {
                let action = match policy {
                    DatePolicy::Keep => "kept",
                    DatePolicy::Shift { .. } if vr == VR::TM => "kept",
                    DatePolicy::Shift { .. } => "shifted",
                    _ => "cleaned",
                };
                self.record(path, tag, action);
                Some(DataElement::new(tag, vr, str_value(&v)))
            }
            None => fail(self),
        }
    }
}

/// A private block the instance declares non-identifying: all elements (`lows == None`, status SAFE)
/// or the listed low element bytes (status MIXED).
struct Declared {
    group: u16,
    creator: String,
    lows: Option<Vec<u8>>,
}

/// Read Private Data Element Characteristics Sequence (0008,0300) of one dataset level.
fn declared_safe(obj: &InMemDicomObject) -> Vec<Declared> {
    let mut out = Vec::new();
    let Some(items) = obj.get(Tag(0x0008, 0x0300)).and_then(|e| e.items()) else {
        return out;
    };
    for it in items {
        let group = it
            .get(Tag(0x0008, 0x0301))
            .and_then(|e| e.to_int::<u16>().ok());
        let creator = it.get(Tag(0x0008, 0x0302)).and_then(value_string);
        let status = it.get(Tag(0x0008, 0x0303)).and_then(value_string);
        let (Some(group), Some(creator), Some(status)) = (group, creator, status) else {
            continue;
        };
        if group % 2 == 0 {
            continue;
        }
        let lows = match status.trim() {
            "SAFE" => None,
            "MIXED" => Some(
                it.get(Tag(0x0008, 0x0304))
                    .and_then(|e| e.to_multi_int::<u16>().ok())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| v as u8)
                    .collect(),
            ),
            _ => continue,
        };
        out.push(Declared {
            group,
            creator: normalize_creator(&creator),
            lows,
        });
    }
    out
}

pub(super) fn apply(
    de: &Deidentifier,
    obj: &mut FileDicomObject<InMemDicomObject>,
    keys: &Keys,
) -> Result<DeidReport, DeidError> {
    let top_str = |t: Tag| {
        obj.get(t)
            .and_then(value_string)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let orig_id = top_str(PATIENT_ID);
    let orig_name = top_str(PATIENT_NAME);
    let patient_key = orig_id.clone().or(orig_name.clone()).unwrap_or_default();

    let patient_new = match &de.lookup {
        Some(map) => {
            let Some(id) = orig_id.as_ref() else {
                return Err(DeidError::Quarantine(
                    "(0010,0020) PatientID missing; lookup mode needs it".into(),
                ));
            };
            match map.get(id) {
                Some(n) => n.clone(),
                None => {
                    return Err(DeidError::Quarantine(
                        "(0010,0020) PatientID not in the lookup table".into(),
                    ))
                }
            }
        }
        None => format!(
            "{}{}",
            de.prefix,
            keys.pseudonym("PatientID", &patient_key, 16 - de.prefix.len())
        ),
    };
    let date_offset = match de.dates {
        DatePolicy::Shift { min_days, max_days } => {
            keys.date_offset_days(&patient_key, min_days, max_days)
        }
        _ => 0,
    };
    let scrub = de.opts.descriptors == DescriptorPolicy::Scrub;
    let matcher = (scrub || de.opts.echo_check.0).then(|| echo::collect(obj, de));
    let mut ctx = Ctx {
        de,
        keys,
        date_offset,
        patient_new: patient_new.clone(),
        matcher,
        report: DeidReport::default(),
        uid_seen: HashSet::new(),
        depth: 0,
    };
    if obj.get(PATIENT_ID).is_some() {
        ctx.report
            .patient_map
            .push((orig_id.clone().unwrap_or_default(), patient_new));
    }

    ctx.walk(obj, "")?;
    if de.opts.echo_check.0 {
        let on_hit = if scrub {
            OnHit::Scrub
        } else {
            OnHit::Quarantine
        };
        if let Some(m) = &ctx.matcher {
            echo::sweep(obj, m, de, on_hit, &mut ctx.report.actions)?;
        }
    }

    // File meta: follow the new SOP Instance UID.
    let new_sop = obj.get(SOP_INSTANCE_UID).and_then(value_string);
    let old_meta_uid = obj
        .meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let meta_uid = match new_sop {
        Some(u) if !u.is_empty() => u,
        _ if de.option_on(ProfileOption::RetainUids) => old_meta_uid.clone(),
        _ => ctx.map_uid(&old_meta_uid),
    };
    let keep_device = de.option_on(ProfileOption::RetainDeviceIdentity);
    obj.update_meta(|m| {
        m.media_storage_sop_instance_uid = meta_uid;
        if !keep_device {
            m.source_application_entity_title = None;
            m.sending_application_entity_title = None;
            m.receiving_application_entity_title = None;
        }
        m.private_information_creator_uid = None;
        m.private_information = None;
    });

    // Marks.
    obj.put(DataElement::new(
        Tag(0x0012, 0x0062),
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    let codes = de.method_codes();
    let mut method: Vec<String> = vec!["DICOM PS3.15 E.1 Basic Profile".into()];
    for (_, meaning) in codes.iter().skip(1) {
        method.push(truncate_chars(meaning, 64));
    }
    obj.put(DataElement::new(
        Tag(0x0012, 0x0063),
        VR::LO,
        PrimitiveValue::Strs(method.into_iter().collect()),
    ));
    for (v, m) in codes {
        super::add_method_code(obj, v, m);
    }
    let ltim = match de.dates {
        DatePolicy::Keep => "UNMODIFIED",
        DatePolicy::Shift { .. } | DatePolicy::YearOnly => "MODIFIED",
        DatePolicy::Remove => "REMOVED",
    };
    obj.put(DataElement::new(
        Tag(0x0028, 0x0303),
        VR::CS,
        PrimitiveValue::from(ltim),
    ));
    Ok(ctx.report)
}
