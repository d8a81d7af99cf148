//! Synthetic districts: OneRoster 1.1 CSV bulk bundles of any size, for trying the gateway
//! out and for load testing it.
//!
//! Every value is derived from `(seed, entity key)` through a keyed SplitMix64, so each
//! file is written in its own streaming pass and still agrees with the others. Nothing
//! proportional to the number of users or enrollments is ever held in memory.

pub mod cdf;
pub mod gradebook;
pub mod lti_platform;
pub mod partner;
mod plan;
pub mod provider;
mod rng;
pub mod serving;
#[cfg(test)]
mod tests;
mod vocabulary;

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Local, NaiveDate};
use serde::Serialize;

use plan::Plan;

/// Size and seed of a synthetic district.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticDistrict {
    pub students: usize,
    pub seed: u64,
}

/// Data rows (header excluded) written to each CSV file of the bundle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GeneratedCounts {
    pub orgs: u64,
    pub academic_sessions: u64,
    pub courses: u64,
    pub classes: u64,
    pub users: u64,
    pub enrollments: u64,
}

impl GeneratedCounts {
    /// Rows over all data files.
    pub fn total(&self) -> u64 {
        self.orgs
            + self.academic_sessions
            + self.courses
            + self.classes
            + self.users
            + self.enrollments
    }
}

/// One line per file, for a person: `users.csv  10,873 rows`.
impl fmt::Display for GeneratedCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = [
            ("orgs.csv", self.orgs),
            ("academicSessions.csv", self.academic_sessions),
            ("courses.csv", self.courses),
            ("classes.csv", self.classes),
            ("users.csv", self.users),
            ("enrollments.csv", self.enrollments),
        ];
        for (file, rows) in files {
            writeln!(f, "  {file:<21} {:>12} rows", thousands(rows))?;
        }
        write!(f, "  {:<21} {:>12} rows", "total", thousands(self.total()))
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot create bundle folder {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: csv::Error },
}

/// Writes the bundle into `dir` (created if missing) with dates for the school year
/// that contains today's local date, so that every enrollment is in effect.
pub fn write_bundle(
    spec: &SyntheticDistrict,
    dir: &Path,
) -> Result<GeneratedCounts, GenerateError> {
    write_bundle_as_of(spec, dir, Local::now().date_naive())
}

/// Same as [`write_bundle`] for the school year containing `today`; output is a pure
/// function of `(spec, today)`.
pub fn write_bundle_as_of(
    spec: &SyntheticDistrict,
    dir: &Path,
    today: NaiveDate,
) -> Result<GeneratedCounts, GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let plan = Plan::new(spec, today);
    let counts = GeneratedCounts {
        orgs: write_csv(dir, "orgs.csv", ORGS_HEADER, |w| plan.write_orgs(w))?,
        academic_sessions: write_csv(dir, "academicSessions.csv", SESSIONS_HEADER, |w| {
            plan.write_sessions(w)
        })?,
        courses: write_csv(dir, "courses.csv", COURSES_HEADER, |w| {
            plan.write_courses(w)
        })?,
        classes: write_csv(dir, "classes.csv", CLASSES_HEADER, |w| {
            plan.write_classes(w)
        })?,
        users: write_csv(dir, "users.csv", USERS_HEADER, |w| plan.write_users(w))?,
        enrollments: write_csv(dir, "enrollments.csv", ENROLLMENTS_HEADER, |w| {
            plan.write_enrollments(w)
        })?,
    };
    write_csv(dir, "manifest.csv", MANIFEST_HEADER, write_manifest)?;
    Ok(counts)
}

// Exact 1.1 headers (reference §9.5).
const ORGS_HEADER: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "name",
    "type",
    "identifier",
    "parentSourcedId",
];
const SESSIONS_HEADER: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "type",
    "startDate",
    "endDate",
    "parentSourcedId",
    "schoolYear",
];
const COURSES_HEADER: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "schoolYearSourcedId",
    "title",
    "courseCode",
    "grades",
    "orgSourcedId",
    "subjects",
    "subjectCodes",
];
const CLASSES_HEADER: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "grades",
    "courseSourcedId",
    "classCode",
    "classType",
    "location",
    "schoolSourcedId",
    "termSourcedIds",
    "subjects",
    "subjectCodes",
    "periods",
];
const USERS_HEADER: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
];
const ENROLLMENTS_HEADER: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "classSourcedId",
    "schoolSourcedId",
    "userSourcedId",
    "role",
    "primary",
    "beginDate",
    "endDate",
];
const MANIFEST_HEADER: &[&str] = &["propertyName", "value"];

/// Every 1.1 file key; the six rostering files are `bulk`, the rest `absent`.
const MANIFEST_FILES: &[(&str, &str)] = &[
    ("academicSessions", "bulk"),
    ("categories", "absent"),
    ("classes", "bulk"),
    ("classResources", "absent"),
    ("courses", "bulk"),
    ("courseResources", "absent"),
    ("demographics", "absent"),
    ("enrollments", "bulk"),
    ("lineItems", "absent"),
    ("orgs", "bulk"),
    ("resources", "absent"),
    ("results", "absent"),
    ("users", "bulk"),
];

type CsvOut = csv::Writer<BufWriter<File>>;

/// Opens `dir/name`, writes the header, lets `body` stream the rows and flushes.
fn write_csv(
    dir: &Path,
    name: &str,
    header: &[&str],
    body: impl FnOnce(&mut CsvOut) -> csv::Result<u64>,
) -> Result<u64, GenerateError> {
    let path = dir.join(name);
    let result = (|| {
        let file = File::create(&path)?;
        let mut w = csv::Writer::from_writer(BufWriter::with_capacity(64 * 1024, file));
        w.write_record(header)?;
        let rows = body(&mut w)?;
        w.flush()?;
        w.into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?
            .flush()?;
        Ok(rows)
    })();
    result.map_err(|source| GenerateError::Write { path, source })
}

fn write_manifest(w: &mut CsvOut) -> csv::Result<u64> {
    w.write_record(["manifest.version", "1.0"])?;
    w.write_record(["oneroster.version", "1.1"])?;
    for (file, mode) in MANIFEST_FILES {
        w.write_record([format!("file.{file}").as_str(), mode])?;
    }
    w.write_record(["source.systemName", "rostergate synthetic district"])?;
    w.write_record(["source.systemCode", "rostergate-bench"])?;
    Ok(2 + MANIFEST_FILES.len() as u64 + 2)
}
