//! `POST …/connections/{name}/pulls`: asks for a pull now. It runs as a background job (a pull
//! of a large district takes minutes to hours); the answer is the queued job, to follow under
//! `…/jobs/{job_id}` until it names the run it made.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Caller;
use super::connections::not_found;
use super::error::ApiError;
use super::jobs::job_json;
use super::AppState;
use crate::domain::scope::Scope;
use crate::jobs::{pull_prefix, requested_pull, PULL_KIND};
use crate::store::{connections, jobs};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    full: Option<String>,
}

impl PullQuery {
    fn full(&self) -> Result<bool, ApiError> {
        match self.full.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::bad_request("full must be true or false")),
        }
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn start(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PullQuery>,
) -> Result<HttpResponse, ApiError> {
    let (district, name) = path.into_inner();
    let district = caller.visible_district(&state, &district).await?;
    let full = query.full()?;
    let connection = connections::find(&state.db, district.id, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    // Pulling a roster writes the roster; pulling scores writes scores.
    caller.require(if connection.config.kind.pulls_scores() {
        Scope::ScoresWrite
    } else {
        Scope::RosterWrite
    })?;
    // One pull of a connection at a time: a second request while one waits or runs would
    // only queue the same work again.
    if jobs::has_open(&state.db, district.id, PULL_KIND, &pull_prefix(&name)).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "pull_in_progress",
            format!(
                "a pull of connection {} is already queued or running: see GET /api/v1/districts/{}/jobs?kind=pull",
                crate::domain::problem::quoted(&name),
                district.slug
            ),
        ));
    }
    let now = chrono::Utc::now();
    let job = requested_pull(
        district.id,
        &name,
        full,
        now,
        i64::from(state.settings.jobs.max_attempts),
    );
    let enqueued = jobs::enqueue(&state.db, &job, now).await?;
    let stored = jobs::find(&state.db, district.id, &enqueued.id)
        .await?
        .ok_or_else(|| ApiError::internal(&"the job just queued is not there"))?;
    tracing::info!(connection = %name, full, job = %stored.id, "pull requested");
    Ok(HttpResponse::Accepted()
        .insert_header((
            "Location",
            format!("/api/v1/districts/{}/jobs/{}", district.slug, stored.id),
        ))
        .json(job_json(&stored)))
}
