//! The one request handler: `/jwks`, the `/auth` authorization endpoint and the `/deep_links`
//! return URL, each request logged with why it was refused.

use actix_web::http::header::{self, ContentType};
use actix_web::http::Method;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::form::auto_submit_form;
use super::{lock, IssuedLaunch, PlatformRequest, State, AUTH_PATH, DEEP_LINKS_PATH, JWKS_PATH};
use crate::synthetic::provider::query_pairs;

pub(super) async fn handle(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let form = if is_form(&req) {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        String::new()
    };
    // Dynamic Registration's paths read the raw (JSON) body; the others a form.
    let (response, refusal) = match super::registration::respond(&req, &body, &state) {
        Some(answer) => answer,
        None => match super::services::respond(&req, &body, &state) {
            Some(answer) => answer,
            None => respond(&req, &form, &state),
        },
    };
    let entry = PlatformRequest {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        form,
        status: response.status().as_u16(),
        refusal,
    };
    state.log.push(entry);
    response
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The answer and, for a 4xx, the message it carries.
fn respond(req: &HttpRequest, form: &str, state: &State) -> (HttpResponse, Option<String>) {
    let method = req.method();
    let refused = |status: u16, message: String| {
        let status = actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
        let response = HttpResponse::build(status)
            .content_type(ContentType::plaintext())
            .body(message.clone());
        (response, Some(message))
    };
    match req.path() {
        JWKS_PATH if method == Method::GET => {
            let jwks = state.keys.read().unwrap_or_else(|e| e.into_inner()).jwks();
            (HttpResponse::Ok().json(jwks), None)
        }
        // An authorization request may come as a GET or a form POST (OIDC Core §3.1.2.1).
        AUTH_PATH if method == Method::GET || method == Method::POST => {
            let params = if method == Method::GET {
                req.query_string()
            } else {
                form
            };
            match authorize(params, state) {
                Ok(html) => (
                    HttpResponse::Ok()
                        .content_type(ContentType::html())
                        .insert_header((header::CACHE_CONTROL, "no-store"))
                        .body(html),
                    None,
                ),
                Err(Refusal::BadRequest(message)) => refused(400, message),
                Err(Refusal::Failed(message)) => refused(500, message),
            }
        }
        DEEP_LINKS_PATH if method == Method::POST => {
            let jwt = query_pairs(form)
                .unwrap_or_default()
                .into_iter()
                .find(|(name, _)| name == "JWT");
            match jwt {
                Some((_, jwt)) => {
                    lock(&state.deep_link_responses).push(jwt);
                    let page = "<!DOCTYPE html>\n<p>Content received.</p>\n";
                    let response = HttpResponse::Ok()
                        .content_type(ContentType::html())
                        .body(page);
                    (response, None)
                }
                None => refused(400, "JWT is missing".into()),
            }
        }
        JWKS_PATH | AUTH_PATH | DEEP_LINKS_PATH => {
            refused(405, format!("{method} is not allowed on {}", req.path()))
        }
        _ => refused(404, "no such endpoint".into()),
    }
}

enum Refusal {
    /// 400: which parameter, and why.
    BadRequest(String),
    /// 500: the platform could not sign.
    Failed(String),
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Refusal::BadRequest(message)
    }
}

/// Checks an authentication request (§3) in the table's order and answers its login's launch
/// as the auto-submitting form; the login is consumed.
fn authorize(params: &str, state: &State) -> Result<String, Refusal> {
    let params = query_pairs(params).ok_or("the parameters are not validly encoded".to_string())?;
    // The first value of a repeated parameter counts, as in most OIDC servers.
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let required = |name: &str| get(name).ok_or_else(|| format!("{name} is missing"));
    let exactly = |name: &str, expected: &str| {
        let value = required(name)?;
        if value == expected {
            Ok(())
        } else {
            Err(format!("{name} must be {expected:?}, not {value:?}"))
        }
    };

    // A space-separated list (OIDC Core §3.1.2.1) that must hold openid.
    let scope = required("scope")?;
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(format!("scope must include \"openid\", not {scope:?}").into());
    }
    exactly("response_type", "id_token")?;
    exactly("response_mode", "form_post")?;
    exactly("prompt", "none")?;
    exactly("client_id", &state.config.client_id)?;
    let redirect_uri = required("redirect_uri")?;
    if let Some(registered) = &state.config.tool_redirect_uri {
        if redirect_uri != registered {
            return Err(format!(
                "redirect_uri {redirect_uri:?} is not the tool's registered redirect URI"
            )
            .into());
        }
    }
    let login_hint = required("login_hint")?;
    let spec = {
        let logins = lock(&state.logins);
        let login = logins.get(login_hint).ok_or_else(|| {
            format!("login_hint {login_hint:?} is not a login this platform started (or it was answered already)")
        })?;
        match get("lti_message_hint") {
            None => return Err("lti_message_hint is missing".to_string().into()),
            Some(hint) if hint != login.message_hint => {
                return Err("lti_message_hint is not the one sent with the login"
                    .to_string()
                    .into())
            }
            Some(_) => login.spec.clone(),
        }
    };
    let request_state = non_empty("state", required("state")?)?;
    let nonce = non_empty("nonce", required("nonce")?)?;
    // Consumed only now, so a refused request can be corrected and sent again.
    if lock(&state.logins).remove(login_hint).is_none() {
        return Err(format!("login_hint {login_hint:?} was answered already").into());
    }

    let (id_token, kid) = state
        .sign(&spec, nonce, &state.config.client_id)
        .map_err(|e| Refusal::Failed(format!("cannot sign the id_token: {e}")))?;
    let html = auto_submit_form(
        redirect_uri,
        &[("id_token", &id_token), ("state", request_state)],
    );
    *lock(&state.last_launch) = Some(IssuedLaunch {
        id_token,
        state: request_state.to_string(),
        nonce: nonce.to_string(),
        redirect_uri: redirect_uri.to_string(),
        login_hint: login_hint.to_string(),
        kid,
    });
    Ok(html)
}

/// A required parameter that must not be empty either.
fn non_empty<'a>(name: &str, value: &'a str) -> Result<&'a str, String> {
    if value.is_empty() {
        Err(format!("{name} is empty"))
    } else {
        Ok(value)
    }
}
