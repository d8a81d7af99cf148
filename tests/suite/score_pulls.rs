//! Scores pulled from an assessment partner's results API (a connection of kind
//! `assessment-rest`), against the in-library partner that serves
//! contracts/partner-results.openapi.json: paging, the API key on every request, a delta from
//! the cursor, a 429, a 500 and a token revoked mid-pull outlasted, a bad page refusing the
//! whole pull, and pulls as jobs over HTTP. On both databases.

use crate::common;

use std::process::Output;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rostergate::domain::connection::DELTA_OVERLAP_SECS;
use rostergate::synthetic::partner::{
    generated_results, FaultAction, Partner, PartnerConfig, PartnerRequest,
};
use serde_json::{json, Value};

use crate::common::{json_of, printed, school, TestApp, MASTER_KEY, OPERATOR_TOKEN};

const CLIENT_ID: &str = "rostergate";
const CLIENT_SECRET: &str = "partner-client-secret-7c1d";
const API_KEY: &str = "partner-api-key-5e2b9f";
const CONNECTION: &str = "map";
const FAST_POLL: (&str, &str) = ("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50");

/// A rostered district (students stu-1..3 carry the identifiers S1..S3, as the generated
/// results name their students) and a partner holding `results`, asking for an API key.
async fn setup(app: &TestApp, results: usize) -> Partner {
    setup_with(app, results, partner_config()).await
}

fn partner_config() -> PartnerConfig {
    PartnerConfig::new(CLIENT_ID, CLIENT_SECRET).with_api_key("apikey", API_KEY)
}

async fn setup_with(app: &TestApp, results: usize, config: PartnerConfig) -> Partner {
    app.create_district("lincoln").await;
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    assert_eq!(status, 200, "{body}");
    Partner::start(config, generated_results(results, 7)).unwrap()
}

/// Runs `rostergate ARGS` on the app's database and key, with retries shrunk.
async fn cli(app: &TestApp, work: &std::path::Path, args: Vec<String>) -> Output {
    let mut command = common::rostergate_command(&app.db.url, work);
    command
        .args(args)
        .env("ROSTERGATE_SECRET_KEY", MASTER_KEY)
        .env("ROSTERGATE_DATA_DIR", app.data_dir.path())
        .env("ROSTERGATE_OUTBOUND__INITIAL_BACKOFF_MS", "10")
        .env("ROSTERGATE_OUTBOUND__MAX_BACKOFF_SECS", "1");
    // The partner runs on this test's runtime: wait off it.
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `connection add` for the partner, the API key read from a file; `extra` flags after.
async fn add_connection(
    app: &TestApp,
    work: &std::path::Path,
    partner: &Partner,
    api_key: &str,
    extra: &[&str],
) -> Output {
    let key_file = work.join("api-key");
    std::fs::write(&key_file, format!("{api_key}\n")).unwrap();
    let mut list = args(&[
        "connection",
        "add",
        "--district",
        "lincoln",
        "--name",
        CONNECTION,
        "--kind",
        "assessment-rest",
        "--auth",
        "oauth2",
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--delta-schedule",
        "off",
        "--full-schedule",
        "off",
        "--requests-per-second",
        "1000",
    ]);
    list.extend([
        "--base-url".to_string(),
        partner.base_url(),
        "--token-url".to_string(),
        partner.token_url(),
        "--api-key-file".to_string(),
        key_file.display().to_string(),
    ]);
    list.extend(args(extra));
    cli(app, work, list).await
}

/// `scores pull --json`: the exit code and the report.
async fn pull(app: &TestApp, work: &std::path::Path, extra: &[&str]) -> (i32, Value, Output) {
    let mut list = args(&[
        "scores",
        "pull",
        "--district",
        "lincoln",
        "--connection",
        CONNECTION,
        "--json",
    ]);
    list.extend(args(extra));
    let out = cli(app, work, list).await;
    (out.status.code().unwrap_or(-1), json_of(&out), out)
}

/// The connection as `connection list --json` shows it.
async fn listed(app: &TestApp, work: &std::path::Path) -> Value {
    let out = cli(
        app,
        work,
        args(&["connection", "list", "--district", "lincoln", "--json"]),
    )
    .await;
    assert!(out.status.success(), "{}", printed(&out));
    json_of(&out)["connections"][0].clone()
}

fn results_requests(partner: &Partner) -> Vec<PartnerRequest> {
    partner
        .requests()
        .into_iter()
        .filter(PartnerRequest::is_results_request)
        .collect()
}

async fn results_of(app: &TestApp, student: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/lincoln/students/{student}/results"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().unwrap().clone()
}

async fn math_placements(app: &TestApp, student: &str) -> usize {
    let (status, plan) = app
        .get(
            &format!("/api/v1/districts/lincoln/students/{student}/plan"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    plan["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "math")
        .map_or(0, |s| {
            s["goal_areas"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| !a["effective"].is_null())
                .count()
        })
}

fn cursor_of(connection: &Value) -> DateTime<Utc> {
    connection["delta_cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("no cursor in {connection}"))
        .parse()
        .unwrap()
}

on_every_backend!(
    a_partner_pull_pages_through_every_result_sending_the_api_key_and_places_the_rostered_students,
    |app| {
        let partner = setup(&app, 2_500).await;
        let work = tempfile::tempdir().unwrap();
        let out = add_connection(&app, work.path(), &partner, API_KEY, &[]).await;
        assert!(out.status.success(), "{}", printed(&out));
        assert!(!printed(&out).contains(API_KEY), "the key is never printed");

        let (code, report, out) = pull(&app, work.path(), &[]).await;
        assert_eq!(code, 0, "{}", printed(&out));
        assert_eq!(report["status"], "applied", "{report}");
        assert_eq!(report["source"], "pull");
        assert_eq!(report["received"], 2_500);
        assert_eq!(report["new"], 2_500);
        assert_eq!(report["matched"], 3, "S1..S3 are rostered");
        assert_eq!(
            report["unmatched"], 2_497,
            "kept for when they are rostered"
        );
        assert_eq!(report["students_placed"], 3);

        // One token, three pages of the default 1,000, every request with the key; the first
        // pull asks for everything.
        let requests = partner.requests();
        assert_eq!(requests.iter().filter(|r| r.is_token_request()).count(), 1);
        let pages = results_requests(&partner);
        assert_eq!(pages.len(), 3, "{pages:?}");
        assert!(requests.iter().all(|r| r.api_key), "{requests:?}");
        assert!(pages.iter().all(|r| r.param("modified_since").is_none()));
        assert!(pages
            .iter()
            .all(|r| r.param("limit").as_deref() == Some("1000")));
        assert_eq!(pages[0].param("page_token"), None);
        assert!(pages[1].param("page_token").is_some());

        assert_eq!(results_of(&app, "stu-1").await.len(), 1);
        assert_eq!(
            math_placements(&app, "stu-2").await,
            5,
            "five goal areas placed"
        );
        // The cursor is the newest modified_at: the 2,500th result, a second apart from the first.
        let connection = listed(&app, work.path()).await;
        assert_eq!(
            cursor_of(&connection),
            "2026-11-01T00:41:39Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(connection["kind"], "assessment-rest");
        assert_eq!(connection["version"], "1");
        assert_eq!(connection["api_key"], "set");
        assert_eq!(connection["auth"]["api_key_header"], "apikey");
        assert!(!connection.to_string().contains(API_KEY));

        // The key is sealed at rest, as the secret is.
        let db = rostergate::store::Db::connect(&app.db.url).await.unwrap();
        let rows = db
            .conn()
            .text_rows("SELECT secret, api_key FROM connections", &[])
            .await
            .unwrap();
        db.close().await;
        assert_eq!(rows.len(), 1);
        for value in &rows[0] {
            let value = value.as_deref().unwrap();
            assert!(
                value.starts_with("v1:") && !value.contains(API_KEY),
                "{value}"
            );
        }
        partner.stop().await;
    }
);

on_every_backend!(
    a_second_pull_asks_for_changes_since_the_cursor_and_applies_only_them,
    |app| {
        let partner = setup(&app, 1_200).await;
        let work = tempfile::tempdir().unwrap();
        let out = add_connection(
            &app,
            work.path(),
            &partner,
            API_KEY,
            &["--page-size", "500"],
        )
        .await;
        assert!(out.status.success(), "{}", printed(&out));
        let (code, first, _) = pull(&app, work.path(), &[]).await;
        assert_eq!(code, 0, "{first}");
        let cursor = cursor_of(&listed(&app, work.path()).await);

        // S1's result is restated (same test_id, another RIT), an hour after the cursor.
        let (_, mut restated) = generated_results(1, 7).remove(0);
        restated["rit"] = json!(240);
        restated["goals"][0]["rit"] = json!(240);
        let later = cursor + chrono::Duration::hours(1);
        partner.results().add(later, restated);
        partner.clear_requests();

        let (code, second, out) = pull(&app, work.path(), &[]).await;
        assert_eq!(code, 0, "{}", printed(&out));
        let pages = results_requests(&partner);
        let since: DateTime<Utc> = pages[0].param("modified_since").unwrap().parse().unwrap();
        assert_eq!(
            since,
            cursor - chrono::Duration::seconds(DELTA_OVERLAP_SECS)
        );
        assert!(pages
            .iter()
            .all(|r| r.param("limit").as_deref() == Some("500")));
        // The overlap's 300 results (one a second) come again and change nothing.
        assert_eq!(second["restated"], 1, "{second}");
        assert_eq!(second["new"], 0, "{second}");
        assert_eq!(
            second["unchanged"],
            second["received"].as_u64().unwrap() - 1
        );
        assert_eq!(second["students_placed"], 1, "{second}");
        let s1 = results_of(&app, "stu-1").await;
        assert_eq!(
            s1.len(),
            1,
            "a restatement replaces, it does not add: {s1:?}"
        );
        assert_eq!(s1[0]["rit"], 240, "{s1:?}");
        assert_eq!(cursor_of(&listed(&app, work.path()).await), later);

        // --full asks for everything again, and everything is unchanged.
        partner.clear_requests();
        let (code, full, _) = pull(&app, work.path(), &["--full"]).await;
        assert_eq!(code, 0, "{full}");
        assert!(results_requests(&partner)
            .iter()
            .all(|r| r.param("modified_since").is_none()));
        // The partner still serves S1's first version too: within one pull the later one wins.
        assert_eq!(full["received"], 1_201);
        assert_eq!(full["unchanged"], 1_200, "{full}");
        assert_eq!(full["restated"], 0, "{full}");
        assert_eq!(results_of(&app, "stu-1").await[0]["rit"], 240);
        partner.stop().await;
    }
);

on_every_backend!(
    a_partner_pull_outlasts_a_429_a_500_and_a_token_revoked_mid_pull,
    |app| {
        // Each token answers one page; the second page finds it revoked.
        let mut config = partner_config();
        config.oauth2.revoke_after_requests = Some(1);
        let partner = setup_with(&app, 2_000, config).await;
        let work = tempfile::tempdir().unwrap();
        let out = add_connection(&app, work.path(), &partner, API_KEY, &[]).await;
        assert!(out.status.success(), "{}", printed(&out));
        let faults = partner.faults();
        faults.on_path(
            "results",
            FaultAction::TooManyRequests {
                retry_after_secs: 1,
            },
            1,
        );
        faults.on_path("results", FaultAction::Status(500), 1);

        let (code, report, out) = pull(&app, work.path(), &[]).await;
        assert_eq!(code, 0, "{}", printed(&out));
        assert_eq!(report["received"], 2_000, "{report}");
        let statuses: Vec<u16> = results_requests(&partner)
            .iter()
            .map(|r| r.status)
            .collect();
        assert!(
            statuses.contains(&429) && statuses.contains(&500) && statuses.contains(&401),
            "{statuses:?}"
        );
        let tokens = partner
            .requests()
            .iter()
            .filter(|r| r.is_token_request())
            .count();
        assert_eq!(tokens, 2, "a new token after the 401, once");
        partner.stop().await;
    }
);

on_every_backend!(
    a_page_that_cannot_be_read_refuses_the_whole_pull_and_leaves_the_cursor,
    |app| {
        let partner = setup(&app, 1_500).await;
        let work = tempfile::tempdir().unwrap();
        let out = add_connection(&app, work.path(), &partner, API_KEY, &[]).await;
        assert!(out.status.success(), "{}", printed(&out));

        // The second page's first result comes without its RIT.
        partner.faults().push(
            rostergate::synthetic::partner::FaultTrigger::RequestNumber(2),
            FaultAction::MissingField("rit".into()),
            1,
        );
        let (code, report, out) = pull(&app, work.path(), &[]).await;
        assert_eq!(code, 1, "{}", printed(&out));
        assert_eq!(report["status"], "refused", "{report}");
        let error = &report["errors"][0];
        assert_eq!(error["endpoint"], "GET /results", "{report}");
        assert_eq!(error["offset"], 1_000, "{report}");
        assert_eq!(error["field"], "/results/0/result/rit", "{report}");
        assert!(results_of(&app, "stu-1").await.is_empty(), "nothing stored");
        assert!(listed(&app, work.path()).await["delta_cursor"].is_null());

        // A body that is not JSON is refused the same way.
        partner.faults().next(FaultAction::MalformedJson);
        let (code, report, _) = pull(&app, work.path(), &[]).await;
        assert_eq!(code, 1, "{report}");
        let message = report["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("not valid JSON"), "{report}");

        // Next time the partner is well, the pull starts from the beginning and applies.
        partner.clear_requests();
        let (code, report, _) = pull(&app, work.path(), &[]).await;
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["received"], 1_500);
        assert!(results_requests(&partner)
            .iter()
            .all(|r| r.param("modified_since").is_none()));
        partner.stop().await;
    }
);

on_every_backend!(
    a_wrong_api_key_fails_the_pull_clearly_without_showing_the_key,
    |app| {
        let partner = setup(&app, 10).await;
        let work = tempfile::tempdir().unwrap();
        let wrong = "not-the-partner-key-0042";
        let out = add_connection(&app, work.path(), &partner, wrong, &[]).await;
        assert!(out.status.success(), "{}", printed(&out));
        let (code, _, out) = pull(&app, work.path(), &[]).await;
        assert_eq!(code, 1, "{}", printed(&out));
        let text = printed(&out);
        // The token request already fails, with what the partner said.
        assert!(
            text.contains("token request") && text.contains("API key"),
            "{text}"
        );
        assert!(
            !text.contains(wrong) && !text.contains(CLIENT_SECRET),
            "{text}"
        );
        assert!(results_of(&app, "stu-1").await.is_empty());

        // A roster pull of a score connection names the command that pulls it.
        let out = cli(
            &app,
            work.path(),
            args(&[
                "sync",
                "pull",
                "--district",
                "lincoln",
                "--connection",
                CONNECTION,
            ]),
        )
        .await;
        assert!(!out.status.success());
        assert!(
            printed(&out).contains("rostergate scores pull"),
            "{}",
            printed(&out)
        );
        partner.stop().await;
    }
);

/// Polls a job until it has finished; panics after `within`.
async fn finished_job(app: &TestApp, job_id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, job) = app
            .get(
                &format!("/api/v1/districts/lincoln/jobs/{job_id}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{job}");
        if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
            return job;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_pull(app: &TestApp, district: &str, token: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!(
            "/api/v1/districts/{district}/connections/{CONNECTION}/pulls"
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

on_every_backend!(
    a_score_pull_asked_for_over_http_runs_as_a_job_that_needs_scores_write,
    with & [FAST_POLL],
    |app| {
        let partner = setup(&app, 50).await;
        app.create_district("madison").await;
        let body = json!({
            "name": CONNECTION,
            "kind": "assessment-rest",
            "base_url": partner.base_url(),
            "auth": { "type": "oauth2", "token_url": partner.token_url(), "client_id": CLIENT_ID },
            "secret": CLIENT_SECRET,
            "api_key": API_KEY,
            "schedule": { "delta": null, "full": null },
        });
        let (status, created) = app
            .post_json(
                "/api/v1/districts/lincoln/connections",
                OPERATOR_TOKEN,
                &body,
            )
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["api_key"], "set");
        assert_eq!(created["version"], "1");
        assert!(!created.to_string().contains(API_KEY), "{created}");

        // A header without a key, and a key for OAuth 1.0a, are refused at their pointers.
        let mut headless = body.clone();
        headless["name"] = json!("other");
        headless["auth"]["api_key_header"] = json!("x-api-key");
        headless.as_object_mut().unwrap().remove("api_key");
        let (status, refused) = app
            .post_json(
                "/api/v1/districts/lincoln/connections",
                OPERATOR_TOKEN,
                &headless,
            )
            .await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(
            refused["error"]["details"][0]["pointer"], "/api_key",
            "{refused}"
        );

        let roster_writer = app.token_for("lincoln", &["roster:write"]).await;
        let (status, refused) = post_pull(&app, "lincoln", &roster_writer).await;
        assert_eq!(status, 403, "{refused}");
        let elsewhere = app.token_for("madison", &["scores:write"]).await;
        let (status, refused) = post_pull(&app, "lincoln", &elsewhere).await;
        assert_eq!(status, 404, "{refused}");

        let scorer = app.token_for("lincoln", &["scores:write"]).await;
        let (status, job) = post_pull(&app, "lincoln", &scorer).await;
        assert_eq!(status, 202, "{job}");
        let job = finished_job(&app, job["id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["result"]["status"], "applied", "{job}");
        assert_eq!(job["result"]["received"], 50, "{job}");
        assert!(job["result"]["import_id"]
            .as_str()
            .unwrap()
            .starts_with("scores-"));
        assert_eq!(results_of(&app, "stu-3").await.len(), 1);
        assert!(partner.requests().iter().all(|r| r.api_key));
        partner.stop().await;
    }
);

const FAST_SCHEDULE: (&str, &str) = ("ROSTERGATE_JOBS__SCHEDULE_INTERVAL_MS", "100");

on_every_backend!(
    a_scheduled_score_pull_happens_by_itself,
    with & [FAST_POLL, FAST_SCHEDULE],
    |app| {
        let partner = setup(&app, 20).await;
        let body = json!({
            "name": CONNECTION,
            "kind": "assessment-rest",
            "base_url": partner.base_url(),
            "auth": { "type": "oauth2", "token_url": partner.token_url(), "client_id": CLIENT_ID },
            "secret": CLIENT_SECRET,
            "api_key": API_KEY,
            "schedule": { "delta": "every 1m", "full": null },
        });
        let (status, created) = app
            .post_json(
                "/api/v1/districts/lincoln/connections",
                OPERATOR_TOKEN,
                &body,
            )
            .await;
        assert_eq!(status, 201, "{created}");

        let deadline = Instant::now() + Duration::from_secs(30);
        let job = loop {
            let (status, listed) = app
                .get("/api/v1/districts/lincoln/jobs?kind=pull", OPERATOR_TOKEN)
                .await;
            assert_eq!(status, 200, "{listed}");
            if let Some(job) = listed["jobs"].as_array().unwrap().first() {
                break job.clone();
            }
            assert!(Instant::now() < deadline, "no pull was scheduled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let done = finished_job(&app, job["id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["result"]["status"], "applied", "{done}");
        assert_eq!(done["result"]["received"], 20, "{done}");
        assert_eq!(results_of(&app, "stu-1").await.len(), 1);
        partner.stop().await;
    }
);
