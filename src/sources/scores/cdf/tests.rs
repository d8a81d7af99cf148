use std::io::Write;
use std::time::{Duration, Instant};

use super::*;
use crate::domain::problem::Warning;

const LABEL: &str = "fall-2026.zip";

/// What one read gave: the results, the rows counted, and the problems.
struct Outcome {
    results: Vec<CdfResult>,
    rows: u64,
    errors: Vec<Problem>,
    warnings: Vec<Warning>,
}

impl Outcome {
    fn only(&self) -> &AssessmentResult {
        assert!(self.errors.is_empty(), "{:?}", self.errors);
        assert_eq!(self.results.len(), 1, "{:?}", self.results);
        &self.results[0].result
    }

    /// The error at `line` about `field`, with `wanted` in its message.
    fn error(&self, line: Option<u64>, field: Option<&str>, wanted: &str) -> &Problem {
        self.errors
            .iter()
            .find(|e| e.line() == line && e.field.as_deref() == field)
            .filter(|e| e.message.contains(wanted))
            .unwrap_or_else(|| {
                panic!(
                    "no error at {line:?} {field:?} saying {wanted:?}: {:?}",
                    self.errors
                )
            })
    }
}

fn settings() -> ImportSettings {
    ImportSettings::default()
}

fn read_with(bytes: &[u8], settings: &ImportSettings) -> Outcome {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    let mut log = ProblemLog::new(100);
    let mut results = Vec::new();
    let rows = read(file.path(), LABEL, settings, &mut log, &mut |r| {
        results.push(r);
        true
    });
    let path = file.path().display().to_string();
    let (errors, warnings) = log.into_parts();
    for problem in &errors {
        // Problems name the upload as its sender knows it, never where the server keeps it.
        assert!(!problem.to_string().contains(&path), "{problem}");
    }
    Outcome {
        results,
        rows,
        errors,
        warnings,
    }
}

fn read_bytes(bytes: &[u8]) -> Outcome {
    read_with(bytes, &settings())
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, contents) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(contents).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A file of a header and one row from (header, cell) pairs.
fn csv_of(columns: &[(&str, &str)]) -> String {
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let row: Vec<&str> = columns.iter().map(|(_, v)| *v).collect();
    format!("{}\n{}\n", header.join(","), row.join(","))
}

/// The required columns and nothing else.
const MINIMAL: [(&str, &str); 5] = [
    ("TermName", "Fall 2026-2027"),
    ("StudentID", "100234"),
    ("Subject", "Mathematics"),
    ("TestStartDate", "2026-09-15"),
    ("TestRITScore", "221"),
];

/// The minimal file, plus or instead of some columns.
fn minimal_with(changes: &[(&str, &str)]) -> String {
    let mut columns: Vec<(&str, &str)> = MINIMAL.to_vec();
    for &(header, value) in changes {
        match columns.iter_mut().find(|(h, _)| *h == header) {
            Some(column) => column.1 = value,
            None => columns.push((header, value)),
        }
    }
    csv_of(&columns)
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn at(h: u32, m: u32, s: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, s).unwrap()
}

/// Two goal areas scored, the third named but not scored, the rest empty.
fn goal_cells(columns: &mut Vec<(String, String)>) {
    let goals = [
        [
            "Operations and Algebraic Thinking",
            "224",
            "6.8",
            "217-231",
            "HiAvg",
        ],
        ["Geometry", "210.5", "7.1", "203.4-217.6", "avg"],
        ["Statistics and Probability", "", "", "", ""],
    ];
    for n in 1..=MAX_GOALS {
        let cells = goals.get(n - 1).copied().unwrap_or([""; 5]);
        for (part, value) in ["Name", "RitScore", "StdErr", "Range", "Adjective"]
            .iter()
            .zip(cells)
        {
            columns.push((format!("Goal{n}{part}"), value.to_string()));
        }
    }
}

fn csv_of_owned(columns: &[(String, String)]) -> String {
    let borrowed: Vec<(&str, &str)> = columns
        .iter()
        .map(|(h, v)| (h.as_str(), v.as_str()))
        .collect();
    csv_of(&borrowed)
}

fn pairs(columns: &[(&str, &str)]) -> Vec<(String, String)> {
    columns
        .iter()
        .map(|(h, v)| (h.to_string(), v.to_string()))
        .collect()
}

/// The current combined layout: identity block, test event, growth windows, goals, and more.
fn combined_layout() -> String {
    let mut columns = pairs(&[
        ("TermName", "Fall 2026-2027"),
        ("DistrictName", "Lincoln USD"),
        ("District_StateID", "IL-1"),
        ("SchoolName", "\"Lincoln Middle, East\""),
        ("School_StateID", "IL-1-7"),
        ("StudentLastName", "Lee"),
        ("StudentFirstName", "Ann"),
        ("StudentMI", ""),
        ("StudentID", "100234"),
        ("Student_StateID", ""),
        ("StudentDateOfBirth", "2014-03-02"),
        ("StudentEthnicGroup", "Asian"),
        ("NWEAStandard_EthnicGroup", "Asian"),
        ("StudentGender", "F"),
        ("Grade", "6"),
        ("NWEAStandard_Grade", "6"),
        ("Subject", "Mathematics"),
        ("Course", "Math K-12"),
        ("NormsReferenceData", ""),
        ("WISelectedAYFall", "4"),
        ("WISelectedAYWinter", "20"),
        ("TestType", "Survey With Goals"),
        ("TestName", "Growth: Math 6+ IL 2020"),
        ("TestStartDate", "2026-09-15"),
        ("TestStartTime", "13:05:09"),
        ("TestDurationMinutes", "48"),
        ("TestRITScore", "221"),
        ("TestStandardError", "3.2"),
        ("TestPercentile", "63"),
        ("AchievementQuintile", "HiAvg"),
        ("PercentCorrect", "55"),
        ("RapidGuessingPercentage", ""),
        ("FallToFallProjectedGrowth", "7"),
        ("FallToFallObservedGrowth", ""),
        ("FalltoWinterMetProjectedGrowth", ""),
        ("LexileScore", ""),
        ("QuantileScore", "BR400"),
    ]);
    goal_cells(&mut columns);
    columns.extend(pairs(&[
        ("AccommodationCategories", ""),
        ("TypicalFallToFallGrowth", "8"),
        ("TypicalWintertoWinterGrowth", "7"),
        ("ProjectedProficiencyStudy1", "IL SAT"),
        ("ProjectedProficiencyLevel1", "Met"),
    ]));
    csv_of_owned(&columns)
}

/// Post-2015, with TestID: MeasurementScale, Discipline, GrowthMeasureYN, US dates.
fn post_2015_layout() -> String {
    let mut columns = pairs(&[
        ("TermName", "Fall 2026-2027"),
        ("StudentID", "100234"),
        ("SchoolName", "Lincoln Middle"),
        ("MeasurementScale", "Mathematics"),
        ("Discipline", "Math K-12"),
        ("GrowthMeasureYN", "TRUE"),
        ("WISelectedAYFall", "4"),
        ("TestType", "Survey With Goals"),
        ("TestName", "Growth: Math 6+ IL 2020"),
        ("TestID", "T-77"),
        ("TestStartDate", "09/15/2026"),
        ("TestDurationMinutes", "48"),
        ("TestRITScore", "221"),
        ("TestStandardError", "3.2"),
        ("TestPercentile", "63"),
        ("FallToFallProjectedGrowth", "7"),
        ("RITtoReadingMin", ""),
    ]);
    goal_cells(&mut columns);
    columns.extend(pairs(&[
        ("TestStartTime", "1:05:09 PM"),
        ("PercentCorrect", "55"),
        ("ProjectedProficiencyStudy1", "IL SAT"),
    ]));
    csv_of_owned(&columns)
}

/// Pre-2015: as post-2015 without the growth windows, M/D/YYYY dates, Yes/No flags.
fn pre_2015_layout() -> String {
    let mut columns = pairs(&[
        ("TermName", "Fall 2026-2027"),
        ("StudentID", "100234"),
        ("SchoolName", "Lincoln Middle"),
        ("MeasurementScale", "Mathematics"),
        ("Discipline", "Math K-12"),
        ("GrowthMeasureYN", "Yes"),
        ("TestType", "Survey With Goals"),
        ("TestName", "Growth: Math 6+ IL 2020"),
        ("TestID", "T-77"),
        ("TestStartDate", "9/15/2026"),
        ("TestDurationMinutes", "48"),
        ("TestRITScore", "221"),
        ("TestStandardError", "3.2"),
        ("TestPercentile", "63"),
        ("TypicalFallToFallGrowth", "8"),
        ("RITtoReadingScore", ""),
    ]);
    goal_cells(&mut columns);
    columns.extend(pairs(&[
        ("TestStartTime", "1:05:09 pm"),
        ("PercentCorrect", "55"),
        ("ProjectedProficiency", "Met"),
    ]));
    csv_of_owned(&columns)
}

fn expected_combined() -> AssessmentResult {
    AssessmentResult {
        student: StudentRef {
            sourced_id: None,
            identifier: Some("100234".into()),
            state_id: None,
        },
        subject: "Mathematics".into(),
        course: Some("Math K-12".into()),
        term: "Fall 2026-2027".into(),
        test_date: day(2026, 9, 15),
        test_start_time: Some(at(13, 5, 9)),
        test_id: None,
        test_name: Some("Growth: Math 6+ IL 2020".into()),
        test_type: Some("Survey With Goals".into()),
        growth_event: None,
        duration_minutes: Some(48),
        rit: 221,
        standard_error: Some(3.2),
        percentile: Some(63),
        rapid_guessing_percentage: None,
        norms_reference: None,
        goals: vec![
            GoalResult {
                name: "Operations and Algebraic Thinking".into(),
                rit: 224.0,
                standard_error: Some(6.8),
                range: Some((217.0, 231.0)),
                adjective: Some(Adjective::HiAvg),
            },
            GoalResult {
                name: "Geometry".into(),
                rit: 210.5,
                standard_error: Some(7.1),
                range: Some((203.4, 217.6)),
                adjective: Some(Adjective::Avg),
            },
        ],
    }
}

#[test]
fn each_layout_era_reads_to_the_same_record() {
    let combined = expected_combined();
    let older = AssessmentResult {
        test_id: Some("T-77".into()),
        growth_event: Some(true),
        ..combined.clone()
    };
    let eras = [
        ("combined", combined_layout(), combined),
        ("post-2015", post_2015_layout(), older.clone()),
        ("pre-2015", pre_2015_layout(), older),
    ];
    for (era, text, expected) in eras {
        let outcome = read_bytes(text.as_bytes());
        assert_eq!(outcome.only(), &expected, "{era}");
        assert_eq!(outcome.rows, 1, "{era}");
        assert_eq!(outcome.results[0].line, 2, "{era}");
        // The ~150 columns not read are ignored without a word.
        assert!(outcome.warnings.is_empty(), "{era}: {:?}", outcome.warnings);
    }
}

#[test]
fn headers_are_matched_whatever_their_case_underscores_spaces_or_hyphens() {
    let expected = read_bytes(minimal_with(&[("Student_StateID", "IL-88")]).as_bytes())
        .only()
        .clone();
    assert_eq!(expected.student.state_id.as_deref(), Some("IL-88"));
    let headers = [
        "TermName,StudentID,Subject,TestStartDate,TestRITScore,Student_StateID",
        "termname,student_id,SUBJECT,teststartdate,TESTRITSCORE,studentstateid",
        "Term Name,Student ID,Subject,Test Start Date,Test RIT Score,Student State ID",
        "term-name,student-id,subject,test_start_date,Test_RIT_Score,STUDENT_STATEID",
        // Unknown columns in the spellings the exports mix are ignored.
        "TermName,StudentID,Subject,TestStartDate,TestRITScore,Student_StateID,TypicalWintertoWinterGrowth,FalltoFallObservedGrowth",
    ];
    let cells = [
        "Fall 2026-2027",
        "100234",
        "Mathematics",
        "2026-09-15",
        "221",
        "IL-88",
        "5",
        "4",
    ];
    for header in headers {
        let width = header.split(',').count();
        let text = format!("{header}\n{}\n", cells[..width].join(","));
        let outcome = read_bytes(text.as_bytes());
        assert_eq!(outcome.only(), &expected, "{header}");
        assert!(
            outcome.warnings.is_empty(),
            "{header}: {:?}",
            outcome.warnings
        );
    }
}

/// (header, cell, what is read, as `{:?}` prints it)
type Good = (
    &'static str,
    &'static str,
    fn(&AssessmentResult) -> String,
    &'static str,
);

#[test]
fn every_value_type_reads_its_accepted_spellings() {
    let table: Vec<Good> = vec![
        ("TestRITScore", "215", |r| format!("{:?}", r.rit), "215"),
        ("TestRITScore", "215.0", |r| format!("{:?}", r.rit), "215"),
        ("TestRITScore", "100", |r| format!("{:?}", r.rit), "100"),
        ("TestRITScore", "350", |r| format!("{:?}", r.rit), "350"),
        (
            "TestStandardError",
            "3.25",
            |r| format!("{:?}", r.standard_error),
            "Some(3.25)",
        ),
        (
            "TestStandardError",
            "0",
            |r| format!("{:?}", r.standard_error),
            "Some(0.0)",
        ),
        (
            "TestStandardError",
            ".5",
            |r| format!("{:?}", r.standard_error),
            "Some(0.5)",
        ),
        (
            "TestPercentile",
            "1",
            |r| format!("{:?}", r.percentile),
            "Some(1)",
        ),
        (
            "TestPercentile",
            "99",
            |r| format!("{:?}", r.percentile),
            "Some(99)",
        ),
        (
            "TestDurationMinutes",
            "0",
            |r| format!("{:?}", r.duration_minutes),
            "Some(0)",
        ),
        (
            "TestDurationMinutes",
            "1440",
            |r| format!("{:?}", r.duration_minutes),
            "Some(1440)",
        ),
        (
            "RapidGuessingPercentage",
            "12.5",
            |r| format!("{:?}", r.rapid_guessing_percentage),
            "Some(12.5)",
        ),
        (
            "RapidGuessingPercentage",
            "100",
            |r| format!("{:?}", r.rapid_guessing_percentage),
            "Some(100.0)",
        ),
        (
            "TestStartDate",
            "2026-02-28",
            |r| r.test_date.to_string(),
            "2026-02-28",
        ),
        (
            "TestStartDate",
            "2/3/2026",
            |r| r.test_date.to_string(),
            "2026-02-03",
        ),
        (
            "TestStartDate",
            "02/03/2026",
            |r| r.test_date.to_string(),
            "2026-02-03",
        ),
        (
            "TestStartDate",
            "2/29/2028",
            |r| r.test_date.to_string(),
            "2028-02-29",
        ),
        (
            "TestStartTime",
            "9:05:07",
            |r| format!("{:?}", r.test_start_time),
            "Some(09:05:07)",
        ),
        (
            "TestStartTime",
            "09:05",
            |r| format!("{:?}", r.test_start_time),
            "Some(09:05:00)",
        ),
        (
            "TestStartTime",
            "23:59:59",
            |r| format!("{:?}", r.test_start_time),
            "Some(23:59:59)",
        ),
        (
            "TestStartTime",
            "9:05 AM",
            |r| format!("{:?}", r.test_start_time),
            "Some(09:05:00)",
        ),
        (
            "TestStartTime",
            "12:30:00 AM",
            |r| format!("{:?}", r.test_start_time),
            "Some(00:30:00)",
        ),
        (
            "TestStartTime",
            "12:30:00 PM",
            |r| format!("{:?}", r.test_start_time),
            "Some(12:30:00)",
        ),
        (
            "TestStartTime",
            "1:30:00pm",
            |r| format!("{:?}", r.test_start_time),
            "Some(13:30:00)",
        ),
        (
            "GrowthMeasureYN",
            "Yes",
            |r| format!("{:?}", r.growth_event),
            "Some(true)",
        ),
        (
            "GrowthMeasureYN",
            "y",
            |r| format!("{:?}", r.growth_event),
            "Some(true)",
        ),
        (
            "GrowthMeasureYN",
            "TRUE",
            |r| format!("{:?}", r.growth_event),
            "Some(true)",
        ),
        (
            "GrowthMeasureYN",
            "1",
            |r| format!("{:?}", r.growth_event),
            "Some(true)",
        ),
        (
            "GrowthMeasureYN",
            "NO",
            |r| format!("{:?}", r.growth_event),
            "Some(false)",
        ),
        (
            "GrowthMeasureYN",
            "n",
            |r| format!("{:?}", r.growth_event),
            "Some(false)",
        ),
        (
            "GrowthMeasureYN",
            "false",
            |r| format!("{:?}", r.growth_event),
            "Some(false)",
        ),
        (
            "GrowthMeasureYN",
            "0",
            |r| format!("{:?}", r.growth_event),
            "Some(false)",
        ),
        (
            "TestID",
            " T-9 ",
            |r| format!("{:?}", r.test_id),
            "Some(\"T-9\")",
        ),
        (
            "NormsReferenceData",
            "2020",
            |r| format!("{:?}", r.norms_reference),
            "Some(\"2020\")",
        ),
        (
            "Subject",
            "\"Language Usage, Grammar\"",
            |r| r.subject.clone(),
            "Language Usage, Grammar",
        ),
        (
            "TermName",
            "\"Fall \"\"A\"\"\"",
            |r| r.term.clone(),
            "Fall \"A\"",
        ),
    ];
    for (header, cell, get, expected) in table {
        let outcome = read_bytes(minimal_with(&[(header, cell)]).as_bytes());
        assert_eq!(get(outcome.only()), expected, "{header} = {cell:?}");
    }
}

#[test]
fn goal_areas_read_every_spelling_and_leave_out_unscored_ones() {
    let with_goal = |cells: [&str; 5]| {
        let columns: Vec<(String, String)> = ["Name", "RitScore", "StdErr", "Range", "Adjective"]
            .iter()
            .zip(cells)
            .map(|(part, value)| (format!("Goal1{part}"), value.to_string()))
            .collect();
        let mut all = pairs(&MINIMAL);
        all.extend(columns);
        read_bytes(csv_of_owned(&all).as_bytes())
    };
    // (cells, the goal read)
    let table: [([&str; 5], Option<GoalResult>); 6] = [
        (
            ["Geometry", "210", "7", "203 - 217", "LOAVG"],
            Some(GoalResult {
                name: "Geometry".into(),
                rit: 210.0,
                standard_error: Some(7.0),
                range: Some((203.0, 217.0)),
                adjective: Some(Adjective::LoAvg),
            }),
        ),
        (
            ["Geometry", "210", "", "", ""],
            Some(GoalResult {
                name: "Geometry".into(),
                rit: 210.0,
                standard_error: None,
                range: None,
                adjective: None,
            }),
        ),
        (
            ["Geometry", "350", "", "210-210", "high"],
            Some(GoalResult {
                name: "Geometry".into(),
                rit: 350.0,
                standard_error: None,
                range: Some((210.0, 210.0)),
                adjective: Some(Adjective::High),
            }),
        ),
        // Named but not scored: MAP lists the areas of tests that do not score them.
        (["Geometry", "", "", "", ""], None),
        (["Geometry", "", "7", "203-217", "Low"], None),
        (["", "", "", "", ""], None),
    ];
    for (cells, expected) in table {
        let outcome = with_goal(cells);
        assert_eq!(
            outcome.only().goals,
            expected.into_iter().collect::<Vec<_>>(),
            "{cells:?}"
        );
    }
    // All eight areas.
    let mut all = pairs(&MINIMAL);
    for n in 1..=8 {
        for (part, value) in [
            ("Name", format!("Area {n}")),
            ("RitScore", format!("{}", 200 + n)),
        ] {
            all.push((format!("Goal{n}{part}"), value));
        }
    }
    let outcome = read_bytes(csv_of_owned(&all).as_bytes());
    let goals = &outcome.only().goals;
    assert_eq!(goals.len(), MAX_GOALS);
    assert_eq!((goals[7].name.as_str(), goals[7].rit), ("Area 8", 208.0));
    // A ninth area is not read, and the header says so.
    let mut nine = pairs(&MINIMAL);
    nine.push(("Goal9Name".into(), "Extra".into()));
    nine.push(("Goal9RitScore".into(), "200".into()));
    let outcome = read_bytes(csv_of_owned(&nine).as_bytes());
    assert!(outcome.only().goals.is_empty());
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.problem.field.as_deref() == Some("Goal9Name")
                && w.problem.message.contains("at most 8")),
        "{:?}",
        outcome.warnings
    );
}

#[test]
fn empty_cells_are_absent_never_zero() {
    let blank = |header: &'static str| (header, "  ");
    let mut changes = vec![
        blank("Student_StateID"),
        blank("Course"),
        blank("TestID"),
        blank("GrowthMeasureYN"),
        blank("TestStartTime"),
        blank("TestName"),
        blank("TestType"),
        blank("TestDurationMinutes"),
        blank("TestStandardError"),
        blank("TestPercentile"),
        blank("RapidGuessingPercentage"),
        blank("NormsReferenceData"),
    ];
    for part in [
        "Goal1Name",
        "Goal1RitScore",
        "Goal1StdErr",
        "Goal1Range",
        "Goal1Adjective",
    ] {
        changes.push((part, ""));
    }
    let outcome = read_bytes(minimal_with(&changes).as_bytes());
    let result = outcome.only();
    let expected = AssessmentResult {
        student: StudentRef {
            sourced_id: None,
            identifier: Some("100234".into()),
            state_id: None,
        },
        subject: "Mathematics".into(),
        course: None,
        term: "Fall 2026-2027".into(),
        test_date: day(2026, 9, 15),
        test_start_time: None,
        test_id: None,
        test_name: None,
        test_type: None,
        growth_event: None,
        duration_minutes: None,
        rit: 221,
        standard_error: None,
        percentile: None,
        rapid_guessing_percentage: None,
        norms_reference: None,
        goals: vec![],
    };
    assert_eq!(result, &expected);
}

#[test]
fn a_bad_value_is_an_error_at_its_line_and_header_and_reading_goes_on() {
    let long = "x".repeat(MAX_TEXT_CHARS + 1);
    // (header as written, cell, message part)
    let table: Vec<(&str, &str, &str)> = vec![
        ("TestRITScore", "", "required but empty"),
        ("TestRITScore", "abc", "not a whole number"),
        ("TestRITScore", "215.5", "not a whole number"),
        ("TestRITScore", "99", "outside 100–350"),
        ("TestRITScore", "351", "outside 100–350"),
        ("TESTRITSCORE", "1e3", "not a whole number"),
        ("TermName", "", "required but empty"),
        ("TermName", &long, "longer than 200"),
        ("StudentID", "", "required but empty"),
        ("Subject", "", "required but empty"),
        ("MeasurementScale", " ", "required but empty"),
        ("Course", &long, "longer than 200"),
        ("TestStandardError", "high", "not a number"),
        ("TestStandardError", "NaN", "not a number"),
        ("TestStandardError", "inf", "not a number"),
        ("TestStandardError", "1e1", "not a number"),
        ("TestStandardError", "1.2.3", "not a number"),
        ("TestStandardError", "-0.1", "outside 0–100"),
        ("TestStandardError", "100.5", "outside 0–100"),
        ("RapidGuessingPercentage", "101", "outside 0–100"),
        ("RapidGuessingPercentage", "12%", "not a number"),
        ("TestPercentile", "0", "outside 1–99"),
        ("TestPercentile", "100", "outside 1–99"),
        ("TestPercentile", "63.5", "not a whole number"),
        ("TestDurationMinutes", "-1", "outside 0–1440"),
        ("TestDurationMinutes", "1441", "outside 0–1440"),
        ("TestStartDate", "", "required but empty"),
        ("TestStartDate", "2026-02-30", "not a day of the calendar"),
        ("TestStartDate", "2/29/2026", "not a day of the calendar"),
        ("TestStartDate", "13/01/2026", "not a day of the calendar"),
        ("TestStartDate", "15/09/26", "YYYY-MM-DD or M/D/YYYY"),
        ("TestStartDate", "2026-9-15", "YYYY-MM-DD or M/D/YYYY"),
        ("TestStartDate", "2026/09/15", "YYYY-MM-DD or M/D/YYYY"),
        ("TestStartDate", "Sept 15", "YYYY-MM-DD or M/D/YYYY"),
        (
            "TestStartDate",
            "2026-09-15T10:00",
            "YYYY-MM-DD or M/D/YYYY",
        ),
        ("TestStartTime", "24:00:00", "not a time of day"),
        ("TestStartTime", "13:05 PM", "not a time of day"),
        ("TestStartTime", "0:30 AM", "not a time of day"),
        ("TestStartTime", "9:5", "not a time of day"),
        ("TestStartTime", "9:05:60", "not a time of day"),
        ("TestStartTime", "9:05:00:00", "not a time of day"),
        ("TestStartTime", "noon", "not a time of day"),
        ("GrowthMeasureYN", "maybe", "not Yes or No"),
        ("GrowthMeasureYN", "2", "not Yes or No"),
        ("Goal1RitScore", "99.9", "outside 100–350"),
        ("Goal1RitScore", "x", "not a number"),
        ("Goal1StdErr", "101", "outside 0–100"),
        ("Goal1Range", "217", "not a RIT range"),
        ("Goal1Range", "a-b", "not a RIT range"),
        ("Goal1Range", "231-217", "low end is above the high end"),
        ("Goal1Range", "90-217", "outside 100–350"),
        (
            "Goal1Adjective",
            "Average",
            "not one of Low, LoAvg, Avg, HiAvg, High",
        ),
        ("Goal1Name", &long, "longer than 200"),
    ];
    for (header, cell, wanted) in table {
        let good = ["Geometry", "210", "7", "203-217", "Avg"];
        let mut columns = pairs(&MINIMAL);
        for (part, value) in ["Name", "RitScore", "StdErr", "Range", "Adjective"]
            .iter()
            .zip(good)
        {
            columns.push((format!("Goal1{part}"), value.to_string()));
        }
        // The header as the file writes it, in place of its usual spelling.
        let usual = normalise(header);
        let column = match columns.iter().position(|(h, _)| normalise(h) == usual) {
            Some(i) => i,
            None if usual == "measurementscale" => {
                columns.iter().position(|(h, _)| h == "Subject").unwrap()
            }
            None => {
                columns.push((header.to_string(), String::new()));
                columns.len() - 1
            }
        };
        columns[column].0 = header.to_string();
        let mut bad_row = columns.clone();
        bad_row[column].1 = cell.to_string();
        let row = |columns: &[(String, String)]| {
            columns
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let header_line: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
        let text = format!(
            "{}\n{}\n{}\n{}\n",
            header_line.join(","),
            row(&columns),
            row(&bad_row),
            row(&columns)
        );
        let outcome = read_bytes(text.as_bytes());
        let error = outcome.error(Some(3), Some(header), wanted);
        assert_eq!(error.at.source(), LABEL, "{header} = {cell:?}");
        assert_eq!(
            outcome.errors.len(),
            1,
            "{header} = {cell:?}: {:?}",
            outcome.errors
        );
        assert_eq!(outcome.rows, 3, "{header} = {cell:?}");
        let lines: Vec<u64> = outcome.results.iter().map(|r| r.line).collect();
        assert_eq!(
            lines,
            [2, 4],
            "{header} = {cell:?}: the bad row is left out"
        );
    }
    // A value echoed in a message is cut short.
    let huge = "9".repeat(10_000);
    let outcome = read_bytes(minimal_with(&[("TestRITScore", &huge)]).as_bytes());
    let error = outcome.error(Some(2), Some("TestRITScore"), "not a whole number");
    assert!(error.message.chars().count() < 100, "{error}");
}

#[test]
fn a_goal_area_with_values_but_no_name_is_an_error() {
    let outcome = read_bytes(
        minimal_with(&[
            ("Goal2Name", ""),
            ("Goal2RitScore", "210"),
            ("Goal2Range", ""),
        ])
        .as_bytes(),
    );
    outcome.error(Some(2), Some("Goal2RitScore"), "Goal2Name is empty");
    assert!(outcome.results.is_empty());
    // No name column at all.
    let outcome = read_bytes(minimal_with(&[("goal_3_adjective", "Avg")]).as_bytes());
    outcome.error(Some(2), Some("goal_3_adjective"), "Goal3Name is empty");
}

#[test]
fn rows_of_another_width_than_the_header_are_errors() {
    let header = MINIMAL.map(|(h, _)| h).join(",");
    let text = format!(
        "{header}\nFall,1,Math,2026-09-15\nFall,1,Math,2026-09-15,200,extra\nFall,1,Math,2026-09-15,200,,\n"
    );
    let outcome = read_bytes(text.as_bytes());
    outcome.error(Some(2), None, "the row has 4 fields, the header 5");
    outcome.error(Some(3), None, "the row has 6 fields, the header 5");
    // Trailing empty cells are trailing commas, not data.
    assert_eq!(outcome.results.len(), 1);
    assert_eq!(outcome.results[0].line, 4);
    assert_eq!(outcome.rows, 3);
}

#[test]
fn crlf_line_ends_a_bom_and_blank_lines_are_tolerated() {
    let plain = minimal_with(&[]);
    let expected = read_bytes(plain.as_bytes()).only().clone();
    let variants = [
        plain.replace('\n', "\r\n"),
        format!("\u{feff}{}", plain.replace('\n', "\r\n")),
        format!("\u{feff}{plain}"),
        plain.replace('\n', "\r"),
        format!("{plain}\n\r\n"),
    ];
    for text in variants {
        let outcome = read_bytes(text.as_bytes());
        assert_eq!(outcome.only(), &expected, "{text:?}");
        assert_eq!((outcome.rows, outcome.results[0].line), (1, 2), "{text:?}");
    }
    // Lines are counted as an editor shows them, quoted line breaks included.
    let header = MINIMAL.map(|(h, _)| h).join(",");
    let text = format!(
        "{header}\r\n\r\n\"Fall\r\n2026\",1,Math,2026-09-15,200\r\nFall,1,Math,2026-09-15,1\r\n"
    );
    let outcome = read_bytes(text.as_bytes());
    assert_eq!(outcome.results[0].line, 3);
    assert_eq!(outcome.results[0].result.term, "Fall\r\n2026");
    outcome.error(Some(5), Some("TestRITScore"), "outside");
}

#[test]
fn a_zip_is_read_from_its_top_or_one_folder_and_other_files_are_not_read() {
    let text = combined_layout();
    let expected = read_bytes(text.as_bytes()).only().clone();
    // Any other file may be anything: it is not opened.
    let junk: &[u8] = b"\x00\x01 not a csv";
    let zips = [
        zip_of(&[("AssessmentResults.csv", text.as_bytes())]),
        zip_of(&[
            ("StudentsBySchool.csv", junk),
            ("ClassAssignments.csv", junk),
            ("export-2026/assessmentresults.CSV", text.as_bytes()),
            ("__MACOSX/export-2026/._AssessmentResults.csv", junk),
        ]),
    ];
    for bytes in zips {
        let outcome = read_bytes(&bytes);
        assert_eq!(outcome.only(), &expected);
        assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    }
    // Problems inside the zip name the results file.
    let bad = minimal_with(&[("TestRITScore", "x")]);
    let outcome = read_bytes(&zip_of(&[("cdf/AssessmentResults.csv", bad.as_bytes())]));
    outcome.error(Some(2), Some("TestRITScore"), "whole number");
    assert_eq!(outcome.errors[0].at.source(), RESULTS_FILE);
}

#[test]
fn a_zip_without_one_results_file_is_refused() {
    let text = minimal_with(&[]);
    let cases: [(Vec<u8>, &str); 4] = [
        (
            zip_of(&[("StudentsBySchool.csv", b"TermName\n")]),
            "holds no AssessmentResults.csv",
        ),
        (
            zip_of(&[("a/b/AssessmentResults.csv", text.as_bytes())]),
            "holds no AssessmentResults.csv",
        ),
        (zip_of(&[]), "holds no AssessmentResults.csv"),
        (
            zip_of(&[
                ("AssessmentResults.csv", text.as_bytes()),
                ("old/AssessmentResults.csv", text.as_bytes()),
            ]),
            "twice",
        ),
    ];
    for (bytes, wanted) in cases {
        let outcome = read_bytes(&bytes);
        assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
        let error = outcome.error(None, None, wanted);
        assert_eq!(error.at.source(), LABEL);
        assert_eq!((outcome.rows, outcome.results.len()), (0, 0));
    }
}

#[test]
fn a_file_neither_zip_nor_csv_is_refused() {
    let mut broken_zip = zip_of(&[("AssessmentResults.csv", b"x")]);
    broken_zip.truncate(30);
    let cases: [(&[u8], &str); 5] = [
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "neither a zip nor a CSV",
        ),
        (b"%PDF-1.7\n%\x00\x00binary", "neither a zip nor a CSV"),
        (b"\xff\xfeT\x00e\x00", "UTF-16"),
        (b"", "empty"),
        (&broken_zip, "not a readable zip"),
    ];
    for (bytes, wanted) in cases {
        let outcome = read_bytes(bytes);
        let error = outcome.error(None, None, wanted);
        assert_eq!(error.at.source(), LABEL);
        assert_eq!(outcome.rows, 0);
    }
    // The results file of a zip is not a CSV.
    let outcome = read_bytes(&zip_of(&[("AssessmentResults.csv", b"\x00\x01\x02")]));
    let error = outcome.error(None, None, "not a CSV file (it holds binary data)");
    assert_eq!(error.at.source(), RESULTS_FILE);
    // Text that is not a CDF: one error, not one per missing column.
    let outcome = read_bytes(b"name,email\nAnn,a@b\n");
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    outcome.error(
        Some(1),
        None,
        "not the header of a MAP Growth AssessmentResults file",
    );
    let outcome = read_bytes(b"\n\n");
    outcome.error(None, None, "empty");
}

#[test]
fn headers_missing_a_required_column_or_naming_one_twice_are_refused() {
    let rows = "\nFall,1,Math,2026-09-15,200\n";
    // (header, (field, message part) of each error)
    let table: [(&str, &[(&str, &str)]); 5] = [
        (
            "TermName,StudentID,Course,TestStartDate,TestRITScore",
            &[("Subject", "MeasurementScale")],
        ),
        (
            "TermName,Subject,TestStartDate,TestName,TestStandardError",
            &[("StudentID", "missing"), ("TestRITScore", "missing")],
        ),
        (
            "TermName,StudentID,Subject,TestStartDate,TestRITScore,Test_RIT_Score",
            &[("Test_RIT_Score", "appears twice (also as \"TestRITScore\")")],
        ),
        (
            "TermName,StudentID,Subject,TestStartDate,TestRITScore,MeasurementScale",
            &[("MeasurementScale", "appears twice (also as \"Subject\")")],
        ),
        (
            "TermName,StudentID,Subject,TestStartDate,TestRITScore,Goal1Name,goal1name",
            &[("goal1name", "appears twice")],
        ),
    ];
    for (header, expected) in table {
        let text = format!("{header}{rows}");
        let outcome = read_bytes(text.as_bytes());
        assert_eq!(
            outcome.errors.len(),
            expected.len(),
            "{header}: {:?}",
            outcome.errors
        );
        for (field, wanted) in expected {
            outcome.error(Some(1), Some(field), wanted);
        }
        assert_eq!((outcome.rows, outcome.results.len()), (0, 0), "{header}");
    }
}

#[test]
fn a_zip_bomb_fails_quickly_at_the_size_limit() {
    let settings = ImportSettings {
        max_file_bytes: 256 << 10,
        ..settings()
    };
    // A header, then zeros far past the limit: 32 MiB that deflate to a few dozen KiB.
    let mut contents = minimal_with(&[]).into_bytes();
    contents.resize(32 << 20, b'0');
    let honest = zip_of(&[("AssessmentResults.csv", &contents)]);
    assert!(honest.len() < 1 << 20, "{}", honest.len());
    // The same, declaring a small size in both of the zip's headers for the entry.
    let mut lying = honest.clone();
    let declared = (contents.len() as u32).to_le_bytes();
    let small = 1000u32.to_le_bytes();
    let mut patched = 0;
    for i in 0..lying.len() - 4 {
        if lying[i..i + 4] == declared {
            lying[i..i + 4].copy_from_slice(&small);
            patched += 1;
        }
    }
    assert!(patched >= 1, "declared size not found");
    // The honest one is refused by its declared size; the liar where it passes that size.
    for (bytes, wanted) in [(honest, "once unzipped"), (lying, "larger than")] {
        let started = Instant::now();
        let outcome = read_with(&bytes, &settings);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
        let error = &outcome.errors[0];
        assert_eq!(error.at.source(), RESULTS_FILE, "{error}");
        assert!(error.message.contains(wanted), "{error}");
        assert!(outcome.results.is_empty());
    }
    // A bare CSV over the limit is refused before it is read.
    let outcome = read_with(&contents, &settings);
    outcome.error(None, None, "more than the limit of 262144 bytes");
    assert_eq!(outcome.errors[0].at.source(), LABEL);
}

#[test]
fn an_unclosed_quote_stops_reading_at_the_row_limit() {
    let settings = ImportSettings {
        max_record_bytes: 4 << 10,
        ..settings()
    };
    let mut text = minimal_with(&[]);
    text.push_str("\"Fall,1,Math,2026-09-15,200\n");
    for _ in 0..1000 {
        text.push_str("Fall,1,Math,2026-09-15,200\n");
    }
    let outcome = read_with(text.as_bytes(), &settings);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    outcome.error(Some(3), Some("TermName"), "a quote that never closes");
    assert_eq!(outcome.results.len(), 1);
}

#[test]
fn a_header_of_a_hundred_thousand_commas_is_refused() {
    let text = ",".repeat(100_000);
    let outcome = read_bytes(text.as_bytes());
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    outcome.error(
        Some(1),
        Some("column 513"),
        "unreadable header: the row has more than 512 fields",
    );
    // As many commas in a data row: the row's field is named by position past the header.
    let text = format!("{}{}\n", minimal_with(&[]), ",".repeat(100_000));
    let outcome = read_bytes(text.as_bytes());
    outcome.error(Some(3), Some("column 513"), "more than 512 fields");
}

#[test]
fn a_row_that_is_not_utf8_is_an_error_and_reading_goes_on() {
    let mut text = minimal_with(&[]).into_bytes();
    text.extend_from_slice(b"Caf\xe9,1,Math,2026-09-15,200\nFall,2,Math,2026-09-15,201\n");
    let outcome = read_bytes(&text);
    outcome.error(Some(3), Some("TermName"), "not valid UTF-8");
    let lines: Vec<u64> = outcome.results.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4]);
    assert_eq!(outcome.rows, 3);
}

#[test]
fn a_sink_returning_false_stops_reading() {
    let header = MINIMAL.map(|(h, _)| h).join(",");
    let mut text = format!("{header}\n");
    for rit in 200..210 {
        text.push_str(&format!("Fall,1,Math,2026-09-15,{rit}\n"));
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    let mut log = ProblemLog::new(10);
    let mut seen = Vec::new();
    let rows = read(file.path(), LABEL, &settings(), &mut log, &mut |r| {
        seen.push(r.result.rit);
        seen.len() < 3
    });
    assert_eq!(seen, [200, 201, 202]);
    assert_eq!(rows, 3);
    assert!(!log.has_errors());
}

#[test]
fn reading_stops_once_the_log_is_full() {
    let header = MINIMAL.map(|(h, _)| h).join(",");
    let mut text = format!("{header}\n");
    for _ in 0..50 {
        text.push_str("Fall,1,Math,2026-09-15,x\n");
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    let mut log = ProblemLog::new(5);
    let rows = read(file.path(), LABEL, &settings(), &mut log, &mut |_| true);
    assert_eq!(rows, 5);
    assert_eq!(log.error_count(), 5);
}

#[test]
fn a_missing_file_is_an_error_naming_the_label() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = ProblemLog::new(10);
    let rows = read(
        &dir.path().join("gone.zip"),
        LABEL,
        &settings(),
        &mut log,
        &mut |_| true,
    );
    assert_eq!(rows, 0);
    let (errors, _) = log.into_parts();
    assert_eq!(errors[0].at.source(), LABEL);
    assert!(errors[0].message.contains("cannot open"), "{errors:?}");
    assert!(!errors[0].to_string().contains("gone.zip"), "{errors:?}");
}
