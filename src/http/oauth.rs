//! `POST /oauth/token`: the OAuth 2 client-credentials grant (RFC 6749 §4.4). Errors here use
//! RFC 6749's shape (`{"error":"invalid_client",…}`), which OAuth client libraries expect.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::auth::clients::verify_secret;
use crate::domain::scope::{self, Scope};
use crate::store::{clients, districts};

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

pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenRequest>,
) -> HttpResponse {
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        );
    }
    let Some((client_id, secret)) = credentials(&req, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client credentials are missing",
        );
    };
    let client = match clients::find(&state.db, &client_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "client lookup failed");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            );
        }
    };
    // Unknown client, wrong secret and revoked client all answer the same.
    let Some(client) =
        client.filter(|c| c.revoked_at.is_none() && verify_secret(&secret, &c.secret_hash))
    else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    };
    let granted = match Scope::parse_list(&client.scopes) {
        Ok(s) => s,
        Err(_) => {
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    };
    let scopes = match form.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        None => granted,
        Some(requested) => match Scope::parse_list(requested) {
            Ok(asked) if asked.iter().all(|s| granted.contains(s)) => asked,
            Ok(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "a requested scope was not granted to this client",
                )
            }
            Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e.to_string()),
        },
    };
    let district = match districts::find_by_id(&state.db, client.district_id).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "district lookup failed");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            );
        }
    };
    let Some(district) = district else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    };
    let access_token = state
        .tokens
        .issue(&client.client_id, district.slug.as_str(), &scopes);
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": state.tokens.ttl_secs(),
            "scope": scope::join(&scopes),
        }))
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
