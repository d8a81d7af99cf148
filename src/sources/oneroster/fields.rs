//! What a valid OneRoster value is, field by field, whatever carried it: the CSV reader and the
//! REST mapping both build their records here, each saying where a problem is (a file and line,
//! or a request, offset and sourcedId) and how the field is called in its input.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::columns::{CsvColumn, Target, Version};
use super::values;
use crate::config::ImportSettings;
use crate::domain::problem::{Problem, ProblemLog};
use crate::domain::records::{Column, ColumnType, RecordKind, RecordStatus, SourceRecord, Value};

/// One record being built from its fields. `problem` makes a problem at the record's place from
/// a field name and a message.
pub struct RecordFields<'a, P> {
    kind: RecordKind,
    version: Version,
    limits: &'a ImportSettings,
    problem: P,
    descriptor: &'static [Column],
    values: Vec<Value>,
    extra: serde_json::Map<String, serde_json::Value>,
    sourced_id: Option<String>,
    status: RecordStatus,
    modified: Option<DateTime<Utc>>,
    ok: bool,
}

impl<'a, P: Fn(Option<&str>, String) -> Problem> RecordFields<'a, P> {
    pub fn new(kind: RecordKind, version: Version, limits: &'a ImportSettings, problem: P) -> Self {
        let descriptor = kind.columns();
        RecordFields {
            kind,
            version,
            limits,
            problem,
            descriptor,
            values: vec![Value::Null; descriptor.len()],
            extra: serde_json::Map::new(),
            sourced_id: None,
            status: RecordStatus::Active,
            modified: None,
            ok: true,
        }
    }

    fn fail(&mut self, log: &mut ProblemLog, field: Option<&str>, message: String) {
        log.error((self.problem)(field, message));
        self.ok = false;
    }

    /// A warning at this record.
    pub fn warn(&self, log: &mut ProblemLog, field: Option<&str>, message: &str) {
        log.warn((self.problem)(field, message.to_string()));
    }

    /// Refuses what nothing legitimate has: a value past the size limit, or a NUL byte (which
    /// PostgreSQL cannot store in text). Returns whether the value may be read.
    pub fn admit(&mut self, field: Option<&str>, raw: &str, log: &mut ProblemLog) -> bool {
        let refusal = if raw.len() > self.limits.max_field_bytes {
            format!(
                "the value is {} bytes long (at most {})",
                raw.len(),
                self.limits.max_field_bytes
            )
        } else if raw.contains('\0') {
            "the value contains a NUL character".to_string()
        } else {
            return true;
        };
        self.fail(log, field, refusal);
        false
    }

    /// An extension field (`metadata.*`, vendor fields), kept verbatim; blank ones are dropped.
    pub fn extension(&mut self, name: &str, raw: &str) {
        if !raw.is_empty() {
            self.extra
                .insert(name.to_string(), serde_json::Value::String(raw.to_string()));
        }
    }

    /// A known field's value, blank when the input left it empty. `field` names it in problems.
    pub fn value(&mut self, column: &CsvColumn, field: &str, raw: &str, log: &mut ProblemLog) {
        let place = column.place(self.kind);
        self.value_at(column, place, field, raw, log);
    }

    /// [`Self::value`] with the column's place among the record's values already found (by
    /// [`CsvColumn::place`]): a CSV file finds it once, from its header, instead of once a row.
    pub fn value_at(
        &mut self,
        column: &CsvColumn,
        place: Option<usize>,
        field: &str,
        raw: &str,
        log: &mut ProblemLog,
    ) {
        let field = Some(field);
        match column.target {
            Target::SourcedId => match values::check_sourced_id(raw) {
                Ok(()) => self.sourced_id = Some(raw.to_string()),
                Err(m) => self.fail(log, field, m),
            },
            Target::Status => match values::parse_status(raw) {
                Ok(s) => {
                    if let Some(w) = s.warning {
                        self.warn(log, field, w);
                    }
                    if s.value {
                        self.status = RecordStatus::ToBeDeleted;
                    }
                }
                Err(m) => self.fail(log, field, m),
            },
            Target::DateLastModified => {
                if !raw.is_empty() {
                    let (when, warning) = date_last_modified(raw);
                    if let Some(w) = warning {
                        self.warn(log, field, w);
                    }
                    self.modified = when;
                }
            }
            Target::Dropped => {}
            Target::Column(_) => {
                if raw.is_empty() {
                    self.required(column, field, "a required value is empty", log);
                    return;
                }
                let index = place.expect("columns map onto the descriptor");
                match parse_value(self.descriptor[index].ty, column, raw, self.version) {
                    Ok((value, warning)) => {
                        if let Some(w) = warning {
                            self.warn(log, field, w);
                        }
                        self.values[index] = value;
                    }
                    Err(m) => self.fail(log, field, m),
                }
            }
        }
    }

    /// A known field the input did not carry at all (a JSON record without it).
    pub fn absent(&mut self, column: &CsvColumn, field: &str, log: &mut ProblemLog) {
        if column.target == Target::SourcedId {
            self.fail(log, Some(field), "sourcedId is missing".into());
        } else if matches!(column.target, Target::Column(_)) {
            self.required(column, Some(field), "a required field is missing", log);
        }
    }

    /// A required value that is not there: an error, or a warning where real exports leave it
    /// blank (names, titles).
    fn required(
        &mut self,
        column: &CsvColumn,
        field: Option<&str>,
        message: &str,
        log: &mut ProblemLog,
    ) {
        if column.is_required(self.version) {
            if column.blank_ok {
                self.warn(log, field, message);
            } else {
                self.fail(log, field, message.to_string());
            }
        }
    }

    /// Reports a problem at this record that no single value of [`Self::value`] covers (a
    /// malformed reference, a list item of the wrong type); the record is refused.
    pub fn refuse(
        &mut self,
        field: Option<&str>,
        message: impl Into<String>,
        log: &mut ProblemLog,
    ) {
        self.fail(log, field, message.into());
    }

    /// The record's `dateLastModified`, when it had a readable one (zone-less values as UTC).
    pub fn modified(&self) -> Option<DateTime<Utc>> {
        self.modified
    }

    /// The record, unless a field was refused or it has no sourcedId. `line` is its place: a CSV
    /// line, or an offset in a collection.
    pub fn finish(self, line: u64) -> Option<SourceRecord> {
        let sourced_id = self.sourced_id?;
        if !self.ok {
            return None;
        }
        let extra = self.extra;
        Some(SourceRecord {
            kind: self.kind,
            sourced_id,
            line,
            status: self.status,
            values: self.values,
            extra: (!extra.is_empty()).then(|| serde_json::Value::Object(extra).to_string()),
        })
    }
}

fn parse_value(
    ty: ColumnType,
    column: &CsvColumn,
    raw: &str,
    version: Version,
) -> Result<(Value, Option<&'static str>), String> {
    if let Some(allowed) = column.values {
        let parsed = values::parse_enum(raw, allowed, version == Version::V1_2)?;
        return Ok((Value::Text(parsed.value), parsed.warning));
    }
    match ty {
        ColumnType::Text => {
            if column.header == "schoolYear"
                && !(raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_digit()))
            {
                return Ok((
                    Value::Text(raw.to_string()),
                    Some("schoolYear is not a 4-digit year"),
                ));
            }
            Ok((Value::Text(raw.to_string()), None))
        }
        ColumnType::List => Ok((
            values::normalize_list(raw)
                .map(Value::Text)
                .unwrap_or(Value::Null),
            None,
        )),
        ColumnType::Bool => values::parse_bool(raw).map(|b| (Value::Bool(b), None)),
        ColumnType::Date => values::parse_date(raw).map(|d| (Value::Date(d.value), d.warning)),
    }
}

/// Reads a `dateLastModified`: the gateway does not store it, but a pull's next cursor is the
/// newest one seen, and a malformed one is worth saying. Zone-less values are read as UTC (real
/// exports omit the zone); a date alone as its midnight.
pub fn date_last_modified(raw: &str) -> (Option<DateTime<Utc>>, Option<&'static str>) {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return (Some(t.with_timezone(&Utc)), None);
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, format) {
            return (
                Some(t.and_utc()),
                Some("dateLastModified has no time zone: read as UTC"),
            );
        }
    }
    if let Ok(d) = values::parse_date(raw) {
        return (d.value.and_hms_opt(0, 0, 0).map(|t| t.and_utc()), None);
    }
    (None, Some("dateLastModified is not an ISO 8601 date-time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::oneroster::columns::columns;

    #[test]
    fn date_last_modified_reads_zones_and_assumes_utc_without_one() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // (raw, instant, warns)
        let table = [
            (
                "2017-09-27T10:57:52.000Z",
                Some(utc("2017-09-27T10:57:52Z")),
                false,
            ),
            (
                "2017-09-27T12:57:52+02:00",
                Some(utc("2017-09-27T10:57:52Z")),
                false,
            ),
            (
                "2017-09-27 10:57:52",
                Some(utc("2017-09-27T10:57:52Z")),
                true,
            ),
            (
                "2017-09-27T10:57:52",
                Some(utc("2017-09-27T10:57:52Z")),
                true,
            ),
            ("2017-09-27", Some(utc("2017-09-27T00:00:00Z")), false),
            ("yesterday", None, true),
        ];
        for (raw, when, warns) in table {
            let (got, warning) = date_last_modified(raw);
            assert_eq!(got, when, "{raw}");
            assert_eq!(warning.is_some(), warns, "{raw}");
            // The CSV reader's own check agrees on what deserves a warning.
            assert_eq!(values::check_date_time(raw).is_some(), warns, "{raw}");
        }
    }

    #[test]
    fn problems_carry_the_callers_place_and_field_name() {
        let limits = ImportSettings::default();
        let mut log = ProblemLog::new(10);
        let mut fields = RecordFields::new(
            RecordKind::Orgs,
            Version::V1_1,
            &limits,
            |field: Option<&str>, message: String| {
                Problem::at(
                    crate::domain::problem::Location::record("GET /orgs", Some(7), Some("o1")),
                    field,
                    message,
                )
            },
        );
        let cols = columns(RecordKind::Orgs);
        let find = |h: &str| *cols.iter().find(|c| c.header == h).unwrap();
        fields.value(&find("sourcedId"), "sourcedId", "o1", &mut log);
        fields.value(&find("type"), "type", "galaxy", &mut log);
        fields.absent(&find("name"), "name", &mut log);
        assert!(fields.finish(7).is_none());
        let (errors, warnings) = log.into_parts();
        assert_eq!(
            errors[0].to_string(),
            "GET /orgs (offset 7, sourcedId \"o1\"): type: \"galaxy\" is not one of department, district, local, national, school, state"
        );
        assert_eq!(warnings[0].problem.field.as_deref(), Some("name"));
        assert_eq!(warnings[0].problem.message, "a required field is missing");
    }
}
