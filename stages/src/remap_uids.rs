//! `remap_uids`: replace every UID of an instance (every UI value at every depth, and the file
//! meta's MediaStorageSOPInstanceUID) by a keyed `2.25.` UID, so references between instances
//! stay consistent across batches and machines that share the project secret. Well-known
//! standard UIDs (`1.2.840.10008.*`: classes, transfer syntaxes, coding schemes) are kept.
//! A lower-level building block: `deidentify` already does this as part of the profile.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use dcmflow_engine::{BuildContext, Item, ItemError, ItemKind, ItemWorker, Runtime, StageConfig};
use dicom_core::header::Header;
use dicom_core::{Tag, VR};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::attr::{resolve_tag, tag_name};
use crate::deidentify::Keys;
use crate::walk::{effective_vr, text, text_element, walk, Visit};

/// Replace every UID (all UI values at every sequence depth, and the file meta's
/// MediaStorageSOPInstanceUID) by a keyed `2.25.` UID derived with HMAC-SHA256 from the project
/// secret; well-known standard UIDs (1.2.840.10008.*) are kept.
///
/// Example: `with: { keep: [FrameOfReferenceUID] }`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemapUidsConfig {
    /// Attributes (keyword or `(gggg,eeee)`) whose UIDs are kept unchanged at any depth.
    /// Default: none, every non-standard UID is replaced.
    #[serde(default)]
    pub keep: Vec<String>,
}

impl StageConfig for RemapUidsConfig {
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
        self.keep
            .iter()
            .filter(|k| resolve_tag(k).is_none())
            .map(|k| format!("keep: \"{k}\" is not a DICOM keyword or (gggg,eeee) tag"))
            .collect()
    }
    fn explain(&self) -> String {
        "UIDs were replaced by keyed HMAC-SHA256-derived 2.25 UIDs, consistently across the data set; \
         well-known standard UIDs were kept."
            .into()
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        let keep = self
            .keep
            .iter()
            .map(|k| resolve_tag(k).ok_or_else(|| format!("keep: unknown attribute \"{k}\"")))
            .collect::<Result<HashSet<Tag>, String>>()?;
        Ok(Runtime::PerItem(Arc::new(RemapUids {
            keys: Keys::new(ctx.require_secret()?.expose()),
            keep,
            counts: Mutex::new(BTreeMap::new()),
        })))
    }
}

/// Whether a UID is a well-known one from the standard (kept as it is).
pub fn is_standard_uid(uid: &str) -> bool {
    uid.starts_with("1.2.840.10008.")
}

/// The runtime of `remap_uids`.
pub struct RemapUids {
    keys: Keys,
    keep: HashSet<Tag>,
    counts: Mutex<BTreeMap<String, u64>>,
}

impl RemapUids {
    fn map(&self, uid: &str) -> String {
        let uid = uid.trim_matches(['\0', ' ']);
        if uid.is_empty() || is_standard_uid(uid) {
            uid.to_string()
        } else {
            self.keys.uid(uid)
        }
    }
}

impl ItemWorker for RemapUids {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let (source, mut inst) = item.into_instance()?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        walk(&mut inst.obj, &mut |_, e| {
            if effective_vr(&e) != VR::UI || self.keep.contains(&e.tag()) {
                return Ok(Visit::Descend(e));
            }
            let Some(old) = text(&e) else {
                return Ok(Visit::Done(e));
            };
            let new: Vec<String> = old.split('\\').map(|u| self.map(u)).collect();
            let new = new.join("\\");
            if new == old.trim_matches(['\0', ' ']) {
                return Ok(Visit::Done(e));
            }
            *counts.entry(tag_name(e.tag())).or_default() += 1;
            Ok(Visit::Done(text_element(e.tag(), VR::UI, &new)))
        })
        .map_err(|e| ItemError::quarantine(format!("UIDs not remapped: {e}")))?;
        let meta_uid = self.map(inst.obj.meta().media_storage_sop_instance_uid());
        inst.obj
            .update_meta(|m| m.media_storage_sop_instance_uid = meta_uid);
        let mut total = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (k, n) in counts {
            *total.entry(k).or_default() += n;
        }
        Ok(vec![Item::of_instance(source, inst)])
    }

    fn summary(&self) -> Option<serde_json::Value> {
        crate::walk::counts_summary(&self.counts, "remapped_per_attribute")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::testutil::*;
    use dicom_dictionary_std::tags;

    const SOP: &str = "1.2.826.0.1.3680043.10.5.1";
    const OTHER: &str = "1.2.826.0.1.3680043.10.5.2";
    const FOR: &str = "1.2.826.0.1.3680043.10.5.9";

    fn sample() -> Item {
        item(
            SOP,
            vec![
                el(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.7"),
                el(tags::SOP_INSTANCE_UID, VR::UI, SOP),
                el(tags::FRAME_OF_REFERENCE_UID, VR::UI, FOR),
                el(tags::PATIENT_ID, VR::LO, "1.2.826.0.1.3680043.10.5.1"),
                sq(
                    tags::REFERENCED_IMAGE_SEQUENCE,
                    vec![dicom_object::InMemDicomObject::from_element_iter([
                        el(
                            tags::REFERENCED_SOP_CLASS_UID,
                            VR::UI,
                            "1.2.840.10008.5.1.4.1.1.7",
                        ),
                        el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, OTHER),
                        sq(
                            tags::REFERENCED_SERIES_SEQUENCE,
                            vec![dicom_object::InMemDicomObject::from_element_iter([el(
                                tags::SERIES_INSTANCE_UID,
                                VR::UI,
                                SOP,
                            )])],
                        ),
                    ])],
                ),
            ],
        )
    }

    #[test]
    fn documented_example_remaps_every_uid_at_every_depth_and_keeps_the_listed_ones() {
        let w = build::<RemapUidsConfig>("keep: [FrameOfReferenceUID]\n");
        let o = run(&w, sample()).unwrap();
        let new_sop = txt(&o, tags::SOP_INSTANCE_UID).unwrap();
        assert!(new_sop.starts_with("2.25."), "{new_sop}");
        assert_eq!(o.meta().media_storage_sop_instance_uid(), new_sop);
        assert_eq!(
            txt(&o, tags::SOP_CLASS_UID).unwrap(),
            "1.2.840.10008.5.1.4.1.1.7",
            "standard UIDs are kept"
        );
        assert_eq!(txt(&o, tags::FRAME_OF_REFERENCE_UID).unwrap(), FOR);
        assert_eq!(txt(&o, tags::PATIENT_ID).unwrap(), SOP, "only UI values");
        let item = &o
            .get(tags::REFERENCED_IMAGE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        let other = txt(item, tags::REFERENCED_SOP_INSTANCE_UID).unwrap();
        assert!(other.starts_with("2.25.") && other != new_sop);
        let deeper = &item
            .get(tags::REFERENCED_SERIES_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(
            txt(deeper, tags::SERIES_INSTANCE_UID).unwrap(),
            new_sop,
            "the same UID maps to the same new UID at any depth"
        );
        assert!(w.summary().unwrap().to_string().contains("SOPInstanceUID"));
    }

    #[test]
    fn same_uid_and_secret_give_the_same_new_uid_as_deidentify() {
        let w = build::<RemapUidsConfig>("{}\n");
        let o = run(&w, sample()).unwrap();
        let keys = Keys::new(b"stage-test-secret-0123");
        assert_eq!(txt(&o, tags::SOP_INSTANCE_UID).unwrap(), keys.uid(SOP));
        assert_eq!(
            txt(&o, tags::FRAME_OF_REFERENCE_UID).unwrap(),
            keys.uid(FOR)
        );
    }

    #[test]
    fn unknown_keep_attribute_is_reported_at_plan_time() {
        let cfg: RemapUidsConfig = serde_saphyr::from_str("keep: [FrameOfReferenceUid]\n").unwrap();
        assert_eq!(cfg.check().len(), 1);
        assert!(serde_saphyr::from_str::<RemapUidsConfig>("kep: []\n").is_err());
    }
}
