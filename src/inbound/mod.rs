//! Pushes to a district (rosters, scores): a body is written to a file under `data_dir/inbound/`
//! and recorded, with the job that processes it, before the push is acknowledged. A roster's job
//! (see [`InboundJobs`]) then feeds it through the sync engine like any other source; scores are
//! stored and listed, not processed yet. [`retention`] deletes bodies once they are of no more use.
//!
//! Bodies are files rather than table rows: they run to tens of megabytes (a row that size
//! weighs on PostgreSQL's WAL and SQLite's single writer), the CSV importer reads a path, and a
//! file written and synced before the row commits is as durable as the row.

mod job;
pub mod retention;

pub use job::{InboundJobs, InboundPayload, INBOUND_ROSTER_KIND};

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{ImportSettings, Settings};
use crate::domain::district::District;
use crate::sources::oneroster::{self, push};
use crate::store::inbound::{self, Delivery, NewDelivery, Stored};
use crate::store::jobs::NewJob;
use crate::store::{Db, StoreError};
use crate::sync::engine::RunOptions;
use crate::sync::input::SourceEnd;
use crate::sync::{Engine, RunReport, SyncError};

/// The `source` of a run made from a pushed JSON roster (a pushed zip runs as `oneroster_csv`).
pub const ONEROSTER_PUSH: &str = "oneroster_push";

/// What a push carries: its delivery's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// A OneRoster roster, processed by an `inbound_roster` job.
    Roster,
    /// Assessment results: stored and listed; nothing processes them yet.
    Scores,
}

impl PushKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Roster => "roster",
            PushKind::Scores => "scores",
        }
    }

    /// Whether a job processes a delivery of this kind (none is enqueued for the others, so
    /// that no job waits for a handler that does not exist).
    pub fn is_processed(self) -> bool {
        matches!(self, PushKind::Roster)
    }
}

/// What a pushed body is, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Zip,
}

impl BodyFormat {
    /// `application/json` (parameters such as `charset` allowed) or `application/zip`; anything
    /// else is not a roster push.
    pub fn from_content_type(content_type: &str) -> Option<BodyFormat> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(BodyFormat::Json),
            "application/zip" | "application/x-zip-compressed" => Some(BodyFormat::Zip),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Zip => "application/zip",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            BodyFormat::Json => "json",
            BodyFormat::Zip => "zip",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("cannot store the pushed body: {0}")]
    Spool(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a pushed body and its delivery, with the job that will process it (for a kind that has
/// one). A webhook id the district has seen returns the first delivery and stores nothing.
pub async fn receive(
    db: &Db,
    settings: &Settings,
    district_id: i64,
    kind: PushKind,
    webhook_id: Option<&str>,
    format: BodyFormat,
    body: Vec<u8>,
) -> Result<Stored, InboundError> {
    if let Some(webhook_id) = webhook_id {
        if let Some(first) = inbound::find_by_webhook_id(db, district_id, webhook_id).await? {
            return Ok(Stored::Duplicate(first));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let relative = format!("inbound/{district_id}/{id}.{}", format.extension());
    let file = settings.data_dir.join(&relative);
    let body_bytes = body.len() as i64;
    {
        let file = file.clone();
        tokio::task::spawn_blocking(move || write_durably(&file, &body))
            .await
            .expect("writing a body does not panic")?;
    }
    let now = Utc::now();
    let new = NewDelivery {
        district_id,
        id: id.clone(),
        webhook_id: webhook_id.map(str::to_string),
        kind: kind.as_str().to_string(),
        content_type: format.content_type().to_string(),
        body_path: relative,
        body_bytes,
    };
    let job = kind
        .is_processed()
        .then(|| processing_job(district_id, &id, None, now, settings));
    let stored = inbound::insert(db, &new, job.as_ref(), now).await;
    // A body without its row (a failed insert, or a concurrent push of the same webhook id that
    // won) is nobody's: it goes.
    if !matches!(stored, Ok(Stored::New(_))) {
        let _ = std::fs::remove_file(&file);
    }
    Ok(stored?)
}

/// The job that processes delivery `id`; `retry` tells an admin's retry apart from the first.
pub fn processing_job(
    district_id: i64,
    id: &str,
    retry: Option<&str>,
    now: DateTime<Utc>,
    settings: &Settings,
) -> NewJob {
    let key = match retry {
        None => format!("inbound:{id}"),
        Some(retry) => format!("inbound:{id}:retry:{retry}"),
    };
    NewJob {
        district_id,
        kind: INBOUND_ROSTER_KIND.to_string(),
        payload: serde_json::to_value(InboundPayload {
            delivery: id.to_string(),
        })
        .expect("payloads serialize"),
        dedupe_key: Some(key),
        run_after: now,
        max_attempts: i64::from(settings.jobs.max_attempts),
    }
}

/// Where a delivery's body is.
pub fn body_file(settings: &Settings, delivery: &Delivery) -> PathBuf {
    settings.data_dir.join(&delivery.body_path)
}

/// Writes `body` to `path` so that it survives a crash once this returns: a temporary file,
/// synced, renamed into place, and the folder synced.
fn write_durably(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("a body's path has a folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::Builder::new().prefix(".push-").tempfile_in(dir)?;
    file.write_all(body)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Feeds a pushed JSON roster through the engine. A body that cannot be read as a push makes a
/// failed run saying why (with the line, for JSON that does not parse); `Err` is for the
/// gateway's own trouble (database, lock, the body file unreadable).
pub async fn apply_json(
    engine: &Engine,
    district: &District,
    path: &Path,
    limits: &ImportSettings,
) -> Result<RunReport, JsonPushError> {
    let body = tokio::fs::read(path).await.map_err(JsonPushError::Body)?;
    let read = tokio::task::spawn_blocking(move || push::read(&body))
        .await
        .expect("reading a push does not panic");
    let pushed = match read {
        Ok(pushed) => pushed,
        Err(problem) => {
            let mut log = oneroster::problem_log(limits);
            log.error(problem);
            return Ok(engine.record_failure(district, ONEROSTER_PUSH, log).await?);
        }
    };
    let plan = push::plan(&pushed);
    let (tx, rx) = mpsc::channel(4);
    let limits = limits.clone();
    let producer = tokio::task::spawn_blocking(move || push::produce(&pushed, &limits, tx));
    let end =
        async move { SourceEnd::from(producer.await.expect("the push reader does not panic")) };
    Ok(engine
        .run(
            district,
            ONEROSTER_PUSH,
            plan,
            rx,
            end,
            RunOptions::default(),
        )
        .await?)
}

#[derive(Debug, thiserror::Error)]
pub enum JsonPushError {
    #[error("cannot read the stored body: {0}")]
    Body(std::io::Error),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_name_json_or_zip_or_nothing() {
        let cases = [
            ("application/json", Some(BodyFormat::Json)),
            ("application/json; charset=utf-8", Some(BodyFormat::Json)),
            ("Application/JSON", Some(BodyFormat::Json)),
            ("application/zip", Some(BodyFormat::Zip)),
            ("application/x-zip-compressed", Some(BodyFormat::Zip)),
            ("text/csv", None),
            ("application/jsonx", None),
            ("", None),
        ];
        for (content_type, want) in cases {
            assert_eq!(
                BodyFormat::from_content_type(content_type),
                want,
                "{content_type}"
            );
        }
    }
}
