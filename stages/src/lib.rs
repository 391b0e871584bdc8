//! dcmflow-stages: one file per stage kind (config type + runtime type) and the closed registry
//! list the engine plans against.

pub mod apply_window;
pub mod attr;
pub mod burned_in;
pub mod decode_pixels;
pub mod deidentify;
pub mod edit_tags;
pub mod encode_image;
pub mod encode_video;
pub mod filter;
pub mod mask_regions;
pub mod path_template;
pub mod pixels;
pub mod read_dicom;
pub mod remap_uids;
pub mod review;
pub mod shift_dates;
pub mod sort_series;
mod testing;
pub mod verify;
pub mod video;
pub mod walk;
pub mod write_dicom;

use dcmflow_engine::plan::parse_config;
use dcmflow_engine::stage::schema_of;
use dcmflow_engine::{ItemKind, Registry, StageKind};

macro_rules! kind {
    ($name:literal, $cfg:ty, [$($acc:ident),*] => $emits:ident) => {
        StageKind {
            name: $name,
            parse: parse_config::<$cfg>,
            schema: schema_of::<$cfg>,
            accepts: &[$(ItemKind::$acc),*],
            emits: ItemKind::$emits,
        }
    };
}

/// Every stage kind this build knows, in the order they usually appear in a recipe.
pub static REGISTRY: Registry = Registry(&[
    kind!("read_dicom", read_dicom::ReadDicomConfig, [] => Instance),
    kind!("filter", filter::FilterConfig, [Instance] => Instance),
    kind!("mask_regions", mask_regions::MaskRegionsConfig, [Instance] => Instance),
    kind!("deidentify", deidentify::stage::DeidentifyConfig, [Instance] => Instance),
    kind!("sort_series", sort_series::SortSeriesConfig, [Instance] => Series),
    kind!("decode_pixels", decode_pixels::DecodePixelsConfig, [Instance] => Pixels),
    kind!("apply_window", pixels::WindowOptions, [Pixels] => Frames),
    kind!("encode_image", encode_image::EncodeImageConfig, [Frames] => Output),
    kind!("encode_video", encode_video::EncodeVideoConfig, [Frames, Series] => Output),
    kind!("remap_uids", remap_uids::RemapUidsConfig, [Instance] => Instance),
    kind!("shift_dates", shift_dates::ShiftDatesConfig, [Instance] => Instance),
    kind!("edit_tags", edit_tags::EditTagsConfig, [Instance] => Instance),
    kind!("write_dicom", write_dicom::WriteDicomConfig, [Instance] => Output),
]);

/// The registry as the engine takes it.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_documented_schema_and_unique_name() {
        let mut names = std::collections::HashSet::new();
        for k in REGISTRY.kinds() {
            assert!(names.insert(k.name), "duplicate {}", k.name);
            let s = (k.schema)();
            assert!(
                !dcmflow_engine::stage::summary_of(&s).is_empty(),
                "{} has no doc comment",
                k.name
            );
        }
    }
}
