//! The platform driven by reqwest, as a tool (and its browser) would drive it; its tokens
//! verified with `jsonwebtoken` against its own `/jwks`, and read by the gateway's validator.

use std::collections::HashMap;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::*;
use crate::lti::validate::{self, Expected, LaunchError};
use crate::lti::{KeyError, KeySource, Registration, UnknownDeployments};
use crate::synthetic::provider::query_pairs;

const CLIENT_ID: &str = "10000000000042";
const DEPLOYMENT: &str = "189:7f956bcc2c8d1e0f";
const TOOL: &str = "https://gateway.example.org";
const REDIRECT_URI: &str = "https://gateway.example.org/lti/launch";
const NONCE: &str = "n-0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// reqwest builds its TLS configuration even for plain HTTP, so a crypto provider must be set.
fn client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Client::new()
}

fn config() -> LtiPlatformConfig {
    LtiPlatformConfig::new(CLIENT_ID, DEPLOYMENT).with_tool_redirect_uri(REDIRECT_URI)
}

async fn fetch_jwks(platform: &LtiPlatform, client: &Client) -> Value {
    let response = client.get(platform.jwks_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The key set's keys by kid, as a tool reads them.
fn decoding_keys(jwks: &Value) -> HashMap<String, DecodingKey> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            let jwk: Jwk = serde_json::from_value(key.clone()).unwrap();
            let kid = key["kid"].as_str().unwrap().to_string();
            (kid, DecodingKey::from_jwk(&jwk).unwrap())
        })
        .collect()
}

/// The token's claims, its RS256 signature checked with the `/jwks` key its header names, and
/// its iss, aud and exp checked by `jsonwebtoken`.
async fn verify(platform: &LtiPlatform, client: &Client, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.expect("a kid in the header");
    let keys = decoding_keys(&fetch_jwks(platform, client).await);
    let key = keys.get(&kid).expect("the header's kid is published");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[CLIENT_ID]);
    validation.set_issuer(&[platform.issuer()]);
    jsonwebtoken::decode::<Value>(token, key, &validation)
        .unwrap()
        .claims
}

/// The unverified payload, for tokens that are meant not to verify.
fn payload(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The decoded query of a URL.
fn query_of(url: &str) -> HashMap<String, String> {
    let (_, query) = url.split_once('?').unwrap();
    query_pairs(query).unwrap().into_iter().collect()
}

/// A well-formed authentication request answering `login` (a login URL's parameters).
fn auth_request(login: &HashMap<String, String>) -> Vec<(String, String)> {
    [
        ("scope", "openid"),
        ("response_type", "id_token"),
        ("response_mode", "form_post"),
        ("prompt", "none"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("login_hint", &login["login_hint"]),
        ("lti_message_hint", &login["lti_message_hint"]),
        ("state", "state-5e0c9a71d2b84f36a1c07e29b8d4f613"),
        ("nonce", NONCE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test]
async fn jwks_serves_the_signing_key() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let response = client.get(platform.jwks_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let jwks: Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kid"], platform.signing_kid().as_str());
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "no private member is published");
    assert_eq!(jwks, platform.jwks());
    platform.stop().await;
}

#[tokio::test]
async fn signed_launch_verifies_against_the_jwks_and_carries_the_lti_claims() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let spec = LaunchSpec::default()
        .with_custom("district", "north")
        .with_names_roles("https://lms.example.edu/nrps/1")
        .with_grades(GradesSpec {
            scope: vec!["https://purl.imsglobal.org/spec/lti-ags/scope/score".into()],
            lineitems: Some("https://lms.example.edu/ags/1/lineitems".into()),
            lineitem: None,
        });
    let token = platform.signed_launch(&spec, NONCE, CLIENT_ID);
    let c = verify(&platform, &client, &token).await;

    assert_eq!(c["iss"], platform.issuer().as_str());
    assert_eq!(
        platform.issuer(),
        platform.origin(),
        "the issuer defaults to the origin"
    );
    assert_eq!(c["aud"], CLIENT_ID);
    assert_eq!(c["nonce"], NONCE);
    assert_eq!(c["sub"], "teacher-0001");
    assert_eq!(c[claim::VERSION], "1.3.0");
    assert_eq!(c[claim::MESSAGE_TYPE], "LtiResourceLinkRequest");
    assert_eq!(c[claim::DEPLOYMENT_ID], DEPLOYMENT);
    assert_eq!(c[claim::TARGET_LINK_URI], REDIRECT_URI);
    assert_eq!(c[claim::ROLES], json!([claim::ROLE_INSTRUCTOR]));
    assert_eq!(c[claim::RESOURCE_LINK]["id"], "resource-link-0001");
    assert_eq!(c[claim::CONTEXT]["id"], "context-0001");
    assert_eq!(c[claim::CONTEXT]["label"], "MATH-7");
    assert_eq!(c[claim::LIS]["person_sourcedid"], "teacher-sourcedid-0001");
    assert_eq!(
        c[claim::LIS]["course_section_sourcedid"],
        "class-sourcedid-0001"
    );
    assert_eq!(c["email"], "avery.teacher@example.edu");
    assert_eq!(c["name"], "Avery Teacher");
    assert_eq!(c[claim::CUSTOM], json!({"district": "north"}));
    assert_eq!(
        c[claim::NAMES_ROLES],
        json!({"context_memberships_url": "https://lms.example.edu/nrps/1", "service_versions": ["2.0"]})
    );
    assert_eq!(
        c[claim::GRADES]["lineitems"],
        "https://lms.example.edu/ags/1/lineitems"
    );
    assert!(c[claim::GRADES].get("lineitem").is_none());
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 300);
    assert!((iat - chrono::Utc::now().timestamp()).abs() <= 5);
    platform.stop().await;
}

#[tokio::test]
async fn deep_linking_launch_carries_its_settings_and_no_resource_link() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let token = platform.signed_launch(&LaunchSpec::deep_linking(), NONCE, CLIENT_ID);
    let c = verify(&platform, &client, &token).await;
    assert_eq!(c[claim::MESSAGE_TYPE], "LtiDeepLinkingRequest");
    assert!(c.get(claim::RESOURCE_LINK).is_none());
    let settings = &c[claim::DEEP_LINKING_SETTINGS];
    assert_eq!(
        settings["deep_link_return_url"],
        platform.deep_link_return_url().as_str()
    );
    assert_eq!(settings["accept_types"], json!(["ltiResourceLink"]));
    assert_eq!(settings["data"], "synthetic-deep-link-data");

    // What a tool posts back is recorded.
    let response = client
        .post(platform.deep_link_return_url())
        .form(&[("JWT", "a.b.c")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(platform.deep_link_responses(), vec!["a.b.c".to_string()]);
    platform.stop().await;
}

#[tokio::test]
async fn tampering_knobs_shape_the_token() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let published = platform.published_kids();

    let spec = LaunchSpec::learner()
        .with_deployment_id("190:second-install")
        .with_target_link_uri("https://gateway.example.org/lti/launch/r/42")
        .with_extra_claim(claim::VERSION, "1.1")
        .with_extra_claim("aud", json!([CLIENT_ID, "someone-else"]))
        .without_claim(claim::ROLES)
        .without_claim("sub")
        .with_exp_offset(-120)
        .with_iat_offset(-400);
    let token = platform.signed_launch(&spec, NONCE, CLIENT_ID);
    let c = payload(&token);
    assert_eq!(c[claim::VERSION], "1.1");
    assert_eq!(c["aud"], json!([CLIENT_ID, "someone-else"]));
    assert!(c.get(claim::ROLES).is_none());
    assert!(c.get("sub").is_none());
    assert_eq!(c[claim::DEPLOYMENT_ID], "190:second-install");
    assert_eq!(
        c[claim::TARGET_LINK_URI],
        "https://gateway.example.org/lti/launch/r/42"
    );
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 280);

    let foreign = platform.signed_launch(
        &LaunchSpec::default().signed_with_unknown_key(),
        NONCE,
        CLIENT_ID,
    );
    let kid = jsonwebtoken::decode_header(&foreign).unwrap().kid.unwrap();
    assert!(
        !published.contains(&kid),
        "the unknown key is never published"
    );
    let jwks = fetch_jwks(&platform, &client).await;
    assert!(!decoding_keys(&jwks).contains_key(&kid));
    platform.stop().await;
}

/// A key source of a fetched key set, as the gateway's platform client would give it.
struct FetchedKeys(HashMap<String, DecodingKey>);

impl KeySource for FetchedKeys {
    async fn key(&self, kid: &str) -> Result<DecodingKey, KeyError> {
        self.0
            .get(kid)
            .cloned()
            .ok_or_else(|| KeyError::UnknownKid(kid.to_string()))
    }
}

#[tokio::test]
async fn the_gateways_validator_accepts_the_default_launches_and_names_each_tampering() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let keys = FetchedKeys(decoding_keys(&fetch_jwks(&platform, &client).await));
    let registration = Registration {
        issuer: platform.issuer(),
        client_id: CLIENT_ID.into(),
        deployment_ids: vec![DEPLOYMENT.into()],
        unknown_deployments: UnknownDeployments::Refuse,
    };
    let tool_urls = [REDIRECT_URI.to_string()];
    let expected = Expected {
        registration: &registration,
        nonce: NONCE,
        login_target_link_uri: REDIRECT_URI,
        login_deployment_id: Some(DEPLOYMENT),
        tool_urls: &tool_urls,
        now: chrono::Utc::now().timestamp(),
    };
    let check = |spec: LaunchSpec| {
        let token = platform.signed_launch(&spec, NONCE, CLIENT_ID);
        let (keys, expected) = (&keys, &expected);
        async move { validate::validate(&token, expected, keys).await }
    };

    for spec in [
        LaunchSpec::default(),
        LaunchSpec::learner(),
        LaunchSpec::deep_linking(),
    ] {
        let launch = check(spec.clone()).await.unwrap();
        assert_eq!(launch.sub, spec.sub);
        assert_eq!(launch.deployment_id, DEPLOYMENT);
        assert_eq!(launch.target_link_uri, REDIRECT_URI);
        assert_eq!(launch.message_type.as_str(), spec.message.message_type());
    }

    let cases: Vec<(&str, LaunchSpec, &str)> = vec![
        (
            "unknown key",
            LaunchSpec::default().signed_with_unknown_key(),
            "unknown_kid",
        ),
        (
            "expired",
            LaunchSpec::default().with_exp_offset(-120),
            "expired",
        ),
        (
            "iat ahead",
            LaunchSpec::default()
                .with_iat_offset(300)
                .with_exp_offset(600),
            "iat_in_future",
        ),
        (
            "no version",
            LaunchSpec::default().without_claim(claim::VERSION),
            "missing_lti_version",
        ),
        (
            "other deployment",
            LaunchSpec::default().with_deployment_id("190:other"),
            "unknown_deployment",
        ),
        (
            "no roles",
            LaunchSpec::default().without_claim(claim::ROLES),
            "missing_roles",
        ),
        (
            "no sub",
            LaunchSpec::default().without_claim("sub"),
            "missing_sub",
        ),
        (
            "no resource link id",
            LaunchSpec::default().with_extra_claim(claim::RESOURCE_LINK, json!({"title": "x"})),
            "missing_resource_link_id",
        ),
    ];
    for (name, spec, code) in cases {
        let error: LaunchError = check(spec).await.expect_err(name);
        assert_eq!(error.code(), code, "{name}: {error}");
    }
    platform.stop().await;
}

#[tokio::test]
async fn login_url_carries_the_login_parameters() {
    let platform = LtiPlatform::start(config()).unwrap();
    let url = platform.login_url(&format!("{TOOL}/lti/login"), &LaunchSpec::default());
    assert!(url.starts_with("https://gateway.example.org/lti/login?"));
    let params = query_of(&url);
    assert_eq!(params["iss"], platform.issuer());
    assert_eq!(params["target_link_uri"], REDIRECT_URI);
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["lti_deployment_id"], DEPLOYMENT);
    assert!(params["login_hint"].len() >= 32, "opaque, 128 bits");
    assert!(params["lti_message_hint"].len() >= 32);
    assert_ne!(params["login_hint"], params["lti_message_hint"]);
    assert!(!params.contains_key("deployment_id"));

    // Canvas names the deployment differently and adds its own parameters; a login URL that
    // already has a query is extended.
    let spec = LaunchSpec::default()
        .canvas_style()
        .with_deployment_id("7:a b&c")
        .with_target_link_uri("https://gateway.example.org/lti/launch?x=1");
    let url = platform.login_url(&format!("{TOOL}/lti/login?tenant=9"), &spec);
    let params = query_of(&url);
    assert_eq!(params["tenant"], "9");
    assert_eq!(params["deployment_id"], "7:a b&c");
    assert_eq!(
        params["target_link_uri"],
        "https://gateway.example.org/lti/launch?x=1"
    );
    assert!(params.contains_key("canvas_region"));
    assert!(!params.contains_key("lti_deployment_id"));

    // Each login has its own hints; the POST form has the same fields.
    let form: HashMap<String, String> = platform
        .login_form(&LaunchSpec::default())
        .into_iter()
        .collect();
    let again = query_of(&platform.login_url(TOOL, &LaunchSpec::default()));
    assert_ne!(form["login_hint"], again["login_hint"]);
    let mut names: Vec<_> = form.keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "client_id",
            "iss",
            "login_hint",
            "lti_deployment_id",
            "lti_message_hint",
            "target_link_uri"
        ]
    );
    platform.stop().await;
}

#[tokio::test]
async fn auth_answers_the_auto_submit_form_with_the_requests_nonce() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let spec = LaunchSpec::learner().with_sub("student-77");
    let login = query_of(&platform.login_url(TOOL, &spec));
    let request = auth_request(&login);

    let response = client
        .get(platform.auth_url())
        .query(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("submit()"), "the form submits itself");
    assert_eq!(form_action(&html).as_deref(), Some(REDIRECT_URI));
    let fields = form_fields(&html);
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id_token", "state"]);
    assert_eq!(fields[1].1, "state-5e0c9a71d2b84f36a1c07e29b8d4f613");

    let c = verify(&platform, &client, &fields[0].1).await;
    assert_eq!(c["nonce"], NONCE);
    assert_eq!(c["sub"], "student-77");
    assert_eq!(c[claim::ROLES], json!([claim::ROLE_LEARNER]));

    let last = platform.last_launch().unwrap();
    assert_eq!(last.id_token, fields[0].1);
    assert_eq!(last.state, fields[1].1);
    assert_eq!(last.nonce, NONCE);
    assert_eq!(last.redirect_uri, REDIRECT_URI);
    assert_eq!(last.login_hint, login["login_hint"]);
    assert_eq!(last.kid, platform.signing_kid());

    // The login is answered once.
    let again = client
        .get(platform.auth_url())
        .query(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("login_hint"));

    // A form POST is answered as a GET is.
    let login = query_of(&platform.login_url(TOOL, &spec));
    let response = client
        .post(platform.auth_url())
        .form(&auth_request(&login))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let fields = form_fields(&response.text().await.unwrap());
    assert_eq!(payload(&fields[0].1)["nonce"], NONCE);

    let log = platform.requests();
    let auths: Vec<_> = log.iter().filter(|r| r.is_auth_request()).collect();
    assert_eq!(
        auths.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 400, 200]
    );
    assert_eq!(auths[0].param("nonce").as_deref(), Some(NONCE));
    assert_eq!(auths[2].method, "POST");
    assert_eq!(auths[2].param("nonce").as_deref(), Some(NONCE));
    assert!(auths[1].refusal.as_deref().unwrap().contains("login_hint"));
    platform.stop().await;
}

#[tokio::test]
async fn auth_refuses_each_missing_or_wrong_parameter() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let login = query_of(&platform.login_url(TOOL, &LaunchSpec::default()));
    let other_login = query_of(&platform.login_url(TOOL, &LaunchSpec::default()));

    // (parameter, its value: None = left out) → the parameter the refusal names.
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("scope", None),
        ("scope", Some("profile")),
        ("response_type", None),
        ("response_type", Some("code")),
        ("response_mode", None),
        ("response_mode", Some("fragment")),
        ("prompt", None),
        ("prompt", Some("login")),
        ("client_id", None),
        ("client_id", Some("another-client")),
        ("redirect_uri", None),
        ("redirect_uri", Some("https://evil.example.com/lti/launch")),
        (
            "redirect_uri",
            Some("https://gateway.example.org/lti/launch/"),
        ),
        ("login_hint", None),
        ("login_hint", Some("never-issued")),
        ("lti_message_hint", None),
        (
            "lti_message_hint",
            Some(other_login["lti_message_hint"].as_str()),
        ),
        ("state", None),
        ("state", Some("")),
        ("nonce", None),
        ("nonce", Some("")),
    ];
    for (param, value) in cases {
        let mut request = auth_request(&login);
        request.retain(|(name, _)| name != param);
        if let Some(value) = value {
            request.push((param.to_string(), value.to_string()));
        }
        let response = client
            .get(platform.auth_url())
            .query(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{param}={value:?}"
        );
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let message = response.text().await.unwrap();
        assert!(message.starts_with(param), "{param}={value:?}: {message}");
    }
    assert!(platform.last_launch().is_none(), "nothing was issued");

    // None of the refusals consumed the login: the good request still passes.
    let response = client
        .get(platform.auth_url())
        .query(&auth_request(&login))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    platform.stop().await;
}

#[tokio::test]
async fn any_redirect_uri_passes_when_none_is_registered_and_the_issuer_can_be_set() {
    let config =
        LtiPlatformConfig::new(CLIENT_ID, DEPLOYMENT).with_issuer("https://lms.example.edu");
    let platform = LtiPlatform::start(config).unwrap();
    let client = client();
    let login = query_of(&platform.login_url(TOOL, &LaunchSpec::default()));
    assert_eq!(login["iss"], "https://lms.example.edu");
    assert_eq!(login["target_link_uri"], DEFAULT_TARGET_LINK_URI);
    let mut request = auth_request(&login);
    request.retain(|(name, _)| name != "redirect_uri");
    request.push((
        "redirect_uri".into(),
        "http://127.0.0.1:9/lti/launch".into(),
    ));
    let response = client
        .get(platform.auth_url())
        .query(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert_eq!(
        form_action(&html).as_deref(),
        Some("http://127.0.0.1:9/lti/launch")
    );
    let c = verify(&platform, &client, &form_fields(&html)[0].1).await;
    assert_eq!(c["iss"], "https://lms.example.edu");
    platform.stop().await;
}

#[tokio::test]
async fn rotation_publishes_both_keys_then_only_the_new_one() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let old_kid = platform.signing_kid();
    let old_token = platform.signed_launch(&LaunchSpec::default(), NONCE, CLIENT_ID);

    let new_kid = platform.rotate_key().unwrap();
    assert_ne!(new_kid, old_kid);
    assert_eq!(platform.signing_kid(), new_kid);
    let jwks = fetch_jwks(&platform, &client).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [old_kid.as_str(), new_kid.as_str()]);
    // Both the token signed before and one signed after verify.
    let new_token = platform.signed_launch(&LaunchSpec::default(), NONCE, CLIENT_ID);
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    verify(&platform, &client, &old_token).await;
    verify(&platform, &client, &new_token).await;

    platform.publish_only_new();
    let jwks = fetch_jwks(&platform, &client).await;
    let keys = decoding_keys(&jwks);
    assert_eq!(keys.len(), 1);
    assert!(keys.contains_key(&new_kid));
    assert!(!keys.contains_key(&old_kid), "the old key is gone");
    verify(&platform, &client, &new_token).await;
    // A tool that refetches can no longer verify the token signed before the rotation.
    let old_header_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(old_header_kid, old_kid);
    assert!(!keys.contains_key(&old_header_kid));
    platform.stop().await;
}

#[test]
fn form_fields_reads_back_escaped_values() {
    let html = form::auto_submit_form(
        "https://tool.example/launch?a=1&b=\"2\"",
        &[("id_token", "x.y.z"), ("state", "<&amp;'\">")],
    );
    assert!(!html.contains("<&amp;'\">"));
    assert_eq!(
        form_fields(&html),
        [
            ("id_token".to_string(), "x.y.z".to_string()),
            ("state".to_string(), "<&amp;'\">".to_string()),
        ]
    );
    assert_eq!(
        form_action(&html).as_deref(),
        Some("https://tool.example/launch?a=1&b=\"2\"")
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused_and_logged() {
    let platform = LtiPlatform::start(config()).unwrap();
    let client = client();
    let response = client
        .get(format!("{}/nope", platform.origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = client.post(platform.jwks_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let statuses: Vec<u16> = platform.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 405]);
    platform.clear_requests();
    assert!(platform.requests().is_empty());
    platform.stop().await;
}
