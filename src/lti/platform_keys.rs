//! A platform's JWKS as the [`KeySource`] launch validation asks (reference §5 checks 4–5,
//! §15, R4): fetched on demand, cached by `kid` for as long as the platform's `Cache-Control`
//! says within a min/max clamp, and fetched again (once, and not too often) when a token names
//! a `kid` the cache lacks.
//!
//! Why each rule:
//! - D2L rotates its keys about hourly and answers `no-cache, no-store` (reference §8): such
//!   answers are kept for the minimum TTL, never a fixed day; a rotated key appears under a new
//!   `kid`, which the refetch on a miss picks up.
//! - A flood of tokens with forged `kid`s must not make the gateway hammer the platform: the
//!   platform is asked at most once per `min_refetch_interval`, whatever the callers ask.
//! - Concurrent launches share one fetch (an async mutex is held across it), while launches
//!   whose key is cached never wait for a fetch.
//! - An expired set is not used, even when the platform cannot be reached: a key the platform
//!   withdrew must stop verifying.
//! - The JWKS URL comes from a registration an administrator (or dynamic registration) gave, so
//!   private targets are refused like a webhook's ([`TargetGuard`]), redirects are not
//!   followed, and the body is capped (D2L sets are large, but not megabytes).

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use reqwest::header::{HeaderMap, ACCEPT, CACHE_CONTROL};
use reqwest::Url;

use super::{KeyError, KeySource};
use crate::outbound::diagnostics::describe_transport_error;
use crate::outbound::response::read_capped;
use crate::outbound::target_guard::{GuardedResolver, TargetGuard};
use crate::outbound::{tls, USER_AGENT};

/// How a platform's key set is fetched and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformKeySettings {
    /// The whole exchange, body included.
    pub timeout: Duration,
    /// Opening the connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// The largest key set read; a larger one is refused.
    pub max_body_bytes: u64,
    /// The shortest a fetched set is kept: also what `no-cache`, `no-store` or no
    /// `Cache-Control` at all get.
    pub min_ttl: Duration,
    /// The longest a fetched set is kept, whatever `max-age` says.
    pub max_ttl: Duration,
    /// The platform is asked at most once per this interval, misses or not.
    pub min_refetch_interval: Duration,
    /// Let the JWKS URL be a loopback, private or link-local address (tests, closed networks).
    pub allow_private_targets: bool,
    /// Let the JWKS URL be plain `http` (tests): keys fetched in clear text can be swapped.
    pub allow_plain_http: bool,
}

impl Default for PlatformKeySettings {
    fn default() -> Self {
        PlatformKeySettings {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(10),
            allow_private_targets: false,
            allow_plain_http: false,
        }
    }
}

/// Why a [`PlatformKeys`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformKeysError {
    #[error("the JWKS URL {0} must be https")]
    NotHttps(String),
    #[error("the JWKS URL {0} has no host")]
    NoHost(String),
    #[error("the minimum key set TTL ({min:?}) is longer than the maximum ({max:?})")]
    TtlBounds { min: Duration, max: Duration },
    #[error("cannot build the JWKS HTTP client: {0}")]
    Client(String),
}

/// One platform's key set. Cheap to clone; clones share the cache and its fetch.
#[derive(Clone)]
pub struct PlatformKeys {
    inner: Arc<Inner>,
}

struct Inner {
    url: Url,
    http: reqwest::Client,
    guard: TargetGuard,
    settings: PlatformKeySettings,
    /// Read briefly, never held across an await.
    cache: std::sync::Mutex<Cache>,
    /// Held across a fetch, so that concurrent misses share it.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, DecodingKey>,
    /// When the keys stop being usable; `None` before the first successful fetch.
    expires_at: Option<Instant>,
    /// When the platform was last asked, successfully or not.
    last_attempt: Option<Instant>,
    /// Why the last attempt failed, answered again while a new one is not allowed.
    last_error: Option<String>,
}

impl std::fmt::Debug for PlatformKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformKeys")
            .field("url", &self.inner.describe_url())
            .finish_non_exhaustive()
    }
}

impl PlatformKeys {
    pub fn new(
        jwks_url: Url,
        settings: PlatformKeySettings,
    ) -> Result<PlatformKeys, PlatformKeysError> {
        match jwks_url.scheme() {
            "https" => {}
            "http" if settings.allow_plain_http => {}
            _ => return Err(PlatformKeysError::NotHttps(jwks_url.to_string())),
        }
        if !jwks_url.has_host() {
            return Err(PlatformKeysError::NoHost(jwks_url.to_string()));
        }
        if settings.min_ttl > settings.max_ttl {
            return Err(PlatformKeysError::TtlBounds {
                min: settings.min_ttl,
                max: settings.max_ttl,
            });
        }
        tls::install_crypto_provider();
        let guard = TargetGuard::new(settings.allow_private_targets);
        // Redirects are not followed: the registration names the key set's address.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(USER_AGENT);
        if !settings.allow_private_targets {
            // Host names resolve through the guard, so the address checked is the address
            // connected to; a proxy would resolve the name itself.
            builder = builder
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver(guard)));
        }
        let http = builder
            .build()
            .map_err(|e| PlatformKeysError::Client(describe_transport_error(&e)))?;
        Ok(PlatformKeys {
            inner: Arc::new(Inner {
                url: jwks_url,
                http,
                guard,
                settings,
                cache: std::sync::Mutex::new(Cache::default()),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The key set's URL.
    pub fn url(&self) -> &Url {
        &self.inner.url
    }
}

impl KeySource for PlatformKeys {
    async fn key(&self, kid: &str) -> Result<DecodingKey, KeyError> {
        self.inner.key(kid).await
    }
}

impl Inner {
    async fn key(&self, kid: &str) -> Result<DecodingKey, KeyError> {
        if let Some(key) = self.cached(kid, Instant::now()) {
            return Ok(key);
        }
        // One fetch at a time: callers that arrive meanwhile wait for it and use its keys.
        // Hits on fresh keys never wait here.
        let _fetching = self.fetching.lock().await;
        let now = Instant::now();
        if let Some(key) = self.cached(kid, now) {
            return Ok(key);
        }
        let (fresh, last_attempt, last_error) = {
            let cache = self.lock_cache();
            (
                cache.expires_at.is_some_and(|at| now < at),
                cache.last_attempt,
                cache.last_error.clone(),
            )
        };
        let may_ask = last_attempt
            .is_none_or(|at| now.duration_since(at) >= self.settings.min_refetch_interval);
        if !may_ask {
            // The kid may be in the set; the platform could not be asked to tell.
            if let Some(error) = last_error {
                return Err(KeyError::Unavailable(error));
            }
            if !fresh {
                // Only when min_ttl is shorter than the refetch interval.
                return Err(KeyError::Unavailable(format!(
                    "{}: the cached key set expired and the platform was asked less than {} ms \
                     ago",
                    self.describe_url(),
                    self.settings.min_refetch_interval.as_millis()
                )));
            }
            return Err(KeyError::UnknownKid(kid.to_string()));
        }
        let fetched = self.fetch().await;
        let mut cache = self.lock_cache();
        cache.last_attempt = Some(now);
        match fetched {
            Ok((keys, ttl)) => {
                cache.keys = keys;
                cache.expires_at = Some(Instant::now() + ttl);
                cache.last_error = None;
                cache
                    .keys
                    .get(kid)
                    .cloned()
                    .ok_or_else(|| KeyError::UnknownKid(kid.to_string()))
            }
            Err(message) => {
                // The keys already held stay usable until they expire.
                tracing::warn!(
                    jwks = %self.describe_url(),
                    error = %message,
                    "platform key set fetch failed"
                );
                cache.last_error = Some(message.clone());
                Err(KeyError::Unavailable(message))
            }
        }
    }

    /// The key of this kid, if the cached set holds it and has not expired.
    fn cached(&self, kid: &str, now: Instant) -> Option<DecodingKey> {
        let cache = self.lock_cache();
        let fresh = cache.expires_at.is_some_and(|at| now < at);
        fresh.then(|| cache.keys.get(kid).cloned()).flatten()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache is replaced whole under the lock, so a panic elsewhere cannot leave it
        // half-written.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Scheme, host, port and path: no query, which might carry a token.
    fn describe_url(&self) -> String {
        format!(
            "{}{}",
            self.url.origin().ascii_serialization(),
            self.url.path()
        )
    }

    /// The platform's usable keys and how long to keep them, or why not.
    async fn fetch(&self) -> Result<(HashMap<String, DecodingKey>, Duration), String> {
        let at = self.describe_url();
        let started = Instant::now();
        // Literal addresses never reach the resolver.
        let literal = self.url.host_str().is_none_or(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
        });
        if literal {
            self.guard
                .check(&self.url)
                .await
                .map_err(|e| format!("GET {at}: {e}"))?;
        }
        let mut response = self
            .http
            .get(self.url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(|e| format!("GET {at}: {}", describe_transport_error(&e)))?;
        let status = response.status();
        tracing::debug!(
            jwks = %at,
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "platform key set fetched"
        );
        if status.is_redirection() {
            return Err(format!(
                "GET {at}: HTTP {}: redirects are not followed; register the key set's final URL",
                status.as_u16()
            ));
        }
        if !status.is_success() {
            return Err(format!("GET {at}: HTTP {}", status.as_u16()));
        }
        let cap = self.settings.max_body_bytes;
        let too_large = || format!("GET {at}: the key set is larger than {cap} bytes");
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(too_large());
        }
        let ttl = cache_ttl(
            response.headers(),
            self.settings.min_ttl,
            self.settings.max_ttl,
        );
        let body = read_capped(&mut response, cap)
            .await
            .map_err(|e| format!("GET {at}: {}", describe_transport_error(&e)))?;
        if body.truncated {
            return Err(too_large());
        }
        let keys = parse_jwks(&body.bytes).map_err(|why| format!("GET {at}: {why}"))?;
        Ok((keys, ttl))
    }
}

/// How long an answer is kept: `max-age` (the smallest, when several) clamped to
/// `[min, max]`; `no-cache`, `no-store` or no usable directive → `min`.
fn cache_ttl(headers: &HeaderMap, min: Duration, max: Duration) -> Duration {
    let mut no_cache = false;
    let mut max_age: Option<u64> = None;
    let directives = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for directive in directives {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            no_cache = true;
        } else if name.eq_ignore_ascii_case("max-age") {
            if let Some(secs) = value.and_then(|v| v.parse::<u64>().ok()) {
                max_age = Some(max_age.map_or(secs, |m| m.min(secs)));
            }
        }
    }
    let ttl = match (no_cache, max_age) {
        (false, Some(secs)) => Duration::from_secs(secs),
        _ => min,
    };
    ttl.max(min).min(max)
}

/// The signing keys of a JWK set this tool can use: RSA, `use` absent or `sig`, `alg` absent
/// or `RS256`, with a `kid` (LTI requires one, reference §5 check 4). Other keys are skipped,
/// not fatal: sets often hold encryption or EC keys beside the ones used for launches.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_string())?;
    let entries = json
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| "the answer is not a JWK set (no \"keys\" array)".to_string())?;
    let mut keys = HashMap::new();
    for entry in entries {
        let text = |name: &str| entry.get(name).and_then(|v| v.as_str());
        let usable = text("kty") == Some("RSA")
            && entry.get("use").is_none_or(|u| u.as_str() == Some("sig"))
            && entry.get("alg").is_none_or(|a| a.as_str() == Some("RS256"));
        if !usable {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (text("kid"), text("n"), text("e")) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_rsa_components(n, e) else {
            tracing::debug!(kid, "skipping a platform key whose n or e is not base64url");
            continue;
        };
        // Kids should be unique; the first of a duplicate wins rather than a later one
        // silently replacing it.
        keys.entry(kid.to_string()).or_insert(key);
    }
    Ok(keys)
}
