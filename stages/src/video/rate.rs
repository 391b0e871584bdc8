//! Frame-rate decision from DICOM header values, and helpers that turn a
//! floating-point frame rate into the exact rationals containers need.

use super::VideoError;

/// Highest frame rate accepted from any source; anything above is treated as nonsense.
pub const MAX_FPS: f64 = 1000.0;

/// The outcome of [`frame_rate`]: the rate to encode at, where it came from, and
/// human-readable notes about values that were skipped or disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameRate {
    /// Frames per second to encode at (finite, > 0, <= 1000).
    pub fps: f64,
    /// Which value was used: `"override"`, `"RecommendedDisplayFrameRate (0008,2144)"`,
    /// `"CineRate (0018,0040)"`, `"FrameTime (0018,1063)"` or `"FrameTimeVector (0018,1065)"`.
    pub source: &'static str,
    /// Why higher-priority values were not used, and lower-priority values that disagree.
    pub notes: Vec<String>,
}

const SRC_OVERRIDE: &str = "override";
const SRC_RECOMMENDED: &str = "RecommendedDisplayFrameRate (0008,2144)";
const SRC_CINE: &str = "CineRate (0018,0040)";
const SRC_FRAME_TIME: &str = "FrameTime (0018,1063)";
const SRC_FTV: &str = "FrameTimeVector (0018,1065)";

fn sane(fps: f64) -> bool {
    fps.is_finite() && fps > 0.0 && fps <= MAX_FPS
}

/// DICOM IS/DS values may carry spaces and NUL padding.
fn clean(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
}

fn parse_num(s: &str) -> Result<f64, String> {
    let t = clean(s);
    if t.is_empty() {
        return Err("is empty".into());
    }
    // A single-valued attribute that arrived with several values: use the first, like most viewers.
    let first = clean(t.split('\\').next().unwrap_or(""));
    first
        .parse::<f64>()
        .map_err(|_| format!("{t:?} is not a number"))
}

/// Mean of the FrameTimeVector entries after the first (the first is the time before frame 1, usually 0).
fn ftv_mean_ms(s: &str) -> Result<f64, String> {
    let t = clean(s);
    let mut vals = Vec::new();
    for part in t.split('\\') {
        let p = clean(part);
        let v: f64 = p
            .parse()
            .map_err(|_| format!("entry {p:?} is not a number"))?;
        vals.push(v);
    }
    if vals.len() < 2 {
        return Err("needs at least two entries (the first one is ignored)".into());
    }
    let rest = &vals[1..];
    Ok(rest.iter().sum::<f64>() / rest.len() as f64)
}

/// Decide the frame rate. Order of trust: `override_fps`, then RecommendedDisplayFrameRate
/// (0008,2144), CineRate (0018,0040), FrameTime (0018,1063, milliseconds per frame), and
/// FrameTimeVector (0018,1065, mean of the entries after the first, milliseconds).
///
/// A value that is missing is skipped silently; a value that is present but unparseable or
/// nonsense (<= 0, NaN/infinite, or more than 1000 fps) is skipped with a note. Usable
/// lower-priority values that differ from the chosen rate by more than 1 % also get a note.
/// An invalid `override_fps` is an error (it is the user's explicit request). When nothing is
/// usable the result is `Err(VideoError::NoFrameRate)` — there is no silent default.
pub fn frame_rate(
    recommended: Option<&str>,
    cine_rate: Option<&str>,
    frame_time_ms: Option<&str>,
    frame_time_vector: Option<&str>,
    override_fps: Option<f64>,
) -> Result<FrameRate, VideoError> {
    if let Some(f) = override_fps {
        if !sane(f) {
            return Err(VideoError::InvalidOption(format!(
                "fps override {f} is not usable (must be > 0 and <= {MAX_FPS})"
            )));
        }
        return Ok(FrameRate {
            fps: f,
            source: SRC_OVERRIDE,
            notes: Vec::new(),
        });
    }

    // Each candidate: (source, Some(Ok(fps)) | Some(Err(reason)) | None when absent).
    let mut candidates: Vec<(&'static str, Result<f64, String>)> = Vec::new();
    let rate = |s: &str| -> Result<f64, String> {
        let v = parse_num(s)?;
        if sane(v) {
            Ok(v)
        } else {
            Err(format!("{v} fps is not a usable rate"))
        }
    };
    let from_ms = |ms: f64| -> Result<f64, String> {
        if !(ms.is_finite() && ms > 0.0) {
            return Err(format!("{ms} ms per frame is not usable"));
        }
        let fps = 1000.0 / ms;
        if sane(fps) {
            Ok(fps)
        } else {
            Err(format!("{ms} ms per frame gives {fps} fps, not usable"))
        }
    };
    if let Some(s) = recommended {
        candidates.push((SRC_RECOMMENDED, rate(s)));
    }
    if let Some(s) = cine_rate {
        candidates.push((SRC_CINE, rate(s)));
    }
    if let Some(s) = frame_time_ms {
        candidates.push((SRC_FRAME_TIME, parse_num(s).and_then(from_ms)));
    }
    if let Some(s) = frame_time_vector {
        candidates.push((SRC_FTV, ftv_mean_ms(s).and_then(from_ms)));
    }

    let mut notes = Vec::new();
    let mut chosen: Option<(f64, &'static str)> = None;
    for (src, res) in candidates {
        match (res, chosen) {
            (Err(why), None) => notes.push(format!("{src} skipped: {why}")),
            (Err(_), Some(_)) => {}
            (Ok(f), None) => chosen = Some((f, src)),
            (Ok(f), Some((c, csrc))) => {
                if (f - c).abs() > 0.01 * c {
                    notes.push(format!(
                        "{src} says {f:.3} fps but {csrc} ({c:.3} fps) takes precedence"
                    ));
                }
            }
        }
    }
    match chosen {
        Some((fps, source)) => Ok(FrameRate { fps, source, notes }),
        None => Err(VideoError::NoFrameRate { notes }),
    }
}

/// Exact-ish rational for `fps`: returns `(num, den)` with `num/den ≈ fps`.
/// Integer rates and NTSC-style x/1.001 rates are exact; others use a 1/90000 s clock.
/// `num` is scaled up to at least 1000 so it also serves as a fine-grained timescale.
pub fn fps_rational(fps: f64) -> (u32, u32) {
    let mut best = None;
    for den in [1u32, 1001, 1000, 10, 100] {
        let num = fps * den as f64;
        let r = num.round();
        if r >= 1.0 && (num - r).abs() < 1e-6 * num.max(1.0) && r < 4.0e6 {
            best = Some((r as u32, den));
            break;
        }
    }
    let (mut num, mut den) = best.unwrap_or_else(|| {
        let den = (90000.0 / fps).round().max(1.0) as u32;
        (90000, den)
    });
    // Reduce, then scale so the timescale (num) is at least 1000.
    let g = gcd(num, den);
    num /= g;
    den /= g;
    while num < 1000 {
        num *= 10;
        den *= 10;
    }
    (num, den)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommended_wins() {
        let r = frame_rate(Some("25"), Some("30"), Some("40"), None, None).unwrap();
        assert_eq!(r.fps, 25.0);
        assert_eq!(r.source, SRC_RECOMMENDED);
        // CineRate disagrees -> note; FrameTime 40 ms = 25 fps agrees -> no note.
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0].contains("CineRate"));
    }

    #[test]
    fn cine_rate() {
        let r = frame_rate(None, Some(" 30 "), None, None, None).unwrap();
        assert_eq!((r.fps, r.source), (30.0, SRC_CINE));
        assert!(r.notes.is_empty());
    }

    #[test]
    fn frame_time_ms() {
        let r = frame_rate(None, None, Some("33.3333\0"), None, None).unwrap();
        assert!((r.fps - 30.0).abs() < 1e-3);
        assert_eq!(r.source, SRC_FRAME_TIME);
    }

    #[test]
    fn frame_time_vector_mean_after_first() {
        let r = frame_rate(None, None, None, Some("0\\50\\60\\40"), None).unwrap();
        assert!((r.fps - 20.0).abs() < 1e-9, "{}", r.fps);
        assert_eq!(r.source, SRC_FTV);
        // Only one entry: unusable.
        let e = frame_rate(None, None, None, Some("0"), None).unwrap_err();
        assert!(matches!(e, VideoError::NoFrameRate { .. }));
    }

    #[test]
    fn override_beats_everything() {
        let r = frame_rate(Some("25"), Some("30"), None, None, Some(12.5)).unwrap();
        assert_eq!((r.fps, r.source), (12.5, SRC_OVERRIDE));
        assert!(frame_rate(Some("25"), None, None, None, Some(0.0)).is_err());
        assert!(frame_rate(Some("25"), None, None, None, Some(f64::NAN)).is_err());
    }

    #[test]
    fn nonsense_falls_through_with_notes() {
        let r = frame_rate(
            Some("0"),
            Some("-5"),
            Some("0.5"),
            Some("0\\100\\100"),
            None,
        )
        .unwrap();
        // 0 fps, -5 fps, 2000 fps (0.5 ms) all rejected; FTV 100 ms -> 10 fps.
        assert_eq!((r.fps, r.source), (10.0, SRC_FTV));
        assert_eq!(r.notes.len(), 3, "{:?}", r.notes);
        assert!(r.notes[0].contains("RecommendedDisplayFrameRate"));
        assert!(r.notes[1].contains("CineRate"));
        assert!(r.notes[2].contains("FrameTime (0018,1063)"));

        let r = frame_rate(Some("NaN"), Some("abc"), Some("2000"), None, None).unwrap();
        assert!((r.fps - 0.5).abs() < 1e-12);
        assert_eq!(r.source, SRC_FRAME_TIME);
        assert_eq!(r.notes.len(), 2);

        let r = frame_rate(Some("5000"), Some("15"), None, None, None).unwrap();
        assert_eq!((r.fps, r.source), (15.0, SRC_CINE));
        assert!(r.notes[0].contains("5000"));
    }

    #[test]
    fn nothing_usable_is_an_error_not_30fps() {
        match frame_rate(None, None, None, None, None) {
            Err(VideoError::NoFrameRate { notes }) => assert!(notes.is_empty()),
            other => panic!("{other:?}"),
        }
        match frame_rate(Some(""), Some("0"), Some("-1"), Some("x\\y"), None) {
            Err(e @ VideoError::NoFrameRate { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("CineRate"), "{msg}");
                if let VideoError::NoFrameRate { notes } = e {
                    assert_eq!(notes.len(), 4);
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rationals() {
        assert_eq!(fps_rational(18.0), (1800, 100));
        assert_eq!(fps_rational(30000.0 / 1001.0), (30000, 1001));
        assert_eq!(fps_rational(12.5), (2500, 200));
        let (n, d) = fps_rational(1000.0 / 33.3);
        assert!((n as f64 / d as f64 - 1000.0 / 33.3).abs() < 0.01);
    }
}
