//! Bearer authentication: the operator token or a JWT from `POST /oauth/token`.

use std::time::Instant;

use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::error::ApiError;
use super::AppState;
use crate::auth::secrets_equal;
use crate::auth::tokens::{Principal, TokenError};
use crate::domain::district::District;
use crate::domain::scope::Scope;
use crate::store::{clients, districts};

/// The authenticated caller of a request.
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

fn state(req: &HttpRequest) -> &web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be \"Bearer <token>\"")
        })
}

/// Whether `token` is the operator token.
pub fn is_operator_token(state: &AppState, token: &str) -> bool {
    state
        .settings
        .operator_token
        .as_ref()
        .is_some_and(|operator| secrets_equal(token.as_bytes(), operator.expose().as_bytes()))
}

async fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = state(req);
    let token = bearer_token(req)?;
    if is_operator_token(state, token) {
        return Ok(Caller(Principal::operator()));
    }
    let principal = match state.tokens.verify(token) {
        Ok(p) => p,
        Err(TokenError::Expired) => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "token_expired",
                "the token is expired: request a new one from /oauth/token",
            ))
        }
        Err(TokenError::Invalid) => return Err(ApiError::unauthorized("the token is not valid")),
    };
    if !client_is_active(state, &principal.subject).await? {
        return Err(ApiError::unauthorized(
            "the token is no longer valid: its client was revoked",
        ));
    }
    Ok(Caller(principal))
}

/// Whether the client a token was issued to is still registered and not revoked, as of at most
/// `[auth] client_check_ttl_secs` ago.
async fn client_is_active(state: &AppState, client_id: &str) -> Result<bool, ApiError> {
    let now = Instant::now();
    if let Some(active) = state.client_status.get(client_id, now) {
        return Ok(active);
    }
    let active = matches!(clients::revoked_at(&state.db, client_id).await?, Some(None));
    state.client_status.put(client_id, active, now);
    Ok(active)
}

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if scope.satisfied_by(&self.0.scopes) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this needs the {scope} scope")))
        }
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.0.is_operator() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only the operator may do this"))
        }
    }

    /// Loads a district the caller may act on with `scope`. A district the caller is not bound
    /// to answers exactly like one that does not exist.
    pub async fn district(
        &self,
        state: &AppState,
        slug: &str,
        scope: Scope,
    ) -> Result<District, ApiError> {
        let district = self.visible_district(state, slug).await?;
        self.require(scope)?;
        Ok(district)
    }

    /// Loads a district the caller is bound to, leaving the scope to check to the caller (for
    /// routes whose scope depends on what they act on).
    pub async fn visible_district(
        &self,
        state: &AppState,
        slug: &str,
    ) -> Result<District, ApiError> {
        let not_found = || ApiError::not_found(format!("district {slug:?} not found"));
        if !self.0.may_see(slug) {
            return Err(not_found());
        }
        districts::find(&state.db, slug)
            .await?
            .ok_or_else(not_found)
    }
}
