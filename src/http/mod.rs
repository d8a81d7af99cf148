//! The HTTP API (actix-web). Handlers parse, authorize and call the library; no business rules.

pub mod auth;
pub mod districts;
pub mod error;
pub mod health;
pub mod imports;
pub mod oauth;
pub mod roster;
pub mod runs;

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, Route};

use crate::auth::tokens::TokenKeys;
use crate::config::Settings;
use crate::store::Db;
use crate::sync::Engine;
use error::ApiError;

pub struct AppState {
    pub db: Db,
    pub engine: Engine,
    pub settings: Arc<Settings>,
    pub tokens: TokenKeys,
}

/// Every route: the single list both the server and the contract test read.
fn routes() -> Vec<(&'static str, Method, Route)> {
    let d = "/api/v1/districts/{district}";
    let mut table: Vec<(&'static str, Method, Route)> = vec![
        ("/health/live", Method::GET, web::get().to(health::live)),
        ("/health/ready", Method::GET, web::get().to(health::ready)),
        ("/metrics", Method::GET, web::get().to(health::metrics)),
        ("/oauth/token", Method::POST, web::post().to(oauth::token)),
        (
            "/api/v1/districts",
            Method::GET,
            web::get().to(districts::list),
        ),
        (
            "/api/v1/districts",
            Method::POST,
            web::post().to(districts::create),
        ),
        (
            "/api/v1/districts/{district}",
            Method::GET,
            web::get().to(districts::get),
        ),
        (
            "/api/v1/districts/{district}/clients",
            Method::GET,
            web::get().to(districts::list_clients),
        ),
        (
            "/api/v1/districts/{district}/clients",
            Method::POST,
            web::post().to(districts::create_client),
        ),
        (
            "/api/v1/districts/{district}/imports/oneroster",
            Method::POST,
            web::post().to(imports::oneroster),
        ),
        (
            "/api/v1/districts/{district}/runs",
            Method::GET,
            web::get().to(runs::list),
        ),
        (
            "/api/v1/districts/{district}/runs/{run_id}",
            Method::GET,
            web::get().to(runs::get),
        ),
        (
            "/api/v1/districts/{district}/runs/{run_id}/approve",
            Method::POST,
            web::post().to(runs::approve),
        ),
        (
            "/api/v1/districts/{district}/runs/{run_id}/discard",
            Method::POST,
            web::post().to(runs::discard),
        ),
        (
            "/api/v1/districts/{district}/events",
            Method::GET,
            web::get().to(runs::events),
        ),
        (
            "/api/v1/districts/{district}/users/{sourced_id}/classes",
            Method::GET,
            web::get().to(roster::user_classes),
        ),
        (
            "/api/v1/districts/{district}/users/{sourced_id}/coaching",
            Method::GET,
            web::get().to(roster::user_coaching),
        ),
    ];
    for (collection, item) in roster::PATHS {
        debug_assert!(collection.starts_with(d) && item.starts_with(d));
        table.push((collection, Method::GET, web::get().to(roster::list)));
        table.push((item, Method::GET, web::get().to(roster::get)));
    }
    table
}

/// `(METHOD, path)` of every route, in OpenAPI's path syntax (which actix shares).
pub fn route_list() -> Vec<(String, String)> {
    routes()
        .into_iter()
        .map(|(p, m, _)| (m.to_string(), p.to_string()))
        .collect()
}

/// Registers the routes, one resource per path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut by_path: Vec<(&'static str, Vec<Route>)> = Vec::new();
    for (path, _, route) in routes() {
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, routes)) => routes.push(route),
            None => by_path.push((path, vec![route])),
        }
    }
    for (path, routes) in by_path {
        let mut resource = web::resource(path).default_service(web::to(method_not_allowed));
        for route in routes {
            resource = resource.route(route);
        }
        cfg.service(resource);
    }
    cfg.default_service(web::to(route_not_found));
}

async fn route_not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route {} {}", req.method(), req.path()),
    ))
}

async fn method_not_allowed(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

/// Makes actix's own extractor errors (bad JSON, bad query) speak our error shape.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(1 << 20)
        .error_handler(|err, _| {
            let message = match &err {
                actix_web::error::JsonPayloadError::Deserialize(e) => {
                    format!("invalid JSON body: {e}")
                }
                actix_web::error::JsonPayloadError::ContentType => {
                    "the body must be JSON (Content-Type: application/json)".into()
                }
                other => format!("invalid JSON body: {other}"),
            };
            ApiError::new(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                message,
            )
            .into()
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request(format!("invalid query string: {err}")).into()
    })
}

pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(16 << 10)
        .error_handler(|err, _| ApiError::bad_request(format!("invalid form body: {err}")).into())
}

/// Paging as OneRoster does it: `limit` (default 100, at most 10000) and `offset`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl Paging {
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(100);
        let offset = self.offset.unwrap_or(0);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::bad_request("limit must be between 1 and 10000"));
        }
        if offset < 0 {
            return Err(ApiError::bad_request("offset must not be negative"));
        }
        Ok((limit, offset))
    }
}
