//! DA / DT / TM parsing, shifting and truncation. Every function returns `None`
//! for a value it cannot parse; the caller must then apply the strictest action.

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parse exactly `YYYYMMDD` (a valid calendar date).
pub fn parse_da(s: &str) -> Option<(i64, i64, i64)> {
    let s = s.trim_matches(['\0', ' ']);
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let m: i64 = s[4..6].parse().ok()?;
    let d: i64 = s[6..8].parse().ok()?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some((y, m, d))
}

fn fmt_da(y: i64, m: i64, d: i64) -> Option<String> {
    if !(0..=9999).contains(&y) {
        return None;
    }
    Some(format!("{y:04}{m:02}{d:02}"))
}

/// Apply `f` to each backslash-separated value; `None` if any value fails.
/// Empty values stay empty.
pub fn map_multi(s: &str, f: impl Fn(&str) -> Option<String>) -> Option<String> {
    let s = s.trim_matches(['\0', ' ']);
    let mut out = Vec::new();
    for v in s.split('\\') {
        let v = v.trim();
        if v.is_empty() {
            out.push(String::new());
        } else {
            out.push(f(v)?);
        }
    }
    Some(out.join("\\"))
}

pub fn shift_da(s: &str, days: i64) -> Option<String> {
    let (y, m, d) = parse_da(s)?;
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + days);
    fmt_da(y, m, d)
}

/// DT: `YYYYMMDD` followed by an optional valid time/offset suffix, which is kept.
/// DT values with less than day precision cannot be shifted (None).
pub fn shift_dt(s: &str, days: i64) -> Option<String> {
    let s = s.trim_matches(['\0', ' ']);
    if s.len() < 8 || !s.is_char_boundary(8) {
        return None;
    }
    let rest = &s[8..];
    if !rest
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'+' || b == b'-')
    {
        return None;
    }
    Some(format!("{}{}", shift_da(&s[..8], days)?, rest))
}

pub fn year_only_da(s: &str) -> Option<String> {
    let (y, _, _) = parse_da(s)?;
    fmt_da(y, 1, 1)
}

/// DT: keep the year only (as `YYYY0101`, dropping the time and offset).
pub fn year_only_dt(s: &str) -> Option<String> {
    let s = s.trim_matches(['\0', ' ']);
    if s.len() < 4 || !s.as_bytes()[..4].iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'+' || b == b'-')
    {
        return None;
    }
    let y: i64 = s[..4].parse().ok()?;
    fmt_da(y, 1, 1)
}

/// A TM value is plausible (digits, optional colons of the old format, fraction).
pub fn valid_tm(s: &str) -> Option<String> {
    let s = s.trim_matches(['\0', ' ']);
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b':')
    {
        Some(s.to_string())
    } else {
        None
    }
}

/// Age string `nnnD|W|M|Y`: ages over 89 years become "090Y". `None` if unparseable.
pub fn cap_age(s: &str) -> Option<String> {
    let s = s.trim_matches(['\0', ' ']);
    if s.len() != 4 || !s.as_bytes()[..3].iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = s[..3].parse().ok()?;
    match &s[3..] {
        "Y" if n > 89 => Some("090Y".into()),
        "Y" | "M" | "W" | "D" => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn date_math() {
        assert_eq!(shift_da("20000301", -1).as_deref(), Some("20000229"));
        assert_eq!(shift_da("20210101", -365).as_deref(), Some("20200102"));
        assert_eq!(shift_da("20210230", 1), None);
        assert_eq!(shift_da("2021-01-01", 1), None);
        assert_eq!(
            shift_dt("20210101120000.5+0100", 1).as_deref(),
            Some("20210102120000.5+0100")
        );
        assert_eq!(shift_dt("2021", 1), None);
        assert_eq!(year_only_dt("2021").as_deref(), Some("20210101"));
        assert_eq!(year_only_da("19550607").as_deref(), Some("19550101"));
        assert_eq!(
            map_multi("20200101\\20200102", |v| shift_da(v, 1)).as_deref(),
            Some("20200102\\20200103")
        );
        assert_eq!(cap_age("095Y").as_deref(), Some("090Y"));
        assert_eq!(cap_age("045Y").as_deref(), Some("045Y"));
        assert_eq!(cap_age("4Y"), None);
        for z in [-800000i64, -1, 0, 1, 10957, 2932896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
