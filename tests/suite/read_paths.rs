//! Black-box tests of the read paths' results on a synthetic district: pages put together
//! are the whole listing, and coaching answers agree with the enrollments, on both databases.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{Bundle, OPERATOR_TOKEN};
use serde_json::Value;

const D: &str = "synthetic";

/// A synthetic district of `students`, then the same bundle with its first `dropped`
/// student enrollments removed (tombstones that listings must skip consistently).
async fn synthetic_district(app: &common::TestApp, students: usize, dropped: usize) -> Bundle {
    let dir = tempfile::tempdir().unwrap();
    let spec = rostergate::synthetic::SyntheticDistrict { students, seed: 3 };
    rostergate::synthetic::write_bundle(&spec, dir.path()).unwrap();
    let bundle = Bundle::from_dir(dir.path());
    app.create_district(D).await;
    let (status, report) = app.import(D, OPERATOR_TOKEN, &bundle).await;
    assert_eq!(
        (status, &report["status"]),
        (200, &Value::from("applied")),
        "{report}"
    );
    let enrollments = bundle.get("enrollments.csv").to_string();
    let mut kept: Vec<&str> = enrollments.lines().collect();
    let mut removed = 0;
    kept.retain(|line| {
        let drop = removed < dropped && line.contains(",student,");
        removed += usize::from(drop);
        !drop
    });
    let trimmed = bundle.with("enrollments.csv", &(kept.join("\n") + "\n"));
    let (status, report) = app.import(D, OPERATOR_TOKEN, &trimmed).await;
    assert_eq!(
        (status, &report["status"]),
        (200, &Value::from("applied")),
        "{report}"
    );
    trimmed
}

/// The sourcedIds of one page, and the total the answer gives.
async fn page(
    app: &common::TestApp,
    kind: &str,
    limit: usize,
    offset: usize,
) -> (Vec<String>, u64) {
    let path = format!("/api/v1/districts/{D}/{kind}?limit={limit}&offset={offset}");
    let (status, body) = app.get(&path, OPERATOR_TOKEN).await;
    assert_eq!(status, 200, "{path}: {body}");
    let ids = body[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sourcedId"].as_str().unwrap().to_string())
        .collect();
    (ids, body["total"].as_u64().unwrap())
}

on_every_backend!(
    pages_put_together_are_the_whole_listing_in_key_order,
    |app| {
        let bundle = synthetic_district(&app, 60, 3).await;
        let live_enrollments = bundle.get("enrollments.csv").lines().count() as u64 - 1;
        let users = bundle.get("users.csv").lines().count() as u64 - 1;
        // (kind, rows the listing shows): users stay listed whatever happens to them.
        let cases = [
            ("users", users),
            ("enrollments", live_enrollments),
            (
                "classes",
                bundle.get("classes.csv").lines().count() as u64 - 1,
            ),
            ("orgs", bundle.get("orgs.csv").lines().count() as u64 - 1),
        ];
        for (kind, expected_total) in cases {
            let (all, total) = page(&app, kind, 10_000, 0).await;
            assert_eq!(total, expected_total, "{kind}");
            assert_eq!(all.len() as u64, total, "{kind}");
            let mut sorted = all.clone();
            sorted.sort();
            assert_eq!(all, sorted, "{kind} is in key order");
            for limit in [1, 7, 100] {
                let mut walked = Vec::new();
                let mut offset = 0;
                loop {
                    let (ids, page_total) = page(&app, kind, limit, offset).await;
                    assert_eq!(page_total, total, "{kind} limit={limit} offset={offset}");
                    if ids.is_empty() {
                        break;
                    }
                    assert!(ids.len() <= limit);
                    walked.extend(ids);
                    offset += limit;
                }
                assert_eq!(walked, all, "{kind} walked with limit={limit}");
                assert_eq!(offset as u64, total.div_ceil(limit as u64) * limit as u64);
            }
            let (past_end, _) = page(&app, kind, 5, total as usize + 50).await;
            assert!(past_end.is_empty(), "{kind}");
        }
    }
);

on_every_backend!(coaching_answers_agree_with_the_enrollments, |app| {
    let bundle = synthetic_district(&app, 40, 0).await;
    // class → (staff, students) from enrollments.csv: staff coach the students of their class.
    let mut classes: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut reader = csv::Reader::from_reader(bundle.get("enrollments.csv").as_bytes());
    for row in reader.records() {
        let row = row.unwrap();
        let (class, user, role) = (&row[3], &row[5], &row[6]);
        let entry = classes.entry(class.to_string()).or_default();
        if role == "student" {
            entry.1.insert(user.to_string());
        } else {
            entry.0.insert(user.to_string());
        }
    }
    for student in ["stu-000001", "stu-000017", "stu-000040"] {
        let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (class, (staff, students)) in &classes {
            if students.contains(student) {
                for coach in staff {
                    expected
                        .entry(coach.clone())
                        .or_default()
                        .insert(class.clone());
                }
            }
        }
        let path = format!("/api/v1/districts/{D}/users/{student}/coaching");
        let (status, body) = app.get(&path, OPERATOR_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        let got: BTreeMap<String, BTreeSet<String>> = body["coaches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let sources = c["sources"].as_array().unwrap();
                let classes = sources
                    .iter()
                    .map(|s| s["sourcedId"].as_str().unwrap().to_string())
                    .collect();
                (c["sourcedId"].as_str().unwrap().to_string(), classes)
            })
            .collect();
        assert!(!expected.is_empty(), "{student} has coaches");
        assert_eq!(got, expected, "{student}");
        let order: Vec<&String> = got.keys().collect();
        let answered: Vec<&str> = body["coaches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sourcedId"].as_str().unwrap())
            .collect();
        assert_eq!(answered, order, "{student}: coaches in key order");
    }
});

/// `total` (and `X-Total-Count`) of a listing, read twice so that a remembered count is used.
async fn total(app: &common::TestApp, kind: &str) -> u64 {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = app
            .client
            .get(app.url(&format!("/api/v1/districts/lincoln/{kind}?limit=1")))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        let header: u64 = r.headers()["X-Total-Count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["total"].as_u64(), Some(header));
        seen.push(header);
    }
    assert_eq!(seen[0], seen[1]);
    seen[0]
}

on_every_backend!(
    listing_totals_follow_every_applied_sync_and_only_those,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &common::school())
            .await;
        assert_eq!(total(&app, "users").await, 5);
        assert_eq!(total(&app, "enrollments").await, 7);

        let school = common::school();
        let grown = school.clone().with(
            "users.csv",
            &format!(
                "{}stu-4,,,true,sch-1,student,sol,,Sol,Four,,S4,sol@example.org,,,,09,\n",
                school.get("users.csv")
            ),
        );
        // A dry run changes nothing, so the remembered totals still hold.
        let (status, _) = app
            .post_bytes(
                "/api/v1/districts/lincoln/imports/oneroster?dry_run=true",
                OPERATOR_TOKEN,
                grown.zip(),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(total(&app, "users").await, 5);

        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &grown).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(total(&app, "users").await, 6);
        assert_eq!(total(&app, "enrollments").await, 7);

        // Removing enrollments hides them from the listing at once.
        let enrollments: String = school
            .get("enrollments.csv")
            .lines()
            .filter(|l| !l.starts_with("e-7"))
            .map(|l| format!("{l}\n"))
            .collect();
        let (status, report) = app
            .import(
                "lincoln",
                OPERATOR_TOKEN,
                &grown.with("enrollments.csv", &enrollments),
            )
            .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(total(&app, "enrollments").await, 6);
    }
);
