//! Where an import's time goes: the sync engine logs each phase's duration at debug level
//! (`phase`, `ms`); the benchmark runs the importer with JSON logs for the engine only and
//! reads those lines back from its stderr.

use std::ffi::OsStr;

use serde::Serialize;

/// Environment that makes the importer log its phases, and nothing else below a warning, as
/// JSON lines on stderr.
pub const PHASE_LOG_ENV: [(&str, &str); 2] = [
    ("ROSTERGATE_LOG__FORMAT", "json"),
    (
        "ROSTERGATE_LOG__FILTER",
        "warn,rostergate::sync::engine=debug",
    ),
];

/// The environment pairs as the child runner takes them.
pub fn phase_log_env() -> Vec<(&'static str, &'static OsStr)> {
    PHASE_LOG_ENV
        .iter()
        .map(|(k, v)| (*k, OsStr::new(*v)))
        .collect()
}

/// One phase of one import, in the order the engine ran them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    pub phase: String,
    pub seconds: f64,
}

/// The phases logged in `stderr` (JSON lines; anything else is skipped). A phase logged twice
/// (a rehearsal and the real apply) adds up.
pub fn read_phases(stderr: &str) -> Vec<PhaseTime> {
    let mut phases: Vec<PhaseTime> = Vec::new();
    for line in stderr.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = &entry["fields"];
        let (Some(phase), Some(ms)) = (fields["phase"].as_str(), fields["ms"].as_u64()) else {
            continue;
        };
        let seconds = ms as f64 / 1000.0;
        match phases.iter_mut().find(|p| p.phase == phase) {
            Some(p) => p.seconds += seconds,
            None => phases.push(PhaseTime {
                phase: phase.to_string(),
                seconds,
            }),
        }
    }
    phases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_read_from_json_log_lines_in_order_and_other_lines_are_skipped() {
        let stderr = concat!(
            "not json at all\n",
            r#"{"level":"DEBUG","fields":{"phase":"stage","ms":4012,"rows":10},"target":"rostergate::sync::engine"}"#,
            "\n",
            r#"{"level":"DEBUG","fields":{"phase":"scores","matched":3}}"#,
            "\n",
            r#"{"level":"WARN","fields":{"message":"slow"}}"#,
            "\n",
            r#"{"level":"DEBUG","fields":{"phase":"apply","ms":250}}"#,
            "\n",
            r#"{"level":"DEBUG","fields":{"phase":"stage","ms":1000}}"#,
            "\n",
        );
        let phases = read_phases(stderr);
        assert_eq!(
            phases,
            vec![
                PhaseTime {
                    phase: "stage".into(),
                    seconds: 5.012
                },
                PhaseTime {
                    phase: "apply".into(),
                    seconds: 0.25
                },
            ]
        );
    }
}
