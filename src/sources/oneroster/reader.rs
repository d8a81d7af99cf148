//! Reads one OneRoster CSV file into records, row by row: tolerant where real exports differ,
//! strict where it matters, and never holding more than one row.

use std::io::{BufReader, Read};

use super::columns::{columns, CsvColumn, Version, ALIASES};
use super::fields::RecordFields;
use super::records::{Limits, Records, Row};
use crate::config::ImportSettings;
use crate::domain::problem::{Problem, ProblemLog};
use crate::domain::records::{RecordKind, SourceRecord};

/// Where a header column goes.
enum Slot {
    /// A known column, with its place among the record's values ([`CsvColumn::place`]).
    Known(CsvColumn, Option<usize>),
    Extra(String),
    Ignored,
}

pub struct FileReader<'a> {
    pub kind: RecordKind,
    pub version: Version,
    /// File name for messages.
    pub file: &'a str,
    pub limits: &'a ImportSettings,
}

impl FileReader<'_> {
    /// Reads every row, handing each good record to `emit` (which returns false to stop).
    /// Returns the number of data rows read.
    pub fn read(
        &self,
        reader: &mut dyn Read,
        log: &mut ProblemLog,
        mut emit: impl FnMut(SourceRecord) -> bool,
    ) -> u64 {
        let mut csv = Records::new(
            BufReader::with_capacity(64 << 10, reader),
            Limits {
                max_record_bytes: self.limits.max_record_bytes,
                max_columns: self.limits.max_columns,
            },
        );
        let mut record = csv::StringRecord::new();
        match csv.read(&mut record) {
            Ok(Some(_)) => {}
            Ok(None) => {
                log.error(Problem::new(
                    self.file,
                    Some(1),
                    None,
                    "the file is empty: it needs at least a header row",
                ));
                return 0;
            }
            Err(e) => {
                let field = e.field().map(|i| format!("column {}", i + 1));
                log.error(Problem::new(
                    self.file,
                    Some(e.line()),
                    field.as_deref(),
                    format!("unreadable header: {e}"),
                ));
                return 0;
            }
        }
        let Some(slots) = self.map_header(&record, log) else {
            return 0;
        };
        let mut rows = 0;
        loop {
            let (line, row) = match csv.read_row() {
                Ok(Some(read)) => read,
                Ok(None) => break,
                Err(e) => {
                    let field = e.field().map(|i| slot_name(&slots, i));
                    log.error(Problem::new(
                        self.file,
                        Some(e.line()),
                        field.as_deref(),
                        e.to_string(),
                    ));
                    if e.is_recoverable() && !log.full() {
                        continue;
                    }
                    break;
                }
            };
            if row.len() == 1 && row.get(0) == Some("") {
                continue; // a blank line
            }
            rows += 1;
            if let Some(parsed) = self.parse_row(row, line, &slots, log) {
                if !emit(parsed) {
                    break;
                }
            }
            if log.full() {
                break;
            }
        }
        rows
    }

    fn map_header(&self, header: &csv::StringRecord, log: &mut ProblemLog) -> Option<Vec<Slot>> {
        let known = columns(self.kind);
        let mut slots = Vec::with_capacity(header.len());
        let mut seen: Vec<&'static str> = Vec::new();
        let mut unnamed = Vec::new();
        let mut ok = true;
        for (i, raw) in header.iter().enumerate() {
            let name = if i == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            if name.is_empty() {
                unnamed.push(i + 1);
                slots.push(Slot::Ignored);
                continue;
            }
            let canonical = ALIASES
                .iter()
                .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
                .map(|(alias, to)| {
                    log.warn(Problem::new(
                        self.file,
                        Some(1),
                        Some(name),
                        format!("read as {to} ({alias} is a legacy or misspelt name)"),
                    ));
                    *to
                })
                .unwrap_or(name);
            match known
                .iter()
                .find(|c| c.header.eq_ignore_ascii_case(canonical))
            {
                Some(c) => {
                    if c.header != canonical {
                        log.warn(Problem::new(
                            self.file,
                            Some(1),
                            Some(name),
                            format!("header differs in letter case from {}", c.header),
                        ));
                    }
                    if seen.contains(&c.header) {
                        log.error(Problem::new(
                            self.file,
                            Some(1),
                            Some(c.header),
                            "the column appears twice",
                        ));
                        ok = false;
                    }
                    seen.push(c.header);
                    slots.push(Slot::Known(*c, c.place(self.kind)));
                }
                None => {
                    if !name.starts_with("metadata.") && !name.starts_with("ext_") {
                        log.warn(Problem::new(
                            self.file,
                            Some(1),
                            Some(name),
                            "unknown column: kept as an extension field",
                        ));
                    }
                    slots.push(Slot::Extra(name.to_string()));
                }
            }
        }
        if !unnamed.is_empty() {
            // One warning for them all, naming a few: one per column would repeat itself.
            log.warn(Problem::new(
                self.file,
                Some(1),
                None,
                format!(
                    "{} with no header ignored ({})",
                    plural(unnamed.len(), "column"),
                    listed(&unnamed, 5)
                ),
            ));
        }
        for c in &known {
            if c.is_required(self.version) && !seen.contains(&c.header) {
                log.error(Problem::new(
                    self.file,
                    Some(1),
                    Some(c.header),
                    "a required column is missing",
                ));
                ok = false;
            }
        }
        ok.then_some(slots)
    }

    fn parse_row(
        &self,
        record: Row<'_>,
        line: u64,
        slots: &[Slot],
        log: &mut ProblemLog,
    ) -> Option<SourceRecord> {
        let file = self.file;
        // Extra trailing fields are tolerated only when empty (trailing commas).
        let extra_fields =
            record.len() > slots.len() && record.iter().skip(slots.len()).any(|f| !f.is_empty());
        if extra_fields || record.len() < slots.len() {
            let message = format!(
                "the row has {} fields, the header {}",
                record.len(),
                slots.len()
            );
            log.error(Problem::new(file, Some(line), None, message));
            return None;
        }
        let mut fields = RecordFields::new(
            self.kind,
            self.version,
            self.limits,
            |field: Option<&str>, message: String| Problem::new(file, Some(line), field, message),
        );
        for (slot, raw) in slots.iter().zip(record.iter()) {
            let known = match slot {
                Slot::Known(c, _) => Some(c.header),
                _ => None,
            };
            if !fields.admit(known, raw, log) {
                continue;
            }
            match slot {
                Slot::Ignored => {}
                Slot::Extra(name) => fields.extension(name, raw),
                Slot::Known(c, place) => fields.value_at(c, *place, c.header, raw, log),
            }
        }
        fields.finish(line)
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The first `at_most` numbers, then "…" if there are more.
fn listed(numbers: &[usize], at_most: usize) -> String {
    let mut text: Vec<String> = numbers.iter().take(at_most).map(usize::to_string).collect();
    if numbers.len() > at_most {
        text.push("…".into());
    }
    text.join(", ")
}

/// How a field is named in problems: its header, or its position when it has none (the name is
/// input, so [`Problem`] shortens it).
fn slot_name(slots: &[Slot], index: usize) -> String {
    match slots.get(index) {
        Some(Slot::Known(c, _)) => c.header.to_string(),
        Some(Slot::Extra(name)) => name.clone(),
        _ => format!("column {}", index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::Value;

    const USERS_1_1: &str = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,givenName,familyName";

    fn read(kind: RecordKind, version: Version, text: &str) -> (Vec<SourceRecord>, ProblemLog) {
        let limits = ImportSettings::default();
        let reader = FileReader {
            kind,
            version,
            file: "f.csv",
            limits: &limits,
        };
        let mut log = ProblemLog::new(100);
        let mut out = Vec::new();
        reader.read(&mut text.as_bytes(), &mut log, |r| {
            out.push(r);
            true
        });
        (out, log)
    }

    fn users(rows: &str) -> (Vec<SourceRecord>, ProblemLog) {
        read(
            RecordKind::Users,
            Version::V1_1,
            &format!("{USERS_1_1}\n{rows}"),
        )
    }

    fn value<'a>(r: &'a SourceRecord, column: &str) -> &'a Value {
        &r.values[r.kind.column_index(column).unwrap()]
    }

    #[test]
    fn tolerated_variations_read_to_the_same_record() {
        let canonical = users("u1,active,,true,s1,student,un,Ann,Lee\n").0.remove(0);
        let variants = [
            format!("\u{feff}{USERS_1_1}\r\nu1,active,,true,s1,student,un,Ann,Lee\r\n"),
            format!(
                "{}\nu1,active,,true,s1,student,un,Ann,Lee\n",
                USERS_1_1.to_uppercase().replace("SOURCEDID", "SourcedId")
            ),
            format!("{USERS_1_1}\n  u1 , active ,, TRUE , s1 ,Student, un ,Ann , Lee \n"),
            format!("{USERS_1_1}\nu1,,,1,s1,STUDENT,un,Ann,Lee\n\n"),
            format!("{USERS_1_1}\nu1,active,2024-01-01T00:00:00Z,true,s1,student,un,Ann,Lee\n"),
        ];
        for text in variants {
            let (records, log) = read(RecordKind::Users, Version::V1_1, &text);
            assert!(!log.has_errors(), "{text:?}: {log:?}");
            assert_eq!(records.len(), 1, "{text:?}");
            assert_eq!(records[0].values, canonical.values, "{text:?}");
            assert_eq!(
                records[0].content_hash(),
                canonical.content_hash(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn extension_columns_are_kept_and_passwords_dropped() {
        let text = format!(
            "{USERS_1_1},password,metadata.x,custom\nu1,,,true,s1,student,un,Ann,Lee,hunter2,1,\n"
        );
        let (records, log) = read(RecordKind::Users, Version::V1_1, &text);
        assert!(!log.has_errors());
        assert_eq!(records[0].extra.as_deref(), Some(r#"{"metadata.x":"1"}"#));
        assert!(!format!("{records:?}").contains("hunter2"));
        let (_, warnings) = log.into_parts();
        assert!(warnings
            .iter()
            .any(|w| w.problem.field.as_deref() == Some("custom")));
    }

    #[test]
    fn strict_rules_name_the_line_and_field() {
        // (rows, line, field, message part)
        let table = [
            (
                "u1,,,maybe,s1,student,un,A,B",
                2,
                Some("enabledUser"),
                "not a boolean",
            ),
            ("u1,,,true,s1,wizard,un,A,B", 2, Some("role"), "not one of"),
            (
                "u1,deleted,,true,s1,student,un,A,B",
                2,
                Some("status"),
                "not a status",
            ),
            ("u1,,,true,s1,student", 2, None, "the row has 6 fields"),
            (
                "u1,,,true,s1,student,un,A,B,extra",
                2,
                None,
                "the row has 10 fields",
            ),
            (",,,true,s1,student,un,A,B", 2, Some("sourcedId"), "empty"),
            (
                "ok,,,true,s1,student,un,A,B\nu2,,,true,,student,un,A,B",
                3,
                Some("orgSourcedIds"),
                "required value is empty",
            ),
            (
                "\"u1,,,true,s1,student,un,A,B",
                2,
                None,
                "the row has 1 fields",
            ),
        ];
        for (rows, line, field, message) in table {
            let (_, log) = users(rows);
            let (errors, _) = log.into_parts();
            assert!(
                errors.iter().any(|e| e.line() == Some(line)
                    && e.field.as_deref() == field
                    && e.message.contains(message)),
                "{rows:?}: {errors:?}"
            );
        }
    }

    #[test]
    fn headers_missing_required_columns_or_repeating_one_are_refused() {
        let (_, log) = read(
            RecordKind::Users,
            Version::V1_1,
            "sourcedId,enabledUser,username,givenName,familyName\n",
        );
        let (errors, _) = log.into_parts();
        let missing: Vec<_> = errors.iter().filter_map(|e| e.field.clone()).collect();
        assert_eq!(missing, ["orgSourcedIds", "role"]);
        assert!(errors.iter().all(|e| e.line() == Some(1)));
        // The same header is fine for 1.2, where role and orgs moved to roles.csv.
        let (_, log) = read(
            RecordKind::Users,
            Version::V1_2,
            "sourcedId,enabledUser,username,givenName,familyName\n",
        );
        assert!(!log.has_errors());
        let (_, log) = read(
            RecordKind::Orgs,
            Version::V1_1,
            "sourcedId,name,type,Name\n",
        );
        assert!(log.has_errors());
    }

    #[test]
    fn lists_and_dates_are_normalized() {
        let text = "sourcedId,title,courseSourcedId,classType,schoolSourcedId,termSourcedIds,periods\nc1,T,k,scheduled,s,\" t1 , t2 \",\"1,2\"\n";
        let (records, log) = read(RecordKind::Classes, Version::V1_1, text);
        assert!(!log.has_errors(), "{log:?}");
        assert_eq!(
            value(&records[0], "term_sourced_ids"),
            &Value::Text("t1,t2".into())
        );
        let text = "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role,beginDate,endDate\ne1,c,s,u,student,8/1/2024,2025-06-14\n";
        let (records, log) = read(RecordKind::Enrollments, Version::V1_1, text);
        assert!(!log.has_errors());
        assert_eq!(
            value(&records[0], "begin_date"),
            &Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 8, 1).unwrap())
        );
    }

    #[test]
    fn lines_are_numbered_as_an_editor_shows_them_whatever_the_line_ending() {
        let enrollments =
            "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role,beginDate,endDate";
        // (rows joined by the line ending, file kind, line and field of the one error)
        let table: [(&[&str], RecordKind, u64, &str); 3] = [
            (
                &[
                    enrollments,
                    "e1,c,s,u,student,2024-08-01,",
                    "e2,c,s,u,student,2024-08-01,",
                    "e3,c,s,u,student,2024-08-01,",
                    "e4,c,s,u,student,2024-13-45,",
                ],
                RecordKind::Enrollments,
                5,
                "beginDate",
            ),
            (
                &[
                    USERS_1_1,
                    "u1,,,true,s1,student,un,\"Ann",
                    "Marie\",Lee",
                    "",
                    "u2,,,maybe,s1,student,un,A,B",
                ],
                RecordKind::Users,
                5,
                "enabledUser",
            ),
            (
                &[
                    USERS_1_1,
                    "u1,,,true,s1,student,un,\"A",
                    "",
                    "B\",Lee",
                    "u2,,,true,s1,student,un,\"Ann\",Lee",
                    "u3,,,true,s1,wizard,un,A,B",
                ],
                RecordKind::Users,
                6,
                "role",
            ),
        ];
        for (rows, kind, line, field) in table {
            for ending in ["\n", "\r\n", "\r"] {
                let text = rows.join(ending) + ending;
                let (records, log) = read(kind, Version::V1_1, &text);
                let (errors, _) = log.into_parts();
                assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
                assert_eq!(errors[0].line(), Some(line), "{text:?}: {errors:?}");
                assert_eq!(errors[0].field.as_deref(), Some(field), "{text:?}");
                assert_eq!(records[0].line, 2, "{text:?}");
            }
        }
    }

    #[test]
    fn oversized_rows_and_headers_are_refused_naming_line_and_field() {
        let limits = ImportSettings {
            max_record_bytes: 4096,
            max_columns: 20,
            ..ImportSettings::default()
        };
        let unclosed = format!(
            "{USERS_1_1}\nu1,,,true,s1,student,un,A,B\nu2,,,true,\"s1{}",
            "\n".repeat(10_000)
        );
        let wide = format!("{USERS_1_1}{}\n", ",".repeat(100));
        // (text, line, field, message part)
        let table = [
            (unclosed, 3, Some("orgSourcedIds"), "longer than 4096 bytes"),
            (wide, 1, Some("column 21"), "more than 20 fields"),
        ];
        for (text, line, field, message) in table {
            let reader = FileReader {
                kind: RecordKind::Users,
                version: Version::V1_1,
                file: "users.csv",
                limits: &limits,
            };
            let mut log = ProblemLog::new(100);
            reader.read(&mut text.as_bytes(), &mut log, |_| true);
            let (errors, _) = log.into_parts();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].line(), Some(line), "{errors:?}");
            assert_eq!(errors[0].field.as_deref(), field, "{errors:?}");
            assert!(errors[0].message.contains(message), "{errors:?}");
        }
    }

    #[test]
    fn columns_without_a_header_make_one_warning() {
        let text = format!("{USERS_1_1},,x,,,\nu1,,,true,s1,student,un,A,B,,,,,\n");
        let (records, log) = read(RecordKind::Users, Version::V1_1, &text);
        assert_eq!(records.len(), 1);
        let (_, warnings) = log.into_parts();
        let unnamed: Vec<_> = warnings
            .iter()
            .filter(|w| w.problem.message.contains("no header"))
            .collect();
        assert_eq!(unnamed.len(), 1, "{warnings:?}");
        assert_eq!(
            unnamed[0].problem.message,
            "4 columns with no header ignored (10, 12, 13, 14)"
        );
    }
}
