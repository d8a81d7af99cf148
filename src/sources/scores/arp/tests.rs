use serde_json::json;

use super::*;

fn line_items() -> Vec<LineItem> {
    [
        json!({"sourcedId": "math", "status": "active", "title": "MAP Growth Math 2-5 Fall 2026"}),
        json!({"sourcedId": "math-ops", "title": "Operations and Algebraic Thinking",
               "parentAssessmentLineItem": {"sourcedId": "math", "type": "assessmentLineItem"}}),
        json!({"sourcedId": "math-geo", "title": "Geometry",
               "parentAssessmentLineItem": {"sourcedId": "math"}}),
        json!({"sourcedId": "read", "title": "Reading benchmark",
               "metadata": {"subject": "Reading", "term": "Fall 2026-2027"}}),
        json!({"sourcedId": "quiz", "title": "Unit 3 quiz"}),
        json!({"sourcedId": "gone", "status": "tobedeleted", "title": "Math retired"}),
    ]
    .iter()
    .map(|r| read_line_item(r).unwrap())
    .collect()
}

fn result(id: &str, item: &str, student: &str, score: Json, status: &str) -> ArpResult {
    read_result(&json!({
        "sourcedId": id, "status": "active", "dateLastModified": "2026-11-02T10:00:00.000Z",
        "assessmentLineItem": {"sourcedId": item, "type": "assessmentLineItem"},
        "student": {"sourcedId": student, "type": "user"},
        "scoreDate": "2026-10-28", "scoreStatus": status, "score": score, "scorePercentile": 61.6
    }))
    .unwrap()
}

#[test]
fn a_test_and_its_goal_areas_become_one_result_whatever_their_order() {
    let plans = LearningPlans::shipped();
    let tests = Tests::new(line_items(), &plans);
    assert_eq!(
        tests.test_count(),
        3,
        "math, read and quiz; the deleted one is out"
    );
    let mut assembler = Assembler::new(&tests);
    assembler.add(result(
        "r1-ops",
        "math-ops",
        "stu-1",
        json!(205.4),
        "fully graded",
    ));
    assembler.add(result("r1", "math", "stu-1", json!("201"), "fully graded"));
    assembler.add(result(
        "r1-geo",
        "math-geo",
        "stu-1",
        json!(190),
        "partially graded",
    ));
    let (results, skipped) = assembler.finish();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.student.sourced_id.as_deref(), Some("stu-1"));
    assert_eq!(r.subject, "Math 2-5", "named by the title");
    assert_eq!(r.term, "Fall 2026-2027", "from the date");
    assert_eq!(r.test_id.as_deref(), Some("r1"));
    assert_eq!(
        r.test_name.as_deref(),
        Some("MAP Growth Math 2-5 Fall 2026")
    );
    assert_eq!((r.rit, r.percentile), (201, Some(62)));
    let mut goals: Vec<_> = r.goals.iter().map(|g| (g.name.as_str(), g.rit)).collect();
    goals.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        goals,
        [
            ("Geometry", 190.0),
            ("Operations and Algebraic Thinking", 205.0)
        ]
    );
}

#[test]
fn what_cannot_be_a_map_style_result_is_skipped_and_counted() {
    let plans = LearningPlans::shipped();
    let tests = Tests::new(line_items(), &plans);
    let mut assembler = Assembler::new(&tests);
    let cases = [
        (
            result("a", "quiz", "stu-1", json!(8), "fully graded"),
            Skip::TestWithoutSubject,
        ),
        (
            result("b", "math", "stu-2", json!(85), "fully graded"),
            Skip::NotRit,
        ),
        (
            result("c", "math", "stu-3", json!(null), "fully graded"),
            Skip::NotRit,
        ),
        (
            result("d", "math", "stu-4", json!(201), "exempt"),
            Skip::NotScored,
        ),
        (
            result("e", "nowhere", "stu-5", json!(201), "fully graded"),
            Skip::UnknownLineItem,
        ),
        (
            result("f", "gone", "stu-6", json!(201), "fully graded"),
            Skip::UnknownLineItem,
        ),
        (
            result("g", "math-ops", "stu-7", json!(201), "fully graded"),
            Skip::GoalWithoutOverall,
        ),
    ];
    let mut want: HashMap<Skip, u64> = HashMap::new();
    for (r, skip) in cases {
        assembler.add(r);
        *want.entry(skip).or_default() += 1;
    }
    let mut deleted = result("h", "math", "stu-8", json!(201), "fully graded");
    deleted.deleted = true;
    assembler.add(deleted);
    *want.entry(Skip::Deleted).or_default() += 1;
    // The reading test names its subject in metadata: kept, though no plan covers reading.
    assembler.add(result("i", "read", "stu-9", json!(199), "fully graded"));
    let (results, skipped) = assembler.finish();
    assert_eq!(results.len(), 1);
    assert_eq!(
        (results[0].subject.as_str(), results[0].term.as_str()),
        ("Reading", "Fall 2026-2027")
    );
    assert_eq!(skipped.into_iter().collect::<HashMap<_, _>>(), want);
}

#[test]
fn records_that_cannot_be_read_name_their_field() {
    let cases = [
        (json!([1]), None, None),
        (json!({"title": "x"}), None, Some("sourcedId")),
        (
            json!({"sourcedId": "r", "student": {"sourcedId": "s"}, "scoreDate": "2026-10-28"}),
            Some("r"),
            Some("assessmentLineItem"),
        ),
        (
            json!({"sourcedId": "r", "assessmentLineItem": "math", "student": {"sourcedId": "s"},
                "scoreDate": "2026-10-28"}),
            Some("r"),
            Some("assessmentLineItem"),
        ),
        (
            json!({"sourcedId": "r", "assessmentLineItem": {"sourcedId": "m"},
                "scoreDate": "2026-10-28"}),
            Some("r"),
            Some("student"),
        ),
        (
            json!({"sourcedId": "r", "assessmentLineItem": {"sourcedId": "m"},
                "student": {"sourcedId": "s"}, "scoreDate": "28/10/2026"}),
            Some("r"),
            Some("scoreDate"),
        ),
        (
            json!({"sourcedId": "r", "assessmentLineItem": {"sourcedId": "m"},
                "student": {"sourcedId": "s"}, "scoreDate": "2026-10-28", "score": "high"}),
            Some("r"),
            Some("score"),
        ),
        (
            json!({"sourcedId": "r", "assessmentLineItem": {"sourcedId": "m"},
                "student": {"sourcedId": "s"}, "scoreDate": "2026-10-28", "score": true}),
            Some("r"),
            Some("score"),
        ),
        (
            json!({"sourcedId": "r", "assessmentLineItem": {"sourcedId": "m"},
                "student": {"sourcedId": "s"}, "scoreDate": "2026-10-28",
                "dateLastModified": "yesterday"}),
            Some("r"),
            Some("dateLastModified"),
        ),
    ];
    for (record, id, field) in cases {
        let problem = read_result(&record).unwrap_err();
        assert_eq!(
            (problem.sourced_id.as_deref(), problem.field),
            (id, field),
            "{record}: {}",
            problem.message
        );
    }
    let problem =
        read_line_item(&json!({"sourcedId": "x", "parentAssessmentLineItem": 3})).unwrap_err();
    assert_eq!(problem.field, Some("parentAssessmentLineItem"));
}

#[test]
fn score_dates_may_be_dates_or_date_times_and_terms_follow_the_school_year() {
    assert_eq!(
        score_date("2026-10-28"),
        NaiveDate::from_ymd_opt(2026, 10, 28)
    );
    assert_eq!(
        score_date("2026-10-28T23:30:00-05:00"),
        NaiveDate::from_ymd_opt(2026, 10, 28)
    );
    assert_eq!(score_date("2026-13-01"), None);
    let cases = [
        ((2026, 7, 1), "Fall 2026-2027"),
        ((2026, 11, 30), "Fall 2026-2027"),
        ((2026, 12, 1), "Winter 2026-2027"),
        ((2027, 2, 28), "Winter 2026-2027"),
        ((2027, 3, 1), "Spring 2026-2027"),
        ((2027, 6, 30), "Spring 2026-2027"),
    ];
    for ((y, m, d), want) in cases {
        assert_eq!(term_of(NaiveDate::from_ymd_opt(y, m, d).unwrap()), want);
    }
}
