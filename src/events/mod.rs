//! Events: the catalogue of what the outbox records. Every roster change is `<type>.<change>`
//! (`users.created`, `enrollments.deleted`, …) with the record's sourcedId as subject; coaching
//! pairs are `coaching.started` / `coaching.ended` with `teacher/student` as subject; accounts
//! are `account.provisioned` / `account.linked` / `account.roster_status_changed` with the
//! account id as subject and a thin JSON payload.

pub mod catalogue;
pub mod envelope;
pub mod signing;
pub mod subscriptions;

use crate::domain::records::{Change, RecordKind};

/// What provisioning records about accounts.
pub const ACCOUNT_EVENTS: [&str; 3] = [
    "account.provisioned",
    "account.linked",
    "account.roster_status_changed",
];

/// Every event type the gateway emits.
pub fn catalogue() -> Vec<String> {
    let mut names: Vec<String> = RecordKind::ALL
        .into_iter()
        .flat_map(|k| [Change::Created, Change::Updated, Change::Deleted].map(|c| k.event(c)))
        .collect();
    names.push("coaching.started".into());
    names.push("coaching.ended".into());
    names.extend(ACCOUNT_EVENTS.map(String::from));
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn catalogue_names_every_record_change_and_coaching() {
        let names = super::catalogue();
        assert!(names.contains(&"users.created".to_string()));
        assert!(names.contains(&"enrollments.deleted".to_string()));
        assert!(names.contains(&"coaching.ended".to_string()));
        assert!(names.contains(&"account.linked".to_string()));
        assert_eq!(names.len(), 8 * 3 + 2 + 3);
    }
}
