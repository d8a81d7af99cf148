//! Reading roster records back, always scoped to one district.

use super::staging::active_predicate;
use super::tables::KindTables;
use super::{Db, StoreError};
use crate::args;
use crate::domain::records::{ColumnType, RecordKind};

/// A stored record: its columns as text in descriptor order.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub sourced_id: String,
    /// False once the record left the roster (a tombstone).
    pub active: bool,
    /// Classes only: kept but no longer updated.
    pub archived: bool,
    pub values: Vec<Option<String>>,
    pub extra: Option<String>,
}

fn select_list(kind: RecordKind, alias: &str) -> String {
    let mut cols = vec![
        format!("{alias}.sourced_id"),
        format!("CASE WHEN {alias}.deleted_at IS NULL THEN 'y' ELSE 'n' END"),
    ];
    cols.push(if kind == RecordKind::Classes {
        format!("CASE WHEN {alias}.detached_at IS NULL THEN 'n' ELSE 'y' END")
    } else {
        "'n'".into()
    });
    for c in kind.columns() {
        cols.push(match c.ty {
            ColumnType::Text | ColumnType::List => format!("{alias}.{}", c.name),
            _ => format!("CAST({alias}.{} AS TEXT)", c.name),
        });
    }
    cols.push(format!("{alias}.extra"));
    cols.join(", ")
}

fn to_record(row: Vec<Option<String>>) -> StoredRecord {
    let mut it = row.into_iter();
    let sourced_id = it.next().flatten().unwrap_or_default();
    let active = it.next().flatten().as_deref() == Some("y");
    let archived = it.next().flatten().as_deref() == Some("y");
    let mut values: Vec<Option<String>> = it.collect();
    let extra = values.pop().flatten();
    StoredRecord {
        sourced_id,
        active,
        archived,
        values,
        extra,
    }
}

/// Which records a listing shows: users stay listed after leaving the roster (as "No Longer
/// Rostered"), archived classes stay listed; other tombstones are hidden.
fn listed(kind: RecordKind, alias: &str) -> String {
    match kind {
        RecordKind::Users => "TRUE".into(),
        RecordKind::Classes => format!("{alias}.deleted_at IS NULL"),
        _ => active_predicate(kind, alias),
    }
}

pub struct Page {
    pub records: Vec<StoredRecord>,
    pub total: i64,
}

pub async fn list(
    db: &Db,
    district_id: i64,
    kind: RecordKind,
    limit: i64,
    offset: i64,
) -> Result<Page, StoreError> {
    let table = kind.table();
    let filter = listed(kind, "r");
    let rows = db
        .conn()
        .text_rows(
            &format!(
                "SELECT {} FROM {table} r WHERE r.district_id = $1 AND {filter} ORDER BY r.sourced_id LIMIT $2 OFFSET $3",
                select_list(kind, "r")
            ),
            &args![district_id, limit, offset],
        )
        .await?;
    let total = db
        .conn()
        .scalar(
            &format!("SELECT COUNT(*) FROM {table} r WHERE r.district_id = $1 AND {filter}"),
            &args![district_id],
        )
        .await?;
    Ok(Page {
        records: rows.into_iter().map(to_record).collect(),
        total,
    })
}

pub async fn get(
    db: &Db,
    district_id: i64,
    kind: RecordKind,
    sourced_id: &str,
) -> Result<Option<StoredRecord>, StoreError> {
    let rows = db
        .conn()
        .text_rows(
            &format!(
                "SELECT {} FROM {} r WHERE r.district_id = $1 AND r.sourced_id = $2 AND {}",
                select_list(kind, "r"),
                kind.table(),
                listed(kind, "r")
            ),
            &args![district_id, sourced_id],
        )
        .await?;
    Ok(rows.into_iter().next().map(to_record))
}

/// The classes the roster enrolls a user in (one row per class and role, whatever the
/// enrollments' dates; several enrollments in one class, one per term, are one row).
pub async fn classes_of_user(
    db: &Db,
    district_id: i64,
    user: &str,
) -> Result<Vec<(StoredRecord, String)>, StoreError> {
    let rows = db
        .conn()
        .text_rows(
            &format!(
                "SELECT DISTINCT {}, e.role FROM classes c JOIN enrollments e ON e.district_id = c.district_id \
                 AND e.class_sourced_id = c.sourced_id \
                 WHERE c.district_id = $1 AND e.user_sourced_id = $2 AND e.deleted_at IS NULL AND c.deleted_at IS NULL \
                 ORDER BY c.sourced_id, e.role",
                select_list(RecordKind::Classes, "c")
            ),
            &args![district_id, user],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|mut row| {
            let role = row.pop().flatten().unwrap_or_default();
            (to_record(row), role)
        })
        .collect())
}

/// One source of a coaching relationship, seen from one side.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CoachingLink {
    /// The person on the other side.
    pub other_sourced_id: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub source_type: String,
    pub source_id: String,
    pub source_title: Option<String>,
}

/// Who `user` coaches (`as_coach`) or who coaches `user`, one row per source.
pub async fn coaching(
    db: &Db,
    district_id: i64,
    user: &str,
    as_coach: bool,
) -> Result<Vec<CoachingLink>, StoreError> {
    let (me, other) = if as_coach {
        ("teacher_sourced_id", "student_sourced_id")
    } else {
        ("student_sourced_id", "teacher_sourced_id")
    };
    db.conn()
        .fetch_all(
            &format!(
                "SELECT s.{other} AS other_sourced_id, u.given_name, u.family_name, s.source_type, s.source_id, \
                        k.title AS source_title \
                 FROM coaching_sources s \
                 LEFT JOIN users u ON u.district_id = s.district_id AND u.sourced_id = s.{other} \
                 LEFT JOIN classes k ON k.district_id = s.district_id AND k.sourced_id = s.source_id AND s.source_type = 'class' \
                 WHERE s.district_id = $1 AND s.{me} = $2 \
                 ORDER BY s.{other}, s.source_type, s.source_id"
            ),
            &args![district_id, user],
        )
        .await
}

/// Does a user exist in the district (in or out of the roster)?
pub async fn user_exists(db: &Db, district_id: i64, user: &str) -> Result<bool, StoreError> {
    Ok(db
        .conn()
        .scalar(
            "SELECT COUNT(*) FROM users WHERE district_id = $1 AND sourced_id = $2",
            &args![district_id, user],
        )
        .await?
        > 0)
}
