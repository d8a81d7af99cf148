//! Accounts: those linked in a district (read through the district's scope), and grassroots
//! sign-ups the learning platform reports (operator token).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, Paging};
use crate::domain::account::NewGrassroots;
use crate::domain::scope::Scope;
use crate::store::accounts;

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::RosterRead).await?;
    let (limit, offset) = paging.resolve()?;
    let (page, total) = accounts::list_linked(&state.db, district.id, limit, offset).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", total.to_string()))
        .json(json!({ "accounts": page, "total": total, "limit": limit, "offset": offset })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, account_id) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    let account = accounts::find_linked(&state.db, district.id, &account_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such account in this district"))?;
    Ok(HttpResponse::Ok().json(account))
}

/// The members a grassroots sign-up has, all text.
const SIGN_UP_FIELDS: [&str; 4] = ["email", "given_name", "family_name", "role_family"];

/// Refusals at JSON pointers: `422 invalid_field` with one detail per problem.
fn refusal(problems: Vec<(String, String)>) -> ApiError {
    let message = problems
        .iter()
        .map(|(at, m)| format!("{}: {m}", if at.is_empty() { "the body" } else { at }))
        .collect::<Vec<_>>()
        .join("; ");
    let details = problems
        .into_iter()
        .map(|(at, m)| json!({ "pointer": at, "message": m }))
        .collect();
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_details(details)
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require_operator()?;
    let Some(object) = body.as_object() else {
        return Err(refusal(vec![(
            String::new(),
            "must be a JSON object".into(),
        )]));
    };
    let mut problems = Vec::new();
    for key in object.keys() {
        if !SIGN_UP_FIELDS.contains(&key.as_str()) {
            problems.push((
                format!("/{}", key.replace('~', "~0").replace('/', "~1")),
                "is not a field of an account".to_string(),
            ));
        }
    }
    let mut text = |field: &str| match object.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            problems.push((format!("/{field}"), "must be a string".into()));
            String::new()
        }
        None => {
            problems.push((format!("/{field}"), "is required".into()));
            String::new()
        }
    };
    let [email, given_name, family_name, role_family] = SIGN_UP_FIELDS.map(&mut text);
    let parsed = NewGrassroots::parse(&email, &given_name, &family_name, &role_family);
    if let Err(field_problems) = &parsed {
        for p in field_problems {
            let at = format!("/{}", p.field);
            // A member already refused for its type or absence is not refused twice.
            if !problems.iter().any(|(a, _)| *a == at) {
                problems.push((at, p.message.clone()));
            }
        }
    }
    let account = match parsed {
        Ok(account) if problems.is_empty() => account,
        _ => return Err(refusal(problems)),
    };
    let row = accounts::create_grassroots(&state.db, &account, chrono::Utc::now()).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/accounts/{}", row.id)))
        .json(row))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject))]
pub async fn get_any(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_operator()?;
    let account = accounts::find(&state.db, &path)
        .await?
        .ok_or_else(|| ApiError::not_found("no such account"))?;
    Ok(HttpResponse::Ok().json(account))
}
