//! Black-box tests of sync runs: held, approved, discarded, dry and dead runs, and their events.

use crate::common;

use crate::common::{count, school, OPERATOR_TOKEN};
use serde_json::json;

on_every_backend!(every_change_is_written_once_to_the_outbox, |app| {
    app.create_district("lincoln").await;
    let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    let (_, events) = app
        .get(
            "/api/v1/districts/lincoln/events?limit=10000",
            OPERATOR_TOKEN,
        )
        .await;
    let events = events["events"].as_array().unwrap();
    let of = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!(of("account.provisioned"), 5);
    assert_eq!(of("class.created"), 2);
    assert_eq!(of("enrollment.added"), 7);
    assert_eq!(of("coaching.added"), 5);
    assert_eq!(of("sync_run.applied"), 1);
    // Records nobody subscribes to (orgs, courses, users…) make no event.
    assert_eq!(events.len(), 5 + 2 + 7 + 5 + 1);
    assert!(events.iter().all(|e| e["run_id"] == report["run_id"]));
    assert!(events
        .iter()
        .any(|e| e["type"] == "coaching.added" && e["subject"] == "tch-1/stu-2"));
    // Paging by cursor: the number of an event id.
    let first = events[0]["id"]
        .as_str()
        .unwrap()
        .strip_prefix("evt_")
        .unwrap();
    let (_, rest) = app
        .get(
            &format!("/api/v1/districts/lincoln/events?after={first}&limit=10000"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), events.len() - 1);
});

on_every_backend!(
    a_mass_deletion_is_held_until_an_administrator_approves_it,
    |app| {
        app.create_district_with("lincoln", json!({ "threshold_min_changes": 1 }))
            .await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        // Every enrollment gone but the teachers': 5 of 7 deletions trips the 10 % threshold.
        let base = school();
        let enrollments = base
            .get("enrollments.csv")
            .lines()
            .filter(|l| !l.contains(",student,"))
            .collect::<Vec<_>>()
            .join("\n");
        let (status, held) = app
            .import(
                "lincoln",
                OPERATOR_TOKEN,
                &base.clone().with("enrollments.csv", &enrollments),
            )
            .await;
        assert_eq!(status, 202, "{held}");
        assert_eq!(held["status"], "held");
        assert!(
            held["held_reasons"][0]
                .as_str()
                .unwrap()
                .contains("enrollments: 4 of 7 records would be deleted"),
            "{held}"
        );
        let run = held["run_id"].as_str().unwrap().to_string();
        // Nothing applied yet.
        let (_, coaching) = app
            .get(
                "/api/v1/districts/lincoln/users/tch-1/coaching",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(coaching["students"].as_array().unwrap().len(), 3);
        let (_, shown) = app
            .get(
                &format!("/api/v1/districts/lincoln/runs/{run}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(shown["status"], "held");
        // A reader may look but not decide.
        let reader = app.token_for("lincoln", &["roster:read"]).await;
        let (status, _) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/runs/{run}/approve"),
                &reader,
                &json!({}),
            )
            .await;
        assert_eq!(status, 403);
        let (status, applied) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/runs/{run}/approve"),
                OPERATOR_TOKEN,
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{applied}");
        assert_eq!(applied["status"], "applied");
        assert_eq!(applied["coaching"], json!({ "started": 0, "ended": 5 }));
        let (_, coaching) = app
            .get(
                "/api/v1/districts/lincoln/users/tch-1/coaching",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(coaching["students"], json!([]));
        let (status, again) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/runs/{run}/approve"),
                OPERATOR_TOKEN,
                &json!({}),
            )
            .await;
        assert_eq!(status, 409);
        assert_eq!(again["error"]["code"], "run_not_held");
        let (_, runs) = app
            .get("/api/v1/districts/lincoln/runs", OPERATOR_TOKEN)
            .await;
        assert_eq!(runs["runs"][0]["run_id"], run.as_str());
        assert_eq!(runs["runs"][0]["status"], "applied");
    }
);

on_every_backend!(a_discarded_held_run_applies_nothing, |app| {
    app.create_district_with("lincoln", json!({ "threshold_min_changes": 1 }))
        .await;
    app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    let base = school();
    let enrollments = base
        .get("enrollments.csv")
        .lines()
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    let (_, held) = app
        .import(
            "lincoln",
            OPERATOR_TOKEN,
            &base.with("enrollments.csv", &enrollments),
        )
        .await;
    let run = held["run_id"].as_str().unwrap();
    let (status, discarded) = app
        .post_json(
            &format!("/api/v1/districts/lincoln/runs/{run}/discard"),
            OPERATOR_TOKEN,
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(discarded["status"], "discarded");
    let (_, enrollments) = app
        .get("/api/v1/districts/lincoln/enrollments", OPERATOR_TOKEN)
        .await;
    assert_eq!(enrollments["total"], 7);
    let (status, _) = app
        .post_json(
            "/api/v1/districts/lincoln/runs/not-a-run/approve",
            OPERATOR_TOKEN,
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
});

on_every_backend!(a_dry_run_reports_every_change_and_applies_none, |app| {
    app.create_district("lincoln").await;
    let (status, report) = app
        .post_bytes(
            "/api/v1/districts/lincoln/imports/oneroster?dry_run=true",
            OPERATOR_TOKEN,
            school().zip(),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "dry_run");
    assert_eq!(count(&report, "users", "created"), 5);
    assert_eq!(report["coaching"], json!({ "started": 5, "ended": 0 }));
    let (_, users) = app
        .get("/api/v1/districts/lincoln/users", OPERATOR_TOKEN)
        .await;
    assert_eq!(users["total"], 0);
    let (_, events) = app
        .get("/api/v1/districts/lincoln/events", OPERATOR_TOKEN)
        .await;
    assert_eq!(events["events"], json!([]));
});

on_every_backend!(
    a_run_that_died_midway_is_marked_failed_by_the_next_one,
    |app| {
        app.create_district("lincoln").await;
        // A run that crashed: its record says running, its lock expired long ago.
        let db = rostergate::store::Db::connect(&app.db.url).await.unwrap();
        let district = rostergate::store::districts::get(&db, "lincoln")
            .await
            .unwrap();
        let plan = rostergate::sync::input::Plan::default();
        let run = rostergate::store::runs::NewRun {
            id: "dead-run",
            district_id: district.id,
            source: "oneroster_csv",
            dry_run: false,
            plan: &plan,
            started_at: chrono::Utc::now(),
            input_file: None,
        };
        rostergate::store::runs::insert(&db, run).await.unwrap();
        let (status, _) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(status, 200);
        let (_, dead) = app
            .get("/api/v1/districts/lincoln/runs/dead-run", OPERATOR_TOKEN)
            .await;
        assert_eq!(dead["status"], "failed");
        db.close().await;
    }
);

/// Records of a kind the run's plan does not read: the run fails and keeps nothing, not even the
/// records staged before them (applying clears only the stages of the kinds a plan reads).
#[tokio::test]
async fn records_of_a_kind_the_plan_does_not_read_fail_the_run_and_leave_nothing_staged() {
    use rostergate::domain::problem::ProblemLog;
    use rostergate::domain::records::{Mode, RecordKind, RecordStatus, SourceRecord, Value};
    use rostergate::domain::run::Origin;
    use rostergate::store::Db;
    use rostergate::sync::engine::RunOptions;
    use rostergate::sync::input::{Feed, Plan, PlannedKind, SourceEnd};
    use rostergate::sync::{Engine, SyncError};

    fn record(kind: RecordKind, sourced_id: &str) -> SourceRecord {
        SourceRecord {
            kind,
            sourced_id: sourced_id.to_string(),
            line: 2,
            status: RecordStatus::Active,
            values: vec![Value::Null; kind.columns().len()],
            extra: None,
        }
    }

    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let test_db = common::TestDb::new(backend).await;
        let db = Db::connect_and_migrate(&test_db.url).await.unwrap();
        let district = rostergate::admin::create_district(&db, "lincoln", "Lincoln", "UTC", None)
            .await
            .unwrap();
        let plan = Plan {
            kinds: vec![PlannedKind {
                kind: RecordKind::Orgs,
                mode: Mode::Delta,
                label: "orgs".into(),
                origin: Origin::Endpoint,
                digest: None,
                carried: false,
                unstaged_unchanged: None,
            }],
        };
        let (send, feed) = tokio::sync::mpsc::channel(4);
        send.send(Feed::Records(
            RecordKind::Orgs,
            vec![record(RecordKind::Orgs, "org-1")],
        ))
        .await
        .unwrap();
        send.send(Feed::Records(
            RecordKind::Users,
            vec![record(RecordKind::Users, "u-1")],
        ))
        .await
        .unwrap();
        drop(send);
        let end = async { SourceEnd::from(ProblemLog::new(10)) };
        let result = Engine::new(db.clone(), 10)
            .run(&district, "test", plan, feed, end, RunOptions::default())
            .await;
        assert!(
            matches!(result, Err(SyncError::Unplanned("users"))),
            "{result:?}"
        );

        let count = |sql: &'static str| {
            let db = db.clone();
            async move { db.conn().scalar(sql, &rostergate::args![]).await.unwrap() }
        };
        assert_eq!(count("SELECT COUNT(*) FROM stage_orgs").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM stage_users").await, 0);
        assert_eq!(
            count("SELECT COUNT(*) FROM orgs").await,
            0,
            "nothing applied"
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM sync_runs WHERE status = 'failed'").await,
            1,
            "the run says it failed"
        );
    }
}

/// The applying transaction settles PostgreSQL's planner for itself alone: JIT compilation off
/// (its statements ran in less time than compiling them took) and index probes priced near a
/// sequential read; the connection then has the server's settings again. SQLite has no such
/// settings and is left as it is.
#[tokio::test]
async fn the_applying_transaction_settles_the_planner_for_itself_alone() {
    use rostergate::store::{sync_apply, Db};

    for backend in common::backends().await {
        let test_db = common::TestDb::new(backend).await;
        let db = Db::connect_and_migrate(&test_db.url).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        sync_apply::settle_apply_transaction(&mut tx).await.unwrap();
        if backend == common::Backend::Sqlite {
            tx.rollback().await.unwrap();
            continue;
        }
        let jit_on =
            "SELECT CASE WHEN current_setting('jit') = 'on' THEN CAST(1 AS BIGINT) ELSE 0 END";
        assert_eq!(tx.scalar(jit_on, &[]).await.unwrap(), 0, "off inside");
        let probes = "SELECT CASE WHEN current_setting('random_page_cost') = '1.1' \
                      THEN CAST(1 AS BIGINT) ELSE 0 END";
        assert_eq!(tx.scalar(probes, &[]).await.unwrap(), 1, "1.1 inside");
        tx.commit().await.unwrap();
        // One connection so far, so the pool hands the same one back.
        let mut conn = db.conn();
        for setting in ["jit", "random_page_cost"] {
            let server_default = format!(
                "SELECT CASE WHEN current_setting('{setting}') = reset_val THEN CAST(1 AS BIGINT) \
                 ELSE 0 END FROM pg_settings WHERE name = '{setting}'"
            );
            assert_eq!(
                conn.scalar(&server_default, &[]).await.unwrap(),
                1,
                "{setting}: the server's setting again once the transaction ended"
            );
        }
    }
}

/// A run's bookkeeping (its `running` row, the lock's holder) does not wait for the server to
/// flush it; nothing else may lose that wait, so the setting must end with its transaction.
#[tokio::test]
async fn a_commit_that_skips_the_flush_leaves_every_later_commit_flushed() {
    for backend in common::backends().await {
        eprintln!("unflushed commits on {backend:?}");
        let test_db = common::TestDb::new(backend).await;
        let db = match backend {
            // One connection, so that a setting left behind on it would be seen below.
            common::Backend::Postgres => rostergate::store::Db::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&test_db.url)
                    .await
                    .unwrap(),
            ),
            common::Backend::Sqlite => rostergate::store::Db::connect(&test_db.url).await.unwrap(),
        };
        db.migrate().await.unwrap();
        let setting = "SELECT CAST(current_setting('synchronous_commit') AS TEXT)";
        let mut tx = db.begin_unflushed().await.unwrap();
        tx.execute(
            "INSERT INTO districts (slug, name, timezone, settings, created_at) \
             VALUES ('unflushed', 'Unflushed', 'UTC', '{}', $1)",
            &rostergate::args![chrono::Utc::now()],
        )
        .await
        .unwrap();
        if backend == common::Backend::Postgres {
            assert_eq!(tx.strings(setting, &[]).await.unwrap(), ["off"]);
        }
        tx.commit().await.unwrap();
        let districts = db
            .conn()
            .scalar(
                "SELECT COUNT(*) FROM districts WHERE slug = 'unflushed'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(districts, 1, "an unflushed commit is a commit");
        if backend == common::Backend::Postgres {
            assert_eq!(db.conn().strings(setting, &[]).await.unwrap(), ["on"]);
            let mut tx = db.begin().await.unwrap();
            assert_eq!(tx.strings(setting, &[]).await.unwrap(), ["on"]);
            tx.rollback().await.unwrap();
        }
    }
}

/// Stages `ids` for `run` in `stage_users`, as a run's staging would.
async fn stage_users(db: &rostergate::store::Db, run: &str, ids: &[&str]) {
    for (line, id) in ids.iter().enumerate() {
        db.conn()
            .execute(
                "INSERT INTO stage_users (run_id, line, sourced_id, deleting, hash) \
                 VALUES ($1, $2, $3, FALSE, 0)",
                &rostergate::args![run, line as i64 + 2, *id],
            )
            .await
            .unwrap();
    }
}

async fn staged_ids(db: &rostergate::store::Db, run: &str) -> Vec<String> {
    db.conn()
        .strings(
            "SELECT sourced_id FROM stage_users WHERE run_id = $1 ORDER BY sourced_id",
            &rostergate::args![run],
        )
        .await
        .unwrap()
}

/// A run that was alone in a stage leaves nothing there for the next run to read: on
/// PostgreSQL not even dead rows (the table keeps no page), where deleting them would leave
/// every one for the next run's scans until a vacuum. A run that was not alone clears its own
/// rows and keeps every other run's (a held run's, waiting for approval).
#[tokio::test]
async fn clearing_a_run_leaves_its_stage_empty_and_every_other_runs_rows_staged() {
    use rostergate::store::{staging, Db};
    for backend in common::backends().await {
        eprintln!("on {backend:?}");
        let test_db = common::TestDb::new(backend).await;
        let db = Db::connect_and_migrate(&test_db.url).await.unwrap();
        let many: Vec<String> = (0..2_000).map(|i| format!("u-{i:05}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();

        stage_users(&db, "run-a", &many).await;
        staging::clear(&db, "run-a").await.unwrap();
        assert!(staged_ids(&db, "run-a").await.is_empty());
        if backend == common::Backend::Postgres {
            let bytes = db
                .conn()
                .scalar(
                    "SELECT CAST(pg_relation_size('stage_users') AS BIGINT)",
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(bytes, 0, "no dead rows left behind");
        }

        // Other runs' rows on both sides of this run's, in key order.
        stage_users(&db, "run-0", &["held-1"]).await;
        stage_users(&db, "run-b", &many).await;
        stage_users(&db, "run-z", &["held-2"]).await;
        staging::clear(&db, "run-b").await.unwrap();
        assert!(staged_ids(&db, "run-b").await.is_empty());
        assert_eq!(staged_ids(&db, "run-0").await, ["held-1"]);
        assert_eq!(staged_ids(&db, "run-z").await, ["held-2"]);
        db.close().await;
    }
}

/// On PostgreSQL a stage another transaction is reading is cleared row by row, at once: the run
/// neither waits for that transaction nor makes it wait, and the rows it read stay readable.
#[tokio::test]
async fn a_stage_another_transaction_holds_is_cleared_without_waiting_for_it() {
    use rostergate::store::{staging, Db};
    if !common::backends()
        .await
        .contains(&common::Backend::Postgres)
    {
        eprintln!("skipped: no PostgreSQL to test on (set ROSTERGATE_TEST_POSTGRES_URL)");
        return;
    }
    let test_db = common::TestDb::new(common::Backend::Postgres).await;
    let db = Db::connect_and_migrate(&test_db.url).await.unwrap();
    stage_users(&db, "run-a", &["a-1", "a-2"]).await;
    stage_users(&db, "run-held", &["h-1"]).await;

    let mut reader = db.begin().await.unwrap();
    let read = reader
        .strings(
            "SELECT sourced_id FROM stage_users WHERE run_id = 'run-held'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(read, ["h-1"]);
    let cleared = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        staging::clear(&db, "run-a"),
    )
    .await
    .expect("the clear does not wait for the reading transaction");
    cleared.unwrap();
    assert!(staged_ids(&db, "run-a").await.is_empty());
    let again = reader
        .strings(
            "SELECT sourced_id FROM stage_users WHERE run_id = 'run-held'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(again, ["h-1"]);
    reader.commit().await.unwrap();
    assert_eq!(staged_ids(&db, "run-held").await, ["h-1"]);
    db.close().await;
}
