//! Background work on the `jobs` table: a [`Runner`] claims due jobs and runs them through the
//! handler registered for their kind; a [`Scheduler`] enqueues the pulls that connections'
//! schedules call for. Both are safe to run in every gateway process sharing a database: a job
//! is leased by one process at a time, and a schedule slot is one job whoever enqueues it.

mod handler;
pub mod runner;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use handler::{Handlers, JobError, JobHandler};
pub use runner::{Outcome, Ran, Runner};
pub use scheduler::{
    pull_key, pull_prefix, requested_pull, PullPayload, ScheduledItem, ScheduledItems, Scheduler,
    PULL_KIND,
};

pub use crate::store::jobs::{Job, JobStatus};

use crate::config::JobSettings;
use crate::store::Db;

/// The running runner and scheduler of a process; stop them with [`JobsHandle::shutdown`].
/// Dropped instead, its tasks stop once idle (a running job is finished first).
pub struct JobsHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    runner: Option<Arc<Runner>>,
    grace: Duration,
}

/// Starts the runner (with `settings.concurrency` workers) and the scheduler, unless
/// `settings.enabled` is false. Call from inside a Tokio runtime.
pub fn spawn<S: ScheduledItems>(
    db: Db,
    settings: JobSettings,
    handlers: Handlers,
    items: S,
) -> JobsHandle {
    let (stop, stopped) = watch::channel(false);
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    if !settings.enabled {
        return JobsHandle {
            stop,
            tasks: Vec::new(),
            runner: None,
            grace,
        };
    }
    let scheduler = Scheduler::new(db.clone(), items, &settings);
    let interval = Duration::from_millis(settings.schedule_interval_ms.max(1));
    let runner = Arc::new(Runner::new(db, settings, handlers));
    tracing::info!(owner = runner.owner(), "background jobs started");
    let mut tasks = runner.clone().spawn_workers(stopped.clone());
    tasks.push(tokio::spawn(scheduler.run(interval, stopped)));
    JobsHandle {
        stop,
        tasks,
        runner: Some(runner),
        grace,
    }
}

impl JobsHandle {
    /// This process's owner id on the jobs it leases (`None` when jobs are disabled).
    pub fn owner(&self) -> Option<&str> {
        self.runner.as_deref().map(Runner::owner)
    }

    /// Stops claiming and scheduling, waits up to the grace period for running jobs, then stops
    /// those still running and queues them again.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let mut all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(self.grace, &mut all).await.is_err() {
            for task in &aborts {
                task.abort();
            }
            all.await;
        }
        if let Some(runner) = self.runner {
            runner.release_unfinished().await;
        }
    }
}
