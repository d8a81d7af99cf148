//! Pull benchmark: a synthetic district served over OneRoster 1.1 REST (OAuth 2) by the
//! synthetic provider in this process, pulled by the real `rostergate sync pull` as a child
//! process into an empty district, and compared with fetching the same pages with the same
//! client and limits while discarding the bodies.
//!
//! Between the two, "fetch + read" pages through the same collections with the pull's own
//! pager and JSON mapping, here in this process and without a database, to split the pull's
//! time into fetching, reading and the database's share.
//!
//! The provider stands in for a remote SIS, so it runs here and its memory is not the pull's;
//! the pull runs as a separate process so that its peak RSS is its own.

use rostergate::sources::oneroster::COLLECTIONS;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;

use rostergate::config::{ImportSettings, OutboundSettings, Secret};
use rostergate::domain::connection::{
    ApiVersion, AuthConfig, ClientAuthStyle, ConnectionConfig, ConnectionKind, ConnectionSecrets,
    OneRosterVersion, PullSchedule, RequestLimits, DEFAULT_SCOPES_1_1,
};
use rostergate::outbound::{Fetch, FetchError, SourceClient};
use rostergate::sources::oneroster::problem_log;
use rostergate::sources::oneroster::rest::json::JsonRecords;
use rostergate::sources::oneroster::rest::pager::{PageError, Pager};
use rostergate::sources::oneroster::rest::{self as rest, endpoint};
use rostergate::synthetic::provider::{
    Collection, FaultAction, FaultTrigger, Oauth2Settings, Provider, ProviderAuth, ProviderConfig,
    ProviderError, Roster, RosterError,
};

use crate::import::{
    created_rows, rejected_output, run_step, run_step_with_env, Backend, BenchError, BENCH_SEED,
};
use crate::scratch_db::{ScratchDb, ScratchDbError};

/// District and connection the pull child creates and pulls into.
const DISTRICT_SLUG: &str = "bench";
const CONNECTION: &str = "sis";
/// OAuth 2 client id the provider accepts (the secret is made per run).
const CLIENT_ID: &str = "rostergate-bench";
/// Seconds one request may take: the connection default.
const TIMEOUT_SECS: u32 = 60;
/// What the pull child logs: the engine's phase timings and the pull's own summary line.
const CHILD_LOG_FILTER: &str = "warn,rostergate::sync::engine=debug,rostergate::pulls=info";

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// District sizes to run, in students.
    pub students: Vec<usize>,
    pub backends: Vec<Backend>,
    /// SQLite files, the data folder (key file) and the secret file go here.
    pub work_dir: PathBuf,
    /// The `rostergate` binary to benchmark.
    pub exe: PathBuf,
    pub page_size: u32,
    pub requests_per_second: u32,
    pub max_in_flight: u32,
    /// Every data request is answered this much later, as by a remote SIS (0: at once).
    pub latency_ms: u64,
}

/// Every page fetched, bodies thrown away unread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BareFetch {
    /// Data GETs the provider answered (the token request not counted).
    pub requests: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Every page fetched and read as the pull reads it (paging, JSON parsing, mapping to
/// records), the records then dropped: no database.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FetchRead {
    /// Data GETs the provider answered (the token request not counted).
    pub requests: u64,
    /// Records mapped without a problem.
    pub records: u64,
    pub seconds: f64,
}

/// How long one of the engine's phases took, from its debug log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    pub phase: String,
    pub seconds: f64,
}

/// The pull child's measurements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullMeasurement {
    /// Data GETs the provider answered (the token request not counted).
    pub requests: u64,
    /// Sum of `created` over every record type in the pull's JSON report.
    pub records: u64,
    /// From spawning the child until it exited: opening the database included.
    pub seconds: f64,
    pub peak_rss_kib: u64,
    /// `stage` covers fetching and parsing too: the engine stages while the pages arrive.
    pub phases: Vec<PhaseTime>,
}

/// One (district size, backend) measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullRun {
    pub students: usize,
    pub backend: String,
    /// Records the provider serves, over the six collections.
    pub served: u64,
    pub bare: BareFetch,
    pub read: FetchRead,
    pub pull: PullMeasurement,
    /// `pull.seconds / bare.seconds`.
    pub ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullReport {
    pub seed: u64,
    pub page_size: u32,
    pub requests_per_second: u32,
    pub max_in_flight: u32,
    pub latency_ms: u64,
    pub runs: Vec<PullRun>,
}

impl PullReport {
    /// Plain-text table, one line per run, then the engine's phases per run.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{:>9}  {:<8}  {:>9}  {:>8}  {:>7}  {:>8}  {:>7}  {:>8}  {:>9}  {:>12}  {:>6}\n",
            "students",
            "backend",
            "records",
            "requests",
            "bare s",
            "bare MB",
            "read s",
            "pull s",
            "pull reqs",
            "pull RSS MiB",
            "ratio"
        );
        for r in &self.runs {
            out += &format!(
                "{:>9}  {:<8}  {:>9}  {:>8}  {:>7.2}  {:>8.1}  {:>7.2}  {:>8.2}  {:>9}  {:>12.1}  {:>6.1}\n",
                r.students,
                r.backend,
                r.pull.records,
                r.bare.requests,
                r.bare.seconds,
                r.bare.bytes as f64 / 1e6,
                r.read.seconds,
                r.pull.seconds,
                r.pull.requests,
                r.pull.peak_rss_kib as f64 / 1024.0,
                r.ratio
            );
        }
        out += &format!(
            "page size {}, {} requests/s, {} in flight, {} ms added per request; records: created by the pull; \
             requests: data GETs (bare fetch); read: fetch + page + JSON mapping, no \
             database; pull RSS: the pull child's peak RSS; ratio: pull s / bare s\n",
            self.page_size, self.requests_per_second, self.max_in_flight, self.latency_ms
        );
        for r in &self.runs {
            let phases: Vec<String> = r
                .pull
                .phases
                .iter()
                .map(|p| format!("{} {:.2}", p.phase, p.seconds))
                .collect();
            out += &format!(
                "phases (s), {} students on {}: {}\n",
                r.students,
                r.backend,
                phases.join(", ")
            );
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

impl fmt::Display for PullReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_table())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullBenchError {
    #[error("generating the {students}-student roster failed: {source}")]
    Generate {
        students: usize,
        source: RosterError,
    },
    #[error("starting the provider: {0}")]
    Provider(#[from] ProviderError),
    #[error("bare fetch: {0}")]
    Fetch(#[from] FetchError),
    #[error("bare fetch: the provider's base URL {0:?} is not a URL")]
    BaseUrl(String),
    #[error("fetch + read, {endpoint}: {source}")]
    Page { endpoint: String, source: PageError },
    #[error("fetch + read: {0} records could not be read")]
    Unreadable(u64),
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Child(#[from] BenchError),
    #[error(transparent)]
    ScratchDb(#[from] ScratchDbError),
    #[error("background task panicked or was cancelled: {0}")]
    Join(String),
}

/// The connection both the bare fetch and the pull use.
struct Source {
    base_url: String,
    token_url: String,
    secret: String,
    /// Path the provider's collections live under, to tell data GETs from token requests.
    base_path: &'static str,
}

/// Runs every (student count, backend) combination in order and collects the results.
pub async fn run_pull_benchmark(opts: PullOptions) -> Result<PullReport, PullBenchError> {
    std::fs::create_dir_all(&opts.work_dir)
        .map_err(io_err("cannot create work folder", &opts.work_dir))?;
    let work_dir = std::path::absolute(&opts.work_dir)
        .map_err(io_err("cannot resolve work folder", &opts.work_dir))?;
    let data_dir = work_dir.join("pull-data");
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(io_err("cannot create data folder", &data_dir))?;
    let result = run_sizes(&opts, &work_dir, &data_dir).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn run_sizes(
    opts: &PullOptions,
    work_dir: &Path,
    data_dir: &Path,
) -> Result<PullReport, PullBenchError> {
    let mut runs = Vec::new();
    for &students in &opts.students {
        let roster = blocking(move || {
            Roster::generated(students, BENCH_SEED)
                .map_err(|source| PullBenchError::Generate { students, source })
        })
        .await?;
        let served = served_records(&roster);
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let config = ProviderConfig::new(
            OneRosterVersion::V1_1,
            ProviderAuth::Oauth2(Oauth2Settings::new(CLIENT_ID, secret.clone())),
        );
        let base_path = config.base_path();
        let provider = Provider::start(config, roster).await?;
        if opts.latency_ms > 0 {
            provider.faults().push(
                FaultTrigger::Next,
                FaultAction::Delay(Duration::from_millis(opts.latency_ms)),
                u32::MAX,
            );
        }
        let source = Source {
            base_url: provider.base_url(),
            token_url: provider.token_url(),
            secret,
            base_path,
        };
        let measured = async {
            let mut sized = Vec::new();
            for backend in &opts.backends {
                tracing::info!(students, backend = backend.name(), "benchmarking pull");
                let bare = bare_fetch(&provider, &source, opts).await?;
                let read = fetch_and_read(&provider, &source, opts).await?;
                let pull =
                    run_backend(&provider, &source, opts, backend, work_dir, data_dir).await?;
                sized.push(PullRun {
                    students,
                    backend: backend.name().to_string(),
                    served,
                    ratio: ratio(pull.seconds, bare.seconds),
                    bare,
                    read,
                    pull,
                });
            }
            Ok::<_, PullBenchError>(sized)
        }
        .await;
        provider.stop().await;
        runs.extend(measured?);
    }
    Ok(PullReport {
        seed: BENCH_SEED,
        page_size: opts.page_size,
        requests_per_second: opts.requests_per_second,
        max_in_flight: opts.max_in_flight,
        latency_ms: opts.latency_ms,
        runs,
    })
}

/// Runs blocking work (generation, child processes) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PullBenchError> + Send + 'static,
) -> Result<T, PullBenchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PullBenchError::Join(e.to_string()))?
}

fn served_records(roster: &Roster) -> u64 {
    [
        Collection::Orgs,
        Collection::AcademicSessions,
        Collection::Courses,
        Collection::Classes,
        Collection::Users,
        Collection::Enrollments,
    ]
    .iter()
    .map(|&c| roster.len(c) as u64)
    .sum()
}

fn ratio(pull_seconds: f64, bare_seconds: f64) -> f64 {
    if bare_seconds > 0.0 {
        pull_seconds / bare_seconds
    } else {
        f64::NAN
    }
}

fn io_err(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PullBenchError {
    let path = path.to_path_buf();
    move |source| PullBenchError::Io {
        context,
        path,
        source,
    }
}

/// Data GETs the provider has answered since its log was last cleared.
fn data_requests(provider: &Provider, base_path: &str) -> u64 {
    provider
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with(base_path))
        .count() as u64
}

/// The connection `connection add` stores for the pull, built here for the bare fetch.
fn connection_config(source: &Source, opts: &PullOptions) -> ConnectionConfig {
    ConnectionConfig {
        name: CONNECTION.to_string(),
        kind: ConnectionKind::OneRosterRest,
        version: ApiVersion::OneRoster(OneRosterVersion::V1_1),
        base_url: source.base_url.clone(),
        page_size: opts.page_size,
        auth: AuthConfig::Oauth2 {
            token_url: source.token_url.clone(),
            client_id: CLIENT_ID.to_string(),
            client_auth: ClientAuthStyle::Basic,
            scopes: DEFAULT_SCOPES_1_1.iter().map(|s| s.to_string()).collect(),
            api_key_header: None,
        },
        limits: RequestLimits {
            requests_per_second: opts.requests_per_second,
            max_in_flight: opts.max_in_flight,
            timeout_secs: TIMEOUT_SECS,
        },
        schedule: PullSchedule {
            delta: None,
            full: None,
        },
    }
}

/// Fetches every page of every collection as the pull asks for them (the same first URL,
/// then the provider's `Link: rel="next"`, one request at a time per collection), counting
/// bytes and reading nothing.
async fn bare_fetch(
    provider: &Provider,
    source: &Source,
    opts: &PullOptions,
) -> Result<BareFetch, PullBenchError> {
    let config = connection_config(source, opts);
    let client = SourceClient::new(
        &config,
        ConnectionSecrets {
            secret: Secret::new(source.secret.clone()),
            api_key: None,
        },
        &OutboundSettings::default(),
    )?;
    let base = Url::parse(&source.base_url)
        .map_err(|_| PullBenchError::BaseUrl(source.base_url.clone()))?;
    provider.clear_requests();
    let started = Instant::now();
    let mut bytes = 0u64;
    for kind in COLLECTIONS {
        let name = kind.oneroster_name();
        let mut pager = Pager::new(&base, name, name, opts.page_size, None);
        let mut next = pager
            .next_request()
            .map_err(|_| PullBenchError::BaseUrl(source.base_url.clone()))?;
        while let Some(url) = next {
            let fetched = client.get(url).await?;
            bytes += fetched.body.len() as u64;
            next = fetched.next;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(BareFetch {
        requests: data_requests(provider, source.base_path),
        bytes,
        seconds,
    })
}

/// Pages through every collection with the pull's pager and maps each record as the pull
/// does, the next page fetched while this one is read (as the pull overlaps them), and drops
/// the records.
async fn fetch_and_read(
    provider: &Provider,
    source: &Source,
    opts: &PullOptions,
) -> Result<FetchRead, PullBenchError> {
    let config = connection_config(source, opts);
    let client = SourceClient::new(
        &config,
        ConnectionSecrets {
            secret: Secret::new(source.secret.clone()),
            api_key: None,
        },
        &OutboundSettings::default(),
    )?;
    let base = Url::parse(&source.base_url)
        .map_err(|_| PullBenchError::BaseUrl(source.base_url.clone()))?;
    let limits = ImportSettings::default();
    let mut problems = problem_log(&limits);
    let version = rest::version(OneRosterVersion::V1_1);
    provider.clear_requests();
    let started = Instant::now();
    let mut records = 0u64;
    for kind in COLLECTIONS {
        let label = endpoint(kind);
        let page_err = |source| PullBenchError::Page {
            endpoint: endpoint(kind),
            source,
        };
        let reader = JsonRecords::new(kind, version, &label, &limits);
        let name = kind.oneroster_name();
        let mut pager = Pager::new(&base, name, name, opts.page_size, None);
        let Some(url) = pager.next_request().map_err(page_err)? else {
            continue;
        };
        let mut answer = client.get(url).await;
        loop {
            let page = pager.accept(answer?).map_err(page_err)?;
            let mut read = || {
                for (i, record) in page.records.iter().enumerate() {
                    reader.map(record, page.offset + i as u64, &mut problems, |_| {
                        records += 1
                    });
                }
            };
            match pager.next_request().map_err(page_err)? {
                Some(url) => {
                    let (next, ()) = tokio::join!(client.get(url), async { read() });
                    answer = next;
                }
                None => {
                    read();
                    break;
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if problems.has_errors() {
        return Err(PullBenchError::Unreadable(problems.error_count()));
    }
    Ok(FetchRead {
        requests: data_requests(provider, source.base_path),
        records,
        seconds,
    })
}

async fn run_backend(
    provider: &Provider,
    source: &Source,
    opts: &PullOptions,
    backend: &Backend,
    work_dir: &Path,
    data_dir: &Path,
) -> Result<PullMeasurement, PullBenchError> {
    match backend {
        Backend::Sqlite => {
            let db_dir = work_dir.join("pull-sqlite");
            let _ = std::fs::remove_dir_all(&db_dir);
            std::fs::create_dir_all(&db_dir)
                .map_err(io_err("cannot create SQLite folder", &db_dir))?;
            let db = db_dir.join("bench.db");
            // An empty file is a valid empty SQLite database, so the URL needs no `mode=rwc`.
            std::fs::File::create(&db).map_err(io_err("cannot create SQLite file", &db))?;
            let url = format!("sqlite://{}", db.display());
            let result = measure_pull(provider, source, opts, &url, data_dir).await;
            let _ = std::fs::remove_dir_all(&db_dir);
            result
        }
        Backend::Postgres(admin_url) => {
            let db = ScratchDb::create(admin_url).await?;
            let result = measure_pull(provider, source, opts, &db.url, data_dir).await;
            db.drop_database().await;
            result
        }
    }
}

/// Creates the district and its connection, then times a full pull in a child process.
async fn measure_pull(
    provider: &Provider,
    source: &Source,
    opts: &PullOptions,
    url: &str,
    data_dir: &Path,
) -> Result<PullMeasurement, PullBenchError> {
    let secret_file = data_dir.join("client-secret");
    write_secret(&secret_file, &source.secret)?;
    let (exe, url, data_dir) = (opts.exe.clone(), url.to_string(), data_dir.to_path_buf());
    let setup = {
        let (exe, url, data_dir) = (exe.clone(), url.clone(), data_dir.clone());
        let (base_url, token_url) = (source.base_url.clone(), source.token_url.clone());
        let limits = (
            opts.page_size.to_string(),
            opts.requests_per_second.to_string(),
            opts.max_in_flight.to_string(),
        );
        move || {
            set_up_connection(
                &exe,
                &url,
                &data_dir,
                &base_url,
                &token_url,
                &secret_file,
                &limits,
            )
        }
    };
    blocking(setup).await?;

    provider.clear_requests();
    let run = blocking(move || {
        let args: [&OsStr; 7] = [
            "sync".as_ref(),
            "pull".as_ref(),
            "--district".as_ref(),
            DISTRICT_SLUG.as_ref(),
            "--connection".as_ref(),
            CONNECTION.as_ref(),
            "--json".as_ref(),
        ];
        let env = child_env(&data_dir, CHILD_LOG_FILTER);
        Ok(run_step_with_env(&exe, &url, &env, "sync pull", &args)?)
    })
    .await?;
    let records =
        created_rows(&run.stdout).map_err(|reason| rejected_output("sync pull", &run, reason))?;
    Ok(PullMeasurement {
        requests: data_requests(provider, source.base_path),
        records,
        seconds: run.seconds,
        peak_rss_kib: run.peak_rss_kib,
        phases: phase_times(&run.stderr_tail),
    })
}

/// The child's data folder (where `connection add` creates the key `sync pull` opens the
/// secret with) and its log filter.
fn child_env<'a>(data_dir: &'a Path, filter: &'a str) -> [(&'static str, &'a OsStr); 2] {
    [
        ("ROSTERGATE_DATA_DIR", data_dir.as_os_str()),
        ("ROSTERGATE_LOG__FILTER", filter.as_ref()),
    ]
}

/// A secret file only its owner can read, as an operator would keep it.
fn write_secret(path: &Path, secret: &str) -> Result<(), PullBenchError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("cannot write the client secret", path))?;
    file.write_all(secret.as_bytes())
        .map_err(io_err("cannot write the client secret", path))
}

/// `district create` and `connection add` on the fresh database.
fn set_up_connection(
    exe: &Path,
    url: &str,
    data_dir: &Path,
    base_url: &str,
    token_url: &str,
    secret_file: &Path,
    (page_size, requests_per_second, max_in_flight): &(String, String, String),
) -> Result<(), PullBenchError> {
    let create_args: [&OsStr; 8] = [
        "district".as_ref(),
        "create".as_ref(),
        "--slug".as_ref(),
        DISTRICT_SLUG.as_ref(),
        "--name".as_ref(),
        "Bench".as_ref(),
        "--timezone".as_ref(),
        "America/Chicago".as_ref(),
    ];
    run_step(exe, url, "district create", &create_args)?;
    let add_args: [&OsStr; 31] = [
        "connection".as_ref(),
        "add".as_ref(),
        "--district".as_ref(),
        DISTRICT_SLUG.as_ref(),
        "--name".as_ref(),
        CONNECTION.as_ref(),
        "--kind".as_ref(),
        "oneroster-rest".as_ref(),
        "--version".as_ref(),
        "1.1".as_ref(),
        "--base-url".as_ref(),
        base_url.as_ref(),
        "--page-size".as_ref(),
        page_size.as_ref(),
        "--auth".as_ref(),
        "oauth2".as_ref(),
        "--token-url".as_ref(),
        token_url.as_ref(),
        "--client-id".as_ref(),
        CLIENT_ID.as_ref(),
        "--client-secret-file".as_ref(),
        secret_file.as_os_str(),
        "--requests-per-second".as_ref(),
        requests_per_second.as_ref(),
        "--max-in-flight".as_ref(),
        max_in_flight.as_ref(),
        "--delta-schedule".as_ref(),
        "off".as_ref(),
        "--full-schedule".as_ref(),
        "off".as_ref(),
        "--json".as_ref(),
    ];
    let env = child_env(data_dir, "warn");
    run_step_with_env(exe, url, &env, "connection add", &add_args)?;
    Ok(())
}

/// The engine's `phase=… ms=…` debug lines, in the order they were logged.
fn phase_times(log: &str) -> Vec<PhaseTime> {
    log.lines()
        .filter_map(|line| {
            let phase = field(line, "phase")?;
            let ms: f64 = field(line, "ms")?.parse().ok()?;
            Some(PhaseTime {
                phase: phase.to_string(),
                seconds: ms / 1000.0,
            })
        })
        .collect()
}

/// The value of ` name=value` in a log line, quotes removed.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.match_indices(name).map(|(i, _)| i).find(|&i| {
        (i == 0 || line.as_bytes()[i - 1] == b' ')
            && line.as_bytes().get(i + name.len()) == Some(&b'=')
    })? + name.len()
        + 1;
    let rest = &line[start..];
    let value = rest.split_whitespace().next()?;
    Some(value.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_times_are_read_from_the_engine_debug_lines() {
        let log = "\
2026-12-02T15:00:00Z DEBUG rostergate::sync::engine: phase=\"stage\" ms=4012 rows=9000
2026-12-02T15:00:01Z DEBUG rostergate::sync::engine: phase=\"validate\" ms=900
2026-12-02T15:00:01Z  INFO rostergate::pulls: pull fetched requests=12 records=9000 full=true
2026-12-02T15:00:02Z DEBUG rostergate::sync::engine: phase=apply ms=37
";
        let phases = phase_times(log);
        let names: Vec<&str> = phases.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(names, ["stage", "validate", "apply"]);
        assert_eq!(phases[0].seconds, 4.012);
        assert_eq!(phases[2].seconds, 0.037);
    }

    #[test]
    fn a_field_name_inside_another_is_not_taken_for_it() {
        assert_eq!(field("subphase=x phase=y", "phase"), Some("y"));
        assert_eq!(field("phases=1", "phase"), None);
        assert_eq!(field("rows=3", "ms"), None);
    }

    fn sample_report() -> PullReport {
        PullReport {
            seed: BENCH_SEED,
            page_size: 1000,
            requests_per_second: 1000,
            max_in_flight: 2,
            latency_ms: 0,
            runs: vec![PullRun {
                students: 1000,
                backend: "sqlite".into(),
                served: 9000,
                bare: BareFetch {
                    requests: 12,
                    bytes: 3_000_000,
                    seconds: 0.5,
                },
                read: FetchRead {
                    requests: 12,
                    records: 9000,
                    seconds: 0.75,
                },
                pull: PullMeasurement {
                    requests: 12,
                    records: 9000,
                    seconds: 1.5,
                    peak_rss_kib: 40 * 1024,
                    phases: vec![PhaseTime {
                        phase: "stage".into(),
                        seconds: 1.0,
                    }],
                },
                ratio: 3.0,
            }],
        }
    }

    #[test]
    fn report_prints_one_table_line_per_run_and_its_phases() {
        let table = sample_report().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("bare s") && lines[0].contains("ratio"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            ["1000", "sqlite", "9000", "12", "0.50", "3.0", "0.75", "1.50", "12", "40.0", "3.0"]
        );
        assert!(
            table.contains("1000 students on sqlite: stage 1.00"),
            "{table}"
        );
    }

    #[test]
    fn report_serializes_to_json_with_nested_measurements() {
        let json: serde_json::Value =
            serde_json::from_str(&sample_report().to_json().unwrap()).unwrap();
        assert_eq!(json["runs"][0]["pull"]["peak_rss_kib"], 40960);
        assert_eq!(json["runs"][0]["bare"]["requests"], 12);
        assert_eq!(json["runs"][0]["pull"]["phases"][0]["phase"], "stage");
        assert_eq!(json["page_size"], 1000);
    }

    #[tokio::test]
    async fn bare_fetch_gets_every_page_and_fetch_and_read_maps_every_record() {
        let roster = Roster::generated(300, BENCH_SEED).unwrap();
        let served = served_records(&roster);
        let secret = "s3cret-for-the-bench".to_string();
        let config = ProviderConfig::new(
            OneRosterVersion::V1_1,
            ProviderAuth::Oauth2(Oauth2Settings::new(CLIENT_ID, secret.clone())),
        );
        let base_path = config.base_path();
        let provider = Provider::start(config, roster).await.unwrap();
        let source = Source {
            base_url: provider.base_url(),
            token_url: provider.token_url(),
            secret,
            base_path,
        };
        let opts = PullOptions {
            students: vec![300],
            backends: vec![Backend::Sqlite],
            work_dir: PathBuf::from("unused"),
            exe: PathBuf::from("unused"),
            page_size: 100,
            requests_per_second: 1000,
            max_in_flight: 2,
            latency_ms: 0,
        };
        let bare = bare_fetch(&provider, &source, &opts).await.unwrap();
        // Six collections of 100-record pages: at least as many pages as records / 100.
        assert!(bare.requests >= served.div_ceil(100), "{bare:?}");
        assert!(bare.requests <= served.div_ceil(100) + 6, "{bare:?}");
        assert!(bare.bytes > served * 50, "{bare:?}");
        let read = fetch_and_read(&provider, &source, &opts).await.unwrap();
        assert_eq!(read.records, served, "{read:?}");
        assert!(read.requests >= bare.requests, "{read:?} {bare:?}");
        let users: Vec<String> = provider
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/users"))
            .map(|r| r.query.clone())
            .collect();
        assert_eq!(users[0], "limit=100&offset=0");
        assert_eq!(users[1], "limit=100&offset=100");
        provider.stop().await;
    }
}
