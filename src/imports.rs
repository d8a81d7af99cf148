//! Connects a source to the sync engine: here, a OneRoster CSV bundle on disk.

use std::path::Path;

use tokio::sync::mpsc;

use crate::config::ImportSettings;
use crate::domain::district::District;
use crate::domain::records::RecordKind;
use crate::sources::oneroster::{self, bundle::Bundle};
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
    let mut log = oneroster::problem_log(limits);
    let opened = {
        let path = path.to_path_buf();
        let label = label.map_or_else(|| path.display().to_string(), str::to_string);
        let mut open_log = oneroster::problem_log(limits);
        let bundle = tokio::task::spawn_blocking(move || {
            let bundle = Bundle::open_as(&path, &label, &mut open_log);
            (bundle, open_log)
        })
        .await
        .expect("bundle opening does not panic");
        log.merge(bundle.1);
        bundle.0
    };
    let Some(bundle) = opened else {
        return engine.record_failure(district, ONEROSTER_CSV, log).await;
    };
    let mut plan = oneroster::plan(&bundle);
    let applied = engine.applied_digests(district).await?;
    let (bundle, plan) = if applied.is_empty() {
        (bundle, plan)
    } else {
        // Files the district's live rows came from, byte for byte, are not read again.
        let limits = limits.clone();
        tokio::task::spawn_blocking(move || {
            let carried = oneroster::carry_unchanged(&bundle, &mut plan, &applied, &limits);
            tracing::debug!(?carried, "kinds carried over unread");
            (bundle, plan)
        })
        .await
        .expect("hashing the bundle does not panic")
    };
    let (tx, rx) = mpsc::channel(4);
    let limits_for_reader = limits.clone();
    let reader_plan = plan.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let reading = progress.map(|p| move |kind, rows| p(Reading { kind, rows }));
        let reading = reading
            .as_ref()
            .map(|f| f as &(dyn Fn(RecordKind, u64) + Send + Sync));
        let mut problems =
            oneroster::produce(&bundle, &reader_plan, &limits_for_reader, tx, reading);
        problems.merge(log);
        problems
    });
    let problems =
        async move { SourceEnd::from(producer.await.expect("the bundle reader does not panic")) };
    engine
        .run(district, ONEROSTER_CSV, plan, rx, problems, options)
        .await
}
