use super::plan::*;
use super::*;
use chrono::Duration;
use std::collections::{HashMap, HashSet};

type Row = HashMap<String, String>;

fn today() -> NaiveDate {
    ymd(2025, 10, 15)
}

fn generate(students: usize, seed: u64) -> (tempfile::TempDir, GeneratedCounts) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticDistrict { students, seed };
    let counts = write_bundle_as_of(&spec, dir.path(), today()).unwrap();
    (dir, counts)
}

fn read(dir: &Path, name: &str) -> (Vec<String>, Vec<Row>) {
    let mut r = csv::Reader::from_path(dir.join(name)).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

fn rows(dir: &Path, name: &str) -> Vec<Row> {
    read(dir, name).1
}

fn index(rows: &[Row]) -> HashMap<String, Row> {
    rows.iter()
        .map(|r| (r["sourcedId"].clone(), r.clone()))
        .collect()
}

#[test]
fn headers_match_the_oneroster_1_1_csv_binding_exactly() {
    let (dir, _) = generate(100, 1);
    for (name, expected) in [
        ("orgs.csv", ORGS_HEADER),
        ("academicSessions.csv", SESSIONS_HEADER),
        ("courses.csv", COURSES_HEADER),
        ("classes.csv", CLASSES_HEADER),
        ("users.csv", USERS_HEADER),
        ("enrollments.csv", ENROLLMENTS_HEADER),
    ] {
        assert_eq!(read(dir.path(), name).0, expected, "{name}");
    }
    let first = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    assert!(first.starts_with(
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
    ));
}

#[test]
fn manifest_declares_the_six_rostering_files_bulk_and_the_rest_absent() {
    let (dir, _) = generate(50, 1);
    let (header, rows) = read(dir.path(), "manifest.csv");
    assert_eq!(header, ["propertyName", "value"]);
    let props: HashMap<_, _> = rows
        .iter()
        .map(|r| (r["propertyName"].as_str(), r["value"].as_str()))
        .collect();
    assert_eq!(props["manifest.version"], "1.0");
    assert_eq!(props["oneroster.version"], "1.1");
    let bulk = [
        "orgs",
        "academicSessions",
        "courses",
        "classes",
        "users",
        "enrollments",
    ];
    for file in bulk {
        assert_eq!(props[format!("file.{file}").as_str()], "bulk");
        assert!(dir.path().join(format!("{file}.csv")).is_file());
    }
    for file in [
        "demographics",
        "resources",
        "classResources",
        "courseResources",
        "categories",
        "lineItems",
        "results",
    ] {
        assert_eq!(props[format!("file.{file}").as_str()], "absent");
        assert!(!dir.path().join(format!("{file}.csv")).exists());
    }
}

#[test]
fn returned_counts_equal_the_rows_in_each_file() {
    let (dir, counts) = generate(1_234, 5);
    let n = |name| rows(dir.path(), name).len() as u64;
    assert_eq!(counts.orgs, n("orgs.csv"));
    assert_eq!(counts.academic_sessions, n("academicSessions.csv"));
    assert_eq!(counts.courses, n("courses.csv"));
    assert_eq!(counts.classes, n("classes.csv"));
    assert_eq!(counts.users, n("users.csv"));
    assert_eq!(counts.enrollments, n("enrollments.csv"));
    // 1,234 students -> 3 schools of at most 500.
    assert_eq!(counts.orgs, 4);
    assert_eq!(counts.courses, 3 * 14);
}

#[test]
fn sourced_ids_are_unique_within_and_across_files() {
    let (dir, _) = generate(2_000, 7);
    let mut all = HashSet::new();
    for name in [
        "orgs.csv",
        "academicSessions.csv",
        "courses.csv",
        "classes.csv",
        "users.csv",
        "enrollments.csv",
    ] {
        for row in rows(dir.path(), name) {
            assert!(
                all.insert(row["sourcedId"].clone()),
                "duplicate {}",
                row["sourcedId"]
            );
        }
    }
}

#[test]
fn every_reference_resolves_inside_the_bundle() {
    let (dir, _) = generate(1_600, 3);
    let orgs = index(&rows(dir.path(), "orgs.csv"));
    let sessions = index(&rows(dir.path(), "academicSessions.csv"));
    let courses = index(&rows(dir.path(), "courses.csv"));
    let classes = index(&rows(dir.path(), "classes.csv"));
    let users = index(&rows(dir.path(), "users.csv"));
    for s in sessions.values().filter(|s| s["type"] == "semester") {
        assert_eq!(sessions[&s["parentSourcedId"]]["type"], "schoolYear");
    }
    for o in orgs.values().filter(|o| o["type"] == "school") {
        assert_eq!(orgs[&o["parentSourcedId"]]["type"], "district");
    }
    for c in courses.values() {
        assert_eq!(orgs[&c["orgSourcedId"]]["type"], "school");
        assert_eq!(sessions[&c["schoolYearSourcedId"]]["type"], "schoolYear");
    }
    for c in classes.values() {
        assert_eq!(orgs[&c["schoolSourcedId"]]["type"], "school");
        assert_eq!(
            courses[&c["courseSourcedId"]]["orgSourcedId"],
            c["schoolSourcedId"]
        );
        let terms: Vec<_> = c["termSourcedIds"].split(',').collect();
        assert_eq!(terms.len(), 2);
        assert!(terms.iter().all(|t| sessions[*t]["type"] == "semester"));
    }
    for u in users.values() {
        assert_eq!(orgs[&u["orgSourcedIds"]]["type"], "school");
    }
    for e in rows(dir.path(), "enrollments.csv") {
        let class = &classes[&e["classSourcedId"]];
        let user = &users[&e["userSourcedId"]];
        assert_eq!(class["schoolSourcedId"], e["schoolSourcedId"]);
        assert_eq!(user["orgSourcedIds"], e["schoolSourcedId"]);
        assert_eq!(user["role"], e["role"]);
    }
}

#[test]
fn terms_are_written_as_one_quoted_comma_joined_field() {
    let (dir, _) = generate(30, 1);
    let text = std::fs::read_to_string(dir.path().join("classes.csv")).unwrap();
    assert!(text.contains(",\"as-2026-s1,as-2026-s2\","), "{text}");
}

#[test]
fn every_class_has_one_primary_teacher_and_about_ten_percent_a_co_teacher_and_five_an_aide() {
    let (dir, counts) = generate(20_000, 11);
    let mut primaries: HashMap<String, usize> = HashMap::new();
    let mut co = HashSet::new();
    let mut aided = HashSet::new();
    for e in rows(dir.path(), "enrollments.csv") {
        let class = e["classSourcedId"].clone();
        match (e["role"].as_str(), e["primary"].as_str()) {
            ("teacher", "true") => *primaries.entry(class).or_default() += 1,
            ("teacher", "false") => assert!(co.insert(class)),
            ("aide", "") => assert!(aided.insert(class)),
            ("student", "") => {}
            other => panic!("unexpected role/primary {other:?}"),
        }
    }
    assert_eq!(primaries.len() as u64, counts.classes);
    assert!(primaries.values().all(|&n| n == 1));
    let share = |n: usize| n as f64 / counts.classes as f64;
    assert!(
        (0.08..0.12).contains(&share(co.len())),
        "co-teachers {}",
        share(co.len())
    );
    assert!(
        (0.035..0.065).contains(&share(aided.len())),
        "aides {}",
        share(aided.len())
    );
}

#[test]
fn teachers_carry_about_five_classes_and_never_two_in_one_period() {
    let (dir, counts) = generate(3_000, 2);
    let classes = index(&rows(dir.path(), "classes.csv"));
    let mut load: HashMap<String, Vec<String>> = HashMap::new();
    for e in rows(dir.path(), "enrollments.csv") {
        if e["primary"] == "true" {
            let period = classes[&e["classSourcedId"]]["periods"].clone();
            load.entry(e["userSourcedId"].clone())
                .or_default()
                .push(period);
        }
    }
    for periods in load.values() {
        assert!(periods.len() <= CLASSES_PER_TEACHER);
        assert_eq!(periods.iter().collect::<HashSet<_>>().len(), periods.len());
    }
    let per_teacher = counts.classes as f64 / load.len() as f64;
    assert!((4.5..=5.0).contains(&per_teacher), "{per_teacher}");
}

#[test]
fn students_take_seven_classes_in_sections_of_at_most_twenty_five() {
    let (dir, _) = generate(2_345, 9);
    let mut per_student: HashMap<String, usize> = HashMap::new();
    let mut per_class: HashMap<String, usize> = HashMap::new();
    for e in rows(dir.path(), "enrollments.csv")
        .iter()
        .filter(|e| e["role"] == "student")
    {
        *per_student.entry(e["userSourcedId"].clone()).or_default() += 1;
        *per_class.entry(e["classSourcedId"].clone()).or_default() += 1;
    }
    assert_eq!(per_student.len(), 2_345);
    assert!(per_student.values().all(|&n| n == PERIODS));
    assert!(
        per_class.values().all(|&n| (20..=CLASS_SIZE).contains(&n)),
        "{per_class:?}"
    );
}

#[test]
fn users_carry_role_username_local_user_id_email_and_grades() {
    let (dir, _) = generate(600, 4);
    let users = rows(dir.path(), "users.csv");
    let roles: HashSet<_> = users.iter().map(|u| u["role"].as_str()).collect();
    assert_eq!(roles, HashSet::from(["student", "teacher", "aide"]));
    let usernames: HashSet<_> = users.iter().map(|u| u["username"].as_str()).collect();
    assert_eq!(usernames.len(), users.len());
    for u in &users {
        assert_eq!(u["enabledUser"], "true");
        assert!(u["userIds"].starts_with("{Local:") && u["userIds"].ends_with('}'));
        assert!(u["email"].starts_with(&u["username"]) && u["email"].contains('@'));
        assert!(!u["givenName"].is_empty() && !u["familyName"].is_empty());
        assert_eq!(u["role"] == "student", !u["grades"].is_empty());
    }
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let (a, _) = generate(1_100, 42);
    let (b, _) = generate(1_100, 42);
    let (c, _) = generate(1_100, 43);
    for name in [
        "manifest.csv",
        "orgs.csv",
        "academicSessions.csv",
        "courses.csv",
        "classes.csv",
        "users.csv",
        "enrollments.csv",
    ] {
        let bytes = |d: &tempfile::TempDir| std::fs::read(d.path().join(name)).unwrap();
        assert_eq!(bytes(&a), bytes(&b), "{name}");
    }
    let users = |d: &tempfile::TempDir| std::fs::read(d.path().join("users.csv")).unwrap();
    assert_ne!(users(&a), users(&c));
}

#[test]
fn enrollments_span_the_school_year_that_contains_today_and_end_in_the_future() {
    let (dir, _) = generate(40, 1);
    for e in rows(dir.path(), "enrollments.csv") {
        assert_eq!(e["beginDate"], "2025-07-01");
        assert_eq!(e["endDate"], "2026-06-30");
    }
    let sessions = index(&rows(dir.path(), "academicSessions.csv"));
    assert_eq!(sessions["as-2026-sy"]["schoolYear"], "2026");
    assert_eq!(sessions["as-2026-s1"]["endDate"], "2025-12-31");
    assert_eq!(sessions["as-2026-s2"]["startDate"], "2026-01-01");
}

#[test]
fn school_year_always_contains_today_and_ends_after_it() {
    let mut day = ymd(2023, 1, 1);
    while day < ymd(2026, 1, 1) {
        let y = school_year_containing(day);
        assert!(y.start <= day && day < y.end, "{day}: {y:?}");
        assert!(y.end >= ymd(y.ending_year, 6, 30));
        day += Duration::days(1);
    }
    assert_eq!(
        school_year_containing(ymd(2025, 7, 1)).start,
        ymd(2025, 7, 1)
    );
    assert_eq!(
        school_year_containing(ymd(2026, 6, 29)).end,
        ymd(2026, 6, 30)
    );
}

#[test]
fn tiny_and_empty_districts_still_produce_a_valid_school() {
    for students in [0, 1, 24] {
        let (dir, counts) = generate(students, 1);
        assert_eq!(counts.orgs, 2);
        assert_eq!(counts.classes, PERIODS as u64);
        let students_written = rows(dir.path(), "users.csv")
            .iter()
            .filter(|u| u["role"] == "student")
            .count();
        assert_eq!(students_written, students);
    }
}
