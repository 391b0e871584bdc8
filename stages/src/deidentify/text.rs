//! Free-text scrubbing for the Clean Descriptors option in `scrub` mode:
//! identifying strings found elsewhere in the same file are replaced by "***"
//! (case-insensitively), as are e-mail, phone and SSN-shaped substrings.

use regex::{Regex, RegexBuilder};

pub struct Scrubber {
    terms: Option<Regex>,
    /// The term pattern could not be built: fail closed (callers remove the text).
    broken: bool,
}

fn shapes() -> &'static Regex {
    static R: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        Regex::new(concat!(
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", // e-mail
            r"|\b\d{3}-\d{2}-\d{4}\b",                              // SSN
            r"|\+?\(?\d{2,4}\)?[ .-]\d{3,4}[ .-]\d{3,5}\b",         // phone
        ))
        .expect("static regex")
    })
}

/// Date renderings of a `YYYYMMDD` value that may appear in free text.
pub fn date_variants(da: &str) -> Vec<String> {
    let d = da.trim();
    if d.len() < 8 || !d.as_bytes()[..8].iter().all(|b| b.is_ascii_digit()) {
        return vec![];
    }
    let (y, m, dd) = (&d[0..4], &d[4..6], &d[6..8]);
    vec![
        format!("{y}{m}{dd}"),
        format!("{y}-{m}-{dd}"),
        format!("{y}/{m}/{dd}"),
        format!("{y}.{m}.{dd}"),
        format!("{dd}.{m}.{y}"),
        format!("{dd}/{m}/{y}"),
        format!("{m}/{dd}/{y}"),
        format!("{dd}-{m}-{y}"),
    ]
}

impl Scrubber {
    /// Build from identifying strings (already split into words/components by the caller).
    /// Terms shorter than 2 characters are ignored; terms of 2-3 characters only match whole words.
    pub fn new(terms: impl IntoIterator<Item = String>) -> Scrubber {
        let mut t: Vec<String> = terms
            .into_iter()
            .map(|s| {
                s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                    .to_string()
            })
            .filter(|s| s.chars().count() >= 2)
            .collect();
        t.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        t.dedup();
        let alts: Vec<String> = t
            .iter()
            .map(|s| {
                if s.chars().count() <= 3 {
                    format!(r"\b{}\b", regex::escape(s))
                } else {
                    regex::escape(s)
                }
            })
            .collect();
        let terms = if alts.is_empty() {
            None
        } else {
            RegexBuilder::new(&alts.join("|"))
                .case_insensitive(true)
                .size_limit(64 << 20)
                .build()
                .ok()
        };
        let broken = terms.is_none() && !alts.is_empty();
        Scrubber { terms, broken }
    }

    /// The scrubbed text, or `None` if scrubbing is not possible (the caller must then remove the text).
    pub fn scrub(&self, text: &str) -> Option<String> {
        if self.broken {
            return None;
        }
        let s = match &self.terms {
            Some(re) => re.replace_all(text, "***").into_owned(),
            None => text.to_string(),
        };
        Some(shapes().replace_all(&s, "***").into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn scrub_terms_and_shapes() {
        let s = Scrubber::new(["DOE".to_string(), "JOHN".into(), "Li".into(), "X".into()]);
        assert_eq!(
            s.scrub("Patient john Doe, ok").unwrap(),
            "Patient *** ***, ok"
        );
        assert_eq!(s.scrub("Lithium for LI").unwrap(), "Lithium for ***");
        assert_eq!(
            s.scrub("mail a.b@x.org or 555-123-4567, ssn 123-45-6789")
                .unwrap(),
            "mail *** or ***, ssn ***"
        );
        assert!(date_variants("20200131").contains(&"31.01.2020".to_string()));
    }
}
