//! A SIS's OneRoster 1.2 gradebook service on `127.0.0.1:0`, serving the Assessment Results
//! Profile collections, for black-box tests of the gateway's pulls of assessment results.
//!
//! It serves `GET {base}/assessmentLineItems` and `GET {base}/assessmentResults` (base
//! `/ims/oneroster/gradebook/v1p2`): the records the caller gave, as given and in the order
//! given, with `limit`/`offset` paging (default 100, an optional silent clamp), `Link` and
//! `X-Total-Count` headers, and the one filter an incremental pull sends,
//! `dateLastModified>'…'`. Paging, the imsx error bodies, the token endpoint, tokens, scripted
//! faults and the `Authorization` scheme in the log are the OneRoster
//! [`Provider`](super::provider::Provider)'s own; the records change between pulls through
//! [`GradebookData`]; every request is logged for assertions.
//!
//! ```ignore
//! let (line_items, results) = generated_assessments(1_000, 7);
//! let gradebook = Gradebook::start(GradebookConfig::new("id", "secret"), line_items, results)?;
//! gradebook.faults().on_path("assessmentResults", FaultAction::Status(503), 1);
//! // … point a connection at gradebook.base_url() and gradebook.token_url(), pull …
//! gradebook.data().push_result(json!({ /* a result */ }));
//! gradebook.stop().await;
//! ```

mod filter;
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

use super::provider::Tokens;

pub use super::provider::{
    AuthKind, ClientAuthStyle, FaultAction, FaultHandle, FaultTrigger, Oauth2Settings,
    DEFAULT_LIMIT,
};
pub use generate::generated_assessments;
pub use log::GradebookRequest;
pub use store::GradebookData;

/// Where the collections live, under the origin.
pub const BASE_PATH: &str = "/ims/oneroster/gradebook/v1p2";
/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth/token";

/// How the gradebook behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradebookConfig {
    /// Client credentials, Basic or body client authentication, token TTL, an optional
    /// required scope and `revoke_after_requests` (each token then stops working after that
    /// many collection requests: a token expiring mid-pull).
    pub oauth2: Oauth2Settings,
    /// Larger `limit`s are silently clamped to this.
    pub max_page_size: Option<usize>,
    /// Server worker threads.
    pub workers: usize,
}

impl GradebookConfig {
    /// Basic client authentication, one-hour tokens, no clamp, two workers.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        GradebookConfig {
            oauth2: Oauth2Settings::new(client_id, client_secret),
            max_page_size: None,
            workers: 2,
        }
    }
}

/// What request handlers share.
struct State {
    config: GradebookConfig,
    origin: String,
    data: GradebookData,
    faults: FaultHandle,
    log: RequestLog<GradebookRequest>,
    tokens: Mutex<Tokens>,
    data_requests: AtomicU64,
}

/// A running gradebook; stop it with [`Gradebook::stop`] (dropping it leaves the server
/// running until the runtime ends).
pub struct Gradebook {
    state: web::Data<State>,
    serving: Serving,
}

impl Gradebook {
    /// Starts serving `line_items` and `results` (OneRoster 1.2 `AssessmentLineItem` and
    /// `AssessmentResult` JSON, served as given) on a free port of 127.0.0.1. Call it within a
    /// Tokio runtime: the server runs as a task of it, its workers on threads of their own.
    pub fn start(
        config: GradebookConfig,
        line_items: Vec<serde_json::Value>,
        results: Vec<serde_json::Value>,
    ) -> std::io::Result<Gradebook> {
        let (listener, origin) = bind()?;
        let workers = config.workers;
        let state = web::Data::new(State {
            config,
            origin,
            data: GradebookData::new(line_items, results),
            faults: FaultHandle::default(),
            log: RequestLog::default(),
            tokens: Mutex::default(),
            data_requests: AtomicU64::new(0),
        });
        let serving = Serving::start(listener, workers, state.clone(), server::handle)?;
        Ok(Gradebook { state, serving })
    }

    /// `http://127.0.0.1:PORT/ims/oneroster/gradebook/v1p2`: the connection's base URL.
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

    pub fn config(&self) -> &GradebookConfig {
        &self.state.config
    }

    /// Every request answered so far, in the order the answers were ready.
    pub fn requests(&self) -> Vec<GradebookRequest> {
        self.state.log.all()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.state.log.clear();
    }

    /// The served line items and results, to change between pulls.
    pub fn data(&self) -> GradebookData {
        self.state.data.clone()
    }

    /// The fault script. Collection requests match `FaultTrigger::Path("assessmentResults")`
    /// or `Path("assessmentLineItems")`, `Page { path, offset }` by the request's `offset`
    /// (absent counts as 0), and `Next` and `RequestNumber` counting collection requests only;
    /// token requests only `Path("token")`.
    pub fn faults(&self) -> FaultHandle {
        self.state.faults.clone()
    }

    /// Every token issued so far stops working (the next collection request gets a 401).
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

impl std::fmt::Debug for Gradebook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gradebook")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}
