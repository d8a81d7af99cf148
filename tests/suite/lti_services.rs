//! The LTI Advantage services the gateway calls as a tool, against the in-library platform's
//! strict token endpoint, NRPS and AGS (it verifies the gateway's client assertions with the
//! tool's published keys and checks scopes and media types): memberships synced into the roster
//! through the sync engine, scores posted to a class's LMS gradebook, and deep linking
//! responses. On both databases.

use rostergate::synthetic::lti_platform::{
    claim, form_action, form_fields, GradesSpec, LaunchSpec, LtiPlatform,
};
use serde_json::{json, Value};

use crate::common::{self, TestApp, OPERATOR_TOKEN};
use crate::lti_launches::{
    browser, launch, login_and_authorize, session, setup, teacher, CLIENT_ID, LTI, TARGET,
};

const SCOPE_LINEITEM: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";
const SCOPE_SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";

/// The platform trusts the tool's keys, as its registration's JWKS URL would make it.
async fn trust_tool(app: &TestApp, platform: &LtiPlatform) {
    let (status, jwks) = app.get("/lti/jwks", OPERATOR_TOKEN).await;
    assert_eq!(status, 200, "{jwks}");
    platform.trust_tool_keys(&jwks);
}

/// `POST …/lti/memberships/pulls` as `token`.
async fn pull_memberships(app: &TestApp, token: &str) -> (u16, Value) {
    app.post_json(
        "/api/v1/districts/lincoln/lti/memberships/pulls",
        token,
        &json!(null),
    )
    .await
}

/// A launch through the whole flow; the session's token.
async fn launched(app: &TestApp, platform: &LtiPlatform, spec: &LaunchSpec) -> String {
    let flow = login_and_authorize(app, platform, spec).await;
    let (status, location, page) = launch(app, &flow, true).await;
    assert_eq!(status, 302, "{page}");
    let location = location.unwrap();
    location.split_once("#session=").unwrap().1.to_string()
}

fn member(user_id: &str, role: &str, sourced_id: Option<&str>) -> Value {
    let mut member = json!({"user_id": user_id, "roles": [role], "name": "Someone"});
    if let Some(id) = sourced_id {
        member["lis_person_sourcedid"] = json!(id);
    }
    member
}

async fn classes_of(app: &TestApp, user: &str) -> Vec<String> {
    let (status, body) = app
        .get(
            &format!("/api/v1/districts/lincoln/users/{user}/classes"),
            OPERATOR_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut classes: Vec<String> = body["classes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|c| c["sourcedId"].as_str().unwrap().to_string())
        .collect();
    classes.sort();
    classes
}

on_every_backend!(
    memberships_sync_into_the_roster_enrolling_only_what_it_lacks_and_flagging_lms_only_members,
    with & LTI,
    |app| {
        let platform = setup(&app).await;
        trust_tool(&app, &platform).await;
        // Before any launch offered memberships there is nothing to read.
        let (status, body) = pull_memberships(&app, OPERATOR_TOKEN).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "no_lti_contexts", "{body}");

        platform.set_members(
            "course-1",
            vec![
                member("lms-tch-1", claim::ROLE_INSTRUCTOR, Some("tch-1")), // the SIS enrolls them
                member("lms-stu-1", claim::ROLE_LEARNER, Some("stu-1")),    // the SIS enrolls them
                member("lms-stu-3", claim::ROLE_LEARNER, Some("stu-3")), // the roster lacks this one
                member("lms-guest", claim::ROLE_LEARNER, None),          // LMS-only
                member("lms-ghost", claim::ROLE_LEARNER, Some("nobody")), // not rostered
            ],
        );
        platform.set_membership_page_size(2);
        let spec = teacher()
            .with_context("course-1", "ALG1", "Algebra I")
            .with_names_roles(platform.memberships_url("course-1"));
        launched(&app, &platform, &spec).await;
        assert_eq!(classes_of(&app, "stu-3").await, vec!["cls-2"]);

        let (status, body) = pull_memberships(&app, OPERATOR_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["contexts"], 1, "{body}");
        assert_eq!(body["members"], 5, "three pages followed: {body}");
        assert_eq!(body["linked"], 3, "{body}");
        let run = &body["run"];
        assert_eq!(run["status"], "applied", "{body}");
        assert_eq!(run["source"], "lti-nrps", "{body}");
        let warnings = run["warnings"].as_array().unwrap();
        assert_eq!(
            warnings.len(),
            2,
            "the LMS-only and unknown members: {body}"
        );
        assert!(
            warnings
                .iter()
                .all(|w| w["message"].as_str().unwrap().contains("not provisioned")),
            "{body}"
        );
        assert_eq!(classes_of(&app, "stu-3").await, vec!["cls-1", "cls-2"]);
        assert_eq!(
            classes_of(&app, "stu-1").await,
            vec!["cls-1"],
            "the SIS's enrollment is left alone"
        );

        // The token asked for exactly the NRPS scope, by an assertion the platform verified.
        let requests = platform.token_requests();
        assert_eq!(requests.len(), 1, "one token for three pages: {requests:?}");
        assert_eq!(requests[0].status, 200, "{requests:?}");
        assert_eq!(
            requests[0].scopes,
            vec!["https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"]
        );
        assert_eq!(requests[0].assertion["iss"], CLIENT_ID);

        // The token stops working and stu-3 leaves the course: the pull renews the token once
        // and removes only the enrollment the gateway made.
        platform.revoke_service_tokens();
        platform.set_members(
            "course-1",
            vec![
                member("lms-tch-1", claim::ROLE_INSTRUCTOR, Some("tch-1")),
                member("lms-stu-1", claim::ROLE_LEARNER, Some("stu-1")),
            ],
        );
        let (status, body) = pull_memberships(&app, OPERATOR_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["run"]["status"], "applied", "{body}");
        assert_eq!(platform.token_requests().len(), 2);
        assert_eq!(classes_of(&app, "stu-3").await, vec!["cls-2"]);
        assert_eq!(classes_of(&app, "stu-1").await, vec!["cls-1"]);

        // A memberships page the platform garbles fails the pull and applies nothing.
        platform.set_members(
            "course-1",
            vec![json!({"user_id": "x", "roles": "Learner"})],
        );
        let (status, body) = pull_memberships(&app, OPERATOR_TOKEN).await;
        assert_eq!(status, 502, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/members/0/roles"),
            "{body}"
        );

        // A caller without roster:write cannot pull.
        let reader = app.token_for("lincoln", &["roster:read"]).await;
        let (status, _) = pull_memberships(&app, &reader).await;
        assert_eq!(status, 403);
        platform.stop().await;
    }
);

on_every_backend!(
    scores_post_to_the_class_gradebook_making_the_line_item_once_with_ever_later_timestamps,
    with & LTI,
    |app| {
        let platform = setup(&app).await;
        trust_tool(&app, &platform).await;
        let grades = GradesSpec {
            scope: vec![SCOPE_LINEITEM.into(), SCOPE_SCORE.into()],
            lineitems: Some(platform.lineitems_url("course-1")),
            lineitem: None,
        };
        let body = json!({
            "line_item": {"label": "MAP Growth Math", "score_maximum": 350, "resource_id": "map-math", "tag": "map"},
            "scores": [
                {"user": "stu-1", "score_given": 212, "comment": "Fall"},
                {"user": "stu-2", "score_given": 198}
            ]
        });
        let path = "/api/v1/districts/lincoln/classes/cls-1/lti/scores";
        // No launch from the class's course offered grades yet.
        let (status, answer) = app.post_json(path, OPERATOR_TOKEN, &body).await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"]["code"], "no_lti_context", "{answer}");

        launched(
            &app,
            &platform,
            &teacher()
                .with_context("course-1", "ALG1", "Algebra I")
                .with_grades(grades.clone()),
        )
        .await;
        // stu-1 has launched the tool; stu-2 never has, so the platform's id for them is unknown.
        let learner = LaunchSpec::learner()
            .with_target_link_uri(TARGET)
            .with_sub("lms-stu-1")
            .with_lis("stu-1", "cls-1")
            .with_context("course-1", "ALG1", "Algebra I")
            .with_grades(grades);
        launched(&app, &platform, &learner).await;

        let (status, answer) = app.post_json(path, OPERATOR_TOKEN, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["created"], true, "{answer}");
        assert_eq!(answer["posted"], 1, "{answer}");
        assert_eq!(answer["skipped"][0]["user"], "stu-2", "{answer}");
        let items = platform.line_items("course-1");
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0]["resourceId"], "map-math");
        assert_eq!(answer["line_item"], items[0]["id"], "{answer}");
        let scores = platform.received_scores();
        assert_eq!(scores[0].body["userId"], "lms-stu-1", "{scores:?}");
        assert_eq!(scores[0].body["scoreGiven"], 212.0);
        assert_eq!(scores[0].body["scoreMaximum"], 350.0);
        assert_eq!(scores[0].body["gradingProgress"], "FullyGraded");

        // Again at once: the same line item, and a later timestamp (the platform refuses one
        // that is not newer with 409, which would show as skipped).
        let (status, answer) = app.post_json(path, OPERATOR_TOKEN, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["created"], false, "{answer}");
        assert_eq!(answer["posted"], 1, "{answer}");
        assert_eq!(platform.line_items("course-1").len(), 1);
        let scores = platform.received_scores();
        let stamp = |i: usize| {
            chrono::DateTime::parse_from_rfc3339(scores[i].body["timestamp"].as_str().unwrap())
                .unwrap()
        };
        assert!(stamp(1) > stamp(0), "{scores:?}");
        // Only the granted scopes were asked for, each token by a verified assertion.
        for request in platform.token_requests() {
            assert_eq!(request.status, 200, "{request:?}");
            assert!(
                request
                    .scopes
                    .iter()
                    .all(|s| s == SCOPE_LINEITEM || s == SCOPE_SCORE),
                "{request:?}"
            );
        }

        // Bad bodies are refused by pointer; unknown classes and readers too.
        let (status, answer) = app
            .post_json(path, OPERATOR_TOKEN, &json!({"line_item": {"label": "x", "score_maximum": 0}, "scores": [{"user": "stu-1", "score_given": -1}]}))
            .await;
        assert_eq!(status, 422, "{answer}");
        let pointers: Vec<&str> = answer["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["pointer"].as_str().unwrap())
            .collect();
        assert_eq!(
            pointers,
            vec!["/line_item/score_maximum", "/scores/0/score_given"],
            "{answer}"
        );
        let (status, _) = app
            .post_json(
                "/api/v1/districts/lincoln/classes/nope/lti/scores",
                OPERATOR_TOKEN,
                &body,
            )
            .await;
        assert_eq!(status, 404);
        let reader = app.token_for("lincoln", &["roster:read"]).await;
        let (status, _) = app.post_json(path, &reader, &body).await;
        assert_eq!(status, 403);
        platform.stop().await;
    }
);

/// Posts a deep linking answer as the learning platform's page would send the browser.
async fn answer_deep_link(app: &TestApp, session: &str, items: &Value) -> (u16, String) {
    let response = browser()
        .post(app.url("/lti/deep_links"))
        .form(&[("session", session), ("content_items", &items.to_string())])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

on_every_backend!(
    a_deep_linking_request_is_answered_once_with_the_tools_signed_response_echoing_its_data,
    with & LTI,
    |app| {
        let platform = setup(&app).await;
        let spec = LaunchSpec::deep_linking()
            .with_target_link_uri(TARGET)
            .with_lis("tch-1", "cls-1");
        let flow = login_and_authorize(&app, &platform, &spec).await;
        let (status, location, page) = launch(&app, &flow, true).await;
        assert_eq!(status, 302, "{page}");
        let location = location.unwrap();
        let claims = session(&app, &location).await;
        let settings = &claims["rostergate"]["deep_linking"];
        assert_eq!(
            settings["return_url"],
            platform.deep_link_return_url(),
            "{claims}"
        );
        let token = location.split_once("#session=").unwrap().1;

        // A resource link pointing away from the tool is refused, and answers nothing.
        let foreign = json!([{"type": "ltiResourceLink", "url": "https://evil.example/lti"}]);
        let (status, page) = answer_deep_link(&app, token, &foreign).await;
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("invalid_content_items"), "{page}");

        let items = json!([{"type": "ltiResourceLink", "title": "Algebra plan", "url": "https://learn.example.org/plans/7"}]);
        let (status, page) = answer_deep_link(&app, token, &items).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(form_action(&page), Some(platform.deep_link_return_url()));
        let fields = form_fields(&page);
        assert_eq!(fields.len(), 1, "{fields:?}");
        let (name, jwt) = &fields[0];
        assert_eq!(name, "JWT");

        // The response is the tool's, for this platform, and echoes the request's data.
        let (_, jwks) = app.get("/lti/jwks", OPERATOR_TOKEN).await;
        let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap();
        let key = jsonwebtoken::DecodingKey::from_rsa_components(
            key["n"].as_str().unwrap(),
            key["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[platform.issuer()]);
        validation.set_issuer(&[CLIENT_ID]);
        let response = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(
            response[claim::MESSAGE_TYPE],
            "LtiDeepLinkingResponse",
            "{response}"
        );
        assert_eq!(
            response[claim::DEPLOYMENT_ID],
            "1:deployment-lincoln",
            "{response}"
        );
        assert_eq!(
            response["https://purl.imsglobal.org/spec/lti-dl/claim/data"],
            "synthetic-deep-link-data",
            "{response}"
        );
        assert_eq!(
            response["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"], items,
            "{response}"
        );

        // The browser posts it on; the platform has it.
        let posted = browser()
            .post(form_action(&page).unwrap())
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 200);
        assert_eq!(platform.deep_link_responses(), vec![jwt.clone()]);

        // The same request cannot be answered twice, nor a resource link launch's session.
        let (status, page) = answer_deep_link(&app, token, &items).await;
        assert_eq!(status, 409, "{page}");
        assert!(page.contains("deep_link_answered"), "{page}");
        let resource_link = launched(&app, &platform, &teacher()).await;
        let (status, page) = answer_deep_link(&app, &resource_link, &items).await;
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("not_deep_linking"), "{page}");
        let (status, page) = answer_deep_link(&app, "forged.session.token", &items).await;
        assert_eq!(status, 401, "{page}");
        assert!(page.contains("invalid_session"), "{page}");
        platform.stop().await;
    }
);

/// Runs `rostergate ARGS` on the app's database and key, as an administrator at a shell would.
async fn cli(app: &TestApp, work: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = common::rostergate_command(&app.db.url, work);
    command
        .args(args)
        .env("ROSTERGATE_SECRET_KEY", common::MASTER_KEY)
        .env("ROSTERGATE_DATA_DIR", app.data_dir.path())
        .env("ROSTERGATE_LTI__ALLOW_INSECURE_PLATFORMS", "true");
    // The platform runs on this test's runtime: wait off it.
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// `rostergate lti scores post` for cls-1 with a score file.
async fn post_scores_file(
    app: &TestApp,
    work: &std::path::Path,
    file: &str,
    json_out: bool,
) -> std::process::Output {
    let mut args = vec![
        "lti",
        "scores",
        "post",
        "--district",
        "lincoln",
        "--class",
        "cls-1",
        "--file",
        file,
    ];
    if json_out {
        args.push("--json");
    }
    cli(app, work, &args).await
}

on_every_backend!(
    the_cli_pulls_memberships_and_posts_scores_refusing_a_bad_score_file_by_line_and_pointer,
    with & LTI,
    |app| {
        let platform = setup(&app).await;
        trust_tool(&app, &platform).await;
        platform.set_members(
            "course-1",
            vec![
                member("lms-stu-1", claim::ROLE_LEARNER, Some("stu-1")),
                member("lms-stu-3", claim::ROLE_LEARNER, Some("stu-3")),
            ],
        );
        let grades = GradesSpec {
            scope: vec![SCOPE_LINEITEM.into(), SCOPE_SCORE.into()],
            lineitems: Some(platform.lineitems_url("course-1")),
            lineitem: None,
        };
        let spec = teacher()
            .with_context("course-1", "ALG1", "Algebra I")
            .with_names_roles(platform.memberships_url("course-1"))
            .with_grades(grades);
        launched(&app, &platform, &spec).await;
        let work = tempfile::tempdir().unwrap();

        let pulled = cli(
            &app,
            work.path(),
            &[
                "lti",
                "memberships",
                "pull",
                "--district",
                "lincoln",
                "--json",
            ],
        )
        .await;
        let stdout = String::from_utf8_lossy(&pulled.stdout);
        assert!(
            pulled.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&pulled.stderr)
        );
        let report: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(report["run"]["status"], "applied", "{report}");
        assert_eq!(report["linked"], 2, "{report}");
        assert_eq!(classes_of(&app, "stu-3").await, vec!["cls-1", "cls-2"]);

        // stu-3 is linked by the memberships alone: its score goes to its platform id.
        let file = work.path().join("scores.json");
        std::fs::write(&file, json!({
            "line_item": {"label": "MAP Growth Math", "score_maximum": 350, "resource_id": "map-math"},
            "scores": [{"user": "stu-3", "score_given": 205}]
        }).to_string()).unwrap();
        let file_arg = file.to_str().unwrap();
        let posted = post_scores_file(&app, work.path(), file_arg, true).await;
        let stdout = String::from_utf8_lossy(&posted.stdout);
        assert!(
            posted.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&posted.stderr)
        );
        let outcome: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(outcome["posted"], 1, "{outcome}");
        assert_eq!(platform.received_scores()[0].body["userId"], "lms-stu-3");

        // Broken JSON names its line and column; a bad member its pointer; nothing is posted.
        std::fs::write(&file, "{\n  \"line_item\": {,\n}").unwrap();
        let refused = post_scores_file(&app, work.path(), file_arg, false).await;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("scores.json:2:"), "{stderr}");
        std::fs::write(&file, json!({"line_item": {"label": "x", "score_maximum": 1}, "scores": [{"user": "stu-3", "activity_progress": "Done"}]}).to_string()).unwrap();
        let refused = post_scores_file(&app, work.path(), file_arg, false).await;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("/scores/0/activity_progress"), "{stderr}");
        assert_eq!(platform.received_scores().len(), 1);
        platform.stop().await;
    }
);
