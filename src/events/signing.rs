//! Standard Webhooks signatures: `whsec_` secrets, `v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, and their verification against a set of live
//! secrets (several during a rotation) within a timestamp tolerance.
//!
//! Used both ways: rosters pushed to the gateway are verified, events the gateway delivers are
//! signed. Nothing here logs or returns a secret or a computed signature.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::config::Secret;

/// The headers of a signed request, by their Standard Webhooks names.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// How far a timestamp may be from now, either way, unless the caller chooses otherwise.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const SECRET_PREFIX: &str = "whsec_";
/// The random bytes of a secret the gateway makes.
const GENERATED_KEY_LEN: usize = 32;
const MIN_KEY_LEN: usize = 24;
const MAX_KEY_LEN: usize = 64;
const SCHEME_V1: &str = "v1";
/// HMAC-SHA256 output: a `v1` signature of any other length cannot match.
const V1_SIGNATURE_LEN: usize = 32;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A symmetric signing key: 24 to 64 bytes, written `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// Why a text is not a `whsec_` secret. None of these carries the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretParseError {
    #[error("a webhook secret starts with \"whsec_\"")]
    MissingPrefix,
    #[error("a webhook secret is \"whsec_\" and standard base64; this one does not decode")]
    NotBase64,
    #[error("a webhook secret holds 24 to 64 bytes; this one holds {0}")]
    WrongLength(usize),
}

impl WebhookSecret {
    /// A new secret of 32 random bytes.
    pub fn generate() -> WebhookSecret {
        let mut key = vec![0u8; GENERATED_KEY_LEN];
        aws_lc_rs::rand::fill(&mut key).expect("the system random source works");
        WebhookSecret { key }
    }

    /// Reads `whsec_<base64>`; surrounding whitespace (a pasted newline) is ignored.
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretParseError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretParseError::MissingPrefix)?;
        let key = b64()
            .decode(encoded)
            .map_err(|_| SecretParseError::NotBase64)?;
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(SecretParseError::WrongLength(key.len()));
        }
        Ok(WebhookSecret { key })
    }

    /// The `whsec_…` text, to show once or to seal.
    pub fn to_text(&self) -> Secret {
        Secret::new(format!("{SECRET_PREFIX}{}", b64().encode(&self.key)))
    }

    fn tag(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> hmac::Tag {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(msg_id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        ctx.sign()
    }
}

/// The `webhook-signature` value of one secret: `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "{SCHEME_V1},{}",
        b64().encode(secret.tag(msg_id, timestamp, body))
    )
}

/// The `webhook-signature` value of several secrets (a rotation), space-separated: a receiver
/// that knows any one of them accepts it.
pub fn sign_all(secrets: &[WebhookSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three headers of a received request, as sent (`None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Why a request's signature is refused. Messages name the header and the problem, never a
/// secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing or empty")]
    MissingHeader(&'static str),
    #[error("the webhook-timestamp header is not a whole number of seconds since 1970")]
    MalformedTimestamp,
    #[error("the webhook-timestamp is {age_secs} s old: more than the {tolerance_secs} s allowed")]
    TooOld { age_secs: i64, tolerance_secs: u64 },
    #[error(
        "the webhook-timestamp is {ahead_secs} s in the future: more than the {tolerance_secs} s allowed"
    )]
    TooNew {
        ahead_secs: i64,
        tolerance_secs: u64,
    },
    #[error("the webhook-signature header holds no v1 signature (only other versions or malformed entries)")]
    UnsupportedVersion,
    #[error("no v1 signature in the webhook-signature header matches a live secret")]
    NoMatchingSignature,
}

fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, VerifyError> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

/// Unix seconds, digits only: no sign, no fraction, no exponent.
fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    text.parse().map_err(|_| VerifyError::MalformedTimestamp)
}

fn check_time(timestamp: i64, now: DateTime<Utc>, tolerance: Duration) -> Result<(), VerifyError> {
    let tolerance_secs = tolerance.as_secs();
    let limit = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    let age = now.timestamp().saturating_sub(timestamp);
    if age > limit {
        Err(VerifyError::TooOld {
            age_secs: age,
            tolerance_secs,
        })
    } else if -age > limit {
        Err(VerifyError::TooNew {
            ahead_secs: -age,
            tolerance_secs,
        })
    } else {
        Ok(())
    }
}

/// [`verify_within`] the [`DEFAULT_TOLERANCE`] of ±5 minutes.
pub fn verify(
    secrets: &[WebhookSecret],
    headers: &SignedHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    verify_within(secrets, headers, body, now, DEFAULT_TOLERANCE)
}

/// Accepts a request when its timestamp is within `tolerance` of `now` and any `v1` entry of its
/// signature header is the signature of any of `secrets` (no secrets: nothing matches).
pub fn verify_within(
    secrets: &[WebhookSecret],
    headers: &SignedHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let id = present(headers.id, HEADER_ID)?;
    let timestamp = parse_timestamp(present(headers.timestamp, HEADER_TIMESTAMP)?)?;
    let signature = present(headers.signature, HEADER_SIGNATURE)?;
    check_time(timestamp, now, tolerance)?;

    let candidates: Vec<&str> = signature
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(scheme, _)| *scheme == SCHEME_V1)
        .map(|(_, value)| value)
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::UnsupportedVersion);
    }
    let expected: Vec<hmac::Tag> = secrets.iter().map(|s| s.tag(id, timestamp, body)).collect();
    let matched = candidates.iter().any(|candidate| {
        // Undecodable or wrongly sized entries are simply not matches; the length check comes
        // before any byte comparison, so an empty or truncated entry can never pass.
        let Ok(given) = b64().decode(candidate) else {
            return false;
        };
        given.len() == V1_SIGNATURE_LEN
            && expected
                .iter()
                .any(|tag| crate::auth::secrets_equal(&given, tag.as_ref()))
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks libraries' own test vector (e.g. `libraries/php/tests/WebhookTest.php`
    /// in standard-webhooks/standard-webhooks).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1614265330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn vector_secret() -> WebhookSecret {
        WebhookSecret::parse(VECTOR_SECRET).unwrap()
    }

    fn at(timestamp: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(timestamp, 0).unwrap()
    }

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            id: Some(id),
            timestamp: Some(timestamp),
            signature: Some(signature),
        }
    }

    #[test]
    fn signing_reproduces_the_standard_webhooks_test_vectors() {
        assert_eq!(
            sign(&vector_secret(), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
        // The reference Rust library's vector: another secret, id, time and body.
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn the_test_vector_verifies_at_its_own_time() {
        let ts = VECTOR_TIMESTAMP.to_string();
        let h = headers(VECTOR_ID, &ts, VECTOR_SIGNATURE);
        assert_eq!(
            verify(&[vector_secret()], &h, VECTOR_BODY, at(VECTOR_TIMESTAMP)),
            Ok(())
        );
    }

    #[test]
    fn signatures_are_checked_by_kind_of_fault() {
        let secret = vector_secret();
        let other = WebhookSecret::generate();
        let ts = VECTOR_TIMESTAMP.to_string();
        let good = VECTOR_SIGNATURE;
        let truncated = &good[..good.len() - 4];
        let wrong = sign(&other, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        let several = format!("v1,bm9wZQ== v1a,aGVsbG8= {wrong} {good}");
        let v2 = good.replacen("v1,", "v2,", 1);
        let v1a = good.replacen("v1,", "v1a,", 1);
        let no_comma = good.replacen("v1,", "v1", 1);
        let cases: Vec<(&str, SignedHeaders<'_>, Result<(), VerifyError>)> = vec![
            ("valid", headers(VECTOR_ID, &ts, good), Ok(())),
            (
                "several entries, one valid",
                headers(VECTOR_ID, &ts, &several),
                Ok(()),
            ),
            (
                "no signature header",
                SignedHeaders {
                    signature: None,
                    ..headers(VECTOR_ID, &ts, good)
                },
                Err(VerifyError::MissingHeader(HEADER_SIGNATURE)),
            ),
            (
                "empty signature header",
                headers(VECTOR_ID, &ts, ""),
                Err(VerifyError::MissingHeader(HEADER_SIGNATURE)),
            ),
            (
                "no id header",
                SignedHeaders {
                    id: None,
                    ..headers(VECTOR_ID, &ts, good)
                },
                Err(VerifyError::MissingHeader(HEADER_ID)),
            ),
            (
                "no timestamp header",
                SignedHeaders {
                    timestamp: None,
                    ..headers(VECTOR_ID, &ts, good)
                },
                Err(VerifyError::MissingHeader(HEADER_TIMESTAMP)),
            ),
            (
                "v1, with an empty signature",
                headers(VECTOR_ID, &ts, "v1,"),
                Err(VerifyError::NoMatchingSignature),
            ),
            (
                "v1, among other empty entries",
                headers(VECTOR_ID, &ts, "v1, v1, v1,"),
                Err(VerifyError::NoMatchingSignature),
            ),
            (
                "truncated signature",
                headers(VECTOR_ID, &ts, truncated),
                Err(VerifyError::NoMatchingSignature),
            ),
            (
                "one character short",
                headers(VECTOR_ID, &ts, &good[..good.len() - 1]),
                Err(VerifyError::NoMatchingSignature),
            ),
            (
                "another secret's signature",
                headers(VECTOR_ID, &ts, &wrong),
                Err(VerifyError::NoMatchingSignature),
            ),
            (
                "not base64",
                headers(VECTOR_ID, &ts, "v1,!!!!"),
                Err(VerifyError::NoMatchingSignature),
            ),
            (
                "another id",
                headers("msg_other", &ts, good),
                Err(VerifyError::NoMatchingSignature),
            ),
            (
                "the right bytes under version v2",
                headers(VECTOR_ID, &ts, &v2),
                Err(VerifyError::UnsupportedVersion),
            ),
            (
                "the right bytes under the asymmetric v1a",
                headers(VECTOR_ID, &ts, &v1a),
                Err(VerifyError::UnsupportedVersion),
            ),
            (
                "no comma after the version",
                headers(VECTOR_ID, &ts, &no_comma),
                Err(VerifyError::UnsupportedVersion),
            ),
            (
                "a bare signature without a version",
                headers(VECTOR_ID, &ts, &good[3..]),
                Err(VerifyError::UnsupportedVersion),
            ),
        ];
        for (what, h, want) in cases {
            assert_eq!(
                verify(
                    std::slice::from_ref(&secret),
                    &h,
                    VECTOR_BODY,
                    at(VECTOR_TIMESTAMP)
                ),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn a_body_changed_by_one_byte_is_refused() {
        let ts = VECTOR_TIMESTAMP.to_string();
        let h = headers(VECTOR_ID, &ts, VECTOR_SIGNATURE);
        for i in 0..VECTOR_BODY.len() {
            let mut body = VECTOR_BODY.to_vec();
            body[i] ^= 0x01;
            assert_eq!(
                verify(&[vector_secret()], &h, &body, at(VECTOR_TIMESTAMP)),
                Err(VerifyError::NoMatchingSignature),
                "byte {i}"
            );
        }
        let mut longer = VECTOR_BODY.to_vec();
        longer.push(b'\n');
        assert_eq!(
            verify(&[vector_secret()], &h, &longer, at(VECTOR_TIMESTAMP)),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn during_a_rotation_old_and_new_secrets_both_verify() {
        let old = WebhookSecret::generate();
        let new = WebhookSecret::generate();
        let retired = WebhookSecret::generate();
        let live = [old.clone(), new.clone()];
        let now = at(1_700_000_000);
        let ts = now.timestamp().to_string();
        for signer in [&old, &new] {
            let sig = sign(signer, "msg_1", now.timestamp(), b"{}");
            assert_eq!(
                verify(&live, &headers("msg_1", &ts, &sig), b"{}", now),
                Ok(())
            );
        }
        // A sender that signs with both, as the gateway does while rotating its own secrets.
        let both = sign_all(&[old, new], "msg_1", now.timestamp(), b"{}");
        assert_eq!(both.split(' ').count(), 2);
        assert_eq!(
            verify(&live, &headers("msg_1", &ts, &both), b"{}", now),
            Ok(())
        );
        let sig = sign(&retired, "msg_1", now.timestamp(), b"{}");
        assert_eq!(
            verify(&live, &headers("msg_1", &ts, &sig), b"{}", now),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&[], &headers("msg_1", &ts, &sig), b"{}", now),
            Err(VerifyError::NoMatchingSignature),
            "no live secret: nothing verifies"
        );
    }

    #[test]
    fn timestamps_must_be_within_the_tolerance_either_way() {
        let secret = WebhookSecret::generate();
        let now = at(1_700_000_000);
        let check = |offset: i64, tolerance: Duration| {
            let ts = now.timestamp() + offset;
            let sig = sign(&secret, "msg_1", ts, b"{}");
            let text = ts.to_string();
            verify_within(
                std::slice::from_ref(&secret),
                &headers("msg_1", &text, &sig),
                b"{}",
                now,
                tolerance,
            )
        };
        let five_min = DEFAULT_TOLERANCE;
        assert_eq!(check(0, five_min), Ok(()));
        assert_eq!(check(-300, five_min), Ok(()));
        assert_eq!(check(300, five_min), Ok(()));
        assert_eq!(
            check(-301, five_min),
            Err(VerifyError::TooOld {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check(301, five_min),
            Err(VerifyError::TooNew {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check(-86_400, five_min).unwrap_err().to_string(),
            "the webhook-timestamp is 86400 s old: more than the 300 s allowed"
        );
        // A configured tolerance replaces the default.
        assert_eq!(check(-301, Duration::from_secs(600)), Ok(()));
        assert!(matches!(
            check(-31, Duration::from_secs(30)),
            Err(VerifyError::TooOld { .. })
        ));
    }

    #[test]
    fn malformed_timestamps_are_refused_before_any_signature_check() {
        let secret = vector_secret();
        for ts in [
            "-1614265330",
            "+1614265330",
            "1614265330.0",
            "1.6e9",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(
                verify(
                    std::slice::from_ref(&secret),
                    &headers(VECTOR_ID, ts, VECTOR_SIGNATURE),
                    VECTOR_BODY,
                    at(VECTOR_TIMESTAMP)
                ),
                Err(VerifyError::MalformedTimestamp),
                "{ts}"
            );
        }
    }

    #[test]
    fn secrets_parse_with_a_reason_for_each_refusal() {
        let generated = WebhookSecret::generate();
        let text = generated.to_text();
        assert!(text.expose().starts_with("whsec_"));
        assert_eq!(
            b64().decode(&text.expose()[6..]).unwrap().len(),
            32,
            "32 random bytes"
        );
        assert_eq!(WebhookSecret::parse(text.expose()).unwrap(), generated);
        assert_eq!(
            WebhookSecret::parse(&format!("{}\n", text.expose())).unwrap(),
            generated
        );
        assert_ne!(WebhookSecret::generate(), generated);

        let cases = [
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                SecretParseError::MissingPrefix,
            ),
            ("", SecretParseError::MissingPrefix),
            (
                "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                SecretParseError::MissingPrefix,
            ),
            ("whsec_not base64!", SecretParseError::NotBase64),
            ("whsec_", SecretParseError::WrongLength(0)),
        ];
        for (text, want) in cases {
            assert_eq!(WebhookSecret::parse(text), Err(want.clone()), "{text:?}");
        }
        let short = format!("whsec_{}", b64().encode([7u8; 23]));
        assert_eq!(
            WebhookSecret::parse(&short),
            Err(SecretParseError::WrongLength(23))
        );
        let long = format!("whsec_{}", b64().encode([7u8; 65]));
        assert_eq!(
            WebhookSecret::parse(&long),
            Err(SecretParseError::WrongLength(65))
        );
        let longest = format!("whsec_{}", b64().encode([7u8; 64]));
        assert!(WebhookSecret::parse(&longest).is_ok());
    }

    #[test]
    fn no_secret_shows_in_debug_output_or_errors() {
        let secret = vector_secret();
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
        let err = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!").unwrap_err();
        assert!(!err.to_string().contains("MfKQ"), "{err}");
        let ts = VECTOR_TIMESTAMP.to_string();
        let err = verify(
            &[secret],
            &headers(VECTOR_ID, &ts, "v1,AAAA"),
            VECTOR_BODY,
            at(VECTOR_TIMESTAMP),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("g0hM9SsE"), "{err}");
    }
}
