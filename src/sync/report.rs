//! The record of a run, as the CLI prints it and the API returns it (defined with the domain
//! types, so that the store can keep it without knowing the engine).

pub use crate::domain::run::{CoachingCounts, RunReport, RunStatus};
