//! Accounts: the person in the learning platform behind a rostered user, and the rules that
//! decide, for a user entering a district's roster, whether an account is provisioned or an
//! existing grassroots account is linked (identity matching).

use serde::{Deserialize, Serialize};

/// Whether a district's roster manages the account or nobody does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// Linked to a user of a district's roster.
    District,
    /// Someone signed up on their own; no district owns it.
    Grassroots,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::District => "district",
            AccountState::Grassroots => "grassroots",
        }
    }
    pub fn parse(raw: &str) -> Option<AccountState> {
        [AccountState::District, AccountState::Grassroots]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// Matching never crosses role families: a student account is never a teacher's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleFamily {
    Student,
    Staff,
}

impl RoleFamily {
    pub const ALL: [RoleFamily; 2] = [RoleFamily::Student, RoleFamily::Staff];

    pub fn as_str(self) -> &'static str {
        match self {
            RoleFamily::Student => "student",
            RoleFamily::Staff => "staff",
        }
    }
    pub fn parse(raw: &str) -> Option<RoleFamily> {
        RoleFamily::ALL.into_iter().find(|f| f.as_str() == raw)
    }
}

/// OneRoster roles (1.1 `role`, 1.2 `roles[].role`) whose users get a staff account.
pub const STAFF_ROLES: [&str; 10] = [
    "teacher",
    "aide",
    "administrator",
    "proctor",
    "counselor",
    "principal",
    "siteadministrator",
    "districtadministrator",
    "systemadministrator",
    "co-teacher",
];
/// The OneRoster role whose users get a student account.
pub const STUDENT_ROLE: &str = "student";

/// The role family of a OneRoster role, compared without case. Guardians, parents, relatives
/// and extension roles (`ext:…`) are not provisioned: `None`.
pub fn role_family(role: &str) -> Option<RoleFamily> {
    let role = role.trim().to_ascii_lowercase();
    if role == STUDENT_ROLE {
        Some(RoleFamily::Student)
    } else if STAFF_ROLES.contains(&role.as_str()) {
        Some(RoleFamily::Staff)
    } else {
        None
    }
}

/// What matching compares: the address trimmed and lower-cased. Empty is no address.
pub fn normalize_email(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_lowercase())
}

/// Where a user stands in a district's roster, as admins see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RosterStatus {
    Rostered,
    #[serde(rename = "No Longer Rostered")]
    NoLongerRostered,
}

impl RosterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RosterStatus::Rostered => "Rostered",
            RosterStatus::NoLongerRostered => "No Longer Rostered",
        }
    }
}

/// A key identity matching tries, in the order a district lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKey {
    /// The account already linked to the same sourcedId in this district (a user who left and
    /// comes back). Links are never deleted, so this key always holds once a link exists.
    SisId,
    /// Grassroots accounts of the same role family with the same normalized e-mail.
    Email,
}

/// The keys a district matches on unless it says otherwise.
pub fn default_identity_keys() -> Vec<IdentityKey> {
    vec![IdentityKey::SisId, IdentityKey::Email]
}

/// How an account came to be linked to a district user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    New,
    SisId,
    Email,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::New => "new",
            MatchedBy::SisId => "sis_id",
            MatchedBy::Email => "email",
        }
    }
}

/// What provisioning does for one user entering a roster with no link yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No candidate: a new district account.
    ProvisionNew,
    /// Exactly one candidate, claimed by no other user of the run: link it.
    Link,
    /// Several candidates (or one several users claim): a new account, and the run reports it.
    NewAmbiguous,
}

/// The decision table. `candidates` counts grassroots accounts matching the user; `claimants`
/// counts the users of the same run whose only candidate is that same account (auto-linking
/// only on an exact, unique match: two users never share one account).
pub fn decide(candidates: u64, claimants: u64) -> Decision {
    match (candidates, claimants) {
        (0, _) => Decision::ProvisionNew,
        (1, 0..=1) => Decision::Link,
        _ => Decision::NewAmbiguous,
    }
}

/// The run report's warning about an ambiguous match: the user's sourcedId and how many
/// accounts or users were involved, never an address or a name (student data).
pub fn ambiguity_message(user_sourced_id: &str, candidates: u64, claimants: u64) -> String {
    if candidates > 1 {
        format!(
            "user {user_sourced_id:?} matches {candidates} grassroots accounts by e-mail: a new account was provisioned instead of linking one"
        )
    } else {
        format!(
            "user {user_sourced_id:?} and {} other users of this roster match the same grassroots account by e-mail: a new account was provisioned instead of linking it",
            claimants.saturating_sub(1)
        )
    }
}

/// A grassroots sign-up, as the learning platform sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrassroots {
    pub email: String,
    pub email_normalized: String,
    pub given_name: String,
    pub family_name: String,
    pub role_family: RoleFamily,
}

/// A field of a grassroots sign-up that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub message: String,
}

const MAX_NAME_CHARS: usize = 200;
const MAX_EMAIL_CHARS: usize = 320;

impl NewGrassroots {
    /// Checks every field, reporting each bad one.
    pub fn parse(
        email: &str,
        given_name: &str,
        family_name: &str,
        role_family: &str,
    ) -> Result<NewGrassroots, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let email_normalized = normalize_email(email);
        let email_ok = email_normalized.as_deref().is_some_and(|e| {
            e.chars().count() <= MAX_EMAIL_CHARS
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                && e.split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        });
        if !email_ok {
            problems.push(FieldProblem {
                field: "email",
                message: "must be an e-mail address (name@domain)".into(),
            });
        }
        for (field, value) in [("given_name", given_name), ("family_name", family_name)] {
            let v = value.trim();
            if v.is_empty() || v.chars().count() > MAX_NAME_CHARS || v.chars().any(char::is_control)
            {
                problems.push(FieldProblem {
                    field,
                    message: format!("must be 1-{MAX_NAME_CHARS} characters"),
                });
            }
        }
        let family = RoleFamily::parse(role_family);
        if family.is_none() {
            problems.push(FieldProblem {
                field: "role_family",
                message: "must be \"student\" or \"staff\"".into(),
            });
        }
        match (email_normalized, family) {
            (Some(email_normalized), Some(role_family)) if problems.is_empty() => {
                Ok(NewGrassroots {
                    email: email.trim().to_string(),
                    email_normalized,
                    given_name: given_name.trim().to_string(),
                    family_name: family_name.trim().to_string(),
                    role_family,
                })
            }
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneroster_roles_map_to_a_role_family_or_to_no_account() {
        let cases = [
            ("student", Some(RoleFamily::Student)),
            ("Student", Some(RoleFamily::Student)),
            ("teacher", Some(RoleFamily::Staff)),
            ("aide", Some(RoleFamily::Staff)),
            ("administrator", Some(RoleFamily::Staff)),
            ("districtAdministrator", Some(RoleFamily::Staff)),
            ("siteAdministrator", Some(RoleFamily::Staff)),
            ("principal", Some(RoleFamily::Staff)),
            ("guardian", None),
            ("parent", None),
            ("relative", None),
            ("ext:coach", None),
            ("", None),
        ];
        for (role, want) in cases {
            assert_eq!(role_family(role), want, "{role:?}");
        }
    }

    #[test]
    fn emails_are_matched_trimmed_and_lower_cased() {
        let cases = [
            ("Sam@Example.org", Some("sam@example.org")),
            ("  sam@example.org \t", Some("sam@example.org")),
            ("", None),
            ("   ", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_email(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn one_unclaimed_candidate_links_and_anything_else_provisions() {
        // (candidates, claimants) → decision
        let cases = [
            (0, 0, Decision::ProvisionNew),
            (0, 3, Decision::ProvisionNew),
            (1, 1, Decision::Link),
            (1, 0, Decision::Link),
            (1, 2, Decision::NewAmbiguous),
            (2, 0, Decision::NewAmbiguous),
            (2, 1, Decision::NewAmbiguous),
            (7, 1, Decision::NewAmbiguous),
        ];
        for (candidates, claimants, want) in cases {
            assert_eq!(
                decide(candidates, claimants),
                want,
                "{candidates} candidates, {claimants} claimants"
            );
        }
    }

    #[test]
    fn ambiguity_warnings_name_the_user_and_counts_only() {
        let several = ambiguity_message("stu-9", 2, 1);
        assert!(several.contains("\"stu-9\"") && several.contains("2 grassroots"));
        let shared = ambiguity_message("stu-9", 1, 3);
        assert!(shared.contains("2 other users"));
        assert!(!several.contains('@') && !shared.contains('@'));
    }

    #[test]
    fn grassroots_sign_ups_report_every_bad_field() {
        let ok = NewGrassroots::parse(" Ann@Example.org ", "Ann", "Lee", "student").unwrap();
        assert_eq!(ok.email_normalized, "ann@example.org");
        assert_eq!(ok.email, "Ann@Example.org");
        assert_eq!(ok.role_family, RoleFamily::Student);
        let cases: [(&str, &str, &str, &str, &[&str]); 5] = [
            ("ann", "Ann", "Lee", "staff", &["email"]),
            ("@x", "Ann", "Lee", "staff", &["email"]),
            ("a b@x", "Ann", "Lee", "staff", &["email"]),
            (
                "ann@x",
                " ",
                "Lee",
                "guardian",
                &["given_name", "role_family"],
            ),
            (
                "",
                "",
                "",
                "",
                &["email", "given_name", "family_name", "role_family"],
            ),
        ];
        for (email, given, family, role, want) in cases {
            let fields: Vec<&str> = NewGrassroots::parse(email, given, family, role)
                .unwrap_err()
                .iter()
                .map(|p| p.field)
                .collect();
            assert_eq!(fields, want, "{email:?} {given:?} {family:?} {role:?}");
        }
    }
}
