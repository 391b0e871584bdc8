//! PS3.15 Table E.1-1 (profile attributes) and Table E.3.10-1 (safe private
//! attributes), parsed once from the CSV data files shipped in `data/`.
//!
//! Source: DICOM PS3.15 2026d, (c) NEMA. See `data/STANDARD-README.md`.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use dicom_core::Tag;

pub(crate) const E1_1_CSV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/ps3.15-table-e1-1.csv"
));
pub(crate) const E3_10_1_CSV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/ps3.15-table-e3-10-1-safe-private.csv"
));
pub(crate) const E1_1A_CSV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/ps3.15-table-e1-1a-action-codes.csv"
));

/// An action code of Table E.1-1a, including the compound codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    X,
    Z,
    D,
    K,
    C,
    U,
    ZD,
    XZ,
    XD,
    XZD,
    XZU,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s.trim() {
            "X" => Action::X,
            "Z" => Action::Z,
            "D" => Action::D,
            "K" => Action::K,
            "C" => Action::C,
            "U" => Action::U,
            "Z/D" => Action::ZD,
            "X/Z" => Action::XZ,
            "X/D" => Action::XD,
            "X/Z/D" => Action::XZD,
            "X/Z/U*" => Action::XZU,
            _ => return None,
        })
    }
    pub fn code(self) -> &'static str {
        match self {
            Action::X => "X",
            Action::Z => "Z",
            Action::D => "D",
            Action::K => "K",
            Action::C => "C",
            Action::U => "U",
            Action::ZD => "Z/D",
            Action::XZ => "X/Z",
            Action::XD => "X/D",
            Action::XZD => "X/Z/D",
            Action::XZU => "X/Z/U*",
        }
    }
}

/// The ten option columns of Table E.1-1, in the table's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileOption {
    RetainSafePrivate = 0,
    RetainUids = 1,
    RetainDeviceIdentity = 2,
    RetainInstitutionIdentity = 3,
    RetainPatientCharacteristics = 4,
    RetainLongitudinalFullDates = 5,
    RetainLongitudinalModifiedDates = 6,
    CleanDescriptors = 7,
    CleanStructuredContent = 8,
    CleanGraphics = 9,
}

impl ProfileOption {
    pub const ALL: [ProfileOption; 10] = [
        ProfileOption::RetainSafePrivate,
        ProfileOption::RetainUids,
        ProfileOption::RetainDeviceIdentity,
        ProfileOption::RetainInstitutionIdentity,
        ProfileOption::RetainPatientCharacteristics,
        ProfileOption::RetainLongitudinalFullDates,
        ProfileOption::RetainLongitudinalModifiedDates,
        ProfileOption::CleanDescriptors,
        ProfileOption::CleanStructuredContent,
        ProfileOption::CleanGraphics,
    ];
    /// CID 7050 code value and meaning.
    pub fn cid7050(self) -> (&'static str, &'static str) {
        match self {
            ProfileOption::RetainSafePrivate => ("113111", "Retain Safe Private Option"),
            ProfileOption::RetainUids => ("113110", "Retain UIDs Option"),
            ProfileOption::RetainDeviceIdentity => ("113109", "Retain Device Identity Option"),
            ProfileOption::RetainInstitutionIdentity => {
                ("113112", "Retain Institution Identity Option")
            }
            ProfileOption::RetainPatientCharacteristics => {
                ("113108", "Retain Patient Characteristics Option")
            }
            ProfileOption::RetainLongitudinalFullDates => (
                "113106",
                "Retain Longitudinal Temporal Information Full Dates Option",
            ),
            ProfileOption::RetainLongitudinalModifiedDates => (
                "113107",
                "Retain Longitudinal Temporal Information Modified Dates Option",
            ),
            ProfileOption::CleanDescriptors => ("113105", "Clean Descriptors Option"),
            ProfileOption::CleanStructuredContent => ("113104", "Clean Structured Content Option"),
            ProfileOption::CleanGraphics => ("113103", "Clean Graphics Option"),
        }
    }
}

/// How a row's tag column matches tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagPattern {
    Exact(Tag),
    /// `(50xx,xxxx)`: even groups 5000-501E, any element.
    Curve,
    /// `(60xx,eeee)`: even groups 6000-601E with this element.
    Overlay(u16),
    /// `(gggg,eeee) where gggg is odd`.
    Private,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub pattern: TagPattern,
    pub retired: bool,
    pub in_std_comp_iod: bool,
    pub basic: Action,
    pub options: [Option<Action>; 10],
}

impl Row {
    pub fn option(&self, o: ProfileOption) -> Option<Action> {
        self.options[o as usize]
    }
}

pub struct Table {
    pub rows: Vec<Row>,
    exact: HashMap<Tag, usize>,
    curve: Option<usize>,
    overlay: HashMap<u16, usize>,
    private: Option<usize>,
    /// (group, creator upper-case trimmed, low element byte)
    safe_private: HashSet<(u16, String, u8)>,
    pub action_codes: Vec<(String, String)>,
}

/// Minimal RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF/LF).
pub(crate) fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else {
            match c {
                '"' => in_quotes = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\r' => {}
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                    any = false;
                }
                _ => field.push(c),
            }
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn parse_hex16(s: &str) -> Option<u16> {
    u16::from_str_radix(s, 16).ok()
}

fn parse_pattern(tag: &str) -> Option<TagPattern> {
    let t = tag.trim();
    if t.contains("odd") {
        return Some(TagPattern::Private);
    }
    let inner = t.strip_prefix('(')?.strip_suffix(')')?;
    let (g, e) = inner.split_once(',')?;
    if g.eq_ignore_ascii_case("50xx") {
        return Some(TagPattern::Curve);
    }
    if g.eq_ignore_ascii_case("60xx") {
        return Some(TagPattern::Overlay(parse_hex16(e)?));
    }
    Some(TagPattern::Exact(Tag(parse_hex16(g)?, parse_hex16(e)?)))
}

fn build() -> Table {
    let mut rows = Vec::new();
    let mut exact = HashMap::new();
    let mut curve = None;
    let mut overlay = HashMap::new();
    let mut private = None;
    for (i, r) in parse_csv(E1_1_CSV).into_iter().enumerate() {
        if i == 0 || r.len() < 15 {
            continue;
        }
        let pattern =
            parse_pattern(&r[1]).unwrap_or_else(|| panic!("E.1-1 row {i}: bad tag column"));
        let basic = Action::parse(&r[4]).unwrap_or_else(|| panic!("E.1-1 row {i}: bad action"));
        let mut options = [None; 10];
        for (k, o) in options.iter_mut().enumerate() {
            *o = Action::parse(&r[5 + k]);
        }
        let idx = rows.len();
        match pattern {
            TagPattern::Exact(t) => {
                exact.insert(t, idx);
            }
            TagPattern::Curve => curve = Some(idx),
            TagPattern::Overlay(e) => {
                overlay.insert(e, idx);
            }
            TagPattern::Private => private = Some(idx),
        }
        rows.push(Row {
            name: r[0].clone(),
            pattern,
            retired: r[2] == "Y",
            in_std_comp_iod: r[3] == "Y",
            basic,
            options,
        });
    }
    let mut safe_private = HashSet::new();
    for (i, r) in parse_csv(E3_10_1_CSV).into_iter().enumerate() {
        if i == 0 || r.len() < 2 {
            continue;
        }
        let t = r[0].trim().trim_start_matches('(').trim_end_matches(')');
        let Some((g, e)) = t.split_once(',') else {
            continue;
        };
        let (Some(g), Some(low)) = (
            parse_hex16(g),
            e.get(2..4).and_then(|x| u8::from_str_radix(x, 16).ok()),
        ) else {
            continue;
        };
        safe_private.insert((g, normalize_creator(&r[1]), low));
    }
    let action_codes = parse_csv(E1_1A_CSV)
        .into_iter()
        .skip(1)
        .filter(|r| r.len() >= 2)
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    Table {
        rows,
        exact,
        curve,
        overlay,
        private,
        safe_private,
        action_codes,
    }
}

pub(crate) fn normalize_creator(s: &str) -> String {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_ascii_uppercase()
}

/// The parsed tables (parsed on first use).
pub fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(build)
}

impl Table {
    /// Row for a tag: exact rows first, then the overlay/curve/private pattern rows.
    pub fn lookup(&self, tag: Tag) -> Option<&Row> {
        if let Some(&i) = self.exact.get(&tag) {
            return Some(&self.rows[i]);
        }
        let g = tag.group();
        if g % 2 == 1 {
            return self.private.map(|i| &self.rows[i]);
        }
        if (0x5000..=0x501E).contains(&g) {
            return self.curve.map(|i| &self.rows[i]);
        }
        if (0x6000..=0x601E).contains(&g) {
            return self.overlay.get(&tag.element()).map(|&i| &self.rows[i]);
        }
        None
    }

    /// Is the private element `(group, creator block, low byte)` in Table E.3.10-1?
    pub fn is_safe_private(&self, group: u16, creator: &str, low: u8) -> bool {
        self.safe_private
            .contains(&(group, normalize_creator(creator), low))
    }

    pub fn safe_private_len(&self) -> usize {
        self.safe_private.len()
    }
}
