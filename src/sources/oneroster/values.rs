//! Tolerant readers for OneRoster CSV values (reference: oneroster.md §4.4, §9.4).

use chrono::NaiveDate;

use crate::domain::problem::quoted;

/// A value read with a remark worth a warning.
#[derive(Debug, PartialEq, Eq)]
pub struct Lenient<T> {
    pub value: T,
    pub warning: Option<&'static str>,
}

fn clean<T>(value: T) -> Lenient<T> {
    Lenient {
        value,
        warning: None,
    }
}

/// `true`/`TRUE`/`1`/`yes` and their opposites.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    let any = |words: [&str; 4]| words.iter().any(|w| w.eq_ignore_ascii_case(raw));
    if any(["true", "1", "yes", "t"]) {
        Ok(true)
    } else if any(["false", "0", "no", "f"]) {
        Ok(false)
    } else {
        Err(format!("{} is not a boolean (true or false)", quoted(raw)))
    }
}

/// `YYYY-MM-DD`; a date-time keeps its date; US `M/D/YYYY` is read with a warning.
pub fn parse_date(raw: &str) -> Result<Lenient<NaiveDate>, String> {
    if let Some(d) = iso_date(raw) {
        return Ok(clean(d));
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        if raw.len() == 10 {
            return Ok(clean(d));
        }
    }
    if raw.len() > 10 && raw.is_char_boundary(10) && matches!(raw.as_bytes()[10], b'T' | b' ') {
        if let Ok(d) = NaiveDate::parse_from_str(&raw[..10], "%Y-%m-%d") {
            return Ok(Lenient {
                value: d,
                warning: Some("a date-time where a date was expected: the date part was used"),
            });
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%m/%d/%Y") {
        return Ok(Lenient {
            value: d,
            warning: Some("US date format (M/D/YYYY): use YYYY-MM-DD"),
        });
    }
    Err(format!("{} is not a date (YYYY-MM-DD)", quoted(raw)))
}

/// Exactly `YYYY-MM-DD`, a real day: what nearly every date in a file is, read without chrono's
/// format parser (enrollments carry two dates a row). Anything else goes the long way.
fn iso_date(raw: &str) -> Option<NaiveDate> {
    let bytes = raw.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(number(&bytes[..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&bytes[5..7])?, number(&bytes[8..])?)
}

/// Checks a `dateLastModified`: the gateway does not keep it, but a malformed one is worth saying.
pub fn check_date_time(raw: &str) -> Option<&'static str> {
    if chrono::DateTime::parse_from_rfc3339(raw).is_ok() {
        return None;
    }
    if chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S").is_ok()
        || chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
    {
        return Some("dateLastModified has no time zone: read as UTC");
    }
    if parse_date(raw).is_ok() {
        return None;
    }
    Some("dateLastModified is not an ISO 8601 date-time")
}

/// `"a, b,,c"` → `"a,b,c"`; `None` when nothing is left.
pub fn normalize_list(raw: &str) -> Option<String> {
    let items: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        None
    } else {
        Some(items.join(","))
    }
}

/// Matches an enumerated value case-insensitively, returning the canonical spelling. OneRoster
/// 1.2 also allows `ext:` extension values, kept verbatim.
pub fn parse_enum(
    raw: &str,
    allowed: &[&'static str],
    allow_ext: bool,
) -> Result<Lenient<String>, String> {
    if let Some(exact) = allowed.iter().find(|a| **a == raw) {
        return Ok(clean(exact.to_string()));
    }
    if let Some(folded) = allowed.iter().find(|a| a.eq_ignore_ascii_case(raw)) {
        return Ok(Lenient {
            value: folded.to_string(),
            warning: Some("value in a different letter case"),
        });
    }
    if allow_ext {
        if let Some(ext) = raw.strip_prefix("ext:") {
            if !ext.is_empty()
                && ext
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            {
                return Ok(clean(raw.to_string()));
            }
        }
    }
    Err(format!(
        "{} is not one of {}",
        quoted(raw),
        allowed.join(", ")
    ))
}

/// `active`, `tobedeleted`, blank (bulk files leave it blank), or 1.0's `inactive`.
pub fn parse_status(raw: &str) -> Result<Lenient<bool>, String> {
    match raw.to_ascii_lowercase().as_str() {
        "" | "active" => Ok(clean(false)),
        "tobedeleted" => Ok(clean(true)),
        "inactive" => Ok(Lenient {
            value: true,
            warning: Some("status \"inactive\" (OneRoster 1.0) read as tobedeleted"),
        }),
        _ => Err(format!(
            "{} is not a status (active or tobedeleted)",
            quoted(raw)
        )),
    }
}

/// A sourcedId: not empty, not absurdly long, no control characters.
pub fn check_sourced_id(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("sourcedId is empty".into());
    }
    if raw.len() > 1024 {
        return Err(format!(
            "sourcedId is {} bytes long (at most 1024)",
            raw.len()
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err("sourcedId contains control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_the_spellings_real_exports_use() {
        let table = [
            ("true", Ok(true)),
            ("TRUE", Ok(true)),
            ("1", Ok(true)),
            ("False", Ok(false)),
            ("0", Ok(false)),
            ("YeS", Ok(true)),
            ("t", Ok(true)),
            ("No", Ok(false)),
            ("F", Ok(false)),
            (" true", Err(())),
            ("truee", Err(())),
            ("", Err(())),
        ];
        for (raw, want) in table {
            assert_eq!(
                parse_bool(raw).map_err(|_| ()),
                want.map_err(|_: ()| ()),
                "{raw}"
            );
        }
        assert!(parse_bool("maybe").unwrap_err().contains("maybe"));
    }

    #[test]
    fn dates_are_iso_with_lenient_fallbacks() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            parse_date("2023-08-14").unwrap(),
            Lenient {
                value: d("2023-08-14"),
                warning: None
            }
        );
        let dt = parse_date("2023-08-14T00:00:00Z").unwrap();
        assert_eq!(dt.value, d("2023-08-14"));
        assert!(dt.warning.is_some());
        let us = parse_date("1/05/2023").unwrap();
        assert_eq!(us.value, d("2023-01-05"));
        assert!(us.warning.is_some());
        for bad in [
            "2023-02-30",
            "14.08.2023",
            "2023-8-1x",
            "",
            "2023-08-14junk",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iso_dates_read_as_chrono_reads_them() {
        for raw in [
            "2024-02-29",
            "2023-02-29",
            "0000-01-01",
            "9999-12-31",
            "2023-13-01",
            "2023-00-10",
            "2023-01-00",
            "2023-01-32",
            "2023-1-015",
            "+202-01-01",
            "2023/01/01",
            "2023-01-1x",
            "20230-1-01",
            "-202-01-01",
        ] {
            // The short way reads a subset of what chrono reads (a signed year is left to it),
            // and reads it alike; with the long way behind it, the result is chrono's.
            let chrono = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok();
            if let Some(date) = iso_date(raw) {
                assert_eq!(Some(date), chrono, "{raw}");
            }
            assert_eq!(parse_date(raw).ok().map(|d| d.value), chrono, "{raw}");
        }
    }

    #[test]
    fn enums_match_case_insensitively_and_say_so() {
        let types = ["homeroom", "scheduled"];
        assert_eq!(
            parse_enum("scheduled", &types, false).unwrap().warning,
            None
        );
        let folded = parse_enum("Scheduled", &types, false).unwrap();
        assert_eq!(folded.value, "scheduled");
        assert!(folded.warning.is_some());
        assert!(parse_enum("lecture", &types, false)
            .unwrap_err()
            .contains("homeroom, scheduled"));
        assert_eq!(
            parse_enum("ext:tutor", &types, true).unwrap().value,
            "ext:tutor"
        );
        assert!(parse_enum("ext:tutor", &types, false).is_err());
        assert!(parse_enum("ext:", &types, true).is_err());
    }

    #[test]
    fn lists_are_trimmed_and_empty_items_dropped() {
        assert_eq!(normalize_list(" a, b ,,c ").as_deref(), Some("a,b,c"));
        assert_eq!(normalize_list(" , "), None);
    }

    #[test]
    fn statuses_include_blank_and_legacy_inactive() {
        assert!(!parse_status("").unwrap().value);
        assert!(!parse_status("Active").unwrap().value);
        assert!(parse_status("tobedeleted").unwrap().value);
        assert!(parse_status("inactive").unwrap().warning.is_some());
        assert!(parse_status("deleted").is_err());
    }

    #[test]
    fn date_last_modified_without_zone_is_a_warning_not_an_error() {
        assert_eq!(check_date_time("2017-09-27T10:57:52.000Z"), None);
        assert_eq!(check_date_time("2017-09-27"), None);
        assert!(check_date_time("2017-09-27 10:57:52").is_some());
        assert!(check_date_time("yesterday").is_some());
    }

    #[test]
    fn sourced_ids_reject_empty_huge_and_control_characters() {
        assert!(check_sourced_id("stu-1").is_ok());
        assert!(check_sourced_id("").is_err());
        assert!(check_sourced_id(&"x".repeat(1025)).is_err());
        assert!(check_sourced_id("a\u{7}b").is_err());
    }
}
