//! Black-box tests of tokens, clients, scopes and district isolation, on SQLite and PostgreSQL.

use crate::common;

use crate::common::{school, OPERATOR_TOKEN};
use serde_json::{json, Value};

on_every_backend!(api_refuses_missing_malformed_and_forged_tokens, |app| {
    let r = app
        .client
        .get(app.url("/api/v1/districts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    for token in ["nope", "a.b.c", "", "operator-token-for-tests-012345678"] {
        let r = app
            .client
            .get(app.url("/api/v1/districts"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "token {token:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let r = app
        .client
        .get(app.url("/api/v1/districts"))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
});

on_every_backend!(
    client_credentials_grant_issues_scoped_district_tokens_and_refuses_bad_credentials,
    |app| {
        app.create_district("lincoln").await;
        let (_, client) = app
            .post_json(
                "/api/v1/districts/lincoln/clients",
                OPERATOR_TOKEN,
                &json!({ "name": "sis", "scopes": ["roster:read"] }),
            )
            .await;
        let id = client["client_id"].as_str().unwrap();
        let secret = client["client_secret"].as_str().unwrap();
        // The secret is shown once: the listing has none.
        let (_, listing) = app
            .get("/api/v1/districts/lincoln/clients", OPERATOR_TOKEN)
            .await;
        assert!(!listing.to_string().contains(secret));
        assert_eq!(listing["clients"][0]["client_id"], id);

        // HTTP Basic works as well as the form body.
        let r = app
            .client
            .post(app.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let token: Value = r.json().await.unwrap();
        assert_eq!(token["token_type"], "Bearer");
        assert_eq!(token["scope"], "roster:read");
        assert_eq!(token["expires_in"], 3600);
        let access = token["access_token"].as_str().unwrap();
        let (status, _) = app.get("/api/v1/districts/lincoln/users", access).await;
        assert_eq!(status, 200);

        let table: Vec<TokenCase> = vec![
            (
                vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_secret", "wrong"),
                ],
                401,
                "invalid_client",
            ),
            (
                vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", "rgc_unknown"),
                    ("client_secret", secret),
                ],
                401,
                "invalid_client",
            ),
            (
                vec![("grant_type", "client_credentials"), ("client_id", id)],
                401,
                "invalid_client",
            ),
            (
                vec![
                    ("grant_type", "password"),
                    ("client_id", id),
                    ("client_secret", secret),
                ],
                400,
                "unsupported_grant_type",
            ),
            (
                vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_secret", secret),
                    ("scope", "admin"),
                ],
                400,
                "invalid_scope",
            ),
            (
                vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_secret", secret),
                    ("scope", "root"),
                ],
                400,
                "invalid_scope",
            ),
        ];
        for (form, want_status, want_error) in table {
            let r = app
                .client
                .post(app.url("/oauth/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), want_status, "{form:?}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], want_error, "{form:?}");
        }
    }
);

on_every_backend!(a_token_of_one_district_cannot_see_another, |app| {
    app.create_district("lincoln").await;
    app.create_district("jefferson").await;
    let jefferson_admin = app.token_for("jefferson", &["admin"]).await;
    let (status, body) = app.import("jefferson", &jefferson_admin, &school()).await;
    assert_eq!(status, 200, "{body}");
    let lincoln = app.token_for("lincoln", &["admin"]).await;
    for path in [
        "/api/v1/districts/jefferson",
        "/api/v1/districts/jefferson/users",
        "/api/v1/districts/jefferson/users/stu-1",
        "/api/v1/districts/jefferson/users/tch-1/coaching",
        "/api/v1/districts/jefferson/runs",
        "/api/v1/districts/jefferson/events",
    ] {
        let (status, body) = app.get(path, &lincoln).await;
        assert_eq!(status, 404, "{path}: {body}");
        // Same answer as a district that does not exist: nothing leaks.
        assert_eq!(body["error"]["message"], "district \"jefferson\" not found");
    }
    let (status, _) = app.import("jefferson", &lincoln, &school()).await;
    assert_eq!(status, 404);
    // Lincoln's own view is empty, and listing districts shows only its own.
    let (_, users) = app.get("/api/v1/districts/lincoln/users", &lincoln).await;
    assert_eq!(users["users"], json!([]));
    let (_, districts) = app.get("/api/v1/districts", &lincoln).await;
    assert_eq!(districts["districts"].as_array().unwrap().len(), 1);
    assert_eq!(districts["districts"][0]["slug"], "lincoln");
});

on_every_backend!(scopes_limit_what_a_token_may_do, |app| {
    app.create_district("lincoln").await;
    let reader = app.token_for("lincoln", &["roster:read"]).await;
    let (status, body) = app.import("lincoln", &reader, &school()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "insufficient_scope");
    let (status, _) = app.get("/api/v1/districts/lincoln/events", &reader).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .post_json(
            "/api/v1/districts/lincoln/clients",
            &reader,
            &json!({ "name": "x", "scopes": ["admin"] }),
        )
        .await;
    assert_eq!(status, 403);
    let writer = app.token_for("lincoln", &["roster:write"]).await;
    let (status, _) = app.import("lincoln", &writer, &school()).await;
    assert_eq!(status, 200);
});

/// A token request form, the status and the RFC 6749 error it must get.
type TokenCase<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);

/// Registers a client through the API; its id and secret.
async fn new_client(app: &common::TestApp, district: &str, scopes: &[&str]) -> (String, String) {
    let (status, client) = app
        .post_json(
            &format!("/api/v1/districts/{district}/clients"),
            OPERATOR_TOKEN,
            &json!({ "name": "sis", "scopes": scopes }),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    (
        client["client_id"].as_str().unwrap().to_string(),
        client["client_secret"].as_str().unwrap().to_string(),
    )
}

/// Asks `/oauth/token` for a token; the status, the `Retry-After` header and the body.
async fn request_token(
    app: &common::TestApp,
    form: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), retry_after, r.json().await.unwrap())
}

on_every_backend!(
    an_admin_client_may_ask_for_a_narrower_token_and_gets_only_that,
    |app| {
        app.create_district("lincoln").await;
        let (id, secret) = new_client(&app, "lincoln", &["admin"]).await;
        let table = [
            ("roster:read", "roster:read"),
            ("roster:read roster:write", "roster:read roster:write"),
            ("admin", "admin"),
        ];
        for (asked, granted) in table {
            let (status, _, body) = request_token(
                &app,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("scope", asked),
                ],
            )
            .await;
            assert_eq!(
                (status, body["scope"].as_str()),
                (200, Some(granted)),
                "{asked}: {body}"
            );
        }
        let (_, _, body) = request_token(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", "roster:read"),
            ],
        )
        .await;
        let reader = body["access_token"].as_str().unwrap();
        let (status, _) = app.get("/api/v1/districts/lincoln/users", reader).await;
        assert_eq!(status, 200);
        // Narrower: what only admin or roster:write may do is now refused.
        let (status, body) = app.import("lincoln", reader, &school()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("insufficient_scope"))
        );
        let (status, _) = app.get("/api/v1/districts/lincoln/events", reader).await;
        assert_eq!(status, 403);
        let (status, _) = app.get("/api/v1/districts/lincoln/clients", reader).await;
        assert_eq!(status, 403);
    }
);

on_every_backend!(
    a_revoked_clients_already_issued_token_stops_working,
    with & [("ROSTERGATE_AUTH__CLIENT_CHECK_TTL_SECS", "0")],
    |app| {
        app.create_district("lincoln").await;
        let (id, secret) = new_client(&app, "lincoln", &["roster:read"]).await;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ];
        let (_, _, body) = request_token(&app, &form).await;
        let token = body["access_token"].as_str().unwrap().to_string();
        let other = app.token_for("lincoln", &["roster:read"]).await;
        let (status, _) = app.get("/api/v1/districts/lincoln/users", &token).await;
        assert_eq!(status, 200);

        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rostergate"))
            .args(["--database-url", &app.db.url])
            .args(["client", "revoke", "--district", "lincoln", &id])
            .current_dir(dir.path())
            .env_remove("ROSTERGATE_DATABASE_URL")
            .env("ROSTERGATE_LOG__FILTER", "error")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let (status, body) = app.get("/api/v1/districts/lincoln/users", &token).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{body}"
        );
        let (status, _, body) = request_token(&app, &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        // Other clients' tokens are unaffected.
        let (status, _) = app.get("/api/v1/districts/lincoln/users", &other).await;
        assert_eq!(status, 200);
    }
);

on_every_backend!(
    token_requests_over_the_per_ip_limit_get_429_with_retry_after,
    with & [
        ("ROSTERGATE_AUTH__TOKEN_REQUESTS_PER_MINUTE_PER_IP", "3"),
        (
            "ROSTERGATE_AUTH__TOKEN_REQUESTS_PER_MINUTE_PER_CLIENT",
            "100"
        ),
    ],
    |app| {
        // Guesses spread over many client ids are still slowed: the address is what counts.
        for n in 0..3 {
            let id = format!("rgc_guess{n}");
            let (status, retry, _) = request_token(
                &app,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", "guess"),
                ],
            )
            .await;
            assert_eq!((status, retry), (401, None), "attempt {n}");
        }
        let (status, retry, body) = request_token(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "rgc_guess9"),
                ("client_secret", "guess"),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (429, Some("too_many_requests"))
        );
        let secs: u64 = retry.expect("a Retry-After header").parse().unwrap();
        assert!((1..=60).contains(&secs), "Retry-After: {secs}");
    }
);

on_every_backend!(
    token_requests_over_the_per_client_limit_get_429_even_with_the_right_secret,
    with & [
        ("ROSTERGATE_AUTH__TOKEN_REQUESTS_PER_MINUTE_PER_IP", "100"),
        ("ROSTERGATE_AUTH__TOKEN_REQUESTS_PER_MINUTE_PER_CLIENT", "2"),
    ],
    |app| {
        app.create_district("lincoln").await;
        let (id, secret) = new_client(&app, "lincoln", &["roster:read"]).await;
        let (other_id, other_secret) = new_client(&app, "lincoln", &["roster:read"]).await;
        let attempt = |secret: &'static str| {
            [
                ("grant_type", "client_credentials"),
                ("client_secret", secret),
            ]
        };
        for _ in 0..2 {
            let mut form = attempt("wrong").to_vec();
            form.push(("client_id", &id));
            let (status, _, _) = request_token(&app, &form).await;
            assert_eq!(status, 401);
        }
        let right = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ];
        let (status, retry, _) = request_token(&app, &right).await;
        assert_eq!(status, 429);
        assert!(retry.is_some());
        let other = [
            ("grant_type", "client_credentials"),
            ("client_id", other_id.as_str()),
            ("client_secret", other_secret.as_str()),
        ];
        let (status, _, _) = request_token(&app, &other).await;
        assert_eq!(status, 200, "another client is not held back");
    }
);
