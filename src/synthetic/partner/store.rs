//! The served results, kept in page order with each one's JSON rendered once (so a page of a
//! large district is a copy of byte slices), and the handle tests use to change them between
//! pulls.

use std::sync::{Arc, RwLock};

use actix_web::web::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::cursor::Position;

/// One served result: its position and its `ChangedResult` JSON.
struct Entry {
    position: Position,
    json: Bytes,
}

struct Served {
    /// Sorted by position.
    entries: Vec<Entry>,
    /// The next result's insertion number; never reused, so old page tokens stay meaningful.
    next_seq: u64,
}

/// Which results a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Selection {
    /// Only results modified at or after this.
    pub(super) since: Option<DateTime<Utc>>,
    /// Only results after this position (the previous page's last).
    pub(super) after: Option<Position>,
    pub(super) limit: usize,
}

/// A page: its results' JSON and the position of its last result when more follow.
pub(super) struct Page {
    pub(super) records: Vec<Bytes>,
    pub(super) next: Option<Position>,
}

/// A shared handle on the served results: read by the server, changed by tests between pulls.
#[derive(Clone)]
pub struct ResultsHandle {
    served: Arc<RwLock<Served>>,
}

impl std::fmt::Debug for ResultsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsHandle")
            .field("len", &self.len())
            .finish()
    }
}

fn entry(modified_at: DateTime<Utc>, seq: u64, result: Value) -> Entry {
    let changed = json!({
        "modified_at": modified_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "result": result,
    });
    Entry {
        position: Position { modified_at, seq },
        json: Bytes::from(serde_json::to_vec(&changed).unwrap_or_default()),
    }
}

fn sorted(results: Vec<(DateTime<Utc>, Value)>, first_seq: u64) -> Vec<Entry> {
    let mut entries: Vec<Entry> = results
        .into_iter()
        .zip(first_seq..)
        .map(|((modified_at, result), seq)| entry(modified_at, seq, result))
        .collect();
    entries.sort_by_key(|e| e.position);
    entries
}

impl ResultsHandle {
    pub(super) fn new(results: Vec<(DateTime<Utc>, Value)>) -> ResultsHandle {
        let next_seq = results.len() as u64;
        ResultsHandle {
            served: Arc::new(RwLock::new(Served {
                entries: sorted(results, 0),
                next_seq,
            })),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Served> {
        self.served.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Served> {
        self.served.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a result, served after every result modified at or before `modified_at`. A result
    /// sent again with other values is how partners restate one: nothing is replaced here.
    pub fn add(&self, modified_at: DateTime<Utc>, result: Value) {
        let mut served = self.write();
        let seq = served.next_seq;
        served.next_seq += 1;
        let new = entry(modified_at, seq, result);
        let at = served
            .entries
            .partition_point(|e| e.position < new.position);
        served.entries.insert(at, new);
    }

    /// Serves these results instead of all the others.
    pub fn replace_all(&self, results: Vec<(DateTime<Utc>, Value)>) {
        let mut served = self.write();
        let first = served.next_seq;
        served.next_seq += results.len() as u64;
        served.entries = sorted(results, first);
    }

    /// Results served.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the selection's page starts: its index in the served order and the number of
    /// selected results before it.
    fn start(entries: &[Entry], selection: &Selection) -> (usize, usize) {
        let first = selection.since.map_or(0, |since| {
            entries.partition_point(|e| e.position.modified_at < since)
        });
        let start = selection
            .after
            .map_or(first, |after| {
                entries.partition_point(|e| e.position <= after)
            })
            .max(first);
        (start, start - first)
    }

    /// The number of selected results before the page (for `FaultTrigger::Page`).
    pub(super) fn offset(&self, selection: &Selection) -> usize {
        Self::start(&self.read().entries, selection).1
    }

    /// Up to `limit` selected results after `after`, in order.
    pub(super) fn page(&self, selection: &Selection) -> Page {
        let served = self.read();
        let entries = &served.entries;
        let (start, _) = Self::start(entries, selection);
        let end = start.saturating_add(selection.limit).min(entries.len());
        let next = (end < entries.len() && end > start).then(|| entries[end - 1].position);
        Page {
            records: entries[start..end].iter().map(|e| e.json.clone()).collect(),
            next,
        }
    }
}
