//! Districts and their API clients.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::admin::{self, AdminError};
use crate::domain::district::{District, DistrictSettings};
use crate::domain::scope::Scope;
use crate::store::{clients, districts};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDistrict {
    slug: String,
    name: String,
    timezone: String,
    #[serde(default)]
    settings: Option<DistrictSettings>,
}

fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::Store(s) => s.into(),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            other.to_string(),
        ),
    }
}

pub fn district_json(d: &District) -> serde_json::Value {
    json!({
        "slug": d.slug,
        "name": d.name,
        "timezone": d.timezone,
        "settings": d.settings,
        "created_at": d.created_at,
    })
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateDistrict>,
) -> Result<HttpResponse, ApiError> {
    caller.require_operator()?;
    let body = body.into_inner();
    let district = admin::create_district(
        &state.db,
        &body.slug,
        &body.name,
        &body.timezone,
        body.settings,
    )
    .await
    .map_err(admin_error)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/districts/{}", district.slug)))
        .json(district_json(&district)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject))]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let all = districts::list(&state.db).await?;
    let visible: Vec<_> = all
        .iter()
        .filter(|d| caller.0.may_see(d.slug.as_str()))
        .map(district_json)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "districts": visible })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::RosterRead).await?;
    Ok(HttpResponse::Ok().json(district_json(&district)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
    scopes: Vec<String>,
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn create_client(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<CreateClient>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let (credentials, scopes) =
        admin::create_client(&state.db, &district, &body.name, &body.scopes.join(" "))
            .await
            .map_err(admin_error)?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "scopes": scopes,
            "district": district.slug,
        })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list_clients(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let rows = clients::list(&state.db, district.id).await?;
    let listed: Vec<_> = rows
        .iter()
        .map(|c| {
            json!({
                "client_id": c.client_id,
                "name": c.name,
                "scopes": c.scopes.split(' ').collect::<Vec<_>>(),
                "created_at": c.created_at,
                "revoked_at": c.revoked_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "clients": listed })))
}
