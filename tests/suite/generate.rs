//! Black-box tests of `rostergate generate`: what it writes and what it tells the person.

use std::process::{Command, Output};

use serde_json::Value;

fn generate(dir: &std::path::Path, extra: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_rostergate"))
        .args(["generate", "oneroster", "--students", "120", "--seed", "5"])
        .args(extra)
        .arg(dir)
        .env("ROSTERGATE_LOG__FILTER", "error")
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Data rows of a CSV file (its lines minus the header).
fn rows(dir: &std::path::Path, file: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    text.lines().count() as u64 - 1
}

#[test]
fn generate_tells_a_person_what_it_wrote_file_by_file() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("district");
    let out = generate(&bundle, &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("GeneratedCounts"), "a debug struct: {text}");
    assert!(
        text.starts_with("wrote a synthetic district of 120 students (seed 5) to "),
        "{text}"
    );
    let users = rows(&bundle, "users.csv");
    let enrollments = rows(&bundle, "enrollments.csv");
    let users_line = text.lines().find(|l| l.contains("users.csv")).unwrap();
    let enrollments_line = text
        .lines()
        .find(|l| l.contains("enrollments.csv"))
        .unwrap();
    assert_eq!(
        users_line.split_whitespace().collect::<Vec<_>>(),
        ["users.csv", &users.to_string(), "rows"]
    );
    assert_eq!(
        enrollments_line.split_whitespace().collect::<Vec<_>>(),
        ["enrollments.csv", &enrollments.to_string(), "rows"]
    );
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("total")),
        "{text}"
    );
}

#[test]
fn generate_json_prints_one_object_with_the_row_counts() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("district");
    let out = generate(&bundle, &["--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    let summary: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(summary["students"], 120);
    assert_eq!(summary["seed"], 5);
    assert_eq!(summary["path"], bundle.display().to_string());
    let cases = [
        ("orgs", "orgs.csv"),
        ("academic_sessions", "academicSessions.csv"),
        ("courses", "courses.csv"),
        ("classes", "classes.csv"),
        ("users", "users.csv"),
        ("enrollments", "enrollments.csv"),
    ];
    for (key, file) in cases {
        assert_eq!(summary["rows"][key], rows(&bundle, file), "{key}");
    }
}
