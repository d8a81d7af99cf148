//! OAuth 1.0a two-legged request signing (RFC 5849), as OneRoster 1.1 providers expect it
//! (oneroster.md §8.1): HMAC-SHA256 or HMAC-SHA1 over the method, the base URL and every
//! query parameter. Pure functions: the caller brings the clock and the nonce.

use base64::Engine as _;
use reqwest::Url;

use crate::config::Secret;
use crate::domain::connection::SignatureMethod;

/// What signs a connection's requests: its consumer key, secret and method.
#[derive(Debug, Clone)]
pub struct Oauth1Signer {
    consumer_key: String,
    consumer_secret: Secret,
    method: SignatureMethod,
}

impl Oauth1Signer {
    pub fn new(consumer_key: &str, consumer_secret: Secret, method: SignatureMethod) -> Self {
        Oauth1Signer {
            consumer_key: consumer_key.to_string(),
            consumer_secret,
            method,
        }
    }

    /// The `Authorization` header value for `GET url`, signed at `timestamp` (Unix seconds)
    /// with `nonce`.
    pub fn authorization(&self, url: &Url, timestamp: u64, nonce: &str) -> String {
        let oauth_params = [
            ("oauth_consumer_key", self.consumer_key.clone()),
            ("oauth_nonce", nonce.to_string()),
            (
                "oauth_signature_method",
                method_name(self.method).to_string(),
            ),
            ("oauth_timestamp", timestamp.to_string()),
            ("oauth_version", "1.0".to_string()),
        ];
        let owned: Vec<(String, String)> = oauth_params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let base = signature_base_string("GET", url, &owned);
        let signature = sign(self.method, &base, self.consumer_secret.expose(), "");
        let mut header = String::from("OAuth ");
        for (name, value) in oauth_params
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(std::iter::once(("oauth_signature", signature.as_str())))
        {
            if !header.ends_with(' ') {
                header.push_str(", ");
            }
            header.push_str(&format!("{name}=\"{}\"", percent_encode(value)));
        }
        header
    }
}

/// A fresh nonce: 16 random bytes, hex.
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    // The system random source failing leaves a zero nonce; the timestamp still varies.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// Seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn method_name(method: SignatureMethod) -> &'static str {
    match method {
        SignatureMethod::HmacSha256 => "HMAC-SHA256",
        SignatureMethod::HmacSha1 => "HMAC-SHA1",
    }
}

/// RFC 5849 §3.4.1: `METHOD&enc(base URL)&enc(normalised parameters)`, the parameters being
/// `extra` (OAuth parameters, form body parameters) plus every query parameter of `url`.
pub fn signature_base_string(method: &str, url: &Url, extra: &[(String, String)]) -> String {
    let params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .chain(extra.iter().cloned())
        .collect();
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode(&base_url(url)),
        percent_encode(&normalized_parameters(&params))
    )
}

/// RFC 5849 §3.4.1.2: scheme and host lower case, the default port dropped, no query or
/// fragment (the `url` crate already normalises the first two).
pub fn base_url(url: &Url) -> String {
    let mut base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        base.push_str(&format!(":{port}"));
    }
    base.push_str(url.path());
    base
}

/// RFC 5849 §3.4.1.3.2: each name and value encoded, sorted by name then value, joined.
pub fn normalized_parameters(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 5849 §3.4.2: base64 of HMAC(`enc(consumer secret)&enc(token secret)`, base string).
pub fn sign(
    method: SignatureMethod,
    base_string: &str,
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let key = format!(
        "{}&{}",
        percent_encode(consumer_secret),
        percent_encode(token_secret)
    );
    let algorithm = match method {
        SignatureMethod::HmacSha256 => aws_lc_rs::hmac::HMAC_SHA256,
        SignatureMethod::HmacSha1 => aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    };
    let key = aws_lc_rs::hmac::Key::new(algorithm, key.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, base_string.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// RFC 5849 §3.6: every byte outside the RFC 3986 unreserved set (`A-Z a-z 0-9 - . _ ~`)
/// as `%XX`, upper-case hex, over the UTF-8 bytes.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn percent_encoding_keeps_only_the_unreserved_set() {
        let cases = [
            ("abcXYZ019", "abcXYZ019"),
            ("-._~", "-._~"),
            ("a b", "a%20b"),
            ("a+b", "a%2Bb"),
            ("*", "%2A"),
            ("'", "%27"),
            (">", "%3E"),
            ("=&%", "%3D%26%25"),
            ("é", "%C3%A9"),
            ("😀", "%F0%9F%98%80"),
            ("", ""),
        ];
        for (raw, encoded) in cases {
            assert_eq!(percent_encode(raw), encoded, "{raw:?}");
        }
    }

    #[test]
    fn query_parameters_are_decoded_then_encoded_the_rfc_way() {
        // How a URL spells a value does not change what is signed.
        let cases = [
            ("http://h/p?q=a+b", "q=a%20b"),
            ("http://h/p?q=a%20b", "q=a%20b"),
            ("http://h/p?q=a%2Bb", "q=a%2Bb"),
            ("http://h/p?q=*", "q=%2A"),
            ("http://h/p?q=~", "q=~"),
            ("http://h/p?q=%C3%A9", "q=%C3%A9"),
            (
                "http://h/p?filter=dateLastModified>'2024-01-01T00:00:00Z'",
                "filter=dateLastModified%3E%272024-01-01T00%3A00%3A00Z%27",
            ),
            ("http://h/p?b=2&a=9&a=1", "a=1&a=9&b=2"),
            ("http://h/p?a=&a", "a=&a="),
            ("http://h/p", ""),
        ];
        for (url, expected) in cases {
            let url = Url::parse(url).unwrap();
            let params: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(normalized_parameters(&params), expected, "{url}");
        }
    }

    #[test]
    fn parameters_sort_by_encoded_name_then_value() {
        // Byte order of the encoded text: `10` before `3`, a name before its longer cousins.
        let params = pairs(&[("z", "1"), ("a b", "2"), ("a", "3"), ("a", "10")]);
        assert_eq!(normalized_parameters(&params), "a=10&a=3&a%20b=2&z=1");
    }

    #[test]
    fn base_url_lowercases_and_drops_default_ports() {
        let cases = [
            ("HTTP://Example.COM:80/Path?x=1", "http://example.com/Path"),
            ("https://example.com:443/r", "https://example.com/r"),
            (
                "https://example.com:8443/r#frag",
                "https://example.com:8443/r",
            ),
            (
                "http://127.0.0.1:8080/ims/oneroster",
                "http://127.0.0.1:8080/ims/oneroster",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(base_url(&Url::parse(url).unwrap()), expected);
        }
    }

    #[test]
    fn base_string_matches_rfc_5849_section_3_4_1_1() {
        let url = Url::parse("http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b").unwrap();
        let extra = pairs(&[
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
            // The form body `c2&a3=2+q`.
            ("c2", ""),
            ("a3", "2 q"),
        ]);
        assert_eq!(
            signature_base_string("POST", &url, &extra),
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
             %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
             key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
             ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
             9d7dh3k39sjv7"
        );
    }

    #[test]
    fn hmac_sha1_signature_matches_rfc_5849_section_1_2() {
        let url =
            Url::parse("http://photos.example.net/photos?file=vacation.jpg&size=original").unwrap();
        let extra = pairs(&[
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"),
            ("oauth_nonce", "chapoH"),
        ]);
        let base = signature_base_string("GET", &url, &extra);
        assert_eq!(
            sign(
                SignatureMethod::HmacSha1,
                &base,
                "kd94hf93k423kf44",
                "pfkkdhi9sl3r4s00"
            ),
            "MdpQcU8iPSUjWoN/UDMsK2sui9I="
        );
    }

    #[test]
    fn hmac_sha256_signs_with_the_same_key_and_base_string() {
        // Independently computed: HMAC-SHA256("kd94hf93k423kf44&", "GET&x&y"), base64.
        assert_eq!(
            sign(
                SignatureMethod::HmacSha256,
                "GET&x&y",
                "kd94hf93k423kf44",
                ""
            ),
            "PEJ6mlfuyC7FMsp08Q3eveIEyv+Y4CApmuAROGZJk9U="
        );
    }

    #[test]
    fn authorization_header_carries_every_oauth_parameter_and_no_secret() {
        let signer = Oauth1Signer::new(
            "key with space",
            Secret::new("s3cret"),
            SignatureMethod::HmacSha256,
        );
        let url =
            Url::parse("https://sis.example/ims/oneroster/v1p1/users?limit=100&offset=0").unwrap();
        let header = signer.authorization(&url, 1_700_000_000, "abc123");
        assert!(header.starts_with("OAuth oauth_consumer_key=\"key%20with%20space\", "));
        for part in [
            "oauth_nonce=\"abc123\"",
            "oauth_signature_method=\"HMAC-SHA256\"",
            "oauth_timestamp=\"1700000000\"",
            "oauth_version=\"1.0\"",
            "oauth_signature=\"",
        ] {
            assert!(header.contains(part), "{part} missing from {header}");
        }
        assert!(!header.contains("s3cret"));
        // The same inputs sign the same; another nonce signs differently.
        assert_eq!(header, signer.authorization(&url, 1_700_000_000, "abc123"));
        assert_ne!(header, signer.authorization(&url, 1_700_000_000, "abc124"));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(random_nonce(), random_nonce());
        assert_eq!(random_nonce().len(), 32);
    }
}
