//! Black-box tests of LTI platform registrations (the API and the CLI) and of the tool's keys
//! (`keys rotate`), on SQLite and PostgreSQL: what is stored, what is refused, who may see it,
//! and that the tool's private keys never sit in the database in clear.

use crate::common;

use std::path::Path;

use crate::common::{
    backends, bytes_contain, database_dump, printed, rostergate_with_key, send, TestApp, TestDb,
    MASTER_KEY, OPERATOR_TOKEN,
};
use base64::Engine as _;
use reqwest::Method;
use rostergate::auth::keys::MasterKey;
use rostergate::auth::secrets::SecretBox;
use rostergate::store::{districts, lti, Db};
use serde_json::{json, Value};

const PLATFORMS: &str = "/api/v1/districts/lincoln/lti/platforms";
const CANVAS: &str = "https://canvas.instructure.com";

fn canvas_body(client_id: &str) -> Value {
    json!({
        "issuer": CANVAS,
        "client_id": client_id,
        "deployment_ids": ["42:8865aa05b4b79b64a91a86042e43af5ea8ae79eb", "43:other"],
        "auth_login_url": "https://sso.canvaslms.com/api/lti/authorize_redirect",
        "token_url": "https://sso.canvaslms.com/login/oauth2/token",
        "jwks_url": "https://sso.canvaslms.com/api/lti/security/jwks",
    })
}

fn with(mut body: Value, key: &str, value: Option<Value>) -> Value {
    let object = body.as_object_mut().unwrap();
    match value {
        Some(v) => object.insert(key.to_string(), v),
        None => object.remove(key),
    };
    body
}

async fn platform_ids(app: &TestApp, path: &str) -> Vec<i64> {
    let (status, _, body) = send(app, Method::GET, path, OPERATOR_TOKEN, None).await;
    assert_eq!(status, 200, "{body}");
    body["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect()
}

/// Records a deployment as a launch from an unknown one would, pending a claim.
async fn record_pending(db_url: &str, platform_id: i64, deployment_id: &str) {
    let db = Db::connect(db_url).await.unwrap();
    assert!(lti::add_pending_deployment(&db, platform_id, deployment_id)
        .await
        .unwrap());
    // Idempotent: a second launch from it records nothing new.
    assert!(
        !lti::add_pending_deployment(&db, platform_id, deployment_id)
            .await
            .unwrap()
    );
    db.close().await;
}

on_every_backend!(
    lti_platforms_are_created_listed_read_claimed_and_deleted,
    |app| {
        app.create_district("lincoln").await;
        let body = with(
            canvas_body("10000000000042"),
            "unknown_deployments",
            Some(json!("pending")),
        );
        let (status, raw, created) =
            send(&app, Method::POST, PLATFORMS, OPERATOR_TOKEN, Some(&body)).await;
        assert_eq!(status, 201, "{raw}");
        let id = created["id"].as_i64().unwrap();
        let item = format!("{PLATFORMS}/{id}");
        assert!(raw.contains(&format!("\"location\": \"{item}\"")), "{raw}");
        assert_eq!(created["issuer"], CANVAS);
        assert_eq!(created["client_id"], "10000000000042");
        // Kept exactly as written.
        assert_eq!(
            created["token_url"],
            "https://sso.canvaslms.com/login/oauth2/token"
        );
        assert_eq!(created["unknown_deployments"], "pending");
        assert_eq!(
            created["deployments"],
            json!([
                {"deployment_id": "42:8865aa05b4b79b64a91a86042e43af5ea8ae79eb", "status": "active"},
                {"deployment_id": "43:other", "status": "active"},
            ])
        );

        // Same issuer, another client id (another Canvas instance): another registration, which
        // refuses unknown deployments by default.
        let (status, raw, second) = send(
            &app,
            Method::POST,
            PLATFORMS,
            OPERATOR_TOKEN,
            Some(&canvas_body("10000000000077")),
        )
        .await;
        assert_eq!(status, 201, "{raw}");
        assert_eq!(second["unknown_deployments"], "refuse");
        let second_id = second["id"].as_i64().unwrap();
        assert_eq!(platform_ids(&app, PLATFORMS).await, [id, second_id]);

        let (status, _, one) = send(&app, Method::GET, &item, OPERATOR_TOKEN, None).await;
        assert_eq!(status, 200);
        assert_eq!(one, created);

        // A launch from an unknown deployment was recorded pending; an administrator claims it.
        record_pending(&app.db.url, id, "44:new-course").await;
        let (_, _, listed) = send(&app, Method::GET, &item, OPERATOR_TOKEN, None).await;
        assert_eq!(listed["deployments"][2]["status"], "pending");
        let db = Db::connect(&app.db.url).await.unwrap();
        let stored = lti::platforms_for_login(&db, CANVAS, Some("10000000000042"))
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(
            stored[0].registration().deployment_ids.len(),
            2,
            "pending is not active"
        );
        assert_eq!(
            lti::platforms_for_login(&db, CANVAS, None)
                .await
                .unwrap()
                .len(),
            2
        );
        let (status, raw, claimed) = send(
            &app,
            Method::POST,
            &format!("{item}/deployments/44:new-course/claim"),
            OPERATOR_TOKEN,
            None,
        )
        .await;
        assert_eq!(status, 200, "{raw}");
        assert_eq!(
            claimed["deployments"][2],
            json!({"deployment_id": "44:new-course", "status": "active"})
        );
        let stored = lti::platform_by_id(&db, id).await.unwrap().unwrap();
        assert_eq!(stored.registration().deployment_ids.len(), 3);
        // Claiming again changes nothing; an unknown deployment or platform is 404.
        let (status, _, _) = send(
            &app,
            Method::POST,
            &format!("{item}/deployments/44:new-course/claim"),
            OPERATOR_TOKEN,
            None,
        )
        .await;
        assert_eq!(status, 200);
        for path in [
            format!("{item}/deployments/nope/claim"),
            format!("{PLATFORMS}/999999/deployments/44:new-course/claim"),
            format!("{PLATFORMS}/x/deployments/44:new-course/claim"),
        ] {
            let (status, _, body) = send(&app, Method::POST, &path, OPERATOR_TOKEN, None).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (404, Some("not_found")),
                "{path} {body}"
            );
        }

        let (status, raw, _) = send(&app, Method::DELETE, &item, OPERATOR_TOKEN, None).await;
        assert_eq!(status, 204, "{raw}");
        assert_eq!(platform_ids(&app, PLATFORMS).await, [second_id]);
        // Its deployments went with it.
        assert!(lti::platform_by_id(&db, id).await.unwrap().is_none());
        let lincoln = districts::get(&db, "lincoln").await.unwrap();
        assert!(!lti::claim_deployment(&db, lincoln.id, id, "44:new-course")
            .await
            .unwrap());
        db.close().await;
        for method in [Method::GET, Method::DELETE] {
            for path in [item.clone(), format!("{PLATFORMS}/not-a-number")] {
                let (status, _, body) =
                    send(&app, method.clone(), &path, OPERATOR_TOKEN, None).await;
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (404, Some("not_found")),
                    "{method} {path} {body}"
                );
            }
        }
    }
);

on_every_backend!(
    an_issuer_and_client_id_registered_anywhere_is_a_conflict,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("other").await;
        let (status, _, first) = send(
            &app,
            Method::POST,
            PLATFORMS,
            OPERATOR_TOKEN,
            Some(&canvas_body("10000000000042")),
        )
        .await;
        assert_eq!(status, 201);
        // The same pair in another district: a login could not tell them apart.
        for path in [PLATFORMS, "/api/v1/districts/other/lti/platforms"] {
            let again = with(
                canvas_body("10000000000042"),
                "deployment_ids",
                Some(json!(["another"])),
            );
            let (status, _, body) =
                send(&app, Method::POST, path, OPERATOR_TOKEN, Some(&again)).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (409, Some("conflict")),
                "{path} {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("already registered"),
                "{body}"
            );
        }
        assert!(platform_ids(&app, "/api/v1/districts/other/lti/platforms")
            .await
            .is_empty());
        let (_, _, now) = send(
            &app,
            Method::GET,
            &format!("{PLATFORMS}/{}", first["id"]),
            OPERATOR_TOKEN,
            None,
        )
        .await;
        assert_eq!(now, first);
        // The issuer is compared exactly: another spelling is another registration.
        let (status, _, _) = send(
            &app,
            Method::POST,
            "/api/v1/districts/other/lti/platforms",
            OPERATOR_TOKEN,
            Some(&with(
                canvas_body("10000000000042"),
                "issuer",
                Some(json!("https://canvas.instructure.com/")),
            )),
        )
        .await;
        assert_eq!(status, 201);
    }
);

on_every_backend!(
    malformed_platforms_are_refused_naming_the_field_and_change_nothing,
    |app| {
        app.create_district("lincoln").await;
        let good = canvas_body("c");
        let long = |n: usize| json!(format!("https://lms.example.org/{}", "a".repeat(n)));
        let cases: Vec<(Value, &str, &str)> = vec![
            // Wrong types and shapes.
            (json!(["an", "array"]), "invalid_body", ""),
            (
                with(good.clone(), "issuer", Some(json!(7))),
                "invalid_body",
                "/issuer",
            ),
            (
                with(good.clone(), "issuer", None),
                "invalid_body",
                "/issuer",
            ),
            (
                with(good.clone(), "client_id", None),
                "invalid_body",
                "/client_id",
            ),
            (
                with(good.clone(), "auth_login_url", None),
                "invalid_body",
                "/auth_login_url",
            ),
            (
                with(good.clone(), "token_url", Some(json!(null))),
                "invalid_body",
                "/token_url",
            ),
            (
                with(good.clone(), "jwks_url", None),
                "invalid_body",
                "/jwks_url",
            ),
            (
                with(good.clone(), "deployment_ids", Some(json!("d"))),
                "invalid_body",
                "/deployment_ids",
            ),
            (
                with(good.clone(), "deployment_ids", Some(json!(["d", 2]))),
                "invalid_body",
                "/deployment_ids/1",
            ),
            (
                with(good.clone(), "unknown_deployments", Some(json!(false))),
                "invalid_body",
                "/unknown_deployments",
            ),
            (
                with(good.clone(), "secret", Some(json!("x"))),
                "invalid_body",
                "/secret",
            ),
            // Values the rules refuse.
            (
                with(
                    good.clone(),
                    "issuer",
                    Some(json!("http://canvas.instructure.com")),
                ),
                "invalid_field",
                "/issuer",
            ),
            (
                with(
                    good.clone(),
                    "issuer",
                    Some(json!("https://lms.example.org/?x=1")),
                ),
                "invalid_field",
                "/issuer",
            ),
            (
                with(
                    good.clone(),
                    "issuer",
                    Some(json!("https://lms.example.org#top")),
                ),
                "invalid_field",
                "/issuer",
            ),
            (
                with(good.clone(), "issuer", Some(long(3000))),
                "invalid_field",
                "/issuer",
            ),
            (
                with(good.clone(), "client_id", Some(json!(""))),
                "invalid_field",
                "/client_id",
            ),
            (
                with(good.clone(), "client_id", Some(json!("c".repeat(256)))),
                "invalid_field",
                "/client_id",
            ),
            (
                with(good.clone(), "deployment_ids", Some(json!([]))),
                "invalid_field",
                "/deployment_ids",
            ),
            (
                with(good.clone(), "deployment_ids", None),
                "invalid_field",
                "/deployment_ids",
            ),
            (
                with(
                    good.clone(),
                    "deployment_ids",
                    Some(json!((0..101).map(|i| i.to_string()).collect::<Vec<_>>())),
                ),
                "invalid_field",
                "/deployment_ids",
            ),
            (
                with(good.clone(), "deployment_ids", Some(json!(["a", "a"]))),
                "invalid_field",
                "/deployment_ids/1",
            ),
            (
                with(
                    good.clone(),
                    "deployment_ids",
                    Some(json!(["a", "d".repeat(256)])),
                ),
                "invalid_field",
                "/deployment_ids/1",
            ),
            (
                with(good.clone(), "deployment_ids", Some(json!(["é"]))),
                "invalid_field",
                "/deployment_ids/0",
            ),
            (
                with(
                    good.clone(),
                    "auth_login_url",
                    Some(json!("ftp://lms.example.org")),
                ),
                "invalid_field",
                "/auth_login_url",
            ),
            (
                with(
                    good.clone(),
                    "token_url",
                    Some(json!("http://lms.example.org/token")),
                ),
                "invalid_field",
                "/token_url",
            ),
            (
                with(good.clone(), "jwks_url", Some(json!("not a url"))),
                "invalid_field",
                "/jwks_url",
            ),
            (
                with(good.clone(), "jwks_url", Some(long(3000))),
                "invalid_field",
                "/jwks_url",
            ),
            (
                with(good.clone(), "unknown_deployments", Some(json!("accept"))),
                "invalid_field",
                "/unknown_deployments",
            ),
        ];
        for (body, code, pointer) in cases {
            let (status, raw, answer) =
                send(&app, Method::POST, PLATFORMS, OPERATOR_TOKEN, Some(&body)).await;
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
        }
        // Every bad field of one body at once.
        let all_bad = json!({
            "issuer": "nope", "client_id": "", "deployment_ids": ["x", "x"],
            "auth_login_url": "nope", "token_url": "nope", "jwks_url": "nope",
            "unknown_deployments": "maybe",
        });
        let (status, _, answer) = send(
            &app,
            Method::POST,
            PLATFORMS,
            OPERATOR_TOKEN,
            Some(&all_bad),
        )
        .await;
        assert_eq!(status, 422);
        let mut pointers: Vec<&str> = answer["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["pointer"].as_str().unwrap())
            .collect();
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            [
                "/auth_login_url",
                "/client_id",
                "/deployment_ids/1",
                "/issuer",
                "/jwks_url",
                "/token_url",
                "/unknown_deployments"
            ]
        );
        assert!(platform_ids(&app, PLATFORMS).await.is_empty());
    }
);

on_every_backend!(
    only_the_districts_administrators_reach_its_platforms,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("other").await;
        let (status, _, created) = send(
            &app,
            Method::POST,
            PLATFORMS,
            OPERATOR_TOKEN,
            Some(&canvas_body("c")),
        )
        .await;
        assert_eq!(status, 201);
        let other_admin = app.token_for("other", &["admin"]).await;
        let reader = app
            .token_for("lincoln", &["roster:read", "roster:write"])
            .await;
        let admin = app.token_for("lincoln", &["admin"]).await;
        let item = format!("{PLATFORMS}/{}", created["id"]);
        let claim = format!("{item}/deployments/43:other/claim");
        let requests = [
            (Method::GET, PLATFORMS, None),
            (Method::POST, PLATFORMS, Some(canvas_body("sneaky"))),
            (Method::GET, item.as_str(), None),
            (Method::POST, claim.as_str(), None),
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
        // Another district's administrator cannot reach lincoln's platform through its own
        // district either.
        let (status, _, _) = send(
            &app,
            Method::GET,
            &format!("/api/v1/districts/other/lti/platforms/{}", created["id"]),
            &other_admin,
            None,
        )
        .await;
        assert_eq!(status, 404);
        let (status, _, _) = send(
            &app,
            Method::DELETE,
            &format!("/api/v1/districts/other/lti/platforms/{}", created["id"]),
            &other_admin,
            None,
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(platform_ids(&app, PLATFORMS).await.len(), 1);
        let (status, _, listed) = send(&app, Method::GET, PLATFORMS, &admin, None).await;
        assert_eq!(status, 200);
        assert_eq!(listed["platforms"][0]["client_id"], "c");
    }
);

fn create_district(db_url: &str, dir: &Path, slug: &str) {
    let out = rostergate_with_key(
        db_url,
        dir,
        &[
            "district",
            "create",
            "--slug",
            slug,
            "--name",
            slug,
            "--timezone",
            "UTC",
        ],
    );
    assert!(out.status.success(), "{}", printed(&out));
}

fn add_args<'a>(district: &'a str, client_id: &'a str) -> Vec<&'a str> {
    vec![
        "lti",
        "platform",
        "add",
        "--district",
        district,
        "--issuer",
        "https://moodle.example.org",
        "--client-id",
        client_id,
        "--deployment-id",
        "1",
        "--deployment-id",
        "2",
        "--auth-url",
        "https://moodle.example.org/mod/lti/auth.php",
        "--token-url",
        "https://moodle.example.org/mod/lti/token.php",
        "--jwks-url",
        "https://moodle.example.org/mod/lti/certs.php",
    ]
}

#[tokio::test]
async fn the_cli_adds_lists_claims_and_removes_lti_platforms() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| rostergate_with_key(&db.url, work.path(), args);
        create_district(&db.url, work.path(), "lincoln");
        create_district(&db.url, work.path(), "other");

        let mut args = add_args("lincoln", "moodle-client");
        args.extend(["--unknown-deployments", "pending", "--json"]);
        let out = run(&args);
        assert!(out.status.success(), "{}", printed(&out));
        let added: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(added["issuer"], "https://moodle.example.org");
        assert_eq!(added["unknown_deployments"], "pending");
        assert_eq!(added["deployments"].as_array().unwrap().len(), 2);
        let id = added["id"].as_i64().unwrap();

        let out = run(&add_args("lincoln", "second-client"));
        assert!(out.status.success(), "{}", printed(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("added LTI platform "), "{text}");

        // The same (issuer, client id) in another district is refused.
        let out = run(&add_args("other", "moodle-client"));
        assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("already registered"),
            "{}",
            printed(&out)
        );

        // Refusals name the flag, and add nothing.
        let refusals: [(&str, &str, &str); 6] = [
            ("--issuer", "http://moodle.example.org", "--issuer"),
            ("--client-id", "", "--client-id"),
            ("--auth-url", "nope", "--auth-url"),
            ("--token-url", "https://x.example.org/t#f", "--token-url"),
            ("--jwks-url", "ftp://x.example.org", "--jwks-url"),
            ("--deployment-id", "1", "--deployment-id (#3)"),
        ];
        for (flag, value, named) in refusals {
            let mut args = add_args("other", "bad-client");
            match args.iter().position(|a| *a == flag) {
                Some(at) if flag != "--deployment-id" => args[at + 1] = value,
                _ => args.extend([flag, value]),
            }
            let out = run(&args);
            assert_eq!(out.status.code(), Some(1), "{flag}: {}", printed(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(named), "{flag}: {stderr}");
        }
        let mut args = add_args("other", "bad-client");
        args.extend(["--unknown-deployments", "accept"]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--unknown-deployments"));
        // A deployment id is required: a usage error.
        let args: Vec<&str> = add_args("other", "bad-client")
            .into_iter()
            .filter(|a| *a != "--deployment-id" && *a != "1" && *a != "2")
            .collect();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{}", printed(&out));

        let out = run(&["lti", "platform", "list", "--district", "other", "--json"]);
        assert!(out.status.success(), "{}", printed(&out));
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed["platforms"], json!([]));
        let out = run(&["lti", "platform", "list", "--district", "lincoln"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains(&format!(
                "{id}\thttps://moodle.example.org\tclient moodle-client\tdeployments: 1 (active), 2 (active)\tunknown deployments: pending"
            )),
            "{text}"
        );

        // A pending deployment is claimed; an unknown one is not.
        record_pending(&db.url, id, "3").await;
        let id_text = id.to_string();
        let claim = |deployment: &str| {
            run(&[
                "lti",
                "deployment",
                "claim",
                "--district",
                "lincoln",
                "--platform",
                &id_text,
                "--deployment-id",
                deployment,
            ])
        };
        let out = claim("3");
        assert!(out.status.success(), "{}", printed(&out));
        let out = claim("4");
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no deployment"));
        let out = run(&[
            "lti",
            "deployment",
            "claim",
            "--district",
            "other",
            "--platform",
            &id_text,
            "--deployment-id",
            "3",
        ]);
        assert_eq!(out.status.code(), Some(1), "another district's platform");
        let out = run(&["lti", "platform", "list", "--district", "lincoln", "--json"]);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            listed["platforms"][0]["deployments"][2],
            json!({"deployment_id": "3", "status": "active"})
        );

        let remove = |district: &str| {
            run(&[
                "lti",
                "platform",
                "remove",
                "--district",
                district,
                "--id",
                &id_text,
            ])
        };
        let out = remove("other");
        assert_eq!(out.status.code(), Some(1), "another district's platform");
        let out = remove("lincoln");
        assert!(out.status.success(), "{}", printed(&out));
        let out = remove("lincoln");
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no LTI platform"));
        let out = run(&["lti", "platform", "list", "--district", "lincoln", "--json"]);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed["platforms"].as_array().unwrap().len(), 1);
        // Its (issuer, client id) is free again.
        let out = run(&add_args("other", "moodle-client"));
        assert!(out.status.success(), "{}", printed(&out));
    }
}

#[tokio::test]
async fn keys_rotate_keeps_two_kids_promotes_the_next_and_seals_the_private_keys() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| rostergate_with_key(&db.url, work.path(), args);

        let out = run(&["keys", "rotate", "--json"]);
        assert!(out.status.success(), "{}", printed(&out));
        let first: Value = serde_json::from_slice(&out.stdout).unwrap();
        let out = run(&["keys", "rotate", "--json"]);
        assert!(out.status.success(), "{}", printed(&out));
        let second: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            second["current"]["kid"], first["next"]["kid"],
            "{first} {second}"
        );
        assert_ne!(second["next"]["kid"], first["current"]["kid"]);
        assert_ne!(second["next"]["kid"], second["current"]["kid"]);
        let out = run(&["keys", "rotate"]);
        assert!(out.status.success(), "{}", printed(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!(
                "current {}",
                second["next"]["kid"].as_str().unwrap()
            )),
            "{text}"
        );

        // Two keys stored, sealed: each opens under its own kid with the master key, and its
        // PKCS#8 (in the base64 it is sealed as) is nowhere in the database in clear.
        let store = Db::connect(&db.url).await.unwrap();
        let stored = lti::load_tool_keys(&store).await.unwrap();
        store.close().await;
        assert_eq!(stored.len(), 2);
        assert_ne!(stored[0].kid, stored[1].kid);
        let secrets = SecretBox::new(&MasterKey::from_secret(MASTER_KEY).unwrap());
        let dump = database_dump(&db, "lti_tool_keys").await;
        assert!(bytes_contain(&dump, &stored[0].kid));
        for key in &stored {
            let der = secrets.open_tool_key(&key.kid, &key.sealed_key).unwrap();
            assert!(der.len() > 1000, "an RSA 2048 key in PKCS#8");
            let clear = base64::engine::general_purpose::STANDARD.encode(&der);
            assert!(
                !bytes_contain(&dump, &clear[..64]),
                "a tool key is stored in clear"
            );
            assert!(!bytes_contain(&dump, &clear[clear.len() - 64..]));
            assert!(key.sealed_key.starts_with("v1:"));
        }
        // Another master key opens nothing.
        let other = SecretBox::new(&MasterKey::from_secret(&"o".repeat(40)).unwrap());
        assert!(other
            .open_tool_key(&stored[0].kid, &stored[0].sealed_key)
            .is_err());
    }
}
