//! The runner: claims due jobs, runs each through its kind's handler while renewing its lease,
//! and records the outcome. [`Runner::run_once`] is one such step, which tests call directly.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::handler::{Handlers, JobError};
use crate::config::JobSettings;
use crate::store::jobs::{self, Failure, Job};
use crate::store::{Db, StoreError};

/// How a claimed job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Failed, or could not start (deferred); queued again for this time.
    Retrying(DateTime<Utc>),
    /// Failed for good.
    Failed,
    /// Another process took the job over (this one's lease ran out): the handler was stopped and
    /// nothing was recorded.
    LeaseLost,
}

/// A job this process ran, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub district_id: i64,
    pub job_id: String,
    pub kind: String,
    pub outcome: Outcome,
}

pub struct Runner {
    db: Db,
    settings: JobSettings,
    handlers: Handlers,
    kinds: Vec<String>,
    owner: String,
    /// Jobs claimed and not yet recorded, so that shutdown can queue them again.
    in_flight: Mutex<HashMap<(i64, String), Job>>,
}

impl Runner {
    pub fn new(db: Db, settings: JobSettings, handlers: Handlers) -> Runner {
        Runner {
            db,
            kinds: handlers.kinds(),
            settings,
            handlers,
            owner: owner_id(),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// This process's id on the leases it takes: host, pid and a random part.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.settings.lease_secs.max(1)).unwrap_or(3600))
    }

    /// Claims one due job and runs it to its end. `None` when no job was due.
    pub async fn run_once(&self) -> Result<Option<Ran>, StoreError> {
        // Jobs whose process died on their last attempt end here; their handlers are told.
        for job in jobs::fail_exhausted(&self.db, Utc::now()).await? {
            tracing::warn!(job_id = %job.id, kind = %job.kind, "a job's last attempt died with its process");
            if let Some(handler) = self.handlers.get(&job.kind) {
                handler.gave_up_boxed(&job).await;
            }
        }
        let Some(job) =
            jobs::claim(&self.db, &self.owner, &self.kinds, self.lease(), Utc::now()).await?
        else {
            return Ok(None);
        };
        let span = tracing::info_span!(
            "job",
            job_id = %job.id,
            kind = %job.kind,
            district_id = job.district_id,
            attempt = job.attempts
        );
        let key = (job.district_id, job.id.clone());
        self.lock_in_flight().insert(key.clone(), job.clone());
        let outcome = self.execute(&job).instrument(span).await;
        self.lock_in_flight().remove(&key);
        Ok(Some(Ran {
            district_id: job.district_id,
            job_id: job.id,
            kind: job.kind,
            outcome: outcome?,
        }))
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String), Job>> {
        // The map stays consistent even if a holder panicked: entries are inserted whole.
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn execute(&self, job: &Job) -> Result<Outcome, StoreError> {
        let Some(handler) = self.handlers.get(&job.kind) else {
            // Only handled kinds are claimed; this is a bug, and the job is not lost by it.
            jobs::release(&self.db, job, Utc::now()).await?;
            return Ok(Outcome::LeaseLost);
        };
        tracing::debug!("job started");
        let work = AssertUnwindSafe(handler.run_boxed(job)).catch_unwind();
        tokio::pin!(work);
        let beat_every = Duration::from_secs(self.settings.lease_secs.max(1)) / 3;
        let mut beat =
            tokio::time::interval_at(tokio::time::Instant::now() + beat_every, beat_every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = beat.tick() => {
                    match jobs::extend_lease(&self.db, job, Utc::now() + self.lease()).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("job lease lost to another process; stopping it here");
                            return Ok(Outcome::LeaseLost);
                        }
                        // The lease is still good for a while: try again at the next beat.
                        Err(e) => tracing::warn!(error = %e, "could not renew a job lease"),
                    }
                }
            }
        };
        let result =
            result.unwrap_or_else(|_| Err(JobError::retryable("the job's handler panicked")));
        self.record(job, result).await
    }

    async fn record(
        &self,
        job: &Job,
        result: Result<Value, JobError>,
    ) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        let outcome = match result {
            Ok(value) => {
                if jobs::succeed(&self.db, job, &value, now).await? {
                    tracing::info!("job succeeded");
                    Outcome::Succeeded
                } else {
                    Outcome::LeaseLost
                }
            }
            Err(JobError::Deferred { message, after }) => {
                let at =
                    now + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::hours(1));
                if jobs::defer(&self.db, job, &message, at).await? {
                    tracing::info!(error = %message, retry_at = %at, "job deferred");
                    Outcome::Retrying(at)
                } else {
                    Outcome::LeaseLost
                }
            }
            Err(error) => {
                let retry_at = match &error {
                    JobError::Retryable { after, .. } => {
                        let delay = after.unwrap_or_else(|| self.retry_delay(job.attempts));
                        Some(
                            now + chrono::Duration::from_std(delay)
                                .unwrap_or(chrono::Duration::hours(1)),
                        )
                    }
                    JobError::Permanent(_) | JobError::Deferred { .. } => None,
                };
                match jobs::fail(&self.db, job, &error.to_string(), retry_at, now).await? {
                    Failure::Retrying(at) => {
                        tracing::warn!(error = %error, retry_at = %at, "job failed; it will be retried");
                        Outcome::Retrying(at)
                    }
                    Failure::GaveUp => {
                        tracing::warn!(error = %error, "job failed for good");
                        Outcome::Failed
                    }
                    Failure::LeaseLost => Outcome::LeaseLost,
                }
            }
        };
        Ok(outcome)
    }

    /// The configured delay before retrying after the `attempt`-th attempt failed.
    fn retry_delay(&self, attempt: i64) -> Duration {
        let delays = &self.settings.retry_delays_secs;
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(0);
        let secs = delays.get(index).or(delays.last()).copied().unwrap_or(60);
        Duration::from_secs(secs)
    }

    /// Starts `concurrency` workers that run jobs until `stop` turns true.
    pub fn spawn_workers(self: Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        (0..self.settings.concurrency.max(1))
            .map(|_| tokio::spawn(self.clone().work(stop.clone())))
            .collect()
    }

    /// One worker: runs jobs while there are due ones, otherwise waits a poll interval.
    async fn work(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(1));
        loop {
            if *stop.borrow() {
                return;
            }
            let idle = match self.run_once().await {
                Ok(Some(_)) => false,
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim or record a job");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    changed = stop.changed() => if changed.is_err() { return },
                }
            }
        }
    }

    /// Queues again the jobs whose workers were stopped before they finished; the interrupted
    /// attempt does not count.
    pub async fn release_unfinished(&self) {
        let unfinished: Vec<Job> = self.lock_in_flight().drain().map(|(_, job)| job).collect();
        for job in unfinished {
            match jobs::release(&self.db, &job, Utc::now()).await {
                Ok(_) => tracing::info!(job_id = %job.id, "stopped job queued again"),
                // Its lease runs out and another process takes it over.
                Err(e) => {
                    tracing::warn!(job_id = %job.id, error = %e, "could not queue a stopped job again")
                }
            }
        }
    }
}

/// `host:pid:random`: unique per process, and telling an operator which process holds a job.
fn owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Busy;

    impl crate::jobs::JobHandler for Busy {
        async fn run(&self, _: &Job) -> Result<Value, JobError> {
            Err(JobError::Deferred {
                message: "another sync of district lincoln is in progress".into(),
                after: Duration::from_secs(120),
            })
        }
    }

    #[tokio::test]
    async fn a_deferred_job_waits_queued_without_using_up_an_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let db = Db::connect_and_migrate(&url).await.unwrap();
        let district = crate::admin::create_district(&db, "lincoln", "Lincoln", "UTC", None)
            .await
            .unwrap();
        let new = jobs::NewJob {
            district_id: district.id,
            kind: "pull".into(),
            payload: serde_json::json!({}),
            dedupe_key: None,
            run_after: Utc::now(),
            max_attempts: 1,
        };
        let id = jobs::enqueue(&db, &new, Utc::now()).await.unwrap().id;
        let runner = Runner::new(
            db.clone(),
            JobSettings::default(),
            Handlers::new().with("pull", Busy),
        );
        let before = Utc::now();
        let ran = runner.run_once().await.unwrap().unwrap();
        let Outcome::Retrying(at) = ran.outcome else {
            panic!("{ran:?}");
        };
        assert!(at >= before + chrono::Duration::seconds(120), "{at}");
        let job = jobs::find(&db, district.id, &id).await.unwrap().unwrap();
        assert_eq!(job.status, jobs::JobStatus::Queued);
        // Its only attempt is still there: a busy district never makes a job fail for good.
        assert_eq!((job.attempts, job.max_attempts), (0, 1));
        assert!(
            (job.run_after - at).num_milliseconds().abs() < 2,
            "{}",
            job.run_after
        );
        assert_eq!(
            job.last_error.as_deref(),
            Some("another sync of district lincoln is in progress")
        );
        assert!(runner.run_once().await.unwrap().is_none(), "not due yet");
        db.close().await;
    }

    #[test]
    fn owner_ids_differ_between_runners_of_one_process() {
        let (a, b) = (owner_id(), owner_id());
        assert_ne!(a, b);
        assert!(a.contains(&format!(":{}:", std::process::id())), "{a}");
    }
}
