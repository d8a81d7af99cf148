//! Plain types and pure rules. Nothing in here does I/O.

pub mod district;
pub mod records;
pub mod scope;
pub mod thresholds;
pub mod problem;
