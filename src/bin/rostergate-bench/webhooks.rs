//! Webhooks benchmark, per backend (a SQLite file; a scratch PostgreSQL database):
//!
//! 1. Signed roster pushes accepted per second: small delta pushes, signed with a push secret,
//!    sent over keep-alive HTTP/1.1 connections from several client tasks to the gateway running
//!    in this process (job runner off, so nothing processes them meanwhile); each is stored
//!    before its 202. Side by side: the same bodies as plain INSERTs into a table of the same
//!    database, from as many tasks: what durable storage alone costs.
//! 2. Events delivered per second: a subscription (made through the admin API) pointing at a
//!    receiver in this process that checks every signature with the subscription's secret,
//!    account events written straight into the outbox, and the time until every one of them is
//!    recorded `delivered` (the whole path: fan-out, claim, signed send, record), with the time
//!    until the receiver had them all beside it. The delivery worker is a black box here: if
//!    nothing arrives within the timeout, this part fails saying so; it fails too when a
//!    signature does not hold or an event has other than one delivery.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use rostergate::admin::{self, AdminError};
use rostergate::args;
use rostergate::auth::keys::{KeyError, MasterKey};
use rostergate::auth::push_secrets;
use rostergate::auth::secrets::SecretBox;
use rostergate::config::{Overrides, Settings};
use rostergate::events::signing::{self, WebhookSecret};
use rostergate::startup::{Application, StartupError};
use rostergate::store::{Db, StoreError};

use crate::http1::Connection;
use crate::receiver::Receiver;
use crate::scratch_db::{ScratchDb, ScratchDbError};

const DISTRICT: &str = "bench";
/// The baseline's table, made in the measured database.
const BASELINE_TABLE: &str = "bench_push_bodies";

#[derive(Debug, Clone)]
pub struct WebhooksOptions {
    /// Pushes per run.
    pub pushes: usize,
    /// Client tasks, each on its own keep-alive connection (and database tasks for the baseline).
    pub clients: usize,
    pub users_per_push: usize,
    /// Events delivered in part 2; 0 skips it.
    pub deliveries: usize,
    /// How long part 2 waits for the first delivery, and for each next one.
    pub delivery_timeout: Duration,
    /// Runs per measurement; the best is kept.
    pub runs: usize,
    /// Administrative PostgreSQL URL; `None` measures SQLite only.
    pub postgres_url: Option<String>,
    pub work_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhooksBenchError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("settings for the in-process gateway: {0}")]
    Settings(String),
    #[error("the master key: {0}")]
    Key(#[from] KeyError),
    #[error(transparent)]
    ScratchDb(#[from] ScratchDbError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("setting up the bench district: {0}")]
    Admin(#[from] AdminError),
    #[error("starting the gateway: {0}")]
    Startup(#[from] StartupError),
    #[error("starting the webhook receiver: {0}")]
    Receiver(std::io::Error),
    #[error("{step} on the gateway failed: {detail}")]
    Request { step: &'static str, detail: String },
    #[error("{errors} of {pushes} pushes were not accepted with 202 (first: {first})")]
    Refused {
        errors: usize,
        pushes: usize,
        first: String,
    },
    #[error(
        "{backend}: no delivery reached the receiver within {waited_secs} s of writing {events} \
         events to the outbox. Is the webhook delivery worker part of this build, and enabled? \
         (part 2 needs it; --deliveries 0 skips it)"
    )]
    NoDelivery {
        backend: &'static str,
        events: usize,
        waited_secs: u64,
    },
    #[error(
        "{backend}: deliveries {stage} stopped at {delivered} of {events} (nothing new for {waited_secs} s)"
    )]
    Incomplete {
        backend: &'static str,
        stage: &'static str,
        delivered: u64,
        events: usize,
        waited_secs: u64,
    },
    #[error("{backend}: {detail}")]
    Wrong {
        backend: &'static str,
        detail: String,
    },
    #[error("background task panicked or was cancelled: {0}")]
    Join(String),
}

/// Pushes against the baseline on one backend: the best of the runs of each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushRun {
    pub backend: &'static str,
    pub pushes: usize,
    pub seconds: f64,
    pub pushes_per_sec: f64,
    pub insert_seconds: f64,
    pub inserts_per_sec: f64,
}

/// Deliveries on one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRun {
    pub backend: &'static str,
    pub events: usize,
    /// Writing the events to the outbox (one transaction of plain INSERTs).
    pub insert_seconds: f64,
    pub inserts_per_sec: f64,
    /// From the commit until the receiver had every event.
    pub receive_seconds: f64,
    /// From the commit until every delivery was recorded `delivered`.
    pub deliver_seconds: f64,
    pub delivered_per_sec: f64,
    /// Requests the receiver answered (more than `events` when some were retried).
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhooksReport {
    pub pushes: usize,
    pub clients: usize,
    pub users_per_push: usize,
    pub runs: usize,
    pub push_runs: Vec<PushRun>,
    pub delivery_runs: Vec<DeliveryRun>,
}

impl fmt::Display for WebhooksReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "signed pushes: {} delta pushes of {} users, {} client connections, best of {} (job runner off)",
            self.pushes, self.users_per_push, self.clients, self.runs
        )?;
        writeln!(
            f,
            "{:<8}  {:>7}  {:>8}  {:>9}  {:>10}  {:>10}  {:>6}",
            "backend", "pushes", "push s", "pushes/s", "INSERT s", "INSERTs/s", "ratio"
        )?;
        for run in &self.push_runs {
            writeln!(
                f,
                "{:<8}  {:>7}  {:>8.2}  {:>9.0}  {:>10.2}  {:>10.0}  {:>6.1}",
                run.backend,
                run.pushes,
                run.seconds,
                run.pushes_per_sec,
                run.insert_seconds,
                run.inserts_per_sec,
                run.seconds / run.insert_seconds.max(f64::EPSILON)
            )?;
        }
        if !self.delivery_runs.is_empty() {
            writeln!(
                f,
                "deliveries: account.provisioned events to one subscription"
            )?;
            writeln!(
                f,
                "{:<8}  {:>7}  {:>9}  {:>10}  {:>9}  {:>9}  {:>12}  {:>8}",
                "backend",
                "events",
                "INSERT s",
                "INSERTs/s",
                "receive s",
                "deliver s",
                "delivered/s",
                "requests"
            )?;
            for run in &self.delivery_runs {
                writeln!(
                    f,
                    "{:<8}  {:>7}  {:>9.2}  {:>10.0}  {:>9.2}  {:>9.2}  {:>12.0}  {:>8}",
                    run.backend,
                    run.events,
                    run.insert_seconds,
                    run.inserts_per_sec,
                    run.receive_seconds,
                    run.deliver_seconds,
                    run.delivered_per_sec,
                    run.requests
                )?;
            }
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

pub async fn run_webhooks_benchmark(
    opts: WebhooksOptions,
) -> Result<WebhooksReport, WebhooksBenchError> {
    let work_dir = opts.work_dir.join("webhooks");
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir).map_err(io_err(&work_dir))?;
    let mut databases = vec![Database::Sqlite(format!(
        "sqlite://{}",
        work_dir.join("sqlite/bench.db").display()
    ))];
    if let Some(admin_url) = &opts.postgres_url {
        databases.push(Database::Postgres(ScratchDb::create(admin_url).await?));
    }
    let mut push_runs = Vec::new();
    let mut delivery_runs = Vec::new();
    let mut outcome = Ok(());
    for database in &databases {
        tracing::info!(backend = database.backend(), "benchmarking webhooks");
        match measure_backend(database, &work_dir, &opts).await {
            Ok((pushes, deliveries)) => {
                push_runs.push(pushes);
                delivery_runs.extend(deliveries);
            }
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
    Ok(WebhooksReport {
        pushes: opts.pushes,
        clients: opts.clients,
        users_per_push: opts.users_per_push,
        runs: opts.runs,
        push_runs,
        delivery_runs,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WebhooksBenchError {
    let path = path.to_path_buf();
    move |source| WebhooksBenchError::Io { path, source }
}

async fn measure_backend(
    database: &Database,
    work_dir: &Path,
    opts: &WebhooksOptions,
) -> Result<(PushRun, Option<DeliveryRun>), WebhooksBenchError> {
    let backend = database.backend();
    let data_dir = work_dir.join(format!("data-{backend}"));
    let master_secret = hex::encode(rostergate::auth::keys::random_bytes::<32>());
    let operator = hex::encode(rostergate::auth::keys::random_bytes::<24>());
    let base = [
        ("ROSTERGATE_SECRET_KEY", master_secret.clone()),
        ("ROSTERGATE_OPERATOR_TOKEN", operator.clone()),
    ];
    let db = Db::connect_and_migrate(database.url()).await?;
    let district = admin::create_district(&db, DISTRICT, "Bench", "America/Chicago", None).await?;
    let secrets = SecretBox::new(&MasterKey::from_secret(&master_secret)?);
    let (_, secret) = push_secrets::create(&db, &secrets, district.id).await?;
    db.conn()
        .execute(
            &format!("CREATE TABLE {BASELINE_TABLE} (id TEXT PRIMARY KEY, body TEXT NOT NULL)"),
            &[],
        )
        .await?;

    // The job runner is off: processing the pushes would compete with receiving them. So is
    // its delivery worker: it lives on beside part 2's gateway, and would claim part 2's
    // deliveries only to find its receiver's loopback address refused.
    let mut vars = base.to_vec();
    vars.push(("ROSTERGATE_JOBS__ENABLED", "false".to_string()));
    vars.push(("ROSTERGATE_WEBHOOKS__ENABLED", "false".to_string()));
    let app = Application::build(settings(database.url(), &data_dir, &vars)?).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
    // The server lives until the process ends; each backend has its own port and database.
    tokio::spawn(app.run_until_stopped());

    let bodies: Arc<Vec<String>> = Arc::new(
        (0..opts.pushes)
            .map(|i| push_body(i, opts.users_per_push))
            .collect(),
    );
    let secret = Arc::new(secret);
    let mut best_push = f64::INFINITY;
    let mut best_insert = f64::INFINITY;
    for run in 0..opts.runs.max(1) {
        let seconds =
            on_own_thread(addr, secret.clone(), bodies.clone(), opts.clients, run).await?;
        best_push = best_push.min(seconds);
        best_insert = best_insert.min(insert_bodies(&db, &bodies, opts.clients, run).await?);
    }
    let stored = db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM inbound_deliveries WHERE district_id = $1",
            &args![district.id],
        )
        .await?;
    let expected = (opts.pushes * opts.runs.max(1)) as i64;
    if stored != expected {
        return Err(request_err(
            "counting the stored deliveries",
            format!("{stored} stored, {expected} acknowledged"),
        ));
    }
    let pushes = PushRun {
        backend,
        pushes: opts.pushes,
        seconds: best_push,
        pushes_per_sec: opts.pushes as f64 / best_push,
        insert_seconds: best_insert,
        inserts_per_sec: opts.pushes as f64 / best_insert,
    };
    let deliveries = if opts.deliveries == 0 {
        None
    } else {
        let mut vars = base.to_vec();
        vars.push(("ROSTERGATE_OUTBOUND__ALLOW_PRIVATE_TARGETS", "true".into()));
        let settings = settings(database.url(), &data_dir, &vars)?;
        Some(measure_deliveries(&db, district.id, settings, &operator, backend, opts).await?)
    };
    db.close().await;
    Ok((pushes, deliveries))
}

/// A delta push of `users` new students, unique to push `i`.
fn push_body(i: usize, users: usize) -> String {
    let users: Vec<serde_json::Value> = (0..users)
        .map(|u| {
            let id = format!("push-{i:06}-{u}");
            json!({"sourcedId": id, "status": "active", "dateLastModified": "2026-08-01T00:00:00Z",
                "enabledUser": true, "orgs": [{"sourcedId": "sch-1", "type": "org"}], "role": "student",
                "username": id, "givenName": "Given", "familyName": "Family"})
        })
        .collect();
    json!({"mode": "delta", "version": "1.1", "users": users}).to_string()
}

/// Sends every push from `clients` tasks on a single-threaded runtime of its own thread (so the
/// load takes at most one core from the gateway); the seconds they took.
async fn on_own_thread(
    addr: SocketAddr,
    secret: Arc<WebhookSecret>,
    bodies: Arc<Vec<String>>,
    clients: usize,
    run: usize,
) -> Result<f64, WebhooksBenchError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let outcome =
            runtime.map(|rt| rt.block_on(send_pushes(addr, &secret, &bodies, clients, run)));
        let _ = tx.send(outcome);
    });
    rx.await
        .map_err(|e| WebhooksBenchError::Join(e.to_string()))?
        .map_err(|e| WebhooksBenchError::Join(e.to_string()))?
}

async fn send_pushes(
    addr: SocketAddr,
    secret: &WebhookSecret,
    bodies: &[String],
    clients: usize,
    run: usize,
) -> Result<f64, WebhooksBenchError> {
    let next = AtomicUsize::new(0);
    let path = format!("/api/v1/districts/{DISTRICT}/roster");
    let started = Instant::now();
    let workers = (0..clients.max(1)).map(|_| async {
        let mut conn = Connection::new(addr);
        let mut refused: Vec<String> = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(body) = bodies.get(i) else {
                return refused;
            };
            let id = format!("bench-{run}-{i}");
            let ts = Utc::now().timestamp();
            let signature = signing::sign(secret, &id, ts, body.as_bytes());
            let headers = format!(
                "Content-Type: application/json\r\nwebhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\n"
            );
            match conn.request("POST", &path, &headers, body.as_bytes()).await {
                Ok(response) if response.status == 202 => {}
                Ok(response) => refused.push(format!(
                    "status {}: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                )),
                Err(e) => refused.push(e.to_string()),
            }
        }
    });
    let refused: Vec<String> = futures_util::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    match refused.first() {
        None => Ok(seconds),
        Some(first) => Err(WebhooksBenchError::Refused {
            errors: refused.len(),
            pushes: bodies.len(),
            first: first.clone(),
        }),
    }
}

/// The baseline: each body as one plain INSERT (its own commit), from `tasks` tasks at once.
async fn insert_bodies(
    db: &Db,
    bodies: &Arc<Vec<String>>,
    tasks: usize,
    run: usize,
) -> Result<f64, WebhooksBenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks.max(1))
        .map(|_| {
            let (db, bodies, next) = (db.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return Ok::<(), StoreError>(());
                    };
                    db.conn()
                        .execute(
                            &format!("INSERT INTO {BASELINE_TABLE} (id, body) VALUES ($1, $2)"),
                            &args![format!("{run}-{i}"), body.as_str()],
                        )
                        .await?;
                }
            })
        })
        .collect();
    for handle in handles {
        handle
            .await
            .map_err(|e| WebhooksBenchError::Join(e.to_string()))??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Part 2: a gateway with its background work on, a subscription to a local receiver, the
/// events written to the outbox, and the wait until all of them arrived.
async fn measure_deliveries(
    db: &Db,
    district_id: i64,
    settings: Settings,
    operator: &str,
    backend: &'static str,
    opts: &WebhooksOptions,
) -> Result<DeliveryRun, WebhooksBenchError> {
    let app = Application::build(settings).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
    tokio::spawn(app.run_until_stopped());
    let receiver = Receiver::start().map_err(WebhooksBenchError::Receiver)?;
    let step = "POST …/subscriptions";
    let subscription = json!({
        "url": format!("http://{}/hook", receiver.addr),
        "event_types": ["account.provisioned"],
        "description": "rostergate-bench receiver",
    });
    let response = Connection::new(addr)
        .request(
            "POST",
            &format!("/api/v1/districts/{DISTRICT}/subscriptions"),
            &format!("Authorization: Bearer {operator}\r\nContent-Type: application/json\r\n"),
            subscription.to_string().as_bytes(),
        )
        .await
        .map_err(|e| request_err(step, e))?;
    if response.status != 201 {
        return Err(request_err(
            step,
            format!(
                "status {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ),
        ));
    }
    let secret = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v["secret"].as_str().map(str::to_string))
        .ok_or_else(|| request_err(step, "the answer holds no secret"))
        .and_then(|text| WebhookSecret::parse(&text).map_err(|e| request_err(step, e)))?;
    receiver.expect_secret(secret);
    let started = Instant::now();
    write_events(db, district_id, opts.deliveries).await?;
    let insert_seconds = started.elapsed().as_secs_f64();
    let committed = Instant::now();
    let outcome = wait_for(db, &receiver, opts, backend).await;
    let requests = receiver.requests();
    let refused = receiver.refused();
    receiver.stop().await;
    let (receive_seconds, deliver_seconds) = outcome.map(|(received, recorded)| {
        (
            (received - committed).as_secs_f64(),
            (recorded - committed).as_secs_f64(),
        )
    })?;
    if refused > 0 {
        return Err(WebhooksBenchError::Wrong {
            backend,
            detail: format!("the receiver refused {refused} requests for their signature"),
        });
    }
    let rows = db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE district_id = $1",
            &args![district_id],
        )
        .await?;
    if rows != opts.deliveries as i64 {
        return Err(WebhooksBenchError::Wrong {
            backend,
            detail: format!("{rows} delivery rows for {} events", opts.deliveries),
        });
    }
    Ok(DeliveryRun {
        backend,
        events: opts.deliveries,
        insert_seconds,
        inserts_per_sec: opts.deliveries as f64 / insert_seconds,
        receive_seconds,
        deliver_seconds,
        delivered_per_sec: opts.deliveries as f64 / deliver_seconds,
        requests,
    })
}

/// `events` account events in the outbox, as a sync run writes them: plain INSERTs in one
/// transaction.
async fn write_events(db: &Db, district_id: i64, events: usize) -> Result<(), StoreError> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    for i in 0..events {
        let account = uuid::Uuid::new_v4().to_string();
        let payload = json!({"account_id": account, "district": DISTRICT,
            "user_sourced_id": format!("bench-{i:06}"), "role_family": "student", "state": "district"});
        tx.execute(
            "INSERT INTO outbox_events (district_id, run_id, event_type, subject_id, payload, created_at) \
             VALUES ($1, $2, 'account.provisioned', $3, $4, $5)",
            &args![district_id, "bench-deliveries", account.as_str(), payload.to_string(), now],
        )
        .await?;
    }
    tx.commit().await
}

/// Waits until the receiver has `events` deliveries and then until each is recorded
/// `delivered`; when each of the two happened. Fails when the first delivery, or the next,
/// does not come (or is not recorded) within `patience`.
async fn wait_for(
    db: &Db,
    receiver: &Receiver,
    opts: &WebhooksOptions,
    backend: &'static str,
) -> Result<(Instant, Instant), WebhooksBenchError> {
    let (events, patience) = (opts.deliveries, opts.delivery_timeout);
    let mut received_at = None;
    let mut last = 0;
    let mut last_progress = Instant::now();
    loop {
        let received = receiver.delivered();
        // The log is read only once the receiver has everything: a count per poll would
        // compete with the worker for the database.
        let delivered = if received >= events as u64 {
            let at = *received_at.get_or_insert_with(Instant::now);
            let recorded = db
                .conn()
                .scalar(
                    "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered'",
                    &[],
                )
                .await?;
            if recorded >= events as i64 {
                return Ok((at, Instant::now()));
            }
            // Past `events`: progress in recording.
            events as u64 + 1 + recorded.max(0) as u64
        } else {
            received
        };
        if delivered > last {
            last = delivered;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > patience {
            let waited_secs = patience.as_secs();
            let (stage, delivered) = if delivered > events as u64 {
                ("recorded delivered", delivered - events as u64 - 1)
            } else {
                ("received", delivered)
            };
            return Err(if delivered == 0 && stage == "received" {
                WebhooksBenchError::NoDelivery {
                    backend,
                    events,
                    waited_secs,
                }
            } else {
                WebhooksBenchError::Incomplete {
                    backend,
                    stage,
                    delivered,
                    events,
                    waited_secs,
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn settings(
    database_url: &str,
    data_dir: &Path,
    extra: &[(&str, String)],
) -> Result<Settings, WebhooksBenchError> {
    let mut vars: Vec<(String, String)> = vec![
        ("ROSTERGATE_DATABASE_URL".into(), database_url.to_string()),
        ("ROSTERGATE_BIND".into(), "127.0.0.1:0".into()),
        ("ROSTERGATE_DATA_DIR".into(), data_dir.display().to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    // No config folder: the shipped defaults plus the values above, whatever the machine has.
    Settings::load_from(Path::new("/nonexistent"), &vars, &Overrides::default())
        .map_err(|e| WebhooksBenchError::Settings(e.to_string()))
}

fn request_err(step: &'static str, detail: impl fmt::Display) -> WebhooksBenchError {
    WebhooksBenchError::Request {
        step,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(work: &Path, deliveries: usize) -> WebhooksOptions {
        WebhooksOptions {
            pushes: 40,
            clients: 3,
            users_per_push: 2,
            deliveries,
            delivery_timeout: Duration::from_millis(500),
            runs: 2,
            postgres_url: None,
            work_dir: work.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn pushes_are_measured_against_the_baseline_and_all_stored() {
        let work = tempfile::tempdir().unwrap();
        let report = run_webhooks_benchmark(options(work.path(), 0))
            .await
            .unwrap();
        assert_eq!(report.push_runs.len(), 1);
        let run = &report.push_runs[0];
        assert_eq!((run.backend, run.pushes), ("sqlite", 40));
        assert!(
            run.pushes_per_sec > 0.0 && run.inserts_per_sec > 0.0,
            "{run:?}"
        );
        assert!(report.delivery_runs.is_empty());
        assert!(report.to_string().contains("pushes/s"));
    }

    /// Every event signed, received and recorded delivered, once.
    #[tokio::test]
    async fn deliveries_are_measured_until_each_is_recorded_delivered() {
        let work = tempfile::tempdir().unwrap();
        let opts = WebhooksOptions {
            pushes: 5,
            runs: 1,
            delivery_timeout: Duration::from_secs(10),
            ..options(work.path(), 5)
        };
        let report = run_webhooks_benchmark(opts).await.unwrap();
        let run = &report.delivery_runs[0];
        assert_eq!((run.backend, run.events), ("sqlite", 5));
        assert!(run.requests >= 5, "{run:?}");
        assert!(run.deliver_seconds >= run.receive_seconds, "{run:?}");
        assert!(report.to_string().contains("delivered/s"));
    }

    #[test]
    fn each_push_body_is_a_valid_roster_push() {
        for i in [0, 7] {
            let body = push_body(i, 3);
            rostergate::sources::oneroster::push::check_shape(body.as_bytes()).unwrap();
            assert!(body.contains(&format!("push-{i:06}-2")), "{body}");
        }
    }
}
