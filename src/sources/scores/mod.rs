//! Assessment results (MAP Growth–style scores) as partners send them: the JSON document pushed
//! to `POST …/scores` ([`push`]) and MAP Growth's own data export, the CDF zip ([`cdf`]), read
//! into neutral values. Reading only: matching results to rostered students and turning them
//! into placements come later.

pub mod arp;
pub mod cdf;
pub mod partner;
pub mod push;

pub use push::{
    read, Adjective, AssessmentResult, GoalResult, ScorePush, ShapeProblem, StudentRef,
};
