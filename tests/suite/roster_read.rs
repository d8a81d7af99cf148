//! Black-box tests of the roster read API, on SQLite and PostgreSQL.

use crate::common;

use crate::common::{count, school, Bundle, OPERATOR_TOKEN};
use serde_json::json;

on_every_backend!(the_real_oneroster_sample_imports_and_reads_back, |app| {
    app.create_district("grand-bend").await;
    let (status, report) = app
        .import(
            "grand-bend",
            OPERATOR_TOKEN,
            &Bundle::from_dir(&common::sample_dir()),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "applied");
    assert_eq!(report["errors"], json!([]));
    for (kind, n) in [
        ("orgs", 2),
        ("academicSessions", 3),
        ("courses", 2),
        ("classes", 2),
        ("users", 10),
        ("enrollments", 24),
    ] {
        assert_eq!(count(&report, kind, "created"), n, "{kind}");
    }
    let (_, users) = app
        .get(
            "/api/v1/districts/grand-bend/users?limit=4&offset=0",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(users["total"], 10);
    assert_eq!(users["users"].as_array().unwrap().len(), 4);
    let (_, page3) = app
        .get(
            "/api/v1/districts/grand-bend/users?limit=4&offset=8",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(page3["users"].as_array().unwrap().len(), 2);
    let (status, mary) = app
        .get("/api/v1/districts/grand-bend/users/604863", OPERATOR_TOKEN)
        .await;
    assert_eq!(status, 200);
    assert_eq!(mary["user"]["givenName"], "Mary");
    assert_eq!(mary["user"]["role"], "student");
    assert_eq!(mary["user"]["orgSourcedIds"], json!(["255901001"]));
    assert_eq!(mary["user"]["rosterStatus"], "Rostered");
    assert_eq!(mary["user"]["enabledUser"], true);
    let (_, class) = app
        .get(
            "/api/v1/districts/grand-bend/classes/25590100101Trad120ENG112011",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(
        class["class"]["termSourcedIds"],
        json!([
            "255901001_2021_2020-2021_Fall",
            "255901001_2021_2020-2021_Spring"
        ])
    );
    let (_, org) = app
        .get(
            "/api/v1/districts/grand-bend/orgs/255901001",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(org["org"]["type"], "school");
    let (_, sessions) = app
        .get(
            "/api/v1/districts/grand-bend/academicSessions",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(sessions["academicSessions"].as_array().unwrap().len(), 3);
    let (_, classes) = app
        .get(
            "/api/v1/districts/grand-bend/users/604863/classes",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(classes["classes"].as_array().unwrap().len(), 2);
    assert_eq!(classes["classes"][0]["role"], "student");
    // The sample's enrollments ended on 2020-12-18: nobody coaches anybody any more.
    let (_, coaching) = app
        .get(
            "/api/v1/districts/grand-bend/users/604863/coaching",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(coaching["coaches"], json!([]));
    let (status, _) = app
        .get("/api/v1/districts/grand-bend/users/nobody", OPERATOR_TOKEN)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get("/api/v1/districts/grand-bend/users?limit=0", OPERATOR_TOKEN)
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .get(
            "/api/v1/districts/grand-bend/users?limit=abc",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 400);
});

on_every_backend!(
    coaching_lists_students_and_coaches_with_the_classes_it_comes_from,
    |app| {
        app.create_district("lincoln").await;
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(status, 200, "{report}");
        // tch-1 → stu-1, stu-2, stu-3; aid-1 → stu-1, stu-2.
        assert_eq!(report["coaching"], json!({ "started": 5, "ended": 0 }));
        let (_, teacher) = app
            .get(
                "/api/v1/districts/lincoln/users/tch-1/coaching",
                OPERATOR_TOKEN,
            )
            .await;
        let students = teacher["students"].as_array().unwrap();
        let ids: Vec<&str> = students
            .iter()
            .map(|s| s["sourcedId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["stu-1", "stu-2", "stu-3"]);
        let sue = &students[1];
        assert_eq!(sue["givenName"], "Sue");
        let classes: Vec<&str> = sue["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sourcedId"].as_str().unwrap())
            .collect();
        assert_eq!(classes, ["cls-1", "cls-2"]);
        assert_eq!(sue["sources"][0]["type"], "class");
        assert_eq!(sue["sources"][0]["title"], "Algebra I - P1");
        assert_eq!(teacher["coaches"], json!([]));
        let (_, student) = app
            .get(
                "/api/v1/districts/lincoln/users/stu-2/coaching",
                OPERATOR_TOKEN,
            )
            .await;
        let coaches: Vec<&str> = student["coaches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sourcedId"].as_str().unwrap())
            .collect();
        assert_eq!(coaches, ["aid-1", "tch-1"]);
        assert_eq!(student["students"], json!([]));
    }
);
