//! Sync runs: one row per run, with its plan and its report.

use chrono::{DateTime, Utc};

use super::{outbox, Db, StoreError, Tx};
use crate::args;
use crate::domain::records::RecordKind;
use crate::domain::run::{CursorMove, Plan, RunReport, RunStatus};

#[derive(Debug, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub district_id: i64,
    pub source: String,
    pub status: String,
    pub dry_run: bool,
    pub plan: String,
    pub staged_rows: i64,
    pub report: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl RunRow {
    pub fn status(&self) -> Option<RunStatus> {
        RunStatus::parse(&self.status)
    }
    pub fn plan(&self) -> Result<Plan, StoreError> {
        serde_json::from_str(&self.plan).map_err(|e| {
            StoreError::Corrupt(format!("run {}: stored plan unreadable: {e}", self.id))
        })
    }
    pub fn report(&self) -> Option<RunReport> {
        self.report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
    }
}

const COLUMNS: &str =
    "id, district_id, source, status, dry_run, plan, staged_rows, report, started_at, finished_at";

/// A run as it starts.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    pub id: &'a str,
    pub district_id: i64,
    pub source: &'a str,
    pub dry_run: bool,
    pub plan: &'a Plan,
    pub started_at: DateTime<Utc>,
    /// The spooled upload the run reads, deleted if the run dies.
    pub input_file: Option<&'a str>,
}

pub async fn insert(db: &Db, run: NewRun<'_>) -> Result<(), StoreError> {
    let plan = serde_json::to_string(run.plan).expect("plan serializes");
    // A running run's row acknowledges nothing: the run's own end (applied, held, failed) is
    // committed durably and flushes the row with it. A run reading a spooled upload is the
    // exception: after a crash its row is what tells the next run to delete the upload.
    let mut tx = match run.input_file {
        None => db.begin_unflushed().await?,
        Some(_) => db.begin().await?,
    };
    tx.execute(
        "INSERT INTO sync_runs (id, district_id, source, status, dry_run, plan, started_at, input_file) \
         VALUES ($1, $2, $3, 'running', $4, $5, $6, $7)",
        &args![
            run.id,
            run.district_id,
            run.source,
            run.dry_run,
            plan,
            run.started_at,
            run.input_file.map(str::to_string)
        ],
    )
    .await?;
    tx.commit().await
}

/// Records a run's outcome (inside the applying transaction when there is one), and, for a run
/// held or applied, its `sync_run.held` / `sync_run.applied` event in the same transaction.
pub async fn finish_in(
    tx: &mut Tx,
    report: &RunReport,
    staged_rows: i64,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(report).expect("report serializes");
    let finished_at = report.finished_at.unwrap_or_else(Utc::now);
    tx.execute(
        "UPDATE sync_runs SET status = $1, report = $2, finished_at = $3, staged_rows = $4 WHERE id = $5",
        &args![report.status.as_str(), json, finished_at, staged_rows, report.run_id.as_str()],
    )
    .await?;
    let event_type = match report.status {
        RunStatus::Held => "sync_run.held",
        RunStatus::Applied => "sync_run.applied",
        _ => return Ok(()),
    };
    let plan = tx
        .strings(
            "SELECT plan FROM sync_runs WHERE id = $1",
            &args![report.run_id.as_str()],
        )
        .await?
        .first()
        .and_then(|p| serde_json::from_str::<Plan>(p).ok())
        .unwrap_or_default();
    let data = run_event_data(report, &plan);
    outbox::insert_run_event(tx, &report.run_id, event_type, &data, finished_at).await
}

/// A run event's thin payload: its source, and per kind how it arrived and what changed (or
/// would, for a held run). Counts only: no record of the run is named.
fn run_event_data(report: &RunReport, plan: &Plan) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = report
        .counts
        .iter()
        .map(|(kind, c)| {
            let mode = RecordKind::from_oneroster_name(kind).and_then(|k| plan.mode(k));
            (
                kind.clone(),
                serde_json::json!({
                    "mode": mode,
                    "created": c.created,
                    "updated": c.updated,
                    "deleted": c.deleted,
                }),
            )
        })
        .collect();
    serde_json::json!({ "source": report.source, "counts": counts })
}

/// Remembers where a pull moves its connection when the run is applied (now or on approval).
pub async fn set_cursor_move(db: &Db, id: &str, cursor: &CursorMove) -> Result<(), StoreError> {
    let json = serde_json::to_string(cursor).expect("a cursor move serializes");
    db.conn()
        .execute(
            "UPDATE sync_runs SET connection = $1, cursor_after = $2 WHERE id = $3",
            &args![cursor.connection.as_str(), json, id],
        )
        .await?;
    Ok(())
}

/// The cursor move of a run being applied, if it is a pull.
pub async fn cursor_move_in(tx: &mut Tx, id: &str) -> Result<Option<CursorMove>, StoreError> {
    let stored = tx
        .strings(
            "SELECT cursor_after FROM sync_runs WHERE id = $1 AND cursor_after IS NOT NULL",
            &args![id],
        )
        .await?;
    stored
        .first()
        .map(|json| {
            serde_json::from_str(json).map_err(|e| {
                StoreError::Corrupt(format!("run {id}: stored cursor unreadable: {e}"))
            })
        })
        .transpose()
}

pub async fn finish(db: &Db, report: &RunReport, staged_rows: i64) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    finish_in(&mut tx, report, staged_rows).await?;
    tx.commit().await
}

pub async fn find(db: &Db, district_id: i64, id: &str) -> Result<Option<RunRow>, StoreError> {
    db.conn()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM sync_runs WHERE district_id = $1 AND id = $2"),
            &args![district_id, id],
        )
        .await
}

pub async fn list(
    db: &Db,
    district_id: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<RunRow>, StoreError> {
    db.conn()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM sync_runs WHERE district_id = $1 ORDER BY started_at DESC, id LIMIT $2 OFFSET $3"
            ),
            &args![district_id, limit, offset],
        )
        .await
}

/// Held runs of a district other than `except` (a newer run supersedes them).
pub async fn held_ids(db: &Db, district_id: i64, except: &str) -> Result<Vec<String>, StoreError> {
    db.conn()
        .strings(
            "SELECT id FROM sync_runs WHERE district_id = $1 AND status = 'held' AND id <> $2",
            &args![district_id, except],
        )
        .await
}

/// Replaces a running run's plan: the engine notes in it how it compared each kind, which an
/// approval of the run, if it is held, applies the same way.
pub async fn set_plan(db: &Db, id: &str, plan: &Plan) -> Result<(), StoreError> {
    let plan = serde_json::to_string(plan).expect("plan serializes");
    db.conn()
        .execute(
            "UPDATE sync_runs SET plan = $1 WHERE id = $2",
            &args![plan, id],
        )
        .await?;
    Ok(())
}

pub async fn set_status(db: &Db, id: &str, status: RunStatus) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "UPDATE sync_runs SET status = $1, finished_at = $2 WHERE id = $3",
            &args![status.as_str(), Utc::now(), id],
        )
        .await?;
    Ok(())
}

/// A run that died without finishing, and the spooled input it read (if any), for clean-up.
#[derive(Debug, sqlx::FromRow)]
pub struct AbandonedRun {
    pub id: String,
    pub input_file: Option<String>,
}

/// Runs of a district other than `current` still marked running. Called by the holder of the
/// district's lock, for whom they are runs that died without finishing.
pub async fn running_except(
    db: &Db,
    district_id: i64,
    current: &str,
) -> Result<Vec<AbandonedRun>, StoreError> {
    db.conn()
        .fetch_all(
            "SELECT id, input_file FROM sync_runs WHERE district_id = $1 AND status = 'running' AND id <> $2",
            &args![district_id, current],
        )
        .await
}

/// Districts with runs marked running (at start-up: candidates for recovery).
pub async fn districts_with_running_runs(db: &Db) -> Result<Vec<i64>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct DistrictId {
        district_id: i64,
    }
    let rows: Vec<DistrictId> = db
        .conn()
        .fetch_all(
            "SELECT DISTINCT district_id FROM sync_runs WHERE status = 'running'",
            &[],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.district_id).collect())
}
