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
    pub created_at: DateTime<Utc>,
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
            "SELECT id, run_id, event_type, subject_id, created_at FROM outbox_events \
             WHERE district_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            &args![district_id, after_id, limit],
        )
        .await
}
