//! Calls to a platform's services (token endpoint, NRPS, AGS): no redirect followed (a bearer
//! token would travel with it), bounded in time and size, and behind the SSRF guard unless
//! `lti.allow_insecure_platforms` lets a test or closed network use plain http and private
//! addresses.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::outbound::diagnostics::{describe_transport_error, error_excerpt};
use crate::outbound::response::{next_link, read_capped};
use crate::outbound::target_guard::{GuardedResolver, TargetGuard};
use crate::outbound::{tls, USER_AGENT};

/// The largest answer read from a platform service; a membership page of a few thousand
/// members is well under it.
pub const MAX_BODY_BYTES: u64 = 8 << 20;

/// Why a platform service call failed. `transient` ones (no answer, 5xx, 429) may be retried
/// later; the others need a person (a refused token, a trimmed scope, a bad answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{url}: the URL is not allowed: {reason}")]
    Url { url: String, reason: String },
    #[error("{method} {url}: {reason}")]
    Unreachable {
        method: String,
        url: String,
        reason: String,
    },
    #[error("{method} {url}: HTTP {status}{excerpt}")]
    Status {
        method: String,
        url: String,
        status: u16,
        excerpt: String,
    },
    #[error("{method} {url}: the answer is larger than {MAX_BODY_BYTES} bytes")]
    Oversized { method: String, url: String },
    #[error("{method} {url}: the answer is not valid JSON: {reason}")]
    NotJson {
        method: String,
        url: String,
        reason: String,
    },
}

impl ServiceError {
    pub fn transient(&self) -> bool {
        match self {
            ServiceError::Unreachable { .. } => true,
            ServiceError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The platform refused the bearer token (it expired early, or was revoked).
    pub fn unauthorized(&self) -> bool {
        matches!(self, ServiceError::Status { status: 401, .. })
    }
}

/// A JSON answer, its headers and the URL it came from (for the next page's link).
#[derive(Debug)]
pub struct JsonAnswer {
    pub status: StatusCode,
    pub body: Value,
    pub next: Option<Url>,
}

/// One HTTP client for every platform service call of a process.
#[derive(Clone)]
pub struct PlatformHttp {
    http: reqwest::Client,
    insecure: bool,
}

impl PlatformHttp {
    pub fn new(insecure: bool) -> Result<PlatformHttp, String> {
        tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(USER_AGENT);
        if !insecure {
            builder = builder
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver(TargetGuard::new(false))));
        }
        let http = builder.build().map_err(|e| describe_transport_error(&e))?;
        Ok(PlatformHttp { http, insecure })
    }

    /// The client, for oauth2's token exchange.
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// A service URL the platform gave: https (plain http only when insecure platforms are
    /// allowed), with a host, and no credentials in it.
    pub fn check_url(&self, raw: &str) -> Result<Url, ServiceError> {
        let refuse = |reason: &str| ServiceError::Url {
            url: shown(raw),
            reason: reason.to_string(),
        };
        let url = Url::parse(raw).map_err(|e| refuse(&e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.insecure => {}
            _ => return Err(refuse("a platform service must be https")),
        }
        if !url.has_host() {
            return Err(refuse("it has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("it carries credentials"));
        }
        Ok(url)
    }

    /// Sends a request with a bearer token and reads a JSON answer (any 2xx; `204` and an
    /// empty body read as `null`).
    pub async fn json(
        &self,
        method: Method,
        url: &Url,
        bearer: &str,
        accept: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<JsonAnswer, ServiceError> {
        let method_name = method.to_string();
        let mut request = self
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, format!("Bearer {bearer}"))
            .header(ACCEPT, accept);
        if let Some((content_type, json)) = body {
            request = request
                .header(CONTENT_TYPE, content_type)
                .body(json.to_string());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| ServiceError::Unreachable {
                method: method_name.clone(),
                url: shown(url.as_str()),
                reason: describe_transport_error(&e),
            })?;
        let status = response.status();
        let next = next_link(response.headers(), url);
        let read = read_capped(&mut response, MAX_BODY_BYTES)
            .await
            .map_err(|e| ServiceError::Unreachable {
                method: method_name.clone(),
                url: shown(url.as_str()),
                reason: describe_transport_error(&e),
            })?;
        if !status.is_success() {
            return Err(ServiceError::Status {
                method: method_name,
                url: shown(url.as_str()),
                status: status.as_u16(),
                excerpt: error_excerpt(&read.bytes, &[bearer]),
            });
        }
        if read.truncated {
            return Err(ServiceError::Oversized {
                method: method_name,
                url: shown(url.as_str()),
            });
        }
        let body = if read.bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            // serde_json's recursion limit refuses hostile nesting before anything recurses.
            serde_json::from_slice(&read.bytes).map_err(|e| ServiceError::NotJson {
                method: method_name,
                url: shown(url.as_str()),
                reason: e.to_string(),
            })?
        };
        Ok(JsonAnswer { status, body, next })
    }
}

/// A URL as messages show it: without its query, which may carry a platform's own tokens.
pub fn shown(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.to_string()
        }
        Err(_) => raw.chars().take(200).collect(),
    }
}
