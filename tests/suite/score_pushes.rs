//! Assessment results pushed to `POST …/scores`: signed as Standard Webhooks with the district's
//! push secrets (or sent with a `scores:write` bearer token), their shape checked at receipt,
//! stored before the 202 and listed with the district's deliveries, deduplicated by webhook id;
//! then imported by an `inbound_scores` job (matched, stored once per test event, placed), the
//! delivery recording its score import. On both databases.

use crate::common;

use std::time::Duration;

use chrono::Utc;
use reqwest::header::HeaderMap;
use rostergate::auth::keys::MasterKey;
use rostergate::auth::push_secrets;
use rostergate::auth::secrets::SecretBox;
use rostergate::events::signing::{self, WebhookSecret};
use rostergate::startup::Application;
use rostergate::store::{districts, Db};
use serde_json::{json, Value};

use crate::common::{school, TestApp, MASTER_KEY, OPERATOR_TOKEN};

/// Fast polling, so that a push is processed within a test's patience.
const FAST_JOBS: &[(&str, &str)] = &[("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50")];

fn scores_path(district: &str) -> String {
    format!("/api/v1/districts/{district}/scores")
}

/// A new live push secret of the district, made as `push-secret add` makes it.
async fn push_secret(app: &TestApp, district: &str) -> WebhookSecret {
    let db = Db::connect(&app.db.url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    let secrets = SecretBox::new(&MasterKey::from_secret(MASTER_KEY).unwrap());
    let (_, secret) = push_secrets::create(&db, &secrets, district.id)
        .await
        .unwrap();
    db.close().await;
    secret
}

/// Request headers, name and value.
type Headers = Vec<(&'static str, String)>;

/// Sends a body with these headers; the status, JSON body and headers of the answer.
async fn send(
    app: &TestApp,
    district: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Value, HeaderMap) {
    let mut request = app.client.post(app.url(&scores_path(district)));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

/// The Standard Webhooks headers of `body` signed now with `secret`, as JSON.
fn signed(secret: &WebhookSecret, msg_id: &str, body: &[u8]) -> Headers {
    signed_as(secret, msg_id, body, "application/json")
}

fn signed_as(secret: &WebhookSecret, msg_id: &str, body: &[u8], content_type: &str) -> Headers {
    let ts = Utc::now().timestamp();
    vec![
        ("content-type", content_type.to_string()),
        ("webhook-id", msg_id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", signing::sign(secret, msg_id, ts, body)),
    ]
}

fn bearer(token: &str) -> Headers {
    vec![
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {token}")),
    ]
}

/// One MAP-style result for a student, with two goal areas.
fn result(student: &str, rit: i64) -> Value {
    json!({
        "student": {"identifier": student},
        "subject": "Mathematics",
        "course": "Math K-12",
        "term": "Fall 2026-2027",
        "test_date": "2026-09-15",
        "test_name": "Growth: Math 6+",
        "growth_event": true,
        "duration_minutes": 52,
        "rit": rit,
        "standard_error": 3.1,
        "percentile": 58,
        "norms_reference": "2020",
        "goals": [
            {"name": "Operations and Algebraic Thinking", "rit": 219, "standard_error": 6.9,
             "range": {"low": 212, "high": 226}, "adjective": "Avg"},
            {"name": "Geometry", "rit": 224.5, "range": null, "adjective": "HiAvg"}
        ]
    })
}

fn scores(students: &[&str]) -> Vec<u8> {
    let results: Vec<Value> = students.iter().map(|s| result(s, 214)).collect();
    serde_json::to_vec(&json!({ "results": results })).unwrap()
}

async fn delivery(app: &TestApp, district: &str, id: &str) -> (u16, Value) {
    app.get(
        &format!("/api/v1/districts/{district}/inbound/{id}"),
        OPERATOR_TOKEN,
    )
    .await
}

async fn total(app: &TestApp, district: &str, query: &str) -> i64 {
    let (status, listed) = app
        .get(
            &format!("/api/v1/districts/{district}/inbound{query}"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    listed["total"].as_i64().unwrap()
}

/// The body files stored under the data folder.
fn body_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    let root = app.data_dir.path().join("inbound");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            files.push(file.path());
        }
    }
    files
}

/// Every stored body, whether in its delivery's row or in a file.
async fn stored_bodies(app: &TestApp) -> Vec<Vec<u8>> {
    #[derive(sqlx::FromRow)]
    struct Kept {
        body: Vec<u8>,
    }
    let db = Db::connect(&app.db.url).await.unwrap();
    let rows: Vec<Kept> = db
        .conn()
        .fetch_all(
            "SELECT body FROM inbound_deliveries WHERE body IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    db.close().await;
    let mut bodies: Vec<Vec<u8>> = rows.into_iter().map(|k| k.body).collect();
    bodies.extend(body_files(app).iter().map(|f| std::fs::read(f).unwrap()));
    bodies
}

async fn nothing_stored(app: &TestApp, district: &str) {
    assert_eq!(total(app, district, "").await, 0, "no delivery is stored");
    assert!(stored_bodies(app).await.is_empty(), "no body is stored");
}

// Jobs off: the push as stored, before anything takes it up.
on_every_backend!(
    a_signed_score_push_is_stored_and_listed_with_its_job,
    with & [("ROSTERGATE_JOBS__ENABLED", "false")],
    |app| {
        app.create_district("lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let body = scores(&["100234", "100235"]);
        let (status, answer, headers) = send(
            &app,
            "lincoln",
            &signed(&secret, "map-1", &body),
            body.clone(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["status"], "received");
        let id = answer["id"].as_str().unwrap();
        assert_eq!(
            headers["location"].to_str().unwrap(),
            format!("/api/v1/districts/lincoln/inbound/{id}")
        );
        let (status, stored) = delivery(&app, "lincoln", id).await;
        assert_eq!(status, 200, "{stored}");
        assert_eq!(stored["kind"], "scores");
        assert_eq!(stored["status"], "received");
        assert_eq!(stored["webhook_id"], "map-1");
        assert_eq!(stored["content_type"], "application/json");
        assert_eq!(stored["body_bytes"], body.len());
        assert_eq!(stored["attempts"], 0);
        assert_eq!(stored["body_purged_at"], Value::Null);
        // The body as sent, durably, in its row (it is under `inline_body_bytes`).
        assert_eq!(stored_bodies(&app).await, vec![body.clone()]);
        assert!(body_files(&app).is_empty());
        assert_eq!(total(&app, "lincoln", "?status=received").await, 1);
        // Its job was queued with it.
        let (_, jobs) = app
            .get("/api/v1/districts/lincoln/jobs", OPERATOR_TOKEN)
            .await;
        assert_eq!(jobs["total"], 1, "{jobs}");
        assert_eq!(jobs["jobs"][0]["kind"], "inbound_scores", "{jobs}");
        assert_eq!(
            jobs["jobs"][0]["payload"],
            json!({"delivery": id}),
            "{jobs}"
        );
        // Waiting for it, the delivery is not retried.
        let (status, answer) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/inbound/{id}/retry"),
                OPERATOR_TOKEN,
                &json!({}),
            )
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (409, Some("delivery_not_retryable")),
            "{answer}"
        );
    }
);

on_every_backend!(
    bearer_score_pushes_need_scores_write_in_their_own_district,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("hamilton").await;
        let scorer = app.token_for("lincoln", &["scores:write"]).await;
        let admin = app.token_for("lincoln", &["admin"]).await;
        let roster_writer = app
            .token_for("lincoln", &["roster:read", "roster:write"])
            .await;
        let stranger = app.token_for("hamilton", &["scores:write"]).await;
        let body = scores(&["100234"]);
        // (who, token, status)
        let cases = [
            ("roster:write alone", roster_writer.as_str(), 403),
            ("another district's token", stranger.as_str(), 404),
            ("not a token", "not-a-token", 401),
            ("scores:write", scorer.as_str(), 202),
            ("admin", admin.as_str(), 202),
        ];
        for (who, token, wanted) in cases {
            let (status, answer, _) = send(&app, "lincoln", &bearer(token), body.clone()).await;
            assert_eq!(status, wanted, "{who}: {answer}");
        }
        assert_eq!(total(&app, "lincoln", "").await, 2);
        assert_eq!(total(&app, "hamilton", "").await, 0);
        // A scores token pushes no roster.
        let (status, answer) = app
            .post_json(
                "/api/v1/districts/lincoln/roster",
                &scorer,
                &json!({"users": []}),
            )
            .await;
        assert_eq!(status, 403, "{answer}");
    }
);

on_every_backend!(
    score_push_signatures_are_verified_and_refusals_store_nothing,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("hamilton").await;
        let secret = push_secret(&app, "lincoln").await;
        let hamilton = push_secret(&app, "hamilton").await;
        let body = scores(&["100234"]);
        let good = signed(&secret, "sig-1", &body);
        let with = |name: &str, value: String| -> Headers {
            good.iter()
                .map(|(n, v)| (*n, if *n == name { value.clone() } else { v.clone() }))
                .collect()
        };
        let old_ts = Utc::now().timestamp() - 600;
        let mut changed = body.clone();
        let last = changed.len() - 3;
        changed[last] ^= 1;
        let refusals: Vec<(&str, Headers, Vec<u8>)> = vec![
            (
                "no signature headers",
                vec![("content-type", "application/json".into())],
                body.clone(),
            ),
            (
                "another district's secret",
                signed(&hamilton, "sig-1", &body),
                body.clone(),
            ),
            (
                "a secret of no one",
                signed(&WebhookSecret::generate(), "sig-1", &body),
                body.clone(),
            ),
            (
                "an old timestamp",
                {
                    let mut h = with("webhook-timestamp", old_ts.to_string());
                    h.retain(|(n, _)| *n != "webhook-signature");
                    h.push((
                        "webhook-signature",
                        signing::sign(&secret, "sig-1", old_ts, &body),
                    ));
                    h
                },
                body.clone(),
            ),
            (
                "another webhook id",
                with("webhook-id", "sig-2".into()),
                body.clone(),
            ),
            ("a body changed by a byte", good.clone(), changed),
        ];
        for (case, headers, body) in refusals {
            let (status, answer, _) = send(&app, "lincoln", &headers, body).await;
            assert_eq!(status, 401, "{case}: {answer}");
            assert_eq!(
                answer["error"]["code"], "invalid_signature",
                "{case}: {answer}"
            );
            assert!(
                !answer.to_string().contains(secret.to_text().expose()),
                "{case}: a secret echoed"
            );
        }
        nothing_stored(&app, "lincoln").await;
        // Signed with hamilton's secret, it is hamilton's push.
        let (status, answer, _) = send(
            &app,
            "hamilton",
            &signed(&hamilton, "sig-1", &body),
            body.clone(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        let (status, _) = delivery(&app, "lincoln", answer["id"].as_str().unwrap()).await;
        assert_eq!(status, 404, "a delivery is its own district's only");
    }
);

on_every_backend!(
    malformed_score_pushes_are_refused_with_the_pointer_of_each_problem,
    |app| {
        app.create_district("lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let mut bad_types = result("100234", 214);
        bad_types["rit"] = json!("214");
        bad_types["test_date"] = json!("09/15/2026");
        bad_types["goals"][1]["adjective"] = json!("average");
        let mut unknown = result("100234", 214);
        unknown["RitScore"] = json!(214);
        unknown["student"]["email"] = json!("a@example.org");
        let mut missing = result("100234", 214);
        missing.as_object_mut().unwrap().remove("term");
        // (body, the pointers named)
        let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
            (b"{\"results\": [\n{]".to_vec(), vec![""]),
            (b"[]".to_vec(), vec![""]),
            (br#"{"results": []}"#.to_vec(), vec!["/results"]),
            (br#"{"results": null}"#.to_vec(), vec!["/results"]),
            (br#"{"scores": []}"#.to_vec(), vec!["/scores", "/results"]),
            (
                serde_json::to_vec(&json!({"results": [bad_types]})).unwrap(),
                vec![
                    "/results/0/test_date",
                    "/results/0/rit",
                    "/results/0/goals/1/adjective",
                ],
            ),
            (
                serde_json::to_vec(&json!({"results": [result("1", 214), unknown]})).unwrap(),
                vec!["/results/1/RitScore", "/results/1/student/email"],
            ),
            (
                serde_json::to_vec(&json!({"results": [missing]})).unwrap(),
                vec!["/results/0/term"],
            ),
        ];
        for (n, (body, pointers)) in cases.into_iter().enumerate() {
            let headers = signed(&secret, &format!("bad-{n}"), &body);
            let (status, answer, _) = send(&app, "lincoln", &headers, body).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (422, Some("invalid_body")),
                "{n}: {answer}"
            );
            let named: Vec<&str> = answer["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["pointer"].as_str().unwrap())
                .collect();
            assert_eq!(named, pointers, "{n}: {answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("nothing was stored"),
                "{answer}"
            );
        }
        let (_, answer, _) = {
            let body = b"{\"results\": [\n{]".to_vec();
            send(&app, "lincoln", &signed(&secret, "line", &body), body).await
        };
        assert!(
            answer["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("line 2 column"),
            "{answer}"
        );
        // Many problems: the first are listed, all are counted.
        let results: Vec<Value> = (0..200).map(|_| json!({"rit": 1})).collect();
        let body = serde_json::to_vec(&json!({ "results": results })).unwrap();
        let (status, answer, _) =
            send(&app, "lincoln", &signed(&secret, "many", &body), body).await;
        assert_eq!(status, 422);
        assert_eq!(
            answer["error"]["details"].as_array().unwrap().len(),
            20,
            "{answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1000 problem(s)"),
            "{answer}"
        );
        nothing_stored(&app, "lincoln").await;
    }
);

on_every_backend!(
    oversized_empty_and_non_json_score_pushes_are_refused_and_nothing_is_stored,
    with & [("ROSTERGATE_INBOUND__MAX_BODY_BYTES", "2000")],
    |app| {
        app.create_district("lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let large = scores(&["1", "2", "3", "4", "5", "6", "7", "8"]);
        assert!(large.len() > 2000);
        let (status, answer, _) = send(
            &app,
            "lincoln",
            &signed(&secret, "big", &large),
            large.clone(),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (413, Some("payload_too_large")),
            "{answer}"
        );
        let small = scores(&["1"]);
        for content_type in [
            "application/zip",
            "text/csv",
            "application/x-www-form-urlencoded",
        ] {
            let headers = signed_as(&secret, "typed", &small, content_type);
            let (status, answer, _) = send(&app, "lincoln", &headers, small.clone()).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (415, Some("unsupported_media_type")),
                "{content_type}: {answer}"
            );
        }
        let (status, answer, _) =
            send(&app, "lincoln", &signed(&secret, "empty", b""), Vec::new()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{answer}"
        );
        let long_id = "x".repeat(300);
        let (status, answer, _) = send(
            &app,
            "lincoln",
            &signed(&secret, &long_id, &small),
            small.clone(),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        nothing_stored(&app, "lincoln").await;
    }
);

on_every_backend!(
    a_replayed_webhook_id_returns_the_first_answer_and_stores_nothing_new,
    |app| {
        app.create_district("lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let body = scores(&["100234"]);
        let (first, answer, _) = send(
            &app,
            "lincoln",
            &signed(&secret, "map-7", &body),
            body.clone(),
        )
        .await;
        assert_eq!(first, 202, "{answer}");
        let id = answer["id"].clone();
        // Sent again, signed anew (a sender that missed the answer); then with other results.
        let other = scores(&["100235", "100236"]);
        for again in [body.clone(), other] {
            let (status, answer, headers) =
                send(&app, "lincoln", &signed(&secret, "map-7", &again), again).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer, json!({"id": id, "status": "received"}));
            assert!(headers["location"]
                .to_str()
                .unwrap()
                .ends_with(id.as_str().unwrap()));
        }
        // A bearer push with that webhook id is the same delivery too.
        let scorer = app.token_for("lincoln", &["scores:write"]).await;
        let mut headers = bearer(&scorer);
        headers.push(("webhook-id", "map-7".into()));
        let (status, answer, _) = send(&app, "lincoln", &headers, body.clone()).await;
        assert_eq!((status, &answer["id"]), (200, &id), "{answer}");
        assert_eq!(total(&app, "lincoln", "").await, 1);
        assert_eq!(
            stored_bodies(&app).await,
            vec![body.clone()],
            "the first body is the one kept"
        );
    }
);

on_every_backend!(
    a_score_push_over_the_inline_size_is_stored_as_a_file,
    with & [("ROSTERGATE_INBOUND__INLINE_BODY_BYTES", "64")],
    |app| {
        app.create_district("lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let body = scores(&["100234"]);
        assert!(body.len() > 64);
        let (status, answer, _) = send(
            &app,
            "lincoln",
            &signed(&secret, "big", &body),
            body.clone(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        let files = body_files(&app);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0]
            .to_string_lossy()
            .contains(answer["id"].as_str().unwrap()));
        assert_eq!(stored_bodies(&app).await, vec![body]);
        let (status, stored) = delivery(&app, "lincoln", answer["id"].as_str().unwrap()).await;
        assert_eq!(
            (status, &stored["body_bytes"]),
            (200, &json!(body_len(&files[0])))
        );
    }
);

fn body_len(file: &std::path::Path) -> u64 {
    std::fs::metadata(file).unwrap().len()
}

/// Polls a delivery (through the gateway at `address`) until it is no longer waiting.
async fn settled_at(client: &reqwest::Client, address: &str, district: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let delivery: Value = client
            .get(format!(
                "{address}/api/v1/districts/{district}/inbound/{id}"
            ))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = delivery["status"].as_str().unwrap_or_default().to_string();
        if !["received", "processing"].contains(&status.as_str()) {
            return delivery;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery {id} still {status}: {delivery}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn settled(app: &TestApp, district: &str, id: &str) -> Value {
    settled_at(&app.client, &app.address, district, id).await
}

/// Another gateway process on the app's database and data folder (a restart); its address.
async fn second_gateway(app: &TestApp, extra: &[(&str, &str)]) -> String {
    let settings = common::settings_with(&app.db.url, app.data_dir.path(), extra);
    let second = Application::build(settings).await.expect("the app starts");
    let address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    address
}

/// Pushes `body` signed with a new secret of the district; the delivery's id.
async fn push(
    app: &TestApp,
    district: &str,
    secret: &WebhookSecret,
    msg: &str,
    body: &[u8],
) -> String {
    let (status, answer, _) = send(app, district, &signed(secret, msg, body), body.to_vec()).await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

/// The report of score import `id`, as recorded, with its source and label.
async fn score_import(app: &TestApp, id: &str) -> (String, String, Value) {
    #[derive(sqlx::FromRow)]
    struct Import {
        source: String,
        label: String,
        report: String,
    }
    let db = Db::connect(&app.db.url).await.unwrap();
    let import: Import = db
        .conn()
        .fetch_optional(
            "SELECT source, label, report FROM score_imports WHERE id = $1",
            &rostergate::args![id],
        )
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no score import {id}"));
    db.close().await;
    (
        import.source,
        import.label,
        serde_json::from_str(&import.report).unwrap(),
    )
}

/// The score import an applied delivery made: its report, checked to be the push's.
async fn import_of(app: &TestApp, delivery: &Value) -> Value {
    assert_eq!(delivery["status"], "applied", "{delivery}");
    assert_eq!(delivery["errors"], json!([]), "{delivery}");
    let import_id = delivery["run_id"].as_str().expect("the import's id");
    let (source, label, report) = score_import(app, import_id).await;
    assert_eq!((source.as_str(), &json!(label)), ("push", &delivery["id"]));
    assert_eq!(report["source"], "push", "{report}");
    assert_eq!(report["import_id"], import_id, "{report}");
    report
}

async fn plan_of(app: &TestApp, district: &str, student: &str) -> (u16, Value) {
    app.get(
        &format!("/api/v1/districts/{district}/students/{student}/plan"),
        OPERATOR_TOKEN,
    )
    .await
}

/// The math plan's goal area `key` of a plan response.
fn math_area<'a>(plan: &'a Value, key: &str) -> &'a Value {
    plan["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "math")
        .unwrap_or_else(|| panic!("no math plan in {plan}"))["goal_areas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["goal_area"] == key)
        .unwrap_or_else(|| panic!("no goal area {key} in {plan}"))
}

async fn rostered(app: &TestApp, district: &str) {
    app.create_district(district).await;
    let (status, body) = app.import(district, OPERATOR_TOKEN, &school()).await;
    assert_eq!(status, 200, "{body}");
}

async fn score_events(app: &TestApp, district: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/{district}/events?limit=1000"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let t = e["type"].as_str().unwrap();
            t.starts_with("assessment_result.") || t.starts_with("placement.")
        })
        .cloned()
        .collect()
}

on_every_backend!(
    a_push_for_a_rostered_student_is_imported_and_places_them,
    with FAST_JOBS,
    |app| {
        rostered(&app, "lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let id = push(&app, "lincoln", &secret, "map-1", &scores(&["S1"])).await;
        let delivery = settled(&app, "lincoln", &id).await;
        let report = import_of(&app, &delivery).await;
        assert_eq!(delivery["attempts"], 1, "{delivery}");
        assert!(
            delivery.get("run_status").is_none(),
            "an import is no run: {delivery}"
        );
        assert_eq!(report["status"], "applied");
        assert_eq!(
            (&report["received"], &report["new"], &report["matched"]),
            (&json!(1), &json!(1), &json!(1)),
            "{report}"
        );
        assert_eq!(report["students_placed"], 1, "{report}");

        let (status, plan) = plan_of(&app, "lincoln", "stu-1").await;
        assert_eq!(status, 200, "{plan}");
        // The goal area's RIT places it where the result has one…
        let ops = math_area(&plan, "operations-algebra");
        assert_eq!(ops["proposed"]["basis"], "goal_area", "{plan}");
        assert_eq!(ops["proposed"]["rit"], 219.0, "{plan}");
        assert!(ops["proposed"]["unit"].is_string(), "{plan}");
        assert_eq!(ops["effective"]["source"], "proposed");
        assert_eq!(math_area(&plan, "geometry")["proposed"]["rit"], 224.5);
        // …and the overall RIT where it has none.
        let data = math_area(&plan, "measurement-data");
        assert_eq!(data["proposed"]["basis"], "overall", "{plan}");
        assert_eq!(data["proposed"]["rit"], 214.0, "{plan}");

        let (_, jobs) = app
            .get(
                "/api/v1/districts/lincoln/jobs?kind=inbound_scores",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(jobs["total"], 1, "{jobs}");
        assert_eq!(jobs["jobs"][0]["status"], "succeeded", "{jobs}");
        assert_eq!(jobs["jobs"][0]["result"]["run_id"], delivery["run_id"]);
        // Applied, the push is retried no more.
        let (status, answer) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/inbound/{id}/retry"),
                OPERATOR_TOKEN,
                &json!({}),
            )
            .await;
        assert_eq!(status, 409, "{answer}");
    }
);

on_every_backend!(
    the_same_results_pushed_again_under_a_new_webhook_id_change_nothing,
    with FAST_JOBS,
    |app| {
        rostered(&app, "lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let body = scores(&["S1", "S2"]);
        let first = push(&app, "lincoln", &secret, "map-1", &body).await;
        let report = import_of(&app, &settled(&app, "lincoln", &first).await).await;
        assert_eq!((&report["new"], &report["matched"]), (&json!(2), &json!(2)));
        let events = score_events(&app, "lincoln").await;
        let (_, plan) = plan_of(&app, "lincoln", "stu-2").await;

        let again = push(&app, "lincoln", &secret, "map-2", &body).await;
        assert_ne!(again, first, "another webhook id is another delivery");
        let delivery = settled(&app, "lincoln", &again).await;
        let report = import_of(&app, &delivery).await;
        assert_ne!(delivery["run_id"], json!(first), "{delivery}");
        assert_eq!(
            (
                &report["received"],
                &report["new"],
                &report["restated"],
                &report["unchanged"],
                &report["students_placed"]
            ),
            (&json!(2), &json!(0), &json!(0), &json!(2), &json!(0)),
            "{report}"
        );
        assert_eq!(score_events(&app, "lincoln").await, events);
        assert_eq!(plan_of(&app, "lincoln", "stu-2").await.1, plan);
    }
);

on_every_backend!(
    a_pushed_result_for_an_unknown_student_is_kept_and_matched_when_the_roster_brings_them,
    with FAST_JOBS,
    |app| {
        rostered(&app, "lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let id = push(&app, "lincoln", &secret, "map-1", &scores(&["S4"])).await;
        let report = import_of(&app, &settled(&app, "lincoln", &id).await).await;
        assert_eq!(
            (&report["new"], &report["matched"], &report["unmatched"]),
            (&json!(1), &json!(0), &json!(1)),
            "{report}"
        );
        assert_eq!(plan_of(&app, "lincoln", "stu-4").await.0, 404);

        let users = school().get("users.csv").to_string()
            + "stu-4,,,true,sch-1,student,sol,,Sol,Four,,S4,sol@example.org,,,,09,\n";
        let enrollments = school().get("enrollments.csv").to_string()
            + "e-8,,,cls-2,sch-1,stu-4,student,,2026-08-01,2099-06-30\n";
        let bundle = school()
            .with("users.csv", &users)
            .with("enrollments.csv", &enrollments);
        let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &bundle).await;
        assert_eq!(status, 200, "{body}");

        let (status, plan) = plan_of(&app, "lincoln", "stu-4").await;
        assert_eq!(status, 200, "{plan}");
        assert_eq!(
            math_area(&plan, "operations-algebra")["proposed"]["rit"],
            219.0,
            "{plan}"
        );
        let types: Vec<Value> = score_events(&app, "lincoln")
            .await
            .iter()
            .map(|e| e["type"].clone())
            .collect();
        assert_eq!(
            types,
            [json!("assessment_result.received"), json!("placement.generated")]
        );
    }
);

on_every_backend!(
    a_score_push_to_a_busy_district_waits_without_using_an_attempt,
    with & [
        ("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50"),
        ("ROSTERGATE_JOBS__BUSY_RETRY_SECS", "1")
    ],
    |app| {
        rostered(&app, "lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        // A sync holds the district.
        let lock = app.hold_sync_lock("lincoln").await;
        let id = push(&app, "lincoln", &secret, "while-busy", &scores(&["S1"])).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, jobs) = app
                .get(
                    "/api/v1/districts/lincoln/jobs?kind=inbound_scores",
                    OPERATOR_TOKEN,
                )
                .await;
            let job = &jobs["jobs"][0];
            if job["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("try again"))
            {
                assert_eq!(
                    (&job["status"], &job["attempts"]),
                    (&json!("queued"), &json!(0)),
                    "{job}"
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the job never found the district busy: {jobs}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, waiting) = delivery(&app, "lincoln", &id).await;
        assert_eq!(
            (&waiting["status"], &waiting["attempts"]),
            (&json!("received"), &json!(0)),
            "{waiting}"
        );
        lock.release().await.unwrap();
        let delivery = settled(&app, "lincoln", &id).await;
        assert_eq!(delivery["attempts"], 1, "{delivery}");
        assert_eq!(import_of(&app, &delivery).await["matched"], 1);
    }
);

// What a gateway before score pushes were processed left: a delivery `received`, with no job.
on_every_backend!(
    score_pushes_stored_without_a_job_are_queued_once_when_a_gateway_starts,
    with & [("ROSTERGATE_JOBS__ENABLED", "false")],
    |app| {
        rostered(&app, "lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let id = push(&app, "lincoln", &secret, "old", &scores(&["S1"])).await;
        let db = Db::connect(&app.db.url).await.unwrap();
        db.conn()
            .execute("DELETE FROM jobs WHERE kind = 'inbound_scores'", &[])
            .await
            .unwrap();
        db.close().await;
        let jobs = || async {
            let (_, jobs) = app
                .get(
                    "/api/v1/districts/lincoln/jobs?kind=inbound_scores",
                    OPERATOR_TOKEN,
                )
                .await;
            jobs["total"].clone()
        };
        assert_eq!(jobs().await, 0);
        let second = second_gateway(&app, FAST_JOBS).await;
        let delivery = settled_at(&app.client, &second, "lincoln", &id).await;
        assert_eq!(import_of(&app, &delivery).await["matched"], 1);
        // Another start (and another gateway) queues nothing more.
        second_gateway(&app, &[("ROSTERGATE_JOBS__ENABLED", "false")]).await;
        assert_eq!(jobs().await, 1);
        let (_, again) = delivery_at(&app, &second, &id).await;
        assert_eq!(again["attempts"], 1, "{again}");
    }
);

async fn delivery_at(app: &TestApp, address: &str, id: &str) -> (u16, Value) {
    let response = app
        .client
        .get(format!("{address}/api/v1/districts/lincoln/inbound/{id}"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

// The body was checked at receipt; one that no longer reads (changed where it is stored) is
// still read as a stranger's: a refused import, the delivery failed with the problems.
on_every_backend!(
    a_stored_score_body_that_no_longer_reads_fails_its_delivery,
    with & [("ROSTERGATE_JOBS__ENABLED", "false")],
    |app| {
        rostered(&app, "lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let id = push(&app, "lincoln", &secret, "changed", &scores(&["S1"])).await;
        let mut tampered = result("S1", 214);
        tampered["rit"] = json!("high");
        let db = Db::connect(&app.db.url).await.unwrap();
        db.conn()
            .execute(
                "UPDATE inbound_deliveries SET body = $1 WHERE id = $2",
                &rostergate::args![
                    Some(serde_json::to_vec(&json!({ "results": [tampered] })).unwrap()),
                    id.as_str()
                ],
            )
            .await
            .unwrap();
        db.close().await;
        let second = second_gateway(&app, FAST_JOBS).await;
        let delivery = settled_at(&app.client, &second, "lincoln", &id).await;
        assert_eq!(delivery["status"], "failed", "{delivery}");
        assert_eq!(
            delivery["errors"][0]["field"], "/results/0/rit",
            "{delivery}"
        );
        let (source, _, report) = score_import(&app, delivery["run_id"].as_str().unwrap()).await;
        assert_eq!(
            (source.as_str(), &report["status"]),
            ("push", &json!("refused"))
        );
        let (status, results) = app
            .get(
                "/api/v1/districts/lincoln/students/stu-1/results",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!((status, &results["results"]), (200, &json!([])));
    }
);

// One attempt per job (set where the job is enqueued), so that the first failure dead-letters.
on_every_backend!(
    a_dead_lettered_score_push_is_retried_by_an_admin,
    with & [
        ("ROSTERGATE_JOBS__ENABLED", "false"),
        ("ROSTERGATE_JOBS__MAX_ATTEMPTS", "1"),
        ("ROSTERGATE_INBOUND__INLINE_BODY_BYTES", "0")
    ],
    |app| {
        rostered(&app, "lincoln").await;
        let secret = push_secret(&app, "lincoln").await;
        let id = push(&app, "lincoln", &secret, "lost", &scores(&["S1"])).await;
        let files = body_files(&app);
        assert_eq!(files.len(), 1);
        let aside = app.data_dir.path().join("aside.json");
        std::fs::rename(&files[0], &aside).unwrap();
        let second = second_gateway(
            &app,
            &[
                ("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50"),
                ("ROSTERGATE_JOBS__MAX_ATTEMPTS", "1"),
            ],
        )
        .await;
        let delivery = settled_at(&app.client, &second, "lincoln", &id).await;
        assert_eq!(delivery["status"], "dead", "{delivery}");
        std::fs::rename(&aside, &files[0]).unwrap();
        let (status, retried) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/inbound/{id}/retry"),
                OPERATOR_TOKEN,
                &json!({}),
            )
            .await;
        assert_eq!(status, 202, "{retried}");
        let delivery = settled_at(&app.client, &second, "lincoln", &id).await;
        assert_eq!(delivery["attempts"], 2, "{delivery}");
        assert_eq!(import_of(&app, &delivery).await["matched"], 1);
    }
);
