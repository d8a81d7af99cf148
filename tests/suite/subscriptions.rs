//! Webhook subscriptions through the API and the CLI: made with a secret shown once, listed
//! without it, stored sealed, rotated with the previous secret live until it expires, refused
//! for bad or private URLs and unknown event types, and invisible from another district. On
//! both databases.

use crate::common;

use std::process::Output;

use chrono::{Duration, Utc};
use rostergate::auth::keys::MasterKey;
use rostergate::auth::secrets::SecretBox;
use rostergate::events::signing::WebhookSecret;
use rostergate::events::subscriptions::live_secrets;
use rostergate::store::subscriptions::{self, Status, Subscription};
use rostergate::store::{districts, Db};
use serde_json::{json, Value};

use crate::common::{Backend, TestApp, TestDb, MASTER_KEY, OPERATOR_TOKEN};

const ALLOW_PRIVATE: &[(&str, &str)] = &[("ROSTERGATE_OUTBOUND__ALLOW_PRIVATE_TARGETS", "true")];
const HOOK: &str = "http://127.0.0.1:9/hooks/rostergate";

fn collection(district: &str) -> String {
    format!("/api/v1/districts/{district}/subscriptions")
}

fn item(district: &str, id: &str) -> String {
    format!("/api/v1/districts/{district}/subscriptions/{id}")
}

async fn delete(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let r = app
        .client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Creates a subscription through the API: its id and secret.
async fn create(app: &TestApp, district: &str, body: Value) -> (String, String) {
    let (status, made) = app
        .post_json(&collection(district), OPERATOR_TOKEN, &body)
        .await;
    assert_eq!(status, 201, "{made}");
    (
        made["id"].as_str().unwrap().to_string(),
        made["secret"].as_str().unwrap().to_string(),
    )
}

/// The subscription as stored, read through the store.
async fn stored(app: &TestApp, district: &str, id: &str) -> Option<Subscription> {
    let db = Db::connect(&app.db.url).await.unwrap();
    let district = districts::get(&db, district).await.unwrap();
    let found = subscriptions::find(&db, district.id, id).await.unwrap();
    db.close().await;
    found
}

fn secret_box() -> SecretBox {
    SecretBox::new(&MasterKey::from_secret(MASTER_KEY).unwrap())
}

fn texts(secrets: &[WebhookSecret]) -> Vec<String> {
    secrets
        .iter()
        .map(|s| s.to_text().expose().to_string())
        .collect()
}

/// The base64 part of a `whsec_` secret: what would show if it were stored in clear.
fn key_text(secret: &str) -> &str {
    secret.strip_prefix("whsec_").unwrap()
}

/// Every byte the database keeps of subscriptions: the SQLite file and its WAL, or PostgreSQL's
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
                sqlx::query_scalar("SELECT CAST(s AS TEXT) FROM subscriptions s")
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

/// The JSON pointers of a 422's details.
fn pointers(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details: {body}"))
        .iter()
        .map(|d| d["pointer"].as_str().unwrap().to_string())
        .collect()
}

on_every_backend!(
    subscriptions_are_created_listed_fetched_and_deleted,
    with ALLOW_PRIVATE,
    |app| {
        app.create_district("lincoln").await;
        let r = app
            .client
            .post(app.url(&collection("lincoln")))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({"url": HOOK, "event_types": ["class.created", "enrollment.added",
                "class.created"], "description": "Canvas"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let location = r.headers()["Location"].to_str().unwrap().to_string();
        let made: Value = r.json().await.unwrap();
        let id = made["id"].as_str().unwrap().to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(location, item("lincoln", &id));
        let secret = made["secret"].as_str().unwrap().to_string();
        WebhookSecret::parse(&secret).expect("a parseable whsec_ secret");
        assert_eq!(made["url"], HOOK);
        assert_eq!(made["event_types"], json!(["class.created", "enrollment.added"]));
        assert_eq!(made["description"], "Canvas");
        assert_eq!(made["status"], "enabled");
        assert!(made["disabled_reason"].is_null() && made["failing_since"].is_null());
        assert!(made["previous_secret_expires_at"].is_null());

        // Every event type when none is named.
        let (all_id, _) = create(&app, "lincoln", json!({"url": "https://127.0.0.1/all"})).await;

        let (status, listed) = app.get(&collection("lincoln"), OPERATOR_TOKEN).await;
        assert_eq!(status, 200, "{listed}");
        let listed = listed["subscriptions"].as_array().unwrap().clone();
        let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [id.as_str(), all_id.as_str()]);
        assert_eq!(listed[1]["event_types"], json!([]));
        assert_eq!(listed[1]["description"], "");

        let (status, got) = app.get(&item("lincoln", &id), OPERATOR_TOKEN).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["id"], id.as_str());
        assert_eq!(got["url"], HOOK);
        // The secret is in the create answer only.
        for shown in [&got, &json!(listed)] {
            let text = shown.to_string();
            assert!(!text.contains(key_text(&secret)), "{text}");
            assert!(!text.contains("\"secret\""), "{text}");
        }

        let (status, _) = delete(&app, &item("lincoln", &id), OPERATOR_TOKEN).await;
        assert_eq!(status, 204);
        let (status, body) = app.get(&item("lincoln", &id), OPERATOR_TOKEN).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
        let (status, _) = delete(&app, &item("lincoln", &id), OPERATOR_TOKEN).await;
        assert_eq!(status, 404);
        let (_, listed) = app.get(&collection("lincoln"), OPERATOR_TOKEN).await;
        assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 1);
    }
);

on_every_backend!(
    a_rotation_keeps_the_previous_secret_live_until_it_expires,
    with ALLOW_PRIVATE,
    |app| {
        app.create_district("lincoln").await;
        let (id, first) = create(&app, "lincoln", json!({"url": HOOK})).await;
        let secrets = secret_box();
        let before = stored(&app, "lincoln", &id).await.unwrap();
        assert_eq!(
            texts(&live_secrets(&secrets, &before, Utc::now()).unwrap()),
            [first.as_str()]
        );

        let rotate = format!("{}/rotate-secret", item("lincoln", &id));
        let (status, rotated) = app.post_json(&rotate, OPERATOR_TOKEN, &json!({})).await;
        assert_eq!(status, 200, "{rotated}");
        let second = rotated["secret"].as_str().unwrap().to_string();
        WebhookSecret::parse(&second).expect("a parseable whsec_ secret");
        assert_ne!(second, first);
        assert!(rotated["previous_secret_expires_at"].is_string(), "{rotated}");

        // Both open from the database: the new one current, the old one previous.
        let after = stored(&app, "lincoln", &id).await.unwrap();
        let open = |sealed: &str| {
            secrets
                .open_subscription_secret(after.district_id, &id, sealed)
                .unwrap()
                .expose()
                .to_string()
        };
        assert_eq!(open(&after.sealed_secret), second);
        assert_eq!(open(after.sealed_previous_secret.as_deref().unwrap()), first);
        let expires = after.previous_secret_expires_at.unwrap();
        let lifetime = expires - Utc::now();
        assert!(
            lifetime > Duration::hours(23) && lifetime <= Duration::hours(24),
            "{lifetime}"
        );

        // Deliveries are signed with both until the old one expires, then with the new one.
        let now = Utc::now();
        assert_eq!(
            texts(&live_secrets(&secrets, &after, now).unwrap()),
            [second.clone(), first.clone()]
        );
        assert_eq!(
            texts(&live_secrets(&secrets, &after, expires + Duration::seconds(1)).unwrap()),
            [second.as_str()]
        );

        // A second rotation drops the first secret and keeps the second one live.
        let (status, again) = app.post_json(&rotate, OPERATOR_TOKEN, &json!({})).await;
        assert_eq!(status, 200, "{again}");
        let third = again["secret"].as_str().unwrap().to_string();
        let latest = stored(&app, "lincoln", &id).await.unwrap();
        assert_eq!(
            texts(&live_secrets(&secrets, &latest, Utc::now()).unwrap()),
            [third, second]
        );

        // The API never shows a secret again.
        let (_, got) = app.get(&item("lincoln", &id), OPERATOR_TOKEN).await;
        assert!(got.get("secret").is_none(), "{got}");

        let missing = format!("{}/rotate-secret", item("lincoln", "no-such-id"));
        let (status, _) = app.post_json(&missing, OPERATOR_TOKEN, &json!({})).await;
        assert_eq!(status, 404);
    }
);

on_every_backend!(no_secret_is_stored_in_clear, with ALLOW_PRIVATE, |app| {
    app.create_district("lincoln").await;
    let (id, first) = create(&app, "lincoln", json!({"url": HOOK})).await;
    let (status, rotated) = app
        .post_json(
            &format!("{}/rotate-secret", item("lincoln", &id)),
            OPERATOR_TOKEN,
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["secret"].as_str().unwrap().to_string();
    let (_, third) = create(&app, "lincoln", json!({"url": HOOK})).await;

    let dump = database_dump(&app.db).await;
    for secret in [&first, &second, &third] {
        assert!(
            !contains(&dump, key_text(secret)),
            "a secret is stored in clear"
        );
    }
    assert!(contains(&dump, "v1:"), "no sealed secret in the dump");
});

on_every_backend!(private_loopback_and_link_local_targets_are_refused, |app| {
    app.create_district("lincoln").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0x7f000001/hook",
    ] {
        let (status, body) = app
            .post_json(&collection("lincoln"), OPERATOR_TOKEN, &json!({"url": url}))
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field", "{url}");
        assert_eq!(pointers(&body), ["/url"], "{url}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("refused"),
            "{body}"
        );
    }
    let (_, listed) = app.get(&collection("lincoln"), OPERATOR_TOKEN).await;
    assert_eq!(listed["subscriptions"], json!([]));

    // A public address is fine (a literal one: no name to resolve).
    let (status, body) = app
        .post_json(
            &collection("lincoln"),
            OPERATOR_TOKEN,
            &json!({"url": "https://93.184.215.14/hook"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
});

on_every_backend!(
    bad_urls_and_unknown_event_types_are_refused_at_their_pointers,
    with ALLOW_PRIVATE,
    |app| {
        app.create_district("lincoln").await;
        let long = format!("https://127.0.0.1/{}", "a".repeat(2048));
        let cases = [
            (json!({"url": "ftp://127.0.0.1/hook"}), "invalid_field", vec!["/url"]),
            (json!({"url": "not a url"}), "invalid_field", vec!["/url"]),
            (json!({"url": "https://user:pw@127.0.0.1/"}), "invalid_field", vec!["/url"]),
            (json!({"url": "https://127.0.0.1/hook#frag"}), "invalid_field", vec!["/url"]),
            (json!({"url": long}), "invalid_field", vec!["/url"]),
            (
                json!({"url": HOOK, "event_types": ["class.created", "users.created"]}),
                "invalid_field",
                vec!["/event_types/1"],
            ),
            (
                json!({"url": "mailto:a@b.org", "event_types": ["nope"], "description": "x".repeat(501)}),
                "invalid_field",
                vec!["/url", "/event_types/0", "/description"],
            ),
            (json!({"event_types": []}), "invalid_body", vec!["/url"]),
            (
                json!({"url": HOOK, "event_types": "class.created", "secret": "mine"}),
                "invalid_body",
                vec!["/secret", "/event_types"],
            ),
        ];
        for (body, code, want) in cases {
            let (status, answer) = app
                .post_json(&collection("lincoln"), OPERATOR_TOKEN, &body)
                .await;
            assert_eq!(status, 422, "{body}: {answer}");
            assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
            assert_eq!(pointers(&answer), want, "{body}: {answer}");
        }
        let (_, listed) = app.get(&collection("lincoln"), OPERATOR_TOKEN).await;
        assert_eq!(listed["subscriptions"], json!([]), "nothing is stored");
    }
);

on_every_backend!(
    another_districts_subscriptions_are_not_found,
    with ALLOW_PRIVATE,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("maple").await;
        let (id, _) = create(&app, "lincoln", json!({"url": HOOK})).await;
        let maple_admin = app.token_for("maple", &["admin"]).await;
        let lincoln_reader = app.token_for("lincoln", &["roster:read"]).await;

        // Under another district's path, even for the operator.
        let (status, _) = app.get(&item("maple", &id), OPERATOR_TOKEN).await;
        assert_eq!(status, 404);
        let (status, _) = delete(&app, &item("maple", &id), OPERATOR_TOKEN).await;
        assert_eq!(status, 404);
        for action in ["rotate-secret", "enable"] {
            let path = format!("{}/{action}", item("maple", &id));
            let (status, _) = app.post_json(&path, OPERATOR_TOKEN, &json!({})).await;
            assert_eq!(status, 404, "{action}");
        }
        // With another district's token, under its own path.
        let (status, _) = app.get(&item("lincoln", &id), &maple_admin).await;
        assert_eq!(status, 404);
        let (status, _) = app.get(&collection("lincoln"), &maple_admin).await;
        assert_eq!(status, 404);
        let (status, listed) = app.get(&collection("maple"), &maple_admin).await;
        assert_eq!((status, &listed["subscriptions"]), (200, &json!([])));
        // Without `admin`.
        let (status, _) = app.get(&collection("lincoln"), &lincoln_reader).await;
        assert_eq!(status, 403);

        let (status, _) = app.get(&item("lincoln", &id), OPERATOR_TOKEN).await;
        assert_eq!(status, 200, "still there");
    }
);

on_every_backend!(
    enable_turns_a_disabled_subscription_back_on,
    with ALLOW_PRIVATE,
    |app| {
        app.create_district("lincoln").await;
        let (id, _) = create(&app, "lincoln", json!({"url": HOOK})).await;
        let db = Db::connect(&app.db.url).await.unwrap();
        let district = districts::get(&db, "lincoln").await.unwrap();
        let disabled = Status::Disabled {
            reason: "failing for 5 days".into(),
        };
        let changed = subscriptions::set_status(&db, district.id, &id, &disabled)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.status, disabled);
        db.close().await;

        let (_, got) = app.get(&item("lincoln", &id), OPERATOR_TOKEN).await;
        assert_eq!(got["status"], "disabled");
        assert_eq!(got["disabled_reason"], "failing for 5 days");

        let enable = format!("{}/enable", item("lincoln", &id));
        let (status, enabled) = app.post_json(&enable, OPERATOR_TOKEN, &json!({})).await;
        assert_eq!(status, 200, "{enabled}");
        assert_eq!(enabled["status"], "enabled");
        assert!(enabled["disabled_reason"].is_null());
        assert!(enabled.get("secret").is_none());
        assert_eq!(
            stored(&app, "lincoln", &id).await.unwrap().status,
            Status::Enabled
        );
        // Enabling an enabled one changes nothing and is no error.
        let (status, _) = app.post_json(&enable, OPERATOR_TOKEN, &json!({})).await;
        assert_eq!(status, 200);
    }
);

fn rostergate(app: &TestApp, args: &[&str]) -> Output {
    common::gateway_command(&app.db.url, app.data_dir.path())
        .env("ROSTERGATE_OUTBOUND__ALLOW_PRIVATE_TARGETS", "true")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn succeeded(out: Output) -> String {
    assert!(out.status.success(), "{}", common::printed(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `id:` and `secret:` of the text output of `add` and `rotate-secret`.
fn id_and_secret(text: &str) -> (String, String) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (field("id:"), field("secret:"))
}

on_every_backend!(the_cli_adds_lists_rotates_and_removes, |app| {
    app.create_district("lincoln").await;
    let out = succeeded(rostergate(
        &app,
        &[
            "subscription",
            "add",
            "--district",
            "lincoln",
            "--url",
            HOOK,
            "--events",
            "class.created,enrollment.added",
            "--description",
            "Canvas",
            "--json",
        ],
    ));
    let added: Value = serde_json::from_str(&out).unwrap();
    let json_id = added["id"].as_str().unwrap().to_string();
    let json_secret = added["secret"].as_str().unwrap().to_string();
    WebhookSecret::parse(&json_secret).expect("a parseable whsec_ secret");
    assert_eq!(
        added["event_types"],
        json!(["class.created", "enrollment.added"])
    );
    assert_eq!(added["description"], "Canvas");

    let text = succeeded(rostergate(
        &app,
        &[
            "subscription",
            "add",
            "--district",
            "lincoln",
            "--url",
            HOOK,
        ],
    ));
    let (text_id, text_secret) = id_and_secret(&text);
    WebhookSecret::parse(&text_secret).expect("a parseable whsec_ secret");
    assert!(text.contains("shown only now"), "{text}");

    let listed = succeeded(rostergate(
        &app,
        &["subscription", "list", "--district", "lincoln", "--json"],
    ));
    let parsed: Value = serde_json::from_str(&listed).unwrap();
    let ids: Vec<&str> = parsed["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [json_id.as_str(), text_id.as_str()]);
    let plain = succeeded(rostergate(
        &app,
        &["subscription", "list", "--district", "lincoln"],
    ));
    assert_eq!(plain.lines().count(), 2, "{plain}");
    assert!(plain
        .lines()
        .any(|l| l.starts_with(&text_id) && l.contains("all events")));
    for secret in [&json_secret, &text_secret] {
        for shown in [&listed, &plain] {
            assert!(!shown.contains(key_text(secret)), "listed: {shown}");
        }
    }

    // Rotation prints the new secret; the stored subscription signs with both.
    let out = succeeded(rostergate(
        &app,
        &[
            "subscription",
            "rotate-secret",
            "--district",
            "lincoln",
            &json_id,
        ],
    ));
    let (rotated_id, new_secret) = id_and_secret(&out);
    assert_eq!(rotated_id, json_id);
    WebhookSecret::parse(&new_secret).expect("a parseable whsec_ secret");
    assert_ne!(new_secret, json_secret);
    let after = stored(&app, "lincoln", &json_id).await.unwrap();
    assert_eq!(
        texts(&live_secrets(&secret_box(), &after, Utc::now()).unwrap()),
        [new_secret, json_secret]
    );

    let out = succeeded(rostergate(
        &app,
        &["subscription", "remove", "--district", "lincoln", &text_id],
    ));
    assert!(out.contains(&text_id), "{out}");
    assert!(stored(&app, "lincoln", &text_id).await.is_none());
    for args in [
        vec!["subscription", "remove", "--district", "lincoln", &text_id],
        vec![
            "subscription",
            "rotate-secret",
            "--district",
            "lincoln",
            "no-such-id",
        ],
    ] {
        let out = rostergate(&app, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            common::printed(&out).contains("no subscription"),
            "{}",
            common::printed(&out)
        );
    }

    // Refusals name the flag.
    let out = rostergate(
        &app,
        &[
            "subscription",
            "add",
            "--district",
            "lincoln",
            "--url",
            HOOK,
            "--events",
            "class.created,users.created",
        ],
    );
    assert!(!out.status.success());
    assert!(
        common::printed(&out).contains("--events (#2)"),
        "{}",
        common::printed(&out)
    );
    let out = common::gateway_command(&app.db.url, app.data_dir.path())
        .args([
            "subscription",
            "add",
            "--district",
            "lincoln",
            "--url",
            "http://10.0.0.1/hook",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        common::printed(&out).contains("--url"),
        "{}",
        common::printed(&out)
    );
    let out = rostergate(&app, &["subscription", "list", "--district", "nowhere"]);
    assert!(!out.status.success());
});
