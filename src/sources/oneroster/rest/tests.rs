//! Pulls against a scripted provider: paging, envelopes, deltas, and records that read as their
//! CSV rows do.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value as Json};

use super::*;
use crate::domain::problem::Problem;
use crate::domain::records::{RecordStatus, Value};
use crate::outbound::{FetchError, Fetched};
use crate::sources::oneroster::reader::FileReader;

/// A OneRoster provider in memory: serves its collections with limit and offset, capping
/// `limit` silently at `cap`, optionally with `Link` headers and a (possibly wrong)
/// `X-Total-Count`; `script` answers chosen requests (by collection and offset) instead.
struct Provider {
    collections: HashMap<&'static str, Vec<Json>>,
    cap: usize,
    links: bool,
    total_count: Option<u64>,
    script: HashMap<(&'static str, u64), Scripted>,
    requests: Mutex<Vec<Url>>,
}

#[derive(Clone)]
enum Scripted {
    Body(&'static str),
    /// The collection's page, with this next link instead.
    Link(&'static str),
    Fail,
}

impl Provider {
    fn new() -> Self {
        let mut collections = HashMap::new();
        for kind in COLLECTIONS {
            collections.insert(kind.oneroster_name(), Vec::new());
        }
        Provider {
            collections,
            cap: usize::MAX,
            links: false,
            total_count: None,
            script: HashMap::new(),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// A provider whose every collection has one plain record, and `users` has `users`.
    fn with_users(users: Vec<Json>) -> Self {
        let mut p = Provider::new();
        p.collections.insert(
            "orgs",
            vec![json!({"sourcedId": "s1", "name": "S", "type": "school"})],
        );
        p.collections.insert(
            "academicSessions",
            vec![
                json!({"sourcedId": "t1", "title": "T", "type": "term", "startDate": "2024-08-01",
                "endDate": "2025-06-14", "schoolYear": 2025}),
            ],
        );
        p.collections.insert(
            "courses",
            vec![json!({"sourcedId": "k1", "title": "K", "org": {"sourcedId": "s1"}})],
        );
        p.collections.insert(
            "classes",
            vec![
                json!({"sourcedId": "c1", "title": "C", "classType": "scheduled",
                "course": {"sourcedId": "k1"}, "school": {"sourcedId": "s1"},
                "terms": [{"sourcedId": "t1"}]}),
            ],
        );
        p.collections.insert("users", users);
        p.collections.insert(
            "enrollments",
            vec![
                json!({"sourcedId": "e1", "role": "student", "user": {"sourcedId": "u0"},
                "class": {"sourcedId": "c1"}, "school": {"sourcedId": "s1"}}),
            ],
        );
        p
    }

    fn answer(&self, url: &Url) -> Result<Fetched, FetchError> {
        self.requests.lock().unwrap().push(url.clone());
        let collection = url
            .path_segments()
            .unwrap()
            .next_back()
            .unwrap()
            .to_string();
        let param = |name: &str| {
            url.query_pairs()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let (limit, offset) = (param("limit").unwrap_or(100), param("offset").unwrap_or(0));
        let (name, records) = self
            .collections
            .iter()
            .find(|(name, _)| **name == collection)
            .expect("a known collection");
        let scripted = self.script.get(&(*name, offset)).cloned();
        let start = (offset as usize).min(records.len());
        let end = (start + (limit as usize).min(self.cap)).min(records.len());
        let mut next = (self.links && end < records.len()).then(|| {
            let mut next = url.clone();
            next.set_query(Some(&format!("limit={limit}&offset={end}&page=x")));
            next
        });
        let mut envelope = serde_json::Map::new();
        envelope.insert(name.to_string(), Json::Array(records[start..end].to_vec()));
        envelope.insert("statusInfoSet".into(), json!([]));
        let mut body = Json::Object(envelope).to_string();
        match scripted {
            Some(Scripted::Body(text)) => body = text.to_string(),
            Some(Scripted::Link(link)) => next = Some(url.join(link).unwrap()),
            Some(Scripted::Fail) => {
                return Err(FetchError::Status {
                    path: url.path().to_string(),
                    status: 503,
                    detail: String::new(),
                })
            }
            None => {}
        }
        Ok(Fetched {
            url: url.clone(),
            status: 200,
            pages_by_link: self.links || next.is_some(),
            next,
            total_count: self.total_count,
            body: body.into_bytes(),
        })
    }

    fn offsets(&self, collection: &str) -> Vec<u64> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|u| u.path().ends_with(&format!("/{collection}")))
            .map(|u| {
                u.query_pairs()
                    .find(|(n, _)| n == "offset")
                    .unwrap()
                    .1
                    .parse()
                    .unwrap()
            })
            .collect()
    }
}

impl Fetch for Provider {
    fn get(
        &self,
        url: Url,
    ) -> impl std::future::Future<Output = Result<Fetched, FetchError>> + Send {
        let answer = self.answer(&url);
        async move { answer }
    }
}

fn spec(version: OneRosterVersion, mode: PullMode) -> PullSpec {
    PullSpec {
        version,
        base_url: Url::parse("https://sis.example/ims/oneroster/v1p1/").unwrap(),
        page_size: 100,
        mode,
    }
}

/// Runs a pull, collecting what reached the engine.
async fn pull(provider: &Provider, spec: &PullSpec) -> (Vec<SourceRecord>, PullOutcome) {
    let (tx, mut rx) = mpsc::channel(2);
    let collector = tokio::spawn(async move {
        let mut records = Vec::new();
        while let Some(feed) = rx.recv().await {
            if let Feed::Records(_, chunk) = feed {
                records.extend(chunk);
            }
        }
        records
    });
    let outcome = produce(provider, spec, &ImportSettings::default(), tx, None).await;
    (collector.await.unwrap(), outcome)
}

fn errors_of(outcome: PullOutcome) -> Vec<Problem> {
    outcome.problems.into_parts().0
}

/// Maps one JSON record as the pull would, at offset 7 of its collection.
fn map_json(kind: RecordKind, version: Version, record: Json) -> (Vec<SourceRecord>, ProblemLog) {
    let limits = ImportSettings::default();
    let label = endpoint(kind);
    let mapper = JsonRecords::new(kind, version, &label, &limits);
    let mut log = ProblemLog::new(100);
    let mut out = Vec::new();
    mapper.map(&record, 7, &mut log, |r| out.push(r));
    (out, log)
}

fn read_csv(kind: RecordKind, version: Version, text: &str) -> SourceRecord {
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
    assert!(!log.has_errors(), "{text}: {log:?}");
    out.remove(0)
}

#[test]
fn json_type_drift_reads_to_the_record_its_csv_row_gives() {
    use RecordKind::*;
    // (kind, version, CSV file, JSON variants that mean the same record)
    let table: Vec<(RecordKind, Version, &str, Vec<Json>)> = vec![
        (
            Users,
            Version::V1_1,
            "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,grades,metadata.x\n\
             u1,active,2024-01-01T00:00:00Z,true,\"s1,s2\",student,un,\"{LDAP:12},{LTI:15}\",Ann,Lee,,\"09,10\",1\n",
            vec![
                json!({"sourcedId": "u1", "status": "active", "dateLastModified": "2024-01-01T00:00:00Z",
                    "enabledUser": true, "role": "student", "username": "un",
                    "orgs": [{"href": "https://sis.example/orgs/s1", "sourcedId": "s1", "type": "org"},
                             {"sourcedId": "s2", "type": "user"}],
                    "userIds": [{"type": "LDAP", "identifier": "12"}, {"type": "LTI", "identifier": 15}],
                    "givenName": "Ann", "familyName": "Lee", "middleName": null,
                    "grades": ["09", "10"], "metadata": {"x": "1"}, "password": "hunter2"}),
                json!({"sourcedId": " u1 ", "dateLastModified": "2024-01-01 00:00:00",
                    "enabledUser": "TRUE", "role": "Student", "username": "un",
                    "orgs": "s1, s2", "userIds": "{LDAP:12},{LTI:15}",
                    "givenName": "Ann", "familyName": "Lee", "grades": "09,10", "metadata": {"x": 1}}),
                json!({"sourcedId": "u1", "enabledUser": 1, "role": "student", "username": "un",
                    "orgs": ["s1", {"sourcedId": "s2"}], "userIds": [{"type": "LDAP", "identifier": 12}, {"type": "LTI", "identifier": "15"}],
                    "givenName": "Ann", "familyName": "Lee", "grades": [" 09", "10 "], "metadata": {"x": "1"}}),
            ],
        ),
        (
            AcademicSessions,
            Version::V1_1,
            "sourcedId,title,type,startDate,endDate,parentSourcedId,schoolYear\n\
             t1,Fall,term,2024-08-01,2024-12-20,y1,2025\n",
            vec![
                json!({"sourcedId": "t1", "title": "Fall", "type": "term", "startDate": "2024-08-01",
                    "endDate": "2024-12-20", "parent": {"href": "/academicSessions/y1", "sourcedId": "y1", "type": "academicSession"},
                    "schoolYear": 2025, "children": [{"sourcedId": "g1"}]}),
                json!({"sourcedId": "t1", "title": "Fall", "type": "term", "startDate": "2024-08-01T00:00:00Z",
                    "endDate": "2024-12-20", "parent": {"sourcedId": "y1"}, "schoolYear": "2025"}),
            ],
        ),
        (
            Classes,
            Version::V1_2,
            "sourcedId,title,courseSourcedId,classType,schoolSourcedId,termSourcedIds,periods,grades\n\
             c1,Math,k1,scheduled,s1,\"t1,t2\",\"1,2\",\n",
            vec![
                json!({"sourcedId": "c1", "title": "Math", "course": {"sourcedId": "k1"}, "classType": "Scheduled",
                    "school": {"sourcedId": "s1", "type": "org"}, "terms": [{"sourcedId": "t1"}, {"sourcedId": "t2"}],
                    "periods": "1,2", "grades": [], "resources": [{"sourcedId": "r1"}]}),
                json!({"sourcedId": "c1", "title": "Math", "course": "k1", "classType": "scheduled",
                    "school": {"sourcedId": "s1"}, "terms": "t1,t2", "periods": [1, 2], "grades": null}),
            ],
        ),
        (
            Enrollments,
            Version::V1_2,
            "sourcedId,status,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n\
             e1,tobedeleted,c1,s1,u1,teacher,false,2024-08-01,\n",
            vec![
                json!({"sourcedId": "e1", "status": "tobedeleted", "class": {"sourcedId": "c1"},
                    "school": {"sourcedId": "s1"}, "user": {"sourcedId": "u1"}, "role": "teacher",
                    "primary": "false", "beginDate": "2024-08-01", "endDate": null}),
                json!({"sourcedId": "e1", "status": "inactive", "class": {"sourcedId": "c1"},
                    "school": {"sourcedId": "s1"}, "user": {"sourcedId": "u1"}, "role": "teacher",
                    "primary": false, "beginDate": "2024-08-01"}),
                json!({"sourcedId": "e1", "status": "ToBeDeleted", "class": {"sourcedId": "c1"},
                    "school": {"sourcedId": "s1"}, "user": {"sourcedId": "u1"}, "role": "TEACHER",
                    "primary": 0, "beginDate": "2024-08-01"}),
            ],
        ),
        (
            Orgs,
            Version::V1_1,
            "sourcedId,name,type,identifier,metadata.nces,ext_code\n\
             s1,North,school,123,\"{\"\"id\"\":7}\",A\n",
            vec![json!({"sourcedId": "s1", "name": "North", "type": "school", "identifier": 123,
                "metadata": {"nces": {"id": 7}}, "ext_code": "A"})],
        ),
    ];
    for (kind, version, csv, variants) in table {
        let expected = read_csv(kind, version, csv);
        for json in variants {
            let (records, log) = map_json(kind, version, json.clone());
            assert!(!log.has_errors(), "{json}: {log:?}");
            assert_eq!(records.len(), 1, "{json}");
            assert_eq!(records[0].sourced_id, expected.sourced_id, "{json}");
            assert_eq!(records[0].values, expected.values, "{json}");
            assert_eq!(records[0].extra, expected.extra, "{json}");
            assert_eq!(records[0].content_hash(), expected.content_hash(), "{json}");
            assert_eq!(records[0].line, 7, "{json}");
            assert!(!format!("{records:?}").contains("hunter2"));
        }
    }
}

#[test]
fn a_1_2_user_gives_its_roles_as_role_records_and_its_1_2_names() {
    let user = json!({
        "sourcedId": "u1", "status": "active", "dateLastModified": "2024-01-01T00:00:00Z",
        "enabledUser": "true", "username": "un", "givenName": "Ann", "familyName": "Lee",
        "preferredFirstName": "Annie", "preferredLastName": "L", "pronouns": "she/her",
        "userMasterIdentifier": "m-1", "primaryOrg": {"sourcedId": "s1", "type": "org"},
        "roles": [
            {"roleType": "primary", "role": "teacher", "org": {"href": "x", "sourcedId": "s1", "type": "org"},
             "beginDate": "2024-08-01", "userProfile": "urn:profile:1"},
            {"roleType": "secondary", "role": "ext:coach", "org": {"sourcedId": "s2"}}
        ],
        "userProfiles": [{"profileId": "urn:profile:1", "credentials": [{"type": "x", "username": "u", "password": "hunter2"}]}]
    });
    let (records, log) = map_json(RecordKind::Users, Version::V1_2, user);
    assert!(!log.has_errors(), "{log:?}");
    assert!(!format!("{records:?}").contains("hunter2"));
    let csv_user = read_csv(
        RecordKind::Users,
        Version::V1_2,
        "sourcedId,enabledUser,username,givenName,familyName,preferredGivenName,preferredFamilyName,pronouns,userMasterIdentifier,primaryOrgSourcedId\n\
         u1,true,un,Ann,Lee,Annie,L,she/her,m-1,s1\n",
    );
    assert_eq!(records[0].content_hash(), csv_user.content_hash());
    let csv_roles = [
        "u1:s1:teacher,u1,primary,teacher,2024-08-01,s1,urn:profile:1",
        "u1:s2:ext:coach,u1,secondary,ext:coach,,s2,",
    ];
    assert_eq!(records.len(), 3);
    for (record, row) in records[1..].iter().zip(csv_roles) {
        let expected = read_csv(
            RecordKind::Roles,
            Version::V1_2,
            &format!("sourcedId,userSourcedId,roleType,role,beginDate,orgSourcedId,userProfileSourcedId\n{row}\n"),
        );
        assert_eq!(record.kind, RecordKind::Roles);
        assert_eq!(record.sourced_id, expected.sourced_id);
        assert_eq!(record.content_hash(), expected.content_hash(), "{row}");
        assert_eq!(record.line, 7);
    }
    // A user to be deleted takes its roles along.
    let (records, _) = map_json(
        RecordKind::Users,
        Version::V1_2,
        json!({"sourcedId": "u1", "status": "tobedeleted", "enabledUser": false, "username": "un",
            "givenName": "A", "familyName": "B",
            "roles": [{"roleType": "primary", "role": "student", "org": {"sourcedId": "s1"}}]}),
    );
    assert!(records
        .iter()
        .all(|r| r.status == RecordStatus::ToBeDeleted));
    assert_eq!(records.len(), 2);
}

#[test]
fn a_1_1_user_carries_role_and_orgs_on_the_user() {
    let (records, log) = map_json(
        RecordKind::Users,
        Version::V1_1,
        json!({"sourcedId": "u1", "role": "teacher", "orgs": [{"sourcedId": "s1"}],
            "username": "un", "givenName": "A", "familyName": "B"}),
    );
    assert!(!log.has_errors(), "{log:?}");
    assert_eq!(records.len(), 1);
    let value = |c: &str| records[0].values[RecordKind::Users.column_index(c).unwrap()].clone();
    assert_eq!(value("role"), Value::Text("teacher".into()));
    assert_eq!(value("org_sourced_ids"), Value::Text("s1".into()));
    // enabledUser is not required of a 1.1 JSON user.
    assert_eq!(value("enabled_user"), Value::Null);
}

#[test]
fn bad_records_are_named_by_endpoint_offset_sourced_id_and_field() {
    use RecordKind::*;
    let user = |extra: Json| {
        let mut u = json!({"sourcedId": "u1", "enabledUser": true, "role": "student",
            "orgs": [{"sourcedId": "s1"}], "username": "un", "givenName": "A", "familyName": "B"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                u.as_object_mut().unwrap().remove(k);
            } else {
                u[k] = v.clone();
            }
        }
        u
    };
    // (kind, version, record, sourcedId named, field, message part); the record (or, for a
    // role, the role) is refused.
    type Case = (
        RecordKind,
        Version,
        Json,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    let table: Vec<Case> = vec![
        (
            Users,
            Version::V1_1,
            user(json!({"role": "wizard"})),
            Some("u1"),
            Some("role"),
            "not one of",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"orgs": null})),
            Some("u1"),
            Some("orgs"),
            "required field is missing",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"orgs": [{"sourcedId": "s1"}, {"href": "x"}]})),
            Some("u1"),
            Some("/orgs/1/sourcedId"),
            "without a sourcedId",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"enabledUser": "maybe"})),
            Some("u1"),
            Some("enabledUser"),
            "not a boolean",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"givenName": {"first": "A"}})),
            Some("u1"),
            Some("givenName"),
            "not an object",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"userIds": [{"type": "LDAP"}]})),
            Some("u1"),
            Some("/userIds/0/identifier"),
            "without identifier",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"status": "deleted"})),
            Some("u1"),
            Some("status"),
            "not a status",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"sourcedId": null})),
            None,
            Some("sourcedId"),
            "sourcedId is missing",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"sourcedId": ""})),
            None,
            Some("sourcedId"),
            "empty",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"email": "a\u{0}b"})),
            Some("u1"),
            Some("email"),
            "NUL",
        ),
        (
            Users,
            Version::V1_1,
            user(json!({"givenName": "x".repeat(70_000)})),
            Some("u1"),
            Some("givenName"),
            "bytes long",
        ),
        (
            Users,
            Version::V1_1,
            json!(["u1"]),
            None,
            None,
            "an array, not a JSON object",
        ),
        (
            Users,
            Version::V1_2,
            user(
                json!({"roles": [{"roleType": "primary", "role": "wizard", "org": {"sourcedId": "s1"}}]}),
            ),
            Some("u1"),
            Some("/roles/0/role"),
            "not one of",
        ),
        (
            Users,
            Version::V1_2,
            user(json!({"roles": [{"roleType": "primary", "role": "student"}]})),
            Some("u1"),
            Some("/roles/0/org"),
            "required field is missing",
        ),
        (
            Enrollments,
            Version::V1_1,
            json!({"sourcedId": "e1", "role": "student", "class": {"sourcedId": "c1"}, "school": {"sourcedId": "s1"}}),
            Some("e1"),
            Some("user"),
            "required field is missing",
        ),
        (
            Enrollments,
            Version::V1_1,
            json!({"sourcedId": "e1", "role": "student", "user": {"sourcedId": "u1"}, "class": {"sourcedId": "c1"},
            "school": {"sourcedId": "s1"}, "beginDate": "2024-13-45"}),
            Some("e1"),
            Some("beginDate"),
            "not a date",
        ),
        (
            Orgs,
            Version::V1_1,
            json!({"sourcedId": "o1", "name": "N", "type": "galaxy"}),
            Some("o1"),
            Some("type"),
            "not one of",
        ),
    ];
    for (kind, version, record, id, field, message) in table {
        let (records, log) = map_json(kind, version, record.clone());
        let (errors, _) = log.into_parts();
        assert!(
            errors
                .iter()
                .any(|e| e.at == Location::record(endpoint(kind), Some(7), id)
                    && e.field.as_deref() == field
                    && e.message.contains(message)),
            "{record}: {errors:?}"
        );
        let refused = if field.is_some_and(|f| f.starts_with("/roles")) {
            Roles
        } else {
            kind
        };
        assert!(
            records.iter().all(|r| r.kind != refused),
            "{record}: {records:?}"
        );
    }
}

#[test]
fn unknown_fields_are_kept_with_one_folded_warning() {
    let limits = ImportSettings::default();
    let label = endpoint(RecordKind::Orgs);
    let mapper = JsonRecords::new(RecordKind::Orgs, Version::V1_1, &label, &limits);
    let mut log = ProblemLog::new(10);
    let mut out = Vec::new();
    for i in 0..3 {
        let record =
            json!({"sourcedId": format!("o{i}"), "name": "N", "type": "school", "vendorCode": i});
        mapper.map(&record, i, &mut log, |r| out.push(r));
    }
    assert_eq!(out[2].extra.as_deref(), Some(r#"{"vendorCode":"2"}"#));
    let (errors, warnings) = log.into_parts();
    assert!(errors.is_empty());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].occurrences, 3);
    assert_eq!(warnings[0].problem.field.as_deref(), Some("vendorCode"));
    assert_eq!(
        warnings[0].problem.at,
        Location::record("GET /orgs", Some(0), Some("o0"))
    );
}

#[test]
fn every_json_field_maps_onto_a_csv_column() {
    for kind in RecordKind::ALL {
        // Panics on a field whose column is missing.
        let _ = JsonRecords::new(kind, Version::V1_2, "GET /x", &ImportSettings::default());
    }
}

#[test]
fn plans_name_endpoints_and_add_roles_for_1_2() {
    let full = plan(&spec(OneRosterVersion::V1_2, PullMode::Full));
    let labels: Vec<(RecordKind, &str)> = full
        .kinds
        .iter()
        .map(|p| (p.kind, p.label.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            (RecordKind::Orgs, "GET /orgs"),
            (RecordKind::AcademicSessions, "GET /academicSessions"),
            (RecordKind::Courses, "GET /courses"),
            (RecordKind::Classes, "GET /classes"),
            (RecordKind::Users, "GET /users"),
            (RecordKind::Roles, "GET /users"),
            (RecordKind::Enrollments, "GET /enrollments"),
        ]
    );
    assert!(full
        .kinds
        .iter()
        .all(|p| p.mode == Mode::Bulk && p.origin == Origin::Endpoint));
    let since = Utc::now();
    let delta = plan(&spec(OneRosterVersion::V1_1, PullMode::Delta { since }));
    assert_eq!(delta.kinds.len(), 6);
    assert!(delta.kinds.iter().all(|p| p.mode == Mode::Delta));
    assert!(delta.planned(RecordKind::Roles).is_none());
}

fn users(n: usize) -> Vec<Json> {
    (0..n)
        .map(|i| {
            json!({"sourcedId": format!("u{i}"), "enabledUser": true, "role": "student",
                "orgs": [{"sourcedId": "s1"}], "username": "un", "givenName": "A", "familyName": "B"})
        })
        .collect()
}

#[tokio::test]
async fn a_full_pull_reads_every_collection_in_order() {
    let provider = Provider::with_users(users(3));
    let (records, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert!(!outcome.problems.has_errors(), "{:?}", outcome.problems);
    let kinds: Vec<RecordKind> = records.iter().map(|r| r.kind).collect();
    use RecordKind::*;
    assert_eq!(
        kinds,
        [
            Orgs,
            AcademicSessions,
            Courses,
            Classes,
            Users,
            Users,
            Users,
            Enrollments
        ]
    );
    assert_eq!(outcome.records, 8);
    // Each collection: one page, then an empty one (a short first page proves nothing).
    assert_eq!(outcome.requests, 12);
    let first = provider.requests.lock().unwrap()[0].to_string();
    assert_eq!(
        first,
        "https://sis.example/ims/oneroster/v1p1/orgs?limit=100&offset=0"
    );
}

#[tokio::test]
async fn pages_go_on_past_a_silently_capped_limit_until_a_short_page() {
    // (records, cap, offsets requested)
    let table: [(usize, usize, &[u64]); 4] = [
        (10, 3, &[0, 3, 6, 9]),
        (9, 3, &[0, 3, 6, 9]),
        (0, 3, &[0]),
        (250, 100, &[0, 100, 200]),
    ];
    for (n, cap, offsets) in table {
        let mut provider = Provider::with_users(users(n));
        provider.cap = cap;
        let mut spec = spec(
            OneRosterVersion::V1_1,
            PullMode::Delta { since: Utc::now() },
        );
        spec.page_size = 1000;
        let (records, outcome) = pull(&provider, &spec).await;
        assert!(
            !outcome.problems.has_errors(),
            "{n}: {:?}",
            outcome.problems
        );
        assert_eq!(provider.offsets("users"), offsets, "{n} records, cap {cap}");
        let users: Vec<&SourceRecord> = records
            .iter()
            .filter(|r| r.kind == RecordKind::Users)
            .collect();
        assert_eq!(users.len(), n);
        // Each record's place is its offset in the collection.
        assert!(users.iter().enumerate().all(|(i, r)| r.line == i as u64));
    }
}

#[tokio::test]
async fn x_total_count_neither_ends_paging_nor_extends_it() {
    for total in [Some(2), Some(1_000_000), Some(0)] {
        let mut provider = Provider::with_users(users(7));
        provider.cap = 3;
        provider.total_count = total;
        let (records, outcome) =
            pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
        assert!(!outcome.problems.has_errors(), "{total:?}");
        assert_eq!(provider.offsets("users"), [0, 3, 6], "{total:?}");
        assert_eq!(
            records
                .iter()
                .filter(|r| r.kind == RecordKind::Users)
                .count(),
            7
        );
    }
}

#[tokio::test]
async fn next_links_are_followed_as_given() {
    let mut provider = Provider::with_users(users(5));
    provider.cap = 2;
    provider.links = true;
    let (records, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert!(!outcome.problems.has_errors(), "{:?}", outcome.problems);
    let requested: Vec<String> = provider
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|u| u.path().ends_with("/users"))
        .map(|u| u.query().unwrap().to_string())
        .collect();
    // The last page (1 record) has no link and is shorter than 2: the end.
    assert_eq!(
        requested,
        [
            "limit=100&offset=0",
            "limit=100&offset=2&page=x",
            "limit=100&offset=4&page=x"
        ]
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.kind == RecordKind::Users)
            .count(),
        5
    );
}

#[tokio::test]
async fn a_provider_paging_with_links_ends_where_its_next_link_does() {
    // 4 users in pages of 2: the last page is full, and only the missing `next` says it is last.
    let mut provider = Provider::with_users(users(4));
    provider.cap = 2;
    provider.links = true;
    let (records, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert!(!outcome.problems.has_errors(), "{:?}", outcome.problems);
    let users_requested = provider
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|u| u.path().ends_with("/users"))
        .count();
    assert_eq!(users_requested, 2);
    // A collection smaller than the page, from a provider that pages with links: one request.
    let orgs_requested = provider
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|u| u.path().ends_with("/orgs"))
        .count();
    assert_eq!(orgs_requested, 1);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.kind == RecordKind::Users)
            .count(),
        4
    );
}

#[tokio::test]
async fn links_that_loop_or_leave_the_host_and_providers_that_ignore_offset_end_the_pull() {
    // (scripted next link of the first users page, message part)
    let table = [
        ("?limit=2&offset=0", "points back to offset 0"),
        ("users?limit=2&offset=0&page=1", "points back to offset 0"),
        (
            "https://elsewhere.example/users?offset=2",
            "another host (elsewhere.example)",
        ),
    ];
    for (link, message) in table {
        let mut provider = Provider::with_users(users(5));
        provider.cap = 2;
        provider.script.insert(("users", 0), Scripted::Link(link));
        let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
        assert_eq!(outcome.requests, 9, "{link}");
        let errors = errors_of(outcome);
        assert_eq!(errors.len(), 1, "{link}: {errors:?}");
        assert_eq!(errors[0].at, Location::record("GET /users", Some(0), None));
        assert!(errors[0].message.contains(message), "{errors:?}");
    }
    // A cursor link (no offset) that comes back round to the same page.
    let mut provider = Provider::with_users(users(5));
    provider.cap = 2;
    provider
        .script
        .insert(("users", 0), Scripted::Link("users?cursor=a"));
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert_eq!(outcome.requests, 10);
    let errors = errors_of(outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].at.source(), "GET /users");
}

#[tokio::test]
async fn a_provider_that_ignores_offset_is_caught_on_the_third_page() {
    let mut provider = Provider::with_users(users(2));
    // Every offset answered with the first page.
    let first = json!({"users": users(2)}).to_string();
    let first: &'static str = Box::leak(first.into_boxed_str());
    for offset in [2, 4, 6] {
        provider
            .script
            .insert(("users", offset), Scripted::Body(first));
    }
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    let errors = errors_of(outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].at, Location::record("GET /users", Some(4), None));
    assert!(
        errors[0].message.contains("those of offset 0 again"),
        "{errors:?}"
    );
    // Once is a collection that moved while it was paged: the engine keeps the later copy.
    let mut provider = Provider::with_users(users(5));
    provider.cap = 2;
    let first = json!({"users": &users(5)[..2]}).to_string();
    let first: &'static str = Box::leak(first.into_boxed_str());
    provider.script.insert(("users", 2), Scripted::Body(first));
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert!(!outcome.problems.has_errors(), "{:?}", outcome.problems);
    assert_eq!(provider.offsets("users"), [0, 2, 4]);
}

#[test]
fn paging_stops_at_the_page_bound() {
    let base = Url::parse("https://sis.example/v1p1").unwrap();
    let mut pager = Pager::new(&base, "users", "users", 1, None);
    pager.max_pages = 3;
    let mut error = None;
    for i in 0..10u64 {
        match pager.next_request() {
            Ok(Some(url)) => {
                let body = json!({"users": [{"sourcedId": format!("u{i}")}]}).to_string();
                pager
                    .accept(Fetched {
                        url,
                        status: 200,
                        next: None,
                        pages_by_link: false,
                        total_count: None,
                        body: body.into_bytes(),
                    })
                    .unwrap();
            }
            Ok(None) => panic!("an endless collection ended"),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("the bound is reached");
    assert!(
        matches!(error, PageError::TooManyPages { offset: 3, max: 3 }),
        "{error}"
    );
}

#[test]
fn a_cursor_link_that_comes_round_again_is_not_followed() {
    let base = Url::parse("https://sis.example/v1p1/").unwrap();
    let cursor = Url::parse("https://sis.example/v1p1/users?cursor=a").unwrap();
    let mut pager = Pager::new(&base, "users", "users", 2, None);
    let page = |url: Url, i: u64| Fetched {
        url,
        status: 200,
        next: Some(cursor.clone()),
        pages_by_link: true,
        total_count: None,
        body: json!({"users": [{"sourcedId": format!("u{i}")}, {"sourcedId": format!("v{i}")}]})
            .to_string()
            .into_bytes(),
    };
    let first = pager.next_request().unwrap().unwrap();
    assert_eq!(pager.accept(page(first, 0)).unwrap().offset, 0);
    let second = pager.next_request().unwrap().unwrap();
    assert_eq!(second, cursor);
    assert_eq!(pager.accept(page(second, 1)).unwrap().offset, 2);
    let error = pager.next_request().unwrap_err();
    assert!(
        matches!(error, PageError::LinkRepeats { offset: 2 }),
        "{error}"
    );
}

/// The pull can run on a task of its own beside the engine.
#[allow(dead_code)]
fn a_pull_is_send(provider: &Provider, spec: &PullSpec, limits: &ImportSettings) {
    fn send<T: Send>(_: T) {}
    let (tx, _) = mpsc::channel(1);
    send(produce(provider, spec, limits, tx, None));
}

#[tokio::test]
async fn unreadable_pages_end_the_pull_naming_endpoint_and_offset() {
    // (body of the users page at offset 0, message part)
    let table = [
        ("{\"users\": [ {\"sourcedId\": ", "line 1 column"),
        ("<html>busy</html>", "line 1 column 1"),
        ("{\"data\": []}", "no \"users\" array"),
        (
            "{\"users\": {\"sourcedId\": \"u1\"}}",
            "\"users\" in the response is an object",
        ),
        ("[]", "not a OneRoster collection"),
        ("{\"users\": []} trailing", "trailing characters"),
        // Hostile: nesting deep enough to exhaust a recursive reader is refused, not followed.
        (
            Box::leak(
                format!(
                    "{{\"users\": [{}{}]}}",
                    "[".repeat(10_000),
                    "]".repeat(10_000)
                )
                .into_boxed_str(),
            ),
            "recursion limit",
        ),
    ];
    for (body, message) in table {
        let mut provider = Provider::with_users(users(2));
        provider.script.insert(("users", 0), Scripted::Body(body));
        let (records, outcome) =
            pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
        assert!(provider.offsets("enrollments").is_empty(), "{body}");
        assert!(records.iter().all(|r| r.kind != RecordKind::Users));
        let errors = errors_of(outcome);
        assert_eq!(errors.len(), 1, "{body}: {errors:?}");
        assert_eq!(errors[0].at, Location::record("GET /users", Some(0), None));
        assert!(errors[0].message.contains(message), "{body}: {errors:?}");
    }
    // Other top-level keys are skipped.
    let mut provider = Provider::with_users(users(1));
    provider.script.insert(
        ("users", 0),
        Scripted::Body(r#"{"statusInfoSet": [{"imsx_codeMajor": "success"}], "totalCount": 1, "users": [{"sourcedId": "u0", "enabledUser": true, "role": "student", "orgs": [{"sourcedId": "s1"}], "username": "u", "givenName": "A", "familyName": "B"}], "x": {"users": 5}}"#),
    );
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert!(!outcome.problems.has_errors(), "{:?}", outcome.problems);
}

#[tokio::test]
async fn a_failed_request_ends_the_pull_at_its_offset() {
    let mut provider = Provider::with_users(users(5));
    provider.cap = 2;
    provider.script.insert(("users", 2), Scripted::Fail);
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert!(provider.offsets("enrollments").is_empty());
    let errors = errors_of(outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].at, Location::record("GET /users", Some(2), None));
    assert!(errors[0].message.contains("HTTP 503"), "{errors:?}");
}

#[tokio::test]
async fn record_problems_carry_their_offset_in_the_collection() {
    let mut all = users(5);
    all[3]["role"] = json!("wizard");
    let mut provider = Provider::with_users(all);
    provider.cap = 2;
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    let errors = errors_of(outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "GET /users (offset 3, sourcedId \"u3\"): role: \"wizard\" is not one of administrator, aide, guardian, parent, proctor, relative, student, teacher"
    );
}

#[tokio::test]
async fn a_delta_pull_filters_every_collection_by_date_last_modified() {
    let since = DateTime::parse_from_rfc3339("2026-11-30T22:15:00.123456+00:00")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        delta_filter(since),
        "dateLastModified>'2026-11-30T22:15:00Z'"
    );
    let mut all = users(2);
    all[1]["status"] = json!("tobedeleted");
    let provider = Provider::with_users(all);
    let (records, outcome) = pull(
        &provider,
        &spec(OneRosterVersion::V1_2, PullMode::Delta { since }),
    )
    .await;
    assert!(!outcome.problems.has_errors(), "{:?}", outcome.problems);
    let requests = provider.requests.lock().unwrap();
    assert_eq!(requests.len(), 12);
    for url in requests.iter() {
        let filter: Vec<String> = url
            .query_pairs()
            .filter(|(n, _)| n == "filter")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(filter, ["dateLastModified>'2026-11-30T22:15:00Z'"], "{url}");
        assert!(url
            .query()
            .unwrap()
            .ends_with("&filter=dateLastModified%3E%272026-11-30T22%3A15%3A00Z%27"));
    }
    let deleted = records.iter().find(|r| r.sourced_id == "u1").unwrap();
    assert_eq!(deleted.status, RecordStatus::ToBeDeleted);
}

#[tokio::test]
async fn the_newest_date_last_modified_becomes_the_cursor() {
    let mut all = users(4);
    all[0]["dateLastModified"] = json!("2026-03-01T10:00:00Z");
    all[1]["dateLastModified"] = json!("2026-03-02 09:30:00");
    all[2]["dateLastModified"] = json!("2026-03-02T11:00:00+02:00");
    all[3]["dateLastModified"] = json!("2999-01-01T00:00:00Z");
    let provider = Provider::with_users(all);
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert_eq!(
        outcome.newest_modified,
        Some(
            DateTime::parse_from_rfc3339("2026-03-02T09:30:00Z")
                .unwrap()
                .with_timezone(&Utc)
        )
    );
    let (errors, warnings) = outcome.problems.into_parts();
    assert!(errors.is_empty(), "{errors:?}");
    let messages: Vec<&str> = warnings
        .iter()
        .map(|w| w.problem.message.as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("in the future")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("no time zone")),
        "{messages:?}"
    );
    // Nothing dated: no cursor.
    let provider = Provider::with_users(users(1));
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    assert_eq!(outcome.newest_modified, None);
}

#[tokio::test]
async fn an_empty_collection_is_refused_in_a_full_pull_only() {
    let provider = Provider::with_users(Vec::new());
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_1, PullMode::Full)).await;
    let errors = errors_of(outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].at, Location::record("GET /users", Some(0), None));
    assert!(errors[0].message.contains("would remove every record"));
    // The pull went on to the next collection.
    assert_eq!(provider.offsets("enrollments"), [0, 1]);
    let provider = Provider::with_users(Vec::new());
    let (_, outcome) = pull(
        &provider,
        &spec(
            OneRosterVersion::V1_1,
            PullMode::Delta { since: Utc::now() },
        ),
    )
    .await;
    assert!(!outcome.problems.has_errors());
    // 1.2 users without a single role would remove every role.
    let provider = Provider::with_users(vec![json!({"sourcedId": "u1", "enabledUser": true,
        "username": "un", "givenName": "A", "familyName": "B"})]);
    let (_, outcome) = pull(&provider, &spec(OneRosterVersion::V1_2, PullMode::Full)).await;
    let errors = errors_of(outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field.as_deref(), Some("roles"));
}

#[tokio::test]
async fn the_pull_stops_when_the_engine_hangs_up() {
    let mut provider = Provider::with_users(users(20_000));
    provider.cap = 1000;
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let outcome = produce(
        &provider,
        &spec(OneRosterVersion::V1_1, PullMode::Full),
        &ImportSettings::default(),
        tx,
        None,
    )
    .await;
    assert!(outcome.requests <= 2, "{}", outcome.requests);
}

#[tokio::test]
async fn chunks_stay_bounded_and_progress_is_reported() {
    let mut provider = Provider::with_users(users(12_000));
    provider.cap = 1000;
    let (tx, mut rx) = mpsc::channel(1);
    let collector = tokio::spawn(async move {
        let mut largest = 0;
        while let Some(feed) = rx.recv().await {
            if let Feed::Records(_, chunk) = feed {
                largest = largest.max(chunk.len());
            }
        }
        largest
    });
    let seen = Mutex::new(Vec::new());
    let progress = |kind: RecordKind, n: u64| {
        if kind == RecordKind::Users {
            seen.lock().unwrap().push(n);
        }
    };
    let outcome = produce(
        &provider,
        &spec(OneRosterVersion::V1_1, PullMode::Full),
        &ImportSettings::default(),
        tx,
        Some(&progress as &(dyn Fn(RecordKind, u64) + Send + Sync)),
    )
    .await;
    assert!(!outcome.problems.has_errors());
    assert_eq!(collector.await.unwrap(), CHUNK);
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.first(), Some(&0));
    assert_eq!(seen.last(), Some(&12_000));
}

/// A pull run through the engine, as a connection's job runs one: the pull and the engine side
/// by side, the pull's problems handed over when it ends.
async fn run_pull(
    engine: &crate::sync::Engine,
    district: &crate::domain::district::District,
    provider: &Provider,
    spec: &PullSpec,
) -> (crate::sync::RunReport, Option<DateTime<Utc>>) {
    let (tx, rx) = mpsc::channel(4);
    let (problems_tx, problems_rx) = tokio::sync::oneshot::channel();
    let pulling = async {
        let outcome = produce(provider, spec, &ImportSettings::default(), tx, None).await;
        let _ = problems_tx.send(outcome.problems);
        outcome.newest_modified
    };
    let problems =
        async { crate::sync::input::SourceEnd::from(problems_rx.await.unwrap_or_default()) };
    let (report, newest) = tokio::join!(
        engine.run(
            district,
            "oneroster_rest",
            plan(spec),
            rx,
            problems,
            crate::sync::engine::RunOptions::default()
        ),
        pulling
    );
    (report.unwrap(), newest)
}

#[tokio::test]
async fn pulled_records_go_through_the_engine_like_bundle_rows() {
    use crate::domain::run::RunStatus;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let db = crate::store::Db::connect_and_migrate(&url).await.unwrap();
    let district = crate::admin::create_district(&db, "lincoln", "Lincoln", "UTC", None)
        .await
        .unwrap();
    let engine = crate::sync::Engine::new(db, 100);
    let user = |given: &str| {
        json!({"sourcedId": "u0", "dateLastModified": "2026-03-01T10:00:00Z", "enabledUser": true,
            "username": "un", "givenName": given, "familyName": "B",
            "roles": [{"roleType": "primary", "role": "student", "org": {"sourcedId": "s1"}}]})
    };
    let mut provider = Provider::with_users(vec![user("A")]);
    provider.links = true;
    let full = spec(OneRosterVersion::V1_2, PullMode::Full);
    let (report, newest) = run_pull(&engine, &district, &provider, &full).await;
    assert_eq!(report.status, RunStatus::Applied, "{:?}", report.errors);
    assert_eq!(report.counts["roles"].created, 1);
    assert_eq!(report.counts["users"].created, 1);
    assert_eq!(report.counts["enrollments"].created, 1);
    let since = newest.expect("a cursor");
    // A delta with a changed user: only that is updated.
    let provider = Provider::with_users(vec![user("Ann")]);
    let delta = spec(OneRosterVersion::V1_2, PullMode::Delta { since });
    let (report, _) = run_pull(&engine, &district, &provider, &delta).await;
    assert_eq!(report.status, RunStatus::Applied, "{:?}", report.errors);
    assert_eq!(report.counts["users"].updated, 1);
    assert_eq!(report.counts["roles"].unchanged, 1);
    // A reference to nothing is named by endpoint, offset and record, and the JSON member.
    let mut provider = Provider::with_users(vec![user("Ann")]);
    provider.collections.get_mut("enrollments").unwrap()[0]["user"] = json!({"sourcedId": "ghost"});
    let (report, _) = run_pull(&engine, &district, &provider, &full).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        report.errors[0].at,
        Location::record("GET /enrollments", Some(0), Some("e1"))
    );
    assert_eq!(report.errors[0].field.as_deref(), Some("user"));
    // A request that fails fails the run: nothing is applied.
    let mut provider = Provider::with_users(vec![user("Changed")]);
    provider.script.insert(("enrollments", 0), Scripted::Fail);
    let (report, _) = run_pull(&engine, &district, &provider, &full).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(
        report.errors[0].at,
        Location::record("GET /enrollments", Some(0), None)
    );
}
