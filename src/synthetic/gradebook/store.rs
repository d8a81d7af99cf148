//! The served line items and results, in the order the caller gave them, each one's JSON
//! rendered once (so a page is a copy of byte slices), and the handle tests use to change them
//! between pulls.

use std::sync::{Arc, RwLock};

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The two Assessment Results Profile collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Collection {
    LineItems,
    Results,
}

impl Collection {
    /// The path segment, which is also the response's envelope member.
    pub(super) fn name(self) -> &'static str {
        match self {
            Collection::LineItems => "assessmentLineItems",
            Collection::Results => "assessmentResults",
        }
    }

    pub(super) fn from_segment(segment: &str) -> Option<Collection> {
        [Collection::LineItems, Collection::Results]
            .into_iter()
            .find(|c| c.name() == segment)
    }
}

/// One served record: what the filter and `replace_result` read, and its JSON.
struct Entry {
    sourced_id: Option<String>,
    /// Its `dateLastModified`, when present and RFC 3339; a record without one never passes
    /// the filter.
    modified: Option<DateTime<Utc>>,
    json: Bytes,
}

fn entry(record: Value) -> Entry {
    let modified = record
        .get("dateLastModified")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    Entry {
        sourced_id: record
            .get("sourcedId")
            .and_then(Value::as_str)
            .map(str::to_string),
        modified,
        json: Bytes::from(serde_json::to_vec(&record).unwrap_or_default()),
    }
}

fn entries(records: Vec<Value>) -> Vec<Entry> {
    records.into_iter().map(entry).collect()
}

#[derive(Default)]
struct Served {
    line_items: Vec<Entry>,
    results: Vec<Entry>,
}

impl Served {
    fn of(&self, collection: Collection) -> &[Entry] {
        match collection {
            Collection::LineItems => &self.line_items,
            Collection::Results => &self.results,
        }
    }
}

/// A page: how many records the selection holds and the JSON of those on this page.
pub(super) struct Page {
    pub(super) total: usize,
    pub(super) records: Vec<Bytes>,
}

/// A shared handle on the served records: read by the server, changed by tests between pulls.
#[derive(Clone)]
pub struct GradebookData {
    served: Arc<RwLock<Served>>,
}

impl std::fmt::Debug for GradebookData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let served = self.read();
        f.debug_struct("GradebookData")
            .field("line_items", &served.line_items.len())
            .field("results", &served.results.len())
            .finish()
    }
}

impl GradebookData {
    pub(super) fn new(line_items: Vec<Value>, results: Vec<Value>) -> GradebookData {
        GradebookData {
            served: Arc::new(RwLock::new(Served {
                line_items: entries(line_items),
                results: entries(results),
            })),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Served> {
        self.served.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Served> {
        self.served.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves these line items instead of all the others.
    pub fn set_line_items(&self, line_items: Vec<Value>) {
        let line_items = entries(line_items);
        self.write().line_items = line_items;
    }

    /// Serves these results instead of all the others.
    pub fn set_results(&self, results: Vec<Value>) {
        let results = entries(results);
        self.write().results = results;
    }

    /// Adds a result after all the others.
    pub fn push_result(&self, result: Value) {
        let result = entry(result);
        self.write().results.push(result);
    }

    /// Serves `result` in place of the (first) result whose `sourcedId` is `sourced_id`, at its
    /// position, as a SIS updates a record; false (and nothing changed) when there is none.
    pub fn replace_result(&self, sourced_id: &str, result: Value) -> bool {
        let result = entry(result);
        let mut served = self.write();
        let found = served
            .results
            .iter_mut()
            .find(|e| e.sourced_id.as_deref() == Some(sourced_id));
        match found {
            Some(slot) => {
                *slot = result;
                true
            }
            None => false,
        }
    }

    /// Line items served.
    pub fn line_item_count(&self) -> usize {
        self.read().line_items.len()
    }

    /// Results served.
    pub fn result_count(&self) -> usize {
        self.read().results.len()
    }

    /// The records `[offset, offset + limit)` of those modified after `after` (all without it),
    /// in the order given.
    pub(super) fn page(
        &self,
        collection: Collection,
        after: Option<DateTime<Utc>>,
        offset: usize,
        limit: usize,
    ) -> Page {
        let served = self.read();
        let all = served.of(collection);
        let Some(after) = after else {
            let start = offset.min(all.len());
            let end = start.saturating_add(limit).min(all.len());
            return Page {
                total: all.len(),
                records: all[start..end].iter().map(|e| e.json.clone()).collect(),
            };
        };
        // Records need not be in dateLastModified order, so the selection is a scan.
        let mut total = 0;
        let mut records = Vec::with_capacity(limit.min(all.len()));
        for e in all.iter().filter(|e| e.modified.is_some_and(|m| m > after)) {
            if total >= offset && records.len() < limit {
                records.push(e.json.clone());
            }
            total += 1;
        }
        Page { total, records }
    }
}
