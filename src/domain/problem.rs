//! Errors and warnings about input, each saying where: file, line (1 = header), field.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
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
        Problem {
            file: file.into(),
            line,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Problem::new(file, None, None, message)
    }
}

impl std::fmt::Display for Problem {
    /// `users.csv:12: givenName: …`, as editors and compilers print locations.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
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

/// Collects problems: errors up to a cap (then only counted), warnings folded by what they say.
#[derive(Debug, Default)]
pub struct ProblemLog {
    cap: usize,
    errors: Vec<Problem>,
    errors_not_listed: u64,
    warnings: Vec<Warning>,
    warning_index: HashMap<(String, Option<String>, String), usize>,
}

impl ProblemLog {
    pub fn new(cap: usize) -> Self {
        ProblemLog {
            cap: cap.max(1),
            ..Default::default()
        }
    }

    pub fn error(&mut self, problem: Problem) {
        if self.errors.len() < self.cap {
            self.errors.push(problem);
        } else {
            self.errors_not_listed += 1;
        }
    }

    pub fn warn(&mut self, problem: Problem) {
        let key = (
            problem.file.clone(),
            problem.field.clone(),
            problem.message.clone(),
        );
        match self.warning_index.get(&key) {
            Some(&i) => self.warnings[i].occurrences += 1,
            None => {
                self.warning_index.insert(key, self.warnings.len());
                self.warnings.push(Warning {
                    problem,
                    occurrences: 1,
                });
            }
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
            for _ in 0..w.occurrences {
                self.warn(w.problem.clone());
            }
        }
    }

    /// Errors (with a closing line when some were not listed) and warnings.
    pub fn into_parts(self) -> (Vec<Problem>, Vec<Warning>) {
        let mut errors = self.errors;
        if self.errors_not_listed > 0 {
            errors.push(Problem::file(
                "*",
                format!("{} more errors not listed", self.errors_not_listed),
            ));
        }
        (errors, self.warnings)
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
        assert_eq!(warnings[0].problem.line, Some(2));
    }
}
