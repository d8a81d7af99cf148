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

use crate::child::{run_child, ChildRun};
use crate::raw_load::{self, rate, RawLoadError, RawLoadResult};
use crate::scratch_db::{ScratchDb, ScratchDbError};

/// Seed of every generated bundle, so runs on different machines import the same data.
pub const BENCH_SEED: u64 = 0x5EED_2025;

/// District the importer child creates and imports into.
const DISTRICT_SLUG: &str = "bench";

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
    #[error(transparent)]
    ScratchDb(#[from] ScratchDbError),
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
        let counts = synthetic::write_bundle(&spec, &dir)
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
    let db = ScratchDb::create(admin_url).await?;
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
