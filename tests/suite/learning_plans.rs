//! MAP Growth–style results imported from a Comprehensive Data File (upload and CLI), matched to
//! rostered students, placed per goal area through the shipped math mapping, and overridden by
//! the teachers who coach the student. On both databases.

use crate::common;

use serde_json::{json, Value};

use crate::common::{school, TestApp, OPERATOR_TOKEN};

/// The current CDF layout's columns this test fills (the importer reads columns by name, so a
/// subset in another order is an export like any other).
const HEADER: &str = "TermName,DistrictName,SchoolName,StudentLastName,StudentFirstName,StudentID,Student_StateID,Grade,Subject,Course,NormsReferenceData,TestType,TestName,TestStartDate,TestStartTime,TestDurationMinutes,TestRITScore,TestStandardError,TestPercentile,Goal1Name,Goal1RitScore,Goal1StdErr,Goal1Range,Goal1Adjective,Goal2Name,Goal2RitScore,Goal2StdErr,Goal2Range,Goal2Adjective";

/// One math row: student id, test date, overall RIT, and the Operations and Geometry goal RITs.
fn math_row(student: &str, date: &str, rit: i64, (ops, geo): (i64, i64)) -> String {
    format!(
        "Fall 2026-2027,Lincoln Unified,Lincoln High,Doe,Pat,{student},ST{student},5,Mathematics,Math 2-5,2020,Survey With Goals,Growth: Math 2-5 CCSS 2010 V2,{date},09:15:00,45,{rit},3.1,50,\
         Operations and Algebraic Thinking,{ops},6.5,{}-{},Avg,Geometry,{geo},7.0,{}-{},Avg",
        ops - 6,
        ops + 6,
        geo - 7,
        geo + 7
    )
}

fn export(rows: &[String]) -> Vec<u8> {
    let mut csv = String::from(HEADER);
    for row in rows {
        csv.push_str("\r\n");
        csv.push_str(row);
    }
    csv.push_str("\r\n");
    csv.into_bytes()
}

fn zipped(csv: Vec<u8>) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("Export 2026/AssessmentResults.csv", options)
            .unwrap();
        zip.write_all(&csv).unwrap();
        zip.start_file("Export 2026/StudentsBySchool.csv", options)
            .unwrap();
        zip.write_all(b"TermName,StudentID\r\nFall 2026-2027,S1\r\n")
            .unwrap();
        zip.finish().unwrap();
    }
    out.into_inner()
}

async fn upload(app: &TestApp, district: &str, body: Vec<u8>) -> (u16, Value) {
    app.post_bytes(
        &format!("/api/v1/districts/{district}/imports/scores"),
        OPERATOR_TOKEN,
        body,
    )
    .await
}

async fn rostered(app: &TestApp, district: &str) {
    app.create_district(district).await;
    let (status, body) = app.import(district, OPERATOR_TOKEN, &school()).await;
    assert_eq!(status, 200, "{body}");
}

async fn plan_of(app: &TestApp, district: &str, student: &str) -> Value {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/{district}/students/{student}/plan"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The math plan's goal area `key` of a plan response.
fn area<'a>(plan: &'a Value, key: &str) -> &'a Value {
    plan["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "math")
        .unwrap_or_else(|| panic!("no math plan in {plan}"))["goal_areas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["goal_area"] == key)
        .unwrap_or_else(|| panic!("no goal area {key} in {plan}"))
}

/// `PUT`s a teacher's override of a lincoln student's math operations-algebra placement.
async fn put_override(app: &TestApp, token: &str, student: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .put(app.url(&format!(
            "/api/v1/districts/lincoln/students/{student}/plan/math/operations-algebra"
        )))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        r.status().as_u16(),
        r.json::<Value>().await.unwrap_or(Value::Null),
    )
}

async fn event_types(app: &TestApp, district: &str) -> Vec<String> {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/{district}/events?limit=1000"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .filter(|t| t.starts_with("assessment_result.") || t.starts_with("placement."))
        .collect()
}

on_every_backend!(
    an_export_places_matched_students_per_goal_area_and_keeps_the_unmatched,
    |app| {
        rostered(&app, "lincoln").await;
        let body = zipped(export(&[
            math_row("S1", "2026-09-14", 201, (195, 212)),
            math_row("S2", "9/15/2026", 180, (170, 185)),
            math_row("S9", "2026-09-14", 220, (220, 220)),
        ]));
        let (status, report) = upload(&app, "lincoln", body).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["status"], "applied");
        assert_eq!(report["received"], 3);
        assert_eq!(report["new"], 3);
        assert_eq!(report["matched"], 2);
        assert_eq!(report["unmatched"], 1);
        assert_eq!(report["students_placed"], 2);

        let plan = plan_of(&app, "lincoln", "stu-1").await;
        // The goal-area RIT decides where the result has one…
        let ops = area(&plan, "operations-algebra");
        assert_eq!(ops["proposed"]["unit"], "g3-multiplication-division");
        assert_eq!(ops["proposed"]["basis"], "goal_area");
        assert_eq!(ops["effective"]["source"], "proposed");
        assert_eq!(
            area(&plan, "geometry")["proposed"]["unit"],
            "g5-coordinate-plane-classifying-figures"
        );
        // …and the overall RIT (201) where it has none.
        let data = area(&plan, "measurement-data");
        assert_eq!(data["proposed"]["basis"], "overall");
        assert_eq!(data["proposed"]["rit"], 201.0);

        let (status, results) = app
            .get(
                "/api/v1/districts/lincoln/students/stu-2/results",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{results}");
        assert_eq!(results["results"][0]["rit"], 180);
        assert_eq!(results["results"][0]["test_date"], "2026-09-15");

        let events = event_types(&app, "lincoln").await;
        assert_eq!(
            events
                .iter()
                .filter(|t| *t == "assessment_result.received")
                .count(),
            2,
            "{events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|t| *t == "placement.generated")
                .count(),
            2,
            "{events:?}"
        );
    }
);

on_every_backend!(the_same_export_again_changes_nothing, |app| {
    rostered(&app, "lincoln").await;
    let body = export(&[
        math_row("S1", "2026-09-14", 201, (195, 212)),
        math_row("S3", "2026-09-14", 230, (228, 231)),
    ]);
    let (status, first) = upload(&app, "lincoln", body.clone()).await;
    assert_eq!(status, 200, "{first}");
    let events = event_types(&app, "lincoln").await;
    let (status, again) = upload(&app, "lincoln", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["received"], 2);
    assert_eq!(again["new"], 0);
    assert_eq!(again["unchanged"], 2);
    assert_eq!(again["students_placed"], 0);
    assert_eq!(event_types(&app, "lincoln").await, events);
});

on_every_backend!(a_restated_score_moves_the_proposed_placement, |app| {
    rostered(&app, "lincoln").await;
    let (status, _) = upload(
        &app,
        "lincoln",
        export(&[math_row("S1", "2026-09-14", 201, (195, 212))]),
    )
    .await;
    assert_eq!(status, 200);
    let (status, report) = upload(
        &app,
        "lincoln",
        export(&[math_row("S1", "2026-09-14", 201, (215, 212))]),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["restated"], 1);
    assert_eq!(report["students_placed"], 1);
    let plan = plan_of(&app, "lincoln", "stu-1").await;
    assert_eq!(
        area(&plan, "operations-algebra")["proposed"]["unit"],
        "g5-numerical-expressions"
    );
});

on_every_backend!(
    a_result_for_a_student_rostered_later_is_matched_by_the_roster_sync,
    |app| {
        rostered(&app, "lincoln").await;
        let (status, report) = upload(
            &app,
            "lincoln",
            export(&[math_row("S4", "2026-09-14", 205, (205, 205))]),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["unmatched"], 1);
        let (status, _) = app
            .get(
                "/api/v1/districts/lincoln/students/stu-4/plan",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 404);

        let users = school().get("users.csv").to_string()
            + "stu-4,,,true,sch-1,student,sol,,Sol,Four,,S4,sol@example.org,,,,09,\n";
        let enrollments = school().get("enrollments.csv").to_string()
            + "e-8,,,cls-2,sch-1,stu-4,student,,2026-08-01,2099-06-30\n";
        let bundle = school()
            .with("users.csv", &users)
            .with("enrollments.csv", &enrollments);
        let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &bundle).await;
        assert_eq!(status, 200, "{body}");

        let plan = plan_of(&app, "lincoln", "stu-4").await;
        assert_eq!(
            area(&plan, "operations-algebra")["proposed"]["unit"],
            "g4-multi-step-factors-patterns"
        );
        // The roster sync matched it: the result is announced, and the student placed.
        let events = event_types(&app, "lincoln").await;
        assert_eq!(
            events,
            ["assessment_result.received", "placement.generated"],
            "{events:?}"
        );
    }
);

on_every_backend!(
    a_teachers_override_wins_over_later_scores_until_cleared,
    |app| {
        rostered(&app, "lincoln").await;
        let (status, _) = upload(
            &app,
            "lincoln",
            export(&[math_row("S1", "2026-09-14", 201, (195, 212))]),
        )
        .await;
        assert_eq!(status, 200);
        let token = app
            .token_for("lincoln", &["plans:write", "roster:read"])
            .await;
        let path = "/api/v1/districts/lincoln/students/stu-1/plan/math/operations-algebra";
        let put = |body: Value| put_override(&app, &token, "stu-1", body);
        let (status, body) = put(json!({
            "teacher": "tch-1", "unit": "g2-add-subtract-word-problems", "reason": "gaps in fluency"
        }))
        .await;
        assert_eq!(status, 200, "{body}");
        let ops = area(&body, "operations-algebra");
        assert_eq!(ops["effective"]["source"], "override");
        assert_eq!(ops["effective"]["unit"], "g2-add-subtract-word-problems");
        assert_eq!(ops["override"]["teacher"], "tch-1");
        assert_eq!(
            ops["override"]["previous_unit"],
            "g3-multiplication-division"
        );

        // A later test moves the proposal, not the teacher's decision.
        let (status, _) = upload(
            &app,
            "lincoln",
            export(&[math_row("S1", "2027-01-20", 215, (216, 214))]),
        )
        .await;
        assert_eq!(status, 200);
        let plan = plan_of(&app, "lincoln", "stu-1").await;
        let ops = area(&plan, "operations-algebra");
        assert_eq!(ops["proposed"]["unit"], "g5-numerical-expressions");
        assert_eq!(ops["effective"]["unit"], "g2-add-subtract-word-problems");
        assert_eq!(plan["override_history"].as_array().unwrap().len(), 1);

        // Only a teacher who coaches the student through a class may decide; only known units.
        let (status, body) =
            put(json!({"teacher": "aid-1", "unit": "g2-add-subtract-word-problems"})).await;
        assert_eq!(status, 200, "the aide coaches stu-1 through cls-1: {body}");
        let (status, body) = put_override(
            &app,
            &token,
            "stu-3",
            json!({"teacher": "aid-1", "unit": "g2-add-subtract-word-problems"}),
        )
        .await;
        assert_eq!(status, 403, "aid-1 has no class with stu-3: {body}");
        assert_eq!(body["error"]["code"], "not_coaching");
        let (status, body) = put(json!({"teacher": "tch-1", "unit": "g99-nothing"})).await;
        assert_eq!(status, 422, "{body}");
        let read_only = app.token_for("lincoln", &["roster:read"]).await;
        let (status, body) = put_override(
            &app,
            &read_only,
            "stu-1",
            json!({"teacher": "tch-1", "unit": "g2-add-subtract-word-problems"}),
        )
        .await;
        assert_eq!(status, 403, "roster:read cannot decide placements: {body}");

        let cleared = app
            .client
            .delete(app.url(&format!("{path}?teacher=tch-1")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(cleared.status().as_u16(), 200);
        let plan = plan_of(&app, "lincoln", "stu-1").await;
        let ops = area(&plan, "operations-algebra");
        assert_eq!(ops["effective"]["source"], "proposed");
        assert_eq!(ops["effective"]["unit"], "g5-numerical-expressions");
        assert!(ops["override"].is_null());
        let history = plan["override_history"].as_array().unwrap();
        assert_eq!(history.last().unwrap()["action"], "cleared");
        let events = event_types(&app, "lincoln").await;
        assert_eq!(
            events
                .iter()
                .filter(|t| *t == "placement.overridden")
                .count(),
            3,
            "{events:?}"
        );

        // The class overview shows the teacher only the students they coach there.
        let (status, overview) = app
            .get(
                "/api/v1/districts/lincoln/classes/cls-2/plans?teacher=tch-1",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{overview}");
        let students: Vec<&str> = overview["students"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["student"].as_str().unwrap())
            .collect();
        assert_eq!(students, ["stu-2", "stu-3"]);
    }
);

on_every_backend!(
    an_export_with_bad_rows_is_refused_whole_naming_line_and_field,
    |app| {
        rostered(&app, "lincoln").await;
        let mut bad = math_row("S2", "2026-09-14", 200, (190, 190));
        bad = bad.replace(",200,3.1,", ",abc,3.1,");
        let body = export(&[math_row("S1", "2026-09-14", 201, (195, 212)), bad]);
        let (status, error) = upload(&app, "lincoln", body).await;
        assert_eq!(status, 422, "{error}");
        let details = error["error"]["details"].as_array().unwrap();
        assert!(
            details
                .iter()
                .any(|d| d["line"] == 3 && d["field"] == "TestRITScore"),
            "{error}"
        );
        let (status, results) = app
            .get(
                "/api/v1/districts/lincoln/students/stu-1/results",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            results["results"],
            json!([]),
            "nothing of a refused export is stored"
        );

        for hostile in [
            b"PK\x03\x04 not really a zip".to_vec(),
            b"\"unclosed quote, and then nothing".to_vec(),
            vec![b','; 200_000],
        ] {
            let (status, error) = upload(&app, "lincoln", hostile).await;
            assert_eq!(status, 422, "{error}");
            assert!(
                error["error"]["details"][0]["message"].is_string(),
                "{error}"
            );
        }
    }
);

on_every_backend!(another_districts_token_sees_no_plan_or_results, |app| {
    rostered(&app, "lincoln").await;
    app.create_district("other").await;
    let (status, _) = upload(
        &app,
        "lincoln",
        export(&[math_row("S1", "2026-09-14", 201, (195, 212))]),
    )
    .await;
    assert_eq!(status, 200);
    let other = app
        .token_for("other", &["roster:read", "scores:write", "plans:write"])
        .await;
    for path in [
        "/api/v1/districts/lincoln/students/stu-1/plan",
        "/api/v1/districts/lincoln/students/stu-1/results",
        "/api/v1/districts/other/students/stu-1/plan",
    ] {
        let (status, body) = app.get(path, &other).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, body) = app
        .post_bytes(
            "/api/v1/districts/lincoln/imports/scores",
            &other,
            export(&[math_row("S1", "2026-09-14", 201, (195, 212))]),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // The same student id in another district names none of lincoln's students.
    let (status, report) = app
        .post_bytes(
            "/api/v1/districts/other/imports/scores",
            &other,
            export(&[math_row("S1", "2026-09-14", 201, (195, 212))]),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["matched"], 0);
    assert_eq!(report["unmatched"], 1);
});

on_every_backend!(the_cli_imports_an_export_and_prints_its_counts, |app| {
    rostered(&app, "lincoln").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cdf.zip");
    std::fs::write(
        &file,
        zipped(export(&[
            math_row("S1", "2026-09-14", 201, (195, 212)),
            math_row("S7", "2026-09-14", 201, (195, 212)),
        ])),
    )
    .unwrap();
    let out = common::run_ok(
        common::rostergate_command(&app.db.url, app.data_dir.path())
            .args(["scores", "import", "--district", "lincoln", "--json"])
            .arg(&file),
    );
    let report = common::json_of(&out);
    assert_eq!(report["received"], 2, "{report}");
    assert_eq!(report["matched"], 1);
    assert_eq!(report["unmatched"], 1);
    assert!(report["errors"].as_array().unwrap().is_empty());

    let broken = dir.path().join("AssessmentResults.csv");
    std::fs::write(
        &broken,
        export(&[math_row("S1", "2026-13-45", 201, (195, 212))]),
    )
    .unwrap();
    let out = common::rostergate_command(&app.db.url, app.data_dir.path())
        .args(["scores", "import", "--district", "lincoln", "--json"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "refused");
    assert_eq!(report["errors"][0]["file"], "AssessmentResults.csv");
    assert_eq!(report["errors"][0]["line"], 2);
    assert_eq!(report["errors"][0]["field"], "TestStartDate");
});

on_every_backend!(
    a_district_matching_on_a_user_ids_entry_finds_its_one_student,
    |app| {
        app.create_district_with("maple", json!({ "score_student_key": "userIds:MAP" }))
            .await;
        // stu-1 carries MAP id 9001 alone; stu-2 and stu-3 share 9002, so it names neither.
        let users = school()
            .get("users.csv")
            .replace(
                "stu-1,,,true,sch-1,student,sam,,",
                "stu-1,,,true,sch-1,student,sam,\"{Fed:1},{MAP:9001}\",",
            )
            .replace(
                "stu-2,,,true,sch-1,student,sue,,",
                "stu-2,,,true,sch-1,student,sue,{MAP:9002},",
            )
            .replace(
                "stu-3,,,true,sch-1,student,syd,,",
                "stu-3,,,true,sch-1,student,syd,{MAP:9002},",
            );
        let (status, body) = app
            .import("maple", OPERATOR_TOKEN, &school().with("users.csv", &users))
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, report) = upload(
            &app,
            "maple",
            export(&[
                math_row("9001", "2026-09-14", 201, (195, 212)),
                math_row("9002", "2026-09-14", 201, (195, 212)),
                math_row("S1", "2026-09-14", 201, (195, 212)),
            ]),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["matched"], 1, "{report}");
        assert_eq!(report["unmatched"], 2, "{report}");
        let plan = plan_of(&app, "maple", "stu-1").await;
        assert_eq!(
            area(&plan, "operations-algebra")["proposed"]["unit"],
            "g3-multiplication-division"
        );
    }
);

/// Runs `rostergate generate …` (no database) in `dir` and returns its JSON.
fn generated(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = common::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_rostergate"))
            .arg("generate")
            .args(args)
            .current_dir(dir)
            .env("ROSTERGATE_LOG__FILTER", "error"),
    );
    common::json_of(&out)
}

on_every_backend!(
    a_generated_export_is_refused_for_exactly_its_broken_rows_then_imported_whole,
    |app| {
        let dir = tempfile::tempdir().unwrap();
        common::run_ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_rostergate"))
                .args([
                    "generate",
                    "oneroster",
                    "--students",
                    "60",
                    "--seed",
                    "3",
                    "roster",
                ])
                .current_dir(dir.path())
                .env("ROSTERGATE_LOG__FILTER", "error"),
        );
        app.create_district("lincoln").await;
        let roster = common::Bundle::from_dir(&dir.path().join("roster"));
        let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &roster).await;
        assert_eq!(status, 200, "{body}");
        let cdf = |out: &str, malformed: &str| {
            generated(
                dir.path(),
                &[
                    "cdf",
                    "--roster",
                    "roster",
                    "--out",
                    out,
                    "--terms",
                    "Fall 2025-2026,Winter 2025-2026",
                    "--subjects",
                    "mathematics,reading",
                    "--malformed",
                    malformed,
                    "--odd-casing",
                    "--json",
                ],
            )
        };
        let import = |file: &str| {
            common::rostergate_command(&app.db.url, dir.path())
                .args(["scores", "import", "--district", "lincoln", "--json", file])
                .output()
                .unwrap()
        };

        // Several terms and subjects, every goal area, odd header casing, and broken rows: the
        // export is refused, each broken row named by line and field, and nothing is stored.
        let broken = cdf("broken.zip", "4");
        let out = import("broken.zip");
        assert_eq!(out.status.code(), Some(1));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["status"], "refused");
        let mut named: Vec<(u64, String)> = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["file"], "AssessmentResults.csv", "{e}");
                (
                    e["line"].as_u64().unwrap(),
                    e["field"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        named.sort();
        let mut planted: Vec<(u64, String)> = broken["summary"]["malformed_at"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_str().unwrap().to_string()))
            .collect();
        planted.sort();
        assert_eq!(named, planted, "{report}");

        // The same export without them imports whole: every student matched and placed.
        let clean = cdf("clean.zip", "0");
        let results = clean["summary"]["results"].as_u64().unwrap();
        assert_eq!(results, 60 * 2 * 2);
        let out = import("clean.zip");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["received"], results, "{report}");
        assert_eq!(report["new"], results);
        assert_eq!(report["matched"], results);
        assert_eq!(report["unmatched"], 0);
        assert_eq!(
            report["without_plan"],
            results / 2,
            "reading has no shipped plan"
        );
        assert_eq!(report["students_placed"], 60);

        let (status, students) = app
            .get("/api/v1/districts/lincoln/users?limit=1000", OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 200);
        let student = students["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["role"] == "student")
            .unwrap()["sourcedId"]
            .as_str()
            .unwrap()
            .to_string();
        let plan = plan_of(&app, "lincoln", &student).await;
        let areas = plan["subjects"][0]["goal_areas"].as_array().unwrap();
        assert_eq!(areas.len(), 5, "{plan}");
        assert!(
            areas.iter().all(|a| a["effective"]["source"] == "proposed"),
            "{plan}"
        );
        let (status, results) = app
            .get(
                &format!("/api/v1/districts/lincoln/students/{student}/results"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            results["results"].as_array().unwrap().len(),
            4,
            "two terms, two subjects"
        );
    }
);
