//! A platform's key set against a scripted local JWKS server that counts requests: caching,
//! refetching on an unknown kid (rate-limited), rotation, `Cache-Control`, which keys are
//! kept, and every way a fetch fails.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header, Validation};

use super::*;
use crate::lti::tool_keys::ToolKey;

// The outbound client's scripted server, compiled here too rather than copied (its module is
// private to `outbound`'s tests); not every helper is used here.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../outbound/tests/server.rs"]
mod server;

use server::{Reply, TestServer};

const PATH: &str = "/.well-known/jwks.json";

/// Local and plain-http targets allowed; other settings as deployed.
fn settings() -> PlatformKeySettings {
    PlatformKeySettings {
        allow_private_targets: true,
        allow_plain_http: true,
        ..PlatformKeySettings::default()
    }
}

fn with_interval(interval: Duration) -> PlatformKeySettings {
    PlatformKeySettings {
        min_refetch_interval: interval,
        ..settings()
    }
}

fn keys_of(server: &TestServer, settings: PlatformKeySettings) -> PlatformKeys {
    PlatformKeys::new(server.url(PATH), settings).unwrap()
}

fn jwks(keys: &[&ToolKey]) -> String {
    serde_json::json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
        .to_string()
}

fn jwks_reply(keys: &[&ToolKey], cache_control: &str) -> Reply {
    Reply::json(200, &jwks(keys)).header("cache-control", cache_control)
}

/// The key found verifies a token the platform's key signed.
fn assert_verifies(found: &DecodingKey, signer: &ToolKey) {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(signer.kid().to_string());
    let claims = serde_json::json!({ "exp": chrono::Utc::now().timestamp() + 300 });
    let token = jsonwebtoken::encode(&header, &claims, &signer.encoding_key()).unwrap();
    jsonwebtoken::decode::<serde_json::Value>(&token, found, &Validation::new(Algorithm::RS256))
        .unwrap();
}

fn unavailable(result: Result<DecodingKey, KeyError>) -> String {
    match result {
        Err(KeyError::Unavailable(message)) => message,
        Err(other) => panic!("wanted Unavailable, got {other:?}"),
        Ok(_) => panic!("wanted Unavailable, got a key"),
    }
}

#[tokio::test]
async fn a_known_kid_is_fetched_once_then_served_from_the_cache() {
    let a = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![jwks_reply(&[&a], "max-age=300")]).await;
    let keys = keys_of(&server, settings());

    let found = keys.key(a.kid()).await.unwrap();
    assert_verifies(&found, &a);
    let again = keys.clone().key(a.kid()).await.unwrap();
    assert_verifies(&again, &a);
    assert_eq!(server.requests_to(PATH), 1);

    let request = &server.requests()[0];
    assert_eq!(request.method, "GET");
    assert!(request
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("rostergate/")));
    assert!(request
        .header("accept")
        .is_some_and(|a| a.contains("application/jwk-set+json")));
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_and_then_is_unknown() {
    let a = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![jwks_reply(&[&a], "max-age=300")]).await;
    let keys = keys_of(&server, with_interval(Duration::from_millis(100)));

    keys.key(a.kid()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        keys.key("forged").await.unwrap_err(),
        KeyError::UnknownKid("forged".into())
    );
    assert_eq!(server.requests_to(PATH), 2, "one refetch on the miss");
    // The known key is still there.
    keys.key(a.kid()).await.unwrap();
    assert_eq!(server.requests_to(PATH), 2);
}

#[tokio::test]
async fn a_rotated_set_is_picked_up_by_the_refetch() {
    let a = ToolKey::generate().unwrap();
    let b = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![
        jwks_reply(&[&a], "no-cache, no-store"),
        jwks_reply(&[&b], "no-cache, no-store"),
    ])
    .await;
    let keys = keys_of(&server, with_interval(Duration::from_millis(100)));

    keys.key(a.kid()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let found = keys.key(b.kid()).await.unwrap();
    assert_verifies(&found, &b);
    assert_eq!(server.requests_to(PATH), 2);
    // The new set replaced the old one: a key the platform withdrew stops verifying.
    assert_eq!(
        keys.key(a.kid()).await.unwrap_err(),
        KeyError::UnknownKid(a.kid().into())
    );
    keys.key(b.kid()).await.unwrap();
    assert_eq!(server.requests_to(PATH), 2);
}

#[tokio::test]
async fn unknown_kids_within_the_interval_do_not_refetch() {
    let a = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![jwks_reply(&[&a], "max-age=300")]).await;
    // Deployed interval (10 s).
    let keys = keys_of(&server, settings());

    // An empty cache is filled once, even for a kid the set lacks.
    assert_eq!(
        keys.key("forged-0").await.unwrap_err(),
        KeyError::UnknownKid("forged-0".into())
    );
    for i in 1..50 {
        let kid = format!("forged-{i}");
        assert_eq!(
            keys.key(&kid).await.unwrap_err(),
            KeyError::UnknownKid(kid.clone())
        );
    }
    keys.key(a.kid()).await.unwrap();
    assert_eq!(server.requests_to(PATH), 1);
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let a = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![
        jwks_reply(&[&a], "max-age=300").delay(Duration::from_millis(200))
    ])
    .await;
    let keys = keys_of(&server, settings());

    let calls = (0..8).map(|_| {
        let keys = keys.clone();
        let kid = a.kid().to_string();
        tokio::spawn(async move { keys.key(&kid).await })
    });
    for call in futures_util::future::join_all(calls).await {
        assert_verifies(&call.unwrap().unwrap(), &a);
    }
    assert_eq!(server.requests_to(PATH), 1);
}

#[tokio::test]
async fn cached_keys_do_not_wait_for_a_refetch() {
    let a = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![
        jwks_reply(&[&a], "max-age=300"),
        jwks_reply(&[&a], "max-age=300").delay(Duration::from_millis(800)),
    ])
    .await;
    let keys = keys_of(&server, with_interval(Duration::ZERO));
    keys.key(a.kid()).await.unwrap();

    let slow = {
        let keys = keys.clone();
        tokio::spawn(async move { keys.key("forged").await })
    };
    while server.requests_to(PATH) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    keys.key(a.kid()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(400));
    assert!(!slow.is_finished(), "the refetch is still under way");
    assert_eq!(
        slow.await.unwrap().unwrap_err(),
        KeyError::UnknownKid("forged".into())
    );
}

#[tokio::test]
async fn max_age_is_honoured_but_not_beyond_the_maximum() {
    let a = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![jwks_reply(&[&a], "public, max-age=86400")]).await;
    let keys = keys_of(
        &server,
        PlatformKeySettings {
            min_ttl: Duration::from_millis(50),
            max_ttl: Duration::from_millis(300),
            ..with_interval(Duration::ZERO)
        },
    );

    keys.key(a.kid()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    keys.key(a.kid()).await.unwrap();
    assert_eq!(server.requests_to(PATH), 1, "past min_ttl, within max-age");
    tokio::time::sleep(Duration::from_millis(300)).await;
    keys.key(a.kid()).await.unwrap();
    assert_eq!(
        server.requests_to(PATH),
        2,
        "a day's max-age is cut to max_ttl"
    );
}

#[tokio::test]
async fn no_cache_is_kept_for_the_minimum_ttl() {
    let a = ToolKey::generate().unwrap();
    // D2L's headers.
    let server = TestServer::scripted(vec![jwks_reply(&[&a], "no-cache, no-store")]).await;
    let keys = keys_of(
        &server,
        PlatformKeySettings {
            min_ttl: Duration::from_millis(300),
            max_ttl: Duration::from_secs(3600),
            ..with_interval(Duration::ZERO)
        },
    );

    keys.key(a.kid()).await.unwrap();
    keys.key(a.kid()).await.unwrap();
    assert_eq!(server.requests_to(PATH), 1, "kept for min_ttl");
    tokio::time::sleep(Duration::from_millis(400)).await;
    keys.key(a.kid()).await.unwrap();
    assert_eq!(server.requests_to(PATH), 2, "fetched again once expired");
}

#[test]
fn cache_control_is_read_and_clamped() {
    let min = Duration::from_secs(60);
    let max = Duration::from_secs(3600);
    let cases: &[(&[&str], u64)] = &[
        (&["max-age=300"], 300),
        (&["public, max-age=300, must-revalidate"], 300),
        (&["Max-Age=\"120\""], 120),
        (&["max-age=5"], 60),
        (&["max-age=0"], 60),
        (&["max-age=86400"], 3600),
        (&["no-cache, no-store"], 60),
        (&["max-age=600, no-cache"], 60),
        (&["no-store"], 60),
        (&["max-age=600", "max-age=120"], 120),
        (&["max-age=soon"], 60),
        (&["private"], 60),
        (&[], 60),
    ];
    for (values, want) in cases {
        let mut headers = HeaderMap::new();
        for value in *values {
            headers.append(CACHE_CONTROL, value.parse().unwrap());
        }
        assert_eq!(
            cache_ttl(&headers, min, max),
            Duration::from_secs(*want),
            "{values:?}"
        );
    }
}

#[tokio::test]
async fn only_rsa_signing_keys_for_rs256_are_kept() {
    let a = ToolKey::generate().unwrap();
    let b = ToolKey::generate().unwrap();
    let with = |kid: &str, extra: serde_json::Value| {
        let mut jwk = b.public_jwk();
        jwk["kid"] = kid.into();
        for (name, value) in extra.as_object().unwrap() {
            if value.is_null() {
                jwk.as_object_mut().unwrap().remove(name);
            } else {
                jwk[name] = value.clone();
            }
        }
        jwk
    };
    let mut bare = a.public_jwk();
    bare.as_object_mut().unwrap().remove("use");
    bare.as_object_mut().unwrap().remove("alg");
    let set = serde_json::json!({ "keys": [
        {"kty": "EC", "kid": "ec", "crv": "P-256", "use": "sig",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uI5hr1Q", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "oct", "kid": "oct", "k": "c2VjcmV0"},
        with("enc", serde_json::json!({"use": "enc"})),
        with("rs512", serde_json::json!({"alg": "RS512"})),
        with("rsa-oaep", serde_json::json!({"alg": "RSA-OAEP", "use": null})),
        with("bad-n", serde_json::json!({"n": "!!!"})),
        with("no-n", serde_json::json!({"n": null})),
        with("", serde_json::json!({"kid": null})),
        "not an object",
        bare,
    ]});
    let server = TestServer::scripted(vec![Reply::json(200, &set.to_string())]).await;
    let keys = keys_of(&server, settings());

    // `use` and `alg` absent are fine.
    assert_verifies(&keys.key(a.kid()).await.unwrap(), &a);
    for kid in ["ec", "oct", "enc", "rs512", "rsa-oaep", "bad-n", "no-n"] {
        assert_eq!(
            keys.key(kid).await.unwrap_err(),
            KeyError::UnknownKid(kid.into()),
            "{kid}"
        );
    }
    assert_eq!(parse_jwks(set.to_string().as_bytes()).unwrap().len(), 1);
    assert_eq!(server.requests_to(PATH), 1);
}

#[tokio::test]
async fn a_failing_platform_is_unavailable_without_its_body() {
    let cases = [
        (
            Reply::json(500, r#"{"trace": "internal-stack-trace"}"#),
            "HTTP 500",
        ),
        (Reply::status(404), "HTTP 404"),
        (
            Reply::status(302).header("location", "https://elsewhere.example/jwks"),
            "redirects are not followed",
        ),
        (
            Reply::json(200, "<html>internal-stack-trace</html>"),
            "not JSON",
        ),
        (
            Reply::json(200, r#"{"internal-stack-trace": []}"#),
            "not a JWK set",
        ),
        (
            Reply::json(200, r#"{"keys": "internal-stack-trace"}"#),
            "not a JWK set",
        ),
    ];
    for (reply, want) in cases {
        let server = TestServer::scripted(vec![reply]).await;
        let keys = keys_of(&server, settings());
        let message = unavailable(keys.key("k1").await);
        assert!(message.contains(want), "{message}");
        assert!(message.contains(PATH), "names the key set: {message}");
        assert!(!message.contains("internal-stack-trace"), "{message}");
        assert_eq!(server.requests().len(), 1, "{message}: one request");
    }
}

#[tokio::test]
async fn an_oversized_key_set_is_refused() {
    let big = format!(r#"{{"keys": [], "padding": "{}"}}"#, "x".repeat(8 << 10));
    let small = PlatformKeySettings {
        max_body_bytes: 4 << 10,
        ..settings()
    };
    for reply in [
        Reply::json(200, &big),
        // No Content-Length: the cap is found while reading.
        Reply::json(200, &big).without_length(),
    ] {
        let server = TestServer::scripted(vec![reply]).await;
        let keys = keys_of(&server, small.clone());
        let message = unavailable(keys.key("k1").await);
        assert!(message.contains("larger than 4096 bytes"), "{message}");
    }
}

#[tokio::test]
async fn a_slow_platform_times_out() {
    let a = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![
        jwks_reply(&[&a], "max-age=300").delay(Duration::from_secs(3))
    ])
    .await;
    let keys = keys_of(
        &server,
        PlatformKeySettings {
            timeout: Duration::from_millis(300),
            ..settings()
        },
    );
    let message = unavailable(keys.key(a.kid()).await);
    assert!(message.contains("timed out"), "{message}");
}

#[tokio::test]
async fn a_failed_fetch_is_retried_only_after_the_interval() {
    let a = ToolKey::generate().unwrap();
    let server =
        TestServer::scripted(vec![Reply::status(503), jwks_reply(&[&a], "max-age=300")]).await;
    let keys = keys_of(&server, with_interval(Duration::from_millis(150)));

    let first = unavailable(keys.key(a.kid()).await);
    let second = unavailable(keys.key(a.kid()).await);
    assert_eq!(first, second, "the last failure is answered again");
    assert_eq!(server.requests_to(PATH), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_verifies(&keys.key(a.kid()).await.unwrap(), &a);
    assert_eq!(server.requests_to(PATH), 2);
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let a = ToolKey::generate().unwrap();
    let server = TestServer::scripted(vec![jwks_reply(&[&a], "max-age=300")]).await;
    let guarded = PlatformKeySettings {
        allow_private_targets: false,
        ..settings()
    };
    let port = server.base.port().unwrap();
    for url in [
        server.url(PATH),
        Url::parse(&format!("http://localhost:{port}{PATH}")).unwrap(),
    ] {
        let keys = PlatformKeys::new(url.clone(), guarded.clone()).unwrap();
        let message = unavailable(keys.key(a.kid()).await);
        assert!(message.contains("refused"), "{url}: {message}");
        assert!(message.contains("loopback"), "{url}: {message}");
    }
    assert_eq!(server.requests().len(), 0, "nothing reached the server");
}

#[test]
fn construction_checks_the_url_and_bounds() {
    let http = Url::parse("http://platform.example/jwks").unwrap();
    assert!(matches!(
        PlatformKeys::new(http.clone(), PlatformKeySettings::default()),
        Err(PlatformKeysError::NotHttps(_))
    ));
    assert!(matches!(
        PlatformKeys::new(
            Url::parse("ftp://platform.example/jwks").unwrap(),
            settings()
        ),
        Err(PlatformKeysError::NotHttps(_))
    ));
    assert!(matches!(
        PlatformKeys::new(
            Url::parse("https://platform.example/jwks").unwrap(),
            PlatformKeySettings {
                min_ttl: Duration::from_secs(600),
                max_ttl: Duration::from_secs(60),
                ..PlatformKeySettings::default()
            }
        ),
        Err(PlatformKeysError::TtlBounds { .. })
    ));
    let keys = PlatformKeys::new(
        Url::parse("https://platform.example/jwks?token=abc").unwrap(),
        PlatformKeySettings::default(),
    )
    .unwrap();
    assert_eq!(keys.url().host_str(), Some("platform.example"));
    assert!(format!("{keys:?}").contains("platform.example"));
}
