//! The served roster: each collection sorted by sourcedId with every record's JSON rendered
//! once, so a page of a 100k-student district is a copy of byte slices; and the handle tests
//! use to change it between pulls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::data::{Collection, Record, Roster, Status};
use super::filter::{Fields, Filter};
use super::render::{timestamp, RenderContext};

/// One served record.
struct Entry {
    sourced_id: Box<str>,
    status: Status,
    modified: DateTime<Utc>,
    /// The org type, session type or user role, for the `/schools`, `/terms`, `/students`
    /// and `/teachers` views.
    kind: Box<str>,
    json: Bytes,
}

impl Entry {
    fn fields(&self) -> Fields<'_> {
        Fields {
            sourced_id: &self.sourced_id,
            status: self.status.as_str(),
            modified: self.modified,
        }
    }
}

/// Which records of a collection a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SelectionKey {
    pub(super) collection: Collection,
    /// A view's kind (`school`, `term`, `student`, `teacher`).
    pub(super) kind: Option<&'static str>,
    /// The raw filter text (decoded).
    pub(super) filter: Option<String>,
}

/// A page: the total the selection holds and the JSON of the records on this page.
pub(super) struct Page {
    pub(super) total: usize,
    pub(super) records: Vec<Bytes>,
}

struct Served {
    render: RenderContext,
    tables: [Vec<Entry>; 6],
}

/// Selections with a view or a filter, as indexes into a table; emptied by every change, so a
/// delta pull of a large district scans each collection once, not once per page.
type SelectionCache = HashMap<SelectionKey, Arc<Vec<u32>>>;

/// A shared handle on the served roster: read by the server, changed by tests between pulls.
/// Every change stamps `dateLastModified` with the current time so delta filters see it.
#[derive(Clone)]
pub struct RosterHandle {
    served: Arc<RwLock<Served>>,
    selections: Arc<Mutex<SelectionCache>>,
}

impl std::fmt::Debug for RosterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RosterHandle").finish_non_exhaustive()
    }
}

fn entry(render: &RenderContext, record: &Record) -> Entry {
    let base = record.base();
    let json = serde_json::to_vec(&render.render(record)).unwrap_or_default();
    Entry {
        sourced_id: base.sourced_id.as_str().into(),
        status: base.status,
        modified: base.date_last_modified,
        kind: record.kind().into(),
        json: Bytes::from(json),
    }
}

impl RosterHandle {
    pub(super) fn new(render: RenderContext, roster: Roster) -> RosterHandle {
        let mut tables: [Vec<Entry>; 6] = Default::default();
        for (collection, table) in Collection::ALL.into_iter().zip(tables.iter_mut()) {
            table.reserve(roster.len(collection));
        }
        // Rendering a large district is the slow part of starting: spread it over the cores.
        let records: Vec<Record> = roster.into_records().collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = records.len().div_ceil(threads).max(1);
        let rendered: Vec<Vec<(Collection, Entry)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = records
                .chunks(chunk)
                .map(|part| {
                    let render = &render;
                    scope.spawn(move || {
                        part.iter()
                            .map(|r| (r.collection(), entry(render, r)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        for (collection, entry) in rendered.into_iter().flatten() {
            tables[collection.index()].push(entry);
        }
        for table in &mut tables {
            table.sort_by(|a, b| a.sourced_id.cmp(&b.sourced_id));
            // Later duplicates win, as an upsert would.
            table.dedup_by(|later, earlier| {
                if later.sourced_id == earlier.sourced_id {
                    std::mem::swap(later, earlier);
                    true
                } else {
                    false
                }
            });
        }
        RosterHandle {
            served: Arc::new(RwLock::new(Served { render, tables })),
            selections: Default::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Served> {
        self.served.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a change to one table and forgets cached selections.
    fn change<T>(
        &self,
        collection: Collection,
        f: impl FnOnce(&mut Vec<Entry>, &RenderContext) -> T,
    ) -> T {
        let mut served = self.served.write().unwrap_or_else(|e| e.into_inner());
        let Served { render, tables } = &mut *served;
        let out = f(&mut tables[collection.index()], render);
        self.selections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        out
    }

    /// Inserts or replaces the record with its sourcedId, stamped modified now.
    pub fn upsert(&self, record: impl Into<Record>) {
        let mut record = record.into();
        record.base_mut().date_last_modified = Utc::now();
        let collection = record.collection();
        self.change(collection, |table, render| {
            let new = entry(render, &record);
            match table.binary_search_by(|e| e.sourced_id.cmp(&new.sourced_id)) {
                Ok(i) => table[i] = new,
                Err(i) => table.insert(i, new),
            }
        });
    }

    /// Sets `status` to `tobedeleted` and stamps the record modified now; false when absent.
    pub fn mark_tobedeleted(&self, collection: Collection, sourced_id: &str) -> bool {
        self.change(collection, |table, _| {
            let Ok(i) = table.binary_search_by(|e| (*e.sourced_id).cmp(sourced_id)) else {
                return false;
            };
            let now = Utc::now();
            let entry = &mut table[i];
            let Ok(Value::Object(mut json)) = serde_json::from_slice::<Value>(&entry.json) else {
                return false;
            };
            json.insert("status".into(), Status::ToBeDeleted.as_str().into());
            json.insert("dateLastModified".into(), timestamp(now).into());
            entry.json = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
            entry.status = Status::ToBeDeleted;
            entry.modified = now;
            true
        })
    }

    /// Removes the record outright (a provider without tombstones); false when absent.
    pub fn remove(&self, collection: Collection, sourced_id: &str) -> bool {
        self.change(collection, |table, _| {
            match table.binary_search_by(|e| (*e.sourced_id).cmp(sourced_id)) {
                Ok(i) => {
                    table.remove(i);
                    true
                }
                Err(_) => false,
            }
        })
    }

    /// Records served in the collection.
    pub fn count(&self, collection: Collection) -> usize {
        self.read().tables[collection.index()].len()
    }

    /// The record's JSON as served.
    pub fn get(&self, collection: Collection, sourced_id: &str) -> Option<Value> {
        self.record_json(collection, sourced_id)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    pub(super) fn record_json(&self, collection: Collection, sourced_id: &str) -> Option<Bytes> {
        let served = self.read();
        let table = &served.tables[collection.index()];
        let i = table
            .binary_search_by(|e| (*e.sourced_id).cmp(sourced_id))
            .ok()?;
        Some(table[i].json.clone())
    }

    /// The records `[offset, offset + limit)` of the selection, in sourcedId order.
    pub(super) fn page(
        &self,
        key: &SelectionKey,
        filter: Option<&Filter>,
        offset: usize,
        limit: usize,
    ) -> Page {
        let served = self.read();
        let table = &served.tables[key.collection.index()];
        if key.kind.is_none() && filter.is_none() {
            let end = offset.saturating_add(limit).min(table.len());
            let records = table
                .get(offset..end)
                .unwrap_or_default()
                .iter()
                .map(|e| e.json.clone())
                .collect();
            return Page {
                total: table.len(),
                records,
            };
        }
        let cached = self
            .selections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        let indexes = cached.unwrap_or_else(|| {
            let selected: Vec<u32> = table
                .iter()
                .enumerate()
                .filter(|(_, e)| key.kind.is_none_or(|kind| *e.kind == *kind))
                .filter(|(_, e)| filter.is_none_or(|f| f.matches(&e.fields())))
                .map(|(i, _)| i as u32)
                .collect();
            let selected = Arc::new(selected);
            self.selections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), selected.clone());
            selected
        });
        let end = offset.saturating_add(limit).min(indexes.len());
        let records = indexes
            .get(offset..end)
            .unwrap_or_default()
            .iter()
            .map(|&i| table[i as usize].json.clone())
            .collect();
        Page {
            total: indexes.len(),
            records,
        }
    }
}
