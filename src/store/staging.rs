//! The staging area: one run's incoming records, written in bulk before anything is compared or
//! applied. Staged rows are disposable; live tables are only touched by `sync_apply`.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::bulk::copy_field;
use super::tables::KindTables;
use super::{Arg, Db, StoreError, Tx};
use crate::args;
use crate::domain::records::{
    Column, ColumnType, Mode, RecordKind, RecordStatus, SourceRecord, Value,
};

/// The SQL predicate "this live row is in effect" for a kind (alias `l`).
pub fn active_predicate(kind: RecordKind, alias: &str) -> String {
    match kind {
        RecordKind::Classes => {
            format!("{alias}.deleted_at IS NULL AND {alias}.detached_at IS NULL")
        }
        _ => format!("{alias}.deleted_at IS NULL"),
    }
}

fn stage_columns(kind: RecordKind) -> String {
    let mut cols = String::from("run_id, line, sourced_id, deleting, hash");
    for c in kind.columns() {
        cols.push_str(", ");
        cols.push_str(c.name);
    }
    cols.push_str(", extra");
    cols
}

fn value_arg(value: &Value) -> Arg {
    match value {
        Value::Null => Arg::OptText(None),
        Value::Text(s) => Arg::Text(s.clone()),
        Value::Date(d) => Arg::Date(*d),
        Value::Bool(b) => Arg::Bool(*b),
    }
}

/// A typed NULL for a column, so that PostgreSQL sees the right parameter type.
fn null_arg(ty: ColumnType) -> Arg {
    match ty {
        ColumnType::Date => Arg::OptDate(None),
        ColumnType::Bool => Arg::OptBool(None),
        ColumnType::Text | ColumnType::List => Arg::OptText(None),
    }
}

/// Writes records of one kind to its staging table.
pub async fn stage(
    db: &Db,
    run_id: &str,
    kind: RecordKind,
    records: &[SourceRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    match db {
        Db::Sqlite(_) => stage_with_values(db, run_id, kind, records).await,
        Db::Postgres(pool) => stage_with_copy(pool, run_id, kind, records).await,
    }
}

/// SQLite: multi-row VALUES statements in one transaction.
async fn stage_with_values(
    db: &Db,
    run_id: &str,
    kind: RecordKind,
    records: &[SourceRecord],
) -> Result<(), StoreError> {
    let columns = kind.columns();
    let per_row = 6 + columns.len();
    // SQLite allows 32766 parameters per statement.
    let rows_per_statement = (30_000 / per_row).min(1000);
    let mut tx = db.begin().await?;
    for chunk in records.chunks(rows_per_statement) {
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            kind.stage_table(),
            stage_columns(kind)
        );
        let mut params: Vec<Arg> = Vec::with_capacity(chunk.len() * per_row);
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for j in 0..per_row {
                if j > 0 {
                    sql.push(',');
                }
                // Plain `?`: SQLite looks `$n` names up one by one, which is quadratic here.
                let _ = j;
                sql.push('?');
            }
            sql.push(')');
            params.push(Arg::Text(run_id.to_string()));
            params.push(Arg::I64(r.line as i64));
            params.push(Arg::Text(r.sourced_id.clone()));
            params.push(Arg::Bool(r.status == RecordStatus::ToBeDeleted));
            params.push(Arg::I64(r.content_hash()));
            for (value, col) in r.values.iter().zip(columns) {
                params.push(match value {
                    Value::Null => null_arg(col.ty),
                    v => value_arg(v),
                });
            }
            params.push(Arg::OptText(r.extra.clone()));
        }
        tx.execute(&sql, &params).await?;
    }
    tx.commit().await
}

/// PostgreSQL: `COPY … FROM STDIN` in text format.
async fn stage_with_copy(
    pool: &sqlx::PgPool,
    run_id: &str,
    kind: RecordKind,
    records: &[SourceRecord],
) -> Result<(), StoreError> {
    let mut buf = String::with_capacity(records.len() * 160);
    for r in records {
        copy_field(&mut buf, Some(run_id));
        buf.push('\t');
        write!(buf, "{}\t", r.line).expect("write to String");
        copy_field(&mut buf, Some(&r.sourced_id));
        buf.push('\t');
        buf.push_str(if r.status == RecordStatus::ToBeDeleted {
            "t"
        } else {
            "f"
        });
        write!(buf, "\t{}", r.content_hash()).expect("write to String");
        for value in &r.values {
            buf.push('\t');
            match value {
                Value::Null => buf.push_str("\\N"),
                Value::Text(s) => copy_field(&mut buf, Some(s)),
                Value::Date(d) => write!(buf, "{d}").expect("write to String"),
                Value::Bool(b) => buf.push(if *b { 't' } else { 'f' }),
            }
        }
        buf.push('\t');
        copy_field(&mut buf, r.extra.as_deref());
        buf.push('\n');
    }
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {} ({}) FROM STDIN",
            kind.stage_table(),
            stage_columns(kind)
        ))
        .await?;
    copy.send(buf.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Refreshes PostgreSQL's statistics on tables that just grew: without them the planner takes a
/// freshly loaded table for empty and validates by nested loops. (SQLite plans by its indexes.)
pub(super) async fn refresh_statistics<T: AsRef<str>>(
    tx: &mut Tx,
    tables: &[T],
) -> Result<(), StoreError> {
    if tx.backend() == super::Backend::Postgres {
        for table in tables {
            tx.execute(&format!("ANALYZE {}", table.as_ref()), &[])
                .await?;
        }
    }
    Ok(())
}

/// Refreshes statistics on the staging tables of these kinds, once they are loaded.
pub async fn analyze_staged(db: &Db, kinds: &[RecordKind]) -> Result<(), StoreError> {
    if kinds.is_empty() {
        return Ok(());
    }
    let tables: Vec<String> = kinds.iter().map(|k| k.stage_table()).collect();
    let mut tx = db.begin().await?;
    refresh_statistics(&mut tx, &tables).await?;
    tx.commit().await
}

/// A sourcedId given twice in one file.
#[derive(Debug, sqlx::FromRow)]
pub struct Duplicate {
    pub sourced_id: String,
    pub first_line: i64,
    pub line: i64,
}

pub async fn duplicates(
    db: &Db,
    run_id: &str,
    kind: RecordKind,
    limit: i64,
) -> Result<Vec<Duplicate>, StoreError> {
    db.conn()
        .fetch_all(
            &format!(
                "SELECT sourced_id, MIN(line) AS first_line, MAX(line) AS line FROM {} \
                 WHERE run_id = $1 GROUP BY sourced_id HAVING COUNT(*) > 1 ORDER BY MIN(line) LIMIT $2",
                kind.stage_table()
            ),
            &args![run_id, limit],
        )
        .await
}

/// A reference to a record that is neither in the run nor (where the run allows) live.
/// Drops every staged copy of a record but the last (the highest line or offset), returning how
/// many were dropped: a source paging by offset over a collection that changes under it can
/// return a record twice, and the later copy is the newer one.
pub async fn drop_earlier_duplicates(
    db: &Db,
    run_id: &str,
    kind: RecordKind,
) -> Result<u64, StoreError> {
    let stage = kind.stage_table();
    db.conn()
        .execute(
            &format!(
                "DELETE FROM {stage} WHERE run_id = $1 AND EXISTS (SELECT 1 FROM {stage} later \
                 WHERE later.run_id = {stage}.run_id AND later.sourced_id = {stage}.sourced_id \
                 AND later.line > {stage}.line)"
            ),
            &args![run_id],
        )
        .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct Dangling {
    pub line: i64,
    pub sourced_id: String,
    pub value: String,
}

/// SQL: does `value_sql` name a record of `target` that will exist after this run?
fn resolves(target: RecordKind, target_mode: Option<Mode>, value_sql: &str) -> String {
    let stage = target.stage_table();
    let mut sql = format!(
        "EXISTS (SELECT 1 FROM {stage} x WHERE x.run_id = $1 AND x.sourced_id = {value_sql} AND NOT x.deleting)"
    );
    if target_mode != Some(Mode::Bulk) {
        write!(
            sql,
            " OR EXISTS (SELECT 1 FROM {live} l WHERE l.district_id = $2 AND l.sourced_id = {value_sql} AND {active} \
             AND NOT EXISTS (SELECT 1 FROM {stage} y WHERE y.run_id = $1 AND y.sourced_id = l.sourced_id AND y.deleting))",
            live = target.table(),
            active = active_predicate(target, "l"),
        )
        .expect("write to String");
    }
    sql
}

/// References in one column of `kind` that resolve nowhere.
pub async fn dangling_references(
    db: &Db,
    run_id: &str,
    district_id: i64,
    (kind, column): (RecordKind, &Column),
    target_mode: Option<Mode>,
    limit: i64,
) -> Result<Vec<Dangling>, StoreError> {
    let target = column.references.expect("a reference column");
    let column = column.name;
    let sql = format!(
        "SELECT s.line, s.sourced_id, s.{column} AS value FROM {stage} s \
         WHERE s.run_id = $1 AND NOT s.deleting AND s.{column} IS NOT NULL AND NOT ({resolves}) \
         ORDER BY s.line LIMIT $3",
        stage = kind.stage_table(),
        resolves = resolves(target, target_mode, &format!("s.{column}")),
    );
    db.conn()
        .fetch_all(&sql, &args![run_id, district_id, limit])
        .await
}

/// Every sourcedId of `kind` that will exist after this run. Used for list-valued references,
/// which only point at small kinds (orgs, academic sessions).
pub async fn known_ids(
    db: &Db,
    run_id: &str,
    district_id: i64,
    kind: RecordKind,
    mode: Option<Mode>,
) -> Result<HashSet<String>, StoreError> {
    let mut sql = format!(
        "SELECT sourced_id FROM {} WHERE run_id = $1 AND NOT deleting",
        kind.stage_table()
    );
    if mode != Some(Mode::Bulk) {
        write!(
            sql,
            " UNION SELECT l.sourced_id FROM {live} l WHERE l.district_id = $2 AND {active} \
             AND NOT EXISTS (SELECT 1 FROM {stage} y WHERE y.run_id = $1 AND y.sourced_id = l.sourced_id AND y.deleting)",
            live = kind.table(),
            active = active_predicate(kind, "l"),
            stage = kind.stage_table(),
        )
        .expect("write to String");
    }
    Ok(db
        .conn()
        .strings(&sql, &args![run_id, district_id])
        .await?
        .into_iter()
        .collect())
}

pub async fn staged_rows(db: &Db, run_id: &str) -> Result<i64, StoreError> {
    let mut total = 0;
    for kind in RecordKind::ALL {
        total += db
            .conn()
            .scalar(
                &format!(
                    "SELECT COUNT(*) FROM {} WHERE run_id = $1",
                    kind.stage_table()
                ),
                &args![run_id],
            )
            .await?;
    }
    Ok(total)
}

/// Removes a run's staged rows.
pub async fn clear(db: &Db, run_id: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    clear_in(&mut tx, run_id).await?;
    tx.commit().await
}

/// Removes every staged row of a run, whatever stage it is in.
pub async fn clear_in(tx: &mut Tx, run_id: &str) -> Result<(), StoreError> {
    let tables = RecordKind::ALL
        .iter()
        .map(|k| k.stage_table())
        .chain(
            [
                "stage_coaching",
                "stage_coaching_marks",
                "stage_coaching_stale",
            ]
            .map(String::from),
        )
        .collect();
    clear_tables_in(tx, run_id, tables).await
}

/// Removes a run's staged rows of `kinds` only: for a run that is known to have staged nothing
/// else (an applied run whose coaching stages were emptied by the derivation itself), this
/// saves a statement or two per other stage, which an unchanged import would notice.
pub async fn clear_kinds_in(
    tx: &mut Tx,
    run_id: &str,
    kinds: &[RecordKind],
) -> Result<(), StoreError> {
    let tables: Vec<String> = kinds.iter().map(|k| k.stage_table()).collect();
    clear_tables_in(tx, run_id, tables).await
}

async fn clear_tables_in(tx: &mut Tx, run_id: &str, tables: Vec<String>) -> Result<(), StoreError> {
    for table in tables {
        let emptied = match tx.backend() {
            super::Backend::Sqlite => emptied_whole_on_sqlite(tx, run_id, &table).await?,
            super::Backend::Postgres => emptied_on_postgres(tx, run_id, &table).await?,
        };
        if !emptied {
            tx.execute(
                &format!("DELETE FROM {table} WHERE run_id = $1"),
                &args![run_id],
            )
            .await?;
        }
    }
    Ok(())
}

/// SQLite empties a whole table far faster than it deletes rows one index entry at a time.
/// Inside a write transaction no other writer can stage meanwhile, so when no other run has rows
/// there, emptying the table removes exactly this run's rows.
async fn emptied_whole_on_sqlite(
    tx: &mut Tx,
    run_id: &str,
    table: &str,
) -> Result<bool, StoreError> {
    if other_runs_staged(tx, run_id, table).await? {
        return Ok(false);
    }
    tx.execute(&format!("DELETE FROM {table}"), &[]).await?;
    Ok(true)
}

/// Whether another run has rows in the stage `table`: two index look-ups, one on each side of
/// this run's key (`run_id <> $1` would walk every row of this run's to find none).
async fn other_runs_staged(tx: &mut Tx, run_id: &str, table: &str) -> Result<bool, StoreError> {
    let others = tx
        .scalar(
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE run_id < $1 \
                 UNION ALL SELECT 1 FROM {table} WHERE run_id > $1 LIMIT 1) AS other"
            ),
            &args![run_id],
        )
        .await?;
    Ok(others > 0)
}

/// PostgreSQL's `DELETE` leaves the rows in the table, dead, until a vacuum comes round, and
/// every scan of the stage by the next run reads them all (a first import of 100,000 students
/// leaves 732,000 staged enrollments, about 15,000 pages, in a stage the next delta scans a dozen
/// times). `TRUNCATE` leaves nothing, but needs the table to itself until this transaction ends:
/// it is used only when no other transaction holds the table at that moment (no run waits on
/// another's) and no other run, a held one say, has rows in it. Otherwise: `false`, and nothing
/// was changed or kept locked. A table holding none of this run's rows is left alone (`true`:
/// nothing to clear), neither locked nor truncated: a failed run clears every stage, most of
/// them untouched.
async fn emptied_on_postgres(tx: &mut Tx, run_id: &str, table: &str) -> Result<bool, StoreError> {
    let mine = tx
        .scalar(
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE run_id = $1 LIMIT 1) AS mine"
            ),
            &args![run_id],
        )
        .await?;
    if mine == 0 {
        return Ok(true);
    }
    tx.execute("SAVEPOINT stage_truncate", &[]).await?;
    let locked = tx
        .execute(
            &format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE NOWAIT"),
            &[],
        )
        .await;
    let alone = match locked {
        Ok(_) => !other_runs_staged(tx, run_id, table).await?,
        Err(e) if e.is_lock_unavailable() => false,
        Err(e) => return Err(e),
    };
    if !alone {
        // Rolling back to the savepoint lets go of the lock taken after it.
        tx.execute("ROLLBACK TO SAVEPOINT stage_truncate", &[])
            .await?;
        return Ok(false);
    }
    tx.execute(&format!("TRUNCATE {table}"), &[]).await?;
    tx.execute("RELEASE SAVEPOINT stage_truncate", &[]).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_the_characters_copy_treats_specially() {
        let mut buf = String::new();
        copy_field(&mut buf, Some("a\tb\\c\nd\re"));
        assert_eq!(buf, "a\\tb\\\\c\\nd\\re");
        buf.clear();
        copy_field(&mut buf, None);
        assert_eq!(buf, "\\N");
    }
}
