//! Black-box tests of the `rostergate` command line, on SQLite and PostgreSQL.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{backends, json_of, school, Bundle, TestDb, BUNDLE_KINDS};
use rostergate::config::ImportSettings;
use rostergate::domain::records::RecordKind;
use rostergate::imports::import_oneroster_csv;
use rostergate::store::Db;
use rostergate::sync::engine::RunOptions;
use rostergate::sync::progress::{Phase, Progress, ProgressFn};
use rostergate::sync::Engine;
use serde_json::Value;

fn rostergate(db_url: &str, dir: &Path, args: &[&str]) -> Output {
    common::rostergate_command(db_url, dir)
        .args(args)
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
        for kind in BUNDLE_KINDS {
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

/// `rostergate import oneroster --district lincoln --json BUNDLE`, which must apply: its report.
fn imported(db_url: &str, dir: &Path, bundle: &Path) -> Value {
    let out = rostergate(
        db_url,
        dir,
        &[
            "import",
            "oneroster",
            "--district",
            "lincoln",
            "--json",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::printed(&out));
    json_of(&out)
}

/// The report of an import whose `users.csv` changed in one user: users are read again (and
/// enrollments, which refer to them), the kinds users refer to are carried over.
fn assert_one_user_read_again(report: &Value) {
    assert_eq!(
        report["carried_over"],
        serde_json::json!(["orgs", "academicSessions", "courses", "classes"]),
        "{report}"
    );
    assert_eq!(report["counts"]["users"]["updated"], 1, "{report}");
}

#[tokio::test]
async fn a_bundle_imported_again_from_the_command_line_reads_only_the_files_that_changed() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        create_district(&db.url, work.path(), "lincoln", &[]);
        let import = |bundle: &Path| imported(&db.url, work.path(), bundle);

        let first = import(&school().write_dir(&work.path().join("first")));
        assert!(first.get("carried_over").is_none(), "{first}");

        // The same files, zipped this time: nothing is read again.
        let zipped = work.path().join("again.zip");
        std::fs::write(&zipped, school().zip()).unwrap();
        let again = import(&zipped);
        assert_eq!(
            again["carried_over"],
            serde_json::json!(BUNDLE_KINDS),
            "{again}"
        );
        for kind in BUNDLE_KINDS {
            assert_eq!(
                again["counts"][kind]["unchanged"], first["counts"][kind]["created"],
                "{kind}"
            );
        }

        // Sam renamed: users are read, and enrollments, which refer to them.
        let users = school()
            .get("users.csv")
            .replace(",Sam,One,", ",Samuel,One,");
        let renamed = school()
            .with("users.csv", &users)
            .write_dir(&work.path().join("renamed"));
        let renamed = import(&renamed);
        assert_one_user_read_again(&renamed);
        assert_eq!(
            renamed["counts"]["enrollments"]["unchanged"],
            first["counts"]["enrollments"]["created"],
            "{renamed}"
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
    assert_eq!(created["scopes"], serde_json::json!(["roster:read"]));
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

/// The binary with only these settings from the environment (no log filter: its own default).
fn bare_rostergate(db_url: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rostergate"));
    command
        .args(["--database-url", db_url])
        .args(args)
        .current_dir(dir)
        .env_remove("ROSTERGATE_DATABASE_URL")
        .env_remove("ROSTERGATE_LOG__FILTER")
        .envs(env.iter().copied());
    command
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn piped_stderr_has_no_colour_and_no_info_lines_unless_a_filter_asks() {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        create_district(&db.url, work.path(), "lincoln", &[]);
        let bundle = school().write_dir(&work.path().join("b"));
        let import = [
            "import",
            "oneroster",
            "--district",
            "lincoln",
            bundle.to_str().unwrap(),
        ];
        // (explicit filter, whether INFO lines are expected)
        for (filter, info_expected) in [(None, false), (Some("info"), true)] {
            let env: Vec<(&str, &str)> = filter
                .map(|f| ("ROSTERGATE_LOG__FILTER", f))
                .into_iter()
                .collect();
            let out = bare_rostergate(&db.url, work.path(), &import, &env)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
            let stderr = stderr_of(&out);
            assert!(!stderr.contains('\x1b'), "ANSI escapes in {stderr:?}");
            assert_eq!(
                stderr.contains("INFO"),
                info_expected,
                "filter {filter:?}: {stderr:?}"
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("applied"));
        }
    }
}

#[tokio::test]
async fn serve_still_logs_at_info_by_default() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let mut server = bare_rostergate(
            &db.url,
            work.path(),
            &["serve", "--bind", "127.0.0.1:0"],
            &[("ROSTERGATE_DATA_DIR", work.path().to_str().unwrap())],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let stderr = server.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Lines arrive as the server starts; the wait ends at the one that says it listens.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut listening = None;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening") => {
                    listening = Some(line);
                    break;
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        server.kill().unwrap();
        server.wait().unwrap();
        let line = listening.expect("serve logs that it listens");
        assert!(
            line.contains("INFO") && line.contains("rostergate is listening"),
            "{line}"
        );
        assert!(!line.contains('\x1b'), "{line:?}");
    }
}

#[tokio::test]
async fn printing_into_a_closed_pipe_ends_quietly() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        create_district(&db.url, work.path(), "lincoln", &[]);
        // A run to list: an import of nothing fails, and is recorded.
        let failed = rostergate(
            &db.url,
            work.path(),
            &[
                "import",
                "oneroster",
                "--district",
                "lincoln",
                "/no/such/bundle",
                "--json",
            ],
        );
        let run_id = json_of(&failed)["run_id"].as_str().unwrap().to_string();
        for args in [
            vec!["sync", "runs", "--district", "lincoln"],
            vec!["sync", "runs", "--district", "lincoln", "--json"],
            vec!["sync", "show", "--district", "lincoln", &run_id],
            vec!["district", "list"],
            vec!["district", "list", "--json"],
        ] {
            let mut child = bare_rostergate(&db.url, work.path(), &args, &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The reader leaves before anything is written, as `| head -0` would.
            drop(child.stdout.take());
            let out = child.wait_with_output().unwrap();
            let stderr = stderr_of(&out);
            assert!(stderr.is_empty(), "{args:?}: {stderr}");
            assert_eq!(out.status.code(), Some(0), "{args:?}");
        }
    }
}

on_every_backend!(
    client_create_json_has_the_apis_shape_with_scopes_as_an_array,
    |app| {
        app.create_district("lincoln").await;
        let work = tempfile::tempdir().unwrap();
        let cli = json_of(&rostergate(
            &app.db.url,
            work.path(),
            &[
                "client",
                "create",
                "--district",
                "lincoln",
                "--scopes",
                "roster:write,roster:read",
                "--json",
            ],
        ));
        let (status, api) = app
            .post_json(
                "/api/v1/districts/lincoln/clients",
                common::OPERATOR_TOKEN,
                &serde_json::json!({ "name": "api", "scopes": ["roster:write", "roster:read"] }),
            )
            .await;
        assert_eq!(status, 201, "{api}");
        assert_eq!(
            cli["scopes"],
            serde_json::json!(["roster:read", "roster:write"])
        );
        assert_eq!(cli["scopes"], api["scopes"]);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&cli), keys(&api));
    }
);

#[tokio::test]
async fn district_json_on_the_command_line_matches_the_api() {
    for backend in backends().await {
        let app = common::spawn_app(backend).await;
        let work = tempfile::tempdir().unwrap();
        let created = json_of(&rostergate(
            &app.db.url,
            work.path(),
            &[
                "district",
                "create",
                "--slug",
                "lincoln",
                "--name",
                "Lincoln",
                "--timezone",
                "UTC",
                "--json",
            ],
        ));
        let (status, api) = app
            .get("/api/v1/districts/lincoln", common::OPERATOR_TOKEN)
            .await;
        assert_eq!(status, 200, "{api}");
        assert_eq!(created, api);
        let listed = json_of(&rostergate(
            &app.db.url,
            work.path(),
            &["district", "list", "--json"],
        ));
        assert_eq!(listed["districts"], serde_json::json!([api]));
    }
}

/// Every entry under `Arguments:` and `Options:` of a `--help` has a description, on its own
/// line (long help) or after the flag.
fn undocumented_entries(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut in_list = false;
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with(' ') {
            in_list = matches!(line.trim_end(), "Arguments:" | "Options:");
            continue;
        }
        let entry = line.len() > 2 && !line[2..].starts_with(' ');
        if !in_list || !entry {
            continue;
        }
        let inline = line.trim().contains("  ");
        let below = lines
            .get(i + 1)
            .is_some_and(|next| next.starts_with("      ") && !next.trim().is_empty());
        if !inline && !below {
            missing.push(line.trim().to_string());
        }
    }
    missing
}

#[test]
fn every_subcommand_and_flag_has_help_text() {
    let work = tempfile::tempdir().unwrap();
    for path in [
        &["serve"][..],
        &["migrate"],
        &["district"],
        &["district", "create"],
        &["district", "list"],
        &["client"],
        &["client", "create"],
        &["client", "revoke"],
        &["import"],
        &["import", "oneroster"],
        &["sync"],
        &["sync", "runs"],
        &["sync", "show"],
        &["sync", "approve"],
        &["sync", "discard"],
    ] {
        let out = bare_rostergate("sqlite://unused.db", work.path(), path, &[])
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{path:?}: {}", stderr_of(&out));
        let help = String::from_utf8(out.stdout).unwrap();
        let about = help.lines().next().unwrap_or_default();
        assert!(
            !about.is_empty() && !about.starts_with("Usage:"),
            "{path:?} says what it does first: {help}"
        );
        assert_eq!(
            undocumented_entries(&help),
            Vec::<String>::new(),
            "{path:?}: {help}"
        );
    }
}

#[test]
fn import_help_lists_the_exit_codes() {
    let work = tempfile::tempdir().unwrap();
    let out = bare_rostergate(
        "sqlite://unused.db",
        work.path(),
        &["import", "oneroster", "--help"],
        &[],
    )
    .output()
    .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Exit codes:"), "{help}");
    for (code, meaning) in [
        (0, "applied"),
        (1, "failed"),
        (2, "usage"),
        (3, "held"),
        (4, "dry run"),
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{code}  {meaning}"))),
            "exit code {code} ({meaning}) in {help}"
        );
    }
}

#[tokio::test]
async fn errors_print_error_then_what_failed_and_why() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        create_district(&db.url, work.path(), "lincoln", &[]);
        std::fs::write(work.path().join("a-file"), "not a folder").unwrap();
        let under_a_file = format!("sqlite://{}/db/g.db", work.path().join("a-file").display());
        let bad_config = work.path().join("bad-config");
        std::fs::create_dir_all(&bad_config).unwrap();
        std::fs::write(bad_config.join("local.toml"), "bind = [unclosed").unwrap();
        let bad_config_arg = format!("--config-dir={}", bad_config.display());
        // (database URL, arguments, what the line says, after "error: ")
        let cases: [(&str, Vec<&str>, &[&str]); 4] = [
            (
                &under_a_file,
                vec!["district", "list"],
                &["cannot open the database sqlite://", "a-file"],
            ),
            (
                &db.url,
                vec!["sync", "runs", "--district", "nowhere"],
                &["district \"nowhere\" not found"],
            ),
            (
                &db.url,
                vec!["sync", "approve", "--district", "lincoln", "no-such-run"],
                &["cannot approve run no-such-run: run no-such-run not found"],
            ),
            (
                &db.url,
                vec![&bad_config_arg, "district", "list"],
                &["configuration: ", "local.toml"],
            ),
        ];
        for (url, args, says) in cases {
            let out = bare_rostergate(url, work.path(), &args, &[])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let stderr = stderr_of(&out);
            assert!(
                !stderr.contains("Error:"),
                "{args:?}: one spelling: {stderr}"
            );
            let what = stderr
                .strip_prefix("error: ")
                .unwrap_or_else(|| panic!("{args:?}: {stderr}"));
            for part in says {
                assert!(what.contains(part), "{args:?}: {part:?} in {stderr}");
            }
        }
    }
}

/// The small school with `count` more students, each with a middle name of `name_bytes`
/// letters: a `users.csv` of a few hashing chunks (2 MiB each) in few rows.
fn school_with_long_named_students(count: usize, name_bytes: usize) -> Bundle {
    let s = school();
    let mut users = s.get("users.csv").to_string();
    for i in 0..count {
        let middle = "m".repeat(name_bytes);
        users.push_str(&format!(
            "long-{i},,,true,sch-1,student,long{i},,Long,Named,{middle},,,,,,09,\n"
        ));
    }
    s.with("users.csv", &users)
}

#[tokio::test]
async fn a_file_of_several_hashing_chunks_is_carried_over_from_a_folder_and_a_byte_changed_in_one_is_read(
) {
    for backend in backends().await {
        eprintln!("on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        create_district(&db.url, work.path(), "lincoln", &[]);
        let import = |bundle: &Path| imported(&db.url, work.path(), bundle);
        let bundle = school_with_long_named_students(100, 60_000);
        let users = bundle.get("users.csv").to_string();
        assert!(users.len() > 5 << 20, "three chunks at least");

        // Read and parsed (its digest taken as it streams), then hashed ahead in chunks from a
        // folder and whole from a zip: the same digest each time, so nothing is read again.
        let first = import(&bundle.write_dir(&work.path().join("first")));
        assert!(first.get("carried_over").is_none(), "{first}");
        assert_eq!(first["counts"]["users"]["created"], 105, "{first}");
        let folder = import(&bundle.write_dir(&work.path().join("folder")));
        assert_eq!(folder["carried_over"], serde_json::json!(BUNDLE_KINDS));
        let zipped = work.path().join("again.zip");
        std::fs::write(&zipped, bundle.zip()).unwrap();
        let zipped = import(&zipped);
        assert_eq!(zipped["carried_over"], serde_json::json!(BUNDLE_KINDS));

        // One letter changed in the middle of the file, inside its second chunk.
        let at = users.len() / 2;
        assert_eq!(&users[at..at + 1], "m", "inside a middle name");
        let mut changed = users.clone();
        changed.replace_range(at..at + 1, "n");
        let changed = bundle
            .with("users.csv", &changed)
            .write_dir(&work.path().join("changed"));
        let changed = import(&changed);
        assert_one_user_read_again(&changed);
        assert_eq!(changed["counts"]["users"]["unchanged"], 104, "{changed}");
    }
}

/// `count` users on top of the small school: enough rows for the reader to report progress
/// while it reads them.
fn school_with_users(count: usize) -> Bundle {
    let s = school();
    let mut users = s.get("users.csv").to_string();
    for i in 0..count {
        users.push_str(&format!(
            "extra-{i},,,true,sch-1,student,x{i},,X,Y,,,,,,,09,\n"
        ));
    }
    s.with("users.csv", &users)
}

#[tokio::test]
async fn a_run_reports_each_file_as_it_is_read_then_each_phase() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let store = Db::connect_and_migrate(&db.url).await.unwrap();
        let district =
            rostergate::admin::create_district(&store, "lincoln", "Lincoln", "UTC", None)
                .await
                .unwrap();
        let work = tempfile::tempdir().unwrap();
        let bundle = school_with_users(1200).write_dir(&work.path().join("b"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let listener: ProgressFn = Arc::new(move |p| sink.lock().unwrap().push(p));
        let engine = Engine::new(store.clone(), 100).with_progress(listener.clone());
        let report = import_oneroster_csv(
            &engine,
            &district,
            &bundle,
            None,
            &ImportSettings::default(),
            RunOptions::default(),
            Some(listener),
        )
        .await
        .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let seen = seen.lock().unwrap().clone();
        let users: Vec<u64> = seen
            .iter()
            .filter_map(|p| match p {
                Progress::Reading {
                    kind: RecordKind::Users,
                    rows,
                } => Some(*rows),
                _ => None,
            })
            .collect();
        assert_eq!(
            users.first(),
            Some(&0),
            "a file shows as soon as it is opened"
        );
        assert_eq!(users.last(), Some(&1205), "and with its total at its end");
        assert!(users.len() >= 4, "rows so far, while reading: {users:?}");
        assert!(users.windows(2).all(|w| w[0] <= w[1]), "{users:?}");
        let files: Vec<RecordKind> = seen
            .iter()
            .filter_map(|p| match p {
                Progress::Reading { kind, rows: 0 } => Some(*kind),
                _ => None,
            })
            .collect();
        assert_eq!(
            files,
            [
                RecordKind::Orgs,
                RecordKind::AcademicSessions,
                RecordKind::Courses,
                RecordKind::Classes,
                RecordKind::Users,
                RecordKind::Enrollments
            ]
        );
        let phases: Vec<Phase> = seen
            .iter()
            .filter_map(|p| match p {
                Progress::Phase(phase) => Some(*phase),
                _ => None,
            })
            .collect();
        assert_eq!(
            phases,
            [
                Phase::Validating,
                Phase::Comparing,
                Phase::Applying,
                Phase::Coaching
            ]
        );
        let first_phase = seen.iter().position(|p| matches!(p, Progress::Phase(_)));
        let last_read = seen
            .iter()
            .rposition(|p| matches!(p, Progress::Reading { .. }));
        assert!(last_read < first_phase, "phases follow reading: {seen:?}");
        store.close().await;
    }
}

/// Commands skip the migrator when the schema is exactly the shipped one; anything else (a
/// newer gateway's migration, a shipped one edited) still goes to the migrator, which refuses it.
#[tokio::test]
async fn a_command_refuses_a_schema_from_a_newer_gateway_or_an_edited_migration() {
    for backend in backends().await {
        eprintln!("schema checks on {backend:?}");
        let db = TestDb::new(backend).await;
        let work = tempfile::tempdir().unwrap();
        let ok = |out: &Output| {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            )
        };
        let refused = |out: &Output, why: &str| {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "a command ran on a foreign schema");
            assert!(stderr.contains(why), "{stderr}");
        };
        ok(&rostergate(&db.url, work.path(), &["migrate"]));
        ok(&rostergate(&db.url, work.path(), &["district", "list"]));
        let store = Db::connect(&db.url).await.unwrap();
        let latest = "(SELECT MAX(version) FROM _sqlx_migrations)";
        let first = "(SELECT MIN(version) FROM _sqlx_migrations)";
        // Each change to the recorded migrations, and what a command then says (None: it runs).
        let changes = [
            (
                format!(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     SELECT 99991231000000, 'a newer gateway', success, checksum, 0 \
                     FROM _sqlx_migrations WHERE version = {latest}"
                ),
                Some("missing in the resolved migrations"),
            ),
            (
                "DELETE FROM _sqlx_migrations WHERE version = 99991231000000".to_string(),
                None,
            ),
            (
                format!(
                    "UPDATE _sqlx_migrations SET checksum = \
                     (SELECT checksum FROM _sqlx_migrations WHERE version = {first}) \
                     WHERE version = {latest}"
                ),
                Some("has been modified"),
            ),
        ];
        for (change, refusal) in changes {
            store.conn().execute(&change, &[]).await.unwrap();
            assert_eq!(
                store.migrations_current().await.unwrap(),
                refusal.is_none(),
                "{change}"
            );
            let out = rostergate(&db.url, work.path(), &["district", "list"]);
            match refusal {
                Some(why) => refused(&out, why),
                None => ok(&out),
            }
        }
        store.close().await;
    }
}
