//! Service tokens (reference §9): OAuth 2 client credentials at the platform's token endpoint,
//! the client authenticated by a JWT it signs with the tool's key (RFC 7523), cached per
//! (registration, scope set) until shortly before they expire.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use oauth2::{AuthType, Client, ClientId, Scope, TokenResponse, TokenUrl};
use reqwest::{Method, Url};
use serde_json::{json, Value};

use super::platform_http::{shown, JsonAnswer, PlatformHttp, ServiceError};
use super::tool_keys::ToolKeySet;
use crate::auth::source_tokens::{describe_token_failure, TokenClient, TokenHttp};
use crate::config::Secret;
use crate::store::lti::PlatformRow;

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion is good for: the reference's ceiling (5 minutes).
pub const ASSERTION_TTL_SECS: i64 = 300;
/// A token is set aside this long before its `expires_in` runs out.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

pub const SCOPE_NRPS: &str =
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
pub const SCOPE_LINEITEM: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";
pub const SCOPE_LINEITEM_READONLY: &str =
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly";
pub const SCOPE_SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";

/// Why no service token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceTokenError {
    #[error("the platform's token URL {0:?} is not usable: {1}")]
    TokenUrl(String, String),
    #[error("signing the client assertion failed: {0}")]
    Signing(String),
    /// The platform answered with an OAuth error (`invalid_client`, `invalid_scope`…): an
    /// administrator must fix the registration; asking again will not help.
    #[error("the platform's token endpoint {url} refused the gateway: {message}")]
    Refused { url: String, message: String },
    /// No answer, a 5xx or a 429: worth asking again later.
    #[error("the platform's token endpoint {url} is unavailable: {message}")]
    Unavailable { url: String, message: String },
}

/// A bearer token for a platform's services.
#[derive(Clone)]
pub struct ServiceToken {
    value: Secret,
    /// The scopes it was asked for (sorted), to set it aside when a service refuses it.
    key: (i64, String),
}

impl ServiceToken {
    pub fn bearer(&self) -> &str {
        self.value.expose()
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceToken(platform {}, {})", self.key.0, self.key.1)
    }
}

/// Cached tokens by (platform, sorted scopes): the token and until when it is used.
type TokenCache = HashMap<(i64, String), (Secret, Option<Instant>)>;

/// Every platform's service tokens, shared by the process.
#[derive(Clone)]
pub struct ServiceTokens {
    http: PlatformHttp,
    cache: Arc<std::sync::Mutex<TokenCache>>,
}

impl ServiceTokens {
    pub fn new(http: PlatformHttp) -> ServiceTokens {
        ServiceTokens {
            http,
            cache: Arc::default(),
        }
    }

    pub fn http(&self) -> &PlatformHttp {
        &self.http
    }

    /// A token for `scopes` from `platform`: the cached one while it is fresh, else a new one.
    pub async fn token(
        &self,
        platform: &PlatformRow,
        keys: &ToolKeySet,
        scopes: &[&str],
    ) -> Result<ServiceToken, ServiceTokenError> {
        let mut sorted: Vec<&str> = scopes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let key = (platform.id, sorted.join(" "));
        if let Some((value, fresh_until)) = self.lock().get(&key) {
            if fresh_until.is_none_or(|until| Instant::now() < until) {
                return Ok(ServiceToken {
                    value: value.clone(),
                    key,
                });
            }
        }
        let requested = Instant::now();
        let (value, expires_in) = self.request(platform, keys, &sorted).await?;
        let fresh_until =
            expires_in.map(|lifetime| requested + lifetime.saturating_sub(EXPIRY_MARGIN));
        self.lock()
            .insert(key.clone(), (value.clone(), fresh_until));
        tracing::debug!(
            platform = platform.id,
            expires_in_secs = expires_in.map(|d| d.as_secs()),
            "got an LTI service token"
        );
        Ok(ServiceToken { value, key })
    }

    /// Forgets a token a service refused, unless a newer one replaced it already.
    pub fn discard(&self, token: &ServiceToken) {
        let mut cache = self.lock();
        if cache
            .get(&token.key)
            .is_some_and(|(value, _)| value.expose() == token.value.expose())
        {
            cache.remove(&token.key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn request(
        &self,
        platform: &PlatformRow,
        keys: &ToolKeySet,
        scopes: &[&str],
    ) -> Result<(Secret, Option<Duration>), ServiceTokenError> {
        let url = shown(&platform.token_url);
        let token_url = self
            .http
            .check_url(&platform.token_url)
            .map_err(|e| ServiceTokenError::TokenUrl(url.clone(), e.to_string()))?;
        let token_url = TokenUrl::from_url(token_url);
        let audience = platform
            .token_audience
            .as_deref()
            .unwrap_or(&platform.token_url);
        let assertion = client_assertion(keys, &platform.client_id, audience, Utc::now())
            .map_err(|e| ServiceTokenError::Signing(e.to_string()))?;
        // The client authenticates by the assertion alone: no secret, its id in the body.
        let client: TokenClient = Client::new(ClientId::new(platform.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(token_url);
        let http = TokenHttp(self.http.client().clone());
        let answer = client
            .exchange_client_credentials()
            .add_scopes(scopes.iter().map(|s| Scope::new(s.to_string())))
            .add_extra_param("client_assertion_type", CLIENT_ASSERTION_TYPE)
            .add_extra_param("client_assertion", assertion)
            .request_async(&http)
            .await;
        match answer {
            Ok(response) => Ok((
                Secret::new(response.access_token().secret().clone()),
                response.expires_in(),
            )),
            Err(e) => {
                let (message, transient) = describe_token_failure(e);
                Err(if transient {
                    ServiceTokenError::Unavailable { url, message }
                } else {
                    ServiceTokenError::Refused { url, message }
                })
            }
        }
    }
}

/// Why a service call failed: no token, or the service's answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Token(#[from] ServiceTokenError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Calls one platform's services with a token for `scopes`, renewing a refused one once.
pub struct ServiceCaller<'a> {
    pub tokens: &'a ServiceTokens,
    pub platform: &'a PlatformRow,
    pub keys: &'a ToolKeySet,
}

impl ServiceCaller<'_> {
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        scopes: &[&str],
        accept: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<JsonAnswer, CallError> {
        let mut token = self.tokens.token(self.platform, self.keys, scopes).await?;
        let mut renewed = false;
        loop {
            match self
                .tokens
                .http()
                .json(method.clone(), url, token.bearer(), accept, body)
                .await
            {
                Err(e) if e.unauthorized() && !renewed => {
                    self.tokens.discard(&token);
                    renewed = true;
                    token = self.tokens.token(self.platform, self.keys, scopes).await?;
                }
                other => return Ok(other?),
            }
        }
    }
}

/// The JWT the tool authenticates with (reference §9, R7): `iss` = `sub` = client_id, `aud`
/// one string, five minutes at most, a fresh `jti`, signed by the tool's current key.
pub fn client_assertion(
    keys: &ToolKeySet,
    client_id: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now.timestamp(),
        "exp": now.timestamp() + ASSERTION_TTL_SECS,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let key = keys.current();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid().to_string());
    jsonwebtoken::encode(&header, &claims, &key.encoding_key())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::Value;

    #[test]
    fn a_client_assertion_names_the_client_once_for_one_audience_and_expires_within_five_minutes() {
        let now = Utc::now();
        let keys = ToolKeySet::generate(now).unwrap();
        let token = client_assertion(&keys, "client-7", "https://lms.example/token", now).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.current().kid()));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(keys.current().public_jwk()).unwrap();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["https://lms.example/token"]);
        let claims = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["iss"], "client-7");
        assert_eq!(claims["sub"], "client-7");
        // One string, not an array: some token endpoints refuse an array.
        assert_eq!(claims["aud"], Value::from("https://lms.example/token"));
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!(lifetime > 0 && lifetime <= 300, "{lifetime}");
        let other = client_assertion(&keys, "client-7", "https://lms.example/token", now).unwrap();
        let other: Value = jsonwebtoken::decode::<Value>(
            &other,
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_ne!(
            claims["jti"], other["jti"],
            "every assertion has its own jti"
        );
    }
}
