//! `decode_pixels`: decodes an instance's pixel data once (every common transfer syntax; see
//! the `pixels` module for what is refused and why), so several `apply_window` branches can
//! render from one decode.

use std::sync::Arc;

use dcmflow_engine::{
    BuildContext, Item, ItemError, ItemKind, ItemWorker, Payload, Runtime, StageConfig,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// Decode pixel data once per instance (native, RLE, deflate, JPEG baseline/extended/lossless,
/// JPEG 2000, JPEG-LS with the `charls` feature; single-, multi-frame and enhanced
/// multi-frame), for the rendering stages downstream.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecodePixelsConfig {}

impl StageConfig for DecodePixelsConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Instance]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Pixels
    }
    fn needs_pixels(&self) -> bool {
        true
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::PerItem(Arc::new(DecodePixels)))
    }
}

/// The runtime of `decode_pixels`.
pub struct DecodePixels;

impl ItemWorker for DecodePixels {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let (source, mut inst) = item.into_instance()?;
        crate::read_dicom::ensure_pixels(&mut inst, &source)?;
        if inst
            .obj
            .get(dicom_dictionary_std::tags::PIXEL_DATA)
            .is_none()
        {
            return Err(ItemError::Skipped(
                "no Pixel Data (7FE0,0010): nothing to render".into(),
            ));
        }
        let decoded = crate::pixels::decode(&inst.obj)
            .map_err(|e| ItemError::failed(format!("cannot decode the pixel data: {e}")))?;
        Ok(vec![Item {
            source,
            payload: Payload::Pixels(Arc::new(inst), Arc::new(decoded)),
        }])
    }
}
