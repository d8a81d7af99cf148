//! The scheduler: on every tick, enqueues the pull each connection's schedules call for. Every
//! replica may run it at once: a slot's job has a dedupe key made of the connection, the kind of
//! pull and the slot time, which every replica computes alike, so a slot is one job.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::JobSettings;
use crate::domain::schedule::{due_slots_spread, DueSlot, Schedule};
use crate::store::jobs::{self, NewJob};
use crate::store::{Db, StoreError};

/// The job kind of a scheduled pull.
pub const PULL_KIND: &str = "pull";

/// The payload of a `pull` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullPayload {
    /// The connection's name (unique in its district).
    pub connection: String,
    /// A full, reconciling pull rather than a delta.
    pub full: bool,
}

/// Something pulled on a schedule: a district's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledItem {
    pub district_id: i64,
    /// The district's zone, in which daily times are read.
    pub timezone: chrono_tz::Tz,
    /// The connection's name.
    pub key: String,
    pub delta: Option<Schedule>,
    pub full: Option<Schedule>,
}

impl ScheduledItem {
    /// Seconds by which this item's interval slots are shifted, the same in every process (a
    /// hash of district and key), so that connections on one interval do not all pull at once.
    pub fn spread(&self) -> u64 {
        // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self
            .district_id
            .to_le_bytes()
            .iter()
            .chain(self.key.as_bytes())
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
}

/// Where the scheduler reads what to schedule on each tick (the connections store). Any
/// `Fn() -> impl Future<Output = Result<Vec<ScheduledItem>, StoreError>>` is one.
pub trait ScheduledItems: Send + Sync + 'static {
    fn items(&self) -> impl Future<Output = Result<Vec<ScheduledItem>, StoreError>> + Send;
}

impl<F, Fut> ScheduledItems for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<ScheduledItem>, StoreError>> + Send,
{
    fn items(&self) -> impl Future<Output = Result<Vec<ScheduledItem>, StoreError>> + Send {
        self()
    }
}

/// The dedupe key of a pull slot: `pull:{connection}:{full|delta}:{slot}`.
pub fn pull_key(connection: &str, slot: &DueSlot) -> String {
    format!(
        "{}{}:{}",
        pull_prefix(connection),
        if slot.full { "full" } else { "delta" },
        slot.at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// A pull asked for now (by an administrator, not a schedule). Its dedupe key starts like the
/// scheduled ones', so the scheduler waits while it is queued or running; check
/// [`jobs::has_open`] with [`pull_prefix`] first to refuse a second one.
pub fn requested_pull(
    district_id: i64,
    connection: &str,
    full: bool,
    now: DateTime<Utc>,
    max_attempts: i64,
) -> NewJob {
    let key = format!(
        "{}{}:requested:{}",
        pull_prefix(connection),
        if full { "full" } else { "delta" },
        uuid::Uuid::new_v4().simple()
    );
    pull_job(district_id, connection, full, key, now, max_attempts)
}

fn pull_job(
    district_id: i64,
    connection: &str,
    full: bool,
    dedupe_key: String,
    run_after: DateTime<Utc>,
    max_attempts: i64,
) -> NewJob {
    let payload = PullPayload {
        connection: connection.to_string(),
        full,
    };
    NewJob {
        district_id,
        kind: PULL_KIND.to_string(),
        payload: serde_json::to_value(&payload).expect("payloads serialize"),
        dedupe_key: Some(dedupe_key),
        run_after,
        max_attempts,
    }
}

/// `pull:{connection}:`, the start of every pull key of a connection; the name is escaped so
/// that no connection's prefix is another's.
pub fn pull_prefix(connection: &str) -> String {
    let name = connection.replace('%', "%25").replace(':', "%3A");
    format!("{PULL_KIND}:{name}:")
}

pub struct Scheduler<S> {
    db: Db,
    items: S,
    max_attempts: i64,
    /// Per connection, the keys of its current slots known to be enqueued already, so that a
    /// tick with nothing new costs no query.
    known: Mutex<HashMap<(i64, String), HashSet<String>>>,
}

impl<S: ScheduledItems> Scheduler<S> {
    pub fn new(db: Db, items: S, settings: &JobSettings) -> Scheduler<S> {
        Scheduler {
            db,
            items,
            max_attempts: i64::from(settings.max_attempts.max(1)),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Enqueues the pulls that came due by `now`; the ids of the jobs it created (a slot another
    /// replica enqueued first is not among them). An item that fails is logged and skipped.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let items = self.items.items().await?;
        let mut created = Vec::new();
        for item in &items {
            match self.schedule(item, now).await {
                Ok(Some(id)) => created.push(id),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    district_id = item.district_id,
                    connection = %item.key,
                    error = %e,
                    "could not schedule a pull"
                ),
            }
        }
        let mut known = self.lock_known();
        let live: HashSet<(i64, &str)> = items
            .iter()
            .map(|i| (i.district_id, i.key.as_str()))
            .collect();
        known.retain(|(district, key), _| live.contains(&(*district, key.as_str())));
        Ok(created)
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String), HashSet<String>>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Enqueues the first of the item's due slots not enqueued before, unless a pull of the
    /// connection is queued or running (it would only be queued behind it).
    async fn schedule(
        &self,
        item: &ScheduledItem,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let slots = due_slots_spread(item.delta, item.full, item.timezone, now, item.spread());
        let keys: Vec<(DueSlot, String)> = slots
            .into_iter()
            .map(|slot| {
                let key = pull_key(&item.key, &slot);
                (slot, key)
            })
            .collect();
        let item_id = (item.district_id, item.key.clone());
        let fresh: Vec<&(DueSlot, String)> = {
            let mut known = self.lock_known();
            let known = known.entry(item_id.clone()).or_default();
            known.retain(|k| keys.iter().any(|(_, key)| key == k));
            keys.iter()
                .filter(|(_, key)| !known.contains(key))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(None);
        }
        if jobs::has_open(
            &self.db,
            item.district_id,
            PULL_KIND,
            &pull_prefix(&item.key),
        )
        .await?
        {
            return Ok(None);
        }
        for (slot, key) in fresh {
            let job = pull_job(
                item.district_id,
                &item.key,
                slot.full,
                key.clone(),
                slot.at,
                self.max_attempts,
            );
            let enqueued = jobs::enqueue(&self.db, &job, now).await?;
            self.lock_known()
                .entry(item_id.clone())
                .or_default()
                .insert(key.clone());
            if enqueued.new {
                tracing::info!(
                    district_id = item.district_id,
                    connection = %item.key,
                    full = slot.full,
                    slot = %slot.at,
                    job_id = %enqueued.id,
                    "scheduled pull enqueued"
                );
                return Ok(Some(enqueued.id));
            }
        }
        Ok(None)
    }

    /// Ticks every `interval` until `stop` turns true.
    pub async fn run(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            if let Err(e) = self.tick(Utc::now()).await {
                tracing::warn!(error = %e, "could not read the schedules");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                changed = stop.changed() => if changed.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_keys_name_the_connection_the_kind_of_pull_and_the_slot() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T15:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            pull_key("powerschool", &DueSlot { full: true, at }),
            "pull:powerschool:full:2026-12-02T15:00:00Z"
        );
        assert_eq!(
            pull_key("sis:a", &DueSlot { full: false, at }),
            "pull:sis%3Aa:delta:2026-12-02T15:00:00Z"
        );
    }

    #[test]
    fn a_requested_pull_is_a_pull_of_its_connection_that_the_scheduler_waits_for() {
        let at = Utc::now();
        let job = requested_pull(7, "powerschool", true, at, 3);
        assert_eq!(job.kind, PULL_KIND);
        assert_eq!(
            (job.district_id, job.run_after, job.max_attempts),
            (7, at, 3)
        );
        assert_eq!(
            job.payload,
            serde_json::json!({ "connection": "powerschool", "full": true })
        );
        let key = job.dedupe_key.unwrap();
        assert!(key.starts_with("pull:powerschool:full:requested:"), "{key}");
        assert_ne!(
            requested_pull(7, "powerschool", true, at, 3).dedupe_key,
            Some(key)
        );
    }
}
