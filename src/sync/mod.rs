//! The sync engine: every roster change, whatever its source, is a run that stages records,
//! validates them, compares them with the store, passes the safeguards and is applied in one
//! transaction together with its outbox events.

pub mod engine;
pub mod input;
pub mod known_records;
pub mod live_ahead;
pub mod progress;
pub mod report;

pub use engine::{Engine, SyncError};
pub use report::{RunReport, RunStatus};
