//! A district's webhook subscriptions. The signing secret is in the answer to the request that
//! made it (create, rotate-secret) and nowhere else.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::domain::scope::Scope;
use crate::events::signing::WebhookSecret;
use crate::events::subscriptions::{
    self as rules, Field, FieldError, SubscriptionInput, DEFAULT_PREVIOUS_SECRET_LIFETIME,
};
use crate::outbound::target_guard::TargetGuard;
use crate::store::subscriptions::{self, Status, Subscription};

/// A subscription as the API (and the CLI's `--json`) shows it: never its secrets.
pub fn subscription_json(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "url": s.url,
        "event_types": s.event_types,
        "description": s.description,
        "status": s.status.name(),
        "disabled_reason": s.status.disabled_reason(),
        "failing_since": s.failing_since,
        "previous_secret_expires_at": s.previous_secret_expires_at,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

/// The view of a subscription with the secret just made for it.
pub fn with_secret(s: &Subscription, secret: &WebhookSecret) -> Value {
    let mut view = subscription_json(s);
    view["secret"] = json!(secret.to_text().expose());
    view
}

fn pointer(field: Field) -> String {
    match field {
        Field::Url => "/url".into(),
        Field::EventType(i) => format!("/event_types/{i}"),
        Field::Description => "/description".into(),
    }
}

/// `422 code`, one detail per problem at its JSON pointer.
fn refusal(code: &'static str, problems: Vec<(String, String)>) -> ApiError {
    let message = problems
        .iter()
        .map(|(at, m)| match at.as_str() {
            "" => format!("the body {m}"),
            at => format!("{at}: {m}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let details = problems
        .into_iter()
        .map(|(at, m)| json!({ "pointer": at, "message": m }))
        .collect();
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_details(details)
}

fn invalid_fields(errors: Vec<FieldError>) -> ApiError {
    refusal(
        "invalid_field",
        errors
            .into_iter()
            .map(|e| (pointer(e.field), e.message))
            .collect(),
    )
}

/// `~` and `/` escaped as RFC 6901 says, for a member name in a pointer.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Reads a create body, or refuses it naming every member of the wrong type, missing or unknown.
fn input_from_json(body: &Value) -> Result<SubscriptionInput, ApiError> {
    const KNOWN: [&str; 3] = ["url", "event_types", "description"];
    let Some(object) = body.as_object() else {
        return Err(refusal(
            "invalid_body",
            vec![(String::new(), "must be an object".into())],
        ));
    };
    let mut problems = Vec::new();
    for key in object.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        problems.push((
            format!("/{}", escape(key)),
            format!("unknown field (known: {})", KNOWN.join(", ")),
        ));
    }
    let mut input = SubscriptionInput::default();
    match object.get("url") {
        None => problems.push(("/url".into(), "is required".into())),
        Some(Value::String(url)) => input.url = url.clone(),
        Some(_) => problems.push(("/url".into(), "must be a string".into())),
    }
    match object.get("event_types") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(name) => input.event_types.push(name.to_string()),
                    None => problems.push((format!("/event_types/{i}"), "must be a string".into())),
                }
            }
        }
        Some(_) => problems.push(("/event_types".into(), "must be an array of strings".into())),
    }
    match object.get("description") {
        None => {}
        Some(Value::String(d)) => input.description = Some(d.clone()),
        Some(_) => problems.push(("/description".into(), "must be a string".into())),
    }
    if problems.is_empty() {
        Ok(input)
    } else {
        Err(refusal("invalid_body", problems))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "subscription {} not found",
        crate::domain::problem::quoted(id)
    ))
}

fn location(district: &impl std::fmt::Display, id: &str) -> String {
    format!("/api/v1/districts/{district}/subscriptions/{id}")
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let all = subscriptions::list(&state.db, district.id).await?;
    let listed: Vec<Value> = all.iter().map(subscription_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "subscriptions": listed })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let input = input_from_json(&body)?;
    let guard = TargetGuard::from_settings(&state.settings.outbound);
    let new = rules::validate(&input, &guard)
        .await
        .map_err(invalid_fields)?;
    let (stored, secret) = rules::create(&state.db, &state.secrets, district.id, &new).await?;
    tracing::info!(subscription = %stored.id, "subscription created");
    Ok(HttpResponse::Created()
        .insert_header(("Location", location(&district.slug, &stored.id)))
        .json(with_secret(&stored, &secret)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let stored = subscriptions::find(&state.db, district.id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(subscription_json(&stored)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    if subscriptions::delete(&state.db, district.id, &id).await? {
        tracing::info!(subscription = %id, "subscription removed");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found(&id))
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let (stored, secret) = rules::rotate_secret(
        &state.db,
        &state.secrets,
        district.id,
        &id,
        DEFAULT_PREVIOUS_SECRET_LIFETIME,
    )
    .await?
    .ok_or_else(|| not_found(&id))?;
    tracing::info!(subscription = %stored.id, "subscription secret rotated");
    Ok(HttpResponse::Ok().json(with_secret(&stored, &secret)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn enable(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let stored = subscriptions::set_status(&state.db, district.id, &id, &Status::Enabled)
        .await?
        .ok_or_else(|| not_found(&id))?;
    tracing::info!(subscription = %stored.id, "subscription enabled");
    Ok(HttpResponse::Ok().json(subscription_json(&stored)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(body: Value) -> Vec<String> {
        let error = input_from_json(&body).expect_err("refused");
        assert_eq!(error.code, "invalid_body");
        error
            .details
            .iter()
            .map(|d| d["pointer"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn wrong_types_and_unknown_members_are_refused_at_their_pointers() {
        let cases = [
            (json!([]), vec![""]),
            (json!({}), vec!["/url"]),
            (json!({"url": 1}), vec!["/url"]),
            (
                json!({"url": "https://x.org", "event_types": "class.created"}),
                vec!["/event_types"],
            ),
            (
                json!({"url": "https://x.org", "event_types": ["class.created", 2], "description": null}),
                vec!["/event_types/1", "/description"],
            ),
            (
                json!({"url": "https://x.org", "secret": "mine", "a/b": 1}),
                vec!["/a~1b", "/secret"],
            ),
        ];
        for (body, want) in cases {
            assert_eq!(pointers(body.clone()), want, "{body}");
        }
    }

    #[test]
    fn a_full_body_is_read() {
        let input = input_from_json(&json!({"url": "https://x.org/h",
            "event_types": ["class.created"], "description": "LMS"}))
        .unwrap();
        assert_eq!(input.url, "https://x.org/h");
        assert_eq!(input.event_types, ["class.created"]);
        assert_eq!(input.description.as_deref(), Some("LMS"));
    }
}
