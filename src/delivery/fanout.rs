//! The fan-out: each outbox event becomes one delivery per subscription that wants it, exactly
//! once. A district's cursor is read, its next events turned into deliveries and the cursor
//! advanced in one transaction that holds the cursor's row, so concurrent workers (several
//! gateways on one PostgreSQL) never fan an event out twice, and a crash fans out nothing twice.

use chrono::Utc;

use crate::events::catalogue::is_event_type;
use crate::store::deliveries::{self, NewDelivery, OutboxEvent, SubscriptionFilter};
use crate::store::{Db, StoreError};

/// Does this subscription get this event? Only catalogue types, of the subscription's types
/// (all when it names none), and only events that happened after it was made.
pub fn wants(subscription: &SubscriptionFilter, event: &OutboxEvent) -> bool {
    is_event_type(&event.event_type)
        && subscription.created_at <= event.created_at
        && (subscription.event_types.is_empty()
            || subscription.event_types.contains(&event.event_type))
}

/// Would this subscription receive an event of this type at all (a replay's check)?
pub fn receives_type(subscription: &SubscriptionFilter, event_type: &str) -> bool {
    is_event_type(event_type)
        && (subscription.event_types.is_empty()
            || subscription.event_types.iter().any(|t| t == event_type))
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FannedOut {
    pub events: u64,
    pub deliveries: u64,
}

/// Fans out up to `batch` events of every district that has some waiting.
pub async fn fan_out(db: &Db, batch: i64) -> Result<FannedOut, StoreError> {
    let mut total = FannedOut::default();
    for district_id in deliveries::districts_to_fan_out(db).await? {
        let done = fan_out_district(db, district_id, batch).await?;
        total.events += done.events;
        total.deliveries += done.deliveries;
    }
    Ok(total)
}

/// Fans out the next `batch` events of one district.
pub async fn fan_out_district(
    db: &Db,
    district_id: i64,
    batch: i64,
) -> Result<FannedOut, StoreError> {
    deliveries::ensure_cursor(db, district_id).await?;
    let mut tx = db.begin().await?;
    let Some(cursor) = deliveries::lock_cursor(&mut tx, district_id).await? else {
        tx.rollback().await?;
        return Ok(FannedOut::default());
    };
    let events = deliveries::events_after(&mut tx, district_id, cursor, batch.max(1)).await?;
    let Some(last) = events.last().map(|e| e.id) else {
        tx.rollback().await?;
        return Ok(FannedOut::default());
    };
    let subscriptions = deliveries::subscription_filters(&mut tx, district_id).await?;
    let new: Vec<NewDelivery> = events
        .iter()
        .flat_map(|event| {
            subscriptions
                .iter()
                .filter(|s| wants(s, event))
                .map(|s| NewDelivery {
                    subscription_id: s.id.clone(),
                    event_seq: event.id,
                    subject_id: event.subject_id.clone(),
                })
        })
        .collect();
    let inserted = deliveries::insert_deliveries(&mut tx, district_id, &new, Utc::now()).await?;
    deliveries::advance_cursor(&mut tx, district_id, last).await?;
    tx.commit().await?;
    Ok(FannedOut {
        events: events.len() as u64,
        deliveries: inserted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn event(event_type: &str, created_at: DateTime<Utc>) -> OutboxEvent {
        OutboxEvent {
            id: 1,
            event_type: event_type.into(),
            subject_id: "s".into(),
            created_at,
        }
    }

    fn subscription(types: &[&str], created_at: DateTime<Utc>) -> SubscriptionFilter {
        SubscriptionFilter {
            id: "sub".into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            created_at,
        }
    }

    #[test]
    fn a_subscription_gets_its_types_of_the_catalogue_from_its_creation_on() {
        let made = at("2026-09-01T08:00:00Z");
        let later = made + Duration::seconds(1);
        let earlier = made - Duration::seconds(1);
        let all = subscription(&[], made);
        let some = subscription(&["account.provisioned", "class.created"], made);
        let cases = [
            (&all, event("account.provisioned", later), true),
            (&all, event("enrollment.added", made), true),
            (&all, event("users.created", later), false),
            (&all, event("account.provisioned", earlier), false),
            (&some, event("account.provisioned", later), true),
            (&some, event("class.created", later), true),
            (&some, event("account.linked", later), false),
            (&some, event("class.created", earlier), false),
        ];
        for (s, e, want) in cases {
            assert_eq!(wants(s, &e), want, "{:?} {e:?}", s.event_types);
        }
        assert!(receives_type(&some, "class.created"));
        assert!(!receives_type(&some, "class.removed"));
        assert!(receives_type(&all, "class.removed"));
        assert!(!receives_type(&all, "classes.created"));
    }
}
