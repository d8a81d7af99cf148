//! The provisioning events a learning platform can subscribe to: the closed list a
//! subscription's event types are checked against.

/// Every provisioning event type, in the order they are documented: the only types the outbox
/// holds, and the only ones a subscription can name.
pub const EVENT_TYPES: &[&str] = &[
    // An account was made for a person new to the roster.
    "account.provisioned",
    // An account was linked to a person the learning platform already knew.
    "account.linked",
    // A rostered person's details (name, email, grades, identifiers) changed.
    "account.updated",
    // A person left the district's roster, or came back to it.
    "account.roster_status_changed",
    // A class appeared in the roster.
    "class.created",
    // A class's details (title, course, periods, school) changed.
    "class.updated",
    // A class left the roster but was used, so it is kept read-only (archived).
    "class.archived",
    // A class that was never used left the roster.
    "class.removed",
    // A person was enrolled in a class.
    "enrollment.added",
    // A person's enrollment in a class ended.
    "enrollment.removed",
    // A teacher or aide began to coach a student (through a shared class).
    "coaching.added",
    // A coaching relationship ended.
    "coaching.removed",
    // A sync run was held for an administrator's review.
    "sync_run.held",
    // A sync run was applied to the roster.
    "sync_run.applied",
    // An assessment result was received (or restated) for a rostered student.
    "assessment_result.received",
    // A student's proposed placements in a subject moved with a new result.
    "placement.generated",
    // A teacher set or cleared a placement override.
    "placement.overridden",
];

/// Is `name` an event type of the catalogue?
pub fn is_event_type(name: &str) -> bool {
    EVENT_TYPES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_unique_lowercase_dotted_names() {
        let mut seen = std::collections::BTreeSet::new();
        for name in EVENT_TYPES {
            assert!(seen.insert(*name), "{name} twice");
            let (noun, verb) = name.split_once('.').expect("noun.verb");
            for part in [noun, verb] {
                assert!(
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{name}"
                );
            }
        }
        assert_eq!(EVENT_TYPES.len(), 17);
    }

    #[test]
    fn only_catalogue_names_are_event_types() {
        assert!(is_event_type("enrollment.added"));
        assert!(!is_event_type("enrollments.added"));
        assert!(!is_event_type("Account.provisioned"));
        assert!(!is_event_type(""));
    }
}
