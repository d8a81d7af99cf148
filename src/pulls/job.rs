//! Pulls as background jobs: the handler the job runner calls for `pull` jobs (scheduled or
//! asked for through the API), and the connections' schedules as the scheduler reads them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::scores::{pull_scores, ScorePullError, ScorePullRequest};
use super::{pull, PullError, PullRequest};
use crate::auth::secrets::SecretBox;
use crate::config::Settings;
use crate::domain::connection::ConnectionKind;
use crate::jobs::{Job, JobError, JobHandler, PullPayload, ScheduledItem};
use crate::scores::ingest::{ImportStatus, IngestError};
use crate::store::{connections, districts, Db, StoreError};
use crate::sync::{Engine, SyncError};

/// Runs `pull` jobs.
#[derive(Clone)]
pub struct PullJobs {
    pub engine: Engine,
    pub db: Db,
    pub secrets: SecretBox,
    pub settings: Arc<Settings>,
}

impl JobHandler for PullJobs {
    async fn run(&self, job: &Job) -> Result<Value, JobError> {
        let payload: PullPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::permanent(format!("the job's payload is not a pull: {e}")))?;
        let district = districts::find_by_id(&self.db, job.district_id)
            .await
            .map_err(|e| JobError::retryable(e.to_string()))?
            .ok_or_else(|| JobError::permanent("the district is gone"))?;
        let busy_retry = Duration::from_secs(self.settings.jobs.busy_retry_secs);
        let kind = connections::find(&self.db, district.id, &payload.connection)
            .await
            .map_err(|e| JobError::retryable(e.to_string()))?
            .map(|c| c.config.kind);
        if kind.is_some_and(ConnectionKind::pulls_scores) {
            let request = ScorePullRequest {
                connection: payload.connection,
                full: payload.full,
            };
            let report = pull_scores(
                &self.db,
                &self.secrets,
                &self.settings,
                &district,
                &crate::scores::plans(),
                &request,
            )
            .await
            .map_err(|e| score_job_error(e, busy_retry))?;
            // A refused import is still a finished job: its report says why, and the next
            // scheduled pull asks again from the same cursor.
            return Ok(json!({
                "import_id": report.import_id,
                "status": match report.status {
                    ImportStatus::Applied => "applied",
                    ImportStatus::Refused => "refused",
                },
                "full": request.full,
                "received": report.received,
                "error_count": report.error_count,
            }));
        }
        let request = PullRequest {
            connection: payload.connection,
            full: payload.full,
            dry_run: false,
        };
        let report = pull(
            &self.engine,
            &self.db,
            &self.secrets,
            &self.settings,
            &district,
            &request,
            None,
        )
        .await
        .map_err(|e| job_error(e, busy_retry))?;
        // A run that failed on what the source sent is still a finished job: its report says
        // why, and the next scheduled pull tries again.
        Ok(json!({
            "run_id": report.run_id,
            "status": report.status.as_str(),
            "full": request.full,
        }))
    }
}

/// Which failures are worth another attempt. A district busy with another sync (an import, a
/// pull of another connection, which may take hours) is no failure of the pull: it waits
/// `busy_retry` without using up an attempt.
fn job_error(e: PullError, busy_retry: Duration) -> JobError {
    match e {
        PullError::Sync(SyncError::Busy(_)) => JobError::Deferred {
            message: e.to_string(),
            after: busy_retry,
        },
        PullError::Sync(_) | PullError::Store(_) => JobError::retryable(e.to_string()),
        PullError::NoSuchConnection { .. }
        | PullError::Secret { .. }
        | PullError::Client { .. }
        | PullError::BaseUrl { .. }
        | PullError::WrongKind { .. } => JobError::permanent(e.to_string()),
    }
}

/// As [`job_error`], for a score pull: a district busy with a sync or another import waits.
fn score_job_error(e: ScorePullError, busy_retry: Duration) -> JobError {
    match e {
        ScorePullError::Pull(e) => job_error(e, busy_retry),
        ScorePullError::Ingest(IngestError::Busy) => JobError::Deferred {
            message: e.to_string(),
            after: busy_retry,
        },
        ScorePullError::Ingest(IngestError::Store(_)) => JobError::retryable(e.to_string()),
    }
}

/// Every connection with a schedule, as the job scheduler reads them on each tick.
pub async fn scheduled_items(db: &Db) -> Result<Vec<ScheduledItem>, StoreError> {
    Ok(connections::scheduled(db)
        .await?
        .into_iter()
        .map(|scheduled| ScheduledItem {
            district_id: scheduled.connection.district_id,
            timezone: scheduled.timezone.zone(),
            key: scheduled.connection.config.name.clone(),
            delta: scheduled.connection.config.schedule.delta,
            full: scheduled.connection.config.schedule.full,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_busy_district_defers_the_pull_and_other_failures_retry_or_fail_as_they_should() {
        let wait = Duration::from_secs(5);
        let no_connection = PullError::NoSuchConnection {
            district: "lincoln".into(),
            name: "sis".into(),
        };
        let cases = [
            (
                PullError::Sync(SyncError::Busy("lincoln".into())),
                JobError::Deferred {
                    message: "another sync of district lincoln is in progress".into(),
                    after: wait,
                },
            ),
            (
                PullError::Store(StoreError::Conflict("x".into())),
                JobError::retryable(PullError::Store(StoreError::Conflict("x".into())).to_string()),
            ),
            (
                no_connection,
                JobError::permanent("district lincoln has no connection \"sis\""),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(job_error(error, wait), expected);
        }
    }
}
