//! A student's effective learning plan, as the API serves it: per subject and goal area, the
//! proposed placement (what the latest result places), the teacher's override if any, and the
//! one in effect (the override wins).

use serde::Serialize;

use crate::domain::learning_plan::LearningPlans;
use crate::store::scores::{OverrideRow, PlacementRow};

#[derive(Debug, Clone, Serialize)]
pub struct StudentPlan {
    pub student: String,
    pub subjects: Vec<SubjectView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectView {
    pub subject: String,
    pub title: String,
    pub plan_version: String,
    pub goal_areas: Vec<GoalAreaView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GoalAreaView {
    pub goal_area: String,
    pub name: String,
    pub proposed: Option<ProposedView>,
    #[serde(rename = "override")]
    pub overriding: Option<OverrideView>,
    /// The placement in effect: the override where there is one, else the proposed one.
    pub effective: Option<UnitView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitView {
    pub unit: String,
    pub title: String,
    /// `override` or `proposed`.
    pub source: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProposedView {
    pub unit: String,
    pub title: String,
    pub rit: f64,
    /// Which RIT placed it: the goal area's, or the overall one when the result had none.
    pub basis: String,
    pub result: String,
    pub plan_version: String,
    pub placed_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverrideView {
    pub unit: String,
    pub title: String,
    pub teacher: String,
    pub reason: Option<String>,
    pub previous_unit: Option<String>,
    pub set_at: chrono::DateTime<chrono::Utc>,
}

/// The plan of `student` from their stored placements and overrides. Subjects with neither
/// are left out; goal areas follow the mapping's order.
pub fn build(
    student: &str,
    plans: &LearningPlans,
    placements: &[PlacementRow],
    overrides: &[OverrideRow],
) -> StudentPlan {
    let mut subjects = Vec::new();
    for plan in plans.subjects() {
        let has_any = placements.iter().any(|p| p.subject == plan.key)
            || overrides.iter().any(|o| o.subject == plan.key);
        if !has_any {
            continue;
        }
        let goal_areas = plan
            .goal_areas
            .iter()
            .map(|area| {
                let title_of = |unit: &str| {
                    area.unit(unit)
                        .map(|u| u.title.clone())
                        .unwrap_or_else(|| unit.to_string())
                };
                let proposed = placements
                    .iter()
                    .find(|p| p.subject == plan.key && p.goal_area == area.key)
                    .map(|p| ProposedView {
                        unit: p.unit.clone(),
                        title: title_of(&p.unit),
                        rit: p.rit,
                        basis: p.basis.clone(),
                        result: p.result_key.clone(),
                        plan_version: p.plan_version.clone(),
                        placed_at: p.placed_at,
                    });
                let overriding = overrides
                    .iter()
                    .find(|o| o.subject == plan.key && o.goal_area == area.key)
                    .map(|o| OverrideView {
                        unit: o.unit.clone(),
                        title: title_of(&o.unit),
                        teacher: o.teacher_sourced_id.clone(),
                        reason: o.reason.clone(),
                        previous_unit: o.previous_unit.clone(),
                        set_at: o.set_at,
                    });
                let effective = match (&overriding, &proposed) {
                    (Some(o), _) => Some(UnitView {
                        unit: o.unit.clone(),
                        title: o.title.clone(),
                        source: "override",
                    }),
                    (None, Some(p)) => Some(UnitView {
                        unit: p.unit.clone(),
                        title: p.title.clone(),
                        source: "proposed",
                    }),
                    (None, None) => None,
                };
                GoalAreaView {
                    goal_area: area.key.clone(),
                    name: area.name.clone(),
                    proposed,
                    overriding,
                    effective,
                }
            })
            .collect();
        subjects.push(SubjectView {
            subject: plan.key.clone(),
            title: plan.title.clone(),
            plan_version: plan.version.clone(),
            goal_areas,
        });
    }
    StudentPlan {
        student: student.to_string(),
        subjects,
    }
}
