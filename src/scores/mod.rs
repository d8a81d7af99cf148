//! Assessment results → learning plans: results from any source (a CDF file, a push) are stored
//! once per test event, matched to rostered students, and placed per goal area through the
//! learning-plan mappings; teachers who coach a student may override any placement.

pub mod cdf_import;
pub mod ingest;
pub mod keys;
pub mod overrides;
pub mod placement;
pub mod plan_view;

use std::sync::{Arc, OnceLock};

use crate::config::Settings;
use crate::domain::learning_plan::{LearningPlans, PlanError};

static PLANS: OnceLock<Arc<LearningPlans>> = OnceLock::new();

/// Loads the learning plans the settings name (or the built-in ones) for this process. Called
/// once at start-up, before anything places students; a later call changes nothing.
pub fn install_plans(settings: &Settings) -> Result<Arc<LearningPlans>, PlanError> {
    if let Some(plans) = PLANS.get() {
        return Ok(plans.clone());
    }
    let plans = match &settings.scores.learning_plans_dir {
        Some(dir) => LearningPlans::load_dir(dir)?,
        None => LearningPlans::shipped(),
    };
    Ok(PLANS.get_or_init(|| Arc::new(plans)).clone())
}

/// The learning plans of this process: those installed at start-up, else the built-in ones.
pub fn plans() -> Arc<LearningPlans> {
    PLANS
        .get_or_init(|| Arc::new(LearningPlans::shipped()))
        .clone()
}
