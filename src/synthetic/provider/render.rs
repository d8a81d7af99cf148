//! Records as OneRoster JSON, shaped per version the way real providers send them (reference
//! §4): GUIDRefs with absolute hrefs, 1.1 users with `role` and `orgs[]`, 1.2 users with
//! `roles[]`, `primaryOrg` and string booleans; optionally with the type drift real data has.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::domain::connection::OneRosterVersion;

use super::data::{Base, Record};

/// What the JSON of a record depends on besides the record.
#[derive(Debug, Clone)]
pub(super) struct RenderContext {
    pub(super) version: OneRosterVersion,
    /// `http://127.0.0.1:PORT/ims/oneroster/v1p1`, the prefix of every href.
    pub(super) base_url: String,
    pub(super) type_drift: bool,
}

/// `2026-08-01T12:00:00.000Z`: ISO 8601 in UTC with milliseconds, so that two changes in one
/// second still order.
pub(super) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl RenderContext {
    fn guid_ref(&self, collection: &str, kind: &str, sourced_id: &str) -> Value {
        json!({
            "href": format!("{}/{collection}/{sourced_id}", self.base_url),
            "sourcedId": sourced_id,
            "type": kind,
        })
    }

    /// Lists are arrays; drifting providers send one comma-joined string.
    fn list(&self, items: &[String]) -> Value {
        if self.type_drift {
            Value::String(items.join(","))
        } else {
            json!(items)
        }
    }

    /// 1.1 booleans are JSON booleans, 1.2 ones the strings "true"/"false"; drifting providers
    /// send 1/0 (1.1) or "TRUE"/"FALSE" (1.2).
    fn boolean(&self, value: bool) -> Value {
        match (self.version, self.type_drift) {
            (OneRosterVersion::V1_1, false) => Value::Bool(value),
            (OneRosterVersion::V1_1, true) => json!(u8::from(value)),
            (OneRosterVersion::V1_2, false) => json!(value.to_string()),
            (OneRosterVersion::V1_2, true) => json!(value.to_string().to_uppercase()),
        }
    }

    fn base(&self, base: &Base) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("sourcedId".into(), json!(base.sourced_id));
        out.insert("status".into(), json!(base.status.as_str()));
        out.insert(
            "dateLastModified".into(),
            json!(timestamp(base.date_last_modified)),
        );
        if let Some(metadata) = &base.metadata {
            out.insert("metadata".into(), Value::Object(metadata.clone()));
        }
        out
    }

    pub(super) fn render(&self, record: &Record) -> Value {
        let mut out = self.base(record.base());
        let mut put = |key: &str, value: Value| {
            out.insert(key.to_string(), value);
        };
        match record {
            Record::Org(o) => {
                put("name", json!(o.name));
                put("type", json!(o.org_type));
                put("identifier", json!(o.identifier));
                if let Some(parent) = &o.parent {
                    put("parent", self.guid_ref("orgs", "org", parent));
                }
            }
            Record::AcademicSession(s) => {
                put("title", json!(s.title));
                put("type", json!(s.session_type));
                put("startDate", json!(s.start_date.to_string()));
                put("endDate", json!(s.end_date.to_string()));
                if let Some(parent) = &s.parent {
                    put(
                        "parent",
                        self.guid_ref("academicSessions", "academicSession", parent),
                    );
                }
                let year = if self.type_drift {
                    json!(s.school_year)
                } else {
                    json!(s.school_year.to_string())
                };
                put("schoolYear", year);
            }
            Record::Course(c) => {
                put("title", json!(c.title));
                put("courseCode", json!(c.course_code));
                if let Some(year) = &c.school_year {
                    put(
                        "schoolYear",
                        self.guid_ref("academicSessions", "academicSession", year),
                    );
                }
                put("org", self.guid_ref("orgs", "org", &c.org));
                put("grades", self.list(&c.grades));
                put("subjects", self.list(&c.subjects));
                put("subjectCodes", self.list(&c.subject_codes));
            }
            Record::Class(c) => {
                put("title", json!(c.title));
                put("classCode", json!(c.class_code));
                put("classType", json!(c.class_type));
                put("location", json!(c.location));
                put("course", self.guid_ref("courses", "course", &c.course));
                put("school", self.guid_ref("orgs", "org", &c.school));
                let terms = c
                    .terms
                    .iter()
                    .map(|t| self.guid_ref("academicSessions", "academicSession", t))
                    .collect();
                put("terms", Value::Array(terms));
                put("grades", self.list(&c.grades));
                put("subjects", self.list(&c.subjects));
                put("subjectCodes", self.list(&c.subject_codes));
                put("periods", self.list(&c.periods));
            }
            Record::User(u) => {
                put("username", json!(u.username));
                put("enabledUser", self.boolean(u.enabled));
                put("givenName", json!(u.given_name));
                put("familyName", json!(u.family_name));
                put("email", json!(u.email));
                put("identifier", json!(u.identifier));
                let ids = u
                    .user_ids
                    .iter()
                    .map(|(kind, id)| json!({"type": kind, "identifier": id}))
                    .collect();
                put("userIds", Value::Array(ids));
                put("grades", self.list(&u.grades));
                let orgs = u.orgs.iter().map(|o| self.guid_ref("orgs", "org", o));
                match self.version {
                    OneRosterVersion::V1_1 => {
                        put("role", json!(u.role));
                        put("orgs", Value::Array(orgs.collect()));
                    }
                    OneRosterVersion::V1_2 => {
                        let roles = orgs
                            .enumerate()
                            .map(|(i, org)| {
                                let role_type = if i == 0 { "primary" } else { "secondary" };
                                json!({"roleType": role_type, "role": u.role, "org": org})
                            })
                            .collect();
                        put("roles", Value::Array(roles));
                        if let Some(first) = u.orgs.first() {
                            put("primaryOrg", self.guid_ref("orgs", "org", first));
                        }
                    }
                }
            }
            Record::Enrollment(e) => {
                put("user", self.guid_ref("users", "user", &e.user));
                put("class", self.guid_ref("classes", "class", &e.class));
                put("school", self.guid_ref("orgs", "org", &e.school));
                put("role", json!(e.role));
                if let Some(primary) = e.primary {
                    put("primary", self.boolean(primary));
                }
                if let Some(begin) = e.begin_date {
                    put("beginDate", json!(begin.to_string()));
                }
                if let Some(end) = e.end_date {
                    put("endDate", json!(end.to_string()));
                }
            }
        }
        Value::Object(out)
    }
}
