//! The read API: roster records of one district, a user's classes, and coaching.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, Paging};
use crate::domain::records::{ColumnType, RecordKind};
use crate::domain::scope::Scope;
use crate::store::roster::{self, CoachingLink, StoredRecord};

/// Collection and item paths of the record types the API serves.
pub const PATHS: [(&str, &str); 6] = [
    (
        "/api/v1/districts/{district}/orgs",
        "/api/v1/districts/{district}/orgs/{sourced_id}",
    ),
    (
        "/api/v1/districts/{district}/academicSessions",
        "/api/v1/districts/{district}/academicSessions/{sourced_id}",
    ),
    (
        "/api/v1/districts/{district}/courses",
        "/api/v1/districts/{district}/courses/{sourced_id}",
    ),
    (
        "/api/v1/districts/{district}/classes",
        "/api/v1/districts/{district}/classes/{sourced_id}",
    ),
    (
        "/api/v1/districts/{district}/users",
        "/api/v1/districts/{district}/users/{sourced_id}",
    ),
    (
        "/api/v1/districts/{district}/enrollments",
        "/api/v1/districts/{district}/enrollments/{sourced_id}",
    ),
];

/// The record kind a matched route serves (the segment after `{district}`).
fn kind_of(req: &HttpRequest) -> RecordKind {
    let pattern = req.match_pattern().unwrap_or_default();
    pattern
        .split('/')
        .skip_while(|s| *s != "{district}")
        .nth(1)
        .and_then(RecordKind::from_oneroster_name)
        .expect("roster routes name their record type")
}

/// A record as OneRoster-style JSON: camelCase fields, lists as arrays, extensions under `metadata`.
pub fn record_json(kind: RecordKind, record: &StoredRecord) -> Value {
    let mut obj = Map::new();
    obj.insert("sourcedId".into(), json!(record.sourced_id));
    obj.insert(
        "status".into(),
        json!(if record.active {
            "active"
        } else {
            "tobedeleted"
        }),
    );
    for (column, value) in kind.columns().iter().zip(&record.values) {
        let Some(value) = value else { continue };
        let v = match column.ty {
            ColumnType::Text | ColumnType::Date => json!(value),
            ColumnType::List => json!(value.split(',').collect::<Vec<_>>()),
            ColumnType::Bool => json!(matches!(value.as_str(), "true" | "1" | "t")),
        };
        obj.insert(column.field_name(), v);
    }
    if let Some(extra) = record
        .extra
        .as_deref()
        .and_then(|e| serde_json::from_str::<Value>(e).ok())
    {
        obj.insert("metadata".into(), extra);
    }
    match kind {
        RecordKind::Users => {
            obj.insert(
                "rosterStatus".into(),
                json!(if record.active {
                    "Rostered"
                } else {
                    "No Longer Rostered"
                }),
            );
        }
        RecordKind::Classes => {
            obj.insert("archived".into(), json!(record.archived));
        }
        _ => {}
    }
    Value::Object(obj)
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::RosterRead).await?;
    let kind = kind_of(&req);
    let (limit, offset) = paging.resolve()?;
    let page = roster::list(
        &state.db,
        &state.listing_totals,
        &district,
        kind,
        limit,
        offset,
    )
    .await?;
    let items: Vec<Value> = page.records.iter().map(|r| record_json(kind, r)).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", page.total.to_string()))
        .json(json!({ kind.oneroster_name(): items, "total": page.total, "limit": limit, "offset": offset })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, sourced_id) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    let kind = kind_of(&req);
    let record = roster::get(&state.db, district.id, kind, &sourced_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "{} {sourced_id:?} not found",
                kind.oneroster_name()
            ))
        })?;
    Ok(HttpResponse::Ok().json(json!({ kind.singular_name(): record_json(kind, &record) })))
}

async fn existing_user(
    state: &AppState,
    district_id: i64,
    sourced_id: &str,
) -> Result<(), ApiError> {
    if roster::user_exists(&state.db, district_id, sourced_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "user {sourced_id:?} not found"
        )))
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn user_classes(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, user) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    existing_user(&state, district.id, &user).await?;
    let classes: Vec<Value> = roster::classes_of_user(&state.db, district.id, &user)
        .await?
        .into_iter()
        .map(|(class, role)| {
            let mut v = record_json(RecordKind::Classes, &class);
            v["role"] = json!(role);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "user": user, "classes": classes })))
}

/// Folds one row per source into one entry per person, with the sources listed.
fn group(links: Vec<CoachingLink>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for link in links {
        let source = json!({ "type": link.source_type, "sourcedId": link.source_id, "title": link.source_title });
        match out.last_mut() {
            Some(last) if last["sourcedId"] == json!(link.other_sourced_id) => {
                last["sources"]
                    .as_array_mut()
                    .expect("sources is an array")
                    .push(source);
            }
            _ => out.push(json!({
                "sourcedId": link.other_sourced_id,
                "givenName": link.given_name,
                "familyName": link.family_name,
                "sources": [source],
            })),
        }
    }
    out
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn user_coaching(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, user) = path.into_inner();
    let district = caller
        .district(&state, &district, Scope::RosterRead)
        .await?;
    existing_user(&state, district.id, &user).await?;
    let students = group(roster::coaching(&state.db, district.id, &user, true).await?);
    let coaches = group(roster::coaching(&state.db, district.id, &user, false).await?);
    Ok(HttpResponse::Ok().json(json!({ "user": user, "students": students, "coaches": coaches })))
}
