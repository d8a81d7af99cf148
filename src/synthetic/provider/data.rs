//! The roster a provider serves: the six OneRoster rostering collections as plain records,
//! built by hand, as a small school, or from the synthetic district generator.

use chrono::{DateTime, NaiveDate, Utc};

use crate::synthetic::GenerateError;

/// A record's `status` (reference §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    ToBeDeleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::ToBeDeleted => "tobedeleted",
        }
    }
}

/// The fields every OneRoster entity carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Base {
    pub sourced_id: String,
    pub status: Status,
    pub date_last_modified: DateTime<Utc>,
    /// Sent as `metadata` when present (an open extension bag).
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Base {
    pub fn new(sourced_id: impl Into<String>, date_last_modified: DateTime<Utc>) -> Base {
        Base {
            sourced_id: sourced_id.into(),
            status: Status::Active,
            date_last_modified,
            metadata: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    pub base: Base,
    pub name: String,
    /// district, school, …
    pub org_type: String,
    pub identifier: String,
    pub parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AcademicSession {
    pub base: Base,
    pub title: String,
    /// schoolYear, semester, term, gradingPeriod
    pub session_type: String,
    pub start_date: NaiveDate,
    /// Exclusive, as OneRoster defines it.
    pub end_date: NaiveDate,
    pub parent: Option<String>,
    /// The calendar year in which the school year ends.
    pub school_year: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    pub base: Base,
    pub title: String,
    pub course_code: String,
    /// The schoolYear academic session.
    pub school_year: Option<String>,
    pub org: String,
    pub grades: Vec<String>,
    pub subjects: Vec<String>,
    pub subject_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub base: Base,
    pub title: String,
    pub class_code: String,
    /// homeroom or scheduled
    pub class_type: String,
    pub location: String,
    pub course: String,
    pub school: String,
    pub terms: Vec<String>,
    pub grades: Vec<String>,
    pub subjects: Vec<String>,
    pub subject_codes: Vec<String>,
    pub periods: Vec<String>,
}

/// A user as 1.1 knows it (one role, several orgs); 1.2 renders it as `roles[]`, one per org,
/// the first org primary.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub base: Base,
    pub enabled: bool,
    pub username: String,
    pub given_name: String,
    pub family_name: String,
    /// student, teacher, aide, administrator, …
    pub role: String,
    pub orgs: Vec<String>,
    pub email: String,
    pub identifier: String,
    /// `(type, identifier)` pairs.
    pub user_ids: Vec<(String, String)>,
    pub grades: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub base: Base,
    pub user: String,
    pub class: String,
    pub school: String,
    pub role: String,
    /// Teachers only: whether this is the class's primary teacher.
    pub primary: Option<bool>,
    pub begin_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
}

/// The rostering collections a provider serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    Orgs,
    AcademicSessions,
    Courses,
    Classes,
    Users,
    Enrollments,
}

impl Collection {
    pub const ALL: [Collection; 6] = [
        Collection::Orgs,
        Collection::AcademicSessions,
        Collection::Courses,
        Collection::Classes,
        Collection::Users,
        Collection::Enrollments,
    ];

    /// The path segment and the envelope key of the collection.
    pub fn plural(self) -> &'static str {
        match self {
            Collection::Orgs => "orgs",
            Collection::AcademicSessions => "academicSessions",
            Collection::Courses => "courses",
            Collection::Classes => "classes",
            Collection::Users => "users",
            Collection::Enrollments => "enrollments",
        }
    }

    /// The envelope key of a singleton answer.
    pub fn singular(self) -> &'static str {
        match self {
            Collection::Orgs => "org",
            Collection::AcademicSessions => "academicSession",
            Collection::Courses => "course",
            Collection::Classes => "class",
            Collection::Users => "user",
            Collection::Enrollments => "enrollment",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// One record of any collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Org(Org),
    AcademicSession(AcademicSession),
    Course(Course),
    Class(Class),
    User(User),
    Enrollment(Enrollment),
}

impl Record {
    pub fn collection(&self) -> Collection {
        match self {
            Record::Org(_) => Collection::Orgs,
            Record::AcademicSession(_) => Collection::AcademicSessions,
            Record::Course(_) => Collection::Courses,
            Record::Class(_) => Collection::Classes,
            Record::User(_) => Collection::Users,
            Record::Enrollment(_) => Collection::Enrollments,
        }
    }

    pub fn base(&self) -> &Base {
        match self {
            Record::Org(r) => &r.base,
            Record::AcademicSession(r) => &r.base,
            Record::Course(r) => &r.base,
            Record::Class(r) => &r.base,
            Record::User(r) => &r.base,
            Record::Enrollment(r) => &r.base,
        }
    }

    pub fn base_mut(&mut self) -> &mut Base {
        match self {
            Record::Org(r) => &mut r.base,
            Record::AcademicSession(r) => &mut r.base,
            Record::Course(r) => &mut r.base,
            Record::Class(r) => &mut r.base,
            Record::User(r) => &mut r.base,
            Record::Enrollment(r) => &mut r.base,
        }
    }

    /// What a view selects on: an org's type, a session's type, a user's role.
    pub(super) fn kind(&self) -> &str {
        match self {
            Record::Org(r) => &r.org_type,
            Record::AcademicSession(r) => &r.session_type,
            Record::User(r) => &r.role,
            _ => "",
        }
    }
}

macro_rules! record_from {
    ($($ty:ident),*) => {$(
        impl From<$ty> for Record {
            fn from(r: $ty) -> Record {
                Record::$ty(r)
            }
        }
    )*};
}
record_from!(Org, AcademicSession, Course, Class, User, Enrollment);

/// The six collections, in any order (the provider serves them sorted by sourcedId).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roster {
    pub orgs: Vec<Org>,
    pub academic_sessions: Vec<AcademicSession>,
    pub courses: Vec<Course>,
    pub classes: Vec<Class>,
    pub users: Vec<User>,
    pub enrollments: Vec<Enrollment>,
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("cannot create a temporary folder for the generated district: {0}")]
    TempDir(std::io::Error),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error("cannot read back {file}: {source}")]
    Read {
        file: &'static str,
        source: csv::Error,
    },
    #[error("{file}: a row has no {column} column")]
    MissingColumn {
        file: &'static str,
        column: &'static str,
    },
    #[error("{file}: {value:?} in {column} is not a valid {what}")]
    BadValue {
        file: &'static str,
        column: &'static str,
        value: String,
        what: &'static str,
    },
}

impl Roster {
    /// Every record, moved out, collection by collection.
    pub fn into_records(self) -> impl Iterator<Item = Record> {
        let Roster {
            orgs,
            academic_sessions,
            courses,
            classes,
            users,
            enrollments,
        } = self;
        orgs.into_iter()
            .map(Record::from)
            .chain(academic_sessions.into_iter().map(Record::from))
            .chain(courses.into_iter().map(Record::from))
            .chain(classes.into_iter().map(Record::from))
            .chain(users.into_iter().map(Record::from))
            .chain(enrollments.into_iter().map(Record::from))
    }

    /// Records per collection.
    pub fn len(&self, collection: Collection) -> usize {
        match collection {
            Collection::Orgs => self.orgs.len(),
            Collection::AcademicSessions => self.academic_sessions.len(),
            Collection::Courses => self.courses.len(),
            Collection::Classes => self.classes.len(),
            Collection::Users => self.users.len(),
            Collection::Enrollments => self.enrollments.len(),
        }
    }
}
