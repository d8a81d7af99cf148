//! The answer to a deep linking request (reference §12, R10). A deep linking launch lands on the
//! learning platform like any other, its session carrying the request's settings; once a teacher
//! has picked, the learning platform sends the browser to `POST /lti/deep_links` with that
//! session and the content items. The gateway checks both, signs the response JWT with the
//! tool's key (`data` echoed verbatim) and answers a page that posts it to the platform's
//! `deep_link_return_url` as the form field `JWT`. Each request is answered once.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};

use super::launch::SESSION_AUDIENCE;
use super::tool_key_store;
use super::tool_keys::ToolKeySet;
use super::validate::is_tool_url;
use crate::auth::secrets::SecretBox;
use crate::config::LtiSettings;
use crate::store::lti::{self as platforms, PlatformRow};
use crate::store::lti_contexts;
use crate::store::{Db, StoreError};

/// The most content items one answer carries.
pub const MAX_CONTENT_ITEMS: usize = 100;
/// The largest `content_items` field read.
pub const MAX_CONTENT_ITEMS_BYTES: usize = 64 * 1024;
/// How long the response JWT is good for.
pub const RESPONSE_TTL_SECS: i64 = 300;

/// The content item types of Deep Linking 2.0.
const KNOWN_TYPES: [&str; 5] = ["ltiResourceLink", "link", "file", "html", "image"];

/// What the learning platform posts.
#[derive(Debug, Clone, Default)]
pub struct DeepLinkForm {
    pub session: Option<String>,
    /// A JSON array of content items (may be empty: nothing was picked).
    pub content_items: Option<String>,
    /// Shown to the teacher by the platform.
    pub msg: Option<String>,
    pub errormsg: Option<String>,
}

/// Why no answer was made; each with its own code.
#[derive(Debug, thiserror::Error)]
pub enum DeepLinkError {
    #[error("LTI is not configured on this gateway")]
    NotConfigured,
    #[error("the form has no session")]
    MissingSession,
    #[error("the session is not valid: {0}")]
    InvalidSession(String),
    #[error("the session is not a deep linking request's")]
    NotDeepLinking,
    #[error("this deep linking request was answered already")]
    AlreadyAnswered,
    #[error("content_items{pointer}: {message}")]
    ContentItems { pointer: String, message: String },
    #[error("the platform of this launch is no longer registered")]
    PlatformGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DeepLinkError {
    pub fn code(&self) -> &'static str {
        match self {
            DeepLinkError::NotConfigured => "lti_not_configured",
            DeepLinkError::MissingSession => "missing_session",
            DeepLinkError::InvalidSession(_) => "invalid_session",
            DeepLinkError::NotDeepLinking => "not_deep_linking",
            DeepLinkError::AlreadyAnswered => "deep_link_answered",
            DeepLinkError::ContentItems { .. } => "invalid_content_items",
            DeepLinkError::PlatformGone => "platform_gone",
            DeepLinkError::Store(_) => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            DeepLinkError::NotConfigured => 404,
            DeepLinkError::InvalidSession(_) => 401,
            DeepLinkError::AlreadyAnswered => 409,
            DeepLinkError::PlatformGone => 410,
            DeepLinkError::Store(_) => 500,
            _ => 400,
        }
    }
}

/// The signed answer and where the browser posts it.
#[derive(Debug, Clone)]
pub struct DeepLinkAnswer {
    pub return_url: String,
    pub jwt: String,
}

/// The request's settings, as the session carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSettings {
    pub platform_id: i64,
    pub deployment_id: String,
    pub return_url: String,
    pub accept_types: Vec<String>,
    pub accept_multiple: Option<bool>,
    pub data: Option<Value>,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

/// Checks the form and signs the answer.
pub async fn answer(
    db: &Db,
    secrets: &SecretBox,
    settings: &LtiSettings,
    form: &DeepLinkForm,
    now: DateTime<Utc>,
) -> Result<DeepLinkAnswer, DeepLinkError> {
    let public_url = settings
        .public_url
        .as_deref()
        .ok_or(DeepLinkError::NotConfigured)?;
    let session = form
        .session
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(DeepLinkError::MissingSession)?;
    let keys = tool_key_store::load_or_create(db, secrets)
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let request = read_session(&keys, public_url, session)?;
    let items = content_items(
        form.content_items.as_deref().unwrap_or("[]"),
        &request,
        settings,
    )?;
    let platform = platforms::platform_by_id(db, request.platform_id)
        .await?
        .ok_or(DeepLinkError::PlatformGone)?;
    if !lti_contexts::answer_deep_link(db, platform.id, &request.jti, (now, request.expires_at))
        .await?
    {
        return Err(DeepLinkError::AlreadyAnswered);
    }
    let jwt = response_jwt(&keys, &platform, &request, items, form, now).map_err(|e| {
        StoreError::Corrupt(format!("signing the deep linking response failed: {e}"))
    })?;
    Ok(DeepLinkAnswer {
        return_url: request.return_url,
        jwt,
    })
}

/// The deep linking settings of a session the gateway signed and that has not expired.
pub fn read_session(
    keys: &ToolKeySet,
    public_url: &str,
    session: &str,
) -> Result<RequestSettings, DeepLinkError> {
    let invalid = |m: String| DeepLinkError::InvalidSession(m);
    let header = jsonwebtoken::decode_header(session).map_err(|e| invalid(e.to_string()))?;
    let kid = header.kid.ok_or_else(|| invalid("it has no kid".into()))?;
    let key = keys
        .keys()
        .iter()
        .find(|k| k.kid() == kid)
        .ok_or_else(|| invalid("it was not signed by a live key of this gateway".into()))?;
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(key.public_jwk()).map_err(|e| invalid(e.to_string()))?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(e.to_string()))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[SESSION_AUDIENCE]);
    validation.set_issuer(&[public_url.trim_end_matches('/')]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(session, &decoding, &validation)
        .map_err(|e| invalid(e.to_string()))?
        .claims;
    let facts = &claims["rostergate"];
    let Some(dl) = facts.get("deep_linking").filter(|d| d.is_object()) else {
        return Err(DeepLinkError::NotDeepLinking);
    };
    let text = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("it has no {what}")))
    };
    Ok(RequestSettings {
        platform_id: facts["platform"]
            .as_i64()
            .ok_or_else(|| invalid("it names no platform".into()))?,
        deployment_id: text(&facts["deployment_id"], "deployment")?,
        return_url: text(&dl["return_url"], "return URL")?,
        accept_types: dl["accept_types"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        accept_multiple: dl["accept_multiple"].as_bool(),
        data: dl.get("data").filter(|d| !d.is_null()).cloned(),
        jti: text(&claims["jti"], "jti")?,
        expires_at: DateTime::from_timestamp(claims["exp"].as_i64().unwrap_or(0), 0)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    })
}

/// The content items as posted, checked against what the request accepts.
pub fn content_items(
    raw: &str,
    request: &RequestSettings,
    settings: &LtiSettings,
) -> Result<Vec<Value>, DeepLinkError> {
    let refuse = |pointer: String, message: &str| DeepLinkError::ContentItems {
        pointer,
        message: message.to_string(),
    };
    if raw.len() > MAX_CONTENT_ITEMS_BYTES {
        return Err(refuse(
            String::new(),
            &format!("larger than {MAX_CONTENT_ITEMS_BYTES} bytes"),
        ));
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| refuse(String::new(), &format!("not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(refuse(String::new(), "must be an array of content items"));
    };
    if items.len() > MAX_CONTENT_ITEMS {
        return Err(refuse(
            String::new(),
            &format!("at most {MAX_CONTENT_ITEMS} content items"),
        ));
    }
    if items.len() > 1 && request.accept_multiple == Some(false) {
        return Err(refuse(
            String::new(),
            "the platform accepts one content item here",
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let at = format!("/{i}");
        let Some(object) = item.as_object() else {
            return Err(refuse(at, "must be an object"));
        };
        let Some(kind) = object.get("type").and_then(Value::as_str) else {
            return Err(refuse(format!("{at}/type"), "is required (a string)"));
        };
        if !KNOWN_TYPES.contains(&kind) {
            return Err(refuse(
                format!("{at}/type"),
                &format!("{kind:?} is not a Deep Linking content item type"),
            ));
        }
        if !request.accept_types.is_empty() && !request.accept_types.iter().any(|t| t == kind) {
            return Err(refuse(
                format!("{at}/type"),
                &format!("the platform does not accept {kind:?} here"),
            ));
        }
        // A resource link is launched as this tool: it may point only at the tool's own URLs.
        if kind == "ltiResourceLink" {
            if let Some(url) = object.get("url") {
                let url = url
                    .as_str()
                    .ok_or_else(|| refuse(format!("{at}/url"), "must be a string"))?;
                if !is_tool_url(url, &settings.target_link_uris) {
                    return Err(refuse(
                        format!("{at}/url"),
                        "is not one of this gateway's lti.target_link_uris",
                    ));
                }
            }
        }
    }
    Ok(items)
}

/// The response JWT (reference §12).
fn response_jwt(
    keys: &ToolKeySet,
    platform: &PlatformRow,
    request: &RequestSettings,
    items: Vec<Value>,
    form: &DeepLinkForm,
    now: DateTime<Utc>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(platform.client_id));
    claims.insert("aud".into(), json!(platform.issuer));
    claims.insert("azp".into(), json!(platform.client_id));
    claims.insert("iat".into(), json!(now.timestamp()));
    claims.insert(
        "exp".into(),
        json!((now + Duration::seconds(RESPONSE_TTL_SECS)).timestamp()),
    );
    claims.insert("nonce".into(), json!(uuid::Uuid::new_v4().to_string()));
    let lti = "https://purl.imsglobal.org/spec/lti/claim/";
    let dl = "https://purl.imsglobal.org/spec/lti-dl/claim/";
    claims.insert(format!("{lti}deployment_id"), json!(request.deployment_id));
    claims.insert(
        format!("{lti}message_type"),
        json!("LtiDeepLinkingResponse"),
    );
    claims.insert(format!("{lti}version"), json!("1.3.0"));
    claims.insert(format!("{dl}content_items"), Value::Array(items));
    if let Some(data) = &request.data {
        claims.insert(format!("{dl}data"), data.clone());
    }
    for (name, value) in [("msg", &form.msg), ("errormsg", &form.errormsg)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            claims.insert(format!("{dl}{name}"), json!(value));
        }
    }
    let key = keys.current();
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some(key.kid().to_string());
    jsonwebtoken::encode(&header, &Value::Object(claims), &key.encoding_key())
}

#[cfg(test)]
mod tests;
