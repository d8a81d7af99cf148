//! Processing a push as a background job: a roster (`inbound_roster`) through the engine, a
//! score push (`inbound_scores`) through the score import, and the delivery's status after its
//! run or import. One handler runs both kinds, by the delivery's own kind. A district busy with
//! another sync (or score import) defers the job; the gateway's own trouble (database, an
//! unreadable body file) is retried, and on the last attempt the delivery is dead-lettered for an
//! admin to retry.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{apply_json, apply_scores, body_file, read_body, BodyFormat, InboundError, PushKind};
use crate::config::Settings;
use crate::domain::district::District;
use crate::domain::problem::Problem;
use crate::imports::import_oneroster_csv;
use crate::jobs::{Job, JobError, JobHandler};
use crate::scores::ingest::{ImportStatus, IngestError};
use crate::store::inbound::{self, Delivery, DeliveryStatus};
use crate::store::{districts, Db, StoreError};
use crate::sync::engine::RunOptions;
use crate::sync::{Engine, RunReport, RunStatus, SyncError};

/// The job kind that processes a pushed roster.
pub const INBOUND_ROSTER_KIND: &str = "inbound_roster";
/// The job kind that processes pushed assessment results.
pub const INBOUND_SCORES_KIND: &str = "inbound_scores";

/// What an `inbound_roster` or `inbound_scores` job carries: the delivery to process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundPayload {
    pub delivery: String,
}

/// Runs `inbound_roster` and `inbound_scores` jobs.
#[derive(Clone)]
pub struct InboundJobs {
    pub engine: Engine,
    pub db: Db,
    pub settings: Arc<Settings>,
}

/// Why processing stopped short of a run (or a score import).
#[derive(Debug, thiserror::Error)]
enum ProcessError {
    #[error("the stored body is missing")]
    BodyMissing,
    #[error("the stored content type {content_type:?} is not one of a {kind} push")]
    UnknownFormat { kind: String, content_type: String },
    #[error("this gateway does not process pushes of kind {0:?}")]
    UnknownKind(String),
    #[error(transparent)]
    Body(#[from] InboundError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Scores(#[from] IngestError),
}

impl ProcessError {
    /// The district is held by another sync or score import: no fault of the push.
    fn is_busy(&self) -> bool {
        matches!(
            self,
            ProcessError::Sync(SyncError::Busy(_)) | ProcessError::Scores(IngestError::Busy)
        )
    }
}

/// Where processing got to: the run or score import it made, as the delivery records it.
struct Processed {
    status: DeliveryStatus,
    /// The run's id, or the score import's.
    id: String,
    errors: Vec<Problem>,
}

impl From<RunReport> for Processed {
    fn from(report: RunReport) -> Processed {
        let status = match report.status {
            RunStatus::Applied => DeliveryStatus::Applied,
            RunStatus::Held => DeliveryStatus::Held,
            _ => DeliveryStatus::Failed,
        };
        Processed {
            status,
            id: report.run_id,
            errors: report.errors,
        }
    }
}

impl JobHandler for InboundJobs {
    async fn gave_up(&self, job: &Job) {
        if let Err(e) = self.dead_letter(job).await {
            tracing::warn!(job_id = %job.id, error = %e, "could not dead-letter a push whose job died");
        }
    }

    async fn run(&self, job: &Job) -> Result<Value, JobError> {
        let payload: InboundPayload = serde_json::from_value(job.payload.clone()).map_err(|e| {
            JobError::permanent(format!("the job's payload is not an inbound delivery: {e}"))
        })?;
        let store = |e: StoreError| JobError::retryable(e.to_string());
        let district = districts::find_by_id(&self.db, job.district_id)
            .await
            .map_err(store)?
            .ok_or_else(|| JobError::permanent("the district is gone"))?;
        let delivery = inbound::find(&self.db, district.id, &payload.delivery)
            .await
            .map_err(store)?
            .ok_or_else(|| JobError::permanent("the delivery is gone"))?;
        // Run once already (the job was retried after its result was recorded): nothing to do.
        if delivery.status.is_final() && delivery.run_id.is_some() {
            return Ok(result(
                &delivery.id,
                delivery.status,
                delivery.run_id.as_deref(),
            ));
        }
        inbound::start(&self.db, district.id, &delivery.id, Utc::now())
            .await
            .map_err(store)?;
        match self.process(&district, &delivery).await {
            Ok(done) => {
                let errors = serde_json::to_value(&done.errors).expect("problems serialize");
                inbound::finish(
                    &self.db,
                    district.id,
                    &delivery.id,
                    done.status,
                    Some(&done.id),
                    &errors,
                    Utc::now(),
                )
                .await
                .map_err(store)?;
                tracing::info!(delivery = %delivery.id, kind = %delivery.kind, run_id = %done.id, status = done.status.as_str(), "push processed");
                Ok(result(&delivery.id, done.status, Some(&done.id)))
            }
            Err(e) => {
                if e.is_busy() {
                    inbound::put_back(&self.db, district.id, &delivery.id, Utc::now())
                        .await
                        .map_err(store)?;
                    return Err(JobError::Deferred {
                        message: e.to_string(),
                        after: Duration::from_secs(self.settings.jobs.busy_retry_secs),
                    });
                }
                // Waiting for the job's next attempt, or dead-lettered after its last.
                let status = if job.attempts >= job.max_attempts {
                    DeliveryStatus::Dead
                } else {
                    DeliveryStatus::Received
                };
                let errors = json!([Problem::file("*", e.to_string())]);
                inbound::finish(
                    &self.db,
                    district.id,
                    &delivery.id,
                    status,
                    None,
                    &errors,
                    Utc::now(),
                )
                .await
                .map_err(store)?;
                if status == DeliveryStatus::Dead {
                    tracing::warn!(delivery = %delivery.id, kind = %delivery.kind, error = %e, "push dead-lettered");
                }
                Err(JobError::retryable(e.to_string()))
            }
        }
    }
}

impl InboundJobs {
    /// The delivery of a job whose last attempt died with its process: dead-lettered, for an
    /// admin to retry (its body is still stored).
    async fn dead_letter(&self, job: &Job) -> Result<(), StoreError> {
        let Ok(payload) = serde_json::from_value::<InboundPayload>(job.payload.clone()) else {
            return Ok(());
        };
        // A run recorded as finished stands, whatever happened to the job after.
        let delivery = inbound::find(&self.db, job.district_id, &payload.delivery).await?;
        if delivery.is_none_or(|d| d.status.is_final()) {
            return Ok(());
        }
        let errors = json!([Problem::file(
            "*",
            "the gateway process handling this push stopped before it finished, on its last attempt"
        )]);
        inbound::finish(
            &self.db,
            job.district_id,
            &payload.delivery,
            DeliveryStatus::Dead,
            None,
            &errors,
            Utc::now(),
        )
        .await
    }

    /// Processes a delivery as its own kind says (whatever the job's kind).
    async fn process(
        &self,
        district: &District,
        delivery: &Delivery,
    ) -> Result<Processed, ProcessError> {
        match PushKind::parse(&delivery.kind) {
            Some(PushKind::Roster) => Ok(self.process_roster(district, delivery).await?.into()),
            Some(PushKind::Scores) => self.process_scores(district, delivery).await,
            None => Err(ProcessError::UnknownKind(delivery.kind.clone())),
        }
    }

    /// A score push: a score import, applied or refused (its problems are the delivery's).
    async fn process_scores(
        &self,
        district: &District,
        delivery: &Delivery,
    ) -> Result<Processed, ProcessError> {
        if BodyFormat::from_content_type(&delivery.content_type) != Some(BodyFormat::Json) {
            return Err(unknown_format(delivery));
        }
        let body = read_body(&self.db, &self.settings, delivery)
            .await?
            .ok_or(ProcessError::BodyMissing)?;
        let plans = crate::scores::plans();
        let report = apply_scores(
            &self.db,
            district,
            &plans,
            (&delivery.id, body),
            &self.settings.import,
        )
        .await?;
        let status = match report.status {
            ImportStatus::Applied => DeliveryStatus::Applied,
            ImportStatus::Refused => DeliveryStatus::Failed,
        };
        Ok(Processed {
            status,
            id: report.import_id,
            errors: report.errors,
        })
    }

    async fn process_roster(
        &self,
        district: &District,
        delivery: &Delivery,
    ) -> Result<RunReport, ProcessError> {
        let limits = &self.settings.import;
        match BodyFormat::from_content_type(&delivery.content_type) {
            Some(BodyFormat::Json) => {
                let body = read_body(&self.db, &self.settings, delivery)
                    .await?
                    .ok_or(ProcessError::BodyMissing)?;
                Ok(apply_json(&self.engine, district, body, limits).await?)
            }
            Some(BodyFormat::Zip) => {
                // The importer reads a path: a body kept in the row is copied to a temporary file.
                let file = body_file(&self.db, &self.settings, delivery).await?;
                Ok(import_oneroster_csv(
                    &self.engine,
                    district,
                    file.path(),
                    Some("roster.zip"),
                    limits,
                    RunOptions::default(),
                    None,
                )
                .await?)
            }
            None => Err(unknown_format(delivery)),
        }
    }
}

fn unknown_format(delivery: &Delivery) -> ProcessError {
    ProcessError::UnknownFormat {
        kind: delivery.kind.clone(),
        content_type: delivery.content_type.clone(),
    }
}

/// The job's result; `run_id` is a score push's import id, as on its delivery.
fn result(id: &str, status: DeliveryStatus, run_id: Option<&str>) -> Value {
    json!({ "delivery": id, "status": status.as_str(), "run_id": run_id })
}
