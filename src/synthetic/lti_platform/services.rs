//! The platform's LTI Advantage services as a strict platform serves them (reference §9–§11):
//! `POST /token` (client credentials with the tool's signed client assertion, checked against
//! the tool's key set given by [`LtiPlatform::trust_tool_keys`]), NRPS memberships at
//! `GET /nrps/{context}` (paged by `Link: rel="next"`), and AGS line items at
//! `GET|POST /lineitems/{context}` with scores at `POST /lineitems/{context}/{n}/scores`. Each
//! checks the bearer token's scope and the media types, and AGS refuses a score not newer than
//! the last one (409). [`LtiPlatform::revoke_service_tokens`] makes every token issued so far
//! fail with 401, as an expiry mid-pull does.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use actix_web::http::header::{self, ContentType};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::{lock, LtiPlatform, State};
use crate::synthetic::provider::query_pairs;

pub const TOKEN_PATH: &str = "/token";
const NRPS_PREFIX: &str = "/nrps/";
const LINEITEMS_PREFIX: &str = "/lineitems/";
const NRPS_MEDIA_TYPE: &str = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json";
const LINEITEM_MEDIA_TYPE: &str = "application/vnd.ims.lis.v2.lineitem+json";
const LINEITEMS_MEDIA_TYPE: &str = "application/vnd.ims.lis.v2.lineitemcontainer+json";
const SCORE_MEDIA_TYPE: &str = "application/vnd.ims.lis.v1.score+json";
const SCOPE_NRPS: &str =
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
const SCOPE_LINEITEM: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";
const SCOPE_LINEITEM_READONLY: &str =
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly";
const SCOPE_SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";

/// A token request the platform received, and how it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    pub scopes: Vec<String>,
    /// The client assertion's verified claims (`null` when it did not verify).
    pub assertion: Value,
    pub status: u16,
    pub refusal: Option<String>,
}

/// A score the platform accepted, on its line item.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedScore {
    pub line_item: String,
    pub body: Value,
}

/// The services' share of the platform's state.
#[derive(Default)]
pub(super) struct Services {
    tool_keys: Mutex<HashMap<String, DecodingKey>>,
    /// Token → its scopes; revoked ones are removed.
    tokens: Mutex<HashMap<String, Vec<String>>>,
    seen_jti: Mutex<HashSet<String>>,
    token_requests: Mutex<Vec<TokenRequest>>,
    /// Context → members.
    members: Mutex<HashMap<String, Vec<Value>>>,
    page_size: Mutex<Option<usize>>,
    /// Context → line items (each with its `id` URL).
    line_items: Mutex<HashMap<String, Vec<Value>>>,
    scores: Mutex<Vec<ReceivedScore>>,
    /// (line item, user) → the last timestamp accepted.
    last_stamp: Mutex<HashMap<(String, String), String>>,
}

impl LtiPlatform {
    /// `http://127.0.0.1:PORT/token`: the registration's token URL.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.state.origin)
    }

    /// The memberships URL of a context, for a launch's NRPS claim.
    pub fn memberships_url(&self, context: &str) -> String {
        format!("{}{NRPS_PREFIX}{context}", self.state.origin)
    }

    /// The line items URL of a context, for a launch's AGS claim.
    pub fn lineitems_url(&self, context: &str) -> String {
        format!("{}{LINEITEMS_PREFIX}{context}", self.state.origin)
    }

    /// Client assertions are verified with these keys (the tool's `GET /lti/jwks`).
    pub fn trust_tool_keys(&self, jwks: &Value) {
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone())
            .unwrap_or(jsonwebtoken::jwk::JwkSet { keys: vec![] });
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        *lock(&self.state.services.tool_keys) = keys;
    }

    /// The members NRPS lists for a context (NRPS member objects).
    pub fn set_members(&self, context: &str, members: Vec<Value>) {
        lock(&self.state.services.members).insert(context.to_string(), members);
    }

    /// Pages of at most this many members (default: all on one page).
    pub fn set_membership_page_size(&self, size: usize) {
        *lock(&self.state.services.page_size) = Some(size.max(1));
    }

    /// Every service token issued so far answers 401 from now on.
    pub fn revoke_service_tokens(&self) {
        lock(&self.state.services.tokens).clear();
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.services.token_requests).clone()
    }

    /// A context's line items.
    pub fn line_items(&self, context: &str) -> Vec<Value> {
        lock(&self.state.services.line_items)
            .get(context)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds a line item to a context, as an instructor making a column would; its URL.
    pub fn add_line_item(&self, context: &str, item: Value) -> String {
        add_line_item(&self.state, context, item)
    }

    pub fn received_scores(&self) -> Vec<ReceivedScore> {
        lock(&self.state.services.scores).clone()
    }
}

fn add_line_item(state: &State, context: &str, mut item: Value) -> String {
    let mut items = lock(&state.services.line_items);
    let list = items.entry(context.to_string()).or_default();
    let id = format!(
        "{}{LINEITEMS_PREFIX}{context}/{}",
        state.origin,
        list.len() + 1
    );
    item["id"] = json!(id);
    list.push(item);
    id
}

type Answer = (HttpResponse, Option<String>);

fn refused(status: u16, message: impl Into<String>) -> Answer {
    let message = message.into();
    let response =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
            .content_type(ContentType::plaintext())
            .body(message.clone());
    (response, Some(message))
}

/// The answer for a service path; `None` for any other path.
pub(super) fn respond(req: &HttpRequest, body: &[u8], state: &State) -> Option<Answer> {
    let path = req.path();
    let method = req.method();
    if path == TOKEN_PATH {
        return Some(if method == Method::POST {
            token(body, state)
        } else {
            refused(405, "POST only")
        });
    }
    if let Some(context) = path.strip_prefix(NRPS_PREFIX) {
        return Some(memberships(req, context, state));
    }
    let rest = path.strip_prefix(LINEITEMS_PREFIX)?;
    let parts: Vec<&str> = rest.split('/').collect();
    Some(match (method.clone(), parts.as_slice()) {
        (Method::GET, [context]) => list_line_items(req, context, state),
        (Method::POST, [context]) => create_line_item(req, body, context, state),
        (Method::POST, [context, n, "scores"]) => score(req, body, (context, n), state),
        _ => refused(404, "no such line item endpoint"),
    })
}

fn header(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The bearer token's scopes, if it is a live token holding `any_of` one of these.
fn authorize(req: &HttpRequest, state: &State, any_of: &[&str]) -> Result<(), Box<Answer>> {
    let bearer = header(req, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Box::new(refused(401, "a bearer token is required")))?;
    let tokens = lock(&state.services.tokens);
    let scopes = tokens
        .get(bearer)
        .ok_or_else(|| Box::new(refused(401, "the token is not valid (expired or revoked)")))?;
    if any_of.iter().any(|s| scopes.iter().any(|t| t == s)) {
        Ok(())
    } else {
        Err(Box::new(refused(
            403,
            format!("the token lacks the scope: one of {any_of:?}"),
        )))
    }
}

fn token(body: &[u8], state: &State) -> Answer {
    let form = query_pairs(&String::from_utf8_lossy(body)).unwrap_or_default();
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let scopes: Vec<String> = get("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let checked = check_token_request(&get, &scopes, state);
    let (answer, assertion) = match checked {
        Ok(claims) => {
            let token = uuid::Uuid::new_v4().to_string();
            lock(&state.services.tokens).insert(token.clone(), scopes.clone());
            let response = HttpResponse::Ok().json(json!({
                "access_token": token, "token_type": "Bearer", "expires_in": 3600,
                "scope": scopes.join(" "),
            }));
            ((response, None), claims)
        }
        Err((status, error, message)) => {
            let response = HttpResponse::build(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            )
            .json(json!({"error": error, "error_description": message}));
            ((response, Some(format!("{error}: {message}"))), Value::Null)
        }
    };
    lock(&state.services.token_requests).push(TokenRequest {
        scopes,
        assertion,
        status: answer.0.status().as_u16(),
        refusal: answer.1.clone(),
    });
    answer
}

type TokenRefusal = (u16, &'static str, String);

fn check_token_request(
    get: &dyn Fn(&str) -> Option<String>,
    scopes: &[String],
    state: &State,
) -> Result<Value, TokenRefusal> {
    let invalid = |m: String| (400, "invalid_request", m);
    if get("grant_type").as_deref() != Some("client_credentials") {
        return Err(invalid("grant_type must be client_credentials".into()));
    }
    if get("client_assertion_type").as_deref()
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err(invalid("client_assertion_type must be jwt-bearer".into()));
    }
    let assertion =
        get("client_assertion").ok_or_else(|| invalid("client_assertion is missing".into()))?;
    let client = |m: String| (401, "invalid_client", m);
    let header = jsonwebtoken::decode_header(&assertion).map_err(|e| client(e.to_string()))?;
    let kid = header
        .kid
        .ok_or_else(|| client("the assertion has no kid".into()))?;
    let key = lock(&state.services.tool_keys)
        .get(&kid)
        .cloned()
        .ok_or_else(|| client(format!("no tool key {kid:?}")))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[format!("{}{TOKEN_PATH}", state.origin)]);
    validation.set_issuer(&[&state.config.client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud", "jti"]);
    let claims = jsonwebtoken::decode::<Value>(&assertion, &key, &validation)
        .map_err(|e| client(e.to_string()))?
        .claims;
    if claims["sub"] != json!(state.config.client_id) {
        return Err(client("sub must be the client id".into()));
    }
    if !claims["aud"].is_string() {
        return Err(client("aud must be one string".into()));
    }
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - chrono::Utc::now().timestamp();
    if lifetime > 300 + 5 {
        return Err(client(format!(
            "the assertion lives {lifetime} s, more than 5 minutes"
        )));
    }
    let jti = claims["jti"].as_str().unwrap_or_default().to_string();
    if !lock(&state.services.seen_jti).insert(jti) {
        return Err(client("the assertion's jti was used before".into()));
    }
    let known = [
        SCOPE_NRPS,
        SCOPE_LINEITEM,
        SCOPE_LINEITEM_READONLY,
        SCOPE_SCORE,
    ];
    if scopes.is_empty() || scopes.iter().any(|s| !known.contains(&s.as_str())) {
        return Err((400, "invalid_scope", format!("unknown scopes {scopes:?}")));
    }
    Ok(claims)
}

fn memberships(req: &HttpRequest, context: &str, state: &State) -> Answer {
    if req.method() != Method::GET {
        return refused(405, "GET only");
    }
    if header(req, header::ACCEPT) != Some(NRPS_MEDIA_TYPE) {
        return refused(406, format!("Accept must be {NRPS_MEDIA_TYPE}"));
    }
    if let Err(answer) = authorize(req, state, &[SCOPE_NRPS]) {
        return *answer;
    }
    let Some(members) = lock(&state.services.members).get(context).cloned() else {
        return refused(404, "no such context");
    };
    let page: usize = query_pairs(req.query_string())
        .unwrap_or_default()
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let size = lock(&state.services.page_size).unwrap_or(members.len().max(1));
    let start = page * size;
    let slice: Vec<Value> = members.iter().skip(start).take(size).cloned().collect();
    let mut response = HttpResponse::Ok();
    response.content_type(NRPS_MEDIA_TYPE);
    if start + size < members.len() {
        let next = format!("{}{NRPS_PREFIX}{context}?page={}", state.origin, page + 1);
        response.insert_header((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    let body = json!({
        "id": format!("{}{NRPS_PREFIX}{context}", state.origin),
        "context": {"id": context, "title": "Course"},
        "members": slice,
    });
    (response.body(body.to_string()), None)
}

fn list_line_items(req: &HttpRequest, context: &str, state: &State) -> Answer {
    if header(req, header::ACCEPT) != Some(LINEITEMS_MEDIA_TYPE) {
        return refused(406, format!("Accept must be {LINEITEMS_MEDIA_TYPE}"));
    }
    if let Err(answer) = authorize(req, state, &[SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY]) {
        return *answer;
    }
    let query = query_pairs(req.query_string()).unwrap_or_default();
    let resource_id = query
        .iter()
        .find(|(k, _)| k == "resource_id")
        .map(|(_, v)| v.clone());
    let items: Vec<Value> = lock(&state.services.line_items)
        .get(context)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|item| {
            resource_id
                .as_deref()
                .is_none_or(|r| item["resourceId"].as_str() == Some(r))
        })
        .collect();
    let response = HttpResponse::Ok()
        .content_type(LINEITEMS_MEDIA_TYPE)
        .body(Value::Array(items).to_string());
    (response, None)
}

fn create_line_item(req: &HttpRequest, body: &[u8], context: &str, state: &State) -> Answer {
    if header(req, header::CONTENT_TYPE) != Some(LINEITEM_MEDIA_TYPE) {
        return refused(415, format!("Content-Type must be {LINEITEM_MEDIA_TYPE}"));
    }
    if let Err(answer) = authorize(req, state, &[SCOPE_LINEITEM]) {
        return *answer;
    }
    let Ok(item) = serde_json::from_slice::<Value>(body) else {
        return refused(400, "the line item is not JSON");
    };
    if item["label"].as_str().is_none_or(|l| l.trim().is_empty()) {
        return refused(400, "label is required");
    }
    if !item["scoreMaximum"].as_f64().is_some_and(|m| m > 0.0) {
        return refused(400, "scoreMaximum must be more than 0");
    }
    let id = add_line_item(state, context, item);
    let created = lock(&state.services.line_items)[context]
        .iter()
        .find(|i| i["id"] == json!(id))
        .cloned()
        .unwrap_or_default();
    let response = HttpResponse::Created()
        .content_type(LINEITEM_MEDIA_TYPE)
        .body(created.to_string());
    (response, None)
}

fn score(req: &HttpRequest, body: &[u8], (context, n): (&str, &str), state: &State) -> Answer {
    if header(req, header::CONTENT_TYPE) != Some(SCORE_MEDIA_TYPE) {
        return refused(415, format!("Content-Type must be {SCORE_MEDIA_TYPE}"));
    }
    if let Err(answer) = authorize(req, state, &[SCOPE_SCORE]) {
        return *answer;
    }
    let line_item = format!("{}{LINEITEMS_PREFIX}{context}/{n}", state.origin);
    if !lock(&state.services.line_items)
        .get(context)
        .is_some_and(|items| items.iter().any(|i| i["id"] == json!(line_item)))
    {
        return refused(404, "no such line item");
    }
    let Ok(score) = serde_json::from_slice::<Value>(body) else {
        return refused(400, "the score is not JSON");
    };
    for required in ["userId", "activityProgress", "gradingProgress", "timestamp"] {
        if !score[required].is_string() {
            return refused(400, format!("{required} is required"));
        }
    }
    if score.get("scoreGiven").is_some() && !score["scoreMaximum"].is_number() {
        return refused(400, "scoreMaximum is required with scoreGiven");
    }
    let stamp = score["timestamp"].as_str().unwrap_or_default().to_string();
    let Ok(parsed) = chrono::DateTime::parse_from_rfc3339(&stamp) else {
        return refused(400, "timestamp must be ISO 8601 with an offset");
    };
    if !stamp.contains('.') {
        return refused(400, "timestamp must have sub-second precision");
    }
    let key = (
        line_item.clone(),
        score["userId"].as_str().unwrap_or_default().to_string(),
    );
    let mut last = lock(&state.services.last_stamp);
    if let Some(previous) = last.get(&key) {
        let previous = chrono::DateTime::parse_from_rfc3339(previous).expect("stored stamps parse");
        if parsed <= previous {
            return refused(409, "the timestamp is not newer than the last score's");
        }
    }
    last.insert(key, stamp);
    lock(&state.services.scores).push(ReceivedScore {
        line_item,
        body: score,
    });
    (HttpResponse::NoContent().finish(), None)
}
