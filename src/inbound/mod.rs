//! Pushes to a district (rosters, scores): a body is stored and recorded, with the job that
//! processes it, before the push is acknowledged. The job (see [`InboundJobs`]) then feeds a
//! roster through the sync engine like any other source, and assessment results through the score
//! import as a CDF file is fed; either way the delivery records where it got to. Score pushes
//! stored by a gateway that did not process them yet are given their job at start-up
//! ([`enqueue_waiting`]). [`retention`] deletes bodies once they are of no more use.
//!
//! A body up to `[inbound] inline_body_bytes` is kept in its delivery's row: the push is durable
//! with that one commit, where a file costs two syncs (the file, its folder) of its own, which
//! bounded how many pushes a second a gateway could take. A larger body is a file under
//! `data_dir/inbound/`, written and synced before the row commits: tens of megabytes in a row
//! would weigh on PostgreSQL's WAL and SQLite's single writer.

mod job;
pub mod retention;
mod scores;

pub use job::{InboundJobs, InboundPayload, INBOUND_ROSTER_KIND, INBOUND_SCORES_KIND};
pub use scores::{apply_scores, SCORES_PUSH_SOURCE};

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{ImportSettings, Settings};
use crate::domain::district::District;
use crate::sources::oneroster::{self, push};
use crate::store::inbound::{self, BodyPlace, Delivery, NewBody, NewDelivery, Stored};
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
    /// A OneRoster roster, processed by an `inbound_roster` job: a sync run.
    Roster,
    /// Assessment results, processed by an `inbound_scores` job: a score import (source `push`,
    /// labelled with the delivery's id), whose id the delivery keeps in its `run_id`.
    Scores,
}

impl PushKind {
    pub const ALL: [PushKind; 2] = [PushKind::Roster, PushKind::Scores];

    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Roster => "roster",
            PushKind::Scores => "scores",
        }
    }

    /// The kind of a stored delivery; `None` for one this version does not know.
    pub fn parse(text: &str) -> Option<PushKind> {
        PushKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The job kind that processes a delivery of this kind. One handler runs both; the kinds
    /// differ so that a gateway of an earlier version sharing the database, which claims only
    /// the kinds it has a handler for, never takes a score push for a roster.
    pub fn job_kind(self) -> &'static str {
        match self {
            PushKind::Roster => INBOUND_ROSTER_KIND,
            PushKind::Scores => INBOUND_SCORES_KIND,
        }
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
    #[error("the stored body of inbound delivery {0} is missing")]
    BodyMissing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a pushed body and its delivery, with the job that will process it, in one transaction.
/// A webhook id the district has seen returns the first delivery and stores nothing.
pub async fn receive(
    db: &Db,
    settings: &Settings,
    district_id: i64,
    kind: PushKind,
    webhook_id: Option<&str>,
    format: BodyFormat,
    body: Vec<u8>,
) -> Result<Stored, InboundError> {
    let id = uuid::Uuid::new_v4().to_string();
    let body_bytes = body.len() as i64;
    let inline = body.len() as u64 <= settings.inbound.inline_body_bytes;
    // A file is written only for a delivery that is new (the insert's own conflict check settles
    // a race); an inline body needs no such look first.
    if !inline {
        if let Some(webhook_id) = webhook_id {
            if let Some(first) = inbound::find_by_webhook_id(db, district_id, webhook_id).await? {
                return Ok(Stored::Duplicate(first));
            }
        }
    }
    let (stored_body, file) = if inline {
        (NewBody::Row(body), None)
    } else {
        let relative = format!("inbound/{district_id}/{id}.{}", format.extension());
        let file = settings.data_dir.join(&relative);
        let target = file.clone();
        tokio::task::spawn_blocking(move || write_durably(&target, &body))
            .await
            .expect("writing a body does not panic")?;
        (NewBody::File(relative), Some(file))
    };
    let now = Utc::now();
    let new = NewDelivery {
        district_id,
        id: id.clone(),
        webhook_id: webhook_id.map(str::to_string),
        kind: kind.as_str().to_string(),
        content_type: format.content_type().to_string(),
        body: stored_body,
        body_bytes,
    };
    let job = processing_job(district_id, kind, &id, None, now, settings);
    let stored = inbound::insert(db, &new, Some(&job), now).await;
    // A body without its row (a failed insert, or a concurrent push of the same webhook id that
    // won) is nobody's: it goes.
    if let Some(file) = file.filter(|_| !matches!(stored, Ok(Stored::New(_)))) {
        let _ = std::fs::remove_file(&file);
    }
    Ok(stored?)
}

/// The first job of a delivery has this prefix and the delivery's id as its dedupe key: a
/// delivery is enqueued once at receipt, and [`enqueue_waiting`] never enqueues it again.
const JOB_KEY_PREFIX: &str = "inbound:";

/// The job that processes delivery `id` of `kind`; `retry` tells an admin's retry apart from the
/// first.
pub fn processing_job(
    district_id: i64,
    kind: PushKind,
    id: &str,
    retry: Option<&str>,
    now: DateTime<Utc>,
    settings: &Settings,
) -> NewJob {
    let key = match retry {
        None => format!("{JOB_KEY_PREFIX}{id}"),
        Some(retry) => format!("{JOB_KEY_PREFIX}{id}:retry:{retry}"),
    };
    NewJob {
        district_id,
        kind: kind.job_kind().to_string(),
        payload: serde_json::to_value(InboundPayload {
            delivery: id.to_string(),
        })
        .expect("payloads serialize"),
        dedupe_key: Some(key),
        run_after: now,
        max_attempts: i64::from(settings.jobs.max_attempts),
    }
}

/// Deliveries waiting without a job looked at per batch by [`enqueue_waiting`].
const WAITING_BATCH: i64 = 500;

/// Enqueues the job of every score push still `received` without one: a gateway before score
/// pushes were processed stored them with no job. Run at start-up by every gateway, it is
/// idempotent: the job has the dedupe key it would have had at receipt, so a delivery gets one
/// job however many gateways start (and one enqueued at receipt is left alone). Returns how many
/// jobs it enqueued.
pub async fn enqueue_waiting(db: &Db, settings: &Settings) -> Result<u64, StoreError> {
    let mut enqueued = 0;
    loop {
        let waiting = inbound::waiting_without_job(
            db,
            PushKind::Scores.as_str(),
            JOB_KEY_PREFIX,
            WAITING_BATCH,
        )
        .await?;
        let mut new = 0;
        for (district_id, id) in &waiting {
            let job = processing_job(
                *district_id,
                PushKind::Scores,
                id,
                None,
                Utc::now(),
                settings,
            );
            if crate::store::jobs::enqueue(db, &job, Utc::now()).await?.new {
                new += 1;
            }
        }
        enqueued += new;
        // A short batch was the last; one that enqueued nothing would come back the same.
        if (waiting.len() as i64) < WAITING_BATCH || new == 0 {
            return Ok(enqueued);
        }
    }
}

/// A delivery's body, read from its row or its file. `Ok(None)` when it is not there (purged, or
/// its file gone).
pub async fn read_body(
    db: &Db,
    settings: &Settings,
    delivery: &Delivery,
) -> Result<Option<Vec<u8>>, InboundError> {
    match &delivery.body {
        BodyPlace::Row => Ok(inbound::body(db, delivery.district_id, &delivery.id).await?),
        BodyPlace::File(relative) => {
            match tokio::fs::read(settings.data_dir.join(relative)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(InboundError::Spool(e)),
            }
        }
    }
}

/// A file holding a delivery's body, for a reader that wants a path (the CSV importer): its own
/// file, or, for a body kept in the row, a temporary copy under `data_dir/inbound/tmp/` that is
/// deleted when the returned guard drops.
pub async fn body_file(
    db: &Db,
    settings: &Settings,
    delivery: &Delivery,
) -> Result<BodyFile, InboundError> {
    match &delivery.body {
        BodyPlace::File(relative) => {
            let path = settings.data_dir.join(relative);
            if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                return Err(InboundError::BodyMissing(delivery.id.clone()));
            }
            Ok(BodyFile::Kept(path))
        }
        BodyPlace::Row => {
            let bytes = inbound::body(db, delivery.district_id, &delivery.id)
                .await?
                .ok_or_else(|| InboundError::BodyMissing(delivery.id.clone()))?;
            let dir = settings.data_dir.join("inbound").join("tmp");
            let temp = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)?;
                let mut file = tempfile::Builder::new()
                    .prefix(".body-")
                    .suffix(".zip")
                    .tempfile_in(&dir)?;
                file.write_all(&bytes)?;
                file.flush()?;
                Ok::<_, std::io::Error>(file.into_temp_path())
            })
            .await
            .expect("writing a body does not panic")?;
            Ok(BodyFile::Temporary(temp))
        }
    }
}

/// A path to a delivery's body: its stored file, or a temporary copy of a body kept in the row.
pub enum BodyFile {
    Kept(PathBuf),
    Temporary(tempfile::TempPath),
}

impl BodyFile {
    pub fn path(&self) -> &Path {
        match self {
            BodyFile::Kept(path) => path,
            BodyFile::Temporary(temp) => temp,
        }
    }
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
/// gateway's own trouble (database, lock).
pub async fn apply_json(
    engine: &Engine,
    district: &District,
    body: Vec<u8>,
    limits: &ImportSettings,
) -> Result<RunReport, SyncError> {
    let read = tokio::task::spawn_blocking(move || push::read(&body))
        .await
        .expect("reading a push does not panic");
    let pushed = match read {
        Ok(pushed) => pushed,
        Err(problem) => {
            let mut log = oneroster::problem_log(limits);
            log.error(problem);
            return engine.record_failure(district, ONEROSTER_PUSH, log).await;
        }
    };
    let plan = push::plan(&pushed);
    let (tx, rx) = mpsc::channel(4);
    let limits = limits.clone();
    let producer = tokio::task::spawn_blocking(move || push::produce(&pushed, &limits, tx));
    let end =
        async move { SourceEnd::from(producer.await.expect("the push reader does not panic")) };
    engine
        .run(
            district,
            ONEROSTER_PUSH,
            plan,
            rx,
            end,
            RunOptions::default(),
        )
        .await
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
