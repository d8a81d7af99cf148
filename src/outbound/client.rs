//! The client of one source connection: GETs with the connection's authentication, its request
//! rate and in-flight bound, a timeout, a body cap, and retries by the `[outbound]` policy.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::auth::oauth1::{random_nonce, unix_now, Oauth1Signer};
use crate::auth::source_tokens::{BearerToken, SourceTokens, TokenEndpoint};
use crate::config::{OutboundSettings, Secret};
use crate::domain::connection::{AuthConfig, ConnectionConfig, ConnectionSecrets};
use crate::outbound::diagnostics::{describe_transport_error, error_excerpt};
use crate::outbound::response::{next_link, pages_by_link, read_capped, total_count};
use crate::outbound::retry::{parse_retry_after, RetryPolicy, Stop};
use crate::outbound::{tls, Fetch, FetchError, Fetched, USER_AGENT};

/// Bytes of an error body read for its excerpt.
const ERROR_BODY_BYTES: u64 = 64 << 10;

/// A source connection's HTTP client. Cheap to clone; clones share the token cache, the rate
/// limit and the in-flight bound, so several pages can be fetched at once.
#[derive(Clone)]
pub struct SourceClient {
    inner: Arc<Inner>,
}

struct Inner {
    connection: String,
    /// Scheme, host and port of the base URL: the only place credentials are sent.
    origin: Origin,
    http: reqwest::Client,
    auth: SourceAuth,
    secret: Secret,
    /// Sent on every request when the source asks for one; never quoted in a message.
    api_key: Option<Secret>,
    rate: DefaultDirectRateLimiter,
    in_flight: tokio::sync::Semaphore,
    retry: RetryPolicy,
    timeout_secs: u64,
    max_response_bytes: u64,
}

type Origin = (String, String, Option<u16>);

fn origin_of(url: &Url) -> Origin {
    (
        url.scheme().to_string(),
        url.host_str().unwrap_or_default().to_string(),
        url.port_or_known_default(),
    )
}

enum SourceAuth {
    Oauth2(Box<SourceTokens>),
    Oauth1(Oauth1Signer),
}

/// How one attempt ended, when it did not succeed.
enum Failure {
    /// Worth another try (5xx, 429, no answer, no connection).
    Retriable {
        error: FetchError,
        retry_after: Option<Duration>,
    },
    /// The source refused the credentials (401).
    Unauthorized {
        error: FetchError,
        token: Option<BearerToken>,
    },
    Fatal(FetchError),
}

impl SourceClient {
    pub fn new(
        config: &ConnectionConfig,
        secrets: ConnectionSecrets,
        settings: &OutboundSettings,
    ) -> Result<SourceClient, FetchError> {
        let ConnectionSecrets { secret, api_key } = secrets;
        tls::install_crypto_provider();
        let limits = &config.limits;
        let name = &config.name;
        let base = Url::parse(&config.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                FetchError::Config(format!(
                    "connection {name}: base URL {:?} is not an http(s) URL",
                    config.base_url
                ))
            })?;
        let rate = NonZeroU32::new(limits.requests_per_second).ok_or_else(|| {
            FetchError::Config(format!(
                "connection {name}: requests_per_second must be at least 1"
            ))
        })?;
        if limits.max_in_flight == 0 {
            return Err(FetchError::Config(format!(
                "connection {name}: max_in_flight must be at least 1"
            )));
        }
        if limits.timeout_secs == 0 {
            return Err(FetchError::Config(format!(
                "connection {name}: timeout_secs must be at least 1"
            )));
        }
        let timeout = Duration::from_secs(limits.timeout_secs.into());
        let connect_timeout = Duration::from_secs(settings.connect_timeout_secs.max(1));
        let headers = api_key_headers(config, api_key.as_ref())?;
        // Redirects are not followed: a signed or bearer request must not wander to another
        // host, and a moved API is better fixed in the connection's base URL.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .user_agent(USER_AGENT)
            .default_headers(headers.clone())
            .build()
            .map_err(|e| {
                FetchError::Config(format!(
                    "connection {name}: cannot build the HTTP client: {}",
                    describe_transport_error(&e)
                ))
            })?;
        let auth = match &config.auth {
            AuthConfig::Oauth2 {
                token_url,
                client_id,
                client_auth,
                scopes,
                api_key_header: _,
            } => SourceAuth::Oauth2(Box::new(SourceTokens::new(
                &TokenEndpoint {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_auth: *client_auth,
                    scopes: scopes.clone(),
                },
                secret.clone(),
                headers,
                (timeout, connect_timeout),
            )?)),
            AuthConfig::Oauth1 {
                consumer_key,
                signature_method,
            } => SourceAuth::Oauth1(Oauth1Signer::new(
                consumer_key,
                secret.clone(),
                *signature_method,
            )),
        };
        Ok(SourceClient {
            inner: Arc::new(Inner {
                connection: name.clone(),
                origin: origin_of(&base),
                http,
                auth,
                secret,
                api_key,
                rate: RateLimiter::direct(Quota::per_second(rate)),
                in_flight: tokio::sync::Semaphore::new(limits.max_in_flight as usize),
                retry: RetryPolicy::from_settings(settings),
                timeout_secs: limits.timeout_secs.into(),
                max_response_bytes: settings.max_response_bytes,
            }),
        })
    }
}

/// The API key header of a connection that has one, marked sensitive (left out of debug
/// output); a connection with a key and no header, or the other way round, is a mistake.
fn api_key_headers(
    config: &ConnectionConfig,
    api_key: Option<&Secret>,
) -> Result<HeaderMap, FetchError> {
    let name = &config.name;
    let header = match &config.auth {
        AuthConfig::Oauth2 { api_key_header, .. } => api_key_header.as_deref(),
        AuthConfig::Oauth1 { .. } => None,
    };
    let mut headers = HeaderMap::new();
    match (header, api_key) {
        (None, None) => {}
        (Some(header), Some(key)) => {
            let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                FetchError::Config(format!(
                    "connection {name}: {header:?} is not a header name"
                ))
            })?;
            let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                FetchError::Config(format!(
                    "connection {name}: the API key cannot be sent in an HTTP header"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        (Some(_), None) => {
            return Err(FetchError::Config(format!(
                "connection {name}: it names an API key header but has no API key"
            )))
        }
        (None, Some(_)) => {
            return Err(FetchError::Config(format!(
                "connection {name}: it has an API key but no header to send it in"
            )))
        }
    }
    Ok(headers)
}

impl Fetch for SourceClient {
    fn get(&self, url: Url) -> impl Future<Output = Result<Fetched, FetchError>> + Send {
        let inner = Arc::clone(&self.inner);
        async move { inner.get(url).await }
    }
}

impl Inner {
    async fn get(&self, url: Url) -> Result<Fetched, FetchError> {
        let path = url.path().to_string();
        if origin_of(&url) != self.origin {
            return Err(FetchError::Config(format!(
                "GET {path}: {} is not the host of connection {} ({}); its credentials go \
                 nowhere else",
                url.host_str().unwrap_or_default(),
                self.connection,
                self.origin.1
            )));
        }
        let mut retries = self.retry.start();
        let mut renewed_token = false;
        loop {
            let attempt = retries.begin_attempt();
            let (error, retry_after) = match self.attempt(&url, &path, attempt).await {
                Ok(fetched) => return Ok(fetched),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Unauthorized { error, token }) => {
                    // One new token per request: a source that refuses a fresh one means it.
                    let (SourceAuth::Oauth2(tokens), Some(token), false) =
                        (&self.auth, token, renewed_token)
                    else {
                        return Err(explain_unauthorized(error, &self.auth));
                    };
                    tracing::debug!(
                        connection = %self.connection,
                        path,
                        "the source refused the token; getting a new one"
                    );
                    tokens.discard(token).await;
                    renewed_token = true;
                    continue;
                }
                Err(Failure::Retriable { error, retry_after }) => (error, retry_after),
            };
            match retries.pause_before_next(retry_after) {
                Ok(pause) => {
                    tracing::warn!(
                        connection = %self.connection,
                        path,
                        attempt,
                        retry_in_ms = pause.as_millis() as u64,
                        error = %short(&error),
                        "outbound request failed; retrying"
                    );
                    tokio::time::sleep(pause).await;
                }
                Err(Stop::Exhausted) if attempt == 1 => return Err(error),
                Err(Stop::Exhausted) => {
                    return Err(FetchError::RetriesExhausted {
                        path,
                        attempts: attempt,
                        last: short(&error),
                    })
                }
                Err(Stop::RetryAfterTooLong { asked, max }) => {
                    let status = match error {
                        FetchError::Status { status, .. } => status,
                        _ => 429,
                    };
                    return Err(FetchError::Status {
                        path,
                        status,
                        detail: format!(
                            ": the source asks to wait {} s before retrying, more than the {} s \
                             allowed (outbound.max_retry_after_secs)",
                            asked.as_secs(),
                            max.as_secs()
                        ),
                    });
                }
            }
        }
    }

    /// One try: wait for a slot and the rate limit, authenticate, send, read.
    async fn attempt(&self, url: &Url, path: &str, attempt: u32) -> Result<Fetched, Failure> {
        let _slot = self.in_flight.acquire().await.map_err(|_| {
            Failure::Fatal(FetchError::Config(format!(
                "connection {}: the client is shut down",
                self.connection
            )))
        })?;
        self.rate.until_ready().await;

        let (authorization, token) = match &self.auth {
            SourceAuth::Oauth2(tokens) => match tokens.token().await {
                Ok(token) => (token.authorization(), Some(token)),
                Err(e) => {
                    let error = FetchError::Token {
                        token_url: tokens.token_url().to_string(),
                        message: e.message,
                    };
                    return Err(if e.transient {
                        Failure::Retriable {
                            error,
                            retry_after: None,
                        }
                    } else {
                        Failure::Fatal(error)
                    });
                }
            },
            SourceAuth::Oauth1(signer) => {
                (signer.authorization(url, unix_now(), &random_nonce()), None)
            }
        };
        let mut authorization = HeaderValue::from_str(&authorization).map_err(|_| {
            Failure::Fatal(FetchError::Config(format!(
                "connection {}: the credentials cannot be sent in an HTTP header",
                self.connection
            )))
        })?;
        authorization.set_sensitive(true);

        let started = Instant::now();
        let sent = self
            .http
            .get(url.clone())
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json")
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.log(path, None, attempt, started);
                return Err(self.transport_failure(path, &e));
            }
        };
        let status = response.status();

        if status.is_success() {
            let next = next_link(response.headers(), url);
            let pages_by_link = pages_by_link(response.headers());
            let total_count = total_count(response.headers());
            let too_large = FetchError::TooLarge {
                path: path.to_string(),
                max_bytes: self.max_response_bytes,
            };
            if response
                .content_length()
                .is_some_and(|n| n > self.max_response_bytes)
            {
                self.log(path, Some(status), attempt, started);
                return Err(Failure::Fatal(too_large));
            }
            let body = read_capped(&mut response, self.max_response_bytes).await;
            self.log(path, Some(status), attempt, started);
            let body = body.map_err(|e| self.transport_failure(path, &e))?;
            if body.truncated {
                return Err(Failure::Fatal(too_large));
            }
            return Ok(Fetched {
                url: url.clone(),
                status: status.as_u16(),
                next,
                pages_by_link,
                total_count,
                body: body.bytes,
            });
        }

        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let location = response.headers().get(reqwest::header::LOCATION).cloned();
        // The excerpt is best effort: a body that fails to arrive leaves it empty.
        let body = read_capped(&mut response, ERROR_BODY_BYTES)
            .await
            .map(|b| b.bytes)
            .unwrap_or_default();
        self.log(path, Some(status), attempt, started);
        let mut secrets = vec![self.secret.expose()];
        secrets.extend(self.api_key.as_ref().map(Secret::expose));
        if let Some(token) = &token {
            secrets.push(token.secret().expose());
        }
        let mut detail = error_excerpt(&body, &secrets);
        if status.is_redirection() {
            let to = location
                .as_ref()
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .map(|u| format!(" to {}{}", u.host_str().unwrap_or_default(), u.path()))
                .unwrap_or_default();
            detail = format!(": redirected{to}; redirects are not followed, set the connection's base URL to the final address");
        }
        let error = FetchError::Status {
            path: path.to_string(),
            status: status.as_u16(),
            detail,
        };
        Err(match status {
            StatusCode::UNAUTHORIZED => Failure::Unauthorized { error, token },
            StatusCode::TOO_MANY_REQUESTS => Failure::Retriable { error, retry_after },
            StatusCode::REQUEST_TIMEOUT => Failure::Retriable {
                error,
                retry_after: None,
            },
            // 503 may carry a Retry-After too.
            s if s.is_server_error() => Failure::Retriable { error, retry_after },
            _ => Failure::Fatal(error),
        })
    }

    fn transport_failure(&self, path: &str, error: &reqwest::Error) -> Failure {
        let error = if error.is_timeout() {
            FetchError::Timeout {
                path: path.to_string(),
                secs: self.timeout_secs,
            }
        } else {
            FetchError::Connect {
                path: path.to_string(),
                message: describe_transport_error(error),
            }
        };
        Failure::Retriable {
            error,
            retry_after: None,
        }
    }

    fn log(&self, path: &str, status: Option<StatusCode>, attempt: u32, started: Instant) {
        tracing::debug!(
            connection = %self.connection,
            method = "GET",
            path,
            status = status.map(|s| s.as_u16()),
            attempt,
            ms = started.elapsed().as_millis() as u64,
            "outbound request"
        );
    }
}

/// A 401 that will not be retried, with what to check.
fn explain_unauthorized(error: FetchError, auth: &SourceAuth) -> FetchError {
    let FetchError::Status {
        path,
        status,
        detail,
    } = error
    else {
        return error;
    };
    let hint = match auth {
        SourceAuth::Oauth2(_) => {
            "; the source refused a newly issued token too: check the client's scopes and \
             rights at the source"
        }
        SourceAuth::Oauth1(_) => {
            "; the source refused the signature: check the consumer key and secret, the \
             signature method (HMAC-SHA256 or HMAC-SHA1) and this host's clock"
        }
    };
    FetchError::Status {
        path,
        status,
        detail: format!("{detail}{hint}"),
    }
}

/// What went wrong, without the `GET path` prefix (for `RetriesExhausted::last` and logs).
fn short(error: &FetchError) -> String {
    match error {
        FetchError::Status { status, detail, .. } => format!("HTTP {status}{detail}"),
        FetchError::Timeout { secs, .. } => format!("no answer within {secs} s"),
        FetchError::Connect { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
