//! Politeness towards a source: requests in flight and requests per second.

use std::time::{Duration, Instant};

use super::server::{Reply, TestServer};
use super::{client_with, fast_settings, limits};
use crate::domain::connection::RequestLimits;
use crate::outbound::{Fetch, FetchError, SourceClient};

#[tokio::test]
async fn requests_in_flight_never_exceed_the_bound() {
    let server = TestServer::scripted(vec![
        Reply::json(200, "{}").delay(Duration::from_millis(100))
    ])
    .await;
    let limits = RequestLimits {
        max_in_flight: 2,
        ..limits()
    };
    let client = client_with(&server, limits, &fast_settings());
    let gets = (0..6).map(|i| {
        let client = client.clone();
        let url = server.url(&format!("/users?offset={i}"));
        async move { client.get(url).await }
    });
    for result in futures_util::future::join_all(gets).await {
        result.unwrap();
    }
    assert_eq!(server.requests().len(), 6);
    assert_eq!(server.max_concurrent(), 2);
}

#[tokio::test]
async fn the_request_rate_is_held() {
    let server = TestServer::scripted(vec![Reply::json(200, "{}")]).await;
    let limits = RequestLimits {
        requests_per_second: 5,
        max_in_flight: 10,
        ..limits()
    };
    let client = client_with(&server, limits, &fast_settings());
    let started = Instant::now();
    let gets = (0..10).map(|_| client.get(server.url("/users")));
    for result in futures_util::future::join_all(gets).await {
        result.unwrap();
    }
    // A burst of 5, then one every 200 ms.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn zero_limits_are_configuration_errors() {
    let server = TestServer::scripted(vec![Reply::status(200)]).await;
    for limits in [
        RequestLimits {
            requests_per_second: 0,
            ..limits()
        },
        RequestLimits {
            max_in_flight: 0,
            ..limits()
        },
        RequestLimits {
            timeout_secs: 0,
            ..limits()
        },
    ] {
        let result = SourceClient::new(
            &super::connection(&server, super::oauth1(Default::default()), limits),
            crate::config::Secret::new("s").into(),
            &fast_settings(),
        );
        assert!(matches!(result, Err(FetchError::Config(_))), "{limits:?}");
    }
}
