//! Pulls as background work, black-box: a pull asked for over HTTP runs as a job and names the
//! run it made; a pull whose district is busy waits without asking its source for anything; a
//! `sync pull` killed mid-fetch leaves nothing applied and the next one completes; a schedule
//! makes its pull by itself, one job per slot; and two gateways on one PostgreSQL database never
//! run one schedule slot twice. Against the synthetic OneRoster provider, on SQLite and
//! PostgreSQL.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{backends, Backend, TestApp, TestDb, OPERATOR_TOKEN};
use rostergate::store::Db;
use rostergate::synthetic::provider::{
    FaultAction, Oauth2Settings, OneRosterVersion, Provider, ProviderAuth, ProviderConfig, Roster,
};
use serde_json::{json, Value};

const CLIENT_ID: &str = "gateway";
const CLIENT_SECRET: &str = "provider-client-secret-3f9a";
/// A runner that looks for work often, so that a queued pull starts at once.
const FAST_POLL: (&str, &str) = ("ROSTERGATE_JOBS__POLL_INTERVAL_MS", "50");
/// A scheduler that reads the schedules often, so that a due slot is enqueued at once.
const FAST_SCHEDULE: (&str, &str) = ("ROSTERGATE_JOBS__SCHEDULE_INTERVAL_MS", "100");
/// A pull whose district is busy with another pull tries again soon.
const BUSY_RETRY: (&str, &str) = ("ROSTERGATE_JOBS__BUSY_RETRY_SECS", "1");
/// The users of [`Roster::small_school`].
const USERS: [&str; 6] = ["stu-1", "stu-2", "stu-3", "stu-4", "tch-1", "tch-2"];

async fn provider() -> Provider {
    let auth = ProviderAuth::Oauth2(Oauth2Settings::new(CLIENT_ID, CLIENT_SECRET));
    Provider::start(
        ProviderConfig::new(OneRosterVersion::V1_2, auth),
        Roster::small_school(),
    )
    .await
    .expect("the provider starts")
}

/// How many times the provider was asked for the first page of a collection (`orgs` is the
/// first a pull reads, `enrollments` the last).
fn first_pages(provider: &Provider, collection: &str) -> usize {
    provider
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.path.ends_with(&format!("/{collection}"))
                && r.query.split('&').any(|p| p == "offset=0")
        })
        .count()
}

/// A create body for a connection to `provider` with these schedules (`null` is off).
fn connection_body(name: &str, provider: &Provider, delta: Value, full: Value) -> Value {
    json!({
        "name": name,
        "kind": "oneroster-rest",
        "version": "1.2",
        "base_url": provider.base_url(),
        "auth": { "type": "oauth2", "token_url": provider.token_url(), "client_id": CLIENT_ID },
        "secret": CLIENT_SECRET,
        "schedule": { "delta": delta, "full": full },
    })
}

async fn add_connection(app: &TestApp, district: &str, body: &Value) {
    let (status, created) = app
        .post_json(
            &format!("/api/v1/districts/{district}/connections"),
            OPERATOR_TOKEN,
            body,
        )
        .await;
    assert_eq!(status, 201, "{created}");
}

/// Polls a job until it has finished; panics after `within`.
async fn finished_job(app: &TestApp, district: &str, job_id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, job) = app
            .get(
                &format!("/api/v1/districts/{district}/jobs/{job_id}"),
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

async fn pull_jobs(app: &TestApp, district: &str) -> Vec<Value> {
    let (status, listed) = app
        .get(
            &format!("/api/v1/districts/{district}/jobs?kind=pull&limit=100"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    listed["jobs"].as_array().unwrap().clone()
}

/// The sourcedIds of the district's users, as the API lists them.
async fn user_ids(app: &TestApp, district: &str) -> Vec<String> {
    let (status, users) = app
        .get(
            &format!("/api/v1/districts/{district}/users?limit=100"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{users}");
    let mut ids: Vec<String> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["sourcedId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Asks for a pull: the status, the `Location` header and the body.
async fn post_pull(app: &TestApp, path: &str, token: &str) -> (u16, Option<String>, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("Location")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        location,
        response.json().await.unwrap_or(Value::Null),
    )
}

on_every_backend!(
    a_pull_asked_for_over_http_runs_as_a_job_that_names_its_applied_run,
    with & [FAST_POLL],
    |app| {
        let provider = provider().await;
        app.create_district("lincoln").await;
        app.create_district("madison").await;
        add_connection(
            &app,
            "lincoln",
            &connection_body("sis", &provider, Value::Null, Value::Null),
        )
        .await;
        // The first page of orgs takes a while, so the first pull is still running when the
        // second is asked for.
        provider
            .faults()
            .on_path("orgs", FaultAction::Delay(Duration::from_millis(1500)), 1);
        let pulls = "/api/v1/districts/lincoln/connections/sis/pulls";

        let (status, location, job) = post_pull(&app, pulls, OPERATOR_TOKEN).await;
        assert_eq!(status, 202, "{job}");
        let job_id = job["id"].as_str().unwrap().to_string();
        assert_eq!(
            location.as_deref(),
            Some(format!("/api/v1/districts/lincoln/jobs/{job_id}").as_str())
        );
        assert_eq!(job["kind"], "pull");
        assert_eq!(
            job["payload"],
            json!({ "connection": "sis", "full": false })
        );
        assert!(
            matches!(job["status"].as_str(), Some("queued" | "running")),
            "{job}"
        );

        let (status, _, refused) = post_pull(&app, pulls, OPERATOR_TOKEN).await;
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["error"]["code"], "pull_in_progress", "{refused}");
        let (status, _, refused) = post_pull(
            &app,
            "/api/v1/districts/lincoln/connections/nope/pulls",
            OPERATOR_TOKEN,
        )
        .await;
        assert_eq!(status, 404, "{refused}");
        let madison = app.token_for("madison", &["roster:write"]).await;
        let (status, _, refused) = post_pull(&app, pulls, &madison).await;
        assert_eq!(
            status, 404,
            "another district's client sees no such district: {refused}"
        );
        let (status, _, refused) =
            post_pull(&app, &format!("{pulls}?full=maybe"), OPERATOR_TOKEN).await;
        assert_eq!(status, 400, "{refused}");

        let done = finished_job(&app, "lincoln", &job_id, Duration::from_secs(20)).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1, "{done}");
        assert_eq!(done["result"]["status"], "applied", "{done}");
        assert_eq!(done["result"]["full"], false, "{done}");
        let run_id = done["result"]["run_id"].as_str().unwrap();
        let (status, run) = app
            .get(
                &format!("/api/v1/districts/lincoln/runs/{run_id}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["status"], "applied", "{run}");
        assert_eq!(user_ids(&app, "lincoln").await, USERS);
        assert_eq!(
            first_pages(&provider, "orgs"),
            1,
            "the refused requests pulled nothing"
        );
        assert!(user_ids(&app, "madison").await.is_empty());

        // Once it has finished, the connection can be pulled again; a full pull says so.
        let (status, _, again) =
            post_pull(&app, &format!("{pulls}?full=true"), OPERATOR_TOKEN).await;
        assert_eq!(status, 202, "{again}");
        let again = finished_job(
            &app,
            "lincoln",
            again["id"].as_str().unwrap(),
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(again["status"], "succeeded", "{again}");
        assert_eq!(again["result"]["full"], true, "{again}");
        assert_ne!(again["result"]["run_id"].as_str(), Some(run_id));
        provider.stop().await;
    }
);

on_every_backend!(
    a_pull_finding_its_district_busy_waits_without_asking_its_source_or_using_an_attempt,
    with & [FAST_POLL, BUSY_RETRY, ("ROSTERGATE_JOBS__CONCURRENCY", "2")],
    |app| {
        let (slow, waiting) = (provider().await, provider().await);
        app.create_district("lincoln").await;
        for (name, provider) in [("slow", &slow), ("waiting", &waiting)] {
            add_connection(
                &app,
                "lincoln",
                &connection_body(name, provider, Value::Null, Value::Null),
            )
            .await;
        }
        slow.faults()
            .on_path("orgs", FaultAction::Delay(Duration::from_millis(2500)), 1);
        let pull = |name: &str| format!("/api/v1/districts/lincoln/connections/{name}/pulls");
        let (status, _, first) = post_pull(&app, &pull("slow"), OPERATOR_TOKEN).await;
        assert_eq!(status, 202, "{first}");
        // The slow pull holds the district once its source has been asked for orgs.
        let deadline = Instant::now() + Duration::from_secs(10);
        while slow.faults().pending() > 0 {
            assert!(Instant::now() < deadline, "the slow pull did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let (status, _, second) = post_pull(&app, &pull("waiting"), OPERATOR_TOKEN).await;
        assert_eq!(
            status, 202,
            "another connection of the district may be pulled: {second}"
        );
        let second_id = second["id"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let deferred = loop {
            let (_, job) = app
                .get(
                    &format!("/api/v1/districts/lincoln/jobs/{second_id}"),
                    OPERATOR_TOKEN,
                )
                .await;
            if !job["last_error"].is_null() {
                break job;
            }
            assert!(
                Instant::now() < deadline,
                "the pull never found its district busy: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(deferred["status"], "queued", "{deferred}");
        assert_eq!(
            deferred["attempts"], 0,
            "waiting uses up no attempt: {deferred}"
        );
        assert!(
            deferred["last_error"]
                .as_str()
                .unwrap()
                .contains("another sync of district lincoln is in progress"),
            "{deferred}"
        );
        assert!(
            waiting.requests().is_empty(),
            "a pull that waits for its district asks its source for nothing: {:?}",
            waiting.requests()
        );

        for (id, provider) in [
            (first["id"].as_str().unwrap(), &slow),
            (second_id, &waiting),
        ] {
            let done = finished_job(&app, "lincoln", id, Duration::from_secs(20)).await;
            assert_eq!(done["status"], "succeeded", "{done}");
            assert_eq!(done["attempts"], 1, "{done}");
            assert_eq!(done["result"]["status"], "applied", "{done}");
            assert_eq!(first_pages(provider, "orgs"), 1);
        }
        slow.stop().await;
        waiting.stop().await;
    }
);

fn create_district(db_url: &str, dir: &Path, slug: &str, timezone: &str) {
    common::run_ok(common::gateway_command(db_url, dir).args([
        "district",
        "create",
        "--slug",
        slug,
        "--name",
        slug,
        "--timezone",
        timezone,
    ]));
}

/// `connection add` of a connection to `provider`, with these schedules.
fn add_connection_cli(
    db_url: &str,
    dir: &Path,
    district: &str,
    name: &str,
    provider: &Provider,
    delta: &str,
    full: &str,
) {
    common::run_ok(common::gateway_command(db_url, dir).args([
        "connection",
        "add",
        "--district",
        district,
        "--name",
        name,
        "--kind",
        "oneroster-rest",
        "--version",
        "1.2",
        "--base-url",
        &provider.base_url(),
        "--auth",
        "oauth2",
        "--token-url",
        &provider.token_url(),
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--delta-schedule",
        delta,
        "--full-schedule",
        full,
    ]));
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    db.conn().scalar(sql, &[]).await.unwrap()
}

#[tokio::test]
async fn a_pull_killed_mid_fetch_applies_nothing_and_the_next_pull_completes() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let test_db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let (url, dir) = (test_db.url.as_str(), work.path());
        let provider = provider().await;
        create_district(url, dir, "lincoln", "UTC");
        add_connection_cli(url, dir, "lincoln", "sis", &provider, "off", "off");
        // The users page hangs long enough to be killed in the middle of the pull.
        provider
            .faults()
            .on_path("users", FaultAction::Delay(Duration::from_secs(30)), 1);
        let db = Db::connect(url).await.unwrap();

        let mut child = common::gateway_command(url, dir)
            .args([
                "sync",
                "pull",
                "--district",
                "lincoln",
                "--connection",
                "sis",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Orgs are staged and the provider holds the users page back: the pull is mid-fetch.
        let killed = common::kill_mid_run(
            &db,
            &mut child,
            "stage_orgs",
            Duration::from_secs(20),
            || provider.faults().pending() == 0,
        )
        .await;
        assert_eq!(
            scalar(&db, "SELECT COUNT(*) FROM users").await,
            0,
            "nothing of a killed pull is applied"
        );

        let next = common::gateway_command(url, dir)
            .args([
                "sync",
                "pull",
                "--district",
                "lincoln",
                "--connection",
                "sis",
                "--json",
            ])
            .output()
            .unwrap();
        assert_eq!(
            next.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&next.stderr)
        );
        let report: Value = serde_json::from_slice(&next.stdout).unwrap();
        assert_eq!(report["status"], "applied", "{report}");
        assert_eq!(scalar(&db, "SELECT COUNT(*) FROM users").await, 6);

        let runs = common::run_statuses(&db).await;
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(runs[0], (killed.clone(), "failed".to_string()));
        let shown = common::run_ok(common::gateway_command(url, dir).args([
            "sync",
            "show",
            "--district",
            "lincoln",
            "--json",
            &killed,
        ]));
        let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(shown["status"], "failed");
        assert!(
            shown["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("stopped before it finished"),
            "{shown}"
        );
        for table in ["stage_orgs", "stage_users"] {
            let staged = db
                .conn()
                .scalar(
                    &format!("SELECT COUNT(*) FROM {table} WHERE run_id = $1"),
                    &rostergate::args![killed.as_str()],
                )
                .await
                .unwrap();
            assert_eq!(staged, 0, "{table} of the killed run are cleaned up");
        }
        db.close().await;
        provider.stop().await;
    }
}

/// The latest slot of `every 1m` at `at` for a connection whose slots are shifted by `spread`,
/// as the scheduler writes it in a dedupe key.
fn minute_slot(at: chrono::DateTime<chrono::Utc>, spread: u64) -> i64 {
    let phase = i64::try_from(spread % 60).unwrap();
    (at.timestamp() - phase).div_euclid(60) * 60 + phase
}

/// How the scheduler spreads the slots of a district's connection.
async fn spread_of(app: &TestApp, district: &str, connection: &str) -> u64 {
    let db = Db::connect(&app.db.url).await.unwrap();
    let district = rostergate::store::districts::get(&db, district)
        .await
        .unwrap();
    db.close().await;
    rostergate::jobs::ScheduledItem {
        district_id: district.id,
        timezone: chrono_tz::UTC,
        key: connection.to_string(),
        delta: None,
        full: None,
    }
    .spread()
}

on_every_backend!(
    a_scheduled_pull_happens_by_itself_once_per_slot,
    with & [FAST_POLL, FAST_SCHEDULE],
    |app| {
        let provider = provider().await;
        app.create_district("lincoln").await;
        let spread = spread_of(&app, "lincoln", "sis").await;
        let first_slot = minute_slot(chrono::Utc::now(), spread);
        add_connection(
            &app,
            "lincoln",
            &connection_body("sis", &provider, json!("every 1m"), Value::Null),
        )
        .await;

        let deadline = Instant::now() + Duration::from_secs(15);
        let job = loop {
            let jobs = pull_jobs(&app, "lincoln").await;
            if let Some(job) = jobs.first() {
                break job.clone();
            }
            assert!(Instant::now() < deadline, "no pull was scheduled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let job_id = job["id"].as_str().unwrap();
        let done = finished_job(&app, "lincoln", job_id, Duration::from_secs(20)).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["result"]["status"], "applied", "{done}");
        assert_eq!(user_ids(&app, "lincoln").await, USERS);

        // Many more ticks: the slot's pull is not enqueued again.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let last_slot = minute_slot(chrono::Utc::now(), spread);
        let jobs = pull_jobs(&app, "lincoln").await;
        let keys: Vec<&str> = jobs
            .iter()
            .map(|j| j["dedupe_key"].as_str().unwrap())
            .collect();
        let distinct: BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len(), "one job per slot: {keys:?}");
        for key in &keys {
            assert!(key.starts_with("pull:sis:delta:"), "{key}");
        }
        // Exactly one job for the slot that was due; only a minute turning over meanwhile
        // makes one more.
        let slots_seen = usize::try_from((last_slot - first_slot) / 60 + 1).unwrap();
        assert!(
            (1..=slots_seen).contains(&jobs.len()),
            "{} jobs in {slots_seen} slot(s): {keys:?}",
            jobs.len()
        );
        let slot = chrono::DateTime::from_timestamp(first_slot, 0).unwrap();
        let first_key = format!(
            "pull:sis:delta:{}",
            slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        if slots_seen == 1 {
            assert_eq!(keys, vec![first_key.as_str()]);
        }
        assert_eq!(first_pages(&provider, "orgs"), jobs.len());
        provider.stop().await;
    }
);

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `rostergate serve` as a child process with a fast runner and scheduler, once it is ready.
async fn start_server(db_url: &str, dir: &Path) -> Server {
    let port = free_port();
    let child = common::gateway_command(db_url, dir)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env(FAST_POLL.0, FAST_POLL.1)
        .env(FAST_SCHEDULE.0, FAST_SCHEDULE.1)
        .env(BUSY_RETRY.0, BUSY_RETRY.1)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        address: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{}/health/ready", server.address))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

async fn get_json(server: &Server, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.address))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn two_gateways_on_one_postgres_database_never_run_one_schedule_slot_twice() {
    if !backends().await.contains(&Backend::Postgres) {
        eprintln!("skipping: this test needs PostgreSQL (set ROSTERGATE_TEST_POSTGRES_URL)");
        return;
    }
    // reqwest is built without a TLS crypto provider: the gateway's one is installed.
    rostergate::outbound::tls::install_crypto_provider();
    let test_db = TestDb::new(Backend::Postgres).await;
    let work = tempfile::tempdir().unwrap();
    let (url, dir) = (test_db.url.as_str(), work.path());
    // Daily slots stay the same for the whole test (unless it runs across the slot itself).
    let districts = [("lincoln", "UTC"), ("madison", "America/Chicago")];
    let schedules = [("daily 00:00", "off"), ("off", "daily 00:00")];
    let mut providers = BTreeMap::new();
    for (district, zone) in districts {
        create_district(url, dir, district, zone);
        for (i, (delta, full)) in schedules.iter().enumerate() {
            let name = format!("sis-{i}");
            let provider = provider().await;
            add_connection_cli(url, dir, district, &name, &provider, delta, full);
            providers.insert((district, name), provider);
        }
    }

    let servers = [start_server(url, dir).await, start_server(url, dir).await];
    let deadline = Instant::now() + Duration::from_secs(30);
    let jobs = loop {
        let mut jobs = Vec::new();
        // Each district read through another gateway: they show the same shared state.
        for (server, (district, _)) in servers.iter().zip(districts) {
            let listed = get_json(
                server,
                &format!("/api/v1/districts/{district}/jobs?kind=pull&limit=100"),
            )
            .await;
            for job in listed["jobs"].as_array().unwrap() {
                jobs.push((district, job.clone()));
            }
        }
        let finished = jobs
            .iter()
            .filter(|(_, j)| matches!(j["status"].as_str(), Some("succeeded" | "failed")))
            .count();
        if finished == providers.len() && jobs.len() == providers.len() {
            break jobs;
        }
        assert!(
            Instant::now() < deadline,
            "not every connection's pull finished: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A little longer, for a second job or pull to show up if one would.
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let mut slots = BTreeMap::new();
    for (district, job) in &jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
        // A wait for a busy district uses up no attempt.
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(job["result"]["status"], "applied", "{job}");
        let key = job["dedupe_key"].as_str().unwrap().to_string();
        let connection = job["payload"]["connection"].as_str().unwrap().to_string();
        assert!(
            slots.insert((*district, key.clone()), connection).is_none(),
            "{key} twice"
        );
        let run_id = job["result"]["run_id"].as_str().unwrap();
        let run = get_json(
            &servers[0],
            &format!("/api/v1/districts/{district}/runs/{run_id}"),
        )
        .await;
        assert_eq!(run["status"], "applied", "{run}");
    }
    for ((district, name), provider) in &providers {
        assert!(
            slots.values().filter(|c| *c == name).count() == 2,
            "{district}/{name}: {slots:?}"
        );
        assert_eq!(
            first_pages(provider, "orgs"),
            1,
            "{district}/{name} was pulled once"
        );
        assert_eq!(first_pages(provider, "enrollments"), 1);
    }
    let db = Db::connect(url).await.unwrap();
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM jobs").await,
        4,
        "one job per slot"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM sync_runs").await,
        4,
        "one run per slot"
    );
    db.close().await;
    drop(servers);
    for (_, provider) in providers {
        provider.stop().await;
    }
}
