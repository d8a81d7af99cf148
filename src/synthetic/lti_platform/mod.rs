//! A synthetic LTI 1.3 platform (an LMS) on `127.0.0.1:0`, for black-box tests and benchmarks
//! of the gateway as a tool (shared/reference/lti13.md §1–§6).
//!
//! It plays the platform's side of the launch: [`LtiPlatform::login_url`] (or
//! [`LtiPlatform::login_form`]) is the third-party-initiated login a browser follows to the
//! tool (§2); `GET /auth` is the OIDC authorization endpoint the tool redirects back to (§3),
//! which checks every parameter and answers the auto-submitting form that posts `id_token`
//! and `state` to the tool's redirect URI (§4); `GET /jwks` publishes the keys the id_token is
//! signed with, and [`LtiPlatform::rotate_key`] rotates them. What each launch says is a
//! [`LaunchSpec`], whose default is a valid instructor launch and whose tampering knobs cover
//! the certification suite's bad payloads; [`LtiPlatform::signed_launch`] signs one directly,
//! for table tests and benchmarks that skip the browser dance. Every request is logged.
//!
//! ```ignore
//! let platform = LtiPlatform::start(LtiPlatformConfig::new("client-1", "deployment-1")
//!     .with_tool_redirect_uri(format!("{tool}/lti/launch")))?;
//! let login = platform.login_url(&format!("{tool}/lti/login"), &LaunchSpec::learner());
//! // … a client follows `login` to the tool, the tool's redirect to /auth, then posts
//! // form_fields(&html) to form_action(&html) …
//! let launch = platform.last_launch().unwrap();
//! platform.stop().await;
//! ```

pub mod claim;
mod form;
mod keys;
mod launch;
mod log;
mod registration;
mod server;
mod services;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};

use crate::synthetic::serving::{bind, RequestLog, Serving};
use actix_web::web;
use serde_json::Value;

use crate::lti::tool_keys::ToolKeyError;
use keys::PlatformKeys;
use launch::Issue;

pub use form::{form_action, form_fields};
pub use launch::{
    ContextSpec, DeepLinkingSpec, GradesSpec, LaunchMessage, LaunchSpec, LisSpec, NamesRolesSpec,
    ResourceLinkSpec, DEFAULT_TARGET_LINK_URI,
};
pub use log::PlatformRequest;
pub use registration::{
    OpenIdConfigurationSpec, ReceivedRegistration, OPENID_CONFIGURATION_PATH, REGISTRATION_PATH,
};
pub use services::{ReceivedScore, TokenRequest, TOKEN_PATH};

/// The key set's path.
pub const JWKS_PATH: &str = "/jwks";
/// The OIDC authorization endpoint's path (the registration's `auth_login_url`).
pub const AUTH_PATH: &str = "/auth";
/// Where deep linking responses are posted unless a spec names another return URL.
pub const DEEP_LINKS_PATH: &str = "/deep_links";

/// How the platform is registered with the tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LtiPlatformConfig {
    /// The `iss` of its tokens and logins; None: its own origin, `http://127.0.0.1:PORT`.
    pub issuer: Option<String>,
    /// The client id the platform gave the tool: the `aud` of its tokens.
    pub client_id: String,
    /// The deployment every launch names unless its spec overrides it.
    pub deployment_id: String,
    /// The tool's registered redirect URI (its `/lti/launch`): when set, `/auth` refuses any
    /// other `redirect_uri` (exact comparison), and launches target it by default.
    pub tool_redirect_uri: Option<String>,
    /// Server worker threads.
    pub workers: usize,
}

impl LtiPlatformConfig {
    /// Issuer = origin, any redirect URI accepted, two workers.
    pub fn new(client_id: impl Into<String>, deployment_id: impl Into<String>) -> Self {
        LtiPlatformConfig {
            issuer: None,
            client_id: client_id.into(),
            deployment_id: deployment_id.into(),
            tool_redirect_uri: None,
            workers: 2,
        }
    }

    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    pub fn with_tool_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.tool_redirect_uri = Some(uri.into());
        self
    }
}

/// The last launch `/auth` answered, as posted to the tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLaunch {
    pub id_token: String,
    pub state: String,
    /// The authorization request's nonce, inside the id_token.
    pub nonce: String,
    /// Where the form posts (the request's `redirect_uri`).
    pub redirect_uri: String,
    pub login_hint: String,
    /// The signing key's kid (the id_token header's).
    pub kid: String,
}

/// A login the platform started and `/auth` has not answered yet.
struct Login {
    spec: LaunchSpec,
    message_hint: String,
}

/// What request handlers share.
struct State {
    config: LtiPlatformConfig,
    origin: String,
    issuer: String,
    keys: RwLock<PlatformKeys>,
    /// By login_hint.
    logins: Mutex<HashMap<String, Login>>,
    last_launch: Mutex<Option<IssuedLaunch>>,
    deep_link_responses: Mutex<Vec<String>>,
    log: RequestLog<PlatformRequest>,
    /// Dynamic Registration: the configuration, the registration endpoint and what they got.
    registration: registration::Registrar,
    /// Service tokens, NRPS and AGS: what they serve and what they got.
    services: services::Services,
}

/// A lock whose holder panicked is still good: every update here is a single assignment.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn deployment_id<'a>(&'a self, spec: &'a LaunchSpec) -> &'a str {
        spec.deployment_id
            .as_deref()
            .unwrap_or(&self.config.deployment_id)
    }

    fn target_link_uri<'a>(&'a self, spec: &'a LaunchSpec) -> &'a str {
        spec.target_link_uri
            .as_deref()
            .or(self.config.tool_redirect_uri.as_deref())
            .unwrap_or(DEFAULT_TARGET_LINK_URI)
    }

    /// The id_token for `spec`, and the kid in its header.
    fn sign(
        &self,
        spec: &LaunchSpec,
        nonce: &str,
        aud: &str,
    ) -> jsonwebtoken::errors::Result<(String, String)> {
        let deep_link_return_url = format!("{}{DEEP_LINKS_PATH}", self.origin);
        let claims = launch::claims(
            spec,
            &Issue {
                issuer: &self.issuer,
                aud,
                nonce,
                deployment_id: self.deployment_id(spec),
                target_link_uri: self.target_link_uri(spec),
                deep_link_return_url: &deep_link_return_url,
                now: chrono::Utc::now().timestamp(),
            },
        );
        // The key is copied out so signing (the slow part) holds no lock.
        let (header, key) = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .signer(spec.sign_with_unknown_key);
        let kid = header.kid.clone().unwrap_or_default();
        Ok((jsonwebtoken::encode(&header, &claims, &key)?, kid))
    }
}

/// A running platform; stop it with [`LtiPlatform::stop`] (dropping it leaves the server
/// running until the runtime ends).
pub struct LtiPlatform {
    state: web::Data<State>,
    serving: Serving,
}

impl LtiPlatform {
    /// Generates the platform's keys and starts serving on a free port of 127.0.0.1. Call it
    /// within a Tokio runtime: the server runs as a task of it, its workers on threads of
    /// their own.
    pub fn start(config: LtiPlatformConfig) -> std::io::Result<LtiPlatform> {
        let keys = PlatformKeys::generate().map_err(std::io::Error::other)?;
        let (listener, origin) = bind()?;
        let workers = config.workers;
        let state = web::Data::new(State {
            issuer: config.issuer.clone().unwrap_or_else(|| origin.clone()),
            config,
            origin,
            keys: RwLock::new(keys),
            logins: Mutex::default(),
            last_launch: Mutex::default(),
            deep_link_responses: Mutex::default(),
            log: RequestLog::default(),
            registration: registration::Registrar::default(),
            services: services::Services::default(),
        });
        let serving = Serving::start(listener, workers, state.clone(), server::handle)?;
        Ok(LtiPlatform { state, serving })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        self.state.origin.clone()
    }

    /// The `iss` of its tokens: the configured one or the origin.
    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    /// `http://127.0.0.1:PORT/jwks`: the registration's key set URL.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.state.origin)
    }

    /// `http://127.0.0.1:PORT/auth`: the registration's `auth_login_url`.
    pub fn auth_url(&self) -> String {
        format!("{}{AUTH_PATH}", self.state.origin)
    }

    /// `http://127.0.0.1:PORT/deep_links`: the default `deep_link_return_url`.
    pub fn deep_link_return_url(&self) -> String {
        format!("{}{DEEP_LINKS_PATH}", self.state.origin)
    }

    pub fn config(&self) -> &LtiPlatformConfig {
        &self.state.config
    }

    /// The fields of a third-party-initiated login for `launch` (§2), to POST to the tool's
    /// login URL: `iss`, `login_hint`, `target_link_uri`, `lti_message_hint`, `client_id` and
    /// `lti_deployment_id` (Canvas style: `deployment_id`, `canvas_region`,
    /// `canvas_environment`). The login hint and message hint are fresh and opaque; `/auth`
    /// answers this launch for that login hint, once.
    pub fn login_form(&self, launch: &LaunchSpec) -> Vec<(String, String)> {
        let state = &self.state;
        let login_hint = random_hint();
        let message_hint = random_hint();
        let mut fields = vec![
            ("iss".to_string(), state.issuer.clone()),
            ("login_hint".to_string(), login_hint.clone()),
            (
                "target_link_uri".to_string(),
                state.target_link_uri(launch).to_string(),
            ),
            ("lti_message_hint".to_string(), message_hint.clone()),
            ("client_id".to_string(), state.config.client_id.clone()),
        ];
        let deployment_id = state.deployment_id(launch).to_string();
        if launch.canvas_style {
            fields.push(("deployment_id".to_string(), deployment_id));
            fields.push(("canvas_region".to_string(), "us-east-1".to_string()));
            fields.push(("canvas_environment".to_string(), "prod".to_string()));
        } else {
            fields.push(("lti_deployment_id".to_string(), deployment_id));
        }
        lock(&state.logins).insert(
            login_hint,
            Login {
                spec: launch.clone(),
                message_hint,
            },
        );
        fields
    }

    /// The same login as a URL a browser follows (GET form): `tool_login_url` with the
    /// [`LtiPlatform::login_form`] fields in its query.
    pub fn login_url(&self, tool_login_url: &str, launch: &LaunchSpec) -> String {
        let query = self
            .login_form(launch)
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let separator = if tool_login_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{tool_login_url}{separator}{query}")
    }

    /// An id_token for `spec` signed now, as `/auth` would answer it for this nonce and
    /// audience, without a login.
    ///
    /// # Panics
    /// If RS256 signing with the platform's own generated key fails, which it cannot.
    pub fn signed_launch(&self, spec: &LaunchSpec, nonce: &str, aud: &str) -> String {
        self.state
            .sign(spec, nonce, aud)
            .expect("signing with the platform's own RSA key")
            .0
    }

    /// The last launch `/auth` answered with its form.
    pub fn last_launch(&self) -> Option<IssuedLaunch> {
        lock(&self.state.last_launch).clone()
    }

    /// The key set `/jwks` serves now.
    pub fn jwks(&self) -> Value {
        self.read_keys().jwks()
    }

    /// The kid tokens are signed with now.
    pub fn signing_kid(&self) -> String {
        self.read_keys().signing_kid().to_string()
    }

    /// The kids `/jwks` publishes, oldest first.
    pub fn published_kids(&self) -> Vec<String> {
        self.read_keys().published_kids()
    }

    /// A new key signs from now on, and `/jwks` publishes it beside the old ones until
    /// [`LtiPlatform::publish_only_new`]. Returns the new kid.
    pub fn rotate_key(&self) -> Result<String, ToolKeyError> {
        self.state
            .keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .rotate()
    }

    /// `/jwks` drops every key but the signing one: tokens signed before the rotation stop
    /// verifying once a tool refetches.
    pub fn publish_only_new(&self) {
        self.state
            .keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .publish_only_new();
    }

    /// The `JWT`s tools posted to `/deep_links`, in order.
    pub fn deep_link_responses(&self) -> Vec<String> {
        lock(&self.state.deep_link_responses).clone()
    }

    /// Every request answered so far, in the order the answers were ready.
    pub fn requests(&self) -> Vec<PlatformRequest> {
        self.state.log.all()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.state.log.clear();
    }

    /// Stops the server without waiting for requests in flight.
    pub async fn stop(self) {
        self.serving.stop().await;
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, PlatformKeys> {
        self.state.keys.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for LtiPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LtiPlatform")
            .field("origin", &self.state.origin)
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

/// A fresh opaque hint (128 random bits), as platforms' are.
fn random_hint() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
