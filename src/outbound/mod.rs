//! Outbound HTTP: the one client through which the gateway calls other systems (SIS APIs, token
//! endpoints), with timeouts, bounded retries with backoff and jitter on 429, 5xx and connection
//! errors (honouring `Retry-After`), a per-connection request rate and a bound on requests in
//! flight, and the connection's authentication (OAuth 2 bearer tokens, OAuth 1.0a signatures).

pub mod client;
pub mod diagnostics;
pub mod response;
pub mod retry;
pub mod target_guard;
#[cfg(test)]
mod tests;
pub mod tls;

use std::future::Future;

use reqwest::Url;

pub use client::SourceClient;

/// How the gateway names itself to the systems it calls.
pub const USER_AGENT: &str = concat!("rostergate/", env!("CARGO_PKG_VERSION"));

/// A successful (2xx) answer to a GET.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: Url,
    pub status: u16,
    /// The target of a `Link: <…>; rel="next"` header, resolved against `url`.
    pub next: Option<Url>,
    /// The answer has paging `Link` headers (`first`, `last`, `prev` or `next`): without a
    /// `next` among them, it is the last page.
    pub pages_by_link: bool,
    /// `X-Total-Count`, when sent: a hint only, never trusted to end paging.
    pub total_count: Option<u64>,
    pub body: Vec<u8>,
}

/// Why a GET failed, after whatever retries it was allowed. Messages never carry secrets,
/// tokens or response bodies beyond a short, cleaned excerpt.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {path}: HTTP {status}{detail}")]
    Status {
        path: String,
        status: u16,
        /// `: ` and a short excerpt of the body (OneRoster's imsx_description when present).
        detail: String,
    },
    #[error("GET {path}: no answer within {secs} s")]
    Timeout { path: String, secs: u64 },
    #[error("GET {path}: {message}")]
    Connect { path: String, message: String },
    #[error("GET {path}: gave up after {attempts} attempts; last: {last}")]
    RetriesExhausted {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error("GET {path}: the response is larger than {max_bytes} bytes")]
    TooLarge { path: String, max_bytes: u64 },
    #[error("token request to {token_url}: {message}")]
    Token { token_url: String, message: String },
    #[error("{0}")]
    Config(String),
}

/// Something that GETs URLs: the real client, or a fake in tests.
pub trait Fetch: Send + Sync {
    fn get(&self, url: Url) -> impl Future<Output = Result<Fetched, FetchError>> + Send;
}
