//! Read-API benchmark: a synthetic district imported into a fresh database per backend,
//! the gateway started in this process on a loopback port, and a bounded load against
//! the coaching endpoint and 100-user pages, with req/s and latency percentiles.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use rostergate::admin::{self, AdminError};
use rostergate::config::{Overrides, Settings};
use rostergate::imports::import_oneroster_csv;
use rostergate::startup::{Application, StartupError};
use rostergate::store::{Db, StoreError};
use rostergate::sync::engine::RunOptions;
use rostergate::sync::{Engine, RunStatus, SyncError};
use rostergate::synthetic::{self, GenerateError, SyntheticDistrict};

use crate::http1::Connection;
use crate::load::{self, Load, LoadResult, PathFn, Target};
use crate::scratch_db::{ScratchDb, ScratchDbError};

const DISTRICT: &str = "bench";
/// Users per page on the listing endpoint.
const PAGE: u64 = 100;
/// Unmeasured load before each measurement: fills caches and the connection pools.
const WARM_UP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub students: usize,
    pub seed: u64,
    /// Administrative PostgreSQL URL; `None` measures SQLite only.
    pub postgres_url: Option<String>,
    pub load: Load,
    /// The bundle, the SQLite file and the server's data folder go here.
    pub work_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiBenchError {
    #[error("generating the {students}-student bundle failed: {source}")]
    Generate {
        students: usize,
        source: GenerateError,
    },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("settings for the in-process gateway: {0}")]
    Settings(String),
    #[error(transparent)]
    ScratchDb(#[from] ScratchDbError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("setting up the bench district: {0}")]
    Admin(#[from] AdminError),
    #[error("importing the bench district: {0}")]
    Sync(#[from] SyncError),
    #[error("the bench import ended {status}, not applied")]
    NotApplied { status: String },
    #[error("starting the gateway: {0}")]
    Startup(#[from] StartupError),
    #[error("{step} on the gateway failed: {detail}")]
    Request { step: &'static str, detail: String },
    #[error("background task panicked or was cancelled: {0}")]
    Join(String),
}

/// One (backend, endpoint) measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiRun {
    pub backend: &'static str,
    pub endpoint: &'static str,
    #[serde(flatten)]
    pub result: LoadResult,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiReport {
    pub students: usize,
    pub users: u64,
    pub connections: usize,
    pub seconds_per_run: f64,
    pub runs: Vec<ApiRun>,
}

impl fmt::Display for ApiReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} students ({} users), {} connections, {:.0} s per run",
            self.students, self.users, self.connections, self.seconds_per_run
        )?;
        writeln!(
            f,
            "{:<8}  {:<18}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {:>6}",
            "backend", "endpoint", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
        )?;
        for run in &self.runs {
            let r = &run.result;
            writeln!(
                f,
                "{:<8}  {:<18}  {:>9}  {:>8.0}  {:>8.2}  {:>8.2}  {:>8.1}  {:>6}",
                run.backend,
                run.endpoint,
                r.requests,
                r.requests_per_sec,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.errors
            )?;
        }
        Ok(())
    }
}

/// Where one backend's gateway stores its data.
enum Database {
    Sqlite(String),
    Postgres(ScratchDb),
}

impl Database {
    fn url(&self) -> &str {
        match self {
            Database::Sqlite(url) => url,
            Database::Postgres(db) => &db.url,
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }
}

pub async fn run_api_benchmark(opts: ApiOptions) -> Result<ApiReport, ApiBenchError> {
    let work_dir = opts.work_dir.join("api");
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir).map_err(io_err(&work_dir))?;
    let bundle = work_dir.join("bundle");
    let spec = SyntheticDistrict {
        students: opts.students,
        seed: opts.seed,
    };
    let counts = {
        let bundle = bundle.clone();
        tokio::task::spawn_blocking(move || synthetic::write_bundle(&spec, &bundle))
            .await
            .map_err(|e| ApiBenchError::Join(e.to_string()))?
            .map_err(|source| ApiBenchError::Generate {
                students: opts.students,
                source,
            })?
    };
    let mut databases = vec![Database::Sqlite(format!(
        "sqlite://{}",
        work_dir.join("sqlite/bench.db").display()
    ))];
    if let Some(admin_url) = &opts.postgres_url {
        databases.push(Database::Postgres(ScratchDb::create(admin_url).await?));
    }
    let mut runs = Vec::new();
    let mut outcome = Ok(());
    for database in &databases {
        tracing::info!(backend = database.backend(), "benchmarking the read API");
        match measure_backend(database, &bundle, &work_dir, &opts, counts.users).await {
            Ok(measured) => runs.extend(measured),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    for database in databases {
        if let Database::Postgres(db) = database {
            db.drop_database().await;
        }
    }
    outcome?;
    let _ = std::fs::remove_dir_all(&work_dir);
    Ok(ApiReport {
        students: opts.students,
        users: counts.users,
        connections: opts.load.connections,
        seconds_per_run: opts.load.duration.as_secs_f64(),
        runs,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ApiBenchError {
    let path = path.to_path_buf();
    move |source| ApiBenchError::Io { path, source }
}

async fn measure_backend(
    database: &Database,
    bundle: &Path,
    work_dir: &Path,
    opts: &ApiOptions,
    users: u64,
) -> Result<Vec<ApiRun>, ApiBenchError> {
    let data_dir = work_dir.join(format!("data-{}", database.backend()));
    let settings = settings(database.url(), &data_dir)?;
    let (client_id, client_secret) = prepare_district(&settings, bundle).await?;
    let app = Application::build(settings).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
    // The server lives until the process ends; each backend has its own port and database.
    tokio::spawn(app.run_until_stopped());
    let token = fetch_token(addr, &client_id, &client_secret).await?;
    let headers = format!("Authorization: Bearer {token}\r\n");
    check_coaching_is_not_empty(addr, &headers).await?;

    let students = opts.students.max(1) as u64;
    let pages = users.div_ceil(PAGE).max(1);
    let endpoints: [(&'static str, PathFn); 2] = [
        (
            "coaching",
            Arc::new(move |c, i| {
                let student = spread(c, i, students) + 1;
                format!("/api/v1/districts/{DISTRICT}/users/stu-{student:06}/coaching")
            }),
        ),
        (
            "users?limit=100",
            Arc::new(move |c, i| {
                let offset = spread(c, i, pages) * PAGE;
                format!("/api/v1/districts/{DISTRICT}/users?limit={PAGE}&offset={offset}")
            }),
        ),
    ];
    let mut runs = Vec::new();
    for (endpoint, path) in endpoints {
        let target = Target {
            addr,
            headers: headers.clone(),
            path,
        };
        let warm_up = Load {
            duration: WARM_UP,
            ..opts.load
        };
        let (_, result) = on_own_thread(target, [warm_up, opts.load]).await?;
        runs.push(ApiRun {
            backend: database.backend(),
            endpoint,
            result,
        });
    }
    Ok(runs)
}

/// Drives the loads one after the other on a single-threaded runtime of its own thread,
/// so the load generator takes at most one core from the server.
async fn on_own_thread(
    target: Target,
    loads: [Load; 2],
) -> Result<(LoadResult, LoadResult), ApiBenchError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let outcome = runtime.map(|rt| {
            rt.block_on(async {
                let first = load::run(&target, loads[0]).await;
                let second = load::run(&target, loads[1]).await;
                (first, second)
            })
        });
        let _ = tx.send(outcome);
    });
    rx.await
        .map_err(|e| ApiBenchError::Join(e.to_string()))?
        .map_err(|e| ApiBenchError::Join(e.to_string()))
}

/// Request `i` of connection `c` mapped onto `0..n`, spread evenly and the same every run.
fn spread(c: usize, i: u64, n: u64) -> u64 {
    let mut z = (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % n
}

fn settings(database_url: &str, data_dir: &Path) -> Result<Settings, ApiBenchError> {
    let secret = hex::encode(rostergate::auth::keys::random_bytes::<32>());
    let vars: Vec<(String, String)> = [
        ("ROSTERGATE_DATABASE_URL", database_url.to_string()),
        ("ROSTERGATE_BIND", "127.0.0.1:0".to_string()),
        ("ROSTERGATE_DATA_DIR", data_dir.display().to_string()),
        ("ROSTERGATE_SECRET_KEY", secret),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // No config folder: the shipped defaults plus the values above, whatever the machine has.
    Settings::load_from(Path::new("/nonexistent"), &vars, &Overrides::default())
        .map_err(|e| ApiBenchError::Settings(e.to_string()))
}

/// Creates the district, imports the bundle and creates a `roster:read` client.
async fn prepare_district(
    settings: &Settings,
    bundle: &Path,
) -> Result<(String, String), ApiBenchError> {
    let db = Db::connect_and_migrate(&settings.database_url).await?;
    let district = admin::create_district(&db, DISTRICT, "Bench", "America/Chicago", None).await?;
    let engine = Engine::new(db.clone(), settings.import.max_reported_errors);
    let report = import_oneroster_csv(
        &engine,
        &district,
        bundle,
        None,
        &settings.import,
        RunOptions::default(),
        None,
    )
    .await?;
    if report.status != RunStatus::Applied {
        return Err(ApiBenchError::NotApplied {
            status: format!("{:?}", report.status).to_lowercase(),
        });
    }
    let (credentials, _) = admin::create_client(&db, &district, "bench", "roster:read").await?;
    db.close().await;
    Ok((credentials.client_id, credentials.client_secret))
}

async fn fetch_token(
    addr: SocketAddr,
    client_id: &str,
    client_secret: &str,
) -> Result<String, ApiBenchError> {
    let step = "POST /oauth/token";
    let body = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}"
    );
    let response = Connection::new(addr)
        .request(
            "POST",
            "/oauth/token",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            body.as_bytes(),
        )
        .await
        .map_err(|e| request_err(step, e))?;
    let json = ok_json(step, &response)?;
    json["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| request_err(step, "no access_token in the answer"))
}

/// The synthetic school year contains today, so every student has coaches; an empty
/// answer would mean the benchmark measures the wrong thing.
async fn check_coaching_is_not_empty(addr: SocketAddr, headers: &str) -> Result<(), ApiBenchError> {
    let step = "GET …/users/stu-000001/coaching";
    let path = format!("/api/v1/districts/{DISTRICT}/users/stu-000001/coaching");
    let response = Connection::new(addr)
        .get(&path, headers)
        .await
        .map_err(|e| request_err(step, e))?;
    let json = ok_json(step, &response)?;
    match json["coaches"].as_array() {
        Some(coaches) if !coaches.is_empty() => Ok(()),
        _ => Err(request_err(step, "the student has no coaches")),
    }
}

fn ok_json(
    step: &'static str,
    response: &crate::http1::Response,
) -> Result<serde_json::Value, ApiBenchError> {
    if response.status != 200 {
        return Err(request_err(
            step,
            format!(
                "status {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ),
        ));
    }
    serde_json::from_slice(&response.body).map_err(|e| request_err(step, e))
}

fn request_err(step: &'static str, detail: impl fmt::Display) -> ApiBenchError {
    ApiBenchError::Request {
        step,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_covers_the_range_evenly_and_repeats_itself() {
        let n = 50;
        let mut hits = vec![0u32; n as usize];
        for c in 0..8 {
            for i in 0..1000 {
                let k = spread(c, i, n);
                assert_eq!(k, spread(c, i, n));
                hits[k as usize] += 1;
            }
        }
        // 8,000 draws over 50 values: 160 expected each; a fair spread stays well inside this.
        assert!(hits.iter().all(|&h| (100..=220).contains(&h)), "{hits:?}");
    }

    #[tokio::test]
    async fn api_benchmark_measures_both_endpoints_without_errors() {
        let work = tempfile::tempdir().unwrap();
        let opts = ApiOptions {
            students: 60,
            seed: 7,
            postgres_url: None,
            load: Load {
                connections: 2,
                duration: Duration::from_millis(300),
            },
            work_dir: work.path().to_path_buf(),
        };
        let report = run_api_benchmark(opts).await.unwrap();
        let endpoints: Vec<_> = report
            .runs
            .iter()
            .map(|r| (r.backend, r.endpoint))
            .collect();
        assert_eq!(
            endpoints,
            [("sqlite", "coaching"), ("sqlite", "users?limit=100")]
        );
        for run in &report.runs {
            assert!(run.result.requests > 0, "{run:?}");
            assert_eq!(run.result.errors, 0, "{run:?}");
        }
        assert!(report.to_string().contains("users?limit=100"));
    }
}
