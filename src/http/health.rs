//! Liveness, readiness and metrics.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth::{bearer_token, is_operator_token};
use super::error::ApiError;
use super::AppState;
use crate::auth::secrets_equal;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the database answers and every shipped migration is applied.
#[tracing::instrument(skip_all)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.ping().await.is_ok();
    let migrations = database && state.db.migrations_current().await.unwrap_or(false);
    let body = json!({
        "status": if database && migrations { "ready" } else { "not_ready" },
        "database": if database { "ok" } else { "unreachable" },
        "migrations": if migrations { "current" } else { "pending" },
    });
    if database && migrations {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The Prometheus text format, for the operator token or the metrics token.
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let token = bearer_token(&req)?;
    let metrics_token = state.settings.auth.metrics_token.as_ref();
    let allowed = is_operator_token(&state, token)
        || metrics_token.is_some_and(|m| secrets_equal(token.as_bytes(), m.expose().as_bytes()));
    if !allowed {
        return Err(ApiError::unauthorized(
            "/metrics needs the metrics token or the operator token",
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics().render()))
}
