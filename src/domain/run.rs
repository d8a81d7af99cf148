//! A sync run as data: its plan (which kinds, bulk or delta) and its report (what it did or
//! would do, and what was wrong with its input). Shared by the engine, the store and every edge.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::problem::{Location, Problem, Warning};
use crate::domain::records::{Mode, RecordKind};
use crate::domain::thresholds::KindCounts;

/// What a source's records are read from: a file (each record has a line) or a collection
/// endpoint (each record has an offset in the collection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    #[default]
    File,
    Endpoint,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedKind {
    pub kind: RecordKind,
    pub mode: Mode,
    /// Where this kind's records come from (a file name, or `GET /users`), for messages.
    pub label: String,
    #[serde(default)]
    pub origin: Origin,
    /// The SHA-256 of this kind's whole input (a CSV file's bytes), when the source knows it
    /// before reading: what decides whether the kind can be carried over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The district already holds this kind exactly as this input would leave it (the last run
    /// that changed the kind applied it in bulk from the same digest): the source sends none of
    /// its records, and the engine reads it as a delta with nothing in it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub carried: bool,
    /// How many of this bulk kind's records the engine found exactly as the district holds them
    /// while reading, and did not stage. Set, the file's absences were staged as removals, so the
    /// kind is compared and applied as a delta of what changed (see `compare_mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unstaged_unchanged: Option<u64>,
}

impl PlannedKind {
    /// How the engine compares this kind with the live rows: as planned, except that a bulk kind
    /// whose unchanged records were left unstaged carries its removals explicitly, as a delta.
    pub fn compare_mode(&self) -> Mode {
        match self.unstaged_unchanged {
            Some(_) => Mode::Delta,
            None => self.mode,
        }
    }

    /// Where a record of this kind is, from what the engine keeps of it: its line in a file,
    /// or its offset in a collection (a source from endpoints numbers its records that way).
    pub fn locate(&self, line: u64, sourced_id: Option<&str>) -> Location {
        match self.origin {
            Origin::File => Location::File {
                file: self.label.clone(),
                line: Some(line),
            },
            Origin::Endpoint => Location::record(&self.label, Some(line), sourced_id),
        }
    }

    /// A reference field as this kind's source names it: the CSV column (`userSourcedId`), or
    /// the JSON member of a collection endpoint (`user`; `orgSourcedIds` → `orgs`).
    pub fn field(&self, csv_name: &str) -> String {
        match self.origin {
            Origin::File => csv_name.to_string(),
            Origin::Endpoint => {
                if let Some(stem) = csv_name.strip_suffix("SourcedIds") {
                    format!("{stem}s")
                } else if let Some(stem) = csv_name.strip_suffix("SourcedId") {
                    stem.to_string()
                } else {
                    csv_name.to_string()
                }
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    pub kinds: Vec<PlannedKind>,
}

impl Plan {
    pub fn mode(&self, kind: RecordKind) -> Option<Mode> {
        self.kinds.iter().find(|p| p.kind == kind).map(|p| p.mode)
    }
    /// How the engine compares `kind`, if planned (see [`PlannedKind::compare_mode`]).
    pub fn compare_mode(&self, kind: RecordKind) -> Option<Mode> {
        self.planned(kind).map(PlannedKind::compare_mode)
    }
    pub fn planned(&self, kind: RecordKind) -> Option<&PlannedKind> {
        self.kinds.iter().find(|p| p.kind == kind)
    }
    /// Carries over every bulk kind whose input has the digest its live rows were applied from,
    /// in dependency order, when every other kind it refers to is carried too or not in the plan
    /// (a kind that changed may have removed what a carried row refers to). `digest` is asked
    /// only for a kind that could be carried and has none yet. Returns the kinds carried over.
    pub fn carry_unchanged(
        &mut self,
        applied: &HashMap<RecordKind, String>,
        mut digest: impl FnMut(&PlannedKind) -> Option<String>,
    ) -> Vec<RecordKind> {
        let mut carried = Vec::new();
        for i in 0..self.kinds.len() {
            let planned = &self.kinds[i];
            let Some(before) = applied.get(&planned.kind) else {
                continue;
            };
            let references_hold = planned
                .kind
                .columns()
                .iter()
                .filter_map(|c| c.references)
                .filter(|&target| target != planned.kind)
                .all(|target| self.planned(target).is_none_or(|t| t.carried));
            if planned.mode != Mode::Bulk || !references_hold {
                continue;
            }
            if planned.digest.is_none() {
                let computed = digest(planned);
                self.kinds[i].digest = computed;
            }
            let planned = &mut self.kinds[i];
            if planned.digest.as_ref() == Some(before) {
                planned.carried = true;
                planned.mode = Mode::Delta;
                carried.push(planned.kind);
            }
        }
        carried
    }

    pub fn label(&self, kind: RecordKind) -> String {
        self.kinds
            .iter()
            .find(|p| p.kind == kind)
            .map(|p| p.label.clone())
            .unwrap_or_else(|| kind.oneroster_name().to_string())
    }
}

/// Where a pull leaves its connection: moved when, and only when, the run is applied (at once
/// or after approval), in the transaction that applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorMove {
    /// The connection's name in the run's district.
    pub connection: String,
    /// The next delta pull asks for records modified after this (less an overlap): the newest
    /// `dateLastModified` the source returned. `None` leaves the cursor where it was.
    pub cursor: Option<DateTime<Utc>>,
    /// A full pull: it also records when the connection was last reconciled.
    pub full: bool,
    /// The source pulled from (`version base_url`): a connection pointed at another source
    /// while the run waited is not moved by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Applied,
    Held,
    Failed,
    DryRun,
    Discarded,
    Superseded,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Applied => "applied",
            RunStatus::Held => "held",
            RunStatus::Failed => "failed",
            RunStatus::DryRun => "dry_run",
            RunStatus::Discarded => "discarded",
            RunStatus::Superseded => "superseded",
        }
    }

    pub fn parse(raw: &str) -> Option<RunStatus> {
        [
            RunStatus::Running,
            RunStatus::Applied,
            RunStatus::Held,
            RunStatus::Failed,
            RunStatus::DryRun,
            RunStatus::Discarded,
            RunStatus::Superseded,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub district: String,
    pub source: String,
    pub status: RunStatus,
    /// Per OneRoster type in the run: what was (or, for held and dry runs, would be) done.
    pub counts: BTreeMap<String, KindCounts>,
    pub coaching: CoachingCounts,
    /// Accounts provisioned, linked and re-statused by the run (or that would be).
    #[serde(default)]
    pub accounts: AccountCounts,
    /// Why the run waits for an administrator (or would, for a dry run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_reasons: Vec<String>,
    /// Types whose input was byte for byte the one their live records were applied from: not
    /// read again, and counted unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried_over: Vec<String>,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Warning>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl RunReport {
    /// The human summary printed at the end of an import.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "run {} ({}): {}\n",
            self.run_id,
            self.district,
            self.status.as_str()
        );
        if !self.counts.is_empty() {
            out.push_str(&format!(
                "  {:<18} {:>9} {:>9} {:>9} {:>9}\n",
                "type", "created", "updated", "deleted", "unchanged"
            ));
            for (kind, c) in &self.counts {
                out.push_str(&format!(
                    "  {:<18} {:>9} {:>9} {:>9} {:>9}\n",
                    kind, c.created, c.updated, c.deleted, c.unchanged
                ));
            }
            out.push_str(&format!(
                "  coaching pairs: {} started, {} ended\n",
                self.coaching.started, self.coaching.ended
            ));
            let a = &self.accounts;
            out.push_str(&format!(
                "  accounts: {} provisioned ({} ambiguous), {} linked, {} no longer rostered, {} rostered again\n",
                a.provisioned, a.ambiguous, a.linked, a.no_longer_rostered, a.rostered_again
            ));
        }
        if !self.carried_over.is_empty() {
            out.push_str(&format!(
                "  unchanged since last applied, not read again: {}\n",
                self.carried_over.join(", ")
            ));
        }
        for reason in &self.held_reasons {
            out.push_str(&format!("  held: {reason}\n"));
        }
        for e in &self.errors {
            out.push_str(&format!("  error: {e}\n"));
        }
        for w in &self.warnings {
            if w.occurrences > 1 {
                out.push_str(&format!(
                    "  warning: {} ({} times)\n",
                    w.problem, w.occurrences
                ));
            } else {
                out.push_str(&format!("  warning: {}\n", w.problem));
            }
        }
        match self.status {
            RunStatus::Held => out.push_str(&format!(
                "  nothing was applied: approve with `rostergate sync approve --district {} {}` or discard it\n",
                self.district, self.run_id
            )),
            RunStatus::DryRun => out.push_str("  dry run: nothing was applied\n"),
            RunStatus::Failed => out.push_str("  nothing was applied\n"),
            _ => {}
        }
        out
    }
}

/// Coaching pairs that started or ended in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoachingCounts {
    pub started: u64,
    pub ended: u64,
}

/// What a run did to accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCounts {
    /// New accounts, the ambiguous ones included.
    pub provisioned: u64,
    /// Grassroots accounts linked to a user by identity matching.
    pub linked: u64,
    /// Users with several candidates (or sharing one): each got a new account.
    pub ambiguous: u64,
    pub no_longer_rostered: u64,
    pub rostered_again: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_located_and_fields_named_as_their_source_shows_them() {
        let planned = |origin, label: &str| PlannedKind {
            kind: RecordKind::Enrollments,
            mode: Mode::Bulk,
            label: label.into(),
            origin,
            digest: None,
            carried: false,
            unstaged_unchanged: None,
        };
        let csv = planned(Origin::File, "enrollments.csv");
        let rest = planned(Origin::Endpoint, "GET /enrollments");
        assert_eq!(csv.locate(12, Some("e1")).to_string(), "enrollments.csv:12");
        assert_eq!(
            rest.locate(200, Some("e1")).to_string(),
            "GET /enrollments (offset 200, sourcedId \"e1\")"
        );
        // (CSV column, JSON member)
        for (column, member) in [
            ("userSourcedId", "user"),
            ("termSourcedIds", "terms"),
            ("schoolYearSourcedId", "schoolYear"),
            ("role", "role"),
        ] {
            assert_eq!(csv.field(column), column);
            assert_eq!(rest.field(column), member);
        }
    }

    fn bulk_plan(kinds: &[(RecordKind, &str)]) -> Plan {
        Plan {
            kinds: kinds
                .iter()
                .map(|&(kind, digest)| PlannedKind {
                    kind,
                    mode: Mode::Bulk,
                    label: format!("{}.csv", kind.oneroster_name()),
                    origin: Origin::File,
                    digest: Some(digest.to_string()),
                    carried: false,
                    unstaged_unchanged: None,
                })
                .collect(),
        }
    }

    const BUNDLE: [(RecordKind, &str); 6] = [
        (RecordKind::Orgs, "o"),
        (RecordKind::AcademicSessions, "s"),
        (RecordKind::Courses, "c"),
        (RecordKind::Classes, "k"),
        (RecordKind::Users, "u"),
        (RecordKind::Enrollments, "e"),
    ];

    fn applied(changed: &[RecordKind]) -> HashMap<RecordKind, String> {
        BUNDLE
            .iter()
            .map(|&(kind, digest)| {
                let digest = if changed.contains(&kind) {
                    format!("{digest}-before")
                } else {
                    digest.to_string()
                };
                (kind, digest)
            })
            .collect()
    }

    #[test]
    fn only_unchanged_kinds_whose_references_are_unchanged_too_are_carried_over() {
        use RecordKind::*;
        // (kinds whose file changed since the last applied run, kinds carried over)
        let cases: [(&[RecordKind], &[RecordKind]); 5] = [
            (
                &[],
                &[Orgs, AcademicSessions, Courses, Classes, Users, Enrollments],
            ),
            (&[Users], &[Orgs, AcademicSessions, Courses, Classes]),
            (
                &[Enrollments],
                &[Orgs, AcademicSessions, Courses, Classes, Users],
            ),
            (&[Courses], &[Orgs, AcademicSessions, Users]),
            // Every other kind refers to orgs: a removed school would leave them dangling.
            (&[Orgs], &[AcademicSessions]),
        ];
        for (changed, expected) in cases {
            let mut plan = bulk_plan(&BUNDLE);
            let carried = plan.carry_unchanged(&applied(changed), |_| None);
            assert_eq!(carried, expected, "changed: {changed:?}");
            for planned in &plan.kinds {
                let is_carried = expected.contains(&planned.kind);
                assert_eq!(planned.carried, is_carried, "{:?}", planned.kind);
                let mode = if is_carried { Mode::Delta } else { Mode::Bulk };
                assert_eq!(planned.mode, mode, "{:?}", planned.kind);
            }
        }
    }

    #[test]
    fn deltas_kinds_without_a_digest_and_districts_without_one_are_never_carried_over() {
        let mut delta = bulk_plan(&BUNDLE);
        delta.kinds[4].mode = Mode::Delta;
        assert!(!delta
            .carry_unchanged(&applied(&[]), |_| None)
            .contains(&RecordKind::Users));

        let mut no_digest = bulk_plan(&BUNDLE);
        no_digest.kinds[0].digest = None;
        assert_eq!(
            no_digest.carry_unchanged(&applied(&[]), |_| None),
            [RecordKind::AcademicSessions]
        );

        let mut first_import = bulk_plan(&BUNDLE);
        assert!(first_import
            .carry_unchanged(&HashMap::new(), |_| panic!("nothing to compare with"))
            .is_empty());
    }

    #[test]
    fn a_kind_whose_references_are_not_in_the_plan_can_be_carried_over() {
        let mut users_only = bulk_plan(&[(RecordKind::Users, "u")]);
        assert_eq!(
            users_only.carry_unchanged(&applied(&[]), |_| None),
            [RecordKind::Users]
        );
    }

    #[test]
    fn files_are_hashed_only_where_the_kind_could_be_carried_over() {
        let mut plan = bulk_plan(&BUNDLE);
        for planned in &mut plan.kinds {
            planned.digest = None;
        }
        let mut hashed = Vec::new();
        let carried = plan.carry_unchanged(&applied(&[RecordKind::Users]), |planned| {
            hashed.push(planned.kind);
            BUNDLE
                .iter()
                .find(|(kind, _)| *kind == planned.kind)
                .map(|(_, digest)| digest.to_string())
        });
        use RecordKind::*;
        // Enrollments refer to the changed users: their file is never read for a digest.
        assert_eq!(hashed, [Orgs, AcademicSessions, Courses, Classes, Users]);
        assert_eq!(carried, [Orgs, AcademicSessions, Courses, Classes]);
        assert_eq!(plan.kinds[4].digest.as_deref(), Some("u"));
    }
}
