//! Students' proposed placements: the latest valid result of each learning-plan subject, placed
//! goal area by goal area, rewritten where they moved (with a `placement.generated` event).
//! Students are placed a page at a time: a few statements per page, and memory bounded by the
//! page, whatever the import's size.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::learning_plan::{Basis, LearningPlans, SubjectPlan};
use crate::sources::scores::{AssessmentResult, GoalResult, StudentRef};
use crate::store::scores::{self as store, PlacementRow, StoredResult};
use crate::store::{bulk, Arg, StoreError, Tx};

/// Students placed per page.
const PAGE: i64 = 500;

/// Places again every student whose results `run_id` stored or matched. Returns how many
/// students' placements moved.
pub async fn place_touched(
    tx: &mut Tx,
    district_id: i64,
    plans: &LearningPlans,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut moved = 0;
    let mut after = String::new();
    store::plan_for_each_execution(tx, true).await?;
    loop {
        let students = store::touched_students(tx, district_id, run_id, (&after, PAGE)).await?;
        let Some(last) = students.last() else {
            store::plan_for_each_execution(tx, false).await?;
            return Ok(moved);
        };
        after = last.clone();
        moved += place_page(tx, district_id, plans, (run_id, now), &students).await?;
    }
}

async fn place_page(
    tx: &mut Tx,
    district_id: i64,
    plans: &LearningPlans,
    (run_id, now): (&str, DateTime<Utc>),
    students: &[String],
) -> Result<u64, StoreError> {
    let mut results: HashMap<String, Vec<StoredResult>> = HashMap::new();
    for r in store::results_of_students(tx, district_id, students).await? {
        let student = r.student_sourced_id.clone().unwrap_or_default();
        results.entry(student).or_default().push(r);
    }
    let mut existing: HashMap<String, Vec<PlacementRow>> = HashMap::new();
    for (student, p) in store::placements_of_students(tx, district_id, students).await? {
        existing.entry(student).or_default().push(p);
    }
    let mut changed_students = Vec::new();
    let mut rows = Vec::new();
    let mut events = Vec::new();
    let mut moved_students = 0;
    for student in students {
        let mut before = existing.remove(student).unwrap_or_default();
        let mine = results.remove(student).unwrap_or_default();
        let (mut placed, moved) = place_student(plans, &mine, &before, now);
        let by_area = |p: &PlacementRow| (p.subject.clone(), p.goal_area.clone());
        before.sort_by_key(by_area);
        placed.sort_by_key(by_area);
        if placed == before {
            continue;
        }
        if !moved.is_empty() {
            moved_students += 1;
        }
        for (plan, result_key, areas) in moved {
            events.push(vec![
                Arg::I64(district_id),
                Arg::from(run_id),
                Arg::from("placement.generated"),
                Arg::from(student),
                Arg::from(
                    json!({
                        "student": student,
                        "subject": plan.key,
                        "plan_version": plan.version,
                        "result": result_key,
                        "goal_areas": areas,
                    })
                    .to_string(),
                ),
                Arg::Time(now),
            ]);
        }
        rows.extend(placed.into_iter().map(|p| (student.clone(), p)));
        changed_students.push(student.clone());
    }
    store::replace_placements(tx, district_id, &changed_students, &rows).await?;
    bulk::insert(
        tx,
        "outbox_events",
        &[
            "district_id",
            "run_id",
            "event_type",
            "subject_id",
            "payload",
            "created_at",
        ],
        &events,
    )
    .await?;
    Ok(moved_students)
}

/// A subject whose proposed units moved: its plan, the result that placed it, the goal areas.
type Moved<'a> = (&'a SubjectPlan, String, Vec<String>);

/// One student's placements from their results (newest first), keeping the rows of `before`
/// that did not change (their time included); and, per subject, the goal areas whose unit moved.
fn place_student<'a>(
    plans: &'a LearningPlans,
    results: &[StoredResult],
    before: &[PlacementRow],
    now: DateTime<Utc>,
) -> (Vec<PlacementRow>, Vec<Moved<'a>>) {
    let mut placed = Vec::new();
    let mut moved = Vec::new();
    for plan in plans.subjects() {
        let Some(latest) = latest_valid(results, plan, plans) else {
            continue;
        };
        let mut areas = Vec::new();
        for p in plan.place(&as_result(latest)) {
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
            let old = before
                .iter()
                .find(|b| b.subject == row.subject && b.goal_area == row.goal_area);
            if old.is_none_or(|b| b.unit != row.unit) {
                areas.push(row.goal_area.clone());
            }
            let same = old.filter(|b| {
                b.unit == row.unit
                    && b.result_key == row.result_key
                    && b.plan_version == row.plan_version
                    && b.basis == row.basis
                    && b.rit == row.rit
            });
            placed.push(same.cloned().unwrap_or(row));
        }
        if !areas.is_empty() {
            moved.push((plan, latest.result_key.clone(), areas));
        }
    }
    (placed, moved)
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
