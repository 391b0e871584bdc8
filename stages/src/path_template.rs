//! Output path templates: `{Keyword}`, `{(gggg,eeee)}` and `{Keyword|fallback}` replaced by
//! sanitised attribute values, so no value can escape the output folder or form an invalid name.

use std::path::PathBuf;

use dicom_object::InMemDicomObject;

use crate::attr::{resolve_tag, text_of};

/// One piece of a template.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Attr {
        name: String,
        tag: dicom_core::Tag,
        fallback: Option<String>,
    },
    Extra {
        name: String,
        fallback: Option<String>,
    },
}

/// A parsed output path template.
#[derive(Clone, Debug, PartialEq)]
pub struct PathTemplate {
    pieces: Vec<Piece>,
}

/// Placeholders that are not attributes and that a stage provides (e.g. `frame`).
pub type Extras<'a> = &'a [(&'a str, String)];

impl PathTemplate {
    /// Parse; `extras` names the non-attribute placeholders allowed (e.g. `frame`).
    pub fn parse(t: &str, extras: &[&str]) -> Result<PathTemplate, String> {
        if t.trim().is_empty() {
            return Err("the path template is empty".into());
        }
        if t.starts_with('/') || t.starts_with('\\') || t.contains(':') && !t.contains('{') {
            return Err("the path template must be relative to the output folder".into());
        }
        let mut pieces = Vec::new();
        let mut rest = t;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let Some(close_rel) = rest[open..].find('}') else {
                return Err(format!("unclosed \"{{\" in path template \"{t}\""));
            };
            let inner = &rest[open + 1..open + close_rel];
            let (name, fallback) = match inner.split_once('|') {
                Some((n, f)) => (n.trim(), Some(f.to_string())),
                None => (inner.trim(), None),
            };
            if extras.contains(&name) {
                pieces.push(Piece::Extra {
                    name: name.to_string(),
                    fallback,
                });
            } else {
                let tag = resolve_tag(name).ok_or_else(|| {
                    format!("path template: \"{name}\" is not a DICOM keyword or (gggg,eeee) tag")
                })?;
                pieces.push(Piece::Attr {
                    name: name.to_string(),
                    tag,
                    fallback,
                });
            }
            rest = &rest[open + close_rel + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        for p in &pieces {
            if let Piece::Text(s) = p {
                if s.split(['/', '\\']).any(|c| c == "..") {
                    return Err("the path template may not contain \"..\"".into());
                }
            }
        }
        Ok(PathTemplate { pieces })
    }

    /// The relative output path for an object. Missing attributes without a fallback are an
    /// error naming the attribute.
    pub fn render(&self, obj: &InMemDicomObject, extras: Extras<'_>) -> Result<PathBuf, String> {
        self.render_with_meta(obj, None, extras)
    }

    /// As [`render`](Self::render), with the file meta group as a fallback for SOPInstanceUID
    /// and SOPClassUID (MediaStorageSOPInstanceUID / MediaStorageSOPClassUID).
    pub fn render_with_meta(
        &self,
        obj: &InMemDicomObject,
        meta: Option<&dicom_object::FileMetaTable>,
        extras: Extras<'_>,
    ) -> Result<PathBuf, String> {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Attr {
                    name,
                    tag,
                    fallback,
                } => {
                    let v = text_of(obj, *tag)
                        .filter(|v| !v.trim().is_empty())
                        .or_else(|| meta.and_then(|m| meta_value(m, *tag)));
                    match (v, fallback) {
                        (Some(v), _) => s.push_str(&sanitize_value(&v)),
                        (None, Some(f)) => s.push_str(&sanitize(f)),
                        (None, None) => {
                            return Err(format!(
                                "path template: {name} is absent or empty (give a fallback: {{{name}|unknown}})"
                            ))
                        }
                    }
                }
                Piece::Extra { name, fallback } => {
                    match (extras.iter().find(|(n, _)| n == name), fallback) {
                        (Some((_, v)), _) => s.push_str(&sanitize(v)),
                        (None, Some(f)) => s.push_str(&sanitize(f)),
                        (None, None) => s.push_str("none"),
                    }
                }
            }
        }
        let mut out = PathBuf::new();
        for comp in s.split(['/', '\\']) {
            if comp.is_empty() {
                continue;
            }
            out.push(sanitize(comp));
        }
        if out.as_os_str().is_empty() {
            return Err("path template gave an empty path".into());
        }
        Ok(out)
    }
}

fn meta_value(meta: &dicom_object::FileMetaTable, tag: dicom_core::Tag) -> Option<String> {
    use dicom_dictionary_std::tags;
    let v = match tag {
        tags::SOP_INSTANCE_UID => meta.media_storage_sop_instance_uid(),
        tags::SOP_CLASS_UID => meta.media_storage_sop_class_uid(),
        _ => return None,
    };
    let v = v.trim_end_matches(['\0', ' ']);
    (!v.is_empty()).then(|| v.to_string())
}

/// An attribute value inside a path: sanitised and at most 64 bytes (the longest UID).
fn sanitize_value(v: &str) -> String {
    let mut s = sanitize(v);
    truncate_at(&mut s, 64);
    s
}

fn truncate_at(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Make one path component safe on every common file system: only `[A-Za-z0-9._-]` and
/// non-ASCII letters kept, others become `_`; no leading dot (so no `.`/`..`/hidden names); no
/// reserved device names; at most 120 bytes.
pub fn sanitize(v: &str) -> String {
    let mut s: String = v
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric()
                || c == '.'
                || c == '-'
                || c == '_'
                || (!c.is_ascii() && c.is_alphanumeric())
            {
                c
            } else {
                '_'
            }
        })
        .collect();
    while s.starts_with('.') {
        s.replace_range(..1, "_");
    }
    while s.ends_with('.') || s.ends_with(' ') {
        s.pop();
    }
    let stem = s.split('.').next().unwrap_or("").to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        s.insert(0, '_');
    }
    if s.len() > 120 {
        // Keep a short extension (".dcm", ".png") when cutting.
        let ext = s
            .rfind('.')
            .map(|i| s[i..].to_string())
            .filter(|e| e.len() <= 8)
            .unwrap_or_default();
        truncate_at(&mut s, 120 - ext.len());
        s.push_str(&ext);
    }
    if s.is_empty() {
        s.push('_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    fn obj(pid: &str) -> InMemDicomObject {
        let mut o = InMemDicomObject::new_empty();
        o.put(DataElement::new(
            tags::PATIENT_ID,
            VR::LO,
            PrimitiveValue::from(pid),
        ));
        o.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3"),
        ));
        o
    }

    #[test]
    fn hostile_values_cannot_escape_or_form_bad_names() {
        let t = PathTemplate::parse("{PatientID}/{SOPInstanceUID}.dcm", &[]).unwrap();
        for bad in [
            "../../etc",
            "/abs/path",
            "a\0b",
            "..",
            "CON",
            "x\\..\\y",
            "\u{7}bell",
            &"z".repeat(500),
        ] {
            let p = t.render(&obj(bad), &[]).unwrap();
            assert_eq!(p.components().count(), 2, "{bad:?} -> {p:?}");
            for c in p.components() {
                let c = c.as_os_str().to_string_lossy();
                assert!(
                    !c.starts_with('.') && c.len() <= 120 && !c.contains('\0'),
                    "{bad:?} -> {c}"
                );
                assert_ne!(c.to_ascii_uppercase(), "CON");
            }
        }
    }

    #[test]
    fn missing_attribute_needs_a_fallback() {
        let t = PathTemplate::parse("{StudyInstanceUID}/{SOPInstanceUID}.dcm", &[]).unwrap();
        let e = t.render(&obj("p"), &[]).unwrap_err();
        assert!(e.contains("StudyInstanceUID is absent"), "{e}");
        let t =
            PathTemplate::parse("{StudyInstanceUID|nostudy}/{SOPInstanceUID}.dcm", &[]).unwrap();
        assert_eq!(
            t.render(&obj("p"), &[]).unwrap(),
            PathBuf::from("nostudy/1.2.3.dcm")
        );
    }

    #[test]
    fn templates_are_checked_when_parsed() {
        assert!(PathTemplate::parse("{NotAKeyword}.dcm", &[]).is_err());
        assert!(PathTemplate::parse("../{SOPInstanceUID}", &[]).is_err());
        assert!(PathTemplate::parse("/abs/{SOPInstanceUID}", &[]).is_err());
        assert!(PathTemplate::parse("{SOPInstanceUID", &[]).is_err());
    }
}
