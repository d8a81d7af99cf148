//! What a source hands the engine: a plan (which kinds, bulk or delta) and a feed of records.

use crate::domain::problem::ProblemLog;
use crate::domain::records::{RecordKind, SourceRecord};
pub use crate::domain::run::{CursorMove, Plan, PlannedKind};

/// Records arrive kind by kind, in dependency order.
#[derive(Debug)]
pub enum Feed {
    /// Sent first by a source that reads on a thread of its own: where the engine sends back the
    /// records it is done with, to be freed on the thread that allocated them. glibc frees a
    /// block under the lock of the arena it came from, the lock the reader takes for its next
    /// record, and the two threads took turns (a 1 % delta at 100,000 students spent 2.5 s
    /// reading its two changed files, against 1.5 s to parse the whole bundle).
    ReturnTo(Spent),
    Records(RecordKind, Vec<SourceRecord>),
    /// The digest of this kind's whole input, read to its end (sent after its records, by a
    /// source that has one): a bulk kind applied with it can be carried over next time.
    Digest(RecordKind, String),
    /// No more records of this kind.
    Done(RecordKind),
}

/// Where spent records go back to (see [`Feed::ReturnTo`]).
pub type Spent = std::sync::mpsc::Sender<Vec<SourceRecord>>;

/// The engine's end of [`Feed::ReturnTo`]: records it is done with go back to their source's
/// thread when the source asked for them, and are freed where they are otherwise (or once the
/// source has finished reading).
#[derive(Debug, Default)]
pub struct SpentRecords {
    to: Option<Spent>,
}

impl SpentRecords {
    pub fn return_to(&mut self, to: Spent) {
        self.to = Some(to);
    }

    pub fn give_back(&self, records: Vec<SourceRecord>) {
        if let (Some(to), false) = (&self.to, records.is_empty()) {
            // A source that stopped listening has finished reading: freed here, then.
            let _ = to.send(records);
        }
    }
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
