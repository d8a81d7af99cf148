//! Background jobs: rows with a lease. A process claims a job by writing its owner id and a lease
//! end; while it runs the job it extends the lease (a heartbeat). A lease that runs out means its
//! process died: the job is claimed again, until it has used up its attempts.
//!
//! Claiming is one statement. On PostgreSQL its inner select takes the row with `FOR UPDATE SKIP
//! LOCKED`, so processes sharing the database never claim the same job and never wait on each
//! other; on SQLite the statement runs under the database's single write lock, which serializes
//! claims the same way.
//!
//! A lease is identified by its owner *and* the attempt number, so an owner whose job was taken
//! over (and perhaps reclaimed by the same process later) cannot finish the newer attempt.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{Arg, Backend, Db, StoreError, Tx};
use crate::args;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub district_id: i64,
    pub id: String,
    pub kind: String,
    pub payload: Value,
    pub dedupe_key: Option<String>,
    pub status: JobStatus,
    pub run_after: DateTime<Utc>,
    /// Attempts started so far (the running one included).
    pub attempts: i64,
    pub max_attempts: i64,
    /// The process holding (or that last held) the lease.
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    district_id: i64,
    id: String,
    kind: String,
    payload: String,
    dedupe_key: Option<String>,
    status: String,
    run_after: DateTime<Utc>,
    attempts: i64,
    max_attempts: i64,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
    result: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl JobRow {
    fn into_job(self) -> Result<Job, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("job {}: stored {what}", self.id));
        let status = JobStatus::parse(&self.status).ok_or_else(|| corrupt("status unknown"))?;
        let payload =
            serde_json::from_str(&self.payload).map_err(|_| corrupt("payload unreadable"))?;
        let result = match &self.result {
            Some(text) => {
                Some(serde_json::from_str(text).map_err(|_| corrupt("result unreadable"))?)
            }
            None => None,
        };
        Ok(Job {
            district_id: self.district_id,
            id: self.id,
            kind: self.kind,
            payload,
            dedupe_key: self.dedupe_key,
            status,
            run_after: self.run_after,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until,
            last_error: self.last_error,
            result,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

fn into_jobs(rows: Vec<JobRow>) -> Result<Vec<Job>, StoreError> {
    rows.into_iter().map(JobRow::into_job).collect()
}

const COLUMNS: &str = "district_id, id, kind, payload, dedupe_key, status, run_after, attempts, \
     max_attempts, lease_owner, lease_until, last_error, result, created_at, started_at, finished_at";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub district_id: i64,
    pub kind: String,
    pub payload: Value,
    /// Jobs of a district with the same key are one job: the second enqueue is ignored.
    pub dedupe_key: Option<String>,
    /// Not claimed before this time.
    pub run_after: DateTime<Utc>,
    /// Attempts before the job is failed for good (at least 1).
    pub max_attempts: i64,
}

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The new job's id, or for a duplicate the id of the job already there.
    pub id: String,
    /// False when a job with the same dedupe key already existed.
    pub new: bool,
}

/// Enqueues a job, or finds the one already enqueued under its dedupe key.
pub async fn enqueue(db: &Db, job: &NewJob, now: DateTime<Utc>) -> Result<Enqueued, StoreError> {
    let mut tx = db.begin().await?;
    let enqueued = enqueue_in(&mut tx, job, now).await?;
    tx.commit().await?;
    Ok(enqueued)
}

/// As [`enqueue`], inside a transaction (a job enqueued with the change that calls for it).
pub async fn enqueue_in(
    tx: &mut Tx,
    job: &NewJob,
    now: DateTime<Utc>,
) -> Result<Enqueued, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Id {
        id: String,
    }
    let id = uuid::Uuid::new_v4().to_string();
    let payload = serde_json::to_string(&job.payload).expect("JSON values serialize");
    let inserted: Option<Id> = tx
        .fetch_optional(
            "INSERT INTO jobs (district_id, id, kind, payload, dedupe_key, status, run_after, \
             attempts, max_attempts, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, 0, $7, $8) \
             ON CONFLICT (district_id, dedupe_key) DO NOTHING RETURNING id",
            &args![
                job.district_id,
                id,
                job.kind.as_str(),
                payload,
                job.dedupe_key.clone(),
                job.run_after,
                job.max_attempts.max(1),
                now
            ],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok(Enqueued {
            id: row.id,
            new: true,
        });
    }
    let key = job.dedupe_key.clone().unwrap_or_default();
    let existing: Option<Id> = tx
        .fetch_optional(
            "SELECT id FROM jobs WHERE district_id = $1 AND dedupe_key = $2",
            &args![job.district_id, key.as_str()],
        )
        .await?;
    let existing = existing
        .ok_or_else(|| StoreError::Conflict(format!("job {key:?} collided but cannot be found")))?;
    Ok(Enqueued {
        id: existing.id,
        new: false,
    })
}

/// Claims the next job of one of `kinds` for `owner`, leased until `now + lease`: the oldest due
/// queued job, or a running one whose lease ran out (its process died), which counts as a new
/// attempt. Expired jobs that have used up their attempts are failed first.
pub async fn claim(
    db: &Db,
    owner: &str,
    kinds: &[String],
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Option<Job>, StoreError> {
    if kinds.is_empty() || !anything_to_claim(db, now).await? {
        return Ok(None);
    }
    fail_exhausted(db, now).await?;
    let mut args = args![owner, now + lease, now].to_vec();
    let first = args.len() + 1;
    let placeholders: Vec<String> = (first..first + kinds.len())
        .map(|n| format!("${n}"))
        .collect();
    args.extend(kinds.iter().map(Arg::from));
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
         lease_until = $2, started_at = $3, finished_at = NULL \
         WHERE (district_id, id) = (\
           SELECT district_id, id FROM jobs \
           WHERE kind IN ({kinds}) AND (\
             (status = 'queued' AND run_after <= $3) \
             OR (status = 'running' AND lease_until < $3 AND attempts < max_attempts)) \
           ORDER BY run_after, created_at, id LIMIT 1{lock}) \
         RETURNING {COLUMNS}",
        kinds = placeholders.join(", "),
    );
    let row: Option<JobRow> = db.conn().fetch_optional(&sql, &args).await?;
    row.map(JobRow::into_job).transpose()
}

/// Is any job due or any lease expired? A read, so that an idle runner polling SQLite does not
/// take the database's write lock (and wait behind an import holding it) every poll.
async fn anything_to_claim(db: &Db, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs \
             WHERE (status = 'queued' AND run_after <= $1) \
             OR (status = 'running' AND lease_until < $1) LIMIT 1) AS due",
            &args![now],
        )
        .await?;
    Ok(n > 0)
}

/// Fails the jobs whose lease ran out on their last attempt (their process died each time), and
/// returns them, so that their handlers can be told.
pub async fn fail_exhausted(db: &Db, now: DateTime<Utc>) -> Result<Vec<Job>, StoreError> {
    // A read first: an idle poll must not take SQLite's write lock.
    let exhausted = db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status = 'running' \
             AND lease_until < $1 AND attempts >= max_attempts LIMIT 1) AS exhausted",
            &args![now],
        )
        .await?;
    if exhausted == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<JobRow> = db
        .conn()
        .fetch_all(
            &format!(
                "UPDATE jobs SET status = 'failed', lease_until = NULL, finished_at = $1, \
                 last_error = 'the process running the job stopped before it finished' \
                 WHERE status = 'running' AND lease_until < $1 AND attempts >= max_attempts \
                 RETURNING {COLUMNS}"
            ),
            &args![now],
        )
        .await?;
    rows.into_iter().map(JobRow::into_job).collect()
}

/// The lease conditions: the job is still this attempt of this owner's.
const HELD: &str = "district_id = $1 AND id = $2 AND status = 'running' AND lease_owner = $3 \
     AND attempts = $4";

fn held_args(job: &Job) -> Vec<Arg> {
    args![
        job.district_id,
        job.id.as_str(),
        job.lease_owner.clone().unwrap_or_default(),
        job.attempts
    ]
    .to_vec()
}

/// Extends a claimed job's lease to `until` (a heartbeat). False when the lease was lost: the
/// job was taken over, and its runner must stop.
pub async fn extend_lease(db: &Db, job: &Job, until: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut args = held_args(job);
    args.push(until.into());
    let n = db
        .conn()
        .execute(
            &format!("UPDATE jobs SET lease_until = $5 WHERE {HELD}"),
            &args,
        )
        .await?;
    Ok(n == 1)
}

/// Records a claimed job's success. False when the lease was lost before.
pub async fn succeed(
    db: &Db,
    job: &Job,
    result: &Value,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut args = held_args(job);
    args.push(
        serde_json::to_string(result)
            .expect("JSON values serialize")
            .into(),
    );
    args.push(now.into());
    let n = db
        .conn()
        .execute(
            &format!(
                "UPDATE jobs SET status = 'succeeded', result = $5, last_error = NULL, \
                 lease_until = NULL, finished_at = $6 WHERE {HELD}"
            ),
            &args,
        )
        .await?;
    Ok(n == 1)
}

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Queued again for this time.
    Retrying(DateTime<Utc>),
    /// Failed for good (no retry asked for, or no attempts left).
    GaveUp,
    /// The lease was lost before: another process has the job.
    LeaseLost,
}

/// Records a claimed job's failure: queued again for `retry_at` while it has attempts left,
/// failed for good otherwise (or when `retry_at` is `None`). `error` is shown in the API.
pub async fn fail(
    db: &Db,
    job: &Job,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Failure, StoreError> {
    let retry_at = retry_at.filter(|_| job.attempts < job.max_attempts);
    let mut args = held_args(job);
    args.push(crate::domain::problem::shorten(error, 2000).into());
    let (sql, outcome) = match retry_at {
        Some(at) => {
            args.push(at.into());
            (
                format!(
                    "UPDATE jobs SET status = 'queued', last_error = $5, run_after = $6, \
                     lease_until = NULL WHERE {HELD}"
                ),
                Failure::Retrying(at),
            )
        }
        None => {
            args.push(now.into());
            (
                format!(
                    "UPDATE jobs SET status = 'failed', last_error = $5, lease_until = NULL, \
                     finished_at = $6 WHERE {HELD}"
                ),
                Failure::GaveUp,
            )
        }
    };
    let n = db.conn().execute(&sql, &args).await?;
    Ok(if n == 1 { outcome } else { Failure::LeaseLost })
}

/// Puts back a job its runner stopped (the process is shutting down): queued again at once, and
/// the interrupted attempt does not count. False when the lease was lost before.
pub async fn release(db: &Db, job: &Job, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut args = held_args(job);
    args.push(now.into());
    let n = db
        .conn()
        .execute(
            &format!(
                "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_after = $5, \
                 lease_until = NULL WHERE {HELD}"
            ),
            &args,
        )
        .await?;
    Ok(n == 1)
}

/// Puts back a job that could not start for a passing reason (`error`, shown in the API): queued
/// again for `run_after`, and the attempt does not count. False when the lease was lost before.
pub async fn defer(
    db: &Db,
    job: &Job,
    error: &str,
    run_after: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut args = held_args(job);
    args.push(crate::domain::problem::shorten(error, 2000).into());
    args.push(run_after.into());
    let n = db
        .conn()
        .execute(
            &format!(
                "UPDATE jobs SET status = 'queued', attempts = attempts - 1, last_error = $5, \
                 run_after = $6, lease_until = NULL WHERE {HELD}"
            ),
            &args,
        )
        .await?;
    Ok(n == 1)
}

/// What a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
}

impl JobFilter {
    fn args(&self, district_id: i64) -> Vec<Arg> {
        args![
            district_id,
            self.status.map(|s| s.as_str().to_string()),
            self.kind.clone()
        ]
        .to_vec()
    }
}

const FILTER: &str =
    "district_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR kind = $3)";

/// A district's jobs, newest first.
pub async fn list(
    db: &Db,
    district_id: i64,
    filter: &JobFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Job>, StoreError> {
    let mut args = filter.args(district_id);
    args.extend([Arg::I64(limit), Arg::I64(offset)]);
    let rows: Vec<JobRow> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM jobs WHERE {FILTER} \
                 ORDER BY created_at DESC, id LIMIT $4 OFFSET $5"
            ),
            &args,
        )
        .await?;
    into_jobs(rows)
}

/// How many of a district's jobs the filter matches.
pub async fn count(db: &Db, district_id: i64, filter: &JobFilter) -> Result<i64, StoreError> {
    db.conn()
        .scalar(
            &format!("SELECT COUNT(*) FROM jobs WHERE {FILTER}"),
            &filter.args(district_id),
        )
        .await
}

pub async fn find(db: &Db, district_id: i64, id: &str) -> Result<Option<Job>, StoreError> {
    let row: Option<JobRow> = db
        .conn()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM jobs WHERE district_id = $1 AND id = $2"),
            &args![district_id, id],
        )
        .await?;
    row.map(JobRow::into_job).transpose()
}

/// Is a job of this kind, with a dedupe key starting with `key_prefix`, queued or running?
pub async fn has_open(
    db: &Db,
    district_id: i64,
    kind: &str,
    key_prefix: &str,
) -> Result<bool, StoreError> {
    // A prefix compared with substr, not LIKE: keys may hold `%` and `_`, and SQLite's LIKE
    // ignores case.
    let n = db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM jobs WHERE district_id = $1 AND kind = $2 \
             AND status IN ('queued', 'running') \
             AND substr(dedupe_key, 1, CAST($3 AS INTEGER)) = $4",
            &args![
                district_id,
                kind,
                key_prefix.chars().count() as i64,
                key_prefix
            ],
        )
        .await?;
    Ok(n > 0)
}
