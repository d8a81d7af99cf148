//! The LTI 1.3 tool's browser-facing routes: `GET|POST /lti/login` (a platform's login
//! initiation: a redirect to its authorization endpoint, with the state bound to the browser by
//! a cookie), `POST /lti/launch` (the launch: validated, resolved, and a redirect to the
//! learning platform carrying a session), `POST /lti/deep_links` (a deep linking request's
//! answer, signed and posted on to the platform) and `GET /lti/jwks` (the tool's public keys).
//!
//! People see these answers, not programs: a refusal is a small HTML page saying what went
//! wrong and its code (never a stack of JSON), and a cookie blocked inside an LMS frame says to
//! open the tool in a new window.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use oauth2::url::form_urlencoded;

use super::error::ApiError;
use super::AppState;
use crate::lti::deep_linking::{self, DeepLinkForm};
use crate::lti::launch::{
    begin_login, finish_launch, tool_jwks, LaunchContext, LaunchForm, LoginRequest,
    PlatformKeyCache,
};

/// The cookie that binds a login's state to the browser that started it.
pub const STATE_COOKIE: &str = "rostergate_lti_state";

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

fn first(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn login_request(pairs: &[(String, String)]) -> LoginRequest {
    LoginRequest {
        iss: first(pairs, "iss"),
        login_hint: first(pairs, "login_hint"),
        target_link_uri: first(pairs, "target_link_uri"),
        lti_message_hint: first(pairs, "lti_message_hint"),
        // Canvas names it `deployment_id`.
        deployment_id: first(pairs, "lti_deployment_id").or_else(|| first(pairs, "deployment_id")),
        client_id: first(pairs, "client_id"),
    }
}

/// `GET /lti/login`: the login initiation in the query string.
pub async fn login_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let pairs = pairs(req.query_string().as_bytes());
    login(&state, &login_request(&pairs)).await
}

/// `POST /lti/login`: the login initiation as a form.
pub async fn login_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = not_a_form(&req) {
        return refused;
    }
    login(&state, &login_request(&pairs(&body))).await
}

async fn login(state: &AppState, request: &LoginRequest) -> HttpResponse {
    match begin_login(&state.db, &state.settings.lti, request, chrono::Utc::now()).await {
        Ok(redirect) => HttpResponse::Found()
            .insert_header((LOCATION, redirect.location.as_str()))
            .insert_header((
                SET_COOKIE,
                state_cookie(&redirect.state, redirect.max_age_secs),
            ))
            .insert_header((CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => {
            tracing::info!(code = e.code(), "LTI login refused");
            page(e.status(), e.code(), &e.to_string())
        }
    }
}

/// The state cookie: sent back on the platform's cross-site form POST (SameSite=None; Secure),
/// kept in the LMS frame's own partition (Partitioned), out of scripts' reach (HttpOnly).
fn state_cookie(state: &str, max_age_secs: u64) -> String {
    format!(
        "{STATE_COOKIE}={state}; Path=/lti; Max-Age={max_age_secs}; SameSite=None; Secure; \
         HttpOnly; Partitioned"
    )
}

/// The state the login's cookie carried back, if the browser sent it.
fn cookie_state(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STATE_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// `POST /lti/launch`: the platform's auto-submitted form (`id_token` and `state`, or `error`).
pub async fn launch(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    keys: web::Data<PlatformKeyCache>,
) -> HttpResponse {
    if let Some(refused) = not_a_form(&req) {
        return refused;
    }
    let pairs = pairs(&body);
    let form = LaunchForm {
        id_token: first(&pairs, "id_token"),
        state: first(&pairs, "state"),
        error: first(&pairs, "error"),
        error_description: first(&pairs, "error_description"),
    };
    let cx = LaunchContext {
        db: &state.db,
        secrets: &state.secrets,
        settings: &state.settings.lti,
        keys: &keys,
    };
    let cookie = cookie_state(&req);
    match finish_launch(&cx, &form, cookie.as_deref(), chrono::Utc::now()).await {
        Ok(session) => {
            tracing::info!(
                district = %session.district,
                rostered = session.user.is_some(),
                class = session.class.is_some(),
                role = session.launch.role.as_str(),
                "LTI launch"
            );
            HttpResponse::Found()
                .insert_header((LOCATION, session.location.as_str()))
                .insert_header((SET_COOKIE, state_cookie("", 0)))
                .insert_header((CACHE_CONTROL, "no-store"))
                .finish()
        }
        Err(e) => {
            tracing::info!(code = e.code(), "LTI launch refused");
            page(e.status(), e.code(), &e.to_string())
        }
    }
}

/// `POST /lti/deep_links`: the learning platform's answer to a deep linking request (its
/// session and the content items picked), sent on to the platform as the tool's signed
/// response: a page that posts it to the platform's `deep_link_return_url` as `JWT`.
pub async fn deep_link(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = not_a_form(&req) {
        return refused;
    }
    let pairs = pairs(&body);
    let form = DeepLinkForm {
        session: first(&pairs, "session"),
        content_items: first(&pairs, "content_items"),
        msg: first(&pairs, "msg"),
        errormsg: first(&pairs, "errormsg"),
    };
    match deep_linking::answer(
        &state.db,
        &state.secrets,
        &state.settings.lti,
        &form,
        chrono::Utc::now(),
    )
    .await
    {
        Ok(answer) => {
            tracing::info!("LTI deep linking response sent");
            auto_post(&answer.return_url, "JWT", &answer.jwt)
        }
        Err(deep_linking::DeepLinkError::Store(e)) => {
            tracing::error!(error = %e, "LTI deep linking response failed");
            page(500, "internal_error", "internal error")
        }
        Err(e) => {
            tracing::info!(code = e.code(), "LTI deep linking response refused");
            page(e.status(), e.code(), &e.to_string())
        }
    }
}

/// A page whose form the browser submits at once (a button when scripts are off).
fn auto_post(action: &str, field: &str, value: &str) -> HttpResponse {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Returning to your course</title></head>\
         <body><form id=\"return\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"{}\" value=\"{}\">\
         <noscript><button type=\"submit\">Continue</button></noscript></form>\
         <script>document.getElementById('return').submit();</script></body></html>",
        escape(action),
        escape(field),
        escape(value)
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(body)
}

/// `GET /lti/jwks`: the tool's published keys (the current one and the next).
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let set = tool_jwks(&state.db, &state.secrets).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "public, max-age=300"))
        .json(set))
}

/// A form POST must say so; anything else is refused before its body is read as one.
fn not_a_form(req: &HttpRequest) -> Option<HttpResponse> {
    let form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    (!form).then(|| {
        page(
            415,
            "unsupported_media_type",
            "the body must be a form (Content-Type: application/x-www-form-urlencoded)",
        )
    })
}

/// Text as HTML (pages quote what a platform sent).
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A refusal as a person sees it.
fn page(status: u16, code: &str, message: &str) -> HttpResponse {
    let advice = if code == "state_cookie_missing" || code == "platform_error" {
        "<p>If this keeps happening inside your course, open the tool in a new window: your \
         browser may block its cookies inside the course page.</p>"
    } else {
        ""
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Launch refused</title></head>\
         <body><h1>This launch could not be completed</h1><p>{}</p>{advice}<p>Code: <code>{}</code></p></body></html>",
        escape(message),
        escape(code)
    );
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_pages_escape_what_they_quote() {
        let response = page(400, "x<y", "a \"b\" & <script>");
        assert_eq!(response.status(), 400);
        let body = format!(
            "{:?}",
            actix_web::body::MessageBody::try_into_bytes(response.into_body()).unwrap()
        );
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("&lt;script&gt;"), "{body}");
    }

    #[test]
    fn the_state_cookie_is_read_among_others_and_deployment_ids_by_either_name() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((COOKIE, format!("a=1; {STATE_COOKIE}=s-123; b=2")))
            .to_http_request();
        assert_eq!(cookie_state(&req).as_deref(), Some("s-123"));
        let canvas = login_request(&pairs(b"iss=i&deployment_id=d1&login_hint=h"));
        assert_eq!(canvas.deployment_id.as_deref(), Some("d1"));
        let moodle = login_request(&pairs(b"lti_deployment_id=d2&deployment_id=d1"));
        assert_eq!(moodle.deployment_id.as_deref(), Some("d2"));
        assert!(state_cookie("s", 600).contains("SameSite=None; Secure; HttpOnly; Partitioned"));
    }
}
