use super::*;
use serde_json::json;

fn member(user_id: &str, roles: &[&str], sourced: Option<&str>) -> Member {
    Member {
        user_id: user_id.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        active: true,
        lis_person_sourcedid: sourced.map(String::from),
    }
}

const LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";
const INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";

#[test]
fn a_membership_page_reads_with_absent_status_as_active_and_missing_pii_tolerated() {
    let page = read_page(&json!({
        "id": "https://lms.example/memberships",
        "context": {"id": "ctx-1", "title": "Math"},
        "members": [
            {"user_id": "u1", "roles": [LEARNER], "lis_person_sourcedid": "stu-1", "name": "A B"},
            {"user_id": "u2", "roles": ["Instructor"], "status": "Inactive"},
            {"user_id": "u3", "roles": [], "status": "Deleted", "lis_person_sourcedid": ""}
        ]
    }))
    .unwrap();
    assert_eq!(page.context_id.as_deref(), Some("ctx-1"));
    assert_eq!(page.members[0], member("u1", &[LEARNER], Some("stu-1")));
    assert!(!page.members[1].active && !page.members[2].active);
    assert_eq!(page.members[2].lis_person_sourcedid, None);
}

#[test]
fn unreadable_membership_pages_are_named_by_json_pointer() {
    let cases = [
        (json!([]), ""),
        (json!({"context": {"id": "c"}}), "/members"),
        (json!({"context": 3, "members": []}), "/context"),
        (json!({"context": {}, "members": []}), "/context/id"),
        (json!({"members": [3]}), "/members/0"),
        (json!({"members": [{"roles": []}]}), "/members/0/user_id"),
        (
            json!({"members": [{"user_id": "", "roles": []}]}),
            "/members/0/user_id",
        ),
        (
            json!({"members": [{"user_id": "x".repeat(256), "roles": []}]}),
            "/members/0/user_id",
        ),
        (json!({"members": [{"user_id": "u"}]}), "/members/0/roles"),
        (
            json!({"members": [{"user_id": "u", "roles": [1]}]}),
            "/members/0/roles/0",
        ),
        (
            json!({"members": [{"user_id": "u", "roles": [], "status": "Gone"}]}),
            "/members/0/status",
        ),
        (
            json!({"members": [{"user_id": "u", "roles": [], "lis_person_sourcedid": 7}]}),
            "/members/0/lis_person_sourcedid",
        ),
    ];
    for (body, pointer) in cases {
        assert_eq!(read_page(&body).unwrap_err().0, pointer, "{body}");
    }
}

#[test]
fn context_roles_map_to_enrollment_roles() {
    type Case<'a> = (&'a [&'a str], Option<(&'a str, Option<bool>)>);
    let cases: [Case; 5] = [
        (&[LEARNER], Some(("student", None))),
        (&[INSTRUCTOR], Some(("teacher", Some(true)))),
        (
            &["http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"],
            Some(("teacher", Some(false))),
        ),
        (
            &["http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"],
            None,
        ),
        (
            &["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"],
            None,
        ),
    ];
    for (roles, want) in cases {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        assert_eq!(enrollment_role(&roles), want, "{roles:?}");
    }
}

fn class() -> ClassRoster {
    ClassRoster {
        class: "cls-1".into(),
        school: Some("sch-1".into()),
        enrollments: vec![
            ("enr-sis-1".into(), "stu-1".into()),
            (enrollment_id(4, "cls-1", "stu-3"), "stu-3".into()),
            (enrollment_id(4, "cls-1", "stu-4"), "stu-4".into()),
        ],
    }
}

#[test]
fn members_enroll_only_where_the_roster_does_not_and_leavers_lose_only_the_gateways_enrollments() {
    let rostered: HashSet<String> = ["stu-1", "stu-2", "stu-3", "stu-4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut inactive = member("u4", &[LEARNER], Some("stu-4"));
    inactive.active = false;
    let members = vec![
        member("u1", &[LEARNER], Some("stu-1")), // enrolled by the SIS: left alone
        member("u2", &[LEARNER], Some("stu-2")), // missing: enrolled
        member("u3", &[LEARNER], Some("stu-3")), // enrolled by the gateway: kept
        inactive,                                // the gateway's: removed
        member("u5", &[LEARNER], None),          // LMS-only: a warning
        member("u6", &[LEARNER], Some("ghost")), // not rostered: a warning
        member("u2b", &[INSTRUCTOR], Some("stu-2")), // listed twice: one enrollment
    ];
    let mut problems = ProblemLog::new(10);
    let mapped = map_members(
        4,
        &members,
        Some(&class()),
        &rostered,
        ("GET /m", &mut problems),
    );
    let got: Vec<(String, RecordStatus)> = mapped
        .records
        .iter()
        .map(|r| (r.sourced_id.clone(), r.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (enrollment_id(4, "cls-1", "stu-2"), RecordStatus::Active),
            (enrollment_id(4, "cls-1", "stu-3"), RecordStatus::Active),
            (
                enrollment_id(4, "cls-1", "stu-4"),
                RecordStatus::ToBeDeleted
            ),
        ]
    );
    let stu2 = &mapped.records[0];
    assert_eq!(stu2.values[0], Field::Text("cls-1".into()));
    assert_eq!(stu2.values[1], Field::Text("sch-1".into()));
    assert_eq!(stu2.values[2], Field::Text("stu-2".into()));
    assert_eq!(stu2.values[3], Field::Text("student".into()));
    assert_eq!(
        mapped.links.len(),
        5,
        "every rostered member is linked: {:?}",
        mapped.links
    );
    let (_, warnings) = problems.into_parts();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

#[test]
fn a_context_with_no_rostered_class_only_links_its_members() {
    let rostered: HashSet<String> = ["stu-1".to_string()].into();
    let mut problems = ProblemLog::new(10);
    let mapped = map_members(
        4,
        &[member("u1", &[LEARNER], Some("stu-1"))],
        None,
        &rostered,
        ("GET /m", &mut problems),
    );
    assert!(mapped.records.is_empty());
    assert_eq!(mapped.links, vec![("u1".to_string(), "stu-1".to_string())]);
}
