//! What the `rostergate` commands do. `main.rs` parses arguments and calls these.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::admin;
use crate::config::Settings;
use crate::domain::district::DistrictSettings;
use crate::imports::{import_oneroster_csv, Progress};
use crate::startup::{open_database, Application};
use crate::store::{districts, runs, Db};
use crate::sync::engine::RunOptions;
use crate::sync::{Engine, RunReport, RunStatus};

/// Exit codes of `import` and `sync approve`.
pub mod exit {
    pub const APPLIED: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const HELD: u8 = 3;
    pub const DRY_RUN: u8 = 4;
}

/// An error for the person at the terminal: printed as `error: …`, exit code 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

pub type CliResult = Result<ExitCode, CliError>;

async fn db(settings: &Settings) -> Result<Db, CliError> {
    Ok(open_database(settings).await?)
}

pub async fn serve(settings: Settings) -> CliResult {
    let bind = settings.bind.clone();
    let url = crate::config::redact_url(&settings.database_url);
    let app = Application::build(settings).await?;
    tracing::info!(bind = %bind, port = app.port(), database = %url, "rostergate is listening");
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(settings: Settings) -> CliResult {
    let db = db(&settings).await?;
    db.close().await;
    println!(
        "database is up to date: {}",
        crate::config::redact_url(&settings.database_url)
    );
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
        println!("{}", crate::http::districts::district_json(&district));
    } else {
        println!(
            "created district {} ({}, {})",
            district.slug,
            district.name.as_str(),
            district.timezone.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn district_list(settings: Settings, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let all = districts::list(&db).await?;
    if json_out {
        let items: Vec<_> = all
            .iter()
            .map(crate::http::districts::district_json)
            .collect();
        println!("{}", json!({ "districts": items }));
    } else {
        for d in all {
            println!("{}\t{}\t{}", d.slug, d.name.as_str(), d.timezone.name());
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
    let scopes = crate::domain::scope::join(&scopes);
    if json_out {
        println!(
            "{}",
            json!({ "client_id": credentials.client_id, "client_secret": credentials.client_secret, "scopes": scopes, "district": district.slug })
        );
    } else {
        println!("client_id:     {}", credentials.client_id);
        println!("client_secret: {}", credentials.client_secret);
        println!("scopes:        {scopes}");
        println!("The secret is shown only now: store it safely.");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn client_revoke(settings: Settings, district: &str, client_id: &str) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    if crate::store::clients::revoke(&db, district.id, client_id).await? {
        println!("revoked {client_id}: it gets no new tokens, and those it has stop working within [auth] client_check_ttl_secs");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError(format!(
            "no active client {client_id:?} in district {}",
            district.slug
        )))
    }
}

fn progress_bar() -> Option<(ProgressBar, Progress)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let shown = bar.clone();
    let progress: Progress = Arc::new(move |kind, rows| {
        shown.set_message(format!("{}: {rows} rows read", kind.oneroster_name()));
    });
    Some((bar, progress))
}

fn report_exit(report: &RunReport) -> ExitCode {
    ExitCode::from(match report.status {
        RunStatus::Applied => exit::APPLIED,
        RunStatus::Held => exit::HELD,
        RunStatus::DryRun => exit::DRY_RUN,
        _ => exit::FAILED,
    })
}

fn print_report(report: &RunReport, json_out: bool) {
    if json_out {
        println!(
            "{}",
            serde_json::to_string(report).expect("report serializes")
        );
    } else {
        print!("{}", report.summary());
    }
}

pub async fn import_oneroster(
    settings: Settings,
    district: &str,
    path: &Path,
    dry_run: bool,
    json_out: bool,
) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let engine = Engine::new(db.clone(), settings.import.max_reported_errors);
    let bar = progress_bar();
    let progress = bar.as_ref().map(|(_, p)| p.clone());
    let report = import_oneroster_csv(
        &engine,
        &district,
        path,
        None,
        &settings.import,
        RunOptions { dry_run },
        progress,
    )
    .await;
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    print_report(&report, json_out);
    db.close().await;
    Ok(report_exit(&report))
}

pub async fn sync_runs(settings: Settings, district: &str, json_out: bool) -> CliResult {
    let db = db(&settings).await?;
    let district = districts::get(&db, district).await?;
    let rows = runs::list(&db, district.id, 50, 0).await?;
    if json_out {
        let items: Vec<_> = rows
            .iter()
            .map(|r| json!({ "run_id": r.id, "status": r.status, "source": r.source, "started_at": r.started_at, "finished_at": r.finished_at }))
            .collect();
        println!("{}", json!({ "runs": items }));
    } else {
        for r in rows {
            println!(
                "{}\t{}\t{}\t{}",
                r.id,
                r.status,
                r.source,
                r.started_at.to_rfc3339()
            );
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
        .ok_or_else(|| CliError(format!("run {run_id:?} not found")))?;
    let mut report = row
        .report()
        .ok_or_else(|| CliError(format!("run {run_id} has no report yet ({})", row.status)))?;
    report.status = row.status().unwrap_or(report.status);
    print_report(&report, json_out);
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
        engine.approve(&district, run_id).await?
    } else {
        engine.discard(&district, run_id).await?
    };
    print_report(&report, json_out);
    Ok(if approve {
        report_exit(&report)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn generate_oneroster(students: usize, seed: u64, out: &Path) -> CliResult {
    let counts = crate::bench::generate::write_bundle(
        &crate::bench::generate::SyntheticDistrict { students, seed },
        out,
    )?;
    println!("wrote {} ({counts:?})", out.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn bench_import(
    students: Vec<usize>,
    postgres_url: Option<String>,
    work_dir: std::path::PathBuf,
    json_out: bool,
) -> CliResult {
    use crate::bench::{run_benchmark, Backend, BenchOptions};
    let mut backends = vec![Backend::Sqlite];
    if let Some(url) = postgres_url {
        backends.push(Backend::Postgres(url));
    }
    let exe = std::env::current_exe()?;
    let report = run_benchmark(BenchOptions {
        students,
        backends,
        work_dir,
        exe,
    })
    .await?;
    if json_out {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(ExitCode::SUCCESS)
}
