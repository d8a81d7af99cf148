use std::time::Duration;

use chrono::{NaiveDate, Utc};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use super::super::auth::percent_encode;
use super::*;

fn oauth2() -> ProviderAuth {
    ProviderAuth::Oauth2(Oauth2Settings::new(CLIENT_ID, CLIENT_SECRET))
}

fn oauth1(method: SignatureMethod) -> ProviderAuth {
    ProviderAuth::Oauth1(Oauth1Settings {
        consumer_key: CONSUMER_KEY.into(),
        consumer_secret: CONSUMER_SECRET.into(),
        method,
    })
}

async fn start(config: ProviderConfig) -> Provider {
    Provider::start(config, Roster::small_school())
        .await
        .unwrap()
}

async fn token(provider: &Provider, client: &Client) -> String {
    let response = client
        .post(provider.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    body["access_token"].as_str().unwrap().to_string()
}

async fn json(response: Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sourcedId"].as_str().unwrap().to_string())
        .collect()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn oauth2_pages_follow_links_in_sourced_id_order_with_exact_totals() {
    let provider = start(ProviderConfig::new(OneRosterVersion::V1_1, oauth2())).await;
    let client = client();
    let token = token(&provider, &client).await;
    let mut url = format!("{}/users?limit=4", provider.base_url());
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-total-count"), Some("6"));
        let link = header(&response, "link").unwrap().to_string();
        let body = json(response).await;
        seen.extend(ids(&body, "users"));
        pages += 1;
        let next = link
            .split(", ")
            .find(|l| l.ends_with("rel=\"next\""))
            .map(|l| l[1..l.find('>').unwrap()].to_string());
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, ["stu-1", "stu-2", "stu-3", "stu-4", "tch-1", "tch-2"]);
    let log = provider.requests();
    assert_eq!(log[0].path, "/token");
    assert_eq!(log[0].auth, AuthKind::Basic);
    assert_eq!(log[2].query, "limit=4&offset=4");
    assert!(log[1..]
        .iter()
        .all(|r| r.auth == AuthKind::Bearer && r.status == 200));
    provider.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_and_token_requests_with_wrong_credentials_are_refused() {
    let provider = start(ProviderConfig::new(OneRosterVersion::V1_2, oauth2())).await;
    let client = client();
    let users = format!("{}/users", provider.base_url());
    let anonymous = client.get(&users).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json(anonymous).await["imsx_CodeMinor"]["imsx_codeMinorField"][0]
            ["imsx_codeMinorFieldValue"],
        "unauthorisedrequest"
    );
    let forged = client
        .get(&users)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let attempts = [
        (
            "wrong secret",
            Some((CLIENT_ID, "wrong")),
            vec![("grant_type", "client_credentials")],
        ),
        (
            "no credentials",
            None,
            vec![("grant_type", "client_credentials")],
        ),
        (
            "credentials in the body when Basic is configured",
            None,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        ),
    ];
    for (name, basic, form) in attempts {
        let mut request = client.post(provider.token_url()).form(&form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(json(response).await["error"], "invalid_client", "{name}");
    }
    let encoded = client
        .post(provider.token_url())
        .basic_auth(CLIENT_ID, Some(percent_encode(CLIENT_SECRET)))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        encoded.status(),
        StatusCode::OK,
        "form-encoded Basic credentials"
    );
    let wrong_grant = client
        .post(provider.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_grant.status(), StatusCode::BAD_REQUEST);
    provider.stop().await;
}

#[tokio::test]
async fn body_client_auth_required_scope_and_revocation_after_n_requests() {
    let scope = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly";
    let mut settings = Oauth2Settings::new(CLIENT_ID, CLIENT_SECRET);
    settings.client_auth = ClientAuthStyle::Body;
    settings.required_scope = Some(scope.into());
    settings.revoke_after_requests = Some(2);
    let mut config = ProviderConfig::new(OneRosterVersion::V1_2, ProviderAuth::Oauth2(settings));
    config.bodiless_401 = true;
    let provider = start(config).await;
    let client = client();
    let ask = |scope: &'static str| {
        client.post(provider.token_url()).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", scope),
        ])
    };
    let missing_scope = ask("other").send().await.unwrap();
    assert_eq!(missing_scope.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(missing_scope).await["error"], "invalid_scope");
    let body = json(ask(scope).send().await.unwrap()).await;
    assert_eq!(body["scope"], scope);
    let token = body["access_token"].as_str().unwrap();
    let orgs = format!("{}/orgs", provider.base_url());
    for expected in [200, 200, 401] {
        let response = client.get(&orgs).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected);
        if expected == 401 {
            assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
            assert!(response.bytes().await.unwrap().is_empty(), "bodiless 401");
        }
    }
    let fresh = json(ask(scope).send().await.unwrap()).await;
    let fresh = fresh["access_token"].as_str().unwrap();
    let response = client.get(&orgs).bearer_auth(fresh).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    provider.revoke_tokens();
    let response = client.get(&orgs).bearer_auth(fresh).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    provider.stop().await;
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let mut settings = Oauth2Settings::new(CLIENT_ID, CLIENT_SECRET);
    settings.token_ttl_secs = 0;
    let provider = start(ProviderConfig::new(
        OneRosterVersion::V1_1,
        ProviderAuth::Oauth2(settings),
    ))
    .await;
    let client = client();
    let response = client
        .post(provider.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let token = json(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let response = client
        .get(format!("{}/orgs", provider.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    provider.stop().await;
}

/// A two-legged OAuth 1.0a signer, written here independently of the provider's verifier.
struct TestSigner {
    method: SignatureMethod,
    key: &'static str,
    secret: &'static str,
}

impl TestSigner {
    fn header(&self, url: &str, timestamp: i64, nonce: &str) -> String {
        fn enc(s: &str) -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        }
        let parsed = reqwest::Url::parse(url).unwrap();
        let method_name = match self.method {
            SignatureMethod::HmacSha256 => "HMAC-SHA256",
            SignatureMethod::HmacSha1 => "HMAC-SHA1",
        };
        let timestamp = timestamp.to_string();
        let oauth = [
            ("oauth_consumer_key", self.key),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", method_name),
            ("oauth_timestamp", timestamp.as_str()),
        ];
        let mut params: Vec<String> = parsed
            .query_pairs()
            .map(|(k, v)| format!("{}={}", enc(&k), enc(&v)))
            .chain(oauth.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))))
            .collect();
        params.sort();
        let base_uri = format!(
            "{}://{}:{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap(),
            parsed.port().unwrap(),
            parsed.path()
        );
        let base = format!("GET&{}&{}", enc(&base_uri), enc(&params.join("&")));
        let signature = hmac_b64(self.method, &format!("{}&", enc(self.secret)), &base);
        let mut header = String::from("OAuth ");
        for (k, v) in oauth
            .iter()
            .chain([("oauth_signature", signature.as_str())].iter())
        {
            header.push_str(&format!("{k}=\"{}\", ", enc(v)));
        }
        header.trim_end_matches(", ").to_string()
    }
}

#[tokio::test]
async fn oauth1_signed_requests_pass_and_tampered_stale_future_or_replayed_ones_do_not() {
    for method in [SignatureMethod::HmacSha256, SignatureMethod::HmacSha1] {
        let provider = start(ProviderConfig::new(OneRosterVersion::V1_1, oauth1(method))).await;
        let client = client();
        let signer = TestSigner {
            method,
            key: CONSUMER_KEY,
            secret: CONSUMER_SECRET,
        };
        let url = format!(
            "{}/users?limit=2&offset=0&filter={}",
            provider.base_url(),
            percent_encode("status='active' AND dateLastModified>'2026-01-01T00:00:00Z'")
        );
        let now = Utc::now().timestamp();
        let get = |url: String, auth: String| client.get(url).header("Authorization", auth).send();

        let ok = get(url.clone(), signer.header(&url, now, "n-1"))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "{method:?}");
        assert_eq!(ids(&json(ok).await, "users"), ["stu-1", "stu-2"]);

        let replay = get(url.clone(), signer.header(&url, now, "n-1"))
            .await
            .unwrap();
        let tampered_url = url.replace("limit=2", "limit=3");
        let tampered = get(tampered_url, signer.header(&url, now, "n-2"))
            .await
            .unwrap();
        let stale = get(url.clone(), signer.header(&url, now - 601, "n-3"))
            .await
            .unwrap();
        let future = get(url.clone(), signer.header(&url, now + 301, "n-4"))
            .await
            .unwrap();
        let wrong_secret = TestSigner {
            secret: "other",
            ..signer
        };
        let forged = get(url.clone(), wrong_secret.header(&url, now, "n-5"))
            .await
            .unwrap();
        for (name, response, reason) in [
            ("replayed nonce", replay, "already used"),
            ("tampered query", tampered, "does not match"),
            ("stale timestamp", stale, "old"),
            ("future timestamp", future, "future"),
            ("wrong secret", forged, "does not match"),
        ] {
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method:?} {name}"
            );
            let body = json(response).await;
            let text = body["imsx_description"].as_str().unwrap();
            assert!(text.contains(reason), "{method:?} {name}: {text}");
        }
        let other_method = TestSigner {
            method: match method {
                SignatureMethod::HmacSha256 => SignatureMethod::HmacSha1,
                SignatureMethod::HmacSha1 => SignatureMethod::HmacSha256,
            },
            ..signer
        };
        let response = get(url.clone(), other_method.header(&url, now, "n-6"))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method:?} other method"
        );
        // The same parameters may travel in the query string instead (RFC 5849 §3.5.3).
        let header = signer.header(&url, now, "n-8");
        let in_query: Vec<String> = header["OAuth ".len()..]
            .split(", ")
            .map(|p| p.replace('"', ""))
            .collect();
        let query_signed = format!("{url}&{}", in_query.join("&"));
        let response = client.get(query_signed).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{method:?} oauth_ in the query"
        );
        let timely = get(url.clone(), signer.header(&url, now - 590, "n-7"))
            .await
            .unwrap();
        assert_eq!(
            timely.status(),
            StatusCode::OK,
            "{method:?} within ten minutes"
        );
        assert!(provider
            .requests()
            .iter()
            .all(|r| r.auth == AuthKind::Oauth1));
        provider.stop().await;
    }
}

#[tokio::test]
async fn filters_see_changes_made_between_pulls_and_unknown_fields_are_refused() {
    let provider = start(ProviderConfig::new(
        OneRosterVersion::V1_1,
        ProviderAuth::None,
    ))
    .await;
    let client = client();
    let base = provider.base_url();
    let get = |path: String| client.get(format!("{base}/{path}")).send();
    let since = "2026-08-01T12:00:00Z";
    let delta = |op: &str| {
        format!(
            "users?filter={}",
            percent_encode(&format!("dateLastModified{op}'{since}'"))
        )
    };
    assert_eq!(
        ids(&json(get(delta(">")).await.unwrap()).await, "users").len(),
        0
    );
    assert_eq!(
        ids(&json(get(delta(">=")).await.unwrap()).await, "users").len(),
        6
    );

    let data = provider.data();
    assert!(data.mark_tobedeleted(Collection::Users, "stu-3"));
    let mut user = Roster::small_school().users.remove(0);
    user.base.sourced_id = "stu-5".into();
    data.upsert(user);
    assert!(data.remove(Collection::Users, "stu-4"));
    assert!(!data.remove(Collection::Users, "stu-404"));

    let changed = json(get(delta(">")).await.unwrap()).await;
    assert_eq!(ids(&changed, "users"), ["stu-3", "stu-5"]);
    assert_eq!(changed["users"][0]["status"], "tobedeleted");
    let stamped = changed["users"][0]["dateLastModified"].as_str().unwrap();
    assert!(stamped.ends_with('Z') && stamped > since, "{stamped}");

    let active = format!("users?filter={}", percent_encode("status='active'"));
    assert_eq!(
        ids(&json(get(active).await.unwrap()).await, "users"),
        ["stu-1", "stu-2", "stu-5", "tch-1", "tch-2"]
    );
    let both = format!(
        "users?filter={}",
        percent_encode(&format!(
            "status='tobedeleted' AND dateLastModified>'{since}'"
        ))
    );
    assert_eq!(
        ids(&json(get(both).await.unwrap()).await, "users"),
        ["stu-3"]
    );

    let unknown = get(format!(
        "users?filter={}",
        percent_encode("email='x@y.org'")
    ))
    .await
    .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(unknown).await["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"],
        "invalid_filter_field"
    );
    provider.stop().await;
}

#[tokio::test]
async fn clamped_pages_wrong_or_absent_totals_and_no_links() {
    let mut config = ProviderConfig::new(OneRosterVersion::V1_1, ProviderAuth::None);
    config.max_page_size = Some(2);
    config.total_count = TotalCount::Wrong(5);
    let provider = start(config).await;
    let client = client();
    let response = client
        .get(format!(
            "{}/enrollments?limit=1000&offset=6",
            provider.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "x-total-count"), Some("12"));
    let link = header(&response, "link").unwrap().to_string();
    assert!(link.contains("limit=2&offset=4>; rel=\"prev\""), "{link}");
    assert!(!link.contains("rel=\"next\""), "{link}");
    assert_eq!(ids(&json(response).await, "enrollments"), ["enr-07"]);
    provider.stop().await;

    let mut config = ProviderConfig::new(OneRosterVersion::V1_1, ProviderAuth::None);
    config.total_count = TotalCount::Absent;
    config.link_header = false;
    let provider = start(config).await;
    let response = client
        .get(format!("{}/enrollments", provider.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "x-total-count"), None);
    assert_eq!(header(&response, "link"), None);
    assert_eq!(ids(&json(response).await, "enrollments").len(), 7);
    provider.stop().await;
}

#[tokio::test]
async fn records_are_shaped_per_version_and_views_reuse_the_parent_envelope() {
    let client = client();
    let v11 = start(ProviderConfig::new(
        OneRosterVersion::V1_1,
        ProviderAuth::None,
    ))
    .await;
    let get = |base: String, path: &str| client.get(format!("{base}/{path}")).send();
    let teachers = json(get(v11.base_url(), "teachers").await.unwrap()).await;
    assert_eq!(ids(&teachers, "users"), ["tch-1", "tch-2"]);
    let user = &teachers["users"][0];
    assert_eq!(user["role"], "teacher");
    assert_eq!(user["enabledUser"], true);
    assert_eq!(user["orgs"][0]["sourcedId"], "org-school");
    assert_eq!(user["orgs"][0]["type"], "org");
    assert_eq!(
        user["orgs"][0]["href"],
        format!("{}/orgs/org-school", v11.base_url())
    );
    assert_eq!(user["dateLastModified"], "2026-08-01T12:00:00.000Z");
    let enrollment = json(get(v11.base_url(), "enrollments/enr-01").await.unwrap()).await;
    assert_eq!(enrollment["enrollment"]["primary"], true);
    let schools = json(get(v11.base_url(), "schools").await.unwrap()).await;
    assert_eq!(ids(&schools, "orgs"), ["org-school"]);
    assert_eq!(schools["orgs"][0]["parent"]["sourcedId"], "org-district");
    assert_eq!(schools["orgs"][0]["metadata"]["city"], "Small Town");
    let terms = json(get(v11.base_url(), "terms").await.unwrap()).await;
    assert_eq!(ids(&terms, "academicSessions"), ["as-term"]);
    assert_eq!(terms["academicSessions"][0]["schoolYear"], "2027");
    let class = json(get(v11.base_url(), "classes/cls-math-1").await.unwrap()).await;
    assert_eq!(class["class"]["terms"][0]["sourcedId"], "as-term");
    assert_eq!(class["class"]["periods"], serde_json::json!(["1"]));
    let missing = get(v11.base_url(), "users/nobody").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let not_a_student = get(v11.base_url(), "students/tch-1").await.unwrap();
    assert_eq!(not_a_student.status(), StatusCode::NOT_FOUND);
    v11.stop().await;

    let v12 = start(ProviderConfig::new(
        OneRosterVersion::V1_2,
        ProviderAuth::None,
    ))
    .await;
    assert!(v12.base_url().ends_with("/ims/oneroster/rostering/v1p2"));
    let students = json(get(v12.base_url(), "students").await.unwrap()).await;
    let user = &students["users"][0];
    assert!(user.get("role").is_none() && user.get("orgs").is_none());
    assert_eq!(user["roles"][0]["roleType"], "primary");
    assert_eq!(user["roles"][0]["role"], "student");
    assert_eq!(user["roles"][0]["org"]["sourcedId"], "org-school");
    assert_eq!(user["primaryOrg"]["sourcedId"], "org-school");
    assert_eq!(user["enabledUser"], "true");
    let enrollment = json(get(v12.base_url(), "enrollments/enr-02").await.unwrap()).await;
    assert_eq!(enrollment["enrollment"]["primary"], "false");
    let old_path = client
        .get(format!("{}/ims/oneroster/v1p1/users", v12.origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(old_path.status(), StatusCode::NOT_FOUND);
    v12.stop().await;

    let mut drifting = ProviderConfig::new(OneRosterVersion::V1_2, ProviderAuth::None);
    drifting.type_drift = true;
    let drifting = start(drifting).await;
    let user = json(get(drifting.base_url(), "users/stu-1").await.unwrap()).await;
    assert_eq!(user["user"]["enabledUser"], "TRUE");
    assert_eq!(user["user"]["grades"], "09");
    let session = json(
        get(drifting.base_url(), "academicSessions/as-sy")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(session["academicSession"]["schoolYear"], 2027);
    let course = json(get(drifting.base_url(), "courses/crs-math").await.unwrap()).await;
    assert_eq!(course["course"]["grades"], "09,10");
    drifting.stop().await;
}

#[tokio::test]
async fn a_scripted_429_and_500s_are_served_in_order_then_the_page() {
    let provider = start(ProviderConfig::new(
        OneRosterVersion::V1_1,
        ProviderAuth::None,
    ))
    .await;
    let faults = provider.faults();
    faults.on_path(
        "users",
        FaultAction::TooManyRequests {
            retry_after_secs: 2,
        },
        1,
    );
    faults.on_path("users", FaultAction::Status(500), 2);
    faults.on_path("users", FaultAction::Status(503), 1);
    let client = client();
    let users = format!("{}/users", provider.base_url());
    let first = client.get(&users).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&first, "retry-after"), Some("2"));
    let orgs = client
        .get(format!("{}/orgs", provider.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(orgs.status(), StatusCode::OK, "other paths are untouched");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.get(&users).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [500, 500, 503, 200]);
    assert_eq!(faults.pending(), 0);
    let log = provider.requests();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200, 500, 500, 503, 200]
    );
    assert_eq!(log[2].fault, Some(FaultAction::Status(500)));
    assert_eq!(log[5].fault, None);
    provider.stop().await;
}

#[tokio::test]
async fn content_faults_break_the_page_as_scripted() {
    let provider = start(ProviderConfig::new(
        OneRosterVersion::V1_1,
        ProviderAuth::None,
    ))
    .await;
    let faults = provider.faults();
    faults.push(
        FaultTrigger::Page {
            path: "users".into(),
            offset: 2,
        },
        FaultAction::MalformedJson,
        1,
    );
    faults.on_request(2, FaultAction::MissingField("sourcedId".into()));
    faults.on_request(3, FaultAction::DropConnection);
    faults.on_request(4, FaultAction::Delay(Duration::from_millis(1500)));
    let client = client();
    let base = provider.base_url();

    let page = client
        .get(format!("{base}/users?limit=2&offset=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let bytes = page.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());

    let missing = json(client.get(format!("{base}/orgs")).send().await.unwrap()).await;
    assert!(missing["orgs"][0].get("sourcedId").is_none());
    assert!(missing["orgs"][1].get("sourcedId").is_some());

    let dropped = match client.get(format!("{base}/orgs")).send().await {
        Ok(response) => response.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(dropped, "the connection is dropped mid-answer");

    let slow = client
        .get(format!("{base}/orgs"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(slow.is_err_and(|e| e.is_timeout()));
    provider.stop().await;
}

#[tokio::test]
async fn token_requests_can_be_refused_by_a_fault() {
    let provider = start(ProviderConfig::new(OneRosterVersion::V1_2, oauth2())).await;
    provider
        .faults()
        .on_path("token", FaultAction::Status(503), 1);
    let client = client();
    let refused = client
        .post(provider.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    token(&provider, &client).await;
    provider.stop().await;
}

#[tokio::test]
async fn a_generated_district_is_served_whole_and_agrees_with_its_csv_bundle() {
    let today = NaiveDate::from_ymd_opt(2026, 10, 15).unwrap();
    let roster = Roster::generated_as_of(600, 9, today).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let counts = crate::synthetic::write_bundle_as_of(
        &crate::synthetic::SyntheticDistrict {
            students: 600,
            seed: 9,
        },
        dir.path(),
        today,
    )
    .unwrap();
    let expected = [
        (Collection::Orgs, counts.orgs),
        (Collection::AcademicSessions, counts.academic_sessions),
        (Collection::Courses, counts.courses),
        (Collection::Classes, counts.classes),
        (Collection::Users, counts.users),
        (Collection::Enrollments, counts.enrollments),
    ];
    for (collection, rows) in expected {
        assert_eq!(roster.len(collection) as u64, rows, "{collection:?}");
    }
    let mut config = ProviderConfig::new(OneRosterVersion::V1_2, ProviderAuth::None);
    config.max_page_size = Some(1000);
    let provider = Provider::start(config, roster).await.unwrap();
    let client = client();
    let mut seen = 0;
    let mut offset = 0;
    loop {
        let url = format!(
            "{}/enrollments?limit=5000&offset={offset}",
            provider.base_url()
        );
        let response = client.get(url).send().await.unwrap();
        assert_eq!(
            header(&response, "x-total-count"),
            Some(counts.enrollments.to_string().as_str())
        );
        let page = ids(&json(response).await, "enrollments");
        assert!(page.windows(2).all(|w| w[0] < w[1]), "sorted by sourcedId");
        seen += page.len();
        if page.len() < 1000 {
            break;
        }
        offset += page.len();
    }
    assert_eq!(seen as u64, counts.enrollments);
    let students = client
        .get(format!("{}/students?limit=1", provider.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&students, "x-total-count"), Some("600"));
    let student = json(students).await;
    assert_eq!(
        student["users"][0]["roles"][0]["org"]["sourcedId"],
        "sch-0001"
    );
    assert_eq!(
        student["users"][0]["dateLastModified"],
        "2026-07-01T00:00:00.000Z"
    );
    provider.stop().await;
}

/// Timings for a large district; run with `--ignored --nocapture` (best in release).
#[tokio::test]
#[ignore = "slow: builds and serves a 100k-student district"]
async fn a_100k_student_district_is_served_fast() {
    let started = std::time::Instant::now();
    let roster = Roster::generated(100_000, 1).unwrap();
    let generated = started.elapsed();
    let started = std::time::Instant::now();
    let provider = Provider::start(
        ProviderConfig::new(OneRosterVersion::V1_2, ProviderAuth::None),
        roster,
    )
    .await
    .unwrap();
    let rendered = started.elapsed();
    let client = client();
    for filter in ["", "&filter=status%3D%27active%27"] {
        let started = std::time::Instant::now();
        let (mut offset, mut bytes) = (0, 0);
        let total = loop {
            let url = format!(
                "{}/enrollments?limit=10000&offset={offset}{filter}",
                provider.base_url()
            );
            let response = client.get(url).send().await.unwrap();
            let total: usize = header(&response, "x-total-count").unwrap().parse().unwrap();
            bytes += response.bytes().await.unwrap().len();
            offset += 10_000;
            if offset >= total {
                break total;
            }
        };
        eprintln!(
            "enrollments{filter}: {total} records, {} MB in {:?}",
            bytes / 1_000_000,
            started.elapsed()
        );
    }
    eprintln!("generated in {generated:?}, rendered in {rendered:?}");
    provider.stop().await;
}
