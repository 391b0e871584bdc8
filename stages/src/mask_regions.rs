//! `mask_regions` (Clean Pixel Data): blanks rectangles in every frame of an instance, chosen by
//! the first rule whose header conditions match; rules live in the recipe or in rule files a
//! site can share. A built-in ultrasound rule keeps only the regions listed in
//! SequenceOfUltrasoundRegions. The masked instance is stored uncompressed, BurnedInAnnotation
//! becomes NO, and the instance is marked as masked so de-identification lets it through.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use dcmflow_engine::{BuildContext, Item, ItemError, ItemKind, ItemWorker, Runtime, StageConfig};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::attr::{resolve_tag, values_of};
use crate::pixels::{complement, mask_instance, ultrasound_regions, Rect};

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
    /// images free of burned-in text.
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
            }
        }
        s.push_str("; masked images were stored uncompressed.");
        s
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
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
        Ok(Runtime::PerItem(Arc::new(MaskRegions {
            id: ctx.stage_id.clone(),
            rules,
            ultrasound_regions: self.ultrasound_regions,
        })))
    }
}

type CompiledRule = (MaskRule, Vec<(dicom_core::Tag, Vec<String>)>);

/// The runtime of `mask_regions`.
pub struct MaskRegions {
    id: String,
    rules: Vec<CompiledRule>,
    ultrasound_regions: bool,
}

impl MaskRegions {
    fn matching(&self, obj: &dicom_object::InMemDicomObject) -> Option<&MaskRule> {
        self.rules
            .iter()
            .find(|(_, when)| {
                when.iter().all(|(tag, want)| {
                    values_of(obj, *tag).is_some_and(|vals| {
                        vals.iter().any(|v| want.contains(v)) || want.contains(&vals.join("\\"))
                    })
                })
            })
            .map(|(r, _)| r)
    }
}

impl ItemWorker for MaskRegions {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let (source, mut inst) = item.into_instance()?;
        crate::read_dicom::ensure_pixels(&mut inst, &source)?;
        let rows = inst
            .str_of(tags::ROWS)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let cols = inst
            .str_of(tags::COLUMNS)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let modality = inst.str_of(tags::MODALITY).unwrap_or_default();
        let rects: Option<Vec<Rect>> = match self.matching(&inst.obj) {
            Some(rule) => {
                let mut rects: Vec<Rect> = rule
                    .rects
                    .iter()
                    .map(|r| Rect {
                        x: r.x,
                        y: r.y,
                        width: r.width,
                        height: r.height,
                    })
                    .collect();
                if rule.keep_ultrasound_regions_only {
                    let regions = ultrasound_regions(&inst.obj);
                    if regions.is_empty() {
                        return Err(ItemError::quarantine(
                            "mask rule keeps ultrasound regions only, but SequenceOfUltrasoundRegions (0018,6011) is absent",
                        ));
                    }
                    rects.extend(complement(cols, rows, &regions));
                }
                Some(rects)
            }
            None if self.ultrasound_regions && modality.eq_ignore_ascii_case("US") => {
                let regions = ultrasound_regions(&inst.obj);
                (!regions.is_empty()).then(|| complement(cols, rows, &regions))
            }
            None => None,
        };
        let Some(rects) = rects else {
            return Ok(vec![Item::of_instance(source, inst)]);
        };
        if inst.obj.get(tags::PIXEL_DATA).is_some() && !rects.is_empty() {
            mask_instance(&mut inst.obj, &rects)
                .map_err(|e| ItemError::failed(format!("cannot mask the pixel data: {e}")))?;
        }
        inst.obj.put(DataElement::new(
            tags::BURNED_IN_ANNOTATION,
            VR::CS,
            PrimitiveValue::from("NO"),
        ));
        inst.masked_by.push(self.id.clone());
        Ok(vec![Item::of_instance(source, inst)])
    }
}
