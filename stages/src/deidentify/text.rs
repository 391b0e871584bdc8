//! Finding identifiers in free text, for the identifier echo check (see `echo.rs`) and the Clean
//! Descriptors option in `scrub` mode.
//!
//! Text and terms are compared *normalised*: lower-cased, every run of characters that are not
//! letters or digits folded to one space, so `DOE^JOHN`, `Doe, John` and `doe-john` read alike.
//! Latin-script terms match whole words only (a name component `ann` does not match `annual`);
//! terms written without Latin letters or digits (CJK names, which running text does not separate
//! by spaces) match anywhere. Identifiers made mostly of digits (IDs, phone numbers) are also
//! compared *compact*, with everything but letters and digits dropped, so `12-345-678` finds the
//! ID `12345678`. Matches map back to the original text so that a scrub replaces just them.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexBuilder};

/// Where a term came from: the attribute whose original value it is (reasons name the attribute,
/// never the value).
pub type TermSource = dicom_core::Tag;

/// One searchable form of a text: the normalised (or compact) string and, for each of its bytes,
/// the byte range of the original it came from.
struct Folded {
    text: String,
    map: Vec<(usize, usize)>,
}

/// Normalised form, padded with one space at each end; the byte map only when `with_map` (a
/// search first folds without it, and again with it only when something matched).
fn fold_words(s: &str, with_map: bool) -> Folded {
    let mut text = String::with_capacity(s.len() + 2);
    let mut map = Vec::with_capacity(if with_map { s.len() + 2 } else { 0 });
    text.push(' ');
    if with_map {
        map.push((0, 0));
    }
    for (i, c) in s.char_indices() {
        let r = (i, i + c.len_utf8());
        if c.is_alphanumeric() {
            for lc in c.to_lowercase() {
                text.push(lc);
                if with_map {
                    map.extend(std::iter::repeat_n(r, lc.len_utf8()));
                }
            }
        } else if !text.ends_with(' ') {
            text.push(' ');
            if with_map {
                map.push(r);
            }
        }
    }
    if !text.ends_with(' ') {
        text.push(' ');
        if with_map {
            map.push((s.len(), s.len()));
        }
    }
    Folded { text, map }
}

/// Compact form: letters and digits only, lower-cased (byte map as for [`fold_words`]).
fn fold_compact(s: &str, with_map: bool) -> Folded {
    let mut text = String::with_capacity(s.len());
    let mut map = Vec::with_capacity(if with_map { s.len() } else { 0 });
    for (i, c) in s.char_indices() {
        if c.is_alphanumeric() {
            for lc in c.to_lowercase() {
                text.push(lc);
                if with_map {
                    map.extend(std::iter::repeat_n((i, i + c.len_utf8()), lc.len_utf8()));
                }
            }
        }
    }
    Folded { text, map }
}

/// The normalised form of a term, without padding (`"Doe, John"` -> `"doe john"`).
pub fn normalize(s: &str) -> String {
    fold_words(s, false).text.trim().to_string()
}

/// The compact form of a term (`"12-345-678"` -> `"12345678"`).
pub fn compact(s: &str) -> String {
    fold_compact(s, false).text
}

/// Words that stand in name and ID fields without identifying anyone (placeholders, titles,
/// roles, template labels); a term equal to one of them is not searched for.
const NOT_IDENTIFYING: &[&str] = &[
    "anonymous",
    "anonymized",
    "anonymised",
    "anonymize",
    "anon",
    "unknown",
    "none",
    "null",
    "nil",
    "patient",
    "name",
    "test",
    "demo",
    "sample",
    "phantom",
    "research",
    "volunteer",
    "removed",
    "deleted",
    "redacted",
    "dummy",
    "subject",
    "the",
    "and",
    "mrs",
    "miss",
    "prof",
    "phd",
    "iii",
    "doctor",
    "physician",
    "radiology",
    "operator",
    "tech",
    "admin",
    "user",
    "service",
    "default",
    "not",
    "given",
    "xxx",
    "xxxx",
    // field labels that templates leave in name fields ("Last Name^First Name", "Enter text")
    "enter",
    "text",
    "first",
    "last",
    "middle",
    "family",
];

/// Whether a normalised term is a placeholder rather than an identifier (every word of it is).
pub fn is_placeholder(norm: &str) -> bool {
    norm.split(' ')
        .filter(|w| !w.is_empty())
        .all(|w| NOT_IDENTIFYING.contains(&w))
        || norm
            .chars()
            .filter(|c| *c != ' ')
            .collect::<std::collections::HashSet<_>>()
            .len()
            <= 1
}

/// The identifying values of one instance, ready to be searched for.
#[derive(Default)]
pub struct Terms {
    /// Normalised terms (whole words, or anywhere for non-Latin ones).
    words: Vec<(String, TermSource)>,
    /// Compact terms (substrings of the compact text).
    compact: Vec<(String, TermSource)>,
}

impl Terms {
    /// Add a term to be matched as whole words (after normalisation). Returns whether it was kept.
    pub fn add_words(&mut self, s: &str, source: TermSource, min_chars: usize) -> bool {
        let n = normalize(s);
        if n.chars().filter(|c| *c != ' ').count() < min_chars || is_placeholder(&n) {
            return false;
        }
        self.words.push((n, source));
        true
    }

    /// Add a term to be matched compact (IDs, phone numbers). Returns whether it was kept.
    pub fn add_compact(&mut self, s: &str, source: TermSource, min_chars: usize) -> bool {
        let c = compact(s);
        if c.chars().count() < min_chars || is_placeholder(&c) {
            return false;
        }
        self.compact.push((c, source));
        true
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.compact.is_empty()
    }

    /// Build the matcher.
    pub fn matcher(mut self) -> Matcher {
        for v in [&mut self.words, &mut self.compact] {
            v.sort();
            v.dedup_by(|a, b| a.0 == b.0);
        }
        let build = |pats: &[String]| {
            if pats.is_empty() {
                return None;
            }
            // A contiguous NFA: built per instance for a few dozen terms and searched over a few
            // hundred short values, a DFA's build time would dominate.
            AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .match_kind(MatchKind::Standard)
                .build(pats)
                .ok()
        };
        let word_pats: Vec<String> = self
            .words
            .iter()
            .map(|(t, _)| {
                if t.chars().any(|c| c.is_ascii_alphanumeric()) {
                    format!(" {t} ")
                } else {
                    t.clone()
                }
            })
            .collect();
        let compact_pats: Vec<String> = self.compact.iter().map(|(t, _)| t.clone()).collect();
        let (words_ac, compact_ac) = (build(&word_pats), build(&compact_pats));
        let broken = (!word_pats.is_empty() && words_ac.is_none())
            || (!compact_pats.is_empty() && compact_ac.is_none());
        Matcher {
            words_ac,
            compact_ac,
            words: self.words.into_iter().map(|(_, s)| s).collect(),
            compact: self.compact.into_iter().map(|(_, s)| s).collect(),
            broken,
        }
    }
}

/// One match in an original text: its byte range and the attribute the term came from (`None`
/// for a pattern match such as a phone number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub range: (usize, usize),
    pub source: Option<TermSource>,
}

/// Searches texts for the terms of one instance.
pub struct Matcher {
    words_ac: Option<AhoCorasick>,
    compact_ac: Option<AhoCorasick>,
    words: Vec<TermSource>,
    compact: Vec<TermSource>,
    /// An automaton could not be built: every search reports a hit (fail closed).
    broken: bool,
}

impl Matcher {
    /// Every term found in `text` (overlapping matches included).
    pub fn terms_in(&self, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        if self.broken {
            hits.push(Hit {
                range: (0, text.len()),
                source: None,
            });
            return hits;
        }
        if let Some(ac) = &self
            .words_ac
            .as_ref()
            .filter(|ac| ac.is_match(&fold_words(text, false).text))
        {
            let f = fold_words(text, true);
            for m in ac.find_overlapping_iter(&f.text) {
                let (mut s, mut e) = (m.start(), m.end());
                // Drop the padding spaces of a whole-word pattern.
                if f.text.as_bytes()[s] == b' ' {
                    s += 1;
                }
                if e > s && f.text.as_bytes()[e - 1] == b' ' {
                    e -= 1;
                }
                if e > s {
                    hits.push(Hit {
                        range: (f.map[s].0, f.map[e - 1].1),
                        source: Some(self.words[m.pattern().as_usize()]),
                    });
                }
            }
        }
        if let Some(ac) = &self
            .compact_ac
            .as_ref()
            .filter(|ac| ac.is_match(&fold_compact(text, false).text))
        {
            let f = fold_compact(text, true);
            for m in ac.find_overlapping_iter(&f.text) {
                hits.push(Hit {
                    range: (f.map[m.start()].0, f.map[m.end() - 1].1),
                    source: Some(self.compact[m.pattern().as_usize()]),
                });
            }
        }
        hits
    }
}

/// Patterns that identify whatever file they stand in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// E-mail addresses, phone numbers, US social security numbers.
    Contact,
    /// Calendar dates in the common written forms (20190304, 2019-03-04, 04.03.2019, 3/4/2019,
    /// 4 Mar 2019, March 4, 2019).
    Date,
    /// Tokens that look like record numbers: `MRN 123`, or 6 or more digits with at most a
    /// 3-letter prefix.
    RecordNumber,
}

fn contact_re() -> &'static Regex {
    static R: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        Regex::new(concat!(
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", // e-mail
            r"|\b\d{3}-\d{2}-\d{4}\b",                              // SSN
            r"|\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,4}\d\b",          // international phone
            r"|(?:\(\d{3}\)\s?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b",     // (555) 123-4567, 555.123.4567
        ))
        .expect("static regex")
    })
}

fn date_re() -> &'static Regex {
    static R: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        const MON: &str = "(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\\.?";
        const D: &str = "(?:0?[1-9]|[12][0-9]|3[01])";
        const M: &str = "(?:0?[1-9]|1[0-2])";
        const Y: &str = "(?:1[89][0-9]{2}|20[0-9]{2})";
        let alts = [
            format!(r"\b{Y}[-/.]{M}[-/.]{D}\b"),
            format!(r"\b{D}[-/.]{M}[-/.]{Y}\b"),
            format!(r"\b{M}/{D}/{Y}\b"),
            r"\b(?:1[89][0-9]{2}|20[0-9]{2})(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])\b".into(),
            format!(r"\b{D}[ -]{MON}[ -,]*{Y}\b"),
            format!(r"\b{MON} {D},? {Y}\b"),
        ];
        RegexBuilder::new(&alts.join("|"))
            .case_insensitive(true)
            .build()
            .expect("static regex")
    })
}

fn record_re() -> &'static Regex {
    static R: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        RegexBuilder::new(concat!(
            r"\b(?:mrn|mr\s?#|mr\s?no\.?|patient\s?id|pid|record\s?(?:no\.?|number|#))[\s:#.]*[A-Za-z0-9-]*\d[A-Za-z0-9-]*",
            r"|\b[A-Za-z]{0,3}\d{6,}\b",
        ))
        .case_insensitive(true)
        .build()
        .expect("static regex")
    })
}

/// Ranges of `text` that match `pattern`.
pub fn pattern_hits(text: &str, pattern: Pattern) -> Vec<Hit> {
    // Every pattern needs a digit (or the @ of an e-mail address): most values have neither.
    if !text
        .bytes()
        .any(|b| b.is_ascii_digit() || (b == b'@' && pattern == Pattern::Contact))
    {
        return Vec::new();
    }
    let re = match pattern {
        Pattern::Contact => contact_re(),
        Pattern::Date => date_re(),
        Pattern::RecordNumber => record_re(),
    };
    re.find_iter(text)
        .map(|m| Hit {
            range: (m.start(), m.end()),
            source: None,
        })
        .collect()
}

/// `text` with every hit replaced by `***` (overlapping hits merged).
pub fn redact(text: &str, hits: &[Hit]) -> String {
    let mut ranges: Vec<(usize, usize)> = hits.iter().map(|h| h.range).collect();
    ranges.sort();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut i = 0;
    while i < ranges.len() {
        let (s, mut e) = ranges[i];
        while i + 1 < ranges.len() && ranges[i + 1].0 <= e {
            e = e.max(ranges[i + 1].1);
            i += 1;
        }
        if s >= at {
            out.push_str(&text[at..s]);
            out.push_str("***");
            at = e;
        } else if e > at {
            at = e;
        }
        i += 1;
    }
    out.push_str(&text[at..]);
    out
}

/// Date renderings of a `YYYYMMDD` value that may appear in free text (in normalised form they
/// cover `-`, `/`, `.` and space separators alike).
pub fn date_variants(da: &str) -> Vec<String> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let d = da.trim();
    if d.len() < 8 || !d.as_bytes()[..8].iter().all(|b| b.is_ascii_digit()) {
        return vec![];
    }
    let (y, m, dd) = (&d[0..4], &d[4..6], &d[6..8]);
    let (mi, di): (usize, usize) = (m.parse().unwrap_or(0), dd.parse().unwrap_or(0));
    let mut v = vec![
        format!("{y}{m}{dd}"),
        format!("{y}-{m}-{dd}"),
        format!("{dd}.{m}.{y}"),
        format!("{m}/{dd}/{y}"),
        format!("{y}-{mi}-{di}"),
        format!("{di}.{mi}.{y}"),
        format!("{mi}/{di}/{y}"),
    ];
    if (1..=12).contains(&mi) {
        let long = MONTHS[mi - 1];
        let short = &long[..3];
        for name in [long, short] {
            v.push(format!("{di} {name} {y}"));
            v.push(format!("{name} {di} {y}"));
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Clean Descriptors in `scrub` mode: `text` with the instance's identifying values and every
/// pattern (contacts, dates, record numbers) replaced by `***`; `None` when the matcher could not
/// be built (the caller must then remove the text).
pub fn scrub(matcher: &Matcher, text: &str) -> Option<String> {
    if matcher.broken {
        return None;
    }
    let mut hits = matcher.terms_in(text);
    for p in [Pattern::Contact, Pattern::Date, Pattern::RecordNumber] {
        hits.extend(pattern_hits(text, p));
    }
    Some(redact(text, &hits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::Tag;

    const PN: Tag = Tag(0x0010, 0x0010);
    const ID: Tag = Tag(0x0010, 0x0020);

    struct Scrubber(Matcher);
    impl Scrubber {
        fn scrub(&self, text: &str) -> Option<String> {
            scrub(&self.0, text)
        }
    }

    fn scrubber(words: &[&str], compact: &[&str]) -> Scrubber {
        let mut t = Terms::default();
        for w in words {
            t.add_words(w, PN, 2);
        }
        for c in compact {
            t.add_compact(c, ID, 6);
        }
        Scrubber(t.matcher())
    }

    #[test]
    fn names_match_whole_words_in_any_case_and_spelling() {
        let s = scrubber(&["DOE", "JOHN", "Li Wu"], &[]);
        assert_eq!(
            s.scrub("Patient john Doe, ok").unwrap(),
            "Patient *** ***, ok"
        );
        assert_eq!(
            s.scrub("Johnson in Doe-ville").unwrap(),
            "Johnson in ***-ville"
        );
        assert_eq!(s.scrub("seen by LI^WU today").unwrap(), "seen by *** today");
        assert_eq!(s.scrub("Lithium").unwrap(), "Lithium");
    }

    #[test]
    fn ids_match_with_separators_dropped() {
        let s = scrubber(&[], &["12345678"]);
        assert_eq!(s.scrub("ref: 12-345-678.").unwrap(), "ref: ***.");
        assert_eq!(s.scrub("id 12 34 56 78 x").unwrap(), "id *** x");
    }

    #[test]
    fn non_latin_names_match_inside_running_text() {
        let s = scrubber(&["山田"], &[]);
        assert_eq!(s.scrub("患者山田様").unwrap(), "患者***様");
    }

    #[test]
    fn scrub_removes_contacts_dates_and_record_numbers_by_pattern() {
        let s = scrubber(&[], &[]);
        assert_eq!(
            s.scrub("mail a.b@x.org or (555) 123-4567, ssn 123-45-6789, +44 20 7946 0958")
                .unwrap(),
            "mail *** or ***, ssn ***, ***"
        );
        assert_eq!(
            s.scrub(
                "seen 2019-03-04, 04.03.2019, 3/4/2019, 4 Mar 2019, March 4, 2019 and 20190304"
            )
            .unwrap(),
            "seen ***, ***, ***, ***, *** and ***"
        );
        assert_eq!(s.scrub("MRN A12 and 0012345678").unwrap(), "*** and ***");
        assert_eq!(s.scrub("Slice 5 mm, 120 kV").unwrap(), "Slice 5 mm, 120 kV");
    }

    #[test]
    fn placeholders_are_not_terms() {
        let mut t = Terms::default();
        assert!(!t.add_words("ANONYMOUS", PN, 3));
        assert!(!t.add_words("^", PN, 3));
        assert!(!t.add_words("Last Name^First Name", PN, 3));
        assert!(!t.add_compact("000000", ID, 6));
        assert!(t.add_words("Doe^Jane", PN, 3));
    }

    #[test]
    fn birth_dates_in_written_forms() {
        let v = date_variants("20200131");
        for f in [
            "31.01.2020",
            "01/31/2020",
            "31 jan 2020",
            "january 31 2020",
            "1/31/2020",
        ] {
            assert!(v.contains(&f.to_string()), "{f}");
        }
    }
}
