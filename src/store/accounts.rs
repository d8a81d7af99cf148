//! Accounts and their district links: provisioning and identity matching inside a run's
//! transaction (set-based: a first import of any size costs a handful of statements), and the
//! reads the API serves.

use chrono::{DateTime, Utc};

use super::{outbox, Backend, Db, StoreError, Tx};
use crate::args;
use crate::domain::account::{
    IdentityKey, MatchedBy, NewGrassroots, RosterStatus, STAFF_ROLES, STUDENT_ROLE,
};
use crate::domain::run::AccountCounts;

/// A user of the run that identity matching could not link unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Ambiguous {
    pub user_sourced_id: String,
    pub candidates: i64,
    pub claimants: i64,
}

/// What the roster changed that provisioning depends on: the engine skips the steps nothing
/// could have changed (an unchanged re-import stays cheap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RosterChanges {
    /// Users created, updated or returning, or roles changed: someone may need an account.
    pub users_entered_or_changed: bool,
    /// Users removed: links may become `No Longer Rostered`.
    pub users_removed: bool,
}

/// The district a run provisions for, as its events name it.
#[derive(Debug, Clone, Copy)]
pub struct DistrictRef<'a> {
    pub id: i64,
    pub slug: &'a str,
}

/// A fresh random UUID per row, in the backend's dialect.
fn uuid_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "gen_random_uuid()::text",
        Backend::Sqlite => {
            "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' \
             || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
        }
    }
}

/// Each user's OneRoster role, lower-cased, as `y.role`: 1.1 `role`, else the user's 1.2 roles
/// (a primary one first). The roles are aggregated once (a join, not a subquery per user: a
/// first import of 100k users is planned as one pass).
const USERS_WITH_ROLE_SQL: &str = "SELECT u.sourced_id, lower(COALESCE(u.role, substr(r.ranked, 2))) AS role, \
       u.email, u.given_name, u.family_name \
     FROM users u LEFT JOIN (SELECT r.user_sourced_id, \
         MIN(CASE WHEN r.role_type = 'primary' THEN '0' ELSE '1' END || r.role) AS ranked \
       FROM user_roles r WHERE r.district_id = $2 AND r.deleted_at IS NULL AND r.role IS NOT NULL \
       GROUP BY r.user_sourced_id) r ON r.user_sourced_id = u.sourced_id \
     WHERE u.district_id = $2 AND u.deleted_at IS NULL \
       AND NOT EXISTS (SELECT 1 FROM account_links k WHERE k.district_id = $2 AND k.user_sourced_id = u.sourced_id)";

/// The role family of `y.role` (see [`crate::domain::account::role_family`]), NULL when the
/// role gets no account.
fn family_sql() -> String {
    let staff = STAFF_ROLES
        .iter()
        .map(|r| format!("'{r}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CASE WHEN y.role = '{STUDENT_ROLE}' THEN 'student' WHEN y.role IN ({staff}) THEN 'staff' END"
    )
}

// The decision table of `domain::account::decide`, as predicates over `stage_accounts s`.
const LINK: &str = "s.candidates = 1 AND s.claimants <= 1";
const NEW: &str = "NOT (s.candidates = 1 AND s.claimants <= 1)";
const AMBIGUOUS: &str = "(s.candidates > 1 OR (s.candidates = 1 AND s.claimants > 1))";

#[derive(sqlx::FromRow)]
struct DecisionCounts {
    linked: i64,
    provisioned: i64,
    ambiguous: i64,
}

/// Provisions or links an account for every live user of the district that has no link yet,
/// and moves links between `Rostered` and `No Longer Rostered` as their users left or came
/// back, writing an outbox event per change. Users whose role gets no account (guardians…)
/// are left alone. Returns the counts and up to `max_listed` ambiguous users.
pub async fn provision(
    tx: &mut Tx,
    run_id: &str,
    district: DistrictRef<'_>,
    keys: &[IdentityKey],
    changes: RosterChanges,
    now: DateTime<Utc>,
    max_listed: i64,
) -> Result<(AccountCounts, Vec<Ambiguous>), StoreError> {
    let backend = tx.backend();
    let params = args![run_id, district.id, now, district.slug];
    let mut counts = AccountCounts::default();
    let mut ambiguous = Vec::new();

    if changes.users_entered_or_changed {
        // A link is the user's identity in the district (the `sis_id` key): linked users are
        // never matched again. E-mail matching looks at grassroots accounts of the same family.
        let by_email = keys.contains(&IdentityKey::Email);
        let staged = tx.execute(
            &format!(
                "INSERT INTO stage_accounts (run_id, user_sourced_id, role_family, email, email_normalized, \
                   given_name, family_name, new_account_id, candidates) \
                 SELECT $1, x.sourced_id, x.role_family, x.email, NULLIF(lower(trim(x.email)), ''), \
                   x.given_name, x.family_name, {uuid}, 0 \
                 FROM (SELECT y.*, {family} AS role_family FROM ({USERS_WITH_ROLE_SQL}) y) x \
                 WHERE x.role_family IS NOT NULL",
                uuid = uuid_sql(backend),
                family = family_sql(),
            ),
            &args![run_id, district.id],
        )
        .await?;
        // Only users with a candidate are touched: most have none.
        let with_candidates = if by_email && staged > 0 {
            let grassroots = "FROM accounts a WHERE a.state = 'grassroots' \
                 AND a.email_normalized = stage_accounts.email_normalized \
                 AND a.role_family = stage_accounts.role_family";
            tx.execute(
                &format!(
                    "UPDATE stage_accounts SET candidates = (SELECT COUNT(*) {grassroots}), \
                       match_account_id = (SELECT MIN(a.id) {grassroots}) \
                     WHERE run_id = $1 AND email_normalized IS NOT NULL AND EXISTS (SELECT 1 {grassroots})"
                ),
                &args![run_id],
            )
            .await?
        } else {
            0
        };
        if with_candidates > 0 {
            tx.execute(
                "UPDATE stage_accounts SET claimants = (SELECT COUNT(*) FROM stage_accounts o \
                   WHERE o.run_id = $1 AND o.match_account_id IS NOT NULL AND o.candidates = 1 \
                   AND o.match_account_id = stage_accounts.match_account_id) \
                 WHERE run_id = $1 AND candidates = 1",
                &args![run_id],
            )
            .await?;
        }
        let decided: DecisionCounts = if with_candidates == 0 {
            // Nobody matched anything: every staged user gets a new account.
            DecisionCounts {
                linked: 0,
                provisioned: staged as i64,
                ambiguous: 0,
            }
        } else {
            tx.fetch_optional(
                &format!(
                    "SELECT COUNT(*) FILTER (WHERE {LINK}) AS linked, COUNT(*) FILTER (WHERE {NEW}) AS provisioned, \
                       COUNT(*) FILTER (WHERE {AMBIGUOUS}) AS ambiguous \
                     FROM stage_accounts s WHERE s.run_id = $1"
                ),
                &args![run_id],
            )
            .await?
            .expect("aggregate returns a row")
        };
        counts.linked = decided.linked as u64;
        counts.provisioned = decided.provisioned as u64;
        counts.ambiguous = decided.ambiguous as u64;

        if decided.linked > 0 {
            let payload = outbox::json_object_sql(
                backend,
                &[
                    ("account_id", "s.match_account_id"),
                    ("district", "$4"),
                    ("user_sourced_id", "s.user_sourced_id"),
                    ("matched_by", "'email'"),
                    ("state", "'district'"),
                ],
            );
            tx.execute(
                &format!(
                    "INSERT INTO outbox_events (district_id, run_id, event_type, subject_id, payload, created_at) \
                     SELECT $2, $1, 'account.linked', s.match_account_id, {payload}, $3 FROM stage_accounts s \
                     WHERE s.run_id = $1 AND {LINK} ORDER BY s.user_sourced_id"
                ),
                &params,
            )
            .await?;
            // Only accounts still grassroots: a sync of another district running at the same
            // time may have linked one since this run looked (PostgreSQL re-checks after the row
            // lock). Then this run fails, and is run again, rather than share an account.
            let claimed = tx
                .execute(
                    &format!(
                        "UPDATE accounts SET state = 'district', updated_at = $3 WHERE state = 'grassroots' AND id IN \
                         (SELECT s.match_account_id FROM stage_accounts s WHERE s.run_id = $1 AND {LINK})"
                    ),
                    &args![run_id, district.id, now],
                )
                .await?;
            if claimed != decided.linked as u64 {
                return Err(StoreError::Conflict(
                    "a grassroots account this sync would link was linked by another district's sync meanwhile: run the sync again".into(),
                ));
            }
            tx.execute(
                &format!(
                    "INSERT INTO account_links (district_id, user_sourced_id, account_id, linked_at, roster_status, matched_by) \
                     SELECT $2, s.user_sourced_id, s.match_account_id, $3, '{rostered}', '{email}' \
                     FROM stage_accounts s WHERE s.run_id = $1 AND {LINK}",
                    rostered = RosterStatus::Rostered.as_str(),
                    email = MatchedBy::Email.as_str(),
                ),
                &args![run_id, district.id, now],
            )
            .await?;
        }
        if decided.provisioned > 0 {
            tx.execute(
                &format!(
                    "INSERT INTO accounts (id, state, role_family, email, email_normalized, given_name, family_name, \
                       created_at, updated_at) \
                     SELECT s.new_account_id, 'district', s.role_family, s.email, s.email_normalized, s.given_name, \
                       s.family_name, $3, $3 FROM stage_accounts s WHERE s.run_id = $1 AND {NEW}"
                ),
                &args![run_id, district.id, now],
            )
            .await?;
            tx.execute(
                &format!(
                    "INSERT INTO account_links (district_id, user_sourced_id, account_id, linked_at, roster_status, matched_by) \
                     SELECT $2, s.user_sourced_id, s.new_account_id, $3, '{rostered}', '{new}' \
                     FROM stage_accounts s WHERE s.run_id = $1 AND {NEW}",
                    rostered = RosterStatus::Rostered.as_str(),
                    new = MatchedBy::New.as_str(),
                ),
                &args![run_id, district.id, now],
            )
            .await?;
            let payload = outbox::json_object_sql(
                backend,
                &[
                    ("account_id", "s.new_account_id"),
                    ("district", "$4"),
                    ("user_sourced_id", "s.user_sourced_id"),
                    ("role_family", "s.role_family"),
                    ("state", "'district'"),
                ],
            );
            tx.execute(
                &format!(
                    "INSERT INTO outbox_events (district_id, run_id, event_type, subject_id, payload, created_at) \
                     SELECT $2, $1, 'account.provisioned', s.new_account_id, {payload}, $3 FROM stage_accounts s \
                     WHERE s.run_id = $1 AND {NEW} ORDER BY s.user_sourced_id"
                ),
                &params,
            )
            .await?;
        }
        if decided.ambiguous > 0 {
            ambiguous = tx
                .fetch_all(
                    &format!(
                        "SELECT s.user_sourced_id, s.candidates, s.claimants FROM stage_accounts s \
                         WHERE s.run_id = $1 AND {AMBIGUOUS} ORDER BY s.user_sourced_id LIMIT $2"
                    ),
                    &args![run_id, max_listed],
                )
                .await?;
        }
        if staged > 0 {
            tx.execute(
                "DELETE FROM stage_accounts WHERE run_id = $1",
                &args![run_id],
            )
            .await?;
        }
    }

    // Roster status follows the user: removed → No Longer Rostered, back → Rostered.
    let transitions = [
        (
            changes.users_removed,
            RosterStatus::Rostered,
            RosterStatus::NoLongerRostered,
            "u.deleted_at IS NOT NULL",
        ),
        (
            changes.users_entered_or_changed,
            RosterStatus::NoLongerRostered,
            RosterStatus::Rostered,
            "u.deleted_at IS NULL",
        ),
    ];
    for (needed, from, to, user_state) in transitions {
        if !needed {
            continue;
        }
        let which = format!(
            "k.district_id = $2 AND k.roster_status = '{from}' AND EXISTS (SELECT 1 FROM users u \
             WHERE u.district_id = $2 AND u.sourced_id = k.user_sourced_id AND {user_state})",
            from = from.as_str()
        );
        let payload = outbox::json_object_sql(
            backend,
            &[
                ("account_id", "k.account_id"),
                ("district", "$4"),
                ("user_sourced_id", "k.user_sourced_id"),
                ("roster_status", &format!("'{}'", to.as_str())),
            ],
        );
        let changed = tx
            .execute(
                &format!(
                    "INSERT INTO outbox_events (district_id, run_id, event_type, subject_id, payload, created_at) \
                     SELECT $2, $1, 'account.roster_status_changed', k.account_id, {payload}, $3 \
                     FROM account_links k WHERE {which} ORDER BY k.user_sourced_id"
                ),
                &params,
            )
            .await?;
        if changed > 0 {
            tx.execute(
                &format!(
                    "UPDATE account_links AS k SET roster_status = '{to}' WHERE {which}",
                    to = to.as_str()
                ),
                &args![run_id, district.id],
            )
            .await?;
        }
        match to {
            RosterStatus::NoLongerRostered => counts.no_longer_rostered = changed,
            RosterStatus::Rostered => counts.rostered_again = changed,
        }
    }
    Ok((counts, ambiguous))
}

/// An account as a district sees it: through its link there.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct LinkedAccount {
    pub id: String,
    pub state: String,
    pub role_family: String,
    pub user_sourced_id: String,
    pub roster_status: String,
    pub matched_by: String,
    pub linked_at: DateTime<Utc>,
}

const LINKED_COLUMNS: &str = "a.id, a.state, a.role_family, k.user_sourced_id, k.roster_status, \
     k.matched_by, k.linked_at FROM account_links k JOIN accounts a ON a.id = k.account_id";

/// A page of the accounts linked in a district (by user sourcedId), and how many there are.
pub async fn list_linked(
    db: &Db,
    district_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<LinkedAccount>, i64), StoreError> {
    let rows = db
        .conn()
        .fetch_all(
            &format!(
                "SELECT {LINKED_COLUMNS} WHERE k.district_id = $1 ORDER BY k.user_sourced_id LIMIT $2 OFFSET $3"
            ),
            &args![district_id, limit, offset],
        )
        .await?;
    let total = db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM account_links WHERE district_id = $1",
            &args![district_id],
        )
        .await?;
    Ok((rows, total))
}

/// An account linked in a district; `None` when it is not linked there (whatever else it is).
pub async fn find_linked(
    db: &Db,
    district_id: i64,
    account_id: &str,
) -> Result<Option<LinkedAccount>, StoreError> {
    db.conn()
        .fetch_optional(
            &format!("SELECT {LINKED_COLUMNS} WHERE k.district_id = $1 AND k.account_id = $2"),
            &args![district_id, account_id],
        )
        .await
}

/// An account as the platform's operator sees it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub state: String,
    pub role_family: String,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ACCOUNT_COLUMNS: &str =
    "id, state, role_family, email, given_name, family_name, created_at, updated_at";

/// Creates a grassroots account (someone signed up on their own).
pub async fn create_grassroots(
    db: &Db,
    account: &NewGrassroots,
    now: DateTime<Utc>,
) -> Result<AccountRow, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    db.conn()
        .execute(
            "INSERT INTO accounts (id, state, role_family, email, email_normalized, given_name, family_name, \
               created_at, updated_at) VALUES ($1, 'grassroots', $2, $3, $4, $5, $6, $7, $7)",
            &args![
                id.as_str(),
                account.role_family.as_str(),
                account.email.as_str(),
                account.email_normalized.as_str(),
                account.given_name.as_str(),
                account.family_name.as_str(),
                now
            ],
        )
        .await?;
    find(db, &id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("account {id}")))
}

pub async fn find(db: &Db, id: &str) -> Result<Option<AccountRow>, StoreError> {
    db.conn()
        .fetch_optional(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"),
            &args![id],
        )
        .await
}
