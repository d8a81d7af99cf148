//! Black-box tests of OneRoster imports over HTTP: good, bad and hostile bundles.

use crate::common;

use crate::common::{count, school, Bundle, BUNDLE_KINDS, OPERATOR_TOKEN};
use serde_json::json;

on_every_backend!(
    importing_the_same_bundle_twice_changes_nothing_the_second_time,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let (_, events_before) = app
            .get(
                "/api/v1/districts/lincoln/events?limit=10000",
                OPERATOR_TOKEN,
            )
            .await;
        let (status, again) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(status, 200);
        for kind in BUNDLE_KINDS {
            for change in ["created", "updated", "deleted"] {
                assert_eq!(count(&again, kind, change), 0, "{kind} {change}");
            }
        }
        assert_eq!(count(&again, "enrollments", "unchanged"), 7);
        assert_eq!(again["coaching"], json!({ "started": 0, "ended": 0 }));
        let (_, events_after) = app
            .get(
                "/api/v1/districts/lincoln/events?limit=10000",
                OPERATOR_TOKEN,
            )
            .await;
        // Only the run itself is news: applied, with nothing changed.
        let before = events_before["events"].as_array().unwrap();
        let after = events_after["events"].as_array().unwrap();
        assert_eq!(after[..before.len()], before[..]);
        assert_eq!(after.len(), before.len() + 1);
        let news = after.last().unwrap();
        assert_eq!(news["type"], "sync_run.applied");
        assert_eq!(news["subject"], again["run_id"]);
        assert_eq!(news["data"]["counts"]["users"]["updated"], 0);
    }
);

on_every_backend!(
    a_student_missing_from_a_bulk_file_is_no_longer_rostered_and_loses_coaching,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let base = school();
        let users = base
            .get("users.csv")
            .lines()
            .filter(|l| !l.starts_with("stu-3"))
            .collect::<Vec<_>>()
            .join("\n");
        let enrollments = base
            .get("enrollments.csv")
            .lines()
            .filter(|l| !l.contains(",stu-3,"))
            .collect::<Vec<_>>()
            .join("\n");
        let next = base
            .with("users.csv", &users)
            .with("enrollments.csv", &enrollments);
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &next).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(count(&report, "users", "deleted"), 1);
        assert_eq!(count(&report, "enrollments", "deleted"), 1);
        assert_eq!(report["coaching"], json!({ "started": 0, "ended": 1 }));
        let (status, syd) = app
            .get("/api/v1/districts/lincoln/users/stu-3", OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 200, "the account stays");
        assert_eq!(syd["user"]["rosterStatus"], "No Longer Rostered");
        assert_eq!(syd["user"]["status"], "tobedeleted");
        let (_, coaching) = app
            .get(
                "/api/v1/districts/lincoln/users/tch-1/coaching",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(coaching["students"].as_array().unwrap().len(), 2);
        let (status, _) = app
            .get("/api/v1/districts/lincoln/enrollments/e-7", OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 404);
        // Coming back restores the account and its coaching.
        let (_, back) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(count(&back, "users", "created"), 1);
        assert_eq!(back["coaching"], json!({ "started": 1, "ended": 0 }));
        let (_, syd) = app
            .get("/api/v1/districts/lincoln/users/stu-3", OPERATOR_TOKEN)
            .await;
        assert_eq!(syd["user"]["rosterStatus"], "Rostered");
    }
);

on_every_backend!(
    a_delta_file_applies_only_its_rows_and_tobedeleted_removes,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let delta = Bundle::default()
        .with("manifest.csv", "propertyName,value\noneroster.version,1.1\nfile.users,delta\nfile.enrollments,delta\n")
        .with(
            "users.csv",
            "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,givenName,familyName\n\
             stu-4,active,2026-11-20T10:00:00Z,true,sch-1,student,zoe,Zoe,Four\n\
             stu-1,active,2026-11-20T10:00:00Z,true,sch-1,student,sam,Samuel,One\n",
        )
        .with(
            "enrollments.csv",
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n\
             e-8,active,2026-11-20T10:00:00Z,cls-2,sch-1,stu-4,student,,2026-08-01,2099-06-30\n\
             e-5,tobedeleted,2026-11-20T10:00:00Z,cls-1,sch-1,stu-2,student,,2026-08-01,2099-06-30\n",
        );
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &delta).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(count(&report, "users", "created"), 1);
        assert_eq!(count(&report, "users", "updated"), 1);
        assert_eq!(
            count(&report, "users", "deleted"),
            0,
            "delta leaves unlisted users alone"
        );
        assert_eq!(count(&report, "enrollments", "created"), 1);
        assert_eq!(count(&report, "enrollments", "deleted"), 1);
        assert!(report["counts"].get("classes").is_none());
        // stu-2 left cls-1: the aide no longer coaches her; the teacher still does through cls-2.
        let (_, sue) = app
            .get(
                "/api/v1/districts/lincoln/users/stu-2/coaching",
                OPERATOR_TOKEN,
            )
            .await;
        let coaches: Vec<&str> = sue["coaches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sourcedId"].as_str().unwrap())
            .collect();
        assert_eq!(coaches, ["tch-1"]);
        assert_eq!(sue["coaches"][0]["sources"].as_array().unwrap().len(), 1);
        let (_, sam) = app
            .get("/api/v1/districts/lincoln/users/stu-1", OPERATOR_TOKEN)
            .await;
        assert_eq!(sam["user"]["givenName"], "Samuel");
        let (_, users) = app
            .get("/api/v1/districts/lincoln/users", OPERATOR_TOKEN)
            .await;
        assert_eq!(users["total"], 6);
    }
);

/// A bundle and where its refusal must point: file, line, field, part of the message.
type RefusedCase<'a> = (Bundle, &'a str, Option<u64>, Option<&'a str>, &'a str);

/// Imports `bundle`, expects it refused with an error at `file:line` naming `field`, and checks
/// that nothing changed.
async fn assert_refused(
    app: &common::TestApp,
    bundle: &Bundle,
    file: &str,
    line: Option<u64>,
    field: Option<&str>,
    message_part: &str,
) {
    let (_, before) = app
        .get("/api/v1/districts/lincoln/users?limit=1000", OPERATOR_TOKEN)
        .await;
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, bundle).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_bundle");
    let details = body["error"]["details"].as_array().unwrap();
    let found = details.iter().any(|d| {
        d["file"] == file
            && d["line"].as_u64() == line
            && field.is_none_or(|f| d["field"] == f)
            && d["message"].as_str().unwrap().contains(message_part)
    });
    assert!(
        found,
        "expected {file}:{line:?} {field:?} ~ {message_part:?} in {body}"
    );
    let (_, after) = app
        .get("/api/v1/districts/lincoln/users?limit=1000", OPERATOR_TOKEN)
        .await;
    assert_eq!(before, after, "a refused bundle changes nothing");
}

on_every_backend!(
    bad_bundles_are_refused_with_file_line_and_field_and_change_nothing,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let s = school();
        let replace = |file: &str, from: &str, to: &str| {
            s.clone().with(file, &s.get(file).replacen(from, to, 1))
        };
        let headers_only = s.get("users.csv").lines().next().unwrap().to_string() + "\n";
        // (bundle, file, line, field, part of the message)
        let table: Vec<RefusedCase> = vec![
            (
                replace("enrollments.csv", "e-7,,,cls-2", "e-7,,,cls-9"),
                "enrollments.csv",
                Some(8),
                Some("classSourcedId"),
                "\"cls-9\" is not a known classes",
            ),
            (
                replace(
                    "classes.csv",
                    "sch-1,trm-1,Math,,2",
                    "sch-1,\"trm-1,trm-9\",Math,,2",
                ),
                "classes.csv",
                Some(3),
                Some("termSourcedIds"),
                "\"trm-9\"",
            ),
            (
                replace("users.csv", "stu-1,,,true,sch-1", "stu-1,,,true,sch-7"),
                "users.csv",
                Some(4),
                Some("orgSourcedIds"),
                "sch-7",
            ),
            (
                replace(
                    "academicSessions.csv",
                    "2026-08-01,2099-06-30,,2099",
                    "2026-13-01,2099-06-30,,2099",
                ),
                "academicSessions.csv",
                Some(2),
                Some("startDate"),
                "not a date",
            ),
            (
                replace("enrollments.csv", "e-6,", "e-5,"),
                "enrollments.csv",
                Some(7),
                Some("sourcedId"),
                "duplicate sourcedId \"e-5\" (first on line 6)",
            ),
            (
                replace("classes.csv", ",scheduled,101", ",lecture,101"),
                "classes.csv",
                Some(2),
                Some("classType"),
                "not one of homeroom, scheduled",
            ),
            (
                replace("users.csv", "stu-2,,,true", "stu-2,,,perhaps"),
                "users.csv",
                Some(5),
                Some("enabledUser"),
                "not a boolean",
            ),
            (
                replace(
                    "users.csv",
                    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,",
                    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,",
                ),
                "users.csv",
                Some(1),
                Some("role"),
                "required column is missing",
            ),
            (
                replace(
                    "enrollments.csv",
                    "e-3,,,cls-1,sch-1,aid-1,aide,false,2026-08-01,2099-06-30",
                    "e-3,,,cls-1,sch-1",
                ),
                "enrollments.csv",
                Some(4),
                None,
                "the row has 5 fields, the header 10",
            ),
            (
                replace("users.csv", "stu-3,,,true", ",,,true"),
                "users.csv",
                Some(6),
                Some("sourcedId"),
                "sourcedId is empty",
            ),
            // An empty bulk file would remove everyone: refused.
            (
                s.clone().with("users.csv", &headers_only),
                "users.csv",
                None,
                None,
                "a bulk file with no rows",
            ),
            (
                s.clone().with("users.csv", ""),
                "users.csv",
                Some(1),
                None,
                "the file is empty",
            ),
            // The manifest and the files must agree.
            (
                s.clone().without("courses.csv"),
                "courses.csv",
                None,
                None,
                "the manifest declares this file but the bundle lacks it",
            ),
            (
                s.clone().without("manifest.csv"),
                "manifest.csv",
                None,
                None,
                "no manifest.csv",
            ),
            (
                s.clone().with("manifest.csv", MANIFEST_WITHOUT_USERS),
                "users.csv",
                None,
                None,
                "does not declare it",
            ),
            (
                s.clone()
                    .with("manifest.csv", "propertyName,value\nfile.users,sometimes\n"),
                "manifest.csv",
                Some(2),
                Some("file.users"),
                "not bulk, delta or absent",
            ),
        ];
        for (bundle, file, line, field, message) in &table {
            assert_refused(&app, bundle, file, *line, *field, message).await;
        }
    }
);

const MANIFEST_WITHOUT_USERS: &str = "propertyName,value\noneroster.version,1.1\nfile.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\nfile.classes,bulk\nfile.enrollments,bulk\n";

on_every_backend!(hostile_uploads_are_refused_without_harm, |app| {
    app.create_district("lincoln").await;
    let (status, body) = app
        .post_bytes(
            "/api/v1/districts/lincoln/imports/oneroster",
            OPERATOR_TOKEN,
            b"not a zip at all".to_vec(),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a readable zip"),
        "{body}"
    );
    let (status, body) = app
        .post_bytes(
            "/api/v1/districts/lincoln/imports/oneroster",
            OPERATOR_TOKEN,
            Vec::new(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Files nested two folders deep.
    let mut nested = Bundle::default();
    for (name, contents) in &school().files {
        nested = nested.with(&format!("a/b/{name}"), contents);
    }
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &nested).await;
    assert_eq!(status, 422);
    assert!(body.to_string().contains("nested"), "{body}");
    // Path traversal in entry names is only ever a name: nothing is extracted.
    let sneaky = school().with("../../etc/evil.csv", "x");
    let (status, _) = app.import("lincoln", OPERATOR_TOKEN, &sneaky).await;
    assert_eq!(status, 422);
    // An oversized field.
    let huge = "x".repeat(70_000);
    let s = school();
    let big = s.clone().with(
        "users.csv",
        &s.get("users.csv")
            .replacen("Sam,One", &format!("{huge},One"), 1),
    );
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &big).await;
    assert_eq!(status, 422);
    assert!(
        body.to_string().contains("bytes long (at most 65536)"),
        "{body}"
    );
    // A NUL byte inside a value.
    let nul = school().with(
        "users.csv",
        &school().get("users.csv").replacen("Sam", "S\u{0}m", 1),
    );
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &nul).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["line"], 4);
    assert_eq!(
        body["error"]["details"][0]["message"],
        "the value contains a NUL character"
    );
    let (_, users) = app
        .get("/api/v1/districts/lincoln/users", OPERATOR_TOKEN)
        .await;
    assert_eq!(
        users["total"], 0,
        "nothing of the refused bundles was applied"
    );
});

on_every_backend!(real_export_quirks_are_tolerated, |app| {
    app.create_district("lincoln").await;
    let s = school();
    // BOM, CRLF, header case, padding, TRUE, mixed-case enums, metadata and unknown columns,
    // a legacy column name, and a blank trailing header.
    let users = "\u{feff}SourcedId,Status,DateLastModified,EnabledUser,OrgSourcedIds,Role,Username,GivenName,FamilyName,metadata.homeroom,favouriteColour,\r\n\
                 tch-1 , , ,TRUE,sch-1,Teacher,tina,Tina,Teach,H1,blue,\r\n\
                 aid-1,active,2017-09-27 10:57:52,true,sch-1,AIDE,adam,Adam,Aide,,,\r\n\
                 stu-1,,,1,sch-1,student,sam,Sam,One,H1,,\r\n\
                 stu-2,,,true, sch-1 ,student,sue,Sue,Two,,,\r\n\
                 stu-3,,,true,sch-1,student,syd,Syd,Three,,,\r\n";
    let courses = "sourcedId,status,dateLastModified,schoolYearId,title,courseCode,grades,orgSourcedId\ncrs-1,,,yr-1,Algebra I,ALG1,09,sch-1\n";
    let bundle = s
        .clone()
        .with("users.csv", users)
        .with("courses.csv", courses);
    let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &bundle).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(count(&report, "users", "created"), 5);
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("letter case"), "{warnings}");
    assert!(warnings.contains("no time zone"), "{warnings}");
    assert!(warnings.contains("schoolYearSourcedId"), "{warnings}");
    assert!(warnings.contains("favouriteColour"), "{warnings}");
    let (_, tina) = app
        .get("/api/v1/districts/lincoln/users/tch-1", OPERATOR_TOKEN)
        .await;
    assert_eq!(tina["user"]["role"], "teacher");
    assert_eq!(
        tina["user"]["metadata"],
        json!({ "metadata.homeroom": "H1", "favouriteColour": "blue" })
    );
    let (_, sue) = app
        .get("/api/v1/districts/lincoln/users/stu-2", OPERATOR_TOKEN)
        .await;
    assert_eq!(sue["user"]["orgSourcedIds"], json!(["sch-1"]));
    let (_, coaching) = app
        .get(
            "/api/v1/districts/lincoln/users/tch-1/coaching",
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(coaching["students"].as_array().unwrap().len(), 3);
});

on_every_backend!(
    a_oneroster_1_2_bundle_with_roles_and_user_profiles_imports,
    |app| {
        app.create_district("lincoln").await;
        let s = school();
        let manifest = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\nfile.classes,bulk\nfile.users,bulk\nfile.roles,bulk\nfile.userProfiles,bulk\nfile.enrollments,bulk\n";
        let users = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns\n\
        tch-1,,,true,tina,,Tina,Teach,,,,,,,,,M-1,Tee,,,sch-1,she/her\n\
        aid-1,,,true,adam,,Adam,Aide,,,,,,,,,,,,,sch-1,\n\
        stu-1,,,true,sam,,Sam,One,,,,,,,09,,,,,,sch-1,\n\
        stu-2,,,true,sue,,Sue,Two,,,,,,,09,,,,,,sch-1,\n\
        stu-3,,,true,syd,,Syd,Three,,,,,,,09,,,,,,sch-1,\n";
        let roles = "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n\
        r-1,,,tch-1,primary,teacher,,,sch-1,\n\
        r-2,,,aid-1,primary,aide,,,sch-1,\n\
        r-3,,,stu-1,primary,student,,,sch-1,\n\
        r-4,,,stu-2,primary,student,,,sch-1,\n\
        r-5,,,stu-3,primary,ext:learner,,,sch-1,\n";
        let profiles = "sourcedId,status,dateLastModified,userSourcedId,profileType,vendorId,applicationId,description,credentialType,username,password\n\
        p-1,,,tch-1,lms,acme,,,password,tina,hunter2\n";
        let bundle = s
            .with("manifest.csv", manifest)
            .with("users.csv", users)
            .with("roles.csv", roles)
            .with("userProfiles.csv", profiles);
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &bundle).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(count(&report, "roles", "created"), 5);
        assert_eq!(count(&report, "userProfiles", "created"), 1);
        assert_eq!(report["coaching"]["started"], 5);
        let (_, tina) = app
            .get("/api/v1/districts/lincoln/users/tch-1", OPERATOR_TOKEN)
            .await;
        assert_eq!(tina["user"]["preferredGivenName"], "Tee");
        assert_eq!(tina["user"]["primaryOrgSourcedId"], "sch-1");
        assert!(!tina.to_string().contains("hunter2"));
        // A 1.2 role that is not in the spec's list (and not ext:) is refused.
        let bad = bundle_with_role(&school(), "principle");
        let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &bad).await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("\"principle\" is not one of"),
            "{body}"
        );
    }
);

fn bundle_with_role(s: &Bundle, role: &str) -> Bundle {
    let manifest = "propertyName,value\noneroster.version,1.2\nfile.orgs,bulk\nfile.users,delta\nfile.roles,delta\n";
    Bundle::default()
        .with("manifest.csv", manifest)
        .with("orgs.csv", s.get("orgs.csv"))
        .with("users.csv", "sourcedId,status,dateLastModified,enabledUser,username,givenName,familyName\nx-1,,,true,x,X,Y\n")
        .with("roles.csv", &format!("sourcedId,status,dateLastModified,userSourcedId,roleType,role,orgSourcedId\nr-9,,,x-1,primary,{role},sch-1\n"))
}

on_every_backend!(
    a_used_class_leaving_the_feed_is_archived_with_its_coaching_kept,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        // Something was done in cls-2 (an assignment, a plan): the platform marks it used.
        let db = rostergate::store::Db::connect(&app.db.url).await.unwrap();
        let marked = db
            .conn()
            .execute(
                "UPDATE classes SET used_at = $1 WHERE sourced_id = $2",
                &[chrono::Utc::now().into(), "cls-2".into()],
            )
            .await
            .unwrap();
        assert_eq!(marked, 1);
        db.close().await;
        let s = school();
        let classes = s
            .get("classes.csv")
            .lines()
            .filter(|l| !l.starts_with("cls-2"))
            .collect::<Vec<_>>()
            .join("\n");
        let enrollments = s
            .get("enrollments.csv")
            .lines()
            .filter(|l| !l.contains(",cls-2,"))
            .collect::<Vec<_>>()
            .join("\n");
        let (status, report) = app
            .import(
                "lincoln",
                OPERATOR_TOKEN,
                &s.clone()
                    .with("classes.csv", &classes)
                    .with("enrollments.csv", &enrollments),
            )
            .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(count(&report, "classes", "deleted"), 1);
        assert_eq!(count(&report, "enrollments", "deleted"), 3);
        let (status, class) = app
            .get("/api/v1/districts/lincoln/classes/cls-2", OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 200, "a used class is kept");
        assert_eq!(class["class"]["archived"], true);
        // Coaching through the archived class stays; nothing else coaches stu-3.
        let (_, syd) = app
            .get(
                "/api/v1/districts/lincoln/users/stu-3/coaching",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(syd["coaches"][0]["sourcedId"], "tch-1");
        assert_eq!(syd["coaches"][0]["sources"][0]["sourcedId"], "cls-2");
        assert_eq!(report["coaching"], json!({ "started": 0, "ended": 0 }));
        // An unused class that leaves is removed outright.
        let with_new =
            format!("{classes}\ncls-3,,,Geometry,09,crs-1,GEO,scheduled,103,sch-1,trm-1,Math,,3\n");
        let (status, _) = app
            .import(
                "lincoln",
                OPERATOR_TOKEN,
                &s.clone()
                    .with("classes.csv", &with_new)
                    .with("enrollments.csv", &enrollments),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = app
            .get("/api/v1/districts/lincoln/classes/cls-3", OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 200);
        let bundle = s
            .with("classes.csv", &classes)
            .with("enrollments.csv", &enrollments);
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &bundle).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(count(&report, "classes", "deleted"), 1);
        let (status, _) = app
            .get("/api/v1/districts/lincoln/classes/cls-3", OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 404);
    }
);

on_every_backend!(upload_problems_name_the_upload_not_a_server_path, |app| {
    app.create_district("lincoln").await;
    let (status, body) = app
        .post_bytes(
            "/api/v1/districts/lincoln/imports/oneroster",
            OPERATOR_TOKEN,
            b"PK\x03\x04 broken".to_vec(),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["file"], "upload.zip");
    assert!(!body.to_string().contains("uploads/"), "{body}");
    // The bundle's own files are named as they are in the zip.
    let (_, body) = app
        .import("lincoln", OPERATOR_TOKEN, &school().without("manifest.csv"))
        .await;
    assert_eq!(body["error"]["details"][0]["file"], "manifest.csv");
});
