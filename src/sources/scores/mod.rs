//! Assessment results (MAP Growth–style scores) as partners send them: the JSON document pushed
//! to `POST …/scores`, read into neutral values. Reading only: matching results to rostered
//! students and turning them into placements come later.

pub mod push;

pub use push::{
    read, Adjective, AssessmentResult, GoalResult, ScorePush, ShapeProblem, StudentRef,
};
