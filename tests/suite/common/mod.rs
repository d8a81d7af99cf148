//! Test harness: the real server on 127.0.0.1:0 against a fresh database per test, on SQLite
//! and, when reachable, PostgreSQL (a new database per test).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use rostergate::config::{Overrides, Settings};
use rostergate::startup::Application;
use serde_json::Value;

/// Runs the body once per available backend, each time against a fresh app and database.
#[macro_export]
macro_rules! on_every_backend {
    ($name:ident, |$app:ident| $body:block) => {
        #[tokio::test]
        async fn $name() {
            for backend in common::backends().await {
                eprintln!("{} on {:?}", stringify!($name), backend);
                let $app = common::spawn_app(backend).await;
                $body
            }
        }
    };
    ($name:ident, with $env:expr, |$app:ident| $body:block) => {
        #[tokio::test]
        async fn $name() {
            for backend in common::backends().await {
                eprintln!("{} on {:?}", stringify!($name), backend);
                let $app = common::spawn_app_with(backend, $env).await;
                $body
            }
        }
    };
}

pub const OPERATOR_TOKEN: &str = "operator-token-for-tests-0123456789";

/// The record types of a whole bundle such as [`school`], in dependency order, as reports name
/// them.
pub const BUNDLE_KINDS: [&str; 6] = [
    "orgs",
    "academicSessions",
    "courses",
    "classes",
    "users",
    "enrollments",
];
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends this run tests: SQLite always; PostgreSQL when it answers (set
/// ROSTERGATE_TEST_POSTGRES_URL to choose the server; ROSTERGATE_TEST_REQUIRE_POSTGRES=1 turns a
/// skip into a failure, as CI does).
pub async fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    let url = postgres_admin_url();
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&url)
        .await
    {
        Ok(pool) => {
            pool.close().await;
            out.push(Backend::Postgres);
        }
        Err(e) => {
            if std::env::var("ROSTERGATE_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("PostgreSQL is required for this run but unreachable at {url}: {e}");
            }
            eprintln!(
                "skipping PostgreSQL: unreachable at {url} ({e}); set ROSTERGATE_TEST_POSTGRES_URL"
            );
        }
    }
    out
}

fn postgres_admin_url() -> String {
    std::env::var("ROSTERGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_string())
}

/// A fresh, empty database; dropped (PostgreSQL) or deleted (SQLite) with the value.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                // A file that does not exist yet, in a folder that does not exist yet.
                url: format!("sqlite://{}", dir.path().join("db/rostergate.db").display()),
                backend,
                pg_name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("rg_test_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&admin).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let url = match admin.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => panic!("bad PostgreSQL URL {admin}"),
                };
                TestDb {
                    url,
                    backend,
                    pg_name: Some(name),
                    _dir: dir,
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop needs no async context: psql is on every machine that runs PostgreSQL here,
            // and a leftover test database is harmless if it is not.
            let admin = postgres_admin_url();
            let _ = std::process::Command::new("psql")
                .arg(&admin)
                .arg("-qc")
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub data_dir: tempfile::TempDir,
}

pub fn settings_for(db_url: &str, data_dir: &Path) -> Settings {
    settings_with(db_url, data_dir, &[])
}

/// As [`settings_for`], with more `ROSTERGATE_*` variables set (they win over the defaults).
pub fn settings_with(db_url: &str, data_dir: &Path, extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![
        ("ROSTERGATE_DATABASE_URL".to_string(), db_url.to_string()),
        ("ROSTERGATE_BIND".to_string(), "127.0.0.1:0".to_string()),
        (
            "ROSTERGATE_DATA_DIR".to_string(),
            data_dir.display().to_string(),
        ),
        (
            "ROSTERGATE_OPERATOR_TOKEN".to_string(),
            OPERATOR_TOKEN.to_string(),
        ),
        ("ROSTERGATE_SECRET_KEY".to_string(), MASTER_KEY.to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load_from(Path::new("/nonexistent"), &vars, &Overrides::default()).unwrap()
}

/// An HTTP client for tests that talk to a gateway they started themselves (reqwest is built
/// without a TLS crypto provider: the gateway's one is installed first).
pub fn http_client() -> reqwest::Client {
    rostergate::outbound::tls::install_crypto_provider();
    reqwest::Client::new()
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// As [`spawn_app`], with more `ROSTERGATE_*` variables (e.g. tighter auth limits).
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    // reqwest is built without a TLS crypto provider: the gateway's one is installed.
    rostergate::outbound::tls::install_crypto_provider();
    let db = TestDb::new(backend).await;
    let data_dir = tempfile::tempdir().unwrap();
    let app = Application::build(settings_with(&db.url, data_dir.path(), extra))
        .await
        .expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        data_dir,
    }
}

/// Sends a request; the status and the JSON body (null when there is none).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        answer(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    /// Every event of `district`, oldest first, from the events API.
    pub async fn events(&self, district: &str) -> Vec<Value> {
        let (status, body) = self
            .get(
                &format!("/api/v1/districts/{district}/events?limit=10000"),
                OPERATOR_TOKEN,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        answer(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    pub async fn post_bytes(&self, path: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
        let request = self.client.post(self.url(path)).bearer_auth(token);
        answer(request.header("Content-Type", "application/zip").body(body)).await
    }

    /// Takes `district`'s sync lock as another sync would: the district is busy until the lock
    /// is released (or dropped).
    pub async fn hold_sync_lock(&self, district: &str) -> rostergate::store::locks::DistrictLock {
        let db = rostergate::store::Db::connect(&self.db.url).await.unwrap();
        let district = rostergate::store::districts::get(&db, district)
            .await
            .unwrap();
        rostergate::store::locks::try_lock(&db, district.id, "another-run")
            .await
            .unwrap()
            .expect("the district is free")
    }

    pub async fn create_district(&self, slug: &str) {
        self.create_district_with(slug, serde_json::json!({})).await
    }

    pub async fn create_district_with(&self, slug: &str, settings: Value) {
        let (status, body) = self
            .post_json(
                "/api/v1/districts",
                OPERATOR_TOKEN,
                &serde_json::json!({
                    "slug": slug, "name": format!("{slug} district"), "timezone": "America/Chicago", "settings": settings
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Creates a client with these scopes and returns a token obtained through /oauth/token.
    pub async fn token_for(&self, district: &str, scopes: &[&str]) -> String {
        let (status, client) = self
            .post_json(
                &format!("/api/v1/districts/{district}/clients"),
                OPERATOR_TOKEN,
                &serde_json::json!({ "name": "test", "scopes": scopes }),
            )
            .await;
        assert_eq!(status, 201, "{client}");
        let r = self
            .client
            .post(self.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client["client_id"].as_str().unwrap()),
                ("client_secret", client["client_secret"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn import(&self, district: &str, token: &str, bundle: &Bundle) -> (u16, Value) {
        self.post_bytes(
            &format!("/api/v1/districts/{district}/imports/oneroster"),
            token,
            bundle.zip(),
        )
        .await
    }
}

/// A OneRoster CSV bundle built in memory: file name → contents.
#[derive(Clone, Default)]
pub struct Bundle {
    pub files: Vec<(String, String)>,
}

impl Bundle {
    pub fn with(mut self, name: &str, contents: &str) -> Bundle {
        self.files.retain(|(n, _)| n != name);
        self.files.push((name.to_string(), contents.to_string()));
        self
    }

    pub fn without(mut self, name: &str) -> Bundle {
        self.files.retain(|(n, _)| n != name);
        self
    }

    pub fn get(&self, name: &str) -> &str {
        &self.files.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Reads a bundle folder (the shipped sample).
    pub fn from_dir(dir: &Path) -> Bundle {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "csv") {
                files.push((
                    path.file_name().unwrap().to_str().unwrap().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
        files.sort();
        Bundle { files }
    }

    pub fn zip(&self) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, contents) in &self.files {
            writer
                .start_file(name.as_str(), zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(contents.as_bytes()).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    pub fn write_dir(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        for (name, contents) in &self.files {
            std::fs::write(dir.join(name), contents).unwrap();
        }
        dir.to_path_buf()
    }
}

/// The `rostergate` binary on one database, run from `dir`, logging only errors.
pub fn rostergate_command(db_url: &str, dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rostergate"));
    command
        .args(["--database-url", db_url])
        .current_dir(dir)
        .env_remove("ROSTERGATE_DATABASE_URL")
        .env("ROSTERGATE_LOG__FILTER", "error");
    command
}

/// The master key every gateway of the harness runs with, in-process or as a child process.
pub const MASTER_KEY: &str = "test-secret-key-that-is-long-enough-000";

/// `rostergate …` as a gateway the tests share keys with: the harness's master key and operator
/// token, its data under `dir/data`.
pub fn gateway_command(db_url: &str, dir: &Path) -> std::process::Command {
    let mut command = rostergate_command(db_url, dir);
    command
        .env("ROSTERGATE_SECRET_KEY", MASTER_KEY)
        .env("ROSTERGATE_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("ROSTERGATE_DATA_DIR", dir.join("data"));
    command
}

/// Runs a command that must succeed; its output.
pub fn run_ok(command: &mut std::process::Command) -> std::process::Output {
    let out = command.output().expect("the binary runs");
    assert!(out.status.success(), "{command:?}: {}", printed(&out));
    out
}

/// A command's exit code and output, for assertion messages.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command's stdout as the one JSON object it must be.
pub fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", printed(out)))
}

pub fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oneroster-1.1-sample")
}

pub const MANIFEST_BULK: &str = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.orgs,bulk\nfile.academicSessions,bulk\nfile.courses,bulk\nfile.classes,bulk\nfile.users,bulk\nfile.enrollments,bulk\n";

/// A small school: teacher tch-1 teaches cls-1 and cls-2, aide aid-1 helps in cls-1; students
/// stu-1, stu-2 are in cls-1 and stu-2, stu-3 in cls-2. Enrollments end far in the future.
pub fn school() -> Bundle {
    Bundle::default()
        .with("manifest.csv", MANIFEST_BULK)
        .with(
            "orgs.csv",
            "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
             dst-1,,,Lincoln Unified,district,,\n\
             sch-1,,,Lincoln High,school,,dst-1\n",
        )
        .with(
            "academicSessions.csv",
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n\
             yr-1,,,2026-2099,schoolYear,2026-08-01,2099-06-30,,2099\n\
             trm-1,,,Fall,term,2026-08-01,2099-06-30,yr-1,2099\n",
        )
        .with(
            "courses.csv",
            "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes\n\
             crs-1,,,yr-1,Algebra I,ALG1,09,sch-1,Math,\n",
        )
        .with(
            "classes.csv",
            "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\n\
             cls-1,,,Algebra I - P1,09,crs-1,ALG1-1,scheduled,101,sch-1,trm-1,Math,,1\n\
             cls-2,,,Algebra I - P2,09,crs-1,ALG1-2,scheduled,102,sch-1,trm-1,Math,,2\n",
        )
        .with(
            "users.csv",
            "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\n\
             tch-1,,,true,sch-1,teacher,tina,{Local:1},Tina,Teach,,T1,tina@example.org,,,,,secret\n\
             aid-1,,,true,sch-1,aide,adam,,Adam,Aide,,,adam@example.org,,,,,\n\
             stu-1,,,true,sch-1,student,sam,,Sam,One,,S1,sam@example.org,,,,09,\n\
             stu-2,,,true,sch-1,student,sue,,Sue,Two,,S2,sue@example.org,,,,09,\n\
             stu-3,,,true,sch-1,student,syd,,Syd,Three,,S3,syd@example.org,,,,09,\n",
        )
        .with(
            "enrollments.csv",
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n\
             e-1,,,cls-1,sch-1,tch-1,teacher,true,2026-08-01,2099-06-30\n\
             e-2,,,cls-2,sch-1,tch-1,teacher,true,2026-08-01,2099-06-30\n\
             e-3,,,cls-1,sch-1,aid-1,aide,false,2026-08-01,2099-06-30\n\
             e-4,,,cls-1,sch-1,stu-1,student,,2026-08-01,2099-06-30\n\
             e-5,,,cls-1,sch-1,stu-2,student,,2026-08-01,2099-06-30\n\
             e-6,,,cls-2,sch-1,stu-2,student,,2026-08-01,2099-06-30\n\
             e-7,,,cls-2,sch-1,stu-3,student,,2026-08-01,2099-06-30\n",
        )
}

/// `counts.<type>.<change>` of a run report.
pub fn count(report: &Value, kind: &str, change: &str) -> u64 {
    report["counts"][kind][change]
        .as_u64()
        .unwrap_or_else(|| panic!("no counts.{kind}.{change} in {report}"))
}

/// Every sync run in the database, oldest first: `(id, status)`.
pub async fn run_statuses(db: &rostergate::store::Db) -> Vec<(String, String)> {
    db.conn()
        .text_rows("SELECT id, status FROM sync_runs ORDER BY started_at", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
        .collect()
}

/// Waits until a run is `running` with rows in `stage_table` and `ready()` holds, then kills
/// `child` with SIGKILL: the killed run's id. Panics when the process ends first, or when
/// nothing of the kind happens `within`.
pub async fn kill_mid_run(
    db: &rostergate::store::Db,
    child: &mut std::process::Child,
    stage_table: &str,
    within: std::time::Duration,
    ready: impl Fn() -> bool,
) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let running = run_statuses(db)
            .await
            .into_iter()
            .find(|(_, status)| status == "running")
            .map(|(id, _)| id);
        if let Some(id) = running.filter(|_| ready()) {
            let staged = db
                .conn()
                .scalar(
                    &format!("SELECT COUNT(*) FROM {stage_table} WHERE run_id = $1"),
                    &rostergate::args![id.as_str()],
                )
                .await
                .unwrap();
            if staged > 0 {
                child.kill().unwrap();
                child.wait().unwrap();
                return id;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the process finished ({status}) before it could be killed mid-run");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run started staging {stage_table}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Sends a request with a bearer token (and a JSON body): the status, the raw answer (headers
/// and body, to search for what must not be there) and the body as JSON (null when it is not).
pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, String, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = format!("{:?}", response.headers());
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, format!("{headers}\n{text}"), json)
}

/// Runs `rostergate ARGS` on a database with the tests' master key.
pub fn rostergate_with_key(db_url: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    rostergate_command(db_url, dir)
        .env("ROSTERGATE_SECRET_KEY", MASTER_KEY)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Every byte the database keeps of `table`: the whole SQLite file and its WAL, or the table's
/// rows as PostgreSQL prints them (at least one).
pub async fn database_dump(db: &TestDb, table: &str) -> Vec<u8> {
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").unwrap();
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-journal", "-shm"] {
                if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                    bytes.extend(b);
                }
            }
            assert!(!bytes.is_empty());
            bytes
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT CAST(t AS TEXT) FROM {table} t"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            assert!(!rows.is_empty(), "{table} is empty");
            rows.join("\n").into_bytes()
        }
    }
}

/// Whether `needle` stands anywhere in `haystack`.
pub fn bytes_contain(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Rewrites a CSV text row by row: `edit` gets the row's index (from 0) and its fields, and
/// returns the rows to write in its place (none drops it).
pub fn edit_csv(
    text: &str,
    mut edit: impl FnMut(usize, Vec<String>) -> Vec<Vec<String>>,
) -> String {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(reader.headers().unwrap()).unwrap();
    for (n, row) in reader.records().enumerate() {
        let row: Vec<String> = row.unwrap().iter().map(str::to_string).collect();
        for out in edit(n, row) {
            writer.write_record(&out).unwrap();
        }
    }
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}
