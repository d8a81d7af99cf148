//! Black-box tests of coaching kept up to date by re-imports: whatever a series of runs changes
//! (and whatever a run skips deriving because nothing coaching depends on changed), what it
//! leaves must be what deriving everything afresh gives.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::common;

use crate::common::{edit_csv, Bundle, OPERATOR_TOKEN};
use rostergate::store::Db;
use rostergate::synthetic::{write_bundle, SyntheticDistrict};
use serde_json::Value;

fn rows(text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

// Columns of the generated files.
const USER_ID: usize = 0;
const USER_ROLE: usize = 5;
const ENROLLMENT_CLASS: usize = 3;
const ENROLLMENT_SCHOOL: usize = 4;
const ENROLLMENT_USER: usize = 5;
const ENROLLMENT_ROLE: usize = 6;
const ENROLLMENT_END: usize = 9;

/// Three rosters in a row: a generated district; then students moved between classes,
/// enrollments and students removed; then teachers' enrollments ended and the removed students
/// back with their enrollments.
fn three_rosters() -> [Bundle; 3] {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(
        &SyntheticDistrict {
            students: 150,
            seed: 11,
        },
        dir.path(),
    )
    .unwrap();
    let first = Bundle::from_dir(dir.path());
    let enrollments = rows(first.get("enrollments.csv"));

    let removed: HashSet<String> = rows(first.get("users.csv"))
        .into_iter()
        .filter(|u| u[USER_ROLE] == "student")
        .step_by(13)
        .map(|u| u[USER_ID].clone())
        .collect();
    let users = edit_csv(first.get("users.csv"), |_, u| {
        if removed.contains(&u[USER_ID]) {
            vec![]
        } else {
            vec![u]
        }
    });
    let moved = edit_csv(first.get("enrollments.csv"), |n, mut e| {
        if removed.contains(&e[ENROLLMENT_USER]) || n % 11 == 5 {
            return vec![];
        }
        if n % 7 == 3 && e[ENROLLMENT_ROLE] == "student" {
            let other = &enrollments[(n + 40) % enrollments.len()];
            e[ENROLLMENT_CLASS] = other[ENROLLMENT_CLASS].clone();
            e[ENROLLMENT_SCHOOL] = other[ENROLLMENT_SCHOOL].clone();
        }
        vec![e]
    });
    let second = first
        .clone()
        .with("users.csv", &users)
        .with("enrollments.csv", &moved);

    let mut teachers = 0;
    let ended = edit_csv(&moved, |_, mut e| {
        if e[ENROLLMENT_ROLE] != "student" {
            teachers += 1;
            if teachers % 3 == 0 {
                e[ENROLLMENT_END] = "2020-06-30".into();
            }
        }
        vec![e]
    });
    // The removed students come back with their enrollments as they were.
    let mut returning: String = rows(first.get("enrollments.csv"))
        .into_iter()
        .filter(|e| removed.contains(&e[ENROLLMENT_USER]))
        .map(|e| e.join(",") + "\n")
        .collect();
    returning.insert_str(0, &ended);
    let third = first.clone().with("enrollments.csv", &returning);
    [first, second, third]
}

/// A user's coaches and students, with the classes each comes from, as the API gives them.
async fn coaching_body(app: &common::TestApp, district: &str, user: &str) -> Value {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/{district}/users/{user}/coaching"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every user's coaches and students, with the classes each comes from.
async fn coaching_of(
    app: &common::TestApp,
    district: &str,
    bundle: &Bundle,
) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    for user in rows(bundle.get("users.csv")) {
        let id = &user[USER_ID];
        all.insert(id.clone(), coaching_body(app, district, id).await);
    }
    all
}

on_every_backend!(
    coaching_after_a_series_of_imports_is_what_a_fresh_import_of_the_last_derives,
    |app| {
        let rosters = three_rosters();
        // These rosters change more than the safeguards let through unreviewed.
        let settings = serde_json::json!({ "delete_threshold_percent": 100.0 });
        app.create_district_with("kept", settings).await;
        let mut moved = 0;
        for bundle in &rosters {
            let (status, report) = app.import("kept", OPERATOR_TOKEN, bundle).await;
            assert_eq!(status, 200, "{report}");
            assert_eq!(report["status"], "applied", "{report}");
            moved += report["coaching"]["started"].as_u64().unwrap()
                + report["coaching"]["ended"].as_u64().unwrap();
        }
        assert!(moved > 0, "the rosters change coaching");
        app.create_district("fresh").await;
        let last = &rosters[2];
        let (_, report) = app.import("fresh", OPERATOR_TOKEN, last).await;
        assert_eq!(report["status"], "applied", "{report}");

        let kept = coaching_of(&app, "kept", last).await;
        let fresh = coaching_of(&app, "fresh", last).await;
        let with_coaching = fresh
            .values()
            .filter(|c| !c["coaches"].as_array().unwrap().is_empty())
            .count();
        assert!(with_coaching > 100, "{with_coaching} users are coached");
        for (user, expected) in &fresh {
            assert_eq!(&kept[user], expected, "{user}");
        }
    }
);

/// Every coaching pair of the district, as `(coach, student)`, read through each coach of
/// `bundle` (coaches are never removed by these rosters; a coach's classes may end).
async fn coaching_pairs(
    app: &common::TestApp,
    district: &str,
    bundle: &Bundle,
) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for user in rows(bundle.get("users.csv")) {
        if user[USER_ROLE] == "student" {
            continue;
        }
        let coach = &user[USER_ID];
        let body = coaching_body(app, district, coach).await;
        for student in body["students"].as_array().unwrap() {
            let student = student["sourcedId"].as_str().unwrap().to_string();
            pairs.insert((coach.clone(), student));
        }
    }
    pairs
}

/// The `coaching.added` and `coaching.removed` events after event `after`, each as the pair its
/// subject names, and the number of the last event read.
async fn coaching_events(
    app: &common::TestApp,
    district: &str,
    mut after: i64,
) -> (Vec<(String, String)>, Vec<(String, String)>, i64) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    loop {
        let (status, page) = app
            .get(
                &format!("/api/v1/districts/{district}/events?after={after}&limit=10000"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            return (added, removed, after);
        }
        for event in events {
            let pair = || {
                let data = &event["data"];
                let pair = (
                    data["teacher"].as_str().unwrap().to_string(),
                    data["student"].as_str().unwrap().to_string(),
                );
                assert_eq!(event["subject"], format!("{}/{}", pair.0, pair.1));
                pair
            };
            match event["type"].as_str().unwrap() {
                "coaching.added" => added.push(pair()),
                "coaching.removed" => removed.push(pair()),
                _ => {}
            }
        }
        after = page["next_after"].as_i64().unwrap();
    }
}

on_every_backend!(
    every_run_announces_exactly_the_coaching_pairs_it_started_and_ended,
    |app| {
        let rosters = three_rosters();
        let settings = serde_json::json!({ "delete_threshold_percent": 100.0 });
        app.create_district_with("kept", settings).await;
        let mut before = BTreeSet::new();
        let mut after_event = 0;
        for (n, bundle) in rosters.iter().enumerate() {
            let (status, report) = app.import("kept", OPERATOR_TOKEN, bundle).await;
            assert_eq!(status, 200, "{report}");
            assert_eq!(report["status"], "applied", "{report}");
            let now = coaching_pairs(&app, "kept", &rosters[0]).await;
            let (added, removed, last) = coaching_events(&app, "kept", after_event).await;
            after_event = last;

            let started: BTreeSet<_> = now.difference(&before).cloned().collect();
            let ended: BTreeSet<_> = before.difference(&now).cloned().collect();
            assert!(!started.is_empty(), "roster {n} starts coaching");
            if n > 0 {
                assert!(!ended.is_empty(), "roster {n} ends coaching");
            }
            // Each pair announced once, and only the pairs that moved.
            assert_eq!(added.len(), started.len(), "roster {n}: {added:?}");
            assert_eq!(
                added.into_iter().collect::<BTreeSet<_>>(),
                started,
                "roster {n}"
            );
            assert_eq!(removed.len(), ended.len(), "roster {n}: {removed:?}");
            assert_eq!(
                removed.into_iter().collect::<BTreeSet<_>>(),
                ended,
                "roster {n}"
            );
            assert_eq!(
                report["coaching"],
                serde_json::json!({ "started": started.len(), "ended": ended.len() }),
                "roster {n}"
            );
            before = now;
        }
    }
);

/// `(coach, classes)` of a student's coaches, or `(student, classes)` of a coach's students.
async fn coaching_list(
    app: &common::TestApp,
    user: &str,
    which: &str,
) -> Vec<(String, Vec<String>)> {
    coaching_body(app, "lincoln", user).await[which]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let classes = c["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["sourcedId"].as_str().unwrap().to_string())
                .collect();
            (c["sourcedId"].as_str().unwrap().to_string(), classes)
        })
        .collect()
}

fn list(entries: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    entries
        .iter()
        .map(|(id, classes)| {
            (
                id.to_string(),
                classes.iter().map(|c| c.to_string()).collect(),
            )
        })
        .collect()
}

/// The school with one enrollment line replaced (`None`: removed).
fn school_with_enrollment(id: &str, line: Option<&str>) -> Bundle {
    let school = common::school();
    let enrollments: String = school
        .get("enrollments.csv")
        .lines()
        .filter_map(|l| {
            if l.starts_with(&format!("{id},")) {
                line.map(str::to_string)
            } else {
                Some(l.to_string())
            }
        })
        .map(|l| l + "\n")
        .collect();
    school.with("enrollments.csv", &enrollments)
}

on_every_backend!(
    a_student_moved_to_another_class_is_coached_from_there_alone,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        let moved = school_with_enrollment(
            "e-4",
            Some("e-4,,,cls-2,sch-1,stu-1,student,,2026-08-01,2099-06-30"),
        );
        let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &moved).await;
        assert_eq!(report["status"], "applied", "{report}");
        // The aide is in cls-1 only; the teacher teaches both classes.
        assert_eq!(
            report["coaching"],
            serde_json::json!({ "started": 0, "ended": 1 })
        );
        assert_eq!(
            coaching_list(&app, "stu-1", "coaches").await,
            list(&[("tch-1", &["cls-2"])])
        );
        assert_eq!(
            coaching_list(&app, "aid-1", "students").await,
            list(&[("stu-2", &["cls-1"])])
        );
    }
);

on_every_backend!(
    an_aides_enrollment_missing_from_a_bulk_file_ends_the_coaching_it_gave,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        let (_, report) = app
            .import(
                "lincoln",
                OPERATOR_TOKEN,
                &school_with_enrollment("e-3", None),
            )
            .await;
        assert_eq!(report["status"], "applied", "{report}");
        assert_eq!(
            report["coaching"],
            serde_json::json!({ "started": 0, "ended": 2 })
        );
        assert!(coaching_list(&app, "aid-1", "students").await.is_empty());
        assert_eq!(
            coaching_list(&app, "stu-2", "coaches").await,
            list(&[("tch-1", &["cls-1", "cls-2"])])
        );
    }
);

on_every_backend!(
    a_teachers_enrollment_that_ended_ends_the_coaching_of_that_class_only,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        let ended = school_with_enrollment(
            "e-2",
            Some("e-2,,,cls-2,sch-1,tch-1,teacher,true,2026-08-01,2020-06-30"),
        );
        let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &ended).await;
        assert_eq!(report["status"], "applied", "{report}");
        assert_eq!(
            report["coaching"],
            serde_json::json!({ "started": 0, "ended": 1 })
        );
        assert_eq!(
            coaching_list(&app, "tch-1", "students").await,
            list(&[("stu-1", &["cls-1"]), ("stu-2", &["cls-1"])])
        );
        assert!(coaching_list(&app, "stu-3", "coaches").await.is_empty());

        // Back as it was: the coaching comes back.
        let (_, report) = app
            .import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        assert_eq!(
            report["coaching"],
            serde_json::json!({ "started": 1, "ended": 0 })
        );
        assert_eq!(
            coaching_list(&app, "stu-3", "coaches").await,
            list(&[("tch-1", &["cls-2"])])
        );
    }
);

on_every_backend!(
    a_new_day_ends_the_coaching_of_enrollments_that_ended_since_and_derives_no_other_class,
    |app| {
        app.create_district("lincoln").await;
        // Tina's P2 enrollment ended on 2025-06-30: today it gives no coaching.
        let roster = school_with_enrollment(
            "e-2",
            Some("e-2,,,cls-2,sch-1,tch-1,teacher,true,2024-08-01,2025-06-30"),
        );
        let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &roster).await;
        assert_eq!(report["status"], "applied", "{report}");
        assert!(coaching_list(&app, "stu-3", "coaches").await.is_empty());

        // The tests cannot move the clock, so the district is made to hold what a derivation
        // on 2025-01-01 left: Tina coached P2's students then. And one of P1's sources is
        // deleted behind the gateway's back: only deriving P1 again would bring it back.
        let db = Db::connect(&app.db.url).await.unwrap();
        let district = "(SELECT id FROM districts WHERE slug = 'lincoln')";
        for student in ["stu-2", "stu-3"] {
            let sql = format!(
                "INSERT INTO coaching_sources (district_id, teacher_sourced_id, student_sourced_id, \
                 source_type, source_id, created_at) VALUES ({district}, 'tch-1', $1, 'class', 'cls-2', $2)"
            );
            let args = rostergate::args![student, chrono::Utc::now()];
            db.conn().execute(&sql, &args).await.unwrap();
        }
        let sql = format!(
            "DELETE FROM coaching_sources WHERE district_id = {district} \
             AND teacher_sourced_id = 'tch-1' AND student_sourced_id = 'stu-1'"
        );
        assert_eq!(db.conn().execute(&sql, &[]).await.unwrap(), 1);
        let then = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        let sql = "UPDATE districts SET coaching_cutoff = $1 WHERE slug = 'lincoln'";
        db.conn()
            .execute(sql, &rostergate::args![then])
            .await
            .unwrap();

        // The same roster on a new day: P2's coaching by Tina ends where nothing else keeps it.
        let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &roster).await;
        assert_eq!(report["status"], "applied", "{report}");
        assert_eq!(
            report["coaching"],
            serde_json::json!({ "started": 0, "ended": 1 }),
            "{report}"
        );
        assert!(coaching_list(&app, "stu-3", "coaches").await.is_empty());
        assert_eq!(
            coaching_list(&app, "stu-2", "coaches").await,
            list(&[("aid-1", &["cls-1"]), ("tch-1", &["cls-1"])])
        );
        // P1 had no enrollment end between the two days: it was not derived again.
        assert_eq!(
            coaching_list(&app, "stu-1", "coaches").await,
            list(&[("aid-1", &["cls-1"])])
        );
        let sql = "SELECT COUNT(*) FROM districts WHERE slug = 'lincoln' AND coaching_cutoff = $1";
        let stale = db
            .conn()
            .scalar(sql, &rostergate::args![then])
            .await
            .unwrap();
        assert_eq!(stale, 0, "the derivation's cut-off is today's");
        db.close().await;
    }
);

on_every_backend!(
    a_delta_that_moves_enrollments_between_classes_leaves_what_a_fresh_import_derives,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        // Sam moves to P2, the aide moves with him, and Syd's P2 enrollment has ended.
        let header = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n";
        let delta = Bundle::default()
            .with(
                "manifest.csv",
                "propertyName,value\noneroster.version,1.1\nfile.enrollments,delta\n",
            )
            .with(
                "enrollments.csv",
                &format!(
                    "{header}\
                     e-4,active,2026-11-20T10:00:00Z,cls-2,sch-1,stu-1,student,,2026-08-01,2099-06-30\n\
                     e-3,tobedeleted,2026-11-20T10:00:00Z,cls-1,sch-1,aid-1,aide,false,2026-08-01,2099-06-30\n\
                     e-9,active,2026-11-20T10:00:00Z,cls-2,sch-1,aid-1,aide,false,2026-08-01,2099-06-30\n\
                     e-7,active,2026-11-20T10:00:00Z,cls-2,sch-1,stu-3,student,,2026-08-01,2020-06-30\n"
                ),
            );
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &delta).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["status"], "applied", "{report}");
        // The aide's pairs now come from P2 (no event); the teacher no longer coaches Syd.
        assert_eq!(
            report["coaching"],
            serde_json::json!({ "started": 0, "ended": 1 })
        );
        assert_eq!(
            coaching_list(&app, "aid-1", "students").await,
            list(&[("stu-1", &["cls-2"]), ("stu-2", &["cls-2"])])
        );
        assert_eq!(
            coaching_list(&app, "tch-1", "students").await,
            list(&[("stu-1", &["cls-2"]), ("stu-2", &["cls-1", "cls-2"])])
        );

        let same = common::school().with(
            "enrollments.csv",
            &format!(
                "{header}\
                 e-1,,,cls-1,sch-1,tch-1,teacher,true,2026-08-01,2099-06-30\n\
                 e-2,,,cls-2,sch-1,tch-1,teacher,true,2026-08-01,2099-06-30\n\
                 e-4,,,cls-2,sch-1,stu-1,student,,2026-08-01,2099-06-30\n\
                 e-5,,,cls-1,sch-1,stu-2,student,,2026-08-01,2099-06-30\n\
                 e-6,,,cls-2,sch-1,stu-2,student,,2026-08-01,2099-06-30\n\
                 e-7,,,cls-2,sch-1,stu-3,student,,2026-08-01,2020-06-30\n\
                 e-9,,,cls-2,sch-1,aid-1,aide,false,2026-08-01,2099-06-30\n"
            ),
        );
        app.create_district("fresh").await;
        app.import("fresh", OPERATOR_TOKEN, &same).await;
        assert_eq!(
            coaching_of(&app, "lincoln", &same).await,
            coaching_of(&app, "fresh", &same).await
        );
    }
);
