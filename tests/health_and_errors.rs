//! Black-box tests of health, metrics and the shared error shape, on SQLite and PostgreSQL.

mod common;

use common::OPERATOR_TOKEN;
use serde_json::{json, Value};

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

on_every_backend!(metrics_are_exposed_in_prometheus_text_format, |app| {
    app.client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(text.contains("rostergate_http_requests_total"), "{text}");
});

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
