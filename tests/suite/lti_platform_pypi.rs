//! End to end against a real LTI 1.3 platform from PyPI: `tests/lti_platform_py/lti_platform.py`,
//! a harness on `lti1p3platform` 0.1.8 (with the library's known gaps closed), run from the
//! virtualenv `.ci/lti-platform-venv` makes. A browser's login → the platform's authorization
//! endpoint → the launch POST lands signed in on the rostered user and class, and the same
//! launch replayed is refused; then the LTI Advantage services, each its own test: NRPS
//! memberships pulled into the roster, AGS scores posted to the platform's gradebook, and a
//! deep linking response the platform verifies. On both databases.
//!
//! The platform's python is `ROSTERGATE_TEST_LTI_PLATFORM_PYTHON`: without it these tests skip
//! and say so, unless `ROSTERGATE_TEST_REQUIRE_LTI_PLATFORM=1` (as CI sets) makes that a
//! failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use rostergate::synthetic::lti_platform::{form_action, form_fields};
use serde_json::{json, Value};

use crate::common::{self, school, TestApp, OPERATOR_TOKEN};

const CLIENT_ID: &str = "rostergate-pypi";
const DEPLOYMENT: &str = "deployment-lincoln-1";
const PUBLIC_URL: &str = "https://gateway.example.org";
const TARGET: &str = "https://learn.example.org/launch";
const DEEP_LINKING_TARGET: &str = "https://learn.example.org/deep-link";
const LTI: [(&str, &str); 3] = [
    ("ROSTERGATE_LTI__PUBLIC_URL", PUBLIC_URL),
    (
        "ROSTERGATE_LTI__TARGET_LINK_URIS",
        "https://learn.example.org/",
    ),
    ("ROSTERGATE_LTI__ALLOW_INSECURE_PLATFORMS", "true"),
];

const INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";
const LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";
const NRPS_SCOPE: &str =
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
const SCORE_SCOPE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
const MESSAGE_TYPE: &str = "https://purl.imsglobal.org/spec/lti/claim/message_type";
/// The AGS scopes the platform's launches grant.
const AGS_SCOPES: [&str; 3] = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    SCORE_SCOPE,
];

/// The LMS users of the course (their LTI `sub`): the teacher and students of the roster's
/// cls-1, stu-3 (rostered, enrolled in cls-2 only), and a guest the roster does not know.
const TEACHER: &str = "lms-u-tch-1";
const STUDENT: &str = "lms-u-stu-1";
const OTHER_CLASS_STUDENT: &str = "lms-u-stu-3";
const GUEST: &str = "lms-u-guest";

/// The platform's python, or None (said on stderr) when these tests skip.
fn platform_python() -> Option<PathBuf> {
    let required = std::env::var("ROSTERGATE_TEST_REQUIRE_LTI_PLATFORM").is_ok_and(|v| v == "1");
    let missing = |why: String| {
        if required {
            panic!(
                "the LTI platform is required for this run \
                 (ROSTERGATE_TEST_REQUIRE_LTI_PLATFORM=1) but {why}"
            );
        }
        eprintln!(
            "skipping the PyPI LTI platform tests: {why}; set ROSTERGATE_TEST_LTI_PLATFORM_PYTHON \
             to the python of .ci/lti-platform-venv"
        );
        None
    };
    let python = std::env::var_os("ROSTERGATE_TEST_LTI_PLATFORM_PYTHON").filter(|p| !p.is_empty());
    let Some(python) = python else {
        return missing("ROSTERGATE_TEST_LTI_PLATFORM_PYTHON is not set".into());
    };
    let python = PathBuf::from(python);
    match Command::new(&python)
        .args(["-c", "import lti1p3platform"])
        .output()
    {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => missing(format!(
            "{} cannot import lti1p3platform: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => missing(format!("{} does not run: {e}", python.display())),
    }
}

/// The harness, running; killed (and waited for) when dropped.
struct PyPlatform {
    child: Child,
    origin: String,
    _config: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl Drop for PyPlatform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PyPlatform {
    /// Starts the harness for this gateway: its login, redirect URI and key set, the course
    /// (the roster's cls-1) and its members.
    async fn start(python: &Path, app: &TestApp) -> PyPlatform {
        let config = json!({
            "client_id": CLIENT_ID,
            "deployment_id": DEPLOYMENT,
            "tool": {
                "login_url": app.url("/lti/login"),
                "redirect_uris": [format!("{PUBLIC_URL}/lti/launch")],
                "jwks_url": app.url("/lti/jwks"),
                "target_link_uri": TARGET,
                "deep_linking_target_link_uri": DEEP_LINKING_TARGET,
            },
            "context": {
                "id": "lms-course-77",
                "label": "ALG1-1",
                "title": "Algebra I - P1",
                "course_section_sourcedid": "cls-1",
            },
            "members": [
                member(TEACHER, INSTRUCTOR, Some("tch-1"), ("Tina", "Teach")),
                member(STUDENT, LEARNER, Some("stu-1"), ("Sam", "One")),
                member(OTHER_CLASS_STUDENT, LEARNER, Some("stu-3"), ("Syd", "Three")),
                member(GUEST, LEARNER, None, ("Gail", "Guest")),
            ],
            // Two members a page: the memberships come in two pages.
            "nrps_page_size": 2,
        });
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), config.to_string()).unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lti_platform_py/lti_platform.py");
        let mut child = Command::new(python)
            .arg("-B")
            .arg(&script)
            .arg("--config")
            .arg(file.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the platform's python runs");
        let stdout = child.stdout.take().unwrap();
        // The first line names its address; reading it blocks, so not on the runtime's thread.
        let first = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .unwrap()
        .unwrap();
        let origin = match first.trim().strip_prefix("listening ") {
            Some(origin) => origin.to_string(),
            None => {
                let _ = child.kill();
                panic!("the platform did not start: {first:?} (its stderr is above)");
            }
        };
        PyPlatform {
            child,
            origin,
            _config: file,
            http: browser(),
        }
    }

    /// The tool's login URL with the query this platform sends for `user`'s launch.
    async fn login_url(&self, user: &str, message: &str) -> String {
        let response = self
            .http
            .get(format!("{}/_test/login", self.origin))
            .query(&[("user", user), ("message", message)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["url"].as_str().unwrap().to_string()
    }

    /// What the platform saw: `launches`, `token_requests`, `service_requests`, `lineitems`
    /// or `deep_link_responses`.
    async fn seen(&self, what: &str) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/_test/{what}", self.origin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

fn member(sub: &str, role: &str, sourced_id: Option<&str>, (given, family): (&str, &str)) -> Value {
    let mut member = json!({
        "user_id": sub,
        "roles": [role],
        "name": format!("{given} {family}"),
        "given_name": given,
        "family_name": family,
        "email": format!("{}@lms.example.org", given.to_lowercase()),
        "status": "Active",
    });
    if let Some(id) = sourced_id {
        member["lis_person_sourcedid"] = json!(id);
    }
    member
}

fn browser() -> reqwest::Client {
    rostergate::outbound::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Runs a command off the runtime's thread: the gateway in this process must keep answering
/// (the platform fetches its key set while the command waits on the platform).
async fn run_off_thread(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// `rostergate …` on the test's database with its keys and LTI settings.
fn gateway(app: &TestApp, dir: &Path) -> Command {
    let mut command = common::gateway_command(&app.db.url, dir);
    command.envs(LTI);
    command
}

/// A rostered district (teacher tch-1 in cls-1 with stu-1 and stu-2; stu-3 in cls-2), the
/// platform started and registered with the CLI.
async fn setup(app: &TestApp, python: &Path, dir: &Path) -> PyPlatform {
    app.create_district("lincoln").await;
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    assert_eq!(status, 200, "{body}");
    let platform = PyPlatform::start(python, app).await;
    let origin = platform.origin.clone();
    let mut add = gateway(app, dir);
    add.args([
        "lti",
        "platform",
        "add",
        "--district",
        "lincoln",
        "--issuer",
        &origin,
        "--client-id",
        CLIENT_ID,
        "--deployment-id",
        DEPLOYMENT,
        "--auth-url",
        &format!("{origin}/auth"),
        "--token-url",
        &format!("{origin}/token"),
        "--jwks-url",
        &format!("{origin}/jwks"),
        "--json",
    ]);
    let out = run_off_thread(add).await;
    assert!(out.status.success(), "{}", common::printed(&out));
    let added = common::json_of(&out);
    assert_eq!(added["issuer"], origin.as_str(), "{added}");
    platform
}

/// A browser's launch: the platform's login initiation, the gateway's redirect to the
/// platform's authorization endpoint, and the form that endpoint answers.
struct Launched {
    cookie: String,
    form: Vec<(String, String)>,
}

async fn login_and_authorize(
    app: &TestApp,
    platform: &PyPlatform,
    user: &str,
    message: &str,
) -> Launched {
    let browser = browser();
    let login_url = platform.login_url(user, message).await;
    assert!(
        login_url.starts_with(&app.url("/lti/login?")),
        "{login_url}"
    );
    let login = browser.get(&login_url).send().await.unwrap();
    assert_eq!(login.status(), 302, "{}", login.text().await.unwrap());
    let cookie = login
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("the login sets its state cookie");
    let location = login.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/auth?", platform.origin)),
        "{location}"
    );
    let authorized = browser.get(&location).send().await.unwrap();
    let status = authorized.status();
    let page = authorized.text().await.unwrap();
    assert_eq!(
        status, 200,
        "the platform refused the authorization request: {page}"
    );
    assert_eq!(
        form_action(&page).as_deref(),
        Some(format!("{PUBLIC_URL}/lti/launch").as_str()),
        "{page}"
    );
    Launched {
        cookie,
        form: form_fields(&page),
    }
}

/// The launch POST (to the gateway this test reaches, the form's action being its public
/// URL): the status, the redirect and the page.
async fn launch(app: &TestApp, launched: &Launched) -> (u16, Option<String>, String) {
    let response = browser()
        .post(app.url("/lti/launch"))
        .header(COOKIE, &launched.cookie)
        .form(&launched.form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    (status, location, response.text().await.unwrap())
}

/// A launch that must land on `target`: the session token and its claims, checked with the
/// tool's published keys.
async fn landed(app: &TestApp, launched: &Launched, target: &str) -> (String, Value) {
    let (status, location, page) = launch(app, launched).await;
    assert_eq!(status, 302, "{page}");
    let location = location.unwrap();
    let (before, token) = location
        .split_once("#session=")
        .expect("a session in the fragment");
    assert_eq!(before, target);
    let (status, jwks) = app.get("/lti/jwks", OPERATOR_TOKEN).await;
    assert_eq!(status, 200, "{jwks}");
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the session's key is published");
    let decoding =
        DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["rostergate-lti-session"]);
    validation.set_issuer(&[PUBLIC_URL]);
    let claims = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .unwrap()
        .claims;
    (token.to_string(), claims)
}

/// Every token the gateway asked the platform for was granted, its client assertion (verified
/// by the platform against the tool's key set) naming the client, for scopes among `scopes`.
async fn tokens_granted(platform: &PyPlatform, scopes: &[&str]) {
    let requests = platform.seen("token_requests").await;
    assert!(!requests.is_empty(), "the gateway asked for no token");
    for request in &requests {
        assert_eq!(request["status"], 200, "{request}");
        let asked: Vec<&str> = request["scope"].as_str().unwrap().split(' ').collect();
        assert!(asked.iter().all(|s| scopes.contains(s)), "{request}");
        assert_eq!(request["assertion"]["iss"], CLIENT_ID, "{request}");
        assert_eq!(request["assertion"]["sub"], CLIENT_ID, "{request}");
    }
}

on_every_backend!(
    a_launch_from_the_pypi_platform_lands_on_the_rostered_user_and_class_and_its_replay_is_refused,
    with & LTI,
    |app| {
        let Some(python) = platform_python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let platform = setup(&app, &python, dir.path()).await;

        let launched = login_and_authorize(&app, &platform, TEACHER, "resource_link").await;
        assert!(
            launched.cookie.starts_with("rostergate_lti_state="),
            "{}",
            launched.cookie
        );
        let (_, claims) = landed(&app, &launched, TARGET).await;
        assert_eq!(claims["sub"], "tch-1", "{claims}");
        let facts = &claims["rostergate"];
        assert_eq!(facts["district"], "lincoln", "{claims}");
        assert_eq!(facts["class"], "cls-1", "{claims}");
        assert_eq!(facts["role"], "teacher", "{claims}");
        assert_eq!(facts["rostered"], true, "{claims}");
        assert_eq!(facts["lti_sub"], TEACHER, "{claims}");
        assert_eq!(facts["context_id"], "lms-course-77", "{claims}");

        // The same id_token and state again, cookie and all: the state is gone.
        let (status, location, page) = launch(&app, &launched).await;
        assert_eq!(status, 401, "{page}");
        assert!(location.is_none());
        assert!(page.contains("unknown_state"), "{page}");

        // A member the roster does not know lands with no roster rights.
        let launched = login_and_authorize(&app, &platform, GUEST, "resource_link").await;
        let (_, claims) = landed(&app, &launched, TARGET).await;
        assert_eq!(claims["rostergate"]["rostered"], false, "{claims}");
        assert_eq!(claims["rostergate"]["role"], "student", "{claims}");

        let launches = platform.seen("launches").await;
        assert_eq!(launches.len(), 2, "one id_token per authorization");
        assert!(launches
            .iter()
            .all(|l| l["message_type"] == "LtiResourceLinkRequest"));
    }
);

on_every_backend!(
    an_nrps_pull_enrolls_rostered_members_in_the_mapped_class_and_warns_about_lms_only_ones,
    with & LTI,
    |app| {
        let Some(python) = platform_python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let platform = setup(&app, &python, dir.path()).await;
        // The teacher's launch carries the NRPS claim: the gateway records where to read the
        // course's members.
        let launched = login_and_authorize(&app, &platform, TEACHER, "resource_link").await;
        landed(&app, &launched, TARGET).await;
        let (_, classes) = app
            .get(
                "/api/v1/districts/lincoln/users/stu-3/classes",
                OPERATOR_TOKEN,
            )
            .await;
        assert!(!classes.to_string().contains("cls-1"), "{classes}");

        let writer = app.token_for("lincoln", &["roster:write"]).await;
        let pulls = "/api/v1/districts/lincoln/lti/memberships/pulls";
        let (status, pulled) = app.post_json(pulls, &writer, &json!({})).await;
        assert_eq!(status, 200, "{pulled}");
        let run = &pulled["run"];
        assert_eq!(run["status"], "applied", "{pulled}");
        assert_eq!(common::count(run, "enrollments", "created"), 1, "{pulled}");
        // The member with no lis_person_sourcedid is a warning, not an account.
        let warnings = run["warnings"].to_string();
        assert!(warnings.contains(GUEST), "{pulled}");
        for rostered in [TEACHER, STUDENT, OTHER_CLASS_STUDENT] {
            assert!(!warnings.contains(rostered), "{pulled}");
        }

        // stu-3, rostered in cls-2 only, is now enrolled in the course's class too.
        let (status, classes) = app
            .get(
                "/api/v1/districts/lincoln/users/stu-3/classes",
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{classes}");
        assert!(classes.to_string().contains("cls-1"), "{classes}");
        let (_, guest) = app
            .get(
                &format!("/api/v1/districts/lincoln/users/{GUEST}"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(guest["error"]["code"], "not_found", "{guest}");

        // Both pages were read (two members a page), as NRPS asks: its media type, a token
        // for its scope.
        let calls = platform.seen("service_requests").await;
        assert_eq!(calls.len(), 2, "{calls:?}");
        for call in &calls {
            assert_eq!(call["status"], 200, "{call}");
            assert_eq!(call["method"], "GET", "{call}");
            assert!(
                call["token_scopes"].to_string().contains(NRPS_SCOPE),
                "{call}"
            );
        }
        assert!(
            calls[1]["url"].as_str().unwrap().contains("page=2"),
            "{calls:?}"
        );
        tokens_granted(&platform, &[NRPS_SCOPE]).await;

        // Again: nothing changes, and the token is reused.
        let (status, again) = app.post_json(pulls, &writer, &json!({})).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            common::count(&again["run"], "enrollments", "created"),
            0,
            "{again}"
        );
        assert_eq!(platform.seen("token_requests").await.len(), 1);

        // The same pull from the command line (its own process: a token of its own).
        let mut pull = gateway(&app, dir.path());
        pull.args([
            "lti",
            "memberships",
            "pull",
            "--district",
            "lincoln",
            "--json",
        ]);
        let out = run_off_thread(pull).await;
        assert!(out.status.success(), "{}", common::printed(&out));
        let pulled = common::json_of(&out);
        assert_eq!(pulled["run"]["status"], "applied", "{pulled}");
        assert_eq!(
            common::count(&pulled["run"], "enrollments", "created"),
            0,
            "{pulled}"
        );
        assert!(
            pulled["run"]["warnings"].to_string().contains(GUEST),
            "{pulled}"
        );
        assert_eq!(platform.seen("token_requests").await.len(), 2);
        tokens_granted(&platform, &[NRPS_SCOPE]).await;
    }
);

on_every_backend!(
    ags_scores_land_in_the_platforms_gradebook_on_one_line_item_with_later_timestamps,
    with & LTI,
    |app| {
        let Some(python) = platform_python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let platform = setup(&app, &python, dir.path()).await;
        // stu-1's launch carries the AGS claim and links stu-1 to their platform id.
        let launched = login_and_authorize(&app, &platform, STUDENT, "resource_link").await;
        let (_, claims) = landed(&app, &launched, TARGET).await;
        assert_eq!(claims["sub"], "stu-1", "{claims}");

        let writer = app.token_for("lincoln", &["scores:write"]).await;
        let post = |given: u32| {
            json!({
                "line_item": {
                    "label": "MAP Growth Math",
                    "score_maximum": 350,
                    "resource_id": "map-math",
                    "tag": "map",
                },
                "scores": [
                    {
                        "user": "stu-1",
                        "score_given": given,
                        "activity_progress": "Completed",
                        "grading_progress": "FullyGraded",
                        "comment": "Fall MAP Growth",
                    },
                    // Never launched, in no membership: the gateway has no platform id for them.
                    {
                        "user": "stu-2",
                        "score_given": 190,
                        "activity_progress": "Completed",
                        "grading_progress": "FullyGraded",
                    },
                ],
            })
        };
        let scores = "/api/v1/districts/lincoln/classes/cls-1/lti/scores";
        let (status, first) = app.post_json(scores, &writer, &post(212)).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["created"], true, "{first}");
        assert_eq!(first["posted"], 1, "{first}");
        let skipped = first["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 1, "{first}");
        assert_eq!(skipped[0]["user"], "stu-2", "{first}");
        assert!(
            skipped[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{first}"
        );

        let items = platform.seen("lineitems").await;
        assert_eq!(items.len(), 1, "{items:?}");
        let item = &items[0];
        assert_eq!(first["line_item"], item["id"], "{first} {item}");
        assert_eq!(item["label"], "MAP Growth Math", "{item}");
        assert_eq!(item["scoreMaximum"].as_f64(), Some(350.0), "{item}");
        assert_eq!(item["resourceId"], "map-math", "{item}");
        assert_eq!(item["tag"], "map", "{item}");
        let posted = item["scores"].as_array().unwrap();
        assert_eq!(posted.len(), 1, "{item}");
        assert_eq!(posted[0]["userId"], STUDENT, "{item}");
        assert_eq!(posted[0]["scoreGiven"].as_f64(), Some(212.0), "{item}");
        assert_eq!(posted[0]["scoreMaximum"].as_f64(), Some(350.0), "{item}");
        assert_eq!(posted[0]["activityProgress"], "Completed", "{item}");
        assert_eq!(posted[0]["gradingProgress"], "FullyGraded", "{item}");
        assert_eq!(posted[0]["comment"], "Fall MAP Growth", "{item}");

        // Again: the same line item, and a score the platform takes (its timestamp is later:
        // the platform refuses any other with 409).
        let (status, second) = app.post_json(scores, &writer, &post(215)).await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(second["created"], false, "{second}");
        assert_eq!(second["posted"], 1, "{second}");
        assert_eq!(second["line_item"], first["line_item"], "{second}");
        let items = platform.seen("lineitems").await;
        assert_eq!(items.len(), 1, "{items:?}");
        let posted = items[0]["scores"].as_array().unwrap();
        assert_eq!(posted.len(), 2, "{items:?}");
        assert_eq!(posted[1]["scoreGiven"].as_f64(), Some(215.0), "{items:?}");
        assert_ne!(posted[0]["timestamp"], posted[1]["timestamp"], "{items:?}");

        // Every call was answered 2xx: media types, scopes and the line item URL's query kept.
        let calls = platform.seen("service_requests").await;
        assert!(
            calls.iter().all(|c| c["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))),
            "{calls:?}"
        );
        let score_posts: Vec<_> = calls
            .iter()
            .filter(|c| c["url"].as_str().unwrap().contains("/scores?"))
            .collect();
        assert_eq!(score_posts.len(), 2, "{calls:?}");
        assert!(score_posts
            .iter()
            .all(|c| c["token_scopes"].to_string().contains(SCORE_SCOPE)));
        tokens_granted(&platform, &AGS_SCOPES).await;

        // A third from the command line, another process: still after the last one sent.
        let file = dir.path().join("scores.json");
        let mut only_stu_1 = post(220);
        only_stu_1["scores"].as_array_mut().unwrap().truncate(1);
        std::fs::write(&file, only_stu_1.to_string()).unwrap();
        let mut command = gateway(&app, dir.path());
        command.args([
            "lti",
            "scores",
            "post",
            "--district",
            "lincoln",
            "--class",
            "cls-1",
        ]);
        command.arg("--file").arg(&file).arg("--json");
        let out = run_off_thread(command).await;
        assert!(out.status.success(), "{}", common::printed(&out));
        let third = common::json_of(&out);
        assert_eq!(third["created"], false, "{third}");
        assert_eq!(third["posted"], 1, "{third}");
        assert_eq!(third["line_item"], first["line_item"], "{third}");
        let items = platform.seen("lineitems").await;
        let posted = items[0]["scores"].as_array().unwrap();
        assert_eq!(posted.len(), 3, "{items:?}");
        assert_eq!(posted[2]["scoreGiven"].as_f64(), Some(220.0), "{items:?}");
        tokens_granted(&platform, &AGS_SCOPES).await;
    }
);

on_every_backend!(
    a_deep_linking_response_reaches_the_platform_signed_and_verified_and_is_answered_once,
    with & LTI,
    |app| {
        let Some(python) = platform_python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let platform = setup(&app, &python, dir.path()).await;
        let launched = login_and_authorize(&app, &platform, TEACHER, "deep_linking").await;
        let (session, claims) = landed(&app, &launched, DEEP_LINKING_TARGET).await;
        assert_eq!(claims["sub"], "tch-1", "{claims}");
        assert_eq!(
            claims["rostergate"]["message_type"], "LtiDeepLinkingRequest",
            "{claims}"
        );
        let launches = platform.seen("launches").await;
        assert_eq!(launches[0]["claims"][MESSAGE_TYPE], "LtiDeepLinkingRequest");

        // The learning platform sends the teacher's pick with the session.
        let items = json!([{
            "type": "ltiResourceLink",
            "title": "MAP Growth Math practice",
            "url": TARGET,
            "lineItem": {
                "label": "MAP Growth Math",
                "scoreMaximum": 350,
                "resourceId": "map-math",
                "tag": "map",
            },
        }]);
        let answer = |session: String| {
            browser()
                .post(app.url("/lti/deep_links"))
                .form(&[("session", session), ("content_items", items.to_string())])
                .send()
        };
        let response = answer(session.clone()).await.unwrap();
        assert_eq!(response.status(), 200);
        let page = response.text().await.unwrap();
        assert_eq!(
            form_action(&page),
            Some(format!("{}/deep_links", platform.origin)),
            "{page}"
        );
        let fields = form_fields(&page);
        assert_eq!(fields.len(), 1, "{page}");
        assert_eq!(fields[0].0, "JWT", "{page}");

        // The browser posts it on; the platform verifies it and keeps it.
        let response = browser()
            .post(format!("{}/deep_links", platform.origin))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(status, 200, "{}", response.text().await.unwrap());
        let received = platform.seen("deep_link_responses").await;
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(received[0]["verified"], true, "{received:?}");
        assert_eq!(
            received[0]["content_items"][0]["title"],
            "MAP Growth Math practice"
        );
        assert_eq!(
            received[0]["content_items"][0]["lineItem"]["scoreMaximum"].as_f64(),
            Some(350.0)
        );

        // The same session again: answered already.
        let response = answer(session).await.unwrap();
        assert_eq!(response.status(), 409);
        let page = response.text().await.unwrap();
        assert!(page.contains("deep_link_answered"), "{page}");
    }
);
