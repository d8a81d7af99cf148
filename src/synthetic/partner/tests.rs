//! The partner driven by reqwest, as the gateway drives it, and its pages checked against the
//! contract.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use super::*;

const CLIENT_ID: &str = "partner-client";
const CLIENT_SECRET: &str = "s3cret/with+odd=chars";
const CONTRACT: &str = include_str!("../../../contracts/partner-results.openapi.json");
const SCORE_PUSH: &str = include_str!("../../../contracts/schemas/score-push.schema.json");

/// reqwest builds its TLS configuration even for plain HTTP, so a crypto provider must be set.
fn client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Client::new()
}

fn config() -> PartnerConfig {
    PartnerConfig::new(CLIENT_ID, CLIENT_SECRET)
}

async fn json(response: Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn token_request(partner: &Partner, client: &Client) -> RequestBuilder {
    client
        .post(partner.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
}

async fn token(partner: &Partner, client: &Client) -> String {
    let response = token_request(partner, client).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

fn results(partner: &Partner, client: &Client, query: &[(&str, &str)]) -> RequestBuilder {
    client
        .get(format!("{}/results", partner.base_url()))
        .query(query)
}

/// Every page of a pull, each checked against the contract.
async fn pull(
    partner: &Partner,
    client: &Client,
    token: &str,
    limit: &str,
    since: Option<&str>,
) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut query = vec![("limit", limit)];
        if let Some(since) = since {
            query.push(("modified_since", since));
        }
        if let Some(page_token) = &page_token {
            query.push(("page_token", page_token));
        }
        let response = results(partner, client, &query)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page = json(response).await;
        assert_conforms(&page);
        page_token = page["next_page_token"].as_str().map(str::to_string);
        pages.push(page);
        if page_token.is_none() {
            return pages;
        }
        assert!(pages.len() < 1000, "the pull never ends");
    }
}

fn identifiers(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["result"]["student"]["identifier"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn names(object: &Value) -> HashSet<&str> {
    object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// `properties` and `required` of an object schema.
fn members(schema: &Value) -> (HashSet<&str>, Vec<&str>) {
    let required = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|n| n.as_str().unwrap()).collect())
        .unwrap_or_default();
    (names(&schema["properties"]), required)
}

fn assert_members(value: &Value, schema: &Value, what: &str) {
    let (allowed, required) = members(schema);
    for name in names(value) {
        assert!(
            allowed.contains(name),
            "{what} has {name}, not in the contract"
        );
    }
    for name in required {
        assert!(
            value.get(name).is_some(),
            "{what} lacks the required {name}"
        );
    }
}

/// The page's members are the contract's `ResultsPage` and `ChangedResult` ones, and each
/// result's the score push's `result` ones.
fn assert_conforms(page: &Value) {
    let contract: Value = serde_json::from_str(CONTRACT).unwrap();
    let push: Value = serde_json::from_str(SCORE_PUSH).unwrap();
    let schemas = &contract["components"]["schemas"];
    assert_members(page, &schemas["ResultsPage"], "the page");
    match &page["next_page_token"] {
        Value::Null => {}
        Value::String(token) => assert!((1..=2048).contains(&token.len())),
        other => panic!("next_page_token is {other}"),
    }
    let changed = &schemas["ChangedResult"];
    assert_eq!(
        changed["properties"]["result"]["$ref"],
        "./schemas/score-push.schema.json#/$defs/result"
    );
    for (i, item) in page["results"].as_array().unwrap().iter().enumerate() {
        assert_members(item, changed, &format!("results[{i}]"));
        let at = item["modified_at"].as_str().unwrap();
        assert!(at.ends_with('Z'), "{at}");
        DateTime::parse_from_rfc3339(at).unwrap();
        assert_members(
            &item["result"],
            &push["$defs"]["result"],
            &format!("results[{i}].result"),
        );
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn result(identifier: &str, rit: i64) -> Value {
    json!({
        "student": {"identifier": identifier},
        "subject": "Mathematics",
        "term": "Fall 2026-2027",
        "test_date": "2026-10-01",
        "rit": rit,
        "goals": [{"name": "Number and Operations", "rit": rit - 2}],
    })
}

#[tokio::test]
async fn paging_2500_results_by_1000_gives_3_conforming_pages_with_every_result_once_in_order() {
    let partner = Partner::start(config(), generated_results(2_500, 7)).unwrap();
    let client = client();
    let token = token(&partner, &client).await;
    let pages = pull(&partner, &client, &token, "1000", None).await;
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["results"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    assert!(pages[2]["next_page_token"].is_null());
    let seen: Vec<String> = pages.iter().flat_map(identifiers).collect();
    let expected: Vec<String> = (1..=2_500).map(|n| format!("S{n}")).collect();
    assert_eq!(seen, expected);
    let first = &pages[0]["results"][0];
    assert_eq!(first["modified_at"], "2026-11-01T00:00:00Z");
    let log = partner.requests();
    assert!(log[0].is_token_request() && log[0].auth == AuthKind::Basic);
    assert!(log[1..]
        .iter()
        .all(|r| r.is_results_request() && r.auth == AuthKind::Bearer && r.status == 200));
    assert_eq!(log[1].param("page_token"), None);
    assert_eq!(
        log[2].param("page_token").as_deref(),
        pages[0]["next_page_token"].as_str()
    );
    partner.stop().await;
}

#[tokio::test]
async fn modified_since_selects_results_modified_at_or_after_it_and_added_ones_follow() {
    let partner = Partner::start(config(), generated_results(10, 1)).unwrap();
    let client = client();
    let token = token(&partner, &client).await;
    // S8 was modified at 00:00:07.
    let since = "2026-11-01T00:00:07.000000Z";
    let pages = pull(&partner, &client, &token, "2", Some(since)).await;
    let seen: Vec<String> = pages.iter().flat_map(identifiers).collect();
    assert_eq!(seen, ["S8", "S9", "S10"]);

    // A result changed since, and one stamped earlier than the others but still after `since`.
    partner
        .results()
        .add(at("2026-11-02T08:00:00Z"), result("S3", 222));
    partner
        .results()
        .add(at("2026-11-01T00:00:08.5Z"), result("S11", 180));
    assert_eq!(partner.results().len(), 12);
    let pages = pull(&partner, &client, &token, "1000", Some(since)).await;
    let seen: Vec<String> = pages.iter().flat_map(identifiers).collect();
    assert_eq!(seen, ["S8", "S9", "S11", "S10", "S3"]);
    assert_eq!(
        pages[0]["results"][2]["modified_at"],
        "2026-11-01T00:00:08.500Z"
    );

    partner
        .results()
        .replace_all(vec![(at("2026-12-01T00:00:00Z"), result("S1", 199))]);
    let pages = pull(
        &partner,
        &client,
        &token,
        "1000",
        Some("2026-12-01T00:00:00.000001Z"),
    )
    .await;
    assert_eq!(pages.len(), 1);
    assert!(pages[0]["results"].as_array().unwrap().is_empty());

    let since_sent: Vec<Option<String>> = partner
        .requests()
        .iter()
        .filter(|r| r.is_results_request())
        .map(|r| r.param("modified_since"))
        .collect();
    assert_eq!(since_sent[0].as_deref(), Some(since));
    assert_eq!(
        since_sent.last().unwrap().as_deref(),
        Some("2026-12-01T00:00:00.000001Z")
    );
    partner.stop().await;
}

#[tokio::test]
async fn a_limit_above_the_max_page_size_is_clamped_silently() {
    let mut config = config();
    config.max_page_size = Some(40);
    let partner = Partner::start(config, generated_results(100, 3)).unwrap();
    let client = client();
    let token = token(&partner, &client).await;
    let pages = pull(&partner, &client, &token, "1000", None).await;
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["results"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [40, 40, 20]);
    partner.stop().await;
}

#[tokio::test]
async fn forged_page_tokens_and_bad_parameters_are_refused_with_400() {
    let partner = Partner::start(config(), generated_results(5, 1)).unwrap();
    let client = client();
    let token = token(&partner, &client).await;
    let first = json(
        results(&partner, &client, &[("limit", "2")])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let issued = first["next_page_token"].as_str().unwrap().to_string();
    // A token naming a later position, encoded as the server encodes its own.
    let forged = cursor::Cursors::default().issue(cursor::Position {
        modified_at: at("2026-11-01T00:00:03Z"),
        seq: 3,
    });
    assert_ne!(forged, issued);
    let cases: [(&str, Vec<(&str, &str)>); 7] = [
        (
            "forged page token",
            vec![("limit", "2"), ("page_token", &forged)],
        ),
        (
            "garbage page token",
            vec![("limit", "2"), ("page_token", "eyJhZnRlciI6IjEwMDAifQ")],
        ),
        ("no limit", vec![]),
        ("limit 0", vec![("limit", "0")]),
        ("limit not a number", vec![("limit", "ten")]),
        (
            "limit above the contract's maximum",
            vec![("limit", "50001")],
        ),
        (
            "modified_since not RFC 3339",
            vec![("limit", "2"), ("modified_since", "yesterday")],
        ),
    ];
    for (name, query) in cases {
        let response = results(&partner, &client, &query)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(json(response).await["error"], "invalid_request", "{name}");
    }
    let next = results(
        &partner,
        &client,
        &[("limit", "2"), ("page_token", &issued)],
    )
    .bearer_auth(&token)
    .send()
    .await
    .unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(identifiers(&json(next).await), ["S3", "S4"]);
    partner.stop().await;
}

#[tokio::test]
async fn results_without_a_token_or_with_one_not_issued_get_401() {
    let partner = Partner::start(config(), generated_results(3, 1)).unwrap();
    let client = client();
    let anonymous = results(&partner, &client, &[("limit", "10")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(anonymous).await["error"], "invalid_token");
    let forged = results(&partner, &client, &[("limit", "10")])
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(forged.headers().contains_key("www-authenticate"));
    let wrong_secret = client
        .post(partner.token_url())
        .basic_auth(CLIENT_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(wrong_secret).await["error"], "invalid_client");
    let log = partner.requests();
    assert_eq!(log[0].auth, AuthKind::None);
    assert_eq!(log[1].auth, AuthKind::Bearer);
    partner.stop().await;
}

#[tokio::test]
async fn expired_tokens_and_tokens_past_their_request_budget_get_401() {
    let mut config = config();
    config.oauth2.token_ttl_secs = 0;
    let partner = Partner::start(config, generated_results(3, 1)).unwrap();
    let client = client();
    let expired = token(&partner, &client).await;
    let response = results(&partner, &client, &[("limit", "10")])
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    partner.stop().await;

    let mut config = self::config();
    config.oauth2.revoke_after_requests = Some(2);
    config.oauth2.client_auth = ClientAuthStyle::Body;
    let partner = Partner::start(config, generated_results(3, 1)).unwrap();
    let ask = || {
        client.post(partner.token_url()).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
    };
    let issued = |body: Value| body["access_token"].as_str().unwrap().to_string();
    let first = issued(json(ask().send().await.unwrap()).await);
    for expected in [200, 200, 401] {
        let response = results(&partner, &client, &[("limit", "1")])
            .bearer_auth(&first)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
    }
    let second = issued(json(ask().send().await.unwrap()).await);
    let response = results(&partner, &client, &[("limit", "1")])
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    partner.revoke_tokens();
    let response = results(&partner, &client, &[("limit", "1")])
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    partner.stop().await;
}

#[tokio::test]
async fn the_api_key_is_required_on_the_token_request_and_on_every_results_request() {
    let partner = Partner::start(
        config().with_api_key("X-Api-Key", "k3y"),
        generated_results(3, 1),
    )
    .unwrap();
    let client = client();
    let missing = token_request(&partner, &client).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body = json(missing).await;
    assert_eq!(body["error"], "invalid_api_key");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("missing"));
    let wrong = token_request(&partner, &client)
        .header("X-Api-Key", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(json(wrong).await["error_description"]
        .as_str()
        .unwrap()
        .contains("wrong"));

    let granted = token_request(&partner, &client)
        .header("x-api-key", "k3y")
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::OK);
    let token = json(granted).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let without = results(&partner, &client, &[("limit", "10")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(without).await["error"], "invalid_api_key");
    let with = results(&partner, &client, &[("limit", "10")])
        .bearer_auth(&token)
        .header("X-Api-Key", "k3y")
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), StatusCode::OK);

    let sent: Vec<(bool, u16)> = partner
        .requests()
        .iter()
        .map(|r| (r.api_key, r.status))
        .collect();
    assert_eq!(
        sent,
        [
            (false, 401),
            (true, 401),
            (true, 200),
            (false, 401),
            (true, 200)
        ]
    );
    partner.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_served_then_the_page() {
    let partner = Partner::start(config(), generated_results(3, 1)).unwrap();
    partner.faults().on_path(
        "results",
        FaultAction::TooManyRequests {
            retry_after_secs: 2,
        },
        1,
    );
    let client = client();
    let token = token(&partner, &client).await;
    let busy = results(&partner, &client, &[("limit", "10")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.headers()["retry-after"], "2");
    let pages = pull(&partner, &client, &token, "10", None).await;
    assert_eq!(identifiers(&pages[0]), ["S1", "S2", "S3"]);
    let log: Vec<(u16, Option<FaultAction>)> = partner
        .requests()
        .into_iter()
        .filter(|r| r.is_results_request())
        .map(|r| (r.status, r.fault))
        .collect();
    assert_eq!(
        log,
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
    partner.stop().await;
}

#[tokio::test]
async fn scripted_500s_broken_bodies_and_a_result_missing_rit() {
    let partner = Partner::start(config(), generated_results(3, 1)).unwrap();
    let faults = partner.faults();
    faults.on_path("results", FaultAction::Status(500), 2);
    faults.on_path("results", FaultAction::MalformedJson, 1);
    faults.on_path("results", FaultAction::MissingField("rit".into()), 1);
    let client = client();
    let token = token(&partner, &client).await;
    let get = || {
        results(&partner, &client, &[("limit", "10")])
            .bearer_auth(&token)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            get().await.unwrap().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let broken = get().await.unwrap();
    assert_eq!(broken.status(), StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&broken.bytes().await.unwrap()).is_err());
    let missing = json(get().await.unwrap()).await;
    assert!(missing["results"][0]["result"].get("rit").is_none());
    assert!(missing["results"][1]["result"].get("rit").is_some());
    assert_eq!(faults.pending(), 0);
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    partner.stop().await;
}

#[test]
fn generated_results_are_deterministic_and_shaped_as_the_math_plan_reads_them() {
    let results = generated_results(200, 42);
    assert_eq!(results, generated_results(200, 42));
    assert_ne!(results, generated_results(200, 43));
    let start = at("2026-11-01T00:00:00Z");
    let mut test_ids = HashSet::new();
    for (i, (modified_at, result)) in results.iter().enumerate() {
        assert_eq!(*modified_at, start + Duration::seconds(i as i64));
        assert_eq!(result["student"]["identifier"], format!("S{}", i + 1));
        assert_eq!(result["subject"], "Mathematics");
        assert!((150..=250).contains(&result["rit"].as_i64().unwrap()));
        let goals = result["goals"].as_array().unwrap();
        let names: Vec<&str> = goals.iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(names, math_plan_goal_names());
        assert!(goals
            .iter()
            .all(|g| (150..=250).contains(&g["rit"].as_i64().unwrap())));
        assert!(test_ids.insert(result["test_id"].as_str().unwrap().to_string()));
    }
}

/// The goal area names of the built-in math plan, read from the file itself.
fn math_plan_goal_names() -> Vec<String> {
    let plan: toml::Table =
        toml::from_str(include_str!("../../../config/learning-plans/math.toml")).unwrap();
    plan["goal_areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|area| area["name"].as_str().unwrap().to_string())
        .collect()
}
