//! Tool keys: thumbprint kids, signing verified through the published JWK, rotation, storage
//! and redaction.

use chrono::{Duration, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

use super::*;

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, hour, 0, 0).unwrap()
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    // RFC 7638 §3.1.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_\
             BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_\
             FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4\
             vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    assert_eq!(
        rsa_thumbprint(n, "AQAB"),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );

    let key = ToolKey::generate().unwrap();
    let jwk = key.public_jwk();
    assert_eq!(
        key.kid(),
        rsa_thumbprint(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
    );
    assert_eq!(jwk["kid"], key.kid());
}

#[test]
fn public_jwk_names_an_rs256_signing_key() {
    let key = ToolKey::generate().unwrap();
    let jwk = key.public_jwk();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["e"], "AQAB");
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256, "RSA 2048");
    let members: Vec<&String> = jwk.as_object().unwrap().keys().collect();
    assert_eq!(members.len(), 6, "{members:?}: no private members");
}

#[test]
fn a_token_signed_with_encoding_key_verifies_with_the_public_jwk() {
    let key = ToolKey::generate().unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid().to_string());
    let claims = serde_json::json!({
        "iss": "rostergate",
        "sub": "client-1",
        "exp": (Utc::now() + Duration::minutes(5)).timestamp(),
    });
    let token = jsonwebtoken::encode(&header, &claims, &key.encoding_key()).unwrap();

    let jwk = key.public_jwk();
    let decoding =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
    assert_eq!(data.claims["sub"], "client-1");
    assert_eq!(data.header.kid.as_deref(), Some(key.kid()));

    // Another key's public half does not verify it.
    let other = ToolKey::generate().unwrap().public_jwk();
    let wrong = DecodingKey::from_rsa_components(
        other["n"].as_str().unwrap(),
        other["e"].as_str().unwrap(),
    )
    .unwrap();
    assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &wrong, &validation).is_err());
}

#[test]
fn from_bytes_of_to_bytes_is_the_same_key() {
    let key = ToolKey::generate_at(at(3)).unwrap();
    let again = ToolKey::from_bytes(&key.to_bytes(), key.created_at()).unwrap();
    assert_eq!(again.kid(), key.kid());
    assert_eq!(again.created_at(), at(3));
    assert_eq!(again.public_jwk(), key.public_jwk());
    assert_eq!(again.to_bytes(), key.to_bytes());
    // And it signs as the original.
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &serde_json::json!({"exp": (Utc::now() + Duration::minutes(1)).timestamp()}),
        &again.encoding_key(),
    )
    .unwrap();
    let jwk = key.public_jwk();
    let decoding =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &decoding,
        &Validation::new(Algorithm::RS256),
    )
    .unwrap();
}

#[test]
fn malformed_bytes_are_refused() {
    let der = ToolKey::generate().unwrap().to_bytes();
    for bytes in [&b""[..], &b"not a key"[..], &der[..der.len() / 2]] {
        assert_eq!(
            ToolKey::from_bytes(bytes, at(0)).unwrap_err(),
            ToolKeyError::Malformed
        );
    }
}

#[test]
fn debug_output_shows_no_key_material() {
    let key = ToolKey::generate().unwrap();
    let set = ToolKeySet::from_keys(vec![key.clone(), ToolKey::generate().unwrap()]).unwrap();
    let jwk = key.public_jwk();
    let der_b64 = base64::engine::general_purpose::STANDARD.encode(key.to_bytes());
    for text in [format!("{key:?}"), format!("{set:?}"), format!("{key:#?}")] {
        assert!(text.contains(key.kid()), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains(&der_b64[..40]), "{text}");
        assert!(!text.contains(&jwk["n"].as_str().unwrap()[..40]), "{text}");
        assert!(!text.contains("private_pkcs8_der"), "{text}");
        // No byte lists either.
        assert!(!text.contains("[48, "), "{text}");
    }
}

#[test]
fn a_fresh_set_publishes_two_distinct_keys_and_signs_with_the_first() {
    let set = ToolKeySet::generate(at(1)).unwrap();
    assert_eq!(set.keys().len(), 2);
    assert_ne!(set.current().kid(), set.next().kid());
    let jwks = set.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [set.current().kid(), set.next().kid()]);
}

#[test]
fn rotation_promotes_next_drops_the_oldest_and_keeps_two_live_keys() {
    let mut set = ToolKeySet::generate(at(1)).unwrap();
    let first = set.current().kid().to_string();
    let second = set.next().kid().to_string();

    set.rotate(at(2)).unwrap();
    assert_eq!(set.keys().len(), 2);
    assert_eq!(set.current().kid(), second, "the old next signs now");
    assert_ne!(set.next().kid(), second);
    assert_ne!(set.next().kid(), first);
    assert_eq!(set.next().created_at(), at(2));
    let published = set.jwks().to_string();
    assert!(!published.contains(&first), "the retired key is withdrawn");
    assert!(published.contains(&second));
    assert!(published.contains(set.next().kid()));

    let third = set.next().kid().to_string();
    set.rotate(at(3)).unwrap();
    assert_eq!(set.current().kid(), third);
    assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 2);
}

#[test]
fn a_stored_set_needs_two_distinct_keys() {
    let key = ToolKey::generate().unwrap();
    assert!(matches!(
        ToolKeySet::from_keys(vec![key.clone()]),
        Err(ToolKeyError::BadSet(_))
    ));
    assert!(matches!(
        ToolKeySet::from_keys(vec![key.clone(), key.clone()]),
        Err(ToolKeyError::BadSet(_))
    ));
    let other = ToolKey::generate().unwrap();
    let set = ToolKeySet::from_keys(vec![key.clone(), other.clone()]).unwrap();
    assert_eq!(set.current().kid(), key.kid());
    assert_eq!(set.next().kid(), other.kid());
}

#[test]
fn jsonwebtoken_signs_with_pkcs1_not_pkcs8() {
    // Why encoding_key converts: the aws-lc backend reads the DER as an RSAPrivateKey.
    let key = ToolKey::generate().unwrap();
    let header = Header::new(Algorithm::RS256);
    let claims = serde_json::json!({"sub": "x"});
    let as_pkcs8 = EncodingKey::from_rsa_der(&key.to_bytes());
    assert!(jsonwebtoken::encode(&header, &claims, &as_pkcs8).is_err());
    assert!(jsonwebtoken::encode(&header, &claims, &key.encoding_key()).is_ok());
}
