//! LTI Dynamic Registration 1.0 (reference §13, R11), the parts without I/O: an invitation's
//! input and token, the platform's OpenID configuration read and checked, the tool's
//! registration request, and the platform's answer read into a registration to store.
//! [`flow`] does the exchanges and the storing.
//!
//! Why each rule:
//! - The configuration URL must sit at or below the configuration's `issuer` (DR §3.5.1):
//!   otherwise whoever serves a configuration could claim any issuer, and launches signed for
//!   it would be accepted. Moodle's URL is not under its issuer, so an invitation may allow a
//!   foreign configuration (`--allow-foreign-configuration`): the administrator vouches for it.
//! - `private_key_jwt` and RS256 are the only client authentication and signing the tool
//!   speaks (Cert §4.2): a platform offering neither could not accept the tool's assertions.
//! - Bodies are bounded ([`MAX_BODY_BYTES`]): a configuration is a few kilobytes.
//! - The endpoints are checked by the rules an administrator's registration passes
//!   ([`super::registration_input`]), before the platform is asked to register anything.

pub mod flow;
#[cfg(test)]
mod tests;

use base64::Engine as _;
use reqwest::Url;
use serde_json::{json, Map, Value};

use super::registration_input::{
    parse_unknown_deployments, unknown_deployments_text, Field, InputErrors, NewPlatform,
    PlatformInput,
};
use super::UnknownDeployments;
use crate::auth::keys::random_bytes;
use crate::domain::problem::quoted;

pub use flow::{
    create_invite, register, CreatedInvite, InviteError, RegistrationError, RegistrationRequest,
};

/// The tool-configuration member of a registration request and its answer.
pub const TOOL_CONFIGURATION: &str = "https://purl.imsglobal.org/spec/lti-tool-configuration";
/// The platform-configuration member of an OpenID configuration.
pub const PLATFORM_CONFIGURATION: &str =
    "https://purl.imsglobal.org/spec/lti-platform-configuration";
/// Canvas's privacy level: the LIS person sourcedId, which a launch resolves users by, comes
/// only at `public`.
pub const CANVAS_PRIVACY_LEVEL: &str = "https://canvas.instructure.com/lti/privacy_level";
/// The `client_name` platforms show.
pub const CLIENT_NAME: &str = "rostergate";
/// What the tool asks for: AGS line items, results and scores, and NRPS memberships.
pub const TOOL_SCOPES: [&str; 5] = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
];
/// The claims the tool asks launches to carry.
pub const TOOL_CLAIMS: [&str; 6] = ["iss", "sub", "name", "given_name", "family_name", "email"];
/// The largest configuration or registration answer read; a larger one is refused.
pub const MAX_BODY_BYTES: usize = 64 << 10;
/// How long an invitation lasts unless told otherwise: a day.
pub const DEFAULT_INVITE_TTL_MINS: i64 = 24 * 60;
/// The longest an invitation may last: thirty days.
pub const MAX_INVITE_TTL_MINS: i64 = 30 * 24 * 60;

/// A new invitation's token: 256 random bits, URL-safe. Shown once, in the invitation's URL.
pub fn new_invite_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What is stored of a token (its SHA-256): unguessable tokens need no stretching.
pub fn invite_token_hash(token: &str) -> String {
    crate::auth::clients::hash_secret(token)
}

/// The URL an administrator pastes into the LMS: `{public_url}/lti/register/{token}`.
pub fn invite_url(public_url: &str, token: &str) -> String {
    format!("{}/lti/register/{token}", public_url.trim_end_matches('/'))
}

/// A field of an invitation's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteField {
    UnknownDeployments,
    TtlMins,
}

/// What is wrong with one field of an invitation's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InviteFieldError {
    pub field: InviteField,
    pub message: String,
}

/// An invitation as asked for (CLI flags or an API body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InviteInput {
    /// `refuse` (when left out) or `pending`.
    pub unknown_deployments: Option<String>,
    /// Minutes it lasts; [`DEFAULT_INVITE_TTL_MINS`] when left out.
    pub ttl_mins: Option<i64>,
    pub allow_foreign_configuration: bool,
}

/// A checked invitation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteRequest {
    pub unknown_deployments: UnknownDeployments,
    pub ttl: chrono::Duration,
    pub allow_foreign_configuration: bool,
}

impl InviteInput {
    /// The checked request, or every problem found.
    pub fn validate(&self) -> Result<InviteRequest, Vec<InviteFieldError>> {
        let mut problems = Vec::new();
        let unknown_deployments = parse_unknown_deployments(self.unknown_deployments.as_deref())
            .map_err(|message| {
                problems.push(InviteFieldError {
                    field: InviteField::UnknownDeployments,
                    message,
                })
            });
        let ttl_mins = self.ttl_mins.unwrap_or(DEFAULT_INVITE_TTL_MINS);
        if !(1..=MAX_INVITE_TTL_MINS).contains(&ttl_mins) {
            problems.push(InviteFieldError {
                field: InviteField::TtlMins,
                message: format!("must be from 1 to {MAX_INVITE_TTL_MINS} minutes (30 days)"),
            });
        }
        match unknown_deployments {
            Ok(unknown_deployments) if problems.is_empty() => Ok(InviteRequest {
                unknown_deployments,
                ttl: chrono::Duration::minutes(ttl_mins),
                allow_foreign_configuration: self.allow_foreign_configuration,
            }),
            _ => Err(problems),
        }
    }
}

/// What the gateway uses of a platform's OpenID configuration (§13 step 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformConfiguration {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub registration_endpoint: String,
    /// Canvas's audience for client assertions, when it is not the token endpoint.
    pub authorization_server: Option<String>,
    /// `canvas`, `moodle`, …: from the platform-configuration member.
    pub product_family_code: Option<String>,
}

/// Why a platform's OpenID configuration is refused; each with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigurationError {
    #[error("the platform's configuration is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the platform's configuration is not a JSON object")]
    NotJson,
    #[error("the platform's configuration has no {0}")]
    MissingField(&'static str),
    #[error("the platform's configuration's {field} {message}")]
    InvalidField { field: String, message: String },
    #[error(
        "the configuration URL {url} is not at or below the issuer {} it names: ask for an \
         invitation that allows a foreign configuration if this platform (Moodle) is known to \
         serve it elsewhere",
        quoted(issuer)
    )]
    IssuerMismatch { issuer: String, url: String },
    #[error(
        "the platform does not offer private_key_jwt client authentication \
         (token_endpoint_auth_methods_supported), the only one the tool speaks"
    )]
    NoPrivateKeyJwt,
    #[error(
        "the platform does not sign id_tokens with RS256 \
         (id_token_signing_alg_values_supported), the only algorithm the tool accepts"
    )]
    NoRs256,
}

impl ConfigurationError {
    pub fn code(&self) -> &'static str {
        match self {
            ConfigurationError::TooLarge => "configuration_too_large",
            ConfigurationError::NotJson => "configuration_not_json",
            ConfigurationError::MissingField(_) => "configuration_missing_field",
            ConfigurationError::InvalidField { .. } => "configuration_invalid_field",
            ConfigurationError::IssuerMismatch { .. } => "issuer_mismatch",
            ConfigurationError::NoPrivateKeyJwt => "private_key_jwt_unsupported",
            ConfigurationError::NoRs256 => "rs256_unsupported",
        }
    }
}

/// Scheme, host, port and path of a URL: its query may carry a token, so it is never shown.
pub fn describe_url(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// Reads and checks a platform's OpenID configuration, fetched from `url`: size, JSON, the
/// fields the tool needs, the issuer against the URL (unless `allow_foreign`), client
/// authentication and signing, then the endpoints by the registration rules.
pub fn parse_configuration(
    body: &[u8],
    url: &Url,
    allow_foreign: bool,
) -> Result<PlatformConfiguration, ConfigurationError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ConfigurationError::TooLarge);
    }
    let json: Value = serde_json::from_slice(body).map_err(|_| ConfigurationError::NotJson)?;
    let object = json.as_object().ok_or(ConfigurationError::NotJson)?;
    let issuer = required_text(object, "issuer")?;
    let authorization_endpoint = required_text(object, "authorization_endpoint")?;
    let token_endpoint = required_text(object, "token_endpoint")?;
    let jwks_uri = required_text(object, "jwks_uri")?;
    let registration_endpoint = required_text(object, "registration_endpoint")?;
    if !allow_foreign && !at_or_below_issuer(url, &issuer) {
        return Err(ConfigurationError::IssuerMismatch {
            issuer,
            url: describe_url(url),
        });
    }
    if !required_list(object, "token_endpoint_auth_methods_supported")?.contains(&"private_key_jwt")
    {
        return Err(ConfigurationError::NoPrivateKeyJwt);
    }
    if !required_list(object, "id_token_signing_alg_values_supported")?.contains(&"RS256") {
        return Err(ConfigurationError::NoRs256);
    }
    let authorization_server = optional_text(object, "authorization_server")?;
    let product_family_code = object
        .get(PLATFORM_CONFIGURATION)
        .and_then(|c| c.get("product_family_code"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let registration = Url::parse(&registration_endpoint)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| ConfigurationError::InvalidField {
            field: "registration_endpoint".into(),
            message: format!("{} is not an http(s) URL", quoted(&registration_endpoint)),
        })?;
    if !registration.username().is_empty() || registration.password().is_some() {
        return Err(ConfigurationError::InvalidField {
            field: "registration_endpoint".into(),
            message: "must not carry a user name or password".into(),
        });
    }
    let configuration = PlatformConfiguration {
        issuer,
        authorization_endpoint,
        token_endpoint,
        jwks_uri,
        registration_endpoint,
        authorization_server,
        product_family_code,
    };
    // The endpoints pass the rules an administrator's registration does, checked before the
    // platform is asked to register anything (the client id is not known yet).
    let placeholder = RegisteredClient {
        client_id: "client-id-to-come".into(),
        deployment_id: None,
    };
    new_platform(&configuration, &placeholder, UnknownDeployments::Refuse).map_err(|errors| {
        let first = errors.0.into_iter().next();
        ConfigurationError::InvalidField {
            field: first
                .as_ref()
                .map_or_else(|| "issuer".into(), |e| configuration_field(e.field)),
            message: first.map(|e| e.message).unwrap_or_default(),
        }
    })?;
    Ok(configuration)
}

/// The configuration member a registration field comes from.
fn configuration_field(field: Field) -> String {
    match field {
        Field::Issuer => "issuer".into(),
        Field::AuthLoginUrl => "authorization_endpoint".into(),
        Field::TokenUrl => "token_endpoint".into(),
        Field::JwksUrl => "jwks_uri".into(),
        // The token audience comes from `authorization_server`; the rest are not read from
        // a configuration.
        other => other.to_string(),
    }
}

fn required_text(
    object: &Map<String, Value>,
    name: &'static str,
) -> Result<String, ConfigurationError> {
    optional_text(object, name)?.ok_or(ConfigurationError::MissingField(name))
}

/// A member that must be a non-empty string when present (`null` counts as absent).
fn optional_text(
    object: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, ConfigurationError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(ConfigurationError::InvalidField {
            field: name.into(),
            message: "must be a non-empty string".into(),
        }),
    }
}

fn required_list<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Vec<&'a str>, ConfigurationError> {
    let items = match object.get(name) {
        None | Some(Value::Null) => return Err(ConfigurationError::MissingField(name)),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ConfigurationError::InvalidField {
                field: name.into(),
                message: "must be an array of strings".into(),
            })
        }
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .ok_or_else(|| ConfigurationError::InvalidField {
                    field: name.into(),
                    message: "must be an array of strings".into(),
                })
        })
        .collect()
}

/// Is `url` the issuer's own URL or under it: same scheme, host and port, and the issuer's
/// path a prefix of the URL's at a segment boundary (`/lms` covers `/lms/…`, not `/lms2`).
pub fn at_or_below_issuer(url: &Url, issuer: &str) -> bool {
    let Ok(issuer) = Url::parse(issuer) else {
        return false;
    };
    let same_origin = url.scheme() == issuer.scheme()
        && url.host_str() == issuer.host_str()
        && url.port_or_known_default() == issuer.port_or_known_default();
    let base = issuer.path().trim_end_matches('/');
    let path = url.path();
    same_origin
        && (base.is_empty()
            || path == base
            || path
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// The tool's registration request (§13 step 3), for this gateway and platform.
pub fn registration_request(
    public_url: &str,
    target_link_uri: &str,
    configuration: &PlatformConfiguration,
) -> Value {
    let base = public_url.trim_end_matches('/');
    let domain = Url::parse(base)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_string();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_default();
    let message = |kind: &str| json!({ "type": kind, "target_link_uri": target_link_uri });
    let mut request = json!({
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": format!("{base}/lti/login"),
        "redirect_uris": [format!("{base}/lti/launch")],
        "client_name": CLIENT_NAME,
        "jwks_uri": format!("{base}/lti/jwks"),
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": TOOL_SCOPES.join(" "),
        TOOL_CONFIGURATION: {
            "domain": domain,
            "target_link_uri": target_link_uri,
            "claims": TOOL_CLAIMS,
            "messages": [message("LtiResourceLinkRequest"), message("LtiDeepLinkingRequest")],
            "description": "Rostering gateway: sign-in to the learning platform on the district's roster",
        },
    });
    if configuration.product_family_code.as_deref() == Some("canvas") {
        request[CANVAS_PRIVACY_LEVEL] = json!("public");
    }
    request
}

/// What a platform's registration answer gave the tool (§13 step 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    pub client_id: String,
    /// Some platforms (Moodle) name the deployment; Canvas makes one at install.
    pub deployment_id: Option<String>,
}

/// Why a registration answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the platform's registration answer {0}")]
pub struct AnswerError(pub String);

/// Reads `client_id` and the tool-configuration member's optional `deployment_id`.
pub fn read_registration_answer(body: &[u8]) -> Result<RegisteredClient, AnswerError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AnswerError(format!(
            "is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let json: Value =
        serde_json::from_slice(body).map_err(|_| AnswerError("is not JSON".into()))?;
    let client_id = match json.get("client_id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        // Some platforms number their clients.
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(AnswerError("has a client_id that is not a string".into())),
        None => return Err(AnswerError("has no client_id".into())),
    };
    let deployment_id = match json
        .get(TOOL_CONFIGURATION)
        .and_then(|c| c.get("deployment_id"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(AnswerError(
                "has a deployment_id that is not a string".into(),
            ))
        }
    };
    Ok(RegisteredClient {
        client_id,
        deployment_id,
    })
}

/// The registration to store: the configuration's endpoints, the answer's client id and
/// deployment, checked by the rules an administrator's registration passes. A platform that
/// names no deployment yet is stored without one and with `pending` whatever `policy` says:
/// refusing every deployment would leave it unusable, so its launches are admitted and their
/// deployments recorded until an administrator claims them.
pub fn new_platform(
    configuration: &PlatformConfiguration,
    client: &RegisteredClient,
    policy: UnknownDeployments,
) -> Result<NewPlatform, InputErrors> {
    let (deployment_ids, policy) = match &client.deployment_id {
        Some(id) => (vec![id.clone()], policy),
        // Validated with a stand-in (at least one is required of an administrator), then
        // stored with none.
        None => (vec!["-".to_string()], UnknownDeployments::Pending),
    };
    let input = PlatformInput {
        issuer: configuration.issuer.clone(),
        client_id: client.client_id.clone(),
        deployment_ids,
        auth_login_url: configuration.authorization_endpoint.clone(),
        token_url: configuration.token_endpoint.clone(),
        jwks_url: configuration.jwks_uri.clone(),
        unknown_deployments: Some(unknown_deployments_text(policy).to_string()),
        token_audience: configuration.authorization_server.clone(),
    };
    let mut platform = input.validate()?;
    if client.deployment_id.is_none() {
        platform.deployment_ids.clear();
    }
    Ok(platform)
}
