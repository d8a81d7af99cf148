use super::*;
use crate::synthetic::{write_bundle_as_of, SyntheticDistrict};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::sync::{Mutex, MutexGuard};

/// Tests run one at a time: the memory test measures the whole process's peak.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const FALL: &str = "Fall 2025-2026";
const WINTER: &str = "Winter 2025-2026";
const SPRING: &str = "Spring 2025-2026";

/// A roster of `students` from the OneRoster generator (three schools from 1,001 students
/// cover elementary, middle and high grades).
fn roster(students: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticDistrict { students, seed: 11 };
    let today = NaiveDate::from_ymd_opt(2025, 10, 15).unwrap();
    write_bundle_as_of(&spec, dir.path(), today).unwrap();
    dir
}

fn options(terms: &[&str], subjects: &[CdfSubject]) -> CdfOptions {
    CdfOptions {
        terms: terms.iter().map(|t| t.to_string()).collect(),
        subjects: subjects.to_vec(),
        ..CdfOptions::default()
    }
}

fn generate(roster: &Path, options: &CdfOptions) -> (tempfile::TempDir, PathBuf, CdfSummary) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export.zip");
    let summary = write_cdf(roster, &out, options).unwrap();
    (dir, out, summary)
}

fn entry(zip: &Path, name: &str) -> String {
    let mut archive = zip::ZipArchive::new(File::open(zip).unwrap()).unwrap();
    let mut text = String::new();
    archive
        .by_name(name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The zip's entries, in the order they were written.
fn entry_names(zip: &Path) -> Vec<String> {
    let archive = zip::ZipArchive::new(File::open(zip).unwrap()).unwrap();
    archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect()
}

/// A CSV entry's header and its rows by header name, each with the line it is on.
struct Table {
    header: Vec<String>,
    rows: Vec<(u64, HashMap<String, String>)>,
}

impl Table {
    fn read(zip: &Path, name: &str) -> Table {
        let text = entry(zip, name);
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
        let mut rows = Vec::new();
        // No cell holds a line break, so record i (from 0) is on line i + 2.
        assert_eq!(
            text.lines().count(),
            text.matches("\r\n").count(),
            "{name}: CRLF line ends only"
        );
        let mut rec = csv::StringRecord::new();
        let mut line = 1;
        while r.read_record(&mut rec).unwrap() {
            line += 1;
            let row = header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect();
            rows.push((line, row));
        }
        Table { header, rows }
    }

    fn rows(&self) -> impl Iterator<Item = &HashMap<String, String>> {
        self.rows.iter().map(|(_, r)| r)
    }
}

/// Student users of the roster that have an identifier.
fn roster_students(roster: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(roster.join("users.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            header
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(str::to_string))
                .collect::<HashMap<_, _>>()
        })
        .filter(|u| u["role"] == "student" && !u["identifier"].is_empty())
        .collect()
}

/// map-scores.md §2.1, written out independently of the generator.
fn reference_combined_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "TermName",
        "DistrictName",
        "District_StateID",
        "SchoolName",
        "School_StateID",
        "StudentLastName",
        "StudentFirstName",
        "StudentMI",
        "StudentID",
        "Student_StateID",
        "StudentDateOfBirth",
        "StudentEthnicGroup",
        "NWEAStandard_EthnicGroup",
        "StudentGender",
        "Grade",
        "NWEAStandard_Grade",
        "Subject",
        "Course",
        "NormsReferenceData",
        "WISelectedAYFall",
        "WISelectedAYWinter",
        "WISelectedAYSpring",
        "WIPreviousAYFall",
        "WIPreviousAYWinter",
        "WIPreviousAYSpring",
        "TestType",
        "TestName",
        "TestStartDate",
        "TestStartTime",
        "TestDurationMinutes",
        "TestRITScore",
        "TestStandardError",
        "TestPercentile",
        "AchievementQuintile",
        "PercentCorrect",
        "RapidGuessingPercentage",
    ]
    .map(String::from)
    .to_vec();
    for p in [
        "FallToFall",
        "FallToWinter",
        "FallToSpring",
        "WinterToWinter",
        "WinterToSpring",
        "SpringToSpring",
    ] {
        for part in [
            "ProjectedGrowth",
            "ObservedGrowth",
            "ObservedGrowthSE",
            "MetProjectedGrowth",
            "ConditionalGrowthIndex",
            "ConditionalGrowthPercentile",
            "GrowthQuintile",
        ] {
            h.push(format!("{p}{part}"));
        }
    }
    for c in [
        "LexileScore",
        "LexileMin",
        "LexileMax",
        "QuantileScore",
        "QuantileMin",
        "QuantileMax",
    ] {
        h.push(c.into());
    }
    for n in 1..=8 {
        for part in ["Name", "RitScore", "StdErr", "Range", "Adjective"] {
            h.push(format!("Goal{n}{part}"));
        }
    }
    for c in [
        "AccommodationCategories",
        "Accommodations",
        "TypicalFallToFallGrowth",
        "TypicalFallToWinterGrowth",
        "TypicalFallToSpringGrowth",
        "TypicalWintertoWinterGrowth",
        "TypicalWintertoSpringGrowth",
        "TypicalSpringToSpringGrowth",
    ] {
        h.push(c.into());
    }
    for k in 1..=10 {
        h.push(format!("ProjectedProficiencyStudy{k}"));
        h.push(format!("ProjectedProficiencyLevel{k}"));
    }
    h
}

/// map-scores.md §2.2, post-2015 row.
fn reference_post2015_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "TermName",
        "StudentID",
        "SchoolName",
        "MeasurementScale",
        "Discipline",
        "GrowthMeasureYN",
        "WISelectedAYFall",
        "WISelectedAYWinter",
        "WISelectedAYSpring",
        "WIPreviousAYFall",
        "WIPreviousAYWinter",
        "WIPreviousAYSpring",
        "TestType",
        "TestName",
        "TestID",
        "TestStartDate",
        "TestDurationMinutes",
        "TestRITScore",
        "TestStandardError",
        "TestPercentile",
    ]
    .map(String::from)
    .to_vec();
    for p in [
        "FallToFall",
        "FallToWinter",
        "FallToSpring",
        "WinterToWinter",
        "WinterToSpring",
        "SpringToSpring",
    ] {
        for part in [
            "ProjectedGrowth",
            "ObservedGrowth",
            "ObservedGrowthSE",
            "MetProjectedGrowth",
            "ConditionalGrowthIndex",
            "ConditionalGrowthPercentile",
        ] {
            h.push(format!("{p}{part}"));
        }
    }
    h.push("RITtoReadingMin".into());
    h.push("RITtoReadingMax".into());
    for n in 1..=8 {
        for part in ["Name", "RitScore", "StdErr", "Range", "Adjective"] {
            h.push(format!("Goal{n}{part}"));
        }
    }
    h.push("TestStartTime".into());
    h.push("PercentCorrect".into());
    for k in 1..=3 {
        h.push(format!("ProjectedProficiencyStudy{k}"));
    }
    for k in 1..=3 {
        h.push(format!("ProjectedProficiencyLevel{k}"));
    }
    h
}

fn iso(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

fn int(value: &str) -> Option<i64> {
    value.parse().ok()
}

const ADJECTIVES: [&str; 5] = ["Low", "LoAvg", "Avg", "HiAvg", "High"];

#[test]
fn the_same_seed_writes_the_same_bytes_and_another_seed_does_not() {
    let _serial = serial();
    let roster = roster(300);
    let mut opts = options(
        &[FALL, SPRING],
        &[CdfSubject::Mathematics, CdfSubject::Reading],
    );
    opts.malformed_rows = 5;
    let (_a, first, summary) = generate(roster.path(), &opts);
    let (_b, second, again) = generate(roster.path(), &opts);
    let bytes = std::fs::read(&first).unwrap();
    assert_eq!(bytes, std::fs::read(&second).unwrap());
    assert_eq!(summary, again);
    assert_eq!(summary.bytes, bytes.len() as u64);

    opts.seed = 2;
    let (_c, other, _) = generate(roster.path(), &opts);
    assert_ne!(bytes, std::fs::read(&other).unwrap());

    // Entries are stamped the morning after the last window (Spring closes June 5), not now.
    let mut archive = zip::ZipArchive::new(File::open(&first).unwrap()).unwrap();
    assert_eq!(
        entry_names(&first),
        [RESULTS_FILE, STUDENTS_FILE, CLASSES_FILE]
    );
    for i in 0..archive.len() {
        let stamp = archive.by_index(i).unwrap().last_modified().unwrap();
        assert_eq!(
            (stamp.year(), stamp.month(), stamp.day(), stamp.hour()),
            (2026, 6, 6, 6)
        );
    }
}

#[test]
fn one_row_per_student_term_and_subject_plus_the_malformed_ones() {
    let _serial = serial();
    let roster = roster(1_001);
    let terms = [FALL, WINTER, SPRING];
    let subjects = [
        CdfSubject::Mathematics,
        CdfSubject::Reading,
        CdfSubject::Science,
    ];
    let mut opts = options(&terms, &subjects);
    opts.malformed_rows = 9;
    let (_d, zip, summary) = generate(roster.path(), &opts);

    let students = roster_students(roster.path()).len() as u64;
    assert_eq!(students, 1_001);
    assert_eq!(summary.students, students);
    assert_eq!(summary.skipped_students, 0);
    assert_eq!(summary.malformed, 9);
    assert_eq!(summary.results, students * 3 * 3 + 9);
    let results = Table::read(&zip, RESULTS_FILE);
    assert_eq!(results.rows.len() as u64, summary.results);

    // Each (student, term, subject) once, and each malformed row a retest of one of them.
    let mut seen = HashMap::new();
    for row in results.rows() {
        let key = (
            row["StudentID"].clone(),
            row["TermName"].clone(),
            row["Subject"].clone(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    assert_eq!(seen.len() as u64, students * 9);
    assert_eq!(seen.values().filter(|&&n| n == 2).count(), 9);

    let by_school = Table::read(&zip, STUDENTS_FILE);
    assert_eq!(by_school.rows.len() as u64, students * 3);
    assert_eq!(summary.students_by_school, students * 3);
    let classes = Table::read(&zip, CLASSES_FILE);
    let per_student = crate::synthetic::plan::PERIODS as u64;
    assert_eq!(classes.rows.len() as u64, students * per_student * 3);
    assert_eq!(summary.class_assignments, Some(students * per_student * 3));
}

#[test]
fn the_combined_header_is_the_reference_order_and_every_file_has_its_columns() {
    let _serial = serial();
    let roster = roster(120);
    let (_d, zip, _) = generate(roster.path(), &options(&[FALL], &[CdfSubject::Reading]));
    let results = Table::read(&zip, RESULTS_FILE);
    let expected = reference_combined_header();
    assert_eq!(expected.len(), 152);
    assert_eq!(results.header, expected);
    assert!(!results.header.iter().any(|h| h == "TestID"));
    for (_, row) in &results.rows {
        assert_eq!(row.len(), expected.len());
    }
    assert_eq!(
        Table::read(&zip, STUDENTS_FILE).header,
        expected[..16].to_vec()
    );
    assert_eq!(
        Table::read(&zip, CLASSES_FILE).header,
        [
            "TermName",
            "StudentID",
            "SchoolName",
            "ClassName",
            "TeacherName"
        ]
    );
    // Exported from Windows: CRLF line ends.
    assert!(entry(&zip, RESULTS_FILE).contains("ProjectedProficiencyLevel10\r\n"));
}

#[test]
fn the_post2015_layout_has_its_columns_unique_test_ids_and_us_dates() {
    let _serial = serial();
    let roster = roster(400);
    let mut opts = options(&[FALL, WINTER], &[CdfSubject::Mathematics]);
    opts.layout = CdfLayout::Post2015;
    opts.malformed_rows = 4;
    let (_d, zip, summary) = generate(roster.path(), &opts);
    let results = Table::read(&zip, RESULTS_FILE);
    assert_eq!(results.header, reference_post2015_header());
    let ids: HashSet<&str> = results.rows().map(|r| r["TestID"].as_str()).collect();
    assert_eq!(ids.len() as u64, summary.results);
    let broken_dates: HashSet<u64> = summary
        .malformed_at
        .iter()
        .filter(|(_, f)| *f == "TestStartDate")
        .map(|(l, _)| *l)
        .collect();
    for (line, row) in &results.rows {
        assert!(row["TestID"].len() == 10 && row["TestID"].bytes().all(|b| b.is_ascii_digit()));
        assert!(["TRUE", "FALSE"].contains(&row["GrowthMeasureYN"].as_str()));
        assert_eq!(row["MeasurementScale"], "Mathematics");
        assert_eq!(row["Discipline"], "Mathematics");
        if !broken_dates.contains(line) {
            let date = NaiveDate::parse_from_str(&row["TestStartDate"], "%m/%d/%Y").unwrap();
            assert!(date.year() == 2025 || date.year() == 2026, "{date}");
            assert!(!row["TestStartDate"].starts_with('0'));
        }
        let time = &row["TestStartTime"];
        assert!(time.ends_with(" AM") || time.ends_with(" PM"), "{time}");
    }
    let by_school = Table::read(&zip, STUDENTS_FILE);
    assert_eq!(
        by_school.header,
        [
            "TermName",
            "DistrictName",
            "SchoolName",
            "StudentLastName",
            "StudentFirstName",
            "StudentMI",
            "StudentID",
            "StudentDateOfBirth",
            "StudentEthnicGroup",
            "StudentGender",
            "Grade"
        ]
    );
}

/// Is `row`'s `field` broken, as far as an importer following §3 can tell?
fn broken(row: &HashMap<String, String>, field: &str) -> bool {
    let value = row[field].as_str();
    match field {
        "TestRITScore" => !int(value).is_some_and(|r| (100..=350).contains(&r)),
        "TestStartDate" => iso(value).is_none(),
        "Goal1Range" => !value
            .split_once('-')
            .is_some_and(|(lo, hi)| int(lo).is_some() && int(hi).is_some()),
        "Goal1Adjective" => !ADJECTIVES.contains(&value),
        _ => unreachable!(),
    }
}

#[test]
fn malformed_rows_are_exactly_where_the_summary_says_spread_through_the_file() {
    let _serial = serial();
    let roster = roster(500);
    let mut opts = options(
        &[FALL, WINTER],
        &[CdfSubject::Mathematics, CdfSubject::Reading],
    );
    opts.malformed_rows = 12;
    let (_d, zip, summary) = generate(roster.path(), &opts);
    let results = Table::read(&zip, RESULTS_FILE);

    let mut found = Vec::new();
    for (line, row) in &results.rows {
        for field in [
            "TestRITScore",
            "TestStartDate",
            "Goal1Range",
            "Goal1Adjective",
        ] {
            if broken(row, field) {
                found.push((*line, field));
            }
        }
    }
    let listed: Vec<(u64, &str)> = summary.malformed_at.clone();
    assert_eq!(found, listed);
    assert_eq!(listed.len(), 12);

    // Every documented break is used, in turn.
    let fields: Vec<&str> = listed.iter().map(|(_, f)| *f).collect();
    let expected: Vec<&str> = (0..12).map(|k| BREAKS[k % BREAKS.len()].0).collect();
    assert_eq!(fields, expected);
    let lines: HashMap<u64, &HashMap<String, String>> =
        results.rows.iter().map(|(l, r)| (*l, r)).collect();
    for (k, (line, field)) in listed.iter().enumerate() {
        assert_eq!(lines[line][*field], BREAKS[k % BREAKS.len()].1);
    }

    // Spread: gaps between them (and around them) are even to within a row or two.
    let total = results.rows.len() as u64 + 1;
    let mut edges = vec![1];
    edges.extend(listed.iter().map(|(l, _)| *l));
    edges.push(total + 1);
    let gaps: Vec<u64> = edges.windows(2).map(|w| w[1] - w[0]).collect();
    let (min, max) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
    assert!(max - min <= 3, "{gaps:?}");
}

#[test]
fn the_importer_names_each_malformed_row_by_line_and_field() {
    let _serial = serial();
    let roster = roster(300);
    for layout in [CdfLayout::Combined, CdfLayout::Post2015] {
        let mut opts = options(
            &[FALL, SPRING],
            &[CdfSubject::Mathematics, CdfSubject::Reading],
        );
        opts.layout = layout;
        opts.malformed_rows = 10;
        opts.odd_header_casing = true;
        let (_d, zip, summary) = generate(roster.path(), &opts);
        let mut log = crate::domain::problem::ProblemLog::new(1000);
        let mut valid = 0u64;
        let rows = crate::sources::scores::cdf::read(
            &zip,
            "export.zip",
            &crate::config::ImportSettings::default(),
            &mut log,
            &mut |_| {
                valid += 1;
                true
            },
        );
        let (errors, _) = log.into_parts();
        let named: Vec<(u64, String)> = errors
            .iter()
            .map(|p| (p.line().unwrap(), p.field.clone().unwrap()))
            .collect();
        let expected: Vec<(u64, String)> = summary
            .malformed_at
            .iter()
            .map(|(l, f)| (*l, f.to_string()))
            .collect();
        assert_eq!(named, expected, "{layout}: {errors:?}");
        assert_eq!(rows, summary.results);
        assert_eq!(valid, summary.results - summary.malformed);
    }
}

#[test]
fn scores_follow_the_grade_norms_and_goals_the_overall_score() {
    let _serial = serial();
    let roster = roster(1_001);
    let (_d, zip, _) = generate(
        roster.path(),
        &options(
            &[FALL, SPRING],
            &[CdfSubject::Mathematics, CdfSubject::Reading],
        ),
    );
    let results = Table::read(&zip, RESULTS_FILE);
    let fall = Term::parse(FALL).unwrap();
    let spring = Term::parse(SPRING).unwrap();

    // (term, subject, grade) → RITs; checks row by row on the way.
    let mut groups: HashMap<(String, String, String), Vec<(i64, i64)>> = HashMap::new();
    for row in results.rows() {
        let rit = int(&row["TestRITScore"]).unwrap();
        let percentile = int(&row["TestPercentile"]).unwrap();
        assert!((100..=350).contains(&rit));
        assert!((1..=99).contains(&percentile));
        let se: f64 = row["TestStandardError"].parse().unwrap();
        assert!((3.0..=3.5).contains(&se), "{se}");
        let minutes = int(&row["TestDurationMinutes"]).unwrap();
        assert!((20..=70).contains(&minutes));
        let term = if row["TermName"] == FALL {
            &fall
        } else {
            &spring
        };
        let date = iso(&row["TestStartDate"]).unwrap();
        assert!(term.first <= date && date <= term.last, "{date}");
        assert!(!matches!(date.weekday(), Weekday::Sat | Weekday::Sun));
        assert_eq!(row["NormsReferenceData"], "2015");
        assert_eq!(row["TestType"], "Survey With Goals");
        assert_eq!(row["AchievementQuintile"], quintile(percentile as u32));

        let grade = row["Grade"].clone();
        let g = if grade == "K" {
            0
        } else {
            int(&grade).unwrap()
        };
        let names: Vec<&str> = (1..=8)
            .map(|n| row[&format!("Goal{n}Name")].as_str())
            .filter(|n| !n.is_empty())
            .collect();
        match row["Subject"].as_str() {
            "Mathematics" if g >= 6 => {
                assert!(names.contains(&"Statistics and Probability"));
                assert!(names.contains(&"The Real and Complex Number Systems"));
                assert!(row["TestName"].contains("Math 6+"));
                assert!(!row["QuantileScore"].is_empty() && row["LexileScore"].is_empty());
            }
            "Mathematics" => {
                assert!(names.contains(&"Measurement and Data"));
                assert!(names.contains(&"Number and Operations"));
            }
            "Reading" if g >= 2 => {
                assert_eq!(names.len(), 5);
                assert!(names.contains(&"Vocabulary: Acquisition and Use"));
                assert!(names.contains(&"Informational Text: Key Ideas and Details"));
                assert!(!row["LexileScore"].is_empty() && row["QuantileScore"].is_empty());
            }
            "Reading" => assert!(row["TestName"].contains("K-2")),
            other => panic!("subject {other}"),
        }
        for n in 1..=names.len() {
            let goal = int(&row[&format!("Goal{n}RitScore")]).unwrap();
            assert!((goal - rit).abs() <= 25, "goal {goal} vs {rit}");
            let goal_se: f64 = row[&format!("Goal{n}StdErr")].parse().unwrap();
            assert!((6.0..=8.0).contains(&goal_se));
            let (lo, hi) = row[&format!("Goal{n}Range")].split_once('-').unwrap();
            let (lo, hi) = (int(lo).unwrap(), int(hi).unwrap());
            let end = |x: f64| (x.round() as i64).clamp(100, 350);
            assert_eq!(lo, end(goal as f64 - goal_se));
            assert_eq!(hi, end(goal as f64 + goal_se));
            assert!(ADJECTIVES.contains(&row[&format!("Goal{n}Adjective")].as_str()));
        }
        for n in names.len() + 1..=8 {
            assert_eq!(row[&format!("Goal{n}Name")], "");
            assert_eq!(row[&format!("Goal{n}Range")], "");
        }
        let key = (row["TermName"].clone(), row["Subject"].clone(), grade);
        groups.entry(key).or_default().push((rit, percentile));
    }

    let mut checked = 0;
    for ((term, subject, grade), rits) in &mut groups {
        // Percentiles rise with RIT within a grade, term and subject.
        rits.sort();
        assert!(rits.windows(2).all(|w| w[0].1 <= w[1].1));
        if rits.len() < 40
            || !matches!(
                grade.as_str(),
                "K" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8"
            )
        {
            continue;
        }
        let g = if grade == "K" { 0 } else { int(grade).unwrap() } as usize;
        let column = if term == FALL { 0 } else { 2 };
        let table = if subject == "Mathematics" {
            &MATH_NORMS
        } else {
            &READING_NORMS
        };
        let n = rits.len() as f64;
        let mean = rits.iter().map(|r| r.0 as f64).sum::<f64>() / n;
        let sd = (rits
            .iter()
            .map(|r| (r.0 as f64 - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        // Within three standard errors of the mean (SD 15).
        let tolerance = 3.0 * 15.0 / n.sqrt();
        assert!(
            (mean - table[g][column]).abs() < tolerance,
            "{term} {subject} grade {grade}: mean {mean} of {n}"
        );
        assert!((11.0..19.0).contains(&sd), "sd {sd}");
        checked += 1;
    }
    assert_eq!(
        checked,
        9 * 2 * 2,
        "every grade K-8, both terms and subjects"
    );
}

#[test]
fn growth_is_observed_between_the_terms_written() {
    let _serial = serial();
    let roster = roster(200);
    let (_d, zip, _) = generate(
        roster.path(),
        &options(&[FALL, SPRING], &[CdfSubject::Mathematics]),
    );
    let results = Table::read(&zip, RESULTS_FILE);
    let fall: HashMap<&str, &HashMap<String, String>> = results
        .rows()
        .filter(|r| r["TermName"] == FALL)
        .map(|r| (r["StudentID"].as_str(), r))
        .collect();
    let mut springs = 0;
    for row in results.rows().filter(|r| r["TermName"] == SPRING) {
        let before = fall[row["StudentID"].as_str()];
        let observed = int(&row["FallToSpringObservedGrowth"]).unwrap();
        let gained = int(&row["TestRITScore"]).unwrap() - int(&before["TestRITScore"]).unwrap();
        assert_eq!(observed, gained);
        // The projection checked against is the one made in the fall.
        assert_eq!(
            row["FallToSpringProjectedGrowth"],
            before["FallToSpringProjectedGrowth"]
        );
        let met = observed >= int(&row["FallToSpringProjectedGrowth"]).unwrap();
        assert_eq!(
            row["FallToSpringMetProjectedGrowth"],
            if met { "Yes" } else { "No" }
        );
        assert!(!row["FallToSpringConditionalGrowthIndex"].is_empty());
        assert!(
            row["FallToWinterObservedGrowth"].is_empty(),
            "no winter term"
        );
        assert!(row["WinterToSpringObservedGrowth"].is_empty());
        springs += 1;
    }
    assert_eq!(springs, 200);
    for row in fall.values() {
        assert!(row["FallToSpringObservedGrowth"].is_empty());
        assert!(!row["TypicalFallToSpringGrowth"].is_empty());
        assert!(!row["FallToWinterProjectedGrowth"].is_empty());
        assert!(row["TypicalWintertoSpringGrowth"].is_empty());
    }
}

#[test]
fn students_without_an_identifier_are_skipped() {
    let _serial = serial();
    let roster = roster(300);
    // Blank the identifier of every third student.
    let path = roster.path().join("users.csv");
    let mut r = csv::Reader::from_path(&path).unwrap();
    let header = r.headers().unwrap().clone();
    let id_col = header.iter().position(|h| h == "identifier").unwrap();
    let role_col = header.iter().position(|h| h == "role").unwrap();
    let mut rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let mut blanked = 0;
    let mut students = 0;
    for rec in &mut rows {
        if &rec[role_col] != "student" {
            continue;
        }
        students += 1;
        if students % 3 == 0 {
            let mut fields: Vec<String> = rec.iter().map(str::to_string).collect();
            fields[id_col].clear();
            *rec = csv::StringRecord::from(fields);
            blanked += 1;
        }
    }
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(&header).unwrap();
    for rec in &rows {
        w.write_record(rec).unwrap();
    }
    w.flush().unwrap();

    let (_d, zip, summary) = generate(roster.path(), &options(&[FALL], &[CdfSubject::Reading]));
    assert_eq!(summary.skipped_students, blanked);
    assert_eq!(summary.students, 300 - blanked);
    assert_eq!(summary.results, 300 - blanked);
    let results = Table::read(&zip, RESULTS_FILE);
    assert!(results.rows().all(|r| !r["StudentID"].is_empty()));
    let classes = Table::read(&zip, CLASSES_FILE);
    let per_student = crate::synthetic::plan::PERIODS as u64;
    assert_eq!(classes.rows.len() as u64, (300 - blanked) * per_student);
    assert!(classes.rows().all(|r| !r["StudentID"].is_empty()));
}

#[test]
fn class_assignments_name_each_students_classes_and_primary_teacher() {
    let _serial = serial();
    let roster = roster(250);
    let (_d, zip, _) = generate(roster.path(), &options(&[FALL], &[CdfSubject::Mathematics]));
    let read = |name: &str| {
        let mut r = csv::Reader::from_path(roster.path().join(name)).unwrap();
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
        r.records()
            .map(|rec| {
                header
                    .iter()
                    .cloned()
                    .zip(rec.unwrap().iter().map(str::to_string))
                    .collect::<HashMap<_, _>>()
            })
            .collect::<Vec<_>>()
    };
    let users = read("users.csv");
    let classes = read("classes.csv");
    let enrollments = read("enrollments.csv");
    let user = |id: &str| users.iter().find(|u| u["sourcedId"] == id).unwrap();
    let title: HashMap<&str, &str> = classes
        .iter()
        .map(|c| (c["sourcedId"].as_str(), c["title"].as_str()))
        .collect();
    let teacher: HashMap<&str, String> = enrollments
        .iter()
        .filter(|e| e["role"] == "teacher" && e["primary"] == "true")
        .map(|e| {
            let t = user(&e["userSourcedId"]);
            (
                e["classSourcedId"].as_str(),
                format!("{}, {}", t["familyName"], t["givenName"]),
            )
        })
        .collect();
    let mut expected = BTreeSet::new();
    for e in enrollments.iter().filter(|e| e["role"] == "student") {
        let class = e["classSourcedId"].as_str();
        expected.insert((
            user(&e["userSourcedId"])["identifier"].clone(),
            title[class].to_string(),
            teacher[class].clone(),
        ));
    }
    let written: BTreeSet<(String, String, String)> = Table::read(&zip, CLASSES_FILE)
        .rows()
        .map(|r| {
            assert_eq!(r["TermName"], FALL);
            assert!(r["SchoolName"].ends_with("School"));
            (
                r["StudentID"].clone(),
                r["ClassName"].clone(),
                r["TeacherName"].clone(),
            )
        })
        .collect();
    assert_eq!(written, expected);
}

#[test]
fn class_assignments_are_left_out_when_enrollments_cannot_be_streamed() {
    let _serial = serial();
    let roster = roster(150);
    // Enrollments in reverse: each student's still together, but against users.csv's order.
    let path = roster.path().join("enrollments.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1..].reverse();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let (_d, zip, summary) = generate(roster.path(), &options(&[FALL], &[CdfSubject::Reading]));
    assert_eq!(summary.class_assignments, None);
    assert!(summary
        .class_assignments_omitted
        .as_deref()
        .unwrap()
        .contains("users.csv order"));
    assert_eq!(entry_names(&zip), [RESULTS_FILE, STUDENTS_FILE]);
    assert_eq!(Table::read(&zip, RESULTS_FILE).rows.len(), 150);

    // No enrollments at all: left out too, saying so.
    std::fs::remove_file(&path).unwrap();
    let (_e, _, summary) = generate(roster.path(), &options(&[FALL], &[CdfSubject::Reading]));
    assert_eq!(
        summary.class_assignments_omitted.as_deref(),
        Some("the roster has no enrollments.csv")
    );
}

#[test]
fn odd_header_casing_changes_only_the_casing() {
    let _serial = serial();
    let roster = roster(60);
    let subjects = [CdfSubject::LanguageUsage];
    let plain = generate(roster.path(), &options(&[WINTER], &subjects));
    let mut opts = options(&[WINTER], &subjects);
    opts.odd_header_casing = true;
    let odd = generate(roster.path(), &opts);
    let normalise = |h: &str| h.replace('_', "").to_lowercase();
    for file in [RESULTS_FILE, STUDENTS_FILE, CLASSES_FILE] {
        let (a, b) = (Table::read(&plain.1, file), Table::read(&odd.1, file));
        assert_ne!(a.header, b.header, "{file}");
        assert_eq!(
            a.header.iter().map(|h| normalise(h)).collect::<Vec<_>>(),
            b.header.iter().map(|h| normalise(h)).collect::<Vec<_>>()
        );
        assert_eq!(b.header[0], "termname");
        // Same rows under the other header.
        assert_eq!(
            entry(&plain.1, file).split_once('\n').unwrap().1,
            entry(&odd.1, file).split_once('\n').unwrap().1
        );
    }
    let odd_results = Table::read(&odd.1, RESULTS_FILE).header;
    for h in [
        "FalltoFallObservedGrowth",
        "TypicalWintertoWinterGrowth",
        "TypicalFalltoSpringGrowth",
    ] {
        assert!(odd_results.iter().any(|x| x == h), "{h}");
    }
}

#[test]
fn terms_are_parsed_and_checked() {
    let t = Term::parse("Fall 2025-2026").unwrap();
    assert_eq!((t.season, t.start_year), (Season::Fall, 2025));
    assert_eq!(Term::parse("spring 2026").unwrap().start_year, 2025);
    assert_eq!(Term::parse("Winter 2026").unwrap().first.year(), 2026);
    assert_eq!(
        Term::parse("Summer 2025-2026").unwrap().season,
        Season::Summer
    );
    for bad in [
        "Autumn 2025",
        "Fall",
        "Fall 2025-2027",
        "Fall 25-26",
        "Fall 2025 extra",
    ] {
        assert!(
            matches!(Term::parse(bad), Err(CdfGenError::Term(_))),
            "{bad}"
        );
    }
    let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    assert_eq!(terms_so_far(d(2025, 10, 15)), [FALL]);
    assert_eq!(terms_so_far(d(2026, 5, 1)), [FALL, WINTER, SPRING]);
    assert_eq!(
        terms_so_far(d(2025, 7, 20)),
        ["Fall 2024-2025", "Winter 2024-2025", "Spring 2024-2025"]
    );

    let roster = roster(10);
    let out = tempfile::tempdir().unwrap();
    let zip = out.path().join("x.zip");
    let mut opts = options(&[], &[CdfSubject::Reading]);
    assert!(matches!(
        write_cdf(roster.path(), &zip, &opts),
        Err(CdfGenError::NoTerms)
    ));
    opts.terms = vec![FALL.into()];
    opts.subjects.clear();
    assert!(matches!(
        write_cdf(roster.path(), &zip, &opts),
        Err(CdfGenError::NoSubjects)
    ));
    assert!(matches!(
        write_cdf(out.path(), &zip, &options(&[FALL], &[CdfSubject::Reading])),
        Err(CdfGenError::Read { .. })
    ));
    assert!(!zip.exists(), "a roster that cannot be read leaves no zip");
    assert_eq!(
        "language-usage".parse::<CdfSubject>().unwrap(),
        CdfSubject::LanguageUsage
    );
    assert_eq!(
        "Post2015".parse::<CdfLayout>().unwrap(),
        CdfLayout::Post2015
    );
    assert!("history".parse::<CdfSubject>().is_err());
}

/// Peak resident memory of this process, in kB (Linux).
fn peak_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak to the current resident size (Linux `clear_refs` 5).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[test]
fn memory_stays_flat_as_the_roster_grows() {
    let _serial = serial();
    let small = roster(500);
    let large = roster(12_000);
    let subjects = CdfSubject::ALL;
    let growth = |roster: &Path| -> Option<u64> {
        let dir = tempfile::tempdir().unwrap();
        if !reset_peak() {
            return None;
        }
        let before = peak_kb()?;
        let summary = write_cdf(
            roster,
            &dir.path().join("x.zip"),
            &options(&[FALL], &subjects),
        )
        .unwrap();
        assert!(summary.results > 0);
        Some(peak_kb()? - before)
    };
    let (Some(a), Some(b)) = (growth(small.path()), growth(large.path())) else {
        eprintln!("skipped: cannot reset or read the peak resident size here");
        return;
    };
    // 48,000 result rows are ~60 MB of CSV: holding them would show; streaming stays within
    // a few MB of the small run (buffers, the class index of 3,360 classes).
    assert!(
        b < a + 16 * 1024,
        "peak grew {a} kB for 500 students, {b} kB for 12,000"
    );
}
