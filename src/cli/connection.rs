//! `rostergate connection add|list|remove`: a district's connections to its source systems
//! (`add --replace` changes one in place, keeping its delta cursor for the same source).
//! Secrets are read from a flag or, better (a flag shows in `ps`), from a file, sealed at once,
//! and never printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{db, output, CliError, CliResult, Context};
use crate::auth::keys::MasterKey;
use crate::auth::secrets::SecretBox;
use crate::config::{Secret, Settings};
use crate::domain::connection::{ApiVersion, AuthConfig, ConnectionKind};
use crate::domain::connection_input::{
    AuthInput, ConnectionInput, Field, InputErrors, ScheduleInput,
};
use crate::http::connections::connection_json;
use crate::store::connections::{self, Sealed, StoredConnection};
use crate::store::{districts, StoreError};

/// The flags of `connection add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Slug of the district the connection belongs to.
    #[arg(long)]
    pub district: String,
    /// The connection's name in the district: a-z, 0-9 and '-', up to 63 characters.
    #[arg(long)]
    pub name: String,
    /// What the source speaks: oneroster-rest (a SIS's rosters) or assessment-rest (a partner's
    /// scores, contracts/partner-results.openapi.json).
    #[arg(long)]
    pub kind: String,
    /// The API's version: OneRoster 1.1 or 1.2; for assessment-rest, 1 (the default).
    #[arg(long)]
    pub version: Option<String>,
    /// What collection paths are appended to, e.g. https://sis.example.org/ims/oneroster/v1p1
    /// (or a partner's base, where `/results` lives).
    #[arg(long)]
    pub base_url: String,
    /// Records asked for per page (1-50000; default 1000).
    #[arg(long)]
    pub page_size: Option<i64>,
    /// oauth2 (client credentials) or oauth1 (OAuth 1.0a, OneRoster 1.1 only).
    #[arg(long)]
    pub auth: String,
    /// oauth2: the token endpoint.
    #[arg(long)]
    pub token_url: Option<String>,
    /// oauth2: the client id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// oauth2: the client secret (visible to other users in `ps`: prefer --client-secret-file).
    #[arg(long, conflicts_with = "client_secret_file")]
    pub client_secret: Option<String>,
    /// oauth2: a file holding the client secret (one trailing newline is ignored).
    #[arg(long)]
    pub client_secret_file: Option<PathBuf>,
    /// oauth2: a scope to ask for (repeat for several; default: the version's roster-core scope).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// oauth2: how the client authenticates at the token endpoint: basic (default) or body.
    #[arg(long)]
    pub client_auth: Option<String>,
    /// oauth2: an API key the source asks for besides the token, sent on every request
    /// (visible in `ps`: prefer --api-key-file).
    #[arg(long, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// oauth2: a file holding the API key (one trailing newline is ignored).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// oauth2: the header the API key goes in (default: apikey).
    #[arg(long)]
    pub api_key_header: Option<String>,
    /// oauth1: the consumer key.
    #[arg(long)]
    pub consumer_key: Option<String>,
    /// oauth1: the consumer secret (visible in `ps`: prefer --consumer-secret-file).
    #[arg(long, conflicts_with = "consumer_secret_file")]
    pub consumer_secret: Option<String>,
    /// oauth1: a file holding the consumer secret (one trailing newline is ignored).
    #[arg(long)]
    pub consumer_secret_file: Option<PathBuf>,
    /// oauth1: HMAC-SHA256 (default) or HMAC-SHA1.
    #[arg(long)]
    pub signature_method: Option<String>,
    /// When delta pulls run: "every 1h" (default), "every 30m", "daily 02:30", or off.
    #[arg(long)]
    pub delta_schedule: Option<String>,
    /// When full pulls run: "every 7d" (default), "daily 02:30", or off.
    #[arg(long)]
    pub full_schedule: Option<String>,
    /// Requests per second to the source (1-1000; default 10).
    #[arg(long)]
    pub requests_per_second: Option<i64>,
    /// Requests in flight at once (1-5; default 2).
    #[arg(long)]
    pub max_in_flight: Option<i64>,
    /// Seconds one request may take (1-600; default 60).
    #[arg(long)]
    pub timeout_secs: Option<i64>,
    /// Print the connection as one JSON object (without its secret).
    #[arg(long)]
    pub json: bool,
    /// Replace the connection of this name (every setting, the secret included) instead of
    /// adding one. Its delta cursor is kept when the base URL and version stay the same.
    #[arg(long)]
    pub replace: bool,
}

/// The flag a field comes from.
fn flag(field: Field, method: &str) -> String {
    match field {
        Field::Name => "--name",
        Field::Kind => "--kind",
        Field::Version => "--version",
        Field::BaseUrl => "--base-url",
        Field::PageSize => "--page-size",
        Field::AuthMethod => "--auth",
        Field::TokenUrl => "--token-url",
        Field::ClientId => "--client-id",
        Field::ClientAuth => "--client-auth",
        Field::Scopes => "--scope",
        Field::Scope(i) => return format!("--scope (#{})", i + 1),
        Field::ConsumerKey => "--consumer-key",
        Field::SignatureMethod => "--signature-method",
        Field::Secret if method == "oauth1" => "--consumer-secret",
        Field::Secret => "--client-secret",
        Field::ApiKeyHeader => "--api-key-header",
        Field::ApiKey => "--api-key",
        Field::RequestsPerSecond => "--requests-per-second",
        Field::MaxInFlight => "--max-in-flight",
        Field::TimeoutSecs => "--timeout-secs",
        Field::DeltaSchedule => "--delta-schedule",
        Field::FullSchedule => "--full-schedule",
    }
    .to_string()
}

fn refused(errors: InputErrors, method: &str) -> CliError {
    let problems = errors
        .0
        .iter()
        .map(|e| format!("{}: {}", flag(e.field, method), e.message))
        .collect::<Vec<_>>()
        .join("; ");
    CliError::msg(format!("the connection is not valid: {problems}"))
}

/// A secret from its flag or its file; a flag and a file of the other method are refused.
fn read_secret(args: &AddArgs) -> Result<Option<Secret>, CliError> {
    let (value, file, other_value, other_file, other_flag) = if args.auth == "oauth1" {
        (
            &args.consumer_secret,
            &args.consumer_secret_file,
            &args.client_secret,
            &args.client_secret_file,
            "--client-secret",
        )
    } else {
        (
            &args.client_secret,
            &args.client_secret_file,
            &args.consumer_secret,
            &args.consumer_secret_file,
            "--consumer-secret",
        )
    };
    if other_value.is_some() || other_file.is_some() {
        return Err(CliError::msg(format!(
            "{other_flag}: does not apply to {} authentication",
            args.auth
        )));
    }
    if let Some(path) = file {
        return secret_from_file(path).map(Some);
    }
    Ok(value.as_deref().map(Secret::new))
}

fn secret_from_file(path: &Path) -> Result<Secret, CliError> {
    let text = std::fs::read_to_string(path)
        .context(|| format!("cannot read the secret file {}", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(Secret::new(text.strip_suffix('\r').unwrap_or(text)))
}

fn schedule_input(flag: &Option<String>) -> ScheduleInput {
    flag.as_deref()
        .map_or(ScheduleInput::Default, ScheduleInput::from_text)
}

fn input_from_args(args: &AddArgs) -> Result<ConnectionInput, CliError> {
    Ok(ConnectionInput {
        name: args.name.clone(),
        kind: args.kind.clone(),
        version: args.version.clone().unwrap_or_default(),
        base_url: args.base_url.clone(),
        page_size: args.page_size,
        auth: AuthInput {
            method: args.auth.clone(),
            token_url: args.token_url.clone(),
            client_id: args.client_id.clone(),
            client_auth: args.client_auth.clone(),
            scopes: args.scopes.clone(),
            consumer_key: args.consumer_key.clone(),
            signature_method: args.signature_method.clone(),
            api_key_header: args.api_key_header.clone(),
        },
        secret: read_secret(args)?,
        api_key: match &args.api_key_file {
            Some(path) => Some(secret_from_file(path)?),
            None => args.api_key.as_deref().map(Secret::new),
        },
        requests_per_second: args.requests_per_second,
        max_in_flight: args.max_in_flight,
        timeout_secs: args.timeout_secs,
        delta_schedule: schedule_input(&args.delta_schedule),
        full_schedule: schedule_input(&args.full_schedule),
    })
}

fn schedule_text(schedule: Option<crate::domain::schedule::Schedule>) -> String {
    schedule.map_or_else(|| "off".to_string(), |s| s.to_string())
}

/// One line per connection: name, version, base URL, auth, schedules, cursor.
fn connection_line(c: &StoredConnection) -> String {
    let config = &c.config;
    let auth = match &config.auth {
        AuthConfig::Oauth2 { .. } => "oauth2",
        AuthConfig::Oauth1 { .. } => "oauth1",
    };
    let api = match (config.kind, config.version) {
        (ConnectionKind::OneRosterAssessmentResults, _) => "OneRoster assessment results",
        (_, ApiVersion::OneRoster(_)) => "OneRoster",
        (_, ApiVersion::PartnerResults(_)) => "partner results API",
    };
    format!(
        "{}\t{api} {}\t{}\t{auth}\tdelta: {}\tfull: {}\tcursor: {}",
        config.name,
        config.version.as_str(),
        config.base_url,
        schedule_text(config.schedule.delta),
        schedule_text(config.schedule.full),
        c.delta_cursor
            .map_or_else(|| "none".to_string(), |t| t.to_rfc3339())
    )
}

pub async fn add(settings: Settings, args: AddArgs) -> CliResult {
    let input = input_from_args(&args)?;
    let (config, secrets) = input.validate().map_err(|e| refused(e, &args.auth))?;
    let secret_box = SecretBox::new(&MasterKey::load(&settings)?);
    let db = db(&settings).await?;
    let district = districts::get(&db, &args.district).await?;
    let (secret, api_key) = secret_box.seal_connection(district.id, &config.name, &secrets);
    let sealed = Sealed {
        secret: &secret,
        api_key: api_key.as_deref(),
    };
    let stored = if args.replace {
        connections::replace(&db, district.id, &config, sealed).await
    } else {
        connections::insert(&db, district.id, &config, sealed)
            .await
            .map(Some)
    };
    db.close().await;
    let stored = match stored {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            return Err(CliError::msg(format!(
                "no connection {:?} in district {} to replace (leave out --replace to add it)",
                config.name, district.slug
            )))
        }
        Err(StoreError::Conflict(m)) => {
            return Err(CliError::msg(format!("{m} (add --replace to replace it)")))
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        output::line(connection_json(&stored))?;
    } else {
        output::line(format_args!(
            "{} connection {} {} district {}: {}",
            if args.replace { "replaced" } else { "added" },
            stored.config.name,
            if args.replace { "in" } else { "to" },
            district.slug,
            connection_line(&stored)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(settings: Settings, district: &str, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let all = connections::list(&db, district.id).await?;
    db.close().await;
    if json_out {
        let listed: Vec<_> = all.iter().map(connection_json).collect();
        output::line(serde_json::json!({ "connections": listed }))?;
    } else {
        for c in &all {
            output::line(connection_line(c))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(settings: Settings, district: &str, name: &str) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let removed = connections::delete(&db, district.id, name).await?;
    db.close().await;
    if removed {
        output::line(format_args!(
            "removed connection {name} from district {}",
            district.slug
        ))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::msg(format!(
            "no connection {name:?} in district {}",
            district.slug
        )))
    }
}
