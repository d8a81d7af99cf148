//! Reading roster records back, always scoped to one district.

use std::collections::HashMap;
use std::sync::Mutex;

use super::staging::active_predicate;
use super::tables::KindTables;
use super::{Arg, Db, StoreError};
use crate::args;
use crate::domain::district::District;
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

/// One page of a listing. The page starts at the `offset`-th listed key, found on the key's
/// index alone, instead of `OFFSET` stepping over whole rows; `sourced_id` is unique per
/// district, so the rows are the same. Past the end the key is NULL and the page empty.
fn page_sql(kind: RecordKind) -> String {
    let table = kind.table();
    format!(
        "SELECT {} FROM {table} r WHERE r.district_id = $1 AND {} AND r.sourced_id >= \
         (SELECT o.sourced_id FROM {table} o WHERE o.district_id = $1 AND {} \
          ORDER BY o.sourced_id LIMIT 1 OFFSET $3) \
         ORDER BY r.sourced_id LIMIT $2",
        select_list(kind, "r"),
        listed(kind, "r"),
        listed(kind, "o")
    )
}

/// Listing totals per district and record type, each kept with the roster version it was
/// counted at. Listings change only when a sync applies (which bumps the version), so paging
/// through a district counts its rows once, not once per page; several gateways sharing a
/// database stay right because every request reads the district's current version.
#[derive(Debug, Default)]
pub struct ListingTotals {
    counted: Mutex<HashMap<(i64, RecordKind), (i64, i64)>>,
}

impl ListingTotals {
    fn get(&self, district_id: i64, kind: RecordKind, version: i64) -> Option<i64> {
        let counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        counted
            .get(&(district_id, kind))
            .filter(|(at, _)| *at == version)
            .map(|(_, total)| *total)
    }

    fn put(&self, district_id: i64, kind: RecordKind, version: i64, total: i64) {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counted
            .entry((district_id, kind))
            .or_insert((version, total));
        // A request that read an older version may finish last: it must not undo a newer count.
        if entry.0 <= version {
            *entry = (version, total);
        }
    }
}

pub async fn list(
    db: &Db,
    totals: &ListingTotals,
    district: &District,
    kind: RecordKind,
    limit: i64,
    offset: i64,
) -> Result<Page, StoreError> {
    let rows = db
        .conn()
        .text_rows(&page_sql(kind), &args![district.id, limit, offset])
        .await?;
    let total = match totals.get(district.id, kind, district.roster_version) {
        Some(total) => total,
        None => {
            let total = db
                .conn()
                .scalar(
                    &format!(
                        "SELECT COUNT(*) FROM {} r WHERE r.district_id = $1 AND {}",
                        kind.table(),
                        listed(kind, "r")
                    ),
                    &args![district.id],
                )
                .await?;
            totals.put(district.id, kind, district.roster_version, total);
            total
        }
    };
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

/// Who `$2` coaches (`as_coach`) or who coaches `$2`, in district `$1`. Either side is read
/// through an index that holds the whole key in the answer's order: the primary key for a
/// coach, `coaching_sources_student_idx` for a student.
fn coaching_sql(as_coach: bool) -> String {
    let (me, other) = if as_coach {
        ("teacher_sourced_id", "student_sourced_id")
    } else {
        ("student_sourced_id", "teacher_sourced_id")
    };
    format!(
        "SELECT s.{other} AS other_sourced_id, u.given_name, u.family_name, s.source_type, s.source_id, \
                k.title AS source_title \
         FROM coaching_sources s \
         LEFT JOIN users u ON u.district_id = s.district_id AND u.sourced_id = s.{other} \
         LEFT JOIN classes k ON k.district_id = s.district_id AND k.sourced_id = s.source_id AND s.source_type = 'class' \
         WHERE s.district_id = $1 AND s.{me} = $2 \
         ORDER BY s.{other}, s.source_type, s.source_id"
    )
}

/// Who `user` coaches (`as_coach`) or who coaches `user`, one row per source.
pub async fn coaching(
    db: &Db,
    district_id: i64,
    user: &str,
    as_coach: bool,
) -> Result<Vec<CoachingLink>, StoreError> {
    db.conn()
        .fetch_all(&coaching_sql(as_coach), &args![district_id, user])
        .await
}

/// Which of `users` are live users of the district, in one statement per thousand.
pub async fn live_users_among(
    db: &Db,
    district_id: i64,
    users: &[&str],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut live = std::collections::HashSet::new();
    for chunk in users.chunks(1000) {
        let mut bound = vec![Arg::from(district_id)];
        bound.extend(chunk.iter().map(|u| Arg::from(*u)));
        let rows: Vec<(String,)> = db
            .conn()
            .fetch_all(
                &format!(
                    "SELECT sourced_id FROM users WHERE district_id = $1 AND deleted_at IS NULL \
                     AND sourced_id IN ({})",
                    super::placeholders(2, chunk.len())
                ),
                &bound,
            )
            .await?;
        live.extend(rows.into_iter().map(|(id,)| id));
    }
    Ok(live)
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

#[cfg(test)]
mod tests {
    //! Query plans of the read path: a plan that walks a whole district turns a read of a
    //! few rows into one of tens of thousands, and no result-based test notices.

    use super::*;
    use crate::store::query_plans::{databases, plan};
    use crate::store::Backend;

    #[tokio::test]
    async fn a_students_coaches_are_read_through_the_student_index_without_sorting() {
        for each in databases().await {
            let backend = each.db.backend();
            let plan = plan(&each.db, &coaching_sql(false), &args![1_i64, "stu-1"]).await;
            each.finish().await;
            let coaching_lines: Vec<&str> = plan
                .lines()
                .filter(|l| l.contains("coaching_sources"))
                .collect();
            assert!(
                coaching_lines
                    .iter()
                    .all(|l| l.contains("coaching_sources_student_idx")),
                "{backend:?}: {plan}"
            );
            assert!(!coaching_lines.is_empty(), "{plan}");
            assert!(
                !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
                "{backend:?} sorts: {plan}"
            );
        }
    }

    #[tokio::test]
    async fn a_coachs_students_are_read_through_the_primary_key_without_sorting() {
        for each in databases().await {
            let backend = each.db.backend();
            let plan = plan(&each.db, &coaching_sql(true), &args![1_i64, "tch-1"]).await;
            each.finish().await;
            let coaching_line = plan
                .lines()
                .find(|l| l.contains("coaching_sources"))
                .unwrap_or_default();
            assert!(
                coaching_line.contains("teacher_sourced_id")
                    || coaching_line.contains("coaching_sources_pkey"),
                "{backend:?}: {plan}"
            );
            assert!(
                !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
                "{backend:?} sorts: {plan}"
            );
        }
    }

    #[tokio::test]
    async fn a_page_of_users_is_found_on_the_key_index() {
        for each in databases().await {
            let backend = each.db.backend();
            let sql = page_sql(RecordKind::Users);
            let plan = plan(&each.db, &sql, &args![1_i64, 100_i64, 5000_i64]).await;
            each.finish().await;
            if backend == Backend::Sqlite {
                // The rows before the page are skipped on the covering key index, not read.
                assert!(plan.contains("COVERING INDEX"), "{plan}");
            }
            assert!(
                !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
                "{backend:?} sorts: {plan}"
            );
        }
    }
}
