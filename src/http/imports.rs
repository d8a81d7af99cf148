//! `POST …/imports/oneroster`: a OneRoster CSV bundle (zip) uploaded over HTTP. The body is
//! written to disk before anything is read from it, then imported like the CLI does.

use std::io::Write;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::domain::scope::Scope;
use crate::imports::import_oneroster_csv;
use crate::scores::ingest::ImportStatus;
use crate::sync::engine::RunOptions;
use crate::sync::RunStatus;

/// Largest upload accepted, in bytes.
pub const MAX_UPLOAD_BYTES: usize = 2 << 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    dry_run: Option<String>,
}

impl ImportQuery {
    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.dry_run.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::bad_request("dry_run must be true or false")),
        }
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str(), dry_run = query.dry_run.as_deref()))]
pub async fn oneroster(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ImportQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::RosterWrite).await?;
    let dry_run = query.dry_run()?;
    let file = spool(
        &state,
        &mut body,
        ("oneroster-", ".zip"),
        "the bundle as a zip file",
    )
    .await?;
    let options = RunOptions {
        dry_run,
        input_file: Some(file.path().to_path_buf()),
        ..Default::default()
    };
    let report = import_oneroster_csv(
        &state.engine,
        &district,
        file.path(),
        Some("upload.zip"),
        &state.settings.import,
        options,
        None,
    )
    .await?;
    match report.status {
        RunStatus::Applied | RunStatus::DryRun => Ok(HttpResponse::Ok().json(report)),
        RunStatus::Held => Ok(HttpResponse::Accepted().json(report)),
        _ => {
            let details = report
                .errors
                .iter()
                .map(|e| serde_json::to_value(e).expect("problem serializes"))
                .collect();
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_bundle",
                format!(
                    "the bundle was refused and nothing was applied (run {})",
                    report.run_id
                ),
            )
            .with_details(details))
        }
    }
}

/// Writes an upload to a temporary file under `data_dir/uploads` (deleted when dropped), refusing
/// an empty body and one larger than [`MAX_UPLOAD_BYTES`] while it arrives.
async fn spool(
    state: &AppState,
    body: &mut web::Payload,
    (prefix, suffix): (&str, &str),
    what: &str,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let uploads = state.settings.data_dir.join("uploads");
    std::fs::create_dir_all(&uploads).map_err(|e| ApiError::internal(&e))?;
    let mut file = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .tempfile_in(&uploads)
        .map_err(|e| ApiError::internal(&e))?;
    let mut size = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        size += chunk.len();
        if size > MAX_UPLOAD_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the upload is larger than {MAX_UPLOAD_BYTES} bytes"),
            ));
        }
        file.write_all(&chunk).map_err(|e| ApiError::internal(&e))?;
    }
    if size == 0 {
        return Err(ApiError::bad_request(format!(
            "the body is empty: send {what}"
        )));
    }
    file.flush().map_err(|e| ApiError::internal(&e))?;
    Ok(file)
}

/// `POST …/imports/scores`: a MAP Growth Comprehensive Data File (its zip, or its
/// AssessmentResults.csv) uploaded over HTTP, imported as `rostergate scores import` does.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn scores(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::ScoresWrite).await?;
    let file = spool(
        &state,
        &mut body,
        ("scores-", ".upload"),
        "the export's zip or its AssessmentResults.csv",
    )
    .await?;
    let plans = crate::scores::plans();
    let report = crate::scores::cdf_import::import_cdf(
        &state.db,
        &district,
        &plans,
        (file.path(), "upload"),
        &state.settings.import,
    )
    .await?;
    match report.status {
        ImportStatus::Applied => Ok(HttpResponse::Ok().json(report)),
        ImportStatus::Refused => {
            let details = report
                .errors
                .iter()
                .map(|e| serde_json::to_value(e).expect("problem serializes"))
                .collect();
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_scores",
                format!(
                    "the export was refused and nothing was stored (import {}): {} errors",
                    report.import_id, report.error_count
                ),
            )
            .with_details(details))
        }
    }
}
