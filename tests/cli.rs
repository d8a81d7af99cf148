//! Black-box tests of the `rostergate` command line, on SQLite and PostgreSQL.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{backends, school, TestDb};
use serde_json::Value;

fn rostergate(db_url: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rostergate"))
        .args(["--database-url", db_url])
        .args(args)
        .current_dir(dir)
        .env_remove("ROSTERGATE_DATABASE_URL")
        .env("ROSTERGATE_LOG__FILTER", "error")
        .output()
        .expect("the binary runs")
}

/// `rostergate district create --slug SLUG --name … --timezone UTC [extra…]`, which must succeed.
fn create_district(db_url: &str, dir: &Path, slug: &str, extra: &[&str]) {
    let mut args = vec![
        "district",
        "create",
        "--slug",
        slug,
        "--name",
        "District",
        "--timezone",
        "UTC",
    ];
    args.extend_from_slice(extra);
    let out = rostergate(db_url, dir, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test]
async fn import_prints_one_json_object_and_exits_by_outcome() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let created = rostergate(
            &db.url,
            work.path(),
            &[
                "district",
                "create",
                "--slug",
                "lincoln",
                "--name",
                "Lincoln Unified",
                "--timezone",
                "America/Chicago",
            ],
        );
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let bundle = school().write_dir(&work.path().join("bundle"));
        let bundle = bundle.to_str().unwrap();

        // A dry run: the same report, nothing applied, its own exit code.
        let dry = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "--dry-run",
                "--json",
                bundle,
            ],
        );
        assert_eq!(dry.status.code(), Some(4));
        let report = json_of(&dry);
        assert_eq!(report["status"], "dry_run");
        assert_eq!(report["counts"]["users"]["created"], 5);

        let first = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "--json",
                bundle,
            ],
        );
        assert_eq!(
            first.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let report = json_of(&first);
        assert_eq!(report["status"], "applied");
        assert!(report["run_id"].as_str().is_some_and(|id| id.len() == 36));
        for kind in [
            "orgs",
            "academicSessions",
            "courses",
            "classes",
            "users",
            "enrollments",
        ] {
            for key in ["created", "updated", "deleted", "unchanged"] {
                assert!(report["counts"][kind][key].is_u64(), "counts.{kind}.{key}");
            }
        }
        assert_eq!(
            report["counts"]["users"]["created"], 5,
            "the dry run applied nothing"
        );
        assert_eq!(report["errors"], serde_json::json!([]));
        assert!(report["warnings"].is_array());

        let second = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "--json",
                bundle,
            ],
        );
        let report = json_of(&second);
        assert_eq!(
            report["counts"]["users"],
            serde_json::json!({ "created": 0, "updated": 0, "deleted": 0, "unchanged": 5 })
        );

        // The human summary.
        let summary = rostergate(
            &db.url,
            work.path(),
            &["import", "oneroster", "--district", "lincoln", bundle],
        );
        let text = String::from_utf8_lossy(&summary.stdout);
        assert!(
            text.contains("applied") && text.contains("enrollments") && text.contains("unchanged"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_refused_import_exits_non_zero_and_names_file_line_and_field() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        create_district(&db.url, work.path(), "lincoln", &[]);
        let s = school();
        let broken = s.clone().with(
            "enrollments.csv",
            &s.get("enrollments.csv").replacen(
                "e-4,,,cls-1,sch-1,stu-1",
                "e-4,,,cls-1,sch-1,stu-404",
                1,
            ),
        );
        let dir = broken.write_dir(&work.path().join("broken"));
        let out = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "--json",
                dir.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        let report = json_of(&out);
        assert_eq!(report["status"], "failed");
        assert_eq!(report["errors"][0]["file"], "enrollments.csv");
        assert_eq!(report["errors"][0]["line"], 5);
        assert_eq!(report["errors"][0]["field"], "userSourcedId");
        let human = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "lincoln",
                dir.to_str().unwrap(),
            ],
        );
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(
            text.contains("enrollments.csv:5: userSourcedId: \"stu-404\" is not a known users"),
            "{text}"
        );
        // Unknown district and missing path are plain errors.
        let out = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "nowhere",
                dir.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("district \"nowhere\" not found"));
        let out = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "--json",
                "/no/such/bundle",
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(json_of(&out)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no such file or folder"));
    }
}

#[tokio::test]
async fn a_held_import_exits_3_and_is_approved_from_the_command_line() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        create_district(&db.url, work.path(), "lincoln", &["--review-every-sync"]);
        let dir = school().write_dir(&work.path().join("b"));
        let out = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "--json",
                dir.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(3));
        let report = json_of(&out);
        assert_eq!(report["status"], "held");
        assert!(report["held_reasons"][0]
            .as_str()
            .unwrap()
            .contains("preview mode"));
        let run = report["run_id"].as_str().unwrap();
        let out = rostergate(
            &db.url,
            work.path(),
            &["sync", "approve", "--district", "lincoln", "--json", run],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(json_of(&out)["status"], "applied");
        let out = rostergate(
            &db.url,
            work.path(),
            &["sync", "runs", "--district", "lincoln", "--json"],
        );
        assert_eq!(json_of(&out)["runs"][0]["status"], "applied");
    }
}

#[test]
fn a_sqlite_url_whose_file_does_not_exist_creates_it() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("fresh/sub/gateway.db");
    let url = format!("sqlite://{}", path.display());
    let out = rostergate(&url, work.path(), &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(path.exists());
    // The default lives under data/ of the working directory.
    let out = Command::new(env!("CARGO_BIN_EXE_rostergate"))
        .args(["district", "list"])
        .current_dir(work.path())
        .env_remove("ROSTERGATE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(work.path().join("data/rostergate.db").exists());
}

#[test]
fn client_create_prints_the_secret_once_and_bad_scopes_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", work.path().join("g.db").display());
    create_district(&url, work.path(), "lincoln", &[]);
    let out = rostergate(
        &url,
        work.path(),
        &[
            "client",
            "create",
            "--district",
            "lincoln",
            "--scopes",
            "roster:read",
            "--json",
        ],
    );
    assert!(out.status.success());
    let created = json_of(&out);
    assert!(created["client_secret"]
        .as_str()
        .unwrap()
        .starts_with("rgs_"));
    assert_eq!(created["scopes"], "roster:read");
    let out = rostergate(
        &url,
        work.path(),
        &[
            "client",
            "create",
            "--district",
            "lincoln",
            "--scopes",
            "roster:delete",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope \"roster:delete\""));
    let out = rostergate(
        &url,
        work.path(),
        &[
            "district",
            "create",
            "--slug",
            "x",
            "--name",
            "X",
            "--timezone",
            "UTC",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("slug must be"));
}

#[test]
fn the_generator_writes_a_bundle_the_importer_accepts() {
    let work = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", work.path().join("g.db").display());
    let bundle = work.path().join("synthetic");
    let out = Command::new(env!("CARGO_BIN_EXE_rostergate"))
        .args(["generate", "oneroster", "--students", "300"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    create_district(&url, work.path(), "synth", &[]);
    let out = rostergate(
        &url,
        work.path(),
        &[
            "import",
            "oneroster",
            "--district",
            "synth",
            "--json",
            bundle.to_str().unwrap(),
        ],
    );
    let report = json_of(&out);
    assert_eq!(report["status"], "applied", "{report}");
    assert!(report["counts"]["users"]["created"].as_u64().unwrap() > 300);
    assert!(report["coaching"]["started"].as_u64().unwrap() > 300);
}

#[tokio::test]
async fn a_revoked_client_gets_no_new_tokens() {
    let app = common::spawn_app(common::Backend::Sqlite).await;
    app.create_district("lincoln").await;
    let work = tempfile::tempdir().unwrap();
    let out = rostergate(
        &app.db.url,
        work.path(),
        &[
            "client",
            "create",
            "--district",
            "lincoln",
            "--scopes",
            "roster:read",
            "--json",
        ],
    );
    let client = json_of(&out);
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let grant = || {
        app.client
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
    };
    assert_eq!(grant().await.unwrap().status(), 200);
    let out = rostergate(
        &app.db.url,
        work.path(),
        &["client", "revoke", "--district", "lincoln", id],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(grant().await.unwrap().status(), 401);
    let again = rostergate(
        &app.db.url,
        work.path(),
        &["client", "revoke", "--district", "lincoln", id],
    );
    assert_eq!(again.status.code(), Some(1));
    // A client of another district cannot be revoked through this one.
    create_district(&app.db.url, work.path(), "other", &[]);
    let other = json_of(&rostergate(
        &app.db.url,
        work.path(),
        &[
            "client",
            "create",
            "--district",
            "other",
            "--scopes",
            "admin",
            "--json",
        ],
    ));
    let out = rostergate(
        &app.db.url,
        work.path(),
        &[
            "client",
            "revoke",
            "--district",
            "lincoln",
            other["client_id"].as_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
}
