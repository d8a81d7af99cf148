//! Outbound webhooks: provisioning events delivered to a district's subscribers, signed
//! (Standard Webhooks), at least once, in order per subject, surviving restarts.
//!
//! The outbox is fanned out into one delivery per (subscription, event) ([`fanout`]); a worker
//! claims due deliveries with a lease ([`crate::store::deliveries`]), sends them ([`send`]) and
//! decides from the answer what follows ([`schedule`]): delivered, retried on the configured
//! schedule, failed, or the subscription disabled. Every gateway process sharing a database may
//! run a worker: a delivery is leased by one at a time, and a process that dies leaves its
//! deliveries to the others once their leases run out.

pub mod fanout;
pub mod schedule;
pub mod send;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::secrets::SecretBox;
use crate::config::Settings;
use crate::outbound::target_guard::TargetGuard;
use crate::store::Db;
use send::{ClientError, Sender};
use worker::Worker;

/// The running delivery worker of a process; stop it with [`DeliveryHandle::shutdown`].
pub struct DeliveryHandle {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Starts the delivery worker unless `webhooks.enabled` is false. Call from inside a Tokio
/// runtime.
pub fn spawn(
    db: Db,
    settings: &Settings,
    secrets: SecretBox,
) -> Result<DeliveryHandle, ClientError> {
    let (stop, stopped) = watch::channel(false);
    let webhooks = settings.webhooks.clone();
    if !webhooks.enabled {
        return Ok(DeliveryHandle { stop, task: None });
    }
    let sender = Sender::new(
        TargetGuard::from_settings(&settings.outbound),
        Duration::from_secs(webhooks.request_timeout_secs.max(1)),
        webhooks.concurrency,
    )?;
    let worker = Arc::new(Worker::new(db, webhooks, sender, secrets));
    tracing::info!(owner = worker.owner(), "webhook delivery started");
    let task = tokio::spawn(worker.run(stopped));
    Ok(DeliveryHandle {
        stop,
        task: Some(task),
    })
}

impl DeliveryHandle {
    /// Stops claiming, lets requests in flight finish (up to the grace period) and records
    /// them. A delivery still in flight after that is sent again once its lease runs out.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}
