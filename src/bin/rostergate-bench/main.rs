//! `rostergate-bench`: measures the importer and score imports (against the databases' own
//! bulk loaders), the read API (under a wrk-like load), REST pulls (against fetching the same pages), webhooks
//! (signed pushes against plain INSERTs; deliveries to a local receiver) and LTI launches
//! (against bare RS256 verification), on SQLite and PostgreSQL. `rostergate bench …` runs it.

mod api;
mod child;
mod delta;
mod http1;
mod import;
mod load;
mod lti;
mod phases;
mod pull;
mod raw_load;
mod read_hash;
mod receiver;
mod scores;
mod scratch_db;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use rostergate::config::{LogFormat, LogSettings};

#[derive(Parser)]
#[command(
    name = "rostergate-bench",
    version,
    about = "Benchmarks for rostergate: import speed and memory, score imports, read-API throughput, REST pulls, webhooks, LTI launches"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import synthetic districts with the `rostergate` binary on SQLite and PostgreSQL and
    /// compare with the raw bulk load of the same rows (time and peak memory).
    Import {
        /// Student counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        students: Vec<usize>,
        /// Administrative PostgreSQL URL (a scratch database is created and dropped); omit to
        /// measure SQLite only.
        #[arg(long)]
        postgres_url: Option<String>,
        /// Where bundles and SQLite files go.
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// The `rostergate` binary to measure; default: the one next to this program
        /// (`cargo build --release` builds both).
        #[arg(long)]
        exe: Option<PathBuf>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Import a synthetic MAP Growth export (CDF) for a synthetic district with the `rostergate`
    /// binary on SQLite and PostgreSQL, first into the freshly rostered district and then
    /// again, and compare with the raw bulk load of its AssessmentResults.csv (time and peak
    /// memory).
    Scores {
        /// Student counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        students: Vec<usize>,
        /// Administrative PostgreSQL URL (a scratch database is created and dropped); omit to
        /// measure SQLite only.
        #[arg(long)]
        postgres_url: Option<String>,
        /// Where rosters, exports and SQLite files go.
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// The `rostergate` binary to measure; default: the one next to this program.
        #[arg(long)]
        exe: Option<PathBuf>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Import a synthetic district, start the gateway in this process on a loopback port,
    /// and load the coaching endpoint and 100-user pages: req/s, p50, p99, errors.
    Api {
        /// Students in the synthetic district.
        #[arg(long, default_value_t = 10_000)]
        students: usize,
        /// Administrative PostgreSQL URL (a scratch database is created and dropped); omit to
        /// measure SQLite only.
        #[arg(long)]
        postgres_url: Option<String>,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds of measured load per endpoint and backend (after 1 s of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Where the bundle, the SQLite file and the server's data go.
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Serve a synthetic district over OneRoster 1.1 REST from this process, pull it with
    /// `rostergate sync pull` as a child process into an empty district, and compare with
    /// fetching the same pages unread (time, requests, the pull's peak memory).
    Pull {
        /// Student counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100000")]
        students: Vec<usize>,
        /// Administrative PostgreSQL URL (a scratch database is created and dropped); omit to
        /// measure SQLite only.
        #[arg(long)]
        postgres_url: Option<String>,
        /// Records asked for per page.
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
        /// The connection's request rate (high enough not to throttle the pull).
        #[arg(long, default_value_t = 1000)]
        requests_per_second: u32,
        /// The connection's requests in flight at once.
        #[arg(long, default_value_t = 2)]
        max_in_flight: u32,
        /// Milliseconds the provider waits before answering each data request, as a remote
        /// SIS would (0: loopback speed).
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Where SQLite files and the pull's data folder go.
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// The `rostergate` binary to measure; default: the one next to this program.
        #[arg(long)]
        exe: Option<PathBuf>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Start the gateway in this process on a loopback port and send it signed roster pushes
    /// from several keep-alive connections (pushes/s, each stored before its 202), against
    /// plain INSERTs of the same bodies; then time events delivered to a local receiver.
    Webhooks {
        /// Signed pushes per run.
        #[arg(long, default_value_t = 5_000)]
        pushes: usize,
        /// Client tasks, each on its own keep-alive connection.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Users in each (delta) push.
        #[arg(long, default_value_t = 3)]
        users_per_push: usize,
        /// Outbox events to deliver to the local receiver; 0 skips deliveries.
        #[arg(long, default_value_t = 1_000)]
        deliveries: usize,
        /// Seconds to wait for the first delivery (and for each next one) before failing.
        #[arg(long, default_value_t = 30)]
        delivery_timeout_secs: u64,
        /// Runs of the pushes and of their baseline; the best is kept.
        #[arg(long, default_value_t = 2)]
        runs: usize,
        /// Administrative PostgreSQL URL (a scratch database is created and dropped); omit to
        /// measure SQLite only.
        #[arg(long)]
        postgres_url: Option<String>,
        /// Where the SQLite file and the server's data go.
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Validated LTI 1.3 launches per second (the state consumed in the database, signature,
    /// claims, nonce), side by side with bare RS256 verification of the same id_tokens, and
    /// full launches (resolution and the signed session), on SQLite and PostgreSQL.
    Lti {
        /// Launches per timed phase.
        #[arg(long, default_value_t = 20_000)]
        launches: usize,
        /// Launches in flight at once; default: twice the cores.
        #[arg(long)]
        concurrency: Option<usize>,
        /// Administrative PostgreSQL URL (a scratch database is created and dropped); omit to
        /// measure SQLite only.
        #[arg(long)]
        postgres_url: Option<String>,
        /// Where the roster bundle and the SQLite file go.
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// Students in the LTI benchmark's roster: launches cycle through them.
const LTI_STUDENTS: usize = 500;

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error(transparent)]
    Import(#[from] import::BenchError),
    #[error(transparent)]
    Scores(#[from] scores::ScoresBenchError),
    #[error(transparent)]
    Api(#[from] api::ApiBenchError),
    #[error(transparent)]
    Pull(#[from] pull::PullBenchError),
    #[error(transparent)]
    Webhooks(#[from] webhooks::WebhooksBenchError),
    #[error(transparent)]
    Lti(#[from] lti::LtiBenchError),
    #[error("no rostergate binary at {0}: build it (cargo build --release) or pass --exe")]
    NoExe(PathBuf),
    #[error("cannot locate this program: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot print JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Measurements go to stdout; only trouble is logged.
    rostergate::telemetry::init(
        &LogSettings {
            format: LogFormat::Pretty,
            filter: std::env::var("RUST_LOG").ok(),
        },
        rostergate::telemetry::LogAudience::Terminal,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(args.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SQLite always, PostgreSQL when a URL is given.
fn backends(postgres_url: Option<String>) -> Vec<import::Backend> {
    let mut backends = vec![import::Backend::Sqlite];
    backends.extend(postgres_url.map(import::Backend::Postgres));
    backends
}

/// The backends, and the gateway binary given or the one beside this one.
fn backends_and_exe(
    postgres_url: Option<String>,
    exe: Option<PathBuf>,
) -> Result<(Vec<import::Backend>, PathBuf), MainError> {
    let exe = match exe {
        Some(exe) => exe,
        None => sibling_rostergate()?,
    };
    Ok((backends(postgres_url), exe))
}

/// Twice the cores: enough launches in flight to keep every core busy while others wait on
/// the database.
fn default_concurrency() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

async fn run(command: Command) -> Result<(), MainError> {
    match command {
        Command::Import {
            students,
            postgres_url,
            work_dir,
            exe,
            json,
        } => {
            let (backends, exe) = backends_and_exe(postgres_url, exe)?;
            let report = import::run_benchmark(import::BenchOptions {
                students,
                backends,
                work_dir,
                exe,
            })
            .await?;
            if json {
                println!("{}", report.to_json()?);
            } else {
                print!("{}", report.to_table());
            }
        }
        Command::Scores {
            students,
            postgres_url,
            work_dir,
            exe,
            json,
        } => {
            let (backends, exe) = backends_and_exe(postgres_url, exe)?;
            let report = scores::run_scores_benchmark(scores::ScoresOptions {
                students,
                backends,
                work_dir,
                exe,
            })
            .await?;
            if json {
                println!("{}", report.to_json()?);
            } else {
                print!("{}", report.to_table());
            }
        }
        Command::Api {
            students,
            postgres_url,
            connections,
            seconds,
            work_dir,
            json,
        } => {
            let report = api::run_api_benchmark(api::ApiOptions {
                students,
                seed: import::BENCH_SEED,
                postgres_url,
                load: load::Load {
                    connections: connections.max(1),
                    duration: Duration::from_secs(seconds.max(1)),
                },
                work_dir,
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
            }
        }
        Command::Pull {
            students,
            postgres_url,
            page_size,
            requests_per_second,
            max_in_flight,
            latency_ms,
            work_dir,
            exe,
            json,
        } => {
            let (backends, exe) = backends_and_exe(postgres_url, exe)?;
            let report = pull::run_pull_benchmark(pull::PullOptions {
                students,
                backends,
                work_dir,
                exe,
                page_size,
                requests_per_second,
                max_in_flight,
                latency_ms,
            })
            .await?;
            if json {
                println!("{}", report.to_json()?);
            } else {
                print!("{}", report.to_table());
            }
        }
        Command::Webhooks {
            pushes,
            clients,
            users_per_push,
            deliveries,
            delivery_timeout_secs,
            runs,
            postgres_url,
            work_dir,
            json,
        } => {
            let report = webhooks::run_webhooks_benchmark(webhooks::WebhooksOptions {
                pushes: pushes.max(1),
                clients: clients.max(1),
                users_per_push: users_per_push.max(1),
                deliveries,
                delivery_timeout: Duration::from_secs(delivery_timeout_secs.max(1)),
                runs: runs.max(1),
                postgres_url,
                work_dir,
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
            }
        }
        Command::Lti {
            launches,
            concurrency,
            postgres_url,
            work_dir,
            json,
        } => {
            let report = lti::run_lti_benchmark(lti::LtiOptions {
                launches: launches.max(1),
                concurrency: concurrency.unwrap_or_else(default_concurrency).max(1),
                students: LTI_STUDENTS,
                backends: backends(postgres_url),
                work_dir,
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
            }
        }
    }
    Ok(())
}

/// `rostergate` in the folder this program runs from (cargo puts both there).
fn sibling_rostergate() -> Result<PathBuf, MainError> {
    let me = std::env::current_exe().map_err(MainError::CurrentExe)?;
    let exe = me.with_file_name("rostergate");
    if exe.is_file() {
        Ok(exe)
    } else {
        Err(MainError::NoExe(exe))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_takes_sizes_a_postgres_url_a_work_dir_an_exe_and_json() {
        let args = Args::try_parse_from([
            "rostergate-bench",
            "scores",
            "--students",
            "10000,100000",
            "--postgres-url",
            "postgres://postgres@127.0.0.1:5432/test",
            "--work-dir",
            "/tmp/bench-scores",
            "--exe",
            "/opt/rostergate",
            "--json",
        ])
        .unwrap();
        let Command::Scores {
            students,
            postgres_url,
            work_dir,
            exe,
            json,
        } = args.command
        else {
            panic!("not the scores command");
        };
        assert_eq!(students, [10_000, 100_000]);
        assert_eq!(
            postgres_url.as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/test")
        );
        assert_eq!(work_dir, PathBuf::from("/tmp/bench-scores"));
        assert_eq!(exe, Some(PathBuf::from("/opt/rostergate")));
        assert!(json);
    }

    #[test]
    fn scores_defaults_to_both_sizes_on_sqlite_only() {
        let args = Args::try_parse_from(["rostergate-bench", "scores"]).unwrap();
        let Command::Scores {
            students,
            postgres_url,
            work_dir,
            exe,
            json,
        } = args.command
        else {
            panic!("not the scores command");
        };
        assert_eq!(students, [10_000, 100_000]);
        assert_eq!(postgres_url, None);
        assert_eq!(work_dir, PathBuf::from("target/bench"));
        assert_eq!(exe, None);
        assert!(!json);
        assert!(
            Args::try_parse_from(["rostergate-bench", "scores", "--students", "many"]).is_err()
        );
    }

    #[test]
    fn lti_takes_launches_concurrency_a_postgres_url_a_work_dir_and_json() {
        let args = Args::try_parse_from([
            "rostergate-bench",
            "lti",
            "--launches",
            "5000",
            "--concurrency",
            "8",
            "--postgres-url",
            "postgres://postgres@127.0.0.1:5432/test",
            "--work-dir",
            "/tmp/bench-lti",
            "--json",
        ])
        .unwrap();
        let Command::Lti {
            launches,
            concurrency,
            postgres_url,
            work_dir,
            json,
        } = args.command
        else {
            panic!("not the lti command");
        };
        assert_eq!((launches, concurrency), (5_000, Some(8)));
        let backends = backends(postgres_url);
        assert_eq!(backends.len(), 2);
        assert!(matches!(
            &backends[1],
            import::Backend::Postgres(url) if url == "postgres://postgres@127.0.0.1:5432/test"
        ));
        assert_eq!(work_dir, PathBuf::from("/tmp/bench-lti"));
        assert!(json);
    }

    #[test]
    fn lti_defaults_to_20000_launches_on_sqlite_at_twice_the_cores() {
        let args = Args::try_parse_from(["rostergate-bench", "lti"]).unwrap();
        let Command::Lti {
            launches,
            concurrency,
            postgres_url,
            work_dir,
            json,
        } = args.command
        else {
            panic!("not the lti command");
        };
        assert_eq!((launches, concurrency), (20_000, None));
        assert_eq!(backends(postgres_url).len(), 1);
        assert_eq!(work_dir, PathBuf::from("target/bench"));
        assert!(!json);
        assert!(default_concurrency() >= 2 && default_concurrency() % 2 == 0);
        assert!(Args::try_parse_from(["rostergate-bench", "lti", "--launches", "many"]).is_err());
    }
}
