//! `POST …/roster` and `POST …/scores`: a roster pushed by an SIS, or assessment results pushed
//! by a partner, signed as a Standard Webhook with one of the district's push secrets (or sent
//! with a bearer token: `roster:write`, `scores:write`). The body's shape is checked and the body
//! stored before the answer (202, the delivery to follow under `…/inbound/{id}`); a background
//! job then processes it (a roster: a sync run; scores: a score import). `GET …/inbound[/{id}]`
//! shows deliveries;
//! `POST …/inbound/{id}/retry` puts a dead-lettered one back in the queue.

use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, Paging};
use crate::auth::push_secrets::live_secrets;
use crate::domain::district::District;
use crate::domain::scope::Scope;
use crate::events::signing::{self, SignedHeaders, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::inbound::{self, BodyFormat, InboundError, PushKind};
use crate::store::inbound::{self as deliveries, Delivery, DeliveryStatus, Stored};
use crate::store::{districts, runs};

/// Longest `webhook-id` kept (the id of a delivery at its sender).
const MAX_WEBHOOK_ID_CHARS: usize = 256;

/// A delivery as the API shows it: where its body is stays inside.
fn delivery_json(delivery: &Delivery) -> Value {
    json!({
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "kind": delivery.kind,
        "content_type": delivery.content_type,
        "body_bytes": delivery.body_bytes,
        "status": delivery.status.as_str(),
        "run_id": delivery.run_id,
        "errors": delivery.errors,
        "attempts": delivery.attempts,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
        "body_purged_at": delivery.body_purged_at,
    })
}

fn location(district: &District, id: &str) -> String {
    format!("/api/v1/districts/{}/inbound/{id}", district.slug)
}

fn header_text<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What a push route accepts, and how it checks a body's shape before anything is stored.
struct PushRoute {
    kind: PushKind,
    /// What a bearer token needs to push instead of a signature.
    scope: Scope,
    formats: &'static [BodyFormat],
    /// The 415's message, for any other content type.
    unsupported: &'static str,
    /// Refuses (422) a body that could never be processed.
    check: fn(BodyFormat, &[u8]) -> Result<(), ApiError>,
}

const ROSTER_PUSH: PushRoute = PushRoute {
    kind: PushKind::Roster,
    scope: Scope::RosterWrite,
    formats: &[BodyFormat::Json, BodyFormat::Zip],
    unsupported: "a roster push is application/json or application/zip (a OneRoster CSV bundle)",
    check: check_roster,
};

const SCORES_PUSH: PushRoute = PushRoute {
    kind: PushKind::Scores,
    scope: Scope::ScoresWrite,
    formats: &[BodyFormat::Json],
    unsupported: "a score push is application/json (see contracts/schemas/score-push.schema.json)",
    check: check_scores,
};

/// A JSON roster's structure (a zip is read when it is processed).
fn check_roster(format: BodyFormat, bytes: &[u8]) -> Result<(), ApiError> {
    if format != BodyFormat::Json {
        return Ok(());
    }
    crate::sources::oneroster::push::check_shape(bytes).map_err(|problem| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("the push was refused and nothing was stored: {problem}"),
        )
        .with_details(vec![
            serde_json::to_value(&problem).expect("a problem serializes")
        ])
    })
}

/// Every result read in full: one detail per problem, at its JSON pointer.
fn check_scores(_: BodyFormat, bytes: &[u8]) -> Result<(), ApiError> {
    crate::sources::scores::read(bytes).map(|_| ()).map_err(|refusal| {
        let details = refusal
            .problems
            .iter()
            .map(|p| serde_json::to_value(p).expect("a problem serializes"))
            .collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!(
                "the push was refused and nothing was stored: {} problem(s), the first {} listed: {refusal}",
                refusal.total,
                refusal.problems.len()
            ),
        )
        .with_details(details)
    })
}

#[tracing::instrument(skip_all, fields(district = %path.as_str()))]
pub async fn push(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    receive(&state, &req, &path.into_inner(), body, &ROSTER_PUSH).await
}

/// `POST …/scores`: assessment results, stored (and listed under `…/inbound`), then imported by
/// an `inbound_scores` job.
#[tracing::instrument(skip_all, fields(district = %path.as_str()))]
pub async fn push_scores(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    receive(&state, &req, &path.into_inner(), body, &SCORES_PUSH).await
}

/// A push, from its headers to its stored delivery: who sends it (a bearer token, or the
/// district's signature once the body is read), the body within its limit, its shape, and the
/// answer (202, or the first answer again for a webhook id seen before).
async fn receive(
    state: &AppState,
    req: &HttpRequest,
    slug: &str,
    mut body: web::Payload,
    route: &PushRoute,
) -> Result<HttpResponse, ApiError> {
    // A bearer token is checked before the body is read; a signature needs the body.
    let bearer = req.headers().contains_key(header::AUTHORIZATION);
    let district = if bearer {
        let caller = Caller::extract(req).await?;
        caller.district(state, slug, route.scope).await?
    } else {
        districts::find(&state.db, slug)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("district {slug:?} not found")))?
    };
    let format = header_text(req, header::CONTENT_TYPE.as_str())
        .and_then(BodyFormat::from_content_type)
        .filter(|format| route.formats.contains(format))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                route.unsupported,
            )
        })?;
    let webhook_id = header_text(req, HEADER_ID)
        .map(str::trim)
        .filter(|id| !id.is_empty());
    if webhook_id.is_some_and(|id| id.chars().count() > MAX_WEBHOOK_ID_CHARS) {
        return Err(ApiError::bad_request(format!(
            "the {HEADER_ID} header is longer than {MAX_WEBHOOK_ID_CHARS} characters"
        )));
    }
    let max = state.settings.inbound.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {max} bytes"),
        )
    };
    let declared =
        header_text(req, header::CONTENT_LENGTH.as_str()).and_then(|len| len.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("body interrupted: {e}")))?;
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the body is empty"));
    }
    if !bearer {
        let secrets = live_secrets(&state.db, &state.secrets, district.id)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let headers = SignedHeaders {
            id: header_text(req, HEADER_ID),
            timestamp: header_text(req, HEADER_TIMESTAMP),
            signature: header_text(req, HEADER_SIGNATURE),
        };
        signing::verify(&secrets, &headers, &bytes, Utc::now()).map_err(|e| {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string())
        })?;
    }
    (route.check)(format, &bytes)?;
    let stored = inbound::receive(
        &state.db,
        &state.settings,
        district.id,
        route.kind,
        webhook_id,
        format,
        bytes,
    )
    .await
    .map_err(|e| match e {
        InboundError::Store(e) => ApiError::from(e),
        other => ApiError::internal(&other),
    })?;
    let (status, delivery) = match &stored {
        Stored::New(d) => (StatusCode::ACCEPTED, d),
        Stored::Duplicate(d) => (StatusCode::OK, d),
    };
    tracing::info!(delivery = %delivery.id, kind = route.kind.as_str(), duplicate = matches!(stored, Stored::Duplicate(_)), "push received");
    // The first answer again for a repeated webhook id: the same delivery, as received.
    Ok(HttpResponse::build(status)
        .insert_header((header::LOCATION, location(&district, &delivery.id)))
        .json(json!({ "id": delivery.id, "status": "received" })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundQuery {
    limit: Option<String>,
    offset: Option<String>,
    status: Option<String>,
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<InboundQuery>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::RosterRead).await?;
    let query = query.into_inner();
    let (limit, offset) = Paging {
        limit: query.limit,
        offset: query.offset,
    }
    .resolve()?;
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => Some(DeliveryStatus::parse(raw).ok_or_else(|| {
            ApiError::bad_request(
                "status must be one of received, processing, applied, held, failed, dead",
            )
        })?),
    };
    let total = deliveries::count(&state.db, district.id, status).await?;
    let rows = deliveries::list(&state.db, district.id, status, limit, offset).await?;
    let items: Vec<Value> = rows.iter().map(delivery_json).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", total.to_string()))
        .json(json!({ "deliveries": items, "total": total, "limit": limit, "offset": offset })))
}

async fn find(state: &AppState, district: &District, id: &str) -> Result<Delivery, ApiError> {
    deliveries::find(&state.db, district.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("inbound delivery {id:?} not found")))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0, delivery = %path.1))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    let delivery = find(&state, &district, &id).await?;
    let mut answer = delivery_json(&delivery);
    // A held run may since have been approved or discarded: the run's own status says so. A
    // score push's `run_id` is its score import's, which is final when recorded.
    if let Some(run_id) = delivery
        .run_id
        .as_ref()
        .filter(|_| delivery.kind == PushKind::Roster.as_str())
    {
        let run = runs::find(&state.db, district.id, run_id).await?;
        answer["run_status"] = json!(run.map(|r| r.status));
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// Puts a dead-lettered (or failed) delivery back in the queue: its stored body is processed again.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0, delivery = %path.1))]
pub async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let delivery = find(&state, &district, &id).await?;
    let Some(kind) = PushKind::parse(&delivery.kind) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_not_retryable",
            format!(
                "inbound delivery {id:?} is a {} push, which this gateway does not process",
                delivery.kind
            ),
        ));
    };
    let now = Utc::now();
    let retry = uuid::Uuid::new_v4().to_string();
    let job = inbound::processing_job(district.id, kind, &id, Some(&retry), now, &state.settings);
    let from = [DeliveryStatus::Dead, DeliveryStatus::Failed];
    if !deliveries::requeue_with_job(&state.db, district.id, &id, &from, &job, now).await? {
        // Read again: a retention sweep may have purged it since.
        let delivery = find(&state, &district, &id).await?;
        if let Some(purged_at) = delivery.body_purged_at {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "body_purged",
                format!(
                    "inbound delivery {id:?} cannot be processed again: its body was deleted at {} \
                     ([inbound] keep_bodies_days after it was {}); push it again instead",
                    purged_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    delivery.status.as_str()
                ),
            ));
        }
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_not_retryable",
            format!(
                "inbound delivery {id:?} is {}: only a dead or failed delivery is retried",
                delivery.status.as_str()
            ),
        ));
    }
    let delivery = find(&state, &district, &id).await?;
    tracing::info!(delivery = %id, "inbound delivery queued again");
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, location(&district, &id)))
        .json(delivery_json(&delivery)))
}
