//! The outbox: one event per change, written in the transaction that made the change. The
//! delivery worker (outbound webhooks) reads it in id order.
//!
//! Events are written set-based (`INSERT INTO outbox_events … SELECT`), their thin JSON payload
//! built by the database: [`json_object_sql`] and [`changed_fields_sql`] give the SQL for it on
//! either backend.

use chrono::{DateTime, Utc};

use super::{Backend, Db, StoreError, Tx};
use crate::args;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub run_id: String,
    pub event_type: String,
    pub subject_id: String,
    /// Thin JSON (the event's `data`), stored as text; served as an object.
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

/// The first half of every set-based event write: the `SELECT` that follows gives, in order,
/// district id, run id, type, subject, payload and time.
pub const INSERT_EVENTS: &str =
    "INSERT INTO outbox_events (district_id, run_id, event_type, subject_id, payload, created_at)";

/// A JSON object (`[("key", sql_expr)…]`) as text, built and escaped by the database. A value
/// that is itself JSON text goes through [`json_value_sql`] first.
pub fn json_object_sql(backend: Backend, members: &[(&str, &str)]) -> String {
    let list = members
        .iter()
        .map(|(k, v)| format!("'{k}', {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    match backend {
        Backend::Postgres => format!("json_build_object({list})::text"),
        Backend::Sqlite => format!("json_object({list})"),
    }
}

/// JSON text (from SQL) as a JSON value inside [`json_object_sql`], not as a string of it.
pub fn json_value_sql(backend: Backend, expr: &str) -> String {
    match backend {
        Backend::Postgres => format!("CAST({expr} AS json)"),
        Backend::Sqlite => format!("json({expr})"),
    }
}

/// The names of the fields whose columns differ between the rows `old` and `new`, as JSON
/// array text (`["email","grades"]`), in the order given. Each pair is (column, field name);
/// field names are the gateway's own constants, never input.
pub fn changed_fields_sql(fields: &[(&str, &str)], old: &str, new: &str) -> String {
    let parts = fields
        .iter()
        .map(|(column, field)| {
            debug_assert!(field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            format!(
                "CASE WHEN {old}.{column} IS DISTINCT FROM {new}.{column} THEN '\"{field}\",' ELSE '' END"
            )
        })
        .collect::<Vec<_>>()
        .join(" || ");
    format!("('[' || rtrim({parts}, ',') || ']')")
}

/// Records one event whose payload the gateway built (a run's own events), in `tx`. The
/// district is the run's.
pub async fn insert_run_event(
    tx: &mut Tx,
    run_id: &str,
    event_type: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "{INSERT_EVENTS} SELECT r.district_id, r.id, $2, r.id, $3, $4 FROM sync_runs r WHERE r.id = $1"
        ),
        &args![run_id, event_type, payload.to_string(), now],
    )
    .await?;
    Ok(())
}

/// Records one event the gateway built in full (assessment and placement events), in `tx`.
pub async fn insert_event(
    tx: &mut Tx,
    district_id: i64,
    (run_id, event_type, subject_id): (&str, &str, &str),
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        &format!("{INSERT_EVENTS} VALUES ($1, $2, $3, $4, $5, $6)"),
        &args![
            district_id,
            run_id,
            event_type,
            subject_id,
            payload.to_string(),
            now
        ],
    )
    .await?;
    Ok(())
}

/// Events of a district after `after_id`, oldest first.
pub async fn list(
    db: &Db,
    district_id: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    page(db, district_id, after_id, None, limit).await
}

/// Events of a district after `after_id`, oldest first, only of `event_type` when given.
pub async fn page(
    db: &Db,
    district_id: i64,
    after_id: i64,
    event_type: Option<&str>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    const COLUMNS: &str = "id, run_id, event_type, subject_id, payload, created_at";
    match event_type {
        None => {
            db.conn()
                .fetch_all(
                    &format!(
                        "SELECT {COLUMNS} FROM outbox_events \
                         WHERE district_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                    ),
                    &args![district_id, after_id, limit],
                )
                .await
        }
        Some(event_type) => {
            db.conn()
                .fetch_all(
                    &format!(
                        "SELECT {COLUMNS} FROM outbox_events \
                         WHERE district_id = $1 AND event_type = $4 AND id > $2 ORDER BY id LIMIT $3"
                    ),
                    &args![district_id, after_id, limit, event_type],
                )
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_are_listed_null_safely_in_the_order_given() {
        let sql = changed_fields_sql(&[("email", "email"), ("given_name", "givenName")], "l", "s");
        assert_eq!(
            sql,
            "('[' || rtrim(CASE WHEN l.email IS DISTINCT FROM s.email THEN '\"email\",' ELSE '' END || \
             CASE WHEN l.given_name IS DISTINCT FROM s.given_name THEN '\"givenName\",' ELSE '' END, ',') || ']')"
        );
    }
}
