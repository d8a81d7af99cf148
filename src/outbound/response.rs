//! What a source's answer says besides its status: the next page (`Link: <…>; rel="next"`),
//! the total (`X-Total-Count`), and the body, read chunk by chunk up to a cap.

use reqwest::header::HeaderMap;
use reqwest::Url;

/// The `rel="next"` target among all `Link` headers, resolved against the request URL.
pub fn next_link(headers: &HeaderMap, request_url: &Url) -> Option<Url> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(parse_link_header)
        .find(|link| link.has_rel("next"))
        .and_then(|link| request_url.join(&link.target).ok())
}

/// Does the answer page with `Link` headers (any of `first`, `last`, `prev`, `next`)? Then a page
/// without `next` is the last one. Other relations (`describedby`…) say nothing about paging.
pub fn pages_by_link(headers: &HeaderMap) -> bool {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(parse_link_header)
        .any(|link| {
            ["first", "last", "prev", "next"]
                .iter()
                .any(|rel| link.has_rel(rel))
        })
}

/// `X-Total-Count` as a number, when sent and readable.
pub fn total_count(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("x-total-count")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// One link of a `Link` header (RFC 8288): its target as written and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    /// Parameter names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Link {
    /// `rel` holds space-separated relation types, compared without case.
    pub fn has_rel(&self, rel: &str) -> bool {
        self.params
            .iter()
            .filter(|(name, _)| name == "rel")
            .flat_map(|(_, value)| value.split_ascii_whitespace())
            .any(|r| r.eq_ignore_ascii_case(rel))
    }
}

/// Every link in one `Link` header value; malformed pieces are skipped, not fatal.
pub fn parse_link_header(value: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return links;
        }
        let Some(after_open) = rest.strip_prefix('<') else {
            // Not a link: skip to the next one.
            match rest.find(',') {
                Some(i) => {
                    rest = &rest[i + 1..];
                    continue;
                }
                None => return links,
            }
        };
        let Some(close) = after_open.find('>') else {
            return links;
        };
        let target = after_open[..close].trim().to_string();
        let (params, remaining) = parse_params(&after_open[close + 1..]);
        links.push(Link { target, params });
        rest = remaining;
    }
}

/// `; name=value; name="quoted, value"` up to the comma that ends the link.
fn parse_params(mut rest: &str) -> (Vec<(String, String)>, &str) {
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(after_semicolon) = rest.strip_prefix(';') else {
            // A comma (next link), the end, or junk up to the next comma.
            let end = rest.find(',').unwrap_or(rest.len());
            return (params, &rest[end..]);
        };
        rest = after_semicolon.trim_start();
        let name_end = rest.find(['=', ';', ',']).unwrap_or(rest.len());
        let name = rest[..name_end].trim().to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut value = String::new();
        if let Some(after_eq) = rest.strip_prefix('=') {
            rest = after_eq.trim_start();
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut chars = quoted.char_indices();
                let mut consumed = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            consumed = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                rest = &quoted[consumed..];
            } else {
                let end = rest.find([';', ',']).unwrap_or(rest.len());
                value = rest[..end].trim().to_string();
                rest = &rest[end..];
            }
        }
        if !name.is_empty() {
            params.push((name, value));
        }
    }
}

/// A body read up to a cap.
pub struct CappedBody {
    pub bytes: Vec<u8>,
    /// More was sent than the cap; `bytes` holds the first `cap` bytes.
    pub truncated: bool,
}

/// Reads the body chunk by chunk, stopping once more than `cap` bytes arrived.
pub async fn read_capped(
    response: &mut reqwest::Response,
    cap: u64,
) -> Result<CappedBody, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = usize::try_from(cap)
            .unwrap_or(usize::MAX)
            .saturating_sub(bytes.len());
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(CappedBody {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(CappedBody {
        bytes,
        truncated: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, LINK};

    fn next_of(values: &[&str], base: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(LINK, HeaderValue::from_str(value).unwrap());
        }
        next_link(&headers, &Url::parse(base).unwrap()).map(|u| u.to_string())
    }

    #[test]
    fn next_links_are_found_and_resolved() {
        let base = "https://sis.example/ims/oneroster/v1p1/users?limit=2&offset=0";
        let cases: &[(&[&str], Option<&str>)] = &[
            (
                &[r#"<https://sis.example/ims/oneroster/v1p1/users?limit=2&offset=2>; rel="next""#],
                Some("https://sis.example/ims/oneroster/v1p1/users?limit=2&offset=2"),
            ),
            // Several links in one header, next not first, unquoted rel.
            (
                &[
                    "<users?limit=2&offset=8>; rel=last, </ims/oneroster/v1p1/users?limit=2&offset=2>; rel=next",
                ],
                Some("https://sis.example/ims/oneroster/v1p1/users?limit=2&offset=2"),
            ),
            // Relative to the request URL.
            (
                &[r#"<users?offset=4>; rel="next""#],
                Some("https://sis.example/ims/oneroster/v1p1/users?offset=4"),
            ),
            // Several headers; a quoted title with a comma and a rel list.
            (
                &[
                    r#"<?offset=0>; rel="first"; title="a, b""#,
                    r#"<?offset=6>; title="x;y"; REL="prev Next""#,
                ],
                Some("https://sis.example/ims/oneroster/v1p1/users?offset=6"),
            ),
            (&[r#"<?offset=0>; rel="first", <?offset=8>; rel="last""#], None),
            (&["garbage, <?offset=2>; rel=next"], Some("https://sis.example/ims/oneroster/v1p1/users?offset=2")),
            (&["<unterminated; rel=next"], None),
            (&[], None),
        ];
        for (values, expected) in cases {
            assert_eq!(next_of(values, base).as_deref(), *expected, "{values:?}");
        }
    }

    #[test]
    fn link_parameters_are_unquoted_and_lower_cased() {
        let links = parse_link_header(r#"<a>; Rel="next"; title="say \"hi\"", <b>"#);
        assert_eq!(
            links,
            vec![
                Link {
                    target: "a".into(),
                    params: vec![
                        ("rel".into(), "next".into()),
                        ("title".into(), "say \"hi\"".into())
                    ],
                },
                Link {
                    target: "b".into(),
                    params: vec![],
                },
            ]
        );
    }

    #[test]
    fn total_count_is_a_hint_read_leniently() {
        let cases = [
            ("42", Some(42)),
            (" 7 ", Some(7)),
            ("-1", None),
            ("many", None),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert("x-total-count", HeaderValue::from_static(value));
            assert_eq!(total_count(&headers), expected, "{value:?}");
        }
        assert_eq!(total_count(&HeaderMap::new()), None);
    }
}
