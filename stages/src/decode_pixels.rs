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
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecodePixelsConfig {
    /// Largest decoded size of one instance, in MiB (Rows x Columns x SamplesPerPixel x
    /// NumberOfFrames x bytes per sample, as the header claims). An instance claiming more is
    /// refused with a message before anything is allocated for it. Default: 2048.
    #[serde(default = "default_max_decoded_mib")]
    pub max_decoded_mib: u64,
}

impl Default for DecodePixelsConfig {
    fn default() -> Self {
        DecodePixelsConfig {
            max_decoded_mib: default_max_decoded_mib(),
        }
    }
}

fn default_max_decoded_mib() -> u64 {
    crate::pixels::DEFAULT_MAX_DECODED_BYTES >> 20
}

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
    fn check(&self) -> Vec<String> {
        if self.max_decoded_mib == 0 || self.max_decoded_mib > 1 << 30 {
            vec!["max_decoded_mib must be between 1 and 1073741824".into()]
        } else {
            Vec::new()
        }
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::PerItem(Arc::new(DecodePixels {
            max_bytes: self.max_decoded_mib << 20,
        })))
    }
}

/// The runtime of `decode_pixels`.
pub struct DecodePixels {
    max_bytes: u64,
}

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
        let decoded = crate::pixels::decode_with_limit(&inst.obj, self.max_bytes)
            .map_err(|e| ItemError::failed(format!("cannot decode the pixel data: {e}")))?;
        Ok(vec![Item {
            source,
            payload: Payload::Pixels(Arc::new(inst), Arc::new(decoded)),
        }])
    }
}
