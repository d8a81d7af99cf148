//! What LTI launches keep: each login's state (with its nonce, until its launch consumes it),
//! and the links between a platform's users (`sub`) and the district's rostered users.

use chrono::{DateTime, Utc};

use super::{Db, StoreError};
use crate::args;

/// A login waiting for its launch.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LoginState {
    pub platform_id: i64,
    pub nonce: String,
    /// The login's (unsigned) target_link_uri: the launch's signed one must be the same.
    pub target_link_uri: String,
    /// The deployment the login named, when it named one.
    pub deployment_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// Stores a login's state.
pub async fn save_state(
    db: &Db,
    state: &str,
    login: &LoginState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "INSERT INTO lti_states (state, platform_id, nonce, target_link_uri, deployment_id, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &args![
                state,
                login.platform_id,
                login.nonce.as_str(),
                login.target_link_uri.as_str(),
                login.deployment_id.clone(),
                now,
                login.expires_at
            ],
        )
        .await?;
    Ok(())
}

/// Takes a login's state out: one statement, so two launches with one state cannot both have
/// it. `None` when there is none (never made, expired and swept, or used).
pub async fn consume_state(db: &Db, state: &str) -> Result<Option<LoginState>, StoreError> {
    db.conn()
        .fetch_optional(
            "DELETE FROM lti_states WHERE state = $1 \
             RETURNING platform_id, nonce, target_link_uri, deployment_id, expires_at",
            &args![state],
        )
        .await
}

/// Forgets states whose launch never came.
pub async fn sweep_states(db: &Db, now: DateTime<Utc>) -> Result<u64, StoreError> {
    db.conn()
        .execute("DELETE FROM lti_states WHERE expires_at < $1", &args![now])
        .await
}

/// The rostered user a platform's user was last linked to, if any.
pub async fn linked_user(
    db: &Db,
    platform_id: i64,
    sub: &str,
) -> Result<Option<Option<String>>, StoreError> {
    let row: Option<(Option<String>,)> = db
        .conn()
        .fetch_optional(
            "SELECT user_sourced_id FROM lti_links WHERE platform_id = $1 AND sub = $2",
            &args![platform_id, sub],
        )
        .await?;
    Ok(row.map(|(user,)| user))
}

/// Records a launch of a platform's user, and the rostered user it resolved to (a link once
/// made is kept when a later launch carries no person sourcedId).
pub async fn record_link(
    db: &Db,
    (platform_id, district_id): (i64, i64),
    sub: &str,
    user_sourced_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "INSERT INTO lti_links (platform_id, sub, district_id, user_sourced_id, created_at, \
             last_launch_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (platform_id, sub) DO UPDATE SET last_launch_at = $5, \
             user_sourced_id = COALESCE($4, lti_links.user_sourced_id)",
            &args![
                platform_id,
                sub,
                district_id,
                user_sourced_id.map(str::to_string),
                now
            ],
        )
        .await?;
    Ok(())
}
