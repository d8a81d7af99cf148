//! Teachers' overrides: a teacher who coaches the student through a class sets the starting unit
//! of one goal area, or clears it. An override wins over every later result until it is
//! cleared; each one is kept in the history (who, when, from what, to what) and announced with
//! `placement.overridden`.

use chrono::Utc;
use serde_json::json;

use crate::domain::learning_plan::LearningPlans;
use crate::store::scores::{self as store, OverrideRow};
use crate::store::{outbox, Db, StoreError, Tx};

#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("no learning plan has the subject {0:?}")]
    UnknownSubject(String),
    #[error("the {subject} plan has no goal area {goal_area:?}")]
    UnknownGoalArea { subject: String, goal_area: String },
    #[error("the goal area {goal_area} has no unit {unit:?}")]
    UnknownUnit { goal_area: String, unit: String },
    #[error("no student {0:?} in this district")]
    UnknownStudent(String),
    #[error("teacher {teacher:?} does not coach student {student:?} through a class")]
    NotCoaching { teacher: String, student: String },
    #[error("there is no override of {subject}/{goal_area} to clear")]
    NothingToClear { subject: String, goal_area: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a teacher asks.
#[derive(Debug, Clone)]
pub struct OverrideRequest<'a> {
    pub student: &'a str,
    pub subject: &'a str,
    pub goal_area: &'a str,
    pub teacher: &'a str,
}

/// Sets `unit` as the placement of the request's goal area.
pub async fn set(
    db: &Db,
    district_id: i64,
    plans: &LearningPlans,
    request: &OverrideRequest<'_>,
    unit: &str,
    reason: Option<&str>,
) -> Result<OverrideRow, OverrideError> {
    let plan = plans
        .subject(request.subject)
        .ok_or_else(|| OverrideError::UnknownSubject(request.subject.to_string()))?;
    let area = plan
        .goal_area(request.goal_area)
        .ok_or_else(|| OverrideError::UnknownGoalArea {
            subject: plan.key.clone(),
            goal_area: request.goal_area.to_string(),
        })?;
    if area.unit(unit).is_none() {
        return Err(OverrideError::UnknownUnit {
            goal_area: area.key.clone(),
            unit: unit.to_string(),
        });
    }
    let mut tx = begin_checked(db, district_id, request).await?;
    let now = Utc::now();
    let before = in_effect(&mut tx, district_id, request).await?;
    let row = OverrideRow {
        subject: plan.key.clone(),
        goal_area: area.key.clone(),
        unit: unit.to_string(),
        teacher_sourced_id: request.teacher.to_string(),
        reason: reason.map(str::to_string),
        previous_unit: before.clone(),
        set_at: now,
    };
    store::set_override(&mut tx, district_id, request.student, &row).await?;
    announce(&mut tx, district_id, request, ("set", Some(unit)), before).await?;
    tx.commit().await?;
    Ok(row)
}

/// Clears the override of the request's goal area: the proposed placement applies again.
pub async fn clear(
    db: &Db,
    district_id: i64,
    plans: &LearningPlans,
    request: &OverrideRequest<'_>,
) -> Result<OverrideRow, OverrideError> {
    let plan = plans
        .subject(request.subject)
        .ok_or_else(|| OverrideError::UnknownSubject(request.subject.to_string()))?;
    if plan.goal_area(request.goal_area).is_none() {
        return Err(OverrideError::UnknownGoalArea {
            subject: plan.key.clone(),
            goal_area: request.goal_area.to_string(),
        });
    }
    let mut tx = begin_checked(db, district_id, request).await?;
    let now = Utc::now();
    let cleared = store::clear_override(
        &mut tx,
        district_id,
        request.student,
        (request.subject, request.goal_area),
        request.teacher,
        now,
    )
    .await?
    .ok_or_else(|| OverrideError::NothingToClear {
        subject: request.subject.to_string(),
        goal_area: request.goal_area.to_string(),
    })?;
    announce(
        &mut tx,
        district_id,
        request,
        ("cleared", None),
        Some(cleared.unit.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(cleared)
}

/// Opens the write transaction and checks, inside it, that the student exists and the teacher
/// coaches them through a class.
async fn begin_checked(
    db: &Db,
    district_id: i64,
    request: &OverrideRequest<'_>,
) -> Result<Tx, OverrideError> {
    if !store::user_exists(db, district_id, request.student).await? {
        return Err(OverrideError::UnknownStudent(request.student.to_string()));
    }
    let mut tx = db.begin().await?;
    // A write first: SQLite then takes its write lock now, not at the first insert, where a
    // transaction that read first cannot upgrade if another write came between.
    store::take_write_lock(&mut tx).await?;
    if !store::coaches_through_class(&mut tx, district_id, request.teacher, request.student).await?
    {
        tx.rollback().await?;
        return Err(OverrideError::NotCoaching {
            teacher: request.teacher.to_string(),
            student: request.student.to_string(),
        });
    }
    Ok(tx)
}

/// The unit in effect for the request's goal area: the override, else the proposed placement.
async fn in_effect(
    tx: &mut Tx,
    district_id: i64,
    request: &OverrideRequest<'_>,
) -> Result<Option<String>, StoreError> {
    let overrides = store::overrides_of_in(tx, district_id, request.student).await?;
    if let Some(o) = overrides
        .iter()
        .find(|o| o.subject == request.subject && o.goal_area == request.goal_area)
    {
        return Ok(Some(o.unit.clone()));
    }
    let placements = store::placements_of_in(tx, district_id, request.student).await?;
    Ok(placements
        .into_iter()
        .find(|p| p.subject == request.subject && p.goal_area == request.goal_area)
        .map(|p| p.unit))
}

async fn announce(
    tx: &mut Tx,
    district_id: i64,
    request: &OverrideRequest<'_>,
    (action, unit): (&str, Option<&str>),
    previous_unit: Option<String>,
) -> Result<(), StoreError> {
    let change_id = format!("override-{}", uuid::Uuid::new_v4());
    outbox::insert_event(
        tx,
        district_id,
        (&change_id, "placement.overridden", request.student),
        &json!({
            "student": request.student,
            "subject": request.subject,
            "goal_area": request.goal_area,
            "teacher": request.teacher,
            "action": action,
            "unit": unit,
            "previous_unit": previous_unit,
        }),
        Utc::now(),
    )
    .await
}
