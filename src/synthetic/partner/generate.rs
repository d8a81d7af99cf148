//! Generated results: one Mathematics result per student `S1..Sn`, deterministic in the seed,
//! for paging tests and pull benchmarks.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::synthetic::rng::SplitMix64;

/// The goal areas of `config/learning-plans/math.toml`, by their display names (the gradebook's
/// generated line items use them too).
pub(crate) const GOAL_AREAS: [&str; 5] = [
    "Operations and Algebraic Thinking",
    "Number and Operations",
    "Measurement and Data",
    "Geometry",
    "Statistics and Probability",
];

/// Keeps these streams apart from the CSV generator's, whose keys start with small numbers.
const STREAM: u64 = 0x5041_5254_4E45_5253;

/// Results for students `S1..Sn`: Mathematics, Fall 2026-2027, tested in September 2026, a
/// RIT and five goal RITs each from 150 to 250, distinct `test_id`s, `modified_at` one second
/// apart from 2026-11-01T00:00:00Z in student order. A pure function of `(students, seed)`.
pub fn generated_results(students: usize, seed: u64) -> Vec<(DateTime<Utc>, Value)> {
    let start = NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
        .and_utc();
    let first_test_day = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default();
    (1..=students)
        .map(|n| {
            let mut rng = SplitMix64::keyed(seed, &[STREAM, n as u64]);
            let rit = 150 + rng.below(101) as i64;
            let goals: Vec<Value> = GOAL_AREAS
                .iter()
                .map(|name| {
                    let goal_rit = (rit + rng.below(21) as i64 - 10).clamp(150, 250);
                    json!({"name": name, "rit": goal_rit})
                })
                .collect();
            let test_date = first_test_day + Duration::days(rng.below(30) as i64);
            let result = json!({
                "student": {"identifier": format!("S{n}")},
                "subject": "Mathematics",
                "term": "Fall 2026-2027",
                "test_date": test_date.format("%Y-%m-%d").to_string(),
                "test_id": format!("syn-{seed:x}-{n}"),
                "rit": rit,
                "goals": goals,
            });
            (start + Duration::seconds(n as i64 - 1), result)
        })
        .collect()
}
