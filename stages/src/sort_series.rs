//! `sort_series` (a barrier): groups instances by StudyInstanceUID + SeriesInstanceUID and
//! orders each series by InstanceNumber, slice position along the normal, or AcquisitionTime;
//! reports gaps and duplicates. It holds headers only (pixel data is dropped and read back from
//! the unmodified input later), so memory stays small whatever the series size; instances
//! whose pixels mask_regions changed keep them, since the input still has the burned-in text.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use dcmflow_engine::{
    BarrierWorker, BuildContext, Instance, Item, ItemError, ItemKind, Mode, Payload, Runtime,
    Series, StageConfig,
};
use dicom_dictionary_std::tags;
use schemars::JsonSchema;
use serde::Deserialize;

/// What orders the instances of a series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    /// InstanceNumber (0020,0013), ascending (default).
    #[default]
    InstanceNumber,
    /// ImagePositionPatient projected on the slice normal (from ImageOrientationPatient).
    Position,
    /// AcquisitionTime (0008,0032), then InstanceNumber.
    AcquisitionTime,
}

/// Group instances into series (StudyInstanceUID + SeriesInstanceUID) and order each one;
/// gaps and duplicates are noted in the series. Holds headers, not pixels (except masked ones).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SortSeriesConfig {
    /// instance_number (default), position or acquisition_time.
    #[serde(default)]
    pub order_by: OrderBy,
}

impl StageConfig for SortSeriesConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Instance]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Series
    }
    fn mode(&self) -> Mode {
        Mode::Barrier
    }
    fn explain(&self) -> String {
        format!("Series were ordered by {:?}.", self.order_by)
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::Barrier(Box::new(SortSeries {
            order_by: self.order_by,
            groups: BTreeMap::new(),
        })))
    }
}

type Member = (Option<f64>, Arc<PathBuf>, Arc<Instance>);

/// The runtime of `sort_series`.
pub struct SortSeries {
    order_by: OrderBy,
    groups: BTreeMap<(String, String), Vec<Member>>,
}

fn numbers(inst: &Instance, tag: dicom_core::Tag) -> Option<Vec<f64>> {
    let v = inst.str_of(tag)?;
    v.split('\\')
        .map(|x| x.trim().parse::<f64>().ok())
        .collect()
}

/// hhmmss.ffffff as seconds.
fn time_seconds(t: &str) -> Option<f64> {
    let t = t.trim();
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    if hms.len() < 2 || !hms.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let part = |i: usize| {
        hms.get(i..i + 2)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let f = if frac.is_empty() {
        0.0
    } else {
        format!("0.{frac}").parse::<f64>().unwrap_or(0.0)
    };
    Some(part(0) * 3600.0 + part(2) * 60.0 + part(4) + f)
}

impl SortSeries {
    fn key(&self, inst: &Instance) -> Option<f64> {
        match self.order_by {
            OrderBy::InstanceNumber => inst.str_of(tags::INSTANCE_NUMBER)?.parse::<f64>().ok(),
            OrderBy::Position => {
                let pos = numbers(inst, tags::IMAGE_POSITION_PATIENT)?;
                let o = numbers(inst, tags::IMAGE_ORIENTATION_PATIENT)?;
                if pos.len() != 3 || o.len() != 6 {
                    return None;
                }
                let n = [
                    o[1] * o[5] - o[2] * o[4],
                    o[2] * o[3] - o[0] * o[5],
                    o[0] * o[4] - o[1] * o[3],
                ];
                Some(pos[0] * n[0] + pos[1] * n[1] + pos[2] * n[2])
            }
            OrderBy::AcquisitionTime => time_seconds(&inst.str_of(tags::ACQUISITION_TIME)?),
        }
    }
}

impl BarrierWorker for SortSeries {
    fn push(&mut self, item: Item) -> Result<Vec<Item>, ItemError> {
        let (source, mut inst) = item.into_instance()?;
        // Masked pixels exist only here (the input still shows the burned-in text): they stay
        // with the series. Unmasked pixels are dropped and read back from the input later.
        if !inst.is_masked() {
            crate::read_dicom::drop_pixels(&mut inst);
        }
        let study = inst.str_of(tags::STUDY_INSTANCE_UID).unwrap_or_default();
        let series = inst.str_of(tags::SERIES_INSTANCE_UID).unwrap_or_default();
        let key = self.key(&inst);
        self.groups
            .entry((study, series))
            .or_default()
            .push((key, source, Arc::new(inst)));
        Ok(vec![])
    }

    fn finish(&mut self) -> Vec<Result<Item, (Arc<PathBuf>, ItemError)>> {
        let order_by = self.order_by;
        std::mem::take(&mut self.groups)
            .into_iter()
            .map(|((study_uid, series_uid), mut members)| {
                let mut notes = Vec::new();
                let missing = members.iter().filter(|m| m.0.is_none()).count();
                if missing > 0 {
                    notes.push(format!(
                        "{missing} instance(s) lack the {order_by:?} key and come last"
                    ));
                }
                // Stable: equal keys keep arrival order, broken by source path for determinism.
                members.sort_by(|a, b| {
                    let ka = a.0.unwrap_or(f64::INFINITY);
                    let kb = b.0.unwrap_or(f64::INFINITY);
                    ka.total_cmp(&kb).then_with(|| a.1.cmp(&b.1))
                });
                let keys: Vec<f64> = members.iter().filter_map(|m| m.0).collect();
                let dups = keys.windows(2).filter(|w| w[0] == w[1]).count();
                if dups > 0 {
                    notes.push(format!("{dups} duplicate {order_by:?} value(s)"));
                }
                if order_by == OrderBy::InstanceNumber {
                    let gaps = keys.windows(2).filter(|w| w[1] - w[0] > 1.0).count();
                    if gaps > 0 {
                        notes.push(format!("{gaps} gap(s) in InstanceNumber"));
                    }
                }
                let source = members[0].1.clone();
                let series = Series {
                    study_uid,
                    series_uid,
                    sources: members.iter().map(|m| m.1.clone()).collect(),
                    instances: members.into_iter().map(|m| m.2).collect(),
                    notes,
                };
                Ok(Item {
                    source,
                    payload: Payload::Series(Arc::new(series)),
                })
            })
            .collect()
    }
}
