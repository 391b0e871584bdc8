//! De-identification core: DICOM PS3.15 Annex E Basic Application Level
//! Confidentiality Profile plus its options, driven by the data of Table E.1-1
//! and Table E.3.10-1 (see `data/STANDARD-README.md`; DICOM PS3.15 2026d, (c) NEMA).
//!
//! This folder is self-contained: siblings are referred to with `super::`/`self::` only.
//!
//! # Compound action codes
//! Table E.1-1 uses compound codes whose choice depends on the attribute's Type
//! in the IOD. We do not carry per-IOD Type information, so the rule is:
//! * if the row's `in_std_comp_iod` column is `N`, no standard IOD can require the
//!   attribute, so the first (weakest-for-conformance, strongest-for-privacy) choice `X` is taken;
//! * otherwise: `X/Z` -> `Z` (except -> `X` for sequences that are Type 3 in every composite IOD,
//!   such as ReferencedStudySequence, since a Type 3 sequence may not be present with zero items); `X/D` -> `D`; `X/Z/D` -> `D`; `Z/D` -> `D`
//!   (for sequences `D` becomes `Z`: an empty sequence, since there is no generic dummy item);
//!   `X/Z/U*` -> `U` for sequences (items kept and cleaned recursively, contained instance UIDs
//!   replaced), `U` for a UI value, `Z` otherwise.
//!
//! # Dates
//! `dates` decides DA/DT/TM attributes that are *temporal* (the row has an action in one of the two
//! Retain Longitudinal columns, or the attribute is not in Table E.1-1 at all):
//! `keep` keeps them, `shift` moves DA/DT by a per-patient offset (TM kept), `year_only` keeps only
//! the year (`YYYY0101`, TM emptied). Every other date, and every date under `remove`, follows the
//! table's action (X removed, Z emptied, D dummy). Unparseable values are removed (or emptied when
//! the action was Z/D). The two `retain_longitudinal_*` flags select the matching policy when
//! `dates` is left at its default (`full` -> keep, `modified` -> shift -365..-1); an explicit
//! conflicting combination is rejected by [`Deidentifier::new`].

mod actions;
pub mod dates;
mod echo;
pub mod keys;
pub mod stage;
pub mod table;
pub mod testgen;
pub mod text;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use dicom_core::dictionary::DataDictionary;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::{FileDicomObject, InMemDicomObject};

pub use self::keys::Keys;
use self::table::ProfileOption;

fn default_shift_min() -> i64 {
    -365
}
fn default_shift_max() -> i64 {
    -1
}

/// What to do with dates and times.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatePolicy {
    /// Follow Table E.1-1: removed, emptied or replaced by a dummy date.
    #[default]
    Remove,
    /// Keep only the year of temporal dates (YYYY0101); times are emptied.
    YearOnly,
    /// Shift temporal dates by a per-patient number of days (keyed on the original patient ID); times kept.
    Shift {
        /// Smallest offset in days (inclusive).
        #[serde(default = "default_shift_min")]
        min_days: i64,
        /// Largest offset in days (inclusive).
        #[serde(default = "default_shift_max")]
        max_days: i64,
    },
    /// Keep temporal dates and times unchanged.
    Keep,
}

/// What the Clean Descriptors (and other "clean" actions on free text) do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DescriptorPolicy {
    /// Remove the free text (the Basic Profile action of the attribute applies).
    #[default]
    Remove,
    /// Keep the text, with identifying strings found elsewhere in the same file replaced by "***".
    Scrub,
}

/// Whether the identifier echo check runs (`true` unless a recipe says `echo_check: false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct EchoCheck(pub bool);

impl Default for EchoCheck {
    fn default() -> Self {
        EchoCheck(true)
    }
}

fn default_prefix() -> String {
    "SUBJ".into()
}

/// How the patient ID (and name) is replaced.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum PatientIdPolicy {
    /// A keyed pseudonym: prefix followed by base32 characters (16 characters in total).
    Keyed {
        /// Prefix of the pseudonym, e.g. "SUBJ" (at most 8 characters).
        #[serde(default = "default_prefix")]
        prefix: String,
    },
    /// Look the new ID up in a CSV file with columns id_old,id_new. An ID that is not in the table
    /// quarantines the instance; the real ID is never passed through.
    Lookup {
        /// Path of the CSV file.
        table: std::path::PathBuf,
    },
}

impl Default for PatientIdPolicy {
    fn default() -> Self {
        PatientIdPolicy::Keyed {
            prefix: default_prefix(),
        }
    }
}

/// De-identify instances with the DICOM PS3.15 Annex E Basic Application Level Confidentiality
/// Profile and the options chosen, driven by Table E.1-1 at every sequence depth; UIDs and IDs
/// become keyed pseudonyms (HMAC-SHA256 with the project secret).
#[derive(Clone, Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeidOptions {
    /// Retain Safe Private Option: keep private attributes listed as safe in Table E.3.10-1.
    #[serde(default)]
    pub retain_safe_private: bool,
    /// Retain UIDs Option: keep original UIDs.
    #[serde(default)]
    pub retain_uids: bool,
    /// Retain Device Identity Option: keep device identifiers (serial numbers, station names).
    #[serde(default)]
    pub retain_device_identity: bool,
    /// Retain Institution Identity Option: keep institution names and addresses.
    #[serde(default)]
    pub retain_institution_identity: bool,
    /// Retain Patient Characteristics Option: keep sex, age, size, weight and similar.
    #[serde(default)]
    pub retain_patient_characteristics: bool,
    /// Retain Longitudinal Temporal Information Full Dates Option (implies `dates: {policy: keep}`).
    #[serde(default)]
    pub retain_longitudinal_full_dates: bool,
    /// Retain Longitudinal Temporal Information Modified Dates Option (implies a shift unless `dates` says otherwise).
    #[serde(default)]
    pub retain_longitudinal_modified_dates: bool,
    /// Clean Descriptors Option: free-text descriptions are cleaned per `descriptors` instead of removed.
    #[serde(default)]
    pub clean_descriptors: bool,
    /// Clean Structured Content Option: SR content sequences are cleaned recursively instead of removed.
    #[serde(default)]
    pub clean_structured_content: bool,
    /// Clean Graphics Option: graphic annotations are cleaned recursively (overlay/curve bitmaps are still removed).
    #[serde(default)]
    pub clean_graphics: bool,
    /// With `retain_safe_private`: also keep private elements that the instance itself declares
    /// non-identifying in Private Data Element Characteristics Sequence (0008,0300) (block status SAFE,
    /// or MIXED with the element listed in Nonidentifying Private Elements), as PS3.15 E.3.10 permits.
    #[serde(default)]
    pub trust_declared_safe_private: bool,
    /// Date and time policy.
    #[serde(default)]
    pub dates: DatePolicy,
    /// What cleaning free text means: remove it or scrub identifiers out of it.
    #[serde(default)]
    pub descriptors: DescriptorPolicy,
    /// How patient IDs are replaced.
    #[serde(default)]
    pub patient_id: PatientIdPolicy,
    /// Extra attributes to keep (keyword or "(gggg,eeee)"); overrides the profile at any depth.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Extra attributes to remove (keyword or "(gggg,eeee)"); overrides the profile and `keep`.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Folder for the linkage files `uid_map.csv` and `patient_map.csv` (columns id_old,id_new).
    /// Default: none, no linkage is kept. It must be outside the output folder; keep it secure,
    /// since it links pseudonyms back to identities.
    #[serde(default)]
    pub linkage: Option<std::path::PathBuf>,
    /// Identifier echo check (on by default): the instance's identifying values (person names and
    /// their components, IDs, accession numbers, dates, addresses, phone numbers, e-mail addresses,
    /// institution and station names) are taken before the profile runs, and every text value left
    /// afterwards, at every depth and in attributes Table E.1-1 does not list, is searched for them
    /// and for e-mail addresses, phone numbers and (unless dates are kept) dates. A hit is scrubbed
    /// with `descriptors: scrub`, else the instance is quarantined naming the attribute.
    #[serde(default)]
    pub echo_check: EchoCheck,
    /// Instances that may carry burned-in text (the rule of `burned_in.rs`: BurnedInAnnotation
    /// YES; Secondary Capture, VL and video endoscopic/microscopic/photographic, and report SOP
    /// classes; ImageType SECONDARY or SCREEN SAVE; any ConversionType; modality US, SC, OT, XA,
    /// RF, ES or SR; BurnedInAnnotation NO exempts none of them) that no mask_regions rule masked
    /// or declared free of text: quarantine (default) or allow.
    #[serde(default)]
    pub burned_in: stage::BurnedInPolicy,
}

/// What was done to one instance. Holds original UIDs and IDs, so its `Debug` shows counts only.
#[derive(Clone, Default)]
pub struct DeidReport {
    /// (path with keyword, e.g. "(0008,1115)[0].(0008,1150) ReferencedSOPClassUID", action).
    pub actions: Vec<(String, &'static str)>,
    /// Original UID -> new UID (for linkage files).
    pub uid_map: Vec<(String, String)>,
    /// Original PatientID -> new PatientID.
    pub patient_map: Vec<(String, String)>,
}

impl std::fmt::Debug for DeidReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeidReport {{ actions: {}, uid_map: {} entries, patient_map: {} entries }}",
            self.actions.len(),
            self.uid_map.len(),
            self.patient_map.len()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    #[error("quarantined: {0}")]
    Quarantine(String),
    #[error("{0}")]
    Failed(String),
}

/// Built once from [`DeidOptions`]; immutable, `Send + Sync`.
pub struct Deidentifier {
    opts: DeidOptions,
    enabled: [bool; 10],
    dates: DatePolicy,
    keep: HashSet<Tag>,
    remove: HashSet<Tag>,
    lookup: Option<HashMap<String, String>>,
    prefix: String,
}

impl std::fmt::Debug for Deidentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deidentifier")
            .field("opts", &self.opts)
            .field("lookup_entries", &self.lookup.as_ref().map(|m| m.len()))
            .finish()
    }
}

/// Parse "(gggg,eeee)", "gggg,eeee", "ggggeeee" or a keyword.
pub fn parse_tag_spec(s: &str) -> Option<Tag> {
    let t = s.trim();
    let hex = t
        .trim_start_matches('(')
        .trim_end_matches(')')
        .replace(',', "");
    if hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(Tag(
            u16::from_str_radix(&hex[..4], 16).ok()?,
            u16::from_str_radix(&hex[4..], 16).ok()?,
        ));
    }
    StandardDataDictionary.by_name(t).and_then(|e| match e.tag {
        dicom_core::dictionary::TagRange::Single(tag) => Some(tag),
        _ => None,
    })
}

fn load_lookup(path: &std::path::Path) -> Result<HashMap<String, String>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "patient_id lookup table {shown}: cannot read ({})",
            e.kind()
        )
    })?;
    let mut map = HashMap::new();
    for (i, row) in self::table::parse_csv(&text).into_iter().enumerate() {
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if i == 0 && row.first().map(|c| c.trim()) == Some("id_old") {
            continue;
        }
        if row.len() < 2 || row[0].trim().is_empty() || row[1].trim().is_empty() {
            return Err(format!(
                "patient_id lookup table {shown}: line {} needs id_old,id_new",
                i + 1
            ));
        }
        if row[1].trim().len() > 64 {
            return Err(format!(
                "patient_id lookup table {shown}: line {}: id_new longer than 64",
                i + 1
            ));
        }
        map.insert(row[0].trim().to_string(), row[1].trim().to_string());
    }
    Ok(map)
}

impl Deidentifier {
    pub fn new(opts: &DeidOptions) -> Result<Self, String> {
        let enabled = [
            opts.retain_safe_private,
            opts.retain_uids,
            opts.retain_device_identity,
            opts.retain_institution_identity,
            opts.retain_patient_characteristics,
            opts.retain_longitudinal_full_dates,
            opts.retain_longitudinal_modified_dates,
            opts.clean_descriptors,
            opts.clean_structured_content,
            opts.clean_graphics,
        ];
        if opts.retain_longitudinal_full_dates && opts.retain_longitudinal_modified_dates {
            return Err("retain_longitudinal_full_dates and retain_longitudinal_modified_dates exclude each other".into());
        }
        let dates = match (
            &opts.dates,
            opts.retain_longitudinal_full_dates,
            opts.retain_longitudinal_modified_dates,
        ) {
            (DatePolicy::Remove, true, _) => DatePolicy::Keep,
            (DatePolicy::Remove, _, true) => DatePolicy::Shift {
                min_days: -365,
                max_days: -1,
            },
            (DatePolicy::Keep, _, true)
            | (DatePolicy::Shift { .. } | DatePolicy::YearOnly, true, _) => {
                return Err("dates policy conflicts with the retain_longitudinal_* option".into())
            }
            (p, _, _) => p.clone(),
        };
        if let DatePolicy::Shift { min_days, max_days } = dates {
            if min_days > max_days || min_days.abs() > 36500 || max_days.abs() > 36500 {
                return Err("dates.shift: need min_days <= max_days, both within +-36500".into());
            }
        }
        let parse_list = |v: &[String], what: &str| -> Result<HashSet<Tag>, String> {
            v.iter()
                .map(|s| {
                    parse_tag_spec(s).ok_or_else(|| format!("{what}: unknown attribute {s:?}"))
                })
                .collect()
        };
        let keep = parse_list(&opts.keep, "keep")?;
        let remove = parse_list(&opts.remove, "remove")?;
        let (lookup, prefix) = match &opts.patient_id {
            PatientIdPolicy::Keyed { prefix } => {
                if prefix.len() > 8
                    || !prefix
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err("patient_id.prefix: at most 8 characters A-Z a-z 0-9 _ -".into());
                }
                (None, prefix.clone())
            }
            PatientIdPolicy::Lookup { table } => (Some(load_lookup(table)?), String::new()),
        };
        Ok(Deidentifier {
            opts: opts.clone(),
            enabled,
            dates,
            keep,
            remove,
            lookup,
            prefix,
        })
    }

    pub(crate) fn option_on(&self, o: ProfileOption) -> bool {
        self.enabled[o as usize]
    }

    /// The date policy in effect (after the retain_longitudinal_* flags).
    pub fn effective_dates(&self) -> &DatePolicy {
        &self.dates
    }

    /// CID 7050 codes that describe this configuration (without 113101 Clean Pixel Data).
    pub fn method_codes(&self) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![("113100", "Basic Application Confidentiality Profile")];
        for o in ProfileOption::ALL {
            let on = match o {
                ProfileOption::RetainLongitudinalFullDates => self.dates == DatePolicy::Keep,
                ProfileOption::RetainLongitudinalModifiedDates => {
                    matches!(self.dates, DatePolicy::Shift { .. } | DatePolicy::YearOnly)
                }
                _ => self.option_on(o),
            };
            if on {
                v.push(o.cid7050());
            }
        }
        v
    }

    /// Apply to one instance in place (dataset and file meta: MediaStorageSOPInstanceUID follows the
    /// new SOPInstanceUID; source/sending/receiving AE titles and private meta information are cleared
    /// unless Retain Device Identity). On `Err` the object is partially processed and must be discarded.
    /// Existing (0012,0062-0064) and (0028,0303) values are replaced, so call [`add_clean_pixel_mark`]
    /// after this.
    pub fn apply(
        &self,
        obj: &mut FileDicomObject<InMemDicomObject>,
        keys: &Keys,
    ) -> Result<DeidReport, DeidError> {
        self::actions::apply(self, obj, keys)
    }

    /// Plain-words description for a methods section.
    pub fn describe(&self) -> String {
        let mut s = String::from(
            "Images were de-identified following the DICOM PS3.15 Annex E Basic Application Level \
Confidentiality Profile (CID 7050 code 113100), applied table-driven from PS3.15 Table E.1-1 (edition 2026d) \
to every attribute at every sequence depth. Private attributes were removed",
        );
        if self.opts.retain_safe_private {
            s.push_str(" except those listed as safe in Table E.3.10-1 for their private creator (Retain Safe Private Option, 113111)");
            if self.opts.trust_declared_safe_private {
                s.push_str(" and those the instance declares non-identifying in its Private Data Element Characteristics Sequence");
            }
        }
        s.push_str(". ");
        if self.opts.retain_uids {
            s.push_str("Original UIDs were retained (Retain UIDs Option, 113110). ");
        } else {
            s.push_str("UIDs were replaced by keyed HMAC-SHA256-derived 2.25 UIDs, consistently across the data set. ");
        }
        match &self.opts.patient_id {
            PatientIdPolicy::Keyed { .. } => s.push_str(
                "Patient IDs and names were replaced by a keyed pseudonym (one per patient); ",
            ),
            PatientIdPolicy::Lookup { .. } => s.push_str(
                "Patient IDs and names were replaced from a lookup table (one per patient); ",
            ),
        }
        s.push_str("other identifiers (e.g. accession numbers) by keyed pseudonyms. ");
        match &self.dates {
            DatePolicy::Remove => s.push_str("Dates and times were removed, emptied or replaced by dummy values. "),
            DatePolicy::YearOnly => s.push_str("Dates were reduced to the year and times removed (Retain Longitudinal Temporal Information Modified Dates Option, 113107). "),
            DatePolicy::Shift { min_days, max_days } => s.push_str(&format!(
                "Dates were shifted by a per-patient offset between {min_days} and {max_days} days, preserving intervals (Retain Longitudinal Temporal Information Modified Dates Option, 113107). ")),
            DatePolicy::Keep => s.push_str("Dates and times were retained (Retain Longitudinal Temporal Information Full Dates Option, 113106). "),
        }
        for (o, txt) in [
            (ProfileOption::RetainDeviceIdentity, "Device identity was retained (113109). "),
            (ProfileOption::RetainInstitutionIdentity, "Institution identity was retained (113112). "),
            (ProfileOption::RetainPatientCharacteristics, "Patient characteristics were retained, ages over 89 years reported as 90 (113108). "),
            (ProfileOption::CleanStructuredContent, "Structured content was cleaned recursively (113104). "),
            (ProfileOption::CleanGraphics, "Graphic annotations were cleaned recursively; overlay and curve bitmaps were removed (113103). "),
        ] {
            if self.option_on(o) {
                s.push_str(txt);
            }
        }
        if self.opts.clean_descriptors {
            match self.opts.descriptors {
                DescriptorPolicy::Remove => s.push_str("Descriptive free text was removed (Clean Descriptors Option, 113105). "),
                DescriptorPolicy::Scrub => s.push_str("Descriptive free text was kept with names, identifiers, dates, addresses, phone numbers and e-mail addresses found in the same file replaced by \"***\" (Clean Descriptors Option, 113105). "),
            }
        }
        if self.opts.echo_check.0 {
            s.push_str("Before the profile was applied, the instance's identifying values (person names and their components, patient and request IDs, accession numbers, dates, addresses, phone numbers, e-mail addresses, institution and station names) were collected; afterwards every remaining text value at every depth, including attributes the profile does not list, structured report content and values of unknown VR, was searched for them case-insensitively with separators normalised, and for e-mail addresses, phone numbers");
            if self.dates != DatePolicy::Keep {
                s.push_str(" and calendar dates");
            }
            if self.opts.descriptors == DescriptorPolicy::Scrub {
                s.push_str("; matches were replaced by \"***\". ");
            } else {
                s.push_str("; instances with a match were withheld. ");
            }
        }
        if !self.keep.is_empty() || !self.remove.is_empty() {
            s.push_str(&format!(
                "Project overrides: {} attribute(s) additionally kept, {} additionally removed. ",
                self.keep.len(),
                self.remove.len()
            ));
        }
        s.push_str("Patient Identity Removed (0012,0062) was set to YES and the method recorded in (0012,0063)/(0012,0064).");
        s
    }
}

fn code_item(value: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(Tag(0x0008, 0x0100), VR::SH, PrimitiveValue::from(value)),
        DataElement::new(Tag(0x0008, 0x0102), VR::SH, PrimitiveValue::from("DCM")),
        DataElement::new(Tag(0x0008, 0x0104), VR::LO, PrimitiveValue::from(meaning)),
    ])
}

/// Add code 113101 Clean Pixel Data Option to the DeidentificationMethodCodeSequence
/// (creating it if needed), for the pixel masking stage. Idempotent.
pub fn add_clean_pixel_mark(obj: &mut FileDicomObject<InMemDicomObject>) {
    add_method_code(obj, "113101", "Clean Pixel Data Option");
}

pub(crate) fn add_method_code(obj: &mut InMemDicomObject, value: &str, meaning: &str) {
    let tag = Tag(0x0012, 0x0064);
    let mut items: Vec<InMemDicomObject> = obj
        .get(tag)
        .and_then(|e| e.value().items())
        .map(|i| i.to_vec())
        .unwrap_or_default();
    let has = items.iter().any(|it| {
        it.get(Tag(0x0008, 0x0100))
            .and_then(|e| e.to_str().ok())
            .map(|v| v.trim() == value)
            .unwrap_or(false)
    });
    if !has {
        items.push(code_item(value, meaning));
    }
    obj.put(DataElement::new(
        tag,
        VR::SQ,
        dicom_core::value::DataSetSequence::new(items, dicom_core::Length::UNDEFINED),
    ));
}
