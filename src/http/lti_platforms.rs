//! A district's LTI platform registrations (the LMSs that launch the gateway as a tool), and
//! the claim of a deployment a launch recorded as pending.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::auth::Caller;
use super::connections::{refusal, Reader};
use super::error::ApiError;
use super::AppState;
use crate::domain::scope::Scope;
use crate::lti::registration_input::{unknown_deployments_text, Field, InputErrors, PlatformInput};
use crate::store::lti::{self, PlatformRow};

/// A platform as the API (and the CLI's `--json`) shows it.
pub fn platform_json(platform: &PlatformRow) -> Value {
    json!({
        "id": platform.id,
        "issuer": platform.issuer,
        "client_id": platform.client_id,
        "auth_login_url": platform.auth_login_url,
        "token_url": platform.token_url,
        "jwks_url": platform.jwks_url,
        "unknown_deployments": unknown_deployments_text(platform.unknown_deployments),
        "token_audience": platform.token_audience,
        "deployments": platform.deployments.iter().map(|d| json!({
            "deployment_id": d.deployment_id,
            "status": d.status.as_str(),
        })).collect::<Vec<_>>(),
        "created_at": platform.created_at,
        "updated_at": platform.updated_at,
    })
}

/// The JSON pointer of a field in the request body.
pub fn pointer(field: Field) -> String {
    match field {
        Field::Issuer => "/issuer".into(),
        Field::ClientId => "/client_id".into(),
        Field::DeploymentIds => "/deployment_ids".into(),
        Field::DeploymentId(i) => format!("/deployment_ids/{i}"),
        Field::AuthLoginUrl => "/auth_login_url".into(),
        Field::TokenUrl => "/token_url".into(),
        Field::JwksUrl => "/jwks_url".into(),
        Field::UnknownDeployments => "/unknown_deployments".into(),
        Field::TokenAudience => "/token_audience".into(),
    }
}

fn invalid_fields(errors: InputErrors) -> ApiError {
    refusal(
        "invalid_field",
        errors
            .0
            .into_iter()
            .map(|e| (pointer(e.field), e.message))
            .collect(),
    )
}

/// Reads a create body into a registration's input, or refuses it naming every bad member.
fn input_from_json(body: &Value) -> Result<PlatformInput, ApiError> {
    let mut problems = Vec::new();
    let mut r = Reader::new(String::new(), body, &mut problems);
    r.refuse_unknown(&[
        "issuer",
        "client_id",
        "deployment_ids",
        "auth_login_url",
        "token_url",
        "jwks_url",
        "unknown_deployments",
        "token_audience",
    ]);
    let input = PlatformInput {
        issuer: r.string("issuer"),
        client_id: r.string("client_id"),
        // Left out: validation says at least one is required.
        deployment_ids: r.strings("deployment_ids"),
        auth_login_url: r.string("auth_login_url"),
        token_url: r.string("token_url"),
        jwks_url: r.string("jwks_url"),
        unknown_deployments: r.opt_string("unknown_deployments"),
        token_audience: r.opt_string("token_audience"),
    };
    if problems.is_empty() {
        Ok(input)
    } else {
        Err(refusal("invalid_body", problems))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "LTI platform {} not found",
        crate::domain::problem::quoted(id)
    ))
}

/// A platform id from the path; one that is not a whole number names no platform.
fn platform_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| not_found(raw))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let all = lti::list_platforms(&state.db, district.id).await?;
    let listed: Vec<Value> = all.iter().map(platform_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "platforms": listed })))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let platform = input_from_json(&body)?.validate().map_err(invalid_fields)?;
    let stored = lti::insert_platform(&state.db, district.id, &platform).await?;
    tracing::info!(platform = stored.id, issuer = %stored.issuer, "LTI platform registered");
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!(
                "/api/v1/districts/{}/lti/platforms/{}",
                district.slug, stored.id
            ),
        ))
        .json(platform_json(&stored)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let stored = lti::find_platform(&state.db, district.id, platform_id(&id)?)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(platform_json(&stored)))
}

#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    if lti::delete_platform(&state.db, district.id, platform_id(&id)?).await? {
        tracing::info!(platform = %id, "LTI platform removed");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found(&id))
    }
}

/// Makes a deployment active: one a launch recorded as pending is claimed (launches from it
/// are accepted from now on); an active one stays so.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.0))]
pub async fn claim_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (district, id, deployment_id) = path.into_inner();
    let district = caller.district(&state, &district, Scope::Admin).await?;
    let platform = platform_id(&id)?;
    if !lti::claim_deployment(&state.db, district.id, platform, &deployment_id).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "LTI platform {} has no deployment {}",
                crate::domain::problem::quoted(&id),
                crate::domain::problem::quoted(&deployment_id)
            ),
        ));
    }
    tracing::info!(platform, deployment = %deployment_id, "LTI deployment claimed");
    let stored = lti::find_platform(&state.db, district.id, platform)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(platform_json(&stored)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(body: Value) -> Vec<String> {
        let error = input_from_json(&body).expect_err("refused");
        error
            .details
            .iter()
            .map(|d| d["pointer"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn wrong_types_and_unknown_members_are_refused_at_their_pointers() {
        let good = json!({"issuer": "https://lms.example.org", "client_id": "c",
            "deployment_ids": ["d"], "auth_login_url": "https://lms.example.org/auth",
            "token_url": "https://lms.example.org/token", "jwks_url": "https://lms.example.org/jwks"});
        assert!(input_from_json(&good).is_ok());
        let with = |key: &str, value: Value| {
            let mut body = good.clone();
            body[key] = value;
            body
        };
        let without = |key: &str| {
            let mut body = good.clone();
            body.as_object_mut().unwrap().remove(key);
            body
        };
        let cases = [
            (json!("x"), vec![""]),
            (with("issuer", json!(1)), vec!["/issuer"]),
            (with("deployment_ids", json!("d")), vec!["/deployment_ids"]),
            (
                with("deployment_ids", json!(["d", 2])),
                vec!["/deployment_ids/1"],
            ),
            (
                with("unknown_deployments", json!(true)),
                vec!["/unknown_deployments"],
            ),
            (with("secret", json!("s")), vec!["/secret"]),
            (without("jwks_url"), vec!["/jwks_url"]),
            (without("client_id"), vec!["/client_id"]),
        ];
        for (body, want) in cases {
            assert_eq!(pointers(body.clone()), want, "{body}");
        }
    }

    #[test]
    fn every_field_has_a_pointer_into_the_body() {
        assert_eq!(pointer(Field::DeploymentId(2)), "/deployment_ids/2");
        assert_eq!(pointer(Field::AuthLoginUrl), "/auth_login_url");
        assert_eq!(pointer(Field::UnknownDeployments), "/unknown_deployments");
    }
}
