//! Table-driven tests of launch validation: the certification bad payloads (reference §16.1),
//! the extra negative cases (§16.4) and the valid launch variants (§16.2).
//!
//! Keys are RSA 2048 pairs generated once per test run with aws-lc-rs. Tokens are assembled
//! and signed here by hand (RS256 = RSASSA-PKCS1-v1_5 with SHA-256) rather than with
//! `jsonwebtoken::encode`, because the bad payloads need headers its `Header` cannot express
//! (`alg: none`, no `kid`, unknown fields). The platform's public key reaches the validator as
//! a `DecodingKey::from_rsa_der` of the RFC 8017 `RSAPublicKey`, which the aws-lc backend
//! parses.

use std::collections::HashMap;
use std::sync::LazyLock;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RsaEncoding, RSA_PKCS1_SHA256, RSA_PKCS1_SHA512};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use serde_json::{json, Value};

use super::*;
use crate::lti::{KeyError, KeySource, Registration, UnknownDeployments};

const NOW: i64 = 1_750_000_000;
const ISSUER: &str = "https://lms.example.edu";
const CLIENT_ID: &str = "10000000000042";
const DEPLOYMENT: &str = "189:7f956bcc2c8d1e0f";
const OTHER_DEPLOYMENT: &str = "190:second-install";
const NONCE: &str = "n-0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const KID: &str = "platform-2025-06";
const LAUNCH_URL: &str = "https://gateway.example.org/lti/launch";
const DEEP_LINK_URL: &str = "https://gateway.example.org/lti/deep-link";

const ROLE_INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";
const ROLE_LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";
const ROLE_MENTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor";
const ROLE_ADMIN: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Administrator";
const ROLE_TA: &str =
    "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant";
const ROLE_SECONDARY: &str =
    "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#SecondaryInstructor";
const ROLE_PRIMARY: &str =
    "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#PrimaryInstructor";
const ROLE_FACULTY: &str = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty";
const ROLE_INSTITUTION_ADMIN: &str =
    "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator";
const ROLE_SYSTEM_USER: &str = "http://purl.imsglobal.org/vocab/lis/v2/system/person#User";
const ROLE_UNKNOWN: &str = "http://purl.imsglobal.org/vocab/lis/v2/unknown/unknown#Helper";
const ROLE_TEST_USER: &str = "http://purl.imsglobal.org/vocab/lti/system/person#TestUser";

/// Test-only key pairs: the platform's, and a foreign one nobody registered.
struct TestKeys {
    platform: KeyPair,
    foreign: KeyPair,
}

static KEYS: LazyLock<TestKeys> = LazyLock::new(|| TestKeys {
    platform: KeyPair::generate(KeySize::Rsa2048).expect("RSA 2048 key generation"),
    foreign: KeyPair::generate(KeySize::Rsa2048).expect("RSA 2048 key generation"),
});

fn platform_public_der() -> &'static [u8] {
    KEYS.platform.public_key().as_ref()
}

/// A platform key set that never refetches: the kids it has, and nothing else.
struct StaticKeys {
    keys: HashMap<String, DecodingKey>,
    unavailable: bool,
}

impl StaticKeys {
    fn platform() -> StaticKeys {
        let key = DecodingKey::from_rsa_der(platform_public_der());
        StaticKeys {
            keys: HashMap::from([(KID.to_string(), key)]),
            unavailable: false,
        }
    }

    fn unreachable() -> StaticKeys {
        StaticKeys {
            keys: HashMap::new(),
            unavailable: true,
        }
    }
}

impl KeySource for StaticKeys {
    async fn key(&self, kid: &str) -> Result<DecodingKey, KeyError> {
        if self.unavailable {
            return Err(KeyError::Unavailable("connection refused".into()));
        }
        self.keys
            .get(kid)
            .cloned()
            .ok_or_else(|| KeyError::UnknownKid(kid.to_string()))
    }
}

/// How a test token is signed.
#[derive(Clone, Copy)]
enum Signer {
    /// RS256 (or another RSA encoding) with a test key.
    Rsa(&'static KeyPair, &'static dyn RsaEncoding),
    /// HS256 with these bytes as the secret.
    Hmac(&'static [u8]),
    /// No signature at all (`alg: none`).
    Unsigned,
}

fn platform_rs256() -> Signer {
    Signer::Rsa(&KEYS.platform, &RSA_PKCS1_SHA256)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_with(header: &Value, payload: &Value, signer: Signer) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = match signer {
        Signer::Rsa(key, encoding) => {
            let mut signature = vec![0; key.public_modulus_len()];
            key.sign(
                encoding,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing");
            signature
        }
        Signer::Hmac(secret) => {
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
            hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
        }
        Signer::Unsigned => Vec::new(),
    };
    format!("{input}.{}", b64(&signature))
}

fn header() -> Value {
    json!({"typ": "JWT", "alg": "RS256", "kid": KID})
}

/// A payload signed the way the platform signs.
fn signed(payload: &Value) -> String {
    token_with(&header(), payload, platform_rs256())
}

/// A valid resource link launch by a teacher, with every claim the gateway reads (and a few
/// it does not).
fn teacher() -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "a6d5c443-1f51-4783-ba1a-7686ffe3b54a",
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": NONCE,
        "name": "Ms Jane Marie Doe",
        "given_name": "Jane",
        "family_name": "Doe",
        "email": "jane@example.edu",
        "locale": "en-US",
        "https://purl.imsglobal.org/spec/lti/claim/version": "1.3.0",
        "https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiResourceLinkRequest",
        "https://purl.imsglobal.org/spec/lti/claim/deployment_id": DEPLOYMENT,
        "https://purl.imsglobal.org/spec/lti/claim/target_link_uri": LAUNCH_URL,
        "https://purl.imsglobal.org/spec/lti/claim/roles": [ROLE_INSTRUCTOR, ROLE_FACULTY],
        "https://purl.imsglobal.org/spec/lti/claim/resource_link": {
            "id": "200d101f-2c14-434a-a0f3-57c2a42369fd",
            "title": "Unit 3 quiz",
            "description": "ignored",
        },
        "https://purl.imsglobal.org/spec/lti/claim/context": {
            "id": "c1d887f0-a1a3-4bca-ae25-c375edcc131a",
            "label": "ECON 1010",
            "title": "Economics as a Social Science",
            "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
        },
        "https://purl.imsglobal.org/spec/lti/claim/lis": {
            "person_sourcedid": "user-0042",
            "course_section_sourcedid": "class-0007",
            "course_offering_sourcedid": "course-0003",
        },
        "https://purl.imsglobal.org/spec/lti/claim/launch_presentation": {
            "document_target": "iframe",
            "return_url": "https://lms.example.edu/courses/7/return",
        },
        "https://purl.imsglobal.org/spec/lti/claim/custom": {
            "section": "A",
            "points": 10,
            "graded": true,
            "nested": {"dropped": "yes"},
        },
        "https://purl.imsglobal.org/spec/lti/claim/tool_platform": {
            "guid": "ex/48bbb541ce-a8f6",
            "product_family_code": "canvas",
        },
        "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice": {
            "context_memberships_url": "https://lms.example.edu/api/lti/courses/7/names_and_roles",
            "service_versions": ["2.0"],
        },
        "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": {
            "scope": [
                "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            ],
            "lineitems": "https://lms.example.edu/api/lti/courses/7/line_items",
            "lineitem": "https://lms.example.edu/api/lti/courses/7/line_items/9",
        },
        "https://example.com/vendor/claim/unknown": {"anything": [1, 2, 3]},
    })
}

fn learner() -> Value {
    set(teacher(), CLAIM_ROLES, json!([ROLE_LEARNER]))
}

/// A valid deep linking request by a teacher.
fn deep_linking() -> Value {
    let mut p = without(teacher(), CLAIM_RESOURCE_LINK);
    p[CLAIM_MESSAGE_TYPE] = json!("LtiDeepLinkingRequest");
    p[CLAIM_TARGET_LINK_URI] = json!(DEEP_LINK_URL);
    p[CLAIM_DEEP_LINKING] = json!({
        "deep_link_return_url": "https://lms.example.edu/courses/7/deep_linking_response",
        "accept_types": ["ltiResourceLink"],
        "accept_presentation_document_targets": ["iframe", "window"],
        "accept_multiple": true,
        "data": "csrf-token-echo-me",
    });
    p
}

fn set(mut payload: Value, claim: &str, value: Value) -> Value {
    payload[claim] = value;
    payload
}

fn without(mut payload: Value, claim: &str) -> Value {
    payload.as_object_mut().unwrap().remove(claim);
    payload
}

fn without_all(payload: Value, claims: &[&str]) -> Value {
    claims.iter().fold(payload, |p, claim| without(p, claim))
}

/// What the caller holds for the launch: the registration, and the consumed state's values.
struct Ctx {
    registration: Registration,
    nonce: String,
    login_target_link_uri: String,
    login_deployment_id: Option<String>,
    tool_urls: Vec<String>,
    now: i64,
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            registration: Registration {
                issuer: ISSUER.into(),
                client_id: CLIENT_ID.into(),
                deployment_ids: vec![DEPLOYMENT.into(), OTHER_DEPLOYMENT.into()],
                unknown_deployments: UnknownDeployments::Refuse,
            },
            nonce: NONCE.into(),
            login_target_link_uri: LAUNCH_URL.into(),
            login_deployment_id: Some(DEPLOYMENT.into()),
            tool_urls: vec![LAUNCH_URL.into(), DEEP_LINK_URL.into()],
            now: NOW,
        }
    }

    fn expected(&self) -> Expected<'_> {
        Expected {
            registration: &self.registration,
            nonce: &self.nonce,
            login_target_link_uri: &self.login_target_link_uri,
            login_deployment_id: self.login_deployment_id.as_deref(),
            tool_urls: &self.tool_urls,
            now: self.now,
        }
    }
}

/// How a case changes what the login held.
type Adjust = Box<dyn Fn(&mut Ctx)>;

fn unchanged(_: &mut Ctx) {}

fn login_for_deep_linking() -> Adjust {
    Box::new(|ctx| ctx.login_target_link_uri = DEEP_LINK_URL.into())
}

async fn run(
    token: &str,
    adjust: &dyn Fn(&mut Ctx),
    keys: &StaticKeys,
) -> Result<Launch, LaunchError> {
    let mut ctx = Ctx::new();
    adjust(&mut ctx);
    validate(token, &ctx.expected(), keys).await
}

/// A token that must be refused: with which code, and a word its message must contain.
struct Refused {
    name: &'static str,
    token: String,
    ctx: Adjust,
    code: &'static str,
    mentions: &'static str,
}

fn refused(
    name: &'static str,
    token: String,
    code: &'static str,
    mentions: &'static str,
) -> Refused {
    Refused {
        name,
        token,
        ctx: Box::new(unchanged),
        code,
        mentions,
    }
}

async fn assert_refused(cases: Vec<Refused>) {
    let keys = StaticKeys::platform();
    let mut failures = Vec::new();
    for case in &cases {
        match run(&case.token, &case.ctx, &keys).await {
            Ok(launch) => failures.push(format!("{}: accepted as {launch:?}", case.name)),
            Err(e) if e.code() != case.code => failures.push(format!(
                "{}: expected {}, got {} ({e})",
                case.name,
                case.code,
                e.code()
            )),
            Err(e) if !e.to_string().contains(case.mentions) => failures.push(format!(
                "{}: message {:?} does not mention {:?}",
                case.name,
                e.to_string(),
                case.mentions
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn certification_bad_payloads_are_refused_with_their_code() {
    assert_refused(vec![
        refused(
            "No KID Sent in JWT header",
            token_with(
                &json!({"badtestonly": "12345", "alg": "RS256"}),
                &teacher(),
                platform_rs256(),
            ),
            "missing_kid",
            "kid",
        ),
        refused(
            "Incorrect KID in JWT header",
            token_with(
                &json!({"typ": "JWT", "alg": "RS256", "kid": "imstester_66067"}),
                &teacher(),
                platform_rs256(),
            ),
            "unknown_kid",
            "imstester_66067",
        ),
        refused(
            "Wrong LTI Version",
            signed(&set(teacher(), CLAIM_VERSION, json!("1.2.0"))),
            "wrong_lti_version",
            "\"1.2.0\"",
        ),
        refused(
            "No LTI Version",
            signed(&without(teacher(), CLAIM_VERSION)),
            "missing_lti_version",
            "version",
        ),
        refused(
            "Invalid LTI message (not a JWT)",
            "badltilaunch".into(),
            "malformed_jwt",
            "JWT",
        ),
        refused(
            "Invalid LTI message (signed, but no LTI claims)",
            signed(&json!({"name": "badltilaunch"})),
            "wrong_issuer",
            "iss",
        ),
        refused(
            "Missing LTI Claims",
            signed(&without_all(
                teacher(),
                &[
                    CLAIM_VERSION,
                    CLAIM_MESSAGE_TYPE,
                    CLAIM_DEPLOYMENT_ID,
                    CLAIM_ROLES,
                    CLAIM_RESOURCE_LINK,
                    CLAIM_TARGET_LINK_URI,
                ],
            )),
            "missing_lti_version",
            "version",
        ),
        refused(
            "Timestamps Incorrect",
            signed(&set(
                set(teacher(), "exp", json!(22222)),
                "iat",
                json!(11111),
            )),
            "expired",
            "exp",
        ),
        refused(
            "messsage_type Claim Missing",
            signed(&without(teacher(), CLAIM_MESSAGE_TYPE)),
            "missing_message_type",
            "message_type",
        ),
        refused(
            "role Claim Missing",
            signed(&without(teacher(), CLAIM_ROLES)),
            "missing_roles",
            "roles",
        ),
        refused(
            "deployment_id Claim Missing",
            signed(&without(teacher(), CLAIM_DEPLOYMENT_ID)),
            "missing_deployment_id",
            "deployment_id",
        ),
        refused(
            "resource_link_id Claim Missing (no id)",
            signed(&set(
                teacher(),
                CLAIM_RESOURCE_LINK,
                json!({"title": "Quiz"}),
            )),
            "missing_resource_link_id",
            "resource_link",
        ),
        refused(
            "resource_link_id Claim Missing (no resource_link)",
            signed(&without(teacher(), CLAIM_RESOURCE_LINK)),
            "missing_resource_link_id",
            "resource_link",
        ),
        refused(
            "user Claim Missing",
            signed(&without(teacher(), "sub")),
            "missing_sub",
            "sub",
        ),
    ])
    .await;
}

#[tokio::test]
async fn additional_negative_cases_are_refused_with_their_code() {
    let teacher_token = signed(&teacher());
    let mut cases = vec![
        // Check 2.
        refused(
            "four segments",
            format!("{teacher_token}.extra"),
            "malformed_jwt",
            "three",
        ),
        refused(
            "payload not JSON",
            format!(
                "{}.{}.sig",
                b64(header().to_string().as_bytes()),
                b64(b"{not json")
            ),
            "malformed_jwt",
            "payload",
        ),
        refused(
            "header without alg",
            token_with(&json!({"kid": KID}), &teacher(), platform_rs256()),
            "malformed_jwt",
            "alg",
        ),
        // Check 3.
        refused(
            "alg none, unsigned",
            token_with(
                &json!({"alg": "none", "kid": KID}),
                &teacher(),
                Signer::Unsigned,
            ),
            "disallowed_alg",
            "\"none\"",
        ),
        refused(
            "HS256 signed with the platform's public key as the secret",
            token_with(
                &json!({"alg": "HS256", "kid": KID}),
                &teacher(),
                Signer::Hmac(platform_public_der()),
            ),
            "disallowed_alg",
            "HS256",
        ),
        refused(
            "RS512 even when signed by the platform's key",
            token_with(
                &json!({"alg": "RS512", "kid": KID}),
                &teacher(),
                Signer::Rsa(&KEYS.platform, &RSA_PKCS1_SHA512),
            ),
            "disallowed_alg",
            "RS512",
        ),
        // Check 6.
        refused(
            "one byte of the signature changed",
            with_signature_char_changed(&teacher_token),
            "bad_signature",
            KID,
        ),
        refused(
            "payload changed after signing",
            with_payload_of(
                &teacher_token,
                &set(teacher(), "sub", json!("someone-else")),
            ),
            "bad_signature",
            "signature",
        ),
        refused(
            "signed by a foreign key under the platform's kid",
            token_with(
                &header(),
                &teacher(),
                Signer::Rsa(&KEYS.foreign, &RSA_PKCS1_SHA256),
            ),
            "bad_signature",
            "signature",
        ),
        // Check 7.
        refused(
            "wrong iss",
            signed(&set(
                teacher(),
                "iss",
                json!("https://other-lms.example.edu"),
            )),
            "wrong_issuer",
            "other-lms",
        ),
        refused(
            "iss differing only in case",
            signed(&set(teacher(), "iss", json!("https://LMS.example.edu"))),
            "wrong_issuer",
            "iss",
        ),
        // Check 8.
        refused(
            "wrong aud",
            signed(&set(teacher(), "aud", json!("another-tool"))),
            "wrong_audience",
            CLIENT_ID,
        ),
        refused(
            "no aud",
            signed(&without(teacher(), "aud")),
            "wrong_audience",
            "absent",
        ),
        refused(
            "aud array naming an untrusted audience, without azp",
            signed(&set(teacher(), "aud", json!([CLIENT_ID, "another-tool"]))),
            "untrusted_audience",
            "another-tool",
        ),
        refused(
            "aud array naming an untrusted audience, azp ours",
            signed(&set(
                set(teacher(), "aud", json!([CLIENT_ID, "another-tool"])),
                "azp",
                json!(CLIENT_ID),
            )),
            "untrusted_audience",
            "another-tool",
        ),
        // Check 9.
        refused(
            "aud array of several values without azp",
            signed(&set(teacher(), "aud", json!([CLIENT_ID, CLIENT_ID]))),
            "missing_azp",
            "azp",
        ),
        refused(
            "aud array with a wrong azp",
            signed(&set(
                set(teacher(), "aud", json!([CLIENT_ID])),
                "azp",
                json!("another-tool"),
            )),
            "wrong_azp",
            "another-tool",
        ),
        refused(
            "aud string with a wrong azp",
            signed(&set(teacher(), "azp", json!("another-tool"))),
            "wrong_azp",
            "azp",
        ),
        // Check 10.
        refused(
            "exp more than 60 s past",
            signed(&set(teacher(), "exp", json!(NOW - 61))),
            "expired",
            "exp",
        ),
        refused(
            "no exp",
            signed(&without(teacher(), "exp")),
            "missing_exp",
            "exp",
        ),
        refused(
            "exp not a number",
            signed(&set(teacher(), "exp", json!("tomorrow"))),
            "invalid_claim",
            "exp",
        ),
        // Check 11.
        refused(
            "iat more than 60 s in the future",
            signed(&set(teacher(), "iat", json!(NOW + 61))),
            "iat_in_future",
            "iat",
        ),
        refused(
            "iat more than 600 s old",
            signed(&set(teacher(), "iat", json!(NOW - 601))),
            "iat_too_old",
            "iat",
        ),
        refused(
            "no iat",
            signed(&without(teacher(), "iat")),
            "missing_iat",
            "iat",
        ),
        // Check 12.
        refused(
            "nonce not matching the state's",
            signed(&set(teacher(), "nonce", json!("n-from-another-login"))),
            "nonce_mismatch",
            "nonce",
        ),
        refused(
            "no nonce",
            signed(&without(teacher(), "nonce")),
            "missing_nonce",
            "nonce",
        ),
        // Check 14.
        refused(
            "unsupported message type",
            signed(&set(
                teacher(),
                CLAIM_MESSAGE_TYPE,
                json!("LtiSubmissionReviewRequest"),
            )),
            "unsupported_message_type",
            "LtiSubmissionReviewRequest",
        ),
        // Check 15.
        refused(
            "unknown deployment, registration refuses",
            signed(&set(teacher(), CLAIM_DEPLOYMENT_ID, json!("999:stranger"))),
            "unknown_deployment",
            "999:stranger",
        ),
        refused(
            "deployment_id of 256 characters",
            signed(&set(teacher(), CLAIM_DEPLOYMENT_ID, json!("d".repeat(256)))),
            "deployment_id_too_long",
            "256",
        ),
        // Check 16.
        refused(
            "roles not an array",
            signed(&set(teacher(), CLAIM_ROLES, json!(ROLE_INSTRUCTOR))),
            "invalid_claim",
            "roles",
        ),
        // Check 17.
        refused(
            "resource_link id of 256 characters",
            signed(&set(
                teacher(),
                CLAIM_RESOURCE_LINK,
                json!({"id": "r".repeat(256)}),
            )),
            "resource_link_id_too_long",
            "256",
        ),
        // Check 18.
        refused(
            "empty sub",
            signed(&set(teacher(), "sub", json!(""))),
            "missing_sub",
            "sub",
        ),
        // Check 19.
        refused(
            "no target_link_uri",
            signed(&without(teacher(), CLAIM_TARGET_LINK_URI)),
            "missing_target_link_uri",
            "target_link_uri",
        ),
        refused(
            "target_link_uri not the login's",
            signed(&set(teacher(), CLAIM_TARGET_LINK_URI, json!(DEEP_LINK_URL))),
            "target_link_uri_mismatch",
            "target_link_uri",
        ),
        // Check 20.
        Refused {
            ctx: login_for_deep_linking(),
            ..refused(
                "deep linking request without settings",
                signed(&without(deep_linking(), CLAIM_DEEP_LINKING)),
                "missing_deep_linking_settings",
                "deep_linking_settings",
            )
        },
    ];
    for (name, missing) in [
        (
            "deep linking settings without a return URL",
            "deep_link_return_url",
        ),
        ("deep linking settings without accept_types", "accept_types"),
        (
            "deep linking settings without document targets",
            "accept_presentation_document_targets",
        ),
    ] {
        let mut payload = deep_linking();
        payload[CLAIM_DEEP_LINKING]
            .as_object_mut()
            .unwrap()
            .remove(missing);
        cases.push(Refused {
            ctx: login_for_deep_linking(),
            ..refused(
                name,
                signed(&payload),
                "incomplete_deep_linking_settings",
                missing,
            )
        });
    }
    // Cases that differ in what the login held rather than in the token.
    cases.push(Refused {
        ctx: Box::new(|ctx| ctx.login_deployment_id = Some(OTHER_DEPLOYMENT.into())),
        ..refused(
            "deployment_id not the one the login named",
            signed(&teacher()),
            "deployment_mismatch",
            OTHER_DEPLOYMENT,
        )
    });
    cases.push(Refused {
        ctx: Box::new(|ctx| ctx.nonce = "n-another-state".into()),
        ..refused(
            "state's nonce differs from the token's",
            signed(&teacher()),
            "nonce_mismatch",
            "nonce",
        )
    });
    for (name, target) in [
        (
            "target_link_uri on another host",
            "https://evil.example/lti/launch",
        ),
        (
            "target_link_uri beside the tool's path",
            "https://gateway.example.org/lti/launchpad",
        ),
        (
            "target_link_uri with userinfo",
            "https://gateway.example.org@evil.example/lti/launch",
        ),
        (
            "target_link_uri climbing out with dot segments",
            "https://gateway.example.org/lti/launch/../../admin",
        ),
        (
            "target_link_uri over plain http",
            "http://gateway.example.org/lti/launch",
        ),
    ] {
        // The login asked for the same foreign URL, so only the tool-URL check can catch it.
        cases.push(Refused {
            ctx: Box::new(move |ctx| ctx.login_target_link_uri = target.into()),
            ..refused(
                name,
                signed(&set(teacher(), CLAIM_TARGET_LINK_URI, json!(target))),
                "foreign_target_link_uri",
                "target_link_uri",
            )
        });
    }
    assert_refused(cases).await;
}

/// The same bytes with one base64url character of the signature replaced.
fn with_signature_char_changed(token: &str) -> String {
    let at = token.rfind('.').unwrap() + 40;
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// The token's header and signature around another payload.
fn with_payload_of(token: &str, payload: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(payload.to_string().as_bytes()),
        parts[2]
    )
}

#[tokio::test]
async fn unknown_kid_is_refused_after_the_source_says_so() {
    let token = token_with(
        &json!({"alg": "RS256", "kid": "rotated-away"}),
        &teacher(),
        platform_rs256(),
    );
    let err = run(&token, &unchanged, &StaticKeys::platform())
        .await
        .unwrap_err();
    assert_eq!(err, LaunchError::UnknownKid("rotated-away".into()));
    assert_eq!(err.status(), 401);
}

#[tokio::test]
async fn unreachable_key_set_is_a_service_failure_not_a_bad_token() {
    let err = run(&signed(&teacher()), &unchanged, &StaticKeys::unreachable())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "key_unavailable");
    assert_eq!(err.status(), 503);
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test]
async fn first_failing_check_decides_the_code() {
    // Wrong issuer (7), expired (10), wrong nonce (12), no roles (16): check 7 speaks.
    let payload = without(
        set(
            set(
                set(teacher(), "iss", json!("https://other.example")),
                "exp",
                json!(1),
            ),
            "nonce",
            json!("x"),
        ),
        CLAIM_ROLES,
    );
    let keys = StaticKeys::platform();
    let err = run(&signed(&payload), &unchanged, &keys).await.unwrap_err();
    assert_eq!(err.code(), "wrong_issuer");
    // A bad signature hides every claim problem: unsigned claims are never read.
    let forged = token_with(
        &header(),
        &payload,
        Signer::Rsa(&KEYS.foreign, &RSA_PKCS1_SHA256),
    );
    let err = run(&forged, &unchanged, &keys).await.unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    // The deployment is unknown *and* not the login's: "known" is checked first (§5 check 15).
    let stranger = signed(&set(teacher(), CLAIM_DEPLOYMENT_ID, json!("999:stranger")));
    let err = run(&stranger, &unchanged, &keys).await.unwrap_err();
    assert_eq!(err.code(), "unknown_deployment");
}

/// A launch that must be accepted: the role it maps to, and what else it must read.
struct Accepted {
    name: &'static str,
    payload: Value,
    ctx: Adjust,
    role: LaunchRole,
    check: fn(&Launch),
}

fn accepted(name: &'static str, payload: Value, role: LaunchRole, check: fn(&Launch)) -> Accepted {
    Accepted {
        name,
        payload,
        ctx: Box::new(unchanged),
        role,
        check,
    }
}

fn nothing_more(_: &Launch) {}

async fn assert_accepted(cases: Vec<Accepted>) {
    let keys = StaticKeys::platform();
    for case in cases {
        let launch = run(&signed(&case.payload), &case.ctx, &keys)
            .await
            .unwrap_or_else(|e| panic!("{}: refused with {} ({e})", case.name, e.code()));
        assert_eq!(launch.role, case.role, "{}", case.name);
        (case.check)(&launch);
    }
}

#[tokio::test]
async fn certification_valid_launches_are_accepted_and_read() {
    assert_accepted(vec![
        accepted("Instructor", teacher(), LaunchRole::Teacher, |l| {
            assert_eq!(l.message_type, MessageType::ResourceLink);
            assert_eq!(l.sub, "a6d5c443-1f51-4783-ba1a-7686ffe3b54a");
            assert_eq!(l.deployment_id, DEPLOYMENT);
            assert_eq!(l.deployment, DeploymentStatus::Known);
            assert_eq!(l.roles, [ROLE_INSTRUCTOR, ROLE_FACULTY]);
            assert!(!l.test_user);
            assert_eq!(
                l.resource_link,
                Some(ResourceLink {
                    id: "200d101f-2c14-434a-a0f3-57c2a42369fd".into(),
                    title: Some("Unit 3 quiz".into()),
                })
            );
            assert_eq!(
                l.context,
                Some(Context {
                    id: "c1d887f0-a1a3-4bca-ae25-c375edcc131a".into(),
                    label: Some("ECON 1010".into()),
                    title: Some("Economics as a Social Science".into()),
                })
            );
            assert_eq!(
                l.lis,
                Some(Lis {
                    person_sourcedid: Some("user-0042".into()),
                    course_section_sourcedid: Some("class-0007".into()),
                    course_offering_sourcedid: Some("course-0003".into()),
                })
            );
            assert_eq!(l.name.as_deref(), Some("Ms Jane Marie Doe"));
            assert_eq!(l.given_name.as_deref(), Some("Jane"));
            assert_eq!(l.family_name.as_deref(), Some("Doe"));
            assert_eq!(l.email.as_deref(), Some("jane@example.edu"));
            assert_eq!(l.target_link_uri, LAUNCH_URL);
            assert_eq!(
                l.return_url.as_deref(),
                Some("https://lms.example.edu/courses/7/return")
            );
            assert_eq!(
                l.custom,
                BTreeMap::from([
                    ("graded".to_string(), "true".to_string()),
                    ("points".to_string(), "10".to_string()),
                    ("section".to_string(), "A".to_string()),
                ])
            );
            assert_eq!(l.deep_linking, None);
            assert_eq!(
                l.names_roles,
                Some(NamesRoleService {
                    context_memberships_url:
                        "https://lms.example.edu/api/lti/courses/7/names_and_roles".into(),
                    service_versions: vec!["2.0".into()],
                })
            );
            let grades = l.grades.as_ref().expect("AGS claim");
            assert_eq!(grades.scope.len(), 2);
            assert_eq!(
                grades.lineitems.as_deref(),
                Some("https://lms.example.edu/api/lti/courses/7/line_items")
            );
            assert_eq!(
                grades.lineitem.as_deref(),
                Some("https://lms.example.edu/api/lti/courses/7/line_items/9")
            );
        }),
        accepted("Learner", learner(), LaunchRole::Student, |l| {
            assert_eq!(l.roles, [ROLE_LEARNER]);
        }),
        accepted(
            "multiple role values",
            set(
                teacher(),
                CLAIM_ROLES,
                json!([
                    ROLE_LEARNER,
                    ROLE_INSTRUCTOR,
                    ROLE_FACULTY,
                    ROLE_SYSTEM_USER
                ]),
            ),
            LaunchRole::Teacher,
            |l| assert_eq!(l.roles.len(), 4),
        ),
        accepted(
            "short role value",
            set(teacher(), CLAIM_ROLES, json!(["Instructor"])),
            LaunchRole::Teacher,
            |l| assert_eq!(l.roles, ["Instructor"]),
        ),
        accepted(
            "unknown role",
            set(teacher(), CLAIM_ROLES, json!([ROLE_UNKNOWN])),
            LaunchRole::None,
            |l| assert_eq!(l.roles, [ROLE_UNKNOWN]),
        ),
        accepted(
            "no role ([\"\"])",
            set(teacher(), CLAIM_ROLES, json!([""])),
            LaunchRole::None,
            |l| assert_eq!(l.roles, [""]),
        ),
        accepted(
            "no role ([])",
            set(teacher(), CLAIM_ROLES, json!([])),
            LaunchRole::None,
            |l| assert!(l.roles.is_empty()),
        ),
        accepted(
            "email only",
            without_all(learner(), &["name", "given_name", "family_name"]),
            LaunchRole::Student,
            |l| {
                assert_eq!(l.email.as_deref(), Some("jane@example.edu"));
                assert_eq!(
                    (&l.name, &l.given_name, &l.family_name),
                    (&None, &None, &None)
                );
            },
        ),
        accepted(
            "names only",
            without(learner(), "email"),
            LaunchRole::Student,
            |l| {
                assert_eq!(l.email, None);
                assert_eq!(l.given_name.as_deref(), Some("Jane"));
                assert_eq!(l.family_name.as_deref(), Some("Doe"));
            },
        ),
        accepted(
            "no PII",
            without_all(
                learner(),
                &["name", "given_name", "family_name", "email", CLAIM_LIS],
            ),
            LaunchRole::Student,
            |l| {
                assert_eq!((&l.name, &l.email, &l.lis), (&None, &None, &None));
                assert!(l.context.is_some());
            },
        ),
        accepted(
            "email without context",
            without_all(
                learner(),
                &["name", "given_name", "family_name", CLAIM_CONTEXT],
            ),
            LaunchRole::Student,
            |l| {
                assert_eq!(l.context, None);
                assert_eq!(l.email.as_deref(), Some("jane@example.edu"));
            },
        ),
        accepted(
            "new resource_link id",
            set(
                learner(),
                CLAIM_RESOURCE_LINK,
                json!({"id": "never-seen-before-7e1c"}),
            ),
            LaunchRole::Student,
            |l| {
                assert_eq!(
                    l.resource_link,
                    Some(ResourceLink {
                        id: "never-seen-before-7e1c".into(),
                        title: None
                    })
                );
            },
        ),
        Accepted {
            ctx: login_for_deep_linking(),
            ..accepted(
                "deep linking request",
                deep_linking(),
                LaunchRole::Teacher,
                |l| {
                    assert_eq!(l.message_type, MessageType::DeepLinking);
                    assert_eq!(l.resource_link, None);
                    assert_eq!(l.target_link_uri, DEEP_LINK_URL);
                    assert_eq!(
                        l.deep_linking,
                        Some(DeepLinkingSettings {
                            deep_link_return_url:
                                "https://lms.example.edu/courses/7/deep_linking_response".into(),
                            accept_types: vec!["ltiResourceLink".into()],
                            accept_presentation_document_targets: vec![
                                "iframe".into(),
                                "window".into()
                            ],
                            accept_multiple: Some(true),
                            data: Some(json!("csrf-token-echo-me")),
                        })
                    );
                },
            )
        },
    ])
    .await;
}

#[tokio::test]
async fn edge_but_valid_launches_are_accepted() {
    assert_accepted(vec![
        accepted(
            "exp exactly 60 s past",
            set(teacher(), "exp", json!(NOW - 60)),
            LaunchRole::Teacher,
            nothing_more,
        ),
        accepted(
            "iat exactly 60 s ahead (a fast platform clock)",
            set(teacher(), "iat", json!(NOW + 60)),
            LaunchRole::Teacher,
            nothing_more,
        ),
        accepted(
            "iat exactly 600 s old",
            set(teacher(), "iat", json!(NOW - 600)),
            LaunchRole::Teacher,
            nothing_more,
        ),
        accepted(
            "fractional exp and iat",
            set(
                set(teacher(), "exp", json!(NOW as f64 + 300.5)),
                "iat",
                json!(NOW as f64 - 0.25),
            ),
            LaunchRole::Teacher,
            nothing_more,
        ),
        accepted(
            "aud as a one-element array",
            set(teacher(), "aud", json!([CLIENT_ID])),
            LaunchRole::Teacher,
            nothing_more,
        ),
        accepted(
            "aud array of our client id twice, with our azp",
            set(
                set(teacher(), "aud", json!([CLIENT_ID, CLIENT_ID])),
                "azp",
                json!(CLIENT_ID),
            ),
            LaunchRole::Teacher,
            nothing_more,
        ),
        Accepted {
            ctx: Box::new(|c| {
                c.registration.deployment_ids.push("d".repeat(255));
                c.login_deployment_id = None;
            }),
            ..accepted(
                "deployment_id of 255 characters",
                set(teacher(), CLAIM_DEPLOYMENT_ID, json!("d".repeat(255))),
                LaunchRole::Teacher,
                |l| assert_eq!(l.deployment_id.len(), 255),
            )
        },
        Accepted {
            ctx: Box::new(|c| {
                c.registration.unknown_deployments = UnknownDeployments::Pending;
                c.login_deployment_id = None;
            }),
            ..accepted(
                "unknown deployment, registration admits it as pending",
                set(teacher(), CLAIM_DEPLOYMENT_ID, json!("999:stranger")),
                LaunchRole::Teacher,
                |l| {
                    assert_eq!(l.deployment_id, "999:stranger");
                    assert_eq!(l.deployment, DeploymentStatus::Pending);
                },
            )
        },
        Accepted {
            ctx: Box::new(|c| c.login_deployment_id = None),
            ..accepted(
                "login named no deployment",
                teacher(),
                LaunchRole::Teacher,
                |l| assert_eq!(l.deployment, DeploymentStatus::Known),
            )
        },
        Accepted {
            ctx: Box::new(|c| {
                c.login_target_link_uri =
                    "HTTPS://Gateway.Example.org:443/lti/launch/r/42?x=1".into()
            }),
            ..accepted(
                "target_link_uri below a tool URL, the login's written differently",
                set(
                    teacher(),
                    CLAIM_TARGET_LINK_URI,
                    json!("https://gateway.example.org/lti/launch/r/42?x=1"),
                ),
                LaunchRole::Teacher,
                |l| {
                    assert_eq!(
                        l.target_link_uri,
                        "https://gateway.example.org/lti/launch/r/42?x=1"
                    )
                },
            )
        },
        accepted(
            "test user in Student View",
            set(
                teacher(),
                CLAIM_ROLES,
                json!([ROLE_LEARNER, ROLE_TEST_USER]),
            ),
            LaunchRole::Student,
            |l| assert!(l.test_user),
        ),
        accepted(
            "malformed optional claims read as absent",
            set(
                set(
                    set(teacher(), CLAIM_CONTEXT, json!({"label": "no id"})),
                    CLAIM_NRPS,
                    json!("not an object"),
                ),
                "email",
                json!(42),
            ),
            LaunchRole::Teacher,
            |l| {
                assert_eq!(
                    (&l.context, &l.names_roles, &l.email),
                    (&None, &None, &None)
                );
            },
        ),
    ])
    .await;
}

#[test]
fn roles_map_to_the_most_privileged_context_role() {
    let cases: &[(&[&str], LaunchRole, bool)] = &[
        (&[ROLE_INSTRUCTOR], LaunchRole::Teacher, false),
        (&["Instructor"], LaunchRole::Teacher, false),
        (&[ROLE_PRIMARY], LaunchRole::Teacher, false),
        (&[ROLE_INSTRUCTOR, ROLE_TA], LaunchRole::CoTeacher, false),
        (&[ROLE_TA], LaunchRole::CoTeacher, false),
        (&[ROLE_SECONDARY], LaunchRole::CoTeacher, false),
        (&[ROLE_PRIMARY, ROLE_TA], LaunchRole::Teacher, false),
        (&[ROLE_LEARNER], LaunchRole::Student, false),
        (&["Learner"], LaunchRole::Student, false),
        (&[ROLE_LEARNER, ROLE_TEST_USER], LaunchRole::Student, true),
        (&[ROLE_MENTOR], LaunchRole::Mentor, false),
        (&[ROLE_MENTOR, ROLE_LEARNER], LaunchRole::Mentor, false),
        (&[ROLE_ADMIN], LaunchRole::Administrator, false),
        (
            &["Administrator", ROLE_INSTRUCTOR],
            LaunchRole::Administrator,
            false,
        ),
        (&[ROLE_LEARNER, ROLE_INSTRUCTOR], LaunchRole::Teacher, false),
        // Institution and system roles never grant a context role (§7).
        (&[ROLE_INSTITUTION_ADMIN], LaunchRole::None, false),
        (&[ROLE_FACULTY, ROLE_SYSTEM_USER], LaunchRole::None, false),
        (&[ROLE_UNKNOWN], LaunchRole::None, false),
        (&["Member"], LaunchRole::None, false),
        (&[""], LaunchRole::None, false),
        (&[], LaunchRole::None, false),
        // Case matters: role URIs are compared as sent.
        (&["instructor"], LaunchRole::None, false),
    ];
    for (roles, role, test_user) in cases {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        assert_eq!(map_roles(&roles), (*role, *test_user), "{roles:?}");
    }
}

#[test]
fn target_link_uri_must_be_at_or_under_a_tool_url() {
    let tools = [
        NormalUrl::parse(LAUNCH_URL).unwrap(),
        NormalUrl::parse("https://gateway.example.org/lti/fixed?placement=nav").unwrap(),
        NormalUrl::parse("https://gateway.example.org:8443/dir/").unwrap(),
    ];
    let ours = |url: &str| {
        NormalUrl::parse(url).is_some_and(|u| tools.iter().any(|t| u.is_at_or_under(t)))
    };
    for url in [
        LAUNCH_URL,
        "https://gateway.example.org/lti/launch/",
        "https://gateway.example.org/lti/launch/r/42",
        "https://gateway.example.org/lti/launch?resource=42#top",
        "HTTPS://GATEWAY.example.org:443/lti/launch",
        "https://gateway.example.org/lti/fixed?placement=nav",
        "https://gateway.example.org:8443/dir/",
        "https://gateway.example.org:8443/dir/x",
    ] {
        assert!(ours(url), "{url} should be the tool's");
    }
    for url in [
        "https://gateway.example.org/lti/launchpad",
        "https://gateway.example.org/LTI/launch",
        "https://gateway.example.org/lti",
        "https://gateway.example.org/lti/fixed?placement=other",
        "https://gateway.example.org/lti/fixed",
        "https://gateway.example.org:8443/dir",
        "https://gateway.example.org:8444/dir/x",
        "http://gateway.example.org/lti/launch",
        "https://gateway.example.org.evil.example/lti/launch",
        "https://user@gateway.example.org/lti/launch",
        "https://gateway.example.org/lti/launch/../admin",
        "https://gateway.example.org/lti/launch/%2e%2E/admin",
        "https://gateway.example.org/lti/launch\\..\\admin",
        "https://gateway.example.org/lti/launch/ x",
        "javascript:alert(1)",
        "//gateway.example.org/lti/launch",
        "/lti/launch",
        "",
    ] {
        assert!(!ours(url), "{url} should not be the tool's");
    }
}

#[test]
fn codes_are_stable_and_unique_with_the_reference_statuses() {
    use LaunchError::*;
    let s = || String::from("x");
    let table = [
        (MalformedJwt("x"), "malformed_jwt", 400),
        (DisallowedAlgorithm(s()), "disallowed_alg", 401),
        (MissingKid, "missing_kid", 401),
        (UnknownKid(s()), "unknown_kid", 401),
        (
            KeyUnavailable {
                kid: s(),
                reason: s(),
            },
            "key_unavailable",
            503,
        ),
        (BadSignature(s()), "bad_signature", 401),
        (
            WrongIssuer {
                expected: s(),
                found: s(),
            },
            "wrong_issuer",
            401,
        ),
        (
            WrongAudience {
                expected: s(),
                found: s(),
            },
            "wrong_audience",
            401,
        ),
        (UntrustedAudience(s()), "untrusted_audience", 401),
        (MissingAzp, "missing_azp", 401),
        (
            WrongAzp {
                expected: s(),
                found: s(),
            },
            "wrong_azp",
            401,
        ),
        (MissingExp, "missing_exp", 400),
        (Expired { exp: 0, now: 0 }, "expired", 401),
        (MissingIat, "missing_iat", 400),
        (IatInFuture { iat: 0, now: 0 }, "iat_in_future", 401),
        (IatTooOld { iat: 0, now: 0 }, "iat_too_old", 401),
        (MissingNonce, "missing_nonce", 400),
        (NonceMismatch, "nonce_mismatch", 401),
        (MissingLtiVersion, "missing_lti_version", 400),
        (WrongLtiVersion(s()), "wrong_lti_version", 400),
        (MissingMessageType, "missing_message_type", 400),
        (UnsupportedMessageType(s()), "unsupported_message_type", 400),
        (MissingDeploymentId, "missing_deployment_id", 400),
        (DeploymentIdTooLong(0), "deployment_id_too_long", 400),
        (UnknownDeployment(s()), "unknown_deployment", 401),
        (
            DeploymentMismatch {
                expected: s(),
                found: s(),
            },
            "deployment_mismatch",
            401,
        ),
        (MissingRoles, "missing_roles", 400),
        (MissingResourceLinkId, "missing_resource_link_id", 400),
        (ResourceLinkIdTooLong(0), "resource_link_id_too_long", 400),
        (MissingSub, "missing_sub", 400),
        (MissingTargetLinkUri, "missing_target_link_uri", 400),
        (
            TargetLinkUriMismatch {
                expected: s(),
                found: s(),
            },
            "target_link_uri_mismatch",
            401,
        ),
        (ForeignTargetLinkUri(s()), "foreign_target_link_uri", 400),
        (
            MissingDeepLinkingSettings,
            "missing_deep_linking_settings",
            400,
        ),
        (
            IncompleteDeepLinkingSettings("x"),
            "incomplete_deep_linking_settings",
            400,
        ),
        (
            InvalidClaim {
                claim: "x",
                expected: "x",
            },
            "invalid_claim",
            400,
        ),
    ];
    for (error, code, status) in &table {
        assert_eq!(error.code(), *code);
        assert_eq!(error.status(), *status, "{code}");
    }
    let unique: std::collections::HashSet<_> = table.iter().map(|(_, code, _)| code).collect();
    assert_eq!(unique.len(), table.len(), "codes must be unique");
}

#[tokio::test]
async fn errors_name_the_claim_without_echoing_the_token() {
    let huge_iss = format!("https://{}.example", "a".repeat(5000));
    let token = signed(&set(teacher(), "iss", json!(huge_iss)));
    let err = run(&token, &unchanged, &StaticKeys::platform())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(err.code(), "wrong_issuer");
    assert!(message.contains("iss"), "{message}");
    assert!(message.contains(ISSUER), "{message}");
    assert!(message.len() < 300, "{} characters", message.len());
    assert!(!message.contains(&token[..40]));
}
