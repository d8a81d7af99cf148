//! Connects a source to the sync engine: a OneRoster REST pull over a district's stored
//! connection. The first pull of a connection, and every `--full` or scheduled full pull,
//! fetches everything and reconciles (records missing are removed, as a bulk CSV removes them);
//! the others fetch what changed since the cursor, less an overlap. An assessment partner's
//! connection is pulled the same way into the score import instead ([`scores`]).

mod arp;
mod job;
pub mod scores;

pub use job::{scheduled_items, PullJobs};

use std::sync::Arc;

use chrono::Duration;
use reqwest::Url;
use tokio::sync::{mpsc, Notify};

use crate::auth::secrets::{SecretBox, SecretError};
use crate::config::Settings;
use crate::domain::connection::{ConnectionKind, DELTA_OVERLAP_SECS};
use crate::domain::district::District;
use crate::domain::records::RecordKind;
use crate::outbound::client::SourceClient;
use crate::outbound::FetchError;
use crate::sources::oneroster::rest::{self, PullMode, PullSpec};
use crate::store::connections::StoredConnection;
use crate::store::{connections, Db, StoreError};
use crate::sync::engine::RunOptions;
use crate::sync::input::{CursorMove, SourceEnd};
use crate::sync::progress::Progress::Reading;
use crate::sync::progress::ProgressFn;
use crate::sync::{Engine, RunReport, SyncError};

/// The `source` of a pull's run.
pub const ONEROSTER_REST: &str = "oneroster_rest";

/// Batches of records buffered between the fetching task and the engine.
const FEED_BATCHES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("district {district} has no connection {name:?}")]
    NoSuchConnection { district: String, name: String },
    #[error(
        "connection {name:?}: its secret cannot be read (was the master key changed?): {source}"
    )]
    Secret { name: String, source: SecretError },
    #[error("connection {name:?}: {source}")]
    Client { name: String, source: FetchError },
    #[error("connection {name:?}: the base URL {url:?} is not a URL")]
    BaseUrl { name: String, url: String },
    #[error("connection {name:?} is an {kind} connection: {hint}")]
    WrongKind {
        name: String,
        kind: &'static str,
        hint: &'static str,
    },
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    pub connection: String,
    /// Fetch everything and reconcile, even when the connection has a delta cursor.
    pub full: bool,
    pub dry_run: bool,
}

/// A district's connection with its client, ready to ask: its secrets opened, its base URL read.
pub(crate) async fn open_source(
    db: &Db,
    secrets: &SecretBox,
    settings: &Settings,
    district: &District,
    name: &str,
) -> Result<(StoredConnection, SourceClient, Url), PullError> {
    let stored = connections::find(db, district.id, name)
        .await?
        .ok_or_else(|| PullError::NoSuchConnection {
            district: district.slug.to_string(),
            name: name.to_string(),
        })?;
    let opened = secrets
        .open_connection(
            district.id,
            name,
            (&stored.sealed_secret, stored.sealed_api_key.as_deref()),
        )
        .map_err(|source| PullError::Secret {
            name: name.to_string(),
            source,
        })?;
    let client =
        SourceClient::new(&stored.config, opened, &settings.outbound).map_err(|source| {
            PullError::Client {
                name: name.to_string(),
                source,
            }
        })?;
    let base_url = Url::parse(&stored.config.base_url).map_err(|_| PullError::BaseUrl {
        name: name.to_string(),
        url: stored.config.base_url.clone(),
    })?;
    Ok((stored, client, base_url))
}

/// Pulls from a connection into its district. Problems with what the source returned make a
/// failed run (with a report), not an `Err`; `Err` is for the gateway's own trouble and for a
/// connection that cannot be used at all.
pub async fn pull(
    engine: &Engine,
    db: &Db,
    secrets: &SecretBox,
    settings: &Settings,
    district: &District,
    request: &PullRequest,
    progress: Option<ProgressFn>,
) -> Result<RunReport, PullError> {
    let name = request.connection.clone();
    let (stored, client, base_url) = open_source(db, secrets, settings, district, &name).await?;
    let (ConnectionKind::OneRosterRest, Some(version)) =
        (stored.config.kind, stored.config.version.oneroster())
    else {
        return Err(PullError::WrongKind {
            name,
            kind: stored.config.kind.as_str(),
            hint: "its scores are pulled with `rostergate scores pull`",
        });
    };
    // A connection's first pull has nothing to be a delta of.
    let full = request.full || stored.delta_cursor.is_none();
    let mode = match stored.delta_cursor {
        Some(cursor) if !full => PullMode::Delta {
            since: cursor - Duration::seconds(DELTA_OVERLAP_SECS),
        },
        _ => PullMode::Full,
    };
    let spec = PullSpec {
        version,
        base_url,
        page_size: stored.config.page_size,
        mode,
    };
    let plan = rest::plan(&spec);
    let (tx, rx) = mpsc::channel(FEED_BATCHES);
    // The source is asked for nothing until the run holds its district: a pull that finds its
    // district busy (and is tried again later) costs the source no requests.
    let started = Arc::new(Notify::new());
    let limits = settings.import.clone();
    let previous = stored.delta_cursor;
    let source = connections::source_of(&stored.config);
    let producer = tokio::spawn({
        let started = started.clone();
        async move {
            tokio::select! {
                () = started.notified() => {}
                // The engine gave up before starting (the district is busy).
                () = tx.closed() => return None,
            }
            let reading = progress.map(|p| move |kind: RecordKind, rows| p(Reading { kind, rows }));
            let reading = reading
                .as_ref()
                .map(|f| f as &(dyn Fn(RecordKind, u64) + Send + Sync));
            Some(rest::produce(&client, &spec, &limits, tx, reading).await)
        }
    });
    let end = async move {
        let Some(outcome) = producer.await.expect("the pull does not panic") else {
            // The feed was never read, so nothing was fetched and the connection stays put.
            return SourceEnd::default();
        };
        tracing::info!(
            requests = outcome.requests,
            records = outcome.records,
            full,
            "pull fetched"
        );
        SourceEnd {
            problems: outcome.problems,
            cursor: Some(CursorMove {
                connection: name,
                cursor: outcome.newest_modified.max(previous),
                full,
                source: Some(source),
            }),
        }
    };
    let options = RunOptions {
        dry_run: request.dry_run,
        started: Some(started),
        ..Default::default()
    };
    Ok(engine
        .run(district, ONEROSTER_REST, plan, rx, end, options)
        .await?)
}
