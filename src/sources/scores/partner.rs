//! One page of a partner's results API (`GET {base}/results`, contract:
//! `contracts/partner-results.openapi.json`): `{"results": [{"modified_at": …, "result": …}],
//! "next_page_token": …}`. Each `result` is exactly a score push's result, so it is read by
//! [`push`](super::push)'s reader; only the page around it is read here.
//!
//! A page that breaks any rule fails the whole pull, so, as for a push, every problem is named by
//! its JSON pointer (`/results/3/result/rit`) and the refusal lists them all, up to a bound: the
//! partner can then fix its feed from one error.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::push::{member, read_result, refusal, AssessmentResult, Object, Problems, ShapeRefusal};

/// The members of a page and of one of its results.
pub const PAGE_MEMBERS: [&str; 2] = ["results", "next_page_token"];
pub const CHANGED_RESULT_MEMBERS: [&str; 2] = ["modified_at", "result"];
/// Longest page token, in characters (the contract's `maxLength`).
pub const MAX_PAGE_TOKEN_CHARS: usize = 2048;

/// One result as the partner sent it, with when it last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedResult {
    pub modified_at: DateTime<Utc>,
    pub result: AssessmentResult,
}

/// A page, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsPage {
    pub results: Vec<ChangedResult>,
    /// Where the next page starts, exactly as sent; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Reads one page. Refused: a body that is not JSON (with serde's line and column), and every
/// member missing, unknown, of the wrong type or out of bounds, each by its JSON pointer
/// (`/results/3/result/rit`, `/results/0/modified_at`, `/next_page_token`), as
/// [`push::read`](super::push::read) refuses a push.
pub fn read_page(body: &[u8]) -> Result<ResultsPage, ShapeRefusal> {
    // serde_json's recursion limit refuses hostile nesting here, before anything recurses.
    let page: Json = serde_json::from_slice(body).map_err(|e| {
        let mut refused = Problems::default();
        refused.add("", format!("the body is not valid JSON: {e}"));
        refusal(refused)
    })?;
    let mut problems = Problems::default();
    let page = read_page_object(&page, &mut problems);
    let refused = refusal(problems);
    if refused.total > 0 {
        return Err(refused);
    }
    Ok(page)
}

/// The page, as far as it could be read; the caller discards it if any problem was found.
fn read_page_object(page: &Json, problems: &mut Problems) -> ResultsPage {
    let mut read = ResultsPage {
        results: Vec::new(),
        next_page_token: None,
    };
    let Some(object) = Object::new(page, "", "a results page", &PAGE_MEMBERS, problems) else {
        return read;
    };
    match object.required("results", problems) {
        None => {}
        Some(Json::Array(items)) => {
            // Unlike a push, a page may be empty: the last one, or any other.
            read.results = items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| {
                    read_changed_result(item, &format!("/results/{index}"), problems)
                })
                .collect();
        }
        Some(_) => problems.add("/results", "must be an array of changed results"),
    }
    read.next_page_token = read_token(&object, problems);
    read
}

fn read_changed_result(value: &Json, at: &str, problems: &mut Problems) -> Option<ChangedResult> {
    let object = Object::new(
        value,
        at,
        "a changed result",
        &CHANGED_RESULT_MEMBERS,
        problems,
    )?;
    let modified_at = object.required("modified_at", problems).and_then(|value| {
        let parsed = value
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok());
        if parsed.is_none() {
            problems.add(
                &object.pointer("modified_at"),
                "must be a date-time in RFC 3339, with an offset or Z (e.g. 2026-11-02T10:14:03Z)",
            );
        }
        parsed
    });
    let result = object
        .required("result", problems)
        .and_then(|value| read_result(value, &member(at, "result"), problems));
    Some(ChangedResult {
        modified_at: modified_at?.with_timezone(&Utc),
        result: result?,
    })
}

/// The token, sent back unchanged as the next request's `page_token`: hence no trimming, and no
/// control characters (it goes into a URL query).
fn read_token(page: &Object, problems: &mut Problems) -> Option<String> {
    let at = page.pointer("next_page_token");
    let Json::String(token) = page.optional("next_page_token")? else {
        problems.add(&at, "must be a string, or null on the last page");
        return None;
    };
    if token.is_empty() {
        problems.add(&at, "may not be empty: give null on the last page");
    } else if token.chars().count() > MAX_PAGE_TOKEN_CHARS {
        problems.add(
            &at,
            format!("is longer than {MAX_PAGE_TOKEN_CHARS} characters"),
        );
    } else if token.chars().any(char::is_control) {
        problems.add(&at, "may not hold control characters");
    } else {
        return Some(token.clone());
    }
    None
}

#[cfg(test)]
mod tests;
