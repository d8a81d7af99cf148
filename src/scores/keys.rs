//! What makes two results the same test event, and what makes a result restated.

use aws_lc_rs::digest;

use crate::sources::scores::AssessmentResult;
use crate::store::scores::StoredResult;

/// A result's key: the source's own test id where it has one (older CDF layouts, the partner
/// API); otherwise a synthetic one over what identifies a test event (student, term, subject,
/// course, day, start time, test name), so that a CDF re-exported or pushed again lands on the
/// same key.
pub fn result_key(r: &AssessmentResult) -> String {
    if let Some(id) = &r.test_id {
        return format!("test:{id}");
    }
    let student = &r.student;
    let parts = [
        student.sourced_id.as_deref().unwrap_or(""),
        student.identifier.as_deref().unwrap_or(""),
        student.state_id.as_deref().unwrap_or(""),
        &r.term,
        &r.subject,
        r.course.as_deref().unwrap_or(""),
        &r.test_date.to_string(),
        &r.test_start_time.map(|t| t.to_string()).unwrap_or_default(),
        r.test_name.as_deref().unwrap_or(""),
    ];
    format!("syn:{}", sha256_hex(&length_prefixed(&parts)))
}

/// SHA-256 of every value of the result: the same key with another hash is a restatement.
pub fn row_hash(r: &AssessmentResult) -> String {
    let json = serde_json::to_vec(r).expect("results serialize");
    sha256_hex(&json)
}

/// Each part with its length first, so that no two lists of parts join to the same bytes.
fn length_prefixed(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_be_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// The result as a row to store (the student not matched yet), its values moved rather than
/// copied (600,000 of them in a large export).
pub fn stored(r: AssessmentResult, source: &str) -> StoredResult {
    let result_key = result_key(&r);
    let row_hash = row_hash(&r);
    let goals = serde_json::to_string(&r.goals).expect("goals serialize");
    StoredResult {
        result_key,
        student_sourced_id: None,
        ref_sourced_id: r.student.sourced_id,
        ref_identifier: r.student.identifier,
        ref_state_id: r.student.state_id,
        subject: r.subject,
        course: r.course,
        term: r.term,
        test_date: r.test_date,
        test_start_time: r.test_start_time.map(|t| t.format("%H:%M:%S").to_string()),
        test_id: r.test_id,
        test_name: r.test_name,
        test_type: r.test_type,
        growth_event: r.growth_event,
        duration_minutes: r.duration_minutes,
        rit: r.rit,
        standard_error: r.standard_error,
        percentile: r.percentile,
        rapid_guessing_percentage: r.rapid_guessing_percentage,
        norms_reference: r.norms_reference,
        goals,
        row_hash,
        source: source.to_string(),
        received_at: chrono::Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::scores::{GoalResult, StudentRef};
    use chrono::NaiveDate;

    fn result() -> AssessmentResult {
        AssessmentResult {
            student: StudentRef {
                sourced_id: None,
                identifier: Some("1001".into()),
                state_id: None,
            },
            subject: "Mathematics".into(),
            course: Some("Math 2-5".into()),
            term: "Fall 2026-2027".into(),
            test_date: NaiveDate::from_ymd_opt(2026, 9, 14).unwrap(),
            test_start_time: None,
            test_id: None,
            test_name: Some("Growth: Math 2-5 CCSS 2010 V2".into()),
            test_type: Some("Survey With Goals".into()),
            growth_event: Some(true),
            duration_minutes: Some(41),
            rit: 201,
            standard_error: Some(3.2),
            percentile: Some(55),
            rapid_guessing_percentage: None,
            norms_reference: Some("2020".into()),
            goals: vec![GoalResult {
                name: "Geometry".into(),
                rit: 198.0,
                standard_error: Some(7.1),
                range: Some((191.0, 205.0)),
                adjective: None,
            }],
        }
    }

    #[test]
    fn the_same_event_keeps_its_key_when_its_scores_are_restated() {
        let a = result();
        let mut b = result();
        b.rit = 205;
        assert_eq!(result_key(&a), result_key(&b));
        assert_ne!(row_hash(&a), row_hash(&b));
    }

    #[test]
    fn another_day_student_or_subject_is_another_event() {
        let a = result();
        let mut day = result();
        day.test_date = NaiveDate::from_ymd_opt(2026, 9, 15).unwrap();
        let mut student = result();
        student.student.identifier = Some("1002".into());
        let mut subject = result();
        subject.subject = "Reading".into();
        for other in [day, student, subject] {
            assert_ne!(result_key(&a), result_key(&other));
        }
    }

    #[test]
    fn a_source_test_id_is_the_key() {
        let mut a = result();
        a.test_id = Some("T-77".into());
        assert_eq!(result_key(&a), "test:T-77");
    }

    #[test]
    fn parts_cannot_run_into_each_other() {
        assert_ne!(length_prefixed(&["ab", "c"]), length_prefixed(&["a", "bc"]));
    }
}
