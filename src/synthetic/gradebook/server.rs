//! The one request handler: faults first (as a gateway in front of the SIS would answer), then
//! the bearer token, then the page asked for.

use std::sync::atomic::Ordering;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::filter::modified_after;
use super::store::Collection;
use super::{FaultAction, GradebookRequest, State, BASE_PATH, TOKEN_PATH};
use crate::synthetic::provider::{
    auth_kind, collection_page, imsx, issue_token, query_pairs, status_fault, FaultProbe, Paging,
};

pub(super) async fn handle(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let (response, fault) = respond(&req, &body, &state).await;
    let entry = GradebookRequest {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        status: response.status().as_u16(),
        auth: auth_kind(&req),
        fault,
    };
    state.log.push(entry);
    response
}

/// The status fault's answer, or None when there is none or it only changes the normal answer.
async fn answer_to(fault: Option<&FaultAction>) -> Option<HttpResponse> {
    match fault {
        Some(fault) => status_fault(fault).await,
        None => None,
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
        if let Some(response) = answer_to(fault.as_ref()).await {
            return (response, fault);
        }
        let response = issue_token(req, body, &state.config.oauth2, &state.tokens);
        return (response, fault);
    }
    let Some(collection) = req
        .path()
        .strip_prefix(BASE_PATH)
        .and_then(|p| p.strip_prefix('/'))
        .and_then(Collection::from_segment)
    else {
        return (imsx(404, "unknownobject", "no such endpoint"), None);
    };
    let Some(pairs) = query_pairs(req.query_string()) else {
        return (
            imsx(400, "invaliddata", "the query string is not valid"),
            None,
        );
    };
    let offset = pairs
        .iter()
        .find(|(k, _)| k == "offset")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let number = state.data_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let probe = FaultProbe {
        path: collection.name(),
        offset,
        number: Some(number),
    };
    let fault = state.faults.take(&probe);
    if let Some(response) = answer_to(fault.as_ref()).await {
        return (response, fault);
    }
    if req.method() != Method::GET {
        return (
            imsx(405, "unsupportedoperation", "only GET is supported"),
            fault,
        );
    }
    if let Some(refusal) = check_bearer(req, state) {
        return (refusal, fault);
    }
    let response = page(req, state, collection, &pairs, fault.as_ref());
    (response, fault)
}

/// None when the request carries a live token this gradebook issued (and counts it against
/// the token); else the provider's 401.
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
    let mut response = imsx(
        401,
        "unauthorisedrequest",
        "a valid bearer token is required",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

/// `{"assessmentResults":[…]}` (or line items) with `X-Total-Count` and `Link`, a body fault
/// applied; a 400 for a filter or paging parameter the gradebook does not take.
fn page(
    req: &HttpRequest,
    state: &State,
    collection: Collection,
    pairs: &[(String, String)],
    fault: Option<&FaultAction>,
) -> HttpResponse {
    let after = match pairs.iter().find(|(k, _)| k == "filter") {
        Some((_, text)) => match modified_after(text) {
            Ok(after) => Some(after),
            Err(e) => return imsx(400, e.code_minor(), &e.to_string()),
        },
        None => None,
    };
    let paging = match Paging::from_query(pairs, state.config.max_page_size) {
        Ok(p) => p,
        Err(e) => return imsx(400, "invaliddata", &e.to_string()),
    };
    let page = state
        .data
        .page(collection, after, paging.offset, paging.limit);
    let url = format!("{}{}", state.origin, req.path());
    let mut response = HttpResponse::Ok();
    response.insert_header(("X-Total-Count", page.total.to_string()));
    response.insert_header((
        header::LINK,
        paging.link_header(&url, req.query_string(), page.total),
    ));
    collection_page(response, collection.name(), &page.records, fault)
}
