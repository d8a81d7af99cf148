//! Plain types and pure rules. Nothing in here does I/O.

pub mod account;
pub mod connection;
pub mod connection_input;
pub mod district;
pub mod learning_plan;
pub mod problem;
pub mod records;
pub mod run;
pub mod schedule;
pub mod scope;
pub mod thresholds;
