//! One import of assessment results, from any source: results staged as they are read, then
//! matched to rostered students by the district's key, compared with the stored ones and applied
//! set-based (sending a result again changes nothing), and the students whose results moved
//! placed again, all in one transaction under the district's lock (so a roster sync bringing a
//! student cannot slip between matching and placing). A source that found problems refuses the
//! whole import: nothing is stored.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use super::{keys, placement};
use crate::domain::district::District;
use crate::domain::learning_plan::LearningPlans;
use crate::domain::problem::{Problem, Warning};
use crate::sources::scores::AssessmentResult;
use crate::store::scores as store;
use crate::store::{connections, locks, Db, StoreError, Tx};
use crate::sync::input::SourceEnd;

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
    /// `cdf`, `push`, `pull`.
    pub kind: &'a str,
    /// The file's name, the push's id or the connection's name: names the import in its record.
    pub label: &'a str,
    /// Told once the import holds its district, for a source that should ask nothing of anyone
    /// before (a pull that finds its district busy costs its partner no request).
    pub started: Option<Arc<Notify>>,
}

/// Imports the results `results` delivers, in chunks; `finish` is awaited once they end and
/// yields the source's problems (an error anywhere refuses the whole import) and where its
/// connection's cursor moves if the import is applied (in the applying transaction).
pub async fn import<E: Into<SourceEnd>>(
    db: &Db,
    district: &District,
    plans: &LearningPlans,
    source: ImportSource<'_>,
    mut results: mpsc::Receiver<Vec<AssessmentResult>>,
    finish: impl std::future::Future<Output = E>,
) -> Result<ScoreImportReport, IngestError> {
    let import_id = format!("scores-{}", uuid::Uuid::new_v4());
    let lock = locks::try_lock(db, district.id, &import_id)
        .await?
        .ok_or(IngestError::Busy)?;
    if let Some(started) = &source.started {
        started.notify_one();
    }
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
        store::tune_import(&mut tx).await?;
        let mut line = 0;
        let reading = std::time::Instant::now();
        while let Some(chunk) = results.recv().await {
            // A chunk names a few subjects a thousand times: each is looked up once.
            let mut planned = HashMap::new();
            let rows: Vec<_> = chunk
                .into_iter()
                .map(|r| {
                    line += 1;
                    if !has_plan(plans, &mut planned, &r.subject) {
                        report.without_plan += 1;
                    }
                    (line, keys::stored(r, source.kind))
                })
                .collect();
            report.received += rows.len() as u64;
            store::stage(&mut tx, &import_id, rows).await?;
        }
        let end: SourceEnd = finish.await.into();
        tracing::debug!(
            phase = "scores.read_and_stage",
            ms = reading.elapsed().as_millis() as u64
        );
        Ok::<_, StoreError>((tx, end))
    }
    .await;
    let (
        mut tx,
        SourceEnd {
            problems: log,
            cursor,
        },
    ) = match outcome {
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
        apply(
            &mut tx,
            district,
            plans,
            (&import_id, source.kind),
            &mut report,
        )
        .await?;
        if let Some(cursor) = &cursor {
            connections::advance_in(&mut tx, district.id, cursor, Utc::now()).await?;
        }
        record(&mut tx, district.id, &source, &report, started_at).await?;
        tx.commit().await
    }
    .await;
    lock.release().await.ok();
    finished?;
    Ok(report)
}

/// Does a learning plan cover `subject`? Asked of `plans` once per subject `known` has not seen.
fn has_plan(plans: &LearningPlans, known: &mut HashMap<String, bool>, subject: &str) -> bool {
    if let Some(found) = known.get(subject) {
        return *found;
    }
    let found = plans.for_subject(subject).is_some();
    known.insert(subject.to_string(), found);
    found
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

/// Matches, compares and applies what the import staged; places the students it moved.
async fn apply(
    tx: &mut Tx,
    district: &District,
    plans: &LearningPlans,
    (import_id, source): (&str, &str),
    report: &mut ScoreImportReport,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let key = &district.settings.score_student_key;
    // Phase timings at debug, as the sync engine prints its own.
    let mut phase_start = std::time::Instant::now();
    let mut phase = |name: &'static str| {
        tracing::debug!(phase = name, ms = phase_start.elapsed().as_millis() as u64);
        phase_start = std::time::Instant::now();
    };
    store::analyze_stage(tx).await?;
    store::drop_earlier_duplicates(tx, import_id).await?;
    phase("scores.dedupe");
    // Results are matched where they are read (`store::staged_counts` and what follows).
    store::prepare_user_id_matching(tx, district.id, key, import_id).await?;
    phase("scores.match");
    let counts = store::staged_counts(tx, district.id, key, import_id).await?;
    report.new = counts.new as u64;
    report.restated = counts.restated as u64;
    report.unchanged = counts.unchanged as u64;
    report.matched = counts.matched as u64;
    report.unmatched = counts.unmatched as u64;
    phase("scores.compare");
    if counts.changes > 0 {
        store::announce_staged(tx, district.id, key, import_id, now).await?;
        store::apply_staged(tx, district.id, key, (import_id, source), now).await?;
    }
    phase("scores.apply");
    report.matched_earlier_results =
        store::match_pending(tx, district.id, key, import_id, now).await?;
    store::clear_stage(tx, import_id).await?;
    if counts.new + counts.restated > 10_000 {
        store::analyze_results(tx).await?;
    }
    phase("scores.late_matches");
    report.students_placed =
        placement::place_touched(tx, district.id, plans, import_id, now).await?;
    phase("scores.place");
    Ok(())
}

/// Results stored before their students were rostered, matched now (a roster sync calls this in
/// its own transaction, once the users are applied), with their events and placements.
pub async fn match_late(
    tx: &mut Tx,
    district: &District,
    plans: &LearningPlans,
    run_id: &str,
) -> Result<u64, StoreError> {
    let now = Utc::now();
    let key = &district.settings.score_student_key;
    let matched = store::match_pending(tx, district.id, key, run_id, now).await?;
    store::clear_stage(tx, run_id).await?;
    if matched > 0 {
        placement::place_touched(tx, district.id, plans, run_id, now).await?;
    }
    Ok(matched)
}
