//! The HTTP API (actix-web). Handlers parse, authorize and call the library; no business rules.

pub mod accounts;
pub mod auth;
pub mod connections;
pub mod deliveries;
pub mod districts;
pub mod error;
pub mod health;
pub mod imports;
pub mod inbound;
pub mod jobs;
pub mod lti;
pub mod lti_platforms;
pub mod lti_registration;
pub mod lti_services;
pub mod oauth;
pub mod plans;
pub mod pulls;
pub mod roster;
pub mod runs;
pub mod subscriptions;

use std::sync::{Arc, OnceLock};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, Route};

use crate::auth::client_status::ClientStatusCache;
use crate::auth::rate_limit::TokenRateLimits;
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
    pub client_status: ClientStatusCache,
    pub token_limits: TokenRateLimits,
    /// Listing totals, counted once per district roster version.
    pub listing_totals: crate::store::roster::ListingTotals,
    /// Seals connection secrets before they are stored.
    pub secrets: crate::auth::secrets::SecretBox,
}

/// Longest request target (path and query) served; longer ones get a 414 in the error shape.
pub const MAX_URI_BYTES: usize = 8 << 10;

/// Every route: the single list both the server and the contract test read.
fn routes() -> Vec<(&'static str, Method, Route)> {
    let d = "/api/v1/districts/{district}";
    let mut table: Vec<(&'static str, Method, Route)> = vec![
        ("/health/live", Method::GET, web::get().to(health::live)),
        ("/health/ready", Method::GET, web::get().to(health::ready)),
        ("/metrics", Method::GET, web::get().to(health::metrics)),
        ("/oauth/token", Method::POST, web::post().to(oauth::token)),
        ("/lti/login", Method::GET, web::get().to(lti::login_get)),
        ("/lti/login", Method::POST, web::post().to(lti::login_post)),
        ("/lti/launch", Method::POST, web::post().to(lti::launch)),
        (
            "/lti/deep_links",
            Method::POST,
            web::post().to(lti::deep_link),
        ),
        ("/lti/jwks", Method::GET, web::get().to(lti::jwks)),
        (
            "/lti/register/{token}",
            Method::GET,
            web::get().to(lti_registration::register),
        ),
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
            "/api/v1/districts/{district}/imports/scores",
            Method::POST,
            web::post().to(imports::scores),
        ),
        (
            "/api/v1/districts/{district}/students/{sourced_id}/plan",
            Method::GET,
            web::get().to(plans::student_plan),
        ),
        (
            "/api/v1/districts/{district}/students/{sourced_id}/results",
            Method::GET,
            web::get().to(plans::student_results),
        ),
        (
            "/api/v1/districts/{district}/students/{sourced_id}/plan/{subject}/{goal_area}",
            Method::PUT,
            web::put().to(plans::set_override),
        ),
        (
            "/api/v1/districts/{district}/students/{sourced_id}/plan/{subject}/{goal_area}",
            Method::DELETE,
            web::delete().to(plans::clear_override),
        ),
        (
            "/api/v1/districts/{district}/classes/{sourced_id}/plans",
            Method::GET,
            web::get().to(plans::class_plans),
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
            "/api/v1/districts/{district}/jobs",
            Method::GET,
            web::get().to(jobs::list),
        ),
        (
            "/api/v1/districts/{district}/jobs/{job_id}",
            Method::GET,
            web::get().to(jobs::get),
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
        (
            "/api/v1/districts/{district}/connections",
            Method::GET,
            web::get().to(connections::list),
        ),
        (
            "/api/v1/districts/{district}/connections",
            Method::POST,
            web::post().to(connections::create),
        ),
        (
            "/api/v1/districts/{district}/connections/{name}",
            Method::GET,
            web::get().to(connections::get),
        ),
        (
            "/api/v1/districts/{district}/connections/{name}",
            Method::DELETE,
            web::delete().to(connections::delete),
        ),
        (
            "/api/v1/districts/{district}/connections/{name}",
            Method::PUT,
            web::put().to(connections::replace),
        ),
        (
            "/api/v1/districts/{district}/connections/{name}/pulls",
            Method::POST,
            web::post().to(pulls::start),
        ),
        (
            "/api/v1/districts/{district}/lti/platforms",
            Method::GET,
            web::get().to(lti_platforms::list),
        ),
        (
            "/api/v1/districts/{district}/lti/platforms",
            Method::POST,
            web::post().to(lti_platforms::create),
        ),
        (
            "/api/v1/districts/{district}/lti/platforms/{id}",
            Method::GET,
            web::get().to(lti_platforms::get),
        ),
        (
            "/api/v1/districts/{district}/lti/platforms/{id}",
            Method::DELETE,
            web::delete().to(lti_platforms::delete),
        ),
        (
            "/api/v1/districts/{district}/lti/platforms/{id}/deployments/{deployment_id}/claim",
            Method::POST,
            web::post().to(lti_platforms::claim_deployment),
        ),
        (
            "/api/v1/districts/{district}/lti/registration-invites",
            Method::POST,
            web::post().to(lti_registration::create_invite),
        ),
        (
            "/api/v1/districts/{district}/lti/memberships/pulls",
            Method::POST,
            web::post().to(lti_services::pull_memberships),
        ),
        (
            "/api/v1/districts/{district}/classes/{class}/lti/scores",
            Method::POST,
            web::post().to(lti_services::post_scores),
        ),
        (
            "/api/v1/districts/{district}/subscriptions",
            Method::GET,
            web::get().to(subscriptions::list),
        ),
        (
            "/api/v1/districts/{district}/subscriptions",
            Method::POST,
            web::post().to(subscriptions::create),
        ),
        (
            "/api/v1/districts/{district}/subscriptions/{subscription_id}",
            Method::GET,
            web::get().to(subscriptions::get),
        ),
        (
            "/api/v1/districts/{district}/subscriptions/{subscription_id}",
            Method::DELETE,
            web::delete().to(subscriptions::delete),
        ),
        (
            "/api/v1/districts/{district}/subscriptions/{subscription_id}/rotate-secret",
            Method::POST,
            web::post().to(subscriptions::rotate_secret),
        ),
        (
            "/api/v1/districts/{district}/subscriptions/{subscription_id}/enable",
            Method::POST,
            web::post().to(subscriptions::enable),
        ),
        (
            "/api/v1/districts/{district}/subscriptions/{subscription_id}/deliveries",
            Method::GET,
            web::get().to(deliveries::list),
        ),
        (
            "/api/v1/districts/{district}/subscriptions/{subscription_id}/replay",
            Method::POST,
            web::post().to(deliveries::replay),
        ),
        (
            "/api/v1/districts/{district}/deliveries/{delivery_id}",
            Method::GET,
            web::get().to(deliveries::get),
        ),
        (
            "/api/v1/districts/{district}/roster",
            Method::POST,
            web::post().to(inbound::push),
        ),
        (
            "/api/v1/districts/{district}/scores",
            Method::POST,
            web::post().to(inbound::push_scores),
        ),
        (
            "/api/v1/districts/{district}/inbound",
            Method::GET,
            web::get().to(inbound::list),
        ),
        (
            "/api/v1/districts/{district}/inbound/{delivery_id}",
            Method::GET,
            web::get().to(inbound::get),
        ),
        (
            "/api/v1/districts/{district}/inbound/{delivery_id}/retry",
            Method::POST,
            web::post().to(inbound::retry),
        ),
        (
            "/api/v1/districts/{district}/accounts",
            Method::GET,
            web::get().to(accounts::list),
        ),
        (
            "/api/v1/districts/{district}/accounts/{account_id}",
            Method::GET,
            web::get().to(accounts::get),
        ),
        (
            "/api/v1/accounts",
            Method::POST,
            web::post().to(accounts::create),
        ),
        (
            "/api/v1/accounts/{account_id}",
            Method::GET,
            web::get().to(accounts::get_any),
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

/// The distinct route patterns, in table order: the closed set of `route` metric labels.
fn route_patterns() -> &'static [&'static str] {
    static PATTERNS: OnceLock<Vec<&'static str>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let mut patterns: Vec<&'static str> = Vec::new();
        for (path, _, _) in routes() {
            if !patterns.contains(&path) {
                patterns.push(path);
            }
        }
        patterns
    })
}

/// The metric label of what a request matched: its route pattern, or
/// [`crate::telemetry::UNMATCHED_ROUTE`]. Only patterns from the route table pass, so no request
/// can make up a label.
pub fn route_label(matched: Option<&str>) -> &'static str {
    matched
        .and_then(|m| route_patterns().iter().find(|p| **p == m).copied())
        .unwrap_or(crate::telemetry::UNMATCHED_ROUTE)
}

/// Registers the routes, one resource per path; other methods on a path get 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut by_path: Vec<(&'static str, Vec<Method>, Vec<Route>)> = Vec::new();
    for (path, method, route) in routes() {
        match by_path.iter_mut().find(|(p, _, _)| *p == path) {
            Some((_, methods, routes)) => {
                methods.push(method);
                routes.push(route);
            }
            None => by_path.push((path, vec![method], vec![route])),
        }
    }
    for (path, methods, routes) in by_path {
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(path).default_service(web::to(move |req: HttpRequest| {
            let allow = allow.clone();
            async move { method_not_allowed(req, allow) }
        }));
        for route in routes {
            resource = resource.route(route);
        }
        cfg.service(resource);
    }
    cfg.default_service(web::to(route_not_found));
}

/// The refusal of a request target longer than [`MAX_URI_BYTES`], if this one is.
pub fn uri_too_long(req: &actix_web::dev::ServiceRequest) -> Option<ApiError> {
    let len = req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1);
    (len > MAX_URI_BYTES).then(|| {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {len} bytes long; at most {MAX_URI_BYTES} are accepted"),
        )
    })
}

async fn route_not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route {} {}", req.method(), req.path()),
    ))
}

fn method_not_allowed(
    req: HttpRequest,
    allow: String,
) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}: use {allow}",
            req.method(),
            req.path()
        ),
    )
    .with_header(actix_web::http::header::ALLOW, allow))
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

/// Largest page a listing serves.
pub const MAX_LIMIT: i64 = 10_000;

/// Paging as OneRoster does it: `limit` (default 100, at most [`MAX_LIMIT`]) and `offset`.
/// Both arrive as text so that a bad value is refused in our words, not serde's.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    pub limit: Option<String>,
    pub offset: Option<String>,
}

impl Paging {
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let limit = whole_number(self.limit.as_deref(), 100, 1..=MAX_LIMIT).ok_or_else(|| {
            ApiError::bad_request(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}"
            ))
        })?;
        let offset = whole_number(self.offset.as_deref(), 0, 0..=i64::MAX)
            .ok_or_else(|| ApiError::bad_request("offset must be a whole number, 0 or more"))?;
        Ok((limit, offset))
    }
}

/// A query parameter holding a whole number in `range`; `default` when it is absent.
pub fn whole_number(
    raw: Option<&str>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Option<i64> {
    match raw {
        None => Some(default),
        Some(raw) => raw.parse::<i64>().ok().filter(|n| range.contains(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_route_patterns_or_unmatched() {
        let cases = [
            (
                Some("/api/v1/districts/{district}/users"),
                "/api/v1/districts/{district}/users",
            ),
            (Some("/metrics"), "/metrics"),
            (
                Some("/api/v1/districts/{district}/jobs/{job_id}"),
                "/api/v1/districts/{district}/jobs/{job_id}",
            ),
            (Some("/api/v1/districts/lincoln/users"), "unmatched"),
            (Some("/made/up/{x}"), "unmatched"),
            (None, "unmatched"),
        ];
        for (matched, want) in cases {
            assert_eq!(route_label(matched), want, "{matched:?}");
        }
    }

    #[test]
    fn whole_numbers_are_parsed_in_range_or_refused() {
        let cases = [
            (None, Some(100)),
            (Some("1"), Some(1)),
            (Some("10000"), Some(10000)),
            (Some("0"), None),
            (Some("10001"), None),
            (Some("abc"), None),
            (Some("1.0"), None),
            (Some(" 5"), None),
            (Some(""), None),
        ];
        for (raw, want) in cases {
            assert_eq!(whole_number(raw, 100, 1..=MAX_LIMIT), want, "{raw:?}");
        }
    }
}
