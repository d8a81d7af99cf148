//! The one request handler: faults first (as a gateway in front of the SIS would answer), then
//! authentication, then the collection, view or singleton asked for.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde_json::{json, Value};

use super::auth::{
    percent_decode, query_pairs, verify_oauth1, Oauth2Settings, SignedRequest, Tokens,
};
use super::data::Collection;
use super::faults::{FaultAction, FaultProbe};
use super::filter::Filter;
use super::paging::Paging;
use super::store::SelectionKey;
use super::{AuthKind, ProviderAuth, RequestLog, State};

pub(super) async fn handle(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let (response, fault) = respond(&req, &body, &state).await;
    let auth = auth_kind(&req);
    state
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RequestLog {
            method: req.method().to_string(),
            path: req.path().to_string(),
            query: req.query_string().to_string(),
            status: response.status().as_u16(),
            auth,
            fault,
        });
    response
}

/// The credentials a request carried, by its `Authorization` scheme (shared with the partner
/// server's request log).
pub(crate) fn auth_kind(req: &HttpRequest) -> AuthKind {
    match req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(' ').next())
    {
        None if req.query_string().contains("oauth_signature=") => AuthKind::Oauth1,
        None => AuthKind::None,
        Some(s) if s.eq_ignore_ascii_case("basic") => AuthKind::Basic,
        Some(s) if s.eq_ignore_ascii_case("bearer") => AuthKind::Bearer,
        Some(s) if s.eq_ignore_ascii_case("oauth") => AuthKind::Oauth1,
        Some(_) => AuthKind::Other,
    }
}

/// OneRoster's imsx status body (reference §7); shared with the gradebook server.
pub(crate) fn imsx(status: u16, code_minor: &str, description: &str) -> HttpResponse {
    let body = json!({
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_CodeMinor": {"imsx_codeMinorField": [{
            "imsx_codeMinorFieldName": "TargetEndSystem",
            "imsx_codeMinorFieldValue": code_minor,
        }]},
    });
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .json(body)
}

/// The answer to a status fault, or None when the fault only changes the normal answer (shared
/// with the gradebook server).
pub(crate) async fn status_fault(fault: &FaultAction) -> Option<HttpResponse> {
    match fault {
        FaultAction::TooManyRequests { retry_after_secs } => {
            let mut response = imsx(429, "server_busy", "too many requests; retry later");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            Some(response)
        }
        FaultAction::Status(status) => {
            let minor = if *status == 503 {
                "server_busy"
            } else {
                "internal_server_error"
            };
            Some(imsx(*status, minor, "the server failed; retry later"))
        }
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
    let path = req.path();
    let query = req.query_string();
    let Some(pairs) = query_pairs(query) else {
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
    if path == "/token" {
        let fault = state.faults.take(&FaultProbe {
            path: "token",
            offset,
            number: None,
        });
        if let Some(response) = match &fault {
            Some(f) => status_fault(f).await,
            None => None,
        } {
            return (response, fault);
        }
        return (token(req, body, state), fault);
    }
    let base = state.config.base_path();
    let Some(relative) = path.strip_prefix(base).and_then(|p| p.strip_prefix('/')) else {
        return (imsx(404, "unknownobject", "no such endpoint"), None);
    };
    let number = state.data_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let fault = state.faults.take(&FaultProbe {
        path: relative,
        offset,
        number: Some(number),
    });
    if let Some(response) = match &fault {
        Some(f) => status_fault(f).await,
        None => None,
    } {
        return (response, fault);
    }
    if req.method() != actix_web::http::Method::GET {
        return (
            imsx(405, "unsupportedoperation", "only GET is supported"),
            fault,
        );
    }
    if let Some(refusal) = authenticate(req, state) {
        return (refusal, fault);
    }
    let response = match relative.split_once('/') {
        None => collection(req, state, relative, &pairs, fault.as_ref()),
        Some((name, id)) => singleton(state, name, &percent_decode(id, false).unwrap_or_default()),
    };
    (response, fault)
}

/// None when the request may proceed; else the 401.
fn authenticate(req: &HttpRequest, state: &State) -> Option<HttpResponse> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let (refused, challenge, description) = match &state.config.auth {
        ProviderAuth::None => return None,
        ProviderAuth::Oauth2(settings) => {
            let admitted = state
                .tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admit(settings, authorization);
            (
                !admitted,
                "Bearer",
                "a valid bearer token is required".to_string(),
            )
        }
        ProviderAuth::Oauth1(settings) => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| format!("http://{h}"))
                .unwrap_or_else(|| state.origin.clone());
            let now = chrono::Utc::now().timestamp();
            let request = SignedRequest {
                method: req.method().as_str(),
                origin: host,
                path: req.uri().path(),
                query: req.query_string(),
                authorization,
                now,
            };
            let mut nonces = state.nonces.lock().unwrap_or_else(|e| e.into_inner());
            match verify_oauth1(settings, &mut nonces, &request) {
                Ok(()) => (false, "", String::new()),
                Err(e) => (true, "OAuth", e.to_string()),
            }
        }
    };
    if !refused {
        return None;
    }
    let mut response = if state.config.bodiless_401 {
        HttpResponse::Unauthorized().finish()
    } else {
        imsx(401, "unauthorisedrequest", &description)
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    Some(response)
}

/// The token endpoint: client credentials, client authentication per the configuration.
fn token(req: &HttpRequest, body: &Bytes, state: &State) -> HttpResponse {
    let ProviderAuth::Oauth2(settings) = &state.config.auth else {
        return HttpResponse::NotFound().finish();
    };
    issue_token(req, body, settings, &state.tokens)
}

/// A client-credentials token request answered per RFC 6749 §4.4 and §5 (shared with the
/// partner server): POST only, the form body read, the token or the §5.2 error as JSON.
pub(crate) fn issue_token(
    req: &HttpRequest,
    body: &Bytes,
    settings: &Oauth2Settings,
    tokens: &Mutex<Tokens>,
) -> HttpResponse {
    if req.method() != actix_web::http::Method::POST {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let form = std::str::from_utf8(body)
        .ok()
        .and_then(query_pairs)
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let issued =
        tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issue(settings, authorization, &form);
    match issued {
        Ok(token) => {
            let mut body = json!({
                "access_token": token.access_token,
                "token_type": "Bearer",
                "expires_in": token.expires_in,
            });
            if let Some(scope) = token.scope {
                body["scope"] = Value::String(scope);
            }
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(body)
        }
        Err(e) => {
            let mut response = HttpResponse::build(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            )
            .json(json!({"error": e.code(), "error_description": e.to_string()}));
            if e.status() == 401 {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"token\""),
                );
            }
            response
        }
    }
}

/// A path segment → the collection it reads and the view's kind.
fn route(name: &str) -> Option<(Collection, Option<&'static str>)> {
    Some(match name {
        "orgs" => (Collection::Orgs, None),
        "schools" => (Collection::Orgs, Some("school")),
        "academicSessions" => (Collection::AcademicSessions, None),
        "terms" => (Collection::AcademicSessions, Some("term")),
        "gradingPeriods" => (Collection::AcademicSessions, Some("gradingPeriod")),
        "courses" => (Collection::Courses, None),
        "classes" => (Collection::Classes, None),
        "users" => (Collection::Users, None),
        "students" => (Collection::Users, Some("student")),
        "teachers" => (Collection::Users, Some("teacher")),
        "enrollments" => (Collection::Enrollments, None),
        _ => return None,
    })
}

fn collection(
    req: &HttpRequest,
    state: &State,
    name: &str,
    pairs: &[(String, String)],
    fault: Option<&FaultAction>,
) -> HttpResponse {
    let Some((collection, kind)) = route(name) else {
        return imsx(404, "unknownobject", "no such collection");
    };
    let filter_text = pairs
        .iter()
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.clone());
    let filter = match filter_text.as_deref().map(Filter::parse).transpose() {
        Ok(f) => f,
        Err(e) => return imsx(400, e.code_minor(), &e.to_string()),
    };
    let paging = match Paging::from_query(pairs, state.config.max_page_size) {
        Ok(p) => p,
        Err(e) => return imsx(400, "invaliddata", &e.to_string()),
    };
    let key = SelectionKey {
        collection,
        kind,
        filter: filter_text,
    };
    let page = state
        .data
        .page(&key, filter.as_ref(), paging.offset, paging.limit);
    let envelope = collection.plural();
    let mut response = HttpResponse::Ok();
    if let Some(total) = state.config.total_count.header(page.total) {
        response.insert_header(("X-Total-Count", total));
    }
    if state.config.link_header {
        let url = format!("{}{}", state.origin, req.path());
        response.insert_header((
            header::LINK,
            paging.link_header(&url, req.query_string(), page.total),
        ));
    }
    collection_page(response, envelope, &page.records, fault)
}

/// `{"<envelope>":[records…]}` as a 200's body (each record's JSON already rendered), with a
/// body fault applied; shared with the gradebook server.
pub(crate) fn collection_page(
    mut response: HttpResponseBuilder,
    envelope: &str,
    records: &[Bytes],
    fault: Option<&FaultAction>,
) -> HttpResponse {
    let size = records.iter().map(|r| r.len() + 1).sum::<usize>() + envelope.len() + 8;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(envelope.as_bytes());
    body.extend_from_slice(b"\":[");
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(record);
    }
    body.extend_from_slice(b"]}");

    response.content_type("application/json");
    match fault {
        Some(FaultAction::MalformedJson) => {
            body.truncate(body.len() / 2);
            response.body(body)
        }
        Some(FaultAction::MissingField(field)) => {
            let mut value: Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(Value::Object(first)) =
                value.get_mut(envelope).and_then(|list| list.get_mut(0))
            {
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

fn singleton(state: &State, name: &str, id: &str) -> HttpResponse {
    let Some((collection, kind)) = route(name) else {
        return imsx(404, "unknownobject", "no such collection");
    };
    let found = state
        .data
        .get(collection, id)
        .filter(|record| kind.is_none_or(|k| view_kind(collection, record) == k));
    match found {
        Some(record) => HttpResponse::Ok().json(json!({ collection.singular(): record })),
        None => imsx(404, "unknownobject", "no such record"),
    }
}

/// A served record's view kind, read back from its JSON.
fn view_kind(collection: Collection, record: &Value) -> &str {
    let field = match collection {
        Collection::Users => {
            if let Some(role) = record.get("role").and_then(Value::as_str) {
                return role;
            }
            return record
                .pointer("/roles/0/role")
                .and_then(Value::as_str)
                .unwrap_or_default();
        }
        _ => "type",
    };
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}
