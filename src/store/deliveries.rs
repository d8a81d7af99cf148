//! Outbound webhook deliveries: one row per (subscription, event), fanned out from the outbox,
//! claimed with a lease, and finished as delivered or failed, with a log of every attempt.
//!
//! Claiming is one statement. On PostgreSQL its inner select takes rows with `FOR UPDATE SKIP
//! LOCKED`, so processes sharing the database never claim the same delivery; on SQLite the
//! statement runs under the database's single write lock. A delivery is claimed only at the
//! head of its line: no earlier delivery of the same subscription and subject is unfinished.
//! That keeps events about one subject in order for a subscriber, across processes.

use chrono::{DateTime, Utc};

use super::{Arg, Backend, Db, StoreError, Tx};
use crate::args;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// Leased by a worker that is sending it.
    Delivering,
    Delivered,
    /// Given up: the retries ran out, or the subscriber answered 410.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub district_id: i64,
    pub subscription_id: String,
    pub event_seq: i64,
    /// The event's type; `None` when the outbox row is gone.
    pub event_type: Option<String>,
    pub subject_id: String,
    pub status: DeliveryStatus,
    /// Attempts started so far.
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    district_id: i64,
    subscription_id: String,
    event_seq: i64,
    event_type: Option<String>,
    subject_id: String,
    status: String,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery, StoreError> {
        let status = DeliveryStatus::parse(&self.status).ok_or_else(|| {
            StoreError::Corrupt(format!("delivery {}: stored status unknown", self.id))
        })?;
        Ok(Delivery {
            id: self.id,
            district_id: self.district_id,
            subscription_id: self.subscription_id,
            event_seq: self.event_seq,
            event_type: self.event_type,
            subject_id: self.subject_id,
            status,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_status_code: self.last_status_code,
            last_error: self.last_error,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

const LOG_COLUMNS: &str = "d.id, d.district_id, d.subscription_id, d.event_seq, o.event_type, \
     d.subject_id, d.status, d.attempts, d.next_attempt_at, d.last_status_code, d.last_error, \
     d.created_at, d.finished_at";

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: i64,
    pub attempted_at: DateTime<Utc>,
    /// The answer's HTTP status; `None` when none came (connection refused, timeout).
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// A short, cleaned excerpt of the answer's body.
    pub response_excerpt: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Fan-out

/// An outbox event, as much of it as the fan-out needs.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxEvent {
    pub id: i64,
    pub event_type: String,
    pub subject_id: String,
    pub created_at: DateTime<Utc>,
}

/// What decides whether a subscription gets an event.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionFilter {
    pub id: String,
    /// Empty: every type of the catalogue.
    pub event_types: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct FilterRow {
    id: String,
    event_types: String,
    created_at: DateTime<Utc>,
}

/// A delivery to make.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub subscription_id: String,
    pub event_seq: i64,
    pub subject_id: String,
}

/// Districts that have subscriptions and outbox events not yet fanned out.
pub async fn districts_to_fan_out(db: &Db) -> Result<Vec<i64>, StoreError> {
    let rows: Vec<(i64,)> = db
        .conn()
        .fetch_all(
            // The cursor is joined first, so the outbox check is a range on its index.
            "SELECT w.district_id FROM (SELECT DISTINCT s.district_id, \
               COALESCE(c.last_event_seq, 0) AS after_seq FROM subscriptions s \
               LEFT JOIN webhook_fanout_cursors c ON c.district_id = s.district_id) w \
             WHERE EXISTS (SELECT 1 FROM outbox_events o WHERE o.district_id = w.district_id \
               AND o.id > w.after_seq) \
             ORDER BY w.district_id",
            &[],
        )
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Makes a district's cursor if it has none, past the events older than its first subscription
/// (no subscription wants those), so a first subscription does not walk a long history.
pub async fn ensure_cursor(db: &Db, district_id: i64) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "INSERT INTO webhook_fanout_cursors (district_id, last_event_seq) \
             SELECT $1, COALESCE(MAX(o.id), 0) FROM outbox_events o WHERE o.district_id = $1 \
               AND o.created_at < (SELECT MIN(s.created_at) FROM subscriptions s \
                                   WHERE s.district_id = $1) \
             ON CONFLICT (district_id) DO NOTHING",
            &args![district_id],
        )
        .await?;
    Ok(())
}

/// Locks a district's cursor for the rest of the transaction and returns it (`None`: no cursor).
/// The no-op update takes the row lock on PostgreSQL and the write lock on SQLite, so a second
/// fan-out of the district waits here and then reads the advanced cursor.
pub async fn lock_cursor(tx: &mut Tx, district_id: i64) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = tx
        .fetch_optional(
            "UPDATE webhook_fanout_cursors SET last_event_seq = last_event_seq \
             WHERE district_id = $1 RETURNING last_event_seq",
            &args![district_id],
        )
        .await?;
    Ok(row.map(|(seq,)| seq))
}

pub async fn advance_cursor(tx: &mut Tx, district_id: i64, seq: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE webhook_fanout_cursors SET last_event_seq = $2 WHERE district_id = $1",
        &args![district_id, seq],
    )
    .await?;
    Ok(())
}

/// A district's outbox events after `after_seq`, oldest first.
pub async fn events_after(
    tx: &mut Tx,
    district_id: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<OutboxEvent>, StoreError> {
    tx.fetch_all(
        "SELECT id, event_type, subject_id, created_at FROM outbox_events \
         WHERE district_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        &args![district_id, after_seq, limit],
    )
    .await
}

fn decode_filter(district_id: i64, row: FilterRow) -> Result<SubscriptionFilter, StoreError> {
    let event_types = serde_json::from_str::<Vec<String>>(&row.event_types).map_err(|_| {
        StoreError::Corrupt(format!(
            "subscription {:?} of district {district_id}: stored event types are invalid",
            row.id
        ))
    })?;
    Ok(SubscriptionFilter {
        id: row.id,
        event_types,
        created_at: row.created_at,
    })
}

/// Every subscription of a district (enabled or not: a disabled one's deliveries wait).
pub async fn subscription_filters(
    tx: &mut Tx,
    district_id: i64,
) -> Result<Vec<SubscriptionFilter>, StoreError> {
    let rows: Vec<FilterRow> = tx
        .fetch_all(
            "SELECT id, event_types, created_at FROM subscriptions WHERE district_id = $1 \
             ORDER BY id",
            &args![district_id],
        )
        .await?;
    rows.into_iter()
        .map(|r| decode_filter(district_id, r))
        .collect()
}

/// Rows per INSERT: far below either backend's limit on bound parameters.
const INSERT_CHUNK: usize = 500;

/// Queues deliveries, due at `now`.
pub async fn insert_deliveries(
    tx: &mut Tx,
    district_id: i64,
    deliveries: &[NewDelivery],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for chunk in deliveries.chunks(INSERT_CHUNK) {
        let mut args: Vec<Arg> = args![district_id, now].to_vec();
        let mut values = Vec::with_capacity(chunk.len());
        for d in chunk {
            let n = args.len();
            values.push(format!(
                "($1, ${}, ${}, ${}, 'pending', 0, $2, $2)",
                n + 1,
                n + 2,
                n + 3
            ));
            args.extend(args![
                d.subscription_id.as_str(),
                d.event_seq,
                d.subject_id.as_str()
            ]);
        }
        inserted += tx
            .execute(
                &format!(
                    "INSERT INTO webhook_deliveries (district_id, subscription_id, event_seq, \
                     subject_id, status, attempts, next_attempt_at, created_at) VALUES {}",
                    values.join(", ")
                ),
                &args,
            )
            .await?;
    }
    Ok(inserted)
}

/// A district's events created in `[since, until)`, oldest first, at most `limit`.
pub async fn events_between(
    db: &Db,
    district_id: i64,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<OutboxEvent>, StoreError> {
    db.conn()
        .fetch_all(
            "SELECT id, event_type, subject_id, created_at FROM outbox_events \
             WHERE district_id = $1 AND created_at >= $2 AND created_at < $3 ORDER BY id LIMIT $4",
            &args![district_id, since, until, limit],
        )
        .await
}

/// One event of a district.
pub async fn find_event(
    db: &Db,
    district_id: i64,
    seq: i64,
) -> Result<Option<OutboxEvent>, StoreError> {
    db.conn()
        .fetch_optional(
            "SELECT id, event_type, subject_id, created_at FROM outbox_events \
             WHERE district_id = $1 AND id = $2",
            &args![district_id, seq],
        )
        .await
}

/// Queues deliveries outside a fan-out (a replay).
pub async fn queue(
    db: &Db,
    district_id: i64,
    deliveries: &[NewDelivery],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let n = insert_deliveries(&mut tx, district_id, deliveries, now).await?;
    tx.commit().await?;
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Claim and record

/// A delivery leased to this process, with its attempt number.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub district_id: i64,
    pub subscription_id: String,
    pub event_seq: i64,
    pub subject_id: String,
    /// The attempt being made (1 for the first).
    pub attempts: i64,
}

/// Leases up to `limit` due deliveries at the head of their lines, of enabled subscriptions:
/// pending ones whose time has come, then ones whose lease ran out (their process died).
pub async fn claim(
    db: &Db,
    owner: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    // First among the earliest due deliveries only: cheap, and enough while most of them are
    // at the head of their lines. When that window is crowded with deliveries that must wait
    // (behind a retrying one, or of a disabled subscription), every due delivery is looked at,
    // so none of them starves.
    let window = limit.saturating_mul(CLAIM_WINDOW);
    // PostgreSQL takes the window's ids as an array: joined to the table instead, the planner
    // (which cannot see the window's size) hashes every pending delivery for each claim.
    let (join, in_window) = match db.backend() {
        Backend::Postgres => ("", "d.id = ANY (ARRAY(SELECT id FROM w)) AND "),
        Backend::Sqlite => ("JOIN w ON w.id = d.id", ""),
    };
    let mut claimed = claim_where(
        db,
        &format!(
            "WITH w AS MATERIALIZED (SELECT id FROM webhook_deliveries WHERE status = 'pending' \
             AND next_attempt_at <= $3 ORDER BY next_attempt_at, id LIMIT {window}) "
        ),
        join,
        &format!("{in_window}d.status = 'pending'"),
        "d.next_attempt_at, d.id",
        args![owner, lease_until, now, limit],
    )
    .await?;
    if (claimed.len() as i64) < limit {
        claimed.extend(
            claim_where(
                db,
                "",
                "",
                "d.status = 'pending' AND d.next_attempt_at <= $3",
                "d.next_attempt_at, d.id",
                args![owner, lease_until, now, limit - claimed.len() as i64],
            )
            .await?,
        );
    }
    let left = limit - claimed.len() as i64;
    if left > 0 {
        claimed.extend(
            claim_where(
                db,
                "",
                "",
                "d.status = 'delivering' AND d.lease_until < $3",
                "d.lease_until, d.id",
                args![owner, lease_until, now, left],
            )
            .await?,
        );
    }
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// How many times the claim's limit the first look covers.
const CLAIM_WINDOW: i64 = 4;

/// One claim statement: `with` and `join` narrow the candidates (the first look's window).
async fn claim_where(
    db: &Db,
    with: &str,
    join: &str,
    due: &str,
    order: &str,
    args: [Arg; 4],
) -> Result<Vec<Claimed>, StoreError> {
    // On PostgreSQL the chosen ids are an array too, so the UPDATE finds them by primary key
    // rather than by hashing the table.
    let (lock, open, close) = match db.backend() {
        Backend::Postgres => (" FOR UPDATE OF d SKIP LOCKED", "= ANY (ARRAY(", "))"),
        Backend::Sqlite => ("", "IN (", ")"),
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET status = 'delivering', attempts = attempts + 1, \
         lease_owner = $1, lease_until = $2 \
         WHERE id {open}{with}\
           SELECT d.id FROM webhook_deliveries d {join} \
           JOIN subscriptions s ON s.district_id = d.district_id AND s.id = d.subscription_id \
           WHERE {due} AND s.status = 'enabled' \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
               WHERE e.district_id = d.district_id AND e.subscription_id = d.subscription_id \
                 AND e.subject_id = d.subject_id AND e.id < d.id \
                 AND e.status IN ('pending', 'delivering')) \
           ORDER BY {order} LIMIT $4{lock}{close} \
         RETURNING id, district_id, subscription_id, event_seq, subject_id, attempts"
    );
    db.conn().fetch_all(&sql, &args).await
}

/// Brings the planner's statistics of the deliveries table up to date (PostgreSQL). A burst of
/// fanned-out deliveries otherwise leaves it planning the claim for an empty table, scanning
/// every pending delivery per claim until autovacuum gets round to it.
pub async fn refresh_statistics(db: &Db) -> Result<(), StoreError> {
    if db.backend() == Backend::Postgres {
        db.conn().execute("ANALYZE webhook_deliveries", &[]).await?;
    }
    Ok(())
}

/// Is anything due? A read, so that an idle worker polling SQLite does not take the write lock.
pub async fn anything_due(db: &Db, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries \
             WHERE (status = 'pending' AND next_attempt_at <= $1) \
             OR (status = 'delivering' AND lease_until < $1) LIMIT 1) AS due",
            &args![now],
        )
        .await?;
    Ok(n > 0)
}

/// What a claimed delivery sends: its event and its district's slug.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Payload {
    pub delivery_id: i64,
    pub id: i64,
    pub run_id: String,
    pub event_type: String,
    pub subject_id: String,
    pub payload: Option<String>,
    pub created_at: DateTime<Utc>,
    pub district_slug: String,
}

/// The events of these deliveries (a delivery whose event is gone has none).
pub async fn payloads(db: &Db, delivery_ids: &[i64]) -> Result<Vec<Payload>, StoreError> {
    if delivery_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=delivery_ids.len()).map(|n| format!("${n}")).collect();
    let args: Vec<Arg> = delivery_ids.iter().map(|id| Arg::from(*id)).collect();
    db.conn()
        .fetch_all(
            &format!(
                "SELECT d.id AS delivery_id, o.id, o.run_id, o.event_type, o.subject_id, \
                 o.payload, o.created_at, t.slug AS district_slug FROM webhook_deliveries d \
                 JOIN outbox_events o ON o.id = d.event_seq AND o.district_id = d.district_id \
                 JOIN districts t ON t.id = d.district_id WHERE d.id IN ({})",
                placeholders.join(", ")
            ),
            &args,
        )
        .await
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed,
}

/// The end of one attempt, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub delivery: Claimed,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub next: Next,
}

/// Records an attempt and moves its delivery on, if this process still holds the lease for that
/// attempt. `false` when another process took the delivery over (nothing is written).
pub async fn record_attempt(
    tx: &mut Tx,
    owner: &str,
    record: &AttemptRecord,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (status, next_at, finished) = match record.next {
        Next::Delivered => ("delivered", now, Some(now)),
        Next::Failed => ("failed", now, Some(now)),
        Next::RetryAt(at) => ("pending", at, None),
    };
    let code = record.status_code.map(|c| c.to_string());
    let d = &record.delivery;
    let sql = format!(
        "UPDATE webhook_deliveries SET status = $4, next_attempt_at = $5, lease_owner = NULL, \
         lease_until = NULL, last_status_code = CAST($6 AS BIGINT), last_error = $7, \
         finished_at = {finished} \
         WHERE id = $1 AND status = 'delivering' AND lease_owner = $2 AND attempts = $3",
        finished = if finished.is_some() { "$8" } else { "NULL" },
    );
    let mut args = args![
        d.id,
        owner,
        d.attempts,
        status,
        next_at,
        code.clone(),
        record.error.clone()
    ]
    .to_vec();
    if let Some(at) = finished {
        args.push(Arg::from(at));
    }
    if tx.execute(&sql, &args).await? == 0 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, \
         duration_ms, error, response_excerpt) VALUES ($1, $2, $3, CAST($4 AS BIGINT), $5, $6, $7)",
        &args![
            d.id,
            d.attempts,
            record.attempted_at,
            code,
            record.duration_ms,
            record.error.clone(),
            record.response_excerpt.clone()
        ],
    )
    .await?;
    Ok(true)
}

/// Rows per statement when recording successes: far below either backend's limit on bound
/// parameters (seven per attempt row).
const RECORD_CHUNK: usize = 200;

/// Records successful attempts (delivered, no error) many at a time: one UPDATE and one INSERT
/// per chunk instead of two statements per delivery. As [`record_attempt`], only deliveries
/// this process still holds for that attempt are written; their (id, attempt) are returned.
pub async fn record_delivered(
    tx: &mut Tx,
    owner: &str,
    records: &[&AttemptRecord],
    now: DateTime<Utc>,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut recorded = Vec::with_capacity(records.len());
    for chunk in records.chunks(RECORD_CHUNK) {
        let mut args: Vec<Arg> = args![owner, now].to_vec();
        let mut values = Vec::with_capacity(chunk.len());
        for r in chunk {
            let n = args.len();
            values.push(format!("(${}, ${}, ${})", n + 1, n + 2, n + 3));
            args.extend(args![
                r.delivery.id,
                r.delivery.attempts,
                r.status_code.map(|c| c.to_string())
            ]);
        }
        // VALUES columns are column1, column2, … on both backends.
        let held: std::collections::HashSet<(i64, i64)> = tx
            .fetch_all(
                &format!(
                    "UPDATE webhook_deliveries SET status = 'delivered', next_attempt_at = $2, \
                     lease_owner = NULL, lease_until = NULL, \
                     last_status_code = CAST(v.column3 AS BIGINT), last_error = NULL, \
                     finished_at = $2 FROM (VALUES {}) AS v \
                     WHERE webhook_deliveries.id = v.column1 \
                       AND webhook_deliveries.attempts = v.column2 \
                       AND webhook_deliveries.status = 'delivering' \
                       AND webhook_deliveries.lease_owner = $1 \
                     RETURNING webhook_deliveries.id, webhook_deliveries.attempts",
                    values.join(", ")
                ),
                &args,
            )
            .await?
            .into_iter()
            .collect();
        let written: Vec<&&AttemptRecord> = chunk
            .iter()
            .filter(|r| held.contains(&(r.delivery.id, r.delivery.attempts)))
            .collect();
        if written.is_empty() {
            continue;
        }
        let mut args: Vec<Arg> = Vec::with_capacity(written.len() * 7);
        let mut values = Vec::with_capacity(written.len());
        for r in &written {
            let n = args.len();
            values.push(format!(
                "(${}, ${}, ${}, CAST(${} AS BIGINT), ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7
            ));
            args.extend(args![
                r.delivery.id,
                r.delivery.attempts,
                r.attempted_at,
                r.status_code.map(|c| c.to_string()),
                r.duration_ms,
                r.error.clone(),
                r.response_excerpt.clone()
            ]);
        }
        tx.execute(
            &format!(
                "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, \
                 duration_ms, error, response_excerpt) VALUES {}",
                values.join(", ")
            ),
            &args,
        )
        .await?;
        recorded.extend(written.iter().map(|r| (r.delivery.id, r.delivery.attempts)));
    }
    Ok(recorded)
}

// ---------------------------------------------------------------------------------------------
// The delivery log

/// A subscription's deliveries, newest first: those with an id below `before` (all when
/// `None`), of `status` when given.
pub async fn list(
    db: &Db,
    district_id: i64,
    subscription_id: &str,
    status: Option<DeliveryStatus>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let mut args = args![
        district_id,
        subscription_id,
        before.unwrap_or(i64::MAX),
        limit
    ]
    .to_vec();
    let status_filter = match status {
        Some(s) => {
            args.push(Arg::from(s.as_str()));
            " AND d.status = $5"
        }
        None => "",
    };
    let rows: Vec<DeliveryRow> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT {LOG_COLUMNS} FROM webhook_deliveries d \
                 LEFT JOIN outbox_events o ON o.id = d.event_seq AND o.district_id = d.district_id \
                 WHERE d.district_id = $1 AND d.subscription_id = $2 AND d.id < $3{status_filter} \
                 ORDER BY d.id DESC LIMIT $4"
            ),
            &args,
        )
        .await?;
    rows.into_iter().map(DeliveryRow::into_delivery).collect()
}

/// One delivery of a district.
pub async fn find(db: &Db, district_id: i64, id: i64) -> Result<Option<Delivery>, StoreError> {
    let row: Option<DeliveryRow> = db
        .conn()
        .fetch_optional(
            &format!(
                "SELECT {LOG_COLUMNS} FROM webhook_deliveries d \
                 LEFT JOIN outbox_events o ON o.id = d.event_seq AND o.district_id = d.district_id \
                 WHERE d.district_id = $1 AND d.id = $2"
            ),
            &args![district_id, id],
        )
        .await?;
    row.map(DeliveryRow::into_delivery).transpose()
}

/// A delivery's attempts, first first.
pub async fn attempts(db: &Db, delivery_id: i64) -> Result<Vec<Attempt>, StoreError> {
    db.conn()
        .fetch_all(
            "SELECT attempt, attempted_at, status_code, duration_ms, error, response_excerpt \
             FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id",
            &args![delivery_id],
        )
        .await
}
