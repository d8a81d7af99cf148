//! The district's live records of each kind a run compares with its file, read ahead on a task of
//! their own from the run's start, in the plan's order: a changed `enrollments.csv` is then
//! compared from its first record, instead of waiting while the district's enrollments are read
//! (0.3–0.6 s at 100,000 students).
//!
//! Kinds are read ahead only while all of them together stay within what comparing one kind may
//! hold ([`MAX_HELD_BYTES`]), so reading ahead never holds more than reading each at its turn
//! could. A kind that does not fit is read at its turn, as are the ones after it: a run then
//! holds only the kind it is reading.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::known_records::{ids_budget, Loader, KEY_BYTES, MAX_KNOWN};
use crate::domain::records::RecordKind;
use crate::store::known_records as live_records;
use crate::store::{sync_apply, Db, StoreError};

/// A kind's live records as read for comparing.
pub enum LiveRecords {
    /// The district has none in effect: the file is staged whole.
    Empty,
    /// More than [`MAX_KNOWN`]: the file is staged whole and compared in the database.
    TooMany,
    /// Read, with how many there are.
    Read { live: u64, loader: Loader },
}

/// Reads `kind`'s live records in the district, holding their sourcedIds too when they fit in
/// `budget` bytes with the keys ([`MAX_HELD_BYTES`](super::known_records::MAX_HELD_BYTES)).
pub async fn read_live(
    db: &Db,
    district_id: i64,
    kind: RecordKind,
    budget: u64,
) -> Result<LiveRecords, StoreError> {
    let live = sync_apply::live_count(db, district_id, kind).await?;
    read_counted(db, district_id, (kind, live), budget).await
}

async fn read_counted(
    db: &Db,
    district_id: i64,
    (kind, live): (RecordKind, u64),
    budget: u64,
) -> Result<LiveRecords, StoreError> {
    if live == 0 {
        return Ok(LiveRecords::Empty);
    }
    if live > MAX_KNOWN {
        return Ok(LiveRecords::TooMany);
    }
    let mut loader = Loader::new(live as usize, ids_budget(budget, live));
    let mut after: Option<String> = None;
    loop {
        let page = live_records::live_page(db, district_id, kind, after.as_deref()).await?;
        for (sourced_id, hash) in page.records()? {
            loader.push(sourced_id, hash);
        }
        if page.is_last() {
            break;
        }
        after = page.last;
    }
    Ok(LiveRecords::Read { live, loader })
}

/// What the reading ahead sends for a kind.
enum Ahead {
    Read(LiveRecords),
    /// Counted, but too many to read ahead beside the kinds before it: read at its turn.
    Counted(u64),
    /// Neither: a kind before it did not fit.
    Later,
}

type Arriving = oneshot::Receiver<Result<Ahead, StoreError>>;

/// The live records of a run's compared kinds, on their way. Dropping it stops the reading.
pub struct LiveAhead {
    db: Db,
    district_id: i64,
    budget: u64,
    /// The kinds, in the order they are read.
    order: Vec<RecordKind>,
    arriving: HashMap<RecordKind, Arriving>,
    reading: Option<tokio::task::JoinHandle<()>>,
}

impl LiveAhead {
    /// Starts reading the live records of `kinds` (in the order given) in the district, ahead
    /// while all read so far hold at most `budget` bytes, which is also what each kind read at
    /// its turn may hold.
    pub fn start(db: Db, district_id: i64, kinds: Vec<RecordKind>, budget: u64) -> Self {
        let mut arriving = HashMap::new();
        let mut senders = Vec::new();
        for &kind in &kinds {
            let (send, receive) = oneshot::channel();
            arriving.insert(kind, receive);
            senders.push((kind, send));
        }
        let reading = (!senders.is_empty()).then(|| {
            let db = db.clone();
            tokio::spawn(async move {
                read_ahead(&db, district_id, senders, budget).await;
            })
        });
        LiveAhead {
            db,
            district_id,
            budget,
            order: kinds,
            arriving,
            reading,
        }
    }

    /// `kind`'s live records: read ahead, or read now when they were not.
    pub async fn take(&mut self, kind: RecordKind) -> Result<LiveRecords, StoreError> {
        // Kinds before this one that were not asked for (their files had no records) never will
        // be: their records are let go, so that no more is held than this kind's.
        if let Some(at) = self.order.iter().position(|&k| k == kind) {
            for earlier in &self.order[..at] {
                self.arriving.remove(earlier);
            }
        }
        let ahead = match self.arriving.remove(&kind) {
            Some(arriving) => arriving.await.unwrap_or(Ok(Ahead::Later))?,
            None => Ahead::Later,
        };
        match ahead {
            Ahead::Read(read) => Ok(read),
            Ahead::Counted(live) => {
                read_counted(&self.db, self.district_id, (kind, live), self.budget).await
            }
            // Not reached by the reading ahead (or it stopped): read them now.
            Ahead::Later => read_live(&self.db, self.district_id, kind, self.budget).await,
        }
    }
}

impl Drop for LiveAhead {
    fn drop(&mut self) {
        if let Some(reading) = self.reading.take() {
            reading.abort();
        }
    }
}

type Sender = oneshot::Sender<Result<Ahead, StoreError>>;

/// Reads each kind in turn while what is held so far fits in `budget`; the first kind that does
/// not fit is sent its count, and it and every later one are read at their turn. An error goes
/// to the kind being read, whose run then fails with it. (Reading the kinds all at once was
/// measured: the first kind, which the run waits for at once, then waits longer than the later
/// ones gain.)
async fn read_ahead(db: &Db, district_id: i64, senders: Vec<(RecordKind, Sender)>, budget: u64) {
    let mut left = budget;
    let mut senders = senders.into_iter();
    for (kind, send) in senders.by_ref() {
        let read = async {
            let live = sync_apply::live_count(db, district_id, kind).await?;
            if live.saturating_mul(KEY_BYTES) > left {
                return Ok(Ahead::Counted(live));
            }
            let read = read_counted(db, district_id, (kind, live), left).await?;
            if let LiveRecords::Read { live, loader } = &read {
                left -= live * KEY_BYTES + loader.held_ids_bytes() as u64;
            }
            Ok(Ahead::Read(read))
        }
        .await;
        let stop = !matches!(read, Ok(Ahead::Read(_)));
        if send.send(read).is_err() || stop {
            break;
        }
    }
    for (_, send) in senders {
        let _ = send.send(Ok(Ahead::Later));
    }
}
