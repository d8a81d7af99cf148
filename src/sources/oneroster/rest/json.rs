//! Maps one JSON record of a OneRoster collection onto the fields of the CSV row it stands for,
//! then through [`fields`](super::super::fields), so that a record reads the same however it
//! arrived. Tolerates the type drift of real providers (oneroster.md §4.4): booleans as
//! `true`/`"TRUE"`/`1`, lists as arrays or comma-joined strings, `schoolYear` as a number,
//! `null` as absent, GUIDRefs without `href` or `type`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::super::columns::{columns, CsvColumn, Version};
use super::super::fields::RecordFields;
use super::super::values;
use crate::config::ImportSettings;
use crate::domain::problem::{Location, Problem, ProblemLog};
use crate::domain::records::{RecordKind, SourceRecord};

/// How a JSON field carries its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A string, number or boolean.
    Scalar,
    /// An array of scalars, or one comma-joined string.
    List,
    /// A GUIDRef, resolved by its `sourcedId` alone (a bare string is read as the sourcedId).
    Ref,
    /// An array of GUIDRefs, or a comma-joined string of sourcedIds.
    RefList,
    /// `[{type, identifier}]`, written `{type:identifier},…` as in CSV.
    UserIds,
    /// Known and not kept: passwords and credentials, child lists that repeat the children's
    /// `parent`, resources (not part of rosters).
    Drop,
}

use Shape::*;

/// A JSON field and the CSV column it stands for.
type Field = (&'static str, &'static str, Shape);

const BASE: &[Field] = &[
    ("sourcedId", "sourcedId", Scalar),
    ("status", "status", Scalar),
    ("dateLastModified", "dateLastModified", Scalar),
];
const ORGS: &[Field] = &[
    ("name", "name", Scalar),
    ("type", "type", Scalar),
    ("identifier", "identifier", Scalar),
    ("parent", "parentSourcedId", Ref),
    ("children", "", Drop),
];
const ACADEMIC_SESSIONS: &[Field] = &[
    ("title", "title", Scalar),
    ("type", "type", Scalar),
    ("startDate", "startDate", Scalar),
    ("endDate", "endDate", Scalar),
    ("parent", "parentSourcedId", Ref),
    ("schoolYear", "schoolYear", Scalar),
    ("children", "", Drop),
];
const COURSES: &[Field] = &[
    ("title", "title", Scalar),
    ("schoolYear", "schoolYearSourcedId", Ref),
    ("courseCode", "courseCode", Scalar),
    ("grades", "grades", List),
    ("subjects", "subjects", List),
    ("org", "orgSourcedId", Ref),
    ("subjectCodes", "subjectCodes", List),
    ("resources", "", Drop),
];
const CLASSES: &[Field] = &[
    ("title", "title", Scalar),
    ("classCode", "classCode", Scalar),
    ("classType", "classType", Scalar),
    ("location", "location", Scalar),
    ("grades", "grades", List),
    ("subjects", "subjects", List),
    ("course", "courseSourcedId", Ref),
    ("school", "schoolSourcedId", Ref),
    ("terms", "termSourcedIds", RefList),
    ("subjectCodes", "subjectCodes", List),
    ("periods", "periods", List),
    ("resources", "", Drop),
];
const USERS: &[Field] = &[
    ("username", "username", Scalar),
    ("userIds", "userIds", UserIds),
    ("enabledUser", "enabledUser", Scalar),
    ("givenName", "givenName", Scalar),
    ("familyName", "familyName", Scalar),
    ("middleName", "middleName", Scalar),
    ("role", "role", Scalar),
    ("identifier", "identifier", Scalar),
    ("email", "email", Scalar),
    ("sms", "sms", Scalar),
    ("phone", "phone", Scalar),
    ("agents", "agentSourcedIds", RefList),
    ("orgs", "orgSourcedIds", RefList),
    ("grades", "grades", List),
    ("password", "", Drop),
    ("userMasterIdentifier", "userMasterIdentifier", Scalar),
    ("preferredFirstName", "preferredGivenName", Scalar),
    ("preferredMiddleName", "preferredMiddleName", Scalar),
    ("preferredLastName", "preferredFamilyName", Scalar),
    ("primaryOrg", "primaryOrgSourcedId", Ref),
    ("pronouns", "pronouns", Scalar),
    // 1.2 roles become records of their own (see `roles`); profiles carry credentials.
    ("roles", "", Drop),
    ("userProfiles", "", Drop),
    ("resources", "", Drop),
];
const ENROLLMENTS: &[Field] = &[
    ("user", "userSourcedId", Ref),
    ("class", "classSourcedId", Ref),
    ("school", "schoolSourcedId", Ref),
    ("role", "role", Scalar),
    ("primary", "primary", Scalar),
    ("beginDate", "beginDate", Scalar),
    ("endDate", "endDate", Scalar),
];
/// The fields of a 1.2 `RoleDType` inside a user (its user and sourcedId are supplied).
const ROLES: &[Field] = &[
    ("roleType", "roleType", Scalar),
    ("role", "role", Scalar),
    ("org", "orgSourcedId", Ref),
    ("userProfile", "userProfileSourcedId", Ref),
    ("beginDate", "beginDate", Scalar),
    ("endDate", "endDate", Scalar),
];

fn specific(kind: RecordKind) -> &'static [Field] {
    match kind {
        RecordKind::Orgs => ORGS,
        RecordKind::AcademicSessions => ACADEMIC_SESSIONS,
        RecordKind::Courses => COURSES,
        RecordKind::Classes => CLASSES,
        RecordKind::Users => USERS,
        RecordKind::Enrollments => ENROLLMENTS,
        // Not pulled as collections: roles come inside users, profiles are not kept.
        RecordKind::Roles => ROLES,
        RecordKind::UserProfiles => &[],
    }
}

/// Columns the CSV binding requires but the JSON binding does not (oneroster.md §4.3): a JSON
/// record without them is complete, so their absence is not held against it.
fn required_in_json(kind: RecordKind, header: &str, version: Version) -> bool {
    !matches!(
        (kind, header, version),
        (RecordKind::Users, "enabledUser", Version::V1_1) | (RecordKind::Classes, "classType", _)
    )
}

/// A JSON field ready to map: its name, shape, and the column it fills (none for dropped ones).
#[derive(Debug, Clone, Copy)]
struct Entry {
    json: &'static str,
    shape: Shape,
    column: Option<CsvColumn>,
}

fn entries(kind: RecordKind, base: bool) -> Vec<Entry> {
    let csv = columns(kind);
    let table = if base { BASE } else { &[] };
    table
        .iter()
        .chain(specific(kind))
        .map(|&(json, header, shape)| Entry {
            json,
            shape,
            column: (shape != Drop).then(|| {
                *csv.iter()
                    .find(|c| c.header == header)
                    .expect("every mapped JSON field has a CSV column")
            }),
        })
        .collect()
}

/// Reads the records of one collection.
pub struct JsonRecords<'a> {
    kind: RecordKind,
    version: Version,
    /// `GET /users`, for problems.
    endpoint: &'a str,
    limits: &'a ImportSettings,
    entries: Vec<Entry>,
    role_entries: Vec<Entry>,
    /// The columns of a role record that come from its user: sourcedId, userSourcedId, status.
    role_base: [CsvColumn; 3],
}

/// A problem at a record of the collection.
fn at(
    endpoint: &str,
    offset: u64,
    sourced_id: Option<&str>,
    field: Option<&str>,
    message: String,
) -> Problem {
    Problem::at(
        Location::record(endpoint, Some(offset), sourced_id),
        field,
        message,
    )
}

impl<'a> JsonRecords<'a> {
    pub fn new(
        kind: RecordKind,
        version: Version,
        endpoint: &'a str,
        limits: &'a ImportSettings,
    ) -> Self {
        JsonRecords {
            kind,
            version,
            endpoint,
            limits,
            entries: entries(kind, true),
            role_entries: entries(RecordKind::Roles, false),
            role_base: {
                let roles = columns(RecordKind::Roles);
                ["sourcedId", "userSourcedId", "status"].map(|header| {
                    *roles
                        .iter()
                        .find(|c| c.header == header)
                        .expect("roles have this column")
                })
            },
        }
    }

    /// `GET /users`: the collection's name in problems.
    pub fn endpoint(&self) -> &str {
        self.endpoint
    }

    /// Maps the record at `offset` of the collection, handing each good record to `emit` (a
    /// 1.2 user gives one `Roles` record per role besides itself). Returns the record's
    /// `dateLastModified`, when readable.
    pub fn map(
        &self,
        record: &Json,
        offset: u64,
        log: &mut ProblemLog,
        mut emit: impl FnMut(SourceRecord),
    ) -> Option<DateTime<Utc>> {
        let Json::Object(object) = record else {
            log.error(at(
                self.endpoint,
                offset,
                None,
                None,
                format!("the record is {}, not a JSON object", kind_of(record)),
            ));
            return None;
        };
        let sourced_id = object
            .get("sourcedId")
            .and_then(|v| scalar(v).ok().flatten())
            .filter(|id| !id.is_empty())
            .map(|id| id.into_owned());
        let id = sourced_id.as_deref();
        let endpoint = self.endpoint;
        let mut fields = RecordFields::new(
            self.kind,
            self.version,
            self.limits,
            |field: Option<&str>, message: String| at(endpoint, offset, id, field, message),
        );
        self.fill(&self.entries, self.kind, object, "", &mut fields, log);
        let modified = fields.modified();
        if let Some(record) = fields.finish(offset) {
            emit(record);
        }
        if self.kind == RecordKind::Users && self.version == Version::V1_2 {
            if let (Some(user), Some(roles)) = (id, object.get("roles")) {
                self.roles(user, object, roles, offset, log, &mut emit);
            }
        }
        modified
    }

    /// A 1.2 user's `roles[]`, each a `Roles` record like a row of the CSV binding's
    /// roles.csv. JSON roles have no sourcedId of their own, so one is made from what
    /// identifies a role (its user, org and role, of which a user has one of each pair):
    /// stable from pull to pull, so an unchanged role stays unchanged and a dropped one
    /// is removed by the next full pull. (A delta cannot say a role was dropped from a user
    /// who stays: that waits for the next full pull, as any disappearance does.)
    fn roles(
        &self,
        user: &str,
        object: &Map<String, Json>,
        roles: &Json,
        offset: u64,
        log: &mut ProblemLog,
        emit: &mut impl FnMut(SourceRecord),
    ) {
        let endpoint = self.endpoint;
        let problem =
            |field: Option<&str>, message: String| at(endpoint, offset, Some(user), field, message);
        let roles = match roles {
            Json::Array(roles) => roles,
            Json::Null => return,
            other => {
                log.error(problem(
                    Some("roles"),
                    format!("roles is {}, not an array", kind_of(other)),
                ));
                return;
            }
        };
        // A user to be deleted takes its roles along.
        let deleted = object
            .get("status")
            .and_then(|v| scalar(v).ok().flatten())
            .is_some_and(|s| values::parse_status(&s).is_ok_and(|s| s.value));
        let [sourced_id, user_sourced_id, status] = &self.role_base;
        for (i, role) in roles.iter().enumerate() {
            let prefix = format!("/roles/{i}");
            let Json::Object(role) = role else {
                log.error(problem(
                    Some(&prefix),
                    format!("the role is {}, not a JSON object", kind_of(role)),
                ));
                continue;
            };
            let mut fields =
                RecordFields::new(RecordKind::Roles, self.version, self.limits, problem);
            let org = role.get("org").and_then(|org| match org {
                Json::Object(o) => o.get("sourcedId").and_then(|v| scalar(v).ok().flatten()),
                other => scalar(other).ok().flatten(),
            });
            let name = role.get("role").and_then(|v| scalar(v).ok().flatten());
            if let (Some(org), Some(name)) = (org, name) {
                let id = format!("{user}:{org}:{}", name.to_ascii_lowercase());
                if fields.admit(Some(&prefix), &id, log) {
                    fields.value(sourced_id, &prefix, &id, log);
                }
            }
            fields.value(user_sourced_id, "sourcedId", user, log);
            if deleted {
                fields.value(status, "status", "tobedeleted", log);
            }
            self.fill(
                &self.role_entries,
                RecordKind::Roles,
                role,
                &prefix,
                &mut fields,
                log,
            );
            if let Some(record) = fields.finish(offset) {
                emit(record);
            }
        }
    }

    /// Reads `object`'s fields into `fields`: known ones by `table`, `metadata` and unknown
    /// ones as extension fields; then says which required ones were missing. `prefix` is the
    /// JSON pointer of `object` inside the record (empty for the record itself).
    fn fill<P: Fn(Option<&str>, String) -> Problem>(
        &self,
        table: &[Entry],
        kind: RecordKind,
        object: &Map<String, Json>,
        prefix: &str,
        fields: &mut RecordFields<'_, P>,
        log: &mut ProblemLog,
    ) {
        let mut seen = vec![false; table.len()];
        for (key, value) in object {
            let Some(index) = table.iter().position(|e| e.json == key.as_str()) else {
                self.extension(key, value, prefix, fields, log);
                continue;
            };
            let entry = table[index];
            let Some(column) = entry.column else {
                continue;
            };
            let name: Cow<str> = if prefix.is_empty() {
                Cow::Borrowed(entry.json)
            } else {
                Cow::Owned(format!("{prefix}/{}", entry.json))
            };
            match text(entry.shape, value, &name) {
                Ok(Some(raw)) => {
                    seen[index] = true;
                    if fields.admit(Some(&name), &raw, log) {
                        fields.value(&column, &name, &raw, log);
                    }
                }
                Ok(None) => {}
                Err((field, message)) => {
                    seen[index] = true;
                    fields.refuse(Some(&field), message, log);
                }
            }
        }
        for (entry, seen) in table.iter().zip(seen) {
            let Some(column) = entry.column else { continue };
            if !seen && required_in_json(kind, column.header, self.version) {
                let name = if prefix.is_empty() {
                    entry.json.to_string()
                } else {
                    format!("{prefix}/{}", entry.json)
                };
                fields.absent(&column, &name, log);
            }
        }
    }

    /// Keeps a field the gateway has no column for, as the CSV reader keeps extra columns:
    /// `metadata` flattened to `metadata.<key>`, anything else under its own name (with a
    /// warning unless it is a declared extension, `ext_*`).
    fn extension<P: Fn(Option<&str>, String) -> Problem>(
        &self,
        key: &str,
        value: &Json,
        prefix: &str,
        fields: &mut RecordFields<'_, P>,
        log: &mut ProblemLog,
    ) {
        let pointer = format!("{prefix}/{key}");
        let field = if prefix.is_empty() { key } else { &pointer };
        if key == "metadata" {
            if let Json::Object(metadata) = value {
                for (name, value) in metadata {
                    let Some(raw) = verbatim(value) else { continue };
                    if fields.admit(Some(&format!("{pointer}/{name}")), &raw, log) {
                        fields.extension(&format!("metadata.{name}"), &raw);
                    }
                }
                return;
            }
        } else if !key.starts_with("ext_") {
            fields.warn(
                log,
                Some(field),
                "unknown field: kept as an extension field",
            );
        }
        let Some(raw) = verbatim(value) else { return };
        if fields.admit(Some(field), &raw, log) {
            fields.extension(key, &raw);
        }
    }
}

/// What kind of JSON value this is, for messages.
fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A scalar as the text a CSV cell would hold (trimmed, as the CSV reader trims); `None` for
/// `null`.
fn scalar(value: &Json) -> Result<Option<Cow<'_, str>>, String> {
    match value {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(Cow::Borrowed(s.trim()))),
        Json::Number(n) => Ok(Some(Cow::Owned(n.to_string()))),
        Json::Bool(b) => Ok(Some(Cow::Borrowed(if *b { "true" } else { "false" }))),
        other => Err(format!("expected a single value, not {}", kind_of(other))),
    }
}

/// An extension value as text: scalars as a CSV cell would hold them, anything else as JSON.
fn verbatim(value: &Json) -> Option<String> {
    match value {
        Json::Array(_) | Json::Object(_) => Some(value.to_string()),
        other => scalar(other).ok().flatten().map(Cow::into_owned),
    }
}

/// A GUIDRef's sourcedId: from `{sourcedId, href?, type?}`, or a bare string.
fn reference<'v>(value: &'v Json, pointer: &str) -> Result<Option<Cow<'v, str>>, (String, String)> {
    match value {
        Json::Object(o) => match o.get("sourcedId").map(scalar) {
            Some(Ok(Some(id))) => Ok(Some(id)),
            Some(Err(m)) => Err((format!("{pointer}/sourcedId"), m)),
            _ => Err((
                format!("{pointer}/sourcedId"),
                "a reference without a sourcedId".into(),
            )),
        },
        other => scalar(other).map_err(|m| (pointer.to_string(), m)),
    }
}

/// The text of a field as its CSV cell would hold it, `None` when it is absent (`null`), or
/// the field (a JSON pointer for a nested one) and what is wrong.
fn text<'v>(
    shape: Shape,
    value: &'v Json,
    name: &str,
) -> Result<Option<Cow<'v, str>>, (String, String)> {
    let pointer = || {
        if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        }
    };
    match (shape, value) {
        (Scalar | Drop, value) => scalar(value).map_err(|m| (name.to_string(), m)),
        (Ref, value) => reference(value, name),
        (List | RefList | UserIds, Json::Array(items)) => {
            let base = pointer();
            let mut out: Vec<Cow<str>> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{base}/{i}");
                let item = match shape {
                    RefList => reference(item, &at)?,
                    UserIds => Some(user_id(item, &at)?),
                    _ => scalar(item).map_err(|m| (at, m))?,
                };
                out.extend(item);
            }
            Ok(Some(Cow::Owned(out.join(","))))
        }
        (List | RefList | UserIds, value) => scalar(value).map_err(|m| (name.to_string(), m)),
    }
}

/// `{type, identifier}` → `{type:identifier}`, the CSV binding's form.
fn user_id<'v>(value: &'v Json, pointer: &str) -> Result<Cow<'v, str>, (String, String)> {
    let Json::Object(o) = value else {
        return scalar(value)
            .map_err(|m| (pointer.to_string(), m))?
            .ok_or_else(|| (pointer.to_string(), "an empty user id".into()));
    };
    let part = |name: &str| match o.get(name).map(scalar) {
        Some(Ok(Some(text))) if !text.is_empty() => Ok(text),
        Some(Err(m)) => Err((format!("{pointer}/{name}"), m)),
        _ => Err((
            format!("{pointer}/{name}"),
            format!("a user id without {name}"),
        )),
    };
    Ok(Cow::Owned(format!(
        "{{{}:{}}}",
        part("type")?,
        part("identifier")?
    )))
}
