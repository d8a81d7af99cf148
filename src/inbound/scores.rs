//! A pushed score document fed to [`ingest::import`], as a CDF file is: source `push`, named by
//! its delivery's id. The body was checked at receipt, but it is read again here as if it were
//! new: a body that no longer reads (stored by another version, or changed on disk) makes a
//! refused import saying why, rather than a panic or results half taken.

use tokio::sync::mpsc;

use crate::config::ImportSettings;
use crate::domain::district::District;
use crate::domain::learning_plan::LearningPlans;
use crate::domain::problem::{Location, Problem};
use crate::scores::ingest::{self, ImportSource, IngestError, ScoreImportReport};
use crate::sources::oneroster::problem_log;
use crate::sources::scores::push::{self, ShapeRefusal};
use crate::store::Db;

/// The `source` of a score import made from a push.
pub const SCORES_PUSH_SOURCE: &str = "push";

/// How problems name the body of a score push.
const BODY: &str = "POST /scores";

/// Results travel to the database in chunks of this many.
const CHUNK: usize = 1000;

/// Imports the results of delivery `delivery_id`'s `body`. `Err` is for the gateway's own trouble
/// (database) and for a district busy with a sync; a body that does not read is a refused
/// import.
pub async fn apply_scores(
    db: &Db,
    district: &District,
    plans: &LearningPlans,
    (delivery_id, body): (&str, Vec<u8>),
    limits: &ImportSettings,
) -> Result<ScoreImportReport, IngestError> {
    let read = tokio::task::spawn_blocking(move || push::read(&body))
        .await
        .expect("reading a score push does not panic");
    let mut log = problem_log(limits);
    let chunks: Vec<_> = match read {
        Ok(pushed) => {
            let mut results = pushed.results.into_iter().peekable();
            let mut chunks = Vec::new();
            while results.peek().is_some() {
                chunks.push(results.by_ref().take(CHUNK).collect());
            }
            chunks
        }
        Err(refusal) => {
            for problem in problems(&refusal) {
                log.error(problem);
            }
            Vec::new()
        }
    };
    // The whole body is in memory already: the chunks are all queued before the import reads
    // them, so no task has to feed it.
    let (tx, rx) = mpsc::channel(chunks.len().max(1));
    for chunk in chunks {
        tx.try_send(chunk).expect("the channel holds every chunk");
    }
    drop(tx);
    ingest::import(
        db,
        district,
        plans,
        ImportSource {
            kind: SCORES_PUSH_SOURCE,
            label: delivery_id,
            started: None,
        },
        rx,
        async move { log },
    )
    .await
}

/// A refusal's problems as an import reports them: each at its JSON pointer (the field), and
/// one more saying how many were not listed.
fn problems(refusal: &ShapeRefusal) -> Vec<Problem> {
    let at = || Location::record(BODY, None, None);
    let mut out: Vec<Problem> = refusal
        .problems
        .iter()
        .map(|p| {
            let field = (!p.pointer.is_empty()).then_some(p.pointer.as_str());
            Problem::at(at(), field, p.message.clone())
        })
        .collect();
    let unlisted = refusal.total.saturating_sub(refusal.problems.len());
    if unlisted > 0 {
        out.push(Problem::at(
            at(),
            None,
            format!("… and {unlisted} more problems"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_each_pointer_and_counts_the_rest() {
        let refusal = push::read(br#"{"results": [{"rit": 1}], "extra": 1}"#).unwrap_err();
        let listed = problems(&refusal);
        assert!(
            listed.iter().any(|p| p.field.as_deref() == Some("/extra")),
            "{listed:?}"
        );
        assert!(listed.iter().all(|p| p.at.source() == BODY), "{listed:?}");

        let results: Vec<_> = (0..100).map(|_| serde_json::json!({"rit": 1})).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "results": results })).unwrap();
        let refusal = push::read(&body).unwrap_err();
        let listed = problems(&refusal);
        assert_eq!(listed.len(), push::MAX_PROBLEMS + 1);
        assert!(listed.last().unwrap().message.contains("more problems"));
    }

    #[test]
    fn a_body_that_is_not_json_is_one_problem_of_the_body() {
        let refusal = push::read(b"{\"results\": [").unwrap_err();
        let listed = problems(&refusal);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].field, None);
        assert!(listed[0].message.contains("not valid JSON"), "{listed:?}");
    }
}
