//! Turning what went wrong on the wire into short text a person can act on: an excerpt of an
//! error body (OneRoster's `imsx_description` when the body is a status object) and the root
//! cause of a transport error, without URLs, headers, tokens or secrets.

use std::error::Error as StdError;

/// Characters of an error body kept in a message.
const EXCERPT_CHARS: usize = 200;

/// `": <excerpt>"` of an error body, or `""` when there is nothing worth showing. Any of
/// `secrets` found in the text is blanked out.
pub fn error_excerpt(body: &[u8], secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let chosen = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) => imsx_description(&json)
            .or_else(|| oauth_error(&json))
            .unwrap_or_else(|| text.to_string()),
        Err(_) if text.starts_with('<') => strip_tags(text),
        Err(_) => text.to_string(),
    };
    let mut cleaned = collapse(&chosen);
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        cleaned = cleaned.replace(secret, "[redacted]");
    }
    if cleaned.is_empty() {
        return String::new();
    }
    format!(": {}", truncate(&cleaned, EXCERPT_CHARS))
}

/// The first non-empty `imsx_description`, wherever the status object sits (top level, in
/// `imsx_statusInfo`, in a 1.1 `statusInfoSet` array).
fn imsx_description(json: &serde_json::Value) -> Option<String> {
    match json {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(d)) = map.get("imsx_description") {
                if !d.trim().is_empty() {
                    return Some(d.clone());
                }
            }
            map.values().find_map(imsx_description)
        }
        serde_json::Value::Array(items) => items.iter().find_map(imsx_description),
        _ => None,
    }
}

/// An OAuth-style `{"error": "...", "error_description": "..."}` body.
fn oauth_error(json: &serde_json::Value) -> Option<String> {
    let code = json.get("error")?.as_str()?;
    Some(
        match json.get("error_description").and_then(|d| d.as_str()) {
            Some(description) => format!("{code}: {description}"),
            None => code.to_string(),
        },
    )
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// One line: control characters dropped, runs of whitespace made one space.
fn collapse(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The root cause of a failed exchange (`cannot connect: Connection refused (os error 111)`).
/// reqwest's own message is skipped: it carries the full URL.
pub fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "reading the response failed"
    } else if error.is_builder() {
        "cannot build the request"
    } else {
        "the exchange failed"
    };
    match root_cause(error) {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_string(),
    }
}

fn root_cause<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    let mut cause = error.source()?;
    while let Some(deeper) = cause.source() {
        cause = deeper;
    }
    Some(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_prefer_imsx_description_and_stay_short() {
        let long = "x".repeat(500);
        let cases: Vec<(String, String)> = vec![
            (String::new(), String::new()),
            ("   ".into(), String::new()),
            (
                r#"{"imsx_codeMajor":"failure","imsx_severity":"error","imsx_description":"Unknown filter field: bogus"}"#.into(),
                ": Unknown filter field: bogus".into(),
            ),
            (
                r#"{"statusInfoSet":[{"imsx_codeMajor":"failure","imsx_description":"no such user"}]}"#.into(),
                ": no such user".into(),
            ),
            (
                r#"{"error":"invalid_client","error_description":"bad secret"}"#.into(),
                ": invalid_client: bad secret".into(),
            ),
            (
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>".into(),
                ": 502 Bad Gateway nginx".into(),
            ),
            ("line one\r\n\tline\u{7}two".into(), ": line one line two".into()),
            (long.clone(), format!(": {}…", &long[..200])),
        ];
        for (body, expected) in cases {
            assert_eq!(error_excerpt(body.as_bytes(), &[]), expected, "{body:?}");
        }
    }

    #[test]
    fn excerpts_blank_out_secrets() {
        let excerpt = error_excerpt(b"bad credentials for s3cretvalue", &["s3cretvalue"]);
        assert_eq!(excerpt, ": bad credentials for [redacted]");
    }
}
