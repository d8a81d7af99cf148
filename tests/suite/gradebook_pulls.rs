//! Assessment results pulled from a SIS's OneRoster 1.2 gradebook service (a connection of kind
//! `oneroster-assessment-results`), against the in-library gradebook: tests and their goal-area
//! line items put together into test events, what is not a MAP-style result skipped with a
//! warning, a delta from the cursor, and a record that cannot be read refusing the pull. On
//! both databases.

use crate::common;

use std::process::Output;

use chrono::{DateTime, Utc};
use rostergate::domain::connection::DELTA_OVERLAP_SECS;
use rostergate::synthetic::gradebook::{
    generated_assessments, FaultAction, Gradebook, GradebookConfig, GradebookRequest,
};
use serde_json::{json, Value};

use crate::common::{json_of, printed, school, TestApp, MASTER_KEY, OPERATOR_TOKEN};

const CLIENT_ID: &str = "rostergate";
const CLIENT_SECRET: &str = "gradebook-client-secret-91ae";
const CONNECTION: &str = "sis-scores";
const GRADEBOOK_SCOPE: &str = "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.readonly";

/// What a gradebook holds besides MAP-style tests: a quiz (no subject a plan covers) with a
/// result, and an exempt student on the math test.
fn extras() -> (Vec<Value>, Vec<Value>) {
    let items = vec![json!({
        "sourcedId": "ali-quiz-3", "status": "active",
        "dateLastModified": "2026-10-01T00:00:00.000Z", "title": "Unit 3 quiz"
    })];
    let results = vec![
        json!({
            "sourcedId": "quiz-1", "status": "active",
            "dateLastModified": "2026-11-01T00:00:01.000Z",
            "assessmentLineItem": {"sourcedId": "ali-quiz-3", "type": "assessmentLineItem"},
            "student": {"sourcedId": "stu-1", "type": "user"},
            "scoreDate": "2026-10-02", "scoreStatus": "fully graded", "score": 8.0
        }),
        json!({
            "sourcedId": "exempt-4", "status": "active",
            "dateLastModified": "2026-11-01T00:00:01.000Z",
            "assessmentLineItem": {"sourcedId": "ali-math-fall-2026", "type": "assessmentLineItem"},
            "student": {"sourcedId": "stu-4", "type": "user"},
            "scoreDate": "2026-09-15T10:00:00Z", "scoreStatus": "exempt"
        }),
    ];
    (items, results)
}

/// A rostered district (students stu-1..3) and its SIS gradebook: the math test of students
/// 1..3 (with their five goal areas), and the extras.
async fn setup(app: &TestApp) -> Gradebook {
    app.create_district("lincoln").await;
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    assert_eq!(status, 200, "{body}");
    let (mut items, mut results) = generated_assessments(3, 7);
    let (more_items, more_results) = extras();
    items.extend(more_items);
    results.extend(more_results);
    let mut config = GradebookConfig::new(CLIENT_ID, CLIENT_SECRET);
    // The connection asks for the gradebook scope without being told.
    config.oauth2.required_scope = Some(GRADEBOOK_SCOPE.into());
    Gradebook::start(config, items, results).unwrap()
}

async fn cli(app: &TestApp, work: &std::path::Path, args: &[&str]) -> Output {
    let mut command = common::rostergate_command(&app.db.url, work);
    command
        .args(args)
        .env("ROSTERGATE_SECRET_KEY", MASTER_KEY)
        .env("ROSTERGATE_DATA_DIR", app.data_dir.path())
        .env("ROSTERGATE_OUTBOUND__INITIAL_BACKOFF_MS", "10")
        .env("ROSTERGATE_OUTBOUND__MAX_BACKOFF_SECS", "1");
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

async fn add_connection(app: &TestApp, work: &std::path::Path, gradebook: &Gradebook) {
    let (base, token) = (gradebook.base_url(), gradebook.token_url());
    let out = cli(
        app,
        work,
        &[
            "connection",
            "add",
            "--district",
            "lincoln",
            "--name",
            CONNECTION,
            "--kind",
            "oneroster-assessment-results",
            "--base-url",
            &base,
            "--auth",
            "oauth2",
            "--token-url",
            &token,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--page-size",
            "4",
            "--delta-schedule",
            "off",
            "--full-schedule",
            "off",
            "--requests-per-second",
            "1000",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", printed(&out));
}

async fn pull(app: &TestApp, work: &std::path::Path) -> (i32, Value, Output) {
    let out = cli(
        app,
        work,
        &[
            "scores",
            "pull",
            "--district",
            "lincoln",
            "--connection",
            CONNECTION,
            "--json",
        ],
    )
    .await;
    (out.status.code().unwrap_or(-1), json_of(&out), out)
}

async fn cursor(app: &TestApp, work: &std::path::Path) -> Value {
    let out = cli(
        app,
        work,
        &["connection", "list", "--district", "lincoln", "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", printed(&out));
    json_of(&out)["connections"][0]["delta_cursor"].clone()
}

async fn student_results(app: &TestApp, student: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/lincoln/students/{student}/results"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().unwrap().clone()
}

/// One of the generated results, as the gradebook first served it.
fn generated(sourced_id: &str) -> Value {
    generated_assessments(3, 7)
        .1
        .into_iter()
        .find(|r| r["sourcedId"] == sourced_id)
        .unwrap()
}

fn results_requests(gradebook: &Gradebook) -> Vec<GradebookRequest> {
    gradebook
        .requests()
        .into_iter()
        .filter(GradebookRequest::is_results_request)
        .collect()
}

fn warned(report: &Value, field: &str) -> u64 {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["field"] == field)
        .map(|w| w["occurrences"].as_u64().unwrap_or(1))
        .sum()
}

on_every_backend!(
    a_gradebooks_tests_and_goal_areas_become_placed_test_events,
    |app| {
        let gradebook = setup(&app).await;
        let work = tempfile::tempdir().unwrap();
        add_connection(&app, work.path(), &gradebook).await;

        let (code, report, out) = pull(&app, work.path()).await;
        assert_eq!(code, 0, "{}", printed(&out));
        assert_eq!(report["status"], "applied", "{report}");
        assert_eq!(report["received"], 3, "one event per student: {report}");
        assert_eq!(report["matched"], 3, "{report}");
        assert_eq!(report["students_placed"], 3, "{report}");
        assert_eq!(
            warned(&report, "scoreStatus"),
            1,
            "the exempt one: {report}"
        );
        assert_eq!(
            warned(&report, "assessmentLineItem"),
            1,
            "the quiz: {report}"
        );

        // Every line item, then every result; pages of four; no filter on a first pull.
        let requests = gradebook.requests();
        assert!(requests.iter().any(GradebookRequest::is_line_items_request));
        let pages = results_requests(&gradebook);
        assert_eq!(
            pages.len(),
            5,
            "20 results by 4 (the Link header says which is last): {pages:?}"
        );
        assert!(pages.iter().all(|r| r.param("filter").is_none()));

        let results = student_results(&app, "stu-2").await;
        assert_eq!(results.len(), 1, "{results:?}");
        let r = &results[0];
        assert_eq!(r["subject"], "Mathematics", "{r}");
        assert_eq!(r["term"], "Fall 2026-2027", "{r}");
        assert_eq!(r["test_id"], "ar-2", "{r}");
        assert_eq!(r["goals"].as_array().unwrap().len(), 5, "{r}");
        let (status, plan) = app
            .get(
                "/api/v1/districts/lincoln/students/stu-2/plan",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{plan}");
        assert_eq!(
            plan["subjects"][0]["goal_areas"].as_array().unwrap().len(),
            5,
            "{plan}"
        );
        let expected: DateTime<Utc> = "2026-11-01T00:00:03Z".parse().unwrap();
        let stored: DateTime<Utc> = cursor(&app, work.path())
            .await
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(stored, expected, "the newest dateLastModified");

        // A second pull asks for what changed since the cursor, less the overlap: a restated
        // overall score moves the result.
        let mut restated = generated("ar-1");
        restated["score"] = json!(244.0);
        restated["dateLastModified"] = json!("2026-11-05T09:00:00.000Z");
        assert!(gradebook.data().replace_result("ar-1", restated));
        gradebook.clear_requests();
        let (code, report, out) = pull(&app, work.path()).await;
        assert_eq!(code, 0, "{}", printed(&out));
        let since = (expected - chrono::Duration::seconds(DELTA_OVERLAP_SECS))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let pages = results_requests(&gradebook);
        assert_eq!(
            pages[0].param("filter"),
            Some(format!("dateLastModified>'{since}'"))
        );
        assert_eq!(report["restated"], 1, "{report}");
        assert_eq!(student_results(&app, "stu-1").await[0]["rit"], 244);
        gradebook.stop().await;
    }
);

on_every_backend!(
    a_result_that_cannot_be_read_refuses_the_pull_naming_its_record_and_field,
    |app| {
        let gradebook = setup(&app).await;
        let work = tempfile::tempdir().unwrap();
        add_connection(&app, work.path(), &gradebook).await;
        let mut broken = generated("ar-3");
        broken["scoreDate"] = json!("15/09/2026");
        assert!(gradebook.data().replace_result("ar-3", broken));

        let (code, report, out) = pull(&app, work.path()).await;
        assert_eq!(code, 1, "{}", printed(&out));
        assert_eq!(report["status"], "refused", "{report}");
        let error = &report["errors"][0];
        assert_eq!(error["endpoint"], "GET /assessmentResults", "{report}");
        assert_eq!(error["sourcedId"], "ar-3", "{report}");
        assert_eq!(error["field"], "scoreDate", "{report}");
        assert!(
            student_results(&app, "stu-1").await.is_empty(),
            "nothing stored"
        );
        assert!(cursor(&app, work.path()).await.is_null());

        // A page the gradebook breaks fails the pull the same way, and the next pull applies.
        assert!(gradebook.data().replace_result("ar-3", generated("ar-3")));
        gradebook
            .faults()
            .on_path("assessmentResults", FaultAction::MalformedJson, 1);
        let (code, report, _) = pull(&app, work.path()).await;
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["errors"][0]["endpoint"], "GET /assessmentResults");
        let (code, report, _) = pull(&app, work.path()).await;
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["received"], 3);
        gradebook.stop().await;
    }
);
