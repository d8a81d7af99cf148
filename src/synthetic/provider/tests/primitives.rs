use chrono::Utc;

use super::super::auth::{base_string, percent_encode, query_pairs, signing_key};
use super::super::{faults, filter, paging};
use super::*;

#[test]
fn oauth1_base_strings_and_signatures_match_the_published_examples() {
    struct Vector {
        name: &'static str,
        method: &'static str,
        uri: &'static str,
        query: &'static str,
        body: &'static str,
        oauth: &'static [(&'static str, &'static str)],
        consumer_secret: &'static str,
        token_secret: &'static str,
        base: &'static str,
        signature: &'static str,
    }
    let vectors = [
        Vector {
            name: "RFC 5849 §3.4.1.1 (with erratum 2550)",
            method: "POST",
            uri: "http://EXAMPLE.COM:80/request",
            query: "b5=%3D%253D&a3=a&c%40=&a2=r%20b",
            body: "c2&a3=2+q",
            oauth: &[
                ("oauth_consumer_key", "9djdj82h48djs9d2"),
                ("oauth_token", "kkk9d7dh3k39sjv7"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "137131201"),
                ("oauth_nonce", "7d8f3e4a"),
            ],
            consumer_secret: "j49sk3j29djd",
            token_secret: "dh893hdasih9",
            base: "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7",
            signature: "r6/TJjbCOr97/+UU0NsvSne7s5g=",
        },
        Vector {
            name: "OAuth Core 1.0 appendix A.5.1",
            method: "GET",
            uri: "http://photos.example.net/photos",
            query: "file=vacation.jpg&size=original",
            body: "",
            oauth: &[
                ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
                ("oauth_token", "nnch734d00sl2jdk"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "1191242096"),
                ("oauth_nonce", "kllo9940pd9333jh"),
                ("oauth_version", "1.0"),
            ],
            consumer_secret: "kd94hf93k423kf44",
            token_secret: "pfkkdhi9sl3r4s00",
            base: "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3Dkllo9940pd9333jh%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1191242096%26oauth_token%3Dnnch734d00sl2jdk%26oauth_version%3D1.0%26size%3Doriginal",
            signature: "tR3+Ty81lMeYAr/Fid0kMTYa/WM=",
        },
    ];
    for v in vectors {
        let mut params = query_pairs(v.query).unwrap();
        params.extend(query_pairs(v.body).unwrap());
        params.extend(v.oauth.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let base = base_string(v.method, v.uri, &params);
        assert_eq!(base, v.base, "{}", v.name);
        let key = signing_key(v.consumer_secret, v.token_secret);
        assert_eq!(
            hmac_b64(SignatureMethod::HmacSha1, &key, &base),
            v.signature,
            "{}",
            v.name
        );
    }
}

#[test]
fn percent_encoding_keeps_only_unreserved_characters() {
    for (raw, encoded) in [
        ("A-Za-z0-9-._~", "A-Za-z0-9-._~"),
        ("!*'()", "%21%2A%27%28%29"),
        ("a b+c", "a%20b%2Bc"),
        (
            "dateLastModified>'2026-01-01T00:00:00Z'",
            "dateLastModified%3E%272026-01-01T00%3A00%3A00Z%27",
        ),
        ("é", "%C3%A9"),
    ] {
        assert_eq!(percent_encode(raw), encoded, "{raw}");
    }
}

// ---- filters and paging, pure ----

#[test]
fn filters_parse_the_documented_forms_and_refuse_the_rest() {
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    };
    let record = filter::Fields {
        sourced_id: "stu-2",
        status: "active",
        modified: at("2026-09-01T10:00:00Z"),
    };
    for (text, expected) in [
        ("dateLastModified>'2026-08-31T00:00:00Z'", true),
        ("dateLastModified>'2026-09-01T10:00:00Z'", false),
        ("dateLastModified>='2026-09-01T10:00:00Z'", true),
        ("dateLastModified<'2026-09-01T10:00:00.001Z'", true),
        ("status='active'", true),
        ("status='tobedeleted'", false),
        ("status!='tobedeleted'", true),
        (
            "status='active' AND dateLastModified>'2026-08-31T00:00:00Z'",
            true,
        ),
        (
            "status='tobedeleted' AND dateLastModified>'2026-08-31T00:00:00Z'",
            false,
        ),
        ("status='tobedeleted' OR sourcedId='stu-2'", true),
        ("sourcedId~'stu'", true),
    ] {
        let filter = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(filter.matches(&record), expected, "{text}");
    }
    for (text, code) in [
        ("email='a@b.org'", "invalid_filter_field"),
        (
            "givenName='Ada' AND status='active'",
            "invalid_filter_field",
        ),
        ("status=active", "invaliddata"),
        ("status", "invaliddata"),
        ("dateLastModified>'yesterday'", "invaliddata"),
        ("='x'", "invaliddata"),
    ] {
        let err = Filter::parse(text).unwrap_err();
        assert_eq!(err.code_minor(), code, "{text}: {err}");
    }
}

#[test]
fn link_headers_keep_the_other_parameters_and_use_the_clamped_limit() {
    let pairs = |q: &str| query_pairs(q).unwrap();
    let url = "http://h/ims/oneroster/v1p1/users";
    let q = "filter=status%3D%27active%27&limit=10&offset=10";
    let paging = paging::Paging::from_query(&pairs(q), Some(4)).unwrap();
    assert_eq!((paging.limit, paging.offset), (4, 10));
    assert_eq!(
        paging.link_header(url, q, 22),
        "<http://h/ims/oneroster/v1p1/users?filter=status%3D%27active%27&limit=4&offset=0>; rel=\"first\", \
         <http://h/ims/oneroster/v1p1/users?filter=status%3D%27active%27&limit=4&offset=6>; rel=\"prev\", \
         <http://h/ims/oneroster/v1p1/users?filter=status%3D%27active%27&limit=4&offset=14>; rel=\"next\", \
         <http://h/ims/oneroster/v1p1/users?filter=status%3D%27active%27&limit=4&offset=20>; rel=\"last\""
    );
    let first = paging::Paging::from_query(&[], None).unwrap();
    assert_eq!((first.limit, first.offset), (DEFAULT_LIMIT, 0));
    assert_eq!(
        first.link_header(url, "", 0),
        format!(
            "<{url}?limit=100&offset=0>; rel=\"first\", <{url}?limit=100&offset=0>; rel=\"last\""
        )
    );
    for q in ["limit=0", "limit=-1", "limit=ten", "offset=-5"] {
        assert!(paging::Paging::from_query(&pairs(q), None).is_err(), "{q}");
    }
}

#[test]
fn faults_are_consumed_in_the_order_scripted() {
    let faults = FaultHandle::default();
    faults.on_path("users", FaultAction::Status(500), 2);
    faults.next(FaultAction::TooManyRequests {
        retry_after_secs: 3,
    });
    faults.on_request(7, FaultAction::MalformedJson);
    let probe = |path: &'static str, number| faults::FaultProbe {
        path,
        offset: 0,
        number,
    };
    assert_eq!(faults.pending(), 4);
    assert_eq!(faults.take(&probe("token", None)), None);
    assert_eq!(
        faults.take(&probe("orgs", Some(1))),
        Some(FaultAction::TooManyRequests {
            retry_after_secs: 3
        })
    );
    assert_eq!(
        faults.take(&probe("users", Some(2))),
        Some(FaultAction::Status(500))
    );
    assert_eq!(faults.take(&probe("orgs", Some(3))), None);
    assert_eq!(
        faults.take(&probe("users", Some(4))),
        Some(FaultAction::Status(500))
    );
    assert_eq!(faults.take(&probe("users", Some(5))), None);
    assert_eq!(
        faults.take(&probe("users", Some(7))),
        Some(FaultAction::MalformedJson)
    );
    assert_eq!(faults.pending(), 0);
}
