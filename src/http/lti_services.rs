//! The LTI services an administrator or the learning platform drives through the admin API:
//! `POST …/lti/memberships/pulls` (NRPS memberships synced into the roster, answered with the
//! run) and `POST …/classes/{class}/lti/scores` (AGS scores posted to the class's LMS
//! gradebook).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::auth::Caller;
use super::connections::refusal;
use super::error::ApiError;
use super::AppState;
use crate::domain::records::RecordKind;
use crate::domain::scope::Scope;
use crate::lti::grades::{self, GradeError};
use crate::lti::memberships::{self, MembershipError};
use crate::lti::service_tokens::{ServiceTokenError, ServiceTokens};
use crate::store::roster;
use crate::sync::report::RunStatus;

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        match e {
            MembershipError::NoContexts(_) => {
                ApiError::new(StatusCode::CONFLICT, "no_lti_contexts", e.to_string())
            }
            MembershipError::Sync(s) => s.into(),
            MembershipError::Store(s) => s.into(),
            MembershipError::Token(t) => token_error(t),
            MembershipError::Service(_) | MembershipError::Page { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "platform_error", e.to_string())
            }
        }
    }
}

impl From<GradeError> for ApiError {
    fn from(e: GradeError) -> Self {
        match e {
            GradeError::NoContext(_) => {
                ApiError::new(StatusCode::CONFLICT, "no_lti_context", e.to_string())
            }
            GradeError::ScopeMissing(_) => {
                ApiError::new(StatusCode::CONFLICT, "lti_scope_not_granted", e.to_string())
            }
            GradeError::LineItemNotFound(_) => {
                ApiError::new(StatusCode::CONFLICT, "line_item_not_found", e.to_string())
            }
            GradeError::Store(s) => s.into(),
            GradeError::Token(t) => token_error(t),
            GradeError::BadAnswer { .. }
            | GradeError::Interrupted { .. }
            | GradeError::Service(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "platform_error", e.to_string())
            }
        }
    }
}

/// A token the platform refused needs an administrator (`invalid_client`, a trimmed scope);
/// one it could not give may come later.
fn token_error(e: ServiceTokenError) -> ApiError {
    match e {
        ServiceTokenError::Refused { .. } | ServiceTokenError::TokenUrl(..) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "platform_token_refused",
            e.to_string(),
        ),
        ServiceTokenError::Unavailable { .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "platform_unavailable",
            e.to_string(),
        ),
        ServiceTokenError::Signing(_) => ApiError::internal(&e),
    }
}

/// `POST /api/v1/districts/{district}/lti/memberships/pulls`: every course context that offered
/// its memberships is read, and the run that synced them answers (`202` when held for review).
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path))]
pub async fn pull_memberships(
    state: web::Data<AppState>,
    tokens: web::Data<ServiceTokens>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::RosterWrite).await?;
    let pulled = memberships::pull(
        &state.db,
        &state.engine,
        &state.secrets,
        &tokens,
        &district,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(
        contexts = pulled.contexts,
        members = pulled.members,
        run = %pulled.run.run_id,
        "LTI memberships pulled"
    );
    let body = json!({
        "contexts": pulled.contexts,
        "members": pulled.members,
        "linked": pulled.linked,
        "run": pulled.run,
    });
    Ok(match pulled.run.status {
        RunStatus::Held => HttpResponse::Accepted().json(body),
        _ => HttpResponse::Ok().json(body),
    })
}

/// `POST /api/v1/districts/{district}/classes/{class}/lti/scores`: scores posted to the LMS
/// gradebook of the class's course.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn post_scores(
    state: web::Data<AppState>,
    tokens: web::Data<ServiceTokens>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (district, class) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::ScoresWrite)
        .await?;
    if roster::get(&state.db, district.id, RecordKind::Classes, &class)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "no class {} in district {}",
            crate::domain::problem::quoted(&class),
            district.slug
        )));
    }
    let post = grades::read_request(&body).map_err(|p| refusal("invalid_field", p))?;
    let outcome = grades::post_scores(
        &state.db,
        &state.secrets,
        &tokens,
        (district.id, &class),
        &post,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(
        posted = outcome.posted,
        skipped = outcome.skipped.len(),
        created = outcome.created,
        "LTI scores posted"
    );
    Ok(HttpResponse::Ok().json(outcome))
}
