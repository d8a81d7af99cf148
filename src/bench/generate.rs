//! Synthetic OneRoster 1.1 CSV bulk bundles for load testing the importer.
//!
//! Every value is derived from `(seed, entity key)` through a keyed SplitMix64, so each
//! file is written in its own streaming pass and still agrees with the others. Nothing
//! proportional to the number of users or enrollments is ever held in memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, Local, NaiveDate};
use serde::Serialize;

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

// District shape.
const STUDENTS_PER_SCHOOL: usize = 500;
const CLASS_SIZE: usize = 25;
/// Each student takes one class per period, so this is also classes per student.
const PERIODS: usize = 7;
const CLASSES_PER_TEACHER: usize = 5;
const CLASSES_PER_AIDE: usize = 40;
const CO_TEACHER_RATE: f64 = 0.10;
const AIDE_RATE: f64 = 0.05;

// Keys that separate the PRNG streams of different decisions.
const TAG_STUDENT: u64 = 1;
const TAG_TEACHER: u64 = 2;
const TAG_AIDE_USER: u64 = 3;
const TAG_CO_TEACHER: u64 = 4;
const TAG_AIDE_CLASS: u64 = 5;
const TAG_PERIOD: u64 = 6;

// Local ids are numeric like real SIS ids; staff get their own ranges above students.
const TEACHER_LOCAL_BASE: u64 = 1_000_000_000;
const AIDE_LOCAL_BASE: u64 = 2_000_000_000;

const SUBJECTS: [Subject; 14] = [
    Subject::new(
        "English Language Arts",
        "ELA",
        "English Language and Literature",
        "01001",
    ),
    Subject::new("Algebra I", "ALG1", "Mathematics", "02052"),
    Subject::new("Geometry", "GEOM", "Mathematics", "02072"),
    Subject::new("Biology", "BIO", "Life and Physical Sciences", "03051"),
    Subject::new("Chemistry", "CHEM", "Life and Physical Sciences", "03101"),
    Subject::new(
        "World History",
        "WHIS",
        "Social Sciences and History",
        "04051",
    ),
    Subject::new(
        "U.S. History",
        "USH",
        "Social Sciences and History",
        "04101",
    ),
    Subject::new("Economics", "ECON", "Social Sciences and History", "04201"),
    Subject::new("Spanish I", "SPA1", "World Languages", "06101"),
    Subject::new("Visual Art", "ART", "Fine and Performing Arts", "05154"),
    Subject::new("Music", "MUS", "Fine and Performing Arts", "05101"),
    Subject::new(
        "Physical Education",
        "PE",
        "Physical, Health, and Safety Education",
        "08001",
    ),
    Subject::new(
        "Health",
        "HLTH",
        "Physical, Health, and Safety Education",
        "08051",
    ),
    Subject::new(
        "Computer Science",
        "CS",
        "Computer and Information Sciences",
        "10011",
    ),
];

const GRADE_BANDS: [(&str, &[&str]); 3] = [
    ("High", &["09", "10", "11", "12"]),
    ("Middle", &["06", "07", "08"]),
    ("Elementary", &["KG", "01", "02", "03", "04", "05"]),
];

const PLACES: &[&str] = &[
    "Cedar Ridge",
    "Lakeview",
    "Maple Grove",
    "Riverside",
    "Oak Hollow",
    "Pine Crest",
    "Willow Creek",
    "Summit",
    "Eastgate",
    "Harbor Point",
    "Meadowbrook",
    "Stonebridge",
];

const GIVEN_NAMES: &[&str] = &[
    "Mary", "James", "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo",
    "Isabella", "Lucas", "Mia", "Levi", "Amelia", "Ezra", "Harper", "Asher", "Aaliyah", "Kai",
    "Camila", "Hiro", "Priya", "Omar", "Fatima", "Diego", "Chloe", "Wei", "Zoe", "Andre",
];

const FAMILY_NAMES: &[&str] = &[
    "Archer", "Hughes", "Garcia", "Nguyen", "Smith", "Johnson", "Patel", "Kim", "Martinez",
    "Brown", "Okafor", "Lopez", "Wilson", "Anderson", "Chen", "Rossi", "Khan", "Silva", "Murphy",
    "Cohen", "Novak", "Tanaka", "Haddad", "Jensen", "Reyes", "Walker",
];

struct Subject {
    title: &'static str,
    code: &'static str,
    area: &'static str,
    sced: &'static str,
}

impl Subject {
    const fn new(
        title: &'static str,
        code: &'static str,
        area: &'static str,
        sced: &'static str,
    ) -> Self {
        Self {
            title,
            code,
            area,
            sced,
        }
    }
}

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

/// SplitMix64: tiny, fast and statistically fine for synthetic data; no crate needed.
struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// A stream that depends only on the seed and the key, never on generation order.
    fn keyed(seed: u64, key: &[u64]) -> Self {
        let state = key.iter().fold(mix64(seed), |acc, &k| {
            mix64(acc ^ mix64(k.wrapping_add(GOLDEN_GAMMA)))
        });
        Self { state }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform in `0..n` (multiply-shift; its bias is far below what matters here).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Dates of the school year and its two semesters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SchoolYear {
    start: NaiveDate,
    fall_end: NaiveDate,
    spring_start: NaiveDate,
    end: NaiveDate,
    /// OneRoster's `schoolYear`: the calendar year in which the school year ends.
    ending_year: i32,
}

fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("fixed calendar date is valid")
}

/// The July-to-June school year containing `today`, ending strictly after `today`.
fn school_year_containing(today: NaiveDate) -> SchoolYear {
    let start_year = if today.month() >= 7 {
        today.year()
    } else {
        today.year() - 1
    };
    let june_30 = ymd(start_year + 1, 6, 30);
    // OneRoster end dates are exclusive: on June 30 itself stretch the year so that
    // enrollments are still in effect when the import runs.
    let end = if june_30 > today {
        june_30
    } else {
        today + Duration::days(31)
    };
    SchoolYear {
        start: ymd(start_year, 7, 1),
        fall_end: ymd(start_year, 12, 31),
        spring_start: ymd(start_year + 1, 1, 1),
        end,
        ending_year: start_year + 1,
    }
}

/// Everything about the district that is O(1) to compute; rows are derived from it.
struct Plan {
    seed: u64,
    students: usize,
    schools: usize,
    year: SchoolYear,
    begin: String,
    end: String,
}

/// One school: a contiguous range of the district's students.
#[derive(Debug, Clone, Copy)]
struct School {
    index: usize,
    first_student: usize,
    students: usize,
    /// Sections per period; a school has `sections * PERIODS` classes.
    sections: usize,
    teachers: usize,
    aides: usize,
}

/// One class of a school, identified by its period and its section in that period.
#[derive(Debug, Clone, Copy)]
struct ClassSlot {
    index: usize,
    period: usize,
    section: usize,
}

impl School {
    fn classes(&self) -> usize {
        self.sections * PERIODS
    }

    fn id(&self) -> String {
        format!("sch-{:04}", self.index + 1)
    }

    fn band(&self) -> (&'static str, &'static [&'static str]) {
        GRADE_BANDS[self.index % GRADE_BANDS.len()]
    }

    fn grades(&self) -> String {
        self.band().1.join(",")
    }

    fn name(&self) -> String {
        let place = PLACES[self.index % PLACES.len()];
        let round = self.index / PLACES.len();
        let level = self.band().0;
        if round == 0 {
            format!("{place} {level} School")
        } else {
            format!("{place} {level} School {}", round + 1)
        }
    }

    fn slot(&self, index: usize) -> ClassSlot {
        ClassSlot {
            index,
            period: index / self.sections,
            section: index % self.sections,
        }
    }

    fn class_id(&self, slot: ClassSlot) -> String {
        format!("cls-{:04}-{:03}", self.index + 1, slot.index + 1)
    }

    fn course_id(&self, subject: usize) -> String {
        format!("crs-{:04}-{:02}", self.index + 1, subject + 1)
    }

    fn teacher_id(&self, teacher: usize) -> String {
        format!("tch-{:04}-{:03}", self.index + 1, teacher + 1)
    }

    fn aide_id(&self, aide: usize) -> String {
        format!("aid-{:04}-{:02}", self.index + 1, aide + 1)
    }

    /// Two subjects per period, so the seven periods cover all fourteen courses.
    fn subject(slot: ClassSlot) -> usize {
        (slot.period * 2 + slot.section % 2) % SUBJECTS.len()
    }

    /// Classes are dealt to teachers in runs of `CLASSES_PER_TEACHER` over
    /// (section, period) order; a run is shorter than `PERIODS`, so no teacher gets
    /// two classes in the same period.
    fn primary_teacher(&self, slot: ClassSlot) -> usize {
        (slot.section * PERIODS + slot.period) / CLASSES_PER_TEACHER
    }

    /// Section of `period` taken by the school's `local`-th student. `local * a + b`
    /// with `a` coprime to the section count is a bijection on every run of
    /// `sections` students, so sections differ in size by at most one.
    fn student_section(
        &self,
        mixers: &[(usize, usize); PERIODS],
        period: usize,
        local: usize,
    ) -> usize {
        let (a, b) = mixers[period];
        (local * a + b) % self.sections
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Plan {
    fn new(spec: &SyntheticDistrict, today: NaiveDate) -> Self {
        let year = school_year_containing(today);
        Self {
            seed: spec.seed,
            students: spec.students,
            schools: spec.students.div_ceil(STUDENTS_PER_SCHOOL).max(1),
            begin: year.start.to_string(),
            end: year.end.to_string(),
            year,
        }
    }

    fn school(&self, index: usize) -> School {
        let base = self.students / self.schools;
        let extra = self.students % self.schools;
        let students = base + usize::from(index < extra);
        let sections = students.div_ceil(CLASS_SIZE).max(1);
        let classes = sections * PERIODS;
        School {
            index,
            first_student: index * base + index.min(extra),
            students,
            sections,
            teachers: classes.div_ceil(CLASSES_PER_TEACHER),
            aides: classes.div_ceil(CLASSES_PER_AIDE),
        }
    }

    fn schools(&self) -> impl Iterator<Item = School> + '_ {
        (0..self.schools).map(|i| self.school(i))
    }

    fn district_id(&self) -> &'static str {
        "dst-0001"
    }

    fn session_id(&self, kind: &str) -> String {
        format!("as-{}-{kind}", self.year.ending_year)
    }

    fn terms(&self) -> String {
        format!("{},{}", self.session_id("s1"), self.session_id("s2"))
    }

    /// Per-period `(multiplier, offset)` that spreads a school's students over sections.
    fn period_mixers(&self, school: &School) -> [(usize, usize); PERIODS] {
        std::array::from_fn(|period| {
            let mut rng =
                SplitMix64::keyed(self.seed, &[TAG_PERIOD, school.index as u64, period as u64]);
            let n = school.sections;
            let start = 1 + rng.below(n);
            let a = (start..start + n).find(|&a| gcd(a, n) == 1).unwrap_or(1);
            (a, rng.below(n))
        })
    }

    fn co_teacher(&self, school: &School, slot: ClassSlot) -> Option<usize> {
        let mut rng = SplitMix64::keyed(
            self.seed,
            &[TAG_CO_TEACHER, school.index as u64, slot.index as u64],
        );
        if !rng.chance(CO_TEACHER_RATE) || school.teachers < 2 {
            return None;
        }
        let primary = school.primary_teacher(slot);
        Some((primary + 1 + rng.below(school.teachers - 1)) % school.teachers)
    }

    fn aide(&self, school: &School, slot: ClassSlot) -> Option<usize> {
        let mut rng = SplitMix64::keyed(
            self.seed,
            &[TAG_AIDE_CLASS, school.index as u64, slot.index as u64],
        );
        rng.chance(AIDE_RATE).then(|| rng.below(school.aides))
    }

    fn write_orgs(&self, w: &mut CsvOut) -> csv::Result<u64> {
        w.write_record([
            self.district_id(),
            "",
            "",
            "Synthetic Unified School District",
            "district",
            "9900001",
            "",
        ])?;
        for school in self.schools() {
            let identifier = format!("99000010{:05}", school.index + 1);
            w.write_record([
                school.id().as_str(),
                "",
                "",
                &school.name(),
                "school",
                &identifier,
                self.district_id(),
            ])?;
        }
        Ok(1 + self.schools as u64)
    }

    fn write_sessions(&self, w: &mut CsvOut) -> csv::Result<u64> {
        let y = &self.year;
        let ending = y.ending_year.to_string();
        let year_id = self.session_id("sy");
        w.write_record([
            year_id.as_str(),
            "",
            "",
            &format!("{}-{} School Year", y.ending_year - 1, y.ending_year),
            "schoolYear",
            &self.begin,
            &self.end,
            "",
            &ending,
        ])?;
        let semesters = [
            ("s1", "Fall Semester", y.start, y.fall_end),
            ("s2", "Spring Semester", y.spring_start, y.end),
        ];
        for (kind, title, start, end) in semesters {
            w.write_record([
                self.session_id(kind).as_str(),
                "",
                "",
                &format!("{title} {}", start.year()),
                "semester",
                &start.to_string(),
                &end.to_string(),
                &year_id,
                &ending,
            ])?;
        }
        Ok(3)
    }

    fn write_courses(&self, w: &mut CsvOut) -> csv::Result<u64> {
        let year_id = self.session_id("sy");
        let mut rows = 0;
        for school in self.schools() {
            let grades = school.grades();
            let school_id = school.id();
            for (i, subject) in SUBJECTS.iter().enumerate() {
                w.write_record([
                    school.course_id(i).as_str(),
                    "",
                    "",
                    &year_id,
                    subject.title,
                    subject.code,
                    &grades,
                    &school_id,
                    subject.area,
                    subject.sced,
                ])?;
                rows += 1;
            }
        }
        Ok(rows)
    }

    fn write_classes(&self, w: &mut CsvOut) -> csv::Result<u64> {
        let terms = self.terms();
        let mut rows = 0;
        for school in self.schools() {
            let grades = school.grades();
            let school_id = school.id();
            for slot in (0..school.classes()).map(|i| school.slot(i)) {
                let subject_index = School::subject(slot);
                let subject = &SUBJECTS[subject_index];
                let (period, section) = (slot.period + 1, slot.section + 1);
                w.write_record([
                    school.class_id(slot).as_str(),
                    "",
                    "",
                    &format!("{} - Period {period} Section {section}", subject.title),
                    &grades,
                    &school.course_id(subject_index),
                    &format!("{}-{period}-{section:02}", subject.code),
                    "scheduled",
                    &format!("Room {}", 100 + section),
                    &school_id,
                    &terms,
                    subject.area,
                    subject.sced,
                    &period.to_string(),
                ])?;
                rows += 1;
            }
        }
        Ok(rows)
    }

    fn write_users(&self, w: &mut CsvOut) -> csv::Result<u64> {
        let mut rows = 0;
        for school in self.schools() {
            for t in 0..school.teachers {
                write_user(w, &self.teacher(&school, t))?;
            }
            for a in 0..school.aides {
                write_user(w, &self.aide_user(&school, a))?;
            }
            for local in 0..school.students {
                write_user(w, &self.student(&school, local))?;
            }
            rows += (school.teachers + school.aides + school.students) as u64;
        }
        Ok(rows)
    }

    fn student(&self, school: &School, local: usize) -> Person {
        let global = school.first_student + local;
        let mut rng = SplitMix64::keyed(self.seed, &[TAG_STUDENT, global as u64]);
        let grade = rng.pick(school.band().1);
        Person::new(
            &mut rng,
            format!("stu-{:06}", global + 1),
            "student",
            global as u64 + 1,
            school.id(),
            grade.to_string(),
        )
    }

    fn teacher(&self, school: &School, t: usize) -> Person {
        let key = [TAG_TEACHER, school.index as u64, t as u64];
        let mut rng = SplitMix64::keyed(self.seed, &key);
        let local_id = TEACHER_LOCAL_BASE + school.index as u64 * 1000 + t as u64;
        Person::new(
            &mut rng,
            school.teacher_id(t),
            "teacher",
            local_id,
            school.id(),
            String::new(),
        )
    }

    fn aide_user(&self, school: &School, a: usize) -> Person {
        let key = [TAG_AIDE_USER, school.index as u64, a as u64];
        let mut rng = SplitMix64::keyed(self.seed, &key);
        let local_id = AIDE_LOCAL_BASE + school.index as u64 * 1000 + a as u64;
        Person::new(
            &mut rng,
            school.aide_id(a),
            "aide",
            local_id,
            school.id(),
            String::new(),
        )
    }

    fn write_enrollments(&self, w: &mut CsvOut) -> csv::Result<u64> {
        let mut out = EnrollmentRows {
            w,
            next: 0,
            begin: &self.begin,
            end: &self.end,
        };
        for school in self.schools() {
            let school_id = school.id();
            for slot in (0..school.classes()).map(|i| school.slot(i)) {
                let class_id = school.class_id(slot);
                let primary = school.teacher_id(school.primary_teacher(slot));
                out.push(&class_id, &school_id, &primary, "teacher", "true")?;
                if let Some(co) = self.co_teacher(&school, slot) {
                    out.push(
                        &class_id,
                        &school_id,
                        &school.teacher_id(co),
                        "teacher",
                        "false",
                    )?;
                }
                if let Some(aide) = self.aide(&school, slot) {
                    out.push(&class_id, &school_id, &school.aide_id(aide), "aide", "")?;
                }
            }
            let mixers = self.period_mixers(&school);
            for local in 0..school.students {
                let student_id = format!("stu-{:06}", school.first_student + local + 1);
                for period in 0..PERIODS {
                    let section = school.student_section(&mixers, period, local);
                    let slot = school.slot(period * school.sections + section);
                    out.push(
                        &school.class_id(slot),
                        &school_id,
                        &student_id,
                        "student",
                        "",
                    )?;
                }
            }
        }
        Ok(out.next)
    }
}

/// Writes enrollment rows with sequential, unique sourcedIds.
struct EnrollmentRows<'a> {
    w: &'a mut CsvOut,
    next: u64,
    begin: &'a str,
    end: &'a str,
}

impl EnrollmentRows<'_> {
    fn push(
        &mut self,
        class: &str,
        school: &str,
        user: &str,
        role: &str,
        primary: &str,
    ) -> csv::Result<()> {
        self.next += 1;
        let id = format!("enr-{:08}", self.next);
        self.w.write_record([
            id.as_str(),
            "",
            "",
            class,
            school,
            user,
            role,
            primary,
            self.begin,
            self.end,
        ])
    }
}

/// One users.csv row.
struct Person {
    id: String,
    role: &'static str,
    given: &'static str,
    family: &'static str,
    local_id: u64,
    org: String,
    grades: String,
}

impl Person {
    fn new(
        rng: &mut SplitMix64,
        id: String,
        role: &'static str,
        local_id: u64,
        org: String,
        grades: String,
    ) -> Self {
        Self {
            given: rng.pick(GIVEN_NAMES),
            family: rng.pick(FAMILY_NAMES),
            id,
            role,
            local_id,
            org,
            grades,
        }
    }

    /// Names repeat, so the sourcedId makes usernames unique.
    fn username(&self) -> String {
        format!(
            "{}.{}.{}",
            self.given.to_lowercase(),
            self.family.to_lowercase(),
            self.id
        )
    }

    fn email(&self, username: &str) -> String {
        let domain = if self.role == "student" {
            "students.example.org"
        } else {
            "example.org"
        };
        format!("{username}@{domain}")
    }
}

fn write_user(w: &mut CsvOut, p: &Person) -> csv::Result<()> {
    let username = p.username();
    let email = p.email(&username);
    let local = p.local_id.to_string();
    w.write_record([
        p.id.as_str(),
        "",
        "",
        "true",
        &p.org,
        p.role,
        &username,
        &format!("{{Local:{local}}}"),
        p.given,
        p.family,
        "",
        &local,
        &email,
        "",
        "",
        "",
        &p.grades,
        "",
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
