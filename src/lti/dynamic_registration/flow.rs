//! The exchanges of a dynamic registration and what they store: an invitation made, then the
//! platform's OpenID configuration fetched, the tool registered at its registration endpoint,
//! and the registration stored in the invitation's district as the invitation is used up.
//!
//! The URLs come from whoever opened the invitation's URL, so they are fetched as a platform's
//! key set is ([`crate::lti::platform_keys`]): https only and no private targets (unless
//! `lti.allow_insecure_platforms`), host names resolved through the [`TargetGuard`], no
//! redirects, a whole-exchange timeout, and bodies read up to [`MAX_BODY_BYTES`]. The
//! registration token is a bearer credential: it is sent as a header only, and no message or
//! log line carries it (URLs are shown without their query).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};

use super::{
    describe_url, invite_token_hash, invite_url, new_invite_token, new_platform,
    parse_configuration, read_registration_answer, registration_request, AnswerError,
    ConfigurationError, InviteRequest, MAX_BODY_BYTES,
};
use crate::config::LtiSettings;
use crate::outbound::diagnostics::describe_transport_error;
use crate::outbound::response::read_capped;
use crate::outbound::target_guard::{GuardedResolver, TargetGuard};
use crate::outbound::{tls, USER_AGENT};
use crate::store::lti::PlatformRow;
use crate::store::lti_registration_invites::{self as invites, InviteRow, NewInvite};
use crate::store::{Db, StoreError};

/// One whole exchange with the platform, body included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Opening the connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The public URL and the launch target a registration names, when LTI is configured.
fn configured(settings: &LtiSettings) -> Option<(&str, &str)> {
    let public_url = settings.public_url.as_deref()?;
    let target = settings.target_link_uris.first()?;
    Some((public_url, target.as_str()))
}

/// A new invitation and its URL (the token is in it, and nowhere else).
#[derive(Debug, Clone)]
pub struct CreatedInvite {
    pub url: String,
    pub invite: InviteRow,
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(
        "LTI is not configured on this gateway: lti.public_url and lti.target_link_uris must be \
         set before a platform can register"
    )]
    NotConfigured,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes a single-use invitation for a district, good until `now + request.ttl`.
pub async fn create_invite(
    db: &Db,
    settings: &LtiSettings,
    district_id: i64,
    request: &InviteRequest,
    now: DateTime<Utc>,
) -> Result<CreatedInvite, InviteError> {
    let (public_url, _) = configured(settings).ok_or(InviteError::NotConfigured)?;
    let token = new_invite_token();
    let invite = invites::insert_invite(
        db,
        &NewInvite {
            district_id,
            token_hash: invite_token_hash(&token),
            unknown_deployments: request.unknown_deployments,
            allow_foreign_configuration: request.allow_foreign_configuration,
            created_at: now,
            expires_at: now + request.ttl,
        },
    )
    .await?;
    Ok(CreatedInvite {
        url: invite_url(public_url, &token),
        invite,
    })
}

/// What the platform's request to the invitation's URL carried (§13 step 1).
#[derive(Clone, Default)]
pub struct RegistrationRequest {
    pub openid_configuration: Option<String>,
    /// A bearer credential: never shown.
    pub registration_token: Option<String>,
}

impl std::fmt::Debug for RegistrationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationRequest")
            .field(
                "openid_configuration",
                &self
                    .openid_configuration
                    .as_deref()
                    .map(|u| Url::parse(u).map_or("<not a URL>".into(), |u| describe_url(&u))),
            )
            .field(
                "registration_token",
                &self.registration_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a registration failed; each with its own code. Nothing is stored on any of them, and
/// the invitation stays usable unless it was used or expired.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("LTI is not configured on this gateway (lti.public_url, lti.target_link_uris)")]
    NotConfigured,
    #[error("this registration link is not known: ask the gateway's administrator for a new one")]
    UnknownInvite,
    #[error(
        "this registration link was used already: ask the gateway's administrator for a new one"
    )]
    InviteUsed,
    #[error("this registration link has expired: ask the gateway's administrator for a new one")]
    InviteExpired,
    #[error("the platform did not send its openid_configuration URL")]
    MissingConfigurationUrl,
    #[error("the openid_configuration URL {0}")]
    ConfigurationUrl(String),
    #[error("{0}: the platform refused the registration token")]
    TokenRejected(String),
    #[error("the platform's configuration could not be fetched: {0}")]
    ConfigurationUnavailable(String),
    #[error(transparent)]
    Configuration(#[from] ConfigurationError),
    #[error("the platform did not register the tool: {0}")]
    RegistrationFailed(String),
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error("{0}")]
    AlreadyRegistered(String),
    #[error(transparent)]
    Store(StoreError),
}

impl RegistrationError {
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationError::NotConfigured => "lti_not_configured",
            RegistrationError::UnknownInvite => "unknown_invite",
            RegistrationError::InviteUsed => "invite_used",
            RegistrationError::InviteExpired => "invite_expired",
            RegistrationError::MissingConfigurationUrl => "missing_openid_configuration",
            RegistrationError::ConfigurationUrl(_) => "invalid_openid_configuration_url",
            RegistrationError::TokenRejected(_) => "registration_token_rejected",
            RegistrationError::ConfigurationUnavailable(_) => "configuration_unavailable",
            RegistrationError::Configuration(e) => e.code(),
            RegistrationError::RegistrationFailed(_) => "registration_failed",
            RegistrationError::Answer(_) => "invalid_registration_answer",
            RegistrationError::AlreadyRegistered(_) => "already_registered",
            RegistrationError::Store(_) => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            // This gateway has no LTI tool: as if the route were not there (as logins).
            RegistrationError::NotConfigured | RegistrationError::UnknownInvite => 404,
            RegistrationError::InviteUsed | RegistrationError::InviteExpired => 410,
            RegistrationError::MissingConfigurationUrl | RegistrationError::ConfigurationUrl(_) => {
                400
            }
            RegistrationError::AlreadyRegistered(_) => 409,
            RegistrationError::Store(_) => 500,
            // The platform's answers were the trouble.
            RegistrationError::TokenRejected(_)
            | RegistrationError::ConfigurationUnavailable(_)
            | RegistrationError::Configuration(_)
            | RegistrationError::RegistrationFailed(_)
            | RegistrationError::Answer(_) => 502,
        }
    }
}

impl From<StoreError> for RegistrationError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => RegistrationError::AlreadyRegistered(message),
            other => RegistrationError::Store(other),
        }
    }
}

/// Registers the platform that opened invitation `token`'s URL (§13): the invitation checked,
/// the configuration fetched and checked, the tool registered, and the registration stored
/// in the invitation's district as the invitation is used up.
pub async fn register(
    db: &Db,
    settings: &LtiSettings,
    token: &str,
    request: &RegistrationRequest,
    now: DateTime<Utc>,
) -> Result<PlatformRow, RegistrationError> {
    let (public_url, target) = configured(settings).ok_or(RegistrationError::NotConfigured)?;
    let invite = invites::invite_by_token_hash(db, &invite_token_hash(token))
        .await?
        .ok_or(RegistrationError::UnknownInvite)?;
    if invite.used_at.is_some() {
        return Err(RegistrationError::InviteUsed);
    }
    if invite.expires_at <= now {
        return Err(RegistrationError::InviteExpired);
    }
    let insecure = settings.allow_insecure_platforms;
    let configuration_url = request
        .openid_configuration
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or(RegistrationError::MissingConfigurationUrl)?;
    let configuration_url =
        checked_url(configuration_url, insecure).map_err(RegistrationError::ConfigurationUrl)?;
    let bearer = request
        .registration_token
        .as_deref()
        .filter(|t| !t.is_empty());
    let client = Client::new(insecure).map_err(RegistrationError::ConfigurationUnavailable)?;

    // Canvas wants the registration token on this GET too.
    let answer = client
        .exchange(Method::GET, &configuration_url, bearer, None)
        .await
        .map_err(RegistrationError::ConfigurationUnavailable)?;
    answer.successful().map_err(|failure| match failure {
        Failure::TokenRefused(why) => RegistrationError::TokenRejected(why),
        Failure::Other(why) => RegistrationError::ConfigurationUnavailable(why),
    })?;
    if answer.too_large {
        return Err(ConfigurationError::TooLarge.into());
    }
    let configuration = parse_configuration(
        &answer.body,
        &configuration_url,
        invite.allow_foreign_configuration,
    )?;
    let registration_url =
        checked_url(&configuration.registration_endpoint, insecure).map_err(|message| {
            ConfigurationError::InvalidField {
                field: "registration_endpoint".into(),
                message,
            }
        })?;

    let body = registration_request(public_url, target, &configuration).to_string();
    let answer = client
        .exchange(
            Method::POST,
            &registration_url,
            bearer,
            Some(body.into_bytes()),
        )
        .await
        .map_err(RegistrationError::RegistrationFailed)?;
    answer.successful().map_err(|failure| match failure {
        Failure::TokenRefused(why) => RegistrationError::TokenRejected(why),
        Failure::Other(why) => RegistrationError::RegistrationFailed(why),
    })?;
    if answer.too_large {
        return Err(AnswerError(format!("is larger than {MAX_BODY_BYTES} bytes")).into());
    }
    let registered = read_registration_answer(&answer.body)?;
    let platform = new_platform(&configuration, &registered, invite.unknown_deployments)
        .map_err(|e| AnswerError(format!("cannot be registered: {e}")))?;
    invites::register_through_invite(db, &invite, &platform, now)
        .await?
        // The expiry was checked at this same `now`: someone else used it meanwhile.
        .ok_or(RegistrationError::InviteUsed)
}

/// A URL the gateway may call: http(s) with a host and no credentials; plain http only when
/// insecure platforms are allowed (tests).
fn checked_url(raw: &str, insecure: bool) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| "is not a URL".to_string())?;
    let shown = describe_url(&url);
    match url.scheme() {
        "https" => {}
        "http" if insecure => {}
        _ => return Err(format!("{shown} must be https")),
    }
    if !url.has_host() {
        return Err(format!("{shown} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{shown} must not carry a user name or password"));
    }
    Ok(url)
}

/// The HTTP client for one registration.
struct Client {
    http: reqwest::Client,
    guard: TargetGuard,
}

/// A platform's answer, its body read up to the cap.
struct Answer {
    /// `GET https://lms.example.org/path`: what was asked, without the query.
    what: String,
    status: StatusCode,
    body: Vec<u8>,
    too_large: bool,
}

/// Why an answer is not a success.
enum Failure {
    /// 401 or 403: the registration token was refused (or one was wanted).
    TokenRefused(String),
    Other(String),
}

impl Answer {
    /// A 2xx answer, or why not.
    fn successful(&self) -> Result<(), Failure> {
        let status = self.status.as_u16();
        if self.status.is_success() {
            Ok(())
        } else if matches!(status, 401 | 403) {
            Err(Failure::TokenRefused(format!(
                "{}: HTTP {status}",
                self.what
            )))
        } else if self.status.is_redirection() {
            Err(Failure::Other(format!(
                "{}: HTTP {status}: redirects are not followed",
                self.what
            )))
        } else {
            Err(Failure::Other(format!(
                "{}: HTTP {status}{}",
                self.what,
                excerpt(&self.body)
            )))
        }
    }
}

/// A short, printable excerpt of a platform's error answer (its own words help the person
/// registering), or nothing.
fn excerpt(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

impl Client {
    fn new(insecure: bool) -> Result<Client, String> {
        tls::install_crypto_provider();
        let guard = TargetGuard::new(insecure);
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(USER_AGENT);
        if !insecure {
            // Names resolve through the guard: the address checked is the address connected to.
            builder = builder
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver(guard)));
        }
        let http = builder.build().map_err(|e| {
            format!(
                "cannot build the HTTP client: {}",
                describe_transport_error(&e)
            )
        })?;
        Ok(Client { http, guard })
    }

    /// One request, JSON out and in, the bearer token as a header only.
    async fn exchange(
        &self,
        method: Method,
        url: &Url,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, String> {
        let what = format!("{method} {}", describe_url(url));
        // Literal addresses never reach the resolver.
        let literal = url.host_str().is_none_or(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
        });
        if literal {
            self.guard
                .check(url)
                .await
                .map_err(|e| format!("{what}: {e}"))?;
        }
        let mut request = self
            .http
            .request(method, url.clone())
            .header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("{what}: {}", describe_transport_error(&e)))?;
        let status = response.status();
        let cap = MAX_BODY_BYTES as u64;
        if response.content_length().is_some_and(|n| n > cap) {
            return Ok(Answer {
                what,
                status,
                body: Vec::new(),
                too_large: true,
            });
        }
        let body = read_capped(&mut response, cap)
            .await
            .map_err(|e| format!("{what}: {}", describe_transport_error(&e)))?;
        Ok(Answer {
            what,
            status,
            body: body.bytes,
            too_large: body.truncated,
        })
    }
}
