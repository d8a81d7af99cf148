//! A subscription's delivery log (what was sent, when, and how each attempt went) and replays
//! of past events to it. Request bodies are never shown: the event is in the events API.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{whole_number, AppState};
use crate::delivery::fanout::receives_type;
use crate::domain::problem::quoted;
use crate::domain::scope::Scope;
use crate::events::envelope::{event_id, parse_event_id};
use crate::store::deliveries::{self, Attempt, Delivery, DeliveryStatus, NewDelivery};
use crate::store::subscriptions::{self, Subscription};

/// Largest page of the delivery log.
pub const MAX_LOG_LIMIT: i64 = 1000;
/// Most events one replay queues; a wider range is refused (narrow it, or replay in parts).
pub const MAX_REPLAY_EVENTS: i64 = 10_000;

pub fn delivery_json(d: &Delivery) -> Value {
    let unfinished = matches!(
        d.status,
        DeliveryStatus::Pending | DeliveryStatus::Delivering
    );
    json!({
        "id": d.id,
        "subscription_id": d.subscription_id,
        "event_id": event_id(d.event_seq),
        "event_type": d.event_type,
        "subject": d.subject_id,
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "next_attempt_at": unfinished.then_some(d.next_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "finished_at": d.finished_at,
    })
}

fn attempt_json(a: &Attempt) -> Value {
    json!({
        "attempt": a.attempt,
        "attempted_at": a.attempted_at,
        "status_code": a.status_code,
        "duration_ms": a.duration_ms,
        "error": a.error,
        "response_excerpt": a.response_excerpt,
    })
}

fn subscription_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("subscription {} not found", quoted(id)))
}

async fn subscription(
    state: &AppState,
    district_id: i64,
    id: &str,
) -> Result<Subscription, ApiError> {
    subscriptions::find(&state.db, district_id, id)
        .await?
        .ok_or_else(|| subscription_not_found(id))
}

/// `?status=&after=&limit=` of the log; all text, so bad values are refused in our words.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub status: Option<String>,
    pub after: Option<String>,
    pub limit: Option<String>,
}

/// The log's filter and page: `(status, before id, limit)`.
fn read_log_query(q: &LogQuery) -> Result<(Option<DeliveryStatus>, Option<i64>, i64), ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be one of pending, delivering, delivered, failed; not {}",
                quoted(text)
            ))
        })?),
    };
    let after = match q.after.as_deref() {
        None => None,
        Some(raw) => Some(whole_number(Some(raw), 0, 1..=i64::MAX).ok_or_else(|| {
            ApiError::bad_request("after must be a delivery id (a whole number, 1 or more)")
        })?),
    };
    let limit = whole_number(q.limit.as_deref(), 100, 1..=MAX_LOG_LIMIT).ok_or_else(|| {
        ApiError::bad_request(format!(
            "limit must be a whole number from 1 to {MAX_LOG_LIMIT}"
        ))
    })?;
    Ok((status, after, limit))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<LogQuery>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let (status, after, limit) = read_log_query(&query)?;
    let subscription = subscription(&state, district.id, &id).await?;
    let page = deliveries::list(
        &state.db,
        district.id,
        &subscription.id,
        status,
        after,
        limit,
    )
    .await?;
    let next_after = (page.len() as i64 == limit)
        .then(|| page.last().map(|d| d.id))
        .flatten();
    let listed: Vec<Value> = page.iter().map(delivery_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "deliveries": listed, "next_after": next_after })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, raw_id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let not_found = || ApiError::not_found(format!("delivery {} not found", quoted(&raw_id)));
    let id = whole_number(Some(&raw_id), 0, 1..=i64::MAX).ok_or_else(not_found)?;
    let delivery = deliveries::find(&state.db, district.id, id)
        .await?
        .ok_or_else(not_found)?;
    let attempts = deliveries::attempts(&state.db, delivery.id).await?;
    let mut view = delivery_json(&delivery);
    view["attempt_log"] = attempts.iter().map(attempt_json).collect();
    Ok(HttpResponse::Ok().json(view))
}

/// What a replay asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayRequest {
    Event(i64),
    Range {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

fn invalid(pointer: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    let shown = if pointer.is_empty() {
        format!("the body {message}")
    } else {
        format!("{pointer}: {message}")
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", shown)
        .with_details(vec![json!({ "pointer": pointer, "message": message })])
}

fn timestamp(
    object: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<DateTime<Utc>, ApiError> {
    let pointer = format!("/{key}");
    match object.get(key) {
        None => Err(invalid(&pointer, "is required with a range")),
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                invalid(
                    &pointer,
                    "must be an RFC 3339 date-time (2026-09-01T08:00:00Z)",
                )
            }),
        Some(_) => Err(invalid(
            &pointer,
            "must be a string (an RFC 3339 date-time)",
        )),
    }
}

/// Reads `{"event_id": "evt_…"}` or `{"since": …, "until": …}`.
pub fn read_replay(body: &Value) -> Result<ReplayRequest, ApiError> {
    const KNOWN: [&str; 3] = ["event_id", "since", "until"];
    let Some(object) = body.as_object() else {
        return Err(invalid("", "must be an object"));
    };
    if let Some(key) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(invalid(
            &format!("/{}", key.replace('~', "~0").replace('/', "~1")),
            format!("unknown field (known: {})", KNOWN.join(", ")),
        ));
    }
    let ranged = object.contains_key("since") || object.contains_key("until");
    match object.get("event_id") {
        Some(_) if ranged => Err(invalid(
            "/event_id",
            "give either event_id or since and until, not both",
        )),
        Some(Value::String(text)) => {
            parse_event_id(text)
                .map(ReplayRequest::Event)
                .ok_or_else(|| {
                    invalid(
                        "/event_id",
                        format!("{} is not an event id (evt_<number>)", quoted(text)),
                    )
                })
        }
        Some(_) => Err(invalid("/event_id", "must be a string (evt_<number>)")),
        None if !ranged => Err(invalid("", "must hold event_id, or since and until")),
        None => {
            let since = timestamp(object, "since")?;
            let until = timestamp(object, "until")?;
            if since >= until {
                return Err(invalid("/until", "must be later than since"));
            }
            Ok(ReplayRequest::Range { since, until })
        }
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn replay(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let request = read_replay(&body)?;
    let subscription = subscription(&state, district.id, &id).await?;
    let filter = crate::store::deliveries::SubscriptionFilter {
        id: subscription.id.clone(),
        event_types: subscription.event_types.clone(),
        created_at: subscription.created_at,
    };
    let events = match request {
        ReplayRequest::Event(seq) => {
            let event = deliveries::find_event(&state.db, district.id, seq)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("event {} not found", quoted(&event_id(seq))))
                })?;
            if !receives_type(&filter, &event.event_type) {
                return Err(invalid(
                    "/event_id",
                    format!(
                        "{} is a {} event, which this subscription does not receive",
                        event_id(seq),
                        event.event_type
                    ),
                ));
            }
            vec![event]
        }
        ReplayRequest::Range { since, until } => {
            let found = deliveries::events_between(
                &state.db,
                district.id,
                since,
                until,
                MAX_REPLAY_EVENTS + 1,
            )
            .await?;
            if found.len() as i64 > MAX_REPLAY_EVENTS {
                return Err(invalid(
                    "/until",
                    format!(
                        "the range holds more than {MAX_REPLAY_EVENTS} events: narrow it, or replay it in parts"
                    ),
                ));
            }
            found
                .into_iter()
                .filter(|e| receives_type(&filter, &e.event_type))
                .collect()
        }
    };
    let new: Vec<NewDelivery> = events
        .iter()
        .map(|e| NewDelivery {
            subscription_id: subscription.id.clone(),
            event_seq: e.id,
            subject_id: e.subject_id.clone(),
        })
        .collect();
    let queued = deliveries::queue(&state.db, district.id, &new, Utc::now()).await?;
    tracing::info!(subscription = %subscription.id, queued, "webhook replay queued");
    Ok(HttpResponse::Accepted().json(json!({ "queued": queued })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer_of(body: Value) -> String {
        let error = read_replay(&body).expect_err("refused");
        assert_eq!(error.code, "invalid_body");
        error.details[0]["pointer"].as_str().unwrap().to_string()
    }

    #[test]
    fn replay_bodies_are_read_or_refused_at_their_member() {
        let cases = [
            (json!([]), ""),
            (json!("evt_1"), ""),
            (json!({}), ""),
            (json!({"event_id": 7}), "/event_id"),
            (json!({"event_id": "evt_0"}), "/event_id"),
            (json!({"event_id": "7"}), "/event_id"),
            (
                json!({"event_id": "evt_1", "since": "2026-09-01T00:00:00Z"}),
                "/event_id",
            ),
            (json!({"since": "2026-09-01T00:00:00Z"}), "/until"),
            (json!({"until": "2026-09-01T00:00:00Z"}), "/since"),
            (
                json!({"since": "yesterday", "until": "2026-09-01T00:00:00Z"}),
                "/since",
            ),
            (
                json!({"since": 1, "until": "2026-09-01T00:00:00Z"}),
                "/since",
            ),
            (
                json!({"since": "2026-09-02T00:00:00Z", "until": "2026-09-01T00:00:00Z"}),
                "/until",
            ),
            (
                json!({"since": "2026-09-01T00:00:00Z", "until": "2026-09-01T00:00:00Z"}),
                "/until",
            ),
            (json!({"event_id": "evt_1", "a/b": 1}), "/a~1b"),
        ];
        for (body, want) in cases {
            assert_eq!(pointer_of(body.clone()), want, "{body}");
        }
    }

    #[test]
    fn an_event_id_or_a_range_is_read() {
        assert_eq!(
            read_replay(&json!({"event_id": "evt_42"})).unwrap(),
            ReplayRequest::Event(42)
        );
        let got = read_replay(
            &json!({"since": "2026-09-01T00:00:00+02:00", "until": "2026-09-02T00:00:00Z"}),
        )
        .unwrap();
        match got {
            ReplayRequest::Range { since, until } => {
                assert_eq!(since.to_rfc3339(), "2026-08-31T22:00:00+00:00");
                assert_eq!(until.to_rfc3339(), "2026-09-02T00:00:00+00:00");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn log_queries_are_checked() {
        let q = |status: Option<&str>, after: Option<&str>, limit: Option<&str>| LogQuery {
            status: status.map(String::from),
            after: after.map(String::from),
            limit: limit.map(String::from),
        };
        assert_eq!(
            read_log_query(&q(Some("failed"), Some("9"), Some("5"))).unwrap(),
            (Some(DeliveryStatus::Failed), Some(9), 5)
        );
        assert_eq!(
            read_log_query(&q(None, None, None)).unwrap(),
            (None, None, 100)
        );
        for bad in [
            q(Some("done"), None, None),
            q(None, Some("0"), None),
            q(None, Some("x"), None),
            q(None, None, Some("1001")),
            q(None, None, Some("0")),
        ] {
            assert!(read_log_query(&bad).is_err(), "{bad:?}");
        }
    }
}
