//! Black-box tests of bulk re-imports over a district that holds records: the engine compares each
//! file with the live records as it reads it and stages only what differs, and every outcome must
//! be what staging the whole file gave (counts, events, refusals by line, held runs).

use serde_json::{json, Value};

use crate::common;

use crate::common::{count, school, Bundle, TestApp, OPERATOR_TOKEN};

/// `file`'s lines with every line containing `gone` left out.
fn without(bundle: &Bundle, file: &str, gone: &str) -> String {
    bundle
        .get(file)
        .lines()
        .filter(|l| !l.contains(gone))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The next night's roster: Sam's given name changed, Syd left (with her enrollment), Sue's
/// cls-1 enrollment became primary, and Sam joined cls-2.
fn next_night() -> Bundle {
    let base = school();
    let users = without(&base, "users.csv", "stu-3,").replace(",Sam,One,", ",Samuel,One,");
    let enrollments = without(&base, "enrollments.csv", ",stu-3,").replace(
        "e-5,,,cls-1,sch-1,stu-2,student,,",
        "e-5,,,cls-1,sch-1,stu-2,student,true,",
    ) + "e-8,,,cls-2,sch-1,stu-1,student,,2026-08-01,2099-06-30\n";
    base.with("users.csv", &users)
        .with("enrollments.csv", &enrollments)
}

/// What a district's roster reads as through the API: the users, enrollments and classes in
/// effect, and who Tina and Adam coach.
async fn roster_of(app: &TestApp, district: &str) -> Value {
    let mut roster = serde_json::Map::new();
    for list in ["users", "enrollments", "classes"] {
        let (status, body) = app
            .get(
                &format!("/api/v1/districts/{district}/{list}?limit=1000"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // Records in effect: a removed user stays (as no longer rostered) where one never was.
        let active: Vec<Value> = body[list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "active")
            .cloned()
            .collect();
        roster.insert(list.into(), Value::Array(active));
    }
    for teacher in ["tch-1", "aid-1"] {
        let (_, coaching) = app
            .get(
                &format!("/api/v1/districts/{district}/users/{teacher}/coaching"),
                OPERATOR_TOKEN,
            )
            .await;
        roster.insert(teacher.into(), coaching["students"].clone());
    }
    Value::Object(roster)
}

/// The catalogue events a run wrote (its own `sync_run.*` event left out), as (type, subject).
async fn events_of_run(app: &TestApp, district: &str, run: &str) -> Vec<(String, String)> {
    let mut events: Vec<(String, String)> = app
        .events(district)
        .await
        .iter()
        .filter(|e| e["run_id"] == run && !e["type"].as_str().unwrap().starts_with("sync_run."))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["subject"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    events.sort();
    events
}

/// Imports `bundle` and expects it refused with a problem at `file`:`line` on `field` whose
/// message contains `message_part`, and nothing changed.
async fn assert_refused_at(
    app: &TestApp,
    bundle: &Bundle,
    (file, line, field): (&str, u64, &str),
    message_part: &str,
) {
    let before = roster_of(app, "lincoln").await;
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, bundle).await;
    assert_eq!(status, 422, "{body}");
    let details = body["error"]["details"].as_array().unwrap();
    assert!(
        details.iter().any(|d| d["file"] == file
            && d["line"].as_u64() == Some(line)
            && d["field"] == field
            && d["message"].as_str().unwrap().contains(message_part)),
        "expected {file}:{line} {field} ~ {message_part:?} in {body}"
    );
    assert_eq!(
        roster_of(app, "lincoln").await,
        before,
        "a refused bundle changes nothing"
    );
}

on_every_backend!(
    a_reimport_counts_and_announces_each_change_and_leaves_what_a_fresh_import_leaves,
    |app| {
        app.create_district("lincoln").await;
        app.create_district("fresh").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &next_night()).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            report["carried_over"],
            json!(["orgs", "academicSessions", "courses", "classes"])
        );
        for (kind, change, n) in [
            ("users", "created", 0),
            ("users", "updated", 1),
            ("users", "deleted", 1),
            ("users", "unchanged", 3),
            ("enrollments", "created", 1),
            ("enrollments", "updated", 1),
            ("enrollments", "deleted", 1),
            ("enrollments", "unchanged", 5),
        ] {
            assert_eq!(count(&report, kind, change), n, "{kind} {change}: {report}");
        }
        // Syd's coaching by Tina ends; Sam's by Tina in cls-2 was already there through cls-1.
        assert_eq!(
            report["coaching"],
            json!({ "started": 0, "ended": 1 }),
            "{report}"
        );
        let run = report["run_id"].as_str().unwrap();
        let announced = events_of_run(&app, "lincoln", run).await;
        for expected in [
            ("enrollment.added", "e-8"),
            ("enrollment.removed", "e-7"),
            ("coaching.removed", "tch-1/stu-3"),
        ] {
            assert!(
                announced
                    .iter()
                    .any(|(t, s)| t == expected.0 && s == expected.1),
                "{expected:?} in {announced:?}"
            );
        }
        assert!(
            !announced.iter().any(|(_, s)| s == "e-5" || s == "e-1"),
            "a primary flag makes no event, an unchanged enrollment none either: {announced:?}"
        );

        app.import("fresh", OPERATOR_TOKEN, &next_night()).await;
        assert_eq!(
            roster_of(&app, "lincoln").await,
            roster_of(&app, "fresh").await
        );
    }
);

on_every_backend!(a_reimport_in_another_order_changes_nothing, |app| {
    app.create_district("lincoln").await;
    app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    let base = school();
    let reversed = |file: &str| {
        let mut lines: Vec<&str> = base.get(file).lines().collect();
        lines[1..].reverse();
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    };
    let reordered = base
        .clone()
        .with("users.csv", &reversed("users.csv"))
        .with("enrollments.csv", &reversed("enrollments.csv"));
    let before = roster_of(&app, "lincoln").await;
    let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &reordered).await;
    assert_eq!(status, 200, "{report}");
    for kind in ["users", "enrollments"] {
        for change in ["created", "updated", "deleted"] {
            assert_eq!(count(&report, kind, change), 0, "{kind} {change}");
        }
    }
    assert_eq!(count(&report, "users", "unchanged"), 5);
    assert_eq!(count(&report, "enrollments", "unchanged"), 7);
    assert_eq!(report["coaching"], json!({ "started": 0, "ended": 0 }));
    let run = report["run_id"].as_str().unwrap();
    assert_eq!(events_of_run(&app, "lincoln", run).await, vec![]);
    assert_eq!(roster_of(&app, "lincoln").await, before);
});

on_every_backend!(
    a_reimport_repeating_an_unchanged_record_is_refused_on_the_repeat,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let base = school();
        let sam = base
            .get("users.csv")
            .lines()
            .find(|l| l.starts_with("stu-1,"))
            .unwrap()
            .to_string();
        let users = base.get("users.csv");
        let changed = sam.replace(",Sam,", ",Samuel,");
        let (header, rows) = users.split_once('\n').unwrap();
        // (users.csv, the line refused, the line named first)
        let cases = [
            // The record as held, on line 4 and again on line 7.
            (format!("{users}{sam}\n"), 7, 4),
            // As held on line 4, changed on line 7.
            (format!("{users}{changed}\n"), 7, 4),
            // Changed on line 2, as held on line 5.
            (format!("{header}\n{changed}\n{rows}"), 5, 2),
        ];
        for (file, line, first) in cases {
            assert_refused_at(
                &app,
                &base.clone().with("users.csv", &file),
                ("users.csv", line, "sourcedId"),
                &format!("duplicate sourcedId \"stu-1\" (first on line {first})"),
            )
            .await;
        }
    }
);

on_every_backend!(
    a_reimport_keeping_an_unchanged_record_that_names_a_removed_one_is_refused_on_its_line,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let base = school();
        let orgs = base
            .get("orgs.csv")
            .replace("sch-1,,,Lincoln High", "sch-2,,,Lincoln High");
        // (file changed, its new contents, where the refusal is, what it says)
        let cases = [
            // Syd leaves users.csv, but her enrollment (line 8), unchanged, stays.
            (
                "users.csv",
                without(&base, "users.csv", "stu-3,"),
                ("enrollments.csv", 8, "userSourcedId"),
                "\"stu-3\" is not a known users",
            ),
            // cls-2 leaves classes.csv; its enrollments (lines 3, 7 and 8) stay.
            (
                "classes.csv",
                without(&base, "classes.csv", "cls-2,"),
                ("enrollments.csv", 3, "classSourcedId"),
                "\"cls-2\" is not a known classes",
            ),
            // A second school appears and the first leaves: every unchanged user names it.
            (
                "orgs.csv",
                orgs,
                ("users.csv", 2, "orgSourcedIds"),
                "\"sch-1\" is not a known orgs",
            ),
        ];
        for (file, contents, at, message) in cases {
            assert_refused_at(&app, &base.clone().with(file, &contents), at, message).await;
        }
    }
);

on_every_backend!(
    a_held_reimport_approved_later_removes_only_what_its_file_lacked,
    |app| {
        app.create_district_with("lincoln", json!({ "review_every_sync": true }))
            .await;
        app.create_district("fresh").await;
        let (_, first) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let approve = |run: String| {
            let app = &app;
            async move {
                let (status, approved) = app
                    .post_json(
                        &format!("/api/v1/districts/lincoln/runs/{run}/approve"),
                        OPERATOR_TOKEN,
                        &json!({}),
                    )
                    .await;
                assert_eq!(status, 200, "{approved}");
                assert_eq!(approved["status"], "applied", "{approved}");
                approved
            }
        };
        approve(first["run_id"].as_str().unwrap().to_string()).await;
        let (_, held) = app.import("lincoln", OPERATOR_TOKEN, &next_night()).await;
        assert_eq!(held["status"], "held", "{held}");
        let approved = approve(held["run_id"].as_str().unwrap().to_string()).await;
        assert_eq!(count(&approved, "users", "deleted"), 1, "{approved}");
        assert_eq!(count(&approved, "users", "unchanged"), 3, "{approved}");
        assert_eq!(count(&approved, "enrollments", "deleted"), 1, "{approved}");
        assert_eq!(
            count(&approved, "enrollments", "unchanged"),
            5,
            "{approved}"
        );
        app.import("fresh", OPERATOR_TOKEN, &next_night()).await;
        assert_eq!(
            roster_of(&app, "lincoln").await,
            roster_of(&app, "fresh").await
        );
    }
);

/// A database on `backend` with the district `lincoln` (the database lives as long as the guard).
async fn lincoln_on(
    backend: common::Backend,
) -> (
    common::TestDb,
    rostergate::store::Db,
    rostergate::domain::district::District,
) {
    let test_db = common::TestDb::new(backend).await;
    let db = rostergate::store::Db::connect_and_migrate(&test_db.url)
        .await
        .unwrap();
    let district = rostergate::admin::create_district(&db, "lincoln", "Lincoln", "UTC", None)
        .await
        .unwrap();
    (test_db, db, district)
}

/// Imports `bundle` (written to `dir`) through `engine`, expecting it applied without problems.
async fn import_through(
    engine: &rostergate::sync::Engine,
    district: &rostergate::domain::district::District,
    bundle: &Bundle,
    dir: &std::path::Path,
) -> Value {
    let report = rostergate::imports::import_oneroster_csv(
        engine,
        district,
        &bundle.write_dir(dir),
        None,
        &rostergate::config::ImportSettings::default(),
        rostergate::sync::engine::RunOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    serde_json::to_value(&report).unwrap()
}

/// The records a bulk file no longer has are found from the sourcedIds held while it was
/// compared, or, for a kind with too many to hold, by reading the district's records again: a
/// re-import removes, counts and announces the same either way.
#[tokio::test]
async fn records_a_file_no_longer_has_are_removed_alike_whether_or_not_their_ids_were_held() {
    use rostergate::sync::Engine;

    for backend in common::backends().await {
        let mut outcomes = Vec::new();
        // Everything held and read ahead; nothing but the keys, each kind read at its turn.
        for comparison_bytes in [u64::MAX, 0] {
            let (_test_db, db, district) = lincoln_on(backend).await;
            let engine = Engine::new(db.clone(), 100).with_comparison_bytes(comparison_bytes);
            let work = tempfile::tempdir().unwrap();
            import_through(&engine, &district, &school(), &work.path().join("first")).await;
            let next =
                &import_through(&engine, &district, &next_night(), &work.path().join("next")).await;
            for (kind, change, n) in [
                ("users", "deleted", 1),
                ("users", "updated", 1),
                ("enrollments", "deleted", 1),
                ("enrollments", "created", 1),
                ("enrollments", "unchanged", 5),
            ] {
                assert_eq!(count(next, kind, change), n, "{kind} {change}: {next}");
            }
            let removed: Vec<(String, String)> = db
                .conn()
                .fetch_all(
                    "SELECT sourced_id, deleted_reason FROM users WHERE deleted_at IS NOT NULL \
                     UNION ALL SELECT sourced_id, deleted_reason FROM enrollments WHERE deleted_at IS NOT NULL \
                     ORDER BY sourced_id",
                    &rostergate::args![],
                )
                .await
                .unwrap();
            assert_eq!(
                removed,
                [
                    ("e-7".to_string(), "absent_from_bulk".to_string()),
                    ("stu-3".to_string(), "absent_from_bulk".to_string())
                ],
                "comparison bytes: {comparison_bytes}"
            );
            let events: Vec<(String, String)> = db
                .conn()
                .fetch_all(
                    "SELECT event_type, subject_id FROM outbox_events WHERE run_id = $1 \
                     ORDER BY event_type, subject_id",
                    &rostergate::args![next["run_id"].as_str().unwrap()],
                )
                .await
                .unwrap();
            // Accounts and runs are named by ids made anew in each database.
            let events: Vec<(String, String)> = events
                .into_iter()
                .map(|(kind, subject)| match kind.split('.').next() {
                    Some("account" | "sync_run") => (kind, String::new()),
                    _ => (kind, subject),
                })
                .collect();
            outcomes.push((next["counts"].clone(), next["coaching"].clone(), events));
        }
        assert_eq!(outcomes[0], outcomes[1], "on {backend:?}");
    }
}

/// A run reads the live records of the kinds it compares ahead, while they fit together in what
/// one kind may hold; the others at their turn. Either way, and in whatever order they are asked
/// for, they are the records read at the kind's turn.
#[tokio::test]
async fn live_records_read_ahead_are_those_read_at_the_kinds_turn() {
    use rostergate::domain::records::RecordKind;
    use rostergate::sync::known_records::MAX_HELD_BYTES;
    use rostergate::sync::live_ahead::{read_live, LiveAhead, LiveRecords};
    use rostergate::sync::Engine;

    fn read(records: LiveRecords, kind: RecordKind) -> (u64, Vec<String>) {
        let LiveRecords::Read { live, loader } = records else {
            panic!("{kind:?}: the district has records of it");
        };
        let known = loader.finish(kind, Vec::new()).expect("no collision");
        let mut ids: Vec<String> = known
            .maybe_absent_ids()
            .expect("held")
            .into_iter()
            .map(str::to_string)
            .collect();
        ids.sort_unstable();
        (live, ids)
    }

    for backend in common::backends().await {
        let (_test_db, db, district) = lincoln_on(backend).await;
        let work = tempfile::tempdir().unwrap();
        import_through(
            &Engine::new(db.clone(), 100),
            &district,
            &school(),
            work.path(),
        )
        .await;
        let kinds = [
            RecordKind::Classes,
            RecordKind::Users,
            RecordKind::Enrollments,
        ];
        let mut at_their_turn = Vec::new();
        for kind in kinds {
            let records = read_live(&db, district.id, kind, MAX_HELD_BYTES)
                .await
                .unwrap();
            at_their_turn.push(read(records, kind));
        }
        assert_eq!(at_their_turn[1].0, 5, "five users");
        // Everything fits; or the classes and the users but not the enrollments (2 and 5 keys of
        // 12 bytes, 7 ids of 5 characters and 8 bytes: 175 bytes; then the enrollments' 84 bytes
        // of keys do not fit, and read at their turn their 77 bytes of ids do).
        for budget in [MAX_HELD_BYTES, 200] {
            let mut ahead = LiveAhead::start(db.clone(), district.id, kinds.to_vec(), budget);
            for at in [2, 0, 1] {
                let kind = kinds[at];
                let records_read = read(ahead.take(kind).await.unwrap(), kind);
                assert_eq!(records_read, at_their_turn[at], "{kind:?}, {budget} bytes");
            }
        }
    }
}

// PostgreSQL plans a run on its tables' statistics: a table a first import filled but left
// unanalysed (autovacuum may be off, or not yet round) is planned as empty, and the next delta
// walked all of it for a few rows (the account links: 0.8 s of a 6 s delta at 100,000 students).
on_every_backend!(
    a_first_import_leaves_statistics_on_every_table_the_next_run_plans_on,
    |app| {
        app.create_district("lincoln").await;
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!((status, report["status"].as_str()), (200, Some("applied")));
        if !app.db.url.starts_with("postgres") {
            eprintln!("SQLite plans by its indexes, without statistics: nothing to check");
            continue;
        }
        let db = rostergate::store::Db::connect(&app.db.url).await.unwrap();
        let unanalysed = db
            .conn()
            .strings(
                "SELECT relname::text FROM pg_class WHERE reltuples < 0 AND relname IN \
                 ('classes', 'users', 'enrollments', 'coaching_sources', 'account_links', 'accounts') \
                 ORDER BY relname",
                &[],
            )
            .await
            .unwrap();
        assert!(unanalysed.is_empty(), "never analysed: {unanalysed:?}");
        db.close().await;
    }
);

on_every_backend!(
    a_reimport_changing_every_enrollment_updates_each_and_stages_no_removal,
    |app| {
        // Enough enrollments that the run refreshes the stage's statistics before it looks for
        // records the file lacks (every live enrollment is then a candidate, none absent).
        let dir = tempfile::tempdir().unwrap();
        let district = rostergate::synthetic::SyntheticDistrict {
            students: 3_000,
            seed: 5,
        };
        rostergate::synthetic::write_bundle(&district, dir.path()).unwrap();
        let first = Bundle::from_dir(dir.path());
        let settings = json!({ "update_threshold_percent": 100.0 });
        app.create_district_with("lincoln", settings).await;
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &first).await;
        assert_eq!((status, report["status"].as_str()), (200, Some("applied")));

        // Every enrollment's `primary` flipped.
        let header = first.get("enrollments.csv").lines().next().unwrap();
        assert_eq!(header.split(',').nth(7), Some("primary"), "{header}");
        let mut rows = 0;
        let flipped = common::edit_csv(first.get("enrollments.csv"), |_, mut row| {
            row[7] = if row[7] == "true" { "false" } else { "true" }.into();
            rows += 1;
            vec![row]
        });
        assert!(rows >= 20_000, "{rows} enrollments");
        let changed = first.clone().with("enrollments.csv", &flipped);

        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &changed).await;
        assert_eq!((status, report["status"].as_str()), (200, Some("applied")));
        assert_eq!(
            report["counts"]["enrollments"],
            json!({ "created": 0, "updated": rows, "deleted": 0, "unchanged": 0 })
        );
        for moved in ["created", "updated", "deleted"] {
            assert_eq!(report["counts"]["users"][moved], json!(0), "{report}");
        }
        let (status, again) = app.import("lincoln", OPERATOR_TOKEN, &changed).await;
        assert_eq!((status, again["status"].as_str()), (200, Some("applied")));
        assert_eq!(again["counts"]["enrollments"]["unchanged"], json!(rows));
        assert_eq!(again["counts"]["enrollments"]["updated"], json!(0));
    }
);

/// The reader frees the records it allocated on its own thread: it hands the engine somewhere to
/// send them back first, and the engine sends back every record it is done with, staged or
/// found unchanged, each once, in a first import and in a re-import compared as it is read.
#[tokio::test]
async fn every_record_read_goes_back_to_the_reader_once_the_engine_is_done_with_it() {
    use rostergate::config::ImportSettings;
    use rostergate::sources::oneroster::{self, bundle::Bundle as OneRosterBundle};
    use rostergate::sync::engine::RunOptions;
    use rostergate::sync::input::{Feed, SourceEnd};
    use rostergate::sync::Engine;

    for backend in common::backends().await {
        let (_test_db, db, district) = lincoln_on(backend).await;
        let engine = Engine::new(db.clone(), 100);
        let work = tempfile::tempdir().unwrap();
        for (night, bundle) in [("first", school()), ("next", next_night())] {
            let dir = bundle.write_dir(&work.path().join(night));
            let mut log = oneroster::problem_log(&ImportSettings::default());
            let read = OneRosterBundle::open_as(&dir, night, &mut log).expect("opens");
            let plan = oneroster::plan(&read);
            let reader_plan = plan.clone();
            let (to_proxy, mut from_reader) = tokio::sync::mpsc::channel(4);
            let reader = tokio::task::spawn_blocking(move || {
                oneroster::produce(
                    &read,
                    &reader_plan,
                    &ImportSettings::default(),
                    to_proxy,
                    None,
                )
            });
            // Between the reader and the engine: what was read, and where the engine sends
            // records back to instead of the reader.
            let (to_engine, feed) = tokio::sync::mpsc::channel(4);
            let (back, came_back) = std::sync::mpsc::channel();
            let proxy = tokio::spawn(async move {
                let (mut read, mut asked_first, mut first) = (Vec::new(), false, true);
                while let Some(item) = from_reader.recv().await {
                    let item = match item {
                        Feed::ReturnTo(_) => {
                            asked_first = first;
                            Feed::ReturnTo(back.clone())
                        }
                        Feed::Records(kind, records) => {
                            read.extend(records.iter().map(|r| (kind, r.sourced_id.clone())));
                            Feed::Records(kind, records)
                        }
                        other => other,
                    };
                    first = false;
                    if to_engine.send(item).await.is_err() {
                        break;
                    }
                }
                (read, asked_first)
            });
            let end = async move { SourceEnd::from(reader.await.unwrap()) };
            let report = engine
                .run(
                    &district,
                    "oneroster_csv",
                    plan,
                    feed,
                    end,
                    RunOptions::default(),
                )
                .await
                .unwrap();
            assert!(report.errors.is_empty(), "{night}: {:?}", report.errors);
            let (mut read, asked_first) = proxy.await.unwrap();
            assert!(
                asked_first,
                "{night}: the reader asks before its first records"
            );
            let mut returned: Vec<_> = came_back
                .try_iter()
                .flatten()
                .map(|r| (r.kind, r.sourced_id))
                .collect();
            read.sort_unstable();
            returned.sort_unstable();
            assert!(read.len() > 10, "{night}: {} records read", read.len());
            assert_eq!(returned, read, "{night} on {backend:?}");
            if night == "next" {
                let users = &report.counts["users"];
                assert!(users.unchanged > 0 && users.updated > 0, "{users:?}");
            }
        }
    }
}
