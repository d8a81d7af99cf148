//! Learning plans: for each subject, its goal (instructional) areas and, per area, RIT bands that
//! name the unit a student starts at. The plans are data (`config/learning-plans/*.toml`, one file
//! per subject, the file stem being the subject key); this module reads and checks them and turns
//! an assessment result into one placement per goal area. Pure: no database, no clock.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::sources::scores::push::{AssessmentResult, RIT_MAX, RIT_MIN};

/// Longest key (subject, goal area, unit): keys are stored with placements and overrides.
pub const MAX_KEY_CHARS: usize = 64;

/// The plans built into the gateway, as (subject key, file label, text).
const SHIPPED: &[(&str, &str, &str)] = &[(
    "math",
    "math.toml",
    include_str!("../../config/learning-plans/math.toml"),
)];

/// Every subject's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningPlans {
    plans: Vec<SubjectPlan>,
}

/// One subject's plan, as read from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectPlan {
    /// The file stem, e.g. "math".
    pub key: String,
    pub title: String,
    pub version: String,
    /// The subject names exports use, as written in the file.
    pub subjects: Vec<String>,
    pub goal_areas: Vec<GoalArea>,
    /// Where the plan came from, for error messages.
    file: String,
    /// `subjects`, normalised.
    subject_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GoalArea {
    pub key: String,
    pub name: String,
    /// The other goal names exports use, as written in the file.
    pub aliases: Vec<String>,
    /// Lowest band first; the first starts at 100, each runs to the next one's `from_rit`.
    pub units: Vec<Unit>,
    /// `name` and `aliases`, normalised.
    names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub key: String,
    pub title: String,
    /// The lowest RIT of the band that starts at this unit.
    pub from_rit: i64,
}

/// Which RIT placed a goal area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The result's score for the goal area.
    GoalArea,
    /// The result's overall RIT: it had no score for the goal area.
    Overall,
}

/// Where a result places a student in one goal area.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// The goal area's key.
    pub goal_area: String,
    /// The starting unit's key.
    pub unit: String,
    /// The RIT that picked the band.
    pub rit: f64,
    pub basis: Basis,
}

/// Why a plan file (or a directory of them) was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML at all.
    #[error("{file}: line {line}, column {column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// TOML, but not a valid plan: `key` is the TOML key path (`goal_areas[2].units[3].from`),
    /// empty for the document itself.
    #[error("{file}: {}{message}", KeyPrefix(key))]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
    #[error("{}: no learning plan (*.toml) in the directory", dir.display())]
    NoPlans { dir: PathBuf },
}

/// `key: `, or nothing for the document itself.
struct KeyPrefix<'a>(&'a str);

impl fmt::Display for KeyPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

fn invalid(file: &str, key: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        file: file.to_string(),
        key: key.into(),
        message: message.into(),
    }
}

impl LearningPlans {
    /// The plans under `config/learning-plans/`, built in.
    pub fn shipped() -> LearningPlans {
        let plans = SHIPPED
            .iter()
            .map(|(key, label, text)| LearningPlans::parse(key, label, text))
            .collect::<Result<Vec<_>, _>>()
            .and_then(LearningPlans::from_plans);
        // A test parses the shipped files; a failure here is a build that skipped it.
        plans.unwrap_or_else(|e| panic!("the shipped learning plans are invalid: {e}"))
    }

    /// Every `*.toml` in `dir` (a district's own plans), the file stem being the subject key.
    /// Files whose name starts with a dot (editor backups) are skipped.
    pub fn load_dir(dir: &Path) -> Result<LearningPlans, PlanError> {
        let read_err = |path: &Path, source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
            let path = entry.map_err(|e| read_err(dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.extension().is_some_and(|e| e == "toml") && !name.starts_with('.') {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(PlanError::NoPlans {
                dir: dir.to_path_buf(),
            });
        }
        // Directory order is arbitrary; errors and `subjects()` should not be.
        files.sort();
        let mut plans = Vec::with_capacity(files.len());
        for path in files {
            let label = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
            let key = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            plans.push(LearningPlans::parse(key, &label, &text)?);
        }
        LearningPlans::from_plans(plans)
    }

    /// One plan file's text; `key` is the subject key (the file stem), `file_label` names the
    /// file in errors.
    pub fn parse(key: &str, file_label: &str, text: &str) -> Result<SubjectPlan, PlanError> {
        let raw: RawPlan = toml::from_str(text).map_err(|e| toml_error(file_label, text, &e))?;
        raw.check(key, file_label)
    }

    /// The plan an export's subject name belongs to ("Mathematics" → math).
    pub fn for_subject(&self, exported_subject: &str) -> Option<&SubjectPlan> {
        let wanted = normalise(exported_subject);
        if wanted.is_empty() {
            return None;
        }
        self.plans
            .iter()
            .find(|p| p.subject_names.contains(&wanted))
    }

    /// The subject name (as a plan file writes it) that a title names as whole words, ignoring
    /// case and punctuation: "MAP Growth Math 2-5 Fall 2026" names "Math 2-5" (the longest name
    /// found wins), "Aftermath quiz" names none. For sources that title a test but give no
    /// subject.
    pub fn subject_in_title(&self, title: &str) -> Option<&str> {
        let words = |text: &str| {
            let spaced: String = text
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        ' '
                    }
                })
                .collect();
            format!(
                " {} ",
                spaced.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        };
        let title = words(title);
        self.plans
            .iter()
            .flat_map(|p| p.subjects.iter())
            .filter(|name| {
                let name = words(name);
                !name.trim().is_empty() && title.contains(&name)
            })
            .max_by_key(|name| name.len())
            .map(String::as_str)
    }

    /// The plan with this subject key.
    pub fn subject(&self, key: &str) -> Option<&SubjectPlan> {
        self.plans.iter().find(|p| p.key == key)
    }

    /// Every plan, by subject key.
    pub fn subjects(&self) -> &[SubjectPlan] {
        &self.plans
    }

    /// Plans that together claim each subject name at most once.
    fn from_plans(mut plans: Vec<SubjectPlan>) -> Result<LearningPlans, PlanError> {
        plans.sort_by(|a, b| a.key.cmp(&b.key));
        let mut claimed: HashMap<&str, &SubjectPlan> = HashMap::new();
        for plan in &plans {
            for (i, name) in plan.subject_names.iter().enumerate() {
                match claimed.get(name.as_str()) {
                    Some(other) if other.key != plan.key => {
                        return Err(invalid(
                            &plan.file,
                            format!("subjects[{i}]"),
                            format!(
                                "{:?} is already a subject name of {} ({})",
                                plan.subjects[i], other.key, other.file
                            ),
                        ));
                    }
                    _ => {
                        claimed.insert(name, plan);
                    }
                }
            }
        }
        Ok(LearningPlans { plans })
    }
}

impl SubjectPlan {
    pub fn goal_area(&self, key: &str) -> Option<&GoalArea> {
        self.goal_areas.iter().find(|a| a.key == key)
    }

    /// The area an export's goal name belongs to, by its name or an alias (normalised).
    pub fn area_for_name(&self, exported_name: &str) -> Option<&GoalArea> {
        let wanted = normalise(exported_name);
        if wanted.is_empty() {
            return None;
        }
        self.goal_areas.iter().find(|a| a.names.contains(&wanted))
    }

    /// One placement per goal area of the plan, in the plan's order: the goal area's RIT decides
    /// (a result's goal matched by alias); the overall RIT when the result has no score for that
    /// area. A goal no area claims is ignored. When several of a result's goals fall in one area
    /// (an export splitting a strand the plan keeps whole) the lowest RIT decides, so a student
    /// is not started past the weaker part. The caller checks the result is for this subject.
    pub fn place(&self, result: &AssessmentResult) -> Vec<Placement> {
        self.goal_areas
            .iter()
            .map(|area| {
                let goal_rit = result
                    .goals
                    .iter()
                    .filter(|g| g.rit.is_finite())
                    .filter(|g| {
                        self.area_for_name(&g.name)
                            .is_some_and(|a| a.key == area.key)
                    })
                    .map(|g| g.rit)
                    .reduce(f64::min);
                let (rit, basis) = match goal_rit {
                    Some(rit) => (rit, Basis::GoalArea),
                    None => (result.rit as f64, Basis::Overall),
                };
                Placement {
                    goal_area: area.key.clone(),
                    unit: area.unit_for_rit(rit).key.clone(),
                    rit,
                    basis,
                }
            })
            .collect()
    }
}

impl GoalArea {
    pub fn unit(&self, key: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.key == key)
    }

    /// The unit whose band holds `rit`. Bands cover 100–350; a RIT below 100 (or not a number)
    /// gets the first band, one above 350 the last.
    pub fn unit_for_rit(&self, rit: f64) -> &Unit {
        self.units
            .iter()
            .rev()
            .find(|u| rit >= u.from_rit as f64)
            .unwrap_or(&self.units[0])
    }
}

/// How names are compared: lowercase letters and digits only, with "&" read as "and", so that
/// "Number and Operations: Fractions", "number & operations — fractions" and
/// "NumberAndOperationsFractions" are one name.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c == '&' {
            out.push_str("and");
        } else if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// A subject, goal area or unit key: `[a-z0-9-]+`, at most [`MAX_KEY_CHARS`].
fn is_key(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_KEY_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

const KEY_RULE: &str = "must be 1 to 64 of a-z, 0-9 and '-'";

// The file's shape. Unknown keys are refused so that a misspelt key is not silently ignored.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    version: String,
    title: String,
    subjects: Vec<String>,
    goal_areas: Vec<RawArea>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArea {
    key: String,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    units: Vec<RawUnit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnit {
    from: i64,
    unit: String,
    title: String,
}

impl RawPlan {
    /// The rules serde cannot say, each error naming its key path.
    fn check(self, key: &str, file: &str) -> Result<SubjectPlan, PlanError> {
        if !is_key(key) {
            return Err(invalid(
                file,
                "",
                format!("the subject key {key:?} (the file name) {KEY_RULE}"),
            ));
        }
        non_empty(file, "version", &self.version)?;
        non_empty(file, "title", &self.title)?;
        if self.subjects.is_empty() {
            return Err(invalid(file, "subjects", "names no subject"));
        }
        let subject_names = self
            .subjects
            .iter()
            .enumerate()
            .map(|(i, s)| name_key(file, &format!("subjects[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        if self.goal_areas.is_empty() {
            return Err(invalid(file, "goal_areas", "names no goal area"));
        }
        let mut goal_areas: Vec<GoalArea> = Vec::with_capacity(self.goal_areas.len());
        // Normalised goal name → the area (index) and key path that claimed it first.
        let mut claimed: HashMap<String, (usize, String)> = HashMap::new();
        for (a, raw) in self.goal_areas.into_iter().enumerate() {
            let at = format!("goal_areas[{a}]");
            if !is_key(&raw.key) {
                return Err(invalid(
                    file,
                    format!("{at}.key"),
                    format!("{:?} {KEY_RULE}", raw.key),
                ));
            }
            if let Some(b) = goal_areas.iter().position(|g| g.key == raw.key) {
                return Err(invalid(
                    file,
                    format!("{at}.key"),
                    format!("{:?} is already the key of goal_areas[{b}]", raw.key),
                ));
            }
            non_empty(file, &format!("{at}.name"), &raw.name)?;
            let named = std::iter::once((format!("{at}.name"), &raw.name)).chain(
                raw.aliases
                    .iter()
                    .enumerate()
                    .map(|(i, alias)| (format!("{at}.aliases[{i}]"), alias)),
            );
            let mut names = Vec::new();
            for (path, text) in named {
                let normal = name_key(file, &path, text)?;
                match claimed.get(&normal) {
                    // Repeating a name within one area is harmless.
                    Some((owner, _)) if *owner == a => {}
                    Some((owner, first)) => {
                        return Err(invalid(
                            file,
                            path,
                            format!(
                                "{text:?} is already claimed by goal area {:?} ({first})",
                                goal_areas[*owner].key
                            ),
                        ));
                    }
                    None => {
                        claimed.insert(normal.clone(), (a, path));
                        names.push(normal);
                    }
                }
            }
            let units = check_units(file, &at, raw.units)?;
            goal_areas.push(GoalArea {
                key: raw.key,
                name: raw.name,
                aliases: raw.aliases,
                units,
                names,
            });
        }
        Ok(SubjectPlan {
            key: key.to_string(),
            title: self.title,
            version: self.version,
            subjects: self.subjects,
            goal_areas,
            file: file.to_string(),
            subject_names,
        })
    }
}

/// An area's bands: the first from 100, each above the one before, none above 350, unit keys
/// unique, so that every RIT from 100 to 350 has exactly one unit.
fn check_units(file: &str, area_at: &str, raw: Vec<RawUnit>) -> Result<Vec<Unit>, PlanError> {
    if raw.is_empty() {
        return Err(invalid(file, format!("{area_at}.units"), "names no band"));
    }
    let mut units: Vec<Unit> = Vec::with_capacity(raw.len());
    for (u, band) in raw.into_iter().enumerate() {
        let at = format!("{area_at}.units[{u}]");
        match units.last() {
            None if band.from != RIT_MIN => {
                return Err(invalid(
                    file,
                    format!("{at}.from"),
                    format!(
                        "{} must be {RIT_MIN}: the first band starts at the lowest RIT",
                        band.from
                    ),
                ));
            }
            Some(previous) if band.from <= previous.from_rit => {
                return Err(invalid(
                    file,
                    format!("{at}.from"),
                    format!(
                        "{} is not above the previous band's {}",
                        band.from, previous.from_rit
                    ),
                ));
            }
            _ if band.from > RIT_MAX => {
                return Err(invalid(
                    file,
                    format!("{at}.from"),
                    format!("{} is above the highest RIT, {RIT_MAX}", band.from),
                ));
            }
            _ => {}
        }
        if !is_key(&band.unit) {
            return Err(invalid(
                file,
                format!("{at}.unit"),
                format!("{:?} {KEY_RULE}", band.unit),
            ));
        }
        if let Some(v) = units.iter().position(|x| x.key == band.unit) {
            return Err(invalid(
                file,
                format!("{at}.unit"),
                format!(
                    "{:?} is already the unit of {area_at}.units[{v}]",
                    band.unit
                ),
            ));
        }
        non_empty(file, &format!("{at}.title"), &band.title)?;
        units.push(Unit {
            key: band.unit,
            title: band.title,
            from_rit: band.from,
        });
    }
    Ok(units)
}

fn non_empty(file: &str, key: &str, text: &str) -> Result<(), PlanError> {
    if text.trim().is_empty() {
        Err(invalid(file, key, "must not be empty"))
    } else {
        Ok(())
    }
}

/// A subject or goal name, normalised; one with no letter or digit would match nothing.
fn name_key(file: &str, key: &str, text: &str) -> Result<String, PlanError> {
    let normal = normalise(text);
    if normal.is_empty() {
        Err(invalid(
            file,
            key,
            format!("{text:?} has no letter or digit"),
        ))
    } else {
        Ok(normal)
    }
}

/// A toml error as ours: a syntax error by line and column; a shape error (missing or unknown
/// key, wrong type) by the key path at the place toml points to.
fn toml_error(file: &str, text: &str, error: &toml::de::Error) -> PlanError {
    let message = error.message().trim_end().to_string();
    match DeTable::parse(text) {
        Err(syntax) => {
            let offset = syntax.span().map_or(0, |s| s.start);
            let (line, column) = line_column(text, offset);
            PlanError::Syntax {
                file: file.to_string(),
                line,
                column,
                message: syntax.message().trim_end().to_string(),
            }
        }
        Ok(document) => {
            let key = error
                .span()
                .filter(|s| !s.is_empty())
                .and_then(|s| path_in_table(document.get_ref(), s.start, ""))
                .unwrap_or_default();
            invalid(file, key, message)
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// The key path of the innermost key or value at `offset`. Containers are searched before their
/// own span is tried, because an array-of-tables element's span covers only its `[[header]]`.
fn path_in_table(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    for (key, value) in table.iter() {
        let here = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if let Some(inner) = path_in_value(value, offset, &here) {
            return Some(inner);
        }
        if key.span().contains(&offset) {
            return Some(here);
        }
    }
    None
}

fn path_in_value(value: &Spanned<DeValue<'_>>, offset: usize, here: &str) -> Option<String> {
    let inner = match value.get_ref() {
        DeValue::Table(table) => path_in_table(table, offset, here),
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| path_in_value(item, offset, &format!("{here}[{i}]"))),
        _ => None,
    };
    inner.or_else(|| value.span().contains(&offset).then(|| here.to_string()))
}

#[cfg(test)]
mod tests;
