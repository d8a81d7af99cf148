//! Learning plans: a student's assessment results and effective plan, a class's plan overview
//! for one of its teachers, and teachers' overrides.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::domain::scope::Scope;
use crate::scores::overrides::{self, OverrideRequest};
use crate::scores::plan_view;
use crate::store::scores as store;

/// Longest text accepted in an override (ids, unit keys, the reason).
const MAX_TEXT: usize = 500;

async fn known_student(state: &AppState, district_id: i64, student: &str) -> Result<(), ApiError> {
    if store::user_exists(&state.db, district_id, student).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no user {student:?} in this district"
        )))
    }
}

/// `GET …/students/{sourcedId}/plan`: per subject and goal area, the proposed placement, the
/// override and the one in effect.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn student_plan(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, student) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    known_student(&state, district.id, &student).await?;
    let plans = crate::scores::plans();
    let placements = store::placements_of(&state.db, district.id, &student).await?;
    let overrides = store::overrides_of(&state.db, district.id, &student).await?;
    let history = store::override_history(&state.db, district.id, &student).await?;
    let plan = plan_view::build(&student, &plans, &placements, &overrides);
    let mut body = serde_json::to_value(plan).expect("plans serialize");
    body["override_history"] = serde_json::to_value(history).expect("history serializes");
    Ok(HttpResponse::Ok().json(body))
}

/// `GET …/students/{sourcedId}/results`: every result matched to the student, newest first.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn student_results(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, student) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    known_student(&state, district.id, &student).await?;
    let results = store::results_of(&state.db, district.id, &student).await?;
    let items: Vec<_> = results
        .iter()
        .map(|r| {
            json!({
                "result": r.result_key,
                "subject": r.subject,
                "course": r.course,
                "term": r.term,
                "test_date": r.test_date,
                "test_start_time": r.test_start_time,
                "test_id": r.test_id,
                "test_name": r.test_name,
                "test_type": r.test_type,
                "growth_event": r.growth_event,
                "duration_minutes": r.duration_minutes,
                "rit": r.rit,
                "standard_error": r.standard_error,
                "percentile": r.percentile,
                "rapid_guessing_percentage": r.rapid_guessing_percentage,
                "norms_reference": r.norms_reference,
                "goals": serde_json::from_str::<serde_json::Value>(&r.goals).unwrap_or_default(),
                "source": r.source,
                "received_at": r.received_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "student": student, "results": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherQuery {
    teacher: String,
}

impl TeacherQuery {
    /// The teacher's sourcedId: present and not blank.
    fn teacher(&self) -> Result<&str, ApiError> {
        if self.teacher.trim().is_empty() || self.teacher.chars().count() > MAX_TEXT {
            return Err(ApiError::bad_request(format!(
                "teacher must be a sourcedId of 1 to {MAX_TEXT} characters"
            )));
        }
        Ok(&self.teacher)
    }
}

/// `GET …/classes/{sourcedId}/plans?teacher=T`: the effective plans of the students `T`
/// coaches through the class (and only those).
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn class_plans(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<TeacherQuery>,
) -> Result<HttpResponse, ApiError> {
    let (district, class) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    let teacher = query.teacher()?;
    let plans = crate::scores::plans();
    let students = store::coached_in_class(&state.db, district.id, teacher, &class).await?;
    let (placements, overrides) =
        store::class_plans(&state.db, district.id, teacher, &class).await?;
    let items: Vec<_> = students
        .iter()
        .map(|student| {
            let mine = |s: &String| s == student;
            let placements: Vec<_> = placements
                .iter()
                .filter(|(s, _)| mine(s))
                .map(|(_, p)| p.clone())
                .collect();
            let overrides: Vec<_> = overrides
                .iter()
                .filter(|(s, _)| mine(s))
                .map(|(_, o)| o.clone())
                .collect();
            plan_view::build(student, &plans, &placements, &overrides)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "class": class,
        "teacher": teacher,
        "students": items,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    teacher: String,
    unit: String,
    #[serde(default)]
    reason: Option<String>,
}

fn check_text(name: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > MAX_TEXT {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_override",
            format!("/{name} must be 1 to {MAX_TEXT} characters"),
        ));
    }
    Ok(())
}

/// `PUT …/students/{sourcedId}/plan/{subject}/{goalArea}`: a teacher's placement of one goal area.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn set_override(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String, String)>,
    body: web::Json<OverrideBody>,
) -> Result<HttpResponse, ApiError> {
    let (district, student, subject, goal_area) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::PlansWrite)
        .await?;
    let body = body.into_inner();
    check_text("teacher", &body.teacher)?;
    check_text("unit", &body.unit)?;
    if let Some(reason) = &body.reason {
        check_text("reason", reason)?;
    }
    let plans = crate::scores::plans();
    let request = OverrideRequest {
        student: &student,
        subject: &subject,
        goal_area: &goal_area,
        teacher: &body.teacher,
    };
    overrides::set(
        &state.db,
        district.id,
        &plans,
        &request,
        &body.unit,
        body.reason.as_deref(),
    )
    .await?;
    plan_response(&state, district.id, &student).await
}

/// `DELETE …/students/{sourcedId}/plan/{subject}/{goalArea}?teacher=T`: clears the override.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn clear_override(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String, String)>,
    query: web::Query<TeacherQuery>,
) -> Result<HttpResponse, ApiError> {
    let (district, student, subject, goal_area) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::PlansWrite)
        .await?;
    let plans = crate::scores::plans();
    let request = OverrideRequest {
        student: &student,
        subject: &subject,
        goal_area: &goal_area,
        teacher: &query.teacher,
    };
    overrides::clear(&state.db, district.id, &plans, &request).await?;
    plan_response(&state, district.id, &student).await
}

async fn plan_response(
    state: &AppState,
    district_id: i64,
    student: &str,
) -> Result<HttpResponse, ApiError> {
    let plans = crate::scores::plans();
    let placements = store::placements_of(&state.db, district_id, student).await?;
    let overrides = store::overrides_of(&state.db, district_id, student).await?;
    Ok(HttpResponse::Ok().json(plan_view::build(student, &plans, &placements, &overrides)))
}
