//! Retention of pushed bodies, rosters and scores alike: once a delivery has been final
//! (applied, held, failed) for `[inbound] keep_bodies_days`, its body is deleted (from its row,
//! or its file under `data_dir/inbound/`) and the delivery records when. A delivery that is not
//! final keeps its body whatever its age: dead-lettered ones wait for an admin's retry, received
//! ones (score pushes stored before they were processed among them) for the job that will read
//! them.
//!
//! Every gateway with background jobs sweeps; several may at once. A body is marked purged and
//! deleted inside one transaction whose update re-checks that the delivery is still final and
//! unpurged, so one sweep purges it and a retry racing the sweep either wins (the body stays) or
//! waits and finds it purged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::store::inbound::{self, BodyPlace, PurgeCandidate};
use crate::store::{Db, StoreError};

/// Deliveries looked at per batch of a sweep.
const BATCH: i64 = 500;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Bodies deleted (or found already gone) and marked purged.
    pub purged: u64,
    /// Bodies that could not be deleted (left for the next sweep).
    pub failed: u64,
}

/// The moment before which a delivery that became final has its body purged.
pub fn cutoff(settings: &Settings, now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::days(i64::from(settings.inbound.keep_bodies_days))
}

/// Purges every body past its retention at `now`.
pub async fn sweep(
    db: &Db,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<SweepReport, StoreError> {
    let cutoff = cutoff(settings, now);
    let mut report = SweepReport::default();
    loop {
        let candidates = inbound::purge_candidates(db, cutoff, BATCH).await?;
        let purged_before = report.purged;
        for candidate in &candidates {
            if purge(db, &settings.data_dir, candidate, cutoff, now).await? {
                report.purged += 1;
            } else {
                report.failed += 1;
            }
        }
        // A short batch was the last; a batch in which nothing could be purged would come back
        // the same.
        if (candidates.len() as i64) < BATCH || report.purged == purged_before {
            return Ok(report);
        }
    }
}

/// Purges one body. False when its file could not be deleted (the delivery is left as it was);
/// true too when another sweep (or nothing) was left to do.
async fn purge(
    db: &Db,
    data_dir: &Path,
    candidate: &PurgeCandidate,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    if !inbound::mark_purged(&mut tx, candidate.district_id, &candidate.id, cutoff, now).await? {
        tx.rollback().await?;
        return Ok(true);
    }
    // A body in the row went with the update.
    let BodyPlace::File(relative) = &candidate.body else {
        tx.commit().await?;
        return Ok(true);
    };
    match tokio::fs::remove_file(data_dir.join(relative)).await {
        Ok(()) => {}
        // Gone already (a sweep that deleted it and stopped before its commit).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tx.rollback().await?;
            tracing::warn!(delivery = %candidate.id, error = %e, "could not delete a pushed body past its retention");
            return Ok(false);
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// Sweeps now and then every `[inbound] purge_interval_secs`, for as long as the runtime runs.
pub fn spawn(db: Db, settings: Arc<Settings>) -> JoinHandle<()> {
    let interval = Duration::from_secs(settings.inbound.purge_interval_secs.max(1));
    tokio::spawn(async move {
        loop {
            match sweep(&db, &settings, Utc::now()).await {
                Ok(report) if report.purged > 0 || report.failed > 0 => {
                    tracing::info!(
                        purged = report.purged,
                        failed = report.failed,
                        "pushed bodies past their retention deleted"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the retention sweep of pushed bodies failed"),
            }
            tokio::time::sleep(interval).await;
        }
    })
}
