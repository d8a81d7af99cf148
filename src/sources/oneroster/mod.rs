//! OneRoster CSV bundles (1.1 and 1.2): open, check the manifest, and stream records in
//! dependency order to the sync engine. Pulls over OneRoster REST live in [`rest`].

pub mod ahead;
pub mod bundle;
pub mod columns;
pub mod digest;
pub mod fields;
pub mod push;
pub mod reader;
pub mod records;
pub mod rest;
pub mod values;

use std::collections::HashMap;

use tokio::sync::mpsc;

use crate::config::ImportSettings;
use crate::domain::problem::{Problem, ProblemLog};
use crate::domain::records::RecordKind;
use crate::domain::run::Origin;
use crate::sync::input::{Feed, Plan, PlannedKind};
use ahead::DigestsAhead;
use bundle::Bundle;
use digest::{HashingReader, Salt};
use reader::FileReader;

/// The collections of OneRoster JSON (REST pulls, pushes), in dependency order. 1.2 roles come
/// inside users; user profiles, demographics and resources are not rostered.
pub const COLLECTIONS: [RecordKind; 6] = [
    RecordKind::Orgs,
    RecordKind::AcademicSessions,
    RecordKind::Courses,
    RecordKind::Classes,
    RecordKind::Users,
    RecordKind::Enrollments,
];

/// Records travel to the engine in chunks of this many.
const CHUNK: usize = 5000;

/// A log with the configured caps. A run's report is built from the source's log (the engine's
/// own problems are merged into it), so these caps bound what a run stores and serves.
pub fn problem_log(limits: &ImportSettings) -> ProblemLog {
    ProblemLog::new(limits.max_reported_errors).with_warning_cap(limits.max_reported_warnings)
}

/// Progress is reported after this many rows of a file (and at its start and end): often enough
/// for a display that moves, rarely enough to cost nothing next to parsing the rows.
const PROGRESS_EVERY: u64 = 500;

/// The run plan a bundle declares: its kinds, in dependency order, with their modes.
pub fn plan(bundle: &Bundle) -> Plan {
    Plan {
        kinds: RecordKind::ALL
            .into_iter()
            .filter_map(|kind| {
                bundle.manifest.files.get(&kind).map(|&mode| PlannedKind {
                    kind,
                    mode,
                    label: bundle.file_name(kind),
                    origin: Origin::File,
                    digest: None,
                    carried: false,
                    unstaged_unchanged: None,
                })
            })
            .collect(),
    }
}

fn salt(bundle: &Bundle, planned: &PlannedKind) -> Salt {
    Salt {
        version: bundle.manifest.version,
        kind: planned.kind,
        mode: planned.mode,
    }
}

/// Carries over the kinds whose file is byte for byte the one the district's live rows were
/// applied from (see [`Plan::carry_unchanged`]), by the digests worked out ahead (blocking: it
/// waits for those it needs). A file that cannot be read is not carried; reading it reports why.
pub fn carry_unchanged(
    plan: &mut Plan,
    applied: &HashMap<RecordKind, String>,
    ahead: &mut DigestsAhead,
) -> Vec<RecordKind> {
    plan.carry_unchanged(applied, |planned| ahead.get(planned.kind))
}

/// Reads every file of `plan` that is not carried over and sends its records, then its digest
/// when it was read to the end (blocking: run it on a blocking thread). Returns what was wrong
/// with the input. Stops early when the engine hangs up.
pub fn produce(
    bundle: &Bundle,
    plan: &Plan,
    limits: &ImportSettings,
    feed: mpsc::Sender<Feed>,
    progress: Option<&(dyn Fn(RecordKind, u64) + Send + Sync)>,
) -> ProblemLog {
    let mut log = problem_log(limits);
    // The records the engine is done with come back to be freed on this thread.
    let (spent_to, spent) = std::sync::mpsc::channel();
    if feed.blocking_send(Feed::ReturnTo(spent_to)).is_err() {
        return log;
    }
    let free_spent = || spent.try_iter().for_each(drop);
    for planned in plan.kinds.iter().filter(|p| !p.carried) {
        let reader = FileReader {
            kind: planned.kind,
            version: bundle.manifest.version,
            file: &planned.label,
            limits,
        };
        let errors_before = log.error_count();
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut hung_up = false;
        let mut read = 0u64;
        let report = |rows| {
            if let Some(report) = progress {
                report(planned.kind, rows);
            }
        };
        report(0);
        let mut digest = None;
        let result = bundle.with_file(&planned.label, limits.max_file_bytes, |r| {
            let mut hashing = HashingReader::new(r, salt(bundle, planned));
            let rows = reader.read(&mut hashing, &mut log, |record| {
                chunk.push(record);
                read += 1;
                if read % PROGRESS_EVERY == 0 {
                    report(read);
                }
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    hung_up = feed
                        .blocking_send(Feed::Records(planned.kind, full))
                        .is_err();
                    free_spent();
                }
                !hung_up
            });
            digest = hashing.digest();
            Ok(rows)
        });
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                log.error(Problem::file(&planned.label, e.to_string()));
                0
            }
        };
        report(read);
        if rows == 0
            && planned.mode == crate::domain::records::Mode::Bulk
            && log.error_count() == errors_before
        {
            log.error(Problem::file(
                &planned.label,
                "a bulk file with no rows: it would remove every record of this type, so it is refused",
            ));
        }
        if hung_up {
            break;
        }
        if !chunk.is_empty()
            && feed
                .blocking_send(Feed::Records(planned.kind, chunk))
                .is_err()
        {
            break;
        }
        if let Some(digest) = digest {
            if feed
                .blocking_send(Feed::Digest(planned.kind, digest))
                .is_err()
            {
                break;
            }
        }
        if feed.blocking_send(Feed::Done(planned.kind)).is_err() {
            break;
        }
        if log.full() {
            break;
        }
    }
    log
}
