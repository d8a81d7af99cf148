//! OneRoster 1.2 assessment results (the gradebook service's Assessment Results Profile) read
//! into the results a score push carries. A SIS models a MAP-style test as line items:
//!
//! - a **test** is an `assessmentLineItem` without a parent: its results are the overall scores
//!   (`score` the RIT, `scorePercentile` the percentile, `scoreDate` the test date), and its
//!   `sourcedId`-keyed results are the test events (a result's `sourcedId` is the event's id);
//! - a **goal area** is a line item whose `parentAssessmentLineItem` is a test: its title is the
//!   goal's name, and its result for the same student on the same day is that goal's RIT.
//!
//! What the profile does not carry is read where SIS exports put it: the subject from the test's
//! `metadata.subject`, else from a subject name a learning plan knows found in its title ("MAP
//! Growth Math 2-5 Fall 2026"); the term from `metadata.term`, else from the test date's season
//! ("Fall 2026-2027"). A gradebook holds much besides MAP-style tests, so what cannot be one is
//! skipped with a warning, never refused: a test whose subject cannot be told, a score that is no
//! RIT (100–350), a status without a score (`exempt`, `not submitted`, `submitted`), a result
//! marked `tobedeleted` (scores already kept stay: a pull never deletes student progress).
//! What cannot be read at all (not an object, a missing `sourcedId`, reference or date, a score
//! that is not a number) is an error naming the record and the field.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::Value as Json;

use super::push::{MAX_TEXT_CHARS, RIT_MAX, RIT_MIN};
use super::{AssessmentResult, GoalResult, StudentRef};
use crate::domain::learning_plan::LearningPlans;
use crate::domain::problem::shorten;

/// The two collections, as paths and envelope keys.
pub const LINE_ITEMS: &str = "assessmentLineItems";
pub const RESULTS: &str = "assessmentResults";

/// Statuses whose score places a student.
const SCORED: [&str; 2] = ["fully graded", "partially graded"];

/// What is wrong with one record: its field (a OneRoster member name) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordProblem {
    pub sourced_id: Option<String>,
    pub field: Option<&'static str>,
    pub message: String,
}

impl RecordProblem {
    fn new(sourced_id: Option<&str>, field: &'static str, message: impl Into<String>) -> Self {
        RecordProblem {
            sourced_id: sourced_id.map(str::to_string),
            field: Some(field),
            message: message.into(),
        }
    }
}

/// Why a result was left out, as a warning counts it (one line per reason, with a count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    TestWithoutSubject,
    UnknownLineItem,
    NotScored,
    NotRit,
    Deleted,
    GoalWithoutOverall,
}

impl Skip {
    /// The field the warning is about and what it says.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Skip::TestWithoutSubject => (
                "assessmentLineItem",
                "its test names no subject a learning plan covers (give the line item a \
                 metadata.subject): skipped",
            ),
            Skip::UnknownLineItem => (
                "assessmentLineItem",
                "names a line item the gradebook did not list (or one marked tobedeleted): skipped",
            ),
            Skip::NotScored => (
                "scoreStatus",
                "not scored (exempt, not submitted or submitted): skipped",
            ),
            Skip::NotRit => (
                "score",
                "no RIT score (100-350): not a MAP-style result, skipped",
            ),
            Skip::Deleted => (
                "status",
                "tobedeleted: skipped (results already stored are kept)",
            ),
            Skip::GoalWithoutOverall => (
                "assessmentLineItem",
                "a goal area's result whose test result did not change since the last pull: \
                 taken at the next full pull",
            ),
        }
    }
}

/// One `assessmentLineItem`, as far as results need it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    pub sourced_id: String,
    pub title: String,
    pub parent: Option<String>,
    pub subject: Option<String>,
    pub term: Option<String>,
    pub deleted: bool,
}

/// One `assessmentResult`, as far as placement needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArpResult {
    pub sourced_id: String,
    pub line_item: String,
    pub student: String,
    pub score_date: NaiveDate,
    pub score_status: String,
    pub score: Option<f64>,
    pub percentile: Option<f64>,
    pub modified: Option<DateTime<Utc>>,
    pub deleted: bool,
}

fn object(record: &Json) -> Result<&serde_json::Map<String, Json>, RecordProblem> {
    record.as_object().ok_or_else(|| RecordProblem {
        sourced_id: None,
        field: None,
        message: "a record must be a JSON object".into(),
    })
}

fn text<'a>(
    map: &'a serde_json::Map<String, Json>,
    id: Option<&str>,
    field: &'static str,
) -> Result<Option<&'a str>, RecordProblem> {
    match map.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(RecordProblem::new(id, field, "must be a string")),
    }
}

fn required_text<'a>(
    map: &'a serde_json::Map<String, Json>,
    id: Option<&str>,
    field: &'static str,
) -> Result<&'a str, RecordProblem> {
    text(map, id, field)?.ok_or_else(|| RecordProblem::new(id, field, "is required"))
}

/// A `{"sourcedId": …}` reference's id.
fn reference<'a>(
    map: &'a serde_json::Map<String, Json>,
    id: Option<&str>,
    field: &'static str,
) -> Result<Option<&'a str>, RecordProblem> {
    match map.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Object(r)) => match r.get("sourcedId") {
            Some(Json::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
            _ => Err(RecordProblem::new(
                id,
                field,
                "must name its target: {\"sourcedId\": \"…\"}",
            )),
        },
        Some(_) => Err(RecordProblem::new(
            id,
            field,
            "must be a reference object with a sourcedId",
        )),
    }
}

/// A number, or a numeric string (1.2 providers send both).
fn number(
    map: &serde_json::Map<String, Json>,
    id: Option<&str>,
    field: &'static str,
) -> Result<Option<f64>, RecordProblem> {
    let bad = || RecordProblem::new(id, field, "must be a number");
    match map.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => n.as_f64().map(Some).ok_or_else(bad),
        Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Json::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

fn deleted(map: &serde_json::Map<String, Json>) -> bool {
    map.get("status").and_then(Json::as_str) == Some("tobedeleted")
}

fn metadata_text(map: &serde_json::Map<String, Json>, key: &str) -> Option<String> {
    map.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| shorten(s, MAX_TEXT_CHARS))
}

/// Reads one `assessmentLineItem`.
pub fn read_line_item(record: &Json) -> Result<LineItem, RecordProblem> {
    let map = object(record)?;
    let id = required_text(map, None, "sourcedId")?;
    let title = text(map, Some(id), "title")?.unwrap_or_default();
    Ok(LineItem {
        sourced_id: id.to_string(),
        title: shorten(title, MAX_TEXT_CHARS),
        parent: reference(map, Some(id), "parentAssessmentLineItem")?.map(str::to_string),
        subject: metadata_text(map, "subject"),
        term: metadata_text(map, "term"),
        deleted: deleted(map),
    })
}

/// Reads one `assessmentResult`.
pub fn read_result(record: &Json) -> Result<ArpResult, RecordProblem> {
    let map = object(record)?;
    let id = required_text(map, None, "sourcedId")?;
    let some = Some(id);
    let line_item = reference(map, some, "assessmentLineItem")?
        .ok_or_else(|| RecordProblem::new(some, "assessmentLineItem", "is required"))?;
    let student = reference(map, some, "student")?
        .ok_or_else(|| RecordProblem::new(some, "student", "is required"))?;
    let date_text = required_text(map, some, "scoreDate")?;
    let score_date = score_date(date_text).ok_or_else(|| {
        RecordProblem::new(
            some,
            "scoreDate",
            "must be a date (YYYY-MM-DD) or an RFC 3339 date-time",
        )
    })?;
    let modified = text(map, some, "dateLastModified")?
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    RecordProblem::new(some, "dateLastModified", "must be an RFC 3339 date-time")
                })
        })
        .transpose()?;
    Ok(ArpResult {
        sourced_id: id.to_string(),
        line_item: line_item.to_string(),
        student: student.to_string(),
        score_date,
        score_status: text(map, some, "scoreStatus")?
            .unwrap_or_default()
            .to_ascii_lowercase(),
        score: number(map, some, "score")?,
        percentile: number(map, some, "scorePercentile")?,
        modified,
        deleted: deleted(map),
    })
}

/// `2026-10-28` or `2026-10-28T09:05:00Z` (real providers send date-times where the binding
/// says date).
fn score_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.date_naive())
        })
}

/// A testing term named the way MAP names them, from the test date: Fall from July to
/// November, Winter from December to February, Spring from March to June, of the school year
/// that starts in July.
pub fn term_of(date: NaiveDate) -> String {
    let (year, month) = (date.year(), date.month());
    let start = if month >= 7 { year } else { year - 1 };
    let season = match month {
        7..=11 => "Fall",
        12 | 1 | 2 => "Winter",
        _ => "Spring",
    };
    format!("{season} {start}-{}", start + 1)
}

/// A test line item, ready to name its results.
#[derive(Debug, Clone)]
struct Test {
    title: String,
    subject: Option<String>,
    term: Option<String>,
}

/// The line items of a gradebook, sorted into tests and their goal areas.
#[derive(Debug, Default)]
pub struct Tests {
    tests: HashMap<String, Test>,
    /// Goal line item → (its test, the goal's name).
    goals: HashMap<String, (String, String)>,
}

impl Tests {
    /// Sorts `items`: a line item without a parent is a test, one whose parent is a test is a
    /// goal area of it; deeper levels and deleted items are left out.
    pub fn new(items: Vec<LineItem>, plans: &LearningPlans) -> Tests {
        let mut sorted = Tests::default();
        let (tests, children): (Vec<_>, Vec<_>) = items
            .into_iter()
            .filter(|item| !item.deleted)
            .partition(|item| item.parent.is_none());
        for item in tests {
            let subject = item
                .subject
                .or_else(|| plans.subject_in_title(&item.title).map(str::to_string));
            sorted.tests.insert(
                item.sourced_id,
                Test {
                    title: item.title,
                    subject,
                    term: item.term,
                },
            );
        }
        for item in children {
            let parent = item.parent.expect("partitioned on the parent");
            if sorted.tests.contains_key(&parent) && !item.title.is_empty() {
                sorted.goals.insert(item.sourced_id, (parent, item.title));
            }
        }
        sorted
    }

    pub fn test_count(&self) -> usize {
        self.tests.len()
    }
}

/// One test event being put together: its overall result and its goal areas' results.
#[derive(Debug, Default)]
struct Event {
    overall: Option<(String, i64, Option<i64>)>,
    goals: Vec<GoalResult>,
}

/// Puts results together into test events, whatever order they come in.
#[derive(Debug)]
pub struct Assembler<'a> {
    tests: &'a Tests,
    /// (test line item, student, date) → the event.
    events: HashMap<(String, String, NaiveDate), Event>,
    skipped: HashMap<Skip, u64>,
}

impl<'a> Assembler<'a> {
    pub fn new(tests: &'a Tests) -> Self {
        Assembler {
            tests,
            events: HashMap::new(),
            skipped: HashMap::new(),
        }
    }

    /// Takes one result in, or counts why not.
    pub fn add(&mut self, result: ArpResult) {
        if let Err(skip) = self.place(result) {
            *self.skipped.entry(skip).or_default() += 1;
        }
    }

    fn place(&mut self, r: ArpResult) -> Result<(), Skip> {
        if r.deleted {
            return Err(Skip::Deleted);
        }
        let (test_id, goal) = if self.tests.tests.contains_key(&r.line_item) {
            (r.line_item.clone(), None)
        } else if let Some((test, name)) = self.tests.goals.get(&r.line_item) {
            (test.clone(), Some(name.clone()))
        } else {
            return Err(Skip::UnknownLineItem);
        };
        if self.tests.tests[&test_id].subject.is_none() {
            return Err(Skip::TestWithoutSubject);
        }
        if !SCORED.contains(&r.score_status.as_str()) {
            return Err(Skip::NotScored);
        }
        let rit = r
            .score
            .map(f64::round)
            .filter(|s| (RIT_MIN as f64..=RIT_MAX as f64).contains(s))
            .ok_or(Skip::NotRit)? as i64;
        let event = self
            .events
            .entry((test_id, r.student, r.score_date))
            .or_default();
        match goal {
            Some(name) => {
                // The same goal sent twice for one event: the later result stands.
                event.goals.retain(|g| g.name != name);
                event.goals.push(GoalResult {
                    name,
                    rit: rit as f64,
                    standard_error: None,
                    range: None,
                    adjective: None,
                });
            }
            None => {
                let percentile = r
                    .percentile
                    .map(|p| p.round() as i64)
                    .filter(|p| (1..=99).contains(p));
                event.overall = Some((r.sourced_id, rit, percentile));
            }
        }
        Ok(())
    }

    /// The test events put together, and how many results were skipped for each reason. An
    /// event without its overall result (only a goal area changed) is skipped: it is taken in
    /// whole at the next full pull.
    pub fn finish(self) -> (Vec<AssessmentResult>, Vec<(Skip, u64)>) {
        let mut skipped = self.skipped;
        let mut results = Vec::with_capacity(self.events.len());
        for ((test_id, student, date), event) in self.events {
            let Some((event_id, rit, percentile)) = event.overall else {
                *skipped.entry(Skip::GoalWithoutOverall).or_default() += event.goals.len() as u64;
                continue;
            };
            let test = &self.tests.tests[&test_id];
            results.push(AssessmentResult {
                student: StudentRef {
                    sourced_id: Some(student),
                    identifier: None,
                    state_id: None,
                },
                subject: test.subject.clone().expect("tests without one are skipped"),
                course: None,
                term: test.term.clone().unwrap_or_else(|| term_of(date)),
                test_date: date,
                test_start_time: None,
                test_id: Some(shorten(&event_id, MAX_TEXT_CHARS)),
                test_name: (!test.title.is_empty()).then(|| test.title.clone()),
                test_type: None,
                growth_event: None,
                duration_minutes: None,
                rit,
                standard_error: None,
                percentile,
                rapid_guessing_percentage: None,
                norms_reference: None,
                goals: event.goals,
            });
        }
        // A stable order, so that one pull's staging reads the same every time.
        results.sort_by(|a, b| a.test_id.cmp(&b.test_id));
        let mut skipped: Vec<_> = skipped.into_iter().collect();
        skipped.sort_by_key(|(skip, _)| skip.describe().1);
        (results, skipped)
    }
}

#[cfg(test)]
mod tests;
