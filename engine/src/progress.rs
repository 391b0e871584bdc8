//! Progress: one bar per stage, owned by the runtime (stages never touch indicatif). Bars are
//! hidden when stderr is not a terminal or with `--quiet`; log lines go through `suspend` so
//! they do not tear the bars.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one run.
pub struct Progress {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    visible: bool,
    width: usize,
}

fn rate(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:>6.0}/s", state.per_sec());
}

fn counting_style(width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{prefix:>{width}}} {{spinner}} {{pos:>7}} items {{rate}} {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_spinner())
    .with_key("rate", rate)
}

fn total_style(width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{prefix:>{width}}} {{bar:30}} {{pos:>7}}/{{len:7}} {{rate}} eta {{eta:>4}} {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", rate)
}

impl Progress {
    /// One bar per label; visible only on a terminal and when not quiet.
    pub fn new(labels: &[String], quiet: bool) -> Progress {
        let visible = !quiet && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr_with_hz(8)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let width = labels.iter().map(|l| l.len()).max().unwrap_or(8).min(32);
        let bars = labels
            .iter()
            .map(|l| {
                let b = multi.add(ProgressBar::no_length());
                b.set_style(counting_style(width));
                b.set_prefix(l.clone());
                b
            })
            .collect();
        Progress {
            multi,
            bars,
            visible,
            width,
        }
    }

    /// Give bar `i` a known total (the source counts its inputs first).
    pub fn set_total(&self, i: usize, total: u64) {
        if let Some(b) = self.bars.get(i) {
            b.set_style(total_style(self.width));
            b.set_length(total);
        }
    }

    /// One more item done at stage `i`.
    pub fn inc(&self, i: usize) {
        if let Some(b) = self.bars.get(i) {
            b.inc(1);
        }
    }

    /// Print a line without tearing the bars.
    pub fn println(&self, line: &str) {
        if self.visible {
            self.multi.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    }

    /// Stop drawing.
    pub fn finish(&self) {
        for b in &self.bars {
            b.finish();
        }
    }
}
