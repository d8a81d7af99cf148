//! `rostergate subscription add|list|remove|rotate-secret`: a district's webhook subscriptions.
//! `add` and `rotate-secret` print the new `whsec_…` secret once; it is stored sealed and never
//! printed again.

use std::process::ExitCode;

use super::{db, output, CliError, CliResult};
use crate::auth::keys::MasterKey;
use crate::auth::secrets::SecretBox;
use crate::config::Settings;
use crate::events::subscriptions::{
    self as rules, Field, FieldError, SubscriptionInput, DEFAULT_PREVIOUS_SECRET_LIFETIME,
};
use crate::http::subscriptions::{subscription_json, with_secret};
use crate::outbound::target_guard::TargetGuard;
use crate::store::districts;
use crate::store::subscriptions::{self, Subscription};

/// The flags of `subscription add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Slug of the district whose events are delivered.
    #[arg(long)]
    pub district: String,
    /// Where events are delivered (http or https; private addresses only when
    /// outbound.allow_private_targets is set).
    #[arg(long)]
    pub url: String,
    /// Event types to deliver, comma-separated (default: every type).
    #[arg(long, value_delimiter = ',')]
    pub events: Vec<String>,
    /// A note for administrators (who subscribes, why).
    #[arg(long)]
    pub description: Option<String>,
    /// Print one JSON object: the subscription and its secret.
    #[arg(long)]
    pub json: bool,
}

fn flag(field: Field) -> String {
    match field {
        Field::Url => "--url".into(),
        Field::EventType(i) => format!("--events (#{})", i + 1),
        Field::Description => "--description".into(),
    }
}

fn refused(errors: Vec<FieldError>) -> CliError {
    let problems = errors
        .iter()
        .map(|e| format!("{}: {}", flag(e.field), e.message))
        .collect::<Vec<_>>()
        .join("; ");
    CliError::msg(format!("the subscription is not valid: {problems}"))
}

fn events_text(s: &Subscription) -> String {
    if s.event_types.is_empty() {
        "all events".into()
    } else {
        s.event_types.join(",")
    }
}

/// One line per subscription: id, URL, events, status.
fn subscription_line(s: &Subscription) -> String {
    let status = match s.status.disabled_reason() {
        Some(reason) => format!("disabled ({reason})"),
        None => s.status.name().to_string(),
    };
    format!("{}\t{}\t{}\t{status}", s.id, s.url, events_text(s))
}

pub async fn add(settings: Settings, args: AddArgs) -> CliResult {
    let input = SubscriptionInput {
        url: args.url.clone(),
        event_types: args.events.iter().map(|e| e.trim().to_string()).collect(),
        description: args.description.clone(),
    };
    let new = rules::validate(&input, &TargetGuard::from_settings(&settings.outbound))
        .await
        .map_err(refused)?;
    let secrets = SecretBox::new(&MasterKey::load(&settings)?);
    let db = db(&settings).await?;
    let district = districts::get(&db, &args.district).await?;
    let created = rules::create(&db, &secrets, district.id, &new).await;
    db.close().await;
    let (stored, secret) = created?;
    if args.json {
        output::line(with_secret(&stored, &secret))?;
    } else {
        output::text(&format!(
            "id:     {}\nsecret: {}\n\
             The secret is shown only now: give it to the subscriber, which checks the \
             signatures of the events district {} sends to {}.\n",
            stored.id,
            secret.to_text().expose(),
            district.slug,
            stored.url
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(settings: Settings, district: &str, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let all = subscriptions::list(&db, district.id).await;
    db.close().await;
    let all = all?;
    if json_out {
        let listed: Vec<_> = all.iter().map(subscription_json).collect();
        output::line(serde_json::json!({ "subscriptions": listed }))?;
    } else {
        for s in &all {
            output::line(subscription_line(s))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(settings: Settings, district: &str, id: &str) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let removed = subscriptions::delete(&db, district.id, id).await;
    db.close().await;
    if removed? {
        output::line(format_args!(
            "removed subscription {id} from district {}",
            district.slug
        ))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Err(no_such(id, &district.slug))
    }
}

pub async fn rotate_secret(settings: Settings, district: &str, id: &str) -> CliResult {
    let secrets = SecretBox::new(&MasterKey::load(&settings)?);
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let rotated = rules::rotate_secret(
        &db,
        &secrets,
        district.id,
        id,
        DEFAULT_PREVIOUS_SECRET_LIFETIME,
    )
    .await;
    db.close().await;
    let Some((stored, secret)) = rotated? else {
        return Err(no_such(id, &district.slug));
    };
    let until = stored
        .previous_secret_expires_at
        .map_or_else(String::new, |t| t.to_rfc3339());
    output::text(&format!(
        "id:     {}\nsecret: {}\n\
         The secret is shown only now. Events are signed with the previous secret too until {until}.\n",
        stored.id,
        secret.to_text().expose(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn no_such(id: &str, district: &impl std::fmt::Display) -> CliError {
    CliError::msg(format!("no subscription {id:?} in district {district}"))
}
