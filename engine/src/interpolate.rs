//! `${param}` references, replaced at the value level (recipe parsing, before planning): a
//! param's value always lands as part of one YAML scalar, the one that held the reference, so no
//! value can change a recipe's structure, whatever quotes, backslashes, `#`, `:` or line breaks
//! it holds.
//!
//! How: every reference is first swapped for a neutral placeholder of the same length (a plain
//! YAML token in any context, so the text parses and every position stays put); the YAML parser
//! then gives each scalar's decoded value and where it sits. A scalar holding references is
//! rewritten: the whole plain scalar `${q}` of an int, float or bool param becomes that typed
//! literal; any other becomes a double-quoted scalar with the substituted value escaped (a plain
//! scalar whose result is a simple token stays plain, so YAML resolves it as before). The
//! rewritten text keeps the line structure of the recipe, and [`OffsetMap`] takes positions in it
//! back to the recipe as written, so every diagnostic's line:col is right.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

use crate::diagnostic::did_you_mean;
use crate::recipe::{Param, ParamValue};

/// One `${name}` in the recipe text.
#[derive(Clone, Debug)]
struct Reference {
    /// Byte offset of `$`.
    start: usize,
    /// The name between the braces.
    name: String,
}

impl Reference {
    fn end(&self) -> usize {
        self.start + self.name.len() + 3
    }
}

/// A problem found while substituting, at a byte offset of the recipe text.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    /// Byte offset in the recipe as written.
    pub offset: usize,
    /// What is wrong (names params, never their values).
    pub message: String,
}

/// The recipe text with references neutralised, for reading the envelope before params are
/// known, and what is needed to substitute them later.
pub(crate) struct Placeholders {
    /// Same length and lines as the recipe; each `${name}` replaced by a token of the same
    /// length.
    pub text: String,
    refs: Vec<Reference>,
    marker: String,
}

/// Every `${name}` (name: ASCII letters, digits, `_`) replaced by `$c` + name + `c`, with a `c`
/// such that `$c` appears nowhere in the text (so every `$c` in the result is a placeholder).
pub(crate) fn placeholders(raw: &str) -> Placeholders {
    let mut refs = Vec::new();
    let mut from = 0;
    while let Some(rel) = raw[from..].find("${") {
        let start = from + rel;
        let Some(close) = raw[start..].find('}') else {
            break;
        };
        let name = &raw[start + 2..start + close];
        if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            refs.push(Reference {
                start,
                name: name.to_string(),
            });
        }
        from = start + close + 1;
    }
    let c = ['_', '~', '.', '=', '^', '@']
        .into_iter()
        .find(|c| !raw.contains(&format!("${c}")))
        .unwrap_or('_');
    let marker = format!("${c}");
    let mut text = String::with_capacity(raw.len());
    let mut at = 0;
    for r in &refs {
        text.push_str(&raw[at..r.start]);
        text.push_str(&marker);
        text.push_str(&r.name);
        text.push(c);
        at = r.end();
    }
    text.push_str(&raw[at..]);
    Placeholders { text, refs, marker }
}

/// A run of the substituted text that is the recipe's own text (`same`) or a rewritten scalar.
#[derive(Clone, Debug)]
struct Segment {
    /// Start in the substituted text.
    text_start: usize,
    /// Start in the recipe as written.
    raw_start: usize,
    /// Length in the substituted text.
    len: usize,
    /// Copied unchanged (offsets map one to one); else a rewritten scalar (every offset in it
    /// maps to the scalar's start).
    same: bool,
}

/// Takes positions in the substituted text back to the recipe as written.
#[derive(Clone, Debug, Default)]
pub struct OffsetMap {
    segments: Vec<Segment>,
    /// Byte offset of each line start, substituted text.
    text_lines: Vec<usize>,
    /// Byte offset of each line start, recipe as written.
    raw_lines: Vec<usize>,
}

fn line_starts(s: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(s.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// 1-based (line, column in characters) of a byte offset.
pub(crate) fn line_col(text: &str, lines: &[usize], offset: usize) -> (u64, u64) {
    let offset = offset.min(text.len());
    let line = lines.partition_point(|&s| s <= offset).max(1) - 1;
    let start = lines[line];
    let col = text
        .get(start..offset)
        .map(|s| s.chars().count())
        .unwrap_or(0);
    (line as u64 + 1, col as u64 + 1)
}

impl OffsetMap {
    /// The position in the recipe as written of a 1-based (line, column) in the substituted
    /// text. Without substitutions (or for positions the map does not know) it is the same.
    pub fn to_raw(&self, raw: &str, text: &str, line: u64, column: u64) -> (u64, u64) {
        if self.segments.is_empty() || line == 0 || line as usize > self.text_lines.len() {
            return (line, column);
        }
        let start = self.text_lines[line as usize - 1];
        let end = self
            .text_lines
            .get(line as usize)
            .copied()
            .unwrap_or(text.len());
        let offset = text[start..end]
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map(|(i, _)| start + i)
            .unwrap_or(end);
        let i = self
            .segments
            .partition_point(|s| s.text_start <= offset)
            .max(1)
            - 1;
        let s = &self.segments[i];
        let raw_offset = if s.same {
            s.raw_start + (offset - s.text_start).min(s.len)
        } else {
            s.raw_start
        };
        line_col(raw, &self.raw_lines, raw_offset)
    }
}

/// The text as a double-quoted YAML scalar: `"` and `\` escaped, and every character that YAML
/// does not take as printable, or could read as a line break, written as an escape.
fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether text can stand as a plain scalar in any context and means itself (no indicator, no
/// space, nothing YAML would read as structure).
fn simple_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-' | '/'))
        && !s.starts_with(['-', '.'])
}

/// The literal of an int, float or bool value (None for text).
fn typed_literal(v: &ParamValue) -> Option<String> {
    match v {
        ParamValue::Str(_) => None,
        other => Some(other.raw()),
    }
}

/// The byte offset of the `|` or `>` that opens the block scalar whose content starts at
/// `content`: the last token of the nearest non-blank line above it (comment aside).
fn block_indicator(raw: &str, content: usize) -> Option<usize> {
    let mut line_end = raw[..content].rfind('\n')?;
    loop {
        let line_start = raw[..line_end].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = &raw[line_start..line_end];
        if line.trim().is_empty() {
            line_end = line_start.checked_sub(1)?;
            continue;
        }
        let code = match line.find(" #") {
            Some(c) => &line[..c],
            None => line,
        }
        .trim_end();
        let token_start = code.rfind([' ', '\t']).map(|i| i + 1).unwrap_or(0);
        let token = &code[token_start..];
        let ok = token.starts_with(['|', '>'])
            && token[1..]
                .chars()
                .all(|c| c == '-' || c == '+' || c.is_ascii_digit());
        return ok.then_some(line_start + token_start);
    }
}

/// Substitute the params into every scalar that refers to them (`declared`: every declared
/// param's name, resolved or not). Returns the substituted text (same lines as `raw`), the map
/// back to `raw`, and the problems (references to undeclared params, references that are not
/// inside a value).
pub(crate) fn substitute(
    raw: &str,
    ph: &Placeholders,
    params: &[Param],
    declared: &[&str],
) -> (String, OffsetMap, Vec<Problem>) {
    let mut problems = Vec::new();
    if ph.refs.is_empty() {
        return (raw.to_string(), OffsetMap::default(), problems);
    }
    // Scalars that hold references: (byte range in the text, decoded value, style).
    let mut scalars: Vec<(usize, usize, String, ScalarStyle)> = Vec::new();
    let mut comments: Vec<(usize, usize)> = Vec::new();
    for ev in Parser::new_from_str(&ph.text) {
        let Ok((event, span)) = ev else {
            // The envelope parse already reported what is wrong with the text.
            break;
        };
        let Some(range) = span.byte_range() else {
            continue;
        };
        match event {
            Event::Scalar(value, style, _, _)
                if ph
                    .refs
                    .iter()
                    .any(|r| r.start >= range.start && r.start < range.end) =>
            {
                scalars.push((range.start, range.end, value.into_owned(), style));
            }
            Event::Comment(..) => comments.push((range.start, range.end)),
            _ => {}
        }
    }

    let lookup = |r: &Reference| params.iter().find(|p| p.name == r.name);
    for r in &ph.refs {
        let in_scalar = scalars.iter().any(|s| r.start >= s.0 && r.start < s.1);
        let in_comment = comments.iter().any(|c| r.start >= c.0 && r.start < c.1);
        if in_comment {
            continue;
        }
        if !in_scalar {
            problems.push(Problem {
                offset: r.start,
                message: format!(
                    "\"${{{}}}\" is not inside a value; a param can only be used in a value",
                    r.name
                ),
            });
            continue;
        }
        // A declared param without a value has its own diagnostic already.
        if lookup(r).is_none() && !declared.contains(&r.name.as_str()) {
            let hint = did_you_mean(&r.name, declared.iter().copied())
                .map(|b| format!(", did you mean \"{b}\"?"))
                .unwrap_or_default();
            problems.push(Problem {
                offset: r.start,
                message: format!("\"${{{}}}\" refers to no declared param{hint}", r.name),
            });
        }
    }

    let mut out = String::with_capacity(raw.len() + 64);
    let mut segments = Vec::new();
    let mut at = 0;
    for (start, end, value, style) in &scalars {
        let (mut start, mut end) = (*start, *end);
        let refs: Vec<&Reference> = ph
            .refs
            .iter()
            .filter(|r| r.start >= start && r.start < end)
            .collect();
        if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
            // A block scalar's span starts at its first content character and runs into the
            // lines after it: replace from its `|` or `>` to the end of its last content line.
            while end > start && raw.as_bytes()[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            match block_indicator(raw, start).filter(|&i| i >= at) {
                Some(i) => start = i,
                None => {
                    problems.push(Problem {
                        offset: start,
                        message: "cannot find where this block scalar starts to put the \
                                  param's value in it; write the value in quotes"
                            .into(),
                    });
                    continue;
                }
            }
        }
        let pieces: Vec<&str> = value.split(ph.marker.as_str()).collect();
        if pieces.len() != refs.len() + 1 {
            problems.push(Problem {
                offset: start,
                message: "this value holds text that looks like a param reference placeholder; \
                          write it without `$` or refer to params with ${name} only"
                    .into(),
            });
            continue;
        }
        let mut substituted = pieces[0].to_string();
        for (r, piece) in refs.iter().zip(&pieces[1..]) {
            // Each piece starts with the placeholder's name and closing character.
            let rest = piece.get(r.name.len() + 1..).unwrap_or("");
            match lookup(r) {
                Some(p) => substituted.push_str(&p.value.raw()),
                None => {
                    substituted.push_str("${");
                    substituted.push_str(&r.name);
                    substituted.push('}');
                }
            }
            substituted.push_str(rest);
        }
        let whole = refs.len() == 1
            && pieces[0].is_empty()
            && pieces[1].len() == refs[0].name.len() + 1
            && matches!(style, ScalarStyle::Plain);
        let typed = if whole {
            lookup(refs[0]).and_then(|p| typed_literal(&p.value))
        } else {
            None
        };
        let breaks = raw[start..end].matches('\n').count();
        let mut replacement = match typed {
            Some(t) if breaks == 0 => t,
            _ if !whole
                && breaks == 0
                && matches!(style, ScalarStyle::Plain)
                && simple_token(&substituted) =>
            {
                substituted
            }
            _ => double_quoted(&substituted),
        };
        if breaks > 0 {
            // Keep the recipe's lines: escaped line breaks (`\` at the end of a line) add
            // nothing to the value.
            let col = raw[..start]
                .rfind('\n')
                .map(|nl| raw[nl + 1..start].chars().count())
                .unwrap_or_else(|| raw[..start].chars().count());
            let indent = " ".repeat(col.max(1));
            replacement.pop();
            for _ in 0..breaks {
                replacement.push_str("\\\n");
                replacement.push_str(&indent);
            }
            replacement.push('"');
        }
        segments.push(Segment {
            text_start: out.len(),
            raw_start: at,
            len: start - at,
            same: true,
        });
        out.push_str(&raw[at..start]);
        segments.push(Segment {
            text_start: out.len(),
            raw_start: start,
            len: replacement.len(),
            same: false,
        });
        out.push_str(&replacement);
        at = end;
    }
    segments.push(Segment {
        text_start: out.len(),
        raw_start: at,
        len: raw.len() - at,
        same: true,
    });
    out.push_str(&raw[at..]);
    let map = OffsetMap {
        segments,
        text_lines: line_starts(&out),
        raw_lines: line_starts(raw),
    };
    (out, map, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_keep_length_and_avoid_text_already_there() {
        let raw = "a: ${x}\nb: \"$_y ${long_name}\"\nc: ${not valid}\n";
        let ph = placeholders(raw);
        assert_eq!(ph.text.len(), raw.len());
        assert_eq!(ph.refs.len(), 2);
        assert_eq!(ph.marker, "$~");
        assert!(ph.text.contains("a: $~x~\n"), "{}", ph.text);
        assert!(ph.text.contains("${not valid}"), "{}", ph.text);
    }

    #[test]
    fn double_quoted_values_read_back_as_themselves() {
        for v in [
            "plain",
            "a\"b\\c",
            "line\nbreak\r\n\ttab",
            "\u{7f}\u{85}\u{2028}\u{feff}",
            "",
        ] {
            let back: String = serde_saphyr::from_str(&format!("{}\n", double_quoted(v))).unwrap();
            assert_eq!(back, v);
        }
    }

    fn param(name: &str, value: &str) -> Param {
        Param {
            name: name.into(),
            decl: serde_saphyr::from_str("{ type: string }").unwrap(),
            value: ParamValue::Str(value.into()),
            from_set: true,
        }
    }

    #[test]
    fn references_in_block_and_multi_line_scalars_keep_the_lines_and_take_the_value() {
        let raw = "a:\n  b: |\n    one ${x}\n    two\n  c: \"multi\n    line ${x}\"\n  d: >\n    folded ${x}\n\n  e: end # ${x} in a comment\n";
        let ph = placeholders(raw);
        let (text, _, problems) = substitute(raw, &ph, &[param("x", "v: \"w\"\n#")], &["x"]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(text.lines().count(), raw.lines().count(), "{text}");
        #[derive(serde::Deserialize, Debug)]
        struct A {
            a: std::collections::BTreeMap<String, String>,
        }
        let a: A = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(a.a["b"], "one v: \"w\"\n#\ntwo\n");
        assert_eq!(a.a["c"], "multi line v: \"w\"\n#");
        assert_eq!(a.a["d"], "folded v: \"w\"\n#\n");
        assert_eq!(a.a["e"], "end");
        assert!(text.contains("# ${x} in a comment"));
    }

    #[test]
    fn a_reference_outside_any_value_is_a_problem() {
        let raw = "a: &${x} 1\n";
        let ph = placeholders(raw);
        let (_, _, problems) = substitute(raw, &ph, &[param("x", "v")], &["x"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("not inside a value"));
    }

    #[test]
    fn mutated_shipped_recipes_parse_or_fail_with_diagnostics_inside_the_text_never_a_panic() {
        let recipes = [
            include_str!("../../recipes/deid-longitudinal.yaml"),
            include_str!("../../recipes/stills.yaml"),
            include_str!("../../recipes/series-mp4.yaml"),
        ];
        let pieces = [
            "${",
            "}",
            "${layout}",
            "\"",
            "'",
            "\n",
            "|\n",
            ">-\n",
            "#",
            ": ",
            "[",
            "]",
            "{",
            "\\",
            "  ",
            "$_",
            "é",
        ];
        let sets = [("layout".to_string(), "a\"\n  b: '#\\".to_string())];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for round in 0..500 {
            let mut text = recipes[round % recipes.len()].to_string();
            for _ in 0..1 + next(4) {
                let mut at = next(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let piece = pieces[next(pieces.len())];
                if next(3) == 0 {
                    let mut end = (at + 1 + next(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, piece);
                } else {
                    text.insert_str(at, piece);
                }
            }
            let lines = text.lines().count() as u64 + 1;
            match crate::recipe::Recipe::parse("m.yaml", text.clone(), &sets) {
                Ok(r) => {
                    assert_eq!(
                        r.source.text.lines().count(),
                        text.lines().count(),
                        "{text}"
                    );
                    for (i, st) in r.stages.iter().enumerate() {
                        assert!(st.kind_pos.0 <= lines && st.with_pos.0 <= lines);
                        if let Err(e) = crate::recipe::parse_with::<serde_json::Value>(&r.source, i)
                        {
                            let d = r.source.diag_from_yaml(&e, None);
                            assert!(d.line <= lines, "{d}\n{text}");
                        }
                    }
                }
                Err(d) => {
                    for d in &d.0 {
                        assert!(d.line <= lines, "{d}\n{text}");
                    }
                }
            }
        }
    }
}
