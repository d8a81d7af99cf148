//! Bearer tokens the gateway gets from a source's token endpoint (OAuth 2 client credentials,
//! oneroster.md §8.2–8.3), cached until shortly before they expire and renewed when the source
//! refuses one.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AccessToken, AsyncHttpClient, AuthType, Client, ClientId, ClientSecret, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, RefreshToken, RequestTokenError, Scope,
    StandardRevocableToken, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::Secret;
use crate::domain::connection::ClientAuthStyle;
use crate::outbound::diagnostics::{describe_transport_error, error_excerpt};
use crate::outbound::FetchError;

/// A token is renewed this long before its `expires_in` runs out, or a tenth of its lifetime
/// when that is shorter.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// An oauth2 client that only asks a token endpoint (client credentials).
pub(crate) type TokenClient = Client<
    BasicErrorResponse,
    SourceTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Where and how a connection asks for tokens.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    pub token_url: String,
    pub client_id: String,
    pub client_auth: ClientAuthStyle,
    pub scopes: Vec<String>,
}

/// A bearer token, and which issue of the cache it came from.
#[derive(Clone)]
pub struct BearerToken {
    value: Secret,
    issue: u64,
}

impl BearerToken {
    /// `Bearer <token>`, for the `Authorization` header.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.value.expose())
    }

    pub fn secret(&self) -> &Secret {
        &self.value
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BearerToken(issue {})", self.issue)
    }
}

/// A token could not be had. `transient` failures (no answer, 5xx, 429) may be retried.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    pub message: String,
    pub transient: bool,
}

/// One connection's token source; shared by all its requests.
pub struct SourceTokens {
    client: TokenClient,
    scopes: Vec<Scope>,
    http: TokenHttp,
    /// For messages: the token URL without its query.
    display_url: String,
    secret: Secret,
    /// The sensitive header values sent (an API key): scrubbed from messages as the secret is.
    sensitive_headers: Vec<Secret>,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    current: Option<(BearerToken, Option<Instant>)>,
    issued: u64,
}

impl SourceTokens {
    /// `timeout` bounds each token request; `connect_timeout` its connection. `headers` go on
    /// every token request (a partner's API key: NWEA's token endpoint wants it too).
    pub fn new(
        endpoint: &TokenEndpoint,
        secret: Secret,
        headers: reqwest::header::HeaderMap,
        (timeout, connect_timeout): (Duration, Duration),
    ) -> Result<SourceTokens, FetchError> {
        let url = TokenUrl::new(endpoint.token_url.clone()).map_err(|e| {
            FetchError::Config(format!(
                "token URL {:?} is not a URL: {e}",
                endpoint.token_url
            ))
        })?;
        let display_url = {
            let mut u = url.url().clone();
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_password(None);
            u.to_string()
        };
        let auth_type = match endpoint.client_auth {
            ClientAuthStyle::Basic => AuthType::BasicAuth,
            ClientAuthStyle::Body => AuthType::RequestBody,
        };
        let client: TokenClient = Client::new(ClientId::new(endpoint.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret.expose().to_string()))
            .set_auth_type(auth_type)
            .set_token_uri(url);
        crate::outbound::tls::install_crypto_provider();
        let sensitive_headers = headers
            .values()
            .filter(|v| v.is_sensitive())
            .filter_map(|v| v.to_str().ok())
            .map(Secret::new)
            .collect();
        // Never follow redirects from a token endpoint: the client secret would travel with
        // the request to wherever it points (oauth2's upgrade guide).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .user_agent(crate::outbound::USER_AGENT)
            .default_headers(headers)
            .build()
            .map_err(|e| {
                FetchError::Config(format!(
                    "cannot build the token client: {}",
                    describe_transport_error(&e)
                ))
            })?;
        Ok(SourceTokens {
            client,
            scopes: endpoint.scopes.iter().cloned().map(Scope::new).collect(),
            http: TokenHttp(http),
            display_url,
            secret,
            sensitive_headers,
            cache: tokio::sync::Mutex::new(Cache::default()),
        })
    }

    /// The token URL as shown in messages (no query).
    pub fn token_url(&self) -> &str {
        &self.display_url
    }

    /// The cached token while it is fresh, else a new one. Concurrent callers wait for one
    /// token request rather than each making their own.
    pub async fn token(&self) -> Result<BearerToken, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some((token, fresh_until)) = &cache.current {
            if fresh_until.is_none_or(|until| Instant::now() < until) {
                return Ok(token.clone());
            }
        }
        let requested = Instant::now();
        let response = self.request().await?;
        cache.issued += 1;
        let token = BearerToken {
            value: Secret::new(response.access_token().secret().clone()),
            issue: cache.issued,
        };
        let fresh_until = fresh_until(requested, response.expires_in());
        tracing::debug!(
            token_url = %self.display_url,
            expires_in_secs = response.expires_in().map(|d| d.as_secs()),
            "got a source token"
        );
        cache.current = Some((token.clone(), fresh_until));
        Ok(token)
    }

    /// Forgets `token` after the source refused it, unless a newer one replaced it already.
    pub async fn discard(&self, token: BearerToken) {
        let issue = token.issue;
        let mut cache = self.cache.lock().await;
        if matches!(&cache.current, Some((current, _)) if current.issue == issue) {
            cache.current = None;
        }
    }

    async fn request(&self) -> Result<SourceTokenResponse, TokenError> {
        let result = self
            .client
            .exchange_client_credentials()
            .add_scopes(self.scopes.iter().cloned())
            .request_async(&self.http)
            .await;
        result.map_err(|e| {
            let (message, transient) = describe_token_failure(e);
            let message = self
                .sensitive_headers
                .iter()
                .fold(scrub(&message, self.secret.expose()), |m, value| {
                    scrub(&m, value.expose())
                });
            TokenError { message, transient }
        })
    }
}

/// What a failed token request says, without quoting a token, and whether it may be retried.
pub(crate) fn describe_token_failure(
    e: RequestTokenError<Transport, BasicErrorResponse>,
) -> (String, bool) {
    match e {
        RequestTokenError::ServerResponse(error) => {
            let mut message = error.error().as_ref().to_string();
            if let Some(description) = error.error_description() {
                message.push_str(": ");
                message.push_str(description);
            }
            (message, false)
        }
        RequestTokenError::Request(transport) => (transport.to_string(), transport.is_transient()),
        RequestTokenError::Parse(error, _) => {
            // The body may hold a token under another name: it is never quoted, nor are the
            // values serde would quote.
            let inner = error.inner();
            let missing = inner.to_string().starts_with("missing field");
            let what = match inner.classify() {
                serde_json::error::Category::Data if !missing => {
                    format!("unexpected value at {}", error.path())
                }
                _ => inner.to_string(),
            };
            (format!("the answer is not a token response: {what}"), false)
        }
        RequestTokenError::Other(message) => (message, false),
    }
}

/// A token endpoint's answer, read leniently: SIS token endpoints differ on `token_type`
/// (absent, any case) and `expires_in` (a number, sometimes a numeric string).
#[derive(Debug, Deserialize, Serialize)]
pub struct SourceTokenResponse {
    access_token: AccessToken,
    #[serde(default = "bearer", deserialize_with = "lenient_token_type")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
}

impl TokenResponse for SourceTokenResponse {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        None
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

fn lenient_token_type<'de, D: Deserializer<'de>>(d: D) -> Result<BasicTokenType, D::Error> {
    Ok(match Option::<String>::deserialize(d)? {
        None => BasicTokenType::Bearer,
        Some(t) if t.eq_ignore_ascii_case("bearer") => BasicTokenType::Bearer,
        Some(t) if t.eq_ignore_ascii_case("mac") => BasicTokenType::Mac,
        Some(t) => BasicTokenType::Extension(t),
    })
}

/// Seconds as a number or a numeric string; anything else counts as not given.
fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// When a token received at `received` stops being used: `expires_in` minus the smaller of
/// [`REFRESH_MARGIN`] and a tenth of it; never, without an `expires_in`, until refused.
pub fn fresh_until(received: Instant, expires_in: Option<Duration>) -> Option<Instant> {
    let lifetime = expires_in?;
    let margin = REFRESH_MARGIN.min(lifetime / 10);
    Some(received + lifetime.saturating_sub(margin))
}

fn scrub(message: &str, secret: &str) -> String {
    if secret.len() >= 4 {
        message.replace(secret, "[redacted]")
    } else {
        message.to_string()
    }
}

fn describe_oauth_http_error(error: &oauth2::HttpClientError<reqwest::Error>) -> String {
    match error {
        oauth2::HttpClientError::Reqwest(e) => describe_transport_error(e),
        other => other.to_string(),
    }
}

/// reqwest, with 5xx and 429 answers from the token endpoint turned into transport errors:
/// they are worth retrying, and oauth2 would report them as unreadable error bodies.
pub(crate) struct TokenHttp(pub(crate) reqwest::Client);

impl<'c> AsyncHttpClient<'c> for TokenHttp {
    type Error = Transport;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Transport>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self
                .0
                .call(request)
                .await
                .map_err(|e| Transport::Send(describe_oauth_http_error(&e)))?;
            let status = response.status();
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(Transport::Unavailable(
                    status.as_u16(),
                    error_excerpt(response.body(), &[]),
                ));
            }
            // Error answers that are not OAuth error objects (an HTML 404, a proxy's 403):
            // oauth2 would only say they are not JSON.
            let json = response
                .headers()
                .get(oauth2::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
            if status.as_u16() != 200 && !json {
                return Err(Transport::Rejected(
                    status.as_u16(),
                    error_excerpt(response.body(), &[]),
                ));
            }
            Ok(response)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Transport {
    #[error("{0}")]
    Send(String),
    #[error("HTTP {0}{1}")]
    Unavailable(u16, String),
    #[error("HTTP {0}{1}")]
    Rejected(u16, String),
}

impl Transport {
    fn is_transient(&self) -> bool {
        !matches!(self, Transport::Rejected(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_a_margin_before_they_expire() {
        let now = Instant::now();
        let cases = [
            (Some(3600), Some(3540)),   // 60 s margin
            (Some(21600), Some(21540)), // Aeries' six hours
            (Some(300), Some(270)),     // a tenth is shorter than a minute
            (Some(10), Some(9)),
            (Some(0), Some(0)),
            (None, None),
        ];
        for (expires_in, expected) in cases {
            assert_eq!(
                fresh_until(now, expires_in.map(Duration::from_secs)),
                expected.map(|s| now + Duration::from_secs(s)),
                "{expires_in:?}"
            );
        }
    }

    #[test]
    fn token_responses_are_read_leniently() {
        let cases = [
            (
                r#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#,
                Some(3600),
            ),
            (
                r#"{"access_token":"a","token_type":"bearer","expires_in":"21600"}"#,
                Some(21600),
            ),
            (r#"{"access_token":"a","expires_in":3600.0}"#, Some(3600)),
            (
                r#"{"access_token":"a","token_type":"BEARER","expires_in":null}"#,
                None,
            ),
            (r#"{"access_token":"a","expires_in":"soon"}"#, None),
            (
                r#"{"access_token":"a","scope":"x y","refresh_token":"r"}"#,
                None,
            ),
        ];
        for (json, expires_in) in cases {
            let response: SourceTokenResponse = serde_json::from_str(json).unwrap();
            assert_eq!(response.access_token().secret(), "a");
            assert_eq!(response.token_type(), &BasicTokenType::Bearer, "{json}");
            assert_eq!(
                response.expires_in(),
                expires_in.map(Duration::from_secs),
                "{json}"
            );
        }
        assert!(serde_json::from_str::<SourceTokenResponse>(r#"{"token_type":"Bearer"}"#).is_err());
    }

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        assert_eq!(scrub("bad s3cret!", "s3cret"), "bad [redacted]!");
        assert_eq!(scrub("abc", "ab"), "abc");
    }
}
