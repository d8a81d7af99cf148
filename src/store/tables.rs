//! Which table holds which kind of record: a storage fact, kept out of the domain and the engine.

use crate::domain::records::RecordKind::{self, *};

pub trait KindTables {
    /// The live table.
    fn table(self) -> &'static str;
    /// The staging twin of the live table, holding one run's incoming rows.
    fn stage_table(self) -> String;
}

impl KindTables for RecordKind {
    fn table(self) -> &'static str {
        match self {
            Orgs => "orgs",
            AcademicSessions => "academic_sessions",
            Courses => "courses",
            Classes => "classes",
            Users => "users",
            UserProfiles => "user_profiles",
            Roles => "user_roles",
            Enrollments => "enrollments",
        }
    }

    fn stage_table(self) -> String {
        format!("stage_{}", self.table())
    }
}
