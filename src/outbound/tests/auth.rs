//! Source authentication end to end: bearer tokens (fetched, cached, renewed on 401) and
//! OAuth 1.0a signatures checked by the server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use oauth2::url::form_urlencoded;

use super::server::{Reply, Request, TestServer};
use super::{connection, fast_settings, limits, oauth1, oauth2, SECRET};
use crate::auth::oauth1::{sign, signature_base_string};
use crate::config::Secret;
use crate::domain::connection::{ClientAuthStyle, SignatureMethod};
use crate::outbound::{Fetch, FetchError, SourceClient};

const USERS: &str = "/ims/oneroster/rostering/v1p2/users";

fn token_reply(issued: usize) -> Reply {
    Reply::json(
        200,
        &format!(r#"{{"access_token":"tok-{issued}","token_type":"Bearer","expires_in":3600}}"#),
    )
}

/// A source whose token endpoint issues `tok-1`, `tok-2`…, and whose API accepts the tokens
/// `accepts` says yes to (given the token and how many API requests came before).
async fn source(accepts: impl Fn(&str, usize) -> bool + Send + Sync + 'static) -> TestServer {
    let issued = AtomicUsize::new(0);
    let served = AtomicUsize::new(0);
    TestServer::start(move |request: &Request| {
        if request.path() == "/token" {
            return token_reply(issued.fetch_add(1, Ordering::SeqCst) + 1);
        }
        let n = served.fetch_add(1, Ordering::SeqCst);
        match request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
        {
            Some(token) if accepts(token, n) => Reply::json(200, "{}"),
            _ => Reply::status(401),
        }
    })
    .await
}

fn bearer_client(server: &TestServer, style: ClientAuthStyle) -> SourceClient {
    SourceClient::new(
        &connection(server, oauth2(server, style), limits()),
        Secret::new(SECRET).into(),
        &fast_settings(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_bearer_token_is_fetched_once_and_reused() {
    let server = source(|token, _| token == "tok-1").await;
    let client = bearer_client(&server, ClientAuthStyle::Basic);
    let gets = (0..5).map(|_| client.get(server.url(USERS)));
    for result in futures_util::future::join_all(gets).await {
        result.unwrap();
    }
    client.get(server.url(USERS)).await.unwrap();
    assert_eq!(server.requests_to("/token"), 1);
    assert_eq!(server.requests_to(USERS), 6);
}

#[tokio::test]
async fn a_token_near_its_expiry_is_replaced_before_use() {
    let issued = AtomicUsize::new(0);
    let server = TestServer::start(move |request: &Request| {
        if request.path() == "/token" {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            // One second, so renewed after 0.9 s (a tenth of the lifetime as the margin).
            return Reply::json(
                200,
                &format!(r#"{{"access_token":"tok-{n}","token_type":"bearer","expires_in":1}}"#),
            );
        }
        Reply::json(200, "{}")
    })
    .await;
    let client = bearer_client(&server, ClientAuthStyle::Basic);
    client.get(server.url(USERS)).await.unwrap();
    client.get(server.url(USERS)).await.unwrap();
    assert_eq!(server.requests_to("/token"), 1);
    tokio::time::sleep(std::time::Duration::from_millis(950)).await;
    client.get(server.url(USERS)).await.unwrap();
    assert_eq!(server.requests_to("/token"), 2);
    let last = server.requests().into_iter().last().unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer tok-2"));
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_and_the_request_retried() {
    // tok-1 works for the first request only, as if revoked at the source.
    let server = source(|token, n| token == "tok-2" || (token == "tok-1" && n == 0)).await;
    let client = bearer_client(&server, ClientAuthStyle::Basic);
    client.get(server.url(USERS)).await.unwrap();
    client.get(server.url(USERS)).await.unwrap();
    client.get(server.url(USERS)).await.unwrap();
    assert_eq!(server.requests_to("/token"), 2);
    assert_eq!(server.requests_to(USERS), 4);
}

#[tokio::test]
async fn a_second_401_fails_with_a_clear_error() {
    let server = source(|_, _| false).await;
    let client = bearer_client(&server, ClientAuthStyle::Basic);
    let error = client.get(server.url(USERS)).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, FetchError::Status { status: 401, .. }),
        "{message}"
    );
    assert!(
        message.contains("refused a newly issued token"),
        "{message}"
    );
    assert!(!message.contains("tok-"), "{message}");
    assert_eq!(server.requests_to("/token"), 2);
    assert_eq!(server.requests_to(USERS), 2);
}

fn form(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn client_authentication_is_basic_or_in_the_body_as_configured() {
    let scopes = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly extra.scope";
    for style in [ClientAuthStyle::Basic, ClientAuthStyle::Body] {
        let server = source(|_, _| true).await;
        bearer_client(&server, style)
            .get(server.url(USERS))
            .await
            .unwrap();
        let token_request = server
            .requests()
            .into_iter()
            .find(|r| r.path() == "/token")
            .unwrap();
        assert_eq!(token_request.method, "POST");
        let body = form(&token_request.body);
        assert_eq!(field(&body, "grant_type"), Some("client_credentials"));
        assert_eq!(field(&body, "scope"), Some(scopes));
        match style {
            ClientAuthStyle::Basic => {
                let expected =
                    base64::engine::general_purpose::STANDARD.encode(format!("client-1:{SECRET}"));
                assert_eq!(
                    token_request.header("authorization"),
                    Some(format!("Basic {expected}").as_str())
                );
                assert_eq!(field(&body, "client_secret"), None);
            }
            ClientAuthStyle::Body => {
                assert_eq!(token_request.header("authorization"), None);
                assert_eq!(field(&body, "client_id"), Some("client-1"));
                assert_eq!(field(&body, "client_secret"), Some(SECRET));
            }
        }
    }
}

#[tokio::test]
async fn a_token_endpoint_refusal_names_the_oauth_error_not_the_secret() {
    let server = TestServer::start(|request: &Request| {
        if request.path() == "/token" {
            Reply::json(
                401,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
            )
        } else {
            Reply::json(200, "{}")
        }
    })
    .await;
    let error = bearer_client(&server, ClientAuthStyle::Basic)
        .get(server.url(USERS))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, FetchError::Token { .. }), "{message}");
    assert!(
        message.ends_with(": invalid_client: Client authentication failed"),
        "{message}"
    );
    assert!(
        message.starts_with("token request to http://127.0.0.1:"),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");
    assert_eq!(server.requests_to("/token"), 1, "not retried");
    assert_eq!(server.requests_to(USERS), 0);
}

#[tokio::test]
async fn token_endpoint_answers_that_are_not_oauth_are_reported_without_their_content() {
    let cases = [
        (
            Reply::status(404).body(b"<html><title>Not Found</title></html>".to_vec()),
            ": HTTP 404: Not Found",
        ),
        (
            // A token under an unexpected name must not be quoted back.
            Reply::json(200, r#"{"accessToken":"leaked-token","expires_in":60}"#),
            ": the answer is not a token response: missing field `access_token`",
        ),
    ];
    for (reply, expected_end) in cases {
        let server = TestServer::start(move |request: &Request| {
            if request.path() == "/token" {
                reply.clone()
            } else {
                Reply::json(200, "{}")
            }
        })
        .await;
        let error = bearer_client(&server, ClientAuthStyle::Basic)
            .get(server.url(USERS))
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, FetchError::Token { .. }), "{message}");
        assert!(message.contains(expected_end), "{message}");
        assert!(!message.contains("leaked-token"), "{message}");
        assert_eq!(server.requests_to("/token"), 1, "not retried");
    }
}

#[tokio::test]
async fn a_token_endpoint_outage_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let server = TestServer::start(move |request: &Request| {
        if request.path() == "/token" {
            match seen.fetch_add(1, Ordering::SeqCst) {
                0 => Reply::status(503),
                n => token_reply(n),
            }
        } else {
            Reply::json(200, "{}")
        }
    })
    .await;
    bearer_client(&server, ClientAuthStyle::Body)
        .get(server.url(USERS))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The server side of OAuth 1: recompute the signature from what arrived.
fn oauth1_signature_is_valid(request: &Request, base: &reqwest::Url) -> Result<(), String> {
    let header = request.header("authorization").ok_or("no Authorization")?;
    let params = header.strip_prefix("OAuth ").ok_or("not OAuth")?;
    let mut oauth: Vec<(String, String)> = Vec::new();
    let mut signature = None;
    for part in params.split(", ") {
        let (name, quoted) = part.split_once('=').ok_or("bad parameter")?;
        let raw = quoted.trim_matches('"');
        let value = form_urlencoded::parse(format!("v={raw}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if name == "oauth_signature" {
            signature = Some(value);
        } else {
            oauth.push((name.to_string(), value));
        }
    }
    let method = match oauth.iter().find(|(k, _)| k == "oauth_signature_method") {
        Some((_, m)) if m == "HMAC-SHA256" => SignatureMethod::HmacSha256,
        Some((_, m)) if m == "HMAC-SHA1" => SignatureMethod::HmacSha1,
        other => return Err(format!("method {other:?}")),
    };
    for required in [
        "oauth_consumer_key",
        "oauth_timestamp",
        "oauth_nonce",
        "oauth_version",
    ] {
        if !oauth.iter().any(|(k, _)| k == required) {
            return Err(format!("{required} missing"));
        }
    }
    let url = base.join(&request.target).map_err(|e| e.to_string())?;
    let expected = sign(
        method,
        &signature_base_string("GET", &url, &oauth),
        SECRET,
        "",
    );
    if signature.as_deref() == Some(expected.as_str()) {
        Ok(())
    } else {
        Err(format!("signature {signature:?}, expected {expected}"))
    }
}

#[tokio::test]
async fn oauth1_signatures_verify_on_the_server_with_every_query_parameter() {
    let path = "/ims/oneroster/v1p1/users?limit=100&offset=200&sort=familyName\
                &filter=dateLastModified>'2024-01-01T00:00:00Z' AND status='active'\
                &fields=sourcedId,givenName&x=a+b*~é";
    for method in [SignatureMethod::HmacSha256, SignatureMethod::HmacSha1] {
        let server = TestServer::start(|_: &Request| Reply::json(200, "{}")).await;
        let client = SourceClient::new(
            &connection(&server, oauth1(method), limits()),
            Secret::new(SECRET).into(),
            &fast_settings(),
        )
        .unwrap();
        client.get(server.url(path)).await.unwrap();
        client.get(server.url(path)).await.unwrap();
        let requests = server.requests();
        for request in &requests {
            oauth1_signature_is_valid(request, &server.base).unwrap();
            assert!(request.target.contains("filter="), "{}", request.target);
        }
        // A fresh nonce per request.
        assert_ne!(
            requests[0].header("authorization"),
            requests[1].header("authorization")
        );
    }
}

#[tokio::test]
async fn an_oauth1_401_is_not_retried_and_hints_at_the_signature() {
    let server = TestServer::scripted(vec![Reply::status(401)]).await;
    let client = SourceClient::new(
        &connection(&server, oauth1(SignatureMethod::HmacSha256), limits()),
        Secret::new(SECRET).into(),
        &fast_settings(),
    )
    .unwrap();
    let message = client.get(server.url(USERS)).await.unwrap_err().to_string();
    assert!(
        message.contains("HTTP 401; the source refused the signature"),
        "{message}"
    );
    assert_eq!(server.requests().len(), 1);
}

const API_KEY: &str = "partner-api-key-value";

fn keyed_client(server: &TestServer) -> SourceClient {
    let auth = match oauth2(server, ClientAuthStyle::Basic) {
        crate::domain::connection::AuthConfig::Oauth2 {
            token_url,
            client_id,
            client_auth,
            scopes,
            ..
        } => crate::domain::connection::AuthConfig::Oauth2 {
            token_url,
            client_id,
            client_auth,
            scopes,
            api_key_header: Some("apikey".into()),
        },
        other => other,
    };
    SourceClient::new(
        &connection(server, auth, limits()),
        crate::domain::connection::ConnectionSecrets {
            secret: Secret::new(SECRET),
            api_key: Some(Secret::new(API_KEY)),
        },
        &fast_settings(),
    )
    .unwrap()
}

#[tokio::test]
async fn an_api_key_goes_on_the_token_request_and_every_other() {
    let server = source(|token, _| token.starts_with("tok-")).await;
    let client = keyed_client(&server);
    client.get(server.url(USERS)).await.unwrap();
    client.get(server.url(USERS)).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "one token request, two GETs");
    for request in &requests {
        assert_eq!(
            request.header("apikey"),
            Some(API_KEY),
            "{}",
            request.path()
        );
    }
    // A client without a key sends no such header.
    let plain = bearer_client(&server, ClientAuthStyle::Basic);
    plain.get(server.url(USERS)).await.unwrap();
    assert_eq!(server.requests().last().unwrap().header("apikey"), None);
}

#[tokio::test]
async fn an_api_key_echoed_in_an_error_is_not_repeated() {
    let server = TestServer::start(|request: &Request| {
        if request.path() == "/token" {
            return token_reply(1);
        }
        Reply::json(
            403,
            &format!(r#"{{"message":"key {API_KEY} is not allowed here"}}"#),
        )
    })
    .await;
    let error = keyed_client(&server)
        .get(server.url(USERS))
        .await
        .unwrap_err()
        .to_string();
    assert!(!error.contains(API_KEY), "{error}");
    assert!(error.contains("403"), "{error}");
}
