//! Small, panic-free attribute accessors over `InMemDicomObject`.

use std::borrow::Cow;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;

pub(super) type Obj = InMemDicomObject;

pub(super) fn prim(obj: &Obj, tag: Tag) -> Option<Cow<'_, PrimitiveValue>> {
    let e = obj.get(tag)?;
    match e.value() {
        Value::Primitive(PrimitiveValue::U8(bytes)) if e.vr() == VR::UN => {
            Some(Cow::Owned(un_value(tag, bytes)))
        }
        Value::Primitive(p) => Some(Cow::Borrowed(p)),
        _ => None,
    }
}

/// Reinterpret the raw bytes of an element stored as UN (little endian)
/// using the VR the standard dictionary gives for the tag.
fn un_value(tag: Tag, bytes: &[u8]) -> PrimitiveValue {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    let vr = dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.vr())
        .unwrap_or(VirtualVr::Exact(VR::UN));
    let pairs = || {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    };
    match vr {
        VirtualVr::Exact(VR::US) | VirtualVr::Xs | VirtualVr::Exact(VR::OW) => {
            PrimitiveValue::U16(pairs().collect())
        }
        VirtualVr::Exact(VR::SS) => PrimitiveValue::I16(pairs().map(|v| v as i16).collect()),
        VirtualVr::Exact(VR::UL) => PrimitiveValue::U32(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        VirtualVr::Exact(
            VR::DS | VR::IS | VR::CS | VR::LO | VR::SH | VR::LT | VR::ST | VR::UI | VR::UT | VR::UC,
        ) => {
            let text = String::from_utf8_lossy(bytes);
            let parts: Vec<String> = text
                .split('\\')
                .map(|p| {
                    p.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                        .to_string()
                })
                .collect();
            PrimitiveValue::Strs(parts.into_iter().collect())
        }
        _ => PrimitiveValue::U8(bytes.iter().copied().collect()),
    }
}

/// First value as an integer (accepts binary or string encodings).
pub(super) fn int(obj: &Obj, tag: Tag) -> Option<i64> {
    let p = prim(obj, tag)?;
    if p.multiplicity() == 0 {
        return None;
    }
    p.to_int::<i64>().ok()
}

pub(super) fn uint(obj: &Obj, tag: Tag) -> Option<u32> {
    int(obj, tag).and_then(|v| u32::try_from(v).ok())
}

/// All values as f64 (decimal strings or binary numbers).
pub(super) fn floats(obj: &Obj, tag: Tag) -> Option<Vec<f64>> {
    let p = prim(obj, tag)?;
    if p.multiplicity() == 0 {
        return None;
    }
    let v: Vec<f64> = match p.as_ref() {
        PrimitiveValue::Str(_) | PrimitiveValue::Strs(_) => p
            .to_str()
            .split('\\')
            .map(|x| {
                x.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .parse::<f64>()
            })
            .collect::<Result<_, _>>()
            .ok()?,
        _ => p.to_multi_float64().ok()?,
    };
    if v.iter().all(|x| x.is_finite()) && !v.is_empty() {
        Some(v)
    } else {
        None
    }
}

pub(super) fn float(obj: &Obj, tag: Tag) -> Option<f64> {
    floats(obj, tag).and_then(|v| v.first().copied())
}

/// Trimmed, upper-cased string (first value only when `first` is set).
pub(super) fn string(obj: &Obj, tag: Tag) -> Option<String> {
    let p = prim(obj, tag)?;
    let s = p.to_str();
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if s.is_empty() {
        None
    } else {
        Some(s.to_ascii_uppercase())
    }
}

pub(super) fn items(obj: &Obj, tag: Tag) -> &[Obj] {
    match obj.get(tag).map(|e| e.value()) {
        Some(Value::Sequence(s)) => s.items(),
        _ => &[],
    }
}

/// Raw words of a LUT data element (OW/US/SS/OB/UN). 8-bit byte data is
/// returned one byte per word.
pub(super) fn lut_words(obj: &Obj, tag: Tag) -> Option<Vec<u16>> {
    let p = prim(obj, tag)?;
    Some(match p.as_ref() {
        PrimitiveValue::U16(v) => v.to_vec(),
        PrimitiveValue::I16(v) => v.iter().map(|x| *x as u16).collect(),
        PrimitiveValue::U8(v) => v
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect(),
        PrimitiveValue::U32(v) => v.iter().map(|x| *x as u16).collect(),
        PrimitiveValue::I32(v) => v.iter().map(|x| *x as u16).collect(),
        _ => return None,
    })
}

/// LUT Descriptor: (entries, first mapped value, bits per entry).
/// `first_signed` tells whether the first mapped value is to be read as signed
/// (it follows Pixel Representation for modality/VOI/palette LUTs).
pub(super) fn lut_descriptor(obj: &Obj, tag: Tag, first_signed: bool) -> Option<(usize, i64, u32)> {
    let p = prim(obj, tag)?;
    let raw: Vec<i64> = match p.as_ref() {
        PrimitiveValue::U16(v) => v.iter().map(|x| *x as i64).collect(),
        PrimitiveValue::I16(v) => v.iter().map(|x| *x as u16 as i64).collect(),
        PrimitiveValue::U8(v) if v.len() >= 6 => v
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]) as i64)
            .collect(),
        other => other.to_multi_int::<i64>().ok()?,
    };
    if raw.len() < 3 {
        return None;
    }
    let n = if raw[0] == 0 { 65536 } else { raw[0] as usize };
    let first = if first_signed && raw[1] > 32767 && raw[1] < 65536 {
        raw[1] - 65536
    } else {
        raw[1]
    };
    let bits = raw[2];
    if !(1..=16).contains(&bits) || n == 0 || n > 65536 {
        return None;
    }
    Some((n, first, bits as u32))
}
