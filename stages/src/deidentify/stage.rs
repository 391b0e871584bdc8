//! `deidentify`, the stage: applies the PS3.15 Annex E profile (see the parent module) to each
//! instance, quarantines what cannot be fully de-identified (including instances that may carry
//! burned-in text and were not masked), keeps optional linkage files, and summarises per tag
//! what it did (counts, never values).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dcmflow_engine::{BuildContext, Item, ItemError, ItemKind, ItemWorker, Runtime, StageConfig};
use dicom_dictionary_std::tags;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{DeidError, DeidOptions, Deidentifier, Keys};

/// What to do with instances that may carry burned-in text and were not masked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BurnedInPolicy {
    /// Quarantine them (default): pixels may show names, dates or IDs.
    #[default]
    Quarantine,
    /// Let them through (only when pixels are checked another way).
    Allow,
}

/// Why an instance's pixels may carry burned-in text (tag names only), if they may: the shared
/// rule of [`crate::burned_in`].
pub fn burned_in_reason(inst: &dcmflow_engine::Instance) -> Option<String> {
    crate::burned_in::carrier_reason(inst).map(|why| {
        format!("{why}, and no mask_regions rule masked the pixels or declared them free of text")
    })
}

/// The `deidentify` stage's config is the de-identification options.
pub type DeidentifyConfig = DeidOptions;

impl StageConfig for DeidOptions {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Instance]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Instance
    }
    fn needs_secret(&self) -> bool {
        true
    }
    fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = Deidentifier::new(&self.without_files()) {
            out.push(e);
        }
        for (what, list) in [("keep", &self.keep), ("remove", &self.remove)] {
            for t in list {
                if super::parse_tag_spec(t).is_none() {
                    out.push(format!(
                        "{what}: \"{t}\" is not a DICOM keyword or (gggg,eeee) tag"
                    ));
                }
            }
        }
        out
    }
    fn explain(&self) -> String {
        Deidentifier::new(&self.without_files())
            .map(|d| d.describe())
            .unwrap_or_default()
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        let deid = Deidentifier::new(self)?;
        let keys = Keys::new(ctx.require_secret()?.expose());
        let linkage = match self.linkage.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) if !ctx.dry_run => Some(Linkage::open(dir, &ctx.output_dir)?),
            _ => None,
        };
        Ok(Runtime::PerItem(Arc::new(Deidentify {
            id: ctx.stage_id.clone(),
            deid,
            keys,
            burned_in: self.burned_in,
            linkage,
            counts: Mutex::new(BTreeMap::new()),
        })))
    }
}

impl DeidOptions {
    /// The options with file-backed settings left out, for plan-time checks that read no files.
    fn without_files(&self) -> DeidOptions {
        let mut o = self.clone();
        if matches!(o.patient_id, super::PatientIdPolicy::Lookup { .. }) {
            o.patient_id = super::PatientIdPolicy::default();
        }
        o
    }
}

/// The runtime of `deidentify`.
pub struct Deidentify {
    id: String,
    deid: Deidentifier,
    keys: Keys,
    burned_in: BurnedInPolicy,
    linkage: Option<Linkage>,
    counts: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
}

/// A tag path with item indexes folded, so counts group by attribute.
fn fold_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '[' => {
                skipping = true;
                out.push_str("[]");
            }
            ']' => skipping = false,
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

impl ItemWorker for Deidentify {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let (source, mut inst) = item.into_instance()?;
        if inst.obj.get(tags::ENCAPSULATED_DOCUMENT).is_some() {
            return Err(ItemError::quarantine(
                "EncapsulatedDocument (0042,0011): the embedded document cannot be de-identified",
            ));
        }
        // Masked, or declared free of text by a site rule: the site answers for the pixels.
        if self.burned_in == BurnedInPolicy::Quarantine
            && !inst.is_masked()
            && !inst.declared_no_text()
        {
            if let Some(reason) = burned_in_reason(&inst) {
                return Err(ItemError::quarantine(reason));
            }
        }
        let report = self
            .deid
            .apply(&mut inst.obj, &self.keys)
            .map_err(|e| match e {
                DeidError::Quarantine(r) => ItemError::quarantine(r),
                DeidError::Failed(r) => {
                    ItemError::quarantine(format!("could not be fully de-identified: {r}"))
                }
            })?;
        if let Some(l) = &self.linkage {
            l.record(&report.uid_map, &report.patient_map)
                .map_err(|e| ItemError::context("cannot write the linkage files", &e))?;
        }
        {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            for (path, action) in &report.actions {
                *counts
                    .entry(fold_path(path))
                    .or_default()
                    .entry(action)
                    .or_default() += 1;
            }
        }
        if inst.is_masked() {
            super::add_clean_pixel_mark(&mut inst.obj);
        } else if inst.declared_no_text() {
            // Not Clean Pixel Data: say in DeidentificationMethod that nothing was masked.
            add_method_text(&mut inst.obj, crate::burned_in::DECLARED_NO_TEXT_METHOD);
        }
        inst.deidentified_by.push(self.id.clone());
        Ok(vec![Item::of_instance(source, inst)])
    }

    fn summary(&self) -> Option<serde_json::Value> {
        crate::walk::counts_summary(&self.counts, "actions_per_attribute")
    }
}

/// Add a value to DeidentificationMethod (0012,0063), once.
fn add_method_text(obj: &mut dicom_object::InMemDicomObject, text: &str) {
    let mut values = crate::attr::values_of(obj, tags::DEIDENTIFICATION_METHOD).unwrap_or_default();
    values.retain(|v| !v.is_empty());
    if !values.iter().any(|v| v == text) {
        values.push(text.to_string());
    }
    obj.put(dicom_core::DataElement::new(
        tags::DEIDENTIFICATION_METHOD,
        dicom_core::VR::LO,
        dicom_core::PrimitiveValue::Strs(values.into_iter().collect()),
    ));
}

/// Linkage files: `uid_map.csv` and `patient_map.csv` with columns id_old,id_new. Entries already
/// in the files are not repeated, so batches can share one folder.
pub struct Linkage {
    files: Mutex<[(std::fs::File, HashSet<String>); 2]>,
}

impl Linkage {
    fn open(dir: &Path, output_dir: &Path) -> Result<Linkage, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("linkage folder {}: {e}", dir.display()))?;
        let canon = std::fs::canonicalize(dir)
            .map_err(|e| format!("linkage folder {}: {e}", dir.display()))?;
        let out = std::fs::canonicalize(output_dir).unwrap_or_else(|_| output_dir.to_path_buf());
        if canon.starts_with(&out) {
            return Err(format!(
                "the linkage folder {} is inside the output folder; linkage must never leave with the data",
                dir.display()
            ));
        }
        let open = |name: &str| -> Result<(std::fs::File, HashSet<String>), String> {
            let path: PathBuf = canon.join(name);
            let existing: HashSet<String> = std::fs::read_to_string(&path)
                .map(|t| t.lines().skip(1).map(String::from).collect())
                .unwrap_or_default();
            let new = !path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if new {
                f.write_all(b"id_old,id_new\n").map_err(|e| e.to_string())?;
            }
            Ok((f, existing))
        };
        Ok(Linkage {
            files: Mutex::new([open("uid_map.csv")?, open("patient_map.csv")?]),
        })
    }

    fn record(
        &self,
        uids: &[(String, String)],
        patients: &[(String, String)],
    ) -> std::io::Result<()> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        for (k, pairs) in [uids, patients].into_iter().enumerate() {
            let (f, seen) = &mut files[k];
            let mut buf = String::new();
            for (old, new) in pairs {
                let line = format!("{},{}", csv_field(old), csv_field(new));
                if seen.insert(line.clone()) {
                    buf.push_str(&line);
                    buf.push('\n');
                }
            }
            f.write_all(buf.as_bytes())?;
        }
        Ok(())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
