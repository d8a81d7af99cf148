//! The import progress display: a spinner on stderr, only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::sync::progress::{Progress, ProgressFn};

/// A spinner on stderr (only when it is a terminal) showing the step a run is in; each finished
/// step stays on screen as one line above it.
pub struct Spinner {
    bar: ProgressBar,
    /// The step on show and when it began.
    current: Mutex<Option<(Progress, Instant)>>,
}

impl Spinner {
    pub fn start() -> Option<Arc<Spinner>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(Arc::new(Spinner {
            bar,
            current: Mutex::new(None),
        }))
    }

    pub fn listener(self: &Arc<Self>) -> ProgressFn {
        let spinner = self.clone();
        Arc::new(move |event| spinner.show(event))
    }

    fn show(&self, event: Progress) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let same_step = match (current.as_ref().map(|(p, _)| p), event) {
            (Some(Progress::Reading { kind: a, .. }), Progress::Reading { kind: b, .. }) => a == &b,
            (Some(a), b) => a == &b,
            (None, _) => false,
        };
        let started = match current.take() {
            Some((_, started)) if same_step => started,
            Some((done, started)) => {
                self.bar.println(finished_step(done, started.elapsed()));
                Instant::now()
            }
            None => Instant::now(),
        };
        self.bar.set_message(event.to_string());
        *current = Some((event, started));
    }

    pub fn finish(&self) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((done, started)) = current.take() {
            self.bar.println(finished_step(done, started.elapsed()));
        }
        self.bar.finish_and_clear();
    }
}

fn finished_step(step: Progress, took: Duration) -> String {
    let took = took.as_secs_f64();
    match step {
        Progress::Reading { kind, rows } => {
            format!(
                "  read {}: {rows} rows ({took:.1} s)",
                kind.oneroster_name()
            )
        }
        Progress::Phase(phase) => format!("  {phase} ({took:.1} s)"),
    }
}
