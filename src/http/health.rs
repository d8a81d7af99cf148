//! Liveness, readiness and metrics.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the database answers and every shipped migration is applied.
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

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics().render())
}
