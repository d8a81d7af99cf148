//! Generated assessment records: what a SIS's gradebook holds for one MAP-style Mathematics
//! test in Fall 2026, deterministic in the seed, for paging tests and pull benchmarks.

use chrono::{Duration, NaiveDate, SecondsFormat};
use serde_json::{json, Value};

use crate::synthetic::partner::GOAL_AREAS;
use crate::synthetic::rng::SplitMix64;

/// The test's (parent) line item.
const PARENT: &str = "ali-math-fall-2026";
/// Every result's `scoreDate`.
const SCORE_DATE: &str = "2026-09-15";
/// Keeps these streams apart from the CSV generator's and the partner's.
const STREAM: u64 = 0x4752_4144_4542_4F4B;

fn line_item_ref(sourced_id: &str) -> Value {
    json!({"sourcedId": sourced_id, "type": "assessmentLineItem"})
}

/// The line items and results for students `stu-1..stu-n`: the test's line item and one child
/// per goal area of `config/learning-plans/math.toml` (`…-g1..g5`, in the plan's order); per
/// student an overall result `ar-{n}` (RIT 150-250, percentile 1-99) and five goal results
/// `ar-{n}-g{k}` (the overall RIT ± 10, kept within 150-250), all six modified at
/// 2026-11-01T00:00:00Z + n seconds. A pure function of `(students, seed)`.
pub fn generated_assessments(students: usize, seed: u64) -> (Vec<Value>, Vec<Value>) {
    let mut line_items = vec![json!({
        "sourcedId": PARENT,
        "status": "active",
        "dateLastModified": "2026-10-01T00:00:00.000Z",
        "title": "MAP Growth Mathematics Fall 2026",
        "metadata": {"subject": "Mathematics", "term": "Fall 2026-2027"},
    })];
    line_items.extend(GOAL_AREAS.iter().zip(1..).map(|(title, k)| {
        json!({
            "sourcedId": format!("{PARENT}-g{k}"),
            "status": "active",
            "dateLastModified": "2026-10-01T00:00:00.000Z",
            "title": title,
            "parentAssessmentLineItem": line_item_ref(PARENT),
        })
    }));

    let start = NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
        .and_utc();
    let mut results = Vec::with_capacity(students * (1 + GOAL_AREAS.len()));
    for n in 1..=students {
        let mut rng = SplitMix64::keyed(seed, &[STREAM, n as u64]);
        let rit = 150 + rng.below(101) as i64;
        // Percentiles follow the RIT loosely: a higher score ranks higher, give or take.
        let percentile = ((rit - 150) + rng.below(11) as i64 - 5).clamp(1, 99);
        let modified =
            (start + Duration::seconds(n as i64)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let student = json!({"sourcedId": format!("stu-{n}"), "type": "user"});
        results.push(json!({
            "sourcedId": format!("ar-{n}"),
            "status": "active",
            "dateLastModified": modified,
            "assessmentLineItem": line_item_ref(PARENT),
            "student": student,
            "scoreDate": SCORE_DATE,
            "scoreStatus": "fully graded",
            "score": rit as f64,
            "scorePercentile": percentile,
        }));
        for k in 1..=GOAL_AREAS.len() {
            let goal_rit = (rit + rng.below(21) as i64 - 10).clamp(150, 250);
            results.push(json!({
                "sourcedId": format!("ar-{n}-g{k}"),
                "status": "active",
                "dateLastModified": modified,
                "assessmentLineItem": line_item_ref(&format!("{PARENT}-g{k}")),
                "student": student,
                "scoreDate": SCORE_DATE,
                "scoreStatus": "fully graded",
                "score": goal_rit as f64,
            }));
        }
    }
    (line_items, results)
}
