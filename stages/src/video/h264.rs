//! Built-in MP4/H.264 encoder: OpenH264 (compiled from the bundled source by the `openh264`
//! crate) + the muxer in `mp4.rs`.
//!
//! Settings: constrained baseline profile as produced by OpenH264, constant QP from
//! `quality` (see `VideoOptions::quality`), no frame skipping, one slice, one thread
//! (deterministic output), an IDR frame about every 2 seconds, BT.601 limited-range VUI.

use openh264::encoder::{
    Complexity, Encoder, EncoderConfig, FrameType, IntraFramePeriod, QpRange, RateControlMode,
    UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};

use super::convert::{Geometry, Yuv420};
use super::mp4::{write_mp4, AvcConfig, Mp4Track, Sample};
use super::rate::fps_rational;
use super::{quality_map, Frame, VideoEncoder, VideoError};

pub struct Mp4H264Encoder {
    geom: Geometry,
    encoder: Encoder,
    yuv: Yuv420,
    timescale: u32,
    delta: u32,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// Encoded samples (AVCC), concatenated: the future mdat payload.
    payload: Vec<u8>,
    samples: Vec<Sample>,
}

/// OpenH264 constant QP for a quality 1..=100.
pub fn qp_for_quality(quality: u8) -> u8 {
    quality_map(quality, 45.0, 10.0).clamp(0, 51) as u8
}

impl Mp4H264Encoder {
    pub fn new(geom: Geometry, fps: f64, quality: u8) -> Result<Self, VideoError> {
        // OpenH264 rejects pictures smaller than 16 pixels in either dimension.
        let geom = geom.with_min(16);
        let (w, h) = (geom.padded_width, geom.padded_height);
        if w.max(h) > 3840 || w.min(h) > 2160 {
            return Err(VideoError::InvalidOption(format!(
                "{w}x{h} exceeds the built-in H.264 encoder's limit (3840x2160)"
            )));
        }
        let qp = qp_for_quality(quality);
        // Buffer-based rate control only moves the QP within [min, max], so min == max gives a
        // constant QP (quality mode would warn on stderr when frame skipping is off). The
        // bitrate must be set but does not steer anything here.
        let bitrate = (w as f64 * h as f64 * fps.max(1.0) * 4.0).min(i32::MAX as f64) as u32;
        let gop = (fps * 2.0).round().clamp(1.0, 1000.0) as u32;
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bufferbased)
            .qp(QpRange::new(qp, qp))
            .bitrate(openh264::encoder::BitRate::from_bps(bitrate))
            .max_frame_rate(openh264::encoder::FrameRate::from_hz(fps as f32))
            .skip_frames(false)
            .complexity(Complexity::Medium)
            .scene_change_detect(false)
            .background_detection(false)
            .num_threads(1)
            .intra_frame_period(IntraFramePeriod::from_num_frames(gop))
            .vui(VuiConfig::bt601());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| VideoError::Encoder(format!("OpenH264 init: {e}")))?;
        let (timescale, delta) = fps_rational(fps);
        Ok(Mp4H264Encoder {
            geom,
            encoder,
            yuv: Yuv420::new(geom),
            timescale,
            delta,
            sps: None,
            pps: None,
            payload: Vec::new(),
            samples: Vec::new(),
        })
    }
}

/// Split an Annex-B byte stream into NAL units (without start codes).
fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // (start of start code, start of payload)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &(_, p)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map(|&(sc, _)| sc).unwrap_or(data.len());
        if end > p {
            out.push(&data[p..end]);
        }
    }
    out
}

impl VideoEncoder for Mp4H264Encoder {
    fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        let (data, ch) = self.geom.check(frame)?;
        self.yuv.fill(
            data,
            ch,
            self.geom.width as usize,
            self.geom.height as usize,
        );
        let (w, h) = (self.yuv.width, self.yuv.height);
        let src = YUVSlices::new(
            (&self.yuv.y, &self.yuv.u, &self.yuv.v),
            (w, h),
            (w, w / 2, w / 2),
        );
        let index = self.samples.len() as u64;
        let ms = index * 1000 * self.delta as u64 / self.timescale as u64;
        let bs = self
            .encoder
            .encode_at(&src, Timestamp::from_millis(ms))
            .map_err(|e| VideoError::Encoder(format!("OpenH264 encode: {e}")))?;
        let ftype = bs.frame_type();
        let annexb = bs.to_vec();
        if matches!(ftype, FrameType::Skip | FrameType::Invalid) || annexb.is_empty() {
            return Err(VideoError::Encoder(format!(
                "OpenH264 produced no picture for frame {index} ({ftype:?})"
            )));
        }
        let start = self.payload.len();
        let mut has_slice = false;
        let mut idr = false;
        for nal in annexb_nals(&annexb) {
            match nal[0] & 0x1f {
                7 => {
                    if self.sps.is_none() {
                        self.sps = Some(nal.to_vec());
                    }
                }
                8 => {
                    if self.pps.is_none() {
                        self.pps = Some(nal.to_vec());
                    }
                }
                9 | 12 => {} // access unit delimiter, filler: drop
                t => {
                    if t == 5 {
                        idr = true;
                    }
                    if t == 1 || t == 5 {
                        has_slice = true;
                    }
                    self.payload
                        .extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    self.payload.extend_from_slice(nal);
                }
            }
        }
        if !has_slice {
            return Err(VideoError::Encoder(format!(
                "OpenH264 output for frame {index} has no slice"
            )));
        }
        let size = (self.payload.len() - start) as u32;
        self.samples.push(Sample { size, sync: idr });
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>, VideoError> {
        let this = *self;
        if this.samples.is_empty() {
            return Err(VideoError::BadFrame("no frames were pushed".into()));
        }
        let (sps, pps) = match (this.sps, this.pps) {
            (Some(s), Some(p)) if s.len() >= 4 => (s, p),
            _ => return Err(VideoError::Encoder("OpenH264 emitted no SPS/PPS".into())),
        };
        let track = Mp4Track {
            width: this.geom.padded_width,
            height: this.geom.padded_height,
            timescale: this.timescale,
            sample_delta: this.delta,
            avc: AvcConfig { sps, pps },
            samples: this.samples,
        };
        Ok(write_mp4(&track, &this.payload))
    }
}
