//! Districts: create, find, list.

use chrono::{DateTime, Utc};

use super::{Db, StoreError, Tx};
use crate::args;
use crate::domain::district::{District, DistrictName, DistrictSettings, Slug, Timezone};

#[derive(sqlx::FromRow)]
struct DistrictRow {
    id: i64,
    slug: String,
    name: String,
    timezone: String,
    settings: String,
    created_at: DateTime<Utc>,
    roster_version: i64,
}

impl DistrictRow {
    fn into_district(self) -> Result<District, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!("district {}: stored {what} is invalid", self.slug))
        };
        Ok(District {
            id: self.id,
            slug: Slug::parse(&self.slug).map_err(|_| corrupt("slug"))?,
            name: DistrictName::parse(&self.name).map_err(|_| corrupt("name"))?,
            timezone: Timezone::parse(&self.timezone).map_err(|_| corrupt("time zone"))?,
            settings: serde_json::from_str(&self.settings).map_err(|_| corrupt("settings"))?,
            created_at: self.created_at,
            roster_version: self.roster_version,
        })
    }
}

const COLUMNS: &str = "id, slug, name, timezone, settings, created_at, roster_version";

pub async fn create(
    db: &Db,
    slug: &Slug,
    name: &DistrictName,
    timezone: Timezone,
    settings: &DistrictSettings,
) -> Result<District, StoreError> {
    let settings_json = serde_json::to_string(settings).expect("settings serialize");
    let row: DistrictRow = db
        .conn()
        .fetch_optional(
            &format!(
                "INSERT INTO districts (slug, name, timezone, settings, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &args![
                slug.as_str(),
                name.as_str(),
                timezone.name(),
                settings_json,
                Utc::now()
            ],
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::Conflict(format!("a district with slug \"{slug}\" already exists"))
            } else {
                e
            }
        })?
        .expect("INSERT … RETURNING returns a row");
    row.into_district()
}

pub async fn find(db: &Db, slug: &str) -> Result<Option<District>, StoreError> {
    let row: Option<DistrictRow> = db
        .conn()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM districts WHERE slug = $1"),
            &args![slug],
        )
        .await?;
    row.map(DistrictRow::into_district).transpose()
}

pub async fn find_by_id(db: &Db, id: i64) -> Result<Option<District>, StoreError> {
    let row: Option<DistrictRow> = db
        .conn()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM districts WHERE id = $1"),
            &args![id],
        )
        .await?;
    row.map(DistrictRow::into_district).transpose()
}

/// Finds a district or says which slug was not found.
pub async fn get(db: &Db, slug: &str) -> Result<District, StoreError> {
    find(db, slug)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("district {slug:?} not found")))
}

pub async fn list(db: &Db) -> Result<Vec<District>, StoreError> {
    let rows: Vec<DistrictRow> = db
        .conn()
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM districts ORDER BY slug"),
            &[],
        )
        .await?;
    rows.into_iter().map(DistrictRow::into_district).collect()
}

/// Marks the district's roster as changed, inside the transaction that changes it, as that
/// transaction's first write. The district's row is then held until the transaction ends, and
/// a district that is not there fails the run: the roster tables check no district of their own
/// on PostgreSQL (migration 0025).
pub async fn bump_roster_version(tx: &mut Tx, district_id: i64) -> Result<(), StoreError> {
    let updated = tx
        .execute(
            "UPDATE districts SET roster_version = roster_version + 1 WHERE id = $1",
            &args![district_id],
        )
        .await?;
    if updated != 1 {
        return Err(StoreError::NotFound(format!("district {district_id}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::query_plans::databases;

    // The roster tables rely on this check on PostgreSQL, where they keep no district key.
    #[tokio::test]
    async fn bumping_the_roster_version_of_a_district_that_is_not_there_fails() {
        for each in databases().await {
            let mut tx = each.db.begin().await.unwrap();
            let missing = bump_roster_version(&mut tx, 4_242).await.unwrap_err();
            assert!(
                matches!(&missing, StoreError::NotFound(what) if what == "district 4242"),
                "{missing}"
            );
            tx.rollback().await.unwrap();
            each.finish().await;
        }
    }
}
