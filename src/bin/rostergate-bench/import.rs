//! Importer benchmark: generates synthetic districts, runs the real `rostergate` binary
//! as a child process against a fresh database per backend, and compares its wall time
//! with a raw bulk load of the same users and enrollments.
//!
//! The importer runs as a separate process so that its peak RSS is its own and is not
//! mixed with the generator's or this harness's memory.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use rostergate::synthetic::{self, GenerateError, GeneratedCounts, SyntheticDistrict};

use std::collections::BTreeMap;

use crate::child::{run_child, ChildRun};
use crate::delta::{self, Changes, DeltaCounts};
use crate::phases::{phase_log_env, read_phases, PhaseTime};
use crate::raw_load::{self, rate, RawLoadError, RawLoadResult};
use crate::read_hash::{self, median_by_seconds, ReadMeasurement};
use crate::scratch_db::{ScratchDb, ScratchDbError};

/// Seed of every generated bundle, so runs on different machines import the same data.
pub const BENCH_SEED: u64 = 0x5EED_2025;

/// The engine's phases, in the order it runs them (see `sync::engine`).
const PHASES: [&str; 7] = [
    "stage", "validate", "diff", "apply", "accounts", "coaching", "commit",
];

/// District the importer child creates and imports into.
pub(crate) const DISTRICT_SLUG: &str = "bench";

/// Database a benchmark run targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A new SQLite file per run.
    Sqlite,
    /// Admin URL (e.g. `postgres://postgres@127.0.0.1:5432/test`); each run creates
    /// and afterwards drops its own database on that server.
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// District sizes to run, in students.
    pub students: Vec<usize>,
    pub backends: Vec<Backend>,
    /// Bundles and SQLite files go here; each is removed once measured.
    pub work_dir: PathBuf,
    /// The `rostergate` binary to benchmark.
    pub exe: PathBuf,
}

/// The importer child's measurements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportMeasurement {
    /// Sum of `created` over every entity type in the importer's JSON summary.
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_sec: f64,
    pub peak_rss_kib: u64,
    /// Where the time went, as the engine logged it.
    pub phases: Vec<PhaseTime>,
}

/// A re-import's measurements: the same bundle again, or its 1 % delta.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReimportMeasurement {
    /// Records created, updated or deleted, over every type (checked against what was changed).
    pub changed: u64,
    pub seconds: f64,
    pub peak_rss_kib: u64,
    /// Where the time went, as the engine logged it.
    pub phases: Vec<PhaseTime>,
}

/// One (district size, backend) measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRun {
    pub students: usize,
    pub backend: String,
    pub bundle: GeneratedCounts,
    pub generate_seconds: f64,
    /// The first import, into an empty district.
    pub import: ImportMeasurement,
    /// The same bundle imported again.
    pub unchanged: ReimportMeasurement,
    /// The bundle with 1 % of its users and enrollments changed, removed or added.
    pub delta: ReimportMeasurement,
    pub delta_counts: DeltaCounts,
    pub raw: RawLoadResult,
    /// Reading and hashing the bundle, and reading it into records, without a database.
    pub read: ReadMeasurement,
    /// `import.seconds / raw.seconds`: how many times slower than the bulk loader.
    pub ratio: f64,
    /// `unchanged.seconds / read.hash_seconds`.
    pub unchanged_ratio: f64,
    /// `unchanged.seconds / read.hash_threads_seconds`: against the files hashed as the importer
    /// hashes them, on several threads.
    pub unchanged_threads_ratio: f64,
    /// `delta.seconds / unchanged.seconds`.
    pub delta_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub seed: u64,
    pub runs: Vec<BenchRun>,
}

impl BenchReport {
    /// Plain-text table, one line per run.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{:>9}  {:<8}  {:>10}  {:>8}  {:>7}  {:>9}  {:>9}  {:>8}  {:>10}  {:>8}  {:>11}  {:>8}  {:>8}  {:>10}  {:>8}\n",
            "students",
            "backend",
            "rows",
            "first s",
            "raw s",
            "first/raw",
            "unchanged",
            "hash s",
            "unch/hash",
            "hash∥ s",
            "unch/hash∥",
            "delta s",
            "parse s",
            "delta/unch",
            "peak MiB"
        );
        for r in &self.runs {
            let peak = r
                .import
                .peak_rss_kib
                .max(r.unchanged.peak_rss_kib)
                .max(r.delta.peak_rss_kib);
            out += &format!(
                "{:>9}  {:<8}  {:>10}  {:>8.2}  {:>7.2}  {:>9.1}  {:>9.3}  {:>8.3}  {:>10.2}  {:>8.3}  {:>11.2}  {:>8.2}  {:>8.2}  {:>10.2}  {:>8.1}\n",
                r.students,
                r.backend,
                r.import.rows,
                r.import.seconds,
                r.raw.seconds,
                r.ratio,
                r.unchanged.seconds,
                r.read.hash_seconds,
                r.unchanged_ratio,
                r.read.hash_threads_seconds,
                r.unchanged_threads_ratio,
                r.delta.seconds,
                r.read.parse_seconds,
                r.delta_ratio,
                peak as f64 / 1024.0
            );
        }
        out += "rows: records the first import created (all files); first s: first import into an empty \
                district; raw s: users and enrollments bulk-loaded (COPY / .import) into tables with their \
                key and the two enrollment indexes; unchanged: the same bundle again (median of 5 runs); \
                hash s: reading and hashing the bundle's files one after another, no database; hash∥ s: \
                the same on the importer's hashing threads; delta s: 1 % of users and enrollments changed, \
                removed or added; parse s: reading the bundle into records, no database; peak MiB: the \
                importer's highest peak RSS of the three imports\n";
        out += &self.phase_table();
        out
    }

    /// Where each import's time went, phase by phase as the engine logged it; `other` is the rest
    /// of the wall time (starting the process, migrations check, the lock, the run's records).
    pub fn phase_table(&self) -> String {
        let mut out = format!("\n{:>9}  {:<8}  {:<9}", "students", "backend", "import");
        for phase in PHASES {
            out += &format!("  {phase:>8}");
        }
        out += &format!("  {:>8}  {:>8}\n", "other", "total");
        for r in &self.runs {
            let imports = [
                ("first", &r.import.phases, r.import.seconds),
                ("unchanged", &r.unchanged.phases, r.unchanged.seconds),
                ("delta", &r.delta.phases, r.delta.seconds),
            ];
            for (name, phases, total) in imports {
                out += &format!("{:>9}  {:<8}  {:<9}", r.students, r.backend, name);
                let mut logged = 0.0;
                for phase in PHASES {
                    // A fold from +0.0: an empty `sum()` of floats is -0.0, printed "-0.00".
                    let seconds = phases
                        .iter()
                        .filter(|p| p.phase == phase)
                        .fold(0.0, |total, p| total + p.seconds);
                    logged += seconds;
                    out += &format!("  {seconds:>8.2}");
                }
                out += &format!("  {:>8.2}  {total:>8.2}\n", (total - logged).max(0.0));
            }
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_table())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("generating the {students}-student bundle failed: {source}")]
    Generate {
        students: usize,
        source: GenerateError,
    },
    #[error("raw {backend} load failed: {source}")]
    RawLoad {
        backend: &'static str,
        source: RawLoadError,
    },
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot start {exe}: {source}")]
    Spawn { exe: PathBuf, source: io::Error },
    #[error("`rostergate {step}` exited with {status}; stderr tail:\n{stderr_tail}")]
    ChildFailed {
        step: &'static str,
        status: String,
        stderr_tail: String,
    },
    #[error("`rostergate {step}` output rejected: {reason}; stdout: {stdout_head}; stderr tail:\n{stderr_tail}")]
    ImportOutput {
        step: &'static str,
        reason: String,
        stdout_head: String,
        stderr_tail: String,
    },
    #[error(transparent)]
    ScratchDb(#[from] ScratchDbError),
    #[error("writing the 1 % delta failed: {0}")]
    Delta(#[from] delta::DeltaError),
    #[error("reading the bundle without a database failed: {0}")]
    Read(#[from] read_hash::ReadError),
    #[error("background task panicked or was cancelled: {0}")]
    Join(String),
}

/// Runs every (student count, backend) combination in order and collects the results.
/// The first failure stops the run; its bundle is left in `work_dir` for inspection.
pub async fn run_benchmark(opts: BenchOptions) -> Result<BenchReport, BenchError> {
    std::fs::create_dir_all(&opts.work_dir)
        .map_err(io_err("cannot create work folder", &opts.work_dir))?;
    let work_dir = std::path::absolute(&opts.work_dir)
        .map_err(io_err("cannot resolve work folder", &opts.work_dir))?;
    let mut runs = Vec::new();
    for &students in &opts.students {
        let bundle_dir = work_dir.join(format!("bundle-{students}"));
        let (bundle, generate_seconds) = generate_bundle(students, &bundle_dir).await?;
        let delta_dir = work_dir.join(format!("bundle-{students}-delta"));
        let (from, to) = (bundle_dir.clone(), delta_dir.clone());
        let delta_counts =
            blocking::<_, BenchError>(move || Ok(delta::write_delta(&from, &to)?)).await?;
        let dir = bundle_dir.clone();
        let read = blocking::<_, BenchError>(move || Ok(read_hash::measure(&dir)?)).await?;
        let bundles = Bundles {
            first: &bundle_dir,
            delta: &delta_dir,
            delta_counts,
        };
        for backend in &opts.backends {
            tracing::info!(students, backend = backend.name(), "benchmarking import");
            let measured = run_backend(&opts.exe, backend, &bundles, &work_dir).await?;
            runs.push(BenchRun {
                students,
                backend: backend.name().to_string(),
                bundle,
                generate_seconds,
                ratio: ratio(measured.first.seconds, measured.raw.seconds),
                unchanged_ratio: ratio(measured.unchanged.seconds, read.hash_seconds),
                unchanged_threads_ratio: ratio(
                    measured.unchanged.seconds,
                    read.hash_threads_seconds,
                ),
                delta_ratio: ratio(measured.delta.seconds, measured.unchanged.seconds),
                import: measured.first,
                unchanged: measured.unchanged,
                delta: measured.delta,
                delta_counts,
                raw: measured.raw,
                read,
            });
        }
        // Large bundles are gigabytes; keep disk use flat across sizes.
        let _ = std::fs::remove_dir_all(&bundle_dir);
        let _ = std::fs::remove_dir_all(&delta_dir);
    }
    Ok(BenchReport {
        seed: BENCH_SEED,
        runs,
    })
}

pub(crate) fn ratio(measured: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        measured / baseline
    } else {
        f64::NAN
    }
}

/// The bundles one size is measured with.
struct Bundles<'a> {
    first: &'a Path,
    delta: &'a Path,
    delta_counts: DeltaCounts,
}

/// What one backend measured.
struct Measured {
    first: ImportMeasurement,
    unchanged: ReimportMeasurement,
    delta: ReimportMeasurement,
    raw: RawLoadResult,
}

pub(crate) fn io_err(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BenchError {
    let path = path.to_path_buf();
    move |source| BenchError::Io {
        context,
        path,
        source,
    }
}

/// Runs blocking work (file generation, child processes) off the async workers; `E` is the
/// calling benchmark's error.
pub(crate) async fn blocking<T: Send + 'static, E: From<BenchError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| E::from(BenchError::Join(e.to_string())))?
}

pub(crate) async fn generate_bundle(
    students: usize,
    dir: &Path,
) -> Result<(GeneratedCounts, f64), BenchError> {
    let dir = dir.to_path_buf();
    blocking(move || {
        // A leftover bundle of another seed or date must not be measured.
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let spec = SyntheticDistrict {
            students,
            seed: BENCH_SEED,
        };
        let counts = synthetic::write_bundle(&spec, &dir)
            .map_err(|source| BenchError::Generate { students, source })?;
        Ok((counts, started.elapsed().as_secs_f64()))
    })
    .await
}

async fn run_backend(
    exe: &Path,
    backend: &Backend,
    bundles: &Bundles<'_>,
    work_dir: &Path,
) -> Result<Measured, BenchError> {
    match backend {
        Backend::Sqlite => run_sqlite(exe, bundles, work_dir).await,
        Backend::Postgres(admin_url) => run_postgres(exe, admin_url, bundles).await,
    }
}

/// The three imports, one after the other on one database: first, unchanged, delta.
fn run_imports(
    exe: &Path,
    url: &str,
    first: &Path,
    delta: &Path,
    delta_counts: DeltaCounts,
) -> Result<(ImportMeasurement, ReimportMeasurement, ReimportMeasurement), BenchError> {
    let import = run_importer(exe, url, first)?;
    settle_page_cache(first)?;
    let mut unchanged = (0..UNCHANGED_RUNS)
        .map(|_| run_reimport(exe, url, first, None))
        .collect::<Result<Vec<_>, _>>()?;
    let peak_rss_kib = unchanged.iter().map(|u| u.peak_rss_kib).max().unwrap_or(0);
    let unchanged = ReimportMeasurement {
        peak_rss_kib,
        ..median_by_seconds(&mut unchanged, |u| u.seconds)
    };
    let delta = run_reimport(exe, url, delta, Some(delta_counts))?;
    Ok((import, unchanged, delta))
}

/// Brings the machine back to the state the floors were measured in before the unchanged
/// imports are timed: the first import's writes flushed (`sync`, where there is one) and the
/// bundle read back into the page cache. A first import of 1,000,000 students writes 11 GB; the
/// bundle's pages it pushed out of the cache, and the writeback it left, made the unchanged
/// imports after it read from disk and share the disk and cores with the flushing.
fn settle_page_cache(bundle: &Path) -> Result<(), BenchError> {
    // Best effort: without `sync` the kernel flushes in its own time, as before.
    let _ = Command::new("sync").status();
    let files = std::fs::read_dir(bundle).map_err(io_err("cannot list the bundle", bundle))?;
    for file in files {
        let path = file
            .map_err(io_err("cannot list the bundle", bundle))?
            .path();
        let mut reader =
            std::fs::File::open(&path).map_err(io_err("cannot read a bundle file", &path))?;
        io::copy(&mut reader, &mut io::sink())
            .map_err(io_err("cannot read a bundle file", &path))?;
    }
    Ok(())
}

/// Times the unchanged import is run: it takes tens of milliseconds, where one run's scheduling
/// moves the time by more than the difference being measured, so its median is reported.
pub(crate) const UNCHANGED_RUNS: usize = 5;

async fn run_sqlite(
    exe: &Path,
    bundles: &Bundles<'_>,
    work_dir: &Path,
) -> Result<Measured, BenchError> {
    let (db_dir, url) = fresh_sqlite(work_dir)?;

    let (exe, first, delta, raw_dir) = (
        exe.to_path_buf(),
        bundles.first.to_path_buf(),
        bundles.delta.to_path_buf(),
        db_dir.clone(),
    );
    let delta_counts = bundles.delta_counts;
    let result = blocking(move || {
        let (first_import, unchanged, delta) =
            run_imports(&exe, &url, &first, &delta, delta_counts)?;
        let raw =
            raw_load::load_sqlite(&first, &raw_load::ONEROSTER, &raw_dir).map_err(|source| {
                BenchError::RawLoad {
                    backend: "sqlite",
                    source,
                }
            })?;
        Ok(Measured {
            first: first_import,
            unchanged,
            delta,
            raw,
        })
    })
    .await;
    let _ = std::fs::remove_dir_all(&db_dir);
    result
}

/// A fresh, empty SQLite database in its own folder `work_dir/sqlite` (whatever was there is
/// removed): the folder, to remove once measured, and the database URL.
pub(crate) fn fresh_sqlite(work_dir: &Path) -> Result<(PathBuf, String), BenchError> {
    let db_dir = work_dir.join("sqlite");
    let _ = std::fs::remove_dir_all(&db_dir);
    std::fs::create_dir_all(&db_dir).map_err(io_err("cannot create SQLite folder", &db_dir))?;
    let db = db_dir.join("bench.db");
    // An empty file is a valid empty SQLite database, so the URL needs no `mode=rwc`.
    std::fs::File::create(&db).map_err(io_err("cannot create SQLite file", &db))?;
    Ok((db_dir, format!("sqlite://{}", db.display())))
}

async fn run_postgres(
    exe: &Path,
    admin_url: &str,
    bundles: &Bundles<'_>,
) -> Result<Measured, BenchError> {
    let db = ScratchDb::create(admin_url).await?;
    let result = async {
        let (exe, url, first, delta) = (
            exe.to_path_buf(),
            db.url.clone(),
            bundles.first.to_path_buf(),
            bundles.delta.to_path_buf(),
        );
        let delta_counts = bundles.delta_counts;
        let (first_import, unchanged, delta) =
            blocking(move || run_imports(&exe, &url, &first, &delta, delta_counts)).await?;
        let raw = raw_load::load_postgres(bundles.first, &raw_load::ONEROSTER, &db.url)
            .await
            .map_err(|source| BenchError::RawLoad {
                backend: "postgres",
                source,
            })?;
        Ok(Measured {
            first: first_import,
            unchanged,
            delta,
            raw,
        })
    }
    .await;
    db.drop_database().await;
    result
}

/// Creates the bench district, then times the import child.
pub(crate) fn run_importer(
    exe: &Path,
    url: &str,
    bundle: &Path,
) -> Result<ImportMeasurement, BenchError> {
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
    let import_args: [&OsStr; 6] = [
        "import".as_ref(),
        "oneroster".as_ref(),
        "--district".as_ref(),
        DISTRICT_SLUG.as_ref(),
        "--json".as_ref(),
        bundle.as_os_str(),
    ];
    let step = "import oneroster";
    let run = run_step_with_env(exe, url, &phase_log_env(), step, &import_args)?;
    let rows = created_rows(&run.stdout).map_err(|reason| rejected_output(step, &run, reason))?;
    Ok(ImportMeasurement {
        rows,
        seconds: run.seconds,
        rows_per_sec: rate(rows, run.seconds),
        peak_rss_kib: run.peak_rss_kib,
        phases: read_phases(&run.stderr_tail),
    })
}

/// Imports `bundle` into the bench district again and checks the report counts exactly what
/// changed: nothing (`expected` `None`), or the delta's users and enrollments and nothing else.
fn run_reimport(
    exe: &Path,
    url: &str,
    bundle: &Path,
    expected: Option<DeltaCounts>,
) -> Result<ReimportMeasurement, BenchError> {
    let import_args: [&OsStr; 6] = [
        "import".as_ref(),
        "oneroster".as_ref(),
        "--district".as_ref(),
        DISTRICT_SLUG.as_ref(),
        "--json".as_ref(),
        bundle.as_os_str(),
    ];
    let step = if expected.is_some() {
        "import oneroster (1 % delta)"
    } else {
        "import oneroster (unchanged)"
    };
    let run = run_step_with_env(exe, url, &phase_log_env(), step, &import_args)?;
    let rejected = |reason: String| rejected_output(step, &run, reason);
    let counts = applied_counts(&run.stdout).map_err(rejected)?;
    let mut changed = 0;
    for (kind, got) in &counts {
        let want = match (expected, kind.as_str()) {
            (Some(delta), "users") => delta.users,
            (Some(delta), "enrollments") => delta.enrollments,
            _ => Changes::default(),
        };
        if *got != want {
            return Err(rejected(format!(
                "counts.{kind} is {got:?}, expected {want:?}"
            )));
        }
        changed += got.created + got.updated + got.deleted;
    }
    Ok(ReimportMeasurement {
        changed,
        seconds: run.seconds,
        peak_rss_kib: run.peak_rss_kib,
        phases: read_phases(&run.stderr_tail),
    })
}

/// Checks the importer's `--json` report says `applied` and returns what it created, updated
/// and deleted per type.
fn applied_counts(stdout: &[u8]) -> Result<BTreeMap<String, Changes>, String> {
    applied_summary_counts(stdout)?
        .iter()
        .map(|(kind, c)| {
            let count = |field: &str| {
                c.get(field)
                    .and_then(|n| n.as_u64())
                    .ok_or_else(|| format!("counts.{kind}.{field} is missing or not a count"))
            };
            Ok((
                kind.clone(),
                Changes {
                    created: count("created")?,
                    updated: count("updated")?,
                    deleted: count("deleted")?,
                },
            ))
        })
        .collect()
}

pub(crate) fn run_step(
    exe: &Path,
    url: &str,
    step: &'static str,
    args: &[&OsStr],
) -> Result<ChildRun, BenchError> {
    run_step_with_env(exe, url, &[], step, args)
}

/// As [`run_step`], with environment variables added to the child's.
pub(crate) fn run_step_with_env(
    exe: &Path,
    url: &str,
    env: &[(&str, &OsStr)],
    step: &'static str,
    args: &[&OsStr],
) -> Result<ChildRun, BenchError> {
    let mut cmd = Command::new(exe);
    cmd.arg("--database-url")
        .arg(url)
        .args(args)
        .envs(env.iter().copied());
    let run = run_child(&mut cmd, None).map_err(|source| BenchError::Spawn {
        exe: exe.to_path_buf(),
        source,
    })?;
    if !run.status.success() {
        return Err(BenchError::ChildFailed {
            step,
            status: run.status.to_string(),
            stderr_tail: run.stderr_tail,
        });
    }
    Ok(run)
}

/// Checks the importer's (or a pull's) `--json` report says `applied` and sums
/// `counts.*.created`.
pub(crate) fn created_rows(stdout: &[u8]) -> Result<u64, String> {
    applied_summary_counts(stdout)?
        .iter()
        .map(|(kind, c)| {
            c.get("created")
                .and_then(|n| n.as_u64())
                .ok_or_else(|| format!("counts.{kind}.created is missing or not a count"))
        })
        .sum()
}

/// The `counts` object of a `--json` report, once the report says `applied`.
fn applied_summary_counts(
    stdout: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut summary = parse_summary(stdout)?;
    match summary.get("status").and_then(|s| s.as_str()) {
        Some("applied") => {}
        other => return Err(format!("status is {other:?}, expected \"applied\"")),
    }
    match summary.get_mut("counts").map(serde_json::Value::take) {
        Some(serde_json::Value::Object(counts)) => Ok(counts),
        _ => Err("no \"counts\" object".into()),
    }
}

/// A child's report that did not say what the benchmark expected, with the start of its stdout
/// and the end of its stderr.
pub(crate) fn rejected_output(step: &'static str, run: &ChildRun, reason: String) -> BenchError {
    BenchError::ImportOutput {
        step,
        reason,
        stdout_head: String::from_utf8_lossy(&run.stdout)
            .chars()
            .take(500)
            .collect(),
        stderr_tail: run.stderr_tail.clone(),
    }
}

/// The whole stdout as JSON, or else its last line that parses as a JSON object
/// (tolerates a stray log line before the summary).
pub(crate) fn parse_summary(stdout: &[u8]) -> Result<serde_json::Value, String> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(stdout) {
        return Ok(value);
    }
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
        .find(|v| v.is_object())
        .ok_or_else(|| "stdout holds no JSON object".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, PgConnection};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_rows_sums_created_over_every_type() {
        let out = br#"{"status":"applied","counts":{"users":{"created":7,"updated":1},"enrollments":{"created":30,"deleted":0},"orgs":{"created":2}}}"#;
        assert_eq!(created_rows(out), Ok(39));
        let with_log = b"2025-01-01 INFO starting\n{\"status\":\"applied\",\"counts\":{\"users\":{\"created\":1}}}\n";
        assert_eq!(created_rows(with_log), Ok(1));
    }

    #[test]
    fn created_rows_rejects_an_import_that_was_not_applied() {
        let held = br#"{"status":"held","counts":{"users":{"created":7}}}"#;
        assert!(created_rows(held).unwrap_err().contains("held"));
        assert!(created_rows(br#"{"status":"applied"}"#).is_err());
        assert!(created_rows(b"not json").is_err());
    }

    fn sample_report() -> BenchReport {
        BenchReport {
            seed: BENCH_SEED,
            runs: vec![BenchRun {
                students: 1000,
                backend: "sqlite".into(),
                bundle: GeneratedCounts::default(),
                generate_seconds: 0.1,
                import: ImportMeasurement {
                    rows: 9000,
                    seconds: 3.0,
                    rows_per_sec: 3000.0,
                    peak_rss_kib: 20 * 1024,
                    phases: vec![
                        PhaseTime {
                            phase: "stage".into(),
                            seconds: 1.0,
                        },
                        PhaseTime {
                            phase: "coaching".into(),
                            seconds: 1.5,
                        },
                    ],
                },
                unchanged: ReimportMeasurement {
                    changed: 0,
                    seconds: 0.6,
                    peak_rss_kib: 18 * 1024,
                    phases: Vec::new(),
                },
                delta: ReimportMeasurement {
                    changed: 170,
                    seconds: 0.63,
                    peak_rss_kib: 22 * 1024,
                    phases: Vec::new(),
                },
                delta_counts: DeltaCounts::default(),
                raw: RawLoadResult {
                    rows: 8500,
                    seconds: 0.5,
                    rows_per_sec: 17000.0,
                    peak_rss_kib: Some(4096),
                },
                read: ReadMeasurement {
                    bytes: 750_000,
                    hash_seconds: 0.5,
                    hash_threads_seconds: 0.4,
                    hash_threads: 2,
                    records: 9000,
                    parse_seconds: 0.9,
                },
                ratio: 6.0,
                unchanged_ratio: 1.2,
                unchanged_threads_ratio: 1.5,
                delta_ratio: 1.05,
            }],
        }
    }

    #[test]
    fn report_prints_one_table_line_per_run() {
        let table = sample_report().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("first/raw") && lines[0].contains("delta/unch"));
        assert!(lines[0].contains("unch/hash∥"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "1000", "sqlite", "9000", "3.00", "0.50", "6.0", "0.600", "0.500", "1.20", "0.400",
                "1.50", "0.63", "0.90", "1.05", "22.0"
            ]
        );
    }

    #[test]
    fn phase_table_gives_each_import_its_phases_and_the_unlogged_rest() {
        let table = sample_report().phase_table();
        let lines: Vec<&str> = table.lines().filter(|l| !l.is_empty()).collect();
        assert!(lines[0].contains("stage") && lines[0].contains("other"));
        let first: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            first,
            [
                "1000", "sqlite", "first", "1.00", "0.00", "0.00", "0.00", "0.00", "1.50", "0.00",
                "0.50", "3.00"
            ]
        );
        assert!(lines[2].contains("unchanged") && lines[2].ends_with("0.60"));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn report_serializes_to_json_with_nested_measurements() {
        let json: serde_json::Value =
            serde_json::from_str(&sample_report().to_json().unwrap()).unwrap();
        assert_eq!(json["runs"][0]["import"]["peak_rss_kib"], 20480);
        assert_eq!(json["runs"][0]["raw"]["rows"], 8500);
        assert_eq!(json["runs"][0]["ratio"], 6.0);
    }

    /// A stand-in for the rostergate binary: checks the arguments and the database it
    /// is given, then prints an import summary like the real `--json` output: everything
    /// created the first time, then what differs from the bundle imported before (by
    /// sourcedId and line, as the importer's hashes would tell).
    const FAKE_EXE: &str = r#"#!/bin/sh
[ "$1" = "--database-url" ] || { echo "no --database-url" >&2; exit 2; }
url="$2"; shift 2
case "$url" in
  sqlite://*) [ -f "${url#sqlite://}" ] || { echo "no sqlite file $url" >&2; exit 2; } ;;
  postgres://*) if command -v psql >/dev/null; then psql -qAt "$url" -c 'select 1' >/dev/null || exit 2; fi ;;
esac
state="${TMPDIR:-/tmp}/fake-rostergate-$(printf %s "$url" | cksum | cut -d' ' -f1)"
changes() {
  awk -F, 'NR == FNR { if (FNR > 1) old[$1] = $0; next }
    FNR > 1 { if (!($1 in old)) c++; else if (old[$1] != $0) u++; seen[$1] = 1 }
    END { for (k in old) if (!(k in seen)) d++;
      printf "{\"created\":%d,\"updated\":%d,\"deleted\":%d}", c, u, d }' "$1" "$2"
}
case "$*" in
  "district create --slug bench --name Bench --timezone America/Chicago") rm -f "$state"; exit 0 ;;
  "import oneroster --district bench --json "*)
    [ -f "$6/manifest.csv" ] || { echo "no bundle at $6" >&2; exit 2; }
    if [ -f "$state" ]; then
      before=$(cat "$state")
      echo "{\"status\":\"${FAKE_STATUS:-applied}\",\"counts\":{\"users\":$(changes "$before/users.csv" "$6/users.csv"),\"enrollments\":$(changes "$before/enrollments.csv" "$6/enrollments.csv")}}"
    else
      users=$(($(wc -l < "$6/users.csv") - 1))
      enr=$(($(wc -l < "$6/enrollments.csv") - 1))
      echo "{\"status\":\"${FAKE_STATUS:-applied}\",\"counts\":{\"users\":{\"created\":$users,\"updated\":0},\"enrollments\":{\"created\":$enr}}}"
    fi
    printf %s "$6" > "$state"
    ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
"#;

    fn fake_exe(dir: &Path, body: &str) -> PathBuf {
        let exe = dir.join("fake-rostergate");
        std::fs::write(&exe, body).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread may fork while the file is still open for writing
        // ("text file busy"); wait until it can be executed.
        for _ in 0..100 {
            match Command::new(&exe).output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => break,
            }
        }
        exe
    }

    fn expected_import_rows(report: &BenchReport) -> u64 {
        let b = &report.runs[0].bundle;
        b.users + b.enrollments
    }

    #[tokio::test]
    async fn sqlite_benchmark_runs_the_importer_child_and_the_raw_load() {
        if Command::new("sqlite3").arg("-version").output().is_err() {
            println!("skipped: sqlite3 is not on PATH");
            return;
        }
        let work = tempfile::tempdir().unwrap();
        let exe = fake_exe(work.path(), FAKE_EXE);
        let opts = BenchOptions {
            students: vec![300],
            backends: vec![Backend::Sqlite],
            work_dir: work.path().join("bench"),
            exe,
        };
        let report = run_benchmark(opts).await.unwrap();
        assert_eq!(report.runs.len(), 1);
        let run = &report.runs[0];
        assert_eq!(run.backend, "sqlite");
        assert_eq!(run.import.rows, expected_import_rows(&report));
        assert_eq!(run.raw.rows, run.import.rows);
        assert!(run.ratio > 0.0);
        // The re-imports were checked against what changed: nothing, then the delta.
        assert_eq!(run.unchanged.changed, 0);
        let delta = run.delta_counts;
        assert_eq!(
            run.delta.changed,
            [delta.users, delta.enrollments]
                .iter()
                .map(|c| c.created + c.updated + c.deleted)
                .sum::<u64>()
        );
        assert!(delta.users.updated > 0 && delta.enrollments.deleted > 0);
        assert!(run.read.hash_seconds > 0.0 && run.read.records >= run.import.rows);
        assert!(run.unchanged_ratio > 0.0 && run.delta_ratio > 0.0);
        // Bundle and databases are cleaned up.
        assert_eq!(
            std::fs::read_dir(work.path().join("bench"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn a_reimport_that_counts_changes_that_were_not_made_fails_the_benchmark() {
        let work = tempfile::tempdir().unwrap();
        let body = FAKE_EXE.replacen(
            "changes() {\n",
            "changes() {\n  printf '{\"created\":0,\"updated\":1,\"deleted\":0}'; return\n",
            1,
        );
        let opts = BenchOptions {
            students: vec![10],
            backends: vec![Backend::Sqlite],
            work_dir: work.path().join("bench"),
            exe: fake_exe(work.path(), &body),
        };
        let err = run_benchmark(opts).await.unwrap_err();
        assert!(
            matches!(
                err,
                BenchError::ImportOutput {
                    step: "import oneroster (unchanged)",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("updated: 1, deleted: 0 }, expected"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_failing_importer_is_reported_with_its_stderr() {
        let work = tempfile::tempdir().unwrap();
        let exe = fake_exe(
            work.path(),
            "#!/bin/sh\necho 'migration 7 failed: disk full' >&2\nexit 1\n",
        );
        let opts = BenchOptions {
            students: vec![10],
            backends: vec![Backend::Sqlite],
            work_dir: work.path().join("bench"),
            exe,
        };
        let err = run_benchmark(opts).await.unwrap_err();
        assert!(
            matches!(
                err,
                BenchError::ChildFailed {
                    step: "district create",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("disk full"), "{err}");
    }

    #[tokio::test]
    async fn an_import_that_is_not_applied_fails_the_benchmark() {
        let work = tempfile::tempdir().unwrap();
        let body = FAKE_EXE.replacen("#!/bin/sh\n", "#!/bin/sh\nFAKE_STATUS=held\n", 1);
        let exe = fake_exe(work.path(), &body);
        let opts = BenchOptions {
            students: vec![10],
            backends: vec![Backend::Sqlite],
            work_dir: work.path().join("bench"),
            exe,
        };
        let err = run_benchmark(opts).await.unwrap_err();
        assert!(matches!(err, BenchError::ImportOutput { .. }), "{err}");
    }

    #[tokio::test]
    async fn postgres_benchmark_uses_a_fresh_database_and_drops_it() {
        let Ok(url) = std::env::var("ROSTERGATE_TEST_POSTGRES_URL") else {
            println!("skipped: ROSTERGATE_TEST_POSTGRES_URL is unset");
            return;
        };
        let Ok(mut admin) = PgConnection::connect(&url).await else {
            println!("skipped: PostgreSQL at ROSTERGATE_TEST_POSTGRES_URL unreachable");
            return;
        };
        let count_sql = "SELECT count(*) FROM pg_database WHERE datname LIKE 'rostergate_bench_%'";
        let before: i64 = sqlx::query_scalar(count_sql)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let work = tempfile::tempdir().unwrap();
        let opts = BenchOptions {
            students: vec![300],
            backends: vec![Backend::Postgres(url.clone())],
            work_dir: work.path().join("bench"),
            exe: fake_exe(work.path(), FAKE_EXE),
        };
        let report = run_benchmark(opts).await.unwrap();
        let run = &report.runs[0];
        assert_eq!(run.backend, "postgres");
        assert_eq!(run.raw.rows, expected_import_rows(&report));
        assert_eq!(run.raw.peak_rss_kib, None);
        let after: i64 = sqlx::query_scalar(count_sql)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(after, before);
    }
}
