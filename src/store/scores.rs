//! Assessment results, the placements made from them, and teachers' overrides. Every statement
//! names its district; writes run in the caller's transaction.

use chrono::{DateTime, NaiveDate, Utc};

use super::{Backend, Db, StoreError, Tx};
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

/// What is stored under a result's key: its hash and the student it matched.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredKey {
    pub row_hash: String,
    pub student_sourced_id: Option<String>,
}

pub async fn stored_key(
    tx: &mut Tx,
    district_id: i64,
    result_key: &str,
) -> Result<Option<StoredKey>, StoreError> {
    tx.fetch_optional(
        "SELECT row_hash, student_sourced_id FROM assessment_results WHERE district_id = $1 AND result_key = $2",
        &args![district_id, result_key],
    )
    .await
}

/// Inserts a result, or replaces the one stored under its key, marking it with `import_id` (so
/// that the import finds the students whose plans may move).
pub async fn put_result(
    tx: &mut Tx,
    district_id: i64,
    import_id: &str,
    r: &StoredResult,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO assessment_results (district_id, result_key, ref_sourced_id, ref_identifier, ref_state_id, \
           subject, course, term, test_date, test_start_time, test_id, test_name, test_type, growth_event, \
           duration_minutes, rit, standard_error, percentile, rapid_guessing_percentage, norms_reference, \
           goals, row_hash, source, import_id, received_at, updated_at, student_sourced_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
           $21, $22, $23, $24, $25, $25, $26) \
         ON CONFLICT (district_id, result_key) DO UPDATE SET student_sourced_id = $26, ref_sourced_id = $3, \
           ref_identifier = $4, ref_state_id = $5, subject = $6, course = $7, term = $8, test_date = $9, \
           test_start_time = $10, test_id = $11, test_name = $12, test_type = $13, growth_event = $14, \
           duration_minutes = $15, rit = $16, standard_error = $17, percentile = $18, \
           rapid_guessing_percentage = $19, norms_reference = $20, goals = $21, row_hash = $22, source = $23, \
           import_id = $24, updated_at = $25",
        &args![
            district_id,
            r.result_key.clone(),
            r.ref_sourced_id.clone(),
            r.ref_identifier.clone(),
            r.ref_state_id.clone(),
            r.subject.clone(),
            r.course.clone(),
            r.term.clone(),
            r.test_date,
            r.test_start_time.clone(),
            r.test_id.clone(),
            r.test_name.clone(),
            r.test_type.clone(),
            r.growth_event,
            r.duration_minutes,
            r.rit,
            r.standard_error,
            r.percentile,
            r.rapid_guessing_percentage,
            r.norms_reference.clone(),
            r.goals.clone(),
            r.row_hash.clone(),
            r.source.clone(),
            import_id,
            now,
            r.student_sourced_id.clone(),
        ],
    )
    .await?;
    Ok(())
}

/// The role condition on `u`: a student (OneRoster 1.1 `role`; 1.2 users carry roles elsewhere
/// and have none here, so they are not excluded).
const STUDENT_ROLE_SQL: &str = "(u.role IS NULL OR lower(u.role) = 'student')";

/// The one student user `value` names by the district's key (`Ok(None)` when none or several do).
/// Not for [`ScoreStudentKey::UserId`], which [`student_user_ids`] serves.
pub async fn find_student(
    tx: &mut Tx,
    district_id: i64,
    key: &ScoreStudentKey,
    value: &str,
) -> Result<Option<String>, StoreError> {
    let column = match key {
        ScoreStudentKey::SourcedId => "sourced_id",
        _ => "identifier",
    };
    let found: Vec<String> = tx
        .strings(
            &format!(
                "SELECT u.sourced_id FROM users u WHERE u.district_id = $1 AND u.{column} = $2 \
                   AND {STUDENT_ROLE_SQL} LIMIT 2"
            ),
            &args![district_id, value],
        )
        .await?;
    Ok(match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// Every student user's sourcedId with its `userIds` text, for matching on a userIds entry.
pub async fn student_user_ids(
    tx: &mut Tx,
    district_id: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = tx
        .text_rows(
            &format!(
                "SELECT u.sourced_id, u.user_ids FROM users u WHERE u.district_id = $1 \
                   AND u.user_ids IS NOT NULL AND {STUDENT_ROLE_SQL}"
            ),
            &args![district_id],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |r| match (r.first().cloned().flatten(), r.get(1).cloned().flatten()) {
                (Some(id), Some(ids)) => Some((id, ids)),
                _ => None,
            },
        )
        .collect())
}

/// The SQL expression (over `assessment_results`, district `$1`) giving the one student user a
/// result names, or NULL when none or several do. A named sourcedId wins; otherwise the
/// district's key is compared with the result's student id.
fn student_match_sql(backend: Backend, key: &ScoreStudentKey) -> String {
    let by_key = match key {
        ScoreStudentKey::Identifier => {
            "u.identifier = assessment_results.ref_identifier".to_string()
        }
        ScoreStudentKey::SourcedId => {
            "u.sourced_id = assessment_results.ref_identifier".to_string()
        }
        // userIds are stored comma-joined as `{type:id}`; the type is checked to be plain
        // (see ScoreStudentKey::parse), the id is a bound column, compared with instr, not LIKE.
        ScoreStudentKey::UserId(t) => {
            let find = match backend {
                Backend::Postgres => "strpos",
                Backend::Sqlite => "instr",
            };
            format!(
                "{find}(',' || u.user_ids || ',', ',{{{t}:' || assessment_results.ref_identifier || '}},') > 0"
            )
        }
    };
    let student = STUDENT_ROLE_SQL;
    format!(
        "COALESCE(\
           (SELECT u.sourced_id FROM users u WHERE u.district_id = $1 \
              AND u.sourced_id = assessment_results.ref_sourced_id AND {student}), \
           (SELECT MIN(u.sourced_id) FROM users u WHERE u.district_id = $1 \
              AND assessment_results.ref_sourced_id IS NULL AND {by_key} AND {student} \
            HAVING COUNT(*) = 1))"
    )
}

/// Matches the district's unmatched results to rostered students, marking each match with
/// `run_id` (the import or sync that made it). Returns how many matched.
pub async fn match_pending(
    tx: &mut Tx,
    district_id: i64,
    key: &ScoreStudentKey,
    run_id: &str,
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
    let matched = student_match_sql(tx.backend(), key);
    tx.execute(
        &format!(
            "UPDATE assessment_results SET student_sourced_id = {matched}, import_id = $2 \
             WHERE district_id = $1 AND student_sourced_id IS NULL AND {matched} IS NOT NULL"
        ),
        &args![district_id, run_id],
    )
    .await
}

/// How many of the district's results no student matches.
pub async fn unmatched_count(tx: &mut Tx, district_id: i64) -> Result<i64, StoreError> {
    tx.scalar(
        "SELECT COUNT(*) FROM assessment_results WHERE district_id = $1 AND student_sourced_id IS NULL",
        &args![district_id],
    )
    .await
}

/// The students whose results `run_id` stored or matched: their plans may move.
pub async fn touched_students(
    tx: &mut Tx,
    district_id: i64,
    run_id: &str,
) -> Result<Vec<String>, StoreError> {
    tx.strings(
        "SELECT DISTINCT student_sourced_id FROM assessment_results \
         WHERE district_id = $1 AND import_id = $2 AND student_sourced_id IS NOT NULL \
         ORDER BY student_sourced_id",
        &args![district_id, run_id],
    )
    .await
}

/// A student's results, newest test first.
pub async fn results_of_in(
    tx: &mut Tx,
    district_id: i64,
    student: &str,
) -> Result<Vec<StoredResult>, StoreError> {
    tx.fetch_all(&results_of_sql(), &args![district_id, student])
        .await
}

fn results_of_sql() -> String {
    format!(
        "SELECT {RESULT_COLUMNS} FROM assessment_results WHERE district_id = $1 AND student_sourced_id = $2 \
         ORDER BY test_date DESC, test_start_time DESC, received_at DESC, result_key"
    )
}

pub async fn results_of(
    db: &Db,
    district_id: i64,
    student: &str,
) -> Result<Vec<StoredResult>, StoreError> {
    db.conn()
        .fetch_all(&results_of_sql(), &args![district_id, student])
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

/// Writes a student's proposed placement of one goal area.
pub async fn put_placement(
    tx: &mut Tx,
    district_id: i64,
    student: &str,
    p: &PlacementRow,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO placements (district_id, student_sourced_id, subject, goal_area, unit, rit, basis, \
           result_key, plan_version, placed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (district_id, student_sourced_id, subject, goal_area) DO UPDATE SET unit = $5, rit = $6, \
           basis = $7, result_key = $8, plan_version = $9, placed_at = $10",
        &args![
            district_id,
            student,
            p.subject.clone(),
            p.goal_area.clone(),
            p.unit.clone(),
            p.rit,
            p.basis.clone(),
            p.result_key.clone(),
            p.plan_version.clone(),
            p.placed_at,
        ],
    )
    .await?;
    Ok(())
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
            "SELECT student_sourced_id FROM coaching_sources WHERE district_id = $1 AND teacher_sourced_id = $2 \
               AND source_type = 'class' AND source_id = $3 ORDER BY student_sourced_id",
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
