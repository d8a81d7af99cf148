//! What launches tell of the LTI services of a course (its NRPS memberships URL, its AGS line
//! item URLs and granted scopes), the score clock AGS needs, and deep linking answers given.

use chrono::{DateTime, Duration, Utc};

use super::{Db, StoreError};
use crate::args;

/// A course context a platform launched from, as its latest launch described it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContextRow {
    pub platform_id: i64,
    pub context_id: String,
    pub district_id: i64,
    pub title: Option<String>,
    /// The rostered class the launch's course section named, when it named one.
    pub class_sourced_id: Option<String>,
    pub memberships_url: Option<String>,
    pub lineitems_url: Option<String>,
    pub lineitem_url: Option<String>,
    /// Space-separated.
    pub ags_scopes: String,
    pub updated_at: DateTime<Utc>,
}

impl ContextRow {
    pub fn ags_scopes(&self) -> Vec<&str> {
        self.ags_scopes.split_ascii_whitespace().collect()
    }
}

const COLUMNS: &str = "platform_id, context_id, district_id, title, class_sourced_id, \
     memberships_url, lineitems_url, lineitem_url, ags_scopes, updated_at";

/// Records what a launch said of its context. A launch that names no rostered class keeps the
/// class an earlier one found; service URLs are the latest launch's (platforms may move them).
pub async fn record(db: &Db, context: &ContextRow) -> Result<(), StoreError> {
    db.conn()
        .execute(
            &format!(
                "INSERT INTO lti_contexts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (platform_id, context_id) DO UPDATE SET title = $4, \
                 class_sourced_id = COALESCE($5, lti_contexts.class_sourced_id), \
                 memberships_url = COALESCE($6, lti_contexts.memberships_url), \
                 lineitems_url = COALESCE($7, lti_contexts.lineitems_url), \
                 lineitem_url = COALESCE($8, lti_contexts.lineitem_url), \
                 ags_scopes = CASE WHEN $9 = '' THEN lti_contexts.ags_scopes ELSE $9 END, \
                 updated_at = $10"
            ),
            &args![
                context.platform_id,
                context.context_id.as_str(),
                context.district_id,
                context.title.clone(),
                context.class_sourced_id.clone(),
                context.memberships_url.clone(),
                context.lineitems_url.clone(),
                context.lineitem_url.clone(),
                context.ags_scopes.as_str(),
                context.updated_at
            ],
        )
        .await?;
    Ok(())
}

/// A district's contexts that offer memberships, by platform and context.
pub async fn with_memberships(db: &Db, district_id: i64) -> Result<Vec<ContextRow>, StoreError> {
    db.conn()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM lti_contexts WHERE district_id = $1 \
                 AND memberships_url IS NOT NULL ORDER BY platform_id, context_id"
            ),
            &args![district_id],
        )
        .await
}

/// The context a class was last launched from that offers grades.
pub async fn for_class(
    db: &Db,
    district_id: i64,
    class: &str,
) -> Result<Option<ContextRow>, StoreError> {
    db.conn()
        .fetch_optional(
            &format!(
                "SELECT {COLUMNS} FROM lti_contexts WHERE district_id = $1 AND class_sourced_id = $2 \
                 AND (lineitems_url IS NOT NULL OR lineitem_url IS NOT NULL) \
                 ORDER BY updated_at DESC, platform_id LIMIT 1"
            ),
            &args![district_id, class],
        )
        .await
}

/// The platform's user id (`sub`) of a rostered user: the one they last launched as.
pub async fn sub_of_user(
    db: &Db,
    platform_id: i64,
    user: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = db
        .conn()
        .fetch_optional(
            "SELECT sub FROM lti_links WHERE platform_id = $1 AND user_sourced_id = $2 \
             ORDER BY last_launch_at DESC, sub LIMIT 1",
            &args![platform_id, user],
        )
        .await?;
    Ok(row.map(|(sub,)| sub))
}

/// Links a platform's user to a rostered user from a membership list; a launch's own link
/// (its time) is left as it is.
pub async fn link_member(
    db: &Db,
    (platform_id, district_id): (i64, i64),
    sub: &str,
    user: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    db.conn()
        .execute(
            "INSERT INTO lti_links (platform_id, sub, district_id, user_sourced_id, created_at, \
             last_launch_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (platform_id, sub) DO UPDATE SET user_sourced_id = $4",
            &args![platform_id, sub, district_id, user, now],
        )
        .await?;
    Ok(())
}

/// The timestamp for the next score of (line item, user): `now`, or a millisecond after the
/// last one sent when that is not older (AGS ignores a score not newer than the last).
pub async fn next_score_timestamp(
    db: &Db,
    platform_id: i64,
    line_item: &str,
    sub: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    let mut tx = db.begin().await?;
    let last: Option<(DateTime<Utc>,)> = tx
        .fetch_optional(
            "SELECT last_timestamp FROM lti_score_clock WHERE platform_id = $1 \
             AND line_item_url = $2 AND sub = $3",
            &args![platform_id, line_item, sub],
        )
        .await?;
    let stamp = match last {
        Some((last,)) if last >= now => last + Duration::milliseconds(1),
        _ => now,
    };
    tx.execute(
        "INSERT INTO lti_score_clock (platform_id, line_item_url, sub, last_timestamp) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (platform_id, line_item_url, sub) \
         DO UPDATE SET last_timestamp = $4",
        &args![platform_id, line_item, sub, stamp],
    )
    .await?;
    tx.commit().await?;
    Ok(stamp)
}

/// Records that a deep linking request (its session's `jti`) was answered: `false` when it
/// was already.
pub async fn answer_deep_link(
    db: &Db,
    platform_id: i64,
    jti: &str,
    (now, expires_at): (DateTime<Utc>, DateTime<Utc>),
) -> Result<bool, StoreError> {
    db.conn()
        .execute(
            "DELETE FROM lti_deep_link_answers WHERE expires_at < $1",
            &args![now],
        )
        .await?;
    let inserted = db
        .conn()
        .execute(
            "INSERT INTO lti_deep_link_answers (jti, platform_id, answered_at, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
            &args![jti, platform_id, now, expires_at],
        )
        .await?;
    Ok(inserted == 1)
}
