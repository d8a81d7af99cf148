//! Assessment results pushed to `POST …/scores`: signed as Standard Webhooks with the district's
//! push secrets (or sent with a `scores:write` bearer token), their shape checked at receipt,
//! stored before the 202 and listed with the district's deliveries, deduplicated by webhook id.
//! Nothing processes them yet. On both databases.

use crate::common;

use chrono::Utc;
use reqwest::header::HeaderMap;
use rostergate::auth::keys::MasterKey;
use rostergate::auth::push_secrets;
use rostergate::auth::secrets::SecretBox;
use rostergate::events::signing::{self, WebhookSecret};
use rostergate::store::{districts, Db};
use serde_json::{json, Value};

use crate::common::{TestApp, MASTER_KEY, OPERATOR_TOKEN};

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

on_every_backend!(
    a_signed_score_push_is_stored_and_listed_and_not_processed,
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
        // No job is queued for it: nothing would take it up.
        let (_, jobs) = app
            .get("/api/v1/districts/lincoln/jobs", OPERATOR_TOKEN)
            .await;
        assert_eq!(jobs["total"], 0, "{jobs}");
        // Nor is it retried: there is nothing to process it.
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
