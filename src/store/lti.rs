//! LTI platform registrations and their deployments (per district), and the tool's stored
//! signing keys (one set for the whole gateway). Logins in flight and launch links are
//! `lti_launches`.
//!
//! A registration is looked up by (issuer, client_id) at login, across districts: that pair is
//! unique everywhere, since a login names nothing else (every hosted Canvas shares one issuer).
//! Everything else is scoped to the district the caller acts in.

use chrono::{DateTime, Utc};

use super::{Arg, Db, StoreError, Tx};
use crate::args;
use crate::lti::registration_input::{
    parse_unknown_deployments, unknown_deployments_text, NewPlatform,
};
use crate::lti::{Registration, UnknownDeployments};

/// A platform registration as stored, with its deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRow {
    pub id: i64,
    pub district_id: i64,
    pub issuer: String,
    pub client_id: String,
    pub auth_login_url: String,
    pub token_url: String,
    pub jwks_url: String,
    pub unknown_deployments: UnknownDeployments,
    /// The `aud` of client assertions, when not the token URL.
    pub token_audience: Option<String>,
    /// By deployment id.
    pub deployments: Vec<DeploymentRow>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PlatformRow {
    /// What a launch is checked against: only active deployments count as known, so a
    /// pending one stays pending until an administrator claims it.
    pub fn registration(&self) -> Registration {
        Registration {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            deployment_ids: self
                .deployments
                .iter()
                .filter(|d| d.status == DeploymentStatusRow::Active)
                .map(|d| d.deployment_id.clone())
                .collect(),
            unknown_deployments: self.unknown_deployments,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    pub deployment_id: String,
    pub status: DeploymentStatusRow,
}

/// A deployment registered (or claimed) by an administrator, or recorded from a launch and
/// waiting for a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatusRow {
    Active,
    Pending,
}

impl DeploymentStatusRow {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatusRow::Active => "active",
            DeploymentStatusRow::Pending => "pending",
        }
    }

    fn parse(text: &str) -> Option<DeploymentStatusRow> {
        match text {
            "active" => Some(DeploymentStatusRow::Active),
            "pending" => Some(DeploymentStatusRow::Pending),
            _ => None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PlatformRecord {
    id: i64,
    district_id: i64,
    issuer: String,
    client_id: String,
    auth_login_url: String,
    token_url: String,
    jwks_url: String,
    unknown_deployments: String,
    token_audience: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

struct DeploymentRecord {
    deployment_id: String,
    status: String,
}

/// A platform joined with one of its deployments (`NULL`s when it has none).
#[derive(sqlx::FromRow)]
struct PlatformDeploymentRecord {
    #[sqlx(flatten)]
    platform: PlatformRecord,
    deployment_id: Option<String>,
    status: Option<String>,
}

const P_COLUMNS: &str = "p.id, p.district_id, p.issuer, p.client_id, p.auth_login_url, \
     p.token_url, p.jwks_url, p.unknown_deployments, p.token_audience, p.created_at, p.updated_at";

/// The platforms `lti_platforms p` matching `filter` (a WHERE clause over `p`, with `args`),
/// by id, each with its deployments: one statement whatever the number of platforms (every
/// launch reads its platform this way).
async fn platforms_where(
    db: &Db,
    filter: &str,
    args: &[Arg],
) -> Result<Vec<PlatformRow>, StoreError> {
    let rows: Vec<PlatformDeploymentRecord> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT {P_COLUMNS}, d.deployment_id, d.status FROM lti_platforms p \
                 LEFT JOIN lti_deployments d ON d.platform_id = p.id WHERE {filter} \
                 ORDER BY p.id, d.deployment_id"
            ),
            args,
        )
        .await?;
    let mut platforms: Vec<(PlatformRecord, Vec<DeploymentRecord>)> = Vec::new();
    for row in rows {
        if platforms
            .last()
            .is_none_or(|(p, _)| p.id != row.platform.id)
        {
            platforms.push((row.platform, Vec::new()));
        }
        if let (Some(deployment_id), Some(status), Some((_, deployments))) =
            (row.deployment_id, row.status, platforms.last_mut())
        {
            deployments.push(DeploymentRecord {
                deployment_id,
                status,
            });
        }
    }
    platforms
        .into_iter()
        .map(|(record, deployments)| into_row(record, deployments.iter()))
        .collect()
}

fn into_row<'a>(
    record: PlatformRecord,
    deployments: impl Iterator<Item = &'a DeploymentRecord>,
) -> Result<PlatformRow, StoreError> {
    let (id, district_id) = (record.id, record.district_id);
    let corrupt = |what: &str| {
        StoreError::Corrupt(format!(
            "LTI platform {id} of district {district_id}: stored {what} is invalid"
        ))
    };
    let unknown_deployments = parse_unknown_deployments(Some(&record.unknown_deployments))
        .map_err(|_| corrupt("unknown_deployments"))?;
    let deployments = deployments
        .map(|d| {
            Ok(DeploymentRow {
                deployment_id: d.deployment_id.clone(),
                status: DeploymentStatusRow::parse(&d.status)
                    .ok_or_else(|| corrupt("deployment status"))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(PlatformRow {
        id: record.id,
        district_id: record.district_id,
        issuer: record.issuer,
        client_id: record.client_id,
        auth_login_url: record.auth_login_url,
        token_url: record.token_url,
        jwks_url: record.jwks_url,
        unknown_deployments,
        token_audience: record.token_audience,
        deployments,
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}

/// Registers a platform in a district with its deployments (active), in one transaction. An
/// (issuer, client_id) registered anywhere already is a `Conflict`.
pub async fn insert_platform(
    db: &Db,
    district_id: i64,
    platform: &NewPlatform,
) -> Result<PlatformRow, StoreError> {
    let mut tx = db.begin().await?;
    let id = insert_platform_in(&mut tx, district_id, platform, Utc::now()).await?;
    tx.commit().await?;
    find_platform(db, district_id, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("LTI platform {id} was removed meanwhile")))
}

/// As [`insert_platform`], inside the caller's transaction (a dynamic registration consumes its
/// invitation in the same one); the new platform's id.
pub async fn insert_platform_in(
    tx: &mut Tx,
    district_id: i64,
    platform: &NewPlatform,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let id = tx
        .scalar(
            "INSERT INTO lti_platforms (district_id, issuer, client_id, auth_login_url, \
             token_url, jwks_url, unknown_deployments, token_audience, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
            &args![
                district_id,
                platform.issuer.as_str(),
                platform.client_id.as_str(),
                platform.auth_login_url.as_str(),
                platform.token_url.as_str(),
                platform.jwks_url.as_str(),
                unknown_deployments_text(platform.unknown_deployments),
                platform.token_audience.clone(),
                now,
            ],
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                // The other registration may be another district's: say nothing of which.
                StoreError::Conflict(format!(
                    "a platform with issuer {:?} and client_id {:?} is already registered \
                     (one registration per issuer and client id across the gateway)",
                    platform.issuer, platform.client_id
                ))
            } else {
                e
            }
        })?;
    for deployment_id in &platform.deployment_ids {
        tx.execute(
            "INSERT INTO lti_deployments (platform_id, deployment_id, status, created_at) \
             VALUES ($1, $2, 'active', $3)",
            &args![id, deployment_id.as_str(), now],
        )
        .await?;
    }
    Ok(id)
}

/// A district's platforms, by id.
pub async fn list_platforms(db: &Db, district_id: i64) -> Result<Vec<PlatformRow>, StoreError> {
    platforms_where(db, "p.district_id = $1", &args![district_id]).await
}

pub async fn find_platform(
    db: &Db,
    district_id: i64,
    id: i64,
) -> Result<Option<PlatformRow>, StoreError> {
    Ok(platforms_where(
        db,
        "p.district_id = $1 AND p.id = $2",
        &args![district_id, id],
    )
    .await?
    .pop())
}

/// A platform by id alone, whatever its district: for a launch, whose login recorded the
/// platform it resolved.
pub async fn platform_by_id(db: &Db, id: i64) -> Result<Option<PlatformRow>, StoreError> {
    Ok(platforms_where(db, "p.id = $1", &args![id]).await?.pop())
}

/// Removes a platform with its deployments, logins in flight and launch links; `false` when
/// the district has no platform of that id.
pub async fn delete_platform(db: &Db, district_id: i64, id: i64) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .execute(
            "DELETE FROM lti_platforms WHERE district_id = $1 AND id = $2",
            &args![district_id, id],
        )
        .await?;
    Ok(n == 1)
}

/// The registrations a login names, in every district: the one of (issuer, client_id), or
/// every one of the issuer when the login carries no client_id (more than one is ambiguous:
/// the caller refuses it, reference §2).
pub async fn platforms_for_login(
    db: &Db,
    issuer: &str,
    client_id: Option<&str>,
) -> Result<Vec<PlatformRow>, StoreError> {
    match client_id {
        Some(client_id) => {
            platforms_where(
                db,
                "p.issuer = $1 AND p.client_id = $2",
                &args![issuer, client_id],
            )
            .await
        }
        None => platforms_where(db, "p.issuer = $1", &args![issuer]).await,
    }
}

/// Records a deployment a launch came from as pending an administrator's claim; `true` when
/// it is new. A deployment already known (active or pending) is left as it is. The caller
/// checks the platform's policy first: this records whatever it is given.
pub async fn add_pending_deployment(
    db: &Db,
    platform_id: i64,
    deployment_id: &str,
) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .execute(
            "INSERT INTO lti_deployments (platform_id, deployment_id, status, created_at) \
             VALUES ($1, $2, 'pending', $3) ON CONFLICT (platform_id, deployment_id) DO NOTHING",
            &args![platform_id, deployment_id, Utc::now()],
        )
        .await?;
    Ok(n == 1)
}

/// Makes a deployment of a district's platform active (a pending one is claimed, an active one
/// stays so); `false` when the district's platform has no such deployment.
pub async fn claim_deployment(
    db: &Db,
    district_id: i64,
    platform_id: i64,
    deployment_id: &str,
) -> Result<bool, StoreError> {
    let n = db
        .conn()
        .execute(
            "UPDATE lti_deployments SET status = 'active' \
             WHERE platform_id = $1 AND deployment_id = $2 \
             AND platform_id IN (SELECT id FROM lti_platforms WHERE id = $1 AND district_id = $3)",
            &args![platform_id, deployment_id, district_id],
        )
        .await?;
    Ok(n == 1)
}

/// Where a stored tool key stands in the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPosition {
    /// Signs.
    Current,
    /// Published, signs after the next rotation.
    Next,
}

impl KeyPosition {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPosition::Current => "current",
            KeyPosition::Next => "next",
        }
    }

    fn parse(text: &str) -> Option<KeyPosition> {
        match text {
            "current" => Some(KeyPosition::Current),
            "next" => Some(KeyPosition::Next),
            _ => None,
        }
    }
}

/// One of the tool's keys as stored: the private key sealed (`auth::secrets`, bound to the kid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToolKey {
    pub kid: String,
    pub sealed_key: String,
    pub position: KeyPosition,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ToolKeyRecord {
    kid: String,
    sealed_key: String,
    position: String,
    created_at: DateTime<Utc>,
}

/// The stored tool keys, current first; empty before the first set is made.
pub async fn load_tool_keys(db: &Db) -> Result<Vec<StoredToolKey>, StoreError> {
    let records: Vec<ToolKeyRecord> = db
        .conn()
        .fetch_all(
            // 'current' sorts before 'next'.
            "SELECT kid, sealed_key, position, created_at FROM lti_tool_keys ORDER BY position",
            &[],
        )
        .await?;
    records
        .into_iter()
        .map(|r| {
            Ok(StoredToolKey {
                position: KeyPosition::parse(&r.position).ok_or_else(|| {
                    StoreError::Corrupt(format!("tool key {}: stored position is invalid", r.kid))
                })?,
                kid: r.kid,
                sealed_key: r.sealed_key,
                created_at: r.created_at,
            })
        })
        .collect()
}

const INSERT_TOOL_KEYS: &str = "INSERT INTO lti_tool_keys (kid, sealed_key, position, created_at) \
     VALUES ($1, $2, 'current', $3), ($4, $5, 'next', $6)";

fn tool_key_args(current: &StoredToolKey, next: &StoredToolKey) -> [Arg; 6] {
    args![
        current.kid.as_str(),
        current.sealed_key.as_str(),
        current.created_at,
        next.kid.as_str(),
        next.sealed_key.as_str(),
        next.created_at,
    ]
}

/// Stores a first set unless one is there already; the caller reads the keys again after.
/// Two gateways starting at once both try, one statement each, in the same row order: the
/// first to commit wins and the other's rows are dropped, so only one set is ever published.
pub async fn insert_tool_key_set_if_absent(
    db: &Db,
    current: &StoredToolKey,
    next: &StoredToolKey,
) -> Result<(), StoreError> {
    db.conn()
        .execute(
            &format!("{INSERT_TOOL_KEYS} ON CONFLICT DO NOTHING"),
            &tool_key_args(current, next),
        )
        .await?;
    Ok(())
}

/// Replaces the stored set with these two keys, in one transaction. A rotation that raced
/// another one is a `Conflict` (nothing changed; run it again).
pub async fn save_tool_key_set(
    db: &Db,
    current: &StoredToolKey,
    next: &StoredToolKey,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    tx.execute("DELETE FROM lti_tool_keys", &[]).await?;
    tx.execute(INSERT_TOOL_KEYS, &tool_key_args(current, next))
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::Conflict(
                    "the tool keys changed meanwhile (another rotation?): nothing was saved; \
                     try again"
                        .into(),
                )
            } else {
                e
            }
        })?;
    tx.commit().await
}
