//! Ready-made rosters: a small school written out by hand, and the synthetic district of the
//! CSV generator read back into records.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::synthetic::{write_bundle_as_of, SyntheticDistrict};

use super::data::{
    AcademicSession, Base, Class, Course, Enrollment, Org, Roster, RosterError, User,
};

impl Roster {
    /// One district, one school, a school year with one term, one course, two classes, two
    /// teachers, four students and their enrollments; all active, last modified at
    /// [`Roster::SMALL_SCHOOL_MODIFIED`].
    pub fn small_school() -> Roster {
        let at = Self::small_school_modified();
        let base = |id: &str| Base::new(id, at);
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        let orgs = vec![
            Org {
                base: base("org-district"),
                name: "Small Town School District".into(),
                org_type: "district".into(),
                identifier: "9900100".into(),
                parent: None,
            },
            Org {
                base: Base {
                    metadata: serde_json::json!({"address": "1 Main Street", "city": "Small Town"})
                        .as_object()
                        .cloned(),
                    ..base("org-school")
                },
                name: "Small Town High School".into(),
                org_type: "school".into(),
                identifier: "990010000001".into(),
                parent: Some("org-district".into()),
            },
        ];
        let academic_sessions = vec![
            AcademicSession {
                base: base("as-sy"),
                title: "2026-2027 School Year".into(),
                session_type: "schoolYear".into(),
                start_date: date(2026, 7, 1),
                end_date: date(2027, 7, 1),
                parent: None,
                school_year: 2027,
            },
            AcademicSession {
                base: base("as-term"),
                title: "Full Year Term".into(),
                session_type: "term".into(),
                start_date: date(2026, 8, 17),
                end_date: date(2027, 6, 12),
                parent: Some("as-sy".into()),
                school_year: 2027,
            },
        ];
        let courses = vec![Course {
            base: base("crs-math"),
            title: "Algebra I".into(),
            course_code: "MATH-101".into(),
            school_year: Some("as-sy".into()),
            org: "org-school".into(),
            grades: list(&["09", "10"]),
            subjects: list(&["Mathematics"]),
            subject_codes: list(&["02052"]),
        }];
        let class = |id: &str, title: &str, code: &str, period: &str| Class {
            base: base(id),
            title: title.into(),
            class_code: code.into(),
            class_type: "scheduled".into(),
            location: "Room 101".into(),
            course: "crs-math".into(),
            school: "org-school".into(),
            terms: list(&["as-term"]),
            grades: list(&["09", "10"]),
            subjects: list(&["Mathematics"]),
            subject_codes: list(&["02052"]),
            periods: list(&[period]),
        };
        let classes = vec![
            class("cls-math-1", "Algebra I - Period 1", "MATH-101-1", "1"),
            class("cls-math-2", "Algebra I - Period 2", "MATH-101-2", "2"),
        ];
        let user = |id: &str, role: &str, given: &str, family: &str, grades: &[&str]| User {
            base: base(id),
            enabled: true,
            username: format!("{}.{}", given.to_lowercase(), family.to_lowercase()),
            given_name: given.into(),
            family_name: family.into(),
            role: role.into(),
            orgs: list(&["org-school"]),
            email: format!(
                "{}.{}@example.org",
                given.to_lowercase(),
                family.to_lowercase()
            ),
            identifier: id.trim_start_matches(|c: char| !c.is_ascii_digit()).into(),
            user_ids: vec![("Local".into(), id.into())],
            grades: list(grades),
        };
        let users = vec![
            user("tch-1", "teacher", "Ada", "Lovelace", &[]),
            user("tch-2", "teacher", "Alan", "Turing", &[]),
            user("stu-1", "student", "Grace", "Hopper", &["09"]),
            user("stu-2", "student", "Edsger", "Dijkstra", &["09"]),
            user("stu-3", "student", "Barbara", "Liskov", &["10"]),
            user("stu-4", "student", "Donald", "Knuth", &["10"]),
        ];
        let enrollment = |id: &str, user: &str, class: &str, role: &str, primary| Enrollment {
            base: base(id),
            user: user.into(),
            class: class.into(),
            school: "org-school".into(),
            role: role.into(),
            primary,
            begin_date: Some(date(2026, 8, 17)),
            end_date: Some(date(2027, 6, 12)),
        };
        let enrollments = vec![
            enrollment("enr-01", "tch-1", "cls-math-1", "teacher", Some(true)),
            enrollment("enr-02", "tch-2", "cls-math-1", "teacher", Some(false)),
            enrollment("enr-03", "tch-2", "cls-math-2", "teacher", Some(true)),
            enrollment("enr-04", "stu-1", "cls-math-1", "student", None),
            enrollment("enr-05", "stu-2", "cls-math-1", "student", None),
            enrollment("enr-06", "stu-3", "cls-math-2", "student", None),
            enrollment("enr-07", "stu-4", "cls-math-2", "student", None),
        ];
        Roster {
            orgs,
            academic_sessions,
            courses,
            classes,
            users,
            enrollments,
        }
    }

    /// When every record of [`Roster::small_school`] was last modified.
    pub const SMALL_SCHOOL_MODIFIED: &'static str = "2026-08-01T12:00:00Z";

    fn small_school_modified() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(Self::SMALL_SCHOOL_MODIFIED)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// The synthetic district of `students` students (the same one `write_bundle` writes as
    /// CSV), for the school year containing today, every record last modified at midnight UTC
    /// on the first day of that school year.
    pub fn generated(students: usize, seed: u64) -> Result<Roster, RosterError> {
        Self::generated_as_of(students, seed, Utc::now().date_naive())
    }

    /// As [`Roster::generated`], for the school year containing `today`.
    pub fn generated_as_of(
        students: usize,
        seed: u64,
        today: NaiveDate,
    ) -> Result<Roster, RosterError> {
        let dir = tempfile::tempdir().map_err(RosterError::TempDir)?;
        let spec = SyntheticDistrict { students, seed };
        write_bundle_as_of(&spec, dir.path(), today)?;
        read_bundle(dir.path())
    }
}

/// Reads a 1.1 CSV bundle written by the generator back into records. Blank status and
/// dateLastModified (bulk files) become `active` and the school year's first midnight.
fn read_bundle(dir: &Path) -> Result<Roster, RosterError> {
    let sessions = read_rows(dir, "academicSessions.csv", |row| {
        Ok(AcademicSession {
            base: Base::new(row.get("sourcedId")?, Default::default()),
            title: row.get("title")?.into(),
            session_type: row.get("type")?.into(),
            start_date: row.date("startDate")?,
            end_date: row.date("endDate")?,
            parent: row.optional("parentSourcedId"),
            school_year: row.parse("schoolYear", "year")?,
        })
    })?;
    let modified = sessions
        .iter()
        .map(|s| s.start_date)
        .min()
        .unwrap_or_default()
        .and_time(NaiveTime::MIN)
        .and_utc();
    let stamp = |base: &mut Base| base.date_last_modified = modified;
    let mut roster = Roster {
        academic_sessions: sessions,
        orgs: read_rows(dir, "orgs.csv", |row| {
            Ok(Org {
                base: Base::new(row.get("sourcedId")?, modified),
                name: row.get("name")?.into(),
                org_type: row.get("type")?.into(),
                identifier: row.get("identifier")?.into(),
                parent: row.optional("parentSourcedId"),
            })
        })?,
        courses: read_rows(dir, "courses.csv", |row| {
            Ok(Course {
                base: Base::new(row.get("sourcedId")?, modified),
                title: row.get("title")?.into(),
                course_code: row.get("courseCode")?.into(),
                school_year: row.optional("schoolYearSourcedId"),
                org: row.get("orgSourcedId")?.into(),
                grades: row.list("grades")?,
                subjects: row.list("subjects")?,
                subject_codes: row.list("subjectCodes")?,
            })
        })?,
        classes: read_rows(dir, "classes.csv", |row| {
            Ok(Class {
                base: Base::new(row.get("sourcedId")?, modified),
                title: row.get("title")?.into(),
                class_code: row.get("classCode")?.into(),
                class_type: row.get("classType")?.into(),
                location: row.get("location")?.into(),
                course: row.get("courseSourcedId")?.into(),
                school: row.get("schoolSourcedId")?.into(),
                terms: row.list("termSourcedIds")?,
                grades: row.list("grades")?,
                subjects: row.list("subjects")?,
                subject_codes: row.list("subjectCodes")?,
                periods: row.list("periods")?,
            })
        })?,
        users: read_rows(dir, "users.csv", |row| {
            Ok(User {
                base: Base::new(row.get("sourcedId")?, modified),
                enabled: row.get("enabledUser")? != "false",
                username: row.get("username")?.into(),
                given_name: row.get("givenName")?.into(),
                family_name: row.get("familyName")?.into(),
                role: row.get("role")?.into(),
                orgs: row.list("orgSourcedIds")?,
                email: row.get("email")?.into(),
                identifier: row.get("identifier")?.into(),
                user_ids: row
                    .list("userIds")?
                    .iter()
                    .filter_map(|pair| {
                        let inner = pair.trim_start_matches('{').trim_end_matches('}');
                        inner
                            .split_once(':')
                            .map(|(t, id)| (t.to_string(), id.to_string()))
                    })
                    .collect(),
                grades: row.list("grades")?,
            })
        })?,
        enrollments: read_rows(dir, "enrollments.csv", |row| {
            let primary = match row.get("primary")? {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            Ok(Enrollment {
                base: Base::new(row.get("sourcedId")?, modified),
                user: row.get("userSourcedId")?.into(),
                class: row.get("classSourcedId")?.into(),
                school: row.get("schoolSourcedId")?.into(),
                role: row.get("role")?.into(),
                primary,
                begin_date: row.optional_date("beginDate")?,
                end_date: row.optional_date("endDate")?,
            })
        })?,
    };
    roster
        .academic_sessions
        .iter_mut()
        .for_each(|s| stamp(&mut s.base));
    Ok(roster)
}

/// One CSV row, columns looked up by header name.
struct Row<'a> {
    file: &'static str,
    columns: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl<'a> Row<'a> {
    fn get(&self, column: &'static str) -> Result<&'a str, RosterError> {
        self.columns
            .get(column)
            .and_then(|&i| self.record.get(i))
            .ok_or(RosterError::MissingColumn {
                file: self.file,
                column,
            })
    }

    fn optional(&self, column: &'static str) -> Option<String> {
        self.get(column)
            .ok()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    fn list(&self, column: &'static str) -> Result<Vec<String>, RosterError> {
        Ok(self
            .get(column)?
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        column: &'static str,
        what: &'static str,
    ) -> Result<T, RosterError> {
        let value = self.get(column)?;
        value.parse().map_err(|_| RosterError::BadValue {
            file: self.file,
            column,
            value: value.to_string(),
            what,
        })
    }

    fn date(&self, column: &'static str) -> Result<NaiveDate, RosterError> {
        self.parse(column, "date")
    }

    fn optional_date(&self, column: &'static str) -> Result<Option<NaiveDate>, RosterError> {
        match self.get(column)? {
            "" => Ok(None),
            _ => self.date(column).map(Some),
        }
    }
}

fn read_rows<T>(
    dir: &Path,
    file: &'static str,
    mut make: impl FnMut(&Row<'_>) -> Result<T, RosterError>,
) -> Result<Vec<T>, RosterError> {
    let read_error = |source| RosterError::Read { file, source };
    let mut reader = csv::Reader::from_path(dir.join(file)).map_err(read_error)?;
    let columns: HashMap<String, usize> = reader
        .headers()
        .map_err(read_error)?
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), i))
        .collect();
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(read_error)? {
        out.push(make(&Row {
            file,
            columns: &columns,
            record: &record,
        })?);
    }
    Ok(out)
}
