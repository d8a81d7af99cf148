//! `POST /oauth/token`: the OAuth 2 client-credentials grant (RFC 6749 §4.4). Errors here use
//! RFC 6749's shape (`{"error":"invalid_client",…}`), which OAuth client libraries expect.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::auth::grant::{self, ClientAuth, GrantError, GrantRequest, RegisteredClient};
use crate::domain::scope;
use crate::store::clients;

#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.insert_header(("Cache-Control", "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header(("WWW-Authenticate", "Basic realm=\"rostergate\""));
    }
    response.json(json!({ "error": error, "error_description": description }))
}

fn server_error() -> HttpResponse {
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error",
    )
}

/// Client credentials from HTTP Basic or the form body (both are in use among OAuth clients).
fn credentials(req: &HttpRequest, form: &TokenRequest) -> Option<(String, String)> {
    if let Some(basic) = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((form_decode(id), form_decode(secret)));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

/// RFC 6749 §2.3.1: Basic credentials are form-encoded before base64.
fn form_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty))]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenRequest>,
) -> HttpResponse {
    let auth = credentials(&req, &form).map(|(client_id, secret)| ClientAuth { client_id, secret });
    let presented_id = auth
        .as_ref()
        .map(|a| a.client_id.as_str())
        .or(form.client_id.as_deref());
    if let Some(id) = presented_id {
        tracing::Span::current().record("client_id", id);
    }
    let ip = req.peer_addr().map(|a| a.ip());
    if let Err(retry) = state.token_limits.check(ip, presented_id) {
        tracing::warn!(?ip, "token requests over the rate limit");
        let mut response = oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            &format!("too many token requests: retry after {} s", retry.0),
        );
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(retry.0),
        );
        return response;
    }
    let client = match &auth {
        Some(a) => match clients::find_with_district(&state.db, &a.client_id).await {
            Ok(found) => found.map(|c| RegisteredClient {
                client_id: c.client_id,
                district: c.district,
                scopes: c.scopes,
                secret_hash: c.secret_hash,
                revoked_at: c.revoked_at,
            }),
            Err(e) => {
                tracing::error!(error = %e, "client lookup failed");
                return server_error();
            }
        },
        None => None,
    };
    let request = GrantRequest {
        grant_type: form.grant_type.clone(),
        scope: form.scope.clone(),
    };
    match grant::client_credentials(
        &state.tokens,
        auth.as_ref(),
        client.as_ref(),
        &request,
        chrono::Utc::now(),
    ) {
        Ok(issued) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "scope": scope::join(&issued.scopes),
            })),
        Err(e) => refusal(&e),
    }
}

/// The RFC 6749 answer to a refused grant. Unknown client, wrong secret and revoked client
/// answer alike, so that the answer tells an attacker nothing; the log says which it was.
fn refusal(e: &GrantError) -> HttpResponse {
    match e {
        GrantError::UnsupportedGrantType(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        ),
        GrantError::MissingCredentials => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client credentials are missing",
        ),
        e if e.is_client_authentication() => {
            tracing::info!(reason = %e, "client authentication failed");
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
        GrantError::UnknownScope(_) | GrantError::ScopeNotGranted(_) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e.to_string())
        }
        other => {
            tracing::error!(error = %other, "token grant failed");
            server_error()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(super::form_decode("a%3Ab+c"), "a:b c");
        assert_eq!(super::form_decode("plain"), "plain");
        assert_eq!(super::form_decode("bad%zz"), "bad%zz");
        assert_eq!(super::form_decode("end%4"), "end%4");
    }
}
