//! Black-box tests of connections (the API and the CLI), on SQLite and PostgreSQL: what is
//! stored, what is refused, who may see it, and that the secret never comes back out nor sits
//! in the database in clear.

use crate::common;

use crate::common::{
    backends, bytes_contain, database_dump, printed, rostergate_with_key, send, TestApp, TestDb,
    MASTER_KEY, OPERATOR_TOKEN,
};
use reqwest::Method;
use rostergate::auth::keys::MasterKey;
use rostergate::auth::secrets::SecretBox;
use rostergate::startup::Application;
use rostergate::store::{connections, districts, Db};
use serde_json::{json, Value};

const SECRET: &str = "Sis-Client-Secret-6b1f0d9a";
const CONNECTIONS: &str = "/api/v1/districts/lincoln/connections";

fn oauth2_body(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "oneroster-rest",
        "version": "1.2",
        "base_url": "https://sis.example.org/ims/oneroster/rostering/v1p2/",
        "auth": {
            "type": "oauth2",
            "token_url": "https://sis.example.org/oauth/token",
            "client_id": "gateway",
        },
        "secret": SECRET,
    })
}

fn oauth1_body(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "oneroster-rest",
        "version": "1.1",
        "base_url": "https://sis.example.org/ims/oneroster/v1p1",
        "page_size": 500,
        "auth": { "type": "oauth1", "consumer_key": "consumer", "signature_method": "HMAC-SHA1" },
        "limits": { "requests_per_second": 5, "max_in_flight": 1, "timeout_secs": 30 },
        "schedule": { "delta": "off", "full": "daily 02:30" },
        "secret": SECRET,
    })
}

/// `body` with the member at `pointer` set (`Some`) or removed (`None`).
fn edited(mut body: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = body.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match value {
        Some(v) => parent.insert(key.to_string(), v),
        None => parent.remove(key),
    };
    body
}

async fn connection_names(app: &TestApp) -> Vec<String> {
    let (status, _, body) = send(app, Method::GET, CONNECTIONS, OPERATOR_TOKEN, None).await;
    assert_eq!(status, 200, "{body}");
    body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

on_every_backend!(connections_are_created_listed_read_and_deleted, |app| {
    app.create_district("lincoln").await;
    let (status, raw, created) = send(
        &app,
        Method::POST,
        CONNECTIONS,
        OPERATOR_TOKEN,
        Some(&oauth2_body("sis")),
    )
    .await;
    assert_eq!(status, 201, "{raw}");
    assert!(
        raw.contains("\"location\": \"/api/v1/districts/lincoln/connections/sis\""),
        "{raw}"
    );
    // Defaults filled in, the trailing slash trimmed, the secret only said to be set.
    assert_eq!(
        created["base_url"],
        "https://sis.example.org/ims/oneroster/rostering/v1p2"
    );
    assert_eq!(created["page_size"], 1000);
    assert_eq!(
        created["auth"],
        json!({
            "type": "oauth2",
            "token_url": "https://sis.example.org/oauth/token",
            "client_id": "gateway",
            "client_auth": "basic",
            "scopes": ["https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"],
        })
    );
    assert_eq!(
        created["limits"],
        json!({ "requests_per_second": 10, "max_in_flight": 2, "timeout_secs": 60 })
    );
    assert_eq!(
        created["schedule"],
        json!({ "delta": "every 1h", "full": "every 1w" })
    );
    assert_eq!(created["secret"], "set");
    assert_eq!(created["delta_cursor"], Value::Null);

    let (status, raw, created) = send(
        &app,
        Method::POST,
        CONNECTIONS,
        OPERATOR_TOKEN,
        Some(&oauth1_body("legacy-sis")),
    )
    .await;
    assert_eq!(status, 201, "{raw}");
    assert_eq!(
        created["auth"],
        json!({ "type": "oauth1", "consumer_key": "consumer", "signature_method": "HMAC-SHA1" })
    );
    assert_eq!(
        created["schedule"],
        json!({ "delta": null, "full": "daily 02:30" })
    );
    assert_eq!(created["page_size"], 500);

    assert_eq!(connection_names(&app).await, ["legacy-sis", "sis"]);
    let (status, _, one) = send(
        &app,
        Method::GET,
        &format!("{CONNECTIONS}/sis"),
        OPERATOR_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["name"], "sis");
    assert_eq!(one["version"], "1.2");
    assert_eq!(one["kind"], "oneroster-rest");

    let (status, raw, _) = send(
        &app,
        Method::DELETE,
        &format!("{CONNECTIONS}/sis"),
        OPERATOR_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 204, "{raw}");
    assert_eq!(connection_names(&app).await, ["legacy-sis"]);
    for method in [Method::GET, Method::DELETE] {
        let (status, _, body) = send(
            &app,
            method.clone(),
            &format!("{CONNECTIONS}/sis"),
            OPERATOR_TOKEN,
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{method} {body}"
        );
    }
});

on_every_backend!(a_duplicate_name_is_a_conflict_and_changes_nothing, |app| {
    app.create_district("lincoln").await;
    let (status, _, first) = send(
        &app,
        Method::POST,
        CONNECTIONS,
        OPERATOR_TOKEN,
        Some(&oauth2_body("sis")),
    )
    .await;
    assert_eq!(status, 201);
    let again = edited(oauth1_body("sis"), "/secret", Some(json!("another-secret")));
    let (status, _, body) = send(
        &app,
        Method::POST,
        CONNECTIONS,
        OPERATOR_TOKEN,
        Some(&again),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (_, _, now) = send(
        &app,
        Method::GET,
        &format!("{CONNECTIONS}/sis"),
        OPERATOR_TOKEN,
        None,
    )
    .await;
    assert_eq!(now, first);
    // The same name in another district is another connection.
    app.create_district("other").await;
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/api/v1/districts/other/connections",
        OPERATOR_TOKEN,
        Some(&oauth2_body("sis")),
    )
    .await;
    assert_eq!(status, 201);
});

on_every_backend!(
    malformed_bodies_are_refused_naming_the_field_and_change_nothing,
    |app| {
        app.create_district("lincoln").await;
        let good = oauth2_body("sis");
        let long = |n: usize| json!("a".repeat(n));
        let cases: Vec<(Value, &str, &str)> = vec![
            // Wrong types and shapes.
            (
                edited(good.clone(), "/page_size", Some(json!("1000"))),
                "invalid_body",
                "/page_size",
            ),
            (
                edited(good.clone(), "/page_size", Some(json!(10.5))),
                "invalid_body",
                "/page_size",
            ),
            (
                edited(good.clone(), "/name", Some(json!(7))),
                "invalid_body",
                "/name",
            ),
            (
                edited(good.clone(), "/version", Some(json!(1.2))),
                "invalid_body",
                "/version",
            ),
            (
                edited(good.clone(), "/auth", Some(json!("oauth2"))),
                "invalid_body",
                "/auth",
            ),
            (
                edited(good.clone(), "/auth/scopes", Some(json!("roster"))),
                "invalid_body",
                "/auth/scopes",
            ),
            (
                edited(good.clone(), "/auth/scopes", Some(json!(["a", 1]))),
                "invalid_body",
                "/auth/scopes/1",
            ),
            (
                edited(
                    good.clone(),
                    "/limits",
                    Some(json!({ "max_in_flight": "2" })),
                ),
                "invalid_body",
                "/limits/max_in_flight",
            ),
            (
                edited(good.clone(), "/schedule", Some(json!({ "delta": 60 }))),
                "invalid_body",
                "/schedule/delta",
            ),
            (
                edited(good.clone(), "/secret", Some(json!(12345))),
                "invalid_body",
                "/secret",
            ),
            (edited(good.clone(), "/name", None), "invalid_body", "/name"),
            (edited(good.clone(), "/auth", None), "invalid_body", "/auth"),
            (
                edited(good.clone(), "/surprise", Some(json!(1))),
                "invalid_body",
                "/surprise",
            ),
            (
                edited(good.clone(), "/auth/password", Some(json!("x"))),
                "invalid_body",
                "/auth/password",
            ),
            (json!(["not", "an", "object"]), "invalid_body", ""),
            // Values the rules refuse.
            (
                edited(good.clone(), "/version", Some(json!("1.0"))),
                "invalid_field",
                "/version",
            ),
            (
                edited(good.clone(), "/kind", Some(json!("csv"))),
                "invalid_field",
                "/kind",
            ),
            (
                edited(good.clone(), "/name", Some(json!("Not A Name"))),
                "invalid_field",
                "/name",
            ),
            (
                edited(
                    good.clone(),
                    "/base_url",
                    Some(json!("ftp://sis.example.org")),
                ),
                "invalid_field",
                "/base_url",
            ),
            (
                edited(
                    good.clone(),
                    "/base_url",
                    Some(json!("https://sis.example.org/?x=1")),
                ),
                "invalid_field",
                "/base_url",
            ),
            (
                edited(good.clone(), "/base_url", Some(json!("not a url"))),
                "invalid_field",
                "/base_url",
            ),
            (
                edited(
                    good.clone(),
                    "/auth/token_url",
                    Some(json!("https://sis.example.org/token#f")),
                ),
                "invalid_field",
                "/auth/token_url",
            ),
            (
                edited(good.clone(), "/auth/token_url", None),
                "invalid_field",
                "/auth/token_url",
            ),
            (
                edited(good.clone(), "/page_size", Some(json!(0))),
                "invalid_field",
                "/page_size",
            ),
            (
                edited(good.clone(), "/page_size", Some(json!(50_001))),
                "invalid_field",
                "/page_size",
            ),
            (
                edited(good.clone(), "/limits", Some(json!({ "max_in_flight": 6 }))),
                "invalid_field",
                "/limits/max_in_flight",
            ),
            (
                edited(
                    good.clone(),
                    "/limits",
                    Some(json!({ "requests_per_second": 0 })),
                ),
                "invalid_field",
                "/limits/requests_per_second",
            ),
            (
                edited(
                    good.clone(),
                    "/limits",
                    Some(json!({ "timeout_secs": 601 })),
                ),
                "invalid_field",
                "/limits/timeout_secs",
            ),
            (
                edited(good.clone(), "/schedule", Some(json!({ "full": "weekly" }))),
                "invalid_field",
                "/schedule/full",
            ),
            (
                edited(good.clone(), "/auth/client_auth", Some(json!("header"))),
                "invalid_field",
                "/auth/client_auth",
            ),
            (
                edited(good.clone(), "/secret", None),
                "invalid_field",
                "/secret",
            ),
            (
                edited(good.clone(), "/secret", Some(json!(""))),
                "invalid_field",
                "/secret",
            ),
            // OAuth 1.0a belongs to OneRoster 1.1 only.
            (
                edited(oauth1_body("sis"), "/version", Some(json!("1.2"))),
                "invalid_field",
                "/auth/type",
            ),
            (
                edited(
                    oauth1_body("sis"),
                    "/auth/token_url",
                    Some(json!("https://t.example.org")),
                ),
                "invalid_field",
                "/auth/token_url",
            ),
            // Oversized strings.
            (
                edited(good.clone(), "/name", Some(long(64))),
                "invalid_field",
                "/name",
            ),
            (
                edited(
                    good.clone(),
                    "/base_url",
                    Some(json!(format!(
                        "https://sis.example.org/{}",
                        "a".repeat(3000)
                    ))),
                ),
                "invalid_field",
                "/base_url",
            ),
            (
                edited(good.clone(), "/auth/client_id", Some(long(300))),
                "invalid_field",
                "/auth/client_id",
            ),
            (
                edited(good.clone(), "/auth/scopes", Some(json!(["s".repeat(300)]))),
                "invalid_field",
                "/auth/scopes/0",
            ),
            (
                edited(good.clone(), "/secret", Some(long(5000))),
                "invalid_field",
                "/secret",
            ),
        ];
        for (body, code, pointer) in cases {
            let (status, raw, answer) =
                send(&app, Method::POST, CONNECTIONS, OPERATOR_TOKEN, Some(&body)).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (422, Some(code)),
                "{body} → {raw}"
            );
            let pointers: Vec<&str> = answer["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["pointer"].as_str().unwrap())
                .collect();
            assert!(pointers.contains(&pointer), "{pointer} not in {answer}");
            assert!(answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(pointer));
            assert!(!raw.contains(SECRET), "{raw}");
        }
        // Not JSON at all.
        let r = app
            .client
            .post(app.url(CONNECTIONS))
            .bearer_auth(OPERATOR_TOKEN)
            .header("Content-Type", "application/json")
            .body("{\"name\":")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert!(connection_names(&app).await.is_empty());
    }
);

on_every_backend!(
    only_the_districts_administrators_reach_its_connections,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("other").await;
        let (status, _, _) = send(
            &app,
            Method::POST,
            CONNECTIONS,
            OPERATOR_TOKEN,
            Some(&oauth2_body("sis")),
        )
        .await;
        assert_eq!(status, 201);
        let other_admin = app.token_for("other", &["admin"]).await;
        let reader = app
            .token_for("lincoln", &["roster:read", "roster:write"])
            .await;
        let admin = app.token_for("lincoln", &["admin"]).await;
        let item = format!("{CONNECTIONS}/sis");
        let requests = [
            (Method::GET, CONNECTIONS, None),
            (Method::POST, CONNECTIONS, Some(oauth2_body("sneaky"))),
            (Method::GET, item.as_str(), None),
            (Method::DELETE, item.as_str(), None),
        ];
        for (method, path, body) in &requests {
            let (status, _, answer) =
                send(&app, method.clone(), path, &other_admin, body.as_ref()).await;
            assert_eq!(
                status, 404,
                "another district's token: {method} {path} → {answer}"
            );
            let (status, _, answer) =
                send(&app, method.clone(), path, &reader, body.as_ref()).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (403, Some("insufficient_scope")),
                "a token without admin: {method} {path}"
            );
        }
        assert_eq!(connection_names(&app).await, ["sis"]);
        // The district's own administrator may.
        let (status, _, listed) = send(&app, Method::GET, CONNECTIONS, &admin, None).await;
        assert_eq!(status, 200);
        assert_eq!(listed["connections"][0]["name"], "sis");
        let (status, _, _) = send(
            &app,
            Method::GET,
            "/api/v1/districts/other/connections",
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 404);
    }
);

/// Opens a stored connection's secret as the gateway would, through the store and the key.
async fn stored_secret(db_url: &str, district: &str, name: &str) -> String {
    let db = Db::connect(db_url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    let stored = connections::find(&db, district.id, name)
        .await
        .unwrap()
        .expect("the connection is stored");
    db.close().await;
    let secrets = SecretBox::new(&MasterKey::from_secret(MASTER_KEY).unwrap());
    let secret = secrets
        .open_connection_secret(
            stored.district_id,
            &stored.config.name,
            &stored.sealed_secret,
        )
        .expect("the secret opens");
    assert!(secrets
        .open_connection_secret(
            stored.district_id + 1,
            &stored.config.name,
            &stored.sealed_secret
        )
        .is_err());
    secret.expose().to_string()
}

on_every_backend!(
    the_secret_is_sealed_at_rest_never_returned_and_survives_a_restart,
    |app| {
        app.create_district("lincoln").await;
        let mut answers = String::new();
        for body in [oauth2_body("sis"), oauth1_body("legacy")] {
            let (status, raw, _) =
                send(&app, Method::POST, CONNECTIONS, OPERATOR_TOKEN, Some(&body)).await;
            assert_eq!(status, 201, "{raw}");
            answers.push_str(&raw);
        }
        for path in [
            CONNECTIONS.to_string(),
            format!("{CONNECTIONS}/sis"),
            format!("{CONNECTIONS}/legacy"),
        ] {
            let (status, raw, _) = send(&app, Method::GET, &path, OPERATOR_TOKEN, None).await;
            assert_eq!(status, 200);
            answers.push_str(&raw);
        }
        assert!(!answers.contains(SECRET), "{answers}");

        let dump = database_dump(&app.db, "connections").await;
        assert!(
            !bytes_contain(&dump, SECRET),
            "the secret is stored in clear"
        );
        assert!(bytes_contain(&dump, "v1:"), "no sealed secret in the dump");

        // Another gateway on the same database and key finds and opens it.
        let restarted = Application::build(common::settings_for(&app.db.url, app.data_dir.path()))
            .await
            .expect("the app starts again");
        let address = format!("http://127.0.0.1:{}", restarted.port());
        tokio::spawn(restarted.run_until_stopped());
        let listed: Value = app
            .client
            .get(format!("{address}{CONNECTIONS}"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["connections"].as_array().unwrap().len(), 2);
        assert_eq!(stored_secret(&app.db.url, "lincoln", "sis").await, SECRET);
        assert_eq!(
            stored_secret(&app.db.url, "lincoln", "legacy").await,
            SECRET
        );
    }
);

#[tokio::test]
async fn the_cli_adds_lists_and_removes_connections_without_printing_secrets() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| rostergate_with_key(&db.url, work.path(), args);
        let out = run(&[
            "district",
            "create",
            "--slug",
            "lincoln",
            "--name",
            "Lincoln",
            "--timezone",
            "UTC",
        ]);
        assert!(out.status.success(), "{}", printed(&out));
        let secret_file = work.path().join("client-secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let mut all_output = String::new();

        let out = run(&[
            "connection",
            "add",
            "--district",
            "lincoln",
            "--name",
            "sis",
            "--kind",
            "oneroster-rest",
            "--version",
            "1.2",
            "--base-url",
            "https://sis.example.org/ims/oneroster/rostering/v1p2",
            "--auth",
            "oauth2",
            "--token-url",
            "https://sis.example.org/oauth/token",
            "--client-id",
            "gateway",
            "--client-secret-file",
            secret_file.to_str().unwrap(),
            "--scope",
            "https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly",
            "--client-auth",
            "body",
            "--full-schedule",
            "daily 02:30",
            "--json",
        ]);
        assert!(out.status.success(), "{}", printed(&out));
        all_output.push_str(&printed(&out));
        let added: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(added["auth"]["client_auth"], "body");
        assert_eq!(added["schedule"]["full"], "daily 02:30");
        assert_eq!(added["secret"], "set");

        let out = run(&[
            "connection",
            "add",
            "--district",
            "lincoln",
            "--name",
            "legacy",
            "--kind",
            "oneroster-rest",
            "--version",
            "1.1",
            "--base-url",
            "https://old.example.org/ims/oneroster/v1p1",
            "--auth",
            "oauth1",
            "--consumer-key",
            "consumer",
            "--consumer-secret",
            SECRET,
            "--signature-method",
            "HMAC-SHA1",
            "--delta-schedule",
            "off",
            "--max-in-flight",
            "1",
        ]);
        assert!(out.status.success(), "{}", printed(&out));
        all_output.push_str(&printed(&out));

        // Refusals name the flag, and add nothing.
        let base = [
            "connection",
            "add",
            "--district",
            "lincoln",
            "--name",
            "bad",
            "--kind",
            "oneroster-rest",
            "--base-url",
            "https://sis.example.org",
            "--consumer-key",
            "k",
            "--consumer-secret",
            SECRET,
        ];
        let refusals: [(&[&str], &str); 5] = [
            (&["--version", "1.2", "--auth", "oauth1"], "--auth"),
            (
                &["--version", "1.1", "--auth", "oauth1", "--page-size", "0"],
                "--page-size",
            ),
            (
                &[
                    "--version",
                    "1.1",
                    "--auth",
                    "oauth1",
                    "--max-in-flight",
                    "9",
                ],
                "--max-in-flight",
            ),
            (&["--version", "1.3", "--auth", "oauth1"], "--version"),
            (
                &[
                    "--version",
                    "1.1",
                    "--auth",
                    "oauth1",
                    "--full-schedule",
                    "sometimes",
                ],
                "--full-schedule",
            ),
        ];
        for (extra, flag) in refusals {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            let out = run(&args);
            assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", printed(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(flag), "{extra:?}: {stderr}");
            all_output.push_str(&printed(&out));
        }
        let out = run(&[
            "connection",
            "add",
            "--district",
            "lincoln",
            "--name",
            "sis",
            "--kind",
            "oneroster-rest",
            "--version",
            "1.1",
            "--base-url",
            "https://x.example.org",
            "--auth",
            "oauth1",
            "--consumer-key",
            "k",
            "--consumer-secret",
            "other",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

        let out = run(&["connection", "list", "--district", "lincoln", "--json"]);
        assert!(out.status.success(), "{}", printed(&out));
        all_output.push_str(&printed(&out));
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: Vec<&str> = listed["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["legacy", "sis"]);
        assert_eq!(listed["connections"][0]["schedule"]["delta"], Value::Null);
        let out = run(&["connection", "list", "--district", "lincoln"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains(
                "sis\tOneRoster 1.2\thttps://sis.example.org/ims/oneroster/rostering/v1p2"
            ),
            "{text}"
        );
        all_output.push_str(&text);

        assert!(!all_output.contains(SECRET), "{all_output}");
        assert_eq!(stored_secret(&db.url, "lincoln", "sis").await, SECRET);
        assert_eq!(stored_secret(&db.url, "lincoln", "legacy").await, SECRET);

        let out = run(&[
            "connection",
            "remove",
            "--district",
            "lincoln",
            "--name",
            "sis",
        ]);
        assert!(out.status.success(), "{}", printed(&out));
        let out = run(&[
            "connection",
            "remove",
            "--district",
            "lincoln",
            "--name",
            "sis",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no connection"));
        let out = run(&["connection", "list", "--district", "lincoln", "--json"]);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed["connections"].as_array().unwrap().len(), 1);
    }
}

const ROTATED: &str = "Rotated-Client-Secret-93c2e7a4";
const CURSOR: &str = "2026-03-01T08:00:00Z";
const FULL_AT: &str = "2026-02-28T02:30:00Z";

/// Records a pull as applied, as the engine does: the cursor moved and a full pull done.
async fn set_pulled(db_url: &str, district: &str, name: &str) {
    let db = Db::connect(db_url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let mut tx = db.begin().await.unwrap();
    assert!(
        connections::set_cursor_in(&mut tx, district.id, name, at(CURSOR))
            .await
            .unwrap()
    );
    assert!(
        connections::mark_full_in(&mut tx, district.id, name, at(FULL_AT))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    db.close().await;
}

/// The stored connection's sealed secret, as the database holds it.
async fn sealed_secret(db_url: &str, district: &str, name: &str) -> String {
    let db = Db::connect(db_url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    let stored = connections::find(&db, district.id, name)
        .await
        .unwrap()
        .expect("the connection is stored");
    db.close().await;
    stored.sealed_secret
}

/// Every sealed secret a district's connections hold.
async fn all_sealed_secrets(db_url: &str, district: &str) -> Vec<String> {
    let db = Db::connect(db_url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    let listed = connections::list(&db, district.id).await.unwrap();
    db.close().await;
    listed.into_iter().map(|c| c.sealed_secret).collect()
}

fn same_time(value: &Value, want: &str) -> bool {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    value.as_str().is_some_and(|t| parse(t) == parse(want))
}

on_every_backend!(
    a_put_replaces_a_connection_and_keeps_its_cursor_only_for_the_same_source,
    |app| {
        app.create_district("lincoln").await;
        let item = format!("{CONNECTIONS}/sis");
        // What changes, and whether the cursor and the last full pull survive it.
        let cases: Vec<(&str, Value, bool)> = vec![
            (
                "a rotated secret and a new token URL",
                edited(
                    edited(oauth2_body("sis"), "/secret", Some(json!(ROTATED))),
                    "/auth/token_url",
                    Some(json!("https://login.example.org/oauth2/token")),
                ),
                true,
            ),
            (
                "new limits and schedules",
                edited(
                    edited(oauth2_body("sis"), "/secret", Some(json!(ROTATED))),
                    "/schedule",
                    Some(json!({ "delta": "every 30m", "full": null })),
                ),
                true,
            ),
            (
                "a new base URL",
                edited(
                    edited(oauth2_body("sis"), "/secret", Some(json!(ROTATED))),
                    "/base_url",
                    Some(json!(
                        "https://new-sis.example.org/ims/oneroster/rostering/v1p2"
                    )),
                ),
                false,
            ),
            (
                "another version at the same URL",
                edited(
                    edited(oauth2_body("sis"), "/secret", Some(json!(ROTATED))),
                    "/version",
                    Some(json!("1.1")),
                ),
                false,
            ),
        ];
        for (what, body, kept) in cases {
            let (status, raw, _) = send(
                &app,
                Method::POST,
                CONNECTIONS,
                OPERATOR_TOKEN,
                Some(&oauth2_body("sis")),
            )
            .await;
            assert_eq!(status, 201, "{what}: {raw}");
            set_pulled(&app.db.url, "lincoln", "sis").await;
            let (_, _, before) = send(&app, Method::GET, &item, OPERATOR_TOKEN, None).await;
            assert!(same_time(&before["delta_cursor"], CURSOR), "{before}");
            let old_sealed = sealed_secret(&app.db.url, "lincoln", "sis").await;

            let (status, raw, replaced) =
                send(&app, Method::PUT, &item, OPERATOR_TOKEN, Some(&body)).await;
            assert_eq!(status, 200, "{what}: {raw}");
            assert!(!raw.contains(ROTATED) && !raw.contains(SECRET), "{raw}");
            let (_, _, now) = send(&app, Method::GET, &item, OPERATOR_TOKEN, None).await;
            assert_eq!(
                replaced, now,
                "{what}: the answer is the connection as GET shows it"
            );
            assert_eq!(now["secret"], "set");
            // Stored without its trailing slash, so that the same URL is the same source.
            assert_eq!(
                now["base_url"].as_str(),
                body["base_url"].as_str().map(|u| u.trim_end_matches('/')),
                "{what}"
            );
            assert_eq!(now["version"], body["version"], "{what}");
            assert_eq!(
                now["auth"]["token_url"], body["auth"]["token_url"],
                "{what}"
            );
            assert_eq!(now["created_at"], before["created_at"], "{what}");
            assert!(now["updated_at"] != before["updated_at"], "{what}: {now}");
            if kept {
                assert!(same_time(&now["delta_cursor"], CURSOR), "{what}: {now}");
                assert!(same_time(&now["last_full_at"], FULL_AT), "{what}: {now}");
            } else {
                assert_eq!(now["delta_cursor"], Value::Null, "{what}: {now}");
                assert_eq!(now["last_full_at"], Value::Null, "{what}: {now}");
            }

            // The new secret opens; the old one is gone from the database.
            assert_eq!(
                stored_secret(&app.db.url, "lincoln", "sis").await,
                ROTATED,
                "{what}"
            );
            // (No row holds it: SQLite's free pages and WAL may keep old bytes until they are
            // reused, which is why secrets are sealed rather than merely replaced.)
            assert!(
                !all_sealed_secrets(&app.db.url, "lincoln")
                    .await
                    .contains(&old_sealed),
                "{what}: the old secret is still stored"
            );
            let dump = database_dump(&app.db, "connections").await;
            assert!(
                !bytes_contain(&dump, ROTATED),
                "{what}: the new secret is stored in clear"
            );

            let (status, _, _) = send(&app, Method::DELETE, &item, OPERATOR_TOKEN, None).await;
            assert_eq!(status, 204);
        }
    }
);

on_every_backend!(a_refused_put_names_the_problem_and_changes_nothing, |app| {
    app.create_district("lincoln").await;
    app.create_district("other").await;
    let (status, _, _) = send(
        &app,
        Method::POST,
        CONNECTIONS,
        OPERATOR_TOKEN,
        Some(&oauth2_body("sis")),
    )
    .await;
    assert_eq!(status, 201);
    set_pulled(&app.db.url, "lincoln", "sis").await;
    let item = format!("{CONNECTIONS}/sis");
    let (_, _, before) = send(&app, Method::GET, &item, OPERATOR_TOKEN, None).await;
    let other_admin = app.token_for("other", &["admin"]).await;
    let reader = app
        .token_for("lincoln", &["roster:read", "roster:write"])
        .await;
    let rotated = edited(oauth2_body("sis"), "/secret", Some(json!(ROTATED)));
    // The status, the error code and the pointer of a detail, when the body is at fault.
    type Refusal<'a> = (u16, &'a str, Option<&'a str>);
    let cases: Vec<(&str, String, &str, Value, Refusal)> = vec![
        (
            "a body naming another connection",
            item.clone(),
            OPERATOR_TOKEN,
            edited(rotated.clone(), "/name", Some(json!("renamed"))),
            (422, "invalid_field", Some("/name")),
        ),
        (
            "a renaming body with another bad field too",
            item.clone(),
            OPERATOR_TOKEN,
            edited(
                edited(rotated.clone(), "/name", Some(json!("renamed"))),
                "/page_size",
                Some(json!(0)),
            ),
            (422, "invalid_field", Some("/name")),
        ),
        (
            "no secret (a PUT replaces everything)",
            item.clone(),
            OPERATOR_TOKEN,
            edited(rotated.clone(), "/secret", None),
            (422, "invalid_field", Some("/secret")),
        ),
        (
            "a member of the wrong type",
            item.clone(),
            OPERATOR_TOKEN,
            edited(rotated.clone(), "/page_size", Some(json!("10"))),
            (422, "invalid_body", Some("/page_size")),
        ),
        (
            "an unknown connection",
            format!("{CONNECTIONS}/nosuch"),
            OPERATOR_TOKEN,
            edited(rotated.clone(), "/name", Some(json!("nosuch"))),
            (404, "not_found", None),
        ),
        (
            "a name no connection can have",
            format!("{CONNECTIONS}/NOT-A-NAME"),
            OPERATOR_TOKEN,
            edited(rotated.clone(), "/name", Some(json!("NOT-A-NAME"))),
            (404, "not_found", None),
        ),
        (
            "another district's administrator",
            item.clone(),
            &other_admin,
            rotated.clone(),
            (404, "not_found", None),
        ),
        (
            "a token without admin",
            item.clone(),
            &reader,
            rotated.clone(),
            (403, "insufficient_scope", None),
        ),
    ];
    for (what, path, token, body, (want_status, want_code, pointer)) in cases {
        let (status, raw, answer) = send(&app, Method::PUT, &path, token, Some(&body)).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{what}: {raw}"
        );
        if let Some(pointer) = pointer {
            let pointers: Vec<&str> = answer["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["pointer"].as_str().unwrap())
                .collect();
            assert!(pointers.contains(&pointer), "{what}: {answer}");
        }
        assert!(!raw.contains(ROTATED), "{what}: {raw}");
    }
    let (_, _, after) = send(&app, Method::GET, &item, OPERATOR_TOKEN, None).await;
    assert_eq!(after, before);
    assert_eq!(connection_names(&app).await, ["sis"]);
    assert_eq!(stored_secret(&app.db.url, "lincoln", "sis").await, SECRET);
});

#[tokio::test]
async fn the_cli_replaces_a_connection_only_when_asked_and_keeps_its_cursor() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| rostergate_with_key(&db.url, work.path(), args);
        let out = run(&[
            "district",
            "create",
            "--slug",
            "lincoln",
            "--name",
            "Lincoln",
            "--timezone",
            "UTC",
        ]);
        assert!(out.status.success(), "{}", printed(&out));
        let add = |name: &str, base_url: &str, secret: &str, extra: &[&str]| {
            let mut args = vec![
                "connection",
                "add",
                "--district",
                "lincoln",
                "--name",
                name,
                "--kind",
                "oneroster-rest",
                "--version",
                "1.2",
                "--base-url",
                base_url,
                "--auth",
                "oauth2",
                "--token-url",
                "https://sis.example.org/oauth/token",
                "--client-id",
                "gateway",
                "--client-secret",
                secret,
                "--json",
            ];
            args.extend_from_slice(extra);
            run(&args)
        };
        let url = "https://sis.example.org/ims/oneroster/rostering/v1p2";
        let out = add("sis", url, SECRET, &[]);
        assert!(out.status.success(), "{}", printed(&out));
        set_pulled(&db.url, "lincoln", "sis").await;

        // A duplicate without --replace is refused, and says how to replace.
        let out = add("sis", url, ROTATED, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("already exists") && stderr.contains("--replace"),
            "{stderr}"
        );
        assert_eq!(stored_secret(&db.url, "lincoln", "sis").await, SECRET);

        // --replace with the same source rotates the secret and keeps the cursor.
        let old_sealed = sealed_secret(&db.url, "lincoln", "sis").await;
        let out = add("sis", url, ROTATED, &["--replace"]);
        assert!(out.status.success(), "{}", printed(&out));
        assert!(!printed(&out).contains(ROTATED));
        let replaced: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(same_time(&replaced["delta_cursor"], CURSOR), "{replaced}");
        assert!(same_time(&replaced["last_full_at"], FULL_AT), "{replaced}");
        assert_eq!(stored_secret(&db.url, "lincoln", "sis").await, ROTATED);
        assert_ne!(sealed_secret(&db.url, "lincoln", "sis").await, old_sealed);

        // Another source starts over.
        let out = add(
            "sis",
            "https://new-sis.example.org/ims/oneroster/rostering/v1p2",
            ROTATED,
            &["--replace"],
        );
        assert!(out.status.success(), "{}", printed(&out));
        let replaced: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(replaced["delta_cursor"], Value::Null, "{replaced}");
        assert_eq!(replaced["last_full_at"], Value::Null, "{replaced}");

        // --replace of a connection that is not there adds nothing.
        let out = add("nosuch", url, ROTATED, &["--replace"]);
        assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no connection"), "{stderr}");
        let out = run(&["connection", "list", "--district", "lincoln", "--json"]);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed["connections"].as_array().unwrap().len(), 1);
    }
}
