//! `filter`: keep or drop instances by conditions on their attributes (equals, one of, contains,
//! present, absent, regex). Rejected items are dropped (counted) or quarantined (listed as
//! problems in run.json). Reasons name the condition, never the value found.

use std::sync::Arc;

use dcmflow_engine::{BuildContext, Item, ItemError, ItemKind, ItemWorker, Runtime, StageConfig};
use dicom_core::Tag;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::attr::{resolve_tag, values_of};

/// How conditions combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Every condition must hold (default).
    #[default]
    All,
    /// One condition is enough.
    Any,
}

/// What happens to an item that does not pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnReject {
    /// Let it go quietly; counted as dropped (default).
    #[default]
    Drop,
    /// Count it as a problem and list it in run.json (exit code 1).
    Quarantine,
}

/// One test on one attribute. Give exactly one of `equals`, `one_of`, `contains`, `regex`,
/// `present`. For multi-valued attributes, `equals`, `one_of` and `regex` pass when any single
/// value passes; `contains` looks at all values joined by `\`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Attribute keyword (`Modality`) or tag (`(0008,0060)`).
    pub attribute: String,
    /// The value equals this text (surrounding spaces ignored).
    #[serde(default)]
    pub equals: Option<String>,
    /// The value is one of these.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// The value contains this text.
    #[serde(default)]
    pub contains: Option<String>,
    /// The value matches this regular expression (Rust regex syntax, unanchored).
    #[serde(default)]
    pub regex: Option<String>,
    /// true: the attribute is present (with any value); false: it is absent.
    #[serde(default)]
    pub present: Option<bool>,
    /// Compare without regard to case. Default: false.
    #[serde(default)]
    pub ignore_case: bool,
    /// Invert the test. Default: false.
    #[serde(default)]
    pub not: bool,
}

/// Keep instances whose attributes pass the conditions; drop or quarantine the rest.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The conditions.
    pub conditions: Vec<Condition>,
    /// all (default) or any.
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    /// drop (default) or quarantine.
    #[serde(default)]
    pub on_reject: OnReject,
}

impl Condition {
    fn operators(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.equals.is_some() {
            v.push("equals");
        }
        if self.one_of.is_some() {
            v.push("one_of");
        }
        if self.contains.is_some() {
            v.push("contains");
        }
        if self.regex.is_some() {
            v.push("regex");
        }
        if self.present.is_some() {
            v.push("present");
        }
        v
    }
}

impl StageConfig for FilterConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Instance]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Instance
    }
    fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.conditions.is_empty() {
            out.push("filter has no conditions".into());
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let n = i + 1;
            if resolve_tag(&c.attribute).is_none() {
                out.push(format!(
                    "condition {n}: \"{}\" is not a DICOM keyword or tag",
                    c.attribute
                ));
            }
            let ops = c.operators();
            if ops.len() != 1 {
                out.push(format!(
                    "condition {n}: give exactly one of equals, one_of, contains, regex, present (found {})",
                    if ops.is_empty() { "none".to_string() } else { ops.join(", ") }
                ));
            }
            if let Some(r) = &c.regex {
                if let Err(e) = Regex::new(r) {
                    out.push(format!("condition {n}: bad regex: {e}"));
                }
            }
        }
        out
    }
    fn explain(&self) -> String {
        let parts: Vec<String> = self
            .conditions
            .iter()
            .map(|c| {
                format!(
                    "{}{} {}",
                    if c.not { "not " } else { "" },
                    c.attribute,
                    c.operators().join("")
                )
            })
            .collect();
        format!(
            "Instances were selected by {} of: {}.",
            if self.match_mode == MatchMode::All {
                "all"
            } else {
                "any"
            },
            parts.join("; ")
        )
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Runtime, String> {
        let mut tests = Vec::new();
        for c in &self.conditions {
            let tag = resolve_tag(&c.attribute).ok_or("unknown attribute")?;
            let fold = |s: &str| {
                if c.ignore_case {
                    s.to_lowercase()
                } else {
                    s.to_string()
                }
            };
            let test = if let Some(v) = &c.equals {
                Test::Equals(fold(v.trim()))
            } else if let Some(vs) = &c.one_of {
                Test::OneOf(vs.iter().map(|v| fold(v.trim())).collect())
            } else if let Some(v) = &c.contains {
                Test::Contains(fold(v))
            } else if let Some(r) = &c.regex {
                let pat = if c.ignore_case {
                    format!("(?i){r}")
                } else {
                    r.clone()
                };
                Test::Regex(Regex::new(&pat).map_err(|e| e.to_string())?)
            } else {
                Test::Present(c.present.unwrap_or(true))
            };
            tests.push((
                tag,
                test,
                c.not,
                c.ignore_case,
                format!("{} {}", c.attribute, c.operators().join("")),
            ));
        }
        Ok(Runtime::PerItem(Arc::new(Filter {
            tests,
            mode: self.match_mode,
            on_reject: self.on_reject,
        })))
    }
}

enum Test {
    Equals(String),
    OneOf(Vec<String>),
    Contains(String),
    Regex(Regex),
    Present(bool),
}

/// The runtime of `filter`.
pub struct Filter {
    tests: Vec<(Tag, Test, bool, bool, String)>,
    mode: MatchMode,
    on_reject: OnReject,
}

impl Filter {
    fn passes(&self, obj: &dicom_object::InMemDicomObject, i: usize) -> bool {
        let (tag, test, not, fold, _) = &self.tests[i];
        let values = values_of(obj, *tag).map(|vs| {
            if *fold {
                vs.into_iter().map(|v| v.to_lowercase()).collect::<Vec<_>>()
            } else {
                vs
            }
        });
        let present = obj.get(*tag).is_some();
        let r = match (test, &values) {
            (Test::Present(want), _) => present == *want,
            (_, None) => false,
            (Test::Equals(v), Some(vs)) => vs.iter().any(|x| x == v) || vs.join("\\") == *v,
            (Test::OneOf(set), Some(vs)) => vs.iter().any(|x| set.contains(x)),
            (Test::Contains(v), Some(vs)) => vs.join("\\").contains(v.as_str()),
            (Test::Regex(re), Some(vs)) => vs.iter().any(|x| re.is_match(x)),
        };
        r != *not
    }
}

impl ItemWorker for Filter {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let inst = item.instance()?;
        let results: Vec<bool> = (0..self.tests.len())
            .map(|i| self.passes(&inst.obj, i))
            .collect();
        let ok = match self.mode {
            MatchMode::All => results.iter().all(|&r| r),
            MatchMode::Any => results.iter().any(|&r| r),
        };
        if ok {
            return Ok(vec![item]);
        }
        let failed: Vec<String> = results
            .iter()
            .enumerate()
            .filter(|(_, &r)| !r)
            .map(|(i, _)| format!("condition {} ({})", i + 1, self.tests[i].4))
            .collect();
        let reason = format!("filter: {} not met", failed.join(", "));
        Err(match self.on_reject {
            OnReject::Drop => ItemError::Dropped(reason),
            OnReject::Quarantine => ItemError::Quarantined(reason),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcmflow_engine::{Instance, Payload};
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::meta::FileMetaTableBuilder;
    use std::path::PathBuf;

    fn item(modality: &str, image_type: &[&str]) -> Item {
        let mut o = dicom_object::InMemDicomObject::new_empty();
        o.put(DataElement::new(
            tags::MODALITY,
            VR::CS,
            PrimitiveValue::from(modality),
        ));
        o.put(DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(image_type.iter().map(|s| s.to_string()).collect()),
        ));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
            .media_storage_sop_instance_uid("1.2.3")
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .build()
            .unwrap();
        let inst = Instance::new(o.with_exact_meta(meta), true);
        Item {
            source: Arc::new(PathBuf::from("x.dcm")),
            payload: Payload::Instance(Arc::new(inst)),
        }
    }

    fn filter(yaml: &str) -> Arc<dyn ItemWorker> {
        let cfg: FilterConfig = serde_saphyr::from_str(yaml).unwrap();
        assert!(cfg.check().is_empty(), "{:?}", cfg.check());
        let ctx = BuildContext {
            stage_id: "f".into(),
            output_dir: ".".into(),
            inputs: vec![],
            secret: None,
            pixels_needed_downstream: false,
            cancel: Default::default(),
            dry_run: false,
            leftovers: None,
            moves: None,
        };
        match cfg.build(&ctx).unwrap() {
            Runtime::PerItem(w) => w,
            _ => unreachable!(),
        }
    }

    #[test]
    fn documented_example_keeps_ct_axial_and_quarantines_the_rest() {
        let f = filter(
            "conditions:\n  - { attribute: Modality, one_of: [CT, MR] }\n  - { attribute: ImageType, contains: AXIAL }\non_reject: quarantine\n",
        );
        assert_eq!(
            f.process(item("CT", &["ORIGINAL", "PRIMARY", "AXIAL"]))
                .unwrap()
                .len(),
            1
        );
        let e = f.process(item("US", &["ORIGINAL"])).unwrap_err();
        assert!(matches!(e, ItemError::Quarantined(_)));
        assert!(e.reason().contains("condition 1 (Modality one_of)"), "{e}");
        assert!(!e.reason().contains("US"), "no values in reasons: {e}");
    }

    #[test]
    fn present_regex_not_and_any() {
        let f = filter("conditions:\n  - { attribute: PatientID, present: false }\n  - { attribute: Modality, regex: '^C', not: true }\nmatch: any\n");
        assert_eq!(
            f.process(item("CT", &[])).unwrap().len(),
            1,
            "PatientID absent passes"
        );
        let f = filter("conditions:\n  - { attribute: Modality, equals: ct, ignore_case: true }\n");
        assert!(f.process(item("CT", &[])).is_ok());
        assert!(matches!(
            f.process(item("MR", &[])),
            Err(ItemError::Dropped(_))
        ));
    }

    #[test]
    fn bad_conditions_are_reported_at_plan_time() {
        let cfg: FilterConfig =
            serde_saphyr::from_str("conditions:\n  - { attribute: Modalty, equals: CT, contains: C }\n  - { attribute: Modality, regex: '(' }\n").unwrap();
        let p = cfg.check();
        assert_eq!(p.len(), 3, "{p:?}");
    }
}
