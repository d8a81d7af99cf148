//! A SIS gradebook's assessment results fetched for the score import: every
//! `assessmentLineItem` (a gradebook holds few, and a delta of them would not say which tests a
//! changed result belongs to), then the `assessmentResults` changed since the cursor, both paged
//! as OneRoster collections are. Results are put together into test events
//! ([`crate::sources::scores::arp`]) once every page is in, since a test's goal areas may come on
//! any page; the import then has them in chunks.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;
use serde_json::Value as Json;
use tokio::sync::mpsc;

use super::scores::Fetched;
use crate::domain::learning_plan::LearningPlans;
use crate::domain::problem::{Location, Problem, ProblemLog};
use crate::outbound::Fetch;
use crate::sources::oneroster::rest::pager::{PageError, Pager};
use crate::sources::scores::arp::{
    read_line_item, read_result, Assembler, RecordProblem, Tests, LINE_ITEMS, RESULTS,
};
use crate::sources::scores::AssessmentResult;

/// Results handed to the import at a time.
const CHUNK: usize = 1000;

/// Fetches the gradebook at `base` and sends its test events to the import.
pub(super) async fn fetch_assessment_results(
    client: &impl Fetch,
    (base, page_size): (&Url, u32),
    since: Option<DateTime<Utc>>,
    plans: &LearningPlans,
    tx: mpsc::Sender<Vec<AssessmentResult>>,
    mut problems: ProblemLog,
) -> Fetched {
    let mut fetched = Fetched::default();
    let mut items = Vec::new();
    let complete = each_record(
        client,
        (
            LINE_ITEMS,
            Pager::new(base, LINE_ITEMS, LINE_ITEMS, page_size, None),
        ),
        &mut problems,
        &mut fetched,
        |record, at| match read_line_item(record) {
            Ok(item) => {
                items.push(item);
                None
            }
            Err(problem) => Some(record_problem(at, problem)),
        },
    )
    .await;
    if !complete {
        fetched.problems = problems;
        return fetched;
    }
    let tests = Tests::new(items, plans);
    let mut assembler = Assembler::new(&tests);
    let mut newest = None;
    let filter = since.map(|t| {
        format!(
            "dateLastModified>'{}'",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    });
    let complete = each_record(
        client,
        (
            RESULTS,
            Pager::new(base, RESULTS, RESULTS, page_size, filter),
        ),
        &mut problems,
        &mut fetched,
        |record, at| match read_result(record) {
            Ok(result) => {
                newest = newest.max(result.modified);
                assembler.add(result);
                None
            }
            Err(problem) => Some(record_problem(at, problem)),
        },
    )
    .await;
    let (results, skipped) = assembler.finish();
    for (skip, times) in skipped {
        let (field, message) = skip.describe();
        problems.warn_times(
            Problem::at(
                Location::record(format!("GET /{RESULTS}"), None, None),
                Some(field),
                message,
            ),
            times,
        );
    }
    fetched.newest = newest;
    fetched.problems = problems;
    if !complete || fetched.problems.has_errors() {
        return fetched;
    }
    let mut results = results.into_iter().peekable();
    while results.peek().is_some() {
        let chunk: Vec<_> = results.by_ref().take(CHUNK).collect();
        if tx.send(chunk).await.is_err() {
            // The import stopped listening: it failed, and says why itself.
            break;
        }
    }
    fetched
}

/// A record's problem, where it is.
fn record_problem(at: &Location, problem: RecordProblem) -> Problem {
    let at = match at {
        Location::Record {
            endpoint, offset, ..
        } => Location::record(endpoint.clone(), *offset, problem.sourced_id.as_deref()),
        other => other.clone(),
    };
    Problem::at(at, problem.field, problem.message)
}

/// Pages through one collection, handing each record (and where it is) to `take`, which
/// answers a problem for a record it cannot read. `false` when paging stopped on an error.
async fn each_record(
    client: &impl Fetch,
    (collection, mut pager): (&str, Pager),
    problems: &mut ProblemLog,
    fetched: &mut Fetched,
    mut take: impl FnMut(&Json, &Location) -> Option<Problem>,
) -> bool {
    let endpoint = format!("GET /{collection}");
    loop {
        let url = match pager.next_request() {
            Ok(Some(url)) => url,
            Ok(None) => return true,
            Err(e) => {
                problems.error(e.problem(&endpoint));
                return false;
            }
        };
        let answer = match client.get(url).await {
            Ok(answer) => answer,
            Err(source) => {
                let offset = pager.offset();
                problems.error(PageError::Fetch { offset, source }.problem(&endpoint));
                return false;
            }
        };
        let page = match pager.accept(answer) {
            Ok(page) => page,
            Err(e) => {
                problems.error(e.problem(&endpoint));
                return false;
            }
        };
        fetched.pages += 1;
        for (i, record) in page.records.iter().enumerate() {
            fetched.results += 1;
            let at = Location::record(endpoint.clone(), Some(page.offset + i as u64), None);
            if let Some(problem) = take(record, &at) {
                problems.error(problem);
            }
        }
        if problems.full() {
            return false;
        }
    }
}
