//! `SourceClient` against scripted local servers: retries, limits, paging headers, and the two
//! kinds of source authentication.

mod auth;
mod limits;
mod retries;
mod server;

use crate::config::{OutboundSettings, Secret};
use crate::domain::connection::{
    ApiVersion, AuthConfig, ClientAuthStyle, ConnectionConfig, ConnectionKind, OneRosterVersion,
    PullSchedule, RequestLimits, SignatureMethod,
};
use crate::outbound::SourceClient;

use server::TestServer;

pub const SECRET: &str = "client-s3cret-value";

/// Tiny pauses so that retry tests take milliseconds.
pub fn fast_settings() -> OutboundSettings {
    OutboundSettings {
        max_attempts: 4,
        initial_backoff_ms: 1,
        max_backoff_secs: 1,
        max_retry_after_secs: 5,
        max_retry_elapsed_secs: 30,
        connect_timeout_secs: 2,
        max_response_bytes: 1 << 20,
        allow_private_targets: false,
    }
}

pub fn limits() -> RequestLimits {
    RequestLimits {
        requests_per_second: 1000,
        max_in_flight: 4,
        timeout_secs: 5,
    }
}

pub fn oauth2(token_server: &TestServer, client_auth: ClientAuthStyle) -> AuthConfig {
    AuthConfig::Oauth2 {
        token_url: token_server.url("/token").to_string(),
        client_id: "client-1".into(),
        client_auth,
        scopes: vec![
            "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly".into(),
            "extra.scope".into(),
        ],
        api_key_header: None,
    }
}

pub fn oauth1(method: SignatureMethod) -> AuthConfig {
    AuthConfig::Oauth1 {
        consumer_key: "consumer-1".into(),
        signature_method: method,
    }
}

pub fn connection(
    server: &TestServer,
    auth: AuthConfig,
    limits: RequestLimits,
) -> ConnectionConfig {
    connection_at(
        server.url("/ims/oneroster/rostering/v1p2").as_str(),
        auth,
        limits,
    )
}

pub fn connection_at(base_url: &str, auth: AuthConfig, limits: RequestLimits) -> ConnectionConfig {
    ConnectionConfig {
        name: "test-sis".into(),
        kind: ConnectionKind::OneRosterRest,
        version: ApiVersion::OneRoster(OneRosterVersion::V1_2),
        base_url: base_url.to_string(),
        page_size: 100,
        auth,
        limits,
        schedule: PullSchedule {
            delta: None,
            full: None,
        },
    }
}

/// A client signing with OAuth 1 (no token endpoint involved), with fast retries.
pub fn client(server: &TestServer, settings: &OutboundSettings) -> SourceClient {
    client_with(server, limits(), settings)
}

pub fn client_with(
    server: &TestServer,
    limits: RequestLimits,
    settings: &OutboundSettings,
) -> SourceClient {
    SourceClient::new(
        &connection(server, oauth1(SignatureMethod::HmacSha256), limits),
        Secret::new(SECRET).into(),
        settings,
    )
    .unwrap()
}
