//! The shape of a synthetic district (schools, classes, staff, students) and its CSV rows.

use chrono::{Datelike, Duration, NaiveDate};

use super::rng::SplitMix64;
use super::vocabulary::{FAMILY_NAMES, GIVEN_NAMES, GRADE_BANDS, PLACES, SUBJECTS};
use super::{CsvOut, SyntheticDistrict};

// District shape.
pub(super) const STUDENTS_PER_SCHOOL: usize = 500;
pub(super) const CLASS_SIZE: usize = 25;
/// Each student takes one class per period, so this is also classes per student.
pub(super) const PERIODS: usize = 7;
pub(super) const CLASSES_PER_TEACHER: usize = 5;
pub(super) const CLASSES_PER_AIDE: usize = 40;
pub(super) const CO_TEACHER_RATE: f64 = 0.10;
pub(super) const AIDE_RATE: f64 = 0.05;

// Keys that separate the PRNG streams of different decisions.
pub(super) const TAG_STUDENT: u64 = 1;
pub(super) const TAG_TEACHER: u64 = 2;
pub(super) const TAG_AIDE_USER: u64 = 3;
pub(super) const TAG_CO_TEACHER: u64 = 4;
pub(super) const TAG_AIDE_CLASS: u64 = 5;
pub(super) const TAG_PERIOD: u64 = 6;

// Local ids are numeric like real SIS ids; staff get their own ranges above students.
pub(super) const TEACHER_LOCAL_BASE: u64 = 1_000_000_000;
pub(super) const AIDE_LOCAL_BASE: u64 = 2_000_000_000;

/// Dates of the school year and its two semesters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SchoolYear {
    pub(super) start: NaiveDate,
    pub(super) fall_end: NaiveDate,
    pub(super) spring_start: NaiveDate,
    pub(super) end: NaiveDate,
    /// OneRoster's `schoolYear`: the calendar year in which the school year ends.
    pub(super) ending_year: i32,
}

pub(super) fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("fixed calendar date is valid")
}

/// The July-to-June school year containing `today`, ending strictly after `today`.
pub(super) fn school_year_containing(today: NaiveDate) -> SchoolYear {
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
pub(super) struct Plan {
    seed: u64,
    students: usize,
    schools: usize,
    year: SchoolYear,
    begin: String,
    end: String,
}

/// One school: a contiguous range of the district's students.
#[derive(Debug, Clone, Copy)]
pub(super) struct School {
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
pub(super) struct ClassSlot {
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

pub(super) fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Plan {
    pub(super) fn new(spec: &SyntheticDistrict, today: NaiveDate) -> Self {
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

    pub(super) fn write_orgs(&self, w: &mut CsvOut) -> csv::Result<u64> {
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

    pub(super) fn write_sessions(&self, w: &mut CsvOut) -> csv::Result<u64> {
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

    pub(super) fn write_courses(&self, w: &mut CsvOut) -> csv::Result<u64> {
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

    pub(super) fn write_classes(&self, w: &mut CsvOut) -> csv::Result<u64> {
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

    pub(super) fn write_users(&self, w: &mut CsvOut) -> csv::Result<u64> {
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

    pub(super) fn write_enrollments(&self, w: &mut CsvOut) -> csv::Result<u64> {
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
pub(super) struct EnrollmentRows<'a> {
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
pub(super) struct Person {
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

pub(super) fn write_user(w: &mut CsvOut, p: &Person) -> csv::Result<()> {
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
