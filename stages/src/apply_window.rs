//! `apply_window`: renders decoded pixels to 8-bit (or 16-bit) frames: Modality LUT, then VOI
//! (file, preset, explicit or automatic), MONOCHROME1 inversion, colour models, true aspect
//! ratio. An automatic window of a multi-frame instance is computed once over all its frames,
//! so brightness changes between frames survive. The frame rate, when the header gives one,
//! travels with the frames.

use std::sync::Arc;

use dcmflow_engine::{
    BuildContext, Frames, Item, ItemError, ItemKind, ItemWorker, Payload, Runtime, StageConfig,
};
use dicom_dictionary_std::tags;

use crate::pixels::{clip_window, render, Decoded, WindowOptions};

impl StageConfig for WindowOptions {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Pixels]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Frames
    }
    fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.bits != 8 && self.bits != 16 {
            out.push(format!("bits must be 8 or 16, not {}", self.bits));
        }
        let [lo, hi] = self.auto_percentiles;
        if !(0.0..=100.0).contains(&lo) || !(0.0..=100.0).contains(&hi) || lo >= hi {
            out.push("auto_percentiles must be two numbers 0..100, the first smaller".into());
        }
        out
    }
    fn explain(&self) -> String {
        format!(
            "Pixel values went through the Modality LUT, then the {:?} VOI window, to {}-bit output{}.",
            self.window,
            self.bits,
            if self.correct_aspect { ", resampled to the true pixel aspect ratio" } else { "" }
        )
    }
    fn build(&self, _ctx: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::PerItem(Arc::new(ApplyWindow(self.clone()))))
    }
}

/// The runtime of `apply_window`.
pub struct ApplyWindow(WindowOptions);

/// The frame rate from an instance header, when it gives one (never a default).
pub fn header_fps(inst: &dcmflow_engine::Instance) -> Option<(f64, String)> {
    let get = |t| inst.str_of(t);
    crate::video::frame_rate(
        get(tags::RECOMMENDED_DISPLAY_FRAME_RATE).as_deref(),
        get(tags::CINE_RATE).as_deref(),
        get(tags::FRAME_TIME).as_deref(),
        get(tags::FRAME_TIME_VECTOR).as_deref(),
        None,
    )
    .ok()
    .map(|r| (r.fps, r.source.to_string()))
}

impl ItemWorker for ApplyWindow {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let Payload::Pixels(inst, any) = &item.payload else {
            return Err(ItemError::failed("apply_window takes decoded pixels"));
        };
        let dec = any
            .downcast_ref::<Decoded>()
            .ok_or_else(|| ItemError::failed("decoded pixels of an unknown form"))?;
        // A multi-frame instance windowed from its data gets one window for all its frames.
        let clip = clip_window(dec, &self.0)
            .map_err(|e| ItemError::failed(format!("cannot window the frames: {e}")))?
            .map(|window| WindowOptions {
                window,
                ..self.0.clone()
            });
        let opts = clip.as_ref().unwrap_or(&self.0);
        let frames = (0..dec.frame_count())
            .map(|f| {
                render(dec, f, opts).map_err(|e| ItemError::failed(format!("frame {}: {e}", f + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let label = inst.str_of(tags::SOP_INSTANCE_UID).unwrap_or_default();
        let out = Frames {
            instance: inst.clone(),
            frames,
            fps: header_fps(inst),
            label,
        };
        Ok(vec![item.with(Payload::Frames(Arc::new(out)))])
    }
}
