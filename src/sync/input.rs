//! What a source hands the engine: a plan (which kinds, bulk or delta) and a feed of records.

use crate::domain::problem::ProblemLog;
use crate::domain::records::{RecordKind, SourceRecord};
pub use crate::domain::run::{CursorMove, Plan, PlannedKind};

/// Records arrive kind by kind, in dependency order.
#[derive(Debug)]
pub enum Feed {
    Records(RecordKind, Vec<SourceRecord>),
    /// The digest of this kind's whole input, read to its end (sent after its records, by a
    /// source that has one): a bulk kind applied with it can be carried over next time.
    Digest(RecordKind, String),
    /// No more records of this kind.
    Done(RecordKind),
}

/// What a source reports once its feed is over: what was wrong with its input, and where its
/// connection moves to if the run is applied.
#[derive(Debug, Default)]
pub struct SourceEnd {
    pub problems: ProblemLog,
    pub cursor: Option<CursorMove>,
}

impl From<ProblemLog> for SourceEnd {
    fn from(problems: ProblemLog) -> Self {
        SourceEnd {
            problems,
            cursor: None,
        }
    }
}
