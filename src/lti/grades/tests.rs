use super::*;

fn post(body: Value) -> Result<ScorePost, Vec<(String, String)>> {
    read_request(&body)
}

fn pointers(body: Value) -> Vec<String> {
    post(body)
        .unwrap_err()
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn a_score_post_reads_with_final_progress_by_default() {
    let read = post(json!({
        "line_item": {"label": "MAP Growth Math", "score_maximum": 350, "resource_id": "map-math", "tag": "map"},
        "scores": [
            {"user": "stu-1", "score_given": 212.5, "comment": "Fall"},
            {"user": "stu-2", "activity_progress": "Submitted", "grading_progress": "Pending"}
        ]
    }))
    .unwrap();
    assert_eq!(read.line_item.label, "MAP Growth Math");
    assert_eq!(read.line_item.score_maximum, 350.0);
    assert_eq!(read.line_item.resource_id.as_deref(), Some("map-math"));
    assert_eq!(read.scores[0].activity_progress, "Completed");
    assert_eq!(read.scores[0].grading_progress, "FullyGraded");
    assert_eq!(read.scores[0].score_given, Some(212.5));
    assert_eq!(read.scores[1].score_given, None);
    assert_eq!(read.scores[1].grading_progress, "Pending");
}

#[test]
fn bad_score_posts_name_every_problem_by_json_pointer() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("not an object", json!([]), vec![""]),
        ("nothing", json!({}), vec!["/line_item", "/scores"]),
        (
            "blank label, zero maximum",
            json!({"line_item": {"label": " ", "score_maximum": 0}, "scores": [{"user": "u"}]}),
            vec!["/line_item/label", "/line_item/score_maximum"],
        ),
        (
            "unknown members",
            json!({"line_item": {"label": "x", "score_maximum": 1, "colour": 1}, "scores": [{"user": "u", "grade": "A"}], "extra": 1}),
            vec!["/extra", "/line_item/colour", "/scores/0/grade"],
        ),
        (
            "negative score, unknown progress, no user",
            json!({"line_item": {"label": "x", "score_maximum": 1}, "scores": [{"score_given": -1, "activity_progress": "Done"}]}),
            vec![
                "/scores/0/user",
                "/scores/0/score_given",
                "/scores/0/activity_progress",
            ],
        ),
        (
            "a user twice",
            json!({"line_item": {"label": "x", "score_maximum": 1}, "scores": [{"user": "u"}, {"user": "u"}]}),
            vec!["/scores/1/user"],
        ),
        (
            "no scores",
            json!({"line_item": {"label": "x", "score_maximum": 1}, "scores": []}),
            vec!["/scores"],
        ),
        (
            "a long comment",
            json!({"line_item": {"label": "x", "score_maximum": 1}, "scores": [{"user": "u", "comment": "c".repeat(1001)}]}),
            vec!["/scores/0/comment"],
        ),
    ];
    for (what, body, want) in cases {
        let mut got = pointers(body);
        got.sort();
        let mut want: Vec<String> = want.into_iter().map(String::from).collect();
        want.sort();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn too_many_scores_are_refused_whole() {
    let scores: Vec<Value> = (0..=MAX_SCORES)
        .map(|i| json!({"user": format!("u{i}")}))
        .collect();
    let got = pointers(json!({"line_item": {"label": "x", "score_maximum": 1}, "scores": scores}));
    assert_eq!(got, vec!["/scores"]);
}

#[test]
fn scores_and_results_go_on_the_path_ahead_of_the_query() {
    let cases = [
        (
            "https://lms.example/api/lti/courses/1/line_items/7",
            "https://lms.example/api/lti/courses/1/line_items/7/scores",
        ),
        (
            "https://lms.example/lineitems/7/?type_id=3",
            "https://lms.example/lineitems/7/scores?type_id=3",
        ),
        (
            "https://lms.example/mod/lti/services.php/2/lineitems/5/lineitem?type_id=1",
            "https://lms.example/mod/lti/services.php/2/lineitems/5/lineitem/scores?type_id=1",
        ),
    ];
    for (item, want) in cases {
        assert_eq!(
            service_url(&Url::parse(item).unwrap(), "/scores").as_str(),
            want
        );
    }
}

#[test]
fn a_score_body_has_a_millisecond_timestamp_and_a_maximum_only_with_a_score() {
    let stamp = DateTime::parse_from_rfc3339("2026-12-03T10:00:00.5Z")
        .unwrap()
        .with_timezone(&Utc);
    let score = ScoreInput {
        user: "stu-1".into(),
        score_given: Some(212.0),
        activity_progress: "Completed".into(),
        grading_progress: "FullyGraded".into(),
        comment: None,
    };
    let body = score_body(&score, "sub-9", 350.0, stamp);
    assert_eq!(body["userId"], "sub-9");
    assert_eq!(body["timestamp"], "2026-12-03T10:00:00.500Z");
    assert_eq!(body["scoreMaximum"], 350.0);
    assert!(body.get("comment").is_none());
    let pending = ScoreInput {
        score_given: None,
        ..score
    };
    let body = score_body(&pending, "sub-9", 350.0, stamp);
    assert!(
        body.get("scoreGiven").is_none() && body.get("scoreMaximum").is_none(),
        "{body}"
    );
}

#[test]
fn line_items_match_by_resource_id_and_tag_else_by_label() {
    let spec = LineItemSpec {
        label: "MAP Growth Math".into(),
        score_maximum: 350.0,
        resource_id: Some("map-math".into()),
        tag: Some("map".into()),
    };
    assert!(matches(
        &json!({"resourceId": "map-math", "tag": "map", "label": "other"}),
        &spec
    ));
    assert!(!matches(
        &json!({"resourceId": "map-math", "tag": "quiz"}),
        &spec
    ));
    assert!(!matches(&json!({"label": "MAP Growth Math"}), &spec));
    let by_label = LineItemSpec {
        resource_id: None,
        tag: None,
        ..spec
    };
    assert!(matches(&json!({"label": "MAP Growth Math"}), &by_label));
}

#[test]
fn a_line_item_on_another_host_is_refused() {
    let from = Url::parse("https://lms.example/lineitems").unwrap();
    assert!(item_url(&json!({"id": "https://lms.example/lineitems/1"}), &from, "").is_ok());
    for bad in [
        json!({"id": "https://evil.example/lineitems/1"}),
        json!({"id": 3}),
        json!({}),
    ] {
        assert!(
            matches!(item_url(&bad, &from, ""), Err(GradeError::BadAnswer { .. })),
            "{bad}"
        );
    }
}
