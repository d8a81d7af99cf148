//! One import of assessment results, from any source: every result stored once per test event
//! (sending it again changes nothing), matched to a rostered student by the district's key,
//! and the students whose results moved placed again, all in one transaction under the
//! district's lock (so a roster sync bringing a student cannot slip between matching and
//! placing). A source that found problems refuses the whole import: nothing is stored.

use std::collections::HashMap;

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::{keys, placement};
use crate::domain::district::{District, ScoreStudentKey};
use crate::domain::learning_plan::LearningPlans;
use crate::domain::problem::{Problem, ProblemLog, Warning};
use crate::sources::scores::AssessmentResult;
use crate::store::scores::{self as store, StoredResult};
use crate::store::{locks, outbox, Db, StoreError, Tx};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("a sync or another score import is running for this district: try again when it ends")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Applied,
    Refused,
}

/// What an import did, as the CLI prints it (`--json`) and the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreImportReport {
    pub import_id: String,
    pub district: String,
    pub source: String,
    pub status: ImportStatus,
    /// Results read from the source (valid ones; with errors, nothing is stored).
    pub received: u64,
    /// Results not stored before.
    pub new: u64,
    /// Results stored before whose values the source changed.
    pub restated: u64,
    /// Results exactly as stored before.
    pub unchanged: u64,
    /// Of the results received, those a rostered student matches.
    pub matched: u64,
    /// Of the results received, those no student matches (kept, matched when the student is
    /// rostered).
    pub unmatched: u64,
    /// Results stored earlier that matched a student in this import.
    pub matched_earlier_results: u64,
    /// Students whose proposed placements moved.
    pub students_placed: u64,
    /// Results whose subject no learning plan covers (stored, not placed).
    pub without_plan: u64,
    pub errors: Vec<Problem>,
    /// How many errors there were in all (`errors` lists the first ones).
    pub error_count: u64,
    pub warnings: Vec<Warning>,
}

impl ScoreImportReport {
    /// The report for a person: counts, then each error where it is.
    pub fn summary(&self) -> String {
        let mut out = match self.status {
            ImportStatus::Applied => format!(
                "imported {} results into {} ({}): {} new, {} restated, {} unchanged; {} matched a student, {} did not; {} students placed\n",
                self.received, self.district, self.import_id, self.new, self.restated,
                self.unchanged, self.matched, self.unmatched, self.students_placed
            ),
            ImportStatus::Refused => format!(
                "refused: {} errors, nothing stored ({})\n",
                self.error_count, self.import_id
            ),
        };
        if self.matched_earlier_results > 0 {
            out.push_str(&format!(
                "{} results stored earlier matched a student now\n",
                self.matched_earlier_results
            ));
        }
        if self.without_plan > 0 {
            out.push_str(&format!(
                "{} results are of a subject no learning plan covers (stored, not placed)\n",
                self.without_plan
            ));
        }
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        let more = self.error_count.saturating_sub(self.errors.len() as u64);
        if more > 0 {
            out.push_str(&format!("… and {more} more errors\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {}\n", w.problem));
        }
        out
    }
}

/// Where an import's results come from and what to call it.
pub struct ImportSource<'a> {
    /// `cdf`, `push`.
    pub kind: &'a str,
    /// The file's name or the push's id: names the import in its record.
    pub label: &'a str,
}

/// Imports the results `results` delivers, in chunks; `finish` is awaited once they end and
/// yields the source's problems (an error anywhere refuses the whole import).
pub async fn import(
    db: &Db,
    district: &District,
    plans: &LearningPlans,
    source: ImportSource<'_>,
    mut results: mpsc::Receiver<Vec<AssessmentResult>>,
    finish: impl std::future::Future<Output = ProblemLog>,
) -> Result<ScoreImportReport, IngestError> {
    let import_id = format!("scores-{}", uuid::Uuid::new_v4());
    let lock = locks::try_lock(db, district.id, &import_id)
        .await?
        .ok_or(IngestError::Busy)?;
    let started_at = Utc::now();
    let mut report = ScoreImportReport {
        import_id: import_id.clone(),
        district: district.slug.to_string(),
        source: source.kind.to_string(),
        status: ImportStatus::Applied,
        received: 0,
        new: 0,
        restated: 0,
        unchanged: 0,
        matched: 0,
        unmatched: 0,
        matched_earlier_results: 0,
        students_placed: 0,
        without_plan: 0,
        errors: Vec::new(),
        error_count: 0,
        warnings: Vec::new(),
    };
    let outcome = async {
        let mut tx = db.begin().await?;
        store::take_write_lock(&mut tx).await?;
        let mut matcher = Matcher::new(&district.settings.score_student_key);
        while let Some(chunk) = results.recv().await {
            for result in chunk {
                store_one(
                    &mut tx,
                    district.id,
                    (&import_id, source.kind),
                    (&result, plans),
                    &mut matcher,
                    &mut report,
                )
                .await?;
            }
        }
        let log = finish.await;
        Ok::<_, StoreError>((tx, log))
    }
    .await;
    let (mut tx, log) = match outcome {
        Ok(done) => done,
        Err(e) => {
            lock.release().await.ok();
            return Err(e.into());
        }
    };
    let error_count = log.error_count();
    let (errors, warnings) = log.into_parts();
    report.errors = errors;
    report.error_count = error_count;
    report.warnings = warnings;
    let finished = async {
        if error_count > 0 {
            // Nothing of a refused import is kept but its record.
            tx.rollback().await?;
            refuse(&mut report);
            let mut tx = db.begin().await?;
            record(&mut tx, district.id, &source, &report, started_at).await?;
            tx.commit().await?;
            return Ok::<_, StoreError>(());
        }
        report.matched_earlier_results = store::match_pending(
            &mut tx,
            district.id,
            &district.settings.score_student_key,
            &import_id,
        )
        .await?;
        report.students_placed = place_touched(&mut tx, district.id, plans, &import_id).await?;
        record(&mut tx, district.id, &source, &report, started_at).await?;
        tx.commit().await
    }
    .await;
    lock.release().await.ok();
    finished?;
    Ok(report)
}

/// A refused import stored nothing: its counts say so.
fn refuse(report: &mut ScoreImportReport) {
    report.status = ImportStatus::Refused;
    report.new = 0;
    report.restated = 0;
    report.unchanged = 0;
    report.matched = 0;
    report.unmatched = 0;
    report.students_placed = 0;
}

async fn record(
    tx: &mut Tx,
    district_id: i64,
    source: &ImportSource<'_>,
    report: &ScoreImportReport,
    started_at: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    let status = match report.status {
        ImportStatus::Applied => "applied",
        ImportStatus::Refused => "refused",
    };
    store::record_import(
        tx,
        district_id,
        (&report.import_id, source.kind, source.label),
        (
            status,
            &serde_json::to_value(report).expect("reports serialize"),
        ),
        (started_at, Utc::now()),
    )
    .await
}

/// Stores one result and counts what it did.
async fn store_one(
    tx: &mut Tx,
    district_id: i64,
    (import_id, source): (&str, &str),
    (result, plans): (&AssessmentResult, &LearningPlans),
    matcher: &mut Matcher,
    report: &mut ScoreImportReport,
) -> Result<(), StoreError> {
    report.received += 1;
    if plans.for_subject(&result.subject).is_none() {
        report.without_plan += 1;
    }
    let mut row: StoredResult = keys::stored(result, source);
    row.student_sourced_id = matcher.student(tx, district_id, result).await?;
    match &row.student_sourced_id {
        Some(_) => report.matched += 1,
        None => report.unmatched += 1,
    }
    let before = store::stored_key(tx, district_id, &row.result_key).await?;
    let restated = match &before {
        None => {
            report.new += 1;
            false
        }
        Some(b) if b.row_hash != row.row_hash => {
            report.restated += 1;
            true
        }
        Some(b) => {
            report.unchanged += 1;
            // The same values, already matched the same way: nothing to write. (One stored
            // before its student was rostered is matched by `match_pending`.)
            if b.student_sourced_id == row.student_sourced_id || row.student_sourced_id.is_none() {
                return Ok(());
            }
            false
        }
    };
    let now = Utc::now();
    store::put_result(tx, district_id, import_id, &row, now).await?;
    if let Some(student) = &row.student_sourced_id {
        outbox::insert_event(
            tx,
            district_id,
            (import_id, "assessment_result.received", student),
            &json!({
                "student": student,
                "result": row.result_key,
                "subject": row.subject,
                "term": row.term,
                "test_date": row.test_date,
                "restated": restated,
            }),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Places again every student whose results `run_id` stored or matched; returns how many
/// students' placements moved.
pub async fn place_touched(
    tx: &mut Tx,
    district_id: i64,
    plans: &LearningPlans,
    run_id: &str,
) -> Result<u64, StoreError> {
    let students = store::touched_students(tx, district_id, run_id).await?;
    let now = Utc::now();
    let mut placed = 0;
    for student in students {
        if placement::replace(tx, district_id, &student, plans, run_id, now).await? > 0 {
            placed += 1;
        }
    }
    Ok(placed)
}

/// Results stored before their students were rostered, matched now (a roster sync calls this in
/// its own transaction, once the users are applied), with their events and placements.
pub async fn match_late(
    tx: &mut Tx,
    district: &District,
    plans: &LearningPlans,
    run_id: &str,
) -> Result<u64, StoreError> {
    let matched = store::match_pending(
        tx,
        district.id,
        &district.settings.score_student_key,
        run_id,
    )
    .await?;
    if matched > 0 {
        place_touched(tx, district.id, plans, run_id).await?;
    }
    Ok(matched)
}

/// Finds the student a result names: by a sourcedId it names, else by the district's key.
struct Matcher {
    key: ScoreStudentKey,
    /// For a userIds key: the district's students by that entry (loaded on first use).
    by_user_id: Option<HashMap<String, Option<String>>>,
}

impl Matcher {
    fn new(key: &ScoreStudentKey) -> Self {
        Matcher {
            key: key.clone(),
            by_user_id: None,
        }
    }

    async fn student(
        &mut self,
        tx: &mut Tx,
        district_id: i64,
        result: &AssessmentResult,
    ) -> Result<Option<String>, StoreError> {
        if let Some(id) = &result.student.sourced_id {
            return store::find_student(tx, district_id, &ScoreStudentKey::SourcedId, id).await;
        }
        let Some(value) = &result.student.identifier else {
            return Ok(None);
        };
        match &self.key {
            ScoreStudentKey::UserId(kind) => {
                if self.by_user_id.is_none() {
                    let rows = store::student_user_ids(tx, district_id).await?;
                    self.by_user_id = Some(index_user_ids(kind, rows));
                }
                Ok(self
                    .by_user_id
                    .as_ref()
                    .and_then(|m| m.get(value).cloned().flatten()))
            }
            key => store::find_student(tx, district_id, key, value).await,
        }
    }
}

/// `{kind:id}` entries of each student's userIds → the student; an id two students share maps
/// to `None` (ambiguous: left unmatched).
fn index_user_ids(kind: &str, rows: Vec<(String, String)>) -> HashMap<String, Option<String>> {
    let mut index: HashMap<String, Option<String>> = HashMap::new();
    for (student, ids) in rows {
        for entry in ids.split(',') {
            let Some(inner) = entry
                .trim()
                .strip_prefix('{')
                .and_then(|e| e.strip_suffix('}'))
            else {
                continue;
            };
            let Some((k, id)) = inner.split_once(':') else {
                continue;
            };
            if k.trim() != kind {
                continue;
            }
            index
                .entry(id.trim().to_string())
                .and_modify(|e| {
                    if e.as_deref() != Some(student.as_str()) {
                        *e = None;
                    }
                })
                .or_insert_with(|| Some(student.clone()));
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_id_entry_names_its_student_and_a_shared_one_names_none() {
        let index = index_user_ids(
            "MAP",
            vec![
                ("s1".into(), "{MAP:100},{Fed:9}".into()),
                ("s2".into(), "{MAP:200}".into()),
                ("s3".into(), "{MAP:300},{Fed:100}".into()),
                ("s4".into(), "{MAP:300}".into()),
            ],
        );
        assert_eq!(index.get("100"), Some(&Some("s1".to_string())));
        assert_eq!(index.get("200"), Some(&Some("s2".to_string())));
        assert_eq!(index.get("300"), Some(&None));
        assert_eq!(index.get("9"), None);
    }
}
