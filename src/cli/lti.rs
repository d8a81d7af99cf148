//! `rostergate lti platform add|list|remove`, `lti deployment claim` (a district's LTI platform
//! registrations) and `rostergate keys rotate` (the tool's signing keys).

use std::process::ExitCode;

use super::{db, output, CliError, CliResult};
use crate::auth::keys::MasterKey;
use crate::auth::secrets::SecretBox;
use crate::config::Settings;
use crate::http::lti_platforms::platform_json;
use crate::lti::registration_input::{unknown_deployments_text, Field, InputErrors, PlatformInput};
use crate::lti::tool_key_store;
use crate::lti::tool_keys::ToolKey;
use crate::store::districts;
use crate::store::lti::{self, PlatformRow};

/// The flags of `lti platform add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Slug of the district the platform's launches belong to.
    #[arg(long)]
    pub district: String,
    /// The platform's issuer, exactly as its id_tokens carry it (e.g. https://canvas.instructure.com).
    #[arg(long)]
    pub issuer: String,
    /// The client id the platform gave the tool.
    #[arg(long)]
    pub client_id: String,
    /// A deployment of the tool in the platform (repeat for several).
    #[arg(long = "deployment-id", required = true)]
    pub deployment_ids: Vec<String>,
    /// The platform's OIDC authorization endpoint (where logins are sent).
    #[arg(long)]
    pub auth_url: String,
    /// The platform's OAuth 2 token endpoint (for service tokens), exactly as it expects it.
    #[arg(long)]
    pub token_url: String,
    /// The platform's JWKS URL (its signing keys).
    #[arg(long)]
    pub jwks_url: String,
    /// What a launch from a deployment not listed gets: refuse (default), or pending (accepted
    /// and recorded until `lti deployment claim`).
    #[arg(long)]
    pub unknown_deployments: Option<String>,
    /// The `aud` of the gateway's client assertions when the token endpoint wants another than
    /// its own URL (Canvas: its `authorization_server`).
    #[arg(long)]
    pub token_audience: Option<String>,
    /// Print the platform as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The flag a field comes from.
fn flag(field: Field) -> String {
    match field {
        Field::Issuer => "--issuer",
        Field::ClientId => "--client-id",
        Field::DeploymentIds => "--deployment-id",
        Field::DeploymentId(i) => return format!("--deployment-id (#{})", i + 1),
        Field::AuthLoginUrl => "--auth-url",
        Field::TokenUrl => "--token-url",
        Field::JwksUrl => "--jwks-url",
        Field::UnknownDeployments => "--unknown-deployments",
        Field::TokenAudience => "--token-audience",
    }
    .to_string()
}

fn refused(errors: InputErrors) -> CliError {
    let problems = errors
        .0
        .iter()
        .map(|e| format!("{}: {}", flag(e.field), e.message))
        .collect::<Vec<_>>()
        .join("; ");
    CliError::msg(format!("the LTI platform is not valid: {problems}"))
}

/// One line per platform: id, issuer, client id, deployments, policy.
fn platform_line(p: &PlatformRow) -> String {
    let deployments = p
        .deployments
        .iter()
        .map(|d| format!("{} ({})", d.deployment_id, d.status.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}\t{}\tclient {}\tdeployments: {deployments}\tunknown deployments: {}",
        p.id,
        p.issuer,
        p.client_id,
        unknown_deployments_text(p.unknown_deployments)
    )
}

pub async fn add(settings: Settings, args: AddArgs) -> CliResult {
    let input = PlatformInput {
        issuer: args.issuer,
        client_id: args.client_id,
        deployment_ids: args.deployment_ids,
        auth_login_url: args.auth_url,
        token_url: args.token_url,
        jwks_url: args.jwks_url,
        unknown_deployments: args.unknown_deployments,
        token_audience: args.token_audience,
    };
    let platform = input.validate().map_err(refused)?;
    let db = db(&settings).await?;
    let district = districts::get(&db, &args.district).await?;
    let stored = lti::insert_platform(&db, district.id, &platform).await;
    db.close().await;
    let stored = stored?;
    if args.json {
        output::line(platform_json(&stored))?;
    } else {
        output::line(format_args!(
            "added LTI platform {} to district {}: {}",
            stored.id,
            district.slug,
            platform_line(&stored)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(settings: Settings, district: &str, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let all = lti::list_platforms(&db, district.id).await?;
    db.close().await;
    if json_out {
        let listed: Vec<_> = all.iter().map(platform_json).collect();
        output::line(serde_json::json!({ "platforms": listed }))?;
    } else {
        for p in &all {
            output::line(platform_line(p))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(settings: Settings, district: &str, id: i64) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let removed = lti::delete_platform(&db, district.id, id).await?;
    db.close().await;
    if removed {
        output::line(format_args!(
            "removed LTI platform {id} from district {}",
            district.slug
        ))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::msg(format!(
            "no LTI platform {id} in district {}",
            district.slug
        )))
    }
}

pub async fn claim(
    settings: Settings,
    district: &str,
    platform: i64,
    deployment_id: &str,
) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let claimed = lti::claim_deployment(&db, district.id, platform, deployment_id).await?;
    db.close().await;
    if claimed {
        output::line(format_args!(
            "deployment {deployment_id:?} of LTI platform {platform} is active: its launches are accepted"
        ))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::msg(format!(
            "LTI platform {platform} of district {} has no deployment {deployment_id:?}",
            district.slug
        )))
    }
}

/// The flags of `lti platform invite`.
#[derive(Debug, clap::Args)]
pub struct InviteArgs {
    /// Slug of the district the platform registers in.
    #[arg(long)]
    pub district: String,
    /// What a launch from a deployment the platform did not name gets: refuse (default), or
    /// pending (accepted and recorded until `lti deployment claim`).
    #[arg(long)]
    pub unknown_deployments: Option<String>,
    /// Minutes the invitation lasts (default a day, at most 30 days).
    #[arg(long)]
    pub ttl_mins: Option<i64>,
    /// Accept a platform whose configuration URL is not under its issuer (Moodle's is not):
    /// only for a platform you know.
    #[arg(long)]
    pub allow_foreign_configuration: bool,
    /// Print the invitation as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Makes a single-use Dynamic Registration invitation and prints its URL (the only copy).
pub async fn invite(settings: Settings, args: InviteArgs) -> CliResult {
    use crate::lti::dynamic_registration::{self as dr, InviteField, InviteInput};
    let input = InviteInput {
        unknown_deployments: args.unknown_deployments,
        ttl_mins: args.ttl_mins,
        allow_foreign_configuration: args.allow_foreign_configuration,
    };
    let request = input.validate().map_err(|errors| {
        let problems = errors
            .iter()
            .map(|e| match e.field {
                InviteField::UnknownDeployments => format!("--unknown-deployments: {e}"),
                InviteField::TtlMins => format!("--ttl-mins: {e}"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        CliError::msg(format!("the invitation is not valid: {problems}"))
    })?;
    let db = db(&settings).await?;
    let district = districts::get(&db, &args.district).await;
    let created = match district {
        Ok(d) => dr::create_invite(&db, &settings.lti, d.id, &request, chrono::Utc::now())
            .await
            .map(|created| (d, created))
            .map_err(CliError::from),
        Err(e) => Err(e.into()),
    };
    db.close().await;
    let (district, created) = created?;
    if args.json {
        output::line(crate::http::lti_registration::invite_json(
            &created,
            district.slug.as_str(),
        ))?;
    } else {
        output::line(format_args!(
            "invitation {} for district {}, usable once until {}: paste this URL into the LMS \
             as the tool's registration URL",
            created.invite.id,
            district.slug,
            created.invite.expires_at.to_rfc3339()
        ))?;
        output::line(&created.url)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn key_json(key: &ToolKey) -> serde_json::Value {
    serde_json::json!({ "kid": key.kid(), "created_at": key.created_at() })
}

/// Rotates the tool's keys: the next key signs from now on, a new next key is published.
pub async fn rotate_keys(settings: Settings, json_out: bool) -> CliResult {
    let secrets = SecretBox::new(&MasterKey::load(&settings)?);
    let db = db(&settings).await?;
    let set = tool_key_store::rotate(&db, &secrets, chrono::Utc::now()).await;
    db.close().await;
    let set = set?;
    if json_out {
        output::line(serde_json::json!({
            "current": key_json(set.current()),
            "next": key_json(set.next()),
        }))?;
    } else {
        output::line(format_args!(
            "tool keys rotated: current {} (signs), next {} (published)",
            set.current().kid(),
            set.next().kid()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
