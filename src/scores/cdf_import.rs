//! A MAP Growth Comprehensive Data File imported: read on a blocking thread (one row at a time)
//! and fed to [`ingest::import`] in chunks, so memory stays flat whatever the file's size.

use std::path::Path;

use tokio::sync::mpsc;

use super::ingest::{self, ImportSource, IngestError, ScoreImportReport};
use crate::config::ImportSettings;
use crate::domain::district::District;
use crate::domain::learning_plan::LearningPlans;
use crate::domain::problem::ProblemLog;
use crate::sources::scores::cdf;
use crate::store::Db;

/// Results travel to the database in chunks of this many.
const CHUNK: usize = 1000;

/// Imports the export at `path`, naming it `label` in problems and in the import's record.
pub async fn import_cdf(
    db: &Db,
    district: &District,
    plans: &LearningPlans,
    (path, label): (&Path, &str),
    settings: &ImportSettings,
) -> Result<ScoreImportReport, IngestError> {
    let (tx, rx) = mpsc::channel(4);
    let path = path.to_path_buf();
    let label_owned = label.to_string();
    let settings_owned = settings.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut log = crate::sources::oneroster::problem_log(&settings_owned);
        let mut chunk = Vec::with_capacity(CHUNK);
        cdf::read(
            &path,
            &label_owned,
            &settings_owned,
            &mut log,
            &mut |read: cdf::CdfResult| {
                chunk.push(read.result);
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    // The importer stopped listening: it failed, and says why itself.
                    return tx.blocking_send(full).is_ok();
                }
                true
            },
        );
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        log
    });
    let finish = async move {
        reader.await.unwrap_or_else(|e| {
            let mut log = ProblemLog::new(1);
            log.error(crate::domain::problem::Problem::file(
                "*",
                format!("the reader stopped: {e}"),
            ));
            log
        })
    };
    ingest::import(
        db,
        district,
        plans,
        ImportSource {
            kind: "cdf",
            label,
            started: None,
        },
        rx,
        finish,
    )
    .await
}
