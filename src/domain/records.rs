//! Roster record types as the gateway stores them: one descriptor per OneRoster type, naming
//! its columns, their value types and the records they reference. The sync engine and the store
//! are written once against these descriptors.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub enum RecordKind {
    #[serde(rename = "orgs")]
    Orgs,
    #[serde(rename = "academicSessions")]
    AcademicSessions,
    #[serde(rename = "courses")]
    Courses,
    #[serde(rename = "classes")]
    Classes,
    #[serde(rename = "users")]
    Users,
    #[serde(rename = "userProfiles")]
    UserProfiles,
    #[serde(rename = "roles")]
    Roles,
    #[serde(rename = "enrollments")]
    Enrollments,
}

/// How a kind arrives in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The complete set: live records missing from it are removed.
    Bulk,
    /// Only the rows given; `tobedeleted` removes.
    Delta,
}

/// How a column's text is stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Date,
    Bool,
    /// A comma-joined list, stored as text.
    List,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name in the store.
    pub name: &'static str,
    pub ty: ColumnType,
    /// The record kind this column holds sourcedIds of.
    pub references: Option<RecordKind>,
}

impl Column {
    /// The OneRoster field name (`term_sourced_ids` → `termSourcedIds`), for messages.
    pub fn field_name(&self) -> String {
        match self.name {
            "org_type" | "session_type" => return "type".into(),
            "is_primary" => return "primary".into(),
            _ => {}
        }
        let mut out = String::with_capacity(self.name.len());
        let mut upper = false;
        for c in self.name.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    }
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Text,
        references: None,
    }
}
const fn date(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Date,
        references: None,
    }
}
const fn boolean(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Bool,
        references: None,
    }
}
const fn list(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::List,
        references: None,
    }
}
const fn reference(name: &'static str, kind: RecordKind) -> Column {
    Column {
        name,
        ty: ColumnType::Text,
        references: Some(kind),
    }
}
const fn list_of(name: &'static str, kind: RecordKind) -> Column {
    Column {
        name,
        ty: ColumnType::List,
        references: Some(kind),
    }
}

use RecordKind::*;

const ORG_COLUMNS: &[Column] = &[
    text("name"),
    text("org_type"),
    text("identifier"),
    reference("parent_sourced_id", Orgs),
];
const SESSION_COLUMNS: &[Column] = &[
    text("title"),
    text("session_type"),
    date("start_date"),
    date("end_date"),
    reference("parent_sourced_id", AcademicSessions),
    text("school_year"),
];
const COURSE_COLUMNS: &[Column] = &[
    reference("school_year_sourced_id", AcademicSessions),
    text("title"),
    text("course_code"),
    list("grades"),
    reference("org_sourced_id", Orgs),
    list("subjects"),
    list("subject_codes"),
];
const CLASS_COLUMNS: &[Column] = &[
    text("title"),
    list("grades"),
    reference("course_sourced_id", Courses),
    text("class_code"),
    text("class_type"),
    text("location"),
    reference("school_sourced_id", Orgs),
    list_of("term_sourced_ids", AcademicSessions),
    list("subjects"),
    list("subject_codes"),
    list("periods"),
];
const USER_COLUMNS: &[Column] = &[
    boolean("enabled_user"),
    list_of("org_sourced_ids", Orgs),
    text("role"),
    text("username"),
    text("user_ids"),
    text("given_name"),
    text("family_name"),
    text("middle_name"),
    text("identifier"),
    text("email"),
    text("sms"),
    text("phone"),
    list("agent_sourced_ids"),
    list("grades"),
    text("user_master_identifier"),
    text("preferred_given_name"),
    text("preferred_middle_name"),
    text("preferred_family_name"),
    reference("primary_org_sourced_id", Orgs),
    text("pronouns"),
];
const USER_PROFILE_COLUMNS: &[Column] = &[
    reference("user_sourced_id", Users),
    text("profile_type"),
    text("vendor_id"),
    text("application_id"),
    text("description"),
    text("credential_type"),
    text("username"),
];
const ROLE_COLUMNS: &[Column] = &[
    reference("user_sourced_id", Users),
    text("role_type"),
    text("role"),
    date("begin_date"),
    date("end_date"),
    reference("org_sourced_id", Orgs),
    text("user_profile_sourced_id"),
];
const ENROLLMENT_COLUMNS: &[Column] = &[
    reference("class_sourced_id", Classes),
    reference("school_sourced_id", Orgs),
    reference("user_sourced_id", Users),
    text("role"),
    boolean("is_primary"),
    date("begin_date"),
    date("end_date"),
];

impl RecordKind {
    /// Dependency order: a kind only references kinds before it (or itself).
    pub const ALL: [RecordKind; 8] = [
        Orgs,
        AcademicSessions,
        Courses,
        Classes,
        Users,
        UserProfiles,
        Roles,
        Enrollments,
    ];

    /// The OneRoster name: file stem, manifest key, and key in run counts.
    pub fn oneroster_name(self) -> &'static str {
        match self {
            Orgs => "orgs",
            AcademicSessions => "academicSessions",
            Courses => "courses",
            Classes => "classes",
            Users => "users",
            UserProfiles => "userProfiles",
            Roles => "roles",
            Enrollments => "enrollments",
        }
    }

    /// The OneRoster singleton envelope key (`users` → `user`).
    pub fn singular_name(self) -> &'static str {
        match self {
            Orgs => "org",
            AcademicSessions => "academicSession",
            Courses => "course",
            Classes => "class",
            Users => "user",
            UserProfiles => "userProfile",
            Roles => "role",
            Enrollments => "enrollment",
        }
    }

    pub fn from_oneroster_name(name: &str) -> Option<RecordKind> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.oneroster_name().eq_ignore_ascii_case(name))
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Orgs => ORG_COLUMNS,
            AcademicSessions => SESSION_COLUMNS,
            Courses => COURSE_COLUMNS,
            Classes => CLASS_COLUMNS,
            Users => USER_COLUMNS,
            UserProfiles => USER_PROFILE_COLUMNS,
            Roles => ROLE_COLUMNS,
            Enrollments => ENROLLMENT_COLUMNS,
        }
    }

    pub fn column_index(self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c.name == name)
    }
}

/// A typed column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Text(String),
    Date(NaiveDate),
    Bool(bool),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// `active` or `tobedeleted` (OneRoster 1.0's `inactive` means the latter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    Active,
    ToBeDeleted,
}

/// One record as a source delivers it, ready for the sync engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub kind: RecordKind,
    pub sourced_id: String,
    /// Where it came from (a CSV line, 1 = header) for error messages.
    pub line: u64,
    pub status: RecordStatus,
    /// In `kind.columns()` order.
    pub values: Vec<Value>,
    /// Extension and unknown fields (`metadata.*`), kept verbatim as a JSON object.
    pub extra: Option<String>,
}

impl SourceRecord {
    /// A fingerprint of everything the gateway keeps of the record. `dateLastModified` is left
    /// out on purpose: re-exports that only touch it are not changes.
    pub fn content_hash(&self) -> i64 {
        // The bytes are put together first and hashed in one call: a call per value cost more
        // than the hashing itself.
        let room = 1
            + self
                .values
                .iter()
                .map(|v| match v {
                    Value::Text(s) => 9 + s.len(),
                    _ => 11,
                })
                .sum::<usize>()
            + self.extra.as_ref().map_or(0, |e| 1 + e.len());
        let mut bytes = Vec::with_capacity(room);
        bytes.push(self.status as u8);
        for value in &self.values {
            match value {
                Value::Null => bytes.push(0),
                Value::Text(s) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    bytes.extend_from_slice(s.as_bytes());
                }
                Value::Date(d) => {
                    bytes.push(2);
                    match iso_bytes(*d) {
                        Some(text) => bytes.extend_from_slice(&text),
                        None => bytes.extend_from_slice(d.to_string().as_bytes()),
                    }
                }
                Value::Bool(b) => bytes.extend_from_slice(&[3, *b as u8]),
            }
        }
        if let Some(extra) = &self.extra {
            bytes.push(4);
            bytes.extend_from_slice(extra.as_bytes());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        i64::from_le_bytes(first)
    }
}

/// A date as its `Display` writes it (`YYYY-MM-DD` for years 0 to 9999), without allocating:
/// hashing a record writes its dates this way, and a stored hash must not change.
fn iso_bytes(date: NaiveDate) -> Option<[u8; 10]> {
    let year = u32::try_from(date.year()).ok().filter(|&y| y <= 9999)?;
    let mut text = *b"0000-00-00";
    for (at, mut n, width) in [(0, year, 4), (5, date.month(), 2), (8, date.day(), 2)] {
        for place in (at..at + width).rev() {
            text[place] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    Some(text)
}

/// Enrollment roles that make a person a coach of the class's students.
pub const COACHING_ROLES: [&str; 2] = ["teacher", "aide"];
/// The enrollment role that is coached.
pub const COACHED_ROLE: &str = "student";

/// Does an enrollment still count on `today`? OneRoster end dates are exclusive; a district can
/// read them as the last day, inclusive.
pub fn enrollment_in_effect(
    end_date: Option<NaiveDate>,
    today: NaiveDate,
    end_inclusive: bool,
) -> bool {
    match end_date {
        None => true,
        Some(end) if end_inclusive => today <= end,
        Some(end) => today < end,
    }
}

/// The first day on which an enrollment with this end date no longer counts, as a cut-off: an
/// enrollment counts while `end_date >= cutoff`.
pub fn enrollment_cutoff(today: NaiveDate, end_inclusive: bool) -> NaiveDate {
    if end_inclusive {
        today
    } else {
        today.succ_opt().unwrap_or(today)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_hashed_as_their_display_text() {
        let display = |d: NaiveDate| d.to_string().into_bytes();
        for (y, m, d) in [
            (0, 1, 1),
            (7, 3, 9),
            (999, 12, 31),
            (2026, 7, 1),
            (9999, 12, 31),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(
                iso_bytes(date).map(Vec::from),
                Some(display(date)),
                "{date}"
            );
        }
        for y in [-1, 10000] {
            assert_eq!(
                iso_bytes(NaiveDate::from_ymd_opt(y, 1, 1).unwrap()),
                None,
                "{y}"
            );
        }
    }

    fn record(values: Vec<Value>) -> SourceRecord {
        SourceRecord {
            kind: Orgs,
            sourced_id: "o1".into(),
            line: 2,
            status: RecordStatus::Active,
            values,
            extra: None,
        }
    }

    #[test]
    fn kinds_only_reference_kinds_that_come_before_them() {
        for (i, kind) in RecordKind::ALL.iter().enumerate() {
            for col in kind.columns() {
                if let Some(target) = col.references {
                    let j = RecordKind::ALL.iter().position(|k| *k == target).unwrap();
                    assert!(j <= i, "{kind:?}.{} references {target:?}", col.name);
                }
            }
        }
    }

    #[test]
    fn content_hashes_stay_those_the_district_s_rows_were_stored_with() {
        // Live rows keep the hash they were written with: a different one would make every
        // record look changed at the next import. Values computed apart from this code (SHA-256
        // of status, then per value a tag, length and text, or the date's text, or the bool,
        // then the extension fields; the first 8 bytes, little-endian).
        let date = |y, m, d| Value::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        let mut first = record(vec![
            Value::Text("A".into()),
            Value::Null,
            date(2026, 7, 1),
            Value::Bool(true),
            Value::Text("é".into()),
        ]);
        first.extra = Some(r#"{"metadata.x":"1"}"#.into());
        let mut second = record(vec![
            Value::Null,
            date(-1, 1, 1),
            date(999, 12, 31),
            Value::Bool(false),
            Value::Text(String::new()),
        ]);
        second.status = RecordStatus::ToBeDeleted;
        assert_eq!(first.content_hash(), -4560919281486795484);
        assert_eq!(second.content_hash(), 1592485608153590837);
    }

    #[test]
    fn content_hash_changes_with_any_value_and_not_with_line() {
        let a = record(vec![Value::Text("A".into()), Value::Null]);
        let mut moved = a.clone();
        moved.line = 99;
        assert_eq!(a.content_hash(), moved.content_hash());
        let b = record(vec![Value::Text("B".into()), Value::Null]);
        assert_ne!(a.content_hash(), b.content_hash());
        // Shifting text between columns is a change, not a collision.
        let c = record(vec![Value::Text("AB".into()), Value::Text(String::new())]);
        let d = record(vec![Value::Text("A".into()), Value::Text("B".into())]);
        assert_ne!(c.content_hash(), d.content_hash());
        let mut with_extra = a.clone();
        with_extra.extra = Some(r#"{"metadata.x":"1"}"#.into());
        assert_ne!(a.content_hash(), with_extra.content_hash());
    }

    #[test]
    fn enrollments_end_on_their_end_date_as_the_district_reads_it() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let end_day = d("2024-06-14");
        let end = Some(end_day);
        assert!(enrollment_in_effect(end, d("2024-06-14"), true));
        assert!(!enrollment_in_effect(end, d("2024-06-15"), true));
        assert!(!enrollment_in_effect(end, d("2024-06-14"), false));
        assert!(enrollment_in_effect(end, d("2024-06-13"), false));
        assert!(enrollment_in_effect(None, d("2099-01-01"), false));
        // The cut-off used by the store agrees with the rule.
        for inclusive in [true, false] {
            for today in ["2024-06-13", "2024-06-14", "2024-06-15"] {
                let cutoff = enrollment_cutoff(d(today), inclusive);
                assert_eq!(
                    end_day >= cutoff,
                    enrollment_in_effect(end, d(today), inclusive)
                );
            }
        }
    }
}
