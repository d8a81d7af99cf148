//! Pushes to a district (rosters, scores): one row per delivery, inserted with the job that
//! processes it, deduplicated by the sender's `webhook-id`. A body is in the row itself (`body`,
//! with `body_path` empty) or, when large, a file named by `body_path`. A body kept past its
//! retention is purged; the row stays and says so.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::jobs::{enqueue_in, NewJob};
use super::{Arg, Db, StoreError, Tx};
use crate::args;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Stored; its job has not taken it up yet (or will again).
    Received,
    Processing,
    Applied,
    /// Its run waits for an administrator (a safeguard held it).
    Held,
    /// Its run refused the input.
    Failed,
    /// The gateway could not process it within the job's attempts: it waits for an admin retry.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Received,
        DeliveryStatus::Processing,
        DeliveryStatus::Applied,
        DeliveryStatus::Held,
        DeliveryStatus::Failed,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Received => "received",
            DeliveryStatus::Processing => "processing",
            DeliveryStatus::Applied => "applied",
            DeliveryStatus::Held => "held",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The statuses [`DeliveryStatus::is_final`] holds for.
    pub fn finals() -> Vec<DeliveryStatus> {
        DeliveryStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect()
    }

    /// Processed to an end that another attempt would not change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Applied | DeliveryStatus::Held | DeliveryStatus::Failed
        )
    }
}

/// Where a delivery's body is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPlace {
    /// In the row's `body` column (`body_path` is empty); read it with [`body`].
    Row,
    /// A file, relative to the data directory.
    File(String),
}

impl BodyPlace {
    /// An empty `body_path` is the mark of a body kept in the row.
    fn from_path(path: String) -> BodyPlace {
        if path.is_empty() {
            BodyPlace::Row
        } else {
            BodyPlace::File(path)
        }
    }
}

/// A stored delivery (without its body's bytes: only where they are).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub district_id: i64,
    pub id: String,
    pub webhook_id: Option<String>,
    pub kind: String,
    pub content_type: String,
    pub body: BodyPlace,
    pub body_bytes: i64,
    pub status: DeliveryStatus,
    /// What processing it made: a roster's sync run, or a score push's score import (the column
    /// predates score pushes; one id per delivery either way).
    pub run_id: Option<String>,
    /// The problems that failed it, as the run (or import) reported them.
    pub errors: Value,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When its body was deleted, its retention over (the delivery is final).
    pub body_purged_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    district_id: i64,
    id: String,
    webhook_id: Option<String>,
    kind: String,
    content_type: String,
    body_path: String,
    body_bytes: i64,
    status: String,
    run_id: Option<String>,
    errors: String,
    attempts: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    body_purged_at: Option<DateTime<Utc>>,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!("inbound delivery {}: stored {what}", self.id))
        };
        Ok(Delivery {
            status: DeliveryStatus::parse(&self.status).ok_or_else(|| corrupt("status unknown"))?,
            errors: serde_json::from_str(&self.errors).map_err(|_| corrupt("errors unreadable"))?,
            district_id: self.district_id,
            id: self.id,
            webhook_id: self.webhook_id,
            kind: self.kind,
            content_type: self.content_type,
            body: BodyPlace::from_path(self.body_path),
            body_bytes: self.body_bytes,
            run_id: self.run_id,
            attempts: self.attempts,
            created_at: self.created_at,
            updated_at: self.updated_at,
            body_purged_at: self.body_purged_at,
        })
    }
}

const COLUMNS: &str = "district_id, id, webhook_id, kind, content_type, body_path, body_bytes, \
     status, run_id, errors, attempts, created_at, updated_at, body_purged_at";

/// A delivery to store.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub district_id: i64,
    pub id: String,
    pub webhook_id: Option<String>,
    pub kind: String,
    pub content_type: String,
    pub body: NewBody,
    pub body_bytes: i64,
}

/// A new delivery's body: its bytes, to keep in the row, or the file it was written to.
#[derive(Debug, Clone)]
pub enum NewBody {
    Row(Vec<u8>),
    /// Relative to the data directory; written and synced before the row is inserted.
    File(String),
}

/// What storing a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Stored (with its job, if it has one).
    New(Delivery),
    /// The district already had a delivery with this webhook id: nothing was stored.
    Duplicate(Delivery),
}

/// Stores a delivery and enqueues `job` (which processes it), if there is one, in one
/// transaction; a delivery whose webhook id the district has seen stores nothing and returns the
/// first one.
pub async fn insert(
    db: &Db,
    new: &NewDelivery,
    job: Option<&NewJob>,
    now: DateTime<Utc>,
) -> Result<Stored, StoreError> {
    let (body_path, body) = match &new.body {
        NewBody::Row(bytes) => ("", Some(bytes.clone())),
        NewBody::File(path) => (path.as_str(), None),
    };
    let mut tx = db.begin().await?;
    let inserted: Option<DeliveryRow> = tx
        .fetch_optional(
            &format!(
                "INSERT INTO inbound_deliveries (district_id, id, webhook_id, kind, content_type, \
                 body_path, body, body_bytes, status, run_id, errors, attempts, created_at, \
                 updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'received', NULL, '[]', 0, $9, $9) \
                 ON CONFLICT (district_id, webhook_id) DO NOTHING RETURNING {COLUMNS}"
            ),
            &args![
                new.district_id,
                new.id.as_str(),
                new.webhook_id.clone(),
                new.kind.as_str(),
                new.content_type.as_str(),
                body_path,
                body,
                new.body_bytes,
                now
            ],
        )
        .await?;
    let Some(row) = inserted else {
        tx.rollback().await?;
        let webhook_id = new.webhook_id.as_deref().unwrap_or_default();
        let first = find_by_webhook_id(db, new.district_id, webhook_id)
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(format!(
                    "delivery with webhook id {webhook_id:?} collided but cannot be found"
                ))
            })?;
        return Ok(Stored::Duplicate(first));
    };
    if let Some(job) = job {
        enqueue_in(&mut tx, job, now).await?;
    }
    tx.commit().await?;
    Ok(Stored::New(row.into_delivery()?))
}

pub async fn find(db: &Db, district_id: i64, id: &str) -> Result<Option<Delivery>, StoreError> {
    let row: Option<DeliveryRow> = db
        .conn()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM inbound_deliveries WHERE district_id = $1 AND id = $2"),
            &args![district_id, id],
        )
        .await?;
    row.map(DeliveryRow::into_delivery).transpose()
}

/// The bytes of a delivery's body kept in its row; `None` when there are none (the delivery is
/// gone, its body is a file, or it was purged).
pub async fn body(db: &Db, district_id: i64, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Body {
        body: Option<Vec<u8>>,
    }
    let row: Option<Body> = db
        .conn()
        .fetch_optional(
            "SELECT body FROM inbound_deliveries WHERE district_id = $1 AND id = $2",
            &args![district_id, id],
        )
        .await?;
    Ok(row.and_then(|r| r.body))
}

pub async fn find_by_webhook_id(
    db: &Db,
    district_id: i64,
    webhook_id: &str,
) -> Result<Option<Delivery>, StoreError> {
    let row: Option<DeliveryRow> = db
        .conn()
        .fetch_optional(
            &format!(
                "SELECT {COLUMNS} FROM inbound_deliveries \
                 WHERE district_id = $1 AND webhook_id = $2"
            ),
            &args![district_id, webhook_id],
        )
        .await?;
    row.map(DeliveryRow::into_delivery).transpose()
}

const FILTER: &str = "district_id = $1 AND ($2 IS NULL OR status = $2)";

fn filter_args(district_id: i64, status: Option<DeliveryStatus>) -> Vec<Arg> {
    args![district_id, status.map(|s| s.as_str().to_string())].to_vec()
}

/// A district's deliveries, newest first.
pub async fn list(
    db: &Db,
    district_id: i64,
    status: Option<DeliveryStatus>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let mut args = filter_args(district_id, status);
    args.extend([Arg::I64(limit), Arg::I64(offset)]);
    let rows: Vec<DeliveryRow> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM inbound_deliveries WHERE {FILTER} \
                 ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
            ),
            &args,
        )
        .await?;
    rows.into_iter().map(DeliveryRow::into_delivery).collect()
}

pub async fn count(
    db: &Db,
    district_id: i64,
    status: Option<DeliveryStatus>,
) -> Result<i64, StoreError> {
    db.conn()
        .scalar(
            &format!("SELECT COUNT(*) FROM inbound_deliveries WHERE {FILTER}"),
            &filter_args(district_id, status),
        )
        .await
}

/// Up to `limit` deliveries of `kind`, in any district, still `received` and with no job whose
/// dedupe key is `key_prefix` and their id (the key a delivery's job gets at receipt): oldest
/// first, as (district, id).
pub async fn waiting_without_job(
    db: &Db,
    kind: &str,
    key_prefix: &str,
    limit: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Waiting {
        district_id: i64,
        id: String,
    }
    let rows: Vec<Waiting> = db
        .conn()
        .fetch_all(
            "SELECT d.district_id, d.id FROM inbound_deliveries d \
             WHERE d.kind = $1 AND d.status = 'received' AND NOT EXISTS \
             (SELECT 1 FROM jobs j WHERE j.district_id = d.district_id \
              AND j.dedupe_key = $2 || d.id) \
             ORDER BY d.created_at, d.id LIMIT $3",
            &args![kind, key_prefix, limit],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.district_id, r.id)).collect())
}

/// Marks a delivery taken up by its job (one more attempt).
pub async fn start(
    db: &Db,
    district_id: i64,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "UPDATE inbound_deliveries SET status = 'processing', attempts = attempts + 1, \
             updated_at = $1 WHERE district_id = $2 AND id = $3",
            &args![now, district_id, id],
        )
        .await?;
    Ok(())
}

/// Puts a delivery its job could not start on (its district was busy) back as received; that
/// start does not count as an attempt.
pub async fn put_back(
    db: &Db,
    district_id: i64,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "UPDATE inbound_deliveries SET status = 'received', attempts = attempts - 1, \
             updated_at = $1 WHERE district_id = $2 AND id = $3 AND status = 'processing'",
            &args![now, district_id, id],
        )
        .await?;
    Ok(())
}

/// Records where a delivery got to: its status, the run it made (if any) and its errors.
pub async fn finish(
    db: &Db,
    district_id: i64,
    id: &str,
    status: DeliveryStatus,
    run_id: Option<&str>,
    errors: &Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "UPDATE inbound_deliveries SET status = $1, run_id = COALESCE($2, run_id), \
             errors = $3, updated_at = $4 WHERE district_id = $5 AND id = $6",
            &args![
                status.as_str(),
                run_id.map(str::to_string),
                serde_json::to_string(errors).expect("JSON values serialize"),
                now,
                district_id,
                id
            ],
        )
        .await?;
    Ok(())
}

/// Puts a dead (or failed) delivery back as received and enqueues `job` to process it again, in
/// one transaction. False when the delivery is not in `from` (it is being processed, or gone) or
/// its body was purged.
pub async fn requeue_with_job(
    db: &Db,
    district_id: i64,
    id: &str,
    from: &[DeliveryStatus],
    job: &NewJob,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let (from, from_args) = status_list(4, from);
    let mut args = args![now, district_id, id].to_vec();
    args.extend(from_args);
    let n = tx
        .execute(
            &format!(
                "UPDATE inbound_deliveries SET status = 'received', errors = '[]', \
                 updated_at = $1 WHERE district_id = $2 AND id = $3 \
                 AND body_purged_at IS NULL AND status IN ({from})"
            ),
            &args,
        )
        .await?;
    if n != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    enqueue_in(&mut tx, job, now).await?;
    tx.commit().await?;
    Ok(true)
}

/// `$first, $first+1, …` for each status, and the statuses as arguments.
fn status_list(first: usize, statuses: &[DeliveryStatus]) -> (String, Vec<Arg>) {
    let placeholders: Vec<String> = (first..first + statuses.len())
        .map(|n| format!("${n}"))
        .collect();
    let args = statuses.iter().map(|s| Arg::from(s.as_str())).collect();
    (placeholders.join(", "), args)
}

/// A delivery whose body may be purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeCandidate {
    pub district_id: i64,
    pub id: String,
    pub body: BodyPlace,
}

#[derive(sqlx::FromRow)]
struct PurgeRow {
    district_id: i64,
    id: String,
    body_path: String,
}

/// Up to `limit` deliveries, in any district, final since before `cutoff` and with their body
/// still kept: the oldest first.
pub async fn purge_candidates(
    db: &Db,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<PurgeCandidate>, StoreError> {
    let (finals, mut args) = status_list(3, &DeliveryStatus::finals());
    args.splice(0..0, [Arg::from(cutoff), Arg::I64(limit)]);
    let rows: Vec<PurgeRow> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT district_id, id, body_path FROM inbound_deliveries \
                 WHERE body_purged_at IS NULL AND updated_at < $1 AND status IN ({finals}) \
                 ORDER BY updated_at LIMIT $2"
            ),
            &args,
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| PurgeCandidate {
            district_id: r.district_id,
            id: r.id,
            body: BodyPlace::from_path(r.body_path),
        })
        .collect())
}

/// Marks a delivery's body purged, in `tx`, if it still may be (final since before `cutoff`, not
/// purged yet), and drops a body kept in the row with it. A body in a file: delete the file
/// before `tx` commits, so that a retry that comes in between
/// waits for the commit and then finds it purged. False when it may not (any more).
pub async fn mark_purged(
    tx: &mut Tx,
    district_id: i64,
    id: &str,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (finals, finals_args) = status_list(5, &DeliveryStatus::finals());
    let mut args = args![now, district_id, id, cutoff].to_vec();
    args.extend(finals_args);
    let n = tx
        .execute(
            &format!(
                "UPDATE inbound_deliveries SET body_purged_at = $1, body = NULL \
                 WHERE district_id = $2 AND id = $3 AND body_purged_at IS NULL \
                 AND updated_at < $4 AND status IN ({finals})"
            ),
            &args,
        )
        .await?;
    Ok(n == 1)
}
