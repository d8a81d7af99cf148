//! The CSV columns of each OneRoster file, version by version (oneroster.md §9.5, §9.6), and
//! where each lands in the gateway's records.

use crate::domain::records::RecordKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1_1,
    V1_2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    SourcedId,
    Status,
    DateLastModified,
    /// A column of the record descriptor.
    Column(&'static str),
    /// Read and dropped on purpose (passwords are never stored).
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    No,
    Always,
    InV1_1,
    InV1_2,
}

#[derive(Debug, Clone, Copy)]
pub struct CsvColumn {
    pub header: &'static str,
    pub target: Target,
    pub required: Required,
    /// Allowed values, matched case-insensitively.
    pub values: Option<&'static [&'static str]>,
    /// A required column whose value may still be blank (with a warning).
    pub blank_ok: bool,
}

impl CsvColumn {
    /// Where this column's value goes among a `kind` record's values, if it has a place there.
    pub fn place(&self, kind: RecordKind) -> Option<usize> {
        match self.target {
            Target::Column(name) => kind.column_index(name),
            _ => None,
        }
    }

    pub fn is_required(&self, version: Version) -> bool {
        match self.required {
            Required::No => false,
            Required::Always => true,
            Required::InV1_1 => version == Version::V1_1,
            Required::InV1_2 => version == Version::V1_2,
        }
    }
}

const fn col(header: &'static str, target: &'static str) -> CsvColumn {
    CsvColumn {
        header,
        target: Target::Column(target),
        required: Required::No,
        values: None,
        blank_ok: false,
    }
}
const fn req(header: &'static str, target: &'static str) -> CsvColumn {
    CsvColumn {
        header,
        target: Target::Column(target),
        required: Required::Always,
        values: None,
        blank_ok: false,
    }
}
/// Required, but real exports leave it blank (names, titles): a warning, not an error.
const fn req_text(header: &'static str, target: &'static str) -> CsvColumn {
    CsvColumn {
        header,
        target: Target::Column(target),
        required: Required::Always,
        values: None,
        blank_ok: true,
    }
}
const fn req_in(header: &'static str, target: &'static str, required: Required) -> CsvColumn {
    CsvColumn {
        header,
        target: Target::Column(target),
        required,
        values: None,
        blank_ok: false,
    }
}
const fn one_of(mut c: CsvColumn, values: &'static [&'static str]) -> CsvColumn {
    c.values = Some(values);
    c
}

const BASE: [CsvColumn; 3] = [
    CsvColumn {
        header: "sourcedId",
        target: Target::SourcedId,
        required: Required::Always,
        values: None,
        blank_ok: false,
    },
    CsvColumn {
        header: "status",
        target: Target::Status,
        required: Required::No,
        values: None,
        blank_ok: false,
    },
    CsvColumn {
        header: "dateLastModified",
        target: Target::DateLastModified,
        required: Required::No,
        values: None,
        blank_ok: false,
    },
];

pub const ORG_TYPES: &[&str] = &[
    "department",
    "district",
    "local",
    "national",
    "school",
    "state",
];
pub const SESSION_TYPES: &[&str] = &["gradingPeriod", "semester", "schoolYear", "term"];
pub const CLASS_TYPES: &[&str] = &["homeroom", "scheduled"];
pub const ROLES_1_1: &[&str] = &[
    "administrator",
    "aide",
    "guardian",
    "parent",
    "proctor",
    "relative",
    "student",
    "teacher",
];
pub const ROLE_TYPES: &[&str] = &["primary", "secondary"];
pub const ROLES_1_2: &[&str] = &[
    "aide",
    "counselor",
    "districtAdministrator",
    "guardian",
    "parent",
    "principal",
    "proctor",
    "relative",
    "siteAdministrator",
    "student",
    "systemAdministrator",
    "teacher",
];

const ORGS: &[CsvColumn] = &[
    req_text("name", "name"),
    one_of(req("type", "org_type"), ORG_TYPES),
    col("identifier", "identifier"),
    col("parentSourcedId", "parent_sourced_id"),
];
const ACADEMIC_SESSIONS: &[CsvColumn] = &[
    req_text("title", "title"),
    one_of(req("type", "session_type"), SESSION_TYPES),
    req("startDate", "start_date"),
    req("endDate", "end_date"),
    col("parentSourcedId", "parent_sourced_id"),
    req("schoolYear", "school_year"),
];
const COURSES: &[CsvColumn] = &[
    col("schoolYearSourcedId", "school_year_sourced_id"),
    req_text("title", "title"),
    col("courseCode", "course_code"),
    col("grades", "grades"),
    req("orgSourcedId", "org_sourced_id"),
    col("subjects", "subjects"),
    col("subjectCodes", "subject_codes"),
];
const CLASSES: &[CsvColumn] = &[
    req_text("title", "title"),
    col("grades", "grades"),
    req("courseSourcedId", "course_sourced_id"),
    col("classCode", "class_code"),
    one_of(req("classType", "class_type"), CLASS_TYPES),
    col("location", "location"),
    req("schoolSourcedId", "school_sourced_id"),
    req("termSourcedIds", "term_sourced_ids"),
    col("subjects", "subjects"),
    col("subjectCodes", "subject_codes"),
    col("periods", "periods"),
];
const USERS: &[CsvColumn] = &[
    req("enabledUser", "enabled_user"),
    req_in("orgSourcedIds", "org_sourced_ids", Required::InV1_1),
    one_of(req_in("role", "role", Required::InV1_1), ROLES_1_1),
    req_text("username", "username"),
    col("userIds", "user_ids"),
    req_text("givenName", "given_name"),
    req_text("familyName", "family_name"),
    col("middleName", "middle_name"),
    col("identifier", "identifier"),
    col("email", "email"),
    col("sms", "sms"),
    col("phone", "phone"),
    col("agentSourcedIds", "agent_sourced_ids"),
    col("grades", "grades"),
    CsvColumn {
        header: "password",
        target: Target::Dropped,
        required: Required::No,
        values: None,
        blank_ok: true,
    },
    col("userMasterIdentifier", "user_master_identifier"),
    col("preferredGivenName", "preferred_given_name"),
    col("preferredMiddleName", "preferred_middle_name"),
    col("preferredFamilyName", "preferred_family_name"),
    col("primaryOrgSourcedId", "primary_org_sourced_id"),
    col("pronouns", "pronouns"),
    CsvColumn {
        header: "resourceSourcedIds",
        target: Target::Dropped,
        required: Required::No,
        values: None,
        blank_ok: true,
    },
];
const USER_PROFILES: &[CsvColumn] = &[
    req("userSourcedId", "user_sourced_id"),
    req_text("profileType", "profile_type"),
    req_text("vendorId", "vendor_id"),
    col("applicationId", "application_id"),
    col("description", "description"),
    req_text("credentialType", "credential_type"),
    req_text("username", "username"),
    CsvColumn {
        header: "password",
        target: Target::Dropped,
        required: Required::No,
        values: None,
        blank_ok: true,
    },
];
const ROLES: &[CsvColumn] = &[
    req("userSourcedId", "user_sourced_id"),
    one_of(req("roleType", "role_type"), ROLE_TYPES),
    one_of(req("role", "role"), ROLES_1_2),
    col("beginDate", "begin_date"),
    col("endDate", "end_date"),
    req("orgSourcedId", "org_sourced_id"),
    col("userProfileSourcedId", "user_profile_sourced_id"),
];
const ENROLLMENTS: &[CsvColumn] = &[
    req("classSourcedId", "class_sourced_id"),
    req("schoolSourcedId", "school_sourced_id"),
    req("userSourcedId", "user_sourced_id"),
    one_of(req("role", "role"), ROLES_1_1),
    col("primary", "is_primary"),
    col("beginDate", "begin_date"),
    col("endDate", "end_date"),
];

/// Every column a file of this kind may have, base columns first.
pub fn columns(kind: RecordKind) -> Vec<CsvColumn> {
    let specific = match kind {
        RecordKind::Orgs => ORGS,
        RecordKind::AcademicSessions => ACADEMIC_SESSIONS,
        RecordKind::Courses => COURSES,
        RecordKind::Classes => CLASSES,
        RecordKind::Users => USERS,
        RecordKind::UserProfiles => USER_PROFILES,
        RecordKind::Roles => ROLES,
        RecordKind::Enrollments => ENROLLMENTS,
    };
    BASE.iter().chain(specific).copied().collect()
}

/// Legacy (1.0) names and common misspellings, mapped to the header they stand for.
pub const ALIASES: &[(&str, &str)] = &[
    ("schoolYearId", "schoolYearSourcedId"),
    ("grade", "grades"),
    ("userId", "userIds"),
    ("agents", "agentSourcedIds"),
    ("dataLastModified", "dateLastModified"),
    ("prefferedGivenName", "preferredGivenName"),
    ("prefferedMiddleName", "preferredMiddleName"),
    ("prefferedFamilyName", "preferredFamilyName"),
    ("preferredFirstName", "preferredGivenName"),
    ("preferredLastName", "preferredFamilyName"),
];

/// OneRoster files this importer reads nothing from, with the reason given in the warning.
pub const NOT_IMPORTED: &[(&str, &str)] = &[
    ("demographics", "the gateway keeps no demographics"),
    (
        "categories",
        "gradebook files are not part of roster imports",
    ),
    (
        "lineItems",
        "gradebook files are not part of roster imports",
    ),
    ("results", "gradebook files are not part of roster imports"),
    (
        "scoreScales",
        "gradebook files are not part of roster imports",
    ),
    (
        "lineItemScoreScales",
        "gradebook files are not part of roster imports",
    ),
    (
        "resultScoreScales",
        "gradebook files are not part of roster imports",
    ),
    (
        "lineItemLearningObjectiveIds",
        "gradebook files are not part of roster imports",
    ),
    (
        "resultLearningObjectiveIds",
        "gradebook files are not part of roster imports",
    ),
    ("resources", "resource files are not part of roster imports"),
    (
        "classResources",
        "resource files are not part of roster imports",
    ),
    (
        "courseResources",
        "resource files are not part of roster imports",
    ),
    (
        "userResources",
        "resource files are not part of roster imports",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_column_exists_in_the_record_descriptor_and_every_descriptor_column_is_fed() {
        for kind in RecordKind::ALL {
            let csv = columns(kind);
            for c in &csv {
                if let Target::Column(name) = c.target {
                    assert!(kind.column_index(name).is_some(), "{kind:?}: {name}");
                }
            }
            for c in kind.columns() {
                assert!(
                    csv.iter().any(|x| x.target == Target::Column(c.name)),
                    "{kind:?}.{} has no CSV column",
                    c.name
                );
            }
        }
    }
}
