//! The one request handler: faults first (as a gateway in front of the partner would answer),
//! then the API key, then the bearer token, then the page asked for.

use std::sync::atomic::Ordering;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::store::Selection;
use super::{FaultAction, PartnerRequest, State, BASE_PATH, MAX_LIMIT, TOKEN_PATH};
use crate::synthetic::provider::{auth_kind, issue_token, query_pairs, FaultProbe};

pub(super) async fn handle(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let (response, fault) = respond(&req, &body, &state).await;
    let entry = PartnerRequest {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        status: response.status().as_u16(),
        auth: auth_kind(&req),
        api_key: req
            .headers()
            .contains_key(state.config.api_key_header().to_ascii_lowercase().as_str()),
        fault,
    };
    state.log.push(entry);
    response
}

/// An RFC 6749 §5.2-style error body, as partners' APIs commonly answer.
fn error(status: u16, code: &str, description: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .json(json!({"error": code, "error_description": description}))
}

/// The answer to a status fault, or None when the fault only changes the normal answer.
async fn status_fault(fault: Option<&FaultAction>) -> Option<HttpResponse> {
    match fault? {
        FaultAction::TooManyRequests { retry_after_secs } => {
            let mut response = error(429, "rate_limited", "too many requests; retry later");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            Some(response)
        }
        FaultAction::Status(status) => Some(error(
            *status,
            "server_error",
            "the server failed; retry later",
        )),
        FaultAction::Delay(wait) => {
            tokio::time::sleep(*wait).await;
            None
        }
        _ => None,
    }
}

async fn respond(
    req: &HttpRequest,
    body: &Bytes,
    state: &State,
) -> (HttpResponse, Option<FaultAction>) {
    if req.path() == TOKEN_PATH {
        let probe = FaultProbe {
            path: "token",
            offset: 0,
            number: None,
        };
        let fault = state.faults.take(&probe);
        if let Some(response) = status_fault(fault.as_ref()).await {
            return (response, fault);
        }
        if let Some(refusal) = check_api_key(req, state) {
            return (refusal, fault);
        }
        let response = issue_token(req, body, &state.config.oauth2, &state.tokens);
        return (response, fault);
    }
    if req.path() != format!("{BASE_PATH}/results") {
        return (error(404, "not_found", "no such endpoint"), None);
    }
    let selection = selection(req.query_string(), state);
    let number = state.results_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let probe = FaultProbe {
        path: "results",
        offset: selection.as_ref().map_or(0, |s| state.results.offset(s)),
        number: Some(number),
    };
    let fault = state.faults.take(&probe);
    if let Some(response) = status_fault(fault.as_ref()).await {
        return (response, fault);
    }
    if req.method() != Method::GET {
        return (
            error(405, "invalid_request", "only GET is supported"),
            fault,
        );
    }
    if let Some(refusal) = check_api_key(req, state).or_else(|| check_bearer(req, state)) {
        return (refusal, fault);
    }
    let response = match selection {
        Ok(selection) => page(state, &selection, fault.as_ref()),
        Err(problem) => error(400, "invalid_request", &problem),
    };
    (response, fault)
}

/// None when the API key is not required or is present and right; else the 401.
fn check_api_key(req: &HttpRequest, state: &State) -> Option<HttpResponse> {
    let (name, key) = state.config.api_key.as_ref()?;
    let given = req
        .headers()
        .get(name.to_ascii_lowercase().as_str())
        .map(HeaderValue::as_bytes);
    let description = match given {
        Some(given) if given == key.as_bytes() => return None,
        Some(_) => format!("the API key in the {name} header is wrong"),
        None => format!("the API key is missing: no {name} header"),
    };
    Some(error(401, "invalid_api_key", &description))
}

/// None when the request carries a live token this partner issued (and counts it against
/// the token); else the 401.
fn check_bearer(req: &HttpRequest, state: &State) -> Option<HttpResponse> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let admitted = state
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .admit(&state.config.oauth2, authorization);
    if admitted {
        return None;
    }
    let description = if authorization.is_some() {
        "the access token is not (or no longer) accepted"
    } else {
        "an access token is required"
    };
    let mut response = error(401, "invalid_token", description);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    Some(response)
}

/// The results a query string asks for, the clamp applied; Err says why it is a 400.
fn selection(query: &str, state: &State) -> Result<Selection, String> {
    let pairs = query_pairs(query).ok_or("the query string is not valid")?;
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let limit = get("limit").ok_or("limit is required")?;
    let limit = limit
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            format!("limit must be a whole number from 1 to {MAX_LIMIT}, not {limit:?}")
        })?;
    let limit = state
        .config
        .max_page_size
        .map_or(limit, |max| limit.min(max.max(1)));
    let since = get("modified_since")
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| format!("modified_since must be an RFC 3339 date-time, not {v:?}"))
        })
        .transpose()?;
    let after = get("page_token")
        .map(|token| {
            state
                .cursors
                .resolve(token)
                .ok_or_else(|| "page_token is not one this server issued".to_string())
        })
        .transpose()?;
    Ok(Selection {
        since,
        after,
        limit,
    })
}

/// `{"results":[…],"next_page_token":…}`, with a body fault applied.
fn page(state: &State, selection: &Selection, fault: Option<&FaultAction>) -> HttpResponse {
    let page = state.results.page(selection);
    let next = match page.next {
        Some(position) => Value::String(state.cursors.issue(position)).to_string(),
        None => "null".to_string(),
    };
    let size = page.records.iter().map(|r| r.len() + 1).sum::<usize>() + next.len() + 40;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"results\":[");
    for (i, record) in page.records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(record);
    }
    body.extend_from_slice(b"],\"next_page_token\":");
    body.extend_from_slice(next.as_bytes());
    body.push(b'}');

    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    match fault {
        Some(FaultAction::MalformedJson) => {
            body.truncate(body.len() / 2);
            response.body(body)
        }
        // The shape a bad partner sends: a member of the first result left out (e.g. `rit`).
        Some(FaultAction::MissingField(field)) => {
            let mut value: Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(Value::Object(first)) = value.pointer_mut("/results/0/result") {
                first.remove(field);
            }
            response.json(value)
        }
        Some(FaultAction::DropConnection) => {
            let half = Bytes::from(body[..body.len() / 2].to_vec());
            let chunks: [Result<Bytes, std::io::Error>; 2] = [
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "connection dropped by a scripted fault",
                )),
            ];
            response.streaming(futures_util::stream::iter(chunks))
        }
        _ => response.body(body),
    }
}
