//! Stored rows that no longer decode are the gateway's fault: a 500 in the one error shape,
//! never a 409 that tells the caller to change its request.

use crate::common;

use crate::common::OPERATOR_TOKEN;
use rostergate::store::Db;

on_every_backend!(
    a_corrupt_stored_row_is_a_server_error_not_a_conflict,
    |app| {
        app.create_district("lincoln").await;
        let (status, _) = app.get("/api/v1/districts/lincoln", OPERATOR_TOKEN).await;
        assert_eq!(status, 200);

        let db = Db::connect(&app.db.url).await.unwrap();
        let changed = db
            .conn()
            .execute(
                "UPDATE districts SET settings = $1 WHERE slug = $2",
                &rostergate::args!["{not json", "lincoln"],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        db.close().await;

        let (status, body) = app.get("/api/v1/districts/lincoln", OPERATOR_TOKEN).await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(
            !body.to_string().contains("not json"),
            "stored content stays out of the answer: {body}"
        );
    }
);
