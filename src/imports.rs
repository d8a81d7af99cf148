//! Connects a source to the sync engine: here, a OneRoster CSV bundle on disk.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::ImportSettings;
use crate::domain::district::District;
use crate::domain::problem::ProblemLog;
use crate::domain::records::RecordKind;
use crate::sources::oneroster::{self, ahead::DigestsAhead, bundle::Bundle};
use crate::sync::engine::RunOptions;
use crate::sync::input::SourceEnd;
use crate::sync::progress::Progress::Reading;
use crate::sync::{Engine, RunReport, SyncError};

/// Told which file is being read and how far it got (the engine reports its phases itself).
pub type Progress = crate::sync::progress::ProgressFn;

pub const ONEROSTER_CSV: &str = "oneroster_csv";

/// Imports a bundle (folder or zip) into a district. Input problems make a failed run (with a
/// report), not an `Err`; `Err` is for the gateway's own trouble (database, lock).
pub async fn import_oneroster_csv(
    engine: &Engine,
    district: &District,
    path: &Path,
    label: Option<&str>,
    limits: &ImportSettings,
    options: RunOptions,
    progress: Option<Progress>,
) -> Result<RunReport, SyncError> {
    let prepared = PreparedBundle::open(path, label, limits);
    import_prepared(engine, district, prepared, options, progress).await
}

/// A bundle being opened on a blocking thread, its bulk files hashed on another as soon as it
/// is open. Prepared before the database is reached (as the CLI does), the hashing, which is
/// most of an unchanged import, overlaps connecting and finding the district.
pub struct PreparedBundle {
    opening: tokio::task::JoinHandle<Opened>,
    /// The limits the bundle is opened, hashed and read with.
    limits: ImportSettings,
}

/// The bundle with its digests on the way (`None` when it could not be opened), and the
/// problems opening it found.
struct Opened {
    bundle: Option<(Arc<Bundle>, DigestsAhead)>,
    log: ProblemLog,
}

impl PreparedBundle {
    /// Starts opening the bundle at `path`, named `label` in problems (its path by default).
    /// Needs a Tokio runtime.
    pub fn open(path: &Path, label: Option<&str>, limits: &ImportSettings) -> Self {
        let path = path.to_path_buf();
        let label = label.map_or_else(|| path.display().to_string(), str::to_string);
        let limits = limits.clone();
        let opening = tokio::task::spawn_blocking({
            let limits = limits.clone();
            move || {
                let mut log = oneroster::problem_log(&limits);
                let bundle = Bundle::open_as(&path, &label, &mut log).map(|bundle| {
                    let bundle = Arc::new(bundle);
                    let ahead = DigestsAhead::start(bundle.clone(), &limits);
                    (bundle, ahead)
                });
                Opened { bundle, log }
            }
        });
        PreparedBundle { opening, limits }
    }
}

/// Imports a prepared bundle into a district, as [`import_oneroster_csv`] does.
pub async fn import_prepared(
    engine: &Engine,
    district: &District,
    prepared: PreparedBundle,
    options: RunOptions,
    progress: Option<Progress>,
) -> Result<RunReport, SyncError> {
    let PreparedBundle { opening, limits } = prepared;
    let Opened { bundle, log } = opening.await.expect("bundle opening does not panic");
    let Some((bundle, mut ahead)) = bundle else {
        return engine.record_failure(district, ONEROSTER_CSV, log).await;
    };
    let mut plan = oneroster::plan(&bundle);
    // Locked while the bundle is hashed: the digests applied last are read under the lock, and
    // what locking costs is paid while the hashing runs instead of after it.
    let mut locked = engine.lock_run(district).await?;
    let applied = match engine.applied_digests(&mut locked).await {
        Ok(applied) => applied,
        Err(e) => {
            // The reading's error is the one to report: a failed release most likely has the
            // same cause, and the lock goes with its connection on PostgreSQL.
            if let Err(release) = locked.release().await {
                tracing::warn!(error = %release, "could not release a district's sync lock");
            }
            return Err(e);
        }
    };
    let plan = if applied.is_empty() {
        // Nothing to carry over: the hashing stops after the file at hand.
        drop(ahead);
        plan
    } else {
        // Files the district's live rows came from, byte for byte, are not read again.
        tokio::task::spawn_blocking(move || {
            let carried = oneroster::carry_unchanged(&mut plan, &applied, &mut ahead);
            tracing::debug!(?carried, "kinds carried over unread");
            plan
        })
        .await
        .expect("hashing the bundle does not panic")
    };
    let (tx, rx) = mpsc::channel(4);
    let reader_plan = plan.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let reading = progress.map(|p| move |kind, rows| p(Reading { kind, rows }));
        let reading = reading
            .as_ref()
            .map(|f| f as &(dyn Fn(RecordKind, u64) + Send + Sync));
        let mut problems = oneroster::produce(&bundle, &reader_plan, &limits, tx, reading);
        problems.merge(log);
        problems
    });
    let problems =
        async move { SourceEnd::from(producer.await.expect("the bundle reader does not panic")) };
    engine
        .run_locked(locked, ONEROSTER_CSV, plan, rx, problems, options)
        .await
}
