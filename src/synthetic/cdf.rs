//! Synthetic NWEA MAP Growth Comprehensive Data Files (CDF) for the students of a OneRoster
//! bundle: a zip of `AssessmentResults.csv`, `StudentsBySchool.csv` and `ClassAssignments.csv`
//! (reference: map-scores.md §2–§3, §6).
//!
//! Every value is derived from `(seed, StudentID, subject, term)` through the keyed SplitMix64,
//! so each file is written in its own streaming pass over `users.csv` and the scores of one
//! student agree across terms (observed growth is the difference of two generated scores)
//! without anything per student being kept. What is held is per school and per class: the
//! orgs, and for ClassAssignments a compact class index (a few dozen bytes a class).

use std::collections::HashMap;
use std::fmt::{self, Display, Write as _};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::Serialize;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::rng::SplitMix64;

#[cfg(test)]
mod tests;

/// The zip's entries, named as NWEA names them (the names never change between exports).
pub const RESULTS_FILE: &str = "AssessmentResults.csv";
pub const STUDENTS_FILE: &str = "StudentsBySchool.csv";
pub const CLASSES_FILE: &str = "ClassAssignments.csv";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdfOptions {
    /// Term names as NWEA writes them, e.g. `Fall 2025-2026`; one block of rows per term.
    pub terms: Vec<String>,
    pub subjects: Vec<CdfSubject>,
    pub layout: CdfLayout,
    pub seed: u64,
    /// Extra AssessmentResults rows, each broken in one documented way (see [`BREAKS`]).
    pub malformed_rows: usize,
    /// Write some headers in the casings real exports vary by (`termname`, `FalltoFall…`).
    pub odd_header_casing: bool,
}

impl Default for CdfOptions {
    fn default() -> Self {
        CdfOptions {
            terms: vec!["Fall 2025-2026".to_string()],
            subjects: vec![CdfSubject::Mathematics, CdfSubject::Reading],
            layout: CdfLayout::Combined,
            seed: 1,
            malformed_rows: 0,
            odd_header_casing: false,
        }
    }
}

/// Column set of `AssessmentResults.csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CdfLayout {
    /// The current combined layout (§2.1): identity columns joined in, no `TestID`.
    #[default]
    Combined,
    /// The post-2015 layout (§2.2): `TestID`, `MeasurementScale`, `Discipline`, `GrowthMeasureYN`.
    Post2015,
}

/// A MAP Growth subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CdfSubject {
    Mathematics,
    Reading,
    LanguageUsage,
    Science,
}

/// A subject or layout name the command line did not recognise.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of {expected})")]
pub struct CdfNameError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl FromStr for CdfSubject {
    type Err = CdfNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        Ok(match name.as_str() {
            "mathematics" | "math" => CdfSubject::Mathematics,
            "reading" => CdfSubject::Reading,
            "languageusage" | "language" => CdfSubject::LanguageUsage,
            "science" | "generalscience" => CdfSubject::Science,
            _ => {
                return Err(CdfNameError {
                    what: "subject",
                    value: s.to_string(),
                    expected: "mathematics, reading, language-usage, science",
                })
            }
        })
    }
}

impl FromStr for CdfLayout {
    type Err = CdfNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "combined" => Ok(CdfLayout::Combined),
            "post2015" => Ok(CdfLayout::Post2015),
            _ => Err(CdfNameError {
                what: "layout",
                value: s.to_string(),
                expected: "combined, post2015",
            }),
        }
    }
}

impl fmt::Display for CdfSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl fmt::Display for CdfLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CdfLayout::Combined => "combined",
            CdfLayout::Post2015 => "post2015",
        })
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CdfSummary {
    /// Data rows of AssessmentResults.csv, malformed ones included.
    pub results: u64,
    /// Students written (student users with an `identifier`).
    pub students: u64,
    /// Malformed rows among `results`.
    pub malformed: u64,
    /// Size of the zip.
    pub bytes: u64,
    /// Where each malformed row is: its line in AssessmentResults.csv (1-based, the header is
    /// line 1) and the header of the broken field (one `odd_header_casing` never changes).
    pub malformed_at: Vec<(u64, &'static str)>,
    /// Student users skipped because they have no `identifier` (NWEA's StudentID).
    pub skipped_students: u64,
    /// Data rows of StudentsBySchool.csv.
    pub students_by_school: u64,
    /// Data rows of ClassAssignments.csv; `None` when the file was left out.
    pub class_assignments: Option<u64>,
    /// Why ClassAssignments.csv was left out.
    pub class_assignments_omitted: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CdfGenError {
    #[error("no terms to write")]
    NoTerms,
    #[error("no subjects to write")]
    NoSubjects,
    #[error("term {0:?} is not a MAP Growth term name such as \"Fall 2025-2026\" (Fall, Winter, Spring or Summer, then a school year YYYY-YYYY or a year)")]
    Term(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: csv::Error },
    #[error("{path} has no {column} column")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The documented ways a malformed row is broken, used in turn: (canonical field, bad value).
pub const BREAKS: [(&str, &str); 5] = [
    ("TestRITScore", "abc"),
    ("TestRITScore", "999"),
    ("TestStartDate", "2025-13-45"),
    ("Goal1Range", "x-y"),
    ("Goal1Adjective", "Medium"),
];

/// Writes a CDF zip at `out` for the students in the OneRoster bundle folder `roster` (its
/// users.csv, role student; StudentID = the user's `identifier`, students without one are
/// skipped; grades from `grades`; schools and the district from orgs.csv when present).
/// ClassAssignments.csv comes from classes.csv and enrollments.csv when those list each
/// student's enrollments together and in users.csv order (as `generate oneroster` writes them),
/// which lets them be joined in one streaming pass; otherwise the file is left out and the
/// summary says why.
///
/// Output is a pure function of the roster and `options`: the same seed writes the same bytes.
pub fn write_cdf(
    roster: &Path,
    out: &Path,
    options: &CdfOptions,
) -> Result<CdfSummary, CdfGenError> {
    let gen = Generator::new(roster, out, options)?;
    // The read-only passes come first, so a roster that cannot be read leaves no zip behind.
    // How many students there are, so malformed rows can be spread evenly:
    let (students, skipped) = gen.count_students()?;
    let classes = match gen.class_index()? {
        Err(reason) => Err(reason),
        Ok(index) => match gen.join_classes(&index, None)? {
            Ok(rows) => Ok((index, rows)),
            Err(reason) => Err(reason.to_string()),
        },
    };
    let mut summary = CdfSummary {
        students,
        skipped_students: skipped,
        ..CdfSummary::default()
    };
    let written = gen.write_zip(&mut summary, classes.as_ref().ok());
    if written.is_err() {
        // Best effort: a half-written export is worse than none.
        let _ = std::fs::remove_file(out);
    }
    written?;
    summary.class_assignments_omitted = classes.err();
    Ok(summary)
}

/// The current school year's terms whose testing has begun by `today` (Fall from mid-August,
/// Winter from January, Spring from mid-April); before this year's Fall, last year's three.
pub fn terms_so_far(today: NaiveDate) -> Vec<String> {
    let start = if today.month() >= 7 {
        today.year()
    } else {
        today.year() - 1
    };
    let year = format!("{start}-{}", start + 1);
    let begun: Vec<String> = [Season::Fall, Season::Winter, Season::Spring]
        .into_iter()
        .filter(|s| s.window(start).0 <= today)
        .map(|s| format!("{} {year}", s.name()))
        .collect();
    if begun.is_empty() {
        let last = format!("{}-{start}", start - 1);
        ["Fall", "Winter", "Spring"]
            .iter()
            .map(|s| format!("{s} {last}"))
            .collect()
    } else {
        begun
    }
}

// ---------------------------------------------------------------------------------------------
// Terms, subjects and norms.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Season {
    Fall,
    Winter,
    Spring,
    Summer,
}

impl Season {
    fn name(self) -> &'static str {
        match self {
            Season::Fall => "Fall",
            Season::Winter => "Winter",
            Season::Spring => "Spring",
            Season::Summer => "Summer",
        }
    }

    /// Column of the norms table: beginning, middle or end of year. Summer tests are taken
    /// after the year's instruction, so they are read against the end of year.
    fn norms_column(self) -> usize {
        match self {
            Season::Fall => 0,
            Season::Winter => 1,
            Season::Spring | Season::Summer => 2,
        }
    }

    /// Testing window of the season in the school year starting in `start_year`.
    fn window(self, start_year: i32) -> (NaiveDate, NaiveDate) {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("fixed calendar date");
        let next = start_year + 1;
        match self {
            Season::Fall => (d(start_year, 8, 18), d(start_year, 10, 10)),
            Season::Winter => (d(next, 1, 6), d(next, 2, 14)),
            Season::Spring => (d(next, 4, 20), d(next, 6, 5)),
            Season::Summer => (d(next, 6, 16), d(next, 7, 31)),
        }
    }
}

/// A parsed term name.
#[derive(Debug, Clone)]
struct Term {
    name: String,
    season: Season,
    /// Calendar year the school year starts in (`Fall 2025-2026` → 2025).
    start_year: i32,
    first: NaiveDate,
    last: NaiveDate,
    /// Years before the latest term's school year (0 or negative): roster grades are taken to
    /// be the latest year's, so a student is a grade lower in the year before.
    grade_offset: i32,
}

impl Term {
    fn parse(name: &str) -> Result<Term, CdfGenError> {
        let bad = || CdfGenError::Term(name.to_string());
        let mut words = name.split_whitespace();
        let (Some(season), Some(year), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let season = match season.to_ascii_lowercase().as_str() {
            "fall" => Season::Fall,
            "winter" => Season::Winter,
            "spring" => Season::Spring,
            "summer" => Season::Summer,
            _ => return Err(bad()),
        };
        let number = |s: &str| {
            (s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<i32>().ok())
                .flatten()
                .filter(|y| (1990..=2100).contains(y))
        };
        let start_year = match year.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a).ok_or_else(bad)?, number(b).ok_or_else(bad)?);
                if b != a + 1 {
                    return Err(bad());
                }
                a
            }
            // A lone year is the calendar year of the testing window.
            None => {
                let y = number(year).ok_or_else(bad)?;
                if season == Season::Fall {
                    y
                } else {
                    y - 1
                }
            }
        };
        let (first, last) = season.window(start_year);
        Ok(Term {
            name: name.trim().to_string(),
            season,
            start_year,
            first,
            last,
            grade_offset: 0,
        })
    }

    fn key(&self) -> u64 {
        self.start_year as u64 * 4 + self.season as u64
    }
}

/// Test level of a grade: MAP Growth K-2, 2-5 or 6+ (grade 2 takes 2-5, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    K2,
    G2to5,
    G6Plus,
}

impl Level {
    fn of(grade: i32) -> Level {
        match grade {
            ..=1 => Level::K2,
            2..=5 => Level::G2to5,
            _ => Level::G6Plus,
        }
    }
}

const MATH_GOALS_K5: &[&str] = &[
    "Operations and Algebraic Thinking",
    "Number and Operations",
    "Measurement and Data",
    "Geometry",
];
const MATH_GOALS_6: &[&str] = &[
    "Operations and Algebraic Thinking",
    "The Real and Complex Number Systems",
    "Geometry",
    "Statistics and Probability",
];
const READING_GOALS_K2: &[&str] = &[
    "Foundational Skills",
    "Language and Writing",
    "Literature and Informational Text",
    "Vocabulary Use and Functions",
];
const READING_GOALS: &[&str] = &[
    "Informational Text: Key Ideas and Details",
    "Informational Text: Language, Craft, and Structure",
    "Literary Text: Key Ideas and Details",
    "Literary Text: Language, Craft, and Structure",
    "Vocabulary: Acquisition and Use",
];
const LANGUAGE_GOALS: &[&str] = &[
    "Writing: Write, Revise Texts for Purpose and Audience",
    "Language: Understand, Edit for Grammar, Usage",
    "Language: Understand, Edit for Mechanics",
];
const SCIENCE_GOALS: &[&str] = &[
    "Life Sciences",
    "Earth and Space Sciences",
    "Physical Sciences",
];

impl CdfSubject {
    /// Every subject, in the order the command line lists them.
    pub const ALL: [CdfSubject; 4] = [
        CdfSubject::Mathematics,
        CdfSubject::Reading,
        CdfSubject::LanguageUsage,
        CdfSubject::Science,
    ];

    /// `Subject` of the combined layout and `MeasurementScale`'s usual value.
    fn label(self) -> &'static str {
        match self {
            CdfSubject::Mathematics => "Mathematics",
            CdfSubject::Reading => "Reading",
            CdfSubject::LanguageUsage => "Language Usage",
            CdfSubject::Science => "Science",
        }
    }

    fn course(self) -> &'static str {
        match self {
            CdfSubject::Mathematics => "Math K-12",
            CdfSubject::Reading => "Reading",
            CdfSubject::LanguageUsage => "Language Usage",
            CdfSubject::Science => "Science K-12",
        }
    }

    fn measurement_scale(self) -> &'static str {
        match self {
            CdfSubject::Science => "General Science",
            other => other.label(),
        }
    }

    fn test_name(self, level: Level) -> &'static str {
        match (self, level) {
            (CdfSubject::Mathematics, Level::K2) => "Growth: Math K-2 CCSS 2010 V2",
            (CdfSubject::Mathematics, Level::G2to5) => "Growth: Math 2-5 CCSS 2010 V2",
            (CdfSubject::Mathematics, Level::G6Plus) => "Growth: Math 6+ CCSS 2010 V2",
            (CdfSubject::Reading, Level::K2) => "Growth: Reading K-2 CCSS 2010 V4",
            (CdfSubject::Reading, Level::G2to5) => "Growth: Reading 2-5 CCSS 2010 V4",
            (CdfSubject::Reading, Level::G6Plus) => "Growth: Reading 6+ CCSS 2010 V4",
            (CdfSubject::LanguageUsage, _) => "Growth: Language 2-12 CCSS 2010 V2",
            (CdfSubject::Science, Level::K2 | Level::G2to5) => "Growth: Science 3-5 NGSS 2013",
            (CdfSubject::Science, Level::G6Plus) => "Growth: Science 6+ NGSS 2013",
        }
    }

    fn goals(self, level: Level) -> &'static [&'static str] {
        match (self, level) {
            (CdfSubject::Mathematics, Level::G6Plus) => MATH_GOALS_6,
            (CdfSubject::Mathematics, _) => MATH_GOALS_K5,
            (CdfSubject::Reading, Level::K2) => READING_GOALS_K2,
            (CdfSubject::Reading, _) => READING_GOALS,
            (CdfSubject::LanguageUsage, _) => LANGUAGE_GOALS,
            (CdfSubject::Science, _) => SCIENCE_GOALS,
        }
    }

    fn index(self) -> u64 {
        self as u64
    }

    /// Status-norm mean RIT for a grade (0 = K) at the start, middle or end of the year.
    fn mean(self, grade: i32, column: usize) -> f64 {
        // The reference has reading and math only; language usage tracks reading closely and
        // science sits between the two, which is near enough for synthetic data.
        match self {
            CdfSubject::Mathematics => norm(&MATH_NORMS, 2.0, grade, column),
            CdfSubject::Reading => norm(&READING_NORMS, 1.5, grade, column),
            CdfSubject::LanguageUsage => norm(&READING_NORMS, 1.5, grade, column) + 1.5,
            CdfSubject::Science => {
                (norm(&MATH_NORMS, 2.0, grade, column) + norm(&READING_NORMS, 1.5, grade, column))
                    / 2.0
            }
        }
    }
}

/// 2015 status-norm means, K–8, beginning / middle / end of year (map-scores.md §6.3).
const READING_NORMS: [[f64; 3]; 9] = [
    [141.0, 151.3, 158.1],
    [160.7, 171.5, 177.5],
    [174.7, 184.2, 188.7],
    [188.3, 195.6, 198.6],
    [198.2, 203.6, 205.9],
    [205.7, 209.8, 211.8],
    [211.0, 214.2, 215.8],
    [214.4, 216.9, 218.2],
    [217.2, 219.1, 220.1],
];
const MATH_NORMS: [[f64; 3]; 9] = [
    [140.0, 151.5, 159.1],
    [162.4, 173.8, 180.8],
    [176.9, 186.4, 192.1],
    [190.4, 198.2, 203.4],
    [201.9, 208.7, 213.5],
    [211.4, 217.2, 221.4],
    [217.6, 222.1, 225.3],
    [222.6, 226.1, 228.6],
    [226.3, 229.1, 230.9],
];
/// The norms chart written in the rows: the means above are its status norms.
const NORMS_REFERENCE: &str = "2015";
/// Spread of RIT within a grade (the reference gives 13–21).
const RIT_SD: f64 = 15.0;
/// Spread of growth around its projection, for the conditional growth index.
const GROWTH_SD: f64 = 7.0;
/// Students with no grade in the roster are scored against this grade's norms.
const DEFAULT_GRADE: i32 = 5;

/// The table stops at grade 8: high-school grades continue grade 8 by `step` a year.
fn norm(table: &[[f64; 3]; 9], step: f64, grade: i32, column: usize) -> f64 {
    let g = grade.clamp(0, 13); // 13: the year after grade 12, for its year-to-year growth
    if g <= 8 {
        table[g as usize][column]
    } else {
        table[8][column] + step * f64::from(g - 8)
    }
}

/// Normal cumulative distribution (Abramowitz–Stegun 7.1.26 for erf; error < 2e-7).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Percentile rank 1–99 of `rit` against a norm mean.
fn percentile(rit: f64, mean: f64) -> u32 {
    ((phi((rit - mean) / RIT_SD) * 100.0).round() as u32).clamp(1, 99)
}

/// NWEA's quintile words for a percentile (§6.2).
fn quintile(percentile: u32) -> &'static str {
    match percentile {
        ..=20 => "Low",
        21..=40 => "LoAvg",
        41..=60 => "Avg",
        61..=80 => "HiAvg",
        _ => "High",
    }
}

/// Roster grade (`KG`, `01`, `12`, …) as a number, K = 0; `None` for ungraded.
fn parse_grade(grades: &str) -> Option<i32> {
    let first = grades.split(',').next()?.trim();
    match first.to_ascii_uppercase().as_str() {
        "KG" | "K" | "TK" | "PK" | "PR" | "IT" => Some(0),
        other => other
            .parse::<i32>()
            .ok()
            .filter(|g| (1..=13).contains(g))
            .map(|g| g.min(12)),
    }
}

fn grade_text(grade: Option<i32>) -> GradeText {
    GradeText(grade)
}

struct GradeText(Option<i32>);

impl Display for GradeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(0) => f.write_str("K"),
            Some(g) => write!(f, "{g}"),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random draws.

const TAG_ABILITY: u64 = 101;
const TAG_SCORE: u64 = 102;
const TAG_EVENT: u64 = 103;
const TAG_STUDENT: u64 = 104;
const TAG_TEST_ID: u64 = 105;

/// Uniform in (0, 1).
fn unit(rng: &mut SplitMix64) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Standard normal (Box–Muller).
fn normal(rng: &mut SplitMix64) -> f64 {
    let (u1, u2) = (unit(rng), unit(rng));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// FNV-1a: a stable key for a StudentID (std's hasher may change between releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn round_to(x: f64, step: f64) -> f64 {
    (x / step).round() * step
}

fn clamp_rit(x: f64) -> i32 {
    (x.round() as i32).clamp(100, 350)
}

/// A student's score on one test.
#[derive(Debug, Clone, Copy)]
struct Score {
    rit: i32,
    /// Standard error, already rounded to the 0.1 it is written with.
    se: f64,
    /// The student's lasting standing in the subject, in SDs.
    ability: f64,
}

/// Overall score: the grade/season mean plus a lasting ability (so a student's terms correlate
/// about 0.8) and this test's own noise. `attempt` 0 is the term's test, others are retests.
fn score(
    seed: u64,
    student: u64,
    subject: CdfSubject,
    term: &Term,
    grade: i32,
    attempt: u64,
) -> Score {
    let ability = normal(&mut SplitMix64::keyed(
        seed,
        &[TAG_ABILITY, student, subject.index()],
    ));
    let mut rng = SplitMix64::keyed(
        seed,
        &[TAG_SCORE, student, subject.index(), term.key(), attempt],
    );
    let noise = normal(&mut rng);
    let mean = subject.mean(grade, term.season.norms_column());
    Score {
        rit: clamp_rit(mean + RIT_SD * (0.9 * ability + 0.436 * noise)),
        se: round_to(3.0 + 0.5 * unit(&mut rng), 0.1),
        ability,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Goal {
    name: &'static str,
    rit: i32,
    se: f64,
}

impl Goal {
    /// `low-high`: the RIT ± one standard error (§6.1), within the RIT scale.
    fn range(&self) -> (i32, i32) {
        (
            clamp_rit(f64::from(self.rit) - self.se),
            clamp_rit(f64::from(self.rit) + self.se),
        )
    }
}

/// Everything about one test event besides the student.
struct Event {
    score: Score,
    /// Norm mean the percentiles are read against.
    mean: f64,
    date: NaiveDate,
    /// Seconds after midnight.
    start: u32,
    duration: u32,
    percent_correct: u32,
    rapid_guessing: u32,
    accommodation: Option<(&'static str, &'static str)>,
    growth_event: bool,
    goals: [Goal; 8],
    goal_count: usize,
}

const ACCOMMODATIONS: [(&str, &str); 3] = [
    ("Presentation", "Text-to-speech"),
    ("Timing/Scheduling", "Breaks"),
    ("Setting", "Small group"),
];

impl Event {
    fn draw(
        seed: u64,
        student: u64,
        subject: CdfSubject,
        term: &Term,
        grade: i32,
        attempt: u64,
    ) -> Event {
        let score = score(seed, student, subject, term, grade, attempt);
        let mean = subject.mean(grade, term.season.norms_column());
        let mut rng = SplitMix64::keyed(
            seed,
            &[TAG_EVENT, student, subject.index(), term.key(), attempt],
        );
        let days = (term.last - term.first).num_days() as usize + 1;
        // Schools test on weekdays; a few redraws find one.
        let mut date = term.first + Duration::days(rng.below(days) as i64);
        for _ in 0..8 {
            if !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
                break;
            }
            date = term.first + Duration::days(rng.below(days) as i64);
        }
        let start = 7 * 3600 + 45 * 60 + rng.below(6 * 3600 + 45 * 60) as u32;
        let duration = 20 + rng.below(51) as u32;
        let percent_correct = 42 + rng.below(20) as u32;
        let rapid_guessing = if rng.chance(0.8) {
            0
        } else {
            1 + rng.below(30) as u32
        };
        let accommodation = rng
            .chance(0.04)
            .then(|| ACCOMMODATIONS[rng.below(ACCOMMODATIONS.len())]);
        let growth_event = rng.chance(0.97);
        let names = subject.goals(Level::of(grade));
        let mut goals = [Goal::default(); 8];
        for (goal, name) in goals.iter_mut().zip(names) {
            *goal = Goal {
                name,
                rit: clamp_rit(f64::from(score.rit) + 5.0 * normal(&mut rng)),
                se: round_to(6.0 + 2.0 * unit(&mut rng), 0.1),
            };
        }
        Event {
            score,
            mean,
            date,
            start,
            duration,
            percent_correct,
            rapid_guessing,
            accommodation,
            growth_event,
            goals,
            goal_count: names.len(),
        }
    }

    fn percentile(&self) -> u32 {
        percentile(f64::from(self.score.rit), self.mean)
    }
}

/// Growth windows: (name, from season, to season, school years between).
const WINDOWS: [(&str, Season, Season, i32); 6] = [
    ("FallToFall", Season::Fall, Season::Fall, 1),
    ("FallToWinter", Season::Fall, Season::Winter, 0),
    ("FallToSpring", Season::Fall, Season::Spring, 0),
    ("WinterToWinter", Season::Winter, Season::Winter, 1),
    ("WinterToSpring", Season::Winter, Season::Spring, 0),
    ("SpringToSpring", Season::Spring, Season::Spring, 1),
];
/// The typical-growth headers, with the lower-case "to" real exports have (§2.1).
const TYPICAL_HEADERS: [&str; 6] = [
    "TypicalFallToFallGrowth",
    "TypicalFallToWinterGrowth",
    "TypicalFallToSpringGrowth",
    "TypicalWintertoWinterGrowth",
    "TypicalWintertoSpringGrowth",
    "TypicalSpringToSpringGrowth",
];

/// One growth window's cells in one row; empty where the window does not apply.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    projected: Option<i32>,
    observed: Option<i32>,
    observed_se: Option<f64>,
    met: Option<bool>,
    cgi: Option<f64>,
    cgp: Option<u32>,
    typical: Option<i32>,
}

fn typical_growth(subject: CdfSubject, grade: i32, window: usize) -> f64 {
    let (_, from, to, years) = WINDOWS[window];
    subject.mean(grade + years, to.norms_column()) - subject.mean(grade, from.norms_column())
}

/// Students above their grade grow a little less than typical, those below a little more.
fn projected_growth(subject: CdfSubject, grade: i32, window: usize, ability: f64) -> i32 {
    (typical_growth(subject, grade, window) - 1.2 * ability)
        .round()
        .max(0.0) as i32
}

// ---------------------------------------------------------------------------------------------
// The roster.

struct Org {
    name: String,
    identifier: String,
    parent: String,
}

/// orgs.csv, held whole: one entry per school.
#[derive(Default)]
struct Orgs {
    by_id: HashMap<String, Org>,
    district: Option<String>,
}

impl Orgs {
    fn load(path: &Path) -> Result<Orgs, CdfGenError> {
        let mut orgs = Orgs::default();
        if !path.is_file() {
            return Ok(orgs);
        }
        let mut r = open(path)?;
        let cols = Columns::of(&mut r, path)?;
        let id = cols.required("sourcedId")?;
        let name = cols.required("name")?;
        let kind = cols.optional("type");
        let identifier = cols.optional("identifier");
        let parent = cols.optional("parentSourcedId");
        let mut rec = csv::StringRecord::new();
        while read(&mut r, &mut rec, path)? {
            let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("").trim();
            let sourced_id = get(Some(id)).to_string();
            if get(kind).eq_ignore_ascii_case("district") && orgs.district.is_none() {
                orgs.district = Some(sourced_id.clone());
            }
            orgs.by_id.insert(
                sourced_id,
                Org {
                    name: get(Some(name)).to_string(),
                    identifier: get(identifier).to_string(),
                    parent: get(parent).to_string(),
                },
            );
        }
        Ok(orgs)
    }

    fn school(&self, org_ids: &str) -> Option<&Org> {
        self.by_id.get(org_ids.split(',').next()?.trim())
    }

    fn district_of(&self, school: Option<&Org>) -> Option<&Org> {
        school
            .and_then(|s| self.by_id.get(&s.parent))
            .or_else(|| self.by_id.get(self.district.as_deref()?))
    }
}

fn open(path: &Path) -> Result<csv::Reader<File>, CdfGenError> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|source| CdfGenError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read(
    r: &mut csv::Reader<File>,
    rec: &mut csv::StringRecord,
    path: &Path,
) -> Result<bool, CdfGenError> {
    r.read_record(rec).map_err(|source| CdfGenError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A header row, looked up by name.
struct Columns {
    names: Vec<String>,
    path: PathBuf,
}

impl Columns {
    fn of(r: &mut csv::Reader<File>, path: &Path) -> Result<Columns, CdfGenError> {
        let headers = r.headers().map_err(|source| CdfGenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Columns {
            names: headers
                .iter()
                .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
                .collect(),
            path: path.to_path_buf(),
        })
    }

    fn optional(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name))
    }

    fn required(&self, name: &'static str) -> Result<usize, CdfGenError> {
        self.optional(name)
            .ok_or_else(|| CdfGenError::MissingColumn {
                path: self.path.clone(),
                column: name,
            })
    }
}

/// users.csv columns read here.
struct UserColumns {
    sourced_id: usize,
    status: Option<usize>,
    role: usize,
    given: usize,
    family: usize,
    middle: Option<usize>,
    identifier: usize,
    grades: Option<usize>,
    orgs: Option<usize>,
}

impl UserColumns {
    fn of(cols: &Columns) -> Result<UserColumns, CdfGenError> {
        Ok(UserColumns {
            sourced_id: cols.required("sourcedId")?,
            status: cols.optional("status"),
            role: cols.required("role")?,
            given: cols.required("givenName")?,
            family: cols.required("familyName")?,
            middle: cols.optional("middleName"),
            identifier: cols.required("identifier")?,
            grades: cols.optional("grades"),
            orgs: cols.optional("orgSourcedIds"),
        })
    }

    fn get<'r>(&self, rec: &'r csv::StringRecord, index: Option<usize>) -> &'r str {
        index.and_then(|i| rec.get(i)).unwrap_or("").trim()
    }

    fn has_role(&self, rec: &csv::StringRecord, role: &str) -> bool {
        self.get(rec, Some(self.role)).eq_ignore_ascii_case(role)
            && !self
                .get(rec, self.status)
                .eq_ignore_ascii_case("tobedeleted")
    }
}

/// A student as the CDF's identity block shows them.
struct Identity<'a> {
    id: &'a str,
    given: &'a str,
    family: &'a str,
    middle_initial: Option<char>,
    grade: Option<i32>,
    school: Option<&'a Org>,
    district: Option<&'a Org>,
    key: u64,
    state_id: u64,
    birth: NaiveDate,
    ethnicity: usize,
    gender: &'static str,
}

/// (district's own label, NWEA's standard label), with a weight out of 100.
const ETHNICITIES: [(&str, &str, usize); 7] = [
    ("White", "White", 45),
    ("Hispanic or Latino", "Hispanic or Latino", 28),
    ("Black or African American", "Black or African American", 14),
    ("Asian", "Asian", 6),
    ("Two or More Races", "Multi-ethnic", 5),
    (
        "American Indian or Alaska Native",
        "American Indian or Alaska Native",
        1,
    ),
    (
        "Native Hawaiian or Other Pacific Islander",
        "Native Hawaiian or Other Pacific Islander",
        1,
    ),
];

impl<'a> Identity<'a> {
    #[allow(clippy::too_many_arguments)] // the identity block is that wide
    fn new(
        seed: u64,
        latest_start: i32,
        id: &'a str,
        given: &'a str,
        family: &'a str,
        middle: &'a str,
        grade: Option<i32>,
        school: Option<&'a Org>,
        district: Option<&'a Org>,
    ) -> Identity<'a> {
        let key = fnv1a(id);
        let mut rng = SplitMix64::keyed(seed, &[TAG_STUDENT, key]);
        // Born in the school year that puts them in their grade this year.
        let born_year = latest_start - grade.unwrap_or(DEFAULT_GRADE) - 6;
        let birth = NaiveDate::from_ymd_opt(born_year, 9, 2).expect("September 2 exists")
            + Duration::days(rng.below(365) as i64);
        let mut roll = rng.below(100);
        let ethnicity = ETHNICITIES
            .iter()
            .position(|&(_, _, weight)| {
                let hit = roll < weight;
                roll = roll.saturating_sub(weight);
                hit
            })
            .unwrap_or(0);
        Identity {
            id,
            given,
            family,
            middle_initial: middle.chars().next().map(|c| c.to_ascii_uppercase()),
            grade,
            school,
            district,
            key,
            state_id: 1_000_000_000 + rng.below(9_000_000_000) as u64,
            birth,
            ethnicity,
            gender: if rng.chance(0.5) { "F" } else { "M" },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing rows: one function per file says, column by column, name and value, so the header
// and the rows cannot drift apart.

/// Where a row's cells go: the header (names) or a CSV record (values).
trait Cells {
    fn put(&mut self, name: fmt::Arguments<'_>, value: &dyn Display) -> io::Result<()>;

    fn col(&mut self, name: &str, value: &dyn Display) -> io::Result<()> {
        self.put(format_args!("{name}"), value)
    }
}

/// Collects the header, in the casing asked for.
struct HeaderCells {
    names: Vec<String>,
    odd: bool,
}

impl Cells for HeaderCells {
    fn put(&mut self, name: fmt::Arguments<'_>, _: &dyn Display) -> io::Result<()> {
        let name = name.to_string();
        self.names.push(if self.odd {
            odd_casing(&name).map_or(name, str::to_string)
        } else {
            name
        });
        Ok(())
    }
}

/// Casings real exports vary by (§3), for importers to normalise away.
fn odd_casing(name: &str) -> Option<&'static str> {
    Some(match name {
        "TermName" => "termname",
        "StudentID" => "StudentId",
        "FallToFallObservedGrowth" => "FalltoFallObservedGrowth",
        "FallToWinterProjectedGrowth" => "FalltoWinterProjectedGrowth",
        "TypicalFallToSpringGrowth" => "TypicalFalltoSpringGrowth",
        _ => return None,
    })
}

/// Writes one CSV record, optionally with one field replaced by a broken value.
struct RecordCells<'w, W: Write> {
    w: &'w mut csv::Writer<W>,
    value: String,
    name: String,
    broken: Option<(&'static str, &'static str)>,
}

impl<'w, W: Write> RecordCells<'w, W> {
    fn new(w: &'w mut csv::Writer<W>) -> Self {
        RecordCells {
            w,
            value: String::with_capacity(64),
            name: String::with_capacity(32),
            broken: None,
        }
    }

    fn end(&mut self) -> io::Result<()> {
        self.w.write_record(None::<&[u8]>)?;
        Ok(())
    }
}

impl<W: Write> Cells for RecordCells<'_, W> {
    fn put(&mut self, name: fmt::Arguments<'_>, value: &dyn Display) -> io::Result<()> {
        self.value.clear();
        let broken = match self.broken {
            Some((field, bad)) => {
                self.name.clear();
                let _ = write!(self.name, "{name}");
                (self.name == field).then_some(bad)
            }
            None => None,
        };
        match broken {
            Some(bad) => self.value.push_str(bad),
            None => {
                let _ = write!(self.value, "{value}");
            }
        }
        // A line break inside a cell would shift every later line number.
        if self.value.contains(['\r', '\n']) {
            self.value = self.value.replace(['\r', '\n'], " ");
        }
        self.w.write_field(&self.value)?;
        Ok(())
    }
}

/// An optional cell: empty when `None`.
struct Opt<T>(Option<T>);

impl<T: Display> Display for Opt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
}

/// A decimal with a fixed number of places.
struct Dec(f64, usize);

impl Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.*}", self.1, self.0)
    }
}

/// A date as the layout writes it: ISO for the combined layout, M/D/YYYY for the older one.
struct DateCell(NaiveDate, CdfLayout);

impl Display for DateCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        match self.1 {
            CdfLayout::Combined => write!(f, "{}", d.format("%Y-%m-%d")),
            CdfLayout::Post2015 => write!(f, "{}/{}/{}", d.month(), d.day(), d.year()),
        }
    }
}

/// A time of day: `HH:MM:SS`, or `H:MM:SS AM` in the older layout.
struct TimeCell(u32, CdfLayout);

impl Display for TimeCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
        match self.1 {
            CdfLayout::Combined => write!(f, "{h:02}:{m:02}:{s:02}"),
            CdfLayout::Post2015 => {
                let (h12, half) = match h {
                    0 => (12, "AM"),
                    1..=11 => (h, "AM"),
                    12 => (12, "PM"),
                    _ => (h - 12, "PM"),
                };
                write!(f, "{h12}:{m:02}:{s:02} {half}")
            }
        }
    }
}

/// A Lexile (`850L`, `BR120`) or Quantile (`600Q`, `EM150Q`) measure.
struct Measure(i32, &'static str, &'static str);

impl Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Measure(value, below, suffix) = *self;
        if value < 0 {
            write!(f, "{below}{}", -value)?;
            // Lexile's beginning-reader values carry no suffix; Quantile's emerging ones do.
            if suffix == "Q" {
                f.write_str(suffix)?;
            }
            Ok(())
        } else {
            write!(f, "{value}{suffix}")
        }
    }
}

struct Flag(bool, &'static str, &'static str);

impl Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { self.1 } else { self.2 })
    }
}

/// Everything one AssessmentResults row shows.
struct ResultRow<'a> {
    layout: CdfLayout,
    term: &'a Term,
    who: &'a Identity<'a>,
    subject: CdfSubject,
    grade: Option<i32>,
    event: Event,
    windows: [Window; 6],
    test_id: u64,
}

impl ResultRow<'_> {
    fn lexile(&self) -> Option<(Measure, Measure, Measure)> {
        (self.subject == CdfSubject::Reading).then(|| {
            // Roughly 20L a RIT point, 400L at RIT 190; rounded as Lexile reports are.
            let l = (round_to(20.0 * f64::from(self.event.score.rit - 170), 5.0)) as i32;
            (
                Measure(l, "BR", "L"),
                Measure(l - 100, "BR", "L"),
                Measure(l + 50, "BR", "L"),
            )
        })
    }

    fn quantile(&self) -> Option<(Measure, Measure, Measure)> {
        (self.subject == CdfSubject::Mathematics).then(|| {
            let q = (round_to(20.0 * f64::from(self.event.score.rit - 175), 5.0)) as i32;
            (
                Measure(q, "EM", "Q"),
                Measure(q - 50, "EM", "Q"),
                Measure(q + 50, "EM", "Q"),
            )
        })
    }

    /// Projected proficiency on linked tests: a state test for math and reading, and a college
    /// readiness benchmark from grade 6.
    fn projections(&self) -> [Option<(&'static str, &'static str)>; 2] {
        let p = self.event.percentile();
        let linked = matches!(self.subject, CdfSubject::Mathematics | CdfSubject::Reading)
            && self.term.season != Season::Summer;
        let state = linked.then(|| {
            let level = match p {
                ..=29 => "Not Met",
                30..=49 => "Nearly Met",
                50..=79 => "Met",
                _ => "Exceeded",
            };
            ("State Summative Assessment", level)
        });
        let college = (linked && self.grade.unwrap_or(DEFAULT_GRADE) >= 6).then(|| {
            let level = if p >= 60 { "On Track" } else { "Not On Track" };
            ("ACT College Readiness", level)
        });
        [state, college]
    }

    fn goals(&self, c: &mut dyn Cells) -> io::Result<()> {
        for n in 1..=8 {
            let goal = (n <= self.event.goal_count).then(|| self.event.goals[n - 1]);
            let range = goal.map(|g| g.range());
            let adjective = goal.map(|g| quintile(percentile(f64::from(g.rit), self.event.mean)));
            c.put(format_args!("Goal{n}Name"), &Opt(goal.map(|g| g.name)))?;
            c.put(format_args!("Goal{n}RitScore"), &Opt(goal.map(|g| g.rit)))?;
            c.put(
                format_args!("Goal{n}StdErr"),
                &Opt(goal.map(|g| Dec(g.se, 1))),
            )?;
            c.put(
                format_args!("Goal{n}Range"),
                &Opt(range.map(|(lo, hi)| format!("{lo}-{hi}"))),
            )?;
            c.put(format_args!("Goal{n}Adjective"), &Opt(adjective))?;
        }
        Ok(())
    }

    /// The growth windows' cells; `quintile` only in the combined layout.
    fn growth(&self, c: &mut dyn Cells, with_quintile: bool) -> io::Result<()> {
        for ((window, ..), w) in WINDOWS.iter().zip(&self.windows) {
            c.put(format_args!("{window}ProjectedGrowth"), &Opt(w.projected))?;
            c.put(format_args!("{window}ObservedGrowth"), &Opt(w.observed))?;
            c.put(
                format_args!("{window}ObservedGrowthSE"),
                &Opt(w.observed_se.map(|se| Dec(se, 1))),
            )?;
            c.put(
                format_args!("{window}MetProjectedGrowth"),
                &Opt(w.met.map(|m| Flag(m, "Yes", "No"))),
            )?;
            c.put(
                format_args!("{window}ConditionalGrowthIndex"),
                &Opt(w.cgi.map(|x| Dec(x, 2))),
            )?;
            c.put(
                format_args!("{window}ConditionalGrowthPercentile"),
                &Opt(w.cgp),
            )?;
            if with_quintile {
                c.put(
                    format_args!("{window}GrowthQuintile"),
                    &Opt(w.cgp.map(quintile)),
                )?;
            }
        }
        Ok(())
    }

    fn write(&self, c: &mut dyn Cells) -> io::Result<()> {
        match self.layout {
            CdfLayout::Combined => self.write_combined(c),
            CdfLayout::Post2015 => self.write_post2015(c),
        }
    }

    /// The current combined layout, in the order of map-scores.md §2.1.
    fn write_combined(&self, c: &mut dyn Cells) -> io::Result<()> {
        let e = &self.event;
        let layout = self.layout;
        identity_block(c, self.term, self.who, self.grade, layout)?;
        c.col("Subject", &self.subject.label())?;
        c.col("Course", &self.subject.course())?;
        c.col("NormsReferenceData", &NORMS_REFERENCE)?;
        weeks_of_instruction(c)?;
        c.col("TestType", &"Survey With Goals")?;
        c.col("TestName", &self.subject.test_name(level_of(self.grade)))?;
        c.col("TestStartDate", &DateCell(e.date, layout))?;
        c.col("TestStartTime", &TimeCell(e.start, layout))?;
        c.col("TestDurationMinutes", &e.duration)?;
        c.col("TestRITScore", &e.score.rit)?;
        c.col("TestStandardError", &Dec(e.score.se, 1))?;
        c.col("TestPercentile", &e.percentile())?;
        c.col("AchievementQuintile", &quintile(e.percentile()))?;
        c.col("PercentCorrect", &e.percent_correct)?;
        c.col("RapidGuessingPercentage", &e.rapid_guessing)?;
        self.growth(c, true)?;
        let lexile = self.lexile();
        c.col("LexileScore", &Opt(lexile.as_ref().map(|l| &l.0)))?;
        c.col("LexileMin", &Opt(lexile.as_ref().map(|l| &l.1)))?;
        c.col("LexileMax", &Opt(lexile.as_ref().map(|l| &l.2)))?;
        let quantile = self.quantile();
        c.col("QuantileScore", &Opt(quantile.as_ref().map(|q| &q.0)))?;
        c.col("QuantileMin", &Opt(quantile.as_ref().map(|q| &q.1)))?;
        c.col("QuantileMax", &Opt(quantile.as_ref().map(|q| &q.2)))?;
        self.goals(c)?;
        c.col(
            "AccommodationCategories",
            &Opt(e.accommodation.map(|a| a.0)),
        )?;
        c.col("Accommodations", &Opt(e.accommodation.map(|a| a.1)))?;
        for (header, w) in TYPICAL_HEADERS.iter().zip(&self.windows) {
            c.col(header, &Opt(w.typical))?;
        }
        let projections = self.projections();
        for k in 1..=10 {
            let p = projections.get(k - 1).copied().flatten();
            c.put(
                format_args!("ProjectedProficiencyStudy{k}"),
                &Opt(p.map(|p| p.0)),
            )?;
            c.put(
                format_args!("ProjectedProficiencyLevel{k}"),
                &Opt(p.map(|p| p.1)),
            )?;
        }
        Ok(())
    }

    /// The post-2015 layout, in the order of map-scores.md §2.2.
    fn write_post2015(&self, c: &mut dyn Cells) -> io::Result<()> {
        let e = &self.event;
        let layout = self.layout;
        c.col("TermName", &self.term.name)?;
        c.col("StudentID", &self.who.id)?;
        c.col("SchoolName", &Opt(self.who.school.map(|s| &s.name)))?;
        c.col("MeasurementScale", &self.subject.measurement_scale())?;
        c.col("Discipline", &self.subject.label())?;
        c.col("GrowthMeasureYN", &Flag(e.growth_event, "TRUE", "FALSE"))?;
        weeks_of_instruction(c)?;
        c.col("TestType", &"Survey With Goals")?;
        c.col("TestName", &self.subject.test_name(level_of(self.grade)))?;
        c.col("TestID", &self.test_id)?;
        c.col("TestStartDate", &DateCell(e.date, layout))?;
        c.col("TestDurationMinutes", &e.duration)?;
        c.col("TestRITScore", &e.score.rit)?;
        c.col("TestStandardError", &Dec(e.score.se, 1))?;
        c.col("TestPercentile", &e.percentile())?;
        self.growth(c, false)?;
        let lexile = self.lexile();
        c.col("RITtoReadingMin", &Opt(lexile.as_ref().map(|l| &l.1)))?;
        c.col("RITtoReadingMax", &Opt(lexile.as_ref().map(|l| &l.2)))?;
        self.goals(c)?;
        c.col("TestStartTime", &TimeCell(e.start, layout))?;
        c.col("PercentCorrect", &e.percent_correct)?;
        let projections = self.projections();
        for k in 1..=3 {
            let p = projections.get(k - 1).copied().flatten();
            c.put(
                format_args!("ProjectedProficiencyStudy{k}"),
                &Opt(p.map(|p| p.0)),
            )?;
        }
        for k in 1..=3 {
            let p = projections.get(k - 1).copied().flatten();
            c.put(
                format_args!("ProjectedProficiencyLevel{k}"),
                &Opt(p.map(|p| p.1)),
            )?;
        }
        Ok(())
    }
}

fn level_of(grade: Option<i32>) -> Level {
    Level::of(grade.unwrap_or(DEFAULT_GRADE))
}

/// The district's weeks of instruction at each season (the same on every row).
fn weeks_of_instruction(c: &mut dyn Cells) -> io::Result<()> {
    for (name, weeks) in [
        ("WISelectedAYFall", 4),
        ("WISelectedAYWinter", 20),
        ("WISelectedAYSpring", 32),
        ("WIPreviousAYFall", 4),
        ("WIPreviousAYWinter", 20),
        ("WIPreviousAYSpring", 32),
    ] {
        c.col(name, &weeks)?;
    }
    Ok(())
}

/// TermName … NWEAStandard_Grade: the identity block of the combined layout and of
/// StudentsBySchool.csv.
fn identity_block(
    c: &mut dyn Cells,
    term: &Term,
    who: &Identity<'_>,
    grade: Option<i32>,
    layout: CdfLayout,
) -> io::Result<()> {
    let (ethnic, standard, _) = ETHNICITIES[who.ethnicity];
    c.col("TermName", &term.name)?;
    c.col("DistrictName", &Opt(who.district.map(|d| &d.name)))?;
    c.col(
        "District_StateID",
        &Opt(who.district.map(|d| &d.identifier)),
    )?;
    c.col("SchoolName", &Opt(who.school.map(|s| &s.name)))?;
    c.col("School_StateID", &Opt(who.school.map(|s| &s.identifier)))?;
    c.col("StudentLastName", &who.family)?;
    c.col("StudentFirstName", &who.given)?;
    c.col("StudentMI", &Opt(who.middle_initial))?;
    c.col("StudentID", &who.id)?;
    c.col("Student_StateID", &who.state_id)?;
    c.col("StudentDateOfBirth", &DateCell(who.birth, layout))?;
    c.col("StudentEthnicGroup", &ethnic)?;
    c.col("NWEAStandard_EthnicGroup", &standard)?;
    c.col("StudentGender", &who.gender)?;
    c.col("Grade", &grade_text(grade))?;
    c.col("NWEAStandard_Grade", &grade_text(grade))?;
    Ok(())
}

/// StudentsBySchool.csv: the full identity block in the combined layout, the 2014-era columns
/// (§2.3) beside the post-2015 one.
fn write_student_row(
    c: &mut dyn Cells,
    term: &Term,
    who: &Identity<'_>,
    grade: Option<i32>,
    layout: CdfLayout,
) -> io::Result<()> {
    if layout == CdfLayout::Combined {
        return identity_block(c, term, who, grade, layout);
    }
    let (ethnic, ..) = ETHNICITIES[who.ethnicity];
    c.col("TermName", &term.name)?;
    c.col("DistrictName", &Opt(who.district.map(|d| &d.name)))?;
    c.col("SchoolName", &Opt(who.school.map(|s| &s.name)))?;
    c.col("StudentLastName", &who.family)?;
    c.col("StudentFirstName", &who.given)?;
    c.col("StudentMI", &Opt(who.middle_initial))?;
    c.col("StudentID", &who.id)?;
    c.col("StudentDateOfBirth", &DateCell(who.birth, layout))?;
    c.col("StudentEthnicGroup", &ethnic)?;
    c.col("StudentGender", &who.gender)?;
    c.col("Grade", &grade_text(grade))
}

fn write_class_row(
    c: &mut dyn Cells,
    term: &Term,
    student: &str,
    school: &str,
    class: &str,
    teacher: &str,
) -> io::Result<()> {
    c.col("TermName", &term.name)?;
    c.col("StudentID", &student)?;
    c.col("SchoolName", &school)?;
    c.col("ClassName", &class)?;
    c.col("TeacherName", &teacher)
}

// ---------------------------------------------------------------------------------------------
// The generator.

struct Generator<'o> {
    options: &'o CdfOptions,
    out: &'o Path,
    terms: Vec<Term>,
    subjects: Vec<CdfSubject>,
    latest_start: i32,
    orgs: Orgs,
    users: PathBuf,
    classes: PathBuf,
    enrollments: PathBuf,
    /// Zip entries' modification time: the morning after the last testing window closes, as
    /// the nightly export would be stamped (fixed, so the same input writes the same bytes).
    stamp: DateTime,
    test_id_base: u64,
}

type Zip = ZipWriter<BufWriter<File>>;

/// Receives one ClassAssignments row: (StudentID, class).
type EmitClassRow<'e> = &'e mut dyn FnMut(&str, &ClassInfo) -> io::Result<()>;

/// ClassAssignments' view of the roster's classes, keyed by a hash of the class sourcedId.
struct ClassIndex {
    classes: HashMap<u64, ClassInfo>,
    strings: Vec<String>,
}

#[derive(Clone, Copy)]
struct ClassInfo {
    title: u32,
    school: u32,
    teacher: u32,
}

/// Interns repeated text (class titles, school and teacher names) so the class index stays small.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }
}

impl<'o> Generator<'o> {
    fn new(
        roster: &Path,
        out: &'o Path,
        options: &'o CdfOptions,
    ) -> Result<Generator<'o>, CdfGenError> {
        let mut terms: Vec<Term> = Vec::new();
        for name in &options.terms {
            let term = Term::parse(name)?;
            if !terms.iter().any(|t| t.key() == term.key()) {
                terms.push(term);
            }
        }
        let latest_start = terms
            .iter()
            .map(|t| t.start_year)
            .max()
            .ok_or(CdfGenError::NoTerms)?;
        for term in &mut terms {
            term.grade_offset = term.start_year - latest_start;
        }
        let mut subjects = Vec::new();
        for &s in &options.subjects {
            if !subjects.contains(&s) {
                subjects.push(s);
            }
        }
        if subjects.is_empty() {
            return Err(CdfGenError::NoSubjects);
        }
        let last = terms.iter().map(|t| t.last).max().expect("terms checked");
        let day = last + Duration::days(1);
        let stamp = u16::try_from(day.year())
            .ok()
            .and_then(|y| {
                DateTime::from_date_and_time(y, day.month() as u8, day.day() as u8, 6, 0, 0).ok()
            })
            .unwrap_or_default();
        let test_id_base = 1_000_000_000
            + SplitMix64::keyed(options.seed, &[TAG_TEST_ID]).below(8_000_000_000) as u64;
        Ok(Generator {
            options,
            out,
            terms,
            subjects,
            latest_start,
            orgs: Orgs::load(&roster.join("orgs.csv"))?,
            users: roster.join("users.csv"),
            classes: roster.join("classes.csv"),
            enrollments: roster.join("enrollments.csv"),
            stamp,
            test_id_base,
        })
    }

    /// Writes the zip's entries; `summary` comes with the student counts filled in.
    fn write_zip(
        &self,
        summary: &mut CdfSummary,
        classes: Option<&(ClassIndex, u64)>,
    ) -> Result<(), CdfGenError> {
        let write_err = |source: io::Error| self.write_error(source);
        if let Some(parent) = self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        let file = File::create(self.out).map_err(write_err)?;
        let mut zip = ZipWriter::new(BufWriter::with_capacity(256 * 1024, file));
        let terms = self.terms.len() as u64;

        let good_rows = summary.students * terms * self.subjects.len() as u64;
        let malformed = if good_rows == 0 {
            0 // no row to base a broken retest on
        } else {
            self.options.malformed_rows as u64
        };
        self.start_entry(&mut zip, RESULTS_FILE, (good_rows + malformed) * 4096)
            .map_err(write_err)?;
        self.write_results(&mut zip, good_rows, malformed, summary)?;

        self.start_entry(&mut zip, STUDENTS_FILE, summary.students * terms * 1024)
            .map_err(write_err)?;
        summary.students_by_school = self.write_students(&mut zip)?;

        if let Some((index, rows)) = classes {
            self.start_entry(&mut zip, CLASSES_FILE, rows * terms * 512)
                .map_err(write_err)?;
            summary.class_assignments = Some(self.write_classes(&mut zip, index)?);
        }

        let mut inner = zip.finish().map_err(|e| write_err(e.into()))?;
        inner.flush().map_err(write_err)?;
        summary.bytes = inner.stream_position().map_err(write_err)?;
        Ok(())
    }

    fn start_entry(&self, zip: &mut Zip, name: &str, estimated_bytes: u64) -> io::Result<()> {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(self.stamp)
            .unix_permissions(0o644)
            // Zip64 only when the entry may pass 4 GiB: smaller exports stay plain zips.
            .large_file(estimated_bytes > u64::from(u32::MAX));
        zip.start_file(name, options)?;
        Ok(())
    }

    fn csv_writer<'z>(&self, zip: &'z mut Zip) -> csv::Writer<&'z mut Zip> {
        // NWEA's exports come from Windows: CRLF line ends.
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .buffer_capacity(64 * 1024)
            .from_writer(zip)
    }

    fn write_error(&self, source: impl Into<io::Error>) -> CdfGenError {
        CdfGenError::Write {
            path: self.out.to_path_buf(),
            source: source.into(),
        }
    }

    fn grade_in(&self, grade: Option<i32>, term: &Term) -> Option<i32> {
        grade.map(|g| (g + term.grade_offset).max(0))
    }

    /// Calls `f` with each student of users.csv that has an identifier, in file order;
    /// returns (students seen with one, students without).
    fn for_each_student(
        &self,
        mut f: impl FnMut(&Identity<'_>) -> io::Result<()>,
    ) -> Result<(u64, u64), CdfGenError> {
        let path = &self.users;
        let mut r = open(path)?;
        let cols = UserColumns::of(&Columns::of(&mut r, path)?)?;
        let mut rec = csv::StringRecord::new();
        let (mut seen, mut skipped) = (0, 0);
        while read(&mut r, &mut rec, path)? {
            if !cols.has_role(&rec, "student") {
                continue;
            }
            let id = cols.get(&rec, Some(cols.identifier));
            if id.is_empty() {
                skipped += 1;
                continue;
            }
            let school = self.orgs.school(cols.get(&rec, cols.orgs));
            let who = Identity::new(
                self.options.seed,
                self.latest_start,
                id,
                cols.get(&rec, Some(cols.given)),
                cols.get(&rec, Some(cols.family)),
                cols.get(&rec, cols.middle),
                parse_grade(cols.get(&rec, cols.grades)),
                school,
                self.orgs.district_of(school),
            );
            f(&who).map_err(|e| self.write_error(e))?;
            seen += 1;
        }
        Ok((seen, skipped))
    }

    fn count_students(&self) -> Result<(u64, u64), CdfGenError> {
        self.for_each_student(|_| Ok(()))
    }

    fn header(&self, write: impl FnOnce(&mut HeaderCells) -> io::Result<()>) -> Vec<String> {
        let mut h = HeaderCells {
            names: Vec::new(),
            odd: self.options.odd_header_casing,
        };
        // Header cells never fail: they only collect names.
        let _ = write(&mut h);
        h.names
    }

    /// A stand-in row for collecting a header.
    fn sample<R>(&self, f: impl FnOnce(&Identity<'_>, &Term) -> R) -> R {
        let who = Identity::new(
            self.options.seed,
            self.latest_start,
            "0",
            "",
            "",
            "",
            None,
            None,
            None,
        );
        f(&who, &self.terms[0])
    }

    fn result_row<'a>(
        &self,
        term: &'a Term,
        who: &'a Identity<'a>,
        subject: CdfSubject,
        attempt: u64,
        line: u64,
    ) -> ResultRow<'a> {
        let seed = self.options.seed;
        let grade = self.grade_in(who.grade, term);
        let norm_grade = grade.unwrap_or(DEFAULT_GRADE);
        let event = Event::draw(seed, who.key, subject, term, norm_grade, attempt);
        let mut windows = [Window::default(); 6];
        for (i, (_, from, to, years)) in WINDOWS.iter().enumerate() {
            let w = &mut windows[i];
            if term.season == *from {
                w.typical = Some(typical_growth(subject, norm_grade, i).round() as i32);
                w.projected = Some(projected_growth(
                    subject,
                    norm_grade,
                    i,
                    event.score.ability,
                ));
            }
            if term.season != *to {
                continue;
            }
            // Observed growth needs the window's first test among the terms written.
            let Some(start) = self
                .terms
                .iter()
                .find(|t| t.season == *from && t.start_year == term.start_year - years)
            else {
                continue;
            };
            let start_grade = self.grade_in(who.grade, start).unwrap_or(DEFAULT_GRADE);
            let before = score(seed, who.key, subject, start, start_grade, 0);
            let projected = projected_growth(subject, start_grade, i, before.ability);
            let observed = event.score.rit - before.rit;
            let cgi = f64::from(observed - projected) / GROWTH_SD;
            w.projected = Some(projected);
            w.observed = Some(observed);
            w.observed_se = Some(round_to(
                (event.score.se.powi(2) + before.se.powi(2)).sqrt(),
                0.1,
            ));
            w.met = Some(observed >= projected);
            w.cgi = Some(round_to(cgi, 0.01));
            w.cgp = Some(((phi(cgi) * 100.0).round() as u32).clamp(1, 99));
        }
        ResultRow {
            layout: self.options.layout,
            term,
            who,
            subject,
            grade,
            event,
            windows,
            test_id: self.test_id_base + line,
        }
    }

    fn write_results(
        &self,
        zip: &mut Zip,
        good_rows: u64,
        malformed: u64,
        summary: &mut CdfSummary,
    ) -> Result<(), CdfGenError> {
        let mut w = self.csv_writer(zip);
        let header = self.sample(|who, term| {
            let row = self.result_row(term, who, self.subjects[0], 0, 0);
            self.header(|h| row.write(h))
        });
        w.write_record(&header).map_err(|e| self.write_error(e))?;
        // Malformed row k follows good row `after(k)`: evenly spread, never before the first.
        let after = |k: u64| {
            let at = u128::from(k + 1) * u128::from(good_rows) / u128::from(malformed + 1);
            (at as u64).max(1)
        };
        let (mut line, mut good, mut next_bad) = (1u64, 0u64, 0u64);
        let mut at = Vec::with_capacity(malformed as usize);
        for term in &self.terms {
            self.for_each_student(|who| {
                for &subject in &self.subjects {
                    line += 1;
                    good += 1;
                    let row = self.result_row(term, who, subject, 0, line);
                    let mut cells = RecordCells::new(&mut w);
                    row.write(&mut cells)?;
                    cells.end()?;
                    while next_bad < malformed && after(next_bad) == good {
                        // A retest of the same student, subject and term with one bad field.
                        line += 1;
                        let (field, bad) = BREAKS[(next_bad % BREAKS.len() as u64) as usize];
                        let row = self.result_row(term, who, subject, 1 + next_bad, line);
                        let mut cells = RecordCells::new(&mut w);
                        cells.broken = Some((field, bad));
                        row.write(&mut cells)?;
                        cells.end()?;
                        at.push((line, field));
                        next_bad += 1;
                    }
                }
                Ok(())
            })?;
        }
        w.flush().map_err(|e| self.write_error(e))?;
        summary.results = good + next_bad;
        summary.malformed = next_bad;
        summary.malformed_at = at;
        Ok(())
    }

    fn write_students(&self, zip: &mut Zip) -> Result<u64, CdfGenError> {
        let layout = self.options.layout;
        let mut w = self.csv_writer(zip);
        let header =
            self.sample(|who, term| self.header(|h| write_student_row(h, term, who, None, layout)));
        w.write_record(&header).map_err(|e| self.write_error(e))?;
        let mut rows = 0;
        for term in &self.terms {
            let (n, _) = self.for_each_student(|who| {
                let mut cells = RecordCells::new(&mut w);
                write_student_row(
                    &mut cells,
                    term,
                    who,
                    self.grade_in(who.grade, term),
                    layout,
                )?;
                cells.end()
            })?;
            rows += n;
        }
        w.flush().map_err(|e| self.write_error(e))?;
        Ok(rows)
    }

    /// The roster's classes with their school and primary teacher, or why there are none to use.
    fn class_index(&self) -> Result<Result<ClassIndex, String>, CdfGenError> {
        for path in [&self.classes, &self.enrollments] {
            if !path.is_file() {
                return Ok(Err(format!(
                    "the roster has no {}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                )));
            }
        }
        let mut strings = Interner::default();
        let none = strings.intern("");

        // Teachers' names as TeacherName shows them: "Family, Given".
        let mut teachers: HashMap<u64, u32> = HashMap::new();
        let mut r = open(&self.users)?;
        let cols = UserColumns::of(&Columns::of(&mut r, &self.users)?)?;
        let mut rec = csv::StringRecord::new();
        while read(&mut r, &mut rec, &self.users)? {
            if cols.has_role(&rec, "teacher") {
                let name = format!(
                    "{}, {}",
                    cols.get(&rec, Some(cols.family)),
                    cols.get(&rec, Some(cols.given))
                );
                teachers.insert(
                    fnv1a(cols.get(&rec, Some(cols.sourced_id))),
                    strings.intern(&name),
                );
            }
        }

        let mut classes = HashMap::new();
        let path = &self.classes;
        let mut r = open(path)?;
        let c = Columns::of(&mut r, path)?;
        let (id, title, school, status) = (
            c.required("sourcedId")?,
            c.required("title")?,
            c.optional("schoolSourcedId"),
            c.optional("status"),
        );
        while read(&mut r, &mut rec, path)? {
            let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("").trim();
            if get(status).eq_ignore_ascii_case("tobedeleted") {
                continue;
            }
            let school_name = self.orgs.by_id.get(get(school)).map_or("", |o| &o.name);
            classes.insert(
                fnv1a(get(Some(id))),
                ClassInfo {
                    title: strings.intern(get(Some(title))),
                    school: strings.intern(school_name),
                    teacher: none,
                },
            );
        }

        // Each class's teacher: the primary one, else the first listed.
        let path = &self.enrollments;
        let mut r = open(path)?;
        let e = EnrollmentColumns::of(&Columns::of(&mut r, path)?)?;
        let mut primary_set: HashMap<u64, bool> = HashMap::new();
        while read(&mut r, &mut rec, path)? {
            if !e.is(&rec, "teacher") {
                continue;
            }
            let class = fnv1a(e.get(&rec, Some(e.class)));
            let (Some(info), Some(&name)) = (
                classes.get_mut(&class),
                teachers.get(&fnv1a(e.get(&rec, Some(e.user)))),
            ) else {
                continue;
            };
            let primary = e.get(&rec, e.primary).eq_ignore_ascii_case("true");
            let had_primary = primary_set.get(&class).copied();
            if had_primary.is_none() || (primary && had_primary == Some(false)) {
                info.teacher = name;
                primary_set.insert(class, primary);
            }
        }
        Ok(Ok(ClassIndex {
            classes,
            strings: strings.strings,
        }))
    }

    /// Joins each student enrollment to its student's identifier by reading users.csv and
    /// enrollments.csv side by side, which needs each student's enrollments together and in
    /// users.csv order. Calls `emit(StudentID, class)` for each, or only checks the order when
    /// `emit` is `None`. Returns the rows, or why the files cannot be joined this way.
    fn join_classes(
        &self,
        index: &ClassIndex,
        mut emit: Option<EmitClassRow<'_>>,
    ) -> Result<Result<u64, &'static str>, CdfGenError> {
        let mut users = open(&self.users)?;
        let u = UserColumns::of(&Columns::of(&mut users, &self.users)?)?;
        let mut enrollments = open(&self.enrollments)?;
        let e = EnrollmentColumns::of(&Columns::of(&mut enrollments, &self.enrollments)?)?;
        let (mut user, mut enrollment) = (csv::StringRecord::new(), csv::StringRecord::new());
        let mut have_user = false;
        let mut rows = 0;
        while read(&mut enrollments, &mut enrollment, &self.enrollments)? {
            if !e.is(&enrollment, "student") {
                continue;
            }
            let student = e.get(&enrollment, Some(e.user));
            while !(have_user && u.get(&user, Some(u.sourced_id)) == student) {
                if !read(&mut users, &mut user, &self.users)? {
                    return Ok(Err(
                        "enrollments.csv does not list each student's enrollments together and in users.csv order (or names a student users.csv lacks), which a streaming join needs",
                    ));
                }
                have_user = u.has_role(&user, "student");
            }
            let identifier = u.get(&user, Some(u.identifier));
            let Some(class) = index.classes.get(&fnv1a(e.get(&enrollment, Some(e.class)))) else {
                continue;
            };
            if identifier.is_empty() {
                continue;
            }
            if let Some(emit) = emit.as_mut() {
                emit(identifier, class).map_err(|err| self.write_error(err))?;
            }
            rows += 1;
        }
        Ok(Ok(rows))
    }

    fn write_classes(&self, zip: &mut Zip, index: &ClassIndex) -> Result<u64, CdfGenError> {
        let mut w = self.csv_writer(zip);
        let header =
            self.sample(|_, term| self.header(|h| write_class_row(h, term, "", "", "", "")));
        w.write_record(&header).map_err(|e| self.write_error(e))?;
        let s = &index.strings;
        let mut rows = 0;
        for term in &self.terms {
            let mut emit = |student: &str, class: &ClassInfo| -> io::Result<()> {
                let mut cells = RecordCells::new(&mut w);
                write_class_row(
                    &mut cells,
                    term,
                    student,
                    &s[class.school as usize],
                    &s[class.title as usize],
                    &s[class.teacher as usize],
                )?;
                cells.end()
            };
            match self.join_classes(index, Some(&mut emit))? {
                Ok(n) => rows += n,
                // Checked before the entry was started; the files changed under us.
                Err(reason) => return Err(self.write_error(io::Error::other(reason))),
            }
        }
        w.flush().map_err(|e| self.write_error(e))?;
        Ok(rows)
    }
}

/// enrollments.csv columns read here.
struct EnrollmentColumns {
    class: usize,
    user: usize,
    role: usize,
    primary: Option<usize>,
    status: Option<usize>,
}

impl EnrollmentColumns {
    fn of(cols: &Columns) -> Result<EnrollmentColumns, CdfGenError> {
        Ok(EnrollmentColumns {
            class: cols.required("classSourcedId")?,
            user: cols.required("userSourcedId")?,
            role: cols.required("role")?,
            primary: cols.optional("primary"),
            status: cols.optional("status"),
        })
    }

    fn get<'r>(&self, rec: &'r csv::StringRecord, index: Option<usize>) -> &'r str {
        index.and_then(|i| rec.get(i)).unwrap_or("").trim()
    }

    fn is(&self, rec: &csv::StringRecord, role: &str) -> bool {
        self.get(rec, Some(self.role)).eq_ignore_ascii_case(role)
            && !self
                .get(rec, self.status)
                .eq_ignore_ascii_case("tobedeleted")
    }
}
