//! The per-district sync lock: one run at a time per district, and a lock that dies with the
//! process holding it, so a crashed run never keeps its district locked.
//!
//! - PostgreSQL: a session advisory lock on a connection the lock keeps for itself. When the
//!   process dies, its connection closes and the server drops the lock at once; several gateway
//!   processes on one database exclude each other.
//! - SQLite: the database is one file on one host (WAL needs shared memory), so the holder writes
//!   its process identity (host, pid, start time) next to the lock, and a process that finds that
//!   holder gone takes the lock over.
//!
//! `sync_lock` (the run id) is written on both backends, so that the next holder knows which run
//! was interrupted.

use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use sqlx::pool::PoolConnection;
use sqlx::Postgres;

use super::{Db, StoreError};
use crate::args;

/// First key of every advisory lock this gateway takes ("RG" and a version), so that other
/// applications sharing the database cannot collide with district ids.
const ADVISORY_NAMESPACE: i32 = 0x5247_0001;

/// A holder whose liveness cannot be checked (another host, no `/proc`) keeps the lock this long.
const UNVERIFIABLE_HOLDER_HOURS: i64 = 2;

/// A held district lock. Release it with [`DistrictLock::release`]; dropping it releases it too
/// (on PostgreSQL by closing its connection), so a cancelled run never keeps the lock.
pub struct DistrictLock {
    district_id: i64,
    run_id: String,
    held: Option<Held>,
}

enum Held {
    Postgres(PoolConnection<Postgres>),
    Sqlite(Db),
}

impl std::fmt::Debug for DistrictLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistrictLock")
            .field("district_id", &self.district_id)
            .field("run_id", &self.run_id)
            .finish()
    }
}

/// Takes the district's sync lock for `run_id`; `None` when a live run holds it.
pub async fn try_lock(
    db: &Db,
    district_id: i64,
    run_id: &str,
) -> Result<Option<DistrictLock>, StoreError> {
    let held = match db {
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                .bind(ADVISORY_NAMESPACE)
                .bind(advisory_key(district_id)?)
                .fetch_one(&mut *conn)
                .await?;
            if !got {
                return Ok(None);
            }
            Held::Postgres(conn)
        }
        Db::Sqlite(_) => {
            if !take_sqlite_lock(db, district_id, run_id).await? {
                return Ok(None);
            }
            Held::Sqlite(db.clone())
        }
    };
    let mut lock = DistrictLock {
        district_id,
        run_id: run_id.to_string(),
        held: Some(held),
    };
    if let Some(Held::Postgres(conn)) = &mut lock.held {
        let mut tx = unflushed(conn).await?;
        sqlx::query(
            "UPDATE districts SET sync_lock = $1, sync_locked_at = $2, sync_lock_owner = $3 WHERE id = $4",
        )
        .bind(run_id)
        .bind(Utc::now())
        .bind(process_identity().to_string())
        .bind(district_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(Some(lock))
}

impl DistrictLock {
    /// Gives the lock back.
    pub async fn release(mut self) -> Result<(), StoreError> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        match held {
            Held::Postgres(mut conn) => {
                let released = async {
                    let mut tx = unflushed(&mut conn).await?;
                    sqlx::query(
                        "UPDATE districts SET sync_lock = NULL, sync_locked_at = NULL, sync_lock_owner = NULL \
                         WHERE id = $1 AND sync_lock = $2",
                    )
                    .bind(self.district_id)
                    .bind(&self.run_id)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                        .bind(ADVISORY_NAMESPACE)
                        .bind(advisory_key(self.district_id)?)
                        .execute(&mut *conn)
                        .await?;
                    Ok::<_, StoreError>(())
                }
                .await;
                if released.is_err() {
                    // A connection that may still hold the lock must not go back to the pool.
                    drop(conn.detach());
                }
                released
            }
            Held::Sqlite(db) => clear_sqlite_lock(&db, self.district_id, &self.run_id).await,
        }
    }
}

impl Drop for DistrictLock {
    fn drop(&mut self) {
        match self.held.take() {
            None => {}
            // Closing the session is what releases an advisory lock for certain.
            Some(Held::Postgres(conn)) => drop(conn.detach()),
            Some(Held::Sqlite(db)) => {
                let (district_id, run_id) = (self.district_id, self.run_id.clone());
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(e) = clear_sqlite_lock(&db, district_id, &run_id).await {
                            tracing::warn!(error = %e, "could not release a district's sync lock");
                        }
                    });
                }
            }
        }
    }
}

/// The advisory lock is what excludes other runs; the holder's name on the district row only
/// tells the next holder which run it interrupted. Neither writing nor clearing it acknowledges
/// anything, so neither waits for a flush: the server drops the advisory lock in a crash anyway,
/// and a stale name (a run already finished) is overwritten by the next holder.
async fn unflushed(
    conn: &mut PoolConnection<Postgres>,
) -> Result<sqlx::Transaction<'_, Postgres>, StoreError> {
    Ok(sqlx::Connection::begin_with(&mut **conn, super::BEGIN_UNFLUSHED).await?)
}

fn advisory_key(district_id: i64) -> Result<i32, StoreError> {
    i32::try_from(district_id)
        .map_err(|_| StoreError::Corrupt(format!("district id {district_id} is out of range")))
}

#[derive(sqlx::FromRow)]
struct LockRow {
    sync_lock: Option<String>,
    sync_lock_owner: Option<String>,
    sync_locked_at: Option<DateTime<Utc>>,
}

/// Compare-and-set on the district row: SQLite runs one writer at a time, so of two processes
/// that saw the same dead holder only one replaces it.
async fn take_sqlite_lock(db: &Db, district_id: i64, run_id: &str) -> Result<bool, StoreError> {
    let row: Option<LockRow> = db
        .conn()
        .fetch_optional(
            "SELECT sync_lock, sync_lock_owner, sync_locked_at FROM districts WHERE id = $1",
            &args![district_id],
        )
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!(
            "district {district_id} not found"
        )));
    };
    let now = Utc::now();
    if let Some(holder) = &row.sync_lock {
        let owner = row
            .sync_lock_owner
            .as_deref()
            .and_then(ProcessIdentity::parse);
        let locked_at = row.sync_locked_at.unwrap_or(now);
        if holder_alive(owner.as_ref(), locked_at, now) {
            return Ok(false);
        }
        tracing::warn!(run_id = %holder, "the process holding a district's sync lock is gone: taking it over");
    }
    let taken = db
        .conn()
        .execute(
            "UPDATE districts SET sync_lock = $1, sync_locked_at = $2, sync_lock_owner = $3 \
             WHERE id = $4 AND (sync_lock = $5 OR (sync_lock IS NULL AND $5 = ''))",
            &args![
                run_id,
                now,
                process_identity().to_string(),
                district_id,
                row.sync_lock.unwrap_or_default()
            ],
        )
        .await?;
    Ok(taken == 1)
}

async fn clear_sqlite_lock(db: &Db, district_id: i64, run_id: &str) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "UPDATE districts SET sync_lock = NULL, sync_locked_at = NULL, sync_lock_owner = NULL \
             WHERE id = $1 AND sync_lock = $2",
            &args![district_id, run_id],
        )
        .await?;
    Ok(())
}

/// Is the process that took a lock at `locked_at` still running? Unknown holders (another host,
/// no `/proc`) count as alive for a while, as before this check existed.
fn holder_alive(
    owner: Option<&ProcessIdentity>,
    locked_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let me = process_identity();
    match owner {
        Some(owner) if owner == me => true,
        Some(owner) if owner.host == me.host && me.start_ticks.is_some() => {
            ProcessIdentity::start_ticks_of(owner.pid).is_some_and(|t| Some(t) == owner.start_ticks)
        }
        _ => now - locked_at < Duration::hours(UNVERIFIABLE_HOLDER_HOURS),
    }
}

/// A process, told apart from a later one that reuses its pid by its start time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcessIdentity {
    host: String,
    pid: u32,
    /// Clock ticks after boot at which the process started (`/proc/PID/stat`, field 22).
    start_ticks: Option<u64>,
}

fn process_identity() -> &'static ProcessIdentity {
    static ME: OnceLock<ProcessIdentity> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        ProcessIdentity {
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            pid,
            start_ticks: ProcessIdentity::start_ticks_of(pid),
        }
    })
}

impl ProcessIdentity {
    fn start_ticks_of(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses: count from its end.
        let after_name = &stat[stat.rfind(')')? + 1..];
        after_name.split_whitespace().nth(19)?.parse().ok()
    }

    fn parse(raw: &str) -> Option<ProcessIdentity> {
        let mut parts = raw.rsplitn(3, '/');
        let start = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        Some(ProcessIdentity {
            host,
            pid,
            start_ticks: start.parse().ok(),
        })
    }
}

impl std::fmt::Display for ProcessIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = self.start_ticks.map(|t| t.to_string()).unwrap_or_default();
        write!(f, "{}/{}/{start}", self.host, self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_identity_round_trips_through_its_text() {
        let me = process_identity();
        assert!(me.start_ticks.is_some(), "this test runs on Linux");
        assert_eq!(ProcessIdentity::parse(&me.to_string()).as_ref(), Some(me));
        let odd = ProcessIdentity {
            host: "a/b".into(),
            pid: 7,
            start_ticks: None,
        };
        assert_eq!(ProcessIdentity::parse(&odd.to_string()), Some(odd));
    }

    #[test]
    fn a_lock_held_by_a_dead_process_is_free_at_once_and_a_live_one_is_not() {
        let now = Utc::now();
        let me = process_identity().clone();
        assert!(holder_alive(Some(&me), now, now));

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = ProcessIdentity {
            pid,
            start_ticks: Some(1),
            ..me.clone()
        };
        assert!(!holder_alive(Some(&dead), now, now));

        // Same pid, other start time: the pid was reused by a process that holds nothing.
        let reused = ProcessIdentity {
            start_ticks: me.start_ticks.map(|t| t + 1),
            ..me.clone()
        };
        assert!(!holder_alive(Some(&reused), now, now));
    }

    #[test]
    fn a_holder_on_another_host_keeps_the_lock_for_two_hours() {
        let now = Utc::now();
        let elsewhere = ProcessIdentity {
            host: "another-host".into(),
            pid: 1,
            start_ticks: Some(1),
        };
        assert!(holder_alive(
            Some(&elsewhere),
            now - Duration::minutes(90),
            now
        ));
        assert!(!holder_alive(
            Some(&elsewhere),
            now - Duration::hours(3),
            now
        ));
        assert!(holder_alive(None, now - Duration::minutes(1), now));
        assert!(!holder_alive(None, now - Duration::hours(3), now));
    }
}
