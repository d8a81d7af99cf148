//! Scripted faults: what goes wrong, on which request, how many times. Faults are consumed in
//! the order they were scripted; a request takes the first pending fault whose trigger matches.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the provider does instead of (or to) its normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// 429 with `Retry-After: N` and an imsx `server_busy` body.
    TooManyRequests { retry_after_secs: u64 },
    /// This status (500, 503, …) with an imsx body.
    Status(u16),
    /// Waits this long, then answers normally (for client timeouts).
    Delay(Duration),
    /// 200 with the page's JSON cut in the middle.
    MalformedJson,
    /// 200 with this field removed from the page's first record.
    MissingField(String),
    /// Sends the status line and half the body, then closes the connection.
    DropConnection,
}

/// Which request a fault applies to. Token requests count only for `Path("token")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultTrigger {
    /// The next data request, whatever it asks for.
    Next,
    /// The next request whose path ends with `/{segment}` (`users`, `students`, `token`).
    Path(String),
    /// The next request for `/{segment}` with this `offset` (absent counts as 0).
    Page { path: String, offset: usize },
    /// The n-th data request since the provider started (1-based).
    RequestNumber(u64),
}

#[derive(Debug, Clone)]
struct Scripted {
    trigger: FaultTrigger,
    action: FaultAction,
    remaining: u32,
}

/// The request as faults see it.
pub(crate) struct FaultProbe<'a> {
    /// Path relative to the service base (`users`, `users/stu-1`) or `token`.
    pub(crate) path: &'a str,
    pub(crate) offset: usize,
    /// None for token requests.
    pub(crate) number: Option<u64>,
}

impl FaultTrigger {
    fn matches(&self, probe: &FaultProbe<'_>) -> bool {
        let ends_with =
            |segment: &str| probe.path == segment || probe.path.ends_with(&format!("/{segment}"));
        match self {
            FaultTrigger::Next => probe.number.is_some(),
            FaultTrigger::Path(segment) => ends_with(segment),
            FaultTrigger::Page { path, offset } => ends_with(path) && probe.offset == *offset,
            FaultTrigger::RequestNumber(n) => probe.number == Some(*n),
        }
    }
}

/// A shared handle on the fault script.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    script: Arc<Mutex<Vec<Scripted>>>,
}

impl FaultHandle {
    /// Scripts `action` for the next `times` requests matching `trigger`.
    pub fn push(&self, trigger: FaultTrigger, action: FaultAction, times: u32) {
        if times == 0 {
            return;
        }
        self.lock().push(Scripted {
            trigger,
            action,
            remaining: times,
        });
    }

    /// Scripts `action` once, for the next data request.
    pub fn next(&self, action: FaultAction) {
        self.push(FaultTrigger::Next, action, 1);
    }

    /// Scripts `action` for the next `times` requests to `/{segment}`.
    pub fn on_path(&self, segment: &str, action: FaultAction, times: u32) {
        self.push(FaultTrigger::Path(segment.to_string()), action, times);
    }

    /// Scripts `action` for the n-th data request (1-based).
    pub fn on_request(&self, number: u64, action: FaultAction) {
        self.push(FaultTrigger::RequestNumber(number), action, 1);
    }

    /// Faults scripted and not yet served.
    pub fn pending(&self) -> usize {
        self.lock().iter().map(|f| f.remaining as usize).sum()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Takes the first pending fault that applies to the request.
    pub(crate) fn take(&self, probe: &FaultProbe<'_>) -> Option<FaultAction> {
        let mut script = self.lock();
        let i = script.iter().position(|f| f.trigger.matches(probe))?;
        let action = script[i].action.clone();
        script[i].remaining -= 1;
        if script[i].remaining == 0 {
            script.remove(i);
        }
        Some(action)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Scripted>> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }
}
