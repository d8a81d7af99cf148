//! The pure parts of a dynamic registration: configurations checked case by case, the tool's
//! request, the platform's answer, and invitations.

use serde_json::{json, Value};

use super::*;

const ISSUER: &str = "https://lms.example.org";

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

/// A configuration that passes every check, as the issuer's own.
fn configuration() -> Value {
    json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://lms.example.org/auth",
        "token_endpoint": "https://lms.example.org/token",
        "jwks_uri": "https://lms.example.org/jwks",
        "registration_endpoint": "https://lms.example.org/register",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["id_token"],
        "scopes_supported": ["openid"],
        PLATFORM_CONFIGURATION: {"product_family_code": "moodle", "version": "4.3"},
    })
}

fn with(member: &str, value: Value) -> Value {
    let mut c = configuration();
    c[member] = value;
    c
}

fn without(member: &str) -> Value {
    let mut c = configuration();
    c.as_object_mut().unwrap().remove(member);
    c
}

const AT_ISSUER: &str = "https://lms.example.org/.well-known/openid-configuration";

#[test]
fn a_complete_configuration_under_its_issuer_is_read() {
    let body = configuration().to_string();
    let read = parse_configuration(body.as_bytes(), &url(AT_ISSUER), false).unwrap();
    assert_eq!(
        read,
        PlatformConfiguration {
            issuer: ISSUER.into(),
            authorization_endpoint: "https://lms.example.org/auth".into(),
            token_endpoint: "https://lms.example.org/token".into(),
            jwks_uri: "https://lms.example.org/jwks".into(),
            registration_endpoint: "https://lms.example.org/register".into(),
            authorization_server: None,
            product_family_code: Some("moodle".into()),
        }
    );
    let canvas = with("authorization_server", json!("canvas.instructure.com")).to_string();
    let read = parse_configuration(canvas.as_bytes(), &url(AT_ISSUER), false).unwrap();
    assert_eq!(
        read.authorization_server.as_deref(),
        Some("canvas.instructure.com")
    );
}

#[test]
fn each_bad_configuration_is_refused_with_its_own_code() {
    let foreign = "https://moodle.example.net/mod/lti/openid-configuration.php";
    let oversized = {
        let mut c = configuration();
        c["padding"] = json!("x".repeat(MAX_BODY_BYTES));
        c.to_string()
    };
    let cases: Vec<(&str, String, &str, bool, &str)> = vec![
        (
            "malformed JSON",
            "{\"issuer\": ".into(),
            AT_ISSUER,
            false,
            "configuration_not_json",
        ),
        (
            "not an object",
            "[1, 2]".into(),
            AT_ISSUER,
            false,
            "configuration_not_json",
        ),
        (
            "empty",
            String::new(),
            AT_ISSUER,
            false,
            "configuration_not_json",
        ),
        (
            "oversized",
            oversized,
            AT_ISSUER,
            false,
            "configuration_too_large",
        ),
        (
            "no issuer",
            without("issuer").to_string(),
            AT_ISSUER,
            false,
            "configuration_missing_field",
        ),
        (
            "no authorization endpoint",
            without("authorization_endpoint").to_string(),
            AT_ISSUER,
            false,
            "configuration_missing_field",
        ),
        (
            "no token endpoint",
            without("token_endpoint").to_string(),
            AT_ISSUER,
            false,
            "configuration_missing_field",
        ),
        (
            "no jwks_uri",
            without("jwks_uri").to_string(),
            AT_ISSUER,
            false,
            "configuration_missing_field",
        ),
        (
            "no registration endpoint",
            without("registration_endpoint").to_string(),
            AT_ISSUER,
            false,
            "configuration_missing_field",
        ),
        (
            "no auth methods",
            without("token_endpoint_auth_methods_supported").to_string(),
            AT_ISSUER,
            false,
            "configuration_missing_field",
        ),
        (
            "no signing algorithms",
            without("id_token_signing_alg_values_supported").to_string(),
            AT_ISSUER,
            false,
            "configuration_missing_field",
        ),
        (
            "issuer not a string",
            with("issuer", json!(7)).to_string(),
            AT_ISSUER,
            false,
            "configuration_invalid_field",
        ),
        (
            "issuer empty",
            with("issuer", json!("")).to_string(),
            AT_ISSUER,
            false,
            "configuration_invalid_field",
        ),
        (
            "auth methods not a list",
            with(
                "token_endpoint_auth_methods_supported",
                json!("private_key_jwt"),
            )
            .to_string(),
            AT_ISSUER,
            false,
            "configuration_invalid_field",
        ),
        (
            "an endpoint over plain http",
            with("token_endpoint", json!("http://lms.example.org/token")).to_string(),
            AT_ISSUER,
            false,
            "configuration_invalid_field",
        ),
        (
            "an issuer with a query",
            with("issuer", json!("https://lms.example.org/?tenant=1")).to_string(),
            "https://lms.example.org/x",
            false,
            "configuration_invalid_field",
        ),
        (
            "a registration endpoint that is not a URL",
            with("registration_endpoint", json!("register")).to_string(),
            AT_ISSUER,
            false,
            "configuration_invalid_field",
        ),
        (
            "issuer elsewhere",
            configuration().to_string(),
            foreign,
            false,
            "issuer_mismatch",
        ),
        (
            "issuer on another port",
            configuration().to_string(),
            "https://lms.example.org:8443/.well-known/openid-configuration",
            false,
            "issuer_mismatch",
        ),
        (
            "issuer over another scheme",
            configuration().to_string(),
            "http://lms.example.org/.well-known/openid-configuration",
            false,
            "issuer_mismatch",
        ),
        (
            "a sibling of the issuer's path",
            with("issuer", json!("https://lms.example.org/lms")).to_string(),
            "https://lms.example.org/lms2/openid-configuration",
            false,
            "issuer_mismatch",
        ),
        (
            "only client secrets",
            with(
                "token_endpoint_auth_methods_supported",
                json!(["client_secret_basic"]),
            )
            .to_string(),
            AT_ISSUER,
            false,
            "private_key_jwt_unsupported",
        ),
        (
            "no RS256",
            with(
                "id_token_signing_alg_values_supported",
                json!(["ES256", "HS256"]),
            )
            .to_string(),
            AT_ISSUER,
            false,
            "rs256_unsupported",
        ),
        // The exception for Moodle lifts the issuer check only.
        (
            "foreign allowed, but no private_key_jwt",
            with("token_endpoint_auth_methods_supported", json!([])).to_string(),
            foreign,
            true,
            "private_key_jwt_unsupported",
        ),
    ];
    for (what, body, at, allow_foreign, code) in cases {
        let refused =
            parse_configuration(body.as_bytes(), &url(at), allow_foreign).expect_err(what);
        assert_eq!(refused.code(), code, "{what}: {refused}");
    }
}

#[test]
fn a_foreign_configuration_passes_only_when_the_invitation_allows_it() {
    let moodle = "https://moodle.example.net/mod/lti/openid-configuration.php";
    let body = configuration().to_string();
    let refused = parse_configuration(body.as_bytes(), &url(moodle), false).unwrap_err();
    assert_eq!(refused.code(), "issuer_mismatch");
    assert!(refused.to_string().contains("foreign"), "{refused}");
    let read = parse_configuration(body.as_bytes(), &url(moodle), true).unwrap();
    assert_eq!(read.issuer, ISSUER);
}

#[test]
fn missing_and_invalid_fields_are_named() {
    let refused = parse_configuration(
        without("jwks_uri").to_string().as_bytes(),
        &url(AT_ISSUER),
        false,
    )
    .unwrap_err();
    assert_eq!(refused, ConfigurationError::MissingField("jwks_uri"));
    let refused = parse_configuration(
        with(
            "authorization_endpoint",
            json!("ftp://lms.example.org/auth"),
        )
        .to_string()
        .as_bytes(),
        &url(AT_ISSUER),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(&refused, ConfigurationError::InvalidField { field, .. } if field == "authorization_endpoint"),
        "{refused:?}"
    );
}

#[test]
fn configuration_urls_at_or_below_their_issuer() {
    let cases = [
        (
            "https://lms.example.org/.well-known/openid-configuration",
            "https://lms.example.org",
            true,
        ),
        (
            "https://lms.example.org/.well-known/openid-configuration",
            "https://lms.example.org/",
            true,
        ),
        (
            "https://lms.example.org/lms/openid?x=1",
            "https://lms.example.org/lms",
            true,
        ),
        (
            "https://lms.example.org/lms",
            "https://lms.example.org/lms/",
            true,
        ),
        (
            "https://LMS.example.org:443/a",
            "https://lms.example.org",
            true,
        ),
        (
            "https://lms.example.org/lms2/a",
            "https://lms.example.org/lms",
            false,
        ),
        (
            "https://lms.example.org/a",
            "https://lms.example.org/lms",
            false,
        ),
        (
            "https://evil.example.org/a",
            "https://lms.example.org",
            false,
        ),
        (
            "https://lms.example.org.evil.net/a",
            "https://lms.example.org",
            false,
        ),
        ("http://lms.example.org/a", "https://lms.example.org", false),
        ("https://lms.example.org/a", "not a url", false),
    ];
    for (at, issuer, under) in cases {
        assert_eq!(
            at_or_below_issuer(&url(at), issuer),
            under,
            "{at} under {issuer}"
        );
    }
}

fn read(body: &Value) -> PlatformConfiguration {
    parse_configuration(body.to_string().as_bytes(), &url(AT_ISSUER), false).unwrap()
}

#[test]
fn the_registration_request_names_the_tools_urls_scopes_and_messages() {
    let request = registration_request(
        "https://gateway.example.org/",
        "https://learn.example.org/",
        &read(&configuration()),
    );
    assert_eq!(request["application_type"], "web");
    assert_eq!(request["response_types"], json!(["id_token"]));
    assert_eq!(
        request["grant_types"],
        json!(["implicit", "client_credentials"])
    );
    assert_eq!(
        request["initiate_login_uri"],
        "https://gateway.example.org/lti/login"
    );
    assert_eq!(
        request["redirect_uris"],
        json!(["https://gateway.example.org/lti/launch"])
    );
    assert_eq!(request["jwks_uri"], "https://gateway.example.org/lti/jwks");
    assert_eq!(request["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(request["client_name"], "rostergate");
    let scopes: Vec<&str> = request["scope"].as_str().unwrap().split(' ').collect();
    assert_eq!(scopes, TOOL_SCOPES);
    let tool = &request[TOOL_CONFIGURATION];
    assert_eq!(tool["domain"], "gateway.example.org");
    assert_eq!(tool["target_link_uri"], "https://learn.example.org/");
    let types: Vec<&str> = tool["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"]);
    assert!(tool["claims"].as_array().unwrap().contains(&json!("sub")));
    // Only Canvas is told a privacy level.
    assert!(request.get(CANVAS_PRIVACY_LEVEL).is_none());
    let canvas = with(
        PLATFORM_CONFIGURATION,
        json!({"product_family_code": "canvas"}),
    );
    let request = registration_request("https://gw.example.org:8443", "https://l/", &read(&canvas));
    assert_eq!(request[CANVAS_PRIVACY_LEVEL], "public");
    assert_eq!(request[TOOL_CONFIGURATION]["domain"], "gw.example.org:8443");
}

#[test]
fn registration_answers_give_a_client_id_and_maybe_a_deployment() {
    let ok = |body: Value| read_registration_answer(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        ok(json!({"client_id": "abc", TOOL_CONFIGURATION: {"deployment_id": "7"}})),
        RegisteredClient {
            client_id: "abc".into(),
            deployment_id: Some("7".into())
        }
    );
    assert_eq!(
        ok(json!({"client_id": 10000000000042_i64, TOOL_CONFIGURATION: {"deployment_id": 3}})),
        RegisteredClient {
            client_id: "10000000000042".into(),
            deployment_id: Some("3".into())
        }
    );
    assert_eq!(ok(json!({"client_id": "abc"})).deployment_id, None);
    let refused = [
        b"not json".to_vec(),
        json!({"client_secret": "x"}).to_string().into_bytes(),
        json!({"client_id": ""}).to_string().into_bytes(),
        json!({"client_id": ["a"]}).to_string().into_bytes(),
        json!({"client_id": "a", TOOL_CONFIGURATION: {"deployment_id": {}}})
            .to_string()
            .into_bytes(),
        vec![b' '; MAX_BODY_BYTES + 1],
    ];
    for body in refused {
        assert!(
            read_registration_answer(&body).is_err(),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
}

#[test]
fn a_registration_without_a_deployment_is_stored_with_none_and_admits_pending_ones() {
    let configuration = read(&with("authorization_server", json!("lms.example.org")));
    let client = RegisteredClient {
        client_id: "abc".into(),
        deployment_id: Some("7".into()),
    };
    let platform = new_platform(&configuration, &client, UnknownDeployments::Refuse).unwrap();
    assert_eq!(platform.issuer, ISSUER);
    assert_eq!(platform.auth_login_url, "https://lms.example.org/auth");
    assert_eq!(platform.token_url, "https://lms.example.org/token");
    assert_eq!(platform.jwks_url, "https://lms.example.org/jwks");
    assert_eq!(platform.deployment_ids, ["7"]);
    assert_eq!(platform.unknown_deployments, UnknownDeployments::Refuse);
    assert_eq!(platform.token_audience.as_deref(), Some("lms.example.org"));

    let none = RegisteredClient {
        deployment_id: None,
        ..client.clone()
    };
    let platform = new_platform(&configuration, &none, UnknownDeployments::Refuse).unwrap();
    assert!(platform.deployment_ids.is_empty());
    assert_eq!(platform.unknown_deployments, UnknownDeployments::Pending);

    let bad = RegisteredClient {
        client_id: "tab\there".into(),
        deployment_id: Some("d".into()),
    };
    assert!(new_platform(&configuration, &bad, UnknownDeployments::Pending).is_err());
}

#[test]
fn invitations_default_to_a_day_and_refusing_and_name_their_bad_fields() {
    let request = InviteInput::default().validate().unwrap();
    assert_eq!(request.ttl, chrono::Duration::hours(24));
    assert_eq!(request.unknown_deployments, UnknownDeployments::Refuse);
    assert!(!request.allow_foreign_configuration);
    let request = InviteInput {
        unknown_deployments: Some("pending".into()),
        ttl_mins: Some(MAX_INVITE_TTL_MINS),
        allow_foreign_configuration: true,
    }
    .validate()
    .unwrap();
    assert_eq!(request.ttl, chrono::Duration::days(30));
    assert_eq!(request.unknown_deployments, UnknownDeployments::Pending);
    assert!(request.allow_foreign_configuration);
    let cases = [
        (Some("accept"), None, vec![InviteField::UnknownDeployments]),
        (None, Some(0), vec![InviteField::TtlMins]),
        (
            None,
            Some(MAX_INVITE_TTL_MINS + 1),
            vec![InviteField::TtlMins],
        ),
        (
            Some(""),
            Some(-5),
            vec![InviteField::UnknownDeployments, InviteField::TtlMins],
        ),
    ];
    for (policy, ttl, fields) in cases {
        let input = InviteInput {
            unknown_deployments: policy.map(str::to_string),
            ttl_mins: ttl,
            allow_foreign_configuration: false,
        };
        let got: Vec<InviteField> = input
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(got, fields, "{input:?}");
    }
}

#[test]
fn invitation_tokens_are_random_and_stored_only_as_their_hash() {
    let a = new_invite_token();
    let b = new_invite_token();
    assert_ne!(a, b);
    assert_eq!(a.len(), 43, "256 bits, base64url");
    let hash = invite_token_hash(&a);
    assert_eq!(hash.len(), 64);
    assert!(!hash.contains(&a));
    assert_eq!(hash, invite_token_hash(&a));
    assert_eq!(
        invite_url("https://gateway.example.org/", "t0k"),
        "https://gateway.example.org/lti/register/t0k"
    );
}

#[test]
fn urls_are_described_without_their_query() {
    let shown = describe_url(&url(
        "https://lms.example.org/openid?registration_token=secret",
    ));
    assert_eq!(shown, "https://lms.example.org/openid");
}
