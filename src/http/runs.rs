//! Sync runs (status, held runs to approve or discard) and the district's event log.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, Paging};
use crate::domain::scope::Scope;
use crate::events::catalogue;
use crate::events::envelope::Envelope;
use crate::store::runs::RunRow;
use crate::store::{outbox, runs};

fn run_json(row: &RunRow) -> Value {
    let mut report = row
        .report()
        .map(|r| serde_json::to_value(r).expect("report serializes"))
        .unwrap_or_else(|| json!({}));
    // The row's status is the truth: a held report may since have been superseded or discarded.
    report["run_id"] = json!(row.id);
    report["status"] = json!(row.status);
    report["source"] = json!(row.source);
    report["dry_run"] = json!(row.dry_run);
    report["started_at"] = json!(row.started_at);
    report["finished_at"] = json!(row.finished_at);
    report
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::RosterRead).await?;
    let (limit, offset) = paging.resolve()?;
    let rows = runs::list(&state.db, district.id, limit, offset).await?;
    // Listings carry the summary; errors and warnings are on the run itself.
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = run_json(r);
            if let Some(obj) = v.as_object_mut() {
                obj.remove("errors");
                obj.remove("warnings");
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "runs": items, "limit": limit, "offset": offset })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0, run_id = %path.1))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, run_id) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    let row = runs::find(&state.db, district.id, &run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id:?} not found")))?;
    Ok(HttpResponse::Ok().json(run_json(&row)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0, run_id = %path.1))]
pub async fn approve(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, run_id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let report = state.engine.approve(&district, &run_id).await?;
    Ok(HttpResponse::Ok().json(report))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0, run_id = %path.1))]
pub async fn discard(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, run_id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let report = state.engine.discard(&district, &run_id).await?;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    after: Option<String>,
    limit: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
}

/// The district's events as subscribers receive them (envelopes), oldest first. The `after`
/// cursor is the number of an event id (`evt_42` → 42); `next_after` is the last one served.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let (limit, _) = Paging {
        limit: query.limit.clone(),
        offset: None,
    }
    .resolve()?;
    let after = super::whole_number(query.after.as_deref(), 0, 0..=i64::MAX).ok_or_else(|| {
        ApiError::bad_request(
            "after must be a whole number, 0 or more (the number of an event id: evt_42 → 42)",
        )
    })?;
    let event_type = query.event_type.as_deref();
    if let Some(t) = event_type.filter(|t| !catalogue::is_event_type(t)) {
        let shown: String = t.chars().take(64).collect();
        return Err(ApiError::bad_request(format!(
            "type {shown:?} is not an event type; one of: {}",
            catalogue::EVENT_TYPES.join(", ")
        )));
    }
    let rows = outbox::page(&state.db, district.id, after, event_type, limit).await?;
    let next = rows.last().map(|e| e.id);
    let events: Vec<Envelope> = rows
        .iter()
        .map(|row| Envelope::of(row, district.slug.as_str()))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "events": events, "next_after": next })))
}
