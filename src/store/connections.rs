//! Connections to source systems: their configuration, sealed secret, delta cursor and the time
//! of the last full pull. The secret is stored and returned sealed; opening it is the caller's
//! business (`auth::secrets`), so nothing here ever holds it in clear.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Arg, Db, StoreError, Tx};
use crate::args;
use crate::domain::connection::{
    ApiVersion, AuthConfig, ConnectionConfig, ConnectionKind, PullSchedule, RequestLimits,
};
use crate::domain::district::Timezone;
use crate::domain::run::CursorMove;
use crate::domain::schedule::Schedule;

/// A connection as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnection {
    pub district_id: i64,
    pub config: ConnectionConfig,
    /// `auth::secrets` text, bound to (district_id, name).
    pub sealed_secret: String,
    /// The API key, sealed as the secret is (under its own purpose), when the source asks for one.
    pub sealed_api_key: Option<String>,
    /// Where the next delta pull starts: the source's latest `dateLastModified` applied so far.
    pub delta_cursor: Option<DateTime<Utc>>,
    pub last_full_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When the configuration last changed (moving the cursor does not count).
    pub updated_at: DateTime<Utc>,
}

/// A connection that pulls by itself, with what the scheduler needs of its district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledConnection {
    pub district_slug: String,
    pub timezone: Timezone,
    pub connection: StoredConnection,
}

#[derive(sqlx::FromRow)]
struct ConnectionRow {
    district_id: i64,
    name: String,
    kind: String,
    version: String,
    base_url: String,
    page_size: i64,
    auth: String,
    secret: String,
    api_key: Option<String>,
    limits: String,
    delta_schedule: Option<String>,
    full_schedule: Option<String>,
    delta_cursor: Option<String>,
    last_full_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ScheduledRow {
    #[sqlx(flatten)]
    row: ConnectionRow,
    district_slug: String,
    district_timezone: String,
}

const COLUMNS: &str = "district_id, name, kind, version, base_url, page_size, auth, secret, \
     api_key, limits, delta_schedule, full_schedule, delta_cursor, last_full_at, created_at, updated_at";

/// [`COLUMNS`] of `connections c`, for queries that join another table.
const C_COLUMNS: &str = "c.district_id, c.name, c.kind, c.version, c.base_url, c.page_size, \
     c.auth, c.secret, c.api_key, c.limits, c.delta_schedule, c.full_schedule, c.delta_cursor, \
     c.last_full_at, c.created_at, c.updated_at";

/// An enum's serde name (`oneroster-rest`, `1.2`): what is stored, and what the API shows.
fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("unit enum variants serialize as strings"),
    }
}

fn enum_from_text<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

/// A cursor as stored: fixed precision, so the text sorts as the times do.
fn cursor_text(cursor: DateTime<Utc>) -> String {
    cursor.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl ConnectionRow {
    fn into_stored(self) -> Result<StoredConnection, StoreError> {
        let name = self.name;
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!(
                "connection {name:?} of district {}: stored {what} is invalid",
                self.district_id
            ))
        };
        let schedule = |text: Option<String>, what: &str| {
            text.map(|t| t.parse::<Schedule>().map_err(|_| corrupt(what)))
                .transpose()
        };
        let kind = enum_from_text::<ConnectionKind>(&self.kind).ok_or_else(|| corrupt("kind"))?;
        let version = enum_from_text::<ApiVersion>(&self.version)
            .filter(|v| kind.accepts(*v))
            .ok_or_else(|| corrupt("version"))?;
        let config = ConnectionConfig {
            kind,
            version,
            base_url: self.base_url,
            page_size: u32::try_from(self.page_size).map_err(|_| corrupt("page size"))?,
            auth: serde_json::from_str::<AuthConfig>(&self.auth).map_err(|_| corrupt("auth"))?,
            limits: serde_json::from_str::<RequestLimits>(&self.limits)
                .map_err(|_| corrupt("limits"))?,
            schedule: PullSchedule {
                delta: schedule(self.delta_schedule, "delta schedule")?,
                full: schedule(self.full_schedule, "full schedule")?,
            },
            name: name.clone(),
        };
        let delta_cursor = self
            .delta_cursor
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| corrupt("delta cursor"))
            })
            .transpose()?;
        Ok(StoredConnection {
            district_id: self.district_id,
            config,
            sealed_secret: self.secret,
            sealed_api_key: self.api_key,
            delta_cursor,
            last_full_at: self.last_full_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A connection's sealed secret and, when it has one, its sealed API key.
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    pub secret: &'a str,
    pub api_key: Option<&'a str>,
}

/// `$1`…`$13` of [`insert`] and [`replace`]: the row's key, its configuration, its sealed
/// secrets and the time it changed.
fn row_args(
    district_id: i64,
    config: &ConnectionConfig,
    sealed: Sealed<'_>,
    now: DateTime<Utc>,
) -> [Arg; 13] {
    args![
        district_id,
        config.name.as_str(),
        enum_text(&config.kind),
        enum_text(&config.version),
        config.base_url.as_str(),
        i64::from(config.page_size),
        serde_json::to_string(&config.auth).expect("auth serializes"),
        sealed.secret,
        serde_json::to_string(&config.limits).expect("limits serialize"),
        config.schedule.delta.map(|s| s.to_string()),
        config.schedule.full.map(|s| s.to_string()),
        now,
        sealed.api_key.map(str::to_string),
    ]
}

/// Stores a new connection; a name the district already uses is a `Conflict`.
pub async fn insert(
    db: &Db,
    district_id: i64,
    config: &ConnectionConfig,
    sealed: Sealed<'_>,
) -> Result<StoredConnection, StoreError> {
    let now = Utc::now();
    let row: ConnectionRow = db
        .conn()
        .fetch_optional(
            &format!(
                "INSERT INTO connections (district_id, name, kind, version, base_url, \
                 page_size, auth, secret, limits, delta_schedule, full_schedule, created_at, \
                 updated_at, api_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) \
                 RETURNING {COLUMNS}"
            ),
            &row_args(district_id, config, sealed, now),
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::Conflict(format!(
                    "a connection named {:?} already exists in this district",
                    config.name
                ))
            } else {
                e
            }
        })?
        .expect("INSERT … RETURNING returns a row");
    row.into_stored()
}

/// Replaces a connection's configuration and secret, keeping its name and `created_at`;
/// `None` when the district has no connection of that name. The delta cursor and the time of
/// the last full pull are kept only when the source is the same one (same base URL and
/// version): a cursor from one system means nothing to another, so a new source's first pull
/// is a full, reconciling one. The sealed secrets are bound to (district_id, name), as for
/// [`insert`].
pub async fn replace(
    db: &Db,
    district_id: i64,
    config: &ConnectionConfig,
    sealed: Sealed<'_>,
) -> Result<Option<StoredConnection>, StoreError> {
    let row: Option<ConnectionRow> = db
        .conn()
        .fetch_optional(
            // One statement, so a pull applied meanwhile cannot slip between the comparison
            // and the write; on both engines the right-hand sides read the row as it was.
            &format!(
                "UPDATE connections SET \
                 delta_cursor = CASE WHEN version = $4 AND base_url = $5 \
                 THEN delta_cursor ELSE NULL END, \
                 last_full_at = CASE WHEN version = $4 AND base_url = $5 \
                 THEN last_full_at ELSE NULL END, \
                 kind = $3, version = $4, base_url = $5, page_size = $6, auth = $7, \
                 secret = $8, limits = $9, delta_schedule = $10, full_schedule = $11, \
                 updated_at = $12, api_key = $13 \
                 WHERE district_id = $1 AND name = $2 RETURNING {COLUMNS}"
            ),
            &row_args(district_id, config, sealed, Utc::now()),
        )
        .await?;
    row.map(ConnectionRow::into_stored).transpose()
}

/// A district's connections, by name.
pub async fn list(db: &Db, district_id: i64) -> Result<Vec<StoredConnection>, StoreError> {
    let rows: Vec<ConnectionRow> = db
        .conn()
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM connections WHERE district_id = $1 ORDER BY name"),
            &args![district_id],
        )
        .await?;
    rows.into_iter().map(ConnectionRow::into_stored).collect()
}

pub async fn find(
    db: &Db,
    district_id: i64,
    name: &str,
) -> Result<Option<StoredConnection>, StoreError> {
    let row: Option<ConnectionRow> = db
        .conn()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM connections WHERE district_id = $1 AND name = $2"),
            &args![district_id, name],
        )
        .await?;
    row.map(ConnectionRow::into_stored).transpose()
}

/// Removes a connection; `false` when there was none of that name.
pub async fn delete(db: &Db, district_id: i64, name: &str) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .execute(
            "DELETE FROM connections WHERE district_id = $1 AND name = $2",
            &args![district_id, name],
        )
        .await?;
    Ok(n == 1)
}

/// Moves the delta cursor, inside the transaction that applies the pull it came from;
/// `false` when the connection is gone.
pub async fn set_cursor_in(
    tx: &mut Tx,
    district_id: i64,
    name: &str,
    cursor: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            // Never backwards: the text form sorts in time order.
            "UPDATE connections SET delta_cursor = CASE WHEN delta_cursor IS NULL OR delta_cursor < $1 \
             THEN $1 ELSE delta_cursor END WHERE district_id = $2 AND name = $3",
            &args![cursor_text(cursor), district_id, name],
        )
        .await?;
    Ok(n == 1)
}

/// Records a full pull applied at `at`, inside the transaction that applies it; `false` when
/// the connection is gone.
pub async fn mark_full_in(
    tx: &mut Tx,
    district_id: i64,
    name: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE connections SET last_full_at = $1 WHERE district_id = $2 AND name = $3",
            &args![at, district_id, name],
        )
        .await?;
    Ok(n == 1)
}

/// Every connection with a delta or full schedule, in every district, with its district's
/// slug and time zone (daily schedules are wall-clock times there).
pub async fn scheduled(db: &Db) -> Result<Vec<ScheduledConnection>, StoreError> {
    let rows: Vec<ScheduledRow> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT {C_COLUMNS}, d.slug AS district_slug, d.timezone AS district_timezone \
                 FROM connections c JOIN districts d ON d.id = c.district_id \
                 WHERE c.delta_schedule IS NOT NULL OR c.full_schedule IS NOT NULL \
                 ORDER BY c.district_id, c.name"
            ),
            &[],
        )
        .await?;
    rows.into_iter()
        .map(|r| {
            let timezone = Timezone::parse(&r.district_timezone).map_err(|_| {
                StoreError::Corrupt(format!(
                    "district {}: stored time zone is invalid",
                    r.district_slug
                ))
            })?;
            Ok(ScheduledConnection {
                district_slug: r.district_slug,
                timezone,
                connection: r.row.into_stored()?,
            })
        })
        .collect()
}

/// The source a connection pulls from, as a [`CursorMove`] records it.
pub fn source_of(config: &ConnectionConfig) -> String {
    format!("{} {}", config.version.as_str(), config.base_url)
}

/// Moves a connection as its pull's run is applied, in the applying transaction. A connection
/// removed meanwhile is not there to move; one pointed at another source meanwhile (a replace)
/// is left as the replace set it: the pull's cursor belongs to the old source.
pub async fn advance_in(
    tx: &mut Tx,
    district_id: i64,
    cursor: &CursorMove,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if let Some(source) = &cursor.source {
        let same = tx
            .scalar(
                "SELECT COUNT(*) FROM connections WHERE district_id = $1 AND name = $2 \
                 AND version || ' ' || base_url = $3",
                &args![district_id, cursor.connection.as_str(), source.as_str()],
            )
            .await?;
        if same == 0 {
            return Ok(());
        }
    }
    if let Some(at) = cursor.cursor {
        set_cursor_in(tx, district_id, &cursor.connection, at).await?;
    }
    if cursor.full {
        mark_full_in(tx, district_id, &cursor.connection, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::connection::{OneRosterVersion, PartnerResultsVersion};

    #[test]
    fn cursors_are_stored_with_fixed_precision_in_utc() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T10:00:00+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(cursor_text(t), "2026-03-01T08:00:00.000000Z");
    }

    #[test]
    fn enums_are_stored_by_their_wire_names() {
        assert_eq!(enum_text(&ConnectionKind::OneRosterRest), "oneroster-rest");
        assert_eq!(
            enum_text(&ConnectionKind::AssessmentRest),
            "assessment-rest"
        );
        let cases = [
            ("1.1", Some(ApiVersion::OneRoster(OneRosterVersion::V1_1))),
            ("1.2", Some(ApiVersion::OneRoster(OneRosterVersion::V1_2))),
            (
                "1",
                Some(ApiVersion::PartnerResults(PartnerResultsVersion::V1)),
            ),
            ("2.0", None),
            ("", None),
        ];
        for (text, version) in cases {
            assert_eq!(enum_from_text::<ApiVersion>(text), version, "{text}");
            if let Some(version) = version {
                assert_eq!(enum_text(&version), text);
                assert_eq!(version.as_str(), text);
            }
        }
    }
}
