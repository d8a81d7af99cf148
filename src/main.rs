//! The `rostergate` command line: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rostergate::cli;
use rostergate::config::{Overrides, Settings};

#[derive(Parser)]
#[command(
    name = "rostergate",
    version,
    about = "Rostering integration gateway: OneRoster in, provisioning events out"
)]
struct Args {
    /// Database URL (sqlite://PATH or postgres://…); overrides ROSTERGATE_DATABASE_URL.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Folder holding <env>.toml settings files.
    #[arg(long, global = true, default_value = "config")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve {
        /// Address to listen on; overrides ROSTERGATE_BIND.
        #[arg(long)]
        bind: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage districts (tenants).
    District {
        #[command(subcommand)]
        command: DistrictCommand,
    },
    /// Manage API clients (credentials for POST /oauth/token).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Import roster data.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Inspect sync runs; approve or discard held ones.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Write a synthetic district as a OneRoster CSV bundle.
    Generate {
        #[command(subcommand)]
        command: GenerateCommand,
    },
}

#[derive(Subcommand)]
enum DistrictCommand {
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        /// IANA time zone, e.g. America/Chicago.
        #[arg(long)]
        timezone: String,
        /// Hold every sync for an administrator's approval (preview mode).
        #[arg(long)]
        review_every_sync: bool,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    Create {
        #[arg(long)]
        district: String,
        /// Space- or comma-separated: roster:read, roster:write, admin.
        #[arg(long)]
        scopes: String,
        #[arg(long, default_value = "api client")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop a client from getting new tokens.
    Revoke {
        #[arg(long)]
        district: String,
        client_id: String,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// A OneRoster 1.1 or 1.2 CSV bundle: a zip file or a folder.
    Oneroster {
        #[arg(long)]
        district: String,
        /// Compute and report everything, apply nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum SyncCommand {
    Runs {
        #[arg(long)]
        district: String,
        #[arg(long)]
        json: bool,
    },
    Show {
        #[arg(long)]
        district: String,
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    Approve {
        #[arg(long)]
        district: String,
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    Discard {
        #[arg(long)]
        district: String,
        run_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// A OneRoster 1.1 CSV bulk bundle (a folder) whose school year contains today, so its
    /// enrollments are in effect and coaching is derived on import.
    Oneroster {
        /// Students in the district; schools, classes, teachers and aides scale with it.
        #[arg(long)]
        students: usize,
        /// The same seed writes the same bundle (for the same school year).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// Folder to write (created if missing).
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = Overrides {
        database_url: args.database_url.clone(),
        bind: match &args.command {
            Command::Serve { bind } => bind.clone(),
            _ => None,
        },
    };
    let settings = match Settings::load(&args.config_dir, &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    rostergate::telemetry::init(&settings.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve { .. } => cli::serve(settings).await,
            Command::Migrate => cli::migrate(settings).await,
            Command::District { command } => match command {
                DistrictCommand::Create {
                    slug,
                    name,
                    timezone,
                    review_every_sync,
                    json,
                } => {
                    cli::district_create(settings, &slug, &name, &timezone, review_every_sync, json)
                        .await
                }
                DistrictCommand::List { json } => cli::district_list(settings, json).await,
            },
            Command::Client { command } => match command {
                ClientCommand::Create {
                    district,
                    scopes,
                    name,
                    json,
                } => cli::client_create(settings, &district, &scopes, &name, json).await,
                ClientCommand::Revoke {
                    district,
                    client_id,
                } => cli::client_revoke(settings, &district, &client_id).await,
            },
            Command::Import {
                command:
                    ImportCommand::Oneroster {
                        district,
                        dry_run,
                        json,
                        path,
                    },
            } => cli::import_oneroster(settings, &district, &path, dry_run, json).await,
            Command::Sync { command } => match command {
                SyncCommand::Runs { district, json } => {
                    cli::sync_runs(settings, &district, json).await
                }
                SyncCommand::Show {
                    district,
                    run_id,
                    json,
                } => cli::sync_show(settings, &district, &run_id, json).await,
                SyncCommand::Approve {
                    district,
                    run_id,
                    json,
                } => cli::sync_decide(settings, &district, &run_id, true, json).await,
                SyncCommand::Discard {
                    district,
                    run_id,
                    json,
                } => cli::sync_decide(settings, &district, &run_id, false, json).await,
            },
            Command::Generate {
                command:
                    GenerateCommand::Oneroster {
                        students,
                        seed,
                        json,
                        out,
                    },
            } => cli::generate_oneroster(students, seed, &out, json),
        }
    });
    match result {
        Ok(code) => code,
        Err(cli::CliError(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
