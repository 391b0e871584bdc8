//! Editing every element of a dataset at every sequence depth: the traversal shared by the
//! lower-level header stages (`remap_uids`, `shift_dates`, `edit_tags`). Each element is handed to
//! a visitor that keeps, replaces or removes it; kept sequences are walked into.

use std::collections::HashMap;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;

/// Deepest sequence nesting walked; deeper files fail rather than overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// What the visitor decided for one element.
pub enum Visit {
    /// Put this element back; a sequence's items are walked in turn.
    Descend(InMemElement),
    /// Put this element back as it is (no walking into it).
    Done(InMemElement),
    /// Drop the element.
    Remove,
}

/// What a visitor knows about where an element sits.
pub struct Level<'a> {
    /// Private creators at this level: (group, block) -> creator (trimmed).
    pub creators: &'a HashMap<(u16, u8), String>,
    /// Path of the enclosing sequences, e.g. `(0008,1115)[0].` (empty at the top).
    pub prefix: &'a str,
}

impl Level<'_> {
    /// The private creator of a private data element, if it has one at this level.
    pub fn creator_of(&self, tag: Tag) -> Option<&str> {
        if tag.group().is_multiple_of(2) || tag.element() <= 0x00FF {
            return None;
        }
        self.creators
            .get(&(tag.group(), (tag.element() >> 8) as u8))
            .map(|s| s.as_str())
    }
}

/// The VR a value really has: the dictionary's when the file stored it as UN.
pub fn effective_vr(e: &InMemElement) -> VR {
    if e.vr() == VR::UN {
        if let Some(entry) = StandardDataDictionary.by_tag(e.tag()) {
            if let dicom_core::dictionary::VirtualVr::Exact(vr) = entry.vr() {
                return vr;
            }
        }
    }
    e.vr()
}

/// A primitive element's text (UN values read as their bytes), without trailing padding.
pub fn text(e: &InMemElement) -> Option<String> {
    let s = match e.value() {
        Value::Primitive(PrimitiveValue::U8(b)) => String::from_utf8_lossy(b).into_owned(),
        Value::Primitive(p) => p.to_str().into_owned(),
        _ => return None,
    };
    Some(s.trim_end_matches(['\0', ' ']).to_string())
}

/// A new element with a text value (multi-valued when it holds `\`).
pub fn text_element(tag: Tag, vr: VR, value: &str) -> InMemElement {
    let v = if value.contains('\\') {
        PrimitiveValue::Strs(value.split('\\').map(String::from).collect())
    } else {
        PrimitiveValue::from(value)
    };
    DataElement::new(tag, vr, v)
}

/// A stage's summary: its per-attribute counts under `key` (counts only, never values).
pub fn counts_summary<T: serde::Serialize>(
    counts: &std::sync::Mutex<T>,
    key: &str,
) -> Option<serde_json::Value> {
    let counts = counts.lock().unwrap_or_else(|p| p.into_inner());
    let value = serde_json::to_value(&*counts).ok()?;
    Some(serde_json::json!({ key: value }))
}

/// Walk every element of `obj` at every depth, in tag order.
pub fn walk(
    obj: &mut InMemDicomObject,
    visit: &mut dyn FnMut(&Level, InMemElement) -> Result<Visit, String>,
) -> Result<(), String> {
    walk_at(obj, "", 0, visit)
}

fn walk_at(
    obj: &mut InMemDicomObject,
    prefix: &str,
    depth: usize,
    visit: &mut dyn FnMut(&Level, InMemElement) -> Result<Visit, String>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("sequences nested deeper than {MAX_DEPTH}"));
    }
    let tags: Vec<Tag> = obj.tags().collect();
    let mut creators = HashMap::new();
    for &t in &tags {
        if t.group() % 2 == 1 && (0x0010..=0x00FF).contains(&t.element()) {
            if let Some(c) = obj.get(t).and_then(text) {
                creators.insert((t.group(), t.element() as u8), c.trim().to_string());
            }
        }
    }
    for tag in tags {
        let Some(elem) = obj.take(tag) else { continue };
        let level = Level {
            creators: &creators,
            prefix,
        };
        match visit(&level, elem)? {
            Visit::Remove => {}
            Visit::Done(e) => {
                obj.put(e);
            }
            Visit::Descend(e) => {
                let vr = e.vr();
                match e.into_value() {
                    Value::Sequence(seq) => {
                        let mut items = seq.into_items();
                        for (i, item) in items.iter_mut().enumerate() {
                            let p = format!(
                                "{prefix}({:04X},{:04X})[{i}].",
                                tag.group(),
                                tag.element()
                            );
                            walk_at(item, &p, depth + 1, visit)?;
                        }
                        obj.put(DataElement::new(
                            tag,
                            VR::SQ,
                            DataSetSequence::new(items, Length::UNDEFINED),
                        ));
                    }
                    other => {
                        obj.put(DataElement::new(tag, vr, other));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Helpers for the header stages' tests: a small instance and a built worker.
#[cfg(test)]
pub mod testutil {
    use std::path::PathBuf;
    use std::sync::Arc;

    use dcmflow_engine::{
        BuildContext, Instance, Item, ItemError, ItemWorker, Payload, Runtime, Secret, StageConfig,
    };
    use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
    use dicom_object::meta::FileMetaTableBuilder;
    use dicom_object::InMemDicomObject;

    pub fn el(tag: Tag, vr: VR, v: &str) -> super::InMemElement {
        DataElement::new(tag, vr, PrimitiveValue::from(v))
    }

    pub fn sq(tag: Tag, items: Vec<InMemDicomObject>) -> super::InMemElement {
        DataElement::new(
            tag,
            VR::SQ,
            super::DataSetSequence::new(items, super::Length::UNDEFINED),
        )
    }

    /// An item holding `elems`, with a file meta naming `sop`.
    pub fn item(sop: &str, elems: Vec<super::InMemElement>) -> Item {
        let o = InMemDicomObject::from_element_iter(elems);
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid(sop)
            .transfer_syntax("1.2.840.10008.1.2.1")
            .build()
            .unwrap();
        Item {
            source: Arc::new(PathBuf::from("x.dcm")),
            payload: Payload::Instance(Arc::new(Instance::new(o.with_exact_meta(meta), true))),
        }
    }

    /// Parse, check and build a per-item stage from its YAML settings.
    pub fn build<C>(yaml: &str) -> Arc<dyn ItemWorker>
    where
        C: StageConfig + serde::de::DeserializeOwned,
    {
        let cfg: C = serde_saphyr::from_str(yaml).unwrap();
        assert!(cfg.check().is_empty(), "{:?}", cfg.check());
        let ctx = BuildContext {
            stage_id: "s".into(),
            output_dir: ".".into(),
            inputs: vec![],
            secret: Some(Secret::from_bytes(b"stage-test-secret-0123", "test").unwrap()),
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

    /// Run one item through and return the object.
    pub fn run(
        w: &Arc<dyn ItemWorker>,
        it: Item,
    ) -> Result<dicom_object::FileDicomObject<InMemDicomObject>, ItemError> {
        let mut out = w.process(it)?;
        assert_eq!(out.len(), 1);
        let (_, inst) = out.remove(0).into_instance()?;
        Ok(inst.obj)
    }

    /// A primitive value as text.
    pub fn txt(o: &InMemDicomObject, tag: Tag) -> Option<String> {
        o.get(tag).and_then(super::text)
    }
}
