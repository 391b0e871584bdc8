//! Formats encoded by the external `ffmpeg` program (hevc, mp4_x264, webm_vp9).
//!
//! Frames are converted to yuv420p here (same BT.601 limited-range conversion and even-size
//! padding as the built-in encoders) and piped to `ffmpeg -f rawvideo -i -` on stdin, one at a
//! time. ffmpeg writes to a temporary file (MP4 fast start needs a seekable output), which is
//! read back and deleted by `finish`. Metadata is stripped (`-map_metadata -1`,
//! `-fflags +bitexact`, `-flags:v +bitexact`), so no title, encoder tag or creation time.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use super::convert::{Geometry, Yuv420};
use super::rate::fps_rational;
use super::{quality_map, Frame, VideoEncoder, VideoError, VideoFormat};

pub struct FfmpegEncoder {
    format: VideoFormat,
    program: String,
    geom: Geometry,
    yuv: Yuv420,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    output: TempPath,
    frames: u64,
}

/// Deletes the file when dropped.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_output(ext: &str) -> TempPath {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    TempPath(std::env::temp_dir().join(format!(
        "dcmflow-video-{}-{n}-{nanos}.{ext}",
        std::process::id()
    )))
}

/// Codec arguments for a format and quality (see `VideoOptions::quality` for the mapping).
fn codec_args(format: VideoFormat, quality: u8) -> Vec<String> {
    let crf264 = quality_map(quality, 45.0, 10.0).clamp(0, 51);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match format {
        VideoFormat::Hevc => {
            let mut a = s(&["-c:v", "libx265", "-preset", "medium", "-crf"]);
            a.push((crf264 + 4).min(51).to_string());
            a.extend(s(&[
                "-x265-params",
                "log-level=error",
                "-tag:v",
                "hvc1",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
            ]));
            a
        }
        VideoFormat::Mp4X264 => {
            let mut a = s(&["-c:v", "libx264", "-preset", "medium", "-crf"]);
            a.push(crf264.to_string());
            a.extend(s(&["-movflags", "+faststart", "-f", "mp4"]));
            a
        }
        VideoFormat::WebmVp9 => {
            let mut a = s(&["-c:v", "libvpx-vp9", "-b:v", "0", "-crf"]);
            a.push(quality_map(quality, 55.0, 10.0).clamp(0, 63).to_string());
            a.extend(s(&["-row-mt", "1", "-f", "webm"]));
            a
        }
        _ => unreachable!("not an ffmpeg format"),
    }
}

impl FfmpegEncoder {
    /// Start ffmpeg. `program` defaults to `ffmpeg` looked up on PATH.
    pub fn spawn(
        format: VideoFormat,
        geom: Geometry,
        fps: f64,
        quality: u8,
        program: Option<&Path>,
    ) -> Result<Self, VideoError> {
        // x265 rejects pictures smaller than 16 pixels in either dimension.
        let geom = if format == VideoFormat::Hevc {
            geom.with_min(16)
        } else {
            geom
        };
        let prog: PathBuf = program
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("ffmpeg"));
        let prog_name = prog.display().to_string();
        let output = temp_output(format.extension());
        let (num, den) = fps_rational(fps);
        let mut cmd = Command::new(&prog);
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p"])
            .args(["-color_range", "tv", "-colorspace", "smpte170m"])
            .args(["-color_primaries", "smpte170m", "-color_trc", "smpte170m"])
            .arg("-s")
            .arg(format!("{}x{}", geom.padded_width, geom.padded_height))
            .arg("-framerate")
            .arg(format!("{num}/{den}"))
            .args(["-i", "-"])
            .args([
                "-map",
                "0:v:0",
                "-map_metadata",
                "-1",
                "-map_chapters",
                "-1",
            ])
            .args(["-fflags", "+bitexact", "-flags:v", "+bitexact"])
            .args(["-pix_fmt", "yuv420p"])
            .args(codec_args(format, quality))
            .arg(&output.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VideoError::ProgramNotFound {
                    format: format.name(),
                    program: prog_name,
                });
            }
            Err(e) => {
                return Err(VideoError::External {
                    program: prog_name,
                    message: format!("could not start: {e}"),
                })
            }
        };
        let stdin = child.stdin.take();
        let mut err_pipe = child.stderr.take();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_string(&mut s);
            }
            s
        });
        Ok(FfmpegEncoder {
            format,
            program: prog_name,
            geom,
            yuv: Yuv420::new(geom),
            child,
            stdin,
            stderr: Some(stderr),
            output,
            frames: 0,
        })
    }

    fn failure(&mut self, context: &str) -> VideoError {
        self.stdin.take();
        let status = self.child.wait().ok();
        let log = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let log = log.trim();
        let hint = if log.contains("Unknown encoder") || log.contains("Encoder not found") {
            format!(
                " (this ffmpeg build lacks the encoder needed for {})",
                self.format.name()
            )
        } else {
            String::new()
        };
        VideoError::External {
            program: self.program.clone(),
            message: format!(
                "{context}{hint}; {}; {}",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "exit status unknown".into()),
                if log.is_empty() {
                    "no error output"
                } else {
                    log
                }
            ),
        }
    }
}

impl VideoEncoder for FfmpegEncoder {
    fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        let (data, ch) = self.geom.check(frame)?;
        self.yuv.fill(
            data,
            ch,
            self.geom.width as usize,
            self.geom.height as usize,
        );
        let res = match self.stdin.as_mut() {
            Some(stdin) => self.yuv.write_raw(stdin),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "closed",
            )),
        };
        if let Err(e) = res {
            return Err(self.failure(&format!("writing frame {} failed ({e})", self.frames)));
        }
        self.frames += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, VideoError> {
        if self.frames == 0 {
            return Err(VideoError::BadFrame("no frames were pushed".into()));
        }
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let status = self.child.wait()?;
        let log = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if !status.success() {
            let log = log.trim();
            return Err(VideoError::External {
                program: self.program.clone(),
                message: format!(
                    "{status}; {}",
                    if log.is_empty() {
                        "no error output"
                    } else {
                        log
                    }
                ),
            });
        }
        Ok(std::fs::read(&self.output.0)?)
    }
}

impl Drop for FfmpegEncoder {
    fn drop(&mut self) {
        // Abandoned before finish: close stdin and reap the child.
        if self.stdin.take().is_some() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
