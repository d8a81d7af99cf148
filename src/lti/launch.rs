//! The LTI 1.3 launch flow, apart from HTTP: a platform's login initiation becomes the
//! redirect to its authorization endpoint (with a state and nonce kept server-side), and the
//! launch it posts back is validated ([`super::validate`]), resolved to the district's rostered
//! user and class, and handed to the learning platform as a short-lived session token signed
//! with the tool's key.
//!
//! The session token is a JWT (RS256, the tool key's `kid`; check it against `GET /lti/jwks`):
//! `iss` the gateway's public URL, `aud` `rostergate-lti-session`, `sub` the rostered user's
//! sourcedId when the launch resolved to one (else `lti:{platform}:{sub}`), `exp` a few minutes
//! on, a `jti`, and a `rostergate` claim saying district, class, role and what was launched.
//! A deep linking request's session also carries its settings (`rostergate.deep_linking`): the
//! learning platform answers it through `POST /lti/deep_links` ([`super::deep_linking`]).
//! It travels in the URL fragment of the redirect (`#session=…`), which browsers never send to a
//! server and so never lands in a log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use reqwest::Url;
use serde_json::{json, Value};

use super::platform_keys::{PlatformKeySettings, PlatformKeys};
use super::tool_key_store;
use super::validate::{self, is_tool_url, DeploymentStatus, Expected, Launch, LaunchError};
use crate::auth::keys::random_bytes;
use crate::auth::secrets::SecretBox;
use crate::auth::secrets_equal;
use crate::config::LtiSettings;
use crate::domain::records::RecordKind;
use crate::store::lti::{self as platforms, PlatformRow};
use crate::store::lti_contexts::{self as contexts, ContextRow};
use crate::store::lti_launches::{self as launches, LoginState};
use crate::store::{districts, roster, Db, StoreError};

/// The `aud` of a session token.
pub const SESSION_AUDIENCE: &str = "rostergate-lti-session";

/// What a login initiation carried (§2), GET or POST alike.
#[derive(Debug, Clone, Default)]
pub struct LoginRequest {
    pub iss: Option<String>,
    pub login_hint: Option<String>,
    pub target_link_uri: Option<String>,
    pub lti_message_hint: Option<String>,
    /// `lti_deployment_id`, or Canvas's `deployment_id`.
    pub deployment_id: Option<String>,
    pub client_id: Option<String>,
}

/// Why a login initiation is refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("LTI is not configured on this gateway (lti.public_url)")]
    NotConfigured,
    #[error("the login initiation has no {0}")]
    Missing(&'static str),
    #[error("no platform is registered for this issuer and client_id")]
    UnknownPlatform,
    #[error("several platforms are registered for this issuer: the login must name its client_id")]
    AmbiguousPlatform,
    #[error("target_link_uri is not one of the tool's launch URLs (lti.target_link_uris)")]
    ForeignTarget,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoginError {
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::NotConfigured => "lti_not_configured",
            LoginError::Missing(_) => "missing_login_parameter",
            LoginError::UnknownPlatform => "unregistered_platform",
            LoginError::AmbiguousPlatform => "ambiguous_platform",
            LoginError::ForeignTarget => "foreign_target_link_uri",
            LoginError::Store(_) => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            // This gateway has no LTI tool: as if the route were not there.
            LoginError::NotConfigured => 404,
            LoginError::Store(_) => 500,
            _ => 400,
        }
    }
}

/// Where the browser goes next, and the state its cookie binds to it.
#[derive(Debug, Clone)]
pub struct LoginRedirect {
    pub location: Url,
    pub state: String,
    pub max_age_secs: u64,
}

/// A value of 256 random bits, URL-safe.
fn random_value() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// The redirect URI platforms are given: `{public_url}/lti/launch`.
pub fn redirect_uri(public_url: &str) -> String {
    format!("{}/lti/launch", public_url.trim_end_matches('/'))
}

/// Answers a login initiation (§2, §3): the registration it names, a state and nonce stored for
/// the launch, and the platform's authorization URL to redirect to.
pub async fn begin_login(
    db: &Db,
    settings: &LtiSettings,
    request: &LoginRequest,
    now: DateTime<Utc>,
) -> Result<LoginRedirect, LoginError> {
    fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, LoginError> {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .ok_or(LoginError::Missing(name))
    }
    let iss = required(&request.iss, "iss")?;
    let login_hint = required(&request.login_hint, "login_hint")?;
    let target = required(&request.target_link_uri, "target_link_uri")?;
    let public_url = settings
        .public_url
        .as_deref()
        .ok_or(LoginError::NotConfigured)?;
    // The unsigned target is checked before anything is stored: an open redirect is refused
    // here, and the launch's signed one must be this same URL.
    if !is_tool_url(target, &settings.target_link_uris) {
        return Err(LoginError::ForeignTarget);
    }
    let candidates = platforms::platforms_for_login(db, iss, request.client_id.as_deref()).await?;
    let platform = match candidates.as_slice() {
        [one] => one,
        [] => return Err(LoginError::UnknownPlatform),
        _ => return Err(LoginError::AmbiguousPlatform),
    };
    let state = random_value();
    let nonce = random_value();
    let login = LoginState {
        platform_id: platform.id,
        nonce: nonce.clone(),
        target_link_uri: target.to_string(),
        deployment_id: request.deployment_id.clone().filter(|d| !d.is_empty()),
        expires_at: now + Duration::seconds(settings.state_ttl_secs as i64),
    };
    // Logins whose launch never came are forgotten as new ones arrive (an index on expiry
    // keeps this cheap), so the table holds only the last few minutes.
    launches::sweep_states(db, now).await?;
    launches::save_state(db, &state, &login, now).await?;
    let mut location = Url::parse(&platform.auth_login_url)
        .map_err(|e| StoreError::Corrupt(format!("a stored auth URL does not parse: {e}")))?;
    {
        let mut query = location.query_pairs_mut();
        query
            .append_pair("scope", "openid")
            .append_pair("response_type", "id_token")
            .append_pair("response_mode", "form_post")
            .append_pair("prompt", "none")
            .append_pair("client_id", &platform.client_id)
            .append_pair("redirect_uri", &redirect_uri(public_url))
            .append_pair("login_hint", login_hint)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce);
        // Echoed byte for byte: the platform finds its launch by it.
        if let Some(hint) = &request.lti_message_hint {
            query.append_pair("lti_message_hint", hint);
        }
    }
    Ok(LoginRedirect {
        location,
        state,
        max_age_secs: settings.state_ttl_secs,
    })
}

/// What a launch POST carried (§4): an id_token and its state, or the platform's error.
#[derive(Debug, Clone, Default)]
pub struct LaunchForm {
    pub id_token: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Why a launch is refused; each with its own code.
#[derive(Debug, thiserror::Error)]
pub enum LaunchFailure {
    #[error("LTI is not configured on this gateway (lti.public_url)")]
    NotConfigured,
    /// The platform posted an error instead of a launch (§4).
    #[error("the platform could not launch: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Platform {
        error: String,
        description: Option<String>,
    },
    #[error("the launch has no state")]
    MissingState,
    #[error("the launch has no id_token")]
    MissingIdToken,
    /// No cookie came with the launch: the browser blocks cookies in this frame.
    #[error("this browser did not send the login's cookie back (cookies are blocked in this frame): open the tool in a new window")]
    StateCookieMissing,
    #[error("the launch's state is not the one this browser's login started")]
    StateCookieMismatch,
    #[error("the launch's state is unknown or was already used")]
    UnknownState,
    #[error("the launch came after its login had expired: launch again")]
    StateExpired,
    #[error("the platform of this login is no longer registered")]
    PlatformGone,
    #[error(transparent)]
    Invalid(#[from] LaunchError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LaunchFailure {
    pub fn code(&self) -> &'static str {
        match self {
            LaunchFailure::NotConfigured => "lti_not_configured",
            LaunchFailure::Platform { .. } => "platform_error",
            LaunchFailure::MissingState => "missing_state",
            LaunchFailure::MissingIdToken => "missing_id_token",
            LaunchFailure::StateCookieMissing => "state_cookie_missing",
            LaunchFailure::StateCookieMismatch => "state_cookie_mismatch",
            LaunchFailure::UnknownState => "unknown_state",
            LaunchFailure::StateExpired => "state_expired",
            LaunchFailure::PlatformGone => "unregistered_platform",
            LaunchFailure::Invalid(e) => e.code(),
            LaunchFailure::Store(_) => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            LaunchFailure::NotConfigured => 404,
            LaunchFailure::Store(_) => 500,
            LaunchFailure::Invalid(e) => e.status(),
            LaunchFailure::Platform { .. }
            | LaunchFailure::MissingState
            | LaunchFailure::MissingIdToken => 400,
            _ => 401,
        }
    }
}

/// A launch that went through: where the browser goes, with its session.
#[derive(Debug, Clone)]
pub struct LaunchSession {
    /// The signed target_link_uri with `#session=<token>`.
    pub location: Url,
    pub district: String,
    pub user: Option<String>,
    pub class: Option<String>,
    pub launch: Launch,
}

/// Platform key sets by URL, shared by every launch of a process (each set caches its keys).
#[derive(Clone, Default)]
pub struct PlatformKeyCache {
    sets: Arc<Mutex<HashMap<String, PlatformKeys>>>,
}

impl PlatformKeyCache {
    fn keys_for(&self, url: &str, insecure: bool) -> Result<PlatformKeys, LaunchError> {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(keys) = sets.get(url) {
            return Ok(keys.clone());
        }
        let unavailable = |e: String| LaunchError::KeyUnavailable {
            kid: String::new(),
            reason: format!("the platform's key set URL {url:?}: {e}"),
        };
        let parsed = Url::parse(url).map_err(|e| unavailable(e.to_string()))?;
        let settings = PlatformKeySettings {
            allow_private_targets: insecure,
            allow_plain_http: insecure,
            ..PlatformKeySettings::default()
        };
        let keys = PlatformKeys::new(parsed, settings).map_err(|e| unavailable(e.to_string()))?;
        sets.insert(url.to_string(), keys.clone());
        Ok(keys)
    }
}

/// Everything a launch needs besides its form.
pub struct LaunchContext<'a> {
    pub db: &'a Db,
    pub secrets: &'a SecretBox,
    pub settings: &'a LtiSettings,
    pub keys: &'a PlatformKeyCache,
}

/// Validates a launch POST (§4, §5) and resolves it; `cookie_state` is the state the login's
/// cookie carried back, if the browser sent it.
pub async fn finish_launch(
    cx: &LaunchContext<'_>,
    form: &LaunchForm,
    cookie_state: Option<&str>,
    now: DateTime<Utc>,
) -> Result<LaunchSession, LaunchFailure> {
    let ValidatedLaunch { platform, launch } = validate_launch(cx, form, cookie_state, now).await?;
    resolve(cx, &platform, launch, (public_url(cx.settings)?, now)).await
}

/// A launch that passed [`validate_launch`]: the platform its login named, and what its
/// id_token says.
#[derive(Debug, Clone)]
pub struct ValidatedLaunch {
    pub platform: PlatformRow,
    pub launch: Launch,
}

/// What [`finish_launch`] does before resolution: the state is this browser's and is consumed
/// for good (check 1), the id_token passes every check of [`validate::validate`], and a
/// deployment admitted as pending is recorded. Nothing is resolved, linked or signed.
pub async fn validate_launch(
    cx: &LaunchContext<'_>,
    form: &LaunchForm,
    cookie_state: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ValidatedLaunch, LaunchFailure> {
    public_url(cx.settings)?;
    if let Some(error) = &form.error {
        return Err(LaunchFailure::Platform {
            error: error.clone(),
            description: form.error_description.clone(),
        });
    }
    let state = form
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(LaunchFailure::MissingState)?;
    let id_token = form
        .id_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or(LaunchFailure::MissingIdToken)?;
    // Check 1: the state is this browser's (its cookie), then taken out for good.
    let cookie = cookie_state.ok_or(LaunchFailure::StateCookieMissing)?;
    if !secrets_equal(cookie.as_bytes(), state.as_bytes()) {
        return Err(LaunchFailure::StateCookieMismatch);
    }
    let login = launches::consume_state(cx.db, state)
        .await?
        .ok_or(LaunchFailure::UnknownState)?;
    if login.expires_at < now {
        return Err(LaunchFailure::StateExpired);
    }
    let platform = platforms::platform_by_id(cx.db, login.platform_id)
        .await?
        .ok_or(LaunchFailure::PlatformGone)?;
    let keys = cx
        .keys
        .keys_for(&platform.jwks_url, cx.settings.allow_insecure_platforms)?;
    let registration = platform.registration();
    let expected = Expected {
        registration: &registration,
        nonce: &login.nonce,
        login_target_link_uri: &login.target_link_uri,
        login_deployment_id: login.deployment_id.as_deref(),
        tool_urls: &cx.settings.target_link_uris,
        now: now.timestamp(),
    };
    let launch = validate::validate(id_token, &expected, &keys).await?;
    if launch.deployment == DeploymentStatus::Pending {
        platforms::add_pending_deployment(cx.db, platform.id, &launch.deployment_id).await?;
    }
    Ok(ValidatedLaunch { platform, launch })
}

/// The gateway's public URL; without one, launches are refused.
fn public_url(settings: &LtiSettings) -> Result<&str, LaunchFailure> {
    settings
        .public_url
        .as_deref()
        .ok_or(LaunchFailure::NotConfigured)
}

/// The launch's rostered user and class in the platform's district, the link recorded, and
/// the session signed.
async fn resolve(
    cx: &LaunchContext<'_>,
    platform: &PlatformRow,
    launch: Launch,
    (public_url, now): (&str, DateTime<Utc>),
) -> Result<LaunchSession, LaunchFailure> {
    let district = districts::find_by_id(cx.db, platform.district_id)
        .await?
        .ok_or(LaunchFailure::PlatformGone)?;
    let person = launch.lis.as_ref().and_then(|l| l.person_sourcedid.clone());
    let rostered = match &person {
        Some(id) if roster::user_exists(cx.db, district.id, id).await? => Some(id.clone()),
        _ => None,
    };
    let user = match rostered {
        Some(user) => Some(user),
        None => launches::linked_user(cx.db, platform.id, &launch.sub)
            .await?
            .flatten(),
    };
    launches::record_link(
        cx.db,
        (platform.id, district.id),
        &launch.sub,
        user.as_deref(),
        now,
    )
    .await?;
    let section = launch
        .lis
        .as_ref()
        .and_then(|l| l.course_section_sourcedid.clone());
    let class = match section {
        Some(id)
            if roster::get(cx.db, district.id, RecordKind::Classes, &id)
                .await?
                .is_some() =>
        {
            Some(id)
        }
        _ => None,
    };
    if let Some(context) = &launch.context {
        contexts::record(cx.db, &context_row(platform, &launch, context, &class, now)).await?;
    }
    let keys = tool_key_store::load_or_create(cx.db, cx.secrets)
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let token = session_token(
        &keys,
        public_url,
        &SessionFacts {
            platform_id: platform.id,
            district: district.slug.as_str(),
            user: user.as_deref(),
            class: class.as_deref(),
            launch: &launch,
        },
        now,
        cx.settings.session_ttl_secs,
    )
    .map_err(|e| StoreError::Corrupt(format!("signing the session failed: {e}")))?;
    let mut location = Url::parse(&launch.target_link_uri)
        .map_err(|_| LaunchError::ForeignTargetLinkUri(launch.target_link_uri.clone()))?;
    location.set_fragment(Some(&format!("session={token}")));
    Ok(LaunchSession {
        location,
        district: district.slug.to_string(),
        user,
        class,
        launch,
    })
}

/// What a launch says of its course context and the services offered for it.
fn context_row(
    platform: &PlatformRow,
    launch: &Launch,
    context: &super::validate::Context,
    class: &Option<String>,
    now: DateTime<Utc>,
) -> ContextRow {
    let grades = launch.grades.as_ref();
    ContextRow {
        platform_id: platform.id,
        context_id: context.id.clone(),
        district_id: platform.district_id,
        title: context.title.clone(),
        class_sourced_id: class.clone(),
        memberships_url: launch
            .names_roles
            .as_ref()
            .map(|n| n.context_memberships_url.clone()),
        lineitems_url: grades.and_then(|g| g.lineitems.clone()),
        lineitem_url: grades.and_then(|g| g.lineitem.clone()),
        ags_scopes: grades.map(|g| g.scope.join(" ")).unwrap_or_default(),
        updated_at: now,
    }
}

/// What a session token says.
struct SessionFacts<'a> {
    platform_id: i64,
    district: &'a str,
    user: Option<&'a str>,
    class: Option<&'a str>,
    launch: &'a Launch,
}

fn session_token(
    keys: &super::tool_keys::ToolKeySet,
    public_url: &str,
    facts: &SessionFacts<'_>,
    now: DateTime<Utc>,
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let launch = facts.launch;
    let sub = match facts.user {
        Some(user) => user.to_string(),
        None => format!("lti:{}:{}", facts.platform_id, launch.sub),
    };
    let claims = json!({
        "iss": public_url.trim_end_matches('/'),
        "aud": SESSION_AUDIENCE,
        "sub": sub,
        "iat": now.timestamp(),
        "exp": now.timestamp() + ttl_secs as i64,
        "jti": uuid::Uuid::new_v4().to_string(),
        "rostergate": {
            "district": facts.district,
            "user": facts.user,
            "rostered": facts.user.is_some(),
            "class": facts.class,
            "role": launch.role.as_str(),
            "test_user": launch.test_user,
            "message_type": launch.message_type.as_str(),
            "deployment_id": launch.deployment_id,
            "resource_link_id": launch.resource_link.as_ref().map(|l| l.id.clone()),
            "context_id": launch.context.as_ref().map(|c| c.id.clone()),
            "lti_sub": launch.sub,
            "platform": facts.platform_id,
            "deep_linking": launch.deep_linking.as_ref().map(|d| json!({
                "return_url": d.deep_link_return_url,
                "accept_types": d.accept_types,
                "accept_multiple": d.accept_multiple,
                "accept_presentation_document_targets": d.accept_presentation_document_targets,
                "data": d.data,
            })),
        }
    });
    let key = keys.current();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid().to_string());
    jsonwebtoken::encode(&header, &claims, &key.encoding_key())
}

/// The tool's published key set (`GET /lti/jwks`).
pub async fn tool_jwks(db: &Db, secrets: &SecretBox) -> Result<Value, StoreError> {
    let keys = tool_key_store::load_or_create(db, secrets)
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(keys.jwks())
}
