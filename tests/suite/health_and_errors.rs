//! Black-box tests of health, metrics and the shared error shape, on SQLite and PostgreSQL.

use crate::common;

use crate::common::OPERATOR_TOKEN;
use serde_json::{json, Value};

const METRICS_TOKEN: &str = "metrics-token-for-tests-0123456789abc";

on_every_backend!(
    health_endpoints_report_live_and_ready_with_current_migrations,
    |app| {
        let live: Value = app
            .client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(live["status"], "ok");
        let r = app
            .client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ready: Value = r.json().await.unwrap();
        assert_eq!(
            ready,
            json!({ "status": "ready", "database": "ok", "migrations": "current" })
        );
    }
);

on_every_backend!(
    metrics_are_exposed_in_prometheus_text_format_to_the_operator_and_metrics_tokens,
    with & [("ROSTERGATE_AUTH__METRICS_TOKEN", METRICS_TOKEN)],
    |app| {
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap();
        for token in [OPERATOR_TOKEN, METRICS_TOKEN] {
            let r = app
                .client
                .get(app.url("/metrics"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"));
            let text = r.text().await.unwrap();
            assert!(text.contains("rostergate_http_requests_total"), "{text}");
        }
        // Anyone else, a district's own admin included, is refused.
        app.create_district("lincoln").await;
        let admin = app.token_for("lincoln", &["admin"]).await;
        for token in [None, Some(admin.as_str()), Some("not-the-metrics-token")] {
            let mut request = app.client.get(app.url("/metrics"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 401, "{token:?}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
);

on_every_backend!(errors_share_one_json_shape_with_a_code, |app| {
    let (status, body) = app.get("/no/such/route", OPERATOR_TOKEN).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "route_not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/no/such/route"));
    assert!(body["error"]["details"].is_array());
    let r = app
        .client
        .delete(app.url("/api/v1/districts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
});

on_every_backend!(a_405_says_which_methods_the_path_allows, |app| {
    let table = [
        ("DELETE", "/api/v1/districts", "GET, POST"),
        ("PUT", "/health/live", "GET"),
        ("GET", "/oauth/token", "POST"),
        (
            "PATCH",
            "/api/v1/districts/lincoln/runs/r-1/approve",
            "POST",
        ),
        ("HEAD", "/api/v1/districts/lincoln/users", "GET"),
    ];
    for (method, path, allow) in table {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(
            r.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        if method != "HEAD" {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "method_not_allowed");
        }
    }
});

on_every_backend!(an_over_long_uri_is_refused_in_the_error_shape, |app| {
    let long = "x".repeat(10 << 10);
    for path in [
        format!("/api/v1/districts/{long}"),
        format!("/api/v1/districts?limit=1&q={long}"),
        format!("/{long}"),
    ] {
        let (status, body) = app.get(&path, OPERATOR_TOKEN).await;
        assert_eq!(status, 414, "{body}");
        assert_eq!(body["error"]["code"], "uri_too_long");
        assert!(body["error"]["message"].as_str().unwrap().contains("8192"));
    }
    // Just under the limit is routed as usual.
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/{}", "x".repeat(8000)),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
});

on_every_backend!(bad_paging_values_are_refused_in_the_projects_words, |app| {
    app.create_district("lincoln").await;
    let d = "/api/v1/districts/lincoln";
    let limit = "limit must be a whole number from 1 to 10000";
    let offset = "offset must be a whole number, 0 or more";
    let table = [
        (format!("{d}/users?limit=abc"), limit),
        (format!("{d}/users?limit=0"), limit),
        (format!("{d}/users?limit=10001"), limit),
        (format!("{d}/users?limit=1.5"), limit),
        (format!("{d}/users?limit="), limit),
        (format!("{d}/users?limit=99999999999999999999"), limit),
        (format!("{d}/users?offset=-1"), offset),
        (format!("{d}/users?offset=x"), offset),
        (format!("{d}/runs?limit=abc"), limit),
        (format!("{d}/events?limit=abc"), limit),
        (
            format!("{d}/events?after=abc"),
            "after must be a whole number",
        ),
    ];
    for (path, message) in &table {
        let (status, body) = app.get(path, OPERATOR_TOKEN).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{path}");
        let got = body["error"]["message"].as_str().unwrap();
        assert!(got.contains(message), "{path}: {got}");
        assert!(
            !got.contains("invalid digit"),
            "{path}: serde's words: {got}"
        );
    }
    let (status, body) = app
        .post_bytes(
            &format!("{d}/imports/oneroster?dry_run=maybe"),
            OPERATOR_TOKEN,
            b"PK".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], "dry_run must be true or false");
    // Good values still page.
    let (status, body) = app
        .get(&format!("{d}/users?limit=10000&offset=0"), OPERATOR_TOKEN)
        .await;
    assert_eq!((status, body["limit"].as_i64()), (200, Some(10000)));
});
