//! Recipe diagnostics: every problem found while reading or planning a recipe, with the file,
//! line and column and the stage it concerns, so all of them can be reported at once.

use std::fmt;

/// One problem in a recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The recipe file as the user named it.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// The stage id and kind, when the problem belongs to a stage.
    pub stage: Option<(String, String)>,
    /// What is wrong, and how to fix it where that is clear.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some((id, kind)) = &self.stage {
            if kind.is_empty() {
                write!(f, "stage \"{id}\": ")?;
            } else {
                write!(f, "stage \"{id}\" ({kind}): ")?;
            }
        }
        f.write_str(&self.message)
    }
}

/// All problems found in one recipe.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sort by position so messages read top to bottom.
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| (d.line, d.column));
        self.0.dedup();
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        write!(
            f,
            "{} problem{} found; nothing was run",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to a misspelt name, if one is close enough to suggest.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Turn a serde "unknown field `x`, expected one of `a`, `b`" message into one that suggests
/// the closest expected field.
pub fn humanize_serde_message(msg: &str) -> String {
    let msg = msg.trim();
    for (marker, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        if let Some(start) = msg.find(marker) {
            let rest = &msg[start + marker.len()..];
            let Some(end) = rest.find('`') else { continue };
            let given = &rest[..end];
            let tail = rest[end + 1..].trim_start_matches(',').trim();
            let tail = tail
                .strip_prefix("expected one of")
                .or_else(|| tail.strip_prefix("expected"))
                .unwrap_or("");
            let expected: Vec<&str> = tail
                .split(',')
                .flat_map(|p| p.split(" or "))
                .map(|p| p.trim().trim_matches('`'))
                .filter(|p| !p.is_empty())
                .collect();
            let mut out = format!("unknown {what} \"{given}\"");
            if let Some(best) = did_you_mean(given, expected.iter().copied()) {
                out.push_str(&format!(", did you mean \"{best}\"?"));
            } else if !expected.is_empty() {
                out.push_str(&format!("; expected one of: {}", expected.join(", ")));
            }
            return out;
        }
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_message_suggests_the_closest_field() {
        let m = humanize_serde_message(
            "unknown field `retian_uids`, expected one of `retain_uids`, `profile`",
        );
        assert_eq!(
            m,
            "unknown field \"retian_uids\", did you mean \"retain_uids\"?"
        );
    }

    #[test]
    fn far_off_names_list_the_choices_instead() {
        let m = humanize_serde_message("unknown field `zzz`, expected `alpha` or `beta`");
        assert!(m.contains("expected one of: alpha, beta"), "{m}");
    }

    #[test]
    fn display_carries_position_and_stage() {
        let d = Diagnostic {
            file: "r.yaml".into(),
            line: 3,
            column: 5,
            stage: Some(("clean".into(), "deidentify".into())),
            message: "bad".into(),
        };
        assert_eq!(
            d.to_string(),
            "r.yaml:3:5: stage \"clean\" (deidentify): bad"
        );
    }
}
