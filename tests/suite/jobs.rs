//! Background jobs: the leased jobs table on both databases, runners and schedulers sharing one
//! database as several gateway processes would, and the jobs API.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Backend, TestDb, OPERATOR_TOKEN};
use chrono::{DateTime, Utc};
use rostergate::config::JobSettings;
use rostergate::domain::district::{DistrictName, DistrictSettings, Slug, Timezone};
use rostergate::domain::schedule::Schedule;
use rostergate::jobs::{
    self, Handlers, Job, JobError, JobHandler, JobStatus, Outcome, Runner, ScheduledItem,
    Scheduler, PULL_KIND,
};
use rostergate::store::jobs::{self as store, Failure, JobFilter, NewJob};
use rostergate::store::{Db, StoreError};
use serde_json::{json, Value};

/// A migrated database with two districts.
struct Fixture {
    db: Db,
    lincoln: i64,
    madison: i64,
    test_db: TestDb,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let test_db = TestDb::new(backend).await;
        let db = Db::connect_and_migrate(&test_db.url).await.unwrap();
        let mut ids = Vec::new();
        for slug in ["lincoln", "madison"] {
            let district = rostergate::store::districts::create(
                &db,
                &Slug::parse(slug).unwrap(),
                &DistrictName::parse(slug).unwrap(),
                Timezone::parse("America/New_York").unwrap(),
                &DistrictSettings::default(),
            )
            .await
            .unwrap();
            ids.push(district.id);
        }
        Fixture {
            db,
            lincoln: ids[0],
            madison: ids[1],
            test_db,
        }
    }

    /// Another pool on the same database, as another gateway process would have.
    async fn second_pool(&self) -> Db {
        Db::connect(&self.test_db.url).await.unwrap()
    }
}

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(secs)
}

fn new_job(district_id: i64, key: Option<&str>, run_after: DateTime<Utc>) -> NewJob {
    NewJob {
        district_id,
        kind: "pull".into(),
        payload: json!({ "connection": key.unwrap_or("none"), "full": false }),
        dedupe_key: key.map(str::to_string),
        run_after,
        max_attempts: 3,
    }
}

fn pull() -> Vec<String> {
    vec!["pull".to_string()]
}

const MINUTE: chrono::Duration = chrono::Duration::seconds(60);

#[tokio::test]
async fn the_oldest_due_job_of_a_handled_kind_is_claimed_first() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        let later = store::enqueue(&f.db, &new_job(f.lincoln, Some("a"), t(-10)), t(-30))
            .await
            .unwrap();
        let oldest = store::enqueue(&f.db, &new_job(f.madison, Some("b"), t(-20)), t(-30))
            .await
            .unwrap();
        store::enqueue(&f.db, &new_job(f.lincoln, Some("c"), t(60)), t(-30))
            .await
            .unwrap();
        let mut other = new_job(f.lincoln, Some("d"), t(-100));
        other.kind = "webhook".into();
        store::enqueue(&f.db, &other, t(-30)).await.unwrap();

        let first = store::claim(&f.db, "me", &pull(), MINUTE, t(0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.id, oldest.id);
        assert_eq!(first.status, JobStatus::Running);
        assert_eq!(first.attempts, 1);
        assert_eq!(first.lease_owner.as_deref(), Some("me"));
        assert_eq!(first.lease_until, Some(t(60)));
        let second = store::claim(&f.db, "me", &pull(), MINUTE, t(0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.id, later.id);
        // "c" is not due yet and "webhook" is not handled here.
        assert!(store::claim(&f.db, "me", &pull(), MINUTE, t(0))
            .await
            .unwrap()
            .is_none());
        assert!(store::claim(&f.db, "me", &[], MINUTE, t(0))
            .await
            .unwrap()
            .is_none());
        for done in [&first, &second] {
            assert!(store::succeed(&f.db, done, &json!({}), t(1)).await.unwrap());
        }
        let c = store::claim(&f.db, "me", &pull(), MINUTE, t(61))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.dedupe_key.as_deref(), Some("c"));
    }
}

#[tokio::test]
async fn a_dedupe_key_makes_a_second_enqueue_the_same_job_within_its_district() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        let job = new_job(f.lincoln, Some("pull:sis:delta:2026-12-02T15:00:00Z"), t(0));
        let first = store::enqueue(&f.db, &job, t(0)).await.unwrap();
        let again = store::enqueue(&f.db, &job, t(5)).await.unwrap();
        assert!(first.new && !again.new);
        assert_eq!(first.id, again.id);
        let elsewhere = NewJob {
            district_id: f.madison,
            ..job.clone()
        };
        assert!(store::enqueue(&f.db, &elsewhere, t(0)).await.unwrap().new);
        // Jobs without a key are never deduplicated.
        let keyless = new_job(f.lincoln, None, t(0));
        assert!(store::enqueue(&f.db, &keyless, t(0)).await.unwrap().new);
        assert!(store::enqueue(&f.db, &keyless, t(0)).await.unwrap().new);
        // Still a duplicate once the first job is done.
        let claimed = store::claim(&f.db, "me", &pull(), MINUTE, t(1))
            .await
            .unwrap()
            .unwrap();
        assert!(store::succeed(&f.db, &claimed, &json!({}), t(2))
            .await
            .unwrap());
        assert!(!store::enqueue(&f.db, &job, t(3)).await.unwrap().new);
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_old_owner_can_no_longer_record() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        store::enqueue(&f.db, &new_job(f.lincoln, Some("a"), t(0)), t(0))
            .await
            .unwrap();
        let dead = store::claim(&f.db, "dead", &pull(), MINUTE, t(0))
            .await
            .unwrap()
            .unwrap();
        assert!(store::extend_lease(&f.db, &dead, t(90)).await.unwrap());
        // Renewed to t(90): still leased at t(80).
        assert!(store::claim(&f.db, "alive", &pull(), MINUTE, t(80))
            .await
            .unwrap()
            .is_none());
        let taken = store::claim(&f.db, "alive", &pull(), MINUTE, t(91))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.id, dead.id);
        assert_eq!(taken.attempts, 2);
        assert_eq!(taken.lease_owner.as_deref(), Some("alive"));
        assert!(!store::extend_lease(&f.db, &dead, t(200)).await.unwrap());
        assert!(!store::succeed(&f.db, &dead, &json!({}), t(92))
            .await
            .unwrap());
        assert_eq!(
            store::fail(&f.db, &dead, "late", None, t(92))
                .await
                .unwrap(),
            Failure::LeaseLost
        );
        assert!(
            store::succeed(&f.db, &taken, &json!({ "run_id": "r-1" }), t(93))
                .await
                .unwrap()
        );
        let done = store::find(&f.db, f.lincoln, &taken.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.result, Some(json!({ "run_id": "r-1" })));
        assert_eq!(done.finished_at, Some(t(93)));
    }
}

#[tokio::test]
async fn a_job_whose_process_dies_on_every_attempt_fails_after_its_last() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        let mut job = new_job(f.lincoln, Some("a"), t(0));
        job.max_attempts = 2;
        let id = store::enqueue(&f.db, &job, t(0)).await.unwrap().id;
        let first = store::claim(&f.db, "a", &pull(), MINUTE, t(0))
            .await
            .unwrap()
            .unwrap();
        let second = store::claim(&f.db, "b", &pull(), MINUTE, t(61))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.attempts, second.attempts), (1, 2));
        assert!(store::claim(&f.db, "c", &pull(), MINUTE, t(200))
            .await
            .unwrap()
            .is_none());
        let failed = store::find(&f.db, f.lincoln, &id).await.unwrap().unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.attempts, 2);
        assert!(failed.last_error.unwrap().contains("stopped"));
    }
}

#[tokio::test]
async fn a_failed_attempt_is_retried_after_its_delay_until_none_is_left() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        let mut job = new_job(f.lincoln, Some("a"), t(0));
        job.max_attempts = 2;
        let id = store::enqueue(&f.db, &job, t(0)).await.unwrap().id;
        let first = store::claim(&f.db, "a", &pull(), MINUTE, t(0))
            .await
            .unwrap()
            .unwrap();
        let failed = store::fail(&f.db, &first, "source down", Some(t(30)), t(1)).await;
        assert_eq!(failed.unwrap(), Failure::Retrying(t(30)));
        let queued = store::find(&f.db, f.lincoln, &id).await.unwrap().unwrap();
        assert_eq!(queued.status, JobStatus::Queued);
        assert_eq!(queued.last_error.as_deref(), Some("source down"));
        assert!(store::claim(&f.db, "a", &pull(), MINUTE, t(29))
            .await
            .unwrap()
            .is_none());
        let second = store::claim(&f.db, "a", &pull(), MINUTE, t(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.attempts, 2);
        let failed = store::fail(&f.db, &second, "still down", Some(t(60)), t(31)).await;
        assert_eq!(failed.unwrap(), Failure::GaveUp);
        let gone = store::find(&f.db, f.lincoln, &id).await.unwrap().unwrap();
        assert_eq!(gone.status, JobStatus::Failed);
        assert_eq!(gone.finished_at, Some(t(31)));
        assert!(store::claim(&f.db, "a", &pull(), MINUTE, t(100))
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn jobs_are_listed_counted_found_and_open_only_in_their_district() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        let mut ids = Vec::new();
        for (n, key) in ["pull:sis:delta:1", "pull:sis:delta:2", "pull:sis_2:full:1"]
            .into_iter()
            .enumerate()
        {
            let at = t(n as i64);
            ids.push(
                store::enqueue(&f.db, &new_job(f.lincoln, Some(key), at), at)
                    .await
                    .unwrap()
                    .id,
            );
        }
        let claimed = store::claim(&f.db, "a", &pull(), MINUTE, t(10))
            .await
            .unwrap()
            .unwrap();
        store::succeed(&f.db, &claimed, &json!({}), t(11))
            .await
            .unwrap();
        let all = store::list(&f.db, f.lincoln, &JobFilter::default(), 10, 0)
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
            "newest first"
        );
        let queued = JobFilter {
            status: Some(JobStatus::Queued),
            kind: None,
        };
        assert_eq!(store::count(&f.db, f.lincoln, &queued).await.unwrap(), 2);
        assert_eq!(
            store::list(&f.db, f.lincoln, &queued, 1, 1)
                .await
                .unwrap()
                .len(),
            1
        );
        let webhooks = JobFilter {
            status: None,
            kind: Some("webhook".into()),
        };
        assert_eq!(store::count(&f.db, f.lincoln, &webhooks).await.unwrap(), 0);
        assert_eq!(
            store::count(&f.db, f.madison, &JobFilter::default())
                .await
                .unwrap(),
            0
        );
        assert!(store::find(&f.db, f.madison, &ids[0])
            .await
            .unwrap()
            .is_none());
        // `sis_2` is not a connection whose name starts with `sis`.
        assert!(store::has_open(&f.db, f.lincoln, PULL_KIND, "pull:sis:")
            .await
            .unwrap());
        assert!(store::has_open(&f.db, f.lincoln, PULL_KIND, "pull:sis_2:")
            .await
            .unwrap());
        assert!(!store::has_open(&f.db, f.lincoln, PULL_KIND, "pull:SIS:")
            .await
            .unwrap());
        assert!(!store::has_open(&f.db, f.lincoln, PULL_KIND, "pull:si%:")
            .await
            .unwrap());
        assert!(!store::has_open(&f.db, f.madison, PULL_KIND, "pull:sis:")
            .await
            .unwrap());
        assert!(!store::has_open(&f.db, f.lincoln, "webhook", "pull:sis:")
            .await
            .unwrap());
    }
}

/// Counts executions per dedupe key, taking `delay` for each.
#[derive(Clone, Default)]
struct Counting {
    runs: Arc<Mutex<HashMap<String, usize>>>,
    delay: Duration,
}

impl JobHandler for Counting {
    async fn run(&self, job: &Job) -> Result<Value, JobError> {
        let key = format!(
            "{}/{}",
            job.district_id,
            job.dedupe_key.as_ref().unwrap_or(&job.id)
        );
        *self.runs.lock().unwrap().entry(key).or_default() += 1;
        tokio::time::sleep(self.delay).await;
        Ok(json!({ "ran": job.id }))
    }
}

fn fast_settings() -> JobSettings {
    JobSettings {
        poll_interval_ms: 10,
        schedule_interval_ms: 20,
        concurrency: 2,
        lease_secs: 30,
        retry_delays_secs: vec![0],
        shutdown_grace_secs: 5,
        ..JobSettings::default()
    }
}

fn items_of(
    items: Vec<ScheduledItem>,
) -> impl Fn() -> std::future::Ready<Result<Vec<ScheduledItem>, StoreError>> + Send + Sync + 'static
{
    move || std::future::ready(Ok(items.clone()))
}

fn every_second(f: &Fixture) -> Vec<ScheduledItem> {
    let zone = chrono_tz::America::New_York;
    vec![
        ScheduledItem {
            district_id: f.lincoln,
            timezone: zone,
            key: "powerschool".into(),
            delta: Some(Schedule::Every(1)),
            full: Some(Schedule::Every(2)),
        },
        ScheduledItem {
            district_id: f.lincoln,
            timezone: zone,
            key: "skyward".into(),
            delta: Some(Schedule::Every(1)),
            full: None,
        },
        ScheduledItem {
            district_id: f.madison,
            timezone: zone,
            key: "powerschool".into(),
            delta: Some(Schedule::Every(1)),
            full: None,
        },
    ]
}

/// Every job that ran, ran once; every succeeded job ran; slots kept coming.
async fn assert_each_slot_ran_once(f: &Fixture, handler: &Counting) {
    let runs = handler.runs.lock().unwrap().clone();
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "slots run more than once: {twice:?}");
    let mut succeeded = 0;
    for district in [f.lincoln, f.madison] {
        let jobs = store::list(&f.db, district, &JobFilter::default(), 1000, 0)
            .await
            .unwrap();
        for job in &jobs {
            let key = format!("{district}/{}", job.dedupe_key.as_ref().unwrap());
            match job.status {
                JobStatus::Succeeded => {
                    succeeded += 1;
                    assert_eq!(runs.get(&key), Some(&1), "{key}");
                }
                JobStatus::Queued => assert!(!runs.contains_key(&key), "{key}"),
                other => panic!("{key} is {other:?}"),
            }
        }
    }
    assert_eq!(succeeded, runs.len());
    // Three connections with one-second slots for about three seconds.
    assert!(runs.len() >= 6, "too few pulls ran: {runs:?}");
    let full = format!("{}/pull:powerschool:full:", f.lincoln);
    assert!(runs.keys().any(|k| k.starts_with(&full)), "{runs:?}");
}

#[tokio::test]
async fn two_gateways_on_one_postgres_database_run_each_schedule_slot_once() {
    if !common::backends().await.contains(&Backend::Postgres) {
        eprintln!("skipped: PostgreSQL is not reachable");
        return;
    }
    let f = Fixture::new(Backend::Postgres).await;
    let handler = Counting {
        delay: Duration::from_millis(40),
        ..Counting::default()
    };
    let handlers = Handlers::new().with(PULL_KIND, handler.clone());
    // Two processes: two pools, two runners, two schedulers over the same items.
    let a = jobs::spawn(
        f.db.clone(),
        fast_settings(),
        handlers.clone(),
        items_of(every_second(&f)),
    );
    let b = jobs::spawn(
        f.second_pool().await,
        fast_settings(),
        handlers,
        items_of(every_second(&f)),
    );
    assert_ne!(a.owner(), b.owner());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let owners = [
        a.owner().unwrap().to_string(),
        b.owner().unwrap().to_string(),
    ];
    a.shutdown().await;
    b.shutdown().await;
    assert_each_slot_ran_once(&f, &handler).await;
    // The work was shared: both processes ran pulls.
    let jobs = store::list(&f.db, f.lincoln, &JobFilter::default(), 1000, 0)
        .await
        .unwrap();
    for owner in &owners {
        assert!(
            jobs.iter().any(|j| j.lease_owner.as_ref() == Some(owner)),
            "{owner} ran nothing"
        );
    }
}

#[tokio::test]
async fn one_gateway_on_sqlite_runs_each_schedule_slot_once_whoever_schedules_it() {
    let f = Fixture::new(Backend::Sqlite).await;
    let handler = Counting {
        delay: Duration::from_millis(40),
        ..Counting::default()
    };
    let handlers = Handlers::new().with(PULL_KIND, handler.clone());
    let runner = jobs::spawn(
        f.db.clone(),
        fast_settings(),
        handlers,
        items_of(every_second(&f)),
    );
    // A second scheduler (no handlers: it claims nothing) on its own pool.
    let scheduler_only = jobs::spawn(
        f.second_pool().await,
        fast_settings(),
        Handlers::new(),
        items_of(every_second(&f)),
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    runner.shutdown().await;
    scheduler_only.shutdown().await;
    assert_each_slot_ran_once(&f, &handler).await;
}

#[tokio::test]
async fn a_job_outliving_its_lease_keeps_it_by_heartbeat() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        let handler = Counting {
            delay: Duration::from_millis(2500),
            ..Counting::default()
        };
        let settings = JobSettings {
            lease_secs: 1,
            ..fast_settings()
        };
        let handlers = Handlers::new().with(PULL_KIND, handler.clone());
        let id = store::enqueue(
            &f.db,
            &new_job(f.lincoln, Some("slow"), Utc::now()),
            Utc::now(),
        )
        .await
        .unwrap()
        .id;
        let first = Arc::new(Runner::new(
            f.db.clone(),
            settings.clone(),
            handlers.clone(),
        ));
        let second = Runner::new(f.second_pool().await, settings, handlers);
        let running = tokio::spawn({
            let first = first.clone();
            async move { first.run_once().await }
        });
        while handler.runs.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The second runner keeps looking while the first works past its first lease.
        let mut second_ran = false;
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            second_ran |= second.run_once().await.unwrap().is_some();
        }
        let ran = running.await.unwrap().unwrap().unwrap();
        assert_eq!(ran.outcome, Outcome::Succeeded);
        assert!(!second_ran);
        assert_eq!(handler.runs.lock().unwrap().values().sum::<usize>(), 1);
        let job = store::find(&f.db, f.lincoln, &id).await.unwrap().unwrap();
        assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1));
    }
}

/// Fails with the error it is given.
struct Failing(JobError);

impl JobHandler for Failing {
    async fn run(&self, _: &Job) -> Result<Value, JobError> {
        Err(self.0.clone())
    }
}

#[tokio::test]
async fn handler_failures_are_retried_or_not_as_they_say() {
    let f = Fixture::new(Backend::Sqlite).await;
    let settings = JobSettings {
        retry_delays_secs: vec![120],
        ..fast_settings()
    };
    for (error, want) in [
        (
            JobError::retryable("source answered 503"),
            JobStatus::Queued,
        ),
        (
            JobError::permanent("the connection is gone"),
            JobStatus::Failed,
        ),
    ] {
        let message = error.to_string();
        let runner = Runner::new(
            f.db.clone(),
            settings.clone(),
            Handlers::new().with(PULL_KIND, Failing(error)),
        );
        let id = store::enqueue(&f.db, &new_job(f.lincoln, None, Utc::now()), Utc::now())
            .await
            .unwrap()
            .id;
        let ran = runner.run_once().await.unwrap().unwrap();
        assert_eq!(ran.job_id, id);
        let job = store::find(&f.db, f.lincoln, &id).await.unwrap().unwrap();
        assert_eq!(job.status, want, "{message}");
        assert_eq!(job.last_error.as_deref(), Some(message.as_str()));
        if want == JobStatus::Queued {
            assert!(matches!(ran.outcome, Outcome::Retrying(_)));
            let delay = job.run_after - Utc::now();
            assert!(delay > chrono::Duration::seconds(100), "{delay}");
        } else {
            assert_eq!(ran.outcome, Outcome::Failed);
        }
    }
}

#[tokio::test]
async fn a_gateway_back_from_days_away_catches_up_with_one_pull_per_connection() {
    let f = Fixture::new(Backend::Sqlite).await;
    let zone = chrono_tz::America::New_York;
    let items = vec![
        ScheduledItem {
            district_id: f.lincoln,
            timezone: zone,
            key: "hourly".into(),
            delta: Some(Schedule::Every(3600)),
            full: Some(Schedule::DailyAt(
                chrono::NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            )),
        },
        ScheduledItem {
            district_id: f.madison,
            timezone: zone,
            key: "hourly".into(),
            delta: Some(Schedule::Every(3600)),
            full: None,
        },
    ];
    // Interval slots are spread by connection; the latest hourly slot at the end, as the
    // scheduler computes it for Madison.
    let madison_delta = Schedule::Every(3600)
        .latest_slot_spread(zone, t(3 * 86_400 + 600), items[1].spread())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let scheduler = Scheduler::new(f.db.clone(), items_of(items), &fast_settings());
    // 15:10 UTC: the daily full (02:30 New York, 06:30 UTC) wins over the hourly delta.
    assert_eq!(scheduler.tick(t(600)).await.unwrap().len(), 2);
    // Nothing more while those are queued, and nothing twice.
    assert!(scheduler.tick(t(600)).await.unwrap().is_empty());
    assert!(scheduler.tick(t(3 * 86_400)).await.unwrap().is_empty());
    let runner = Runner::new(
        f.db.clone(),
        fast_settings(),
        Handlers::new().with(PULL_KIND, Counting::default()),
    );
    while runner.run_once().await.unwrap().is_some() {}
    // Three days later: one pull per connection, the latest slot's.
    let created = scheduler.tick(t(3 * 86_400 + 600)).await.unwrap();
    assert_eq!(created.len(), 2);
    let queued = JobFilter {
        status: Some(JobStatus::Queued),
        kind: None,
    };
    let mut keys = Vec::new();
    for district in [f.lincoln, f.madison] {
        for job in store::list(&f.db, district, &queued, 10, 0).await.unwrap() {
            keys.push(job.dedupe_key.unwrap());
        }
    }
    assert_eq!(
        keys,
        [
            "pull:hourly:full:2026-06-04T06:30:00Z".to_string(),
            format!("pull:hourly:delta:{madison_delta}"),
        ]
    );
    let first = store::find(&f.db, f.lincoln, &created[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.payload,
        json!({ "connection": "hourly", "full": true })
    );
}

#[tokio::test]
async fn shutdown_queues_a_running_job_again_without_counting_the_attempt() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        let handler = Counting {
            delay: Duration::from_secs(3600),
            ..Counting::default()
        };
        let id = store::enqueue(
            &f.db,
            &new_job(f.lincoln, Some("long"), Utc::now()),
            Utc::now(),
        )
        .await
        .unwrap()
        .id;
        let settings = JobSettings {
            shutdown_grace_secs: 0,
            ..fast_settings()
        };
        let handle = jobs::spawn(
            f.db.clone(),
            settings,
            Handlers::new().with(PULL_KIND, handler.clone()),
            items_of(Vec::new()),
        );
        for _ in 0..100 {
            if !handler.runs.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(handler.runs.lock().unwrap().values().sum::<usize>(), 1);
        handle.shutdown().await;
        let job = store::find(&f.db, f.lincoln, &id).await.unwrap().unwrap();
        assert_eq!((job.status, job.attempts), (JobStatus::Queued, 0));
        assert!(job.lease_until.is_none());
    }
}

#[tokio::test]
async fn jobs_are_listed_and_read_only_in_their_own_district() {
    // The test client speaks TLS through rustls, which needs its crypto provider chosen.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let app = common::spawn_app(backend).await;
        app.create_district("lincoln").await;
        app.create_district("madison").await;
        let db = Db::connect(&app.db.url).await.unwrap();
        let lincoln = rostergate::store::districts::get(&db, "lincoln")
            .await
            .unwrap();
        let mut ids = Vec::new();
        for n in 0..3 {
            let job = new_job(lincoln.id, Some(&format!("pull:sis:delta:{n}")), Utc::now());
            ids.push(store::enqueue(&db, &job, Utc::now()).await.unwrap().id);
        }
        let claimed = store::claim(&db, "me", &pull(), MINUTE, Utc::now())
            .await
            .unwrap()
            .unwrap();
        store::fail(&db, &claimed, "source answered 503", None, Utc::now())
            .await
            .unwrap();

        let r = app
            .client
            .get(app.url("/api/v1/districts/lincoln/jobs?limit=2"))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["X-Total-Count"], "3");
        let page: Value = r.json().await.unwrap();
        assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
        assert_eq!(
            (page["total"].as_i64(), page["limit"].as_i64()),
            (Some(3), Some(2))
        );

        let (status, failed) = app
            .get(
                "/api/v1/districts/lincoln/jobs?status=failed",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{failed}");
        let failed = &failed["jobs"][0];
        assert_eq!(failed["id"], claimed.id.as_str());
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["kind"], "pull");
        assert_eq!(failed["attempts"], 1);
        assert_eq!(failed["last_error"], "source answered 503");
        assert!(failed.get("lease_owner").is_none(), "{failed}");

        let reader = app.token_for("lincoln", &["roster:read"]).await;
        let (status, one) = app
            .get(
                &format!("/api/v1/districts/lincoln/jobs/{}", ids[1]),
                &reader,
            )
            .await;
        assert_eq!(status, 200, "{one}");
        assert_eq!(one["id"], ids[1].as_str());
        assert_eq!(one["dedupe_key"], "pull:sis:delta:1");

        for (path, code) in [
            ("/api/v1/districts/lincoln/jobs?status=done", 400),
            ("/api/v1/districts/lincoln/jobs?state=failed", 400),
            ("/api/v1/districts/lincoln/jobs?limit=0", 400),
            ("/api/v1/districts/lincoln/jobs/nope", 404),
        ] {
            let (status, body) = app.get(path, OPERATOR_TOKEN).await;
            assert_eq!(status, code, "{path}: {body}");
        }
        // Another district's token sees neither the listing nor the job.
        let outsider = app.token_for("madison", &["roster:read", "admin"]).await;
        for path in [
            "/api/v1/districts/lincoln/jobs".to_string(),
            format!("/api/v1/districts/lincoln/jobs/{}", ids[0]),
            format!("/api/v1/districts/madison/jobs/{}", ids[0]),
        ] {
            let (status, body) = app.get(&path, &outsider).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        let (status, theirs) = app.get("/api/v1/districts/madison/jobs", &outsider).await;
        assert_eq!(status, 200);
        assert_eq!(theirs["total"], 0);
        db.close().await;
    }
}

#[tokio::test]
async fn claimers_racing_on_two_pools_never_claim_one_job_twice() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        for n in 0..40 {
            let key = format!("job-{n}");
            store::enqueue(&f.db, &new_job(f.lincoln, Some(&key), t(n)), t(0))
                .await
                .unwrap();
        }
        let pools = [f.db.clone(), f.second_pool().await];
        let mut claimers = Vec::new();
        for n in 0..8 {
            let db = pools[n % 2].clone();
            claimers.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                let owner = format!("claimer-{n}");
                while let Some(job) = store::claim(&db, &owner, &pull(), MINUTE, t(100))
                    .await
                    .unwrap()
                {
                    ids.push(job.id);
                }
                ids
            }));
        }
        let mut claimed = Vec::new();
        for claimer in claimers {
            claimed.extend(claimer.await.unwrap());
        }
        let distinct: std::collections::HashSet<_> = claimed.iter().collect();
        assert_eq!((claimed.len(), distinct.len()), (40, 40));
    }
}

#[tokio::test]
async fn a_runner_whose_job_was_taken_over_stops_it_and_records_nothing() {
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let f = Fixture::new(backend).await;
        let handler = Counting {
            delay: Duration::from_secs(3600),
            ..Counting::default()
        };
        let settings = JobSettings {
            lease_secs: 1,
            ..fast_settings()
        };
        let id = store::enqueue(
            &f.db,
            &new_job(f.lincoln, Some("x"), Utc::now()),
            Utc::now(),
        )
        .await
        .unwrap()
        .id;
        let runner = Runner::new(
            f.db.clone(),
            settings,
            Handlers::new().with(PULL_KIND, handler.clone()),
        );
        let running = runner.run_once();
        tokio::pin!(running);
        let taken = async {
            while handler.runs.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Another process, seeing the lease as expired (its clock is ahead), takes over.
            let later = Utc::now() + chrono::Duration::seconds(5);
            store::claim(&f.db, "thief", &pull(), MINUTE, later)
                .await
                .unwrap()
                .unwrap()
        };
        let (ran, taken) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(5), &mut running),
            taken
        );
        let ran = ran
            .expect("the runner stops at its next heartbeat")
            .unwrap();
        assert_eq!(ran.unwrap().outcome, Outcome::LeaseLost);
        let job = store::find(&f.db, f.lincoln, &id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.lease_owner.as_deref(), Some("thief"));
        assert_eq!(job.attempts, taken.attempts);
    }
}
