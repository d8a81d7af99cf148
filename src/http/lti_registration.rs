//! LTI Dynamic Registration over HTTP: an administrator's invitation
//! (`POST …/lti/registration-invites`), and the invitation's URL a platform opens
//! (`GET /lti/register/{token}`), answered with a page a person reads in the LMS's frame or
//! popup, which on success tells the LMS to close it (`org.imsglobal.lti.close`).
//!
//! The invitation token (in the path) and the registration token (in the query) are
//! credentials, and the request span of every route records its whole target: so the register
//! route's log lines are emitted outside that span (`parent: None`), naming only codes, the
//! district and the platform's issuer.

use actix_web::http::header::{CACHE_CONTROL, REFERRER_POLICY};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use oauth2::url::form_urlencoded;
use serde_json::{json, Value};

use super::auth::Caller;
use super::connections::{refusal, Reader};
use super::error::ApiError;
use super::lti::escape;
use super::AppState;
use crate::domain::scope::Scope;
use crate::lti::dynamic_registration::{
    self, CreatedInvite, InviteError, InviteField, InviteInput, RegistrationError,
    RegistrationRequest,
};
use crate::lti::registration_input::unknown_deployments_text;

/// An invitation as the API (and the CLI's `--json`) shows it: its URL holds the token, shown
/// this once.
pub fn invite_json(created: &CreatedInvite, district: &str) -> Value {
    let invite = &created.invite;
    json!({
        "id": invite.id,
        "district": district,
        "url": created.url,
        "unknown_deployments": unknown_deployments_text(invite.unknown_deployments),
        "allow_foreign_configuration": invite.allow_foreign_configuration,
        "created_at": invite.created_at,
        "expires_at": invite.expires_at,
    })
}

fn pointer(field: InviteField) -> &'static str {
    match field {
        InviteField::UnknownDeployments => "/unknown_deployments",
        InviteField::TtlMins => "/ttl_mins",
    }
}

/// Reads an invitation's body (none at all: the defaults), or refuses it naming every bad
/// member.
fn input_from_body(body: &[u8]) -> Result<InviteInput, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(InviteInput::default());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("invalid JSON body: {e}"),
        )
    })?;
    let mut problems = Vec::new();
    let mut r = Reader::new(String::new(), &value, &mut problems);
    r.refuse_unknown(&[
        "unknown_deployments",
        "ttl_mins",
        "allow_foreign_configuration",
    ]);
    let unknown_deployments = r.opt_string("unknown_deployments");
    drop(r);
    let ttl_mins = match value.get("ttl_mins") {
        None => None,
        Some(v) => v.as_i64().or_else(|| {
            problems.push(("/ttl_mins".into(), "must be a whole number".into()));
            None
        }),
    };
    let allow_foreign_configuration = match value.get("allow_foreign_configuration") {
        None => false,
        Some(v) => v.as_bool().unwrap_or_else(|| {
            problems.push((
                "/allow_foreign_configuration".into(),
                "must be true or false".into(),
            ));
            false
        }),
    };
    if problems.is_empty() {
        Ok(InviteInput {
            unknown_deployments,
            ttl_mins,
            allow_foreign_configuration,
        })
    } else {
        Err(refusal("invalid_body", problems))
    }
}

/// `POST …/lti/registration-invites`: a single-use invitation for a platform to register
/// itself in the district.
#[tracing::instrument(skip_all, fields(caller = %caller.0.subject, district = %path.as_str()))]
pub async fn create_invite(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let district = caller.district(&state, &path, Scope::Admin).await?;
    let request = input_from_body(&body)?.validate().map_err(|errors| {
        refusal(
            "invalid_field",
            errors
                .into_iter()
                .map(|e| (pointer(e.field).to_string(), e.message))
                .collect(),
        )
    })?;
    let created = dynamic_registration::create_invite(
        &state.db,
        &state.settings.lti,
        district.id,
        &request,
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| match e {
        InviteError::NotConfigured => {
            ApiError::new(StatusCode::CONFLICT, "lti_not_configured", e.to_string())
        }
        InviteError::Store(e) => e.into(),
    })?;
    tracing::info!(invite = created.invite.id, "LTI registration invite made");
    Ok(HttpResponse::Created().json(invite_json(&created, district.slug.as_str())))
}

/// `GET /lti/register/{token}?openid_configuration=URL&registration_token=T`: the platform
/// registers the tool, and the person in front of the LMS sees how it went.
pub async fn register(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let request = RegistrationRequest {
        openid_configuration: first("openid_configuration"),
        registration_token: first("registration_token"),
    };
    match dynamic_registration::register(
        &state.db,
        &state.settings.lti,
        &path,
        &request,
        chrono::Utc::now(),
    )
    .await
    {
        Ok(platform) => {
            tracing::info!(
                parent: None,
                platform = platform.id,
                district = platform.district_id,
                issuer = %platform.issuer,
                "LTI platform registered itself"
            );
            let deployments: Vec<&str> = platform
                .deployments
                .iter()
                .map(|d| d.deployment_id.as_str())
                .collect();
            registered_page(&platform.issuer, &platform.client_id, &deployments)
        }
        Err(e) => {
            // Codes only: a platform's error text could quote the registration token. The
            // store's trouble is logged, not shown.
            let message = match &e {
                RegistrationError::Store(store) => {
                    tracing::error!(parent: None, error = %store, "LTI registration failed");
                    "internal error".to_string()
                }
                other => {
                    tracing::info!(
                        parent: None,
                        code = other.code(),
                        status = other.status(),
                        "LTI registration refused"
                    );
                    redacted(&other.to_string(), request.registration_token.as_deref())
                }
            };
            page(
                e.status(),
                "Registration refused",
                &format!(
                    "<h1>The tool could not be registered</h1><p>{}</p><p>Code: <code>{}</code></p>",
                    escape(&message),
                    escape(e.code())
                ),
            )
        }
    }
}

/// `text` without the registration token, should a platform's answer have quoted it.
fn redacted(text: &str, token: Option<&str>) -> String {
    match token {
        Some(token) if !token.is_empty() => text.replace(token, "[registration token]"),
        _ => text.to_string(),
    }
}

/// The end of a registration (§13 step 5): what was registered, and the message that tells
/// the LMS to close the registration's frame or window.
fn registered_page(issuer: &str, client_id: &str, deployment_ids: &[&str]) -> HttpResponse {
    let deployments = if deployment_ids.is_empty() {
        "The platform named no deployment yet: launches from its deployments are accepted and \
         recorded as pending until the gateway's administrator claims them."
            .to_string()
    } else {
        format!("Deployment: {}.", deployment_ids.join(", "))
    };
    page(
        200,
        "Registered",
        &format!(
            "<h1>rostergate is registered</h1><p>Platform {}, client id <code>{}</code>. {}</p>\
             <p>You can close this window.</p>\
             <script>(window.opener || window.parent).postMessage({{subject:'org.imsglobal.lti.close'}}, '*');</script>",
            escape(issuer),
            escape(client_id),
            escape(&deployments)
        ),
    )
}

/// A page for the person in the LMS; never cached, and its URL (which holds the tokens) never
/// sent on as a referrer.
fn page(status: u16, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body>{body}</body></html>",
        escape(title)
    );
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .body(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(body: &str) -> Vec<String> {
        input_from_body(body.as_bytes())
            .expect_err("refused")
            .details
            .iter()
            .map(|d| d["pointer"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn invitation_bodies_are_optional_and_bad_members_named() {
        assert_eq!(input_from_body(b"").unwrap(), InviteInput::default());
        assert_eq!(input_from_body(b" {} ").unwrap(), InviteInput::default());
        let full = input_from_body(
            br#"{"unknown_deployments":"pending","ttl_mins":5,"allow_foreign_configuration":true}"#,
        )
        .unwrap();
        assert_eq!(
            full,
            InviteInput {
                unknown_deployments: Some("pending".into()),
                ttl_mins: Some(5),
                allow_foreign_configuration: true,
            }
        );
        assert_eq!(pointers(r#"{"ttl_mins":"5"}"#), ["/ttl_mins"]);
        assert_eq!(pointers(r#"{"ttl_mins":1.5}"#), ["/ttl_mins"]);
        assert_eq!(
            pointers(r#"{"allow_foreign_configuration":"yes"}"#),
            ["/allow_foreign_configuration"]
        );
        assert_eq!(
            pointers(r#"{"unknown_deployments":1}"#),
            ["/unknown_deployments"]
        );
        assert_eq!(pointers(r#"{"issuer":"x"}"#), ["/issuer"]);
        assert_eq!(pointers("[]"), [""]);
        let error = input_from_body(b"{").unwrap_err();
        assert_eq!(error.code, "invalid_body");
    }

    #[test]
    fn the_registered_page_closes_the_lms_frame_and_pages_escape_what_they_quote() {
        assert_eq!(
            redacted("bad token s3cret!", Some("s3cret")),
            "bad token [registration token]!"
        );
        assert_eq!(redacted("as is", Some("")), "as is");
        let listed = registered_page("https://lms.example.org", "c", &["1", "2"]);
        let listed = actix_web::body::MessageBody::try_into_bytes(listed.into_body()).unwrap();
        assert!(String::from_utf8_lossy(&listed).contains("Deployment: 1, 2."));
        let response = registered_page("https://lms.example.org/<x>", "c", &[]);
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get(REFERRER_POLICY).unwrap(),
            "no-referrer"
        );
        let body = actix_web::body::MessageBody::try_into_bytes(response.into_body()).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains(
                "(window.opener || window.parent).postMessage({subject:'org.imsglobal.lti.close'}, '*')"
            ),
            "{body}"
        );
        assert!(
            body.contains("&lt;x&gt;") && !body.contains("<x>"),
            "{body}"
        );
        assert!(body.contains("pending"), "{body}");
    }
}
