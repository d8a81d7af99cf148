//! API clients: the credentials behind `POST /oauth/token`. Secrets are stored hashed.

use chrono::{DateTime, Utc};

use super::{Db, StoreError};
use crate::args;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub client_id: String,
    pub district_id: i64,
    pub name: String,
    pub scopes: String,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    db: &Db,
    client_id: &str,
    district_id: i64,
    name: &str,
    scopes: &str,
    secret_hash: &str,
) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "INSERT INTO api_clients (client_id, district_id, name, scopes, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &args![client_id, district_id, name, scopes, secret_hash, Utc::now()],
        )
        .await?;
    Ok(())
}

pub async fn find(db: &Db, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
    db.conn()
        .fetch_optional(
            "SELECT client_id, district_id, name, scopes, secret_hash, created_at, revoked_at \
             FROM api_clients WHERE client_id = $1",
            &args![client_id],
        )
        .await
}

pub async fn list(db: &Db, district_id: i64) -> Result<Vec<ClientRow>, StoreError> {
    db.conn()
        .fetch_all(
            "SELECT client_id, district_id, name, scopes, secret_hash, created_at, revoked_at \
             FROM api_clients WHERE district_id = $1 ORDER BY created_at",
            &args![district_id],
        )
        .await
}

pub async fn revoke(db: &Db, district_id: i64, client_id: &str) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .execute(
            "UPDATE api_clients SET revoked_at = $1 WHERE client_id = $2 AND district_id = $3 AND revoked_at IS NULL",
            &args![Utc::now(), client_id, district_id],
        )
        .await?;
    Ok(n == 1)
}

/// A client with the slug of its district: what the token endpoint needs in one read.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientWithDistrict {
    pub client_id: String,
    pub district: String,
    pub scopes: String,
    pub secret_hash: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn find_with_district(
    db: &Db,
    client_id: &str,
) -> Result<Option<ClientWithDistrict>, StoreError> {
    db.conn()
        .fetch_optional(
            "SELECT c.client_id, d.slug AS district, c.scopes, c.secret_hash, c.revoked_at \
             FROM api_clients c JOIN districts d ON d.id = c.district_id WHERE c.client_id = $1",
            &args![client_id],
        )
        .await
}

/// When the client was revoked (`Some(None)` while it is active), or `None` if it is unknown.
pub async fn revoked_at(
    db: &Db,
    client_id: &str,
) -> Result<Option<Option<DateTime<Utc>>>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        revoked_at: Option<DateTime<Utc>>,
    }
    let row: Option<Row> = db
        .conn()
        .fetch_optional(
            "SELECT revoked_at FROM api_clients WHERE client_id = $1",
            &args![client_id],
        )
        .await?;
    Ok(row.map(|r| r.revoked_at))
}
