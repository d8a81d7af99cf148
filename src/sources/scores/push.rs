//! A pushed score document, `{"results": [ … ]}`: one assessment result per test event, with
//! its goal (instructional) areas. Read member by member so that every problem is named by its
//! JSON pointer (`/results/3/goals/1/rit`) and a refusal lists them all, up to a bound. The
//! published schema, `contracts/schemas/score-push.schema.json`, says the same; a test below
//! keeps the two in step.
//!
//! Names follow the MAP Growth exports where they have one (`rit`, `standard_error`,
//! `percentile`, goals with `name`, `rit`, `range`, `adjective`); optional members may be `null`
//! (an empty cell in the export they came from).

use chrono::{NaiveDate, NaiveTime, Timelike};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::domain::problem::shorten;

/// Problems a refusal lists; the others are only counted.
pub const MAX_PROBLEMS: usize = 20;
/// Longest text member, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Goal areas in one result: a MAP Growth test reports up to eight.
pub const MAX_GOALS: usize = 8;
/// The RIT scores accepted, overall and per goal area: the span placement tables cover.
pub const RIT_MIN: i64 = 100;
pub const RIT_MAX: i64 = 350;
/// Standard errors accepted (a goal area's is several times the overall one).
pub const STANDARD_ERROR_MAX: i64 = 100;
/// National percentiles, as MAP reports them.
pub const PERCENTILE_MIN: i64 = 1;
pub const PERCENTILE_MAX: i64 = 99;
/// Longest test accepted, in minutes (a day).
pub const DURATION_MAX: i64 = 1440;

/// The members of a document, of a result, of its student, of a goal and of a goal's range.
pub const DOCUMENT_MEMBERS: [&str; 1] = ["results"];
pub const RESULT_MEMBERS: [&str; 17] = [
    "student",
    "subject",
    "course",
    "term",
    "test_date",
    "test_start_time",
    "test_id",
    "test_name",
    "test_type",
    "growth_event",
    "duration_minutes",
    "rit",
    "standard_error",
    "percentile",
    "rapid_guessing_percentage",
    "norms_reference",
    "goals",
];
pub const RESULT_REQUIRED: [&str; 5] = ["student", "subject", "term", "test_date", "rit"];
pub const STUDENT_MEMBERS: [&str; 3] = ["sourcedId", "identifier", "state_id"];
pub const GOAL_MEMBERS: [&str; 5] = ["name", "rit", "standard_error", "range", "adjective"];
pub const GOAL_REQUIRED: [&str; 2] = ["name", "rit"];
pub const RANGE_MEMBERS: [&str; 2] = ["low", "high"];

/// A goal area's standing: the quintile of the overall norms at its range's midpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Adjective {
    Low,
    LoAvg,
    Avg,
    HiAvg,
    High,
}

impl Adjective {
    pub const ALL: [Adjective; 5] = [
        Adjective::Low,
        Adjective::LoAvg,
        Adjective::Avg,
        Adjective::HiAvg,
        Adjective::High,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Adjective::Low => "Low",
            Adjective::LoAvg => "LoAvg",
            Adjective::Avg => "Avg",
            Adjective::HiAvg => "HiAvg",
            Adjective::High => "High",
        }
    }

    /// The adjective spelt exactly as MAP writes it (`HiAvg`).
    pub fn parse(text: &str) -> Option<Adjective> {
        Adjective::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// The adjective in any letter case (`hiavg`, `HIAVG`): exports are not consistent.
    pub fn parse_ignoring_case(text: &str) -> Option<Adjective> {
        Adjective::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(text))
    }
}

/// Who took the test, by any of the ids the district's roster may carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StudentRef {
    pub sourced_id: Option<String>,
    /// The district's local id (MAP's `StudentID`).
    pub identifier: Option<String>,
    pub state_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoalResult {
    pub name: String,
    pub rit: f64,
    pub standard_error: Option<f64>,
    /// Low and high end of the RIT range (±1 standard error).
    pub range: Option<(f64, f64)>,
    pub adjective: Option<Adjective>,
}

/// One test event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssessmentResult {
    pub student: StudentRef,
    pub subject: String,
    pub course: Option<String>,
    pub term: String,
    pub test_date: NaiveDate,
    /// When the test started, in the district's time zone (MAP's `TestStartTime`).
    pub test_start_time: Option<NaiveTime>,
    pub test_id: Option<String>,
    pub test_name: Option<String>,
    pub test_type: Option<String>,
    /// Whether the event counts for growth (MAP's `GrowthMeasureYN`).
    pub growth_event: Option<bool>,
    pub duration_minutes: Option<i64>,
    pub rit: i64,
    pub standard_error: Option<f64>,
    pub percentile: Option<i64>,
    pub rapid_guessing_percentage: Option<f64>,
    /// The norms the percentile was computed against (MAP's `NormsReferenceData`).
    pub norms_reference: Option<String>,
    pub goals: Vec<GoalResult>,
}

/// A pushed document, read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorePush {
    pub results: Vec<AssessmentResult>,
}

/// What is wrong with one member of the body, at its JSON pointer (`""`: the body itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeProblem {
    pub pointer: String,
    pub message: String,
}

/// Why a body was refused: its first problems, and how many there were in all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.summary())]
pub struct ShapeRefusal {
    pub problems: Vec<ShapeProblem>,
    pub total: usize,
}

impl ShapeRefusal {
    fn summary(&self) -> String {
        let listed: Vec<String> = self
            .problems
            .iter()
            .take(3)
            .map(|p| {
                let at = if p.pointer.is_empty() {
                    "the body"
                } else {
                    &p.pointer
                };
                format!("{at}: {}", p.message)
            })
            .collect();
        let more = self.total.saturating_sub(listed.len());
        let mut text = listed.join("; ");
        if more > 0 {
            text.push_str(&format!(" (and {more} more)"));
        }
        text
    }
}

/// The problems found so far: the first [`MAX_PROBLEMS`] kept, all counted.
#[derive(Default)]
pub(super) struct Problems {
    kept: Vec<ShapeProblem>,
    total: usize,
}

impl Problems {
    pub(super) fn add(&mut self, pointer: &str, message: impl Into<String>) {
        self.total += 1;
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(ShapeProblem {
                pointer: pointer.to_string(),
                message: message.into(),
            });
        }
    }
}

/// `parent`'s member `name` as a JSON pointer (RFC 6901), a hostile name cut short.
pub(super) fn member(parent: &str, name: &str) -> String {
    let name = shorten(name, 100);
    format!("{parent}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// Reads a pushed body. Refused: a body that is not JSON (with serde's line and column), and
/// every member missing, unknown, of the wrong type or out of bounds, each by its pointer.
pub fn read(body: &[u8]) -> Result<ScorePush, ShapeRefusal> {
    let mut problems = Problems::default();
    let document: Json = serde_json::from_slice(body).map_err(|e| {
        let mut refused = Problems::default();
        refused.add("", format!("the body is not valid JSON: {e}"));
        refusal(refused)
    })?;
    let results = read_document(&document, &mut problems);
    if problems.total > 0 {
        return Err(refusal(problems));
    }
    Ok(ScorePush { results })
}

pub(super) fn refusal(problems: Problems) -> ShapeRefusal {
    ShapeRefusal {
        problems: problems.kept,
        total: problems.total,
    }
}

fn read_document(document: &Json, problems: &mut Problems) -> Vec<AssessmentResult> {
    let Some(object) = Object::new(document, "", "a score push", &DOCUMENT_MEMBERS, problems)
    else {
        return Vec::new();
    };
    let Some(value) = object.required("results", problems) else {
        return Vec::new();
    };
    let Json::Array(items) = value else {
        problems.add("/results", "must be an array of results");
        return Vec::new();
    };
    if items.is_empty() {
        problems.add("/results", "holds no result: a push has at least one");
    }
    items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| read_result(item, &format!("/results/{index}"), problems))
        .collect()
}

pub(super) fn read_result(
    value: &Json,
    at: &str,
    problems: &mut Problems,
) -> Option<AssessmentResult> {
    let object = Object::new(value, at, "a result", &RESULT_MEMBERS, problems)?;
    let before = problems.total;
    let student = object
        .required("student", problems)
        .and_then(|v| read_student(v, &member(at, "student"), problems));
    let subject = object.text("subject", true, problems);
    let course = object.text("course", false, problems);
    let term = object.text("term", true, problems);
    let test_date = object.date("test_date", problems);
    let test_start_time = object.time("test_start_time", problems);
    let test_id = object.text("test_id", false, problems);
    let test_name = object.text("test_name", false, problems);
    let test_type = object.text("test_type", false, problems);
    let growth_event = object.boolean("growth_event", problems);
    let duration_minutes = object.integer("duration_minutes", false, (0, DURATION_MAX), problems);
    let rit = object.integer("rit", true, (RIT_MIN, RIT_MAX), problems);
    let standard_error = object.number("standard_error", false, (0, STANDARD_ERROR_MAX), problems);
    let percentile = object.integer(
        "percentile",
        false,
        (PERCENTILE_MIN, PERCENTILE_MAX),
        problems,
    );
    let rapid_guessing_percentage =
        object.number("rapid_guessing_percentage", false, (0, 100), problems);
    let norms_reference = object.text("norms_reference", false, problems);
    let goals = read_goals(object.optional("goals"), at, problems);
    if problems.total > before {
        return None;
    }
    Some(AssessmentResult {
        student: student?,
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

fn read_student(value: &Json, at: &str, problems: &mut Problems) -> Option<StudentRef> {
    let object = Object::new(value, at, "a student", &STUDENT_MEMBERS, problems)?;
    let student = StudentRef {
        sourced_id: object.text("sourcedId", false, problems),
        identifier: object.text("identifier", false, problems),
        state_id: object.text("state_id", false, problems),
    };
    let named = STUDENT_MEMBERS
        .iter()
        .any(|name| object.map.get(*name).is_some_and(|v| !v.is_null()));
    if !named {
        problems.add(
            at,
            "names no student: give sourcedId, identifier (the district's local id) or state_id",
        );
        return None;
    }
    Some(student)
}

fn read_goals(value: Option<&Json>, result_at: &str, problems: &mut Problems) -> Vec<GoalResult> {
    let at = member(result_at, "goals");
    let items = match value {
        None => return Vec::new(),
        Some(Json::Array(items)) => items,
        Some(_) => {
            problems.add(&at, "must be an array of goal areas");
            return Vec::new();
        }
    };
    if items.len() > MAX_GOALS {
        problems.add(
            &at,
            format!(
                "holds {} goal areas: a result has at most {MAX_GOALS}",
                items.len()
            ),
        );
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| read_goal(item, &format!("{at}/{index}"), problems))
        .collect()
}

fn read_goal(value: &Json, at: &str, problems: &mut Problems) -> Option<GoalResult> {
    let object = Object::new(value, at, "a goal area", &GOAL_MEMBERS, problems)?;
    let name = object.text("name", true, problems);
    let rit = object.number("rit", true, (RIT_MIN, RIT_MAX), problems);
    let standard_error = object.number("standard_error", false, (0, STANDARD_ERROR_MAX), problems);
    let range = object
        .optional("range")
        .and_then(|v| read_range(v, &member(at, "range"), problems));
    let adjective = match object.optional("adjective") {
        None => None,
        Some(Json::String(text)) if Adjective::parse(text).is_some() => Adjective::parse(text),
        Some(_) => {
            problems.add(
                &member(at, "adjective"),
                "must be one of Low, LoAvg, Avg, HiAvg, High",
            );
            None
        }
    };
    Some(GoalResult {
        name: name?,
        rit: rit?,
        standard_error,
        range,
        adjective,
    })
}

fn read_range(value: &Json, at: &str, problems: &mut Problems) -> Option<(f64, f64)> {
    let object = Object::new(value, at, "a range", &RANGE_MEMBERS, problems)?;
    let low = object.number("low", true, (RIT_MIN, RIT_MAX), problems)?;
    let high = object.number("high", true, (RIT_MIN, RIT_MAX), problems)?;
    if low > high {
        problems.add(at, format!("low ({low}) is above high ({high})"));
        return None;
    }
    Some((low, high))
}

/// A JSON object being read, at its pointer; its unknown members already refused.
pub(super) struct Object<'a> {
    map: &'a Map<String, Json>,
    at: String,
}

impl<'a> Object<'a> {
    pub(super) fn new(
        value: &'a Json,
        at: &str,
        what: &str,
        known: &[&str],
        problems: &mut Problems,
    ) -> Option<Object<'a>> {
        let Json::Object(map) = value else {
            problems.add(at, format!("{what} must be a JSON object"));
            return None;
        };
        for name in map.keys() {
            if !known.contains(&name.as_str()) {
                problems.add(
                    &member(at, name),
                    format!("unknown member: {what} holds {}", known.join(", ")),
                );
            }
        }
        Some(Object {
            map,
            at: at.to_string(),
        })
    }

    pub(super) fn pointer(&self, name: &str) -> String {
        member(&self.at, name)
    }

    /// A member that must be there and not null.
    pub(super) fn required(&self, name: &str, problems: &mut Problems) -> Option<&'a Json> {
        match self.map.get(name) {
            None => {
                problems.add(&self.pointer(name), "is required");
                None
            }
            Some(Json::Null) => {
                problems.add(&self.pointer(name), "is required and may not be null");
                None
            }
            Some(value) => Some(value),
        }
    }

    /// A member that may be absent or null (both read as absent).
    pub(super) fn optional(&self, name: &str) -> Option<&'a Json> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn get(&self, name: &str, required: bool, problems: &mut Problems) -> Option<&'a Json> {
        if required {
            self.required(name, problems)
        } else {
            self.optional(name)
        }
    }

    fn text(&self, name: &str, required: bool, problems: &mut Problems) -> Option<String> {
        match self.get(name, required, problems)? {
            Json::String(text) if text.trim().is_empty() => {
                problems.add(&self.pointer(name), "may not be empty");
                None
            }
            Json::String(text) if text.chars().count() > MAX_TEXT_CHARS => {
                problems.add(
                    &self.pointer(name),
                    format!("is longer than {MAX_TEXT_CHARS} characters"),
                );
                None
            }
            Json::String(text) => Some(text.trim().to_string()),
            _ => {
                problems.add(&self.pointer(name), "must be a string");
                None
            }
        }
    }

    fn boolean(&self, name: &str, problems: &mut Problems) -> Option<bool> {
        match self.optional(name)? {
            Json::Bool(value) => Some(*value),
            _ => {
                problems.add(&self.pointer(name), "must be true or false");
                None
            }
        }
    }

    /// A number within `bounds` (inclusive).
    fn number(
        &self,
        name: &str,
        required: bool,
        bounds: (i64, i64),
        problems: &mut Problems,
    ) -> Option<f64> {
        let value = self.get(name, required, problems)?;
        let Some(number) = value.as_f64() else {
            problems.add(&self.pointer(name), "must be a number");
            return None;
        };
        let (min, max) = bounds;
        if number < min as f64 || number > max as f64 {
            problems.add(
                &self.pointer(name),
                format!("{number} is outside {min}–{max}"),
            );
            return None;
        }
        Some(number)
    }

    /// A whole number within `bounds` (`215.0` is one, as JSON Schema counts).
    fn integer(
        &self,
        name: &str,
        required: bool,
        bounds: (i64, i64),
        problems: &mut Problems,
    ) -> Option<i64> {
        let value = self.get(name, required, problems)?;
        if value.as_f64().is_some_and(|n| n.fract() != 0.0) {
            problems.add(&self.pointer(name), "must be a whole number");
            return None;
        }
        // Within bounds that fit an i64 exactly, so the conversion loses nothing.
        self.number(name, required, bounds, problems)
            .map(|n| n as i64)
    }

    /// A calendar date, `YYYY-MM-DD`.
    fn date(&self, name: &str, problems: &mut Problems) -> Option<NaiveDate> {
        let value = self.required(name, problems)?;
        let parsed = value
            .as_str()
            .filter(|text| text.len() == 10)
            .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok());
        if parsed.is_none() {
            problems.add(
                &self.pointer(name),
                "must be a date written YYYY-MM-DD (e.g. 2026-09-15)",
            );
        }
        parsed
    }

    /// A time of day, `HH:MM:SS` (24-hour clock, no leap second).
    fn time(&self, name: &str, problems: &mut Problems) -> Option<NaiveTime> {
        let value = self.optional(name)?;
        let parsed = value
            .as_str()
            .filter(|text| text.len() == 8)
            .and_then(|text| NaiveTime::parse_from_str(text, "%H:%M:%S").ok())
            // chrono reads second 60 as a leap second; no test starts on one.
            .filter(|time| time.nanosecond() < 1_000_000_000);
        if parsed.is_none() {
            problems.add(
                &self.pointer(name),
                "must be a time of day written HH:MM:SS (e.g. 09:05:00)",
            );
        }
        parsed
    }
}

#[cfg(test)]
mod tests;
