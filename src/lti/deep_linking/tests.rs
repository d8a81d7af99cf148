use super::*;

fn request(accept_types: &[&str], accept_multiple: Option<bool>) -> RequestSettings {
    RequestSettings {
        platform_id: 1,
        deployment_id: "d1".into(),
        return_url: "https://lms.example/deep_links".into(),
        accept_types: accept_types.iter().map(|t| t.to_string()).collect(),
        accept_multiple,
        data: Some(json!({"opaque": [1, "two"]})),
        jti: "j".into(),
        expires_at: Utc::now(),
    }
}

fn settings() -> LtiSettings {
    LtiSettings {
        public_url: Some("https://gateway.example".into()),
        target_link_uris: vec!["https://learn.example/lti".into()],
        ..LtiSettings::default()
    }
}

fn refused_at(raw: &str, request: &RequestSettings) -> String {
    match content_items(raw, request, &settings()) {
        Err(DeepLinkError::ContentItems { pointer, .. }) => pointer,
        other => panic!("{raw}: {other:?}"),
    }
}

#[test]
fn content_items_are_checked_against_what_the_request_accepts() {
    let any = request(&["ltiResourceLink", "link"], Some(true));
    let ok = r#"[{"type": "ltiResourceLink", "url": "https://learn.example/lti/plans/7", "title": "Plan"},
                 {"type": "link", "url": "https://elsewhere.example/"}]"#;
    assert_eq!(content_items(ok, &any, &settings()).unwrap().len(), 2);
    assert!(content_items("[]", &any, &settings()).unwrap().is_empty());
    let cases = [
        ("not json", ""),
        (r#"{"type": "link"}"#, ""),
        (r#"[3]"#, "/0"),
        (r#"[{"title": "x"}]"#, "/0/type"),
        (r#"[{"type": "video"}]"#, "/0/type"),
        (r#"[{"type": "html", "html": "<p>"}]"#, "/0/type"),
        (
            r#"[{"type": "ltiResourceLink", "url": "https://evil.example/lti"}]"#,
            "/0/url",
        ),
        (r#"[{"type": "ltiResourceLink", "url": 7}]"#, "/0/url"),
    ];
    for (raw, pointer) in cases {
        assert_eq!(refused_at(raw, &any), pointer, "{raw}");
    }
    let one = request(&[], Some(false));
    assert_eq!(
        refused_at(r#"[{"type": "link"}, {"type": "link"}]"#, &one),
        ""
    );
    let many = format!(
        "[{}]",
        vec![r#"{"type": "link"}"#; MAX_CONTENT_ITEMS + 1].join(",")
    );
    assert_eq!(refused_at(&many, &request(&[], None)), "");
    let huge = format!(
        r#"[{{"type": "link", "text": "{}"}}]"#,
        "x".repeat(MAX_CONTENT_ITEMS_BYTES)
    );
    assert_eq!(refused_at(&huge, &request(&[], None)), "");
}

fn platform() -> PlatformRow {
    PlatformRow {
        id: 1,
        district_id: 1,
        issuer: "https://lms.example".into(),
        client_id: "client-1".into(),
        auth_login_url: "https://lms.example/auth".into(),
        token_url: "https://lms.example/token".into(),
        jwks_url: "https://lms.example/jwks".into(),
        unknown_deployments: crate::lti::UnknownDeployments::Refuse,
        token_audience: None,
        deployments: Vec::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

#[test]
fn the_response_is_signed_by_the_tool_for_the_platform_and_echoes_data_verbatim() {
    let now = Utc::now();
    let keys = ToolKeySet::generate(now).unwrap();
    let form = DeepLinkForm {
        msg: Some("Added".into()),
        ..DeepLinkForm::default()
    };
    let items = vec![json!({"type": "link", "url": "https://x.example/"})];
    let jwt = response_jwt(&keys, &platform(), &request(&[], None), items, &form, now).unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(keys.current().public_jwk()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://lms.example"]);
    validation.set_issuer(&["client-1"]);
    let claims =
        jsonwebtoken::decode::<Value>(&jwt, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
            .unwrap()
            .claims;
    let lti = "https://purl.imsglobal.org/spec/lti/claim/";
    let dl = "https://purl.imsglobal.org/spec/lti-dl/claim/";
    assert_eq!(
        claims[format!("{lti}message_type")],
        "LtiDeepLinkingResponse"
    );
    assert_eq!(claims[format!("{lti}version")], "1.3.0");
    assert_eq!(claims[format!("{lti}deployment_id")], "d1");
    assert_eq!(claims[format!("{dl}data")], json!({"opaque": [1, "two"]}));
    assert_eq!(claims[format!("{dl}msg")], "Added");
    assert_eq!(claims[format!("{dl}content_items")][0]["type"], "link");
    assert!(claims["nonce"].as_str().is_some_and(|n| !n.is_empty()));
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(lifetime > 0 && lifetime <= 300);
}

#[test]
fn only_a_live_deep_linking_session_of_this_gateway_is_read() {
    let now = Utc::now();
    let keys = ToolKeySet::generate(now).unwrap();
    let sign = |claims: Value, keys: &ToolKeySet| {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some(keys.current().kid().to_string());
        jsonwebtoken::encode(&header, &claims, &keys.current().encoding_key()).unwrap()
    };
    let claims = |exp: i64, deep_linking: Value| {
        json!({
            "iss": "https://gateway.example", "aud": SESSION_AUDIENCE, "exp": exp, "iat": now.timestamp(), "jti": "j-1",
            "rostergate": {"platform": 3, "deployment_id": "d1", "deep_linking": deep_linking}
        })
    };
    let dl = json!({"return_url": "https://lms.example/dl", "accept_types": ["link"], "accept_multiple": false, "data": "xyz"});
    let good = sign(claims(now.timestamp() + 60, dl.clone()), &keys);
    let read = read_session(&keys, "https://gateway.example/", &good).unwrap();
    assert_eq!(read.platform_id, 3);
    assert_eq!(read.return_url, "https://lms.example/dl");
    assert_eq!(read.data, Some(json!("xyz")));
    assert_eq!(read.accept_multiple, Some(false));
    let expired = sign(claims(now.timestamp() - 5, dl.clone()), &keys);
    assert!(matches!(
        read_session(&keys, "https://gateway.example", &expired),
        Err(DeepLinkError::InvalidSession(_))
    ));
    let other_keys = ToolKeySet::generate(now).unwrap();
    let forged = sign(claims(now.timestamp() + 60, dl.clone()), &other_keys);
    assert!(matches!(
        read_session(&keys, "https://gateway.example", &forged),
        Err(DeepLinkError::InvalidSession(_))
    ));
    let resource_link = sign(claims(now.timestamp() + 60, Value::Null), &keys);
    assert!(matches!(
        read_session(&keys, "https://gateway.example", &resource_link),
        Err(DeepLinkError::NotDeepLinking)
    ));
    assert!(matches!(
        read_session(&keys, "https://gateway.example", "not.a.jwt"),
        Err(DeepLinkError::InvalidSession(_))
    ));
}
