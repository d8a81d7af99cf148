//! The provisioning events, end to end: imports over HTTP make every event type of the
//! catalogue, the events API serves them as subscribers receive them, and each one matches its
//! published JSON Schema (contracts/events/<type>.schema.json).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::common::{school, Bundle, TestApp, OPERATOR_TOKEN};
use rostergate::events::catalogue::EVENT_TYPES;
use serde_json::{json, Value};

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts/events")
}

fn schema_of(event_type: &str) -> Value {
    let path = schema_dir().join(format!("{event_type}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks `value` against `schema`, for the JSON Schema keywords the event schemas use; a
/// schema using any other keyword fails, so nothing in them goes unchecked. Every violation is
/// returned with its JSON pointer.
fn violations(schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(schema) = schema.as_object() else {
        return vec![format!("{at}: schema is not an object")];
    };
    for (keyword, rule) in schema {
        match keyword.as_str() {
            "$schema" | "$id" | "title" | "description" => {}
            "type" => {
                let allowed: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                let fits = allowed.iter().any(|t| match *t {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    _ => false,
                });
                if !fits {
                    out.push(format!("{at}: {value} is not of type {rule}"));
                }
            }
            "const" if value != rule => out.push(format!("{at}: {value} is not {rule}")),
            "const" => {}
            "enum" => {
                if !rule.as_array().is_some_and(|vs| vs.contains(value)) {
                    out.push(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "minLength" => {
                if let Some(s) = value.as_str() {
                    if (s.chars().count() as u64) < rule.as_u64().unwrap() {
                        out.push(format!("{at}: shorter than {rule}"));
                    }
                }
            }
            "maxLength" => {
                if let Some(s) = value.as_str() {
                    if (s.chars().count() as u64) > rule.as_u64().unwrap() {
                        out.push(format!("{at}: longer than {rule}"));
                    }
                }
            }
            "minItems" => {
                if let Some(items) = value.as_array() {
                    if (items.len() as u64) < rule.as_u64().unwrap() {
                        out.push(format!("{at}: fewer items than {rule}"));
                    }
                }
            }
            "minimum" => {
                if value.as_f64().is_some_and(|n| n < rule.as_f64().unwrap()) {
                    out.push(format!("{at}: {value} is below {rule}"));
                }
            }
            "format" => {
                assert_eq!(rule, "date-time", "{at}: only date-time is checked");
                if let Some(s) = value.as_str() {
                    if chrono::DateTime::parse_from_rfc3339(s).is_err() {
                        out.push(format!("{at}: {s:?} is not a date-time"));
                    }
                }
            }
            "required" => {
                if let Some(obj) = value.as_object() {
                    for name in rule.as_array().unwrap() {
                        if !obj.contains_key(name.as_str().unwrap()) {
                            out.push(format!("{at}: {name} is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(obj) = value.as_object() {
                    for (name, sub) in rule.as_object().unwrap() {
                        if let Some(member) = obj.get(name) {
                            out.extend(violations(sub, member, &format!("{at}/{name}")));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(obj) = value.as_object() {
                    let known = schema.get("properties").and_then(Value::as_object);
                    for (name, member) in obj {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => {
                                out.push(format!("{at}/{name}: not allowed"));
                            }
                            Value::Bool(true) => {}
                            sub => out.extend(violations(sub, member, &format!("{at}/{name}"))),
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        out.extend(violations(rule, item, &format!("{at}/{i}")));
                    }
                }
            }
            other => out.push(format!("{at}: the test cannot check keyword {other:?}")),
        }
    }
    out
}

#[test]
fn the_validator_refuses_what_a_schema_rules_out() {
    let schema = schema_of("coaching.added");
    let good = json!({
        "id": "evt_1", "type": "coaching.added", "district": "lincoln", "subject": "t/s",
        "occurred_at": "2026-09-01T08:00:00.000Z", "run_id": "r",
        "data": {"teacher": "t", "student": "s"},
    });
    assert_eq!(violations(&schema, &good, ""), Vec::<String>::new());
    let mut bad = good.clone();
    bad["type"] = json!("coaching.removed");
    bad["occurred_at"] = json!("yesterday");
    bad["data"]["name"] = json!("Sam");
    bad["data"].as_object_mut().unwrap().remove("student");
    bad.as_object_mut().unwrap().remove("run_id");
    let found = violations(&schema, &bad, "");
    for want in ["/type", "/occurred_at", "/data/name", "student", "run_id"] {
        assert!(found.iter().any(|v| v.contains(want)), "{want}: {found:?}");
    }
}

#[test]
fn every_catalogue_type_has_a_schema_and_every_schema_is_a_catalogue_type() {
    let files: BTreeSet<String> = std::fs::read_dir(schema_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = EVENT_TYPES
        .iter()
        .map(|t| format!("{t}.schema.json"))
        .collect();
    assert_eq!(files, expected);
    for event_type in EVENT_TYPES {
        let schema = schema_of(event_type);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["properties"]["type"]["const"], *event_type);
        assert_eq!(
            schema["required"],
            json!([
                "id",
                "type",
                "district",
                "subject",
                "occurred_at",
                "run_id",
                "data"
            ])
        );
        assert_eq!(schema["properties"]["data"]["additionalProperties"], false);
        assert!(schema["properties"]["data"]["required"].is_array());
    }
}

/// The district's events, every page of them, following `next_after`.
async fn all_events(app: &TestApp, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    for _ in 0..100 {
        let (status, page) = app
            .get(
                &format!("/api/v1/districts/lincoln/events?after={after}&limit=7{query}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let got = page["events"].as_array().unwrap().clone();
        if got.is_empty() {
            assert_eq!(page["next_after"], Value::Null);
            return events;
        }
        let last = got.last().unwrap()["id"].as_str().unwrap();
        assert_eq!(format!("evt_{}", page["next_after"]), last, "{page}");
        after = page["next_after"].as_i64().unwrap();
        events.extend(got);
    }
    panic!("the event log never ended");
}

fn lines_without(text: &str, drop: &[&str]) -> String {
    text.lines()
        .filter(|l| !drop.iter().any(|d| l.starts_with(d) || l.contains(d)))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The school, then: cls-1 retitled, cls-2 (used) and cls-3 (unused) gone, stu-1 gone, stu-2's
/// e-mail changed, and the aide's enrollment made a teacher's.
fn the_school_changed(base: &Bundle) -> Bundle {
    let classes = lines_without(base.get("classes.csv"), &["cls-2,", "cls-3,"])
        .replace("Algebra I - P1", "Algebra I - Period 1");
    let users = lines_without(base.get("users.csv"), &["stu-1,"])
        .replace("sue@example.org", "sue.two@example.org");
    let enrollments = lines_without(base.get("enrollments.csv"), &[",cls-2,", ",stu-1,"]).replace(
        "e-3,,,cls-1,sch-1,aid-1,aide,",
        "e-3,,,cls-1,sch-1,aid-1,teacher,",
    );
    base.clone()
        .with("classes.csv", &classes)
        .with("users.csv", &users)
        .with("enrollments.csv", &enrollments)
}

on_every_backend!(
    every_event_type_is_made_by_imports_and_matches_its_schema,
    |app| {
        app.create_district_with("lincoln", json!({ "threshold_min_changes": 1 }))
            .await;
        // Sam signed up on their own before the district rostered them: linked, not provisioned.
        let (status, sam) = app
            .post_json(
                "/api/v1/accounts",
                OPERATOR_TOKEN,
                &json!({ "email": "sam@example.org", "given_name": "Sam", "family_name": "One", "role_family": "student" }),
            )
            .await;
        assert_eq!(status, 201, "{sam}");
        let base = school();
        let base = base.clone().with(
            "classes.csv",
            &format!(
                "{}cls-3,,,Geometry,09,crs-1,GEO,scheduled,103,sch-1,trm-1,Math,,3\n",
                base.get("classes.csv")
            ),
        );
        let (status, first) = app.import("lincoln", OPERATOR_TOKEN, &base).await;
        assert_eq!(status, 200, "{first}");

        // A score for stu-1 (identifier S1) places them; their teacher overrides one area.
        let (status, scores) = app
            .post_bytes(
                "/api/v1/districts/lincoln/imports/scores",
                OPERATOR_TOKEN,
                b"TermName,StudentID,Subject,TestStartDate,TestRITScore,Goal1Name,Goal1RitScore\n\
                  Fall 2026-2027,S1,Mathematics,2026-09-14,201,Geometry,199\n"
                    .to_vec(),
            )
            .await;
        assert_eq!(status, 200, "{scores}");
        let overridden = app
            .client
            .put(app.url("/api/v1/districts/lincoln/students/stu-1/plan/math/geometry"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({ "teacher": "tch-1", "unit": "g2-ready-shapes" }))
            .send()
            .await
            .unwrap();
        assert_eq!(overridden.status().as_u16(), 200);

        // Something was done in cls-2: the platform marks it used.
        let db = rostergate::store::Db::connect(&app.db.url).await.unwrap();
        let marked = db
            .conn()
            .execute(
                "UPDATE classes SET used_at = $1 WHERE sourced_id = $2",
                &[chrono::Utc::now().into(), "cls-2".into()],
            )
            .await
            .unwrap();
        assert_eq!(marked, 1);
        db.close().await;

        // The changes delete enough to be held, then an administrator approves them.
        let (status, held) = app
            .import("lincoln", OPERATOR_TOKEN, &the_school_changed(&base))
            .await;
        assert_eq!(status, 202, "{held}");
        assert_eq!(held["status"], "held");
        let held_run = held["run_id"].as_str().unwrap().to_string();
        let (status, applied) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/runs/{held_run}/approve"),
                OPERATOR_TOKEN,
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{applied}");

        let events = all_events(&app, "").await;
        let mut by_type: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for event in &events {
            let event_type = event["type"].as_str().unwrap();
            assert!(EVENT_TYPES.contains(&event_type), "{event}");
            let found = violations(&schema_of(event_type), event, "");
            assert!(found.is_empty(), "{event}: {found:?}");
            assert_eq!(event["district"], "lincoln");
            by_type.entry(event_type).or_default().push(event);
        }
        let missing: Vec<&&str> = EVENT_TYPES
            .iter()
            .filter(|t| !by_type.contains_key(**t))
            .collect();
        assert!(missing.is_empty(), "no event of {missing:?} in {events:#?}");

        // Thin: no person's name or address in any event.
        let text = serde_json::to_string(&events).unwrap();
        for personal in ["example.org", "Sam", "Sue", "Tina", "Syd"] {
            assert!(!text.contains(personal), "{personal} in the events");
        }

        let subjects = |t: &str| -> Vec<&str> {
            by_type[t]
                .iter()
                .map(|e| e["subject"].as_str().unwrap())
                .collect()
        };
        let data_of = |t: &str, subject: &str| -> Vec<Value> {
            by_type[t]
                .iter()
                .filter(|e| e["subject"] == subject)
                .map(|e| e["data"].clone())
                .collect()
        };
        let mut created = subjects("class.created");
        created.sort();
        assert_eq!(created, ["cls-1", "cls-2", "cls-3"]);
        assert_eq!(
            data_of("class.created", "cls-1"),
            [json!({"class": "cls-1", "course": "crs-1", "school": "sch-1"})]
        );
        assert_eq!(
            data_of("class.updated", "cls-1"),
            [json!({"class": "cls-1", "changed": ["title"]})]
        );
        assert_eq!(subjects("class.archived"), ["cls-2"]);
        assert_eq!(subjects("class.removed"), ["cls-3"]);
        assert_eq!(by_type["enrollment.added"].len(), 7 + 1);
        assert_eq!(
            data_of("enrollment.added", "e-4"),
            [json!({"enrollment": "e-4", "class": "cls-1", "user": "stu-1", "role": "student"})]
        );
        // A role change is the enrollment leaving as it was, then coming as it is, in that order.
        let e3: Vec<(&str, &Value)> = events
            .iter()
            .filter(|e| e["subject"] == "e-3")
            .map(|e| (e["type"].as_str().unwrap(), &e["data"]["role"]))
            .collect();
        assert_eq!(
            e3,
            [
                ("enrollment.added", &json!("aide")),
                ("enrollment.removed", &json!("aide")),
                ("enrollment.added", &json!("teacher")),
            ]
        );
        let mut removed = subjects("enrollment.removed");
        removed.sort();
        assert_eq!(removed, ["e-2", "e-3", "e-4", "e-6", "e-7"]);
        assert_eq!(by_type["coaching.added"].len(), 5);
        assert_eq!(
            data_of("coaching.removed", "aid-1/stu-1"),
            [json!({"teacher": "aid-1", "student": "stu-1"})]
        );
        let mut ended = subjects("coaching.removed");
        ended.sort();
        assert_eq!(ended, ["aid-1/stu-1", "tch-1/stu-1"]);

        // Accounts: Sam's own account linked, then no longer rostered; Sue's address changed.
        let sam_id = sam["id"].as_str().unwrap();
        assert_eq!(subjects("account.linked"), [sam_id]);
        assert_eq!(by_type["account.provisioned"].len(), 4);
        assert_eq!(subjects("account.roster_status_changed"), [sam_id]);
        let updated = &by_type["account.updated"];
        assert_eq!(updated.len(), 1, "{updated:?}");
        assert_eq!(updated[0]["data"]["user_sourced_id"], "stu-2");
        assert_eq!(updated[0]["data"]["changed"], json!(["email"]));
        assert_eq!(updated[0]["data"]["account_id"], updated[0]["subject"]);

        // Runs: the first applied, the second held and then applied.
        assert_eq!(subjects("sync_run.held"), [held_run.as_str()]);
        let first_run = first["run_id"].as_str().unwrap();
        assert_eq!(subjects("sync_run.applied"), [first_run, held_run.as_str()]);
        let held_event = &by_type["sync_run.held"][0];
        assert_eq!(held_event["data"]["source"], "oneroster_csv");
        assert_eq!(
            held_event["data"]["counts"]["enrollments"],
            json!({"mode": "bulk", "created": 0, "updated": 1, "deleted": 4})
        );
        let applied_event = by_type["sync_run.applied"][1];
        assert_eq!(applied_event["run_id"], held_run.as_str());
        assert_eq!(
            applied_event["data"]["counts"]["classes"],
            json!({"mode": "bulk", "created": 0, "updated": 1, "deleted": 2})
        );
        // Every change of a run comes before the event saying the run was applied.
        let position = |e: &Value| events.iter().position(|x| x["id"] == e["id"]).unwrap();
        assert!(events
            .iter()
            .filter(|e| e["run_id"] == held_run.as_str() && e["type"] != "sync_run.held")
            .all(|e| position(e) <= position(applied_event)));

        // Filtering by type serves the same envelopes.
        let archived = all_events(&app, "&type=class.archived").await;
        assert_eq!(archived, [by_type["class.archived"][0].clone()]);
    }
);

on_every_backend!(
    the_events_api_refuses_unknown_types_and_bad_cursors,
    |app| {
        app.create_district("lincoln").await;
        for (query, names) in [
            ("type=users.created", "users.created"),
            ("type=", "type"),
            (
                "type=class.created,class.updated",
                "class.created,class.updated",
            ),
            ("after=evt_3", "after"),
            ("after=-1", "after"),
            ("limit=0", "limit"),
        ] {
            let (status, body) = app
                .get(
                    &format!("/api/v1/districts/lincoln/events?{query}"),
                    OPERATOR_TOKEN,
                )
                .await;
            assert_eq!(status, 400, "{query}: {body}");
            assert!(
                body["error"]["message"].as_str().unwrap().contains(names),
                "{query}: {body}"
            );
        }
        let hostile = "x".repeat(3_000);
        let (status, body) = app
            .get(
                &format!("/api/v1/districts/lincoln/events?type={hostile}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 400);
        assert!(
            body.to_string().len() < 2_000,
            "the refusal echoes at most a little"
        );
        let (status, body) = app
            .get(
                "/api/v1/districts/lincoln/events?type=class.created",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({"events": [], "next_after": null}));
    }
);

/// `(type, subject, data)` of one run's events of the types that announce arrivals, sorted.
async fn arrivals_of_run(
    app: &TestApp,
    district: &str,
    run_id: &str,
) -> Vec<(String, String, String)> {
    let mut arrivals: Vec<(String, String, String)> = app
        .events(district)
        .await
        .iter()
        .filter(|e| e["run_id"] == run_id)
        .filter(|e| {
            ["class.created", "enrollment.added", "coaching.added"]
                .contains(&e["type"].as_str().unwrap())
        })
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["subject"].as_str().unwrap().to_string(),
                e["data"].to_string(),
            )
        })
        .collect();
    arrivals.sort();
    arrivals
}

on_every_backend!(
    a_first_import_announces_exactly_what_an_import_over_an_earlier_roster_announces,
    |app| {
        // An empty district: rows, events and coaching go straight in, compared with nothing.
        app.create_district("first").await;
        let (_, first) = app.import("first", OPERATOR_TOKEN, &school()).await;
        assert_eq!(first["status"], "applied", "{first}");

        // The same roster over an earlier one with other classes, people and enrollments:
        // everything is compared with live rows, and the earlier coaching ends.
        let renamed = |text: &str| {
            text.replace("cls-", "old-cls-")
                .replace("tch-", "old-tch-")
                .replace("aid-", "old-aid-")
                .replace("stu-", "old-stu-")
                .replace("\ne-", "\nold-e-")
                .replace("@example.org", "@old.example.org")
        };
        let earlier =
            ["classes.csv", "users.csv", "enrollments.csv"]
                .iter()
                .fold(school(), |b, file| {
                    let text = renamed(b.get(file));
                    b.with(file, &text)
                });
        app.create_district_with("over", json!({ "delete_threshold_percent": 100.0 }))
            .await;
        let (_, before) = app.import("over", OPERATOR_TOKEN, &earlier).await;
        assert_eq!(before["status"], "applied", "{before}");
        let (_, over) = app.import("over", OPERATOR_TOKEN, &school()).await;
        assert_eq!(over["status"], "applied", "{over}");
        assert_eq!(
            over["coaching"]["ended"], before["coaching"]["started"],
            "{over}"
        );
        assert_eq!(
            over["coaching"]["started"], first["coaching"]["started"],
            "{over}"
        );
        assert_eq!(common::count(&over, "enrollments", "created"), 7, "{over}");
        assert_eq!(common::count(&over, "enrollments", "deleted"), 7, "{over}");

        let announced = arrivals_of_run(&app, "first", first["run_id"].as_str().unwrap()).await;
        assert_eq!(
            announced
                .iter()
                .filter(|(t, _, _)| t == "coaching.added")
                .count() as u64,
            first["coaching"]["started"].as_u64().unwrap()
        );
        assert!(announced.iter().any(|(t, _, _)| t == "class.created"));
        assert_eq!(
            announced,
            arrivals_of_run(&app, "over", over["run_id"].as_str().unwrap()).await
        );
    }
);
