//! `edit_tags`: a list of rules, each selecting attributes (by keyword or tag, private creator
//! block, group pattern or VR) and applying one action: keep, remove, empty, replace, hash (keyed
//! pseudonym) or lookup (CSV table; a missing key quarantines the instance). Rules apply at every
//! sequence depth; the first matching rule wins; unmatched attributes are left alone. A
//! lower-level building block for project-specific header edits.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dcmflow_engine::{BuildContext, Item, ItemError, ItemKind, ItemWorker, Runtime, StageConfig};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::attr::{resolve_tag, tag_name};
use crate::deidentify::Keys;
use crate::walk::{effective_vr, text, text_element, walk, Level, Visit};

/// What a rule does to the attributes it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EditAction {
    /// Leave the attribute as it is (later rules do not touch it; a sequence's items are still
    /// edited).
    Keep,
    /// Remove the attribute.
    Remove,
    /// Keep the attribute with an empty value (a sequence with no items).
    Empty,
    /// Replace the value with `value` (text VRs only).
    Replace,
    /// Replace the value with a keyed pseudonym (HMAC-SHA256 with the project secret): base32 text
    /// sized to the VR, or a `2.25.` UID for UI values. The same value gives the same pseudonym
    /// in every attribute.
    Hash,
    /// Replace the value from the CSV `table` (columns id_old,id_new); a value that is not in the
    /// table quarantines the instance.
    Lookup,
}

/// One rule: a selector (`tag` or `vr`, exactly one) and an action.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRule {
    /// The attributes: a keyword (`PatientName`), a tag (`(0010,0010)`), a private element
    /// `(gggg,"Creator",ee)` (group, private creator, element byte within the block), or a
    /// pattern with `x` for any hex digit (`(60xx,xxxx)`: every overlay element). Default: none.
    #[serde(default)]
    pub tag: Option<String>,
    /// Every attribute of this VR (`PN`, `DA`, ...). Default: none.
    #[serde(default)]
    pub vr: Option<String>,
    /// What to do: keep, remove, empty, replace, hash or lookup.
    pub action: EditAction,
    /// The new value, for `replace` only. Default: none.
    #[serde(default)]
    pub value: Option<String>,
    /// The CSV file (id_old,id_new), for `lookup` only. Default: none.
    #[serde(default)]
    pub table: Option<PathBuf>,
}

/// Edit attributes by rules (keyword, tag, private creator block, group pattern or VR; keep,
/// remove, empty, replace, hash or lookup) at every sequence depth; the first matching rule wins.
///
/// Example: `with: { rules: [{ tag: PatientID, action: lookup, table: ids.csv },
/// { tag: '(0009,"ACME 1.0",01)', action: remove }, { tag: "(60xx,xxxx)", action: remove },
/// { vr: PN, action: hash }] }`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditTagsConfig {
    /// The rules, tried in order for every attribute at every depth; the first match applies.
    /// Attributes no rule selects are left unchanged.
    pub rules: Vec<EditRule>,
}

/// A parsed selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selector {
    Tag(Tag),
    Private {
        group: u16,
        creator: String,
        low: u8,
    },
    /// (mask, value) over the 32-bit tag.
    Pattern(u32, u32),
    Vr(VR),
}

fn parse_selector(rule: &EditRule) -> Result<Selector, String> {
    match (&rule.tag, &rule.vr) {
        (Some(_), Some(_)) | (None, None) => Err("give exactly one of tag and vr".into()),
        (None, Some(v)) => v
            .trim()
            .parse::<VR>()
            .ok()
            .filter(|vr| vr.to_string() == v.trim())
            .map(Selector::Vr)
            .ok_or_else(|| format!("\"{v}\" is not a VR")),
        (Some(t), None) => parse_tag_selector(t),
    }
}

fn parse_tag_selector(t: &str) -> Result<Selector, String> {
    let s = t.trim();
    let bad =
        || format!("\"{s}\" is not a keyword, (gggg,eeee), (gggg,\"Creator\",ee) or (ggxx,xxxx)");
    if let Some(inner) = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        if inner.contains('"') {
            let (g, rest) = inner.split_once(',').ok_or_else(bad)?;
            let (creator, low) = rest.rsplit_once(',').ok_or_else(bad)?;
            let creator = creator.trim();
            let creator = creator
                .strip_prefix('"')
                .and_then(|c| c.strip_suffix('"'))
                .ok_or_else(bad)?;
            let group = u16::from_str_radix(g.trim(), 16).map_err(|_| bad())?;
            let low = u8::from_str_radix(low.trim(), 16).map_err(|_| bad())?;
            if group % 2 == 0 || creator.trim().is_empty() || g.trim().len() != 4 {
                return Err(format!(
                    "\"{s}\": a private element needs an odd group and a creator"
                ));
            }
            return Ok(Selector::Private {
                group,
                creator: creator.trim().to_string(),
                low,
            });
        }
        let hex: String = inner.chars().filter(|c| *c != ',').collect();
        if hex.len() == 8 && hex.chars().any(|c| c == 'x' || c == 'X') {
            let (mut mask, mut value) = (0u32, 0u32);
            for c in hex.chars() {
                mask <<= 4;
                value <<= 4;
                if c != 'x' && c != 'X' {
                    mask |= 0xF;
                    value |= c.to_digit(16).ok_or_else(bad)?;
                }
            }
            return Ok(Selector::Pattern(mask, value));
        }
    }
    resolve_tag(s).map(Selector::Tag).ok_or_else(bad)
}

impl Selector {
    fn matches(&self, level: &Level, tag: Tag, vr: VR) -> bool {
        match self {
            Selector::Tag(t) => *t == tag,
            Selector::Private {
                group,
                creator,
                low,
            } => {
                tag.group() == *group
                    && (tag.element() & 0xFF) as u8 == *low
                    && level
                        .creator_of(tag)
                        .is_some_and(|c| c.eq_ignore_ascii_case(creator))
            }
            Selector::Pattern(mask, value) => {
                ((tag.group() as u32) << 16 | tag.element() as u32) & mask == *value
            }
            Selector::Vr(v) => *v == vr,
        }
    }
}

fn load_table(path: &std::path::Path) -> Result<HashMap<String, String>, String> {
    let shown = path.display();
    let body = std::fs::read_to_string(path)
        .map_err(|e| format!("lookup table {shown}: cannot read ({})", e.kind()))?;
    let mut map = HashMap::new();
    for (i, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with("id_old")) {
            continue;
        }
        match line.split_once(',') {
            Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                map.insert(a.trim().to_string(), b.trim().to_string());
            }
            _ => {
                return Err(format!(
                    "lookup table {shown}: line {} needs id_old,id_new",
                    i + 1
                ))
            }
        }
    }
    Ok(map)
}

impl StageConfig for EditTagsConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Instance]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Instance
    }
    fn needs_secret(&self) -> bool {
        self.rules.iter().any(|r| r.action == EditAction::Hash)
    }
    fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.rules.is_empty() {
            out.push("edit_tags has no rules".into());
        }
        for (i, r) in self.rules.iter().enumerate() {
            let n = i + 1;
            if let Err(e) = parse_selector(r) {
                out.push(format!("rule {n}: {e}"));
            }
            match (r.action, r.value.is_some(), r.table.is_some()) {
                (EditAction::Replace, false, _) => {
                    out.push(format!("rule {n}: replace needs value"))
                }
                (EditAction::Lookup, _, false) => out.push(format!("rule {n}: lookup needs table")),
                (a, true, _) if a != EditAction::Replace => {
                    out.push(format!("rule {n}: value is for replace only"))
                }
                (a, _, true) if a != EditAction::Lookup => {
                    out.push(format!("rule {n}: table is for lookup only"))
                }
                _ => {}
            }
        }
        out
    }
    fn explain(&self) -> String {
        format!(
            "Attributes were edited by {} project rule(s) applied at every sequence depth.",
            self.rules.len()
        )
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        let mut rules = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let sel = parse_selector(r).map_err(|e| format!("rule {}: {e}", i + 1))?;
            let table = match &r.table {
                Some(p) if r.action == EditAction::Lookup => Some(load_table(p)?),
                _ => None,
            };
            rules.push(Rule {
                sel,
                action: r.action,
                value: r.value.clone().unwrap_or_default(),
                table,
            });
        }
        let keys = if self.needs_secret() {
            Some(Keys::new(ctx.require_secret()?.expose()))
        } else {
            None
        };
        Ok(Runtime::PerItem(Arc::new(EditTags {
            rules,
            keys,
            counts: Mutex::new(BTreeMap::new()),
        })))
    }
}

struct Rule {
    sel: Selector,
    action: EditAction,
    value: String,
    table: Option<HashMap<String, String>>,
}

/// The runtime of `edit_tags`.
pub struct EditTags {
    rules: Vec<Rule>,
    keys: Option<Keys>,
    counts: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
}

fn is_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::ST
            | VR::TM
            | VR::UC
            | VR::UI
            | VR::UR
            | VR::UT
    )
}

fn pseudonym_len(vr: VR) -> usize {
    match vr {
        VR::AE | VR::CS | VR::SH => 16,
        _ => 20,
    }
}

impl EditTags {
    /// Apply rule `n` to one element; `Err` is a reason (tags, never values).
    fn apply(&self, n: usize, e: dicom_object::mem::InMemElement) -> Result<Visit, String> {
        let rule = &self.rules[n];
        let tag = e.tag();
        let vr = effective_vr(&e);
        let is_seq = matches!(e.value(), Value::Sequence(_));
        let what = format!("rule {}: {}", n + 1, tag_name(tag));
        Ok(match rule.action {
            EditAction::Keep => Visit::Descend(e),
            EditAction::Remove => Visit::Remove,
            EditAction::Empty if is_seq => Visit::Done(DataElement::new(
                tag,
                VR::SQ,
                DataSetSequence::new(Vec::new(), Length::UNDEFINED),
            )),
            EditAction::Empty => Visit::Done(DataElement::new(tag, vr, PrimitiveValue::Empty)),
            _ if is_seq || !is_text_vr(vr) => {
                return Err(format!("{what}: {vr:?} values cannot be replaced by text"))
            }
            EditAction::Replace => Visit::Done(text_element(tag, vr, &rule.value)),
            EditAction::Hash => {
                let keys = self.keys.as_ref().ok_or("hash needs the project secret")?;
                let old = text(&e).unwrap_or_default();
                let new: Vec<String> = old
                    .split('\\')
                    .map(|v| {
                        let v = v.trim();
                        if v.is_empty() {
                            String::new()
                        } else if vr == VR::UI {
                            keys.uid(v)
                        } else {
                            keys.pseudonym("edit_tags", v, pseudonym_len(vr))
                        }
                    })
                    .collect();
                Visit::Done(text_element(tag, vr, &new.join("\\")))
            }
            EditAction::Lookup => {
                let table = rule.table.as_ref().ok_or("lookup table not loaded")?;
                let old = text(&e).unwrap_or_default();
                let mut new = Vec::new();
                for v in old.split('\\') {
                    let v = v.trim();
                    if v.is_empty() {
                        new.push(String::new());
                        continue;
                    }
                    match table.get(v) {
                        Some(n) => new.push(n.clone()),
                        None => return Err(format!("{what}: value not in the lookup table")),
                    }
                }
                Visit::Done(text_element(tag, vr, &new.join("\\")))
            }
        })
    }
}

fn action_name(a: EditAction) -> &'static str {
    match a {
        EditAction::Keep => "kept",
        EditAction::Remove => "removed",
        EditAction::Empty => "emptied",
        EditAction::Replace => "replaced",
        EditAction::Hash => "hashed",
        EditAction::Lookup => "looked_up",
    }
}

impl ItemWorker for EditTags {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let (source, mut inst) = item.into_instance()?;
        let mut counts: BTreeMap<(Tag, EditAction), u64> = BTreeMap::new();
        walk(&mut inst.obj, &mut |level, e| {
            let tag = e.tag();
            let vr = effective_vr(&e);
            let Some(n) = self
                .rules
                .iter()
                .position(|r| r.sel.matches(level, tag, vr))
            else {
                return Ok(Visit::Descend(e));
            };
            *counts.entry((tag, self.rules[n].action)).or_default() += 1;
            self.apply(n, e)
        })
        .map_err(ItemError::quarantine)?;
        let mut total = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for ((tag, a), n) in counts {
            *total
                .entry(tag_name(tag))
                .or_default()
                .entry(action_name(a))
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
    use dicom_dictionary_std::tags;
    use dicom_object::InMemDicomObject;

    fn sample(pid: &str) -> Item {
        item(
            "1.2.3.4",
            vec![
                el(tags::PATIENT_NAME, VR::PN, "DOE^JANE"),
                el(tags::PATIENT_ID, VR::LO, pid),
                el(tags::INSTITUTION_NAME, VR::LO, "General Hospital"),
                el(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "WHO^DOCTOR"),
                el(Tag(0x0009, 0x0010), VR::LO, "ACME 1.0"),
                el(Tag(0x0009, 0x1001), VR::LO, "secret payload"),
                el(Tag(0x0009, 0x1002), VR::LO, "harmless"),
                el(Tag(0x6000, 0x0010), VR::US, "8"),
                el(Tag(0x6000, 0x3000), VR::OW, "x"),
                sq(
                    tags::REQUEST_ATTRIBUTES_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([
                        el(
                            tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME,
                            VR::PN,
                            "NURSE^ANN",
                        ),
                        el(tags::PATIENT_ID, VR::LO, pid),
                    ])],
                ),
            ],
        )
    }

    fn with_table(dir: &std::path::Path) -> String {
        let table = dir.join("ids.csv");
        std::fs::write(&table, "id_old,id_new\nPID-1,SUBJ-0001\n").unwrap();
        format!(
            "rules:\n  - {{ tag: PatientID, action: lookup, table: {} }}\n  - {{ tag: '(0009,\"ACME 1.0\",01)', action: remove }}\n  - {{ tag: \"(60xx,xxxx)\", action: remove }}\n  - {{ tag: InstitutionName, action: replace, value: SITE-A }}\n  - {{ tag: ReferringPhysicianName, action: empty }}\n  - {{ vr: PN, action: hash }}\n",
            table.display()
        )
    }

    #[test]
    fn documented_example_applies_the_first_matching_rule_at_every_depth() {
        let dir = tempfile::tempdir().unwrap();
        let w = build::<EditTagsConfig>(&with_table(dir.path()));
        let o = run(&w, sample("PID-1")).unwrap();
        assert_eq!(txt(&o, tags::PATIENT_ID).unwrap(), "SUBJ-0001");
        assert!(
            o.get(Tag(0x0009, 0x1001)).is_none(),
            "private element removed"
        );
        assert_eq!(txt(&o, Tag(0x0009, 0x1002)).unwrap(), "harmless");
        assert!(o.get(Tag(0x6000, 0x0010)).is_none() && o.get(Tag(0x6000, 0x3000)).is_none());
        assert_eq!(txt(&o, tags::INSTITUTION_NAME).unwrap(), "SITE-A");
        assert_eq!(
            txt(&o, tags::REFERRING_PHYSICIAN_NAME).unwrap(),
            "",
            "the empty rule comes before the PN rule"
        );
        let name = txt(&o, tags::PATIENT_NAME).unwrap();
        let keys = Keys::new(b"stage-test-secret-0123");
        assert_eq!(name, keys.pseudonym("edit_tags", "DOE^JANE", 20));
        let it = &o
            .get(tags::REQUEST_ATTRIBUTES_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(
            txt(it, tags::PATIENT_ID).unwrap(),
            "SUBJ-0001",
            "nested lookup"
        );
        assert_eq!(
            txt(it, tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME).unwrap(),
            keys.pseudonym("edit_tags", "NURSE^ANN", 20),
            "nested hash"
        );
        let summary = w.summary().unwrap().to_string();
        assert!(
            summary.contains("PatientID") && !summary.contains("DOE"),
            "{summary}"
        );
    }

    #[test]
    fn a_value_missing_from_the_lookup_table_quarantines_without_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let w = build::<EditTagsConfig>(&with_table(dir.path()));
        let e = run(&w, sample("PID-UNKNOWN")).unwrap_err();
        assert!(matches!(e, ItemError::Quarantined(_)), "{e}");
        assert!(e.reason().contains("rule 1: (0010,0020) PatientID"), "{e}");
        assert!(!e.reason().contains("PID-UNKNOWN"), "{e}");
    }

    #[test]
    fn bad_rules_are_reported_at_plan_time() {
        let cfg: EditTagsConfig = serde_saphyr::from_str(
            "rules:\n  - { tag: PatientNam, action: remove }\n  - { tag: PatientID, vr: LO, action: remove }\n  - { vr: XX, action: remove }\n  - { tag: '(0008,\"X\",01)', action: remove }\n  - { tag: PatientID, action: replace }\n  - { tag: PatientID, action: lookup }\n  - { tag: PatientID, action: remove, value: x }\n",
        )
        .unwrap();
        assert_eq!(cfg.check().len(), 7, "{:?}", cfg.check());
        assert!(
            serde_saphyr::from_str::<EditTagsConfig>("rules: [{ tag: X, action: scrub }]\n")
                .is_err()
        );
    }
}
