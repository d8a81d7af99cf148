//! A OneRoster REST provider on `127.0.0.1:0` that behaves like a real SIS, for tests and
//! benchmarks of the gateway's REST pulls.
//!
//! It serves the six rostering collections (and the `/schools`, `/terms`, `/students`,
//! `/teachers` views and singletons) of a [`Roster`] under the 1.1 or 1.2 base path, in
//! sourcedId order, with `limit`/`offset` paging, an optional silent clamp, `Link` and
//! `X-Total-Count` headers, and `status`/`dateLastModified` filters. It authenticates as
//! providers do: an OAuth 2 client-credentials token endpoint with opaque bearer tokens, or
//! OAuth 1.0a signatures checked independently of any client code (RFC 5849 §3.4), with stale
//! timestamps and replayed nonces refused. Faults (429, 5xx, delays, broken JSON, missing
//! fields, dropped connections) are scripted through [`FaultHandle`]; the roster changes
//! between pulls through [`RosterHandle`]; every request is logged for assertions.
//!
//! ```ignore
//! let provider = Provider::start(config, Roster::small_school()).await?;
//! provider.faults().on_path("users", FaultAction::TooManyRequests { retry_after_secs: 1 }, 1);
//! // … point a connection at provider.base_url() and provider.token_url(), pull …
//! provider.data().mark_tobedeleted(Collection::Users, "stu-1");
//! provider.stop().await;
//! ```

mod auth;
mod data;
mod faults;
mod filter;
mod fixtures;
mod paging;
mod render;
mod server;
mod store;
#[cfg(test)]
mod tests;

use std::net::TcpListener;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub use crate::domain::connection::{ClientAuthStyle, OneRosterVersion, SignatureMethod};
pub use auth::{
    Oauth1Error, Oauth1Settings, Oauth2Settings, TokenError, MAX_TIMESTAMP_AGE_SECS,
    MAX_TIMESTAMP_LEAD_SECS,
};
pub use data::{
    AcademicSession, Base, Class, Collection, Course, Enrollment, Org, Record, Roster, RosterError,
    Status, User,
};
pub use faults::{FaultAction, FaultHandle, FaultTrigger};
pub use filter::{Filter, FilterError};
pub use paging::{PagingError, TotalCount, DEFAULT_LIMIT};
pub use store::RosterHandle;

use render::RenderContext;

// The partner results server (`synthetic::partner`) authenticates, faults and logs as this
// provider does; the gradebook server (`synthetic::gradebook`) also pages and answers as it does.
pub(crate) use auth::{query_pairs, Tokens};
pub(crate) use faults::FaultProbe;
pub(crate) use paging::Paging;
pub(crate) use server::{auth_kind, collection_page, imsx, issue_token, status_fault};

/// How clients must authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderAuth {
    /// No authentication at all.
    None,
    Oauth2(Oauth2Settings),
    Oauth1(Oauth1Settings),
}

/// How the provider behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub version: OneRosterVersion,
    pub auth: ProviderAuth,
    /// Larger `limit`s are silently clamped to this.
    pub max_page_size: Option<usize>,
    /// Whether pages carry a `Link` header (first, prev, next, last).
    pub link_header: bool,
    pub total_count: TotalCount,
    /// Booleans as 1/0 or "TRUE", lists as comma-joined strings, `schoolYear` as an integer.
    pub type_drift: bool,
    /// 401s without a body (many providers), instead of the imsx status JSON.
    pub bodiless_401: bool,
    /// Server worker threads.
    pub workers: usize,
}

impl ProviderConfig {
    /// Exact totals, `Link` headers, no clamp, no drift, imsx 401 bodies, two workers.
    pub fn new(version: OneRosterVersion, auth: ProviderAuth) -> Self {
        ProviderConfig {
            version,
            auth,
            max_page_size: None,
            link_header: true,
            total_count: TotalCount::Exact,
            type_drift: false,
            bodiless_401: false,
            workers: 2,
        }
    }

    /// The path collections live under.
    pub fn base_path(&self) -> &'static str {
        match self.version {
            OneRosterVersion::V1_1 => "/ims/oneroster/v1p1",
            OneRosterVersion::V1_2 => "/ims/oneroster/rostering/v1p2",
        }
    }
}

/// Which credentials a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// No `Authorization` header (token requests with credentials in the body too).
    None,
    /// `Authorization: Basic` (token requests).
    Basic,
    Bearer,
    /// An `Authorization: OAuth` header, or `oauth_signature` in the query string.
    Oauth1,
    /// Another `Authorization` scheme.
    Other,
}

/// One request the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    pub method: String,
    /// As received, e.g. `/ims/oneroster/v1p1/users`.
    pub path: String,
    /// The raw query string.
    pub query: String,
    pub status: u16,
    pub auth: AuthKind,
    /// The scripted fault this request consumed.
    pub fault: Option<FaultAction>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("rendering the roster failed: {0}")]
    Render(String),
}

/// What request handlers share.
pub(crate) struct State {
    config: ProviderConfig,
    origin: String,
    data: RosterHandle,
    faults: FaultHandle,
    log: Mutex<Vec<RequestLog>>,
    tokens: Mutex<auth::Tokens>,
    nonces: Mutex<auth::Nonces>,
    data_requests: AtomicU64,
}

/// A running provider; stop it with [`Provider::stop`] (dropping it leaves the server running
/// until the runtime ends).
pub struct Provider {
    state: web::Data<State>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Provider {
    /// Renders the roster and starts serving it on a free port of 127.0.0.1; call it within a
    /// Tokio runtime (the server runs as a task of it, its workers on threads of their own).
    pub async fn start(config: ProviderConfig, data: Roster) -> Result<Provider, ProviderError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(ProviderError::Bind)?;
        let port = listener.local_addr().map_err(ProviderError::Bind)?.port();
        let origin = format!("http://127.0.0.1:{port}");
        let render = RenderContext {
            version: config.version,
            base_url: format!("{origin}{}", config.base_path()),
            type_drift: config.type_drift,
        };
        // Rendering a large district takes a while: off the async threads.
        let data = tokio::task::spawn_blocking(move || RosterHandle::new(render, data))
            .await
            .map_err(|e| ProviderError::Render(e.to_string()))?;
        let workers = config.workers.max(1);
        let state = web::Data::new(State {
            config,
            origin,
            data,
            faults: FaultHandle::default(),
            log: Mutex::default(),
            tokens: Mutex::default(),
            nonces: Mutex::default(),
            data_requests: AtomicU64::new(0),
        });
        let shared = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .default_service(web::to(server::handle))
        })
        .workers(workers)
        .disable_signals()
        .listen(listener)
        .map_err(ProviderError::Bind)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(Provider {
            state,
            handle,
            task,
        })
    }

    /// `http://127.0.0.1:PORT/ims/oneroster/v1p1` or `…/ims/oneroster/rostering/v1p2`.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.state.origin, self.state.config.base_path())
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.state.origin)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        self.state.origin.clone()
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.state.config
    }

    /// Every request answered so far, in the order the answers were ready.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The served roster, to change between pulls.
    pub fn data(&self) -> RosterHandle {
        self.state.data.clone()
    }

    /// The fault script.
    pub fn faults(&self) -> FaultHandle {
        self.state.faults.clone()
    }

    /// Every OAuth 2 token issued so far stops working (the next request gets a 401).
    pub fn revoke_tokens(&self) {
        self.state
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .revoke_all();
    }

    /// Stops the server without waiting for requests in flight (a delayed answer is dropped).
    pub async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.task.await;
    }
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}
