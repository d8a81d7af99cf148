//! The `rostergate` command line: parses arguments and calls the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rostergate::cli;
use rostergate::config::{Overrides, Settings};
use rostergate::synthetic::cdf::{CdfLayout, CdfOptions, CdfSubject};
use rostergate::telemetry::{self, LogAudience};

#[derive(Parser)]
#[command(
    name = "rostergate",
    version,
    about = "Rostering integration gateway: OneRoster in, provisioning events out"
)]
struct Args {
    /// Database URL (sqlite://PATH or postgres://…); overrides ROSTERGATE_DATABASE_URL.
    /// A relative SQLite path is taken from the working directory.
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
    /// Run the HTTP API (logs at info; every other command only warns).
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
    /// Import assessment results (MAP Growth–style scores) into learning plans.
    Scores {
        #[command(subcommand)]
        command: ScoresCommand,
    },
    /// Write synthetic data: a district as a OneRoster CSV bundle, or a MAP Growth export for one.
    Generate {
        #[command(subcommand)]
        command: GenerateCommand,
    },
    /// Manage a district's connections to its source systems (OneRoster REST).
    Connection {
        #[command(subcommand)]
        command: ConnectionCommand,
    },
    /// Manage a district's secrets for rosters pushed to it (Standard Webhooks signatures).
    PushSecret {
        #[command(subcommand)]
        command: PushSecretCommand,
    },
    /// Manage a district's webhook subscriptions (signed deliveries of its events).
    Subscription {
        #[command(subcommand)]
        command: SubscriptionCommand,
    },
    /// Manage a district's LTI 1.3 platform registrations (the LMSs that launch the gateway).
    Lti {
        #[command(subcommand)]
        command: LtiCommand,
    },
    /// Manage the gateway's own signing keys (the LTI tool's published JWKS).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run a benchmark: `rostergate-bench` (built beside this program) with the arguments
    /// given, e.g. `rostergate bench lti --postgres-url …`; `rostergate bench --help` lists them.
    #[command(disable_help_flag = true)]
    Bench {
        /// The benchmark and its options, passed to `rostergate-bench` as they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Subcommand)]
enum LtiCommand {
    /// A district's platform registrations.
    Platform {
        #[command(subcommand)]
        command: LtiPlatformCommand,
    },
    /// A platform's deployments.
    Deployment {
        #[command(subcommand)]
        command: LtiDeploymentCommand,
    },
    /// Course memberships (NRPS) of the courses that launched the tool.
    Memberships {
        #[command(subcommand)]
        command: LtiMembershipsCommand,
    },
    /// Scores in the LMS gradebook (AGS).
    Scores {
        #[command(subcommand)]
        command: LtiScoresCommand,
    },
}

#[derive(Subcommand)]
enum LtiMembershipsCommand {
    /// Read the memberships of every course that offered them at a launch, and sync them into
    /// the roster as one run: rostered members linked, missing class enrollments added, members
    /// without a rostered account reported, not provisioned.
    Pull {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// Print one JSON object with the run.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LtiScoresCommand {
    /// Post scores for a class to its course's LMS gradebook: the line item found by its
    /// resource_id (or label), made when missing.
    Post(Box<cli::lti_services::ScoresPostArgs>),
}

#[derive(Subcommand)]
enum LtiPlatformCommand {
    /// Register a platform by (issuer, client id), unique across every district, with its
    /// deployments and endpoints.
    Add(Box<cli::lti::AddArgs>),
    /// Make a single-use Dynamic Registration invitation: a URL an LMS administrator pastes
    /// into the platform, which then registers itself in the district.
    Invite(Box<cli::lti::InviteArgs>),
    /// List a district's platforms and their deployments (active or pending).
    List {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// Print one JSON object with a `platforms` array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a platform: its launches are refused from now on.
    Remove {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// The platform's id, as `lti platform add` or `list` printed it.
        #[arg(long)]
        id: i64,
    },
}

#[derive(Subcommand)]
enum LtiDeploymentCommand {
    /// Accept a deployment a launch recorded as pending: its launches are accepted from now on.
    Claim {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// The platform's id.
        #[arg(long)]
        platform: i64,
        /// The deployment's id, as `lti platform list` shows it.
        #[arg(long)]
        deployment_id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate the tool's keys: the published next key signs from now on, the current one is
    /// retired and a new next key is published (made on first use when there are none).
    Rotate {
        /// Print one JSON object: the `current` and `next` keys' `kid` and `created_at`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SubscriptionCommand {
    /// Subscribe a URL to the district's events: prints its id and its signing secret
    /// (`whsec_…`), once; the secret is stored encrypted.
    Add(Box<cli::subscription::AddArgs>),
    /// List a district's subscriptions (never their secrets).
    List {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// Print one JSON object with a `subscriptions` array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a subscription: no more events are delivered to it.
    Remove {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// The subscription's id, as `subscription add` or `list` printed it.
        id: String,
    },
    /// Give a subscription a new signing secret, printed once; the previous one stays valid
    /// for 24 hours so that the subscriber can switch.
    RotateSecret {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// The subscription's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum PushSecretCommand {
    /// Make a new secret: printed once (`whsec_…`), with its id, and stored encrypted.
    Add {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// Print one JSON object (id, secret, district, created_at).
        #[arg(long)]
        json: bool,
    },
    /// List a district's push secrets: ids, when created, when revoked (never the secrets).
    List {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// Print one JSON object with a `push_secrets` array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a push secret: pushes signed with it are refused from now on.
    Revoke {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// The secret's id, as `push-secret add` or `list` printed it.
        id: String,
    },
}

#[derive(Subcommand)]
enum ConnectionCommand {
    /// Add a connection; its secret is stored encrypted and never printed.
    Add(Box<cli::connection::AddArgs>),
    /// List a district's connections (never their secrets).
    List {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// Print one JSON object with a `connections` array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a connection.
    Remove {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// The connection's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum DistrictCommand {
    /// Create a district: its data, clients and runs are kept apart from every other district's.
    Create {
        /// Short handle used in URLs and commands: lowercase letters, digits and dashes.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// IANA time zone, e.g. America/Chicago; enrollment dates are read in it.
        #[arg(long)]
        timezone: String,
        /// Hold every sync for an administrator's approval (preview mode).
        #[arg(long)]
        review_every_sync: bool,
        /// Print the district as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List every district: slug, name and time zone.
    List {
        /// Print one JSON object with a `districts` array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Create an API client; its secret is printed once and stored only hashed.
    Create {
        /// Slug of the district the client's tokens are bound to.
        #[arg(long)]
        district: String,
        /// Space- or comma-separated: roster:read, roster:write, scores:write, plans:write, admin.
        #[arg(long)]
        scopes: String,
        /// A name to recognise the client by.
        #[arg(long, default_value = "api client")]
        name: String,
        /// Print one JSON object (client_id, client_secret, scopes, district).
        #[arg(long)]
        json: bool,
    },
    /// Stop a client from getting new tokens.
    Revoke {
        /// Slug of the district the client belongs to.
        #[arg(long)]
        district: String,
        /// The client's id, as `client create` printed it.
        client_id: String,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// A OneRoster 1.1 or 1.2 CSV bundle: a zip file or a folder.
    #[command(after_long_help = "\
Exit codes:
  0  applied
  1  failed: nothing applied (the report says what is wrong, with file, line and field)
  2  usage error (unknown flag, missing argument)
  3  held for review: `rostergate sync approve` or `sync discard` decides
  4  dry run: everything computed and reported, nothing applied")]
    Oneroster {
        /// Slug of the district to import into.
        #[arg(long)]
        district: String,
        /// Compute and report everything, apply nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// The bundle: a zip file or a folder holding manifest.csv and the CSV files.
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum ScoresCommand {
    /// A MAP Growth Comprehensive Data File: the export's zip, or its AssessmentResults.csv.
    #[command(after_long_help = "\
Each result is stored once per test event (importing the same file again changes nothing),
matched to a rostered student by the district's score_student_key (default: the OneRoster
identifier, which MAP exports carry as StudentID), and placed per goal area through the
learning-plan mappings. Results no student matches are kept and matched when the student is
rostered. A file with any error is refused whole: nothing is stored.

Exit codes:
  0  imported
  1  refused or failed: nothing stored (the report lists each error with file, line and field)
  2  usage error (unknown flag, missing argument)")]
    Import {
        /// Slug of the district the results belong to.
        #[arg(long)]
        district: String,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// The export: a zip holding AssessmentResults.csv, or that CSV file itself.
        path: PathBuf,
    },
    /// Pull the results of an assessment partner's connection (kind assessment-rest) now.
    #[command(after_long_help = "\
The partner serves GET {base}/results as contracts/partner-results.openapi.json describes.
The first pull of a connection, and --full, ask for every result; the others ask for what
changed since the last applied pull (less five minutes). Results are imported as a CDF file
is: stored once per test event, matched, placed. A page that cannot be fetched or read
refuses the whole pull: nothing is stored and the connection's cursor stays where it was.
Pulls also run by themselves on the connection's schedules when a gateway serves.

Exit codes:
  0  imported
  1  refused or failed: nothing stored (the report lists each error with its page and JSON pointer)
  2  usage error (unknown flag, missing argument)")]
    Pull {
        /// Slug of the district the connection belongs to.
        #[arg(long)]
        district: String,
        /// The connection's name.
        #[arg(long)]
        connection: String,
        /// Ask for every result, even when the connection has a cursor.
        #[arg(long)]
        full: bool,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Pull a district's roster from one of its connections (a OneRoster REST API).
    #[command(after_long_help = "\
The first pull of a connection, and every --full pull, fetches everything and reconciles:
records the source no longer returns are removed, as a bulk CSV import removes them (and the
safeguards hold mass changes). Other pulls fetch what changed since the last applied pull.

Exit codes (as `import oneroster`):
  0  applied
  1  failed: nothing applied (the report says what is wrong: request, offset, record, field)
  2  usage error (unknown flag, missing argument)
  3  held for review: `rostergate sync approve` or `sync discard` decides
  4  dry run: everything computed and reported, nothing applied")]
    Pull {
        /// Slug of the district to pull into.
        #[arg(long)]
        district: String,
        /// Name of the district's connection to pull from.
        #[arg(long)]
        connection: String,
        /// Fetch everything and reconcile, even when a delta pull would do.
        #[arg(long)]
        full: bool,
        /// Compute and report everything, apply nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// List a district's latest 50 runs, newest first.
    Runs {
        /// Slug of the district.
        #[arg(long)]
        district: String,
        /// Print one JSON object with a `runs` array.
        #[arg(long)]
        json: bool,
    },
    /// Show one run's report.
    Show {
        /// Slug of the district the run belongs to.
        #[arg(long)]
        district: String,
        /// The run's id, as `import` or `sync runs` printed it.
        run_id: String,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Apply a held run (compared with the store again first); exits as `import` does.
    Approve {
        /// Slug of the district the run belongs to.
        #[arg(long)]
        district: String,
        /// The held run's id.
        run_id: String,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Drop a held run: nothing of it is applied.
    Discard {
        /// Slug of the district the run belongs to.
        #[arg(long)]
        district: String,
        /// The held run's id.
        run_id: String,
        /// Print the report as one JSON object.
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
    /// A MAP Growth Comprehensive Data File (a zip of AssessmentResults.csv,
    /// StudentsBySchool.csv and ClassAssignments.csv) for the students of a OneRoster bundle
    /// folder; StudentID is each student's `identifier`.
    Cdf {
        /// The OneRoster 1.1 CSV bundle folder (e.g. one `generate oneroster` wrote).
        #[arg(long)]
        roster: PathBuf,
        /// Zip file to write.
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated term names ("Fall 2025-2026,Winter 2025-2026"); by default the
        /// current school year's terms whose testing has begun.
        #[arg(long, value_delimiter = ',')]
        terms: Vec<String>,
        /// Comma-separated: mathematics, reading, language-usage, science.
        #[arg(long, value_delimiter = ',', default_value = "mathematics,reading")]
        subjects: Vec<CdfSubject>,
        /// AssessmentResults.csv columns: combined (current) or post2015 (with TestID).
        #[arg(long, default_value = "combined")]
        layout: CdfLayout,
        /// The same seed writes the same zip, byte for byte.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Extra result rows, each with one broken field, spread through the file.
        #[arg(long, default_value_t = 0)]
        malformed: usize,
        /// Write some headers in the casings real exports vary by (termname, FalltoFall…).
        #[arg(long)]
        odd_casing: bool,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The benchmarks need none of the gateway's settings.
    if let Command::Bench { args } = &args.command {
        return cli::bench::run(args).unwrap_or_else(|e| fail(&e));
    }
    let overrides = Overrides {
        database_url: args.database_url.clone(),
        bind: match &args.command {
            Command::Serve { bind } => bind.clone(),
            _ => None,
        },
    };
    let settings = match Settings::load(&args.config_dir, &overrides) {
        Ok(s) => s,
        Err(e) => return fail(&e.into()),
    };
    telemetry::init(
        &settings.log,
        match &args.command {
            Command::Serve { .. } => LogAudience::Server,
            _ => LogAudience::Terminal,
        },
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&cli::CliError::context("cannot start the async runtime", e)),
    };
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
            Command::Scores {
                command:
                    ScoresCommand::Import {
                        district,
                        json,
                        path,
                    },
            } => cli::scores_import(settings, &district, &path, json).await,
            Command::Scores {
                command:
                    ScoresCommand::Pull {
                        district,
                        connection,
                        full,
                        json,
                    },
            } => cli::scores_pull(settings, &district, &connection, full, json).await,
            Command::Sync { command } => match command {
                SyncCommand::Pull {
                    district,
                    connection,
                    full,
                    dry_run,
                    json,
                } => cli::sync_pull(settings, &district, &connection, full, dry_run, json).await,
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
            Command::Generate {
                command:
                    GenerateCommand::Cdf {
                        roster,
                        out,
                        terms,
                        subjects,
                        layout,
                        seed,
                        malformed,
                        odd_casing,
                        json,
                    },
            } => {
                let options = CdfOptions {
                    terms,
                    subjects,
                    layout,
                    seed,
                    malformed_rows: malformed,
                    odd_header_casing: odd_casing,
                };
                cli::generate_cdf(&roster, &out, options, json)
            }
            Command::Connection { command } => match command {
                ConnectionCommand::Add(args) => cli::connection::add(settings, *args).await,
                ConnectionCommand::List { district, json } => {
                    cli::connection::list(settings, &district, json).await
                }
                ConnectionCommand::Remove { district, name } => {
                    cli::connection::remove(settings, &district, &name).await
                }
            },
            Command::PushSecret { command } => match command {
                PushSecretCommand::Add { district, json } => {
                    cli::push_secret::add(settings, &district, json).await
                }
                PushSecretCommand::List { district, json } => {
                    cli::push_secret::list(settings, &district, json).await
                }
                PushSecretCommand::Revoke { district, id } => {
                    cli::push_secret::revoke(settings, &district, &id).await
                }
            },
            Command::Subscription { command } => match command {
                SubscriptionCommand::Add(args) => cli::subscription::add(settings, *args).await,
                SubscriptionCommand::List { district, json } => {
                    cli::subscription::list(settings, &district, json).await
                }
                SubscriptionCommand::Remove { district, id } => {
                    cli::subscription::remove(settings, &district, &id).await
                }
                SubscriptionCommand::RotateSecret { district, id } => {
                    cli::subscription::rotate_secret(settings, &district, &id).await
                }
            },
            Command::Lti { command } => match command {
                LtiCommand::Platform { command } => match command {
                    LtiPlatformCommand::Add(args) => cli::lti::add(settings, *args).await,
                    LtiPlatformCommand::Invite(args) => cli::lti::invite(settings, *args).await,
                    LtiPlatformCommand::List { district, json } => {
                        cli::lti::list(settings, &district, json).await
                    }
                    LtiPlatformCommand::Remove { district, id } => {
                        cli::lti::remove(settings, &district, id).await
                    }
                },
                LtiCommand::Deployment {
                    command:
                        LtiDeploymentCommand::Claim {
                            district,
                            platform,
                            deployment_id,
                        },
                } => cli::lti::claim(settings, &district, platform, &deployment_id).await,
                LtiCommand::Memberships {
                    command: LtiMembershipsCommand::Pull { district, json },
                } => cli::lti_services::pull_memberships(settings, &district, json).await,
                LtiCommand::Scores {
                    command: LtiScoresCommand::Post(args),
                } => cli::lti_services::post_scores(settings, *args).await,
            },
            Command::Keys {
                command: KeysCommand::Rotate { json },
            } => cli::lti::rotate_keys(settings, json).await,
            // Run above, before the settings are read.
            Command::Bench { args } => cli::bench::run(&args),
        }
    });
    // Every command awaits its own work (stored, closed, printed) before it returns: what is
    // left are the runtime's idle threads, or a file reader whose run already ended, and
    // waiting for them would only delay the exit.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        // The reader of our output went away (`| head -1`): nobody is left to tell.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints `error: what: because: …` on stderr, as clap prints its own errors, and exits 1.
fn fail(e: &cli::CliError) -> ExitCode {
    // Nowhere left to report a failure to write to stderr.
    let _ = writeln!(std::io::stderr().lock(), "error: {e}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_passes_every_argument_on_to_rostergate_bench() {
        let cases: [&[&str]; 3] = [
            &[
                "lti",
                "--launches",
                "5000",
                "--postgres-url",
                "postgres://h/test",
                "--json",
            ],
            &["--help"],
            &[],
        ];
        for given in cases {
            let argv = ["rostergate", "bench"].iter().chain(given);
            let Command::Bench { args } = Args::try_parse_from(argv).unwrap().command else {
                panic!("not the bench command");
            };
            assert_eq!(
                args,
                given
                    .iter()
                    .map(std::ffi::OsString::from)
                    .collect::<Vec<_>>()
            );
        }
    }
}
