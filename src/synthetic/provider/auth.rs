//! How the provider authenticates requests, as real providers do: an OAuth 2 client-credentials
//! token endpoint issuing opaque bearer tokens, or OAuth 1.0a two-legged signatures checked per
//! RFC 5849 §3.4 (HMAC-SHA256 or HMAC-SHA1), stale timestamps and replayed nonces refused.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_lc_rs::{constant_time, hmac, rand};
use base64::Engine as _;

use crate::domain::connection::{ClientAuthStyle, SignatureMethod};

/// OAuth 1 timestamps older than this are refused (Instructure's tolerance, reference §8.1).
pub const MAX_TIMESTAMP_AGE_SECS: i64 = 600;
/// OAuth 1 timestamps further ahead than this are refused.
pub const MAX_TIMESTAMP_LEAD_SECS: i64 = 300;

/// OAuth 2 client credentials the token endpoint accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct Oauth2Settings {
    pub client_id: String,
    pub client_secret: String,
    /// Where the client must put its credentials; the other place is refused.
    pub client_auth: ClientAuthStyle,
    pub token_ttl_secs: u64,
    /// A scope the token request must include (space-separated `scope`), when set.
    pub required_scope: Option<String>,
    /// Each token stops working after this many data requests ("token expiring mid-pull").
    pub revoke_after_requests: Option<u64>,
}

impl Oauth2Settings {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Oauth2Settings {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            client_auth: ClientAuthStyle::Basic,
            token_ttl_secs: 3600,
            required_scope: None,
            revoke_after_requests: None,
        }
    }
}

/// OAuth 1.0a consumer credentials requests must be signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct Oauth1Settings {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub method: SignatureMethod,
}

// Secrets stay out of Debug output, as everywhere in the gateway.
impl std::fmt::Debug for Oauth2Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oauth2Settings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("client_auth", &self.client_auth)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("required_scope", &self.required_scope)
            .field("revoke_after_requests", &self.revoke_after_requests)
            .finish()
    }
}

impl std::fmt::Debug for Oauth1Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oauth1Settings")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"[redacted]")
            .field("method", &self.method)
            .finish()
    }
}

/// Why a token request was refused; `error` is the RFC 6749 §5.2 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("client authentication failed")]
    InvalidClient,
    #[error("grant_type must be client_credentials")]
    UnsupportedGrantType,
    #[error("the required scope was not requested")]
    InvalidScope,
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidClient => "invalid_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidScope => "invalid_scope",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            TokenError::InvalidClient => 401,
            _ => 400,
        }
    }
}

/// An issued token as the token endpoint returns it.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    pub(crate) scope: Option<String>,
}

struct TokenState {
    expires: Instant,
    data_requests: u64,
}

/// Bearer tokens issued so far; older tokens stay valid when new ones are issued.
#[derive(Default)]
pub(crate) struct Tokens {
    live: HashMap<String, TokenState>,
}

impl Tokens {
    /// Grants a client-credentials token request (`form` is the decoded body).
    pub(crate) fn issue(
        &mut self,
        settings: &Oauth2Settings,
        authorization: Option<&str>,
        form: &[(String, String)],
    ) -> Result<IssuedToken, TokenError> {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let same = |given: &str, expected: &str| {
            constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes()).is_ok()
        };
        let accepted = match settings.client_auth {
            ClientAuthStyle::Basic => {
                basic_credentials(authorization).is_some_and(|(id, secret)| {
                    // RFC 6749 §2.3.1 form-encodes both before base64 (the oauth2 crate does);
                    // many clients do not, and providers accept both.
                    let decoded = |s: &str| percent_decode(s, true).unwrap_or_default();
                    (same(&id, &settings.client_id) && same(&secret, &settings.client_secret))
                        || (same(&decoded(&id), &settings.client_id)
                            && same(&decoded(&secret), &settings.client_secret))
                })
            }
            ClientAuthStyle::Body => match (field("client_id"), field("client_secret")) {
                (Some(id), Some(secret)) => {
                    same(id, &settings.client_id) && same(secret, &settings.client_secret)
                }
                _ => false,
            },
        };
        if !accepted {
            return Err(TokenError::InvalidClient);
        }
        if field("grant_type") != Some("client_credentials") {
            return Err(TokenError::UnsupportedGrantType);
        }
        let scope = field("scope").map(str::to_string);
        if let Some(required) = &settings.required_scope {
            let granted = scope
                .as_deref()
                .is_some_and(|s| s.split(' ').any(|one| one == required));
            if !granted {
                return Err(TokenError::InvalidScope);
            }
        }
        let access_token = random_token();
        self.live.insert(
            access_token.clone(),
            TokenState {
                expires: Instant::now() + Duration::from_secs(settings.token_ttl_secs),
                data_requests: 0,
            },
        );
        Ok(IssuedToken {
            access_token,
            expires_in: settings.token_ttl_secs,
            scope,
        })
    }

    /// Whether `Authorization: Bearer …` names a live token; counts the request against it.
    pub(crate) fn admit(&mut self, settings: &Oauth2Settings, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(|h| strip_scheme(h, "Bearer")) else {
            return false;
        };
        let Some(state) = self.live.get_mut(token.trim()) else {
            return false;
        };
        if state.expires <= Instant::now() {
            return false;
        }
        if settings
            .revoke_after_requests
            .is_some_and(|n| state.data_requests >= n)
        {
            return false;
        }
        state.data_requests += 1;
        true
    }

    /// Every token issued so far stops working.
    pub(crate) fn revoke_all(&mut self) {
        self.live.clear();
    }
}

/// 32 random bytes, hex: opaque, as most providers' tokens are.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The system generator does not fail on the platforms this runs on; a zero token would
    // still be unique per test run only by luck, so fall back to a timestamp-derived value.
    if rand::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    hex::encode(bytes)
}

/// `Scheme rest` → `rest`, the scheme matched case-insensitively.
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// HTTP Basic credentials, as sent (not yet form-decoded).
fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let encoded = strip_scheme(authorization?, "Basic")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Why an OAuth 1 request was refused (said in the 401 body: none of it is secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Oauth1Error {
    #[error("no `Authorization: OAuth …` header and no oauth_ query parameters")]
    NoHeader,
    #[error("the Authorization header is not a list of name=\"value\" parameters")]
    Malformed,
    #[error("the oauth parameter {0} is missing")]
    Missing(&'static str),
    #[error("unknown consumer key")]
    UnknownConsumer,
    #[error("signature method {0:?} is not the one this provider expects")]
    WrongMethod(String),
    #[error("oauth_version must be 1.0")]
    WrongVersion,
    #[error("oauth_timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("oauth_timestamp is more than {MAX_TIMESTAMP_AGE_SECS} s old")]
    Stale,
    #[error("oauth_timestamp is more than {MAX_TIMESTAMP_LEAD_SECS} s in the future")]
    Future,
    #[error("oauth_nonce was already used")]
    Replayed,
    #[error("the signature does not match")]
    BadSignature,
}

/// A request as received, for signature checking.
pub(super) struct SignedRequest<'a> {
    pub(super) method: &'a str,
    /// `http://host:port` from the Host header.
    pub(super) origin: String,
    /// The path as received (still percent-encoded).
    pub(super) path: &'a str,
    /// The raw query string.
    pub(super) query: &'a str,
    pub(super) authorization: Option<&'a str>,
    /// Unix seconds.
    pub(super) now: i64,
}

/// Nonces seen, with their timestamps, kept as long as those timestamps are acceptable.
#[derive(Default)]
pub(super) struct Nonces {
    seen: HashMap<String, i64>,
}

/// Checks an OAuth 1.0a signed request; records its nonce when it passes.
pub(super) fn verify_oauth1(
    settings: &Oauth1Settings,
    nonces: &mut Nonces,
    request: &SignedRequest<'_>,
) -> Result<(), Oauth1Error> {
    let query = query_pairs(request.query).ok_or(Oauth1Error::Malformed)?;
    // The protocol parameters come in the Authorization header, or else in the query string
    // (RFC 5849 §3.5.3), where they are part of the signed parameters already.
    let (oauth, in_query) = match request
        .authorization
        .and_then(|h| strip_scheme(h.trim(), "OAuth"))
    {
        Some(header) => (parse_oauth_header(header)?, false),
        None => {
            let oauth: Vec<(String, String)> = query
                .iter()
                .filter(|(k, _)| k.starts_with("oauth_"))
                .cloned()
                .collect();
            if oauth.is_empty() {
                return Err(Oauth1Error::NoHeader);
            }
            (oauth, true)
        }
    };
    let get = |name: &'static str| {
        oauth
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or(Oauth1Error::Missing(name))
    };
    let key = get("oauth_consumer_key")?;
    let method = get("oauth_signature_method")?;
    let timestamp = get("oauth_timestamp")?;
    let nonce = get("oauth_nonce")?;
    let signature = get("oauth_signature")?;
    if constant_time::verify_slices_are_equal(key.as_bytes(), settings.consumer_key.as_bytes())
        .is_err()
    {
        return Err(Oauth1Error::UnknownConsumer);
    }
    if method != method_name(settings.method) {
        return Err(Oauth1Error::WrongMethod(method.to_string()));
    }
    if get("oauth_version").is_ok_and(|v| v != "1.0") {
        return Err(Oauth1Error::WrongVersion);
    }
    let timestamp: i64 = timestamp.parse().map_err(|_| Oauth1Error::BadTimestamp)?;
    if request.now - timestamp > MAX_TIMESTAMP_AGE_SECS {
        return Err(Oauth1Error::Stale);
    }
    if timestamp - request.now > MAX_TIMESTAMP_LEAD_SECS {
        return Err(Oauth1Error::Future);
    }
    let mut params: Vec<(String, String)> = query
        .into_iter()
        .filter(|(k, _)| k != "oauth_signature")
        .collect();
    if !in_query {
        params.extend(
            oauth
                .iter()
                .filter(|(k, _)| k != "oauth_signature" && k != "realm")
                .cloned(),
        );
    }
    let uri = format!("{}{}", request.origin.to_ascii_lowercase(), request.path);
    let base = base_string(request.method, &uri, &params);
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| Oauth1Error::BadSignature)?;
    // Two-legged: no token, so the token secret is empty.
    let key = hmac::Key::new(
        hmac_algorithm(settings.method),
        signing_key(&settings.consumer_secret, "").as_bytes(),
    );
    // hmac::verify compares in constant time.
    hmac::verify(&key, base.as_bytes(), &given).map_err(|_| Oauth1Error::BadSignature)?;
    nonces
        .seen
        .retain(|_, &mut ts| request.now - ts <= MAX_TIMESTAMP_AGE_SECS);
    if nonces.seen.insert(nonce.to_string(), timestamp).is_some() {
        return Err(Oauth1Error::Replayed);
    }
    Ok(())
}

pub(super) fn method_name(method: SignatureMethod) -> &'static str {
    match method {
        SignatureMethod::HmacSha256 => "HMAC-SHA256",
        SignatureMethod::HmacSha1 => "HMAC-SHA1",
    }
}

pub(super) fn hmac_algorithm(method: SignatureMethod) -> hmac::Algorithm {
    match method {
        SignatureMethod::HmacSha256 => hmac::HMAC_SHA256,
        SignatureMethod::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    }
}

/// RFC 5849 §3.4.2: `enc(consumer secret) & enc(token secret)`.
pub(super) fn signing_key(consumer_secret: &str, token_secret: &str) -> String {
    format!(
        "{}&{}",
        percent_encode(consumer_secret),
        percent_encode(token_secret)
    )
}

/// RFC 5849 §3.4.1: `METHOD & enc(base URI) & enc(normalized parameters)`, the parameters
/// (decoded) encoded, sorted by name then value, and joined.
pub(super) fn base_string(method: &str, uri: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode(&normalize_uri(uri)),
        percent_encode(&normalized)
    )
}

/// RFC 5849 §3.4.1.2: lower-case scheme and host, default port dropped, no query.
fn normalize_uri(uri: &str) -> String {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = authority.to_ascii_lowercase();
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("http", Some((host, "80"))) | ("https", Some((host, "443"))) => host.to_string(),
        _ => authority,
    };
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{authority}{path}")
}

/// `name="value", …` of an `Authorization: OAuth` header, names and values decoded.
fn parse_oauth_header(header: &str) -> Result<Vec<(String, String)>, Oauth1Error> {
    header
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').ok_or(Oauth1Error::Malformed)?;
            let value = value
                .trim()
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or(Oauth1Error::Malformed)?;
            let name = percent_decode(name.trim(), false).ok_or(Oauth1Error::Malformed)?;
            let value = percent_decode(value, false).ok_or(Oauth1Error::Malformed)?;
            Ok((name, value))
        })
        .collect()
}

/// The decoded `name=value` pairs of a query string or form body (`+` is a space).
pub(crate) fn query_pairs(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(name, true)?, percent_decode(value, true)?))
        })
        .collect()
}

/// RFC 3986 §2.1 encoding of everything but the unreserved characters (RFC 5849 §3.6).
pub(super) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a space when asked); None on a bad escape or non-UTF-8.
pub(super) fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
