//! Background jobs of a district (scheduled pulls and the like): what is queued, running, done
//! or failed, and why.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, Paging};
use crate::domain::scope::Scope;
use crate::store::jobs::{self, Job, JobFilter, JobStatus};

/// A job as the API shows it. The lease owner (a host name and pid) stays inside.
pub(crate) fn job_json(job: &Job) -> Value {
    json!({
        "id": job.id,
        "kind": job.kind,
        "payload": job.payload,
        "dedupe_key": job.dedupe_key,
        "status": job.status.as_str(),
        "run_after": job.run_after,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "lease_until": job.lease_until,
        "last_error": job.last_error,
        "result": job.result,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    limit: Option<String>,
    offset: Option<String>,
    status: Option<String>,
    kind: Option<String>,
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<JobQuery>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::RosterRead).await?;
    let query = query.into_inner();
    let (limit, offset) = Paging {
        limit: query.limit,
        offset: query.offset,
    }
    .resolve()?;
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => Some(JobStatus::parse(raw).ok_or_else(|| {
            ApiError::bad_request("status must be one of queued, running, succeeded, failed")
        })?),
    };
    let filter = JobFilter {
        status,
        kind: query.kind,
    };
    let total = jobs::count(&state.db, district.id, &filter).await?;
    let rows = jobs::list(&state.db, district.id, &filter, limit, offset).await?;
    let items: Vec<Value> = rows.iter().map(job_json).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", total.to_string()))
        .json(json!({ "jobs": items, "total": total, "limit": limit, "offset": offset })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0, job_id = %path.1))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, job_id) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    let job = jobs::find(&state.db, district.id, &job_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {job_id:?} not found")))?;
    Ok(HttpResponse::Ok().json(job_json(&job)))
}
