//! An assessment partner's results API on `127.0.0.1:0`, for black-box tests and benchmarks of
//! the gateway's score pulls (connections of kind `assessment-rest`).
//!
//! It serves exactly `contracts/partner-results.openapi.json`: `GET {base}/results` with
//! `limit`, `modified_since` and opaque `page_token` paging, results ordered by `modified_at`
//! (then by the order they were added), behind an OAuth 2 client-credentials token endpoint
//! and, when configured, an API key header required on both. Tokens, client authentication,
//! scripted faults and the `Authorization` scheme in the log are the OneRoster
//! [`Provider`](super::provider::Provider)'s own; the results change between pulls through
//! [`ResultsHandle`]; every request is logged for assertions.
//!
//! ```ignore
//! let partner = Partner::start(config, generated_results(2_500, 7))?;
//! partner.faults().on_path("results", FaultAction::TooManyRequests { retry_after_secs: 1 }, 1);
//! // … point a connection at partner.base_url() and partner.token_url(), pull …
//! partner.results().add(Utc::now(), json!({ /* a result */ }));
//! partner.stop().await;
//! ```

mod cursor;
mod generate;
mod log;
mod server;
mod store;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use crate::synthetic::serving::{bind, RequestLog, Serving};
use actix_web::web;
use chrono::{DateTime, Utc};

use super::provider::Tokens;

pub use super::provider::{
    AuthKind, ClientAuthStyle, FaultAction, FaultHandle, FaultTrigger, Oauth2Settings,
};
pub use generate::generated_results;
pub use log::PartnerRequest;
pub use store::ResultsHandle;

pub(crate) use generate::GOAL_AREAS;

/// Where the results route lives, under the origin.
pub const BASE_PATH: &str = "/v1";
/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth/token";
/// The API key header the gateway sends by default (NWEA's name for it).
pub const DEFAULT_API_KEY_HEADER: &str = "apikey";
/// The contract's largest `limit`; a larger one is refused with a 400.
pub const MAX_LIMIT: usize = 50_000;

/// How the partner behaves.
#[derive(Clone, PartialEq, Eq)]
pub struct PartnerConfig {
    /// Client credentials, Basic or body client authentication, token TTL, an optional
    /// required scope and `revoke_after_requests` (each token then stops working after that
    /// many results requests: a token expiring mid-pull).
    pub oauth2: Oauth2Settings,
    /// `(header name, key)`: when set, the header must carry the key on the token request and
    /// on every results request, else 401.
    pub api_key: Option<(String, String)>,
    /// Larger `limit`s are silently clamped to this.
    pub max_page_size: Option<usize>,
    /// Server worker threads.
    pub workers: usize,
}

impl PartnerConfig {
    /// Basic client authentication, one-hour tokens, no API key, no clamp, two workers.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        PartnerConfig {
            oauth2: Oauth2Settings::new(client_id, client_secret),
            api_key: None,
            max_page_size: None,
            workers: 2,
        }
    }

    /// The same, requiring `key` in the header `header`.
    pub fn with_api_key(mut self, header: impl Into<String>, key: impl Into<String>) -> Self {
        self.api_key = Some((header.into(), key.into()));
        self
    }

    /// The header requests are checked (and logged) for: the configured one or `apikey`.
    pub fn api_key_header(&self) -> &str {
        self.api_key
            .as_ref()
            .map_or(DEFAULT_API_KEY_HEADER, |(header, _)| header.as_str())
    }
}

// The API key stays out of Debug output, as the client secret does.
impl std::fmt::Debug for PartnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerConfig")
            .field("oauth2", &self.oauth2)
            .field(
                "api_key",
                &self
                    .api_key
                    .as_ref()
                    .map(|(header, _)| (header, "[redacted]")),
            )
            .field("max_page_size", &self.max_page_size)
            .field("workers", &self.workers)
            .finish()
    }
}

/// What request handlers share.
struct State {
    config: PartnerConfig,
    origin: String,
    results: ResultsHandle,
    cursors: cursor::Cursors,
    faults: FaultHandle,
    log: RequestLog<PartnerRequest>,
    tokens: Mutex<Tokens>,
    results_requests: AtomicU64,
}

/// A running partner; stop it with [`Partner::stop`] (dropping it leaves the server running
/// until the runtime ends).
pub struct Partner {
    state: web::Data<State>,
    serving: Serving,
}

impl Partner {
    /// Starts serving `results` (`(modified_at, result)`, each result shaped as
    /// `contracts/schemas/score-push.schema.json#/$defs/result`, served as given) on a free port
    /// of 127.0.0.1. Call it within a Tokio runtime: the server runs as a task of it, its
    /// workers on threads of their own.
    pub fn start(
        config: PartnerConfig,
        results: Vec<(DateTime<Utc>, serde_json::Value)>,
    ) -> std::io::Result<Partner> {
        let (listener, origin) = bind()?;
        let workers = config.workers;
        let state = web::Data::new(State {
            config,
            origin,
            results: ResultsHandle::new(results),
            cursors: cursor::Cursors::default(),
            faults: FaultHandle::default(),
            log: RequestLog::default(),
            tokens: Mutex::default(),
            results_requests: AtomicU64::new(0),
        });
        let serving = Serving::start(listener, workers, state.clone(), server::handle)?;
        Ok(Partner { state, serving })
    }

    /// `http://127.0.0.1:PORT/v1`: the connection's base URL.
    pub fn base_url(&self) -> String {
        format!("{}{BASE_PATH}", self.state.origin)
    }

    /// `http://127.0.0.1:PORT/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.state.origin)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        self.state.origin.clone()
    }

    pub fn config(&self) -> &PartnerConfig {
        &self.state.config
    }

    /// Every request answered so far, in the order the answers were ready.
    pub fn requests(&self) -> Vec<PartnerRequest> {
        self.state.log.all()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.state.log.clear();
    }

    /// The served results, to change between pulls.
    pub fn results(&self) -> ResultsHandle {
        self.state.results.clone()
    }

    /// The fault script. Results requests match `FaultTrigger::Path("results")` (and `Next`,
    /// `RequestNumber`, counting results requests only); token requests only
    /// `Path("token")`; `Page { offset }` is the number of selected results before the page.
    pub fn faults(&self) -> FaultHandle {
        self.state.faults.clone()
    }

    /// Every token issued so far stops working (the next results request gets a 401).
    pub fn revoke_tokens(&self) {
        self.state
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .revoke_all();
    }

    /// Stops the server without waiting for requests in flight (a delayed answer is dropped).
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}

impl std::fmt::Debug for Partner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partner")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}
