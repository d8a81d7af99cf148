//! A gateway or CLI process killed in the middle of a sync: its district is free again at once,
//! nothing of the run is applied, and the run, its staged rows and its upload are cleaned up.
//! On SQLite and PostgreSQL, with real processes and `kill -9`.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{backends, Bundle, TestDb, OPERATOR_TOKEN};
use rostergate::store::Db;
use serde_json::Value;

/// A district and a generated bundle big enough that an import takes a while.
fn district_and_bundle(db_url: &str, dir: &Path) -> String {
    common::run_ok(common::gateway_command(db_url, dir).args([
        "district",
        "create",
        "--slug",
        "lincoln",
        "--name",
        "Lincoln",
        "--timezone",
        "UTC",
    ]));
    let bundle = dir.join("bundle");
    common::run_ok(common::gateway_command(db_url, dir).args([
        "generate",
        "oneroster",
        "--students",
        "4000",
        bundle.to_str().unwrap(),
    ]));
    bundle.to_str().unwrap().to_string()
}

async fn staged_rows_of(db: &Db, run_id: &str) -> i64 {
    let mut total = 0;
    for table in [
        "stage_orgs",
        "stage_users",
        "stage_enrollments",
        "stage_classes",
    ] {
        total += db
            .conn()
            .scalar(
                &format!("SELECT COUNT(*) FROM {table} WHERE run_id = $1"),
                &rostergate::args![run_id],
            )
            .await
            .unwrap();
    }
    total
}

#[tokio::test]
async fn a_killed_import_frees_its_district_at_once_and_the_next_import_cleans_up() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let test_db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let bundle = district_and_bundle(&test_db.url, work.path());
        let db = Db::connect(&test_db.url).await.unwrap();

        let import = common::gateway_command(&test_db.url, work.path())
            .args([
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "--json",
                &bundle,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut import = import;
        let killed = common::kill_mid_run(
            &db,
            &mut import,
            "stage_users",
            Duration::from_secs(120),
            || true,
        )
        .await;
        assert!(staged_rows_of(&db, &killed).await > 0);
        let users = db
            .conn()
            .scalar("SELECT COUNT(*) FROM users", &[])
            .await
            .unwrap();
        assert_eq!(users, 0, "nothing of a killed run is applied");

        // The very next import gets the district: no lock left behind by the dead process.
        let killed_at = Instant::now();
        let next = common::gateway_command(&test_db.url, work.path())
            .args([
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "--json",
                &bundle,
            ])
            .output()
            .unwrap();
        assert_eq!(
            next.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&next.stderr)
        );
        assert!(killed_at.elapsed() < Duration::from_secs(60));
        let report: Value = serde_json::from_slice(&next.stdout).unwrap();
        assert_eq!(report["status"], "applied");

        let runs = common::run_statuses(&db).await;
        assert_eq!(
            runs.iter().find(|(id, _)| *id == killed).unwrap().1,
            "failed",
            "{runs:?}"
        );
        assert_eq!(staged_rows_of(&db, &killed).await, 0);
        let shown = common::run_ok(common::gateway_command(&test_db.url, work.path()).args([
            "sync",
            "show",
            "--district",
            "lincoln",
            "--json",
            &killed,
        ]));
        let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(shown["status"], "failed");
        assert!(
            shown["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("stopped before it finished"),
            "{shown}"
        );
        db.close().await;
    }
}

struct Server {
    child: Child,
    address: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server(db_url: &str, dir: &Path) -> Server {
    let port = free_port();
    let child = common::gateway_command(db_url, dir)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let client = common::http_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{address}/health/ready"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, address }
}

fn uploads(dir: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir.join("data/uploads")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn a_gateway_killed_mid_upload_import_leaves_no_running_run_and_no_upload_after_restart() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let test_db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let bundle = district_and_bundle(&test_db.url, work.path());
        let body = Bundle::from_dir(Path::new(&bundle)).zip();
        let db = Db::connect(&test_db.url).await.unwrap();

        let server = start_server(&test_db.url, work.path()).await;
        let url = format!(
            "{}/api/v1/districts/lincoln/imports/oneroster",
            server.address
        );
        let upload = tokio::spawn(async move {
            let _ = common::http_client()
                .post(url)
                .bearer_auth(OPERATOR_TOKEN)
                .header("Content-Type", "application/zip")
                .body(body)
                .send()
                .await;
        });
        let mut child = server.child;
        let killed = common::kill_mid_run(
            &db,
            &mut child,
            "stage_users",
            Duration::from_secs(120),
            || true,
        )
        .await;
        let _ = upload.await;
        assert_eq!(
            uploads(work.path()).len(),
            1,
            "the spooled upload outlives a kill"
        );

        // A new gateway fails the dead run and deletes its upload as it starts, before any sync.
        let mut server = start_server(&test_db.url, work.path()).await;
        let runs = common::run_statuses(&db).await;
        assert_eq!(runs, vec![(killed.clone(), "failed".to_string())]);
        assert_eq!(staged_rows_of(&db, &killed).await, 0);
        assert!(
            uploads(work.path()).is_empty(),
            "{:?}",
            uploads(work.path())
        );
        let (status, run): (u16, Value) = {
            let r = common::http_client()
                .get(format!(
                    "{}/api/v1/districts/lincoln/runs/{killed}",
                    server.address
                ))
                .bearer_auth(OPERATOR_TOKEN)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        };
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["status"], "failed");
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        db.close().await;
    }
}
