//! `rostergate push-secret add|list|revoke`: a district's secrets for signed roster pushes are
//! printed once, stored sealed, listed without their value, and leave the live set a push is
//! verified against when revoked. On both databases.

use crate::common;

use std::process::Output;

use chrono::Utc;
use rostergate::auth::keys::MasterKey;
use rostergate::auth::push_secrets::live_secrets;
use rostergate::auth::secrets::SecretBox;
use rostergate::events::signing::{self, SignedHeaders, VerifyError, WebhookSecret};
use rostergate::store::{districts, Db};
use serde_json::Value;

use crate::common::{Backend, TestApp, TestDb};

/// The master key `common::spawn_app` gives the gateway; the CLI gets it too.
const MASTER_KEY: &str = "test-secret-key-that-is-long-enough-000";

fn rostergate(app: &TestApp, args: &[&str]) -> Output {
    common::rostergate_command(&app.db.url, app.data_dir.path())
        .env("ROSTERGATE_SECRET_KEY", MASTER_KEY)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn succeeded(out: Output) -> String {
    assert!(out.status.success(), "{}", printed(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `push-secret add --json`: the id and the secret.
fn add(app: &TestApp, district: &str) -> (String, String) {
    let out = succeeded(rostergate(
        app,
        &["push-secret", "add", "--district", district, "--json"],
    ));
    let added: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(added["district"], district);
    (
        added["id"].as_str().unwrap().to_string(),
        added["secret"].as_str().unwrap().to_string(),
    )
}

fn list_json(app: &TestApp, district: &str) -> (String, Vec<Value>) {
    let out = succeeded(rostergate(
        app,
        &["push-secret", "list", "--district", district, "--json"],
    ));
    let listed: Value = serde_json::from_str(&out).unwrap();
    (out, listed["push_secrets"].as_array().unwrap().clone())
}

/// The live secrets of a district, opened as the gateway opens them.
async fn live(app: &TestApp, district: &str) -> Vec<WebhookSecret> {
    let db = Db::connect(&app.db.url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    let secrets = SecretBox::new(&MasterKey::from_secret(MASTER_KEY).unwrap());
    let live = live_secrets(&db, &secrets, district.id).await.unwrap();
    db.close().await;
    live
}

/// Verifies a body signed now with `secret` against `live`.
fn verify_with(secret: &str, live: &[WebhookSecret]) -> Result<(), VerifyError> {
    let signer = WebhookSecret::parse(secret).unwrap();
    let now = Utc::now();
    let ts = now.timestamp().to_string();
    let body = br#"{"mode":"delta","users":[]}"#;
    let signature = signing::sign(&signer, "msg_1", now.timestamp(), body);
    let headers = SignedHeaders {
        id: Some("msg_1"),
        timestamp: Some(&ts),
        signature: Some(&signature),
    };
    signing::verify(live, &headers, body, now)
}

/// Every byte the database keeps of push secrets: the SQLite file and its WAL, or PostgreSQL's
/// rows as text.
async fn database_dump(db: &TestDb) -> Vec<u8> {
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").unwrap();
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-journal", "-shm"] {
                if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                    bytes.extend(b);
                }
            }
            assert!(!bytes.is_empty());
            bytes
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let rows: Vec<String> =
                sqlx::query_scalar("SELECT CAST(p AS TEXT) FROM push_secrets p")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            assert!(!rows.is_empty());
            rows.join("\n").into_bytes()
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The base64 part of a `whsec_` secret: what would show if it were stored in clear.
fn key_text(secret: &str) -> &str {
    secret.strip_prefix("whsec_").unwrap()
}

on_every_backend!(
    a_new_secret_is_printed_once_and_never_listed_or_stored_in_clear,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("maple").await;

        let (json_id, json_secret) = add(&app, "lincoln");
        assert!(uuid::Uuid::parse_str(&json_id).is_ok(), "{json_id}");
        WebhookSecret::parse(&json_secret).expect("a parseable whsec_ secret");

        // The text form: the id and the secret, each on its own line.
        let text = succeeded(rostergate(
            &app,
            &["push-secret", "add", "--district", "lincoln"],
        ));
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        let (text_id, text_secret) = (field("id:"), field("secret:"));
        WebhookSecret::parse(&text_secret).expect("a parseable whsec_ secret");
        assert_ne!(text_secret, json_secret);
        assert!(text.contains("shown only now"), "{text}");

        let (raw, listed) = list_json(&app, "lincoln");
        let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&json_id.as_str()) && ids.contains(&text_id.as_str()));
        assert!(listed.iter().all(|s| s["revoked_at"].is_null()));
        assert!(listed.iter().all(|s| s["created_at"].is_string()));
        let plain = succeeded(rostergate(
            &app,
            &["push-secret", "list", "--district", "lincoln"],
        ));
        assert_eq!(plain.lines().count(), 2, "{plain}");
        for secret in [&json_secret, &text_secret] {
            for shown in [&raw, &plain] {
                assert!(!shown.contains(key_text(secret)), "listed: {shown}");
            }
        }

        let dump = database_dump(&app.db).await;
        for secret in [&json_secret, &text_secret] {
            assert!(
                !contains(&dump, key_text(secret)),
                "a secret is stored in clear"
            );
        }
        assert!(contains(&dump, "v1:"), "no sealed secret in the dump");

        // The gateway opens both as the live set, and a push signed with either verifies.
        let lincoln = live(&app, "lincoln").await;
        assert_eq!(lincoln.len(), 2);
        assert_eq!(verify_with(&json_secret, &lincoln), Ok(()));
        assert_eq!(verify_with(&text_secret, &lincoln), Ok(()));

        // Another district sees none of them.
        assert!(live(&app, "maple").await.is_empty());
        assert!(list_json(&app, "maple").1.is_empty());
        assert_eq!(
            verify_with(&json_secret, &live(&app, "maple").await),
            Err(VerifyError::NoMatchingSignature)
        );
        let (_, maple_secret) = add(&app, "maple");
        assert_eq!(
            verify_with(&maple_secret, &lincoln),
            Err(VerifyError::NoMatchingSignature)
        );
    }
);

on_every_backend!(a_revoked_secret_leaves_the_live_set, |app| {
    app.create_district("lincoln").await;
    app.create_district("maple").await;
    let (old_id, old_secret) = add(&app, "lincoln");
    let (new_id, new_secret) = add(&app, "lincoln");

    // Another district cannot revoke it.
    let out = rostergate(
        &app,
        &["push-secret", "revoke", "--district", "maple", &old_id],
    );
    assert!(!out.status.success());
    assert!(
        printed(&out).contains("no live push secret"),
        "{}",
        printed(&out)
    );
    assert_eq!(live(&app, "lincoln").await.len(), 2);

    let out = succeeded(rostergate(
        &app,
        &["push-secret", "revoke", "--district", "lincoln", &old_id],
    ));
    assert!(out.contains(&old_id), "{out}");

    let lincoln = live(&app, "lincoln").await;
    assert_eq!(lincoln.len(), 1);
    assert_eq!(
        verify_with(&old_secret, &lincoln),
        Err(VerifyError::NoMatchingSignature)
    );
    assert_eq!(verify_with(&new_secret, &lincoln), Ok(()));

    let (_, listed) = list_json(&app, "lincoln");
    let by_id = |id: &str| {
        listed
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} is listed"))
            .clone()
    };
    assert!(by_id(&old_id)["revoked_at"].is_string());
    assert!(by_id(&new_id)["revoked_at"].is_null());
    let plain = succeeded(rostergate(
        &app,
        &["push-secret", "list", "--district", "lincoln"],
    ));
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with(&old_id) && l.contains("revoked")),
        "{plain}"
    );

    // Revoking twice, or an id that never was, is an error that changes nothing.
    for id in [old_id.as_str(), "no-such-id"] {
        let out = rostergate(
            &app,
            &["push-secret", "revoke", "--district", "lincoln", id],
        );
        assert!(!out.status.success(), "{id}");
        assert!(
            printed(&out).contains("no live push secret"),
            "{}",
            printed(&out)
        );
    }
    assert_eq!(live(&app, "lincoln").await.len(), 1);

    // An unknown district is refused.
    let out = rostergate(&app, &["push-secret", "add", "--district", "nowhere"]);
    assert!(!out.status.success());
});
