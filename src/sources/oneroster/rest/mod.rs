//! Pulls a district's roster from a OneRoster REST provider (1.1 or 1.2): every collection in
//! dependency order, page by page, each record read as its CSV row would be, streamed to the
//! sync engine in chunks while the next page is fetched.
//!
//! A full pull is the complete set (records missing from it are removed); a delta pull asks
//! each collection for what changed since a cursor and passes `tobedeleted` records on as
//! deletions. The newest `dateLastModified` seen becomes the next delta's cursor.

pub mod json;
pub mod pager;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;
use tokio::sync::mpsc;

use super::columns::Version;
use super::COLLECTIONS;
use crate::config::ImportSettings;
use crate::domain::connection::OneRosterVersion;
use crate::domain::problem::{Location, Problem, ProblemLog};
use crate::domain::records::{Mode, RecordKind, SourceRecord};
use crate::domain::run::Origin;
use crate::outbound::Fetch;
use crate::sync::input::{Feed, Plan, PlannedKind};
use json::JsonRecords;
use pager::{Page, PageError, Pager};

/// Records travel to the engine in chunks of this many (as from a CSV bundle).
const CHUNK: usize = 5000;

/// A `dateLastModified` this far past the pull's start is not believed as a cursor: one bad
/// clock at the source would otherwise make every later delta skip real changes.
const FUTURE_SLACK: chrono::Duration = chrono::Duration::days(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMode {
    /// Every record: the complete set.
    Full,
    /// Records modified after `since` (the caller has already subtracted its overlap).
    Delta { since: DateTime<Utc> },
}

/// What to pull, and from where.
#[derive(Debug, Clone)]
pub struct PullSpec {
    pub version: OneRosterVersion,
    /// What collection paths are appended to: `GET {base_url}/users`.
    pub base_url: Url,
    /// `limit` asked for; providers that return fewer are paged on anyway.
    pub page_size: u32,
    pub mode: PullMode,
}

/// What a pull found: problems with the input, the cursor for the next delta, and counts.
#[derive(Debug)]
pub struct PullOutcome {
    pub problems: ProblemLog,
    /// The newest `dateLastModified` among the records (zone-less values read as UTC).
    pub newest_modified: Option<DateTime<Utc>>,
    /// GETs made.
    pub requests: u64,
    /// Records received, across collections (1.2 roles not counted apart from their users).
    pub records: u64,
}

/// How problems and plans name a collection: `GET /users`.
pub fn endpoint(kind: RecordKind) -> String {
    format!("GET /{}", kind.oneroster_name())
}

/// The version whose field rules apply.
pub fn version(version: OneRosterVersion) -> Version {
    match version {
        OneRosterVersion::V1_1 => Version::V1_1,
        OneRosterVersion::V1_2 => Version::V1_2,
    }
}

/// `dateLastModified>'2026-01-02T03:04:05Z'`: the filter of a delta pull (always with `Z`, to
/// the second, as providers compare it).
pub fn delta_filter(since: DateTime<Utc>) -> String {
    format!(
        "dateLastModified>'{}'",
        since.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// The run plan of a pull: its kinds in dependency order, bulk for a full pull, delta
/// otherwise. 1.2 roles are read from the users collection and named after it.
pub fn plan(spec: &PullSpec) -> Plan {
    let mode = match spec.mode {
        PullMode::Full => Mode::Bulk,
        PullMode::Delta { .. } => Mode::Delta,
    };
    let mut kinds = Vec::new();
    for kind in COLLECTIONS {
        kinds.push(PlannedKind {
            kind,
            mode,
            label: endpoint(kind),
            origin: Origin::Endpoint,
            digest: None,
            carried: false,
            unstaged_unchanged: None,
        });
        if kind == RecordKind::Users && spec.version == OneRosterVersion::V1_2 {
            kinds.push(PlannedKind {
                kind: RecordKind::Roles,
                mode,
                label: endpoint(RecordKind::Users),
                origin: Origin::Endpoint,
                digest: None,
                carried: false,
                unstaged_unchanged: None,
            });
        }
    }
    Plan { kinds }
}

/// Pulls every collection of `spec` and sends its records on `feed`, reporting
/// `progress(kind, records so far)`. Stops early when the engine hangs up, the problem log is
/// full, or a request fails (after the client's retries: the pull then ends with that error,
/// and the engine fails the run without applying anything).
///
/// The engine reads the feed while this runs: run the two concurrently (join them, or spawn
/// this), never this first, since the feed holds only a few chunks.
pub async fn produce(
    fetch: &impl Fetch,
    spec: &PullSpec,
    limits: &ImportSettings,
    feed: mpsc::Sender<Feed>,
    progress: Option<&(dyn Fn(RecordKind, u64) + Send + Sync)>,
) -> PullOutcome {
    let mut pull = Pull {
        fetch,
        spec,
        limits,
        feed,
        progress,
        filter: match spec.mode {
            PullMode::Full => None,
            PullMode::Delta { since } => Some(delta_filter(since)),
        },
        latest_believable: Utc::now() + FUTURE_SLACK,
        outcome: PullOutcome {
            problems: super::problem_log(limits),
            newest_modified: None,
            requests: 0,
            records: 0,
        },
    };
    for kind in COLLECTIONS {
        if !pull.collection(kind).await {
            break;
        }
    }
    pull.outcome
}

/// One pull under way.
struct Pull<'a, F> {
    fetch: &'a F,
    spec: &'a PullSpec,
    limits: &'a ImportSettings,
    feed: mpsc::Sender<Feed>,
    progress: Option<&'a (dyn Fn(RecordKind, u64) + Send + Sync)>,
    filter: Option<String>,
    latest_believable: DateTime<Utc>,
    outcome: PullOutcome,
}

/// Records of one collection on their way to the engine.
struct Batch {
    kind: RecordKind,
    records: Vec<SourceRecord>,
    roles: Vec<SourceRecord>,
    received: u64,
    roles_made: u64,
}

impl<F: Fetch> Pull<'_, F> {
    fn report(&self, kind: RecordKind, records: u64) {
        if let Some(report) = self.progress {
            report(kind, records);
        }
    }

    /// Pulls one collection. Returns whether the pull goes on.
    async fn collection(&mut self, kind: RecordKind) -> bool {
        let label = endpoint(kind);
        let limits = self.limits;
        let version = version(self.spec.version);
        let records = JsonRecords::new(kind, version, &label, limits);
        let name = kind.oneroster_name();
        let mut pager = Pager::new(
            &self.spec.base_url,
            name,
            name,
            self.spec.page_size,
            self.filter.clone(),
        );
        let mut batch = Batch {
            kind,
            records: Vec::with_capacity(CHUNK),
            roles: Vec::new(),
            received: 0,
            roles_made: 0,
        };
        let errors_before = self.outcome.problems.error_count();
        self.report(kind, 0);
        let fetch = self.fetch;
        let mut answer = match pager.next_request() {
            Ok(Some(url)) => {
                self.outcome.requests += 1;
                fetch.get(url).await
            }
            Ok(None) => return true,
            Err(e) => return self.fail(&label, e),
        };
        loop {
            let fetched = match answer {
                Ok(fetched) => fetched,
                Err(source) => {
                    let offset = pager.offset();
                    return self.fail(&label, PageError::Fetch { offset, source });
                }
            };
            let page = match pager.accept(fetched) {
                Ok(page) => page,
                Err(e) => return self.fail(&label, e),
            };
            match pager.next_request() {
                Ok(Some(url)) => {
                    // The next page is fetched while this one is read and sent.
                    self.outcome.requests += 1;
                    let (next, go_on) =
                        tokio::join!(fetch.get(url), self.take(&records, page, &mut batch));
                    if !go_on {
                        return false;
                    }
                    answer = next;
                }
                Ok(None) => {
                    if !self.take(&records, page, &mut batch).await {
                        return false;
                    }
                    break;
                }
                Err(e) => {
                    self.take(&records, page, &mut batch).await;
                    return self.fail(&label, e);
                }
            }
        }
        self.report(kind, batch.received);
        if !self.flush(&mut batch, true).await {
            return false;
        }
        let nothing_wrong = self.outcome.problems.error_count() == errors_before;
        if self.spec.mode == PullMode::Full && nothing_wrong {
            if batch.received == 0 {
                self.outcome.problems.error(Problem::at(
                    Location::record(&label, Some(0), None),
                    None,
                    "the collection is empty: a full pull would remove every record of this type, so it is refused",
                ));
            } else if kind == RecordKind::Users && version == Version::V1_2 && batch.roles_made == 0
            {
                self.outcome.problems.error(Problem::at(
                    Location::record(&label, None, None),
                    Some("roles"),
                    "no user has a role: a full pull would remove every role, so it is refused",
                ));
            }
        }
        if self.feed.send(Feed::Done(kind)).await.is_err() {
            return false;
        }
        if kind == RecordKind::Users
            && version == Version::V1_2
            && self.feed.send(Feed::Done(RecordKind::Roles)).await.is_err()
        {
            return false;
        }
        !self.outcome.problems.full()
    }

    /// Records a problem that ends the pull; returns false (the pull does not go on).
    fn fail(&mut self, label: &str, error: PageError) -> bool {
        self.outcome.problems.error(error.problem(label));
        false
    }

    /// Reads a page's records into `batch`, sending full chunks. Returns whether to go on.
    async fn take(&mut self, records: &JsonRecords<'_>, page: Page, batch: &mut Batch) -> bool {
        let count = page.records.len() as u64;
        for (i, record) in page.records.into_iter().enumerate() {
            let offset = page.offset + i as u64;
            let problems = &mut self.outcome.problems;
            let modified = records.map(&record, offset, problems, |r| {
                if r.kind == RecordKind::Roles {
                    batch.roles.push(r);
                    batch.roles_made += 1;
                } else {
                    batch.records.push(r);
                }
            });
            if let Some(modified) = modified {
                self.saw_modified(records, modified, offset);
            }
            if !self.flush(batch, false).await {
                return false;
            }
        }
        batch.received += count;
        self.outcome.records += count;
        self.report(batch.kind, batch.received);
        !self.outcome.problems.full()
    }

    fn saw_modified(&mut self, records: &JsonRecords<'_>, modified: DateTime<Utc>, offset: u64) {
        if modified > self.latest_believable {
            self.outcome.problems.warn(Problem::at(
                Location::record(records.endpoint(), Some(offset), None),
                Some("dateLastModified"),
                "dateLastModified is in the future: not used as the next delta's starting point",
            ));
            return;
        }
        let newest = &mut self.outcome.newest_modified;
        if newest.is_none_or(|n| modified > n) {
            *newest = Some(modified);
        }
    }

    /// Sends the batch's full chunks (all of them when `all`). Returns whether the engine
    /// still listens.
    async fn flush(&mut self, batch: &mut Batch, all: bool) -> bool {
        let min = if all { 1 } else { CHUNK };
        if batch.records.len() >= min {
            let chunk = std::mem::replace(&mut batch.records, Vec::with_capacity(CHUNK));
            if self
                .feed
                .send(Feed::Records(batch.kind, chunk))
                .await
                .is_err()
            {
                return false;
            }
        }
        if batch.roles.len() >= min {
            let chunk = std::mem::take(&mut batch.roles);
            if self
                .feed
                .send(Feed::Records(RecordKind::Roles, chunk))
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
