//! LTI Names and Role Provisioning Services 2.0 (reference §10): a membership container page
//! read (every problem named by its JSON pointer), and what a course's members come to as roster
//! records: links for rostered members, class enrollments the roster lacks, removals of the
//! gateway's own enrollments of members who left, and warnings for members with no rostered
//! account (never provisioned). Fetching and syncing is `lti::memberships`.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::domain::problem::{Location, Problem, ProblemLog};
use crate::domain::records::{RecordKind, RecordStatus, SourceRecord, Value as Field};
use crate::lti::validate::{map_roles, LaunchRole};

pub const MEMBERSHIP_MEDIA_TYPE: &str = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json";
/// The longest enrollment sourcedId made; a longer one is skipped with a warning.
const MAX_SOURCED_ID_CHARS: usize = 255;

/// One member as a membership container lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub roles: Vec<String>,
    pub active: bool,
    pub lis_person_sourcedid: Option<String>,
}

/// What one page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipPage {
    pub context_id: Option<String>,
    pub members: Vec<Member>,
}

/// Reads one membership container page; a problem is named by its JSON pointer.
pub fn read_page(body: &Value) -> Result<MembershipPage, (String, String)> {
    let object = body.as_object().ok_or_else(|| {
        (
            String::new(),
            "must be a membership container object".to_string(),
        )
    })?;
    let context_id = match object.get("context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(context)) => match context.get("id") {
            Some(Value::String(id)) => Some(id.clone()),
            _ => return Err(("/context/id".into(), "is required (a string)".into())),
        },
        Some(_) => return Err(("/context".into(), "must be an object".into())),
    };
    let members = match object.get("members") {
        Some(Value::Array(members)) => members,
        _ => return Err(("/members".into(), "is required (an array)".into())),
    };
    let members = members
        .iter()
        .enumerate()
        .map(|(i, member)| read_member(member, &format!("/members/{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MembershipPage {
        context_id,
        members,
    })
}

fn read_member(value: &Value, at: &str) -> Result<Member, (String, String)> {
    let object = value
        .as_object()
        .ok_or_else(|| (at.to_string(), "must be a member object".to_string()))?;
    let user_id = match object.get("user_id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 255 => id.clone(),
        Some(Value::String(_)) => {
            return Err((
                format!("{at}/user_id"),
                "must be 1 to 255 characters".into(),
            ))
        }
        _ => return Err((format!("{at}/user_id"), "is required (a string)".into())),
    };
    let roles = match object.get("roles") {
        Some(Value::Array(roles)) => roles
            .iter()
            .enumerate()
            .map(|(i, role)| {
                role.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| (format!("{at}/roles/{i}"), "must be a string".to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err((format!("{at}/roles"), "is required (an array)".into())),
    };
    // Absent means Active (NRPS §2.2); Deleted appears in difference feeds.
    let active = match object.get("status") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) if s == "Active" => true,
        Some(Value::String(s)) if s == "Inactive" || s == "Deleted" => false,
        Some(_) => {
            return Err((
                format!("{at}/status"),
                "must be Active, Inactive or Deleted".into(),
            ))
        }
    };
    let lis_person_sourcedid = match object.get("lis_person_sourcedid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if s.len() <= 255 => Some(s.clone()),
        Some(_) => {
            return Err((
                format!("{at}/lis_person_sourcedid"),
                "must be a string of at most 255 characters".into(),
            ))
        }
    };
    Ok(Member {
        user_id,
        roles,
        active,
        lis_person_sourcedid,
    })
}

/// The OneRoster role of a class enrollment for an LTI context role; `None` grants none.
pub fn enrollment_role(roles: &[String]) -> Option<(&'static str, Option<bool>)> {
    match map_roles(roles).0 {
        LaunchRole::Teacher => Some(("teacher", Some(true))),
        LaunchRole::CoTeacher => Some(("teacher", Some(false))),
        LaunchRole::Student => Some(("student", None)),
        LaunchRole::Administrator => Some(("administrator", None)),
        _ => None,
    }
}

/// A class as the mapping needs it: its school, and who the roster enrolls in it.
#[derive(Debug, Clone, Default)]
pub struct ClassRoster {
    pub class: String,
    pub school: Option<String>,
    /// Live enrollments: (sourcedId, user).
    pub enrollments: Vec<(String, String)>,
}

/// What one context's members come to.
#[derive(Debug, Default)]
pub struct Mapped {
    pub records: Vec<SourceRecord>,
    /// (sub, rostered user) to link.
    pub links: Vec<(String, String)>,
}

/// The enrollment sourcedId the gateway makes for a member of a class.
pub fn enrollment_id(platform_id: i64, class: &str, user: &str) -> String {
    format!("nrps:{platform_id}:{class}:{user}")
}

/// Maps one context's members: links for rostered members, enrollments for those the roster
/// lacks in `class`, removals for the gateway's own enrollments of members who left, warnings
/// for the rest. `rostered` tells whether a sourcedId is a live user of the district.
pub fn map_members(
    platform_id: i64,
    members: &[Member],
    class: Option<&ClassRoster>,
    rostered: &HashSet<String>,
    (endpoint, problems): (&str, &mut ProblemLog),
) -> Mapped {
    let mut mapped = Mapped::default();
    let prefix = class.map(|c| format!("nrps:{platform_id}:{}:", c.class));
    let mut kept: HashSet<String> = HashSet::new();
    // One record per sourcedId: a platform listing a person twice (two roles) enrolls them once.
    let mut records: BTreeMap<String, SourceRecord> = BTreeMap::new();
    for (offset, member) in members.iter().enumerate() {
        let at = Location::record(endpoint, Some(offset as u64), Some(&member.user_id));
        let user = member
            .lis_person_sourcedid
            .as_ref()
            .filter(|id| rostered.contains(*id));
        let Some(user) = user else {
            let message = match &member.lis_person_sourcedid {
                None => {
                    "the member has no lis_person_sourcedid: no rostered account, not provisioned"
                }
                Some(_) => {
                    "the member's lis_person_sourcedid is not a rostered user: not provisioned"
                }
            };
            problems.warn(Problem::at(at, Some("lis_person_sourcedid"), message));
            continue;
        };
        mapped.links.push((member.user_id.clone(), user.clone()));
        let (Some(class), Some(prefix)) = (class, &prefix) else {
            continue;
        };
        if !member.active {
            continue;
        }
        let Some((role, primary)) = enrollment_role(&member.roles) else {
            problems.warn(Problem::at(
                at,
                Some("roles"),
                "no context role the roster enrolls (Learner, Instructor, Administrator)",
            ));
            continue;
        };
        let rostered_here = class
            .enrollments
            .iter()
            .any(|(id, u)| u == user && !id.starts_with(prefix.as_str()));
        if rostered_here {
            continue;
        }
        let id = format!("{prefix}{user}");
        if id.chars().count() > MAX_SOURCED_ID_CHARS {
            problems.warn(Problem::at(
                at,
                Some("lis_person_sourcedid"),
                "the enrollment's sourcedId would be too long: not provisioned",
            ));
            continue;
        }
        kept.insert(id.clone());
        records.entry(id.clone()).or_insert_with(|| {
            enrollment(
                &id,
                class,
                user,
                (role, primary),
                offset as u64,
                RecordStatus::Active,
            )
        });
    }
    if let (Some(class), Some(prefix)) = (class, &prefix) {
        for (id, user) in &class.enrollments {
            if id.starts_with(prefix.as_str()) && !kept.contains(id) {
                records.insert(
                    id.clone(),
                    enrollment(
                        id,
                        class,
                        user,
                        ("student", None),
                        0,
                        RecordStatus::ToBeDeleted,
                    ),
                );
            }
        }
    }
    mapped.records = records.into_values().collect();
    mapped
}

fn enrollment(
    id: &str,
    class: &ClassRoster,
    user: &str,
    (role, primary): (&str, Option<bool>),
    line: u64,
    status: RecordStatus,
) -> SourceRecord {
    let text = |s: &str| Field::Text(s.to_string());
    SourceRecord {
        kind: RecordKind::Enrollments,
        sourced_id: id.to_string(),
        line,
        status,
        values: vec![
            text(&class.class),
            class.school.as_deref().map(text).unwrap_or(Field::Null),
            text(user),
            text(role),
            primary.map(Field::Bool).unwrap_or(Field::Null),
            Field::Null,
            Field::Null,
        ],
        extra: None,
    }
}

#[cfg(test)]
mod tests;
