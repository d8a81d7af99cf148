//! Baseline for the import benchmarks: the same CSV rows (a bundle's users.csv and
//! enrollments.csv; a score export's AssessmentResults.csv) loaded into bare keyed tables by
//! the database's own bulk loader (`COPY` for PostgreSQL, the `sqlite3` shell's `.import` for
//! SQLite). An importer can hardly beat this, so `import time / raw time` says how much its
//! validation, diffing and bookkeeping cost.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::child::{run_child, ChildRun};

/// Outcome of one timed raw load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RawLoadResult {
    /// Data rows loaded (of every file).
    pub rows: u64,
    /// Wall time of the load itself; table creation and the row check are excluded.
    pub seconds: f64,
    pub rows_per_sec: f64,
    /// Peak RSS of the loading process: the `sqlite3` child; `None` for PostgreSQL,
    /// whose server memory is not ours to measure.
    pub peak_rss_kib: Option<u64>,
}

impl RawLoadResult {
    fn new(rows: u64, seconds: f64, peak_rss_kib: Option<u64>) -> Self {
        Self {
            rows,
            seconds,
            rows_per_sec: rate(rows, seconds),
            peak_rss_kib,
        }
    }
}

pub fn rate(rows: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RawLoadError {
    #[error("cannot read {path}: {source}")]
    ReadCsv { path: PathBuf, source: csv::Error },
    #[error("{path} has no {column} column to key the raw table on")]
    NoKeyColumn { path: PathBuf, column: &'static str },
    #[error("{path} has two columns named {column} once made SQL identifiers")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot run sqlite3 (is it installed and on PATH?): {0}")]
    SqliteSpawn(io::Error),
    #[error("sqlite3 {step} failed ({status}); stderr: {stderr_tail}")]
    SqliteFailed {
        step: &'static str,
        status: String,
        stderr_tail: String,
    },
    #[error("PostgreSQL {step} failed: {source}")]
    Postgres {
        step: &'static str,
        source: sqlx::Error,
    },
    #[error("raw load stored {loaded} rows but the CSV files hold {expected}")]
    RowCountMismatch { expected: u64, loaded: u64 },
    #[error("raw load task panicked or was cancelled: {0}")]
    Join(String),
}

/// One CSV file of a folder and how it is loaded: its table, its primary key and the secondary
/// indexes a real query needs, built by the load as an import builds its own. Columns are named
/// as [`column_name`] derives them from the header.
#[derive(Debug, Clone, Copy)]
pub struct RawFile {
    pub file: &'static str,
    pub table: &'static str,
    pub key: &'static [&'static str],
    pub indexes: &'static [&'static str],
}

/// A OneRoster bundle's users and enrollments, indexed as a class's enrollments and a user's
/// are found.
pub const ONEROSTER: [RawFile; 2] = [
    RawFile {
        file: "users.csv",
        table: "raw_users",
        key: &["sourced_id"],
        indexes: &[],
    },
    RawFile {
        file: "enrollments.csv",
        table: "raw_enrollments",
        key: &["sourced_id"],
        indexes: &["class_sourced_id", "user_sourced_id"],
    },
];

/// PostgreSQL COPY is fed in chunks of this size: bounded memory, few round trips.
const COPY_CHUNK: usize = 64 * 1024;

/// One CSV file and the table it goes into.
#[derive(Debug, Clone)]
struct RawTable {
    file: PathBuf,
    table: &'static str,
    columns: Vec<String>,
    key: &'static [&'static str],
    indexes: &'static [&'static str],
    rows: u64,
}

impl RawTable {
    fn create_sql(&self, schema: Option<&str>) -> String {
        let mut columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("\"{c}\" TEXT"))
            .collect();
        let key: Vec<String> = self.key.iter().map(|c| format!("\"{c}\"")).collect();
        columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
        let mut sql = format!(
            "CREATE TABLE {} ({});",
            qualified(schema, self.table),
            columns.join(", ")
        );
        for column in self.indexes {
            sql += &format!(
                "\nCREATE INDEX \"{table}_{column}_idx\" ON {qualified} (\"{column}\");",
                table = self.table,
                qualified = qualified(schema, self.table),
            );
        }
        sql
    }

    fn copy_sql(&self, schema: &str) -> String {
        let columns: Vec<String> = self.columns.iter().map(|c| format!("\"{c}\"")).collect();
        format!(
            "COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)",
            qualified(Some(schema), self.table),
            columns.join(", ")
        )
    }
}

fn qualified(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(schema) => format!("\"{schema}\".\"{table}\""),
        None => format!("\"{table}\""),
    }
}

/// `sourcedId` -> `sourced_id`, `metadata.x` -> `metadata_x`, `TestRITScore` ->
/// `test_rit_score`: safe, unquoted-looking SQL identifiers derived from the CSV header (an
/// acronym stays one word).
pub fn column_name(header: &str) -> String {
    let chars: Vec<char> = header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .collect();
    let mut out = String::with_capacity(header.len() + 4);
    for (i, &ch) in chars.iter().enumerate() {
        if ch.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1);
            let word_starts = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(|n| n.is_ascii_lowercase()));
            if word_starts && !out.ends_with('_') {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

/// Reads each file's header and counts its data rows (untimed), so the load can be
/// checked for silently skipped rows.
fn inspect(dir: &Path, files: &[RawFile]) -> Result<Vec<RawTable>, RawLoadError> {
    files
        .iter()
        .map(|f| {
            let path = dir.join(f.file);
            let read_err = |source| RawLoadError::ReadCsv {
                path: path.clone(),
                source,
            };
            let mut reader = csv::Reader::from_path(&path).map_err(read_err)?;
            let columns: Vec<String> = reader
                .byte_headers()
                .map_err(read_err)?
                .iter()
                .map(|h| column_name(&String::from_utf8_lossy(h)))
                .collect();
            if let Some(&column) = f.key.iter().find(|k| !columns.iter().any(|c| c == *k)) {
                return Err(RawLoadError::NoKeyColumn { path, column });
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(column) = columns.iter().find(|c| !seen.insert(c.as_str())) {
                return Err(RawLoadError::DuplicateColumn {
                    path,
                    column: column.clone(),
                });
            }
            let mut record = csv::ByteRecord::new();
            let mut rows = 0;
            while reader.read_byte_record(&mut record).map_err(read_err)? {
                rows += 1;
            }
            Ok(RawTable {
                file: path,
                table: f.table,
                columns,
                key: f.key,
                indexes: f.indexes,
                rows,
            })
        })
        .collect()
}

fn expected_rows(tables: &[RawTable]) -> u64 {
    tables.iter().map(|t| t.rows).sum()
}

fn check_rows(expected: u64, loaded: u64) -> Result<(), RawLoadError> {
    if expected == loaded {
        Ok(())
    } else {
        Err(RawLoadError::RowCountMismatch { expected, loaded })
    }
}

/// Loads `files` of `bundle_dir` into a fresh SQLite file created in `work_dir` with the
/// `sqlite3` shell, timing only the `.import` run. The database file is removed afterwards.
pub fn load_sqlite(
    bundle_dir: &Path,
    files: &[RawFile],
    work_dir: &Path,
) -> Result<RawLoadResult, RawLoadError> {
    let tables = inspect(bundle_dir, files)?;
    std::fs::create_dir_all(work_dir).map_err(|source| RawLoadError::Io {
        context: "cannot create work folder",
        path: work_dir.to_path_buf(),
        source,
    })?;
    let db = absolute(&work_dir.join(format!("raw-{}.sqlite", uuid::Uuid::new_v4().simple())))?;
    let result = sqlite_load_into(bundle_dir, &db, &tables);
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    result
}

fn absolute(path: &Path) -> Result<PathBuf, RawLoadError> {
    std::path::absolute(path).map_err(|source| RawLoadError::Io {
        context: "cannot resolve path",
        path: path.to_path_buf(),
        source,
    })
}

fn sqlite_load_into(
    bundle_dir: &Path,
    db: &Path,
    tables: &[RawTable],
) -> Result<RawLoadResult, RawLoadError> {
    let schema: String = tables.iter().map(|t| t.create_sql(None) + "\n").collect();
    sqlite3(db, bundle_dir, "table creation", schema)?;

    // `.import` runs in its own transaction; relative names because the shell's
    // argument quoting is awkward for arbitrary paths.
    let mut script = String::from(".mode csv\n");
    for t in tables {
        let name = t.file.file_name().unwrap_or_default().to_string_lossy();
        script += &format!(".import --skip 1 {name} {}\n", t.table);
    }
    let run = sqlite3(db, bundle_dir, "import", script)?;

    let count_sql = format!(
        "SELECT {};\n",
        tables
            .iter()
            .map(|t| format!("(SELECT count(*) FROM \"{}\")", t.table))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    let counted = sqlite3(db, bundle_dir, "row count", count_sql)?;
    let loaded = String::from_utf8_lossy(&counted.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    check_rows(expected_rows(tables), loaded)?;
    Ok(RawLoadResult::new(
        loaded,
        run.seconds,
        Some(run.peak_rss_kib),
    ))
}

/// Runs `sqlite3 -bail -batch DB` in `cwd` with `script` on stdin. Anything on stderr
/// counts as failure: `.import` reports rejected rows there but still exits 0.
fn sqlite3(
    db: &Path,
    cwd: &Path,
    step: &'static str,
    script: String,
) -> Result<ChildRun, RawLoadError> {
    let mut cmd = Command::new("sqlite3");
    cmd.arg("-bail").arg("-batch").arg(db).current_dir(cwd);
    let run = run_child(&mut cmd, Some(script.into_bytes())).map_err(RawLoadError::SqliteSpawn)?;
    if run.status.success() && run.stderr_tail.trim().is_empty() {
        Ok(run)
    } else {
        Err(RawLoadError::SqliteFailed {
            step,
            status: run.status.to_string(),
            stderr_tail: run.stderr_tail,
        })
    }
}

/// Loads `files` of `bundle_dir` into keyed tables of a throwaway schema of `database_url`
/// with `COPY … FROM STDIN`, timing only the COPYs. The schema is dropped afterwards, also
/// when the load fails.
pub async fn load_postgres(
    bundle_dir: &Path,
    files: &'static [RawFile],
    database_url: &str,
) -> Result<RawLoadResult, RawLoadError> {
    let dir = bundle_dir.to_path_buf();
    // Counting millions of rows is blocking work; keep it off the async workers.
    let tables = tokio::task::spawn_blocking(move || inspect(&dir, files))
        .await
        .map_err(|e| RawLoadError::Join(e.to_string()))??;
    let mut conn = PgConnection::connect(database_url)
        .await
        .map_err(pg_err("connect"))?;
    let schema = format!("rostergate_raw_{}", uuid::Uuid::new_v4().simple());
    let result = pg_load_into(&mut conn, &schema, &tables).await;
    let dropped = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await;
    if let Err(e) = &dropped {
        tracing::warn!(%schema, error = %e, "could not drop raw-load schema");
    }
    let _ = conn.close().await;
    result
}

fn pg_err(step: &'static str) -> impl Fn(sqlx::Error) -> RawLoadError {
    move |source| RawLoadError::Postgres { step, source }
}

async fn pg_load_into(
    conn: &mut PgConnection,
    schema: &str,
    tables: &[RawTable],
) -> Result<RawLoadResult, RawLoadError> {
    let mut ddl = format!("CREATE SCHEMA \"{schema}\";\n");
    for t in tables {
        ddl += &t.create_sql(Some(schema));
        ddl.push('\n');
    }
    sqlx::raw_sql(&ddl)
        .execute(&mut *conn)
        .await
        .map_err(pg_err("table creation"))?;

    let started = Instant::now();
    let mut loaded = 0;
    for t in tables {
        loaded += copy_file(conn, &t.copy_sql(schema), &t.file).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    check_rows(expected_rows(tables), loaded)?;
    Ok(RawLoadResult::new(loaded, seconds, None))
}

/// Streams `path` into an open `COPY … FROM STDIN` in `COPY_CHUNK` pieces.
async fn copy_file(
    conn: &mut PgConnection,
    statement: &str,
    path: &Path,
) -> Result<u64, RawLoadError> {
    let io_err = |source| RawLoadError::Io {
        context: "cannot read CSV for COPY",
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut copy = conn
        .copy_in_raw(statement)
        .await
        .map_err(pg_err("COPY start"))?;
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        // A 64 KiB local read is short enough to do inline on the async worker.
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = copy.abort(e.to_string()).await;
                return Err(io_err(e));
            }
        };
        copy.send(&buf[..n]).await.map_err(pg_err("COPY data"))?;
    }
    copy.finish().await.map_err(pg_err("COPY finish"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rostergate::synthetic::{write_bundle, GeneratedCounts, SyntheticDistrict};

    fn bundle(students: usize) -> (tempfile::TempDir, GeneratedCounts) {
        let dir = tempfile::tempdir().unwrap();
        let spec = SyntheticDistrict { students, seed: 99 };
        let counts = write_bundle(&spec, dir.path()).unwrap();
        (dir, counts)
    }

    fn sqlite3_available() -> bool {
        Command::new("sqlite3")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn column_names_become_snake_case_identifiers() {
        assert_eq!(column_name("sourcedId"), "sourced_id");
        assert_eq!(column_name("dateLastModified"), "date_last_modified");
        assert_eq!(column_name("\u{feff}sourcedId"), "sourced_id");
        assert_eq!(column_name("metadata.address1"), "metadata_address1");
        assert_eq!(column_name("primary"), "primary");
        // MAP Growth headers: acronyms stay one word.
        assert_eq!(column_name("StudentID"), "student_id");
        assert_eq!(column_name("TestRITScore"), "test_rit_score");
        assert_eq!(column_name("Goal1RitScore"), "goal1_rit_score");
        assert_eq!(column_name("District_StateID"), "district_state_id");
        assert_eq!(column_name("NWEAStandard_Grade"), "nwea_standard_grade");
    }

    #[test]
    fn raw_tables_are_keyed_on_sourced_id_keep_every_column_and_index_enrollments_by_class_and_user(
    ) {
        let (dir, counts) = bundle(60);
        let tables = inspect(dir.path(), &ONEROSTER).unwrap();
        assert_eq!(tables[0].table, "raw_users");
        assert_eq!(tables[0].columns.len(), 18);
        assert_eq!(tables[0].rows, counts.users);
        assert_eq!(tables[1].rows, counts.enrollments);
        let sql = tables[1].create_sql(None);
        assert!(
            sql.starts_with(
                "CREATE TABLE \"raw_enrollments\" (\"sourced_id\" TEXT, \"status\" TEXT"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("\"end_date\" TEXT, PRIMARY KEY (\"sourced_id\"));"),
            "{sql}"
        );
        // A class's enrollments and a user's are found by index, as in the gateway's tables.
        for column in ["class_sourced_id", "user_sourced_id"] {
            assert!(
                sql.contains(&format!("ON \"raw_enrollments\" (\"{column}\");")),
                "{sql}"
            );
        }
        assert!(!tables[0].create_sql(None).contains("CREATE INDEX"));
    }

    #[test]
    fn sqlite_raw_load_stores_every_user_and_enrollment_row() {
        if !sqlite3_available() {
            println!("skipped: sqlite3 is not on PATH");
            return;
        }
        let (dir, counts) = bundle(700);
        let work = tempfile::tempdir().unwrap();
        let result = load_sqlite(dir.path(), &ONEROSTER, work.path()).unwrap();
        assert_eq!(result.rows, counts.users + counts.enrollments);
        assert!(result.seconds > 0.0 && result.rows_per_sec > 0.0);
        assert!(result.peak_rss_kib.is_some_and(|kib| kib > 0));
        // The temporary database is gone.
        assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    }

    #[test]
    fn sqlite_raw_load_fails_loudly_on_duplicate_sourced_ids() {
        if !sqlite3_available() {
            println!("skipped: sqlite3 is not on PATH");
            return;
        }
        let (dir, _) = bundle(30);
        let users = dir.path().join("users.csv");
        let text = std::fs::read_to_string(&users).unwrap();
        let first_row = text.lines().nth(1).unwrap().to_string();
        std::fs::write(&users, format!("{text}{first_row}\n")).unwrap();
        let work = tempfile::tempdir().unwrap();
        let err = load_sqlite(dir.path(), &ONEROSTER, work.path()).unwrap_err();
        assert!(
            matches!(err, RawLoadError::SqliteFailed { step: "import", .. }),
            "{err}"
        );
    }

    /// The test database URL, or `None` (with a printed reason) when unset or unreachable.
    async fn postgres_url() -> Option<String> {
        let Ok(url) = std::env::var("ROSTERGATE_TEST_POSTGRES_URL") else {
            println!("skipped: ROSTERGATE_TEST_POSTGRES_URL is unset");
            return None;
        };
        match PgConnection::connect(&url).await {
            Ok(conn) => {
                let _ = conn.close().await;
                Some(url)
            }
            Err(e) => {
                println!("skipped: PostgreSQL at ROSTERGATE_TEST_POSTGRES_URL unreachable: {e}");
                None
            }
        }
    }

    #[tokio::test]
    async fn postgres_raw_load_copies_every_row_and_drops_its_schema() {
        let Some(url) = postgres_url().await else {
            return;
        };
        let (dir, counts) = bundle(700);
        let before = raw_schemas(&url).await;
        let result = load_postgres(dir.path(), &ONEROSTER, &url).await.unwrap();
        assert_eq!(result.rows, counts.users + counts.enrollments);
        assert!(result.seconds > 0.0 && result.peak_rss_kib.is_none());
        assert_eq!(raw_schemas(&url).await, before);
    }

    async fn raw_schemas(url: &str) -> i64 {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rostergate_raw_%'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap()
    }
}
