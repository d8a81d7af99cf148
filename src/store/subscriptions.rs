//! A district's webhook subscriptions: where its events go, which ones, whether deliveries are
//! on, and the sealed secrets they are signed with (the current one and, during a rotation,
//! the previous one until it expires). Sealing and opening are the caller's business
//! (`events::subscriptions`), so nothing here holds a secret in clear.

use chrono::{DateTime, Utc};

use super::{Db, StoreError, Tx};
use crate::args;

/// Whether deliveries go out, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Enabled,
    /// Turned off, by an administrator or after failing for too long; `reason` says which.
    Disabled {
        reason: String,
    },
}

impl Status {
    /// The stored and shown name: `enabled` or `disabled`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled { .. } => "disabled",
        }
    }

    pub fn disabled_reason(&self) -> Option<&str> {
        match self {
            Status::Enabled => None,
            Status::Disabled { reason } => Some(reason),
        }
    }
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub district_id: i64,
    /// A UUID.
    pub id: String,
    pub url: String,
    /// The event types delivered; empty: every type.
    pub event_types: Vec<String>,
    pub description: String,
    pub status: Status,
    /// When the current run of failed deliveries began; `None` while deliveries succeed.
    pub failing_since: Option<DateTime<Utc>>,
    /// `auth::secrets` text, bound to (district_id, id): what deliveries are signed with.
    pub sealed_secret: String,
    /// The secret before the last rotation, sealed as the current one, while it is still live.
    pub sealed_previous_secret: Option<String>,
    /// When the previous secret stops being signed with.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a new subscription is made of (checked by `events::subscriptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
}

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    district_id: i64,
    id: String,
    url: String,
    event_types: String,
    description: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    status: String,
    disabled_reason: Option<String>,
    failing_since: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "district_id, id, url, event_types, description, secret, previous_secret, \
     previous_secret_expires_at, status, disabled_reason, failing_since, created_at, updated_at";

impl SubscriptionRow {
    fn into_subscription(self) -> Result<Subscription, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!(
                "subscription {:?} of district {}: stored {what} is invalid",
                self.id, self.district_id
            ))
        };
        let event_types = serde_json::from_str::<Vec<String>>(&self.event_types)
            .map_err(|_| corrupt("event types"))?;
        let status = match self.status.as_str() {
            "enabled" => Status::Enabled,
            "disabled" => Status::Disabled {
                reason: self.disabled_reason.clone().unwrap_or_default(),
            },
            _ => return Err(corrupt("status")),
        };
        Ok(Subscription {
            district_id: self.district_id,
            id: self.id,
            url: self.url,
            event_types,
            description: self.description,
            status,
            failing_since: self.failing_since,
            sealed_secret: self.secret,
            sealed_previous_secret: self.previous_secret,
            previous_secret_expires_at: self.previous_secret_expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn decode(row: Option<SubscriptionRow>) -> Result<Option<Subscription>, StoreError> {
    row.map(SubscriptionRow::into_subscription).transpose()
}

/// Stores a new, enabled subscription under `id` (a fresh UUID: a clash is a `Conflict`).
/// `sealed_secret` is bound to (district_id, id).
pub async fn insert(
    db: &Db,
    district_id: i64,
    id: &str,
    new: &NewSubscription,
    sealed_secret: &str,
) -> Result<Subscription, StoreError> {
    let event_types = serde_json::to_string(&new.event_types).expect("strings serialize");
    let row: Option<SubscriptionRow> = db
        .conn()
        .fetch_optional(
            &format!(
                "INSERT INTO subscriptions (district_id, id, url, event_types, description, \
                 secret, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'enabled', $7, $7) RETURNING {COLUMNS}"
            ),
            &args![
                district_id,
                id,
                new.url.as_str(),
                event_types,
                new.description.as_str(),
                sealed_secret,
                Utc::now()
            ],
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::Conflict(format!("a subscription {id:?} already exists"))
            } else {
                e
            }
        })?;
    Ok(decode(row)?.expect("INSERT … RETURNING returns a row"))
}

/// A district's subscriptions, oldest first.
pub async fn list(db: &Db, district_id: i64) -> Result<Vec<Subscription>, StoreError> {
    let rows: Vec<SubscriptionRow> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM subscriptions WHERE district_id = $1 \
                 ORDER BY created_at, id"
            ),
            &args![district_id],
        )
        .await?;
    rows.into_iter()
        .map(SubscriptionRow::into_subscription)
        .collect()
}

pub async fn find(db: &Db, district_id: i64, id: &str) -> Result<Option<Subscription>, StoreError> {
    let row: Option<SubscriptionRow> = db
        .conn()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM subscriptions WHERE district_id = $1 AND id = $2"),
            &args![district_id, id],
        )
        .await?;
    decode(row)
}

/// Removes a subscription; `false` when the district has none of that id.
pub async fn delete(db: &Db, district_id: i64, id: &str) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .execute(
            "DELETE FROM subscriptions WHERE district_id = $1 AND id = $2",
            &args![district_id, id],
        )
        .await?;
    Ok(n == 1)
}

/// Makes `new_sealed_secret` the current secret and keeps the current one live as the previous
/// until `previous_expires_at`; a previous secret still live from an earlier rotation is
/// dropped. `None` when the district has no subscription of that id.
pub async fn rotate_secret(
    db: &Db,
    district_id: i64,
    id: &str,
    new_sealed_secret: &str,
    previous_expires_at: DateTime<Utc>,
) -> Result<Option<Subscription>, StoreError> {
    let row: Option<SubscriptionRow> = db
        .conn()
        .fetch_optional(
            // On both engines the right-hand sides read the row as it was: the old current
            // secret becomes the previous one in the same statement, so no delivery can see
            // a row with neither.
            &format!(
                "UPDATE subscriptions SET previous_secret = secret, secret = $3, \
                 previous_secret_expires_at = $4, updated_at = $5 \
                 WHERE district_id = $1 AND id = $2 RETURNING {COLUMNS}"
            ),
            &args![
                district_id,
                id,
                new_sealed_secret,
                previous_expires_at,
                Utc::now()
            ],
        )
        .await?;
    decode(row)
}

/// Enables (clearing the reason and the failure streak) or disables a subscription; `None`
/// when the district has no subscription of that id.
pub async fn set_status(
    db: &Db,
    district_id: i64,
    id: &str,
    status: &Status,
) -> Result<Option<Subscription>, StoreError> {
    let sql = match status {
        Status::Enabled => format!(
            "UPDATE subscriptions SET status = 'enabled', disabled_reason = NULL, \
             failing_since = NULL, updated_at = $3 \
             WHERE district_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ),
        Status::Disabled { .. } => format!(
            "UPDATE subscriptions SET status = 'disabled', disabled_reason = $4, \
             updated_at = $3 WHERE district_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ),
    };
    let now = Utc::now();
    let row: Option<SubscriptionRow> = match status {
        Status::Enabled => {
            db.conn()
                .fetch_optional(&sql, &args![district_id, id, now])
                .await?
        }
        Status::Disabled { reason } => {
            db.conn()
                .fetch_optional(&sql, &args![district_id, id, now, reason.as_str()])
                .await?
        }
    };
    decode(row)
}

/// A delivery to the subscription succeeded: its run of failures (if any) is over.
pub async fn clear_failing(tx: &mut Tx, district_id: i64, id: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE subscriptions SET failing_since = NULL \
         WHERE district_id = $1 AND id = $2 AND failing_since IS NOT NULL",
        &args![district_id, id],
    )
    .await?;
    Ok(())
}

/// A delivery to the subscription failed: a run of failures begins at `since` unless one is
/// already under way.
pub async fn mark_failing(
    tx: &mut Tx,
    district_id: i64,
    id: &str,
    since: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE subscriptions SET failing_since = $3 \
         WHERE district_id = $1 AND id = $2 AND failing_since IS NULL",
        &args![district_id, id, since],
    )
    .await?;
    Ok(())
}

/// Disables an enabled subscription with the reason (the delivery worker's decision); `false`
/// when it was not enabled (already disabled, or gone).
pub async fn disable(
    tx: &mut Tx,
    district_id: i64,
    id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE subscriptions SET status = 'disabled', disabled_reason = $3, updated_at = $4 \
             WHERE district_id = $1 AND id = $2 AND status = 'enabled'",
            &args![district_id, id, reason, now],
        )
        .await?;
    Ok(n == 1)
}
