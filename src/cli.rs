//! What the `rostergate` commands do. `main.rs` parses arguments and calls these.

pub mod bench;
pub mod connection;
mod error;
pub mod lti;
pub mod lti_services;
mod output;
pub mod push_secret;
mod spinner;
pub mod subscription;
mod view;

use std::path::Path;
use std::process::ExitCode;

pub use error::{CliError, Context};
use spinner::Spinner;

use crate::admin;
use crate::config::Settings;
use crate::domain::district::DistrictSettings;
use crate::imports::{import_prepared, PreparedBundle};
use crate::startup::{open_database, Application};
use crate::store::{districts, runs, Db, PoolLife};
use crate::sync::engine::RunOptions;
use crate::sync::{Engine, RunReport, RunStatus};

/// Exit codes of `import` and `sync approve`.
pub mod exit {
    pub const APPLIED: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const HELD: u8 = 3;
    pub const DRY_RUN: u8 = 4;
}

pub type CliResult = Result<ExitCode, CliError>;

async fn db(settings: &Settings) -> Result<Db, CliError> {
    open_database(settings, PoolLife::Command)
        .await
        .context(|| {
            format!(
                "cannot open the database {}",
                crate::config::redact_url(&settings.database_url)
            )
        })
}

pub async fn serve(settings: Settings) -> CliResult {
    let bind = settings.bind.clone();
    let url = crate::config::redact_url(&settings.database_url);
    let app = Application::build(settings)
        .await
        .context(|| "cannot start the server".to_string())?;
    tracing::info!(bind = %bind, port = app.port(), database = %url, "rostergate is listening");
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(settings: Settings) -> CliResult {
    let db = db(&settings).await?;
    db.close().await;
    output::line(format_args!(
        "database is up to date: {}",
        crate::config::redact_url(&settings.database_url)
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn district_create(
    settings: Settings,
    slug: &str,
    name: &str,
    timezone: &str,
    review_every_sync: bool,
    json_out: bool,
) -> CliResult {
    let db = db(&settings).await?;
    let district_settings = DistrictSettings {
        review_every_sync,
        ..Default::default()
    };
    let district =
        admin::create_district(&db, slug, name, timezone, Some(district_settings)).await?;
    if json_out {
        output::line(serde_json::to_string(&district)?)?;
    } else {
        output::line(format_args!(
            "created district {} ({}, {})",
            district.slug,
            district.name.as_str(),
            district.timezone.name()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn district_list(settings: Settings, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let all = districts::list(&db).await?;
    if json_out {
        output::line(serde_json::to_string(&view::Districts { districts: &all })?)?;
    } else {
        for d in &all {
            output::line(view::district_line(d))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn client_create(
    settings: Settings,
    district: &str,
    scopes: &str,
    name: &str,
    json_out: bool,
) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let (credentials, scopes) = admin::create_client(&db, &district, name, scopes).await?;
    if json_out {
        let created = view::CreatedClient::new(&credentials, &scopes, &district);
        output::line(serde_json::to_string(&created)?)?;
    } else {
        output::text(&format!(
            "client_id:     {}\nclient_secret: {}\nscopes:        {}\n\
             The secret is shown only now: store it safely.\n",
            credentials.client_id,
            credentials.client_secret,
            crate::domain::scope::join(&scopes)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn client_revoke(settings: Settings, district: &str, client_id: &str) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    if crate::store::clients::revoke(&db, district.id, client_id).await? {
        output::line(format_args!(
            "revoked {client_id}: it gets no new tokens, and those it has stop working within [auth] client_check_ttl_secs"
        ))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::msg(format!(
            "no active client {client_id:?} in district {}",
            district.slug
        )))
    }
}

fn report_exit(report: &RunReport) -> ExitCode {
    ExitCode::from(match report.status {
        RunStatus::Applied => exit::APPLIED,
        RunStatus::Held => exit::HELD,
        RunStatus::DryRun => exit::DRY_RUN,
        _ => exit::FAILED,
    })
}

fn print_report(report: &RunReport, json_out: bool) -> Result<(), CliError> {
    if json_out {
        output::line(serde_json::to_string(report)?)
    } else {
        output::text(&report.summary())
    }
}

pub async fn import_oneroster(
    settings: Settings,
    district: &str,
    path: &Path,
    dry_run: bool,
    json_out: bool,
) -> CliResult {
    // Opened and hashed while the database is reached: for an unchanged bundle, the hashing is
    // most of the import.
    let prepared = PreparedBundle::open(path, None, &settings.import);
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let spinner = Spinner::start();
    let listener = spinner.as_ref().map(Spinner::listener);
    let mut engine = Engine::new(db.clone(), settings.import.max_reported_errors);
    if let Some(listener) = &listener {
        engine = engine.with_progress(listener.clone());
    }
    let report = import_prepared(
        &engine,
        &district,
        prepared,
        RunOptions {
            dry_run,
            ..Default::default()
        },
        listener,
    )
    .await;
    if let Some(spinner) = spinner {
        spinner.finish();
    }
    let report = report.context(|| format!("cannot import into district {}", district.slug))?;
    db.close().await;
    print_report(&report, json_out)?;
    Ok(report_exit(&report))
}

pub async fn scores_import(
    settings: Settings,
    district: &str,
    path: &Path,
    json_out: bool,
) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let plans = crate::scores::install_plans(&settings)
        .context(|| "cannot load the learning plans".to_string())?;
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let report = crate::scores::cdf_import::import_cdf(
        &db,
        &district,
        &plans,
        (path, &label),
        &settings.import,
    )
    .await
    .context(|| format!("cannot import scores into district {}", district.slug))?;
    db.close().await;
    print_score_report(&report, json_out)
}

pub async fn scores_pull(
    settings: Settings,
    district: &str,
    connection: &str,
    full: bool,
    json_out: bool,
) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let plans = crate::scores::install_plans(&settings)
        .context(|| "cannot load the learning plans".to_string())?;
    let secrets =
        crate::auth::secrets::SecretBox::new(&crate::auth::keys::MasterKey::load(&settings)?);
    let request = crate::pulls::scores::ScorePullRequest {
        connection: connection.to_string(),
        full,
    };
    let report =
        crate::pulls::scores::pull_scores(&db, &secrets, &settings, &district, &plans, &request)
            .await
            .context(|| {
                format!(
                    "cannot pull scores from connection {connection:?} into district {}",
                    district.slug
                )
            })?;
    db.close().await;
    print_score_report(&report, json_out)
}

fn print_score_report(
    report: &crate::scores::ingest::ScoreImportReport,
    json_out: bool,
) -> CliResult {
    if json_out {
        output::line(serde_json::to_string(report)?)?;
    } else {
        output::text(&report.summary())?;
    }
    Ok(ExitCode::from(match report.status {
        crate::scores::ingest::ImportStatus::Applied => exit::APPLIED,
        crate::scores::ingest::ImportStatus::Refused => exit::FAILED,
    }))
}

pub async fn sync_pull(
    settings: Settings,
    district: &str,
    connection: &str,
    full: bool,
    dry_run: bool,
    json_out: bool,
) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let master = crate::auth::keys::MasterKey::load(&settings)?;
    let secrets = crate::auth::secrets::SecretBox::new(&master);
    let spinner = Spinner::start();
    let listener = spinner.as_ref().map(Spinner::listener);
    let mut engine = Engine::new(db.clone(), settings.import.max_reported_errors);
    if let Some(listener) = &listener {
        engine = engine.with_progress(listener.clone());
    }
    let request = crate::pulls::PullRequest {
        connection: connection.to_string(),
        full,
        dry_run,
    };
    let report = crate::pulls::pull(
        &engine, &db, &secrets, &settings, &district, &request, listener,
    )
    .await;
    if let Some(spinner) = spinner {
        spinner.finish();
    }
    let report = report.context(|| {
        format!(
            "cannot pull from connection {connection:?} into district {}",
            district.slug
        )
    })?;
    db.close().await;
    print_report(&report, json_out)?;
    Ok(report_exit(&report))
}

pub async fn sync_runs(settings: Settings, district: &str, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let rows = runs::list(&db, district.id, 50, 0).await?;
    if json_out {
        let runs = view::Runs {
            runs: rows.iter().map(view::Run::from).collect(),
        };
        output::line(serde_json::to_string(&runs)?)?;
    } else {
        for r in &rows {
            output::line(view::run_line(r))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn sync_show(
    settings: Settings,
    district: &str,
    run_id: &str,
    json_out: bool,
) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let row = runs::find(&db, district.id, run_id)
        .await?
        .ok_or_else(|| CliError::msg(format!("run {run_id:?} not found")))?;
    let mut report = row
        .report()
        .ok_or_else(|| CliError::msg(format!("run {run_id} has no report yet ({})", row.status)))?;
    report.status = row.status().unwrap_or(report.status);
    print_report(&report, json_out)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn sync_decide(
    settings: Settings,
    district: &str,
    run_id: &str,
    approve: bool,
    json_out: bool,
) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let engine = Engine::new(db.clone(), settings.import.max_reported_errors);
    let report = if approve {
        engine.approve(&district, run_id).await
    } else {
        engine.discard(&district, run_id).await
    };
    let verb = if approve { "approve" } else { "discard" };
    let report = report.context(|| format!("cannot {verb} run {run_id}"))?;
    print_report(&report, json_out)?;
    Ok(if approve {
        report_exit(&report)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn generate_oneroster(students: usize, seed: u64, out: &Path, json_out: bool) -> CliResult {
    let spec = crate::synthetic::SyntheticDistrict { students, seed };
    let counts = crate::synthetic::write_bundle(&spec, out)?;
    if json_out {
        let summary = serde_json::json!({ "path": out.display().to_string(), "students": students, "seed": seed, "rows": counts });
        output::line(summary)?;
    } else {
        output::line(format_args!(
            "wrote a synthetic district of {students} students (seed {seed}) to {}",
            out.display()
        ))?;
        output::line(counts)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `generate cdf`: no terms given means the current school year's terms so far.
pub fn generate_cdf(
    roster: &Path,
    out: &Path,
    mut options: crate::synthetic::cdf::CdfOptions,
    json_out: bool,
) -> CliResult {
    use crate::synthetic::cdf;
    if options.terms.is_empty() {
        options.terms = cdf::terms_so_far(chrono::Local::now().date_naive());
    }
    let summary = cdf::write_cdf(roster, out, &options)
        .context(|| format!("cannot write the MAP Growth export {}", out.display()))?;
    if json_out {
        let line = serde_json::json!({
            "path": out.display().to_string(),
            "roster": roster.display().to_string(),
            "seed": options.seed,
            "layout": options.layout,
            "terms": options.terms,
            "subjects": options.subjects,
            "summary": summary,
        });
        output::line(line)?;
        return Ok(ExitCode::SUCCESS);
    }
    let subjects: Vec<String> = options.subjects.iter().map(|s| s.to_string()).collect();
    output::line(format_args!(
        "wrote a synthetic MAP Growth export ({} layout, seed {}) for {} students to {}",
        options.layout,
        options.seed,
        summary.students,
        out.display()
    ))?;
    output::line(format_args!(
        "  terms: {}; subjects: {}",
        options.terms.join(", "),
        subjects.join(", ")
    ))?;
    let rows = |file: &str, n: u64| format!("  {file:<24} {n:>12} rows");
    output::line(rows(cdf::RESULTS_FILE, summary.results))?;
    output::line(rows(cdf::STUDENTS_FILE, summary.students_by_school))?;
    match (
        summary.class_assignments,
        &summary.class_assignments_omitted,
    ) {
        (Some(n), _) => output::line(rows(cdf::CLASSES_FILE, n))?,
        (None, reason) => output::line(format_args!(
            "  {:<24} left out: {}",
            cdf::CLASSES_FILE,
            reason.as_deref().unwrap_or("no classes")
        ))?,
    }
    if summary.skipped_students > 0 {
        output::line(format_args!(
            "  {} students without an identifier (StudentID) were skipped",
            summary.skipped_students
        ))?;
    }
    if !summary.malformed_at.is_empty() {
        const SHOWN: usize = 10;
        let mut at: Vec<String> = summary
            .malformed_at
            .iter()
            .take(SHOWN)
            .map(|(line, field)| format!("{line} ({field})"))
            .collect();
        if summary.malformed_at.len() > SHOWN {
            at.push(format!("… {} more", summary.malformed_at.len() - SHOWN));
        }
        output::line(format_args!(
            "  {} malformed rows at lines {}",
            summary.malformed,
            at.join(", ")
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
