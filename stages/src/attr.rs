//! Attribute names in recipes: keywords (`PatientID`), tags (`(0010,0020)` or `00100020`), and
//! reading an attribute's value as text. Shared by the stages that match or template on headers.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;

/// Resolve a keyword or a tag written as `(gggg,eeee)` / `gggg,eeee` / `ggggeeee`.
pub fn resolve_tag(name: &str) -> Option<Tag> {
    let n = name.trim();
    let hex = n
        .trim_start_matches('(')
        .trim_end_matches(')')
        .replace(',', "");
    if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let g = u16::from_str_radix(&hex[..4], 16).ok()?;
        let e = u16::from_str_radix(&hex[4..], 16).ok()?;
        return Some(Tag(g, e));
    }
    StandardDataDictionary
        .by_name(n)
        .map(|e| e.tag_range().inner())
}

/// A keyword for a tag, or its `(gggg,eeee)` form when the dictionary does not know it.
pub fn tag_name(tag: Tag) -> String {
    match StandardDataDictionary.by_tag(tag) {
        Some(e) => format!("{} {}", fmt_tag(tag), e.alias()),
        None => fmt_tag(tag),
    }
}

/// `(gggg,eeee)` in upper-case hex.
pub fn fmt_tag(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.group(), tag.element())
}

/// The values of an attribute as strings (one per value; trimmed), if present and textual or
/// numeric. Sequences have no text value.
pub fn values_of(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<String>> {
    let e = obj.get(tag)?;
    if matches!(e.value(), dicom_core::value::Value::Sequence(_)) {
        return None;
    }
    // Values stored as UN/OB (unknown VR) are bytes: read them as text when they are printable.
    if matches!(e.vr(), dicom_core::VR::UN | dicom_core::VR::OB) {
        let bytes = e.to_bytes().ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
        if !text.chars().all(|c| !c.is_control()) {
            return None;
        }
        return Some(text.split('\\').map(|s| s.trim().to_string()).collect());
    }
    let multi = e.to_multi_str().ok()?;
    Some(
        multi
            .iter()
            .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_string())
            .collect(),
    )
}

/// The value of an attribute as one string (values joined by `\`).
pub fn text_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    values_of(obj, tag).map(|v| v.join("\\"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_dictionary_std::tags;

    #[test]
    fn keywords_and_tag_forms_resolve_to_the_same_tag() {
        assert_eq!(resolve_tag("PatientID"), Some(tags::PATIENT_ID));
        assert_eq!(resolve_tag("(0010,0020)"), Some(tags::PATIENT_ID));
        assert_eq!(resolve_tag("00100020"), Some(tags::PATIENT_ID));
        assert_eq!(resolve_tag("PatientIdd"), None);
    }
}
