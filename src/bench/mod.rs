//! Importer benchmark: generates synthetic districts, runs the real `rostergate` binary
//! as a child process against a fresh database per backend, and compares its wall time
//! with a raw bulk load of the same users and enrollments.
//!
//! The importer runs as a separate process so that its peak RSS (from `wait4`) is its
//! own and is not mixed with the generator's or this harness's memory.

pub mod generate;
pub mod raw_load;

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use generate::{GenerateError, GeneratedCounts, SyntheticDistrict};
use raw_load::{rate, RawLoadError, RawLoadResult};

/// Seed of every generated bundle, so runs on different machines import the same data.
pub const BENCH_SEED: u64 = 0x5EED_2025;

/// District the importer child creates and imports into.
const DISTRICT_SLUG: &str = "bench";

/// Bytes of child stderr kept for error messages.
const STDERR_TAIL_BYTES: usize = 4096;

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
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImportMeasurement {
    /// Sum of `created` over every entity type in the importer's JSON summary.
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_sec: f64,
    pub peak_rss_kib: u64,
}

/// One (district size, backend) measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRun {
    pub students: usize,
    pub backend: String,
    pub bundle: GeneratedCounts,
    pub generate_seconds: f64,
    pub import: ImportMeasurement,
    pub raw: RawLoadResult,
    /// `import.seconds / raw.seconds`: how many times slower than the bulk loader.
    pub ratio: f64,
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
            "{:>9}  {:<8}  {:>10}  {:>9}  {:>13}  {:>14}  {:>8}  {:>11}  {:>6}\n",
            "students",
            "backend",
            "rows",
            "import s",
            "import rows/s",
            "import RSS MiB",
            "raw s",
            "raw rows/s",
            "ratio"
        );
        for r in &self.runs {
            out += &format!(
                "{:>9}  {:<8}  {:>10}  {:>9.2}  {:>13.0}  {:>14.1}  {:>8.2}  {:>11.0}  {:>6.1}\n",
                r.students,
                r.backend,
                r.import.rows,
                r.import.seconds,
                r.import.rows_per_sec,
                r.import.peak_rss_kib as f64 / 1024.0,
                r.raw.seconds,
                r.raw.rows_per_sec,
                r.ratio
            );
        }
        out += "rows: rows the importer created (all files); raw rows/s: users + enrollments \
                only; import RSS: importer peak RSS; ratio: import s / raw s\n";
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
    #[error("PostgreSQL {step} failed: {source}")]
    Postgres {
        step: &'static str,
        source: sqlx::Error,
    },
    #[error("not a postgres:// URL with a host part: {0}")]
    PostgresUrl(String),
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
        for backend in &opts.backends {
            tracing::info!(students, backend = backend.name(), "benchmarking import");
            let (import, raw) = run_backend(&opts.exe, backend, &bundle_dir, &work_dir).await?;
            runs.push(BenchRun {
                students,
                backend: backend.name().to_string(),
                bundle,
                generate_seconds,
                ratio: ratio(import.seconds, raw.seconds),
                import,
                raw,
            });
        }
        // Large bundles are gigabytes; keep disk use flat across sizes.
        let _ = std::fs::remove_dir_all(&bundle_dir);
    }
    Ok(BenchReport {
        seed: BENCH_SEED,
        runs,
    })
}

fn ratio(import_seconds: f64, raw_seconds: f64) -> f64 {
    if raw_seconds > 0.0 {
        import_seconds / raw_seconds
    } else {
        f64::NAN
    }
}

fn io_err(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BenchError {
    let path = path.to_path_buf();
    move |source| BenchError::Io {
        context,
        path,
        source,
    }
}

/// Runs blocking work (file generation, child processes) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BenchError> + Send + 'static,
) -> Result<T, BenchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BenchError::Join(e.to_string()))?
}

async fn generate_bundle(
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
        let counts = generate::write_bundle(&spec, &dir)
            .map_err(|source| BenchError::Generate { students, source })?;
        Ok((counts, started.elapsed().as_secs_f64()))
    })
    .await
}

async fn run_backend(
    exe: &Path,
    backend: &Backend,
    bundle_dir: &Path,
    work_dir: &Path,
) -> Result<(ImportMeasurement, RawLoadResult), BenchError> {
    match backend {
        Backend::Sqlite => run_sqlite(exe, bundle_dir, work_dir).await,
        Backend::Postgres(admin_url) => run_postgres(exe, admin_url, bundle_dir).await,
    }
}

async fn run_sqlite(
    exe: &Path,
    bundle_dir: &Path,
    work_dir: &Path,
) -> Result<(ImportMeasurement, RawLoadResult), BenchError> {
    let db_dir = work_dir.join("sqlite");
    let _ = std::fs::remove_dir_all(&db_dir);
    std::fs::create_dir_all(&db_dir).map_err(io_err("cannot create SQLite folder", &db_dir))?;
    let db = db_dir.join("bench.db");
    // An empty file is a valid empty SQLite database, so the URL needs no `mode=rwc`.
    std::fs::File::create(&db).map_err(io_err("cannot create SQLite file", &db))?;
    let url = format!("sqlite://{}", db.display());

    let (exe, bundle, raw_dir) = (exe.to_path_buf(), bundle_dir.to_path_buf(), db_dir.clone());
    let result = blocking(move || {
        let import = run_importer(&exe, &url, &bundle)?;
        let raw =
            raw_load::load_sqlite(&bundle, &raw_dir).map_err(|source| BenchError::RawLoad {
                backend: "sqlite",
                source,
            })?;
        Ok((import, raw))
    })
    .await;
    let _ = std::fs::remove_dir_all(&db_dir);
    result
}

async fn run_postgres(
    exe: &Path,
    admin_url: &str,
    bundle_dir: &Path,
) -> Result<(ImportMeasurement, RawLoadResult), BenchError> {
    let db = BenchDatabase::create(admin_url).await?;
    let result = async {
        let (exe, url, bundle) = (exe.to_path_buf(), db.url.clone(), bundle_dir.to_path_buf());
        let import = blocking(move || run_importer(&exe, &url, &bundle)).await?;
        let raw = raw_load::load_postgres(bundle_dir, &db.url)
            .await
            .map_err(|source| BenchError::RawLoad {
                backend: "postgres",
                source,
            })?;
        Ok((import, raw))
    }
    .await;
    db.drop_database().await;
    result
}

/// A throwaway PostgreSQL database created through the admin URL.
struct BenchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(admin_url: &str) -> Result<Self, BenchError> {
        let name = format!(
            "rostergate_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let url = with_database(admin_url, &name)?;
        let mut admin = PgConnection::connect(admin_url)
            .await
            .map_err(pg_err("admin connect"))?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .map_err(pg_err("CREATE DATABASE"))?;
        let _ = admin.close().await;
        Ok(Self {
            admin_url: admin_url.to_string(),
            name,
            url,
        })
    }

    /// Best effort: a failed drop is logged, not returned, so it cannot hide the
    /// benchmark's own error.
    async fn drop_database(self) {
        // FORCE (PostgreSQL 13+) ends connections the importer may have leaked.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let outcome = match PgConnection::connect(&self.admin_url).await {
            Ok(mut admin) => {
                let dropped = sqlx::raw_sql(&sql).execute(&mut admin).await.map(|_| ());
                let _ = admin.close().await;
                dropped
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(database = %self.name, error = %e, "could not drop benchmark database");
        }
    }
}

fn pg_err(step: &'static str) -> impl FnOnce(sqlx::Error) -> BenchError {
    move |source| BenchError::Postgres { step, source }
}

/// `scheme://authority/olddb?query` -> `scheme://authority/{database}?query`.
fn with_database(url: &str, database: &str) -> Result<String, BenchError> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| BenchError::PostgresUrl(redact(url)))?
        + 3;
    let (head, rest) = url.split_at(scheme_end);
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = &before_query[..before_query.find('/').unwrap_or(before_query.len())];
    Ok(format!("{head}{authority}/{database}{query}"))
}

/// Hides the password of a URL for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if s < at => match url[s + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..s + 3 + colon], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// Creates the bench district, then times the import child.
fn run_importer(exe: &Path, url: &str, bundle: &Path) -> Result<ImportMeasurement, BenchError> {
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
    let run = run_step(exe, url, step, &import_args)?;
    let rows = created_rows(&run.stdout).map_err(|reason| BenchError::ImportOutput {
        step,
        reason,
        stdout_head: String::from_utf8_lossy(&run.stdout)
            .chars()
            .take(500)
            .collect(),
        stderr_tail: run.stderr_tail.clone(),
    })?;
    Ok(ImportMeasurement {
        rows,
        seconds: run.seconds,
        rows_per_sec: rate(rows, run.seconds),
        peak_rss_kib: run.peak_rss_kib,
    })
}

fn run_step(
    exe: &Path,
    url: &str,
    step: &'static str,
    args: &[&OsStr],
) -> Result<ChildRun, BenchError> {
    let mut cmd = Command::new(exe);
    cmd.arg("--database-url").arg(url).args(args);
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

/// Checks the importer's `--json` summary says `applied` and sums `counts.*.created`.
fn created_rows(stdout: &[u8]) -> Result<u64, String> {
    let summary = parse_summary(stdout)?;
    match summary.get("status").and_then(|s| s.as_str()) {
        Some("applied") => {}
        other => return Err(format!("status is {other:?}, expected \"applied\"")),
    }
    let counts = summary
        .get("counts")
        .and_then(|c| c.as_object())
        .ok_or("no \"counts\" object")?;
    counts
        .iter()
        .map(|(kind, c)| {
            c.get("created")
                .and_then(|n| n.as_u64())
                .ok_or_else(|| format!("counts.{kind}.created is missing or not a count"))
        })
        .sum()
}

/// The whole stdout as JSON, or else its last line that parses as a JSON object
/// (tolerates a stray log line before the summary).
fn parse_summary(stdout: &[u8]) -> Result<serde_json::Value, String> {
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

/// What a finished child process did.
#[derive(Debug)]
pub(crate) struct ChildRun {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Last `STDERR_TAIL_BYTES` of stderr, lossily decoded.
    pub stderr_tail: String,
    /// From just before spawn until the child was reaped.
    pub seconds: f64,
    /// The child's `ru_maxrss` from `wait4` (KiB on Linux).
    pub peak_rss_kib: u64,
}

/// Spawns `cmd` with piped stdio, feeds `stdin`, and reaps it with `wait4` to get its
/// own peak RSS (`Child::wait` discards the rusage). Pipes are drained on threads so
/// a chatty child cannot block on a full pipe.
pub(crate) fn run_child(cmd: &mut Command, stdin: Option<Vec<u8>>) -> io::Result<ChildRun> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let feeder = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default();
        // A child that exits without reading all input is not our error to report.
        std::thread::spawn(move || drop(pipe.write_all(&data)))
    });
    let stdout = child.stdout.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    });
    let stderr = child
        .stderr
        .take()
        .map(|pipe| std::thread::spawn(move || read_tail(pipe, STDERR_TAIL_BYTES)));
    let (status, usage) = wait4(child.id())?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let stderr_tail = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(ChildRun {
        status,
        stdout,
        stderr_tail,
        seconds,
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

/// Reads `pipe` to the end keeping only the last `limit` bytes.
fn read_tail(mut pipe: impl Read, limit: usize) -> String {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => kept.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        if kept.len() > 2 * limit {
            kept.drain(..kept.len() - limit);
        }
    }
    let start = kept.len().saturating_sub(limit);
    String::from_utf8_lossy(&kept[start..]).into_owned()
}

/// Blocks until `pid` exits and returns its status and resource usage.
fn wait4(pid: u32) -> io::Result<(ExitStatus, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("child pid out of range"))?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, so all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both out-pointers are valid for writes for the duration of the call.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn run_child_feeds_stdin_and_captures_output_status_and_peak_rss() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo oops >&2; exit 3"]);
        let run = run_child(&mut cmd, Some(b"hello".to_vec())).unwrap();
        assert_eq!(run.stdout, b"hello");
        assert_eq!(run.stderr_tail.trim(), "oops");
        assert_eq!(run.status.code(), Some(3));
        assert!(run.peak_rss_kib > 0 && run.seconds > 0.0);
    }

    #[test]
    fn peak_rss_is_the_childs_own() {
        // The shell holds a 64 MB string; this test process never does.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}",
        ]);
        let run = run_child(&mut cmd, None).unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "64000000");
        assert!(run.peak_rss_kib > 60_000, "{} KiB", run.peak_rss_kib);
    }

    #[test]
    fn stderr_tail_keeps_only_the_last_bytes() {
        let input: Vec<u8> = (0..20_000).map(|i| b'a' + (i % 26) as u8).collect();
        let tail = read_tail(&input[..], 100);
        assert_eq!(tail.as_bytes(), &input[input.len() - 100..]);
    }

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

    #[test]
    fn with_database_swaps_only_the_database_name() {
        let f = |u| with_database(u, "b").unwrap();
        assert_eq!(
            f("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            f("postgres://u:p@h/test?sslmode=disable"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(f("postgresql://h:5432"), "postgresql://h:5432/b");
        assert!(with_database("h:5432/test", "b").is_err());
    }

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
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
                },
                raw: RawLoadResult {
                    rows: 8500,
                    seconds: 0.5,
                    rows_per_sec: 17000.0,
                    peak_rss_kib: Some(4096),
                },
                ratio: 6.0,
            }],
        }
    }

    #[test]
    fn report_prints_one_table_line_per_run() {
        let table = sample_report().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("import rows/s") && lines[0].contains("ratio"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            ["1000", "sqlite", "9000", "3.00", "3000", "20.0", "0.50", "17000", "6.0"]
        );
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
    /// is given, then prints an import summary like the real `--json` output.
    const FAKE_EXE: &str = r#"#!/bin/sh
[ "$1" = "--database-url" ] || { echo "no --database-url" >&2; exit 2; }
url="$2"; shift 2
case "$url" in
  sqlite://*) [ -f "${url#sqlite://}" ] || { echo "no sqlite file $url" >&2; exit 2; } ;;
  postgres://*) if command -v psql >/dev/null; then psql -qAt "$url" -c 'select 1' >/dev/null || exit 2; fi ;;
esac
case "$*" in
  "district create --slug bench --name Bench --timezone America/Chicago") exit 0 ;;
  "import oneroster --district bench --json "*)
    [ -f "$6/manifest.csv" ] || { echo "no bundle at $6" >&2; exit 2; }
    users=$(($(wc -l < "$6/users.csv") - 1))
    enr=$(($(wc -l < "$6/enrollments.csv") - 1))
    echo "{\"status\":\"${FAKE_STATUS:-applied}\",\"counts\":{\"users\":{\"created\":$users,\"updated\":0},\"enrollments\":{\"created\":$enr}}}"
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
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
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
        assert!(run.import.peak_rss_kib > 0 && run.ratio > 0.0);
        // Bundle and databases are cleaned up.
        assert_eq!(
            std::fs::read_dir(work.path().join("bench"))
                .unwrap()
                .count(),
            0
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
