//! What runs a job of one kind, and how it says that it failed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::store::jobs::Job;

/// Why a job did not succeed. The message is stored and shown in the API: it must hold no
/// secrets and no student data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (the source is down, the district is busy); `after` overrides the
    /// configured retry delay (a `Retry-After`).
    #[error("{message}")]
    Retryable {
        message: String,
        after: Option<Duration>,
    },
    /// Would fail the same way again (a malformed payload, a connection that is gone).
    #[error("{0}")]
    Permanent(String),
    /// Could not start for a reason that is no fault of the job and passes (its district is busy
    /// with another sync): queued again after `after`, and the attempt does not count, so a long
    /// sync elsewhere never uses up the job's attempts.
    #[error("{message}")]
    Deferred { message: String, after: Duration },
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> JobError {
        JobError::Retryable {
            message: message.into(),
            after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> JobError {
        JobError::Permanent(message.into())
    }
}

/// Runs jobs of one kind. The value returned is stored as the job's result (e.g. a run id).
///
/// A job may run more than once (its process died mid-way, or its lease was lost), so a handler
/// must be idempotent; the runner stops a handler whose lease was taken over.
pub trait JobHandler: Send + Sync + 'static {
    fn run(&self, job: &Job) -> impl Future<Output = Result<Value, JobError>> + Send;

    /// Told once when a job is failed for good without its handler seeing the end: the process
    /// running its last attempt died (its lease ran out). Whatever the handler keeps beside the
    /// job (a delivery's status) can say so. Nothing by default.
    fn gave_up(&self, job: &Job) -> impl Future<Output = ()> + Send {
        let _ = job;
        async {}
    }
}

pub(crate) type HandlerFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send + 'a>>;

/// [`JobHandler`] behind a pointer, so that handlers of different types share one table.
pub(crate) trait DynHandler: Send + Sync {
    fn run_boxed<'a>(&'a self, job: &'a Job) -> HandlerFuture<'a>;
    fn gave_up_boxed<'a>(&'a self, job: &'a Job) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

impl<H: JobHandler> DynHandler for H {
    fn run_boxed<'a>(&'a self, job: &'a Job) -> HandlerFuture<'a> {
        Box::pin(self.run(job))
    }
    fn gave_up_boxed<'a>(&'a self, job: &'a Job) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.gave_up(job))
    }
}

/// The handlers of a process, one per job kind. A process claims only the kinds it has a handler
/// for, so replicas of different versions can share a database.
#[derive(Clone, Default)]
pub struct Handlers {
    by_kind: BTreeMap<String, Arc<dyn DynHandler>>,
}

impl Handlers {
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Adds the handler of `kind` (replacing an earlier one).
    pub fn with(mut self, kind: &str, handler: impl JobHandler) -> Handlers {
        self.by_kind.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// The kinds handled, in order.
    pub fn kinds(&self) -> Vec<String> {
        self.by_kind.keys().cloned().collect()
    }

    pub(crate) fn get(&self, kind: &str) -> Option<Arc<dyn DynHandler>> {
        self.by_kind.get(kind).cloned()
    }
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_kind.keys()).finish()
    }
}
