//! A student's proposed placements: the latest valid result of each learning-plan subject,
//! placed goal area by goal area, written where they moved (with a `placement.generated` event).

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::learning_plan::{Basis, LearningPlans, SubjectPlan};
use crate::sources::scores::{AssessmentResult, GoalResult, StudentRef};
use crate::store::scores::{self as store, PlacementRow, StoredResult};
use crate::store::{outbox, StoreError, Tx};

/// Places `student` again from their stored results. Returns how many subjects' placements
/// moved.
pub async fn replace(
    tx: &mut Tx,
    district_id: i64,
    student: &str,
    plans: &LearningPlans,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let results = store::results_of_in(tx, district_id, student).await?;
    let existing = store::placements_of_in(tx, district_id, student).await?;
    let mut moved = 0;
    for plan in plans.subjects() {
        let Some(latest) = latest_valid(&results, plan, plans) else {
            continue;
        };
        let placed = plan.place(&as_result(latest));
        let mut changed_areas = Vec::new();
        for p in placed {
            let before = existing
                .iter()
                .find(|e| e.subject == plan.key && e.goal_area == p.goal_area);
            let row = PlacementRow {
                subject: plan.key.clone(),
                goal_area: p.goal_area.clone(),
                unit: p.unit.clone(),
                rit: p.rit,
                basis: basis_name(p.basis).to_string(),
                result_key: latest.result_key.clone(),
                plan_version: plan.version.clone(),
                placed_at: now,
            };
            let same = before.is_some_and(|b| {
                b.unit == row.unit
                    && b.result_key == row.result_key
                    && b.plan_version == row.plan_version
                    && b.basis == row.basis
            });
            if same {
                continue;
            }
            if before.is_none_or(|b| b.unit != row.unit) {
                changed_areas.push(row.goal_area.clone());
            }
            store::put_placement(tx, district_id, student, &row).await?;
        }
        if !changed_areas.is_empty() {
            moved += 1;
            outbox::insert_event(
                tx,
                district_id,
                (run_id, "placement.generated", student),
                &json!({
                    "student": student,
                    "subject": plan.key,
                    "plan_version": plan.version,
                    "result": latest.result_key,
                    "goal_areas": changed_areas,
                }),
                now,
            )
            .await?;
        }
    }
    Ok(moved)
}

pub fn basis_name(basis: Basis) -> &'static str {
    match basis {
        Basis::GoalArea => "goal_area",
        Basis::Overall => "overall",
    }
}

/// The newest result of `plan`'s subject that counts for placement (`results` come newest
/// first): one its source did not mark as outside growth measurement.
pub fn latest_valid<'a>(
    results: &'a [StoredResult],
    plan: &SubjectPlan,
    plans: &LearningPlans,
) -> Option<&'a StoredResult> {
    results.iter().find(|r| {
        r.growth_event != Some(false)
            && plans
                .for_subject(&r.subject)
                .is_some_and(|p| p.key == plan.key)
    })
}

/// A stored result as the placement rules read it: the overall RIT and the goal areas.
pub fn as_result(r: &StoredResult) -> AssessmentResult {
    let goals = serde_json::from_str::<serde_json::Value>(&r.goals)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|g| {
            Some(GoalResult {
                name: g.get("name")?.as_str()?.to_string(),
                rit: g.get("rit")?.as_f64()?,
                standard_error: g.get("standard_error").and_then(|v| v.as_f64()),
                range: None,
                adjective: None,
            })
        })
        .collect();
    AssessmentResult {
        student: StudentRef::default(),
        subject: r.subject.clone(),
        course: r.course.clone(),
        term: r.term.clone(),
        test_date: r.test_date,
        test_start_time: None,
        test_id: r.test_id.clone(),
        test_name: r.test_name.clone(),
        test_type: r.test_type.clone(),
        growth_event: r.growth_event,
        duration_minutes: r.duration_minutes,
        rit: r.rit,
        standard_error: r.standard_error,
        percentile: r.percentile,
        rapid_guessing_percentage: r.rapid_guessing_percentage,
        norms_reference: r.norms_reference.clone(),
        goals,
    }
}
