//! Scores pulled into the score import: an assessment partner's `GET {base}/results` page by
//! page (contracts/partner-results.openapi.json), each page read as a score push is and staged
//! as it arrives, or a SIS gradebook's OneRoster assessment results ([`super::arp`]); then
//! matched, applied and placed in one transaction that also moves the connection's cursor. A
//! page that cannot be fetched or read refuses the whole pull: nothing is stored and the cursor
//! stays, so the next pull asks again from the same place.
//!
//! A pull never removes a result the partner no longer sends: scores are student progress, and
//! a full pull only asks for everything again (what changed is restated, the rest is unchanged).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::Url;
use tokio::sync::{mpsc, Notify};

use super::arp::fetch_assessment_results;
use super::{open_source, PullError};
use crate::auth::secrets::SecretBox;
use crate::config::Settings;
use crate::domain::connection::{ConnectionKind, DELTA_OVERLAP_SECS};
use crate::domain::district::District;
use crate::domain::learning_plan::LearningPlans;
use crate::domain::problem::{Location, Problem, ProblemLog};
use crate::outbound::Fetch;
use crate::scores::ingest::{self, ImportSource, IngestError, ScoreImportReport};
use crate::sources::oneroster::problem_log;
use crate::sources::scores::partner::{read_page, ResultsPage};
use crate::sources::scores::AssessmentResult;
use crate::store::connections::{self, StoredConnection};
use crate::store::Db;
use crate::sync::input::{CursorMove, SourceEnd};

/// The `source` of a score import made by a pull.
pub const SCORES_PULL_SOURCE: &str = "pull";

/// How problems name the request.
const ENDPOINT: &str = "GET /results";

/// Pages buffered between the fetching task and the import.
const PAGES_BUFFERED: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ScorePullError {
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct ScorePullRequest {
    pub connection: String,
    /// Ask for every result, even when the connection has a cursor.
    pub full: bool,
}

/// Pulls an `assessment-rest` or `oneroster-assessment-results` connection's results into its
/// district. What the partner sent
/// wrong makes a refused import (with its report), not an `Err`; `Err` is for the gateway's
/// own trouble, a busy district and a connection that cannot be used at all.
pub async fn pull_scores(
    db: &Db,
    secrets: &SecretBox,
    settings: &Settings,
    district: &District,
    plans: &LearningPlans,
    request: &ScorePullRequest,
) -> Result<ScoreImportReport, ScorePullError> {
    let name = request.connection.clone();
    let (stored, client, base_url) = open_source(db, secrets, settings, district, &name).await?;
    let kind = stored.config.kind;
    if !kind.pulls_scores() {
        return Err(PullError::WrongKind {
            name,
            kind: kind.as_str(),
            hint: "its rosters are pulled with `rostergate sync pull`",
        }
        .into());
    }
    let full = request.full || stored.delta_cursor.is_none();
    let since = match stored.delta_cursor {
        Some(cursor) if !full => Some(cursor - Duration::seconds(DELTA_OVERLAP_SECS)),
        _ => None,
    };
    let page_size = stored.config.page_size;
    let plans_for_fetch = plans.clone();
    let (tx, rx) = mpsc::channel(PAGES_BUFFERED);
    // The partner is asked nothing until the import holds its district.
    let started = Arc::new(Notify::new());
    let log = problem_log(&settings.import);
    let previous = stored.delta_cursor;
    let cursor_for = cursor_move(&stored, full);
    let producer = tokio::spawn({
        let started = started.clone();
        async move {
            tokio::select! {
                () = started.notified() => {}
                () = tx.closed() => return None,
            }
            Some(match kind {
                ConnectionKind::OneRosterAssessmentResults => {
                    fetch_assessment_results(
                        &client,
                        (&base_url, page_size),
                        since,
                        &plans_for_fetch,
                        tx,
                        log,
                    )
                    .await
                }
                _ => {
                    let first = first_page_url(&base_url, page_size, since);
                    fetch_pages(&client, first, tx, log).await
                }
            })
        }
    });
    let end = async move {
        let Some(fetched) = producer.await.expect("fetching pages does not panic") else {
            return SourceEnd::default();
        };
        tracing::info!(
            pages = fetched.pages,
            results = fetched.results,
            full,
            "score pull fetched"
        );
        SourceEnd {
            problems: fetched.problems,
            cursor: Some(cursor_for(fetched.newest.max(previous))),
        }
    };
    Ok(ingest::import(
        db,
        district,
        plans,
        ImportSource {
            kind: SCORES_PULL_SOURCE,
            label: &name,
            started: Some(started),
        },
        rx,
        end,
    )
    .await?)
}

/// Where the connection moves once the pull is applied: to the newest `modified_at` seen (and,
/// for a full pull, the time of its last full pull), unless it was pointed elsewhere meanwhile.
fn cursor_move(
    stored: &StoredConnection,
    full: bool,
) -> impl FnOnce(Option<DateTime<Utc>>) -> CursorMove {
    let connection = stored.config.name.clone();
    let source = connections::source_of(&stored.config);
    move |cursor| CursorMove {
        connection,
        cursor,
        full,
        source: Some(source),
    }
}

/// `{base}/results?limit=N[&modified_since=T]`.
fn first_page_url(base: &Url, limit: u32, since: Option<DateTime<Utc>>) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("a checked base URL has a path")
        .pop_if_empty()
        .push("results");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("limit", &limit.to_string());
        if let Some(since) = since {
            query.append_pair(
                "modified_since",
                &since.to_rfc3339_opts(SecondsFormat::Micros, true),
            );
        }
    }
    url
}

/// The first page's URL asking for the page after `token`.
fn next_page_url(first: &Url, token: &str) -> Url {
    let mut url = first.clone();
    url.query_pairs_mut().append_pair("page_token", token);
    url
}

/// What fetching the pages came to.
#[derive(Default)]
pub(super) struct Fetched {
    pub(super) problems: ProblemLog,
    pub(super) pages: u64,
    /// Records read (results, and line items for a gradebook).
    pub(super) results: u64,
    /// The latest modification time among the results: where the cursor moves.
    pub(super) newest: Option<DateTime<Utc>>,
}

/// Empty pages in a row that still name a next page before the pull gives up: a partner
/// paging through nothing forever would otherwise hold the district's lock forever.
const MAX_EMPTY_PAGES_IN_A_ROW: u32 = 100;

/// Fetches every page, sending each page's results to the import; stops at the first page that
/// cannot be fetched or read (noted in the log: the import is then refused).
async fn fetch_pages(
    client: &impl Fetch,
    first: Url,
    tx: mpsc::Sender<Vec<AssessmentResult>>,
    mut problems: ProblemLog,
) -> Fetched {
    let (mut pages, mut results_seen, mut newest) = (0, 0, None);
    let mut tokens_seen = HashSet::new();
    let mut empty_in_a_row = 0;
    let mut url = first.clone();
    loop {
        let at = Location::record(ENDPOINT, Some(results_seen), None);
        let body = match client.get(url).await {
            Ok(answer) => answer.body,
            Err(e) => {
                problems.error(Problem::at(at, None, e.to_string()));
                break;
            }
        };
        let page = tokio::task::spawn_blocking(move || read_page(&body))
            .await
            .expect("reading a page does not panic");
        let ResultsPage {
            results,
            next_page_token,
        } = match page {
            Ok(page) => page,
            Err(refusal) => {
                for p in &refusal.problems {
                    let field = (!p.pointer.is_empty()).then_some(p.pointer.as_str());
                    problems.error(Problem::at(at.clone(), field, p.message.clone()));
                }
                let unlisted = refusal.total.saturating_sub(refusal.problems.len());
                if unlisted > 0 {
                    problems.error(Problem::at(
                        at,
                        None,
                        format!("… and {unlisted} more problems on this page"),
                    ));
                }
                break;
            }
        };
        pages += 1;
        results_seen += results.len() as u64;
        newest = results.iter().map(|r| r.modified_at).max().max(newest);
        empty_in_a_row = if results.is_empty() {
            empty_in_a_row + 1
        } else {
            0
        };
        let chunk: Vec<AssessmentResult> = results.into_iter().map(|r| r.result).collect();
        if !chunk.is_empty() && tx.send(chunk).await.is_err() {
            // The import stopped listening: it failed, and says why itself.
            break;
        }
        let Some(token) = next_page_token else { break };
        let at = Location::record(ENDPOINT, Some(results_seen), None);
        if !tokens_seen.insert(token.clone()) {
            problems.error(Problem::at(
                at,
                Some("/next_page_token"),
                "the partner sent a page token it had sent before in this pull: following it would never end",
            ));
            break;
        }
        if empty_in_a_row >= MAX_EMPTY_PAGES_IN_A_ROW {
            problems.error(Problem::at(
                at,
                Some("/results"),
                format!("{MAX_EMPTY_PAGES_IN_A_ROW} empty pages in a row, each naming a next page: the pull gives up"),
            ));
            break;
        }
        url = next_page_url(&first, &token);
    }
    Fetched {
        problems,
        pages,
        results: results_seen,
        newest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_page_asks_for_a_page_size_and_changes_since_the_cursor() {
        let base = Url::parse("https://partner.example.org/api/v1").unwrap();
        let since = DateTime::parse_from_rfc3339("2026-11-02T10:00:00+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            first_page_url(&base, 500, Some(since)).as_str(),
            "https://partner.example.org/api/v1/results?limit=500&modified_since=2026-11-02T09%3A00%3A00.000000Z"
        );
        assert_eq!(
            first_page_url(&Url::parse("https://p.example.org").unwrap(), 10, None).as_str(),
            "https://p.example.org/results?limit=10"
        );
        // A token is sent back as it came, encoded for the query.
        let next = next_page_url(&first_page_url(&base, 5, None), "a b&c=d/+");
        assert_eq!(
            next.query_pairs()
                .find(|(k, _)| k == "page_token")
                .map(|(_, v)| v.into_owned())
                .as_deref(),
            Some("a b&c=d/+")
        );
    }
}
