//! Black-box tests of re-imports: a file that is byte for byte the one a kind's records were last
//! applied from is not read again, and nothing that changed is ever carried over.

use crate::common;

use crate::common::{count, school, Bundle, BUNDLE_KINDS, OPERATOR_TOKEN};
use serde_json::{json, Value};

/// The kinds a changed `users.csv` leaves carried over: users refer to them, not they to users
/// (enrollments, which refer to users, are read again with them).
const KINDS_USERS_DO_NOT_MOVE: [&str; 4] = ["orgs", "academicSessions", "courses", "classes"];

/// The school with Sam renamed.
fn school_with_sam_renamed(given_name: &str) -> Bundle {
    let users = school()
        .get("users.csv")
        .replace(",Sam,One,", &format!(",{given_name},One,"));
    school().with("users.csv", &users)
}

async fn given_name(app: &common::TestApp, user: &str) -> Value {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/lincoln/users/{user}"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["user"]["givenName"].clone()
}

on_every_backend!(
    an_unchanged_bundle_is_not_read_again_and_every_record_counts_unchanged,
    |app| {
        app.create_district("lincoln").await;
        let (_, first) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(first["status"], "applied", "{first}");
        assert!(first.get("carried_over").is_none(), "{first}");

        let (status, again) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["status"], "applied", "{again}");
        assert_eq!(again["carried_over"], json!(BUNDLE_KINDS));
        for kind in BUNDLE_KINDS {
            assert_eq!(
                count(&again, kind, "unchanged"),
                count(&first, kind, "created"),
                "{kind}"
            );
            for change in ["created", "updated", "deleted"] {
                assert_eq!(count(&again, kind, change), 0, "{kind} {change}");
            }
        }
        // The stored run says so too.
        let run_id = again["run_id"].as_str().unwrap();
        let (_, run) = app
            .get(
                &format!("/api/v1/districts/lincoln/runs/{run_id}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(run["carried_over"], json!(BUNDLE_KINDS), "{run}");
    }
);

on_every_backend!(
    a_changed_file_is_read_and_so_is_every_file_that_refers_to_its_records,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;

        let renamed = school_with_sam_renamed("Samuel");
        let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &renamed).await;
        assert_eq!(report["status"], "applied", "{report}");
        // Enrollments refer to users: a changed users file could have removed one of theirs.
        assert_eq!(report["carried_over"], json!(KINDS_USERS_DO_NOT_MOVE));
        assert_eq!(count(&report, "users", "updated"), 1);
        assert_eq!(count(&report, "users", "unchanged"), 4);
        assert_eq!(count(&report, "enrollments", "unchanged"), 7);
        assert_eq!(given_name(&app, "stu-1").await, "Samuel");

        // The renamed file is now the one the users came from.
        let (_, again) = app.import("lincoln", OPERATOR_TOKEN, &renamed).await;
        assert_eq!(again["carried_over"], json!(BUNDLE_KINDS), "{again}");
    }
);

on_every_backend!(
    a_file_is_read_again_once_another_run_changed_its_records,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let delta = Bundle::default()
            .with(
                "manifest.csv",
                "propertyName,value\noneroster.version,1.1\nfile.users,delta\n",
            )
            .with(
                "users.csv",
                "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,givenName,familyName\n\
                 stu-1,active,2026-11-20T10:00:00Z,true,sch-1,student,sam,Samantha,One\n",
            );
        let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &delta).await;
        assert_eq!(count(&report, "users", "updated"), 1, "{report}");
        assert_eq!(given_name(&app, "stu-1").await, "Samantha");

        // The same bulk file as the first import: users must be read, or Sam stays Samantha.
        let (_, again) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(again["status"], "applied", "{again}");
        assert_eq!(again["carried_over"], json!(KINDS_USERS_DO_NOT_MOVE));
        assert_eq!(count(&again, "users", "updated"), 1);
        assert_eq!(given_name(&app, "stu-1").await, "Sam");
    }
);

on_every_backend!(
    a_held_run_approved_leaves_nothing_to_carry_over_and_the_next_import_reads_it_all,
    |app| {
        app.create_district_with("lincoln", json!({ "review_every_sync": true }))
            .await;
        let (_, held) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(held["status"], "held", "{held}");
        let run_id = held["run_id"].as_str().unwrap();
        let (status, approved) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/runs/{run_id}/approve"),
                OPERATOR_TOKEN,
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(approved["status"], "applied", "{approved}");

        let (_, next) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(next["status"], "held", "{next}");
        assert!(next.get("carried_over").is_none(), "{next}");
        for kind in BUNDLE_KINDS {
            assert_eq!(
                count(&next, kind, "created") + count(&next, kind, "updated"),
                0
            );
        }
    }
);

on_every_backend!(
    a_dry_run_of_an_unchanged_bundle_carries_it_over_and_records_nothing,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let (status, dry) = app
            .post_bytes(
                "/api/v1/districts/lincoln/imports/oneroster?dry_run=true",
                OPERATOR_TOKEN,
                school().zip(),
            )
            .await;
        assert_eq!(status, 200, "{dry}");
        assert_eq!(dry["status"], "dry_run", "{dry}");
        assert_eq!(dry["carried_over"], json!(BUNDLE_KINDS));
        assert_eq!(count(&dry, "users", "unchanged"), 5);
        // A dry run changes nothing, so the next import still finds every file unchanged.
        let (_, again) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(again["carried_over"], json!(BUNDLE_KINDS), "{again}");
    }
);

on_every_backend!(
    a_held_run_keeps_counting_its_carried_kinds_unchanged_when_approved,
    |app| {
        app.create_district_with("lincoln", json!({ "threshold_min_changes": 1 }))
            .await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        // Syd leaves: a third of the students, more than the safeguard lets through.
        let base = school();
        let keep = |file: &str, gone: &str| {
            base.get(file)
                .lines()
                .filter(|l| !l.contains(gone))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        };
        let without_syd = base
            .clone()
            .with("users.csv", &keep("users.csv", "stu-3,"))
            .with("enrollments.csv", &keep("enrollments.csv", ",stu-3,"));
        let (_, held) = app.import("lincoln", OPERATOR_TOKEN, &without_syd).await;
        assert_eq!(held["status"], "held", "{held}");
        assert_eq!(held["carried_over"], json!(KINDS_USERS_DO_NOT_MOVE));
        let run_id = held["run_id"].as_str().unwrap();
        let (status, approved) = app
            .post_json(
                &format!("/api/v1/districts/lincoln/runs/{run_id}/approve"),
                OPERATOR_TOKEN,
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(approved["status"], "applied", "{approved}");
        assert_eq!(count(&approved, "classes", "unchanged"), 2);
        assert_eq!(count(&approved, "users", "deleted"), 1);
        assert_eq!(given_name(&app, "stu-1").await, "Sam");
        // The approved kinds kept no digest: the same bundle again reads them.
        let (_, again) = app.import("lincoln", OPERATOR_TOKEN, &without_syd).await;
        assert_eq!(again["status"], "applied", "{again}");
        assert_eq!(again["carried_over"], json!(KINDS_USERS_DO_NOT_MOVE));
        assert_eq!(count(&again, "users", "unchanged"), 4);
    }
);

on_every_backend!(
    a_reimport_into_a_district_busy_with_another_sync_is_refused_and_runs_nothing,
    |app| {
        app.create_district("lincoln").await;
        let (_, first) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(first["status"], "applied", "{first}");
        let runs_before = run_count(&app).await;

        // Another sync holds the district: the bundle is locked out before it is compared with
        // what the district applied, and no run is recorded for it.
        let lock = app.hold_sync_lock("lincoln").await;
        let renamed = school_with_sam_renamed("Samuel");
        let (status, busy) = app.import("lincoln", OPERATOR_TOKEN, &renamed).await;
        assert_eq!(status, 409, "{busy}");
        assert_eq!(busy["error"]["code"], "sync_in_progress", "{busy}");
        assert_eq!(run_count(&app).await, runs_before);
        assert_eq!(given_name(&app, "stu-1").await, "Sam");

        // Once it is free, the same bundle is compared with what was applied, as ever.
        lock.release().await.unwrap();
        let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &renamed).await;
        assert_eq!(report["status"], "applied", "{report}");
        assert_eq!(report["carried_over"], json!(KINDS_USERS_DO_NOT_MOVE));
        assert_eq!(count(&report, "users", "updated"), 1);
        assert_eq!(given_name(&app, "stu-1").await, "Samuel");
        assert_eq!(run_count(&app).await, runs_before + 1);
    }
);

async fn run_count(app: &common::TestApp) -> usize {
    let (status, body) = app
        .get("/api/v1/districts/lincoln/runs", OPERATOR_TOKEN)
        .await;
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().expect("a list of runs").len()
}
