//! `shift_dates`: move every date (DA) and date-time (DT) of an instance, at every sequence depth,
//! by a per-patient number of days derived with the project secret from the original PatientID
//! (PatientName when there is none), so intervals within a patient survive. Times (TM) are kept.
//! A lower-level building block: run it before anything replaces PatientID.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dcmflow_engine::{BuildContext, Item, ItemError, ItemKind, ItemWorker, Runtime, StageConfig};
use dicom_core::header::Header;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::attr::tag_name;
use crate::deidentify::{dates, Keys};
use crate::walk::{effective_vr, text, text_element, walk, Visit};

fn default_min() -> i64 {
    -365
}
fn default_max() -> i64 {
    -1
}

/// Shift every DA and DT value, at every sequence depth, by a per-patient number of days keyed on
/// the original PatientID (HMAC-SHA256 with the project secret); TM values are kept.
///
/// Example: `with: { min_days: -730, max_days: -30 }`. Values that are not valid dates are
/// emptied; LongitudinalTemporalInformationModified (0028,0303) is set to MODIFIED.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShiftDatesConfig {
    /// Smallest offset in days (inclusive). Default: -365.
    #[serde(default = "default_min")]
    pub min_days: i64,
    /// Largest offset in days (inclusive). Default: -1.
    #[serde(default = "default_max")]
    pub max_days: i64,
}

impl StageConfig for ShiftDatesConfig {
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
        if self.min_days > self.max_days {
            out.push("min_days must not be greater than max_days".into());
        }
        if self.min_days.abs() > 36500 || self.max_days.abs() > 36500 {
            out.push("min_days and max_days must be within +-36500".into());
        }
        if self.min_days <= 0 && self.max_days >= 0 {
            out.push("the range includes 0, so some patients' dates would not move".into());
        }
        out
    }
    fn explain(&self) -> String {
        format!(
            "Dates were shifted by a per-patient offset between {} and {} days, preserving intervals; times were kept.",
            self.min_days, self.max_days
        )
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::PerItem(Arc::new(ShiftDates {
            keys: Keys::new(ctx.require_secret()?.expose()),
            min: self.min_days,
            max: self.max_days,
            counts: Mutex::new(BTreeMap::new()),
        })))
    }
}

/// The runtime of `shift_dates`.
pub struct ShiftDates {
    keys: Keys,
    min: i64,
    max: i64,
    counts: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
}

impl ItemWorker for ShiftDates {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let (source, mut inst) = item.into_instance()?;
        let key = [tags::PATIENT_ID, tags::PATIENT_NAME]
            .into_iter()
            .filter_map(|t| inst.obj.get(t).and_then(text))
            .map(|v| v.trim().to_string())
            .find(|v| !v.is_empty())
            .ok_or_else(|| {
                ItemError::quarantine(
                    "PatientID (0010,0020) and PatientName (0010,0010) are empty or absent: no per-patient date offset",
                )
            })?;
        let days = self.keys.date_offset_days(&key, self.min, self.max);
        let mut counts: BTreeMap<(Tag, &'static str), u64> = BTreeMap::new();
        walk(&mut inst.obj, &mut |_, e| {
            let vr = effective_vr(&e);
            if !matches!(vr, VR::DA | VR::DT) {
                return Ok(Visit::Descend(e));
            }
            let Some(old) = text(&e) else {
                return Ok(Visit::Done(e));
            };
            if old.trim().is_empty() {
                return Ok(Visit::Done(e));
            }
            let shifted = if vr == VR::DA {
                dates::map_multi(&old, |v| dates::shift_da(v, days))
            } else {
                dates::map_multi(&old, |v| dates::shift_dt(v, days))
            };
            Ok(Visit::Done(match shifted {
                Some(v) => {
                    *counts.entry((e.tag(), "shifted")).or_default() += 1;
                    text_element(e.tag(), vr, &v)
                }
                None => {
                    *counts.entry((e.tag(), "emptied")).or_default() += 1;
                    DataElement::new(e.tag(), vr, PrimitiveValue::Empty)
                }
            }))
        })
        .map_err(|e| ItemError::quarantine(format!("dates not shifted: {e}")))?;
        inst.obj
            .put(text_element(Tag(0x0028, 0x0303), VR::CS, "MODIFIED"));
        let mut total = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for ((tag, what), n) in counts {
            *total
                .entry(tag_name(tag))
                .or_default()
                .entry(what)
                .or_default() += n;
        }
        Ok(vec![Item::of_instance(source, inst)])
    }

    fn summary(&self) -> Option<serde_json::Value> {
        crate::walk::counts_summary(&self.counts, "actions_per_attribute")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::testutil::*;
    use dicom_object::InMemDicomObject;

    fn sample(pid: &str, study_date: &str) -> Item {
        item(
            "1.2.3.4",
            vec![
                el(tags::PATIENT_ID, VR::LO, pid),
                el(tags::STUDY_DATE, VR::DA, study_date),
                el(tags::STUDY_TIME, VR::TM, "101500"),
                el(
                    tags::ACQUISITION_DATE_TIME,
                    VR::DT,
                    "20200301101502.25+0100",
                ),
                el(tags::PATIENT_BIRTH_DATE, VR::DA, "not a date"),
                sq(
                    tags::REQUEST_ATTRIBUTES_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([el(
                        tags::SCHEDULED_PROCEDURE_STEP_START_DATE,
                        VR::DA,
                        "20200229",
                    )])],
                ),
            ],
        )
    }

    #[test]
    fn documented_example_shifts_dates_at_every_depth_by_one_offset_per_patient() {
        let w = build::<ShiftDatesConfig>("min_days: -730\nmax_days: -30\n");
        let days = Keys::new(b"stage-test-secret-0123").date_offset_days("PID-A", -730, -30);
        assert!((-730..=-30).contains(&days));
        let o = run(&w, sample("PID-A", "20200301")).unwrap();
        let study = txt(&o, tags::STUDY_DATE).unwrap();
        assert_eq!(study, dates::shift_da("20200301", days).unwrap());
        assert_eq!(txt(&o, tags::STUDY_TIME).unwrap(), "101500", "TM kept");
        assert_eq!(
            txt(&o, tags::ACQUISITION_DATE_TIME).unwrap(),
            format!("{study}101502.25+0100")
        );
        assert_eq!(
            txt(&o, tags::PATIENT_BIRTH_DATE).unwrap(),
            "",
            "invalid emptied"
        );
        let it = &o
            .get(tags::REQUEST_ATTRIBUTES_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(
            txt(it, tags::SCHEDULED_PROCEDURE_STEP_START_DATE).unwrap(),
            dates::shift_da("20200229", days).unwrap()
        );
        assert_eq!(txt(&o, Tag(0x0028, 0x0303)).unwrap(), "MODIFIED");
        // A later study of the same patient keeps its interval.
        let later = run(&w, sample("PID-A", "20200415")).unwrap();
        assert_eq!(
            dates::shift_da(&study, 45).unwrap(),
            txt(&later, tags::STUDY_DATE).unwrap()
        );
        let summary = w.summary().unwrap().to_string();
        assert!(summary.contains("StudyDate") && !summary.contains("2020"));
    }

    #[test]
    fn an_instance_without_patient_identity_is_quarantined() {
        let w = build::<ShiftDatesConfig>("{}\n");
        let it = item("1.2.3", vec![el(tags::STUDY_DATE, VR::DA, "20200301")]);
        assert!(matches!(run(&w, it), Err(ItemError::Quarantined(_))));
    }

    #[test]
    fn bad_ranges_are_reported_at_plan_time() {
        for yaml in [
            "min_days: 10\nmax_days: -10\n",
            "min_days: -10\nmax_days: 10\n",
        ] {
            let cfg: ShiftDatesConfig = serde_saphyr::from_str(yaml).unwrap();
            assert_eq!(cfg.check().len(), 1, "{:?}", cfg.check());
        }
        let cfg: ShiftDatesConfig = serde_saphyr::from_str("max_days: 99999\n").unwrap();
        assert!(!cfg.check().is_empty());
    }
}
