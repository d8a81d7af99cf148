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
    let uploads = state.settings.data_dir.join("uploads");
    std::fs::create_dir_all(&uploads).map_err(|e| ApiError::internal(&e))?;
    let mut file = tempfile::Builder::new()
        .prefix("oneroster-")
        .suffix(".zip")
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
        return Err(ApiError::bad_request(
            "the body is empty: send the bundle as a zip file",
        ));
    }
    file.flush().map_err(|e| ApiError::internal(&e))?;
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
