//! LTI Dynamic Registration invitations: the single-use URL an administrator pastes into an
//! LMS, kept as the SHA-256 of its token, and used up in the transaction that stores the
//! platform registration it brought.

use chrono::{DateTime, Utc};

use super::lti::{self, PlatformRow};
use super::{Db, StoreError};
use crate::args;
use crate::lti::registration_input::{
    parse_unknown_deployments, unknown_deployments_text, NewPlatform,
};
use crate::lti::UnknownDeployments;

/// An invitation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRow {
    pub id: i64,
    pub district_id: i64,
    /// The policy the registration it brings gets.
    pub unknown_deployments: UnknownDeployments,
    /// The platform's configuration URL need not sit under its issuer (Moodle's does not).
    pub allow_foreign_configuration: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When a registration used it; a used invitation registers nothing more.
    pub used_at: Option<DateTime<Utc>>,
    /// The platform it registered (none once that platform is removed).
    pub platform_id: Option<i64>,
}

/// An invitation to store: its token's hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvite {
    pub district_id: i64,
    pub token_hash: String,
    pub unknown_deployments: UnknownDeployments,
    pub allow_foreign_configuration: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct InviteRecord {
    id: i64,
    district_id: i64,
    unknown_deployments: String,
    allow_foreign_configuration: bool,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    platform_id: Option<i64>,
}

const COLUMNS: &str = "id, district_id, unknown_deployments, allow_foreign_configuration, \
     created_at, expires_at, used_at, platform_id";

impl InviteRecord {
    fn into_row(self) -> Result<InviteRow, StoreError> {
        let unknown_deployments = parse_unknown_deployments(Some(&self.unknown_deployments))
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "LTI registration invite {}: stored unknown_deployments is invalid",
                    self.id
                ))
            })?;
        Ok(InviteRow {
            id: self.id,
            district_id: self.district_id,
            unknown_deployments,
            allow_foreign_configuration: self.allow_foreign_configuration,
            created_at: self.created_at,
            expires_at: self.expires_at,
            used_at: self.used_at,
            platform_id: self.platform_id,
        })
    }
}

pub async fn insert_invite(db: &Db, invite: &NewInvite) -> Result<InviteRow, StoreError> {
    let record: InviteRecord = db
        .conn()
        .fetch_optional(
            &format!(
                "INSERT INTO lti_registration_invites (district_id, token_hash, \
                 unknown_deployments, allow_foreign_configuration, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
            ),
            &args![
                invite.district_id,
                invite.token_hash.as_str(),
                unknown_deployments_text(invite.unknown_deployments),
                invite.allow_foreign_configuration,
                invite.created_at,
                invite.expires_at,
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("an inserted invite returned no row".into()))?;
    record.into_row()
}

/// The invitation of this token hash, used or not, expired or not.
pub async fn invite_by_token_hash(
    db: &Db,
    token_hash: &str,
) -> Result<Option<InviteRow>, StoreError> {
    let record: Option<InviteRecord> = db
        .conn()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM lti_registration_invites WHERE token_hash = $1"),
            &args![token_hash],
        )
        .await?;
    record.map(InviteRecord::into_row).transpose()
}

/// A district's invitations, newest first.
pub async fn list_invites(db: &Db, district_id: i64) -> Result<Vec<InviteRow>, StoreError> {
    let records: Vec<InviteRecord> = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM lti_registration_invites WHERE district_id = $1 \
                 ORDER BY id DESC"
            ),
            &args![district_id],
        )
        .await?;
    records.into_iter().map(InviteRecord::into_row).collect()
}

/// Stores the platform an invitation brought, in the invitation's district, and uses the
/// invitation up, in one transaction: of two registrations through one invitation only one is
/// stored. `None` (nothing stored) when the invitation was used meanwhile or has expired at
/// `now`; an (issuer, client_id) registered already is a `Conflict`, and the invitation stays
/// usable.
pub async fn register_through_invite(
    db: &Db,
    invite: &InviteRow,
    platform: &NewPlatform,
    now: DateTime<Utc>,
) -> Result<Option<PlatformRow>, StoreError> {
    let mut tx = db.begin().await?;
    let taken = tx
        .execute(
            "UPDATE lti_registration_invites SET used_at = $2 \
             WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
            &args![invite.id, now],
        )
        .await?;
    if taken != 1 {
        tx.rollback().await?;
        return Ok(None);
    }
    // Dropped (rolled back) on a conflict: the invitation is not used up.
    let platform_id = lti::insert_platform_in(&mut tx, invite.district_id, platform, now).await?;
    tx.execute(
        "UPDATE lti_registration_invites SET platform_id = $2 WHERE id = $1",
        &args![invite.id, platform_id],
    )
    .await?;
    tx.commit().await?;
    lti::find_platform(db, invite.district_id, platform_id).await
}
