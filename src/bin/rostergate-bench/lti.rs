//! LTI launch benchmark, per backend (a SQLite file; a scratch PostgreSQL database):
//!
//! Set up, untimed: a district with a small synthetic roster, the in-library LTI platform
//! (`rostergate::synthetic::lti_platform`) serving its key set on a loopback port and
//! registered in the district, N login states stored as a login stores them
//! (`store::lti_launches::save_state`), and N id_tokens signed by the platform's key, each with
//! the nonce of its state, for a rostered student and one of their classes.
//!
//! Timed, each from `--concurrency` tasks on the benchmark's runtime (one worker per core),
//! every operation's latency kept:
//!
//! 1. **verify**: bare RS256 verification of the N tokens with `jsonwebtoken` (the platform's
//!    public key, the payload parsed, no claim checked): the floor;
//! 2. **validated**: [`launch::validate_launch`], what a launch POST does before resolution:
//!    the state consumed in the database (one statement), the platform's registration read
//!    (one more), and every check of `lti::validate` (signature, iss, aud, exp, iat, nonce, …);
//! 3. **full**: [`launch::finish_launch`], the same (the N states stored again, the same tokens)
//!    plus resolution (the rostered user and class read, what the launch says recorded) and
//!    the session token: the tool's keys loaded and an RS256 signature;
//! 4. and two parts of the full launch alone, to show where its time goes: **tool keys**
//!    (`tool_key_store::load_or_create`, once per full launch) and **session sign** (an RS256
//!    signature over a session's claims with the tool's key).
//!
//! Each launch phase gets a fresh platform key cache, warmed by one untimed launch, and the
//! platform's request log shows the key set was not fetched while it was timed. Every launch
//! must succeed (a full one must resolve to its student and class), or the benchmark fails;
//! afterwards a replayed launch must be refused.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde_json::{json, Value};

use rostergate::admin::{self, AdminError};
use rostergate::args;
use rostergate::auth::keys::{random_bytes, KeyError, MasterKey};
use rostergate::auth::secrets::SecretBox;
use rostergate::config::{ImportSettings, LtiSettings};
use rostergate::imports::import_oneroster_csv;
use rostergate::lti::launch::{self, LaunchContext, LaunchFailure, LaunchForm, PlatformKeyCache};
use rostergate::lti::registration_input::{InputErrors, PlatformInput};
use rostergate::lti::tool_key_store::{self, ToolKeyStoreError};
use rostergate::store::lti_launches::{self, LoginState};
use rostergate::store::{self, Db, StoreError};
use rostergate::sync::engine::RunOptions;
use rostergate::sync::{Engine, RunStatus, SyncError};
use rostergate::synthetic::lti_platform::{LaunchSpec, LtiPlatform, LtiPlatformConfig};
use rostergate::synthetic::{self, GenerateError, SyntheticDistrict};

use crate::import::{Backend, BENCH_SEED};
use crate::load::percentile_ms;
use crate::scratch_db::{ScratchDb, ScratchDbError};

const DISTRICT: &str = "bench";
const CLIENT_ID: &str = "rostergate-bench-tool";
const DEPLOYMENT: &str = "1:bench-deployment";
const PUBLIC_URL: &str = "https://gateway.example.org";
/// Where launches land: a path under the tool's one target.
const TARGET_TOOL_URL: &str = "https://learn.example.org/";
const TARGET: &str = "https://learn.example.org/launch";
/// Tokens and states outlive the slowest backend's phases (the validator refuses an `iat`
/// older than ten minutes anyway).
const TOKEN_TTL_SECS: i64 = 600;
/// Untimed launches per backend: one to warm each launch phase's key cache.
const WARM_UPS: usize = 2;

#[derive(Debug, Clone)]
pub struct LtiOptions {
    /// Launches per timed phase.
    pub launches: usize,
    /// Tasks launching at once.
    pub concurrency: usize,
    /// Students in the rostered district (launches cycle through them).
    pub students: usize,
    pub backends: Vec<Backend>,
    /// The roster bundle and the SQLite file go here.
    pub work_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LtiBenchError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating the {students}-student roster failed: {source}")]
    Generate {
        students: usize,
        source: GenerateError,
    },
    #[error("the master key: {0}")]
    Key(#[from] KeyError),
    #[error(transparent)]
    ScratchDb(#[from] ScratchDbError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("setting up the bench district: {0}")]
    Admin(#[from] AdminError),
    #[error("importing the roster: {0}")]
    Import(#[from] SyncError),
    #[error("the roster import ended {status}, not applied")]
    NotApplied { status: String },
    #[error("the roster has no student enrolled in a class")]
    NoEnrollments,
    #[error("starting the LTI platform: {0}")]
    Platform(std::io::Error),
    #[error("registering the LTI platform: {0}")]
    Registration(#[from] InputErrors),
    #[error("the tool's keys: {0}")]
    ToolKeys(#[from] ToolKeyStoreError),
    #[error("the platform's published key set: {0}")]
    Jwks(String),
    #[error("{backend}: the untimed warm-up launch failed: {detail}")]
    WarmUp {
        backend: &'static str,
        detail: String,
    },
    #[error("{backend}: {failures} of {launches} {phase} operations failed (first: {first})")]
    Failed {
        backend: &'static str,
        phase: &'static str,
        failures: usize,
        launches: usize,
        first: String,
    },
    #[error("{backend}: {detail}")]
    Replay {
        backend: &'static str,
        detail: String,
    },
    #[error("background task panicked or was cancelled: {0}")]
    Join(String),
}

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Bare RS256 verification of the id_token.
    Verify,
    /// State consumed + full validation (`launch::validate_launch`).
    Validated,
    /// Validation, resolution and the session (`launch::finish_launch`).
    Full,
    /// The tool's keys loaded from the database, as each full launch does.
    ToolKeys,
    /// A session token signed (RS256), as each full launch does.
    SessionSign,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Verify,
        Phase::Validated,
        Phase::Full,
        Phase::ToolKeys,
        Phase::SessionSign,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Phase::Verify => "verify (bare RS256)",
            Phase::Validated => "validated launch",
            Phase::Full => "full launch",
            Phase::ToolKeys => "  part: tool keys",
            Phase::SessionSign => "  part: session sign",
        }
    }
}

/// Throughput and latency of `count` operations from some concurrent tasks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    pub count: usize,
    pub seconds: f64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Timing {
    /// From every operation's latency (microseconds, any order) and the wall time of all.
    pub fn of(mut latencies_us: Vec<u32>, seconds: f64) -> Timing {
        latencies_us.sort_unstable();
        let count = latencies_us.len();
        Timing {
            count,
            seconds,
            per_sec: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
            p50_ms: percentile_ms(&latencies_us, 50.0),
            p99_ms: percentile_ms(&latencies_us, 99.0),
            max_ms: latencies_us
                .last()
                .map_or(0.0, |&us| f64::from(us) / 1000.0),
        }
    }

    /// How many times bare verification's time one operation of this takes (throughput over
    /// throughput, so concurrency is the same on both sides).
    pub fn times(&self, verify: &Timing) -> f64 {
        if self.per_sec > 0.0 {
            verify.per_sec / self.per_sec
        } else {
            f64::INFINITY
        }
    }
}

/// One phase on one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseRun {
    pub backend: &'static str,
    pub phase: Phase,
    #[serde(flatten)]
    pub timing: Timing,
    /// This phase's time per operation over bare verification's.
    pub vs_verify: f64,
    /// Requests for the platform's key set while this phase was timed (0: all from the cache).
    pub jwks_fetches: usize,
}

/// A launch replayed once the phases are over, and the code it was refused with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    pub backend: &'static str,
    pub validated_code: &'static str,
    pub full_code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LtiReport {
    pub launches: usize,
    pub concurrency: usize,
    pub students: usize,
    pub runs: Vec<PhaseRun>,
    pub replays: Vec<Replay>,
}

impl fmt::Display for LtiReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "LTI launches: {} per phase, {} concurrent, a roster of {} students; every operation succeeded",
            self.launches, self.concurrency, self.students
        )?;
        writeln!(
            f,
            "{:<8}  {:<20}  {:>7}  {:>8}  {:>8}  {:>7}  {:>7}  {:>7}  {:>8}  {:>5}",
            "backend",
            "phase",
            "count",
            "seconds",
            "per s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "x verify",
            "jwks"
        )?;
        for run in &self.runs {
            let t = &run.timing;
            writeln!(
                f,
                "{:<8}  {:<20}  {:>7}  {:>8.2}  {:>8.0}  {:>7.2}  {:>7.2}  {:>7.2}  {:>8.1}  {:>5}",
                run.backend,
                run.phase.label(),
                t.count,
                t.seconds,
                t.per_sec,
                t.p50_ms,
                t.p99_ms,
                t.max_ms,
                run.vs_verify,
                run.jwks_fetches
            )?;
        }
        for replay in &self.replays {
            writeln!(
                f,
                "{}: a launch replayed afterwards was refused: {} (validation), {} (full launch)",
                replay.backend, replay.validated_code, replay.full_code
            )?;
        }
        Ok(())
    }
}

pub async fn run_lti_benchmark(opts: LtiOptions) -> Result<LtiReport, LtiBenchError> {
    let work_dir = opts.work_dir.join("lti");
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir).map_err(io_err(&work_dir))?;
    let bundle = work_dir.join("bundle");
    let spec = SyntheticDistrict {
        students: opts.students,
        seed: BENCH_SEED,
    };
    {
        let bundle = bundle.clone();
        tokio::task::spawn_blocking(move || synthetic::write_bundle(&spec, &bundle))
            .await
            .map_err(|e| LtiBenchError::Join(e.to_string()))?
            .map_err(|source| LtiBenchError::Generate {
                students: opts.students,
                source,
            })?;
    }
    rostergate::outbound::tls::install_crypto_provider();
    let platform = Arc::new(
        LtiPlatform::start(LtiPlatformConfig {
            workers: 1,
            ..LtiPlatformConfig::new(CLIENT_ID, DEPLOYMENT)
                .with_tool_redirect_uri(format!("{PUBLIC_URL}/lti/launch"))
        })
        .map_err(LtiBenchError::Platform)?,
    );
    let mut runs = Vec::new();
    let mut replays = Vec::new();
    let mut outcome = Ok(());
    for backend in &opts.backends {
        let name = backend.name();
        tracing::info!(backend = name, "benchmarking LTI launches");
        let (url, scratch) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", work_dir.join("sqlite/bench.db").display()),
                None,
            ),
            Backend::Postgres(admin_url) => match ScratchDb::create(admin_url).await {
                Ok(db) => (db.url.clone(), Some(db)),
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            },
        };
        let measured = measure_backend(name, &url, &bundle, &platform, &opts).await;
        if let Some(db) = scratch {
            db.drop_database().await;
        }
        match measured {
            Ok((phases, replay)) => {
                runs.extend(phases);
                replays.push(replay);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if let Ok(platform) = Arc::try_unwrap(platform) {
        platform.stop().await;
    }
    outcome?;
    let _ = std::fs::remove_dir_all(&work_dir);
    Ok(LtiReport {
        launches: opts.launches,
        concurrency: opts.concurrency,
        students: opts.students,
        runs,
        replays,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LtiBenchError {
    let path = path.to_path_buf();
    move |source| LtiBenchError::Io { path, source }
}

/// One launch as a login and its platform made it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    state: String,
    nonce: String,
    /// The rostered student (also the platform's `sub`) and their class.
    user: String,
    class: String,
}

/// `count` launches with fresh states and nonces, cycling through the (student, class) pairs.
fn plan_launches(pairs: &[(String, String)], count: usize) -> Vec<Planned> {
    (0..count)
        .map(|i| {
            let (user, class) = &pairs[i % pairs.len()];
            Planned {
                state: random_value(),
                nonce: random_value(),
                user: user.clone(),
                class: class.clone(),
            }
        })
        .collect()
}

/// 256 random bits, URL-safe: as a login's state and nonce are.
fn random_value() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What every task of a phase reads.
#[derive(Clone)]
struct Fixture {
    db: Db,
    secrets: SecretBox,
    settings: LtiSettings,
    /// Fresh for each launch phase.
    keys: PlatformKeyCache,
    planned: Arc<Vec<Planned>>,
    tokens: Arc<Vec<String>>,
    /// The platform's public key, for bare verification.
    verify_key: DecodingKey,
    /// The tool's current key and its kid, for the session signing part.
    tool_key: (EncodingKey, String),
    district: String,
    platform_id: i64,
}

impl Fixture {
    fn context(&self) -> LaunchContext<'_> {
        LaunchContext {
            db: &self.db,
            secrets: &self.secrets,
            settings: &self.settings,
            keys: &self.keys,
        }
    }

    fn form(&self, i: usize) -> LaunchForm {
        LaunchForm {
            id_token: Some(self.tokens[i].clone()),
            state: Some(self.planned[i].state.clone()),
            ..LaunchForm::default()
        }
    }

    /// Operation `i` of a phase; `Err` says why it failed.
    async fn run(&self, phase: Phase, i: usize) -> Result<(), String> {
        let planned = &self.planned[i];
        match phase {
            Phase::Verify => {
                let mut validation = Validation::new(Algorithm::RS256);
                validation.validate_exp = false;
                validation.validate_aud = false;
                validation.required_spec_claims.clear();
                jsonwebtoken::decode::<Value>(&self.tokens[i], &self.verify_key, &validation)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Phase::Validated => {
                let form = self.form(i);
                let validated = launch::validate_launch(
                    &self.context(),
                    &form,
                    Some(&planned.state),
                    Utc::now(),
                )
                .await
                .map_err(failure)?;
                if validated.launch.sub == planned.user {
                    Ok(())
                } else {
                    Err(format!(
                        "the launch of {} read as {}",
                        planned.user, validated.launch.sub
                    ))
                }
            }
            Phase::Full => {
                let form = self.form(i);
                let session =
                    launch::finish_launch(&self.context(), &form, Some(&planned.state), Utc::now())
                        .await
                        .map_err(failure)?;
                let resolved = (session.user.as_deref(), session.class.as_deref());
                if resolved == (Some(planned.user.as_str()), Some(planned.class.as_str())) {
                    Ok(())
                } else {
                    Err(format!(
                        "the launch of {} in {} resolved to {resolved:?}",
                        planned.user, planned.class
                    ))
                }
            }
            Phase::ToolKeys => tool_key_store::load_or_create(&self.db, &self.secrets)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Phase::SessionSign => {
                let (key, kid) = &self.tool_key;
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(kid.clone());
                let claims = session_claims(&self.district, self.platform_id, planned, Utc::now());
                jsonwebtoken::encode(&header, &claims, key)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

fn failure(e: LaunchFailure) -> String {
    format!("{}: {e}", e.code())
}

/// Claims the size and shape of a launch's session (`lti::launch`'s session token).
fn session_claims(
    district: &str,
    platform_id: i64,
    planned: &Planned,
    now: chrono::DateTime<Utc>,
) -> Value {
    json!({
        "iss": PUBLIC_URL,
        "aud": launch::SESSION_AUDIENCE,
        "sub": planned.user,
        "iat": now.timestamp(),
        "exp": now.timestamp() + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
        "rostergate": {
            "district": district,
            "user": planned.user,
            "rostered": true,
            "class": planned.class,
            "role": "student",
            "test_user": false,
            "message_type": "LtiResourceLinkRequest",
            "deployment_id": DEPLOYMENT,
            "resource_link_id": "resource-link-0001",
            "context_id": "context-0001",
            "lti_sub": planned.user,
            "platform": platform_id,
        }
    })
}

/// Runs operations `0..count` of `phase` from `concurrency` spawned tasks; their timing, or
/// the failures counted with the first one.
async fn timed(
    fixture: &Arc<Fixture>,
    phase: Phase,
    count: usize,
    concurrency: usize,
) -> Result<Timing, (usize, String)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (fixture, next) = (fixture.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count / concurrency.max(1) + 1);
                let (mut failures, mut first) = (0, None);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return (latencies, failures, first);
                    }
                    let sent = Instant::now();
                    let outcome = fixture.run(phase, i).await;
                    latencies.push(micros(sent.elapsed()));
                    if let Err(why) = outcome {
                        failures += 1;
                        first.get_or_insert(format!("#{i}: {why}"));
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    let (mut failures, mut first) = (0, None);
    for task in tasks {
        match task.await {
            Ok((lat, failed, why)) => {
                latencies.extend(lat);
                failures += failed;
                first = first.or(why);
            }
            Err(e) => {
                failures += 1;
                first.get_or_insert(format!("a task ended: {e}"));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    match first {
        None => Ok(Timing::of(latencies, seconds)),
        Some(first) => Err((failures, first)),
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

async fn measure_backend(
    backend: &'static str,
    url: &str,
    bundle: &Path,
    platform: &Arc<LtiPlatform>,
    opts: &LtiOptions,
) -> Result<(Vec<PhaseRun>, Replay), LtiBenchError> {
    let db = Db::connect_and_migrate(url).await?;
    let outcome = measure_on(backend, &db, bundle, platform, opts).await;
    db.close().await;
    outcome
}

async fn measure_on(
    backend: &'static str,
    db: &Db,
    bundle: &Path,
    platform: &Arc<LtiPlatform>,
    opts: &LtiOptions,
) -> Result<(Vec<PhaseRun>, Replay), LtiBenchError> {
    let (district_id, pairs) = rostered_district(db, bundle).await?;
    let registration = PlatformInput {
        issuer: platform.issuer(),
        client_id: CLIENT_ID.into(),
        deployment_ids: vec![DEPLOYMENT.into()],
        auth_login_url: platform.auth_url(),
        token_url: format!("{}/token", platform.origin()),
        jwks_url: platform.jwks_url(),
        ..PlatformInput::default()
    }
    .validate()?;
    let registered = store::lti::insert_platform(db, district_id, &registration).await?;
    let master_secret = hex::encode(random_bytes::<32>());
    let secrets = SecretBox::new(&MasterKey::from_secret(&master_secret)?);
    let tool_keys = tool_key_store::load_or_create(db, &secrets).await?;
    let tool_key = tool_keys.current();

    let n = opts.launches.max(1);
    let planned = plan_launches(&pairs, n + WARM_UPS);
    let started = Instant::now();
    let tokens = sign_tokens(platform.clone(), &planned).await?;
    tracing::info!(
        backend,
        tokens = tokens.len(),
        seconds = started.elapsed().as_secs_f64(),
        "id_tokens signed"
    );
    let fixture = Fixture {
        db: db.clone(),
        secrets,
        settings: LtiSettings {
            public_url: Some(PUBLIC_URL.into()),
            target_link_uris: vec![TARGET_TOOL_URL.into()],
            // The platform's key set is on a loopback port, over plain http.
            allow_insecure_platforms: true,
            ..LtiSettings::default()
        },
        keys: PlatformKeyCache::default(),
        planned: Arc::new(planned),
        tokens: Arc::new(tokens),
        verify_key: platform_key(platform)?,
        tool_key: (tool_key.encoding_key(), tool_key.kid().to_string()),
        district: DISTRICT.into(),
        platform_id: registered.id,
    };
    save_states(&fixture, 0..n + WARM_UPS, opts.concurrency).await?;

    let mut timings: Vec<(Phase, Timing, usize)> = Vec::new();
    for phase in Phase::ALL {
        let mut fixture = fixture.clone();
        if phase == Phase::Full {
            // The validated phase consumed every state; a login each again, same nonces.
            save_states(&fixture, 0..n, opts.concurrency).await?;
        }
        match phase {
            Phase::Validated | Phase::Full => {
                // A key cache of the phase's own, filled by an untimed launch just before: the
                // timed ones find the platform's keys cached (for `min_ttl`, 60 s).
                fixture.keys = PlatformKeyCache::default();
                let warm = n + usize::from(phase == Phase::Full);
                fixture
                    .run(Phase::Validated, warm)
                    .await
                    .map_err(|detail| LtiBenchError::WarmUp { backend, detail })?;
            }
            _ => {}
        }
        let fixture = Arc::new(fixture);
        let fetches_before = jwks_fetches(platform);
        let timing =
            timed(&fixture, phase, n, opts.concurrency)
                .await
                .map_err(|(failures, first)| LtiBenchError::Failed {
                    backend,
                    phase: phase.label().trim(),
                    failures,
                    launches: n,
                    first,
                })?;
        let fetches = jwks_fetches(platform) - fetches_before;
        tracing::info!(
            backend,
            phase = phase.label().trim(),
            per_sec = timing.per_sec,
            "timed"
        );
        timings.push((phase, timing, fetches));
    }
    let replay = replay(backend, &fixture).await?;

    let verify = timings
        .iter()
        .find(|(phase, ..)| *phase == Phase::Verify)
        .map(|(_, t, _)| *t)
        .expect("the verify phase runs first");
    let runs = timings
        .into_iter()
        .map(|(phase, timing, jwks_fetches)| PhaseRun {
            backend,
            phase,
            vs_verify: timing.times(&verify),
            timing,
            jwks_fetches,
        })
        .collect();
    Ok((runs, replay))
}

/// The bench district with the synthetic roster imported; each student enrolled in a class,
/// with the first such class.
async fn rostered_district(
    db: &Db,
    bundle: &Path,
) -> Result<(i64, Vec<(String, String)>), LtiBenchError> {
    let district = admin::create_district(db, DISTRICT, "Bench", "America/Chicago", None).await?;
    let limits = ImportSettings::default();
    let engine = Engine::new(db.clone(), limits.max_reported_errors);
    let report = import_oneroster_csv(
        &engine,
        &district,
        bundle,
        None,
        &limits,
        RunOptions::default(),
        None,
    )
    .await?;
    if report.status != RunStatus::Applied {
        return Err(LtiBenchError::NotApplied {
            status: format!("{:?}", report.status).to_lowercase(),
        });
    }
    let rows = db
        .conn()
        .text_rows(
            "SELECT user_sourced_id, MIN(class_sourced_id) FROM enrollments \
             WHERE district_id = $1 AND role = 'student' AND deleted_at IS NULL \
             AND user_sourced_id IS NOT NULL AND class_sourced_id IS NOT NULL \
             GROUP BY user_sourced_id ORDER BY user_sourced_id",
            &args![district.id],
        )
        .await?;
    let pairs: Vec<(String, String)> = rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Some(user), Some(class)] => Some((user.clone(), class.clone())),
            _ => None,
        })
        .collect();
    if pairs.is_empty() {
        return Err(LtiBenchError::NoEnrollments);
    }
    Ok((district.id, pairs))
}

/// Each planned launch's id_token, signed by the platform for its student, class and nonce,
/// on every core.
async fn sign_tokens(
    platform: Arc<LtiPlatform>,
    planned: &[Planned],
) -> Result<Vec<String>, LtiBenchError> {
    let planned = planned.to_vec();
    tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = planned.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let parts: Vec<_> = planned
                .chunks(chunk)
                .map(|part| {
                    let platform = &platform;
                    scope.spawn(move || {
                        part.iter()
                            .map(|p| platform.signed_launch(&launch_spec(p), &p.nonce, CLIENT_ID))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .map(|part| {
                    part.join()
                        .map_err(|_| "a signing thread panicked".to_string())
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|parts| parts.concat())
        })
    })
    .await
    .map_err(|e| LtiBenchError::Join(e.to_string()))?
    .map_err(LtiBenchError::Join)
}

/// A student's launch into their class, valid as long as the benchmark may need.
fn launch_spec(planned: &Planned) -> LaunchSpec {
    LaunchSpec::learner()
        .with_sub(planned.user.as_str())
        .with_lis(&planned.user, &planned.class)
        .with_target_link_uri(TARGET)
        .with_exp_offset(TOKEN_TTL_SECS)
}

/// The platform's signing key, as its published key set gives it.
fn platform_key(platform: &LtiPlatform) -> Result<DecodingKey, LtiBenchError> {
    let kid = platform.signing_kid();
    let jwks = platform.jwks();
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or_else(|| LtiBenchError::Jwks(format!("no key {kid:?}")))?;
    let part = |name: &str| {
        key[name]
            .as_str()
            .ok_or_else(|| LtiBenchError::Jwks(format!("the key has no {name:?}")))
    };
    DecodingKey::from_rsa_components(part("n")?, part("e")?)
        .map_err(|e| LtiBenchError::Jwks(e.to_string()))
}

/// Stores the login states of planned launches `range`, from `concurrency` tasks.
async fn save_states(
    fixture: &Fixture,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Result<(), LtiBenchError> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let now = Utc::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (fixture, next, end) = (fixture.clone(), next.clone(), range.end);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(planned) = fixture.planned.get(i).filter(|_| i < end) else {
                        return Ok::<(), StoreError>(());
                    };
                    let login = LoginState {
                        platform_id: fixture.platform_id,
                        nonce: planned.nonce.clone(),
                        target_link_uri: TARGET.into(),
                        deployment_id: Some(DEPLOYMENT.into()),
                        expires_at: now + chrono::Duration::seconds(TOKEN_TTL_SECS),
                    };
                    lti_launches::save_state(&fixture.db, &planned.state, &login, now).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| LtiBenchError::Join(e.to_string()))??;
    }
    Ok(())
}

fn jwks_fetches(platform: &LtiPlatform) -> usize {
    platform
        .requests()
        .iter()
        .filter(|r| r.is_jwks_request())
        .count()
}

/// The first launch again, its state long consumed: both paths must refuse it.
async fn replay(backend: &'static str, fixture: &Fixture) -> Result<Replay, LtiBenchError> {
    let form = fixture.form(0);
    let state = fixture.planned[0].state.as_str();
    let cx = fixture.context();
    let accepted = |path: &str| LtiBenchError::Replay {
        backend,
        detail: format!("a replayed launch was accepted by {path}"),
    };
    let validated_code = match launch::validate_launch(&cx, &form, Some(state), Utc::now()).await {
        Ok(_) => return Err(accepted("validate_launch")),
        Err(e) => e.code(),
    };
    let full_code = match launch::finish_launch(&cx, &form, Some(state), Utc::now()).await {
        Ok(_) => return Err(accepted("finish_launch")),
        Err(e) => e.code(),
    };
    Ok(Replay {
        backend,
        validated_code,
        full_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_count_rate_and_nearest_rank_percentiles() {
        let timing = Timing::of(vec![3000, 1000, 4000, 2000], 2.0);
        assert_eq!((timing.count, timing.per_sec), (4, 2.0));
        assert_eq!(
            (timing.p50_ms, timing.p99_ms, timing.max_ms),
            (2.0, 4.0, 4.0)
        );
        let empty = Timing::of(Vec::new(), 0.0);
        assert_eq!((empty.count, empty.per_sec, empty.max_ms), (0, 0.0, 0.0));
    }

    #[test]
    fn the_ratio_to_verification_is_throughput_over_throughput() {
        let verify = Timing::of(vec![100; 10], 1.0);
        let slower = Timing::of(vec![400; 10], 4.0);
        assert_eq!(verify.times(&verify), 1.0);
        assert_eq!(slower.times(&verify), 4.0);
        assert!(Timing::of(Vec::new(), 1.0).times(&verify).is_infinite());
    }

    #[test]
    fn planned_launches_cycle_through_the_students_with_fresh_states_and_nonces() {
        let pairs = vec![
            ("stu-1".to_string(), "cls-1".to_string()),
            ("stu-2".to_string(), "cls-2".to_string()),
        ];
        let planned = plan_launches(&pairs, 5);
        let users: Vec<&str> = planned.iter().map(|p| p.user.as_str()).collect();
        assert_eq!(users, ["stu-1", "stu-2", "stu-1", "stu-2", "stu-1"]);
        assert!(planned
            .iter()
            .all(|p| p.class.replace("cls", "stu") == p.user));
        let mut values: Vec<&str> = planned
            .iter()
            .flat_map(|p| [p.state.as_str(), p.nonce.as_str()])
            .collect();
        // 256 bits, base64url without padding.
        assert!(values.iter().all(|v| v.len() == 43), "{values:?}");
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), 10);
    }

    #[test]
    fn a_session_claim_set_names_the_student_class_and_district() {
        let planned = Planned {
            state: "s".into(),
            nonce: "n".into(),
            user: "stu-000007".into(),
            class: "cls-0001-002".into(),
        };
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let claims = session_claims("bench", 3, &planned, now);
        assert_eq!(claims["aud"], launch::SESSION_AUDIENCE);
        assert_eq!(claims["sub"], "stu-000007");
        assert_eq!(claims["exp"], 1_800_000_300_i64);
        let facts = &claims["rostergate"];
        assert_eq!(
            (&facts["district"], &facts["class"], &facts["user"]),
            (
                &json!("bench"),
                &json!("cls-0001-002"),
                &json!("stu-000007")
            )
        );
    }

    /// The whole benchmark, small, on SQLite: every phase measured, nothing fetched while
    /// timed, every launch accepted and resolved, the replay refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_phase_is_measured_and_a_replay_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let report = run_lti_benchmark(LtiOptions {
            launches: 12,
            concurrency: 3,
            students: 40,
            backends: vec![Backend::Sqlite],
            work_dir: work.path().to_path_buf(),
        })
        .await
        .unwrap();
        let phases: Vec<Phase> = report.runs.iter().map(|r| r.phase).collect();
        assert_eq!(phases, Phase::ALL);
        for run in &report.runs {
            assert_eq!((run.backend, run.timing.count), ("sqlite", 12), "{run:?}");
            assert_eq!(run.jwks_fetches, 0, "{run:?}");
        }
        assert_eq!(report.runs[0].vs_verify, 1.0);
        assert_eq!(
            report.replays,
            [Replay {
                backend: "sqlite",
                validated_code: "unknown_state",
                full_code: "unknown_state",
            }]
        );
        let table = report.to_string();
        assert!(
            table.contains("validated launch") && table.contains("x verify"),
            "{table}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["runs"][1]["phase"], "validated");
        assert!(json["runs"][1]["per_sec"].as_f64().unwrap() > 0.0);
    }
}
