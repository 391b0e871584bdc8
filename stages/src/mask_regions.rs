//! `mask_regions` (Clean Pixel Data): blanks rectangles in every frame of an instance, chosen by
//! the first rule whose header conditions match; rules live in the recipe or in rule files a
//! site can share. A built-in ultrasound rule keeps only the regions listed in
//! SequenceOfUltrasoundRegions. An instance counts as masked only when pixels were blanked in
//! every frame: then it is stored uncompressed, BurnedInAnnotation becomes NO, and it carries a
//! `PixelMark::Masked` so de-identification lets it through and records Clean Pixel Data
//! (113101). A matching rule without rectangles is the site declaring that the device draws no
//! text: the instance keeps its pixels and BurnedInAnnotation and carries
//! `PixelMark::DeclaredNoText` (de-identification lets it through without claiming 113101). A
//! site rule that cannot blank anything (Rows/Columns unreadable, rectangles outside the image)
//! quarantines the instance; the built-in rule then leaves it unmarked. `run.json` counts
//! instances per outcome and rule name.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dcmflow_engine::{
    BuildContext, Item, ItemError, ItemKind, ItemWorker, PixelMark, Runtime, StageConfig,
};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::attr::{resolve_tag, values_of};
use crate::pixels::{any_inside, complement, mask_instance, ultrasound_regions, Rect};

/// One value or a list of values (any of them matches).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Any of these.
    Many(Vec<String>),
}

/// A rectangle in pixel coordinates (x = column, y = row, from the top-left corner).
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RectConfig {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A masking rule: when every condition holds, blank these rectangles.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    /// A name for reports (e.g. the device model the rule is for).
    #[serde(default)]
    pub name: Option<String>,
    /// Header conditions, all of which must hold: attribute keyword (Modality, Manufacturer,
    /// ManufacturerModelName, Rows, Columns, SOPClassUID, ImageType, ...) to a value or a list
    /// of values. Empty: the rule matches every instance.
    #[serde(default)]
    pub when: BTreeMap<String, OneOrMany>,
    /// Rectangles to blank in every frame. A matching rule with no rectangles declares the
    /// images free of burned-in text: they pass with their pixels, BurnedInAnnotation unchanged
    /// and no Clean Pixel Data claimed (counted as `declared_no_text` in run.json). Rectangles
    /// that miss the image mask nothing: the instance is quarantined.
    #[serde(default)]
    pub rects: Vec<RectConfig>,
    /// Also blank everything outside the SequenceOfUltrasoundRegions regions. Default: false.
    #[serde(default)]
    pub keep_ultrasound_regions_only: bool,
}

/// Blank burned-in text in every frame (Clean Pixel Data): the first rule whose header
/// conditions match gives the rectangles; ultrasound without a rule keeps only its declared
/// regions. Instances that match no rule pass unchanged (and de-identification quarantines
/// those that may carry text).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskRegionsConfig {
    /// Rules, tried in order; the first match wins.
    #[serde(default)]
    pub rules: Vec<MaskRule>,
    /// YAML files holding a list of rules each (same form as `rules`), tried after `rules`.
    /// Empty entries are ignored (so a recipe param can leave it unset).
    #[serde(default)]
    pub rule_files: Vec<PathBuf>,
    /// Built-in rule for ultrasound (Modality US) that matches no rule: keep only the regions in
    /// SequenceOfUltrasoundRegions and blank the rest. Default: true.
    #[serde(default = "yes")]
    pub ultrasound_regions: bool,
}

fn yes() -> bool {
    true
}

impl MaskRegionsConfig {
    fn all_rules(&self) -> Result<Vec<MaskRule>, String> {
        let mut rules = self.rules.clone();
        for f in self.rule_files.iter().filter(|f| !f.as_os_str().is_empty()) {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("rule file {}: {e}", f.display()))?;
            let more: Vec<MaskRule> = serde_saphyr::from_str(&text).map_err(|e| {
                let at = e
                    .location()
                    .map(|l| format!("{}:{}", l.line(), l.column()))
                    .unwrap_or_default();
                format!(
                    "rule file {}:{at}: {}",
                    f.display(),
                    dcmflow_engine::recipe::yaml_message(&e)
                )
            })?;
            rules.extend(more);
        }
        Ok(rules)
    }
}

impl StageConfig for MaskRegionsConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Instance]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Instance
    }
    fn needs_pixels(&self) -> bool {
        true
    }
    fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.all_rules() {
            Ok(rules) => {
                for (i, r) in rules.iter().enumerate() {
                    for k in r.when.keys() {
                        if resolve_tag(k).is_none() {
                            out.push(format!(
                                "rule {}: \"{k}\" is not a DICOM keyword or tag",
                                i + 1
                            ));
                        }
                    }
                    for (j, rect) in r.rects.iter().enumerate() {
                        if rect.width == 0 || rect.height == 0 {
                            out.push(format!(
                                "rule {} rect {}: width and height must be at least 1",
                                i + 1,
                                j + 1
                            ));
                        }
                    }
                }
            }
            Err(e) => out.push(e),
        }
        out
    }
    fn explain(&self) -> String {
        let n = self.all_rules().map(|r| r.len()).unwrap_or(0);
        let mut s = String::from(
            "Burned-in text was masked in every frame (Clean Pixel Data Option, 113101) ",
        );
        match (n, self.ultrasound_regions) {
            (0, true) => s.push_str("of ultrasound images by blanking everything outside their declared ultrasound regions"),
            (0, false) => s.push_str("only where a mask rule applied (none were given)"),
            (n, us) => {
                s.push_str(&format!("by {n} site rule{} matched on header attributes", if n == 1 { "" } else { "s" }));
                if us {
                    s.push_str(", and of other ultrasound images by blanking everything outside their declared ultrasound regions");
                }
                s.push_str("; images matched by a site rule without rectangles, which declares the device free of burned-in text, were passed unmasked and without the Clean Pixel Data code");
            }
        }
        s.push_str("; masked images were stored uncompressed.");
        s
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::PerItem(Arc::new(self.runtime(&ctx.stage_id)?)))
    }
}

impl MaskRegionsConfig {
    /// The runtime for stage `id`: rules read and their conditions resolved.
    fn runtime(&self, id: &str) -> Result<MaskRegions, String> {
        let rules = self
            .all_rules()?
            .into_iter()
            .map(|r| {
                let when = r
                    .when
                    .iter()
                    .map(|(k, v)| {
                        let tag = resolve_tag(k)
                            .ok_or_else(|| format!("\"{k}\" is not a DICOM keyword"))?;
                        let vals = match v {
                            OneOrMany::One(s) => vec![s.trim().to_string()],
                            OneOrMany::Many(v) => v.iter().map(|s| s.trim().to_string()).collect(),
                        };
                        Ok((tag, vals))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok((r, when))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(MaskRegions {
            id: id.to_string(),
            rules,
            ultrasound_regions: self.ultrasound_regions,
            counts: Mutex::new(BTreeMap::new()),
        })
    }
}

type CompiledRule = (MaskRule, Vec<(dicom_core::Tag, Vec<String>)>);

/// The name reports give the built-in ultrasound rule.
const BUILT_IN_ULTRASOUND: &str = "built-in ultrasound regions";

/// The runtime of `mask_regions`.
pub struct MaskRegions {
    id: String,
    rules: Vec<CompiledRule>,
    ultrasound_regions: bool,
    /// outcome ("masked", "declared_no_text", "not_masked") -> rule name -> instances.
    counts: Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>,
}

/// Rows or Columns as a positive number, if it can be read.
fn dimension(inst: &dcmflow_engine::Instance, tag: dicom_core::Tag) -> Option<u32> {
    inst.str_of(tag)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
}

impl MaskRegions {
    /// The first matching rule and its name for reports (its `name`, else "rule N").
    fn matching(&self, obj: &dicom_object::InMemDicomObject) -> Option<(&MaskRule, String)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, (_, when))| {
                when.iter().all(|(tag, want)| {
                    values_of(obj, *tag).is_some_and(|vals| {
                        vals.iter().any(|v| want.contains(v)) || want.contains(&vals.join("\\"))
                    })
                })
            })
            .map(|(i, (r, _))| {
                let name = r
                    .name
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| format!("rule {}", i + 1));
                (r, name)
            })
    }

    fn count(&self, outcome: &'static str, rule: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(outcome)
            .or_default()
            .entry(rule.to_string())
            .or_default() += 1;
    }
}

impl ItemWorker for MaskRegions {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let (source, mut inst) = item.into_instance()?;
        crate::read_dicom::ensure_pixels(&mut inst, &source)?;
        let rows = dimension(&inst, tags::ROWS);
        let cols = dimension(&inst, tags::COLUMNS);
        let modality = inst.str_of(tags::MODALITY).unwrap_or_default();
        // (rule name, rectangles to blank, whether a site rule asked for them, whether
        // everything outside the ultrasound regions is blanked too)
        let (rule, mut rects, site, keep_regions_only) = match self.matching(&inst.obj) {
            Some((rule, name)) => {
                if rule.rects.is_empty() && !rule.keep_ultrasound_regions_only {
                    // "This device draws no text": the site's word, not masking.
                    inst.pixel_marks.push(PixelMark::DeclaredNoText {
                        stage: self.id.clone(),
                        rule: name.clone(),
                    });
                    self.count("declared_no_text", &name);
                    return Ok(vec![Item::of_instance(source, inst)]);
                }
                let rects: Vec<Rect> = rule
                    .rects
                    .iter()
                    .map(|r| Rect {
                        x: r.x,
                        y: r.y,
                        width: r.width,
                        height: r.height,
                    })
                    .collect();
                if rule.keep_ultrasound_regions_only && ultrasound_regions(&inst.obj).is_empty() {
                    return Err(ItemError::quarantine(
                        "mask rule keeps ultrasound regions only, but SequenceOfUltrasoundRegions (0018,6011) is absent",
                    ));
                }
                (name, rects, true, rule.keep_ultrasound_regions_only)
            }
            None if self.ultrasound_regions && modality.eq_ignore_ascii_case("US") => {
                if ultrasound_regions(&inst.obj).is_empty() {
                    return Ok(vec![Item::of_instance(source, inst)]);
                }
                (BUILT_IN_ULTRASOUND.to_string(), Vec::new(), false, true)
            }
            None => return Ok(vec![Item::of_instance(source, inst)]),
        };
        if inst.obj.get(tags::PIXEL_DATA).is_none() {
            // Nothing to blank, and nothing that could show text.
            return Ok(vec![Item::of_instance(source, inst)]);
        }
        // A site rule that cannot blank what it names is the site saying text is there: the
        // instance is quarantined. The built-in rule leaves it unmasked (de-identification then
        // quarantines it as a carrier unless burned_in is allow).
        let not_masked =
            |inst: dcmflow_engine::Instance, why: String| -> Result<Vec<Item>, ItemError> {
                self.count("not_masked", &rule);
                if site {
                    Err(ItemError::quarantine(format!(
                        "mask rule \"{rule}\" could not mask the pixels: {why}"
                    )))
                } else {
                    Ok(vec![Item::of_instance(source.clone(), inst)])
                }
            };
        let (Some(rows), Some(cols)) = (rows, cols) else {
            return not_masked(
                inst,
                "Rows (0028,0010) or Columns (0028,0011) cannot be read".into(),
            );
        };
        if keep_regions_only {
            rects.extend(complement(cols, rows, &ultrasound_regions(&inst.obj)));
        }
        if !any_inside(&rects, cols, rows) {
            return not_masked(
                inst,
                format!("no rectangle lies inside the {cols}x{rows} image, nothing was blanked"),
            );
        }
        let blanked = mask_instance(&mut inst.obj, &rects)
            .map_err(|e| ItemError::failed(format!("cannot mask the pixel data: {e}")))?;
        if blanked.is_empty() || blanked.contains(&0) {
            return Err(ItemError::failed(
                "masking left a frame untouched; the instance is not written",
            ));
        }
        inst.obj.put(DataElement::new(
            tags::BURNED_IN_ANNOTATION,
            VR::CS,
            PrimitiveValue::from("NO"),
        ));
        inst.pixel_marks.push(PixelMark::Masked {
            stage: self.id.clone(),
            rule: rule.clone(),
        });
        self.count("masked", &rule);
        Ok(vec![Item::of_instance(source, inst)])
    }

    fn summary(&self) -> Option<serde_json::Value> {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_empty() {
            return None;
        }
        serde_json::to_value(&*c).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcmflow_engine::Instance;
    use dicom_object::meta::FileMetaTableBuilder;
    use dicom_object::InMemDicomObject;

    const US_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.6.1";

    fn stage(yaml: &str) -> MaskRegions {
        let cfg: MaskRegionsConfig = serde_saphyr::from_str(yaml).unwrap();
        cfg.runtime("mask").unwrap()
    }

    /// A 16x16 8-bit ultrasound image; `rows` None leaves Rows out.
    fn us(rows: Option<u16>) -> Item {
        let mut o = InMemDicomObject::new_empty();
        let s = |o: &mut InMemDicomObject, t, vr, v: &str| {
            o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
        };
        s(&mut o, tags::SOP_CLASS_UID, VR::UI, US_IMAGE);
        s(
            &mut o,
            tags::SOP_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.543.80.1",
        );
        s(&mut o, tags::MODALITY, VR::CS, "US");
        s(
            &mut o,
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2",
        );
        let us = |o: &mut InMemDicomObject, t, v: u16| {
            o.put(DataElement::new(t, VR::US, PrimitiveValue::from(v)));
        };
        if let Some(r) = rows {
            us(&mut o, tags::ROWS, r);
        }
        us(&mut o, tags::COLUMNS, 16);
        us(&mut o, tags::SAMPLES_PER_PIXEL, 1);
        us(&mut o, tags::BITS_ALLOCATED, 8);
        us(&mut o, tags::BITS_STORED, 8);
        us(&mut o, tags::HIGH_BIT, 7);
        us(&mut o, tags::PIXEL_REPRESENTATION, 0);
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8((0..256).map(|i| i as u8 | 1).collect()),
        ));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(US_IMAGE)
            .media_storage_sop_instance_uid("1.2.826.0.1.3680043.10.543.80.1")
            .transfer_syntax("1.2.840.10008.1.2.1")
            .build()
            .unwrap();
        let inst = Instance::new(o.with_exact_meta(meta), true);
        Item::of_instance(Arc::new(PathBuf::from("us.dcm")), inst)
    }

    /// Whether the stage's answer marks the instance masked (or says nothing was masked).
    fn marked_masked(res: Result<Vec<Item>, ItemError>) -> bool {
        let Ok(items) = res else { return false };
        let inst = items[0].instance().unwrap();
        let bia = inst.str_of(tags::BURNED_IN_ANNOTATION);
        assert_eq!(
            inst.is_masked(),
            bia.as_deref() == Some("NO"),
            "BurnedInAnnotation NO exactly when masked"
        );
        inst.is_masked()
    }

    #[test]
    fn a_rule_that_blanks_a_rectangle_marks_the_instance_masked() {
        let s = stage("rules: [{ name: band, when: { Modality: US }, rects: [{ x: 0, y: 0, width: 16, height: 2 }] }]");
        assert!(marked_masked(s.process(us(Some(16)))));
    }

    #[test]
    fn a_masking_rule_on_an_instance_without_readable_rows_does_not_mark_it_masked() {
        let s = stage("rules: [{ name: band, when: { Modality: US }, rects: [{ x: 0, y: 0, width: 16, height: 2 }] }]");
        assert!(!marked_masked(s.process(us(None))));
    }

    /// The instance with one ultrasound region (the left half of the image).
    fn with_region(item: Item) -> Item {
        let (source, mut inst) = item.into_instance().unwrap();
        let n = |t, v: u32| DataElement::new(t, VR::UL, PrimitiveValue::from(v));
        let region = InMemDicomObject::from_element_iter([
            n(tags::REGION_LOCATION_MIN_X0, 0),
            n(tags::REGION_LOCATION_MIN_Y0, 0),
            n(tags::REGION_LOCATION_MAX_X1, 7),
            n(tags::REGION_LOCATION_MAX_Y1, 15),
        ]);
        inst.obj.put(DataElement::new(
            tags::SEQUENCE_OF_ULTRASOUND_REGIONS,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![region]),
        ));
        Item::of_instance(source, inst)
    }

    #[test]
    fn the_built_in_ultrasound_rule_masks_outside_the_declared_regions() {
        let s = stage("{}");
        assert!(marked_masked(s.process(with_region(us(Some(16))))));
    }

    #[test]
    fn the_built_in_ultrasound_rule_without_readable_rows_does_not_mark_it_masked() {
        let s = stage("{}");
        assert!(!marked_masked(s.process(with_region(us(None)))));
    }

    #[test]
    fn rectangles_entirely_outside_the_image_do_not_count_as_masking() {
        let s = stage("rules: [{ name: band, when: { Modality: US }, rects: [{ x: 100, y: 100, width: 16, height: 2 }] }]");
        assert!(!marked_masked(s.process(us(Some(16)))));
    }

    #[test]
    fn a_rule_with_no_rectangles_is_a_declaration_not_masking() {
        let s = stage("rules: [{ name: no text here, when: { Modality: US }, rects: [] }]");
        let items = s.process(us(Some(16))).unwrap();
        let inst = items[0].instance().unwrap();
        assert!(inst.declared_no_text() && !inst.is_masked());
        assert_eq!(
            inst.pixel_marks,
            vec![PixelMark::DeclaredNoText {
                stage: "mask".into(),
                rule: "no text here".into()
            }]
        );
        assert_eq!(inst.str_of(tags::BURNED_IN_ANNOTATION), None);
        assert_eq!(s.summary().unwrap()["declared_no_text"]["no text here"], 1);
    }

    #[test]
    fn a_site_rule_that_cannot_mask_quarantines_and_says_why() {
        let s = stage("rules: [{ name: band, when: { Modality: US }, rects: [{ x: 100, y: 100, width: 16, height: 2 }] }]");
        let e = s.process(us(Some(16))).unwrap_err();
        assert!(matches!(e, ItemError::Quarantined(_)), "{e:?}");
        assert!(
            e.reason().contains("\"band\"") && e.reason().contains("16x16"),
            "{}",
            e.reason()
        );
        let e = s.process(us(None)).unwrap_err();
        assert!(e.reason().contains("Rows (0028,0010)"), "{}", e.reason());
    }
}
