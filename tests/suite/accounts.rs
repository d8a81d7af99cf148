//! Accounts over HTTP: provisioning on import, identity matching against grassroots accounts,
//! roster status, district isolation, and the events they leave.

use crate::common;

use crate::common::{school, Bundle, TestApp, OPERATOR_TOKEN};
use serde_json::{json, Value};

/// The school bundle with a guardian added (guardians get no account).
fn school_with_guardian() -> Bundle {
    let base = school();
    let users = format!(
        "{}gua-1,,,true,sch-1,guardian,gus,,Gus,Guard,,,gus@example.org,,,,,\n",
        base.get("users.csv")
    );
    base.with("users.csv", &users)
}

/// The school bundle without one user and their enrollments.
fn school_without(user: &str) -> Bundle {
    let base = school();
    let keep = |file: &str| {
        base.get(file)
            .lines()
            .filter(|l| !l.starts_with(&format!("{user},")) && !l.contains(&format!(",{user},")))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    base.clone()
        .with("users.csv", &keep("users.csv"))
        .with("enrollments.csv", &keep("enrollments.csv"))
}

async fn grassroots(app: &TestApp, email: &str, role_family: &str) -> String {
    let (status, body) = app
        .post_json(
            "/api/v1/accounts",
            OPERATOR_TOKEN,
            &json!({ "email": email, "given_name": "Pat", "family_name": "Self", "role_family": role_family }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "grassroots");
    body["id"].as_str().unwrap().to_string()
}

/// The district's accounts, by user sourcedId.
async fn accounts_of(app: &TestApp, district: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/{district}/accounts?limit=1000"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["accounts"].as_array().unwrap().clone()
}

fn account_for<'a>(accounts: &'a [Value], user: &str) -> &'a Value {
    accounts
        .iter()
        .find(|a| a["user_sourced_id"] == user)
        .unwrap_or_else(|| panic!("no account for {user} in {accounts:?}"))
}

async fn events_of(app: &TestApp, district: &str, event_type: &str) -> Vec<Value> {
    app.events(district)
        .await
        .into_iter()
        .filter(|e| e["type"] == event_type)
        .collect()
}

on_every_backend!(
    a_first_import_provisions_an_account_per_student_and_staff_member_but_none_for_guardians,
    |app| {
        app.create_district("lincoln").await;
        let (status, report) = app
            .import("lincoln", OPERATOR_TOKEN, &school_with_guardian())
            .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            report["accounts"],
            json!({ "provisioned": 5, "linked": 0, "ambiguous": 0, "no_longer_rostered": 0, "rostered_again": 0 })
        );
        let reader = app.token_for("lincoln", &["roster:read"]).await;
        let response = app
            .client
            .get(app.url("/api/v1/districts/lincoln/accounts?limit=2&offset=1"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["X-Total-Count"], "5");
        let page: Value = response.json().await.unwrap();
        assert_eq!(page["accounts"].as_array().unwrap().len(), 2);

        let accounts = accounts_of(&app, "lincoln").await;
        let users: Vec<&str> = accounts
            .iter()
            .map(|a| a["user_sourced_id"].as_str().unwrap())
            .collect();
        assert_eq!(users, ["aid-1", "stu-1", "stu-2", "stu-3", "tch-1"]);
        for (user, family) in [("stu-1", "student"), ("tch-1", "staff"), ("aid-1", "staff")] {
            let a = account_for(&accounts, user);
            assert_eq!(a["role_family"], family, "{a}");
            assert_eq!(a["state"], "district");
            assert_eq!(a["roster_status"], "Rostered");
            assert_eq!(a["matched_by"], "new");
        }
        let provisioned = events_of(&app, "lincoln", "account.provisioned").await;
        assert_eq!(provisioned.len(), 5);
        let stu1 = account_for(&accounts, "stu-1");
        let event = provisioned
            .iter()
            .find(|e| e["subject"] == stu1["id"])
            .expect("an event for stu-1's account");
        assert_eq!(event["data"]["user_sourced_id"], "stu-1");
        assert_eq!(event["data"]["district"], "lincoln");
        assert_eq!(event["data"]["role_family"], "student");

        // Importing the same roster again provisions nothing more.
        let (_, again) = app
            .import("lincoln", OPERATOR_TOKEN, &school_with_guardian())
            .await;
        assert_eq!(again["accounts"]["provisioned"], 0);
        assert_eq!(accounts_of(&app, "lincoln").await.len(), 5);
    }
);

on_every_backend!(
    identity_matching_links_one_candidate_and_provisions_for_none_or_several,
    |app| {
        app.create_district("lincoln").await;
        // stu-1: one candidate (the address differs only in case and spaces).
        let sam = grassroots(&app, "  SAM@Example.org ", "student").await;
        // stu-2: two candidates.
        let sue_a = grassroots(&app, "sue@example.org", "student").await;
        let sue_b = grassroots(&app, "Sue@example.org", "student").await;
        // stu-3 and tch-1: a candidate of the other role family only.
        grassroots(&app, "syd@example.org", "staff").await;
        grassroots(&app, "tina@example.org", "student").await;

        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["status"], "applied");
        assert_eq!(
            report["accounts"],
            json!({ "provisioned": 4, "linked": 1, "ambiguous": 1, "no_longer_rostered": 0, "rostered_again": 0 })
        );
        let warnings = report["warnings"].to_string();
        assert!(
            warnings.contains("stu-2") && warnings.contains("2 grassroots accounts"),
            "{warnings}"
        );
        assert!(!report.to_string().contains("@example.org"), "{report}");

        let accounts = accounts_of(&app, "lincoln").await;
        let stu1 = account_for(&accounts, "stu-1");
        assert_eq!(stu1["id"], sam.as_str());
        assert_eq!(stu1["state"], "district");
        assert_eq!(stu1["matched_by"], "email");
        let stu2 = account_for(&accounts, "stu-2");
        assert_ne!(stu2["id"], sue_a.as_str());
        assert_ne!(stu2["id"], sue_b.as_str());
        assert_eq!(stu2["matched_by"], "new");
        assert_eq!(account_for(&accounts, "stu-3")["matched_by"], "new");
        assert_eq!(account_for(&accounts, "tch-1")["matched_by"], "new");

        // The linked account is a district account now; the ambiguous ones stay grassroots.
        let (_, linked) = app
            .get(&format!("/api/v1/accounts/{sam}"), OPERATOR_TOKEN)
            .await;
        assert_eq!(linked["state"], "district");
        let (_, untouched) = app
            .get(&format!("/api/v1/accounts/{sue_a}"), OPERATOR_TOKEN)
            .await;
        assert_eq!(untouched["state"], "grassroots");
        let events = events_of(&app, "lincoln", "account.linked").await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["subject"], sam.as_str());
        assert_eq!(events[0]["data"]["matched_by"], "email");
    }
);

on_every_backend!(
    a_user_who_leaves_is_no_longer_rostered_and_comes_back_to_the_same_account,
    |app| {
        app.create_district("lincoln").await;
        app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        let before = account_for(&accounts_of(&app, "lincoln").await, "stu-3").clone();

        let (_, gone) = app
            .import("lincoln", OPERATOR_TOKEN, &school_without("stu-3"))
            .await;
        assert_eq!(gone["status"], "applied", "{gone}");
        assert_eq!(gone["accounts"]["no_longer_rostered"], 1);
        let left = account_for(&accounts_of(&app, "lincoln").await, "stu-3").clone();
        assert_eq!(left["id"], before["id"]);
        assert_eq!(left["roster_status"], "No Longer Rostered");

        let (_, back) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(back["status"], "applied", "{back}");
        assert_eq!(back["accounts"]["rostered_again"], 1);
        assert_eq!(back["accounts"]["provisioned"], 0);
        let returned = account_for(&accounts_of(&app, "lincoln").await, "stu-3").clone();
        assert_eq!(returned["id"], before["id"]);
        assert_eq!(returned["roster_status"], "Rostered");

        let changes = events_of(&app, "lincoln", "account.roster_status_changed").await;
        let statuses: Vec<&Value> = changes
            .iter()
            .map(|e| &e["data"]["roster_status"])
            .collect();
        assert_eq!(statuses, [&json!("No Longer Rostered"), &json!("Rostered")]);
        assert!(changes.iter().all(|e| e["subject"] == before["id"]));
    }
);

on_every_backend!(accounts_never_cross_districts, |app| {
    app.create_district("lincoln").await;
    app.create_district("grant").await;
    let sam = grassroots(&app, "sam@example.org", "student").await;
    app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    // The same people in another district: sam's account is lincoln's now, no candidate here.
    let (_, report) = app.import("grant", OPERATOR_TOKEN, &school()).await;
    assert_eq!(report["accounts"]["linked"], 0, "{report}");
    assert_eq!(report["accounts"]["provisioned"], 5);
    let grant_stu1 = account_for(&accounts_of(&app, "grant").await, "stu-1").clone();
    assert_ne!(grant_stu1["id"], sam.as_str());

    let grant_reader = app.token_for("grant", &["roster:read"]).await;
    let (status, _) = app
        .get(
            &format!("/api/v1/districts/grant/accounts/{sam}"),
            &grant_reader,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get(
            &format!("/api/v1/districts/lincoln/accounts/{sam}"),
            &grant_reader,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get("/api/v1/districts/lincoln/accounts", &grant_reader)
        .await;
    assert_eq!(status, 404);
    let lincoln_reader = app.token_for("lincoln", &["roster:read"]).await;
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/lincoln/accounts/{sam}"),
            &lincoln_reader,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_sourced_id"], "stu-1");
});

on_every_backend!(a_dry_run_counts_accounts_and_provisions_nothing, |app| {
    app.create_district("lincoln").await;
    grassroots(&app, "sue@example.org", "student").await;
    grassroots(&app, "sue@example.org ", "student").await;
    let (status, report) = app
        .post_bytes(
            "/api/v1/districts/lincoln/imports/oneroster?dry_run=true",
            OPERATOR_TOKEN,
            school().zip(),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "dry_run");
    assert_eq!(report["accounts"]["provisioned"], 5);
    assert_eq!(report["accounts"]["ambiguous"], 1);
    assert!(report["warnings"].to_string().contains("stu-2"));
    assert!(accounts_of(&app, "lincoln").await.is_empty());
    assert!(events_of(&app, "lincoln", "account.provisioned")
        .await
        .is_empty());
});

on_every_backend!(grassroots_sign_ups_are_refused_field_by_field, |app| {
    let (status, body) = app
        .post_json(
            "/api/v1/accounts",
            OPERATOR_TOKEN,
            &json!({ "email": "nope", "given_name": 7, "role_family": "guardian", "age": 9 }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_field");
    let mut pointers: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pointer"].as_str().unwrap())
        .collect();
    pointers.sort();
    assert_eq!(
        pointers,
        [
            "/age",
            "/email",
            "/family_name",
            "/given_name",
            "/role_family"
        ]
    );

    app.create_district("lincoln").await;
    let reader = app.token_for("lincoln", &["roster:read"]).await;
    let (status, _) = app
        .post_json(
            "/api/v1/accounts",
            &reader,
            &json!({ "email": "a@b.org", "given_name": "A", "family_name": "B", "role_family": "staff" }),
        )
        .await;
    assert_eq!(status, 403);

    let response = app
        .client
        .post(app.url("/api/v1/accounts"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "email": "a@b.org", "given_name": "A", "family_name": "B", "role_family": "staff" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["Location"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/accounts/{}", created["id"].as_str().unwrap())
    );
    let (status, fetched) = app.get(&location, OPERATOR_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["role_family"], "staff");
});

on_every_backend!(
    a_oneroster_1_2_user_gets_the_role_family_of_its_primary_role,
    |app| {
        app.create_district("lincoln").await;
        let manifest = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\nfile.classes,bulk\nfile.users,bulk\nfile.roles,bulk\nfile.enrollments,bulk\n";
        let users = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns\n\
        tch-1,,,true,tina,,Tina,Teach,,,,,,,,,,,,,sch-1,\n\
        aid-1,,,true,adam,,Adam,Aide,,,,,,,,,,,,,sch-1,\n\
        stu-1,,,true,sam,,Sam,One,,,,,,,09,,,,,,sch-1,\n\
        stu-2,,,true,sue,,Sue,Two,,,,,,,09,,,,,,sch-1,\n\
        stu-3,,,true,syd,,Syd,Three,,,,,,,09,,,,,,sch-1,\n";
        // tch-1 is also a guardian elsewhere (secondary); stu-3 has only an extension role.
        let roles = "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n\
        r-1,,,tch-1,primary,teacher,,,sch-1,\n\
        r-0,,,tch-1,secondary,guardian,,,sch-1,\n\
        r-2,,,aid-1,primary,aide,,,sch-1,\n\
        r-3,,,stu-1,primary,student,,,sch-1,\n\
        r-4,,,stu-2,primary,student,,,sch-1,\n\
        r-5,,,stu-3,primary,ext:learner,,,sch-1,\n";
        let bundle = school()
            .with("manifest.csv", manifest)
            .with("users.csv", users)
            .with("roles.csv", roles);
        let (status, report) = app.import("lincoln", OPERATOR_TOKEN, &bundle).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["accounts"]["provisioned"], 4, "{report}");
        let accounts = accounts_of(&app, "lincoln").await;
        assert_eq!(account_for(&accounts, "tch-1")["role_family"], "staff");
        assert_eq!(account_for(&accounts, "stu-1")["role_family"], "student");
        assert!(accounts.iter().all(|a| a["user_sourced_id"] != "stu-3"));
    }
);

on_every_backend!(
    a_district_without_the_email_key_never_links_by_email,
    |app| {
        app.create_district_with("lincoln", json!({ "identity_keys": ["sis_id"] }))
            .await;
        let sam = grassroots(&app, "sam@example.org", "student").await;
        let (_, report) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
        assert_eq!(report["accounts"]["linked"], 0, "{report}");
        assert_eq!(report["accounts"]["provisioned"], 5);
        assert_ne!(
            account_for(&accounts_of(&app, "lincoln").await, "stu-1")["id"],
            sam.as_str()
        );
    }
);
