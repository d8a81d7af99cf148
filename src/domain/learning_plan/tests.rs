use std::path::Path;

use chrono::NaiveDate;

use super::*;
use crate::sources::scores::push::{GoalResult, StudentRef};

/// A small valid plan the validation cases edit; `x.toml`, subject key "science".
const BASE: &str = r#"version = "1"
title = "Science"
subjects = ["Science"]

[[goal_areas]]
key = "a"
name = "Alpha"
aliases = ["First"]
units = [
    { from = 100, unit = "u1", title = "U1" },
    { from = 200, unit = "u2", title = "U2" },
]

[[goal_areas]]
key = "b"
name = "Beta"
units = [{ from = 100, unit = "u1", title = "U1" }]
"#;

fn base_plan() -> SubjectPlan {
    LearningPlans::parse("science", "x.toml", BASE).unwrap()
}

fn math() -> SubjectPlan {
    LearningPlans::shipped().subject("math").unwrap().clone()
}

/// A mathematics result with these goal scores; everything placement ignores left empty.
fn result(overall: i64, goals: &[(&str, f64)]) -> AssessmentResult {
    AssessmentResult {
        student: StudentRef::default(),
        subject: "Mathematics".to_string(),
        course: None,
        term: "Fall 2024-2025".to_string(),
        test_date: NaiveDate::from_ymd_opt(2024, 9, 16).unwrap(),
        test_start_time: None,
        test_id: None,
        test_name: None,
        test_type: None,
        growth_event: None,
        duration_minutes: None,
        rit: overall,
        standard_error: None,
        percentile: None,
        rapid_guessing_percentage: None,
        norms_reference: None,
        goals: goals
            .iter()
            .map(|&(name, rit)| GoalResult {
                name: name.to_string(),
                rit,
                standard_error: None,
                range: None,
                adjective: None,
            })
            .collect(),
    }
}

/// (goal area, unit, rit, basis) of each placement, for compact assertions.
fn summary(placements: &[Placement]) -> Vec<(&str, &str, f64, Basis)> {
    placements
        .iter()
        .map(|p| (p.goal_area.as_str(), p.unit.as_str(), p.rit, p.basis))
        .collect()
}

fn shipped_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/learning-plans")
}

#[test]
fn shipped_plans_parse_and_embed_every_file_in_config() {
    let shipped = LearningPlans::shipped();
    let on_disk = LearningPlans::load_dir(&shipped_dir()).unwrap();
    let keys = |p: &LearningPlans| {
        p.subjects()
            .iter()
            .map(|s| s.key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&shipped),
        keys(&on_disk),
        "a plan file is not in SHIPPED"
    );
    for plan in on_disk.subjects() {
        let built_in = shipped.subject(&plan.key).unwrap();
        assert_eq!(built_in.version, plan.version);
        assert_eq!(built_in.goal_areas, plan.goal_areas);
    }
}

#[test]
fn shipped_math_has_the_five_documented_goal_areas_and_band_edges() {
    let math = math();
    let areas: Vec<&str> = math.goal_areas.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        areas,
        [
            "operations-algebra",
            "number-operations",
            "measurement-data",
            "geometry",
            "statistics-probability"
        ]
    );
    // 2015 math beginning-of-year means, grades 2–8, rounded (map-scores.md §6.3).
    for area in &math.goal_areas {
        let edges: Vec<i64> = area.units.iter().map(|u| u.from_rit).collect();
        assert_eq!(
            edges,
            [100, 177, 190, 202, 211, 218, 223, 226],
            "{}",
            area.key
        );
    }
}

#[test]
fn every_shipped_area_covers_100_to_350_with_increasing_bands() {
    for plan in LearningPlans::shipped().subjects() {
        for area in &plan.goal_areas {
            let first = &area.units[0];
            let last = area.units.last().unwrap();
            assert_eq!(first.from_rit, 100, "{}/{}", plan.key, area.key);
            assert!(last.from_rit <= 350, "{}/{}", plan.key, area.key);
            assert!(area.units.windows(2).all(|w| w[0].from_rit < w[1].from_rit));
            assert_eq!(area.unit_for_rit(100.0), first);
            assert_eq!(area.unit_for_rit(350.0), last);
        }
    }
}

#[test]
fn for_subject_matches_export_names_ignoring_case_spacing_and_punctuation() {
    let plans = LearningPlans::shipped();
    let cases: &[(&str, Option<&str>)] = &[
        ("Mathematics", Some("math")),
        ("MATHEMATICS", Some("math")),
        ("math", Some("math")),
        ("Math K-12", Some("math")),
        ("math k12", Some("math")),
        ("Math 6+", Some("math")),
        ("Reading", None),
        ("", None),
        (" - ", None),
    ];
    for &(exported, expected) in cases {
        let found = plans.for_subject(exported).map(|p| p.key.as_str());
        assert_eq!(found, expected, "{exported:?}");
    }
    assert_eq!(
        plans.subject("math").unwrap().title,
        "Mathematics, grades 2–8"
    );
    assert!(
        plans.subject("Mathematics").is_none(),
        "subject() takes the key"
    );
}

#[test]
fn unit_for_rit_puts_a_rit_at_from_in_that_band_and_clamps_outside_100_to_350() {
    let text = BASE.replace(
        "    { from = 200, unit = \"u2\", title = \"U2\" },\n",
        "    { from = 150, unit = \"u2\", title = \"U2\" },\n    { from = 200, unit = \"u3\", title = \"U3\" },\n",
    );
    let plan = LearningPlans::parse("science", "x.toml", &text).unwrap();
    let area = plan.goal_area("a").unwrap();
    let cases: &[(f64, &str)] = &[
        (100.0, "u1"),
        (149.99, "u1"),
        (150.0, "u2"),
        (199.5, "u2"),
        (200.0, "u3"),
        (349.9, "u3"),
        (350.0, "u3"),
        // Outside what the push accepts, but never a panic: the nearest band.
        (99.0, "u1"),
        (351.0, "u3"),
        (f64::NAN, "u1"),
    ];
    for &(rit, unit) in cases {
        assert_eq!(area.unit_for_rit(rit).key, unit, "RIT {rit}");
    }
}

#[test]
fn shipped_math_band_edges_fall_on_the_grade_means() {
    let math = math();
    let area = math.goal_area("operations-algebra").unwrap();
    let cases: &[(f64, &str)] = &[
        (150.0, "g2-ready-add-subtract-20"),
        (176.9, "g2-ready-add-subtract-20"),
        (177.0, "g2-add-subtract-word-problems"),
        (189.9, "g2-add-subtract-word-problems"),
        (190.0, "g3-multiplication-division"),
        (225.9, "g7-proportional-relationships-equations"),
        (226.0, "g8-linear-equations-functions"),
        (349.9, "g8-linear-equations-functions"),
    ];
    for &(rit, unit) in cases {
        assert_eq!(area.unit_for_rit(rit).key, unit, "RIT {rit}");
    }
    assert_eq!(
        area.unit("g3-multiplication-division").unwrap().title,
        "Grade 3: Multiplication and division within 100"
    );
    assert!(area.unit("g9-calculus").is_none());
}

#[test]
fn area_for_name_ignores_case_spacing_punctuation_and_reads_ampersand_as_and() {
    let math = math();
    let cases: &[(&str, Option<&str>)] = &[
        (
            "Operations and Algebraic Thinking",
            Some("operations-algebra"),
        ),
        (
            "OPERATIONS AND ALGEBRAIC THINKING",
            Some("operations-algebra"),
        ),
        (
            "Operations  and Algebraic-Thinking",
            Some("operations-algebra"),
        ),
        (
            "Operations & Algebraic Thinking",
            Some("operations-algebra"),
        ),
        ("Expressions and Equations", Some("operations-algebra")),
        ("Algebra", Some("operations-algebra")),
        ("Number and Operations", Some("number-operations")),
        (
            "Number and Operations: Fractions",
            Some("number-operations"),
        ),
        ("Number & Operations — Fractions", Some("number-operations")),
        (
            "The Real and Complex Number Systems",
            Some("number-operations"),
        ),
        ("Real & Complex Number Systems", Some("number-operations")),
        ("Number Sense", Some("number-operations")),
        ("Measurement and Data", Some("measurement-data")),
        ("Geometry", Some("geometry")),
        ("Statistics and Probability", Some("statistics-probability")),
        (
            "Data Analysis and Probability",
            Some("statistics-probability"),
        ),
        // "+" is punctuation, not "and": the words differ.
        ("Operations + Algebraic Thinking", None),
        ("Problem Solving", None),
        ("", None),
        ("—", None),
    ];
    for &(exported, expected) in cases {
        let found = math.area_for_name(exported).map(|a| a.key.as_str());
        assert_eq!(found, expected, "{exported:?}");
    }
}

#[test]
fn place_uses_the_goal_rit_where_the_result_has_one_and_the_overall_rit_elsewhere() {
    // A Math 2–5 result: no Statistics and Probability goal.
    let result = result(
        205,
        &[
            ("Operations and Algebraic Thinking", 192.0),
            ("Number and Operations", 230.0),
            ("Measurement and Data", 212.5),
            ("Geometry", 176.0),
        ],
    );
    assert_eq!(
        summary(&math().place(&result)),
        [
            (
                "operations-algebra",
                "g3-multiplication-division",
                192.0,
                Basis::GoalArea
            ),
            (
                "number-operations",
                "g8-irrational-numbers-exponents",
                230.0,
                Basis::GoalArea
            ),
            (
                "measurement-data",
                "g5-volume-conversions",
                212.5,
                Basis::GoalArea
            ),
            ("geometry", "g2-ready-shapes", 176.0, Basis::GoalArea),
            (
                "statistics-probability",
                "g4-line-plots-fractions",
                205.0,
                Basis::Overall
            ),
        ]
    );
}

#[test]
fn place_without_goals_places_every_area_by_the_overall_rit() {
    let placements = math().place(&result(219, &[]));
    assert_eq!(placements.len(), 5);
    for p in &placements {
        assert_eq!((p.rit, p.basis), (219.0, Basis::Overall), "{}", p.goal_area);
        assert!(p.unit.starts_with("g6-"), "{}: {}", p.goal_area, p.unit);
    }
}

#[test]
fn place_ignores_goal_names_no_area_claims() {
    let with_unknown = result(
        195,
        &[("Problem Solving", 300.0), ("Reading: Literature", 120.0)],
    );
    assert_eq!(math().place(&with_unknown), math().place(&result(195, &[])));
}

#[test]
fn place_takes_the_lowest_rit_when_two_goals_fall_in_one_area() {
    let split = result(
        210,
        &[
            ("Number and Operations in Base Ten", 215.0),
            ("Number and Operations - Fractions", 195.0),
        ],
    );
    let placements = math().place(&split);
    let number = placements
        .iter()
        .find(|p| p.goal_area == "number-operations")
        .unwrap();
    assert_eq!(
        (number.unit.as_str(), number.rit, number.basis),
        ("g3-fractions-as-numbers", 195.0, Basis::GoalArea)
    );
}

#[test]
fn basis_serialises_in_snake_case() {
    assert_eq!(serde_json::to_value(Basis::GoalArea).unwrap(), "goal_area");
    assert_eq!(serde_json::to_value(Basis::Overall).unwrap(), "overall");
}

#[test]
fn base_plan_is_valid_and_allows_one_unit_key_in_two_areas() {
    let plan = base_plan();
    assert_eq!(plan.key, "science");
    assert_eq!(
        plan.goal_area("a").unwrap().unit("u1").unwrap().from_rit,
        100
    );
    assert_eq!(
        plan.goal_area("b").unwrap().unit("u1").unwrap().from_rit,
        100
    );
    assert_eq!(plan.area_for_name("first").unwrap().key, "a");
    assert_eq!(plan.area_for_name("beta").unwrap().key, "b");
}

#[test]
fn parse_refuses_invalid_plans_naming_the_file_and_key_path() {
    let long_key = "k".repeat(65);
    let long = format!("key = \"{long_key}\"");
    // (what is wrong, replace this in BASE, with this, the error)
    let cases: Vec<(&str, &str, &str, String)> = vec![
        (
            "missing top-level key",
            "version = \"1\"\n",
            "",
            "x.toml: missing field `version`".into(),
        ),
        (
            "unknown top-level key",
            "version = \"1\"\n",
            "version = \"1\"\ncolour = \"red\"\n",
            "x.toml: colour: unknown field `colour`, expected one of `version`, `title`, `subjects`, `goal_areas`".into(),
        ),
        (
            "unknown key in a band",
            "{ from = 200, unit = \"u2\", title = \"U2\" }",
            "{ from = 200, unit = \"u2\", title = \"U2\", skill = \"s\" }",
            "x.toml: goal_areas[0].units[1].skill: unknown field `skill`, expected one of `from`, `unit`, `title`".into(),
        ),
        (
            "missing key in a band",
            "{ from = 200, unit = \"u2\", title = \"U2\" }",
            "{ from = 200, unit = \"u2\" }",
            "x.toml: goal_areas[0].units[1]: missing field `title`".into(),
        ),
        (
            "missing key in an area",
            "key = \"b\"\n",
            "",
            "x.toml: goal_areas[1]: missing field `key`".into(),
        ),
        (
            "wrong type",
            "from = 200",
            "from = \"200\"",
            "x.toml: goal_areas[0].units[1].from: invalid type: string \"200\", expected i64".into(),
        ),
        (
            "first band not at 100",
            "units = [{ from = 100,",
            "units = [{ from = 120,",
            "x.toml: goal_areas[1].units[0].from: 120 must be 100: the first band starts at the lowest RIT".into(),
        ),
        (
            "band not above the previous one",
            "from = 200",
            "from = 90",
            "x.toml: goal_areas[0].units[1].from: 90 is not above the previous band's 100".into(),
        ),
        (
            "band equal to the previous one",
            "from = 200",
            "from = 100",
            "x.toml: goal_areas[0].units[1].from: 100 is not above the previous band's 100".into(),
        ),
        (
            "band above 350",
            "from = 200",
            "from = 351",
            "x.toml: goal_areas[0].units[1].from: 351 is above the highest RIT, 350".into(),
        ),
        (
            "unit key twice in one area",
            "unit = \"u2\"",
            "unit = \"u1\"",
            "x.toml: goal_areas[0].units[1].unit: \"u1\" is already the unit of goal_areas[0].units[0]".into(),
        ),
        (
            "unit key not a key",
            "unit = \"u2\"",
            "unit = \"U_2\"",
            "x.toml: goal_areas[0].units[1].unit: \"U_2\" must be 1 to 64 of a-z, 0-9 and '-'".into(),
        ),
        (
            "empty unit title",
            "title = \"U2\"",
            "title = \"  \"",
            "x.toml: goal_areas[0].units[1].title: must not be empty".into(),
        ),
        (
            "area key twice",
            "key = \"b\"",
            "key = \"a\"",
            "x.toml: goal_areas[1].key: \"a\" is already the key of goal_areas[0]".into(),
        ),
        (
            "area key with capitals and space",
            "key = \"a\"",
            "key = \"Alpha Area\"",
            "x.toml: goal_areas[0].key: \"Alpha Area\" must be 1 to 64 of a-z, 0-9 and '-'".into(),
        ),
        (
            "area key over 64 characters",
            "key = \"a\"",
            &long,
            format!("x.toml: goal_areas[0].key: \"{long_key}\" must be 1 to 64 of a-z, 0-9 and '-'"),
        ),
        (
            "alias claimed by two areas",
            "name = \"Beta\"\n",
            "name = \"Beta\"\naliases = [\"FIRST!\"]\n",
            "x.toml: goal_areas[1].aliases[0]: \"FIRST!\" is already claimed by goal area \"a\" (goal_areas[0].aliases[0])".into(),
        ),
        (
            "name claimed by another area",
            "name = \"Beta\"",
            "name = \"alpha\"",
            "x.toml: goal_areas[1].name: \"alpha\" is already claimed by goal area \"a\" (goal_areas[0].name)".into(),
        ),
        (
            "alias with no letter or digit",
            "aliases = [\"First\"]",
            "aliases = [\"First\", \"--\"]",
            "x.toml: goal_areas[0].aliases[1]: \"--\" has no letter or digit".into(),
        ),
        (
            "area without bands",
            "units = [{ from = 100, unit = \"u1\", title = \"U1\" }]",
            "units = []",
            "x.toml: goal_areas[1].units: names no band".into(),
        ),
        (
            "no subject names",
            "subjects = [\"Science\"]",
            "subjects = []",
            "x.toml: subjects: names no subject".into(),
        ),
        (
            "subject name with no letter or digit",
            "subjects = [\"Science\"]",
            "subjects = [\"Science\", \" \"]",
            "x.toml: subjects[1]: \" \" has no letter or digit".into(),
        ),
        (
            "empty title",
            "title = \"Science\"",
            "title = \"\"",
            "x.toml: title: must not be empty".into(),
        ),
        (
            "not TOML",
            "title = \"Science\"",
            "title = \"Science",
            "x.toml: line 2, column 17: invalid basic string, expected `\"`".into(),
        ),
    ];
    for (what, from, to, expected) in cases {
        assert!(BASE.contains(from), "{what}: {from:?} is not in BASE");
        let text = BASE.replacen(from, to, 1);
        let err = LearningPlans::parse("science", "x.toml", &text).unwrap_err();
        assert_eq!(err.to_string(), expected, "{what}");
    }
}

#[test]
fn parse_refuses_a_plan_without_goal_areas_and_a_bad_subject_key() {
    let no_areas = "version = \"1\"\ntitle = \"T\"\nsubjects = [\"Science\"]\ngoal_areas = []\n";
    let err = LearningPlans::parse("science", "x.toml", no_areas).unwrap_err();
    assert_eq!(err.to_string(), "x.toml: goal_areas: names no goal area");

    let err = LearningPlans::parse("Science", "Science.toml", BASE).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Science.toml: the subject key \"Science\" (the file name) must be 1 to 64 of a-z, 0-9 and '-'"
    );
}

#[test]
fn parse_accepts_a_last_band_from_350() {
    let text = BASE.replace("from = 200", "from = 350");
    let plan = LearningPlans::parse("science", "x.toml", &text).unwrap();
    let area = plan.goal_area("a").unwrap();
    assert_eq!(area.unit_for_rit(349.9).key, "u1");
    assert_eq!(area.unit_for_rit(350.0).key, "u2");
}

#[test]
fn load_dir_reads_every_toml_file_keyed_by_its_stem() {
    let dir = tempfile::tempdir().unwrap();
    let math = std::fs::read_to_string(shipped_dir().join("math.toml")).unwrap();
    std::fs::write(dir.path().join("math.toml"), math).unwrap();
    std::fs::write(dir.path().join("science.toml"), BASE).unwrap();
    // Neither is a plan: another extension, an editor's lock file.
    std::fs::write(dir.path().join("README.md"), "# plans").unwrap();
    std::fs::write(dir.path().join(".#science.toml"), "not toml [").unwrap();

    let plans = LearningPlans::load_dir(dir.path()).unwrap();
    let keys: Vec<&str> = plans.subjects().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["math", "science"]);
    assert_eq!(plans.for_subject("Mathematics").unwrap().key, "math");
    assert_eq!(plans.for_subject("science").unwrap().key, "science");
}

#[test]
fn load_dir_refuses_a_directory_with_a_broken_file_naming_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("math.toml"),
        BASE.replace("Science", "Math"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("science.toml"),
        BASE.replace("from = 200", "from = 50"),
    )
    .unwrap();
    let err = LearningPlans::load_dir(dir.path()).unwrap_err();
    let file = dir.path().join("science.toml").display().to_string();
    assert_eq!(
        err.to_string(),
        format!("{file}: goal_areas[0].units[1].from: 50 is not above the previous band's 100")
    );
}

#[test]
fn load_dir_refuses_a_subject_name_claimed_by_two_plans() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("math.toml"),
        BASE.replace("Science", "Math"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("science.toml"),
        BASE.replace("[\"Science\"]", "[\"Science\", \"MATH\"]"),
    )
    .unwrap();
    let err = LearningPlans::load_dir(dir.path()).unwrap_err();
    let math = dir.path().join("math.toml").display().to_string();
    let science = dir.path().join("science.toml").display().to_string();
    assert_eq!(
        err.to_string(),
        format!("{science}: subjects[1]: \"MATH\" is already a subject name of math ({math})")
    );
}

#[test]
fn load_dir_refuses_an_empty_or_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "").unwrap();
    let err = LearningPlans::load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, PlanError::NoPlans { .. }), "{err}");

    let missing = dir.path().join("missing");
    let err = LearningPlans::load_dir(&missing).unwrap_err();
    assert!(matches!(err, PlanError::Read { .. }), "{err}");
    assert!(err.to_string().starts_with(&missing.display().to_string()));
}

#[test]
fn a_title_names_a_subject_only_as_whole_words() {
    let plans = LearningPlans::shipped();
    let cases = [
        ("MAP Growth Math 2-5 Fall 2026", Some("Math 2-5")),
        ("MAP Growth Mathematics", Some("Mathematics")),
        ("math: winter benchmark", Some("Math")),
        ("MATHS check-in", Some("Maths")),
        ("Aftermath of the unit quiz", None),
        ("Reading Fall 2026", None),
        ("", None),
    ];
    for (title, want) in cases {
        assert_eq!(plans.subject_in_title(title), want, "{title}");
    }
}
