use serde_json::json;

use super::*;

fn body(value: &Json) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// A result with every member given.
fn full_result() -> Json {
    json!({
        "student": {"sourcedId": "stu-1", "identifier": "100234", "state_id": "IL-88"},
        "subject": "Mathematics",
        "course": "Math K-12",
        "term": "Fall 2026-2027",
        "test_date": "2026-09-15",
        "test_start_time": "13:05:09",
        "test_id": "T-1",
        "test_name": "Growth: Math 6+ IL 2020",
        "test_type": "Survey With Goals",
        "growth_event": true,
        "duration_minutes": 48,
        "rit": 221,
        "standard_error": 3.2,
        "percentile": 63,
        "rapid_guessing_percentage": 4.5,
        "norms_reference": "2020",
        "goals": [
            {"name": "Operations and Algebraic Thinking", "rit": 224.0, "standard_error": 6.8,
             "range": {"low": 217, "high": 231}, "adjective": "HiAvg"}
        ]
    })
}

fn minimal_result() -> Json {
    json!({"student": {"identifier": "100234"}, "subject": "Reading", "term": "Spring 2027",
        "test_date": "2027-04-02", "rit": 205})
}

fn schema() -> Json {
    serde_json::from_str(include_str!(
        "../../../../contracts/schemas/score-push.schema.json"
    ))
    .unwrap()
}

fn names(object: &Json) -> Vec<String> {
    let mut names: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    names.sort();
    names
}

/// Whether a property's schema admits `null` (a type list, an enum, or a `oneOf` branch).
fn admits_null(schema: &Json, property: &Json) -> bool {
    if let Some(reference) = property["$ref"].as_str() {
        let name = reference.trim_start_matches("#/$defs/");
        return admits_null(schema, &schema["$defs"][name]);
    }
    let typed = property["type"] == json!("null")
        || property["type"]
            .as_array()
            .is_some_and(|types| types.contains(&json!("null")));
    let listed = property["enum"]
        .as_array()
        .is_some_and(|values| values.contains(&Json::Null));
    let branch = property["oneOf"]
        .as_array()
        .is_some_and(|branches| branches.iter().any(|b| admits_null(schema, b)));
    typed || listed || branch
}

/// The published schema and the reader agree: the members of each object, which are required,
/// that no other member is allowed, that optional members may be null, and the bounds.
#[test]
fn the_published_score_schema_agrees_with_the_reader() {
    let schema = schema();
    let defs = &schema["$defs"];
    let range = &defs["goal"]["properties"]["range"]["oneOf"][0];
    let objects: [(&str, &Json, &[&str], &[&str]); 5] = [
        ("document", &schema, &DOCUMENT_MEMBERS, &["results"]),
        ("result", &defs["result"], &RESULT_MEMBERS, &RESULT_REQUIRED),
        ("student", &defs["student"], &STUDENT_MEMBERS, &[]),
        ("goal", &defs["goal"], &GOAL_MEMBERS, &GOAL_REQUIRED),
        ("range", range, &RANGE_MEMBERS, &RANGE_MEMBERS),
    ];
    for (name, object, members, required) in objects {
        assert_eq!(names(&object["properties"]), sorted(members), "{name}");
        assert_eq!(object["additionalProperties"], json!(false), "{name}");
        let published: Vec<&str> = object["required"]
            .as_array()
            .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(sorted(&published), sorted(required), "{name}");
        for member in members {
            let property = &object["properties"][*member];
            let optional = !required.contains(member);
            assert_eq!(
                admits_null(&schema, property),
                optional,
                "{name}.{member}: optional members, and only they, may be null"
            );
        }
    }
    let bounds = |property: &Json| (property["minimum"].as_i64(), property["maximum"].as_i64());
    let result = &defs["result"]["properties"];
    let goal = &defs["goal"]["properties"];
    let rit = (Some(RIT_MIN), Some(RIT_MAX));
    let error = (Some(0), Some(STANDARD_ERROR_MAX));
    assert_eq!(bounds(&result["rit"]), rit);
    assert_eq!(bounds(&goal["rit"]), rit);
    assert_eq!(bounds(&range["properties"]["low"]), rit);
    assert_eq!(bounds(&range["properties"]["high"]), rit);
    assert_eq!(bounds(&result["standard_error"]), error);
    assert_eq!(bounds(&goal["standard_error"]), error);
    assert_eq!(
        bounds(&result["percentile"]),
        (Some(PERCENTILE_MIN), Some(PERCENTILE_MAX))
    );
    assert_eq!(
        bounds(&result["duration_minutes"]),
        (Some(0), Some(DURATION_MAX))
    );
    assert_eq!(
        bounds(&result["rapid_guessing_percentage"]),
        (Some(0), Some(100))
    );
    assert_eq!(result["goals"]["maxItems"].as_u64(), Some(MAX_GOALS as u64));
    assert_eq!(
        defs["text"]["maxLength"].as_u64(),
        Some(MAX_TEXT_CHARS as u64)
    );
    assert_eq!(schema["properties"]["results"]["minItems"], json!(1));
    let mut adjectives: Vec<Json> = Adjective::ALL.iter().map(|a| json!(a.as_str())).collect();
    adjectives.push(Json::Null);
    assert_eq!(goal["adjective"]["enum"], Json::Array(adjectives));
    // What the schema says, the reader does.
    assert!(read(&body(&json!({"results": [full_result()]}))).is_ok());
    assert!(read(&body(&json!({"results": [minimal_result()]}))).is_ok());
    for member in RESULT_MEMBERS {
        let mut result = full_result();
        result[member] = Json::Null;
        let outcome = read(&body(&json!({"results": [result]})));
        assert_eq!(
            outcome.is_ok(),
            !RESULT_REQUIRED.contains(&member),
            "{member}: null"
        );
        let mut result = full_result();
        result.as_object_mut().unwrap().remove(member);
        let outcome = read(&body(&json!({"results": [result]})));
        assert_eq!(
            outcome.is_ok(),
            !RESULT_REQUIRED.contains(&member),
            "{member}: absent"
        );
    }
    for member in GOAL_MEMBERS {
        let mut result = full_result();
        result["goals"][0].as_object_mut().unwrap().remove(member);
        let outcome = read(&body(&json!({"results": [result]})));
        assert_eq!(
            outcome.is_ok(),
            !GOAL_REQUIRED.contains(&member),
            "goal {member}"
        );
    }
    for member in STUDENT_MEMBERS {
        let result = json!({"student": {member: "x-1"}, "subject": "Reading", "term": "Fall",
            "test_date": "2026-09-01", "rit": 200});
        assert!(
            read(&body(&json!({"results": [result]}))).is_ok(),
            "{member}"
        );
    }
}

#[test]
fn a_full_result_is_read_into_its_values() {
    let pushed = read(&body(
        &json!({"results": [full_result(), minimal_result()]}),
    ))
    .unwrap();
    let first = &pushed.results[0];
    assert_eq!(first.student.sourced_id.as_deref(), Some("stu-1"));
    assert_eq!(first.student.identifier.as_deref(), Some("100234"));
    assert_eq!(
        first.test_date,
        NaiveDate::from_ymd_opt(2026, 9, 15).unwrap()
    );
    assert_eq!(
        first.test_start_time,
        Some(NaiveTime::from_hms_opt(13, 5, 9).unwrap())
    );
    assert_eq!((first.rit, first.percentile), (221, Some(63)));
    assert_eq!(first.growth_event, Some(true));
    assert_eq!(
        first.goals,
        vec![GoalResult {
            name: "Operations and Algebraic Thinking".into(),
            rit: 224.0,
            standard_error: Some(6.8),
            range: Some((217.0, 231.0)),
            adjective: Some(Adjective::HiAvg),
        }]
    );
    let second = &pushed.results[1];
    assert_eq!(second.student.sourced_id, None);
    assert_eq!(second.test_start_time, None);
    assert!(second.goals.is_empty());
    assert_eq!(second.standard_error, None);
}

#[test]
fn each_problem_is_named_by_its_json_pointer() {
    let with = |member: &str, value: Json| {
        let mut result = full_result();
        result[member] = value;
        json!({"results": [result]})
    };
    let with_goal = |member: &str, value: Json| {
        let mut result = full_result();
        result["goals"][0][member] = value;
        json!({"results": [result]})
    };
    let cases: Vec<(Json, &str, &str)> = vec![
        (json!([]), "", "must be a JSON object"),
        (json!({}), "/results", "is required"),
        (json!({"results": []}), "/results", "holds no result"),
        (json!({"results": {}}), "/results", "must be an array"),
        (
            json!({"results": [1]}),
            "/results/0",
            "must be a JSON object",
        ),
        (
            json!({"results": [], "mode": "bulk"}),
            "/mode",
            "unknown member",
        ),
        (with("rits", json!(1)), "/results/0/rits", "unknown member"),
        (
            with("rit", json!("221")),
            "/results/0/rit",
            "must be a number",
        ),
        (with("rit", json!(221.5)), "/results/0/rit", "whole number"),
        (with("rit", json!(20)), "/results/0/rit", "outside 100–350"),
        (with("rit", Json::Null), "/results/0/rit", "may not be null"),
        (
            with("percentile", json!(100)),
            "/results/0/percentile",
            "outside 1–99",
        ),
        (
            with("subject", json!("  ")),
            "/results/0/subject",
            "may not be empty",
        ),
        (
            with("subject", json!(7)),
            "/results/0/subject",
            "must be a string",
        ),
        (
            with("term", json!("x".repeat(201))),
            "/results/0/term",
            "longer than 200",
        ),
        (
            with("test_date", json!("09/15/2026")),
            "/results/0/test_date",
            "YYYY-MM-DD",
        ),
        (
            with("test_date", json!("2026-02-30")),
            "/results/0/test_date",
            "YYYY-MM-DD",
        ),
        (
            with("test_start_time", json!("1:05 PM")),
            "/results/0/test_start_time",
            "HH:MM:SS",
        ),
        (
            with("test_start_time", json!("24:00:00")),
            "/results/0/test_start_time",
            "HH:MM:SS",
        ),
        (
            with("test_start_time", json!("23:59:60")),
            "/results/0/test_start_time",
            "HH:MM:SS",
        ),
        (
            with("test_start_time", json!(1305)),
            "/results/0/test_start_time",
            "HH:MM:SS",
        ),
        (
            with("growth_event", json!("Yes")),
            "/results/0/growth_event",
            "true or false",
        ),
        (
            with("student", json!({})),
            "/results/0/student",
            "names no student",
        ),
        (
            with("student", json!("stu-1")),
            "/results/0/student",
            "must be a JSON object",
        ),
        (
            with("student", json!({"email": "a@b"})),
            "/results/0/student/email",
            "unknown member",
        ),
        (
            with("goals", json!({})),
            "/results/0/goals",
            "must be an array",
        ),
        (
            with("goals", json!(vec![json!({"name": "A", "rit": 200}); 9])),
            "/results/0/goals",
            "at most 8",
        ),
        (
            with_goal("rit", json!(99.5)),
            "/results/0/goals/0/rit",
            "outside",
        ),
        (
            with_goal("adjective", json!("average")),
            "/results/0/goals/0/adjective",
            "one of Low",
        ),
        (
            with_goal("range", json!("217-231")),
            "/results/0/goals/0/range",
            "must be a JSON object",
        ),
        (
            with_goal("range", json!({"low": 231, "high": 217})),
            "/results/0/goals/0/range",
            "above high",
        ),
        (
            with_goal("range", json!({"low": 217})),
            "/results/0/goals/0/range/high",
            "is required",
        ),
        (
            with_goal("a/b~c", json!(1)),
            "/results/0/goals/0/a~1b~0c",
            "unknown member",
        ),
    ];
    for (document, pointer, wanted) in cases {
        let refusal = read(&body(&document)).expect_err(&document.to_string());
        let found = refusal
            .problems
            .iter()
            .find(|p| p.pointer == pointer)
            .unwrap_or_else(|| panic!("{document}: no problem at {pointer:?}: {refusal:?}"));
        assert!(found.message.contains(wanted), "{document}: {found:?}");
    }
}

#[test]
fn a_body_that_is_not_json_is_refused_with_its_line_and_column() {
    let refusal = read(b"{\"results\": [\n{]").unwrap_err();
    assert_eq!(refusal.total, 1);
    assert_eq!(refusal.problems[0].pointer, "");
    assert!(
        refusal.problems[0].message.contains("line 2 column"),
        "{refusal:?}"
    );
    assert!(read(b"").is_err());
    assert!(read(&[0xff, 0xfe]).is_err());
}

#[test]
fn a_body_with_many_problems_lists_the_first_and_counts_them_all() {
    let results: Vec<Json> = (0..50).map(|_| json!({"rit": "high"})).collect();
    let refusal = read(&body(&json!({ "results": results }))).unwrap_err();
    assert_eq!(refusal.problems.len(), MAX_PROBLEMS);
    // Each result lacks four required members and has a rit of the wrong type.
    assert_eq!(refusal.total, 50 * 5);
    assert!(refusal.to_string().contains("more"), "{refusal}");
    // A hostile member name is cut short in its pointer.
    let long = "k".repeat(10_000);
    let refusal = read(&body(&json!({ long: 1, "results": [minimal_result()] }))).unwrap_err();
    assert!(
        refusal.problems[0].pointer.chars().count() <= 102,
        "{refusal:?}"
    );
}
