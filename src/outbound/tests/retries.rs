//! What is retried, for how long, and what a failure says.

use std::time::{Duration, Instant};

use reqwest::Url;

use super::server::{Reply, TestServer};
use super::{client, client_with, connection_at, fast_settings, limits, oauth1, SECRET};
use crate::config::Secret;
use crate::domain::connection::{ConnectionConfig, SignatureMethod};
use crate::outbound::{Fetch, FetchError, SourceClient};

/// An OAuth 1 connection to `base_url`, where no test server listens.
fn connection_to(base_url: &str) -> ConnectionConfig {
    connection_at(base_url, oauth1(SignatureMethod::HmacSha256), limits())
}

const USERS: &str = "/ims/oneroster/rostering/v1p2/users?limit=2&offset=0";

#[tokio::test]
async fn a_429_waits_for_retry_after_then_succeeds() {
    let server = TestServer::scripted(vec![
        Reply::status(429).header("retry-after", "1"),
        Reply::json(200, r#"{"users":[]}"#),
    ])
    .await;
    let started = Instant::now();
    let fetched = client(&server, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap();
    assert_eq!(fetched.body, br#"{"users":[]}"#);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_at_once() {
    let server = TestServer::scripted(vec![
        Reply::status(429).header("retry-after", "3600"),
        Reply::status(200),
    ])
    .await;
    let error = client(&server, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, FetchError::Status { status: 429, .. }),
        "{message}"
    );
    assert!(
        message.contains("3600 s") && message.contains("5 s allowed"),
        "{message}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = TestServer::scripted(vec![
        Reply::status(500),
        Reply::status(503),
        Reply::json(200, "[]"),
    ])
    .await;
    let fetched = client(&server, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap();
    assert_eq!(fetched.status, 200);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn server_errors_give_up_after_max_attempts_with_the_last_cause() {
    let server = TestServer::scripted(vec![Reply::json(
        502,
        r#"{"imsx_codeMajor":"failure","imsx_severity":"error","imsx_description":"upstream down"}"#,
    )])
    .await;
    let error = client(&server, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "GET /ims/oneroster/rostering/v1p2/users: gave up after 4 attempts; last: HTTP 502: upstream down"
    );
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let server = TestServer::scripted(vec![
        Reply::json(200, "slow").delay(Duration::from_millis(2500)),
        Reply::json(200, "fast"),
    ])
    .await;
    let mut limits = limits();
    limits.timeout_secs = 1;
    let fetched = client_with(&server, limits, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap();
    assert_eq!(fetched.body, b"fast");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_body_that_stalls_times_out_and_is_retried() {
    let server = TestServer::scripted(vec![
        Reply::json(200, "[1,")
            .without_length()
            .header("content-length", "100")
            .hold(Duration::from_millis(2500)),
        Reply::json(200, "[1,2]"),
    ])
    .await;
    let mut limits = limits();
    limits.timeout_secs = 1;
    let started = Instant::now();
    let fetched = client_with(&server, limits, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap();
    assert_eq!(fetched.body, b"[1,2]");
    assert_eq!(server.requests().len(), 2);
    // Given up after the 1 s timeout, not when the server hung up.
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connection_fails_after_bounded_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let config = connection_to(&format!("http://{address}/ims/oneroster/v1p1"));
    let client = SourceClient::new(&config, Secret::new(SECRET).into(), &fast_settings()).unwrap();
    let url = Url::parse(&format!("http://{address}/ims/oneroster/v1p1/users")).unwrap();
    let error = client.get(url).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, FetchError::RetriesExhausted { attempts: 4, .. }),
        "{message}"
    );
    assert!(
        message.starts_with(
            "GET /ims/oneroster/v1p1/users: gave up after 4 attempts; last: cannot connect"
        ),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!message.contains("127.0.0.1"), "{message}");
}

#[tokio::test]
async fn https_goes_through_the_installed_tls_provider() {
    // A server that hangs up at once: the handshake fails, as an error and not a panic.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let config = connection_to(&format!("https://{address}/ims/oneroster/v1p1"));
    let mut settings = fast_settings();
    settings.max_attempts = 1;
    let client = SourceClient::new(&config, Secret::new(SECRET).into(), &settings).unwrap();
    let url = Url::parse(&format!("https://{address}/ims/oneroster/v1p1/users")).unwrap();
    let error = client.get(url).await.unwrap_err();
    assert!(matches!(error, FetchError::Connect { .. }), "{error}");
}

#[tokio::test]
async fn urls_off_the_connection_host_are_refused() {
    let server = TestServer::scripted(vec![Reply::status(200)]).await;
    let other = TestServer::scripted(vec![Reply::status(200)]).await;
    let error = client(&server, &fast_settings())
        .get(other.url(USERS))
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Config(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("is not the host of connection test-sis"),
        "{error}"
    );
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn a_404_is_not_retried_and_says_why() {
    let server = TestServer::scripted(vec![Reply::json(
        404,
        r#"{"imsx_codeMajor":"failure","imsx_severity":"error","imsx_description":"Unknown object"}"#,
    )])
    .await;
    let error = client(&server, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "GET /ims/oneroster/rostering/v1p2/users: HTTP 404: Unknown object"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn error_excerpts_never_echo_the_secret() {
    let server = TestServer::scripted(vec![
        Reply::status(400).body(format!("bad request, you sent {SECRET}").into_bytes())
    ])
    .await;
    let error = client(&server, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(!message.contains(SECRET), "{message}");
    assert!(message.contains("[redacted]"), "{message}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_a_length() {
    for reply in [
        Reply::json(200, &"x".repeat(2000)),
        Reply::json(200, &"x".repeat(2000)).without_length(),
    ] {
        let server = TestServer::scripted(vec![reply]).await;
        let mut settings = fast_settings();
        settings.max_response_bytes = 1000;
        let error = client(&server, &settings)
            .get(server.url(USERS))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                FetchError::TooLarge {
                    max_bytes: 1000,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(server.requests().len(), 1, "not retried");
    }
}

#[tokio::test]
async fn a_body_at_the_cap_is_read_whole() {
    let server =
        TestServer::scripted(vec![Reply::json(200, &"y".repeat(1000)).without_length()]).await;
    let mut settings = fast_settings();
    settings.max_response_bytes = 1000;
    let fetched = client(&server, &settings)
        .get(server.url(USERS))
        .await
        .unwrap();
    assert_eq!(fetched.body.len(), 1000);
}

#[tokio::test]
async fn the_next_link_is_resolved_and_the_total_read() {
    let server = TestServer::scripted(vec![Reply::json(200, "{}")
        .header("link", r#"<users?limit=2&offset=4>; rel="last""#)
        .header("link", r#"<users?limit=2&offset=2>; rel="next""#)
        .header("x-total-count", "5")])
    .await;
    let fetched = client(&server, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap();
    assert_eq!(
        fetched.next,
        Some(server.url("/ims/oneroster/rostering/v1p2/users?limit=2&offset=2"))
    );
    assert_eq!(fetched.total_count, Some(5));
    assert_eq!(fetched.url, server.url(USERS));
}

#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let server = TestServer::scripted(vec![
        Reply::status(301).header("location", "https://elsewhere.example/v1p2/users")
    ])
    .await;
    let error = client(&server, &fast_settings())
        .get(server.url(USERS))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("HTTP 301: redirected to elsewhere.example/v1p2/users"),
        "{message}"
    );
    assert_eq!(server.requests().len(), 1);
}
