//! NWEA MAP Growth's Comprehensive Data File (CDF): the zip a district downloads from the Data
//! Export Scheduler (or the DEX API), or its `AssessmentResults.csv` on its own, read row by row
//! into the same [`AssessmentResult`]s a score push gives.
//!
//! Only `AssessmentResults.csv` is read. The zip's `StudentsBySchool.csv`, `ClassAssignments.csv`
//! and any other file are left alone: students, schools and classes come from the district's
//! OneRoster roster, and results are matched to them by the ids each row carries (`StudentID`,
//! `Student_StateID`).
//!
//! Exports from every era are read alike: the current combined layout (no `TestID`) and the
//! post- and pre-2015 ones (`TestID`, `MeasurementScale`, `Discipline`, `GrowthMeasureYN`).
//! Headers are matched by name once normalised (letter case, `_`, `-` and spaces ignored), older
//! names standing for newer ones, so no era needs detecting; the ~150 columns not read here
//! (growth windows, Lexile, projected proficiency, demographics…) are ignored.
//!
//! Memory stays flat whatever the file's size: one row is held at a time, within
//! `max_record_bytes` and `max_columns`, and an unzipped file beyond `max_file_bytes` stops
//! reading (a zip bomb fails at the limit rather than filling the disk or running for ever).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use chrono::{NaiveDate, NaiveTime};

use super::push::{
    Adjective, AssessmentResult, GoalResult, StudentRef, DURATION_MAX, MAX_GOALS, MAX_TEXT_CHARS,
    PERCENTILE_MAX, PERCENTILE_MIN, RIT_MAX, RIT_MIN, STANDARD_ERROR_MAX,
};
use crate::config::ImportSettings;
use crate::domain::problem::{quoted, shorten, Problem, ProblemLog};
use crate::sources::oneroster::bundle::Guarded;
use crate::sources::oneroster::records::{Limits, RecordError, Records};

/// The file of the CDF zip that holds the test events.
pub const RESULTS_FILE: &str = "AssessmentResults.csv";

/// A zip starts with a local file header; an empty zip with its end-of-directory record.
const ZIP_MAGIC: [&[u8; 4]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];
/// Input is read in blocks of this size.
const BUFFER_BYTES: usize = 64 << 10;

/// One result read from the file, with the line it starts on (1 = header line).
#[derive(Debug, Clone, PartialEq)]
pub struct CdfResult {
    pub line: u64,
    pub result: AssessmentResult,
}

/// Reads the export at `path` (a CDF zip, or a bare AssessmentResults.csv: told apart by the zip
/// magic bytes `PK\x03\x04`, not by the file name), naming it `label` in problems (never the
/// server path).
///
/// Every problem goes into `log`, errors and warnings, each with its file name (inside a zip,
/// [`RESULTS_FILE`]; a bare CSV, `label`), line, and field (the header as written). A problem
/// with the file as a whole (unreadable, no results file, a required column missing, a row too
/// big to hold) is an error that stops reading; a bad value is an error for its row, which is
/// left out, and reading goes on so that every problem is listed, until the log is full. Every
/// valid row is passed to `sink` in file order; `sink` returning false stops reading.
///
/// Returns how many data rows were seen (valid or not).
pub fn read(
    path: &Path,
    label: &str,
    settings: &ImportSettings,
    log: &mut ProblemLog,
    sink: &mut dyn FnMut(CdfResult) -> bool,
) -> u64 {
    match read_export(path, label, settings, log, sink) {
        Ok(rows) => rows,
        Err(problem) => {
            log.error(problem);
            0
        }
    }
}

/// Why an export could not be opened (each named against the file it is about by the caller).
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("cannot open the file: {0}")]
    Io(io::Error),
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes, more than the limit of {limit} bytes")]
    TooBig { size: u64, limit: u64 },
    #[error("neither a zip nor a CSV file (it holds binary data): send the MAP Growth export zip or its {RESULTS_FILE}")]
    Binary,
    #[error("not a CSV file (it holds binary data)")]
    BinaryEntry,
    #[error("the file is UTF-16 text: save it as a UTF-8 CSV")]
    Utf16,
    #[error("not a readable zip file: {0}")]
    Zip(zip::result::ZipError),
    #[error("the zip holds no {RESULTS_FILE}, at its top or in a folder there: is this a MAP Growth data export?")]
    NoResults,
    #[error("the zip holds {RESULTS_FILE} twice ({0} and {1}): send one export per zip")]
    TwoResults(String, String),
    #[error("{size} bytes once unzipped, more than the limit of {limit} bytes")]
    EntryTooBig { size: u64, limit: u64 },
    #[error("cannot unzip the file: {0}")]
    Entry(zip::result::ZipError),
}

fn read_export(
    path: &Path,
    label: &str,
    settings: &ImportSettings,
    log: &mut ProblemLog,
    sink: &mut dyn FnMut(CdfResult) -> bool,
) -> Result<u64, Problem> {
    let at_label = |e: OpenError| Problem::file(label, e.to_string());
    let mut file = File::open(path).map_err(|e| at_label(OpenError::Io(e)))?;
    let mut magic = Vec::with_capacity(4);
    (&mut file)
        .take(4)
        .read_to_end(&mut magic)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .map_err(|e| at_label(OpenError::Io(e)))?;
    if ZIP_MAGIC.iter().any(|m| magic == m[..]) {
        return read_zip(file, label, settings, log, sink);
    }
    let size = file
        .metadata()
        .map_err(|e| at_label(OpenError::Io(e)))?
        .len();
    if size > settings.max_file_bytes {
        return Err(at_label(OpenError::TooBig {
            size,
            limit: settings.max_file_bytes,
        }));
    }
    // Guarded too: the size was read before the file, which may still be growing.
    let input = Guarded::new(file, settings.max_file_bytes);
    read_csv(input, label, false, settings, log, sink)
}

fn read_zip(
    file: File,
    label: &str,
    settings: &ImportSettings,
    log: &mut ProblemLog,
    sink: &mut dyn FnMut(CdfResult) -> bool,
) -> Result<u64, Problem> {
    let at_label = |e: OpenError| Problem::file(label, e.to_string());
    let at_results = |e: OpenError| Problem::file(RESULTS_FILE, e.to_string());
    let mut archive =
        zip::ZipArchive::new(BufReader::new(file)).map_err(|e| at_label(OpenError::Zip(e)))?;
    let mut found: Option<(usize, String)> = None;
    for index in 0..archive.len() {
        // A name that does not decode cannot be the one sought.
        let Some(Ok(name)) = archive.name_for_index(index) else {
            continue;
        };
        if !is_results_file(&name) {
            continue;
        }
        if let Some((_, first)) = &found {
            return Err(at_label(OpenError::TwoResults(
                shorten(first, 100),
                shorten(&name, 100),
            )));
        }
        found = Some((index, name.into_owned()));
    }
    let Some((index, _)) = found else {
        return Err(at_label(OpenError::NoResults));
    };
    let entry = archive
        .by_index(index)
        .map_err(|e| at_results(OpenError::Entry(e)))?;
    // The declared size fails an honest bomb at once; one lying about it is stopped by the zip
    // crate at that size, and by `Guarded` at the limit whatever the crate does.
    if entry.size() > settings.max_file_bytes {
        return Err(at_results(OpenError::EntryTooBig {
            size: entry.size(),
            limit: settings.max_file_bytes,
        }));
    }
    let input = Guarded::new(entry, settings.max_file_bytes);
    read_csv(input, RESULTS_FILE, true, settings, log, sink)
}

/// Is a zip entry the results file, at the top of the zip or in one folder? (Zipping a folder
/// puts its files one level down; macOS adds `__MACOSX/` copies that are not CSV at all.)
fn is_results_file(name: &str) -> bool {
    let (folder, base) = name.rsplit_once('/').unwrap_or(("", name));
    !folder.contains('/') && folder != "__MACOSX" && base.eq_ignore_ascii_case(RESULTS_FILE)
}

/// Reads the CSV `input` (`in_zip`: the zip's results file, else the upload itself), naming it
/// `file` in problems.
fn read_csv(
    input: impl Read,
    file: &str,
    in_zip: bool,
    settings: &ImportSettings,
    log: &mut ProblemLog,
    sink: &mut dyn FnMut(CdfResult) -> bool,
) -> Result<u64, Problem> {
    let mut input = BufReader::with_capacity(BUFFER_BYTES, input);
    let head = input
        .fill_buf()
        .map_err(|e| Problem::file(file, format!("cannot read the file: {e}")))?;
    let refused = if head.is_empty() {
        Some(OpenError::Empty)
    } else if head.starts_with(&[0xff, 0xfe]) || head.starts_with(&[0xfe, 0xff]) {
        Some(OpenError::Utf16)
    } else if head.contains(&0) {
        // Text never holds NUL; spreadsheets, PDFs, images and archives all do, early on.
        Some(if in_zip {
            OpenError::BinaryEntry
        } else {
            OpenError::Binary
        })
    } else {
        None
    };
    if let Some(refused) = refused {
        return Err(Problem::file(file, refused.to_string()));
    }
    let mut records = Records::new(
        input,
        Limits {
            max_record_bytes: settings.max_record_bytes,
            max_columns: settings.max_columns,
        },
    );
    let mut record = csv::StringRecord::new();
    let header_line = match records.read(&mut record) {
        Ok(Some(line)) => line,
        Ok(None) => return Err(Problem::file(file, OpenError::Empty.to_string())),
        Err(e) => {
            let field = e.field().map(|i| format!("column {}", i + 1));
            return Err(Problem::new(
                file,
                Some(e.line()),
                field.as_deref(),
                format!("unreadable header: {e}"),
            ));
        }
    };
    let Some(layout) = Layout::of(&record, file, header_line, log) else {
        return Ok(0);
    };
    let mut rows = 0;
    loop {
        let line = match records.read(&mut record) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                log.error(record_problem(&e, file, &layout));
                if e.is_recoverable() && !log.full() {
                    rows += 1;
                    continue;
                }
                break;
            }
        };
        if record.len() == 1 && record.get(0) == Some("") {
            continue; // a blank line
        }
        rows += 1;
        let mut row = Row {
            file,
            line,
            record: &record,
            layout: &layout,
            log,
            failed: false,
        };
        if let Some(result) = row.result() {
            if !sink(CdfResult { line, result }) {
                break;
            }
        }
        if log.full() {
            // Enough listed to refuse the file; the rest would only be counted.
            break;
        }
    }
    Ok(rows)
}

fn record_problem(e: &RecordError, file: &str, layout: &Layout) -> Problem {
    let field = e.field().map(|i| layout.header_name(i));
    Problem::new(file, Some(e.line()), field.as_deref(), e.to_string())
}

/// The values read from a CDF row, one place each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Term,
    Student,
    StudentStateId,
    Subject,
    Course,
    TestId,
    GrowthEvent,
    TestDate,
    TestTime,
    TestName,
    TestType,
    Duration,
    Rit,
    StandardError,
    Percentile,
    RapidGuessing,
    Norms,
}

const FIELDS: usize = 17;

/// Normalised header → field, every era's name for it.
const COLUMNS: [(&str, Field); 19] = [
    ("termname", Field::Term),
    ("studentid", Field::Student),
    ("studentstateid", Field::StudentStateId),
    ("subject", Field::Subject),
    ("measurementscale", Field::Subject),
    ("course", Field::Course),
    ("discipline", Field::Course),
    ("testid", Field::TestId),
    ("growthmeasureyn", Field::GrowthEvent),
    ("teststartdate", Field::TestDate),
    ("teststarttime", Field::TestTime),
    ("testname", Field::TestName),
    ("testtype", Field::TestType),
    ("testdurationminutes", Field::Duration),
    ("testritscore", Field::Rit),
    ("teststandarderror", Field::StandardError),
    ("testpercentile", Field::Percentile),
    ("rapidguessingpercentage", Field::RapidGuessing),
    ("normsreferencedata", Field::Norms),
];

/// Columns a row cannot do without, as problems name them when missing.
const REQUIRED: [(Field, &str); 5] = [
    (Field::Term, "TermName"),
    (Field::Student, "StudentID"),
    (Field::Subject, "Subject"),
    (Field::TestDate, "TestStartDate"),
    (Field::Rit, "TestRITScore"),
];

/// The cells of a goal area, `Goal{n}Name`, `Goal{n}RitScore`, … in this order.
const GOAL_PARTS: [&str; 5] = ["name", "ritscore", "stderr", "range", "adjective"];
const GOAL_NAME: usize = 0;
const GOAL_RIT: usize = 1;
const GOAL_ERROR: usize = 2;
const GOAL_RANGE: usize = 3;
const GOAL_ADJECTIVE: usize = 4;

/// Where a header column goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Field(Field),
    /// Goal area (0-based) and part.
    Goal(usize, usize),
}

/// Lower case without `_`, `-` and spaces: `Student_StateID`, `student-state-id` and
/// `StudentStateID` are one column, as are `TypicalWintertoWinterGrowth` and its siblings.
fn normalise(header: &str) -> String {
    header
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A goal column's area (1-based, any number) and part.
fn goal_column(normalised: &str) -> Option<(usize, usize)> {
    let rest = normalised.strip_prefix("goal")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let part = GOAL_PARTS.iter().position(|p| *p == &rest[digits..])?;
    let number = rest[..digits].parse().ok()?;
    Some((number, part))
}

/// Which column of the file holds each value, and the headers as written (problems name them).
struct Layout {
    headers: Vec<String>,
    fields: [Option<usize>; FIELDS],
    goals: [[Option<usize>; GOAL_PARTS.len()]; MAX_GOALS],
}

impl Layout {
    /// Maps the header row; `None` (with errors logged) when the file cannot be read by it.
    fn of(
        header: &csv::StringRecord,
        file: &str,
        line: u64,
        log: &mut ProblemLog,
    ) -> Option<Layout> {
        let mut layout = Layout {
            headers: Vec::with_capacity(header.len()),
            fields: [None; FIELDS],
            goals: [[None; GOAL_PARTS.len()]; MAX_GOALS],
        };
        let mut ok = true;
        for (index, raw) in header.iter().enumerate() {
            let name = if index == 0 {
                raw.trim_start_matches('\u{feff}').trim()
            } else {
                raw
            };
            layout.headers.push(name.to_string());
            let normalised = normalise(name);
            let column = match COLUMNS.iter().find(|(n, _)| *n == normalised) {
                Some(&(_, field)) => Column::Field(field),
                None => match goal_column(&normalised) {
                    Some((number, part)) if (1..=MAX_GOALS).contains(&number) => {
                        Column::Goal(number - 1, part)
                    }
                    Some(_) => {
                        log.warn(Problem::new(
                            file,
                            Some(line),
                            Some(name),
                            format!("not read: a result has at most {MAX_GOALS} goal areas"),
                        ));
                        continue;
                    }
                    None => continue, // one of the many columns not read here
                },
            };
            let slot = match column {
                Column::Field(field) => &mut layout.fields[field as usize],
                Column::Goal(goal, part) => &mut layout.goals[goal][part],
            };
            if let Some(first) = *slot {
                log.error(Problem::new(
                    file,
                    Some(line),
                    Some(name),
                    format!(
                        "the column appears twice (also as {})",
                        quoted(&layout.headers[first])
                    ),
                ));
                ok = false;
            } else {
                *slot = Some(index);
            }
        }
        let known = layout.fields.iter().any(Option::is_some)
            || layout.goals.iter().flatten().any(Option::is_some);
        if !known {
            log.error(Problem::new(
                file,
                Some(line),
                None,
                "the first line is not the header of a MAP Growth AssessmentResults file (no TermName, StudentID, Subject, TestStartDate or TestRITScore column)",
            ));
            return None;
        }
        for (field, header) in REQUIRED {
            if layout.fields[field as usize].is_none() {
                let message = if field == Field::Subject {
                    "a required column is missing (Subject, or MeasurementScale in older exports)"
                } else {
                    "a required column is missing"
                };
                log.error(Problem::new(file, Some(line), Some(header), message));
                ok = false;
            }
        }
        ok.then_some(layout)
    }

    /// How problems name the column at `index`: its header, or its position when it has none.
    fn header_name(&self, index: usize) -> String {
        match self.headers.get(index) {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("column {}", index + 1),
        }
    }
}

/// A cell of the row and the header of its column.
#[derive(Debug, Clone, Copy)]
struct Cell<'a> {
    header: &'a str,
    value: &'a str,
}

/// Why a cell's value is refused; values are quoted short.
#[derive(Debug, thiserror::Error)]
enum CellError {
    #[error("is required but empty")]
    Empty,
    #[error("is longer than {MAX_TEXT_CHARS} characters")]
    TooLong,
    #[error("{0} is not a whole number")]
    NotInteger(String),
    #[error("{0} is not a number")]
    NotNumber(String),
    #[error("{value} is outside {min}–{max}")]
    OutOfBounds { value: String, min: i64, max: i64 },
    #[error("{0} is not a date written YYYY-MM-DD or M/D/YYYY")]
    NotDate(String),
    #[error("{0} is not a day of the calendar")]
    NoSuchDay(String),
    #[error("{0} is not a time of day written H:MM:SS or H:MM, optionally with AM or PM")]
    NotTime(String),
    #[error("{0} is not Yes or No (Yes, No, Y, N, TRUE, FALSE, 1 or 0)")]
    NotFlag(String),
    #[error("{0} is not a RIT range written low-high (e.g. 217-231)")]
    NotRange(String),
    #[error("{0}: the low end is above the high end")]
    ReversedRange(String),
    #[error("{0} is not one of Low, LoAvg, Avg, HiAvg, High")]
    NotAdjective(String),
    #[error(
        "goal area {0} has a value but its {1} is empty: an area without a name cannot be read"
    )]
    UnnamedGoal(usize, String),
}

/// One data row being read: its problems go to the log and mark it failed.
struct Row<'r, 'l> {
    file: &'r str,
    line: u64,
    record: &'r csv::StringRecord,
    layout: &'r Layout,
    log: &'l mut ProblemLog,
    failed: bool,
}

impl<'r> Row<'r, '_> {
    fn result(&mut self) -> Option<AssessmentResult> {
        if !self.has_header_width() {
            return None;
        }
        let term = self.required(Field::Term, text);
        let identifier = self.required(Field::Student, text);
        let state_id = self.optional(Field::StudentStateId, text);
        let subject = self.required(Field::Subject, text);
        let course = self.optional(Field::Course, text);
        let test_id = self.optional(Field::TestId, text);
        let growth_event = self.optional(Field::GrowthEvent, flag);
        let test_date = self.required(Field::TestDate, date);
        let test_start_time = self.optional(Field::TestTime, time);
        let test_name = self.optional(Field::TestName, text);
        let test_type = self.optional(Field::TestType, text);
        let duration_minutes = self.optional(Field::Duration, |v| integer(v, (0, DURATION_MAX)));
        let rit = self.required(Field::Rit, |v| integer(v, (RIT_MIN, RIT_MAX)));
        let standard_error = self.optional(Field::StandardError, |v| {
            decimal(v, (0, STANDARD_ERROR_MAX))
        });
        let percentile = self.optional(Field::Percentile, |v| {
            integer(v, (PERCENTILE_MIN, PERCENTILE_MAX))
        });
        let rapid_guessing_percentage =
            self.optional(Field::RapidGuessing, |v| decimal(v, (0, 100)));
        let norms_reference = self.optional(Field::Norms, text);
        let goals = self.goals();
        if self.failed {
            return None;
        }
        Some(AssessmentResult {
            student: StudentRef {
                sourced_id: None,
                identifier: Some(identifier?),
                state_id,
            },
            subject: subject?,
            course,
            term: term?,
            test_date: test_date?,
            test_start_time,
            test_id,
            test_name,
            test_type,
            growth_event,
            duration_minutes,
            rit: rit?,
            standard_error,
            percentile,
            rapid_guessing_percentage,
            norms_reference,
            goals,
        })
    }

    /// A row as wide as the header (trailing empty cells past it tolerated: trailing commas).
    fn has_header_width(&mut self) -> bool {
        let width = self.layout.headers.len();
        let extra = self.record.iter().skip(width).any(|f| !f.is_empty());
        if extra || self.record.len() < width {
            let message = format!(
                "the row has {} fields, the header {width}",
                self.record.len()
            );
            self.log
                .error(Problem::new(self.file, Some(self.line), None, message));
            return false;
        }
        true
    }

    /// The cell at a column index, if the file has that column.
    fn cell(&self, index: Option<usize>) -> Option<Cell<'r>> {
        let index = index?;
        Some(Cell {
            header: &self.layout.headers[index],
            value: self.record.get(index).unwrap_or(""),
        })
    }

    fn fail(&mut self, cell: Cell, error: CellError) {
        self.failed = true;
        self.log.error(Problem::new(
            self.file,
            Some(self.line),
            Some(cell.header),
            error.to_string(),
        ));
    }

    /// A cell's value parsed, `None` when the column is absent or the cell empty.
    fn parse<T>(
        &mut self,
        cell: Option<Cell>,
        parse: impl FnOnce(&str) -> Result<T, CellError>,
    ) -> Option<T> {
        let cell = cell.filter(|c| !c.value.is_empty())?;
        match parse(cell.value) {
            Ok(value) => Some(value),
            Err(error) => {
                self.fail(cell, error);
                None
            }
        }
    }

    fn optional<T>(
        &mut self,
        field: Field,
        parse: impl FnOnce(&str) -> Result<T, CellError>,
    ) -> Option<T> {
        let cell = self.cell(self.layout.fields[field as usize]);
        self.parse(cell, parse)
    }

    /// As [`Row::optional`], an empty cell an error (the header check saw the column is there).
    fn required<T>(
        &mut self,
        field: Field,
        parse: impl FnOnce(&str) -> Result<T, CellError>,
    ) -> Option<T> {
        let cell = self.cell(self.layout.fields[field as usize])?;
        if cell.value.is_empty() {
            self.fail(cell, CellError::Empty);
            return None;
        }
        self.parse(Some(cell), parse)
    }

    /// The goal areas with a name and a RIT score, in column order.
    fn goals(&mut self) -> Vec<GoalResult> {
        let layout = self.layout;
        let mut goals = Vec::new();
        for (number, columns) in layout.goals.iter().enumerate() {
            let cells = columns.map(|index| self.cell(index));
            let named = cells[GOAL_NAME].is_some_and(|c| !c.value.is_empty());
            if !named {
                // No name, no goal area; values without one are a broken row, not an absence.
                if let Some(cell) = cells.iter().flatten().find(|c| !c.value.is_empty()) {
                    let name_header = cells[GOAL_NAME]
                        .map(|c| c.header.to_string())
                        .unwrap_or_else(|| format!("Goal{}Name", number + 1));
                    self.fail(*cell, CellError::UnnamedGoal(number + 1, name_header));
                }
                continue;
            }
            let name = self.parse(cells[GOAL_NAME], text);
            let rit = self.parse(cells[GOAL_RIT], |v| decimal(v, (RIT_MIN, RIT_MAX)));
            let standard_error =
                self.parse(cells[GOAL_ERROR], |v| decimal(v, (0, STANDARD_ERROR_MAX)));
            let range = self.parse(cells[GOAL_RANGE], range);
            let adjective = self.parse(cells[GOAL_ADJECTIVE], adjective);
            // MAP names the areas of tests that do not score them: such an area is left out.
            if let (Some(name), Some(rit)) = (name, rit) {
                goals.push(GoalResult {
                    name,
                    rit,
                    standard_error,
                    range,
                    adjective,
                });
            }
        }
        goals
    }
}

// Cell parsers. Cells arrive trimmed and non-empty (see `Row::parse`).

fn text(value: &str) -> Result<String, CellError> {
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(CellError::TooLong);
    }
    Ok(value.to_string())
}

/// A whole number within `bounds` (inclusive); `215.0` is one, `215.5` is not.
fn integer(value: &str, (min, max): (i64, i64)) -> Result<i64, CellError> {
    let whole = match value.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole,
        Some(_) => return Err(CellError::NotInteger(quoted(value))),
        None => value,
    };
    let number: i64 = whole
        .parse()
        .map_err(|_| CellError::NotInteger(quoted(value)))?;
    if number < min || number > max {
        return Err(CellError::OutOfBounds {
            value: quoted(value),
            min,
            max,
        });
    }
    Ok(number)
}

/// A decimal number within `bounds` (inclusive), written plainly: `3.2`, `-1`, `.5` (no
/// exponent, `inf` or `NaN`, which `f64`'s parser would take).
fn decimal(value: &str, (min, max): (i64, i64)) -> Result<f64, CellError> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let plain = digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1;
    let number: f64 = match plain.then(|| value.parse()) {
        Some(Ok(number)) => number,
        _ => return Err(CellError::NotNumber(quoted(value))),
    };
    if number < min as f64 || number > max as f64 {
        return Err(CellError::OutOfBounds {
            value: quoted(value),
            min,
            max,
        });
    }
    Ok(number)
}

/// `YYYY-MM-DD`, or as US exports write it, `M/D/YYYY` (`MM/DD/YYYY` too).
fn date(value: &str) -> Result<NaiveDate, CellError> {
    let numbers = |parts: [&str; 3], widths: [(usize, usize); 3]| -> Option<[u32; 3]> {
        let mut out = [0; 3];
        for ((part, (least, most)), slot) in parts.iter().zip(widths).zip(&mut out) {
            if part.len() < least || part.len() > most || !part.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        Some(out)
    };
    let split = |separator: char| -> Option<[&str; 3]> {
        let mut parts = value.split(separator);
        let out = [parts.next()?, parts.next()?, parts.next()?];
        parts.next().is_none().then_some(out)
    };
    let ymd = if let Some(parts) = split('-') {
        numbers(parts, [(4, 4), (2, 2), (2, 2)]).map(|[y, m, d]| (y, m, d))
    } else if let Some(parts) = split('/') {
        numbers(parts, [(1, 2), (1, 2), (4, 4)]).map(|[m, d, y]| (y, m, d))
    } else {
        None
    };
    let (year, month, day) = ymd.ok_or_else(|| CellError::NotDate(quoted(value)))?;
    NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| CellError::NoSuchDay(quoted(value)))
}

/// `H:MM:SS` or `H:MM` on a 24-hour clock, or on a 12-hour one with `AM`/`PM` (any case, a
/// space before it or not).
fn time(value: &str) -> Result<NaiveTime, CellError> {
    let not_time = || CellError::NotTime(quoted(value));
    let upper = value.to_ascii_uppercase();
    let (clock, pm) = match upper
        .strip_suffix("AM")
        .map(|c| (c, false))
        .or_else(|| upper.strip_suffix("PM").map(|c| (c, true)))
    {
        Some((clock, pm)) => (clock.trim_end(), Some(pm)),
        None => (upper.as_str(), None),
    };
    let mut parts = clock.split(':');
    let hour = parts.next().ok_or_else(not_time)?;
    let minute = parts.next().ok_or_else(not_time)?;
    let second = parts.next().unwrap_or("00");
    let well_formed = (1..=2).contains(&hour.len())
        && minute.len() == 2
        && second.len() == 2
        && parts.next().is_none()
        && [hour, minute, second]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed {
        return Err(not_time());
    }
    let parse = |p: &str| p.parse::<u32>().map_err(|_| not_time());
    let (mut hour, minute, second) = (parse(hour)?, parse(minute)?, parse(second)?);
    if let Some(pm) = pm {
        if !(1..=12).contains(&hour) {
            return Err(not_time());
        }
        // 12 AM is midnight, 12 PM noon.
        hour = hour % 12 + if pm { 12 } else { 0 };
    }
    NaiveTime::from_hms_opt(hour, minute, second).ok_or_else(not_time)
}

fn flag(value: &str) -> Result<bool, CellError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" => Ok(true),
        "no" | "n" | "false" | "0" => Ok(false),
        _ => Err(CellError::NotFlag(quoted(value))),
    }
}

/// A goal area's RIT range, `low-high`, each end a RIT score.
fn range(value: &str) -> Result<(f64, f64), CellError> {
    let (low, high) = value
        .split_once('-')
        .ok_or_else(|| CellError::NotRange(quoted(value)))?;
    let end = |text: &str| {
        decimal(text.trim(), (RIT_MIN, RIT_MAX)).map_err(|e| match e {
            CellError::OutOfBounds { .. } => e,
            _ => CellError::NotRange(quoted(value)),
        })
    };
    let (low, high) = (end(low)?, end(high)?);
    if low > high {
        return Err(CellError::ReversedRange(quoted(value)));
    }
    Ok((low, high))
}

fn adjective(value: &str) -> Result<Adjective, CellError> {
    Adjective::parse_ignoring_case(value).ok_or_else(|| CellError::NotAdjective(quoted(value)))
}

#[cfg(test)]
mod tests;
