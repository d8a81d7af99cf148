//! A district's secrets for signed roster pushes: stored sealed (`auth::secrets`, bound to
//! district and id), listed without them, and returned sealed only as the live set a push is
//! verified against. Opening them is the caller's business (`auth::push_secrets`).

use chrono::{DateTime, Utc};

use super::{Db, StoreError};
use crate::args;

/// A push secret as listed: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct PushSecret {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A live secret, still sealed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedPushSecret {
    pub id: String,
    /// `auth::secrets` text, bound to (district_id, id).
    pub sealed_secret: String,
}

/// Stores a new secret under `id` (a fresh UUID: a clash is a `Conflict`).
pub async fn insert(
    db: &Db,
    district_id: i64,
    id: &str,
    sealed_secret: &str,
) -> Result<PushSecret, StoreError> {
    let created = db
        .conn()
        .fetch_optional::<PushSecret>(
            "INSERT INTO push_secrets (district_id, id, secret, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id, created_at, revoked_at",
            &args![district_id, id, sealed_secret, Utc::now()],
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::Conflict(format!("a push secret {id:?} already exists"))
            } else {
                e
            }
        })?;
    Ok(created.expect("INSERT … RETURNING returns a row"))
}

/// A district's push secrets, live and revoked, oldest first.
pub async fn list(db: &Db, district_id: i64) -> Result<Vec<PushSecret>, StoreError> {
    db.conn()
        .fetch_all(
            "SELECT id, created_at, revoked_at FROM push_secrets WHERE district_id = $1 \
             ORDER BY created_at, id",
            &args![district_id],
        )
        .await
}

/// The district's live (not revoked) secrets, sealed, newest first.
pub async fn live(db: &Db, district_id: i64) -> Result<Vec<SealedPushSecret>, StoreError> {
    db.conn()
        .fetch_all(
            "SELECT id, secret AS sealed_secret FROM push_secrets \
             WHERE district_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id",
            &args![district_id],
        )
        .await
}

/// Revokes a live secret; `false` when the district has no live secret of that id.
pub async fn revoke(db: &Db, district_id: i64, id: &str) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .execute(
            "UPDATE push_secrets SET revoked_at = $1 \
             WHERE district_id = $2 AND id = $3 AND revoked_at IS NULL",
            &args![Utc::now(), district_id, id],
        )
        .await?;
    Ok(n == 1)
}
