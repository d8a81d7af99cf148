//! Assessment results, the placements made from them, and teachers' overrides. Every statement
//! names its district; writes run in the caller's transaction.

use chrono::{DateTime, NaiveDate, Utc};

use std::collections::HashMap;

use super::outbox::{json_object_sql, INSERT_EVENTS};
use super::{bulk, placeholders, Arg, Backend, Db, StoreError, Tx};
use crate::args;
use crate::domain::district::ScoreStudentKey;

/// A result as stored: the source's values, the ids it named the student by, and the student
/// they matched (if any yet).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredResult {
    pub result_key: String,
    pub student_sourced_id: Option<String>,
    pub ref_sourced_id: Option<String>,
    pub ref_identifier: Option<String>,
    pub ref_state_id: Option<String>,
    pub subject: String,
    pub course: Option<String>,
    pub term: String,
    pub test_date: NaiveDate,
    pub test_start_time: Option<String>,
    pub test_id: Option<String>,
    pub test_name: Option<String>,
    pub test_type: Option<String>,
    pub growth_event: Option<bool>,
    pub duration_minutes: Option<i64>,
    pub rit: i64,
    pub standard_error: Option<f64>,
    pub percentile: Option<i64>,
    pub rapid_guessing_percentage: Option<f64>,
    pub norms_reference: Option<String>,
    /// JSON array of the goal areas as the source named them.
    pub goals: String,
    pub row_hash: String,
    pub source: String,
    pub received_at: DateTime<Utc>,
}

const RESULT_COLUMNS: &str = "result_key, student_sourced_id, ref_sourced_id, ref_identifier, ref_state_id, \
     subject, course, term, test_date, test_start_time, test_id, test_name, test_type, growth_event, \
     duration_minutes, rit, standard_error, percentile, rapid_guessing_percentage, norms_reference, \
     goals, row_hash, source, received_at";

/// The staged copy of a result's columns, in [`stage`]'s order.
const STAGE_COLUMNS: [&str; 24] = [
    "import_id",
    "line",
    "result_key",
    "student_sourced_id",
    "ref_sourced_id",
    "ref_identifier",
    "ref_state_id",
    "subject",
    "course",
    "term",
    "test_date",
    "test_start_time",
    "test_id",
    "test_name",
    "test_type",
    "growth_event",
    "duration_minutes",
    "rit",
    "standard_error",
    "percentile",
    "rapid_guessing_percentage",
    "norms_reference",
    "goals",
    "row_hash",
];

/// The columns an applied result copies from its staged row (all but `import_id` and `line`).
fn copied_columns() -> &'static [&'static str] {
    &STAGE_COLUMNS[2..]
}

/// Writes results read by an import (with the line each starts on) to the staging table.
pub async fn stage(
    tx: &mut Tx,
    import_id: &str,
    results: Vec<(u64, StoredResult)>,
) -> Result<(), StoreError> {
    let rows: Vec<Vec<Arg>> = results
        .into_iter()
        .map(|(line, r)| {
            vec![
                Arg::from(import_id),
                Arg::I64(line as i64),
                Arg::from(r.result_key),
                Arg::OptText(None),
                Arg::from(r.ref_sourced_id),
                Arg::from(r.ref_identifier),
                Arg::from(r.ref_state_id),
                Arg::from(r.subject),
                Arg::from(r.course),
                Arg::from(r.term),
                Arg::from(r.test_date),
                Arg::from(r.test_start_time),
                Arg::from(r.test_id),
                Arg::from(r.test_name),
                Arg::from(r.test_type),
                Arg::from(r.growth_event),
                Arg::from(r.duration_minutes),
                Arg::from(r.rit),
                Arg::from(r.standard_error),
                Arg::from(r.percentile),
                Arg::from(r.rapid_guessing_percentage),
                Arg::from(r.norms_reference),
                Arg::from(r.goals),
                Arg::from(r.row_hash),
            ]
        })
        .collect();
    bulk::insert(tx, "stage_assessment_results", &STAGE_COLUMNS, &rows).await
}

/// PostgreSQL: memory for the import's own sorts and hashes (its events in file order, its joins
/// of hundreds of thousands of staged rows), for its transaction only: at the default 4 MB they
/// spill to disk.
pub async fn tune_import(tx: &mut Tx) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres {
        tx.execute("SET LOCAL work_mem = '64MB'", &[]).await?;
    }
    Ok(())
}

/// PostgreSQL: statistics for the rows just staged (in this transaction, which autovacuum cannot
/// see), so that comparing them with the stored results is planned as joins, not as loops.
pub async fn analyze_stage(tx: &mut Tx) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres {
        tx.execute("ANALYZE stage_assessment_results", &[]).await?;
    }
    Ok(())
}

/// PostgreSQL: statistics for the results an import just wrote (in its own transaction, which
/// autovacuum cannot see), so that reading its students page by page is planned on the index
/// rather than as a scan of every result on every page.
pub async fn analyze_results(tx: &mut Tx) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres {
        tx.execute("ANALYZE assessment_results", &[]).await?;
    }
    Ok(())
}

/// PostgreSQL: plan each statement for its own values from here to `false`. Placing students
/// runs the same statements page after page while the placements table grows from empty in the
/// same transaction; a generic plan made on the first pages (a scan of a table that was empty)
/// would be kept for all the others.
pub async fn plan_for_each_execution(tx: &mut Tx, on: bool) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres {
        let mode = if on { "force_custom_plan" } else { "auto" };
        tx.execute(&format!("SET LOCAL plan_cache_mode = {mode}"), &[])
            .await?;
    }
    Ok(())
}

/// Keeps only the last copy of a result the import read twice (overlapping exports zipped
/// together); returns how many copies were dropped.
pub async fn drop_earlier_duplicates(tx: &mut Tx, import_id: &str) -> Result<u64, StoreError> {
    tx.execute(
        "DELETE FROM stage_assessment_results WHERE import_id = $1 AND EXISTS (\
           SELECT 1 FROM stage_assessment_results t WHERE t.import_id = $1 \
             AND t.result_key = stage_assessment_results.result_key \
             AND t.line > stage_assessment_results.line)",
        &args![import_id],
    )
    .await
}

/// The role condition on `u`: a student (OneRoster 1.1 `role`; 1.2 users carry roles elsewhere
/// and have none here, so they are not excluded).
const STUDENT_ROLE_SQL: &str = "(u.role IS NULL OR lower(u.role) = 'student')";

/// The SQL expression (over rows of `table`, district `$1`, run `$2`) giving the one student user
/// a result names, or NULL when none or several do. A named sourcedId wins; otherwise the
/// district's key is compared with the result's student id (for a userIds key, through the
/// run's [`prepare_user_id_matching`] rows).
fn student_match_sql(key: &ScoreStudentKey, table: &str) -> String {
    let student = STUDENT_ROLE_SQL;
    let by_key = match key {
        ScoreStudentKey::UserId(_) => format!(
            "(SELECT m.student_sourced_id FROM stage_score_student_ids m \
              WHERE m.run_id = $2 AND m.id_value = {table}.ref_identifier)"
        ),
        ScoreStudentKey::Identifier | ScoreStudentKey::SourcedId => {
            let column = if *key == ScoreStudentKey::SourcedId {
                "sourced_id"
            } else {
                "identifier"
            };
            format!(
                "(SELECT MIN(u.sourced_id) FROM users u WHERE u.district_id = $1 \
                   AND u.{column} = {table}.ref_identifier AND {student} HAVING COUNT(*) = 1)"
            )
        }
    };
    format!(
        "CASE WHEN {table}.ref_sourced_id IS NOT NULL THEN \
           (SELECT u.sourced_id FROM users u WHERE u.district_id = $1 \
              AND u.sourced_id = {table}.ref_sourced_id AND {student}) \
         ELSE {by_key} END"
    )
}

/// For a district matching on a userIds entry: writes, for `run_id`, each id of that type the
/// district's students carry with the one student who carries it (an id two students share
/// names neither). Nothing for the other keys.
pub async fn prepare_user_id_matching(
    tx: &mut Tx,
    district_id: i64,
    key: &ScoreStudentKey,
    run_id: &str,
) -> Result<(), StoreError> {
    let ScoreStudentKey::UserId(kind) = key else {
        return Ok(());
    };
    // Prepared again by a later step of the same run: the ids are read anew, never doubled.
    tx.execute(
        "DELETE FROM stage_score_student_ids WHERE run_id = $1",
        &args![run_id],
    )
    .await?;
    let users = tx
        .text_rows(
            &format!(
                "SELECT u.sourced_id, u.user_ids FROM users u WHERE u.district_id = $1 \
                   AND u.user_ids IS NOT NULL AND {STUDENT_ROLE_SQL}"
            ),
            &args![district_id],
        )
        .await?;
    let pairs = users.into_iter().filter_map(|r| {
        let mut r = r.into_iter();
        Some((r.next()??, r.next()??))
    });
    let rows: Vec<Vec<Arg>> = index_user_ids(kind, pairs)
        .into_iter()
        .filter_map(|(id, student)| {
            Some(vec![Arg::from(run_id), Arg::from(id), Arg::from(student?)])
        })
        .collect();
    bulk::insert(
        tx,
        "stage_score_student_ids",
        &["run_id", "id_value", "student_sourced_id"],
        &rows,
    )
    .await
}

/// `{kind:id}` entries of each student's userIds → the student; an id two students share maps
/// to `None` (ambiguous: left unmatched).
fn index_user_ids(
    kind: &str,
    users: impl Iterator<Item = (String, String)>,
) -> HashMap<String, Option<String>> {
    let mut index: HashMap<String, Option<String>> = HashMap::new();
    for (student, ids) in users {
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

/// What the staged results are against the stored ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct StagedCounts {
    pub new: i64,
    pub restated: i64,
    pub unchanged: i64,
    pub matched: i64,
    pub unmatched: i64,
    /// Results that change what is stored ([`STAGED_CHANGES`]): none, and there is nothing to
    /// announce or apply.
    pub changes: i64,
}

/// The staged results of district `$1`'s import `$2` (`s`), each with the student it names
/// (`s.student_sourced_id`, NULL when none or several do), matched set-based where the statement
/// reads them: a join per way a result can name its student, the outcome of
/// [`student_match_sql`]. (Writing the matches into the staged rows cost an update of every row,
/// about 10 s at 600,000 rows, more than the three joins.) A userIds key reads the import's
/// [`prepare_user_id_matching`] rows.
fn matched_stage_sql(key: &ScoreStudentKey) -> String {
    let columns = STAGE_COLUMNS
        .iter()
        .filter(|c| **c != "student_sourced_id")
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let ids = match key {
        ScoreStudentKey::UserId(_) => {
            "SELECT m.id_value, m.student_sourced_id FROM stage_score_student_ids m \
             WHERE m.run_id = $2"
                .to_string()
        }
        ScoreStudentKey::Identifier | ScoreStudentKey::SourcedId => {
            let column = if *key == ScoreStudentKey::SourcedId {
                "sourced_id"
            } else {
                "identifier"
            };
            // An id two students share is in no row: it names neither.
            format!(
                "SELECT u.{column} AS id_value, MIN(u.sourced_id) AS student_sourced_id \
                 FROM users u WHERE u.district_id = $1 AND u.{column} IS NOT NULL \
                   AND {STUDENT_ROLE_SQL} GROUP BY u.{column} HAVING COUNT(*) = 1"
            )
        }
    };
    // A named sourcedId wins, matched or not.
    format!(
        "(SELECT {columns}, CASE WHEN t.ref_sourced_id IS NOT NULL THEN u.sourced_id \
           ELSE k.student_sourced_id END AS student_sourced_id \
         FROM stage_assessment_results t \
         LEFT JOIN users u ON t.ref_sourced_id IS NOT NULL AND u.district_id = $1 \
           AND u.sourced_id = t.ref_sourced_id AND {STUDENT_ROLE_SQL} \
         LEFT JOIN ({ids}) k ON t.ref_sourced_id IS NULL AND k.id_value = t.ref_identifier \
         WHERE t.import_id = $2) s"
    )
}

/// The join of each staged result (matched) with the stored one of its key (`r`, absent for a
/// new one).
fn staged_join(key: &ScoreStudentKey) -> String {
    format!(
        "{} LEFT JOIN assessment_results r ON r.district_id = $1 AND r.result_key = s.result_key",
        matched_stage_sql(key)
    )
}

/// A staged result that changes what is stored: new, restated, or now matched where the stored
/// copy was not.
const STAGED_CHANGES: &str = "(r.result_key IS NULL OR r.row_hash <> s.row_hash \
     OR (s.student_sourced_id IS NOT NULL AND COALESCE(r.student_sourced_id, '') <> s.student_sourced_id))";

pub async fn staged_counts(
    tx: &mut Tx,
    district_id: i64,
    key: &ScoreStudentKey,
    import_id: &str,
) -> Result<StagedCounts, StoreError> {
    let staged = staged_join(key);
    let counts: StagedCounts = tx
        .fetch_optional(
            &format!(
                "SELECT \
                   CAST(COALESCE(SUM(CASE WHEN r.result_key IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS new, \
                   CAST(COALESCE(SUM(CASE WHEN r.row_hash <> s.row_hash THEN 1 ELSE 0 END), 0) AS BIGINT) AS restated, \
                   CAST(COALESCE(SUM(CASE WHEN r.row_hash = s.row_hash THEN 1 ELSE 0 END), 0) AS BIGINT) AS unchanged, \
                   CAST(COALESCE(SUM(CASE WHEN s.student_sourced_id IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS matched, \
                   CAST(COALESCE(SUM(CASE WHEN s.student_sourced_id IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS unmatched, \
                   CAST(COALESCE(SUM(CASE WHEN {STAGED_CHANGES} THEN 1 ELSE 0 END), 0) AS BIGINT) AS changes \
                 FROM {staged} WHERE s.import_id = $2"
            ),
            &args![district_id, import_id],
        )
        .await?
        .unwrap_or_default();
    Ok(counts)
}

/// `assessment_result.received` for every matched result the import changes (before it is
/// applied, while the stored copies are still the old ones).
pub async fn announce_staged(
    tx: &mut Tx,
    district_id: i64,
    key: &ScoreStudentKey,
    import_id: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let staged = staged_join(key);
    let backend = tx.backend();
    let restated = match backend {
        Backend::Postgres => "(r.result_key IS NOT NULL AND r.row_hash <> s.row_hash)".to_string(),
        Backend::Sqlite => {
            "json(CASE WHEN r.result_key IS NOT NULL AND r.row_hash <> s.row_hash THEN 'true' ELSE 'false' END)"
                .to_string()
        }
    };
    let payload = received_payload(backend, "s", &restated);
    tx.execute(
        &format!(
            "{INSERT_EVENTS} SELECT $1, $2, 'assessment_result.received', s.student_sourced_id, {payload}, $3 \
             FROM {staged} WHERE s.import_id = $2 AND s.student_sourced_id IS NOT NULL AND {STAGED_CHANGES} \
             ORDER BY s.line"
        ),
        &args![district_id, import_id, now],
    )
    .await
}

/// The thin payload of `assessment_result.received` over the result row `alias`.
fn received_payload(backend: Backend, alias: &str, restated: &str) -> String {
    json_object_sql(
        backend,
        &[
            ("student", &format!("{alias}.student_sourced_id")),
            ("result", &format!("{alias}.result_key")),
            ("subject", &format!("{alias}.subject")),
            ("term", &format!("{alias}.term")),
            ("test_date", &format!("{alias}.test_date")),
            ("restated", restated),
        ],
    )
}

/// Writes the import's changing results to the stored ones, marked with the import.
pub async fn apply_staged(
    tx: &mut Tx,
    district_id: i64,
    key: &ScoreStudentKey,
    (import_id, source): (&str, &str),
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let staged = staged_join(key);
    let columns = copied_columns();
    let selected = columns
        .iter()
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let updates = columns
        .iter()
        .filter(|c| **c != "result_key")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    tx.execute(
        &format!(
            "INSERT INTO assessment_results (district_id, {}, source, import_id, received_at, updated_at) \
             SELECT $1, {selected}, $3, $2, $4, $4 FROM {staged} \
             WHERE s.import_id = $2 AND {STAGED_CHANGES} \
             ON CONFLICT (district_id, result_key) DO UPDATE SET {updates}, source = excluded.source, \
               import_id = excluded.import_id, updated_at = excluded.updated_at",
            columns.join(", ")
        ),
        &args![district_id, import_id, source, now],
    )
    .await
}

/// Removes a run's staged results and userIds matches.
pub async fn clear_stage(tx: &mut Tx, run_id: &str) -> Result<(), StoreError> {
    // SQLite drops a whole table's pages at once for a DELETE without WHERE, but deletes row by
    // row with one (5 s for 600,000 staged results). With its one writer, the staged rows are
    // this run's: checked all the same.
    if tx.backend() == Backend::Sqlite && !others_staged(tx, run_id).await? {
        tx.execute("DELETE FROM stage_assessment_results", &[])
            .await?;
    } else {
        tx.execute(
            "DELETE FROM stage_assessment_results WHERE import_id = $1",
            &args![run_id],
        )
        .await?;
    }
    tx.execute(
        "DELETE FROM stage_score_student_ids WHERE run_id = $1",
        &args![run_id],
    )
    .await?;
    Ok(())
}

/// Are results of a run other than `run_id` staged?
async fn others_staged(tx: &mut Tx, run_id: &str) -> Result<bool, StoreError> {
    let n = tx
        .scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM stage_assessment_results \
             WHERE import_id < $1 OR import_id > $1 LIMIT 1) o",
            &args![run_id],
        )
        .await?;
    Ok(n > 0)
}

/// Matches the district's stored, unmatched results to students (who may have been rostered
/// since), marking each with `run_id` and announcing it with `assessment_result.received`.
/// Returns how many matched. Results `run_id` itself staged are not among them (it matched and
/// announced those already).
pub async fn match_pending(
    tx: &mut Tx,
    district_id: i64,
    key: &ScoreStudentKey,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let pending = tx
        .scalar(
            "SELECT COUNT(*) FROM assessment_results WHERE district_id = $1 AND student_sourced_id IS NULL",
            &args![district_id],
        )
        .await?;
    if pending == 0 {
        return Ok(0);
    }
    prepare_user_id_matching(tx, district_id, key, run_id).await?;
    let matched = student_match_sql(key, "assessment_results");
    let count = tx
        .execute(
            &format!(
                "UPDATE assessment_results SET student_sourced_id = {matched}, import_id = $2 \
                 WHERE district_id = $1 AND student_sourced_id IS NULL AND {matched} IS NOT NULL"
            ),
            &args![district_id, run_id],
        )
        .await?;
    if count > 0 {
        let backend = tx.backend();
        let restated = match backend {
            Backend::Postgres => "false",
            Backend::Sqlite => "json('false')",
        };
        let payload = received_payload(backend, "r", restated);
        tx.execute(
            &format!(
                "{INSERT_EVENTS} SELECT $1, $2, 'assessment_result.received', r.student_sourced_id, {payload}, $3 \
                 FROM assessment_results r WHERE r.district_id = $1 AND r.import_id = $2 \
                   AND NOT EXISTS (SELECT 1 FROM stage_assessment_results s \
                                   WHERE s.import_id = $2 AND s.result_key = r.result_key) \
                 ORDER BY r.result_key"
            ),
            &args![district_id, run_id, now],
        )
        .await?;
    }
    Ok(count)
}

/// Up to `limit` students after `after` (in sourcedId order) whose results `run_id` stored or
/// matched: their plans may move. Read in pages so that memory stays flat.
pub async fn touched_students(
    tx: &mut Tx,
    district_id: i64,
    run_id: &str,
    (after, limit): (&str, i64),
) -> Result<Vec<String>, StoreError> {
    tx.strings(
        "SELECT DISTINCT student_sourced_id FROM assessment_results \
         WHERE district_id = $1 AND import_id = $2 AND student_sourced_id > $3 \
         ORDER BY student_sourced_id LIMIT $4",
        &args![district_id, run_id, after, limit],
    )
    .await
}

/// `student_sourced_id` among `$4…` (`n` of them), between `$2` and `$3`: the range is what an
/// index on (district, student, …) is searched by, as the list alone is not once the table has
/// grown in this transaction (PostgreSQL then scanned every placement of the district for each
/// page of students).
fn among_students(n: usize) -> String {
    format!(
        "student_sourced_id >= $2 AND student_sourced_id <= $3 AND student_sourced_id IN ({})",
        placeholders(4, n)
    )
}

/// The parameters of [`among_students`]: the district, the lowest and highest student, then
/// each student. `students` must not be empty.
fn student_params(district_id: i64, students: &[String]) -> Vec<Arg> {
    let lowest = students.iter().min().expect("students");
    let highest = students.iter().max().expect("students");
    let mut params = vec![Arg::I64(district_id), Arg::from(lowest), Arg::from(highest)];
    params.extend(students.iter().map(Arg::from));
    params
}

/// The results of these students, each student's newest test first.
pub async fn results_of_students(
    tx: &mut Tx,
    district_id: i64,
    students: &[String],
) -> Result<Vec<StoredResult>, StoreError> {
    if students.is_empty() {
        return Ok(Vec::new());
    }
    let mut params = vec![Arg::I64(district_id)];
    params.extend(students.iter().map(Arg::from));
    tx.fetch_all(
        &format!(
            "SELECT {RESULT_COLUMNS} FROM assessment_results WHERE district_id = $1 \
               AND student_sourced_id IN ({}) \
             ORDER BY student_sourced_id, test_date DESC, test_start_time DESC, received_at DESC, result_key",
            placeholders(2, students.len())
        ),
        &params,
    )
    .await
}

/// The proposed placements of these students, by student.
pub async fn placements_of_students(
    tx: &mut Tx,
    district_id: i64,
    students: &[String],
) -> Result<Vec<(String, PlacementRow)>, StoreError> {
    if students.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(sqlx::FromRow)]
    struct Row {
        student_sourced_id: String,
        #[sqlx(flatten)]
        placement: PlacementRow,
    }
    let params = student_params(district_id, students);
    let rows: Vec<Row> = tx
        .fetch_all(
            &format!(
                "SELECT student_sourced_id, subject, goal_area, unit, rit, basis, result_key, plan_version, placed_at \
                 FROM placements WHERE district_id = $1 AND {}",
                among_students(students.len())
            ),
            &params,
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.student_sourced_id, r.placement))
        .collect())
}

/// The students `$2` coaches through class `$3` (district `$1`).
const COACHED_IN_CLASS_SQL: &str = "SELECT c.student_sourced_id FROM coaching_sources c \
     WHERE c.district_id = $1 AND c.teacher_sourced_id = $2 AND c.source_type = 'class' AND c.source_id = $3";

/// The proposed placements and overrides of the students `teacher` coaches through `class`,
/// by student: two statements for the whole class.
pub async fn class_plans(
    db: &Db,
    district_id: i64,
    teacher: &str,
    class: &str,
) -> Result<(Vec<(String, PlacementRow)>, Vec<(String, OverrideRow)>), StoreError> {
    #[derive(sqlx::FromRow)]
    struct Placed {
        student_sourced_id: String,
        #[sqlx(flatten)]
        row: PlacementRow,
    }
    #[derive(sqlx::FromRow)]
    struct Overridden {
        student_sourced_id: String,
        #[sqlx(flatten)]
        row: OverrideRow,
    }
    let placed: Vec<Placed> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT student_sourced_id, subject, goal_area, unit, rit, basis, result_key, plan_version, placed_at \
                 FROM placements WHERE district_id = $1 AND student_sourced_id IN ({COACHED_IN_CLASS_SQL})"
            ),
            &args![district_id, teacher, class],
        )
        .await?;
    let overridden: Vec<Overridden> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT student_sourced_id, subject, goal_area, unit, teacher_sourced_id, reason, previous_unit, set_at \
                 FROM placement_overrides WHERE district_id = $1 AND student_sourced_id IN ({COACHED_IN_CLASS_SQL})"
            ),
            &args![district_id, teacher, class],
        )
        .await?;
    Ok((
        placed
            .into_iter()
            .map(|p| (p.student_sourced_id, p.row))
            .collect(),
        overridden
            .into_iter()
            .map(|o| (o.student_sourced_id, o.row))
            .collect(),
    ))
}

/// A student's results, newest test first.
pub async fn results_of(
    db: &Db,
    district_id: i64,
    student: &str,
) -> Result<Vec<StoredResult>, StoreError> {
    db.conn()
        .fetch_all(
            &format!(
                "SELECT {RESULT_COLUMNS} FROM assessment_results WHERE district_id = $1 AND student_sourced_id = $2 \
                 ORDER BY test_date DESC, test_start_time DESC, received_at DESC, result_key"
            ),
            &args![district_id, student],
        )
        .await
}

/// One goal area's proposed placement.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlacementRow {
    pub subject: String,
    pub goal_area: String,
    pub unit: String,
    pub rit: f64,
    pub basis: String,
    pub result_key: String,
    pub plan_version: String,
    pub placed_at: DateTime<Utc>,
}

/// A teacher's placement of one goal area.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OverrideRow {
    pub subject: String,
    pub goal_area: String,
    pub unit: String,
    pub teacher_sourced_id: String,
    pub reason: Option<String>,
    pub previous_unit: Option<String>,
    pub set_at: DateTime<Utc>,
}

const PLACEMENTS_SQL: &str = "SELECT subject, goal_area, unit, rit, basis, result_key, plan_version, placed_at \
     FROM placements WHERE district_id = $1 AND student_sourced_id = $2 ORDER BY subject, goal_area";
const OVERRIDES_SQL: &str = "SELECT subject, goal_area, unit, teacher_sourced_id, reason, previous_unit, set_at \
     FROM placement_overrides WHERE district_id = $1 AND student_sourced_id = $2 ORDER BY subject, goal_area";

pub async fn placements_of_in(
    tx: &mut Tx,
    district_id: i64,
    student: &str,
) -> Result<Vec<PlacementRow>, StoreError> {
    tx.fetch_all(PLACEMENTS_SQL, &args![district_id, student])
        .await
}

pub async fn placements_of(
    db: &Db,
    district_id: i64,
    student: &str,
) -> Result<Vec<PlacementRow>, StoreError> {
    db.conn()
        .fetch_all(PLACEMENTS_SQL, &args![district_id, student])
        .await
}

pub async fn overrides_of_in(
    tx: &mut Tx,
    district_id: i64,
    student: &str,
) -> Result<Vec<OverrideRow>, StoreError> {
    tx.fetch_all(OVERRIDES_SQL, &args![district_id, student])
        .await
}

pub async fn overrides_of(
    db: &Db,
    district_id: i64,
    student: &str,
) -> Result<Vec<OverrideRow>, StoreError> {
    db.conn()
        .fetch_all(OVERRIDES_SQL, &args![district_id, student])
        .await
}

/// Replaces every proposed placement of these students with `rows` (student, placement).
pub async fn replace_placements(
    tx: &mut Tx,
    district_id: i64,
    students: &[String],
    rows: &[(String, PlacementRow)],
) -> Result<(), StoreError> {
    if students.is_empty() {
        return Ok(());
    }
    tx.execute(
        &format!(
            "DELETE FROM placements WHERE district_id = $1 AND {}",
            among_students(students.len())
        ),
        &student_params(district_id, students),
    )
    .await?;
    let rows: Vec<Vec<Arg>> = rows
        .iter()
        .map(|(student, p)| {
            vec![
                Arg::I64(district_id),
                Arg::from(student),
                Arg::from(&p.subject),
                Arg::from(&p.goal_area),
                Arg::from(&p.unit),
                Arg::F64(p.rit),
                Arg::from(&p.basis),
                Arg::from(&p.result_key),
                Arg::from(&p.plan_version),
                Arg::Time(p.placed_at),
            ]
        })
        .collect();
    bulk::insert(
        tx,
        "placements",
        &[
            "district_id",
            "student_sourced_id",
            "subject",
            "goal_area",
            "unit",
            "rit",
            "basis",
            "result_key",
            "plan_version",
            "placed_at",
        ],
        &rows,
    )
    .await
}

/// Sets (or replaces) a teacher's override and records it in the history.
pub async fn set_override(
    tx: &mut Tx,
    district_id: i64,
    student: &str,
    o: &OverrideRow,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO placement_overrides (district_id, student_sourced_id, subject, goal_area, unit, \
           teacher_sourced_id, reason, previous_unit, set_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (district_id, student_sourced_id, subject, goal_area) DO UPDATE SET unit = $5, \
           teacher_sourced_id = $6, reason = $7, previous_unit = $8, set_at = $9",
        &args![
            district_id,
            student,
            o.subject.clone(),
            o.goal_area.clone(),
            o.unit.clone(),
            o.teacher_sourced_id.clone(),
            o.reason.clone(),
            o.previous_unit.clone(),
            o.set_at,
        ],
    )
    .await?;
    history(tx, district_id, student, "set", o).await
}

/// Clears an override; `None` when there was none. The history keeps who cleared it.
pub async fn clear_override(
    tx: &mut Tx,
    district_id: i64,
    student: &str,
    (subject, goal_area): (&str, &str),
    teacher: &str,
    now: DateTime<Utc>,
) -> Result<Option<OverrideRow>, StoreError> {
    let existing: Option<OverrideRow> = tx
        .fetch_optional(
            "SELECT subject, goal_area, unit, teacher_sourced_id, reason, previous_unit, set_at \
             FROM placement_overrides WHERE district_id = $1 AND student_sourced_id = $2 AND subject = $3 \
               AND goal_area = $4",
            &args![district_id, student, subject, goal_area],
        )
        .await?;
    let Some(existing) = existing else {
        return Ok(None);
    };
    tx.execute(
        "DELETE FROM placement_overrides WHERE district_id = $1 AND student_sourced_id = $2 AND subject = $3 \
           AND goal_area = $4",
        &args![district_id, student, subject, goal_area],
    )
    .await?;
    let cleared = OverrideRow {
        unit: String::new(),
        teacher_sourced_id: teacher.to_string(),
        reason: None,
        previous_unit: Some(existing.unit.clone()),
        set_at: now,
        ..existing.clone()
    };
    history(tx, district_id, student, "cleared", &cleared).await?;
    Ok(Some(existing))
}

async fn history(
    tx: &mut Tx,
    district_id: i64,
    student: &str,
    action: &str,
    o: &OverrideRow,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO placement_override_history (district_id, student_sourced_id, subject, goal_area, action, \
           unit, previous_unit, teacher_sourced_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &args![
            district_id,
            student,
            o.subject.clone(),
            o.goal_area.clone(),
            action,
            Some(o.unit.clone()).filter(|u| !u.is_empty()),
            o.previous_unit.clone(),
            o.teacher_sourced_id.clone(),
            o.reason.clone(),
            o.set_at,
        ],
    )
    .await?;
    Ok(())
}

/// One entry of an override's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct HistoryRow {
    pub subject: String,
    pub goal_area: String,
    pub action: String,
    pub unit: Option<String>,
    pub previous_unit: Option<String>,
    pub teacher_sourced_id: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn override_history(
    db: &Db,
    district_id: i64,
    student: &str,
) -> Result<Vec<HistoryRow>, StoreError> {
    db.conn()
        .fetch_all(
            "SELECT subject, goal_area, action, unit, previous_unit, teacher_sourced_id, reason, at \
             FROM placement_override_history WHERE district_id = $1 AND student_sourced_id = $2 ORDER BY id",
            &args![district_id, student],
        )
        .await
}

/// A write that changes nothing, so that a SQLite transaction holds the write lock from here on.
pub async fn take_write_lock(tx: &mut Tx) -> Result<(), StoreError> {
    tx.execute("DELETE FROM placement_overrides WHERE 1 = 0", &[])
        .await?;
    Ok(())
}

/// Does `teacher` coach `student` through a class (a live coaching source of type class)?
pub async fn coaches_through_class(
    tx: &mut Tx,
    district_id: i64,
    teacher: &str,
    student: &str,
) -> Result<bool, StoreError> {
    let n = tx
        .scalar(
            "SELECT COUNT(*) FROM coaching_sources WHERE district_id = $1 AND teacher_sourced_id = $2 \
               AND student_sourced_id = $3 AND source_type = 'class'",
            &args![district_id, teacher, student],
        )
        .await?;
    Ok(n > 0)
}

/// Is `sourced_id` a user of the district (live or not)?
pub async fn user_exists(db: &Db, district_id: i64, sourced_id: &str) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM users WHERE district_id = $1 AND sourced_id = $2",
            &args![district_id, sourced_id],
        )
        .await?;
    Ok(n > 0)
}

/// The students `teacher` coaches through `class`.
pub async fn coached_in_class(
    db: &Db,
    district_id: i64,
    teacher: &str,
    class: &str,
) -> Result<Vec<String>, StoreError> {
    db.conn()
        .strings(
            &format!("{COACHED_IN_CLASS_SQL} ORDER BY c.student_sourced_id"),
            &args![district_id, teacher, class],
        )
        .await
}

/// A finished import of results, for the record and the API.
pub async fn record_import(
    tx: &mut Tx,
    district_id: i64,
    (id, source, label): (&str, &str, &str),
    (status, report): (&str, &serde_json::Value),
    (started_at, finished_at): (DateTime<Utc>, DateTime<Utc>),
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO score_imports (id, district_id, source, label, status, report, started_at, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &args![
            id,
            district_id,
            source,
            label,
            status,
            report.to_string(),
            started_at,
            finished_at
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_id_entry_names_its_student_and_a_shared_one_names_none() {
        let users = [
            ("s1", "{MAP:100},{Fed:9}"),
            ("s2", "{MAP:200}"),
            ("s3", "{MAP:300},{Fed:100}"),
            ("s4", " {MAP:300}"),
        ];
        let index = index_user_ids(
            "MAP",
            users.iter().map(|(s, i)| (s.to_string(), i.to_string())),
        );
        assert_eq!(index.get("100"), Some(&Some("s1".to_string())));
        assert_eq!(index.get("200"), Some(&Some("s2".to_string())));
        assert_eq!(index.get("300"), Some(&None));
        assert_eq!(index.get("9"), None);
    }
}
