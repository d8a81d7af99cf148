//! `rostergate lti memberships pull` and `rostergate lti scores post`: the LTI services, run
//! from the command line as the admin API runs them.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::{db, exit, output, print_report, report_exit, CliError, CliResult};
use crate::auth::keys::MasterKey;
use crate::auth::secrets::SecretBox;
use crate::config::Settings;
use crate::domain::records::RecordKind;
use crate::lti::grades;
use crate::lti::memberships;
use crate::lti::platform_http::PlatformHttp;
use crate::lti::service_tokens::ServiceTokens;
use crate::store::{districts, roster};
use crate::sync::Engine;

/// The largest score file read.
const MAX_SCORE_FILE_BYTES: u64 = 4 << 20;

#[derive(clap::Args, Debug)]
pub struct ScoresPostArgs {
    /// Slug of the district.
    #[arg(long)]
    pub district: String,
    /// The class's sourcedId: its course in the LMS gets the scores.
    #[arg(long)]
    pub class: String,
    /// A JSON file: `{"line_item": {...}, "scores": [...]}`, as the API takes it.
    #[arg(long)]
    pub file: PathBuf,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn service_tokens(settings: &Settings) -> Result<ServiceTokens, CliError> {
    let http = PlatformHttp::new(settings.lti.allow_insecure_platforms)
        .map_err(|e| CliError::msg(format!("cannot build the LTI service client: {e}")))?;
    Ok(ServiceTokens::new(http))
}

pub async fn pull_memberships(settings: Settings, district: &str, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let secrets = SecretBox::new(&MasterKey::load(&settings)?);
    let tokens = service_tokens(&settings)?;
    let engine = Engine::new(db.clone(), settings.import.max_reported_errors);
    let pulled = memberships::pull(
        &db,
        &engine,
        &secrets,
        &tokens,
        &district,
        chrono::Utc::now(),
    )
    .await;
    db.close().await;
    let pulled = pulled.map_err(|e| {
        CliError::msg(format!(
            "cannot pull LTI memberships into district {}: {e}",
            district.slug
        ))
    })?;
    if json_out {
        output::line(serde_json::to_string(&json!({
            "contexts": pulled.contexts,
            "members": pulled.members,
            "linked": pulled.linked,
            "run": pulled.run,
        }))?)?;
    } else {
        output::line(format!(
            "{} course(s), {} member(s) read, {} linked to rostered users",
            pulled.contexts, pulled.members, pulled.linked
        ))?;
        print_report(&pulled.run, false)?;
    }
    Ok(report_exit(&pulled.run))
}

pub async fn post_scores(settings: Settings, args: ScoresPostArgs) -> CliResult {
    let body = read_score_file(&args.file)?;
    let post = grades::read_request(&body).map_err(|problems| {
        let listed = problems
            .iter()
            .map(|(at, m)| {
                format!(
                    "{}{}: {m}",
                    args.file.display(),
                    if at.is_empty() {
                        String::new()
                    } else {
                        format!(" at {at}")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        CliError::msg(format!("the scores are not valid: {listed}"))
    })?;
    let db = db(&settings).await?;
    let district = districts::get(&db, &args.district).await?;
    if roster::get(&db, district.id, RecordKind::Classes, &args.class)
        .await?
        .is_none()
    {
        db.close().await;
        return Err(CliError::msg(format!(
            "no class {:?} in district {}",
            args.class, district.slug
        )));
    }
    let secrets = SecretBox::new(&MasterKey::load(&settings)?);
    let tokens = service_tokens(&settings)?;
    let outcome = grades::post_scores(
        &db,
        &secrets,
        &tokens,
        (district.id, &args.class),
        &post,
        chrono::Utc::now(),
    )
    .await;
    db.close().await;
    let outcome = outcome.map_err(|e| {
        CliError::msg(format!(
            "cannot post scores for class {:?}: {e}",
            args.class
        ))
    })?;
    if args.json {
        output::line(serde_json::to_string(&outcome)?)?;
    } else {
        output::line(format!(
            "{} score(s) posted to line item {}{}",
            outcome.posted,
            outcome.line_item,
            if outcome.created { " (made now)" } else { "" }
        ))?;
        for skipped in &outcome.skipped {
            output::line(format!("skipped {}: {}", skipped.user, skipped.reason))?;
        }
    }
    Ok(if outcome.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

fn read_score_file(path: &std::path::Path) -> Result<serde_json::Value, CliError> {
    let cannot =
        |e: &dyn std::fmt::Display| CliError::msg(format!("cannot read {}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(|e| cannot(&e))?.len();
    if size > MAX_SCORE_FILE_BYTES {
        return Err(CliError::msg(format!(
            "{} is larger than {MAX_SCORE_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| cannot(&e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        CliError::msg(format!(
            "{}:{}:{}: not valid JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}
