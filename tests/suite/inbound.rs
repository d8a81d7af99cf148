//! Rosters pushed to `POST …/roster`: signed as Standard Webhooks (or sent with a bearer token),
//! stored before the 202, processed by a background job through the sync engine, deduplicated by
//! webhook id, dead-lettered when the gateway cannot process them, and retried by an admin; their
//! bodies deleted once final for the retention. On both databases.

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

use crate::common::{TestApp, MASTER_KEY, OPERATOR_TOKEN};

/// Fast polling, so that a push is processed within a test's patience.
const FAST_JOBS: &[(&str, &str)] = &[("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50")];

fn roster_path(district: &str) -> String {
    format!("/api/v1/districts/{district}/roster")
}

/// A new live push secret of the district, made as `push-secret add` makes it.
async fn push_secret(app: &TestApp, district: &str) -> (String, WebhookSecret) {
    let db = Db::connect(&app.db.url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    let secrets = SecretBox::new(&MasterKey::from_secret(MASTER_KEY).unwrap());
    let (stored, secret) = push_secrets::create(&db, &secrets, district.id)
        .await
        .unwrap();
    db.close().await;
    (stored.id, secret)
}

async fn revoke(app: &TestApp, district: &str, id: &str) {
    let db = Db::connect(&app.db.url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    assert!(
        rostergate::store::push_secrets::revoke(&db, district.id, id)
            .await
            .unwrap()
    );
    db.close().await;
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
    let mut request = app.client.post(app.url(&roster_path(district)));
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

/// The Standard Webhooks headers of `body` signed now with `secret`, and its content type.
fn signed(
    secret: &WebhookSecret,
    msg_id: &str,
    body: &[u8],
    content_type: &str,
) -> Vec<(&'static str, String)> {
    let ts = Utc::now().timestamp();
    vec![
        ("content-type", content_type.to_string()),
        ("webhook-id", msg_id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", signing::sign(secret, msg_id, ts, body)),
    ]
}

async fn push_json(
    app: &TestApp,
    district: &str,
    secret: &WebhookSecret,
    msg_id: &str,
    body: &Value,
) -> (u16, Value, HeaderMap) {
    let bytes = serde_json::to_vec(body).unwrap();
    let headers = signed(secret, msg_id, &bytes, "application/json");
    send(app, district, &headers, bytes).await
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

/// Another gateway process on the app's database and data folder.
async fn second_gateway(app: &TestApp, extra: &[(&str, &str)]) -> String {
    let settings = common::settings_with(&app.db.url, app.data_dir.path(), extra);
    let second = Application::build(settings).await.expect("the app starts");
    let address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    address
}

fn org(id: &str, kind: &str, parent: Option<&str>) -> Value {
    let mut org = json!({"sourcedId": id, "status": "active", "dateLastModified": "2026-08-01T00:00:00Z",
        "name": format!("Org {id}"), "type": kind});
    if let Some(parent) = parent {
        org["parent"] = json!({"sourcedId": parent, "type": "org"});
    }
    org
}

fn user(id: &str, role: &str) -> Value {
    json!({"sourcedId": id, "status": "active", "dateLastModified": "2026-08-01T00:00:00Z",
        "enabledUser": true, "orgs": [{"sourcedId": "sch-1", "type": "org"}], "role": role,
        "username": id, "givenName": "Given", "familyName": "Family"})
}

/// A school as OneRoster JSON: orgs, a year and term, a course, a class, a teacher and two
/// students enrolled in it.
fn school_json(mode: &str) -> Value {
    let reference = |id: &str, kind: &str| json!({"sourcedId": id, "type": kind});
    let enrollment = |id: &str, user: &str, role: &str| {
        json!({"sourcedId": id, "status": "active", "dateLastModified": "2026-08-01T00:00:00Z",
            "user": reference(user, "user"), "class": reference("cls-1", "class"),
            "school": reference("sch-1", "org"), "role": role, "beginDate": "2026-08-01", "endDate": "2099-06-30"})
    };
    json!({
        "mode": mode,
        "version": "1.1",
        "orgs": [org("dst-1", "district", None), org("sch-1", "school", Some("dst-1"))],
        "academicSessions": [
            {"sourcedId": "yr-1", "status": "active", "dateLastModified": "2026-08-01T00:00:00Z", "title": "2026-2099",
             "type": "schoolYear", "startDate": "2026-08-01", "endDate": "2099-06-30", "schoolYear": "2099"},
            {"sourcedId": "trm-1", "status": "active", "dateLastModified": "2026-08-01T00:00:00Z", "title": "Fall",
             "type": "term", "startDate": "2026-08-01", "endDate": "2099-06-30", "schoolYear": "2099",
             "parent": reference("yr-1", "academicSession")}
        ],
        "courses": [{"sourcedId": "crs-1", "status": "active", "dateLastModified": "2026-08-01T00:00:00Z",
            "title": "Algebra I", "schoolYear": reference("yr-1", "academicSession"), "courseCode": "ALG1",
            "org": reference("sch-1", "org")}],
        "classes": [{"sourcedId": "cls-1", "status": "active", "dateLastModified": "2026-08-01T00:00:00Z",
            "title": "Algebra I - P1", "classType": "scheduled", "course": reference("crs-1", "course"),
            "school": reference("sch-1", "org"), "terms": [reference("trm-1", "academicSession")]}],
        "users": [user("tch-1", "teacher"), user("stu-1", "student"), user("stu-2", "student")],
        "enrollments": [enrollment("e-1", "tch-1", "teacher"), enrollment("e-2", "stu-1", "student"),
            enrollment("e-3", "stu-2", "student")]
    })
}

/// Posts `body` in chunked transfer encoding (no Content-Length); the answer's status.
async fn chunked_post(
    app: &TestApp,
    district: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
        roster_path(district)
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    for chunk in body.chunks(500) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    request.push_str("0\r\n\r\n");
    // The server may answer and close before all of it is written.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

async fn total(app: &TestApp, district: &str, query: &str) -> i64 {
    let r = app
        .client
        .get(app.url(&format!("/api/v1/districts/{district}/inbound{query}")))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let header: i64 = r.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["total"], header);
    header
}

async fn run_count(app: &TestApp, district: &str) -> usize {
    let (status, runs) = app
        .get(
            &format!("/api/v1/districts/{district}/runs"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{runs}");
    runs["runs"].as_array().unwrap().len()
}

/// Bodies over this many bytes are files (every roster in these tests is), smaller ones rows.
const SMALL_INLINE: (&str, &str) = ("ROSTERGATE_INBOUND__INLINE_BODY_BYTES", "64");
/// Every body a file.
const FILE_BODIES: (&str, &str) = ("ROSTERGATE_INBOUND__INLINE_BODY_BYTES", "0");

/// The bodies kept in their deliveries' rows: (delivery id, bytes).
async fn bodies_in_rows(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    #[derive(sqlx::FromRow)]
    struct Kept {
        id: String,
        body: Vec<u8>,
    }
    let db = Db::connect(&app.db.url).await.unwrap();
    let rows: Vec<Kept> = db
        .conn()
        .fetch_all(
            "SELECT id, body FROM inbound_deliveries WHERE body IS NOT NULL ORDER BY created_at",
            &[],
        )
        .await
        .unwrap();
    db.close().await;
    rows.into_iter().map(|k| (k.id, k.body)).collect()
}

/// The body files stored under the data folder (temporary copies aside).
fn stored_bodies(app: &TestApp) -> Vec<std::path::PathBuf> {
    let root = app.data_dir.path().join("inbound");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        if dir.file_name() == "tmp" {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            files.push(file.path());
        }
    }
    files
}

/// A pushed zip (or JSON) small enough is kept in its row, and a temporary copy of it (for the
/// CSV importer) is gone once it has been processed.
fn no_body_files(app: &TestApp) {
    assert!(stored_bodies(app).is_empty(), "{:?}", stored_bodies(app));
    let tmp = app.data_dir.path().join("inbound").join("tmp");
    let left: Vec<_> = std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(left.is_empty(), "temporary copies left: {left:?}");
}

on_every_backend!(a_signed_json_push_is_stored_then_applied_and_the_roster_is_readable, with FAST_JOBS, |app| {
    app.create_district("lincoln").await;
    let (_, secret) = push_secret(&app, "lincoln").await;
    let (status, body, headers) = push_json(&app, "lincoln", &secret, "msg-1", &school_json("bulk")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "received");
    let id = body["id"].as_str().unwrap();
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("/api/v1/districts/lincoln/inbound/{id}")
    );
    // Under `inline_body_bytes`: the body is in its row, as sent, and no file is written.
    let sent = serde_json::to_vec(&school_json("bulk")).unwrap();
    assert_eq!(bodies_in_rows(&app).await, vec![(id.to_string(), sent)]);
    let delivery = settled(&app, "lincoln", id).await;
    no_body_files(&app);
    assert_eq!(delivery["status"], "applied", "{delivery}");
    assert_eq!(delivery["webhook_id"], "msg-1");
    assert_eq!(delivery["kind"], "roster");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["errors"], json!([]));
    let run_id = delivery["run_id"].as_str().unwrap();
    let (_, run) = app.get(&format!("/api/v1/districts/lincoln/runs/{run_id}"), OPERATOR_TOKEN).await;
    assert_eq!(run["source"], "oneroster_push");
    assert_eq!(common::count(&run, "users", "created"), 3);
    let reader = app.token_for("lincoln", &["roster:read"]).await;
    let (status, user) = app.get("/api/v1/districts/lincoln/users/stu-1", &reader).await;
    assert_eq!(status, 200, "{user}");
    let (status, classes) = app.get("/api/v1/districts/lincoln/users/tch-1/classes", &reader).await;
    assert_eq!(status, 200, "{classes}");
    assert_eq!(total(&app, "lincoln", "").await, 1);
    assert_eq!(total(&app, "lincoln", "?status=applied").await, 1);
    assert_eq!(total(&app, "lincoln", "?status=dead").await, 0);
    let (status, listed) = app.get("/api/v1/districts/lincoln/inbound?limit=1", &reader).await;
    assert_eq!(status, 200);
    assert_eq!(listed["deliveries"][0]["id"], id);
    let (status, _) = app.get("/api/v1/districts/lincoln/inbound?status=lost", &reader).await;
    assert_eq!(status, 400);
});

on_every_backend!(a_zip_push_is_applied_through_the_csv_importer, with FAST_JOBS, |app| {
    app.create_district("lincoln").await;
    let (_, secret) = push_secret(&app, "lincoln").await;
    let zip = common::school().zip();
    let headers = signed(&secret, "zip-1", &zip, "application/zip");
    let (status, body, _) = send(&app, "lincoln", &headers, zip).await;
    assert_eq!(status, 202, "{body}");
    let delivery = settled(&app, "lincoln", body["id"].as_str().unwrap()).await;
    assert_eq!(delivery["status"], "applied", "{delivery}");
    assert_eq!(delivery["content_type"], "application/zip");
    // Kept in its row (the importer read a temporary copy, since deleted).
    assert_eq!(bodies_in_rows(&app).await.len(), 1);
    no_body_files(&app);
    let (status, _) = app.get("/api/v1/districts/lincoln/users/stu-3", OPERATOR_TOKEN).await;
    assert_eq!(status, 200);
});

on_every_backend!(
    pushes_over_the_inline_size_are_files_and_are_applied_too,
    with & [FAST_JOBS[0], SMALL_INLINE],
    |app| {
        app.create_district("lincoln").await;
        let (_, secret) = push_secret(&app, "lincoln").await;
        let (status, answer, _) =
            push_json(&app, "lincoln", &secret, "big-json", &school_json("bulk")).await;
        assert_eq!(status, 202, "{answer}");
        let json_id = answer["id"].as_str().unwrap().to_string();
        let zip = common::school().zip();
        let headers = signed(&secret, "big-zip", &zip, "application/zip");
        let (status, answer, _) = send(&app, "lincoln", &headers, zip.clone()).await;
        assert_eq!(status, 202, "{answer}");
        let zip_id = answer["id"].as_str().unwrap().to_string();
        assert!(
            bodies_in_rows(&app).await.is_empty(),
            "both bodies are over 64 bytes"
        );
        let files = stored_bodies(&app);
        assert_eq!(files.len(), 2, "{files:?}");
        let zip_file = files
            .iter()
            .find(|f| f.to_string_lossy().contains(&zip_id))
            .unwrap();
        assert_eq!(std::fs::read(zip_file).unwrap(), zip);
        for id in [&json_id, &zip_id] {
            let delivery = settled(&app, "lincoln", id).await;
            assert_eq!(delivery["status"], "applied", "{delivery}");
        }
        let (status, _) = app
            .get("/api/v1/districts/lincoln/users/stu-3", OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 200);
    }
);

on_every_backend!(the_same_webhook_id_twice_is_one_delivery_and_one_run, with FAST_JOBS, |app| {
    app.create_district("lincoln").await;
    let (_, secret) = push_secret(&app, "lincoln").await;
    let roster = school_json("bulk");
    let (first, body, _) = push_json(&app, "lincoln", &secret, "msg-7", &roster).await;
    assert_eq!(first, 202, "{body}");
    let id = body["id"].clone();
    // Sent again (a sender that missed the answer), signed anew.
    let (again, body, headers) = push_json(&app, "lincoln", &secret, "msg-7", &roster).await;
    assert_eq!(again, 200, "{body}");
    assert_eq!(body["id"], id);
    assert_eq!(body["status"], "received");
    assert!(headers["location"].to_str().unwrap().ends_with(id.as_str().unwrap()));
    settled(&app, "lincoln", id.as_str().unwrap()).await;
    let (again, body, _) = push_json(&app, "lincoln", &secret, "msg-7", &roster).await;
    assert_eq!((again, &body["id"]), (200, &id));
    assert_eq!(total(&app, "lincoln", "").await, 1);
    assert_eq!(run_count(&app, "lincoln").await, 1);
    assert_eq!(bodies_in_rows(&app).await.len(), 1);
    assert!(stored_bodies(&app).is_empty());
});

on_every_backend!(
    the_same_webhook_id_twice_writes_one_body_file,
    with & [FAST_JOBS[0], FILE_BODIES],
    |app| {
        app.create_district("lincoln").await;
        let (_, secret) = push_secret(&app, "lincoln").await;
        let roster = school_json("bulk");
        let (first, body, _) = push_json(&app, "lincoln", &secret, "msg-8", &roster).await;
        assert_eq!(first, 202, "{body}");
        let (again, _, _) = push_json(&app, "lincoln", &secret, "msg-8", &roster).await;
        assert_eq!(again, 200);
        assert_eq!(stored_bodies(&app).len(), 1);
        assert!(bodies_in_rows(&app).await.is_empty());
    }
);

on_every_backend!(signatures_are_verified_through_http, with FAST_JOBS, |app| {
    app.create_district("lincoln").await;
    let (old_id, old) = push_secret(&app, "lincoln").await;
    let (_, new) = push_secret(&app, "lincoln").await;
    let other = WebhookSecret::generate();
    let body = serde_json::to_vec(&json!({"mode": "delta", "users": []})).unwrap();
    let good = signed(&new, "sig-1", &body, "application/json");
    let with = |name: &str, value: String| -> Vec<(&'static str, String)> {
        good.iter()
            .map(|(n, v)| (*n, if *n == name { value.clone() } else { v.clone() }))
            .collect()
    };
    let without = |name: &str| -> Vec<(&'static str, String)> {
        good.iter().filter(|(n, _)| *n != name).cloned().collect()
    };
    let signature = good.iter().find(|(n, _)| *n == "webhook-signature").unwrap().1.clone();
    let old_ts = Utc::now().timestamp() - 600;
    let mut changed = body.clone();
    changed[2] ^= 1;
    let refusals: Vec<(&str, Headers, Vec<u8>, &str)> = vec![
        ("no signature headers", vec![("content-type", "application/json".into())], body.clone(), "webhook-id header is missing"),
        ("no signature", without("webhook-signature"), body.clone(), "webhook-signature header is missing"),
        ("v1, alone", with("webhook-signature", "v1,".into()), body.clone(), "matches"),
        ("another secret", with("webhook-signature", signing::sign(&other, "sig-1", Utc::now().timestamp(), &body)), body.clone(), "matches"),
        ("truncated", with("webhook-signature", signature[..signature.len() - 4].to_string()), body.clone(), "matches"),
        ("an old timestamp", {
            let mut h = with("webhook-timestamp", old_ts.to_string());
            h.retain(|(n, _)| *n != "webhook-signature");
            h.push(("webhook-signature", signing::sign(&new, "sig-1", old_ts, &body)));
            h
        }, body.clone(), "old"),
        ("a body changed by a byte", good.clone(), changed, "matches"),
    ];
    for (case, headers, body, wanted) in refusals {
        let (status, answer, _) = send(&app, "lincoln", &headers, body).await;
        assert_eq!(status, 401, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_signature", "{case}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(wanted), "{case}: {message}");
        for secret in [&old, &new] {
            let text = secret.to_text();
            assert!(!answer.to_string().contains(text.expose()), "{case}: a secret echoed");
        }
    }
    assert_eq!(total(&app, "lincoln", "").await, 0, "nothing refused is stored");
    // A rotation: both live secrets are accepted.
    for (secret, msg) in [(&old, "rot-old"), (&new, "rot-new")] {
        let headers = signed(secret, msg, &body, "application/json");
        let (status, answer, _) = send(&app, "lincoln", &headers, body.clone()).await;
        assert_eq!(status, 202, "{msg}: {answer}");
    }
    revoke(&app, "lincoln", &old_id).await;
    let headers = signed(&old, "rot-revoked", &body, "application/json");
    let (status, answer, _) = send(&app, "lincoln", &headers, body.clone()).await;
    assert_eq!(status, 401, "a revoked secret: {answer}");
    // A district that does not exist.
    let headers = signed(&new, "nowhere-1", &body, "application/json");
    let (status, answer, _) = send(&app, "nowhere", &headers, body.clone()).await;
    assert_eq!(status, 404, "{answer}");
});

on_every_backend!(bearer_pushes_need_roster_write_in_their_own_district, with FAST_JOBS, |app| {
    app.create_district("lincoln").await;
    app.create_district("hamilton").await;
    let writer = app.token_for("lincoln", &["roster:write"]).await;
    let reader = app.token_for("lincoln", &["roster:read"]).await;
    let stranger = app.token_for("hamilton", &["roster:write", "roster:read"]).await;
    let body = serde_json::to_vec(&school_json("bulk")).unwrap();
    let bearer = |token: &str| {
        vec![
            ("content-type", "application/json".to_string()),
            ("authorization", format!("Bearer {token}")),
        ]
    };
    let (status, answer, _) = send(&app, "lincoln", &bearer(&reader), body.clone()).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer, _) = send(&app, "lincoln", &bearer(&stranger), body.clone()).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer, _) = send(&app, "lincoln", &bearer("not-a-token"), body.clone()).await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer, _) = send(&app, "lincoln", &bearer(&writer), body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap();
    assert_eq!(settled(&app, "lincoln", id).await["status"], "applied");
    let (status, _) = app.get(&format!("/api/v1/districts/lincoln/inbound/{id}"), &stranger).await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/api/v1/districts/lincoln/inbound", &stranger).await;
    assert_eq!(status, 404);
    let (status, _) = app.get(&format!("/api/v1/districts/hamilton/inbound/{id}"), &stranger).await;
    assert_eq!(status, 404, "a delivery of another district is not found in one's own");
});

on_every_backend!(
    oversized_and_unsupported_bodies_are_refused_and_nothing_is_stored,
    with & [("ROSTERGATE_INBOUND__MAX_BODY_BYTES", "2000")],
    |app| {
        app.create_district("lincoln").await;
        let (_, secret) = push_secret(&app, "lincoln").await;
        let large = serde_json::to_vec(&school_json("bulk")).unwrap();
        assert!(large.len() > 2000);
        let (status, answer, _) = send(
            &app,
            "lincoln",
            &signed(&secret, "big", &large, "application/json"),
            large.clone(),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (413, Some("payload_too_large")),
            "{answer}"
        );
        // Sent in chunks, with no length announced: refused while it is read.
        let headers = signed(&secret, "big-stream", &large, "application/json");
        assert_eq!(chunked_post(&app, "lincoln", &headers, &large).await, 413);
        let small = b"sourcedId\n".to_vec();
        let (status, answer, _) = send(
            &app,
            "lincoln",
            &signed(&secret, "csv", &small, "text/csv"),
            small.clone(),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (415, Some("unsupported_media_type")),
            "{answer}"
        );
        assert_eq!(total(&app, "lincoln", "").await, 0);
        assert!(stored_bodies(&app).is_empty());
    }
);

on_every_backend!(malformed_pushes_fail_with_where_they_are_wrong, with FAST_JOBS, |app| {
    app.create_district("lincoln").await;
    let (_, secret) = push_secret(&app, "lincoln").await;
    // A body whose shape is wrong is refused as it arrives, saying where; nothing is stored.
    let broken = b"{\"mode\": \"delta\",\n\"users\": [\n{]".to_vec();
    let headers = signed(&secret, "broken", &broken, "application/json");
    let (status, answer, _) = send(&app, "lincoln", &headers, broken).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("invalid_body")), "{answer}");
    let error = &answer["error"]["details"][0];
    assert_eq!((&error["file"], &error["line"]), (&json!("POST /roster"), &json!(3)), "{answer}");
    assert!(error["message"].as_str().unwrap().contains("line 3 column"), "{error}");
    // (body, field named)
    for (body, field) in [
        (json!({"users": [1]}), "/users/0"),
        (json!({"users": {}}), "users"),
        (json!({"mode": "sometimes", "users": []}), "mode"),
        (json!({"users": [], "teachers": []}), "teachers"),
        (json!({"users": [], "enrollments": null}), "enrollments"),
        (json!({"users": [], "mode": null}), "mode"),
    ] {
        let bytes = serde_json::to_vec(&body).unwrap();
        let headers = signed(&secret, &format!("shape-{field}"), &bytes, "application/json");
        let (status, answer, _) = send(&app, "lincoln", &headers, bytes).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{body}: {answer}");
    }
    assert_eq!(total(&app, "lincoln", "").await, 0);
    assert!(stored_bodies(&app).is_empty());
    // A record that is wrong is named by its collection and index.
    let mut roster = school_json("bulk");
    roster["users"][1]["role"] = json!("wizard");
    let (status, answer, _) = push_json(&app, "lincoln", &secret, "bad-role", &roster).await;
    assert_eq!(status, 202, "{answer}");
    let delivery = settled(&app, "lincoln", answer["id"].as_str().unwrap()).await;
    assert_eq!(delivery["status"], "failed", "{delivery}");
    let errors = delivery["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["endpoint"] == "POST /roster users" && e["offset"] == 1 && e["sourcedId"] == "stu-1" && e["field"] == "role"),
        "{delivery}"
    );
    let (status, _) = app.get("/api/v1/districts/lincoln/users/stu-1", OPERATOR_TOKEN).await;
    assert_eq!(status, 404, "nothing of a failed push is applied");
});

on_every_backend!(a_push_that_would_delete_most_users_is_held, with FAST_JOBS, |app| {
    app.create_district_with("lincoln", json!({"threshold_min_changes": 1})).await;
    let (_, secret) = push_secret(&app, "lincoln").await;
    let users: Vec<Value> = (1..=6).map(|n| user(&format!("stu-{n}"), "student")).collect();
    let first = json!({"mode": "bulk", "orgs": [org("dst-1", "district", None), org("sch-1", "school", Some("dst-1"))], "users": users});
    let (_, answer, _) = push_json(&app, "lincoln", &secret, "full", &first).await;
    assert_eq!(settled(&app, "lincoln", answer["id"].as_str().unwrap()).await["status"], "applied");
    let second = json!({"mode": "bulk", "users": [user("stu-1", "student")]});
    let (_, answer, _) = push_json(&app, "lincoln", &secret, "mass-deletion", &second).await;
    let delivery = settled(&app, "lincoln", answer["id"].as_str().unwrap()).await;
    assert_eq!(delivery["status"], "held", "{delivery}");
    let (_, run) = app
        .get(&format!("/api/v1/districts/lincoln/runs/{}", delivery["run_id"].as_str().unwrap()), OPERATOR_TOKEN)
        .await;
    assert_eq!(run["status"], "held", "{run}");
    assert_eq!(delivery["run_status"], "held");
    let admin = app.token_for("lincoln", &["admin"]).await;
    let (status, _) = app
        .post_json(&format!("/api/v1/districts/lincoln/runs/{}/discard", delivery["run_id"].as_str().unwrap()), &admin, &json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, delivery) = app
        .get(&format!("/api/v1/districts/lincoln/inbound/{}", delivery["id"].as_str().unwrap()), OPERATOR_TOKEN)
        .await;
    assert_eq!((&delivery["status"], &delivery["run_status"]), (&json!("held"), &json!("discarded")), "{delivery}");
    let (status, _) = app.get("/api/v1/districts/lincoln/users/stu-6", OPERATOR_TOKEN).await;
    assert_eq!(status, 200, "a held push deletes nothing");
});

on_every_backend!(
    a_push_no_process_took_up_is_processed_after_a_restart,
    with & [("ROSTERGATE_JOBS__ENABLED", "false")],
    |app| {
        app.create_district("lincoln").await;
        let (_, secret) = push_secret(&app, "lincoln").await;
        let (status, answer, _) = push_json(
            &app,
            "lincoln",
            &secret,
            "before-restart",
            &school_json("bulk"),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        let id = answer["id"].as_str().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, delivery) = app
            .get(
                &format!("/api/v1/districts/lincoln/inbound/{id}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(delivery["status"], "received", "{delivery}");
        assert!(stored_bodies(&app).is_empty(), "the body is in its row");
        // The gateway restarted (another process on the same database and data folder).
        let second = second_gateway(&app, FAST_JOBS).await;
        let delivery = settled_at(&app.client, &second, "lincoln", id).await;
        assert_eq!(delivery["status"], "applied", "{delivery}");
        let (status, _) = app
            .get("/api/v1/districts/lincoln/users/stu-2", OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 200);
    }
);

// One attempt per job (set where the job is enqueued), so that the first failure dead-letters.
on_every_backend!(
    a_push_whose_body_file_is_gone_is_dead_lettered_and_an_admin_retries_it,
    with & [
        ("ROSTERGATE_JOBS__ENABLED", "false"),
        ("ROSTERGATE_JOBS__MAX_ATTEMPTS", "1"),
        FILE_BODIES
    ],
    |app| {
        app.create_district("lincoln").await;
        let (_, secret) = push_secret(&app, "lincoln").await;
        let (_, answer, _) =
            push_json(&app, "lincoln", &secret, "lost-body", &school_json("bulk")).await;
        let id = answer["id"].as_str().unwrap().to_string();
        let bodies = stored_bodies(&app);
        assert_eq!(bodies.len(), 1);
        let aside = app.data_dir.path().join("aside.json");
        std::fs::rename(&bodies[0], &aside).unwrap();
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
        assert!(
            delivery["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("missing"),
            "{delivery}"
        );
        assert_eq!(total(&app, "lincoln", "?status=dead").await, 1);
        let retry = format!("/api/v1/districts/lincoln/inbound/{id}/retry");
        let reader = app
            .token_for("lincoln", &["roster:read", "roster:write"])
            .await;
        let (status, _) = app.post_json(&retry, &reader, &json!({})).await;
        assert_eq!(status, 403, "retrying needs admin");
        std::fs::rename(&aside, &bodies[0]).unwrap();
        let admin = app.token_for("lincoln", &["admin"]).await;
        let (status, retried) = app.post_json(&retry, &admin, &json!({})).await;
        assert_eq!(status, 202, "{retried}");
        assert_eq!(retried["status"], "received");
        let delivery = settled_at(&app.client, &second, "lincoln", &id).await;
        assert_eq!(delivery["status"], "applied", "{delivery}");
        assert_eq!(delivery["attempts"], 2);
        let (status, answer) = app.post_json(&retry, &admin, &json!({})).await;
        assert_eq!(status, 409, "an applied delivery is not retried: {answer}");
    }
);

// A process took the push's only attempt and died: the next gateway dead-letters the delivery.
on_every_backend!(
    a_push_whose_last_attempt_died_with_its_process_is_dead_lettered,
    with & [
        ("ROSTERGATE_JOBS__ENABLED", "false"),
        ("ROSTERGATE_JOBS__MAX_ATTEMPTS", "1")
    ],
    |app| {
        app.create_district("lincoln").await;
        let (_, secret) = push_secret(&app, "lincoln").await;
        let (_, answer, _) =
            push_json(&app, "lincoln", &secret, "died", &school_json("bulk")).await;
        let id = answer["id"].as_str().unwrap().to_string();
        assert_eq!(
            bodies_in_rows(&app).await.len(),
            1,
            "the body is in its row"
        );
        // What a process that claimed the job and was killed leaves behind.
        let db = rostergate::store::Db::connect(&app.db.url).await.unwrap();
        let now = chrono::Utc::now();
        let job = rostergate::store::jobs::claim(
            &db,
            "a-gateway-that-died",
            &["inbound_roster".to_string()],
            chrono::Duration::milliseconds(1),
            now,
        )
        .await
        .unwrap()
        .expect("the push's job is there to claim");
        rostergate::store::inbound::start(&db, job.district_id, &id, now)
            .await
            .unwrap();
        db.close().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
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
        assert!(
            delivery["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("stopped before it finished"),
            "{delivery}"
        );
        let admin = app.token_for("lincoln", &["admin"]).await;
        let retry = format!("/api/v1/districts/lincoln/inbound/{id}/retry");
        let (status, retried) = app.post_json(&retry, &admin, &json!({})).await;
        assert_eq!(status, 202, "{retried}");
        let delivery = settled_at(&app.client, &second, "lincoln", &id).await;
        assert_eq!(delivery["status"], "applied", "{delivery}");
    }
);

on_every_backend!(
    a_push_to_a_district_busy_with_another_sync_waits_without_using_an_attempt,
    with & [
        ("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50"),
        ("ROSTERGATE_JOBS__BUSY_RETRY_SECS", "1")
    ],
    |app| {
        app.create_district("lincoln").await;
        let (_, secret) = push_secret(&app, "lincoln").await;
        // Another sync holds the district.
        let lock = app.hold_sync_lock("lincoln").await;
        let (status, answer, _) =
            push_json(&app, "lincoln", &secret, "while-busy", &school_json("bulk")).await;
        assert_eq!(status, 202, "{answer}");
        let id = answer["id"].as_str().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, jobs) = app
                .get(
                    "/api/v1/districts/lincoln/jobs?kind=inbound_roster",
                    OPERATOR_TOKEN,
                )
                .await;
            let job = &jobs["jobs"][0];
            if job["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("in progress"))
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
        let (_, delivery) = app
            .get(
                &format!("/api/v1/districts/lincoln/inbound/{id}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(
            (&delivery["status"], &delivery["attempts"]),
            (&json!("received"), &json!(0)),
            "{delivery}"
        );
        lock.release().await.unwrap();
        let delivery = settled(&app, "lincoln", id).await;
        assert_eq!(delivery["status"], "applied", "{delivery}");
        assert_eq!(delivery["attempts"], 1, "{delivery}");
    }
);

/// Fast jobs, and a retention sweep every second that keeps no body past a final status.
const PURGE_AT_ONCE: &[(&str, &str)] = &[
    ("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50"),
    ("ROSTERGATE_INBOUND__KEEP_BODIES_DAYS", "0"),
    ("ROSTERGATE_INBOUND__PURGE_INTERVAL_SECS", "1"),
];

/// Polls a delivery until its body is purged.
async fn purged(app: &TestApp, district: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, delivery) = app
            .get(
                &format!("/api/v1/districts/{district}/inbound/{id}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{delivery}");
        if !delivery["body_purged_at"].is_null() {
            return delivery;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery {id} still has its body: {delivery}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Assessment results pushed with the operator token; the delivery's id.
async fn push_scores(app: &TestApp, district: &str) -> String {
    let body = json!({"results": [{"student": {"identifier": "100234"}, "subject": "Reading",
        "term": "Fall 2026-2027", "test_date": "2026-09-15", "rit": 201}]});
    let (status, answer) = app
        .post_json(
            &format!("/api/v1/districts/{district}/scores"),
            OPERATOR_TOKEN,
            &body,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

on_every_backend!(bodies_of_final_deliveries_are_purged_and_a_purged_delivery_is_not_retried, with PURGE_AT_ONCE, |app| {
    app.create_district("lincoln").await;
    let (_, secret) = push_secret(&app, "lincoln").await;
    let scores = push_scores(&app, "lincoln").await;
    let (_, answer, _) = push_json(&app, "lincoln", &secret, "good", &school_json("bulk")).await;
    let applied = answer["id"].as_str().unwrap().to_string();
    let mut roster = school_json("bulk");
    roster["users"][1]["role"] = json!("wizard");
    let (_, answer, _) = push_json(&app, "lincoln", &secret, "bad-role", &roster).await;
    let failed = answer["id"].as_str().unwrap().to_string();
    // A score push, once imported, is kept no longer than a roster.
    for (id, status) in [(&applied, "applied"), (&failed, "failed"), (&scores, "applied")] {
        let delivery = purged(&app, "lincoln", id).await;
        assert_eq!(delivery["status"], status, "the delivery stays as it was: {delivery}");
        assert!(delivery["run_id"].is_string(), "{delivery}");
    }
    assert!(bodies_in_rows(&app).await.is_empty());
    assert!(stored_bodies(&app).is_empty());
    assert_eq!(total(&app, "lincoln", "").await, 3, "purged deliveries stay listed");
    let (status, answer) = app
        .post_json(&format!("/api/v1/districts/lincoln/inbound/{failed}/retry"), OPERATOR_TOKEN, &json!({}))
        .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("body_purged")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("body was deleted"), "{answer}");
    let (_, delivery) = app.get(&format!("/api/v1/districts/lincoln/inbound/{failed}"), OPERATOR_TOKEN).await;
    assert_eq!(delivery["status"], "failed", "a refused retry changes nothing: {delivery}");
});

on_every_backend!(
    a_body_file_is_kept_until_its_delivery_has_been_final_for_the_retention,
    with & [
        ("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50"),
        ("ROSTERGATE_INBOUND__PURGE_INTERVAL_SECS", "1"),
        FILE_BODIES
    ],
    |app| {
        app.create_district("lincoln").await;
        let (_, secret) = push_secret(&app, "lincoln").await;
        let scores = push_scores(&app, "lincoln").await;
        assert_eq!(settled(&app, "lincoln", &scores).await["status"], "applied");
        let mut ids = Vec::new();
        for msg in ["first", "second"] {
            let (_, answer, _) =
                push_json(&app, "lincoln", &secret, msg, &school_json("delta")).await;
            let id = answer["id"].as_str().unwrap().to_string();
            assert_eq!(settled(&app, "lincoln", &id).await["status"], "applied");
            ids.push(id);
        }
        let (applied, dead) = (&ids[0], &ids[1]);
        let db = Db::connect(&app.db.url).await.unwrap();
        let district = districts::get(&db, "lincoln").await.unwrap();
        // What a dead-lettered delivery looks like: it waits for an admin, body and all.
        db.conn()
            .execute(
                "UPDATE inbound_deliveries SET status = 'dead' WHERE district_id = $1 AND id = $2",
                &rostergate::args![district.id, dead.as_str()],
            )
            .await
            .unwrap();
        let settings = common::settings_with(&app.db.url, app.data_dir.path(), &[FILE_BODIES]);
        let swept = rostergate::inbound::retention::sweep(&db, &settings, Utc::now())
            .await
            .unwrap();
        assert_eq!(swept.purged, 0, "within the 30 days, every body is kept");
        assert_eq!(stored_bodies(&app).len(), 3);
        // A month and a day later.
        let month_ago = Utc::now() - chrono::Duration::days(31);
        db.conn()
            .execute(
                "UPDATE inbound_deliveries SET updated_at = $1, created_at = $1 WHERE district_id = $2",
                &rostergate::args![month_ago, district.id],
            )
            .await
            .unwrap();
        // The score push, imported, goes with the roster.
        for id in [applied, &scores] {
            let delivery = purged(&app, "lincoln", id).await;
            assert_eq!(delivery["status"], "applied");
        }
        let swept = rostergate::inbound::retention::sweep(&db, &settings, Utc::now())
            .await
            .unwrap();
        assert_eq!(swept.purged, 0, "nothing else may go");
        db.close().await;
        let (_, delivery) = app
            .get(
                &format!("/api/v1/districts/lincoln/inbound/{dead}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert!(delivery["body_purged_at"].is_null(), "{delivery}");
        let bodies = stored_bodies(&app);
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert!(bodies[0].to_string_lossy().contains(dead.as_str()));
    }
);
