//! The delivery loop of one process: fan out new events, claim due deliveries in batches as
//! room frees up, send up to `concurrency` of them at once, and record their outcomes in
//! batches (one transaction per batch) through a single recorder.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch, Semaphore};

use super::fanout;
use super::schedule::{decide, Answer, RetryPolicy, SubscriptionChange};
use super::send::Sender;
use crate::auth::secrets::SecretBox;
use crate::config::WebhookSettings;
use crate::events::envelope::Envelope;
use crate::events::signing::WebhookSecret;
use crate::events::subscriptions::live_secrets;
use crate::store::deliveries::{self, AttemptRecord, Claimed, Next, Payload};
use crate::store::outbox::EventRow;
use crate::store::subscriptions::{self, Subscription};
use crate::store::{Db, StoreError};

/// Outcomes recorded per transaction, at most.
const RECORD_BATCH: usize = 500;
/// Deliveries fanned out between two refreshes of the planner's statistics.
const FANNED_OUT_PER_ANALYZE: u64 = 1000;

/// An attempt's record and what it means for its subscription.
#[derive(Debug)]
pub struct Outcome {
    pub record: AttemptRecord,
    pub subscription: SubscriptionChange,
}

pub struct Worker {
    db: Db,
    settings: WebhookSettings,
    policy: RetryPolicy,
    sender: Sender,
    secrets: SecretBox,
    owner: String,
    slots: Arc<Semaphore>,
    /// Deliveries fanned out since the statistics were last refreshed.
    unanalyzed: std::sync::atomic::AtomicU64,
}

/// A subscription as a batch sends to it: where, signed with what, and its failure run.
struct Target {
    subscription: Subscription,
    secrets: Result<Vec<WebhookSecret>, String>,
}

impl Worker {
    pub fn new(db: Db, settings: WebhookSettings, sender: Sender, secrets: SecretBox) -> Worker {
        Worker {
            db,
            policy: RetryPolicy::from_settings(&settings),
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            settings,
            sender,
            secrets,
            owner: owner_id(),
            unanalyzed: Default::default(),
        }
    }

    /// This process's id on the leases it takes.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// A lease outlives the request timeout, so a live process never loses one mid-request.
    fn lease(&self) -> chrono::Duration {
        let floor = self.settings.request_timeout_secs.saturating_add(5);
        chrono::Duration::seconds(
            i64::try_from(self.settings.lease_secs.max(floor)).unwrap_or(i64::MAX / 1000),
        )
    }

    fn batch(&self) -> i64 {
        i64::from(self.settings.batch_size.max(1))
    }

    /// Runs until `stop` turns true, then waits up to the grace period for requests in flight
    /// and records them; what is still in flight after it is retried once its lease runs out.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let (outcomes, inbox) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(self.clone().record_loop(inbox));
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(1));
        let mut backlog = false;
        loop {
            if *stop.borrow() {
                break;
            }
            // A fan-out that fails (one district's corrupt subscription) stops no delivery.
            let fanned = match self.fan_out().await {
                Ok(events) => events > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery: could not fan out new events");
                    false
                }
            };
            backlog = match self.claim_and_start(&outcomes, &stop, backlog).await {
                Ok(full) => full,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery: could not claim deliveries");
                    false
                }
            };
            let busy = backlog || fanned;
            if !busy {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    changed = stop.changed() => if changed.is_err() { break },
                }
            }
        }
        drop(outcomes);
        let grace = Duration::from_secs(self.settings.shutdown_grace_secs);
        let all = u32::try_from(self.settings.concurrency.max(1)).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("webhook deliveries still in flight at shutdown are retried once their lease runs out");
        }
        let _ = tokio::time::timeout(grace, recorder).await;
    }

    /// Fans out new events; how many.
    async fn fan_out(&self) -> Result<u64, StoreError> {
        let fanned = fanout::fan_out(&self.db, self.batch()).await?;
        let unanalyzed = self
            .unanalyzed
            .fetch_add(fanned.deliveries, std::sync::atomic::Ordering::Relaxed)
            + fanned.deliveries;
        if unanalyzed >= FANNED_OUT_PER_ANALYZE {
            self.unanalyzed
                .store(0, std::sync::atomic::Ordering::Relaxed);
            deliveries::refresh_statistics(&self.db).await?;
        }
        Ok(fanned.events)
    }

    /// Claims and starts as many due deliveries as there is room for. `true` when the claim
    /// filled the room (so the loop goes on at once). `backlog`: the last claim filled its room,
    /// so more is surely due.
    async fn claim_and_start(
        &self,
        outcomes: &mpsc::UnboundedSender<Outcome>,
        stop: &watch::Receiver<bool>,
        backlog: bool,
    ) -> Result<bool, StoreError> {
        // Wait for room before claiming: a claimed delivery starts at once. With a backlog,
        // wait for half the room a claim can fill: claims of a freed slot or two would each
        // cost their statements for next to nothing, while half the requests stay in flight
        // meanwhile.
        let want = if backlog {
            (self.settings.concurrency.min(self.batch() as usize) / 2).max(1)
        } else {
            1
        };
        drop(
            self.slots
                .acquire_many(u32::try_from(want).unwrap_or(1))
                .await
                .expect("the semaphore is never closed"),
        );
        let first = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if *stop.borrow() {
            return Ok(false);
        }
        let room = (self.slots.available_permits() + 1).min(self.batch() as usize);
        let now = Utc::now();
        // Polling idle, look first: a read does not take SQLite's write lock.
        if !backlog && !deliveries::anything_due(&self.db, now).await? {
            return Ok(false);
        }
        let claimed =
            deliveries::claim(&self.db, &self.owner, now + self.lease(), now, room as i64).await?;
        if claimed.is_empty() {
            return Ok(false);
        }
        let full = claimed.len() == room;
        self.start(claimed, first, outcomes).await;
        Ok(full)
    }

    /// Loads what the claimed deliveries need and starts each in its own task.
    async fn start(
        &self,
        claimed: Vec<Claimed>,
        first: tokio::sync::OwnedSemaphorePermit,
        outcomes: &mpsc::UnboundedSender<Outcome>,
    ) {
        let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        let (payloads, targets) = match self.load(&claimed, &ids).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery: could not load claimed deliveries");
                // Their leases run out and they are claimed again.
                return;
            }
        };
        let mut first = Some(first);
        for delivery in claimed {
            let permit = match first.take() {
                Some(p) => p,
                None => match self.slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    // Only this loop takes permits, so room counted is room held.
                    Err(_) => self
                        .slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed"),
                },
            };
            let key = (delivery.district_id, delivery.subscription_id.clone());
            let Some(target) = targets.get(&key).cloned() else {
                // The subscription was removed with its deliveries in between.
                continue;
            };
            let payload = payloads.get(&delivery.id).cloned();
            let sender = self.sender.clone();
            let policy = self.policy.clone();
            let outcomes = outcomes.clone();
            tokio::spawn(async move {
                let outcome = attempt(&sender, &policy, delivery, payload, &target).await;
                let _ = outcomes.send(outcome);
                drop(permit);
            });
        }
    }

    #[allow(clippy::type_complexity)]
    async fn load(
        &self,
        claimed: &[Claimed],
        ids: &[i64],
    ) -> Result<(HashMap<i64, Payload>, HashMap<(i64, String), Arc<Target>>), StoreError> {
        let payloads = deliveries::payloads(&self.db, ids)
            .await?
            .into_iter()
            .map(|p| (p.delivery_id, p))
            .collect();
        let mut targets = HashMap::new();
        let now = Utc::now();
        for c in claimed {
            let key = (c.district_id, c.subscription_id.clone());
            if targets.contains_key(&key) {
                continue;
            }
            if let Some(subscription) =
                subscriptions::find(&self.db, c.district_id, &c.subscription_id).await?
            {
                let secrets = live_secrets(&self.secrets, &subscription, now)
                    .map_err(|e| format!("cannot sign: {e}"));
                targets.insert(
                    key,
                    Arc::new(Target {
                        subscription,
                        secrets,
                    }),
                );
            }
        }
        Ok((payloads, targets))
    }

    /// Records outcomes as they come, many per transaction.
    async fn record_loop(self: Arc<Self>, mut inbox: mpsc::UnboundedReceiver<Outcome>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while inbox.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            if let Err(e) = self.record(&batch).await {
                // Their leases run out and they are sent again: at least once.
                tracing::warn!(error = %e, deliveries = batch.len(), "webhook delivery: could not record attempts");
            }
            batch.clear();
        }
    }

    async fn record(&self, batch: &[Outcome]) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        // A subscription's health is written once per batch per kind of change, not per
        // delivery: a busy subscription's successes would otherwise each cost a statement.
        let mut written: HashMap<(i64, &str), std::mem::Discriminant<SubscriptionChange>> =
            HashMap::new();
        // Successes, the bulk of a busy batch, take two statements per chunk; the rest one
        // statement pair each.
        let successes: Vec<&AttemptRecord> = batch
            .iter()
            .map(|o| &o.record)
            .filter(|r| is_plain_success(r))
            .collect();
        let held: std::collections::HashSet<(i64, i64)> =
            deliveries::record_delivered(&mut tx, &self.owner, &successes, now)
                .await?
                .into_iter()
                .collect();
        for outcome in batch {
            let d = &outcome.record.delivery;
            let recorded = if is_plain_success(&outcome.record) {
                held.contains(&(d.id, d.attempts))
            } else {
                deliveries::record_attempt(&mut tx, &self.owner, &outcome.record, now).await?
            };
            if !recorded {
                tracing::warn!(
                    delivery = d.id,
                    "webhook delivery taken over by another process; its outcome is dropped"
                );
                continue;
            }
            let kind = std::mem::discriminant(&outcome.subscription);
            if written.insert((d.district_id, d.subscription_id.as_str()), kind) == Some(kind) {
                continue;
            }
            match &outcome.subscription {
                SubscriptionChange::Healthy => {
                    subscriptions::clear_failing(&mut tx, d.district_id, &d.subscription_id).await?
                }
                SubscriptionChange::Failing { since } => {
                    subscriptions::mark_failing(&mut tx, d.district_id, &d.subscription_id, *since)
                        .await?
                }
                SubscriptionChange::Disable { since, reason } => {
                    subscriptions::mark_failing(&mut tx, d.district_id, &d.subscription_id, *since)
                        .await?;
                    if subscriptions::disable(
                        &mut tx,
                        d.district_id,
                        &d.subscription_id,
                        reason,
                        now,
                    )
                    .await?
                    {
                        tracing::warn!(subscription = %d.subscription_id, district_id = d.district_id, %reason, "webhook subscription disabled");
                    }
                }
            }
        }
        tx.commit().await
    }
}

/// Delivered with no error: recorded in bulk.
fn is_plain_success(record: &AttemptRecord) -> bool {
    record.next == Next::Delivered && record.error.is_none()
}

/// Makes one attempt of a delivery and decides what follows.
async fn attempt(
    sender: &Sender,
    policy: &RetryPolicy,
    delivery: Claimed,
    payload: Option<Payload>,
    target: &Target,
) -> Outcome {
    let attempted_at = Utc::now();
    let sent = match (&payload, &target.secrets) {
        (None, _) => None,
        (Some(_), Err(e)) => Some(super::send::Sent {
            answer: Answer::None,
            duration: Duration::ZERO,
            error: Some(e.clone()),
            excerpt: None,
        }),
        (Some(p), Ok(secrets)) => {
            let row = EventRow {
                id: p.id,
                run_id: p.run_id.clone(),
                event_type: p.event_type.clone(),
                subject_id: p.subject_id.clone(),
                payload: p.payload.clone(),
                created_at: p.created_at,
            };
            let envelope = Envelope::of(&row, &p.district_slug);
            Some(
                sender
                    .send(
                        &target.subscription.url,
                        &envelope.id,
                        envelope.to_body(),
                        secrets,
                    )
                    .await,
            )
        }
    };
    let now = Utc::now();
    let Some(sent) = sent else {
        // Nothing to send, ever: the event left the outbox.
        return Outcome {
            record: AttemptRecord {
                delivery,
                attempted_at,
                status_code: None,
                duration_ms: 0,
                error: Some("the event is no longer in the outbox".into()),
                response_excerpt: None,
                next: Next::Failed,
            },
            subscription: SubscriptionChange::Failing {
                since: target.subscription.failing_since.unwrap_or(now),
            },
        };
    };
    let decision = decide(
        policy,
        sent.answer,
        delivery.attempts,
        target.subscription.failing_since,
        now,
        dice(),
    );
    if let Some(error) = &sent.error {
        tracing::info!(delivery = delivery.id, attempt = delivery.attempts, %error, "webhook delivery attempt failed");
    }
    Outcome {
        record: AttemptRecord {
            delivery,
            attempted_at,
            status_code: match sent.answer {
                Answer::Status { code, .. } => Some(code),
                Answer::None => None,
            },
            duration_ms: i64::try_from(sent.duration.as_millis()).unwrap_or(i64::MAX),
            error: sent.error,
            response_excerpt: sent.excerpt,
            next: decision.next,
        },
        subscription: decision.subscription,
    }
}

/// Uniform in [0, 1), for jitter.
fn dice() -> f64 {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

fn owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}
