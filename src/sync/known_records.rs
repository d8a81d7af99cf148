//! Comparing a bulk file with what the district holds while the file is read. A record exactly as
//! its live row (same sourcedId, same content hash) is counted unchanged and not staged, so a
//! nightly file that is mostly the same records again stages, compares and applies only what
//! differs. The district's records of the kind are held as an 8-byte key each, the line the file
//! repeated each on (4 bytes), at most a byte each of an index into the keys and a bit each for
//! those the run staged changed; their sourcedIds too while all of it fits in
//! [`MAX_HELD_BYTES`], so that the records the file no longer has are known at its end without
//! reading the district's records a second time.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use crate::domain::records::{ColumnType, RecordKind, SourceRecord};

/// At most this many live records of a kind are held ([`KEY_BYTES`] each: 56 MiB); a larger kind
/// is staged whole and compared in the database.
pub const MAX_KNOWN: u64 = 4_000_000;

/// Bytes held per live record: its key, the line the file repeated it on, its share of the index
/// into the keys (at most one byte, see [`KeyIndex`]) and its mark if the run staged it changed
/// (a bit, counted as a byte).
pub const KEY_BYTES: u64 = 14;

/// What comparing a kind may hold: its keys first ([`KEY_BYTES`] a record, at most 56 MiB), then,
/// in what is left, its sourcedIds (their text and 8 bytes each). With 12-character ids they are
/// held up to 2.0 million records (1.2 million with GUIDs); a kind whose ids do not fit is read
/// again at its end to find the records its file no longer has.
pub const MAX_HELD_BYTES: u64 = 64 << 20;

/// The bytes left for the sourcedIds of `records` live records within `budget`.
pub fn ids_budget(budget: u64, records: u64) -> usize {
    usize::try_from(budget.saturating_sub(records.saturating_mul(KEY_BYTES))).unwrap_or(usize::MAX)
}

/// At most this many removed records a kind refers to are held while it is read; past that, it is
/// staged whole and its references are checked in the database.
pub const MAX_REMOVED_TARGETS: i64 = 100_000;

/// The sourcedIds a run removes of a kind one column refers to: a record naming one of them is
/// staged, so that its dangling reference is reported on its line.
#[derive(Debug)]
pub struct RemovedTargets {
    /// The column's place in the kind's columns (and in its records' values).
    pub index: usize,
    pub ty: ColumnType,
    pub ids: HashSet<String>,
}

/// Collects a kind's live records, page by page, before its file is read.
pub struct Loader {
    hasher: RandomState,
    keys: Vec<u64>,
    /// The records' sourcedIds in the order pushed, until they outgrow their budget.
    ids: Option<HeldIds>,
    ids_budget: usize,
}

/// SourcedIds back to back, and where each ends.
#[derive(Debug)]
struct HeldIds {
    text: String,
    ends: Vec<u32>,
}

impl HeldIds {
    fn get(&self, at: usize) -> &str {
        let start = at.checked_sub(1).map_or(0, |before| self.ends[before]) as usize;
        &self.text[start..self.ends[at] as usize]
    }
}

impl Loader {
    /// Room for `records`; their sourcedIds are held while they take at most `ids_budget` bytes.
    pub fn new(records: usize, ids_budget: usize) -> Self {
        Loader {
            hasher: RandomState::new(),
            keys: Vec::with_capacity(records),
            ids: Some(HeldIds {
                text: String::new(),
                ends: Vec::with_capacity(records),
            }),
            ids_budget,
        }
    }

    pub fn push(&mut self, sourced_id: &str, hash: i64) {
        self.keys.push(key(&self.hasher, sourced_id, hash));
        if let Some(ids) = &mut self.ids {
            let held = ids.text.len() + sourced_id.len() + 8 * ids.ends.len() + 8;
            match u32::try_from(ids.text.len() + sourced_id.len()) {
                Ok(end) if held <= self.ids_budget => {
                    ids.text.push_str(sourced_id);
                    ids.ends.push(end);
                }
                // Too many to hold: the kind's end reads the live records again instead.
                _ => self.ids = None,
            }
        }
    }

    /// Bytes the sourcedIds held so far take (0 once they outgrew their budget).
    pub fn held_ids_bytes(&self) -> usize {
        self.ids
            .as_ref()
            .map_or(0, |ids| ids.text.len() + 8 * ids.ends.len())
    }

    /// The records, ready to compare with. `None` when two live records share a key (a 64-bit
    /// collision): then neither could be told apart, and the kind is staged whole.
    pub fn finish(self, kind: RecordKind, removed: Vec<RemovedTargets>) -> Option<KnownRecords> {
        let Loader {
            hasher,
            mut keys,
            ids,
            ..
        } = self;
        // With sourcedIds held, each sorted key remembers which id is its own (keys that are
        // not distinct are refused below, so their order among themselves does not matter).
        let held = ids.map(|ids| {
            let mut pushed_at: Vec<u32> = (0..keys.len() as u32).collect();
            pushed_at.sort_unstable_by_key(|&at| keys[at as usize]);
            (ids, pushed_at)
        });
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        let repeated_on = vec![0; keys.len()];
        let staged = vec![0; keys.len().div_ceil(64)];
        let index = KeyIndex::new(&keys);
        Some(KnownRecords {
            kind,
            hasher,
            index,
            keys,
            repeated_on,
            staged,
            held,
            unchanged: 0,
            removed,
        })
    }
}

/// A kind's live records while its file is read: which ones the file has repeated unchanged.
pub struct KnownRecords {
    kind: RecordKind,
    hasher: RandomState,
    /// Sorted, distinct.
    keys: Vec<u64>,
    index: KeyIndex,
    /// Per key, the line the file repeated that record on, unchanged (and did not stage it); 0
    /// while it has not.
    repeated_on: Vec<u32>,
    /// A bit per key: the run staged that record changed ([`KnownRecords::note_staged`]).
    staged: Vec<u64>,
    /// The sourcedIds, when held, and per key the place of its own among them.
    held: Option<(HeldIds, Vec<u32>)>,
    unchanged: u64,
    removed: Vec<RemovedTargets>,
}

impl KnownRecords {
    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// Records the file repeated unchanged, and did not stage.
    pub fn unchanged(&self) -> u64 {
        self.unchanged
    }

    /// Whether `record` must be staged: anything but the first copy of a live record exactly as
    /// the district holds it that names nothing the run removes.
    pub fn must_stage(&mut self, record: &SourceRecord) -> bool {
        let Some(at) = self.position(&record.sourced_id, record.content_hash()) else {
            return true;
        };
        let line = u32::try_from(record.line).unwrap_or(u32::MAX).max(1);
        if self.repeated_on[at] != 0 || self.refers_to_removed(record) {
            return true;
        }
        self.repeated_on[at] = line;
        self.unchanged += 1;
        false
    }

    /// Notes that the run staged the live record (`sourced_id`, `live_hash`) changed: it is not
    /// one the file no longer has.
    pub fn note_staged(&mut self, sourced_id: &str, live_hash: i64) {
        if let Some(at) = self.position(sourced_id, live_hash) {
            self.staged[at / 64] |= 1 << (at % 64);
        }
    }

    /// Whether the live record (`sourced_id`, `hash`) may be one the file no longer has: the
    /// file neither repeated it unchanged nor staged it changed (as far as noted).
    pub fn maybe_absent(&self, sourced_id: &str, hash: i64) -> bool {
        self.position(sourced_id, hash)
            .is_none_or(|at| self.may_be_absent_at(at))
    }

    fn may_be_absent_at(&self, at: usize) -> bool {
        self.repeated_on[at] == 0 && self.staged[at / 64] & (1 << (at % 64)) == 0
    }

    /// The sourcedIds of the live records that may be ones the file no longer has (see
    /// [`KnownRecords::maybe_absent`]), when they were held; `None` when there were too many
    /// to hold.
    pub fn maybe_absent_ids(&self) -> Option<Vec<&str>> {
        let (ids, pushed_at) = self.held.as_ref()?;
        Some(
            pushed_at
                .iter()
                .enumerate()
                .filter(|&(at, _)| self.may_be_absent_at(at))
                .map(|(_, &pushed)| ids.get(pushed as usize))
                .collect(),
        )
    }

    /// The line the file repeated the live record (`sourced_id`, `hash`) on unchanged, if it did.
    pub fn repeated_on(&self, sourced_id: &str, hash: i64) -> Option<u64> {
        self.position(sourced_id, hash)
            .map(|at| self.repeated_on[at])
            .filter(|&line| line != 0)
            .map(u64::from)
    }

    fn position(&self, sourced_id: &str, hash: i64) -> Option<usize> {
        self.index
            .position(&self.keys, key(&self.hasher, sourced_id, hash))
    }

    fn refers_to_removed(&self, record: &SourceRecord) -> bool {
        self.removed.iter().any(|r| {
            let Some(value) = record.values.get(r.index).and_then(|v| v.as_text()) else {
                return false;
            };
            match r.ty {
                ColumnType::List => value.split(',').any(|id| r.ids.contains(id)),
                _ => r.ids.contains(value),
            }
        })
    }
}

/// Where the sorted keys with each leading `bits` bits begin. Keys are hashes, spread evenly, so
/// each such run holds four keys or so: a look-up reads this table and then one or two cache
/// lines of keys, where a binary search over all of them would miss the cache at most of its
/// twenty-odd steps (it was the costliest step of comparing a large file).
#[derive(Debug)]
struct KeyIndex {
    bits: u32,
    /// `starts[p]` is the first key whose leading bits are `p` or more; one entry more than
    /// there are prefixes, so that `starts[p + 1]` ends the run of `p`.
    starts: Vec<u32>,
}

impl KeyIndex {
    /// Keys per prefix, about: the table takes at most a byte per key.
    const KEYS_PER_PREFIX: usize = 4;

    fn new(sorted: &[u64]) -> Self {
        let prefixes = (sorted.len() / Self::KEYS_PER_PREFIX).max(1);
        let bits = prefixes.ilog2().min(31);
        let mut starts = Vec::with_capacity((1usize << bits) + 1);
        let mut at = 0;
        for prefix in 0..(1u64 << bits) {
            while at < sorted.len() && Self::prefix(bits, sorted[at]) < prefix {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(sorted.len() as u32);
        KeyIndex { bits, starts }
    }

    fn prefix(bits: u32, key: u64) -> u64 {
        key.checked_shr(64 - bits).unwrap_or(0)
    }

    fn position(&self, sorted: &[u64], key: u64) -> Option<usize> {
        let prefix = Self::prefix(self.bits, key) as usize;
        let (from, to) = (
            self.starts[prefix] as usize,
            self.starts[prefix + 1] as usize,
        );
        sorted[from..to]
            .binary_search(&key)
            .ok()
            .map(|at| from + at)
    }
}

/// A record's identity and content in 8 bytes, keyed per process (so that input cannot be made
/// to collide on purpose).
fn key(hasher: &RandomState, sourced_id: &str, hash: i64) -> u64 {
    hasher.hash_one((sourced_id, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::{RecordStatus, Value};

    fn enrollment(id: &str, user: &str, role: &str) -> SourceRecord {
        let mut values = vec![Value::Null; RecordKind::Enrollments.columns().len()];
        for (i, c) in RecordKind::Enrollments.columns().iter().enumerate() {
            values[i] = match c.name {
                "user_sourced_id" => Value::Text(user.into()),
                "class_sourced_id" => Value::Text("cls-1".into()),
                "role" => Value::Text(role.into()),
                _ => Value::Null,
            };
        }
        SourceRecord {
            kind: RecordKind::Enrollments,
            sourced_id: id.into(),
            line: 2,
            status: RecordStatus::Active,
            values,
            extra: None,
        }
    }

    fn known(live: &[&SourceRecord], removed: Vec<RemovedTargets>) -> KnownRecords {
        let mut loader = Loader::new(live.len(), usize::MAX);
        for r in live {
            loader.push(&r.sourced_id, r.content_hash());
        }
        loader
            .finish(RecordKind::Enrollments, removed)
            .expect("no collision")
    }

    #[test]
    fn a_record_exactly_as_held_is_not_staged_and_counts_unchanged() {
        let held = enrollment("e1", "u1", "student");
        let mut known = known(&[&held], Vec::new());
        assert!(!known.must_stage(&held.clone()));
        assert_eq!(known.unchanged(), 1);
        assert_eq!(known.repeated_on("e1", held.content_hash()), Some(2));
    }

    #[test]
    fn changed_new_and_repeated_records_are_staged() {
        let held = enrollment("e1", "u1", "student");
        let mut known = known(&[&held], Vec::new());
        let cases = [
            ("changed content", enrollment("e1", "u1", "teacher"), true),
            (
                "another sourcedId, same content",
                enrollment("e2", "u1", "student"),
                true,
            ),
            ("the held record", held.clone(), false),
            ("the held record a second time", held.clone(), true),
        ];
        for (case, record, staged) in cases {
            assert_eq!(known.must_stage(&record), staged, "{case}");
        }
        assert_eq!(known.unchanged(), 1);
        assert_eq!(
            known.repeated_on("e1", enrollment("e1", "u1", "teacher").content_hash()),
            None
        );
    }

    #[test]
    fn the_records_not_repeated_unchanged_are_named_whatever_order_they_were_held_in() {
        let ids = ["e3", "é-1", "e1", "e\u{1F600}", "e2"];
        let live: Vec<SourceRecord> = ids
            .iter()
            .map(|id| enrollment(id, "u1", "student"))
            .collect();
        let mut known = known(&live.iter().collect::<Vec<_>>(), Vec::new());
        let read = [
            ("repeated as held", live[0].clone(), false),
            ("changed", enrollment("é-1", "u1", "teacher"), true),
            ("repeated as held", live[3].clone(), false),
            ("new", enrollment("e9", "u1", "student"), true),
        ];
        for (case, record, staged) in read {
            assert_eq!(known.must_stage(&record), staged, "{case}");
        }
        let mut not_repeated = known.maybe_absent_ids().expect("held");
        not_repeated.sort_unstable();
        assert_eq!(not_repeated, vec!["e1", "e2", "é-1"]);
    }

    #[test]
    fn a_record_staged_changed_is_not_taken_for_one_the_file_no_longer_has() {
        let live: Vec<SourceRecord> = ["e1", "e2", "e3"]
            .iter()
            .map(|id| enrollment(id, "u1", "student"))
            .collect();
        // Ids not held, then held: both ways of asking agree.
        for budget in [0, usize::MAX] {
            let mut loader = Loader::new(live.len(), budget);
            for r in &live {
                loader.push(&r.sourced_id, r.content_hash());
            }
            let mut known = loader.finish(RecordKind::Enrollments, Vec::new()).unwrap();
            assert!(known.must_stage(&enrollment("e2", "u1", "teacher")));
            // The staged row names the live record by its sourcedId and the live row's hash.
            known.note_staged("e2", live[1].content_hash());
            // A sourcedId the district does not hold, or a hash it does not hold it with.
            known.note_staged("e9", live[1].content_hash());
            known.note_staged("e3", 7);
            for (record, absent) in [(&live[0], true), (&live[1], false), (&live[2], true)] {
                assert_eq!(
                    known.maybe_absent(&record.sourced_id, record.content_hash()),
                    absent,
                    "{} (budget {budget})",
                    record.sourced_id
                );
            }
            assert!(known.maybe_absent("e9", 1), "a record never held");
            if budget > 0 {
                let mut ids = known.maybe_absent_ids().expect("held");
                ids.sort_unstable();
                assert_eq!(ids, vec!["e1", "e3"]);
            }
            // The note does not make the record count as repeated unchanged.
            assert_eq!(known.repeated_on("e2", live[1].content_hash()), None);
            assert_eq!(known.unchanged(), 0);
        }
    }

    #[test]
    fn ids_that_do_not_fit_beside_the_keys_are_not_held_and_the_keys_still_compare() {
        let live: Vec<SourceRecord> = (0..100)
            .map(|i| enrollment(&format!("enr-{i:04}"), "u1", "student"))
            .collect();
        // 100 keys of KEY_BYTES, then 100 ids of 8 characters and 8 bytes each.
        let whole = 100 * KEY_BYTES + 100 * (8 + 8);
        for (budget, held) in [
            (0, false),
            (100 * KEY_BYTES, false),
            (whole - 1, false),
            (whole, true),
        ] {
            let mut loader = Loader::new(live.len(), ids_budget(budget, 100));
            for r in &live {
                loader.push(&r.sourced_id, r.content_hash());
            }
            let mut known = loader.finish(RecordKind::Enrollments, Vec::new()).unwrap();
            assert_eq!(known.maybe_absent_ids().is_some(), held, "budget {budget}");
            assert!(!known.must_stage(&live[42]), "budget {budget}");
            assert_eq!(
                known.repeated_on("enr-0042", live[42].content_hash()),
                Some(2)
            );
            if held {
                assert_eq!(known.maybe_absent_ids().unwrap().len(), 99);
            }
        }
    }

    #[test]
    fn the_key_index_finds_every_key_and_no_other_whatever_the_count() {
        let hasher = RandomState::new();
        for count in [0usize, 1, 3, 4, 7, 8, 9, 31, 32, 33, 1000, 4097] {
            let mut keys: Vec<u64> = (0..count)
                .map(|i| hasher.hash_one(i))
                .chain([0, u64::MAX].into_iter().take(count.min(2)))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let index = KeyIndex::new(&keys);
            assert!(
                index.starts.len() <= keys.len() / KeyIndex::KEYS_PER_PREFIX + 2,
                "{count} keys: a table of {}",
                index.starts.len()
            );
            for (at, &k) in keys.iter().enumerate() {
                assert_eq!(index.position(&keys, k), Some(at), "{count} keys: key {at}");
            }
            for i in count..count + 200 {
                let other = hasher.hash_one(i);
                let expected = keys.binary_search(&other).ok();
                assert_eq!(index.position(&keys, other), expected, "{count} keys");
            }
        }
    }

    #[test]
    fn a_record_naming_a_removed_record_is_staged() {
        let held = enrollment("e1", "u1", "student");
        let user = RecordKind::Enrollments
            .columns()
            .iter()
            .position(|c| c.name == "user_sourced_id")
            .unwrap();
        let removed = vec![RemovedTargets {
            index: user,
            ty: ColumnType::Text,
            ids: HashSet::from(["u1".to_string()]),
        }];
        let mut known = known(&[&held], removed);
        assert!(known.must_stage(&held));
        assert_eq!(known.unchanged(), 0);
        assert_eq!(known.repeated_on("e1", held.content_hash()), None);
    }

    #[test]
    fn a_removed_id_anywhere_in_a_list_counts() {
        let removed = RemovedTargets {
            index: 0,
            ty: ColumnType::List,
            ids: HashSet::from(["org-2".to_string()]),
        };
        let known = KnownRecords {
            kind: RecordKind::Users,
            hasher: RandomState::new(),
            index: KeyIndex::new(&[]),
            keys: Vec::new(),
            repeated_on: Vec::new(),
            staged: Vec::new(),
            held: None,
            unchanged: 0,
            removed: vec![removed],
        };
        let with = |list: &str| SourceRecord {
            kind: RecordKind::Users,
            sourced_id: "u1".into(),
            line: 2,
            status: RecordStatus::Active,
            values: vec![Value::Text(list.into())],
            extra: None,
        };
        assert!(known.refers_to_removed(&with("org-1,org-2")));
        assert!(!known.refers_to_removed(&with("org-1,org-22")));
    }
}
