//! Which instances may carry burned-in text in their pixels: one rule, used at run time by
//! `deidentify` (which quarantines such instances unless a `mask_regions` rule masked them or a
//! site rule declared them free of text) and afterwards by `dcmflow verify` and the review sheet
//! (which read output files). The rule looks at what the instance is, not only its Modality.
//!
//! An instance with pixel data (or whose pixel data was not read) is a carrier when any of:
//! - BurnedInAnnotation (0028,0301) is YES;
//! - its SOP Class is a Secondary Capture (single-frame, and the four multi-frame classes of
//!   PS3.4 Annex B), a VL Endoscopic, Microscopic or Photographic image (still or video), or a
//!   structured report (dose reports included): none of these is a modality's own
//!   acquisition, and screen captures, scanned pages, camera frames and dose screens show names;
//! - ImageType (0008,0008) holds SECONDARY or SCREEN SAVE in any of its values;
//! - ConversionType (0008,0064) is present (SC Equipment: WSD, SD, SI, SYN, DV, DF, DI, DRW all
//!   name a capture of something that was not acquired as this image);
//! - Modality is US, SC, OT, XA, RF, ES, or SR (a report with pixels is a screen).
//!
//! BurnedInAnnotation NO exempts nothing: it is the source's own claim (converters and
//! capture stations often default it), and a NO on a screen capture is no proof. Reasons name
//! the attributes and, at most, the defined terms that matched, never other values.

use dcmflow_engine::Instance;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

/// Modalities whose images commonly carry burned-in text.
pub const TEXT_BEARING_MODALITIES: &[&str] = &["US", "SC", "XA", "RF", "ES", "OT", "SR"];

/// SOP classes whose images are captures, not acquisitions, with their names for reasons.
pub const CARRIER_SOP_CLASSES: &[(&str, &str)] = &[
    (
        "1.2.840.10008.5.1.4.1.1.7",
        "Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.7.1",
        "Multi-frame Single Bit Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.7.2",
        "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.7.3",
        "Multi-frame Grayscale Word Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.7.4",
        "Multi-frame True Color Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.77.1.1",
        "VL Endoscopic Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",
        "Video Endoscopic Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.77.1.2",
        "VL Microscopic Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",
        "Video Microscopic Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.77.1.4",
        "VL Photographic Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",
        "Video Photographic Image Storage",
    ),
];

/// Structured report SOP classes all start with this (dose reports: .88.67, .88.68, .88.73,
/// .88.76); an SR with pixel data is a rendered report or a screen.
const SR_PREFIX: &str = "1.2.840.10008.5.1.4.1.1.88.";

/// ImageType values that mark a derived screen or capture.
const CARRIER_IMAGE_TYPES: &[&str] = &["SECONDARY", "SCREEN SAVE"];

/// What the rule reads: top-level attribute values and whether pixel data is (or may be) there.
pub trait PixelFacts {
    /// The values of a top-level attribute, each trimmed; `None` when absent or unreadable.
    fn values(&self, tag: Tag) -> Option<Vec<String>>;
    /// Whether the data set has pixel data, or may have it (not read yet).
    fn may_have_pixels(&self) -> bool;
    /// The SOP Class UID: the data set's own, else the file meta's.
    fn sop_class(&self) -> Option<String>;
}

fn has_pixel_data(obj: &InMemDicomObject) -> bool {
    [
        tags::PIXEL_DATA,
        tags::FLOAT_PIXEL_DATA,
        tags::DOUBLE_FLOAT_PIXEL_DATA,
    ]
    .iter()
    .any(|t| obj.get(*t).is_some())
}

fn sop_class_of(obj: &FileDicomObject<InMemDicomObject>) -> Option<String> {
    crate::attr::text_of(obj, tags::SOP_CLASS_UID)
        .filter(|v| !v.is_empty())
        .or_else(|| {
            let m = obj.meta().media_storage_sop_class_uid();
            let m = m.trim_end_matches(['\0', ' ']);
            (!m.is_empty()).then(|| m.to_string())
        })
}

impl PixelFacts for FileDicomObject<InMemDicomObject> {
    fn values(&self, tag: Tag) -> Option<Vec<String>> {
        crate::attr::values_of(self, tag)
    }
    fn may_have_pixels(&self) -> bool {
        has_pixel_data(self)
    }
    fn sop_class(&self) -> Option<String> {
        sop_class_of(self)
    }
}

impl PixelFacts for Instance {
    fn values(&self, tag: Tag) -> Option<Vec<String>> {
        crate::attr::values_of(&self.obj, tag)
    }
    fn may_have_pixels(&self) -> bool {
        // Header-only reads stop before Pixel Data: then it may be there.
        has_pixel_data(&self.obj) || !self.pixels_loaded
    }
    fn sop_class(&self) -> Option<String> {
        sop_class_of(&self.obj)
    }
}

/// Why the pixels of `ds` may carry burned-in text (every attribute that says so), or `None`.
pub fn carrier_reason(ds: &dyn PixelFacts) -> Option<String> {
    if !ds.may_have_pixels() {
        return None;
    }
    let upper = |t: Tag| -> Vec<String> {
        ds.values(t)
            .unwrap_or_default()
            .iter()
            // A value set in memory as one string may still hold the `\` separators.
            .flat_map(|v| v.split('\\'))
            .map(|v| v.trim().to_ascii_uppercase())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let mut why: Vec<String> = Vec::new();
    if upper(tags::BURNED_IN_ANNOTATION).iter().any(|v| v == "YES") {
        why.push("BurnedInAnnotation (0028,0301) is YES".into());
    }
    if let Some(class) = ds.sop_class() {
        if let Some((_, name)) = CARRIER_SOP_CLASSES.iter().find(|(uid, _)| *uid == class) {
            why.push(format!("SOPClassUID (0008,0016) is {name}"));
        } else if class.starts_with(SR_PREFIX) {
            why.push("SOPClassUID (0008,0016) is a structured report (e.g. a dose report) with pixel data".into());
        }
    }
    let image_type: Vec<String> = upper(tags::IMAGE_TYPE)
        .into_iter()
        .filter(|v| CARRIER_IMAGE_TYPES.contains(&v.as_str()))
        .collect();
    if !image_type.is_empty() {
        why.push(format!(
            "ImageType (0008,0008) includes {}",
            image_type.join(", ")
        ));
    }
    if let Some(conversion) = upper(tags::CONVERSION_TYPE).first() {
        // Defined terms only (PS3.3 C.8.6.1); anything else is named by the attribute alone.
        let defined = ["DV", "DI", "DF", "WSD", "SD", "SI", "DRW", "SYN"];
        let term = if defined.contains(&conversion.as_str()) {
            format!(" {conversion}")
        } else {
            String::new()
        };
        why.push(format!(
            "ConversionType (0008,0064){term} marks a secondary capture"
        ));
    }
    if let Some(modality) = upper(tags::MODALITY).first() {
        if TEXT_BEARING_MODALITIES.contains(&modality.as_str()) {
            why.push(format!(
                "Modality (0008,0060) {modality} commonly carries burned-in text"
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The value `deidentify` adds to DeidentificationMethod (0012,0063) when a site rule declared
/// the instance free of burned-in text: its pixels were not masked, and no Clean Pixel Data
/// (113101) is claimed. `verify` and the review sheet read it back.
pub const DECLARED_NO_TEXT_METHOD: &str = "Pixels not masked: site rule declares no burned-in text";

/// How the pixels of an output file were handled, as its header records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedPixels {
    /// Clean Pixel Data (113101) is recorded.
    Masked,
    /// A site rule declared the pixels free of text ([`DECLARED_NO_TEXT_METHOD`]).
    DeclaredNoText,
    /// Neither: the pixels are as the source had them.
    Untouched,
}

/// What an output file's header records about its pixels.
pub fn recorded_pixels(obj: &InMemDicomObject) -> RecordedPixels {
    let codes: Vec<String> = obj
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .and_then(|e| e.items())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| crate::attr::text_of(i, tags::CODE_VALUE))
                .collect()
        })
        .unwrap_or_default();
    if codes.iter().any(|c| c == "113101") {
        return RecordedPixels::Masked;
    }
    let methods = crate::attr::values_of(obj, tags::DEIDENTIFICATION_METHOD).unwrap_or_default();
    if methods.iter().any(|m| m == DECLARED_NO_TEXT_METHOD) {
        return RecordedPixels::DeclaredNoText;
    }
    RecordedPixels::Untouched
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::meta::FileMetaTableBuilder;

    fn obj(
        class: &str,
        attrs: &[(Tag, VR, &str)],
        pixels: bool,
    ) -> FileDicomObject<InMemDicomObject> {
        let mut o = InMemDicomObject::new_empty();
        o.put(DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(class),
        ));
        for (t, vr, v) in attrs {
            o.put(DataElement::new(*t, *vr, PrimitiveValue::from(*v)));
        }
        if pixels {
            o.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::U8(vec![0u8; 4].into()),
            ));
        }
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid("1.2.3")
            .transfer_syntax("1.2.840.10008.1.2.1")
            .build()
            .unwrap();
        o.with_exact_meta(meta)
    }

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

    #[test]
    fn a_plain_ct_slice_is_not_a_carrier() {
        let o = obj(
            CT,
            &[
                (tags::MODALITY, VR::CS, "CT"),
                (tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL"),
            ],
            true,
        );
        assert_eq!(carrier_reason(&o), None);
    }

    #[test]
    fn every_secondary_capture_class_is_a_carrier_whatever_its_modality() {
        for class in [
            "1.2.840.10008.5.1.4.1.1.7",
            "1.2.840.10008.5.1.4.1.1.7.1",
            "1.2.840.10008.5.1.4.1.1.7.2",
            "1.2.840.10008.5.1.4.1.1.7.3",
            "1.2.840.10008.5.1.4.1.1.7.4",
        ] {
            let o = obj(class, &[(tags::MODALITY, VR::CS, "CT")], true);
            let r = carrier_reason(&o).unwrap_or_default();
            assert!(
                r.contains("SOPClassUID (0008,0016) is") && r.contains("Secondary Capture"),
                "{class}: {r}"
            );
        }
    }

    #[test]
    fn image_type_secondary_or_screen_save_in_any_value_makes_a_carrier() {
        for it in [
            "DERIVED\\SECONDARY",
            "ORIGINAL\\PRIMARY\\SCREEN SAVE",
            "DERIVED\\PRIMARY\\AXIAL\\SCREEN SAVE",
        ] {
            let o = obj(
                CT,
                &[
                    (tags::MODALITY, VR::CS, "CT"),
                    (tags::IMAGE_TYPE, VR::CS, it),
                ],
                true,
            );
            let r = carrier_reason(&o).unwrap_or_default();
            assert!(r.starts_with("ImageType (0008,0008) includes"), "{it}: {r}");
        }
    }

    #[test]
    fn conversion_type_names_the_defined_term_only() {
        let o = obj(CT, &[(tags::CONVERSION_TYPE, VR::CS, "SYN")], true);
        assert_eq!(
            carrier_reason(&o).as_deref(),
            Some("ConversionType (0008,0064) SYN marks a secondary capture")
        );
        let o = obj(CT, &[(tags::CONVERSION_TYPE, VR::CS, "Doe")], true);
        assert_eq!(
            carrier_reason(&o).as_deref(),
            Some("ConversionType (0008,0064) marks a secondary capture")
        );
    }

    #[test]
    fn video_and_vl_classes_and_reports_with_pixels_are_carriers() {
        for class in [
            "1.2.840.10008.5.1.4.1.1.77.1.1.1",
            "1.2.840.10008.5.1.4.1.1.77.1.2.1",
            "1.2.840.10008.5.1.4.1.1.77.1.4.1",
            "1.2.840.10008.5.1.4.1.1.77.1.4",
            "1.2.840.10008.5.1.4.1.1.88.67",
        ] {
            assert!(carrier_reason(&obj(class, &[], true)).is_some(), "{class}");
        }
    }

    #[test]
    fn nothing_without_pixel_data_is_a_carrier() {
        let o = obj(
            "1.2.840.10008.5.1.4.1.1.88.67",
            &[(tags::MODALITY, VR::CS, "SR")],
            false,
        );
        assert_eq!(carrier_reason(&o), None);
    }

    #[test]
    fn burned_in_annotation_no_exempts_no_carrier() {
        let o = obj(
            "1.2.840.10008.5.1.4.1.1.6.1",
            &[
                (tags::MODALITY, VR::CS, "US"),
                (tags::BURNED_IN_ANNOTATION, VR::CS, "NO"),
            ],
            true,
        );
        assert!(carrier_reason(&o)
            .unwrap_or_default()
            .contains("Modality (0008,0060) US"));
    }

    #[test]
    fn an_instance_whose_pixels_were_not_read_may_carry_text() {
        let mut o = obj(
            "1.2.840.10008.5.1.4.1.1.6.1",
            &[(tags::MODALITY, VR::CS, "US")],
            false,
        );
        o.remove_element(tags::SOP_CLASS_UID);
        let inst = Instance::new(o, false);
        let r = carrier_reason(&inst).unwrap_or_default();
        assert!(r.contains("Modality (0008,0060) US"), "{r}");
    }
}
