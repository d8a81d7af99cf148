//! LMS launches through the whole OIDC flow, against the in-library LTI platform: login
//! initiation → the platform's authorization endpoint → the launch POST → a redirect to the
//! learning platform carrying a session signed with the tool's key, resolved to the rostered
//! user and class. And what must not get in: a replayed launch, a launch without the login's
//! cookie, a token signed by a key the platform does not publish, an unknown deployment, a
//! login for an unregistered platform or a foreign target. On both databases.

use crate::common;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use rostergate::synthetic::lti_platform::{
    form_fields, LaunchSpec, LtiPlatform, LtiPlatformConfig,
};
use serde_json::{json, Value};

use crate::common::{school, TestApp, OPERATOR_TOKEN};

pub(crate) const CLIENT_ID: &str = "rostergate-tool";
const DEPLOYMENT: &str = "1:deployment-lincoln";
pub(crate) const TARGET: &str = "https://learn.example.org/launch";
pub(crate) const LTI: [(&str, &str); 3] = [
    ("ROSTERGATE_LTI__PUBLIC_URL", "https://gateway.example.org"),
    (
        "ROSTERGATE_LTI__TARGET_LINK_URIS",
        "https://learn.example.org/",
    ),
    ("ROSTERGATE_LTI__ALLOW_INSECURE_PLATFORMS", "true"),
];

/// A rostered district (teacher tch-1 in cls-1, students stu-1..3) and its platform, registered.
pub(crate) async fn setup(app: &TestApp) -> LtiPlatform {
    app.create_district("lincoln").await;
    let (status, body) = app.import("lincoln", OPERATOR_TOKEN, &school()).await;
    assert_eq!(status, 200, "{body}");
    let platform = LtiPlatform::start(
        LtiPlatformConfig::new(CLIENT_ID, DEPLOYMENT)
            .with_tool_redirect_uri("https://gateway.example.org/lti/launch"),
    )
    .unwrap();
    let (status, created) = app
        .post_json(
            "/api/v1/districts/lincoln/lti/platforms",
            OPERATOR_TOKEN,
            &json!({
                "issuer": platform.issuer(),
                "client_id": CLIENT_ID,
                "deployment_ids": [DEPLOYMENT],
                "auth_login_url": platform.auth_url(),
                "token_url": format!("{}/token", platform.origin()),
                "jwks_url": platform.jwks_url(),
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    platform
}

pub(crate) fn browser() -> reqwest::Client {
    rostergate::outbound::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What a browser holds between the steps: the login's cookie and the platform's launch form.
pub(crate) struct Launched {
    cookie: Option<String>,
    form: Vec<(String, String)>,
}

/// Steps 1 and 2: the login initiation (a form POST from the platform) and the platform's
/// answer to the authorization redirect.
pub(crate) async fn login_and_authorize(
    app: &TestApp,
    platform: &LtiPlatform,
    spec: &LaunchSpec,
) -> Launched {
    let browser = browser();
    let login = browser
        .post(app.url("/lti/login"))
        .form(&platform.login_form(spec))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 302, "{}", login.text().await.unwrap());
    let cookie = login
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string());
    let location = login.headers()[LOCATION].to_str().unwrap().to_string();
    let authorized = browser.get(&location).send().await.unwrap();
    let status = authorized.status();
    let html = authorized.text().await.unwrap();
    assert_eq!(
        status, 200,
        "the platform accepted the authorization request: {html}"
    );
    Launched {
        cookie,
        form: form_fields(&html),
    }
}

/// Step 3: the launch POST; the status, the redirect (if any) and the page.
pub(crate) async fn launch(
    app: &TestApp,
    launched: &Launched,
    with_cookie: bool,
) -> (u16, Option<String>, String) {
    let mut request = browser().post(app.url("/lti/launch")).form(&launched.form);
    if let (true, Some(cookie)) = (with_cookie, &launched.cookie) {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    (status, location, response.text().await.unwrap())
}

/// The session a launch handed over, verified with the tool's published keys.
pub(crate) async fn session(app: &TestApp, location: &str) -> Value {
    let (before, token) = location
        .split_once("#session=")
        .expect("a session in the fragment");
    assert_eq!(before, TARGET);
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
    validation.set_issuer(&["https://gateway.example.org"]);
    jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .unwrap()
        .claims
}

pub(crate) fn teacher() -> LaunchSpec {
    LaunchSpec::default()
        .with_target_link_uri(TARGET)
        .with_lis("tch-1", "cls-1")
}

on_every_backend!(
    a_teachers_launch_lands_signed_in_on_their_rostered_account_and_class,
    with & LTI,
    |app| {
        let platform = setup(&app).await;
        let launched = login_and_authorize(&app, &platform, &teacher()).await;
        let cookie = launched
            .cookie
            .clone()
            .expect("the login sets its state cookie");
        assert!(cookie.starts_with("rostergate_lti_state="), "{cookie}");

        let (status, location, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 302, "{page}");
        let claims = session(&app, &location.unwrap()).await;
        assert_eq!(claims["sub"], "tch-1", "{claims}");
        let facts = &claims["rostergate"];
        assert_eq!(facts["district"], "lincoln", "{claims}");
        assert_eq!(facts["class"], "cls-1", "{claims}");
        assert_eq!(facts["role"], "teacher", "{claims}");
        assert_eq!(facts["rostered"], true, "{claims}");

        // The same launch again (a replay, cookie and all) finds its state used.
        let (status, _, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 401, "{page}");
        assert!(page.contains("unknown_state"), "{page}");
        platform.stop().await;
    }
);

on_every_backend!(
    a_learner_the_roster_does_not_know_gets_a_recorded_link_and_least_privilege,
    with & LTI,
    |app| {
        let platform = setup(&app).await;
        let mut spec = LaunchSpec::learner()
            .with_target_link_uri(TARGET)
            .with_sub("lms-user-77");
        spec.lis = None;
        let launched = login_and_authorize(&app, &platform, &spec).await;
        let (status, location, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 302, "{page}");
        let claims = session(&app, &location.unwrap()).await;
        let sub = claims["sub"].as_str().unwrap();
        assert!(
            sub.starts_with("lti:") && sub.ends_with(":lms-user-77"),
            "{claims}"
        );
        assert_eq!(claims["rostergate"]["rostered"], false, "{claims}");
        assert_eq!(claims["rostergate"]["role"], "student", "{claims}");
        assert!(claims["rostergate"]["class"].is_null(), "{claims}");
        platform.stop().await;
    }
);

on_every_backend!(
    launches_without_the_logins_cookie_or_signed_by_an_unpublished_key_are_refused_by_code,
    with & LTI,
    |app| {
        let platform = setup(&app).await;
        // The browser blocked the cookie inside the LMS frame.
        let launched = login_and_authorize(&app, &platform, &teacher()).await;
        let (status, _, page) = launch(&app, &launched, false).await;
        assert_eq!(status, 401, "{page}");
        assert!(
            page.contains("state_cookie_missing") && page.contains("new window"),
            "{page}"
        );

        // A token signed with a key the platform's JWKS does not hold.
        let mut forged = teacher();
        forged.sign_with_unknown_key = true;
        let launched = login_and_authorize(&app, &platform, &forged).await;
        let (status, _, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 401, "{page}");
        assert!(page.contains("unknown_kid"), "{page}");

        // A deployment the district never registered.
        let mut elsewhere = teacher();
        elsewhere.deployment_id = Some("9:another-install".into());
        let launched = login_and_authorize(&app, &platform, &elsewhere).await;
        let (status, _, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 401, "{page}");
        assert!(page.contains("unknown_deployment"), "{page}");

        // The platform's own error, posted instead of a launch.
        let errored = Launched {
            cookie: None,
            form: vec![
                ("error".into(), "login_required".into()),
                (
                    "error_description".into(),
                    "Must have an active user session".into(),
                ),
            ],
        };
        let (status, _, page) = launch(&app, &errored, false).await;
        assert_eq!(status, 400, "{page}");
        assert!(
            page.contains("platform_error") && page.contains("login_required"),
            "{page}"
        );
        platform.stop().await;
    }
);

on_every_backend!(
    logins_for_unregistered_platforms_or_foreign_targets_are_refused_before_anything_is_kept,
    with & LTI,
    |app| {
        let platform = setup(&app).await;
        let browser = browser();
        let post = |fields: Vec<(String, String)>| {
            let request = browser.post(app.url("/lti/login")).form(&fields);
            async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }
        };
        let mut fields = platform.login_form(&teacher());
        for (name, value) in fields.iter_mut() {
            if name == "iss" {
                *value = "https://unknown-lms.example.org".into();
            }
        }
        let (status, page) = post(fields).await;
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("unregistered_platform"), "{page}");

        let foreign = LaunchSpec::default().with_target_link_uri("https://evil.example.net/x");
        let (status, page) = post(platform.login_form(&foreign)).await;
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("foreign_target_link_uri"), "{page}");

        let (status, page) = post(vec![("iss".into(), platform.issuer())]).await;
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("missing_login_parameter"), "{page}");

        // Canvas names the deployment `deployment_id`; its logins work the same.
        let mut canvas = teacher();
        canvas.canvas_style = true;
        let launched = login_and_authorize(&app, &platform, &canvas).await;
        let (status, _, page) = launch(&app, &launched, true).await;
        assert_eq!(status, 302, "{page}");
        platform.stop().await;
    }
);

on_every_backend!(
    a_gateway_without_an_lti_tool_answers_not_found_and_still_publishes_its_keys,
    |app| {
        let response = browser()
            .get(app.url("/lti/login?iss=a&login_hint=b&target_link_uri=c"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("lti_not_configured"));
        let (status, jwks) = app.get("/lti/jwks", OPERATOR_TOKEN).await;
        assert_eq!(status, 200, "{jwks}");
        assert_eq!(
            jwks["keys"].as_array().unwrap().len(),
            2,
            "current and next"
        );
    }
);
