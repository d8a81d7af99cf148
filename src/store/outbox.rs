//! The outbox: one event per change, written in the transaction that made the change. The
//! delivery worker (outbound webhooks) reads it in id order.

use chrono::{DateTime, Utc};

use super::{Db, StoreError};
use crate::args;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub run_id: String,
    pub event_type: String,
    pub subject_id: String,
    /// Thin JSON (account events), stored as text; served as an object.
    #[serde(serialize_with = "raw_json", skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Stored payloads are JSON the gateway wrote: served as JSON, not as a string of it.
fn raw_json<S: serde::Serializer>(payload: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .serialize(s)
}

/// Events of a district after `after_id`, oldest first.
pub async fn list(
    db: &Db,
    district_id: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    db.conn()
        .fetch_all(
            "SELECT id, run_id, event_type, subject_id, payload, created_at FROM outbox_events \
             WHERE district_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            &args![district_id, after_id, limit],
        )
        .await
}
