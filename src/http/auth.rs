//! Bearer authentication: the operator token or a JWT from `POST /oauth/token`.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};

use super::error::ApiError;
use super::AppState;
use crate::auth::secrets_equal;
use crate::auth::tokens::{Principal, TokenError};
use crate::domain::district::District;
use crate::domain::scope::Scope;
use crate::store::districts;

/// The authenticated caller of a request.
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered");
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be \"Bearer <token>\"")
        })?;
    if let Some(operator) = &state.settings.operator_token {
        if secrets_equal(token.as_bytes(), operator.expose().as_bytes()) {
            return Ok(Caller(Principal::operator()));
        }
    }
    match state.tokens.verify(token) {
        Ok(p) => Ok(Caller(p)),
        Err(TokenError::Expired) => Err(ApiError::new(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "token_expired",
            "the token is expired: request a new one from /oauth/token",
        )),
        Err(TokenError::Invalid) => Err(ApiError::unauthorized("the token is not valid")),
    }
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
        let not_found = || ApiError::not_found(format!("district {slug:?} not found"));
        if !self.0.may_see(slug) {
            return Err(not_found());
        }
        let district = districts::find(&state.db, slug)
            .await?
            .ok_or_else(not_found)?;
        self.require(scope)?;
        Ok(district)
    }
}
