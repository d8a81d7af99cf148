//! The gradebook driven by reqwest, as the gateway drives it: paging by `Link`, the one filter,
//! tokens, faults, and the generated records' shape.

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use super::*;

const CLIENT_ID: &str = "gradebook-client";
const CLIENT_SECRET: &str = "s3cret/with+odd=chars";
const MATH_PLAN: &str = include_str!("../../../config/learning-plans/math.toml");

/// reqwest builds its TLS configuration even for plain HTTP, so a crypto provider must be set.
fn client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Client::new()
}

fn config() -> GradebookConfig {
    GradebookConfig::new(CLIENT_ID, CLIENT_SECRET)
}

fn start(students: usize) -> Gradebook {
    let (line_items, results) = generated_assessments(students, 7);
    Gradebook::start(config(), line_items, results).unwrap()
}

async fn json(response: Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn token_request(gradebook: &Gradebook, client: &Client, secret: &str) -> RequestBuilder {
    client
        .post(gradebook.token_url())
        .basic_auth(CLIENT_ID, Some(secret))
        .form(&[("grant_type", "client_credentials")])
}

async fn token(gradebook: &Gradebook, client: &Client) -> String {
    let response = token_request(gradebook, client, CLIENT_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn results(gradebook: &Gradebook, client: &Client, query: &[(&str, &str)]) -> RequestBuilder {
    client
        .get(format!("{}/assessmentResults", gradebook.base_url()))
        .query(query)
}

/// The URL of the `Link` header's `rel` member, if any.
fn link(response: &Response, rel: &str) -> Option<String> {
    let header = response.headers().get("link")?.to_str().ok()?;
    header.split(", ").find_map(|part| {
        let (url, param) = part.split_once("; ")?;
        (param == format!("rel=\"{rel}\"")).then(|| url.trim_matches(['<', '>']).to_string())
    })
}

fn sourced_ids(page: &Value, envelope: &str) -> Vec<String> {
    page[envelope]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sourcedId"].as_str().unwrap().to_string())
        .collect()
}

/// imsx status bodies carry their code minor here.
fn code_minor(body: &Value) -> &str {
    body["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]
        .as_str()
        .unwrap()
}

fn record(sourced_id: &str, modified: &str) -> Value {
    json!({"sourcedId": sourced_id, "status": "active", "dateLastModified": modified})
}

#[tokio::test]
async fn paging_1000_results_at_limit_300_follows_link_next_over_4_pages_in_order() {
    let results_served: Vec<Value> = (1..=1000)
        .map(|n| record(&format!("ar-{n}"), "2026-11-01T00:00:00.000Z"))
        .collect();
    let gradebook = Gradebook::start(config(), Vec::new(), results_served).unwrap();
    let client = client();
    let token = token(&gradebook, &client).await;
    let mut url = format!("{}/assessmentResults?limit=300", gradebook.base_url());
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-total-count"], "1000");
        assert!(link(&response, "last")
            .unwrap()
            .ends_with("limit=300&offset=900"));
        let next = link(&response, "next");
        pages += 1;
        let page = json(response).await;
        let ids = sourced_ids(&page, "assessmentResults");
        assert_eq!(ids.len(), if pages < 4 { 300 } else { 100 });
        seen.extend(ids);
        match next {
            Some(next) => url = next,
            None => break,
        }
        assert!(pages < 10, "the pull never ends");
    }
    assert_eq!(pages, 4);
    let expected: Vec<String> = (1..=1000).map(|n| format!("ar-{n}")).collect();
    assert_eq!(seen, expected);
    let offsets: Vec<Option<String>> = gradebook
        .requests()
        .iter()
        .filter(|r| r.is_results_request())
        .map(|r| r.param("offset"))
        .collect();
    assert_eq!(offsets[0], None);
    assert_eq!(offsets[3].as_deref(), Some("900"));
    gradebook.stop().await;
}

#[tokio::test]
async fn a_larger_limit_is_clamped_silently_and_line_items_are_served_as_given() {
    let mut config = config();
    config.max_page_size = Some(4);
    let (line_items, results_served) = generated_assessments(3, 1);
    let gradebook = Gradebook::start(config, line_items, results_served).unwrap();
    let client = client();
    let token = token(&gradebook, &client).await;
    let items = client
        .get(format!("{}/assessmentLineItems", gradebook.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(items.status(), StatusCode::OK);
    assert_eq!(items.headers()["x-total-count"], "6");
    assert!(link(&items, "next").unwrap().contains("limit=4&offset=4"));
    let page = json(items).await;
    assert_eq!(
        sourced_ids(&page, "assessmentLineItems"),
        [
            "ali-math-fall-2026",
            "ali-math-fall-2026-g1",
            "ali-math-fall-2026-g2",
            "ali-math-fall-2026-g3"
        ]
    );
    let log = gradebook.requests();
    assert!(log.last().unwrap().is_line_items_request());
    gradebook.stop().await;
}

#[tokio::test]
async fn the_date_last_modified_filter_selects_records_modified_strictly_after() {
    let gradebook = start(5);
    let client = client();
    let token = token(&gradebook, &client).await;
    // Student 3's six results are modified at 00:00:03: strictly after, so students 4 and 5.
    let filter = "dateLastModified>'2026-11-01T00:00:03.000Z'";
    let response = results(&gradebook, &client, &[("filter", filter)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-total-count"], "12");
    let ids = sourced_ids(&json(response).await, "assessmentResults");
    assert_eq!(ids.first().unwrap(), "ar-4");
    assert_eq!(ids.last().unwrap(), "ar-5-g5");
    assert_eq!(ids.len(), 12);

    // A result changed later shows up, in its place; a new one at the end.
    let data = gradebook.data();
    assert!(data.replace_result("ar-1", record("ar-1", "2026-12-01T00:00:00+01:00")));
    assert!(!data.replace_result("ar-999", record("ar-999", "2026-12-01T00:00:00Z")));
    data.push_result(record("ar-new", "2026-12-02T00:00:00.000Z"));
    let filter = "dateLastModified > '2026-11-30T00:00:00Z'";
    let response = results(&gradebook, &client, &[("filter", filter), ("limit", "1")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "2");
    let next = link(&response, "next").unwrap();
    assert!(next.contains("filter="), "{next}");
    assert_eq!(
        sourced_ids(&json(response).await, "assessmentResults"),
        ["ar-1"]
    );
    let response = client.get(&next).bearer_auth(&token).send().await.unwrap();
    assert_eq!(link(&response, "next"), None);
    assert_eq!(
        sourced_ids(&json(response).await, "assessmentResults"),
        ["ar-new"]
    );
    let logged = gradebook.requests().last().unwrap().param("filter");
    assert_eq!(logged.as_deref(), Some(filter));
    gradebook.stop().await;
}

#[tokio::test]
async fn any_other_filter_is_refused_with_400() {
    let gradebook = start(2);
    let client = client();
    let token = token(&gradebook, &client).await;
    let cases = [
        ("status='active'", "invalid_filter_field"),
        ("dateLastModified>='2026-11-01T00:00:00Z'", "invaliddata"),
        ("dateLastModified<'2026-11-01T00:00:00Z'", "invaliddata"),
        ("dateLastModified>'yesterday'", "invaliddata"),
        (
            "dateLastModified>'2026-11-01T00:00:00Z' AND status='active'",
            "invaliddata",
        ),
        ("", "invaliddata"),
    ];
    for (filter, minor) in cases {
        let response = results(&gradebook, &client, &[("filter", filter)])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{filter}");
        assert_eq!(code_minor(&json(response).await), minor, "{filter}");
    }
    let bad_limit = results(&gradebook, &client, &[("limit", "0")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_limit.status(), StatusCode::BAD_REQUEST);
    gradebook.stop().await;
}

#[tokio::test]
async fn no_invalid_or_revoked_tokens_get_401_and_so_does_a_wrong_secret() {
    let gradebook = start(2);
    let client = client();
    let anonymous = results(&gradebook, &client, &[]).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(code_minor(&json(anonymous).await), "unauthorisedrequest");
    let forged = results(&gradebook, &client, &[])
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let wrong_secret = token_request(&gradebook, &client, "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(wrong_secret).await["error"], "invalid_client");

    let token = token(&gradebook, &client).await;
    let ok = results(&gradebook, &client, &[]).bearer_auth(&token).send();
    assert_eq!(ok.await.unwrap().status(), StatusCode::OK);
    gradebook.revoke_tokens();
    let revoked = results(&gradebook, &client, &[]).bearer_auth(&token).send();
    assert_eq!(revoked.await.unwrap().status(), StatusCode::UNAUTHORIZED);

    let log = gradebook.requests();
    let auth: Vec<(AuthKind, u16)> = log.iter().map(|r| (r.auth, r.status)).collect();
    assert_eq!(
        auth,
        [
            (AuthKind::None, 401),
            (AuthKind::Bearer, 401),
            (AuthKind::Basic, 401),
            (AuthKind::Basic, 200),
            (AuthKind::Bearer, 200),
            (AuthKind::Bearer, 401),
        ]
    );
    assert!(log[2].is_token_request());
    gradebook.clear_requests();
    assert!(gradebook.requests().is_empty());
    gradebook.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_then_the_page_and_body_faults() {
    let gradebook = start(2);
    let faults = gradebook.faults();
    faults.on_path(
        "assessmentResults",
        FaultAction::TooManyRequests {
            retry_after_secs: 2,
        },
        1,
    );
    let client = client();
    let token = token(&gradebook, &client).await;
    let get = || results(&gradebook, &client, &[]).bearer_auth(&token).send();
    let busy = get().await.unwrap();
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.headers()["retry-after"], "2");
    let page = get().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        sourced_ids(&json(page).await, "assessmentResults").len(),
        12
    );

    faults.push(
        FaultTrigger::Page {
            path: "assessmentResults".into(),
            offset: 0,
        },
        FaultAction::MissingField("score".into()),
        1,
    );
    faults.next(FaultAction::MalformedJson);
    let missing = json(get().await.unwrap()).await;
    assert!(missing["assessmentResults"][0].get("score").is_none());
    assert!(missing["assessmentResults"][1].get("score").is_some());
    let broken = get().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&broken.bytes().await.unwrap()).is_err());
    assert_eq!(faults.pending(), 0);

    let log: Vec<(u16, Option<FaultAction>)> = gradebook
        .requests()
        .into_iter()
        .filter(|r| r.is_results_request())
        .map(|r| (r.status, r.fault))
        .collect();
    assert_eq!(
        log[..2],
        [
            (
                429,
                Some(FaultAction::TooManyRequests {
                    retry_after_secs: 2
                })
            ),
            (200, None)
        ]
    );
    gradebook.stop().await;
}

/// The goal area names of the built-in math plan, read from the file itself.
fn math_plan_goal_names() -> Vec<String> {
    let plan: toml::Table = toml::from_str(MATH_PLAN).unwrap();
    plan["goal_areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|area| area["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn generated_assessments_are_deterministic_and_shaped_as_a_sis_holds_them() {
    let (line_items, results) = generated_assessments(50, 42);
    assert_eq!(
        (line_items.clone(), results.clone()),
        generated_assessments(50, 42)
    );
    assert_ne!(results, generated_assessments(50, 43).1);

    assert_eq!(line_items.len(), 6);
    assert_eq!(line_items[0]["sourcedId"], "ali-math-fall-2026");
    assert_eq!(line_items[0]["metadata"]["subject"], "Mathematics");
    let titles: Vec<String> = line_items[1..]
        .iter()
        .map(|item| item["title"].as_str().unwrap().to_string())
        .collect();
    let goal_names = math_plan_goal_names();
    assert_eq!(titles, goal_names);
    for name in &goal_names {
        assert!(MATH_PLAN.contains(&format!("name = \"{name}\"")), "{name}");
    }
    for (k, item) in line_items[1..].iter().enumerate() {
        assert_eq!(item["sourcedId"], format!("ali-math-fall-2026-g{}", k + 1));
        assert_eq!(
            item["parentAssessmentLineItem"],
            json!({"sourcedId": "ali-math-fall-2026", "type": "assessmentLineItem"})
        );
    }

    assert_eq!(results.len(), 50 * 6);
    for (i, group) in results.chunks(6).enumerate() {
        let n = i + 1;
        let overall = &group[0];
        assert_eq!(overall["sourcedId"], format!("ar-{n}"));
        assert_eq!(overall["student"]["sourcedId"], format!("stu-{n}"));
        assert_eq!(
            overall["assessmentLineItem"]["sourcedId"],
            "ali-math-fall-2026"
        );
        let modified = format!("2026-11-01T00:00:{:02}.000Z", n % 60);
        if n < 60 {
            assert_eq!(overall["dateLastModified"], modified.as_str());
        }
        let rit = overall["score"].as_f64().unwrap();
        assert!(overall["score"].to_string().ends_with(".0"));
        assert!((150.0..=250.0).contains(&rit));
        let percentile = overall["scorePercentile"].as_i64().unwrap();
        assert!((1..=99).contains(&percentile));
        for (k, goal) in group[1..].iter().enumerate() {
            assert_eq!(goal["sourcedId"], format!("ar-{n}-g{}", k + 1));
            assert_eq!(
                goal["assessmentLineItem"]["sourcedId"],
                format!("ali-math-fall-2026-g{}", k + 1)
            );
            for same in ["student", "scoreDate", "dateLastModified", "scoreStatus"] {
                assert_eq!(goal[same], overall[same], "{same}");
            }
            let score = goal["score"].as_f64().unwrap();
            assert!((150.0..=250.0).contains(&score) && (score - rit).abs() <= 10.0);
        }
    }
    assert_eq!(results[0]["scoreStatus"], "fully graded");
    assert_eq!(results[0]["scoreDate"], "2026-09-15");
}
