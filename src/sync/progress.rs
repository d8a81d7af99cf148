//! Progress of a run as it happens, reported by the source and the engine to whoever shows it.
//!
//! Reporting is fire-and-forget: a listener must return quickly and never fails the run, so the
//! reader and the engine call it inline without waiting on anything.

use std::fmt;
use std::sync::Arc;

use crate::domain::records::RecordKind;

/// One thing that happened during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Rows read so far from the file of one kind (reported as reading goes, and once at its end).
    Reading { kind: RecordKind, rows: u64 },
    /// Reading is over and the run entered a later phase.
    Phase(Phase),
}

/// The phases of a run after its input has been read, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Duplicates and references between the staged records.
    Validating,
    /// What the run would create, update and delete, and whether a safeguard holds it.
    Comparing,
    /// Writing the changes (rolled back again for a dry run).
    Applying,
    /// Deriving who coaches whom from the applied enrollments.
    Coaching,
}

/// Receives [`Progress`] events; shared between the reader thread and the engine.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Tells `listener`, if there is one, about `event`.
pub fn report(listener: Option<&ProgressFn>, event: Progress) {
    if let Some(listener) = listener {
        listener(event);
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Validating => "validating references",
            Phase::Comparing => "comparing with the stored roster",
            Phase::Applying => "applying changes",
            Phase::Coaching => "deriving coaching",
        })
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Reading { kind, rows } => {
                write!(f, "reading {}: {rows} rows", kind.oneroster_name())
            }
            Progress::Phase(phase) => phase.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn events_reach_the_listener_in_order_and_read_as_text() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let listener: ProgressFn = Arc::new(move |p| sink.lock().unwrap().push(p.to_string()));
        report(
            Some(&listener),
            Progress::Reading {
                kind: RecordKind::Users,
                rows: 1200,
            },
        );
        report(Some(&listener), Progress::Phase(Phase::Comparing));
        report(None, Progress::Phase(Phase::Applying));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "reading users: 1200 rows",
                "comparing with the stored roster"
            ]
        );
    }
}
