//! A roster pushed as one JSON document: the OneRoster REST collection envelopes side by side
//! (`{"orgs": […], "users": […], …}`), with the push's `mode` (`bulk` or `delta`, default delta)
//! and `version` (`1.1` or `1.2`, default 1.1). Each record is read by [`JsonRecords`] exactly
//! as a pulled one is; problems name the collection and the record's index
//! (`POST /roster users`, offset 3).

use serde_json::{Map, Value as Json};
use tokio::sync::mpsc;

use super::columns::Version;
use super::rest::json::JsonRecords;
use super::COLLECTIONS;
use crate::config::ImportSettings;
use crate::domain::problem::{Location, Problem, ProblemLog};
use crate::domain::records::{Mode, RecordKind, SourceRecord};
use crate::domain::run::Origin;
use crate::sync::input::{Feed, Plan, PlannedKind};

/// How problems name the body as a whole.
pub const BODY: &str = "POST /roster";

/// Records travel to the engine in chunks of this many.
const CHUNK: usize = 5000;

/// How problems and plans name a collection of the body: `POST /roster users`.
pub fn label(kind: RecordKind) -> String {
    format!("{BODY} {}", kind.oneroster_name())
}

/// A pushed document, its structure checked, its records not yet read.
#[derive(Debug)]
pub struct PushedRoster {
    pub mode: Mode,
    pub version: Version,
    /// The collections present, in dependency order.
    collections: Vec<(RecordKind, Vec<Json>)>,
}

/// Reads a body's structure. A body that is not JSON is refused with serde's line and column; an
/// unknown member, a collection that is not an array or a bad `mode`/`version` by name.
pub fn read(body: &[u8]) -> Result<PushedRoster, Problem> {
    let document: Json = serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            BODY,
            Some(e.line() as u64),
            None,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Json::Object(mut members) = document else {
        return Err(Problem::file(BODY, "the body must be a JSON object"));
    };
    let mode = match take_text(&mut members, "mode")?.as_deref() {
        None | Some("delta") => Mode::Delta,
        Some("bulk") => Mode::Bulk,
        Some(other) => {
            return Err(member_problem(
                "mode",
                format!("mode {other:?} is neither \"bulk\" nor \"delta\""),
            ))
        }
    };
    let version = match take_text(&mut members, "version")?.as_deref() {
        None | Some("1.1") => Version::V1_1,
        Some("1.2") => Version::V1_2,
        Some(other) => {
            return Err(member_problem(
                "version",
                format!("version {other:?} is neither \"1.1\" nor \"1.2\""),
            ))
        }
    };
    let mut collections = Vec::new();
    for kind in COLLECTIONS {
        match members.remove(kind.oneroster_name()) {
            None => {}
            Some(Json::Array(records)) => collections.push((kind, records)),
            Some(_) => {
                return Err(member_problem(
                    kind.oneroster_name(),
                    format!("{} must be an array of records", kind.oneroster_name()),
                ))
            }
        }
    }
    if let Some(unknown) = members.keys().next() {
        return Err(member_problem(
            unknown,
            "unknown member: a push holds mode, version and the collections orgs, \
             academicSessions, courses, classes, users, enrollments",
        ));
    }
    if collections.is_empty() {
        return Err(Problem::file(
            BODY,
            "the body holds no collection (orgs, academicSessions, courses, classes, users, enrollments)",
        ));
    }
    Ok(PushedRoster {
        mode,
        version,
        collections,
    })
}

/// Checks a body's shape as it is received, so that a push that could never be processed is
/// refused at once and nothing of it stored: [`read`]'s checks, and every record an object.
pub fn check_shape(body: &[u8]) -> Result<(), Problem> {
    let pushed = read(body)?;
    for (kind, records) in &pushed.collections {
        if let Some(index) = records.iter().position(|r| !r.is_object()) {
            return Err(member_problem(
                &format!("/{}/{index}", kind.oneroster_name()),
                "a record must be a JSON object",
            ));
        }
    }
    Ok(())
}

fn member_problem(member: &str, message: impl Into<String>) -> Problem {
    Problem::at(Location::record(BODY, None, None), Some(member), message)
}

fn take_text(members: &mut Map<String, Json>, name: &str) -> Result<Option<String>, Problem> {
    match members.remove(name) {
        None => Ok(None),
        Some(Json::String(text)) => Ok(Some(text)),
        Some(_) => Err(member_problem(name, format!("{name} must be a string"))),
    }
}

/// The run plan of a push: the collections it carries, in its mode. A 1.2 push with users plans
/// their roles too.
pub fn plan(pushed: &PushedRoster) -> Plan {
    let mut kinds = Vec::new();
    for (kind, _) in &pushed.collections {
        kinds.push(PlannedKind {
            kind: *kind,
            mode: pushed.mode,
            label: label(*kind),
            origin: Origin::Endpoint,
            digest: None,
            carried: false,
            unstaged_unchanged: None,
        });
        if *kind == RecordKind::Users && pushed.version == Version::V1_2 {
            kinds.push(PlannedKind {
                kind: RecordKind::Roles,
                mode: pushed.mode,
                label: label(RecordKind::Users),
                origin: Origin::Endpoint,
                digest: None,
                carried: false,
                unstaged_unchanged: None,
            });
        }
    }
    Plan { kinds }
}

/// Reads every record and sends it on `feed` (blocking: run it on a blocking thread). Returns
/// what was wrong with the records. Stops early when the engine hangs up or the log is full.
pub fn produce(
    pushed: &PushedRoster,
    limits: &ImportSettings,
    feed: mpsc::Sender<Feed>,
) -> ProblemLog {
    let mut log = super::problem_log(limits);
    for (kind, records) in &pushed.collections {
        let label = label(*kind);
        let reader = JsonRecords::new(*kind, pushed.version, &label, limits);
        let errors_before = log.error_count();
        let mut chunk: Vec<SourceRecord> = Vec::with_capacity(CHUNK.min(records.len()));
        let mut roles: Vec<SourceRecord> = Vec::new();
        let mut roles_made = 0u64;
        for (index, record) in records.iter().enumerate() {
            reader.map(record, index as u64, &mut log, |r| {
                if r.kind == RecordKind::Roles {
                    roles.push(r);
                    roles_made += 1;
                } else {
                    chunk.push(r);
                }
            });
            if chunk.len() >= CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if feed.blocking_send(Feed::Records(*kind, full)).is_err() {
                    return log;
                }
            }
            if roles.len() >= CHUNK {
                let full = std::mem::take(&mut roles);
                if feed
                    .blocking_send(Feed::Records(RecordKind::Roles, full))
                    .is_err()
                {
                    return log;
                }
            }
            if log.full() {
                return log;
            }
        }
        let nothing_wrong = log.error_count() == errors_before;
        if pushed.mode == Mode::Bulk && nothing_wrong {
            if records.is_empty() {
                log.error(Problem::at(
                    Location::record(&label, Some(0), None),
                    None,
                    "the collection is empty: a bulk push would remove every record of this type, so it is refused",
                ));
            } else if *kind == RecordKind::Users
                && pushed.version == Version::V1_2
                && roles_made == 0
            {
                log.error(Problem::at(
                    Location::record(&label, None, None),
                    Some("roles"),
                    "no user has a role: a bulk push would remove every role, so it is refused",
                ));
            }
        }
        let with_roles = *kind == RecordKind::Users && pushed.version == Version::V1_2;
        let sends = [
            (!chunk.is_empty()).then(|| Feed::Records(*kind, std::mem::take(&mut chunk))),
            (!roles.is_empty())
                .then(|| Feed::Records(RecordKind::Roles, std::mem::take(&mut roles))),
            Some(Feed::Done(*kind)),
            with_roles.then_some(Feed::Done(RecordKind::Roles)),
        ];
        for item in sends.into_iter().flatten() {
            if feed.blocking_send(item).is_err() {
                return log;
            }
        }
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    /// The JSON Schema published for pushes says what the reader accepts: its members, their
    /// enums, and that a push holds at least one collection and nothing else.
    #[test]
    fn the_published_push_schema_agrees_with_the_reader() {
        let schema: Json = serde_json::from_str(include_str!(
            "../../../contracts/schemas/roster-push.schema.json"
        ))
        .unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let mut expected: Vec<&str> = vec!["mode", "version"];
        expected.extend(COLLECTIONS.iter().map(|k| k.oneroster_name()));
        let mut published: Vec<&str> = properties.keys().map(String::as_str).collect();
        published.sort_unstable();
        expected.sort_unstable();
        assert_eq!(published, expected);
        assert_eq!(schema["additionalProperties"], Json::Bool(false));
        let body = |members: Json| serde_json::to_vec(&members).unwrap();
        assert!(read(&body(json!({"users": [], "surplus": []}))).is_err());
        for (member, other) in [("mode", "full"), ("version", "1.0")] {
            for value in properties[member]["enum"].as_array().unwrap() {
                assert!(
                    read(&body(json!({member: value, "users": []}))).is_ok(),
                    "{value}"
                );
            }
            assert!(read(&body(json!({member: other, "users": []}))).is_err());
        }
        let required: Vec<&str> = schema["anyOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alternative| alternative["required"][0].as_str().unwrap())
            .collect();
        for kind in COLLECTIONS {
            let name = kind.oneroster_name();
            assert!(required.contains(&name), "{name}");
            assert!(read(&body(json!({name: []}))).is_ok(), "{name}");
            assert_eq!(properties[name]["type"], "array", "{name}");
        }
        assert!(read(&body(json!({"mode": "delta"}))).is_err());
    }

    #[test]
    fn bodies_with_a_bad_structure_are_refused_by_member_or_line() {
        let cases: [(&str, &str); 7] = [
            ("{\"users\": [\n{]", "not valid JSON"),
            ("[]", "must be a JSON object"),
            (
                "{\"mode\": \"full\", \"users\": []}",
                "neither \"bulk\" nor \"delta\"",
            ),
            (
                "{\"version\": \"1.0\", \"users\": []}",
                "neither \"1.1\" nor \"1.2\"",
            ),
            ("{\"users\": {}}", "must be an array"),
            ("{\"user\": []}", "unknown member"),
            ("{\"mode\": \"bulk\"}", "no collection"),
        ];
        for (body, wanted) in cases {
            let problem = read(body.as_bytes()).expect_err(body);
            assert!(problem.message.contains(wanted), "{body}: {problem}");
        }
        let problem = read(b"{\"users\": [\n{]").unwrap_err();
        assert_eq!(problem.line(), Some(2), "{problem}");
    }

    #[test]
    fn a_plan_holds_the_pushed_collections_in_dependency_order_and_mode() {
        let pushed =
            read(br#"{"mode":"bulk","version":"1.2","enrollments":[],"users":[],"orgs":[]}"#)
                .unwrap();
        let plan = plan(&pushed);
        let kinds: Vec<(RecordKind, Mode, &str)> = plan
            .kinds
            .iter()
            .map(|k| (k.kind, k.mode, k.label.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (RecordKind::Orgs, Mode::Bulk, "POST /roster orgs"),
                (RecordKind::Users, Mode::Bulk, "POST /roster users"),
                (RecordKind::Roles, Mode::Bulk, "POST /roster users"),
                (
                    RecordKind::Enrollments,
                    Mode::Bulk,
                    "POST /roster enrollments"
                ),
            ]
        );
        let delta = read(br#"{"users":[]}"#).unwrap();
        assert_eq!((delta.mode, delta.version), (Mode::Delta, Version::V1_1));
    }
}
