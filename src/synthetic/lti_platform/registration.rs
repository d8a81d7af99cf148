//! Dynamic Registration as a platform plays it (reference §13): its OpenID configuration at
//! `GET /.well-known/openid-configuration` and its registration endpoint at `POST /register`,
//! both asking for the registration token as a bearer when one is required
//! ([`LtiPlatform::require_registration_token`]). The endpoint checks the tool's request as a
//! strict platform would, answers the config's client id (and deployment id, unless told not
//! to), and records every request it received. [`OpenIdConfigurationSpec`] spoils the
//! configuration for the tool's refusals: members replaced or removed, or padding to make it
//! oversized.

use std::sync::Mutex;

use actix_web::http::header::{self, ContentType};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{lock, LtiPlatform, State, AUTH_PATH, JWKS_PATH, TOKEN_PATH};

/// The OpenID configuration's path: under the issuer (its origin), as DR §3.5.1 wants.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// The registration endpoint's path.
pub const REGISTRATION_PATH: &str = "/register";
/// The tool-configuration member of a registration and its answer.
const TOOL_CONFIGURATION: &str = "https://purl.imsglobal.org/spec/lti-tool-configuration";

/// How the configuration is spoiled; the default serves it as a valid platform does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenIdConfigurationSpec {
    /// Top-level members added or replaced (`issuer`, `token_endpoint_auth_methods_supported`…).
    pub extra_members: Map<String, Value>,
    /// Top-level members removed (after `extra_members`).
    pub remove_members: Vec<String>,
    /// A `padding` member of this many bytes, to make the configuration oversized.
    pub padding_bytes: usize,
}

impl OpenIdConfigurationSpec {
    pub fn with_member(mut self, name: &str, value: Value) -> Self {
        self.extra_members.insert(name.to_string(), value);
        self
    }

    pub fn without_member(mut self, name: &str) -> Self {
        self.remove_members.push(name.to_string());
        self
    }

    pub fn with_padding(mut self, bytes: usize) -> Self {
        self.padding_bytes = bytes;
        self
    }
}

/// A request the registration endpoint received, and how it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRegistration {
    /// The `Authorization: Bearer` token, if one came.
    pub bearer: Option<String>,
    /// The body as JSON (`null` when it was not).
    pub body: Value,
    pub status: u16,
    /// Why it was refused.
    pub refusal: Option<String>,
}

/// Dynamic Registration's share of the platform's state.
#[derive(Default)]
pub(super) struct Registrar {
    token: Mutex<Option<String>>,
    spec: Mutex<OpenIdConfigurationSpec>,
    omit_deployment: Mutex<bool>,
    /// The bearer each configuration request carried.
    configuration_requests: Mutex<Vec<Option<String>>>,
    registrations: Mutex<Vec<ReceivedRegistration>>,
}

impl LtiPlatform {
    /// `http://127.0.0.1:PORT/.well-known/openid-configuration`.
    pub fn openid_configuration_url(&self) -> String {
        format!("{}{OPENID_CONFIGURATION_PATH}", self.state.origin)
    }

    /// `http://127.0.0.1:PORT/register`.
    pub fn registration_url(&self) -> String {
        format!("{}{REGISTRATION_PATH}", self.state.origin)
    }

    /// The configuration and the registration endpoint answer 401 unless this bearer comes.
    pub fn require_registration_token(&self, token: impl Into<String>) {
        *lock(&self.state.registration.token) = Some(token.into());
    }

    /// Serves the configuration spoiled as `spec` says from now on.
    pub fn set_openid_configuration(&self, spec: OpenIdConfigurationSpec) {
        *lock(&self.state.registration.spec) = spec;
    }

    /// Registration answers name no deployment id (as Canvas's), or do again.
    pub fn omit_deployment_in_registrations(&self, omit: bool) {
        *lock(&self.state.registration.omit_deployment) = omit;
    }

    /// The OpenID configuration served now, spoiled as set.
    pub fn openid_configuration(&self) -> Value {
        configuration(&self.state)
    }

    /// The bearer token of each configuration request, in order.
    pub fn configuration_requests(&self) -> Vec<Option<String>> {
        lock(&self.state.registration.configuration_requests).clone()
    }

    /// Every request the registration endpoint received, in order.
    pub fn registrations(&self) -> Vec<ReceivedRegistration> {
        lock(&self.state.registration.registrations).clone()
    }
}

/// The answer for the registration paths, or `None` for the other paths.
pub(super) fn respond(
    req: &HttpRequest,
    body: &[u8],
    state: &State,
) -> Option<(HttpResponse, Option<String>)> {
    let method = req.method();
    let answer = match req.path() {
        OPENID_CONFIGURATION_PATH if method == Method::GET => {
            let bearer = bearer(req);
            lock(&state.registration.configuration_requests).push(bearer.clone());
            match check_bearer(bearer.as_deref(), state) {
                Err(why) => refused(401, why),
                Ok(()) => (HttpResponse::Ok().json(configuration(state)), None),
            }
        }
        REGISTRATION_PATH if method == Method::POST => register(req, body, state),
        OPENID_CONFIGURATION_PATH | REGISTRATION_PATH => {
            refused(405, format!("{method} is not allowed on {}", req.path()))
        }
        _ => return None,
    };
    Some(answer)
}

fn refused(status: u16, message: String) -> (HttpResponse, Option<String>) {
    let response =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
            .content_type(ContentType::plaintext())
            .body(message.clone());
    (response, Some(message))
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

fn check_bearer(bearer: Option<&str>, state: &State) -> Result<(), String> {
    match (lock(&state.registration.token).as_deref(), bearer) {
        (None, _) => Ok(()),
        (Some(_), None) => Err("the registration token is missing".into()),
        (Some(want), Some(got)) if want == got => Ok(()),
        (Some(_), Some(_)) => Err("the registration token is not the one issued".into()),
    }
}

/// The configuration a platform publishes (§13 step 2), spoiled as set.
fn configuration(state: &State) -> Value {
    let origin = &state.origin;
    let mut value = json!({
        "issuer": state.issuer,
        "authorization_endpoint": format!("{origin}{AUTH_PATH}"),
        "token_endpoint": format!("{origin}{TOKEN_PATH}"),
        "jwks_uri": format!("{origin}{JWKS_PATH}"),
        "registration_endpoint": format!("{origin}{REGISTRATION_PATH}"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public", "pairwise"],
        "scopes_supported": [
            "openid",
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
        ],
        "claims_supported": ["iss", "sub", "aud", "name", "given_name", "family_name", "email"],
        "https://purl.imsglobal.org/spec/lti-platform-configuration": {
            "product_family_code": "rostergate-synthetic",
            "version": env!("CARGO_PKG_VERSION"),
            "messages_supported": [
                {"type": "LtiResourceLinkRequest"},
                {"type": "LtiDeepLinkingRequest"},
            ],
        },
    });
    let spec = lock(&state.registration.spec).clone();
    if let Some(object) = value.as_object_mut() {
        object.extend(spec.extra_members);
        for name in &spec.remove_members {
            object.remove(name);
        }
        if spec.padding_bytes > 0 {
            object.insert("padding".into(), json!("x".repeat(spec.padding_bytes)));
        }
    }
    value
}

/// The registration endpoint (§13 steps 3–4): the bearer, then the request as a strict
/// platform checks it; the answer names the config's client id and deployment.
fn register(req: &HttpRequest, body: &[u8], state: &State) -> (HttpResponse, Option<String>) {
    let bearer = bearer(req);
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (response, refusal) = match check_bearer(bearer.as_deref(), state) {
        Err(why) => refused(401, why),
        Ok(()) => match check_registration(req, &json, state) {
            Err(why) => refused(400, why),
            Ok(()) => {
                let mut answer = json.clone();
                answer["client_id"] = json!(state.config.client_id);
                if !*lock(&state.registration.omit_deployment) {
                    answer[TOOL_CONFIGURATION]["deployment_id"] = json!(state.config.deployment_id);
                }
                (HttpResponse::Ok().json(answer), None)
            }
        },
    };
    lock(&state.registration.registrations).push(ReceivedRegistration {
        bearer,
        body: json,
        status: response.status().as_u16(),
        refusal: refusal.clone(),
    });
    (response, refusal)
}

fn check_registration(req: &HttpRequest, body: &Value, state: &State) -> Result<(), String> {
    let json_body = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Err("the registration must be application/json".into());
    }
    if !body.is_object() {
        return Err("the registration is not a JSON object".into());
    }
    let text = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{name} is missing"))
    };
    let list = |name: &str| -> Vec<&str> {
        body.get(name)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let exactly = |name: &str, want: &str| match text(name)? {
        got if got == want => Ok(()),
        got => Err(format!("{name} must be {want:?}, not {got:?}")),
    };
    exactly("application_type", "web")?;
    exactly("token_endpoint_auth_method", "private_key_jwt")?;
    if !list("response_types").contains(&"id_token") {
        return Err("response_types must hold id_token".into());
    }
    let grants = list("grant_types");
    if !grants.contains(&"implicit") || !grants.contains(&"client_credentials") {
        return Err("grant_types must hold implicit and client_credentials".into());
    }
    text("initiate_login_uri")?;
    text("jwks_uri")?;
    text("client_name")?;
    text("scope")?;
    let redirect_uris = list("redirect_uris");
    if redirect_uris.is_empty() {
        return Err("redirect_uris is missing".into());
    }
    if let Some(registered) = &state.config.tool_redirect_uri {
        if !redirect_uris.contains(&registered.as_str()) {
            return Err(format!(
                "redirect_uris does not hold the tool's redirect URI {registered:?}"
            ));
        }
    }
    let tool = body
        .get(TOOL_CONFIGURATION)
        .filter(|t| t.is_object())
        .ok_or_else(|| format!("{TOOL_CONFIGURATION} is missing"))?;
    if tool
        .get("target_link_uri")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err("the tool configuration has no target_link_uri".into());
    }
    let launches = tool
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|m| m["type"] == "LtiResourceLinkRequest"));
    if !launches {
        return Err("the tool configuration offers no LtiResourceLinkRequest message".into());
    }
    Ok(())
}
