//! What a token may do.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Scope {
    #[serde(rename = "roster:read")]
    RosterRead,
    #[serde(rename = "roster:write")]
    RosterWrite,
    /// Push assessment results (`POST …/scores`); implies nothing else.
    #[serde(rename = "scores:write")]
    ScoresWrite,
    /// Set and clear teachers' placement overrides (the platform acting for a teacher, whom
    /// the gateway checks coaches the student); implies nothing else.
    #[serde(rename = "plans:write")]
    PlansWrite,
    #[serde(rename = "admin")]
    Admin,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown scope {0:?} (known: roster:read, roster:write, scores:write, plans:write, admin)")]
pub struct UnknownScope(pub String);

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::RosterRead,
        Scope::RosterWrite,
        Scope::ScoresWrite,
        Scope::PlansWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RosterRead => "roster:read",
            Scope::RosterWrite => "roster:write",
            Scope::ScoresWrite => "scores:write",
            Scope::PlansWrite => "plans:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Scope, UnknownScope> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| UnknownScope(raw.to_string()))
    }

    /// Parses a space- or comma-separated list, as OAuth clients send it.
    pub fn parse_list(raw: &str) -> Result<Vec<Scope>, UnknownScope> {
        let mut scopes = raw
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        scopes.sort();
        scopes.dedup();
        Ok(scopes)
    }

    /// `admin` includes everything a district administrator can do.
    pub fn satisfied_by(self, granted: &[Scope]) -> bool {
        granted.contains(&self) || granted.contains(&Scope::Admin)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn join(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_accept_spaces_and_commas_and_reject_unknown_scopes() {
        assert_eq!(
            Scope::parse_list("roster:read,admin roster:read").unwrap(),
            vec![Scope::RosterRead, Scope::Admin]
        );
        assert_eq!(
            Scope::parse_list("roster:delete"),
            Err(UnknownScope("roster:delete".into()))
        );
        assert!(Scope::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn admin_implies_every_other_scope() {
        for scope in Scope::ALL {
            assert!(scope.satisfied_by(&[Scope::Admin]), "{scope}");
        }
        assert!(!Scope::RosterWrite.satisfied_by(&[Scope::RosterRead]));
        assert!(!Scope::Admin.satisfied_by(&[
            Scope::RosterRead,
            Scope::RosterWrite,
            Scope::ScoresWrite
        ]));
    }

    #[test]
    fn pushing_scores_is_neither_implied_by_nor_implies_a_roster_scope() {
        assert!(!Scope::ScoresWrite.satisfied_by(&[Scope::RosterRead, Scope::RosterWrite]));
        assert!(!Scope::RosterWrite.satisfied_by(&[Scope::ScoresWrite]));
        assert!(!Scope::RosterRead.satisfied_by(&[Scope::ScoresWrite]));
        assert_eq!(
            Scope::parse_list("scores:write admin").unwrap(),
            vec![Scope::ScoresWrite, Scope::Admin]
        );
    }
}
