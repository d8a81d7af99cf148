//! Errors and warnings about input, each saying where: a file and line (1 = header), or a
//! request and record (`GET /users`, its offset in the collection, its sourcedId); and the field.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Longest file name, field name and message a problem keeps. File and field names and some
/// messages echo the input, and a run report must stay small whatever the input was.
const MAX_FILE_CHARS: usize = 200;
const MAX_FIELD_CHARS: usize = 100;
const MAX_MESSAGE_CHARS: usize = 500;
/// Longest prefix of a value quoted in a message.
const MAX_QUOTED_CHARS: usize = 40;
/// Distinct warnings a log keeps unless told otherwise.
pub const DEFAULT_MAX_WARNINGS: usize = 100;

/// `text` cut to at most `max` characters, the cut marked with "…".
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if text[end..].chars().nth(1).is_some() => format!("{}…", &text[..end]),
        _ => text.to_string(),
    }
}

/// A value quoted for a message, as `{:?}` would, but only its first characters.
pub fn quoted(value: &str) -> String {
    let mut out = format!("{:?}", shorten(value, MAX_QUOTED_CHARS));
    if out.ends_with("…\"") {
        // Keep the cut visible outside the quotes: the value does not end with "…".
        out.truncate(out.len() - "…\"".len());
        out.push_str("\"…");
    }
    out
}

/// Where a problem is: in a file (a CSV bundle), or in what a request returned (a REST pull).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Location {
    File {
        /// The file, or `*` for the run as a whole.
        file: String,
        /// 1 = the header row.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
    },
    Record {
        /// `GET /users`: the request, its path relative to the connection's base URL.
        endpoint: String,
        /// The record's position in the collection (what `offset=` would fetch it first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(default, rename = "sourcedId", skip_serializing_if = "Option::is_none")]
        sourced_id: Option<String>,
    },
}

impl Location {
    /// A place in what a request returned.
    pub fn record(
        endpoint: impl Into<String>,
        offset: Option<u64>,
        sourced_id: Option<&str>,
    ) -> Self {
        Location::Record {
            endpoint: shorten(&endpoint.into(), MAX_FILE_CHARS),
            offset,
            sourced_id: sourced_id.map(|id| shorten(id, MAX_FIELD_CHARS)),
        }
    }

    /// The file or the endpoint: what warnings are folded by, with the field and message.
    pub fn source(&self) -> &str {
        match self {
            Location::File { file, .. } => file,
            Location::Record { endpoint, .. } => endpoint,
        }
    }
}

impl std::fmt::Display for Location {
    /// `users.csv:12`, as editors print locations; `GET /users (offset 200, sourcedId "u1")`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File { file, line } => {
                write!(f, "{file}")?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                }
                Ok(())
            }
            Location::Record {
                endpoint,
                offset,
                sourced_id,
            } => {
                write!(f, "{endpoint}")?;
                match (offset, sourced_id) {
                    (Some(o), Some(id)) => write!(f, " (offset {o}, sourcedId {})", quoted(id)),
                    (Some(o), None) => write!(f, " (offset {o})"),
                    (None, Some(id)) => write!(f, " (sourcedId {})", quoted(id)),
                    (None, None) => Ok(()),
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(flatten)]
    pub at: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(
        file: impl Into<String>,
        line: Option<u64>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Problem::at(
            Location::File {
                file: shorten(&file.into(), MAX_FILE_CHARS),
                line,
            },
            field,
            message,
        )
    }

    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Problem::new(file, None, None, message)
    }

    /// A problem at any location.
    pub fn at(at: Location, field: Option<&str>, message: impl Into<String>) -> Self {
        Problem {
            at,
            field: field.map(|f| shorten(f, MAX_FIELD_CHARS)),
            message: shorten(&message.into(), MAX_MESSAGE_CHARS),
        }
    }

    /// The CSV line, when the problem is about one.
    pub fn line(&self) -> Option<u64> {
        match self.at {
            Location::File { line, .. } => line,
            Location::Record { .. } => None,
        }
    }
}

impl std::fmt::Display for Problem {
    /// `users.csv:12: givenName: …`, as editors and compilers print locations.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.at)?;
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A warning, with how often it occurred (the first occurrence's line is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    #[serde(flatten)]
    pub problem: Problem,
    pub occurrences: u64,
}

/// Collects problems: errors up to a cap (then only counted), warnings folded by what they say
/// up to a cap of distinct ones (then only counted), so that a log's size is bounded.
#[derive(Debug, Default)]
pub struct ProblemLog {
    cap: usize,
    warning_cap: usize,
    errors: Vec<Problem>,
    errors_not_listed: u64,
    warnings: Vec<Warning>,
    warnings_not_listed: u64,
    warning_index: HashMap<(String, Option<String>, String), usize>,
}

impl ProblemLog {
    /// A log listing at most `cap` errors and [`DEFAULT_MAX_WARNINGS`] distinct warnings.
    pub fn new(cap: usize) -> Self {
        ProblemLog {
            cap: cap.max(1),
            warning_cap: DEFAULT_MAX_WARNINGS,
            ..Default::default()
        }
    }

    /// Lists at most `cap` distinct warnings (0 lists none; all are still counted).
    pub fn with_warning_cap(mut self, cap: usize) -> Self {
        self.warning_cap = cap;
        self
    }

    pub fn error(&mut self, problem: Problem) {
        if self.errors.len() < self.cap {
            self.errors.push(problem);
        } else {
            self.errors_not_listed += 1;
        }
    }

    pub fn warn(&mut self, problem: Problem) {
        self.warn_times(problem, 1);
    }

    /// One warning that happened `occurrences` times (a source that counted them itself).
    pub fn warn_times(&mut self, problem: Problem, occurrences: u64) {
        let key = (
            problem.at.source().to_string(),
            problem.field.clone(),
            problem.message.clone(),
        );
        match self.warning_index.get(&key) {
            Some(&i) => self.warnings[i].occurrences += occurrences,
            None if self.warnings.len() < self.warning_cap => {
                self.warning_index.insert(key, self.warnings.len());
                self.warnings.push(Warning {
                    problem,
                    occurrences,
                });
            }
            None => self.warnings_not_listed += occurrences,
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.len() as u64 + self.errors_not_listed
    }

    /// Is there room for more listed errors? (lets producers stop early on hopeless input)
    pub fn full(&self) -> bool {
        self.errors.len() >= self.cap
    }

    pub fn merge(&mut self, other: ProblemLog) {
        for e in other.errors {
            self.error(e);
        }
        self.errors_not_listed += other.errors_not_listed;
        for w in other.warnings {
            self.warn_times(w.problem, w.occurrences);
        }
        self.warnings_not_listed += other.warnings_not_listed;
    }

    /// Errors and warnings, each list closed by a line counting those not listed.
    pub fn into_parts(self) -> (Vec<Problem>, Vec<Warning>) {
        let mut errors = self.errors;
        if self.errors_not_listed > 0 {
            errors.push(Problem::file(
                "*",
                format!("{} more errors not listed", self.errors_not_listed),
            ));
        }
        let mut warnings = self.warnings;
        if self.warnings_not_listed > 0 {
            warnings.push(Warning {
                problem: Problem::file(
                    "*",
                    format!(
                        "{} more warnings not listed (a report lists {} distinct ones)",
                        self.warnings_not_listed, self.warning_cap
                    ),
                ),
                occurrences: self.warnings_not_listed,
            });
        }
        (errors, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_print_as_file_line_field_message() {
        let p = Problem::new("users.csv", Some(12), Some("givenName"), "is empty");
        assert_eq!(p.to_string(), "users.csv:12: givenName: is empty");
        assert_eq!(
            Problem::file("manifest.csv", "missing").to_string(),
            "manifest.csv: missing"
        );
    }

    #[test]
    fn problems_in_fetched_records_name_the_request_offset_and_sourced_id() {
        let p = Problem::at(
            Location::record("GET /users", Some(200), Some("u1")),
            Some("givenName"),
            "is empty",
        );
        assert_eq!(
            p.to_string(),
            "GET /users (offset 200, sourcedId \"u1\"): givenName: is empty"
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"endpoint": "GET /users", "offset": 200, "sourcedId": "u1",
                "field": "givenName", "message": "is empty"})
        );
        assert_eq!(serde_json::from_value::<Problem>(json).unwrap(), p);
        let file = Problem::new("users.csv", Some(3), None, "bad");
        let json = serde_json::to_value(&file).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"file": "users.csv", "line": 3, "message": "bad"})
        );
        assert_eq!(serde_json::from_value::<Problem>(json).unwrap(), file);
    }

    #[test]
    fn errors_past_the_cap_are_counted_not_listed() {
        let mut log = ProblemLog::new(2);
        for i in 0..5 {
            log.error(Problem::new("f", Some(i), None, "bad"));
        }
        assert_eq!(log.error_count(), 5);
        let (errors, _) = log.into_parts();
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[2].message, "3 more errors not listed");
    }

    #[test]
    fn repeated_warnings_fold_into_one_with_a_count() {
        let mut log = ProblemLog::new(10);
        for line in 2..6 {
            log.warn(Problem::new(
                "users.csv",
                Some(line),
                Some("role"),
                "case differs",
            ));
        }
        let (_, warnings) = log.into_parts();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].occurrences, 4);
        assert_eq!(warnings[0].problem.line(), Some(2));
    }

    #[test]
    fn distinct_warnings_past_the_cap_are_counted_not_listed() {
        let mut log = ProblemLog::new(10).with_warning_cap(3);
        for column in 0..1000 {
            log.warn(Problem::new(
                "users.csv",
                Some(1),
                Some(&format!("x{column}")),
                "unknown column",
            ));
        }
        // Warnings already listed keep counting.
        log.warn(Problem::new(
            "users.csv",
            Some(1),
            Some("x0"),
            "unknown column",
        ));
        let mut other = ProblemLog::new(10).with_warning_cap(1);
        other.warn(Problem::file("a.csv", "one"));
        other.warn(Problem::file("a.csv", "two"));
        log.merge(other);
        let (_, warnings) = log.into_parts();
        assert_eq!(warnings.len(), 4);
        assert_eq!(warnings[0].occurrences, 2);
        let last = &warnings[3];
        assert_eq!(last.occurrences, 997 + 1 + 1);
        assert!(
            last.problem
                .message
                .starts_with("999 more warnings not listed"),
            "{last:?}"
        );
    }

    #[test]
    fn text_that_echoes_input_is_cut_short() {
        // (text, cut to, expected)
        let table = [
            ("abc", 3, "abc"),
            ("abcd", 3, "ab…"),
            ("ééééé", 4, "ééé…"),
            ("", 3, ""),
        ];
        for (text, max, expected) in table {
            assert_eq!(shorten(text, max), expected, "{text:?}");
        }
        let long = "y".repeat(100_000);
        let p = Problem::new(
            &long,
            Some(2),
            Some(&long),
            format!("{} is bad", quoted(&long)),
        );
        assert!(p.at.source().chars().count() <= MAX_FILE_CHARS);
        assert!(p.field.as_ref().unwrap().chars().count() <= MAX_FIELD_CHARS);
        assert!(p
            .message
            .starts_with(&format!("\"{}\"… is bad", "y".repeat(39))));
        assert_eq!(quoted("short"), "\"short\"");
    }
}
