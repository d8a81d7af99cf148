//! What a source hands the engine: a plan (which kinds, bulk or delta) and a feed of records.

use crate::domain::records::{RecordKind, SourceRecord};
pub use crate::domain::run::{Plan, PlannedKind};

/// Records arrive kind by kind, in dependency order.
#[derive(Debug)]
pub enum Feed {
    Records(RecordKind, Vec<SourceRecord>),
    /// No more records of this kind.
    Done(RecordKind),
}
