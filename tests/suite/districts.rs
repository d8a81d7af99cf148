//! Black-box tests of district creation, on SQLite and PostgreSQL.

use crate::common;

use crate::common::OPERATOR_TOKEN;
use serde_json::json;

on_every_backend!(
    operator_creates_districts_and_bad_fields_are_refused,
    |app| {
        app.create_district("lincoln").await;
        let (status, body) = app.get("/api/v1/districts/lincoln", OPERATOR_TOKEN).await;
        assert_eq!(status, 200);
        assert_eq!(body["timezone"], "America/Chicago");
        assert_eq!(body["settings"]["delete_threshold_percent"], 10.0);
        let table = [
            (
                json!({ "slug": "lincoln", "name": "Again", "timezone": "America/Chicago" }),
                409,
                "conflict",
            ),
            (
                json!({ "slug": "Bad Slug", "name": "X", "timezone": "America/Chicago" }),
                422,
                "invalid_field",
            ),
            (
                json!({ "slug": "ok-slug", "name": "X", "timezone": "Mars/Olympus" }),
                422,
                "invalid_field",
            ),
            (
                json!({ "slug": "ok-slug", "name": "  ", "timezone": "UTC" }),
                422,
                "invalid_field",
            ),
            (
                json!({ "slug": "ok-slug", "name": "X" }),
                422,
                "invalid_body",
            ),
            (
                json!({ "slug": "ok-slug", "name": "X", "timezone": "UTC", "evil": 1 }),
                422,
                "invalid_body",
            ),
        ];
        for (body, want_status, want_code) in table {
            let (status, answer) = app
                .post_json("/api/v1/districts", OPERATOR_TOKEN, &body)
                .await;
            assert_eq!(
                (status, answer["error"]["code"].as_str().unwrap()),
                (want_status, want_code),
                "{body} → {answer}"
            );
        }
        let r = app
            .client
            .post(app.url("/api/v1/districts"))
            .bearer_auth(OPERATOR_TOKEN)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        // A district's own admin cannot create districts.
        let admin = app.token_for("lincoln", &["admin"]).await;
        let (status, _) = app
            .post_json(
                "/api/v1/districts",
                &admin,
                &json!({ "slug": "other", "name": "O", "timezone": "UTC" }),
            )
            .await;
        assert_eq!(status, 403);
    }
);

// The tables a run writes a row per record into rely on their district being there for good
// (PostgreSQL checks no foreign key per row there): the database itself refuses to delete one.
on_every_backend!(
    a_district_with_its_roster_is_never_deleted_even_by_hand_in_the_database,
    |app| {
        app.create_district("lincoln").await;
        let (status, report) = app
            .import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        assert_eq!((status, report["status"].as_str()), (200, Some("applied")));
        let db = rostergate::store::Db::connect(&app.db.url).await.unwrap();
        for delete in [
            "DELETE FROM districts WHERE slug = 'lincoln'",
            "DELETE FROM districts",
        ] {
            let refused = db.conn().execute(delete, &[]).await.unwrap_err();
            assert!(
                refused.to_string().contains("districts are never deleted"),
                "{delete}: {refused}"
            );
        }
        let (status, _) = app.get("/api/v1/districts/lincoln", OPERATOR_TOKEN).await;
        assert_eq!(status, 200);
        let reader = app.token_for("lincoln", &["roster:read"]).await;
        let (status, users) = app.get("/api/v1/districts/lincoln/users", &reader).await;
        assert_eq!(status, 200);
        assert!(!users["users"].as_array().unwrap().is_empty(), "{users}");
        let (status, again) = app
            .import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        assert_eq!((status, again["status"].as_str()), (200, Some("applied")));
    }
);
