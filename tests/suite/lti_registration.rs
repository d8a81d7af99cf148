//! LTI Dynamic Registration through the whole exchange, against the in-library platform: an
//! administrator's invitation (API or CLI) → the platform opens its URL → the gateway fetches
//! the platform's configuration and registers at its registration endpoint → the registration
//! is stored in the invitation's district, and a launch through it works. And what must not
//! get through, each refusal with its own code and nothing stored: an invitation used twice,
//! expired or unknown, a wrong registration token, a configuration whose issuer is not its
//! URL's, one without private_key_jwt, an oversized one. On both databases.

use crate::common;

use std::path::Path;

use chrono::{DateTime, Utc};
use reqwest::header::{CACHE_CONTROL, REFERRER_POLICY};
use reqwest::Method;
use rostergate::config::LtiSettings;
use rostergate::lti::dynamic_registration::{self as dr, InviteInput};
use rostergate::store::lti_registration_invites::{self as invites, InviteRow};
use rostergate::store::{districts, Db};
use rostergate::synthetic::lti_platform::{
    LtiPlatform, LtiPlatformConfig, OpenIdConfigurationSpec,
};
use serde_json::{json, Value};

use crate::common::{
    bytes_contain, database_dump, printed, rostergate_command, school, send, TestApp,
    OPERATOR_TOKEN,
};
use crate::lti_launches::{browser, launch, login_and_authorize, session, teacher, LTI};

const PUBLIC_URL: &str = "https://gateway.example.org";
const INVITES: &str = "/api/v1/districts/lincoln/lti/registration-invites";
const PLATFORMS: &str = "/api/v1/districts/lincoln/lti/platforms";
const REGISTRATION_TOKEN: &str = "registration-token-from-the-lms";

/// A rostered district (teacher tch-1 in cls-1).
async fn rostered_district(app: &TestApp) {
    app.create_district("lincoln").await;
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    assert_eq!(status, 200, "{body}");
}

/// A platform that sends browsers back to the gateway's redirect URI.
fn platform(client_id: &str, deployment_id: &str) -> LtiPlatform {
    LtiPlatform::start(
        LtiPlatformConfig::new(client_id, deployment_id)
            .with_tool_redirect_uri(format!("{PUBLIC_URL}/lti/launch")),
    )
    .unwrap()
}

/// An invitation made over the API; its JSON.
async fn invite(app: &TestApp, body: Value) -> Value {
    let (status, raw, created) =
        send(app, Method::POST, INVITES, OPERATOR_TOKEN, Some(&body)).await;
    assert_eq!(status, 201, "{raw}");
    created
}

/// The gateway's path of an invitation's URL (the URL names the public address).
fn path_of(url: &str) -> String {
    let path = url
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("{url} is not under {PUBLIC_URL}"));
    assert!(path.starts_with("/lti/register/"), "{url}");
    path.to_string()
}

/// The platform opens the invitation's URL, as an LMS does in its frame; the status, the
/// headers and the page.
async fn open(
    app: &TestApp,
    url: &str,
    configuration: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut query = vec![("openid_configuration", configuration)];
    if let Some(token) = token {
        query.push(("registration_token", token));
    }
    let response = browser()
        .get(app.url(&path_of(url)))
        .query(&query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn names_code(page: &str, code: &str) -> bool {
    page.contains(&format!("<code>{code}</code>"))
}

async fn platforms(app: &TestApp) -> Vec<Value> {
    let (status, _, body) = send(app, Method::GET, PLATFORMS, OPERATOR_TOKEN, None).await;
    assert_eq!(status, 200, "{body}");
    body["platforms"].as_array().unwrap().clone()
}

/// The stored invitation behind a URL.
async fn stored_invite(app: &TestApp, url: &str) -> InviteRow {
    let token = url.rsplit('/').next().unwrap();
    let db = Db::connect(&app.db.url).await.unwrap();
    let row = invites::invite_by_token_hash(&db, &dr::invite_token_hash(token))
        .await
        .unwrap()
        .expect("the invitation is stored");
    db.close().await;
    row
}

/// `rostergate lti platform invite ARGS` on the app's database, with its LTI settings.
fn cli_invite(app: &TestApp, dir: &Path, args: &[&str]) -> std::process::Output {
    rostergate_command(&app.db.url, dir)
        .env("ROSTERGATE_LTI__PUBLIC_URL", PUBLIC_URL)
        .env(
            "ROSTERGATE_LTI__TARGET_LINK_URIS",
            "https://learn.example.org/",
        )
        .args(["lti", "platform", "invite"])
        .args(args)
        .output()
        .expect("the binary runs")
}

fn seconds_until(at: &Value) -> i64 {
    let at: DateTime<Utc> = at.as_str().unwrap().parse().unwrap();
    (at - Utc::now()).num_seconds()
}

on_every_backend!(
    a_platform_registers_itself_through_an_invitation_and_then_launches,
    with & LTI,
    |app| {
        rostered_district(&app).await;
        let lms = platform("dr-client-1", "7:dr-deployment");
        lms.require_registration_token(REGISTRATION_TOKEN);

        let admin = app.token_for("lincoln", &["admin"]).await;
        let (status, raw, created) =
            send(&app, Method::POST, INVITES, &admin, Some(&json!({}))).await;
        assert_eq!(status, 201, "{raw}");
        let url = created["url"].as_str().unwrap().to_string();
        assert_eq!(created["district"], "lincoln");
        assert_eq!(created["unknown_deployments"], "refuse");
        assert_eq!(created["allow_foreign_configuration"], false);
        let ttl = seconds_until(&created["expires_at"]);
        assert!((24 * 3600 - 60..=24 * 3600).contains(&ttl), "a day: {ttl}");
        // The token is in the URL only: the database keeps its hash.
        let token = url.rsplit('/').next().unwrap();
        assert_eq!(token.len(), 43, "{url}");
        let dump = database_dump(&app.db, "lti_registration_invites").await;
        assert!(!bytes_contain(&dump, token), "the token is stored in clear");

        let (status, headers, page) = open(
            &app,
            &url,
            &lms.openid_configuration_url(),
            Some(REGISTRATION_TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains("(window.opener || window.parent).postMessage({subject:'org.imsglobal.lti.close'}, '*')"),
            "{page}"
        );
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert_eq!(headers[REFERRER_POLICY], "no-referrer");

        // The platform was asked for its configuration and registered the tool, both with
        // the registration token, and got the tool's registration as §13 step 3 says.
        assert_eq!(
            lms.configuration_requests(),
            [Some(REGISTRATION_TOKEN.to_string())]
        );
        let received = lms.registrations();
        assert_eq!(received.len(), 1, "{received:?}");
        let registration = &received[0];
        assert_eq!(registration.status, 200, "{registration:?}");
        assert_eq!(registration.bearer.as_deref(), Some(REGISTRATION_TOKEN));
        let body = &registration.body;
        assert_eq!(
            body["initiate_login_uri"],
            format!("{PUBLIC_URL}/lti/login")
        );
        assert_eq!(
            body["redirect_uris"],
            json!([format!("{PUBLIC_URL}/lti/launch")])
        );
        assert_eq!(body["jwks_uri"], format!("{PUBLIC_URL}/lti/jwks"));
        assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
        assert_eq!(body["client_name"], "rostergate");
        let scope = body["scope"].as_str().unwrap();
        for wanted in [
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
        ] {
            assert!(scope.split(' ').any(|s| s == wanted), "{scope}");
        }
        let tool = &body[dr::TOOL_CONFIGURATION];
        assert_eq!(tool["target_link_uri"], "https://learn.example.org/");
        assert_eq!(tool["domain"], "gateway.example.org");
        assert_eq!(tool["messages"][0]["type"], "LtiResourceLinkRequest");
        assert_eq!(tool["messages"][1]["type"], "LtiDeepLinkingRequest");

        // The registration is stored in the invitation's district, as the platform named it.
        let listed = platforms(&app).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        let stored = &listed[0];
        assert_eq!(stored["issuer"], lms.issuer());
        assert_eq!(stored["client_id"], "dr-client-1");
        assert_eq!(stored["auth_login_url"], lms.auth_url());
        assert_eq!(stored["token_url"], format!("{}/token", lms.origin()));
        assert_eq!(stored["jwks_url"], lms.jwks_url());
        assert_eq!(stored["unknown_deployments"], "refuse");
        assert_eq!(
            stored["deployments"],
            json!([{"deployment_id": "7:dr-deployment", "status": "active"}])
        );
        let used = stored_invite(&app, &url).await;
        assert!(used.used_at.is_some());
        assert_eq!(used.platform_id, stored["id"].as_i64());

        // A teacher's launch through the new registration lands signed in.
        let launched = login_and_authorize(&app, &lms, &teacher()).await;
        let (status, location, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 302, "{page}");
        let claims = session(&app, &location.unwrap()).await;
        assert_eq!(claims["sub"], "tch-1", "{claims}");
        assert_eq!(claims["rostergate"]["district"], "lincoln", "{claims}");

        // The same invitation again registers nothing: the platform is not even asked.
        let (status, _, page) = open(
            &app,
            &url,
            &lms.openid_configuration_url(),
            Some(REGISTRATION_TOKEN),
        )
        .await;
        assert_eq!(status, 410, "{page}");
        assert!(names_code(&page, "invite_used"), "{page}");
        assert_eq!(lms.registrations().len(), 1);
        assert_eq!(lms.configuration_requests().len(), 1);
        assert_eq!(platforms(&app).await.len(), 1);
        lms.stop().await;
    }
);

on_every_backend!(
    the_cli_makes_invitations_and_a_platform_naming_no_deployment_gets_pending_ones,
    with & LTI,
    |app| {
        rostered_district(&app).await;
        let work = tempfile::tempdir().unwrap();
        let out = cli_invite(
            &app,
            work.path(),
            &["--district", "lincoln", "--ttl-mins", "5", "--json"],
        );
        assert!(out.status.success(), "{}", printed(&out));
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ttl = seconds_until(&created["expires_at"]);
        assert!((240..=300).contains(&ttl), "five minutes: {ttl}");
        let url = created["url"].as_str().unwrap().to_string();

        // Canvas names no deployment in its answer: the registration admits its deployments
        // as pending, whatever the invitation said.
        let lms = platform("dr-client-2", "9:installed-later");
        lms.omit_deployment_in_registrations(true);
        let (status, _, page) = open(&app, &url, &lms.openid_configuration_url(), None).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("pending"), "{page}");
        assert_eq!(lms.configuration_requests(), [None], "no token, no bearer");
        assert_eq!(lms.registrations()[0].bearer, None);
        let listed = platforms(&app).await;
        assert_eq!(listed[0]["deployments"], json!([]), "{listed:?}");
        assert_eq!(listed[0]["unknown_deployments"], "pending");

        let launched = login_and_authorize(&app, &lms, &teacher()).await;
        let (status, _, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 302, "{page}");
        assert_eq!(
            platforms(&app).await[0]["deployments"],
            json!([{"deployment_id": "9:installed-later", "status": "pending"}])
        );

        // Text output: what it is, then the URL alone on the last line.
        let out = cli_invite(
            &app,
            work.path(),
            &["--district", "lincoln", "--unknown-deployments", "pending"],
        );
        assert!(out.status.success(), "{}", printed(&out));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with(&format!("{PUBLIC_URL}/lti/register/")),
            "{text}"
        );
        assert_eq!(
            stored_invite(&app, last).await.unknown_deployments,
            rostergate::lti::UnknownDeployments::Pending
        );

        // Refusals name their flag; an unknown district or a gateway without LTI, their cause.
        let refusals: [(&[&str], &str); 4] = [
            (&["--district", "lincoln", "--ttl-mins", "0"], "--ttl-mins"),
            (
                &["--district", "lincoln", "--unknown-deployments", "accept"],
                "--unknown-deployments",
            ),
            (&["--district", "nowhere"], "nowhere"),
            (
                &["--district", "lincoln", "--ttl-mins", "50000"],
                "--ttl-mins",
            ),
        ];
        for (args, named) in refusals {
            let out = cli_invite(&app, work.path(), args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", printed(&out));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(named),
                "{args:?}: {}",
                printed(&out)
            );
        }
        let out = rostergate_command(&app.db.url, work.path())
            .env_remove("ROSTERGATE_LTI__PUBLIC_URL")
            .args(["lti", "platform", "invite", "--district", "lincoln"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("lti.public_url"),
            "{}",
            printed(&out)
        );
        lms.stop().await;
    }
);

on_every_backend!(
    expired_unknown_and_incomplete_invitations_ask_the_platform_nothing_and_store_nothing,
    with & LTI,
    |app| {
        app.create_district("lincoln").await;
        let lms = platform("dr-client-3", "1");
        let configuration = lms.openid_configuration_url();

        // An invitation made two days ago with the default day to live.
        let db = Db::connect(&app.db.url).await.unwrap();
        let lincoln = districts::get(&db, "lincoln").await.unwrap();
        let settings = LtiSettings {
            public_url: Some(PUBLIC_URL.into()),
            target_link_uris: vec!["https://learn.example.org/".into()],
            ..LtiSettings::default()
        };
        let request = InviteInput::default().validate().unwrap();
        let expired = dr::create_invite(
            &db,
            &settings,
            lincoln.id,
            &request,
            Utc::now() - chrono::Duration::days(2),
        )
        .await
        .unwrap();
        db.close().await;
        let (status, _, page) = open(&app, &expired.url, &configuration, None).await;
        assert_eq!(status, 410, "{page}");
        assert!(names_code(&page, "invite_expired"), "{page}");

        let unknown = format!("{PUBLIC_URL}/lti/register/{}", dr::new_invite_token());
        let (status, _, page) = open(&app, &unknown, &configuration, None).await;
        assert_eq!(status, 404, "{page}");
        assert!(names_code(&page, "unknown_invite"), "{page}");

        let created = invite(&app, json!({})).await;
        let url = created["url"].as_str().unwrap();
        let response = browser().get(app.url(&path_of(url))).send().await.unwrap();
        assert_eq!(response.status(), 400);
        assert!(names_code(
            &response.text().await.unwrap(),
            "missing_openid_configuration"
        ));
        let (status, _, page) = open(&app, url, "ftp://lms.example.org/config", None).await;
        assert_eq!(status, 400, "{page}");
        assert!(
            names_code(&page, "invalid_openid_configuration_url"),
            "{page}"
        );

        assert!(lms.configuration_requests().is_empty());
        assert!(lms.registrations().is_empty());
        assert!(platforms(&app).await.is_empty());
        assert!(stored_invite(&app, url).await.used_at.is_none());
        lms.stop().await;
    }
);

on_every_backend!(
    the_platforms_bad_answers_are_refused_by_code_and_leave_the_invitation_usable,
    with & LTI,
    |app| {
        app.create_district("lincoln").await;
        let lms = platform("dr-client-4", "4:d");
        lms.require_registration_token(REGISTRATION_TOKEN);
        let created = invite(&app, json!({"ttl_mins": 30})).await;
        let url = created["url"].as_str().unwrap();
        let configuration = lms.openid_configuration_url();

        let (status, _, page) = open(&app, url, &configuration, Some("a-wrong-token")).await;
        assert_eq!(status, 502, "{page}");
        assert!(names_code(&page, "registration_token_rejected"), "{page}");
        assert!(
            !page.contains("a-wrong-token"),
            "the token is shown: {page}"
        );

        let spoiled = [
            (
                OpenIdConfigurationSpec::default()
                    .with_member("issuer", json!("https://lms.elsewhere.example.org")),
                "issuer_mismatch",
            ),
            (
                OpenIdConfigurationSpec::default().with_member(
                    "token_endpoint_auth_methods_supported",
                    json!(["client_secret_basic"]),
                ),
                "private_key_jwt_unsupported",
            ),
            (
                OpenIdConfigurationSpec::default().with_padding(100 << 10),
                "configuration_too_large",
            ),
            (
                OpenIdConfigurationSpec::default().without_member("jwks_uri"),
                "configuration_missing_field",
            ),
            (
                OpenIdConfigurationSpec::default()
                    .with_member("id_token_signing_alg_values_supported", json!(["HS256"])),
                "rs256_unsupported",
            ),
        ];
        for (spec, code) in spoiled {
            lms.set_openid_configuration(spec);
            let (status, _, page) = open(&app, url, &configuration, Some(REGISTRATION_TOKEN)).await;
            assert_eq!(status, 502, "{code}: {page}");
            assert!(names_code(&page, code), "{code}: {page}");
        }
        // None of them got as far as registering, or stored anything.
        assert!(lms.registrations().is_empty());
        assert!(platforms(&app).await.is_empty());
        assert!(stored_invite(&app, url).await.used_at.is_none());

        // The invitation is still good for the platform once its answers are.
        lms.set_openid_configuration(OpenIdConfigurationSpec::default());
        let (status, _, page) = open(&app, url, &configuration, Some(REGISTRATION_TOKEN)).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(platforms(&app).await.len(), 1);
        lms.stop().await;
    }
);

on_every_backend!(
    a_foreign_configuration_registers_only_through_an_invitation_that_allows_it,
    with & LTI,
    |app| {
        rostered_district(&app).await;
        // Moodle's configuration URL does not sit under its issuer.
        let lms = LtiPlatform::start(
            LtiPlatformConfig::new("moodle-client", "1")
                .with_issuer("https://moodle.example.org")
                .with_tool_redirect_uri(format!("{PUBLIC_URL}/lti/launch")),
        )
        .unwrap();
        let strict = invite(&app, json!({})).await;
        let (status, _, page) = open(
            &app,
            strict["url"].as_str().unwrap(),
            &lms.openid_configuration_url(),
            None,
        )
        .await;
        assert_eq!(status, 502, "{page}");
        assert!(names_code(&page, "issuer_mismatch"), "{page}");
        assert!(platforms(&app).await.is_empty());

        let lenient = invite(&app, json!({"allow_foreign_configuration": true})).await;
        assert_eq!(lenient["allow_foreign_configuration"], true);
        let (status, _, page) = open(
            &app,
            lenient["url"].as_str().unwrap(),
            &lms.openid_configuration_url(),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            platforms(&app).await[0]["issuer"],
            "https://moodle.example.org"
        );
        let launched = login_and_authorize(&app, &lms, &teacher()).await;
        let (status, _, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 302, "{page}");
        lms.stop().await;
    }
);

on_every_backend!(
    only_the_districts_administrators_make_invitations_and_bad_ones_are_named,
    with & LTI,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("other").await;
        let reader = app.token_for("lincoln", &["roster:read"]).await;
        let other_admin = app.token_for("other", &["admin"]).await;
        let (status, _, body) = send(&app, Method::POST, INVITES, &reader, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("insufficient_scope"))
        );
        let (status, _, _) = send(&app, Method::POST, INVITES, &other_admin, None).await;
        assert_eq!(status, 404);

        // No body at all: the defaults.
        let (status, raw, _) = send(&app, Method::POST, INVITES, OPERATOR_TOKEN, None).await;
        assert_eq!(status, 201, "{raw}");
        let cases = [
            (json!({"ttl_mins": 0}), "invalid_field", "/ttl_mins"),
            (json!({"ttl_mins": "60"}), "invalid_body", "/ttl_mins"),
            (
                json!({"unknown_deployments": "accept"}),
                "invalid_field",
                "/unknown_deployments",
            ),
            (
                json!({"allow_foreign_configuration": 1}),
                "invalid_body",
                "/allow_foreign_configuration",
            ),
            (json!({"district": "other"}), "invalid_body", "/district"),
        ];
        for (body, code, pointer) in cases {
            let (status, raw, answer) =
                send(&app, Method::POST, INVITES, OPERATOR_TOKEN, Some(&body)).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (422, Some(code)),
                "{body} → {raw}"
            );
            assert_eq!(answer["error"]["details"][0]["pointer"], pointer, "{raw}");
        }
        let db = Db::connect(&app.db.url).await.unwrap();
        let lincoln = districts::get(&db, "lincoln").await.unwrap();
        assert_eq!(
            invites::list_invites(&db, lincoln.id).await.unwrap().len(),
            1
        );
        db.close().await;
    }
);

on_every_backend!(
    a_gateway_without_an_lti_tool_makes_no_invitations_and_registers_nothing,
    |app| {
        app.create_district("lincoln").await;
        let (status, _, body) = send(&app, Method::POST, INVITES, OPERATOR_TOKEN, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("lti_not_configured")),
            "{body}"
        );
        let response = browser()
            .get(app.url(&format!("/lti/register/{}", dr::new_invite_token())))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert!(names_code(
            &response.text().await.unwrap(),
            "lti_not_configured"
        ));
    }
);
