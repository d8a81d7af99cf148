//! Comparing a run's staged rows with the live tables, and applying the difference: set-based
//! statements, so a district of any size is compared and applied without loading it.

use chrono::{DateTime, NaiveDate, Utc};

use super::known_records::ABSENT_LINE;
use super::staging::active_predicate;
use super::tables::KindTables;
use super::{outbox, Arg, Backend, Db, StoreError, Tx};
use crate::args;
use crate::domain::records::{Mode, RecordKind, COACHED_ROLE, COACHING_ROLES};
use crate::domain::run::CoachingCounts;
use crate::domain::thresholds::KindCounts;

#[derive(sqlx::FromRow)]
struct DiffRow {
    created: i64,
    updated: i64,
    unchanged: i64,
    deleted: i64,
}

/// What applying the run would do to one kind.
pub async fn diff(
    db: &Db,
    run_id: &str,
    district_id: i64,
    kind: RecordKind,
    mode: Mode,
) -> Result<KindCounts, StoreError> {
    let live = kind.table();
    let stage = kind.stage_table();
    let active = active_predicate(kind, "l");
    let row: DiffRow = db
        .conn()
        .fetch_optional(
            &format!(
                "SELECT \
                   COUNT(*) FILTER (WHERE NOT s.deleting AND NOT (l.sourced_id IS NOT NULL AND {active})) AS created, \
                   COUNT(*) FILTER (WHERE NOT s.deleting AND l.sourced_id IS NOT NULL AND {active} AND l.hash <> s.hash) AS updated, \
                   COUNT(*) FILTER (WHERE NOT s.deleting AND l.sourced_id IS NOT NULL AND {active} AND l.hash = s.hash) AS unchanged, \
                   COUNT(*) FILTER (WHERE s.deleting AND l.sourced_id IS NOT NULL AND {active}) AS deleted \
                 FROM {stage} s LEFT JOIN {live} l ON l.district_id = $2 AND l.sourced_id = s.sourced_id \
                 WHERE s.run_id = $1"
            ),
            &args![run_id, district_id],
        )
        .await?
        .expect("aggregate returns a row");
    let mut deleted = row.deleted;
    if mode == Mode::Bulk {
        deleted += db
            .conn()
            .scalar(
                &format!(
                    "SELECT COUNT(*) FROM {live} l WHERE l.district_id = $2 AND {active} \
                     AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.run_id = $1 AND s.sourced_id = l.sourced_id)"
                ),
                &args![run_id, district_id],
            )
            .await?;
    }
    Ok(KindCounts {
        created: row.created as u64,
        updated: row.updated as u64,
        deleted: deleted as u64,
        unchanged: row.unchanged as u64,
    })
}

/// Records of a kind in effect now (what thresholds compare against).
pub async fn live_count(db: &Db, district_id: i64, kind: RecordKind) -> Result<u64, StoreError> {
    let n = db
        .conn()
        .scalar(
            &format!(
                "SELECT COUNT(*) FROM {} l WHERE l.district_id = $1 AND {}",
                kind.table(),
                active_predicate(kind, "l")
            ),
            &args![district_id],
        )
        .await?;
    Ok(n as u64)
}

/// The predicate selecting live rows this run removes (alias `l`).
fn removed_predicate(kind: RecordKind, mode: Mode) -> String {
    let stage = kind.stage_table();
    // Driven by the (few) staged removals: SQLite would probe the stage once per live row for
    // the same predicate written as a correlated EXISTS.
    let explicit = format!(
        "l.sourced_id IN (SELECT s.sourced_id FROM {stage} s WHERE s.run_id = $1 AND s.deleting)"
    );
    let active = active_predicate(kind, "l");
    match mode {
        Mode::Delta => format!("l.district_id = $2 AND {active} AND {explicit}"),
        // Deleted explicitly or absent: no staged row keeps it (a run stages a sourcedId once).
        // One anti-join, where "explicitly OR absent" made PostgreSQL probe twice per live row.
        Mode::Bulk => format!(
            "l.district_id = $2 AND {active} AND NOT EXISTS \
             (SELECT 1 FROM {stage} s WHERE s.run_id = $1 AND s.sourced_id = l.sourced_id AND NOT s.deleting)"
        ),
    }
}

/// The sourcedIds of `kind` in effect that this run removes (compared as `mode`), if there are at
/// most `cap` of them.
pub async fn removed_ids(
    db: &Db,
    run_id: &str,
    district_id: i64,
    (kind, mode): (RecordKind, Mode),
    cap: i64,
) -> Result<Option<Vec<String>>, StoreError> {
    let ids = db
        .conn()
        .strings(
            &format!(
                "SELECT l.sourced_id FROM {live} l WHERE {removed} LIMIT $3",
                live = kind.table(),
                removed = removed_predicate(kind, mode),
            ),
            &args![run_id, district_id, cap + 1],
        )
        .await?;
    Ok((ids.len() as i64 <= cap).then_some(ids))
}

/// The live row of the staged row `s` (alias `l`), while it is in effect.
fn same_live_sql(kind: RecordKind) -> String {
    format!(
        "SELECT 1 FROM {live} l WHERE l.district_id = $2 AND l.sourced_id = s.sourced_id AND {active}",
        live = kind.table(),
        active = active_predicate(kind, "l"),
    )
}

/// The staged rows `s` of the run that update a live row `l` in effect whose content changed,
/// joined to whatever `join` adds.
fn updated_rows_sql(kind: RecordKind, join: &str) -> String {
    format!(
        "FROM {stage} s JOIN {live} l ON l.district_id = $2 AND l.sourced_id = s.sourced_id AND {active} \
         AND l.hash <> s.hash {join} WHERE s.run_id = $1 AND NOT s.deleting",
        stage = kind.stage_table(),
        live = kind.table(),
        active = active_predicate(kind, "l"),
    )
}

/// Every field of a kind as (column, OneRoster field name), its metadata included: what a
/// changed-fields list can name.
fn change_fields(kind: RecordKind) -> Vec<(&'static str, String)> {
    let mut fields: Vec<(&'static str, String)> = kind
        .columns()
        .iter()
        .map(|c| (c.name, c.field_name()))
        .collect();
    fields.push(("extra", "metadata".into()));
    fields
}

fn changed_sql(tx: &Tx, kind: RecordKind) -> String {
    let fields = change_fields(kind);
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(c, f)| (*c, f.as_str())).collect();
    outbox::json_value_sql(tx.backend(), &outbox::changed_fields_sql(&pairs, "l", "s"))
}

/// Writes the catalogue events one kind's changes make, from the staged rows against the live
/// ones (before they change), each kind in a few set-based statements:
///
/// - classes: `class.created`, `class.updated` (with the changed field names), and, when a class
///   leaves, `class.archived` if it was used (it is kept, detached) else `class.removed`;
/// - enrollments: `enrollment.added` / `enrollment.removed`; an enrollment whose class, user or
///   role changed is `enrollment.removed` (as it was) then `enrollment.added` (as it is), other
///   changes (dates, `primary`, metadata) make no event;
/// - users: `account.updated` for a changed user linked to an account (the changed field names,
///   never their values). Users entering or leaving are account events of provisioning.
///
/// Other kinds make no event: nobody subscribes to them.
async fn write_events(
    tx: &mut Tx,
    params: &[Arg],
    (kind, mode): (RecordKind, Mode),
    (planned, fresh): (KindCounts, bool),
) -> Result<(), StoreError> {
    use outbox::INSERT_EVENTS;
    let backend = tx.backend();
    let json = |members: &[(&str, &str)]| outbox::json_object_sql(backend, members);
    let stage = kind.stage_table();
    let live = kind.table();
    let created = if fresh {
        // Nothing to compare with: every staged row is new.
        format!("FROM {stage} s WHERE s.run_id = $1 AND NOT s.deleting")
    } else {
        format!(
            "FROM {stage} s WHERE s.run_id = $1 AND NOT s.deleting AND NOT EXISTS ({})",
            same_live_sql(kind)
        )
    };
    let updated = updated_rows_sql(kind, "");
    let removed = format!("FROM {live} l WHERE {}", removed_predicate(kind, mode));
    let mut statements = Vec::new();
    match kind {
        RecordKind::Classes => {
            let class_of = |a: &str| {
                json(&[
                    ("class", &format!("{a}.sourced_id")),
                    ("course", &format!("{a}.course_sourced_id")),
                    ("school", &format!("{a}.school_sourced_id")),
                ])
            };
            if planned.created > 0 {
                statements.push(format!(
                    "SELECT $2, $1, 'class.created', s.sourced_id, {data}, $3 {created}",
                    data = class_of("s")
                ));
            }
            if planned.updated > 0 {
                let data = json(&[
                    ("class", "s.sourced_id"),
                    ("changed", &changed_sql(tx, kind)),
                ]);
                statements.push(format!(
                    "SELECT $2, $1, 'class.updated', s.sourced_id, {data}, $3 {updated}"
                ));
            }
            if planned.deleted > 0 {
                // The detach below keeps exactly the used classes.
                statements.push(format!(
                    "SELECT $2, $1, CASE WHEN l.used_at IS NOT NULL THEN 'class.archived' ELSE 'class.removed' END, \
                     l.sourced_id, {data}, $3 {removed}",
                    data = class_of("l")
                ));
            }
        }
        RecordKind::Enrollments => {
            let enrollment_of = |a: &str| {
                json(&[
                    ("enrollment", &format!("{a}.sourced_id")),
                    ("class", &format!("{a}.class_sourced_id")),
                    ("user", &format!("{a}.user_sourced_id")),
                    ("role", &format!("{a}.role")),
                ])
            };
            if planned.created > 0 {
                statements.push(format!(
                    "SELECT $2, $1, 'enrollment.added', s.sourced_id, {data}, $3 {created}",
                    data = enrollment_of("s")
                ));
            }
            if planned.updated > 0 {
                let moved = "(l.class_sourced_id IS DISTINCT FROM s.class_sourced_id \
                     OR l.user_sourced_id IS DISTINCT FROM s.user_sourced_id OR l.role IS DISTINCT FROM s.role)";
                statements.push(format!(
                    "SELECT $2, $1, 'enrollment.removed', l.sourced_id, {data}, $3 {updated} AND {moved}",
                    data = enrollment_of("l")
                ));
                statements.push(format!(
                    "SELECT $2, $1, 'enrollment.added', s.sourced_id, {data}, $3 {updated} AND {moved}",
                    data = enrollment_of("s")
                ));
            }
            if planned.deleted > 0 {
                statements.push(format!(
                    "SELECT $2, $1, 'enrollment.removed', l.sourced_id, {data}, $3 {removed}",
                    data = enrollment_of("l")
                ));
            }
        }
        RecordKind::Users if planned.updated > 0 => {
            let data = json(&[
                ("account_id", "k.account_id"),
                ("user_sourced_id", "s.sourced_id"),
                ("changed", &changed_sql(tx, kind)),
            ]);
            // Joining the links keeps users without an account (guardians…) out.
            let linked = updated_rows_sql(
                kind,
                "JOIN account_links k ON k.district_id = $2 AND k.user_sourced_id = s.sourced_id",
            );
            statements.push(format!(
                "SELECT $2, $1, 'account.updated', k.account_id, {data}, $3 {linked}"
            ));
        }
        _ => {}
    }
    for select in statements {
        tx.execute(&format!("{INSERT_EVENTS} {select}"), params)
            .await?;
    }
    Ok(())
}

/// Applies one kind inside the run's transaction, writing the catalogue events its changes
/// make (see [`write_events`]).
/// `planned` is the run's diff for the kind, made under the district's sync lock: steps with
/// nothing to do are skipped, which is what makes a re-import of an unchanged roster cheap.
pub async fn apply_kind(
    tx: &mut Tx,
    run_id: &str,
    district_id: i64,
    (kind, mode): (RecordKind, Mode),
    planned: KindCounts,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let live = kind.table();
    let stage = kind.stage_table();
    let params = args![run_id, district_id, now];
    let fresh = planned.created > 0
        && planned.updated + planned.unchanged + planned.deleted == 0
        && district_has_none(tx, live, district_id).await?;

    // Events first: they describe the change against the state before it.
    write_events(tx, &params, (kind, mode), (planned, fresh)).await?;
    let same_live = same_live_sql(kind);
    let removed = removed_predicate(kind, mode);
    if planned.deleted > 0 {
        // Removal is a tombstone: the row (and anything hanging off it) stays. A class that was used
        // is detached (kept, shown archived) instead of removed.
        // A removal the engine staged for a record its bulk file no longer has is an absence.
        let reason = format!(
            "CASE WHEN EXISTS (SELECT 1 FROM {stage} s WHERE s.run_id = $1 AND s.sourced_id = l.sourced_id \
             AND s.deleting AND s.line <> {ABSENT_LINE}) THEN 'tobedeleted' ELSE 'absent_from_bulk' END"
        );
        if kind == RecordKind::Classes {
            tx.execute(
            &format!(
                "UPDATE {live} AS l SET detached_at = $3, last_run_id = $1 WHERE {removed} AND l.used_at IS NOT NULL"
            ),
            &params,
        )
        .await?;
        }
        tx.execute(
        &format!(
            "UPDATE {live} AS l SET deleted_at = $3, deleted_reason = {reason}, last_run_id = $1 WHERE {removed}"
        ),
        &params,
    )
    .await?;
    }
    if planned.created + planned.updated == 0 {
        return Ok(());
    }

    // New, changed and returning records.
    let cols: Vec<&str> = kind.columns().iter().map(|c| c.name).collect();
    let col_list = cols.join(", ");
    let select_list = cols
        .iter()
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut set_list = cols
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>();
    set_list.extend(
        [
            "extra = excluded.extra",
            "hash = excluded.hash",
            "updated_at = excluded.updated_at",
            "deleted_at = NULL",
            "deleted_reason = NULL",
            "last_run_id = excluded.last_run_id",
        ]
        .map(String::from),
    );
    if kind == RecordKind::Classes {
        set_list.push("detached_at = NULL".into());
    }
    if fresh {
        // A first import: no live row to compare with or conflict with, tombstones included.
        tx.execute(
            &format!(
                "INSERT INTO {live} (district_id, sourced_id, {col_list}, extra, hash, created_at, updated_at, last_run_id) \
                 SELECT $2, s.sourced_id, {select_list}, s.extra, s.hash, $3, $3, $1 FROM {stage} s \
                 WHERE s.run_id = $1 AND NOT s.deleting ORDER BY s.sourced_id"
            ),
            &params,
        )
        .await?;
        return Ok(());
    }
    tx.execute(
        &format!(
            "INSERT INTO {live} (district_id, sourced_id, {col_list}, extra, hash, created_at, updated_at, last_run_id) \
             SELECT $2, s.sourced_id, {select_list}, s.extra, s.hash, $3, $3, $1 FROM {stage} s \
             WHERE s.run_id = $1 AND NOT s.deleting AND NOT EXISTS ({same_live} AND l.hash = s.hash) \
             ORDER BY s.sourced_id \
             ON CONFLICT (district_id, sourced_id) DO UPDATE SET {sets}",
            sets = set_list.join(", "),
        ),
        &params,
    )
    .await?;
    Ok(())
}

/// Whether the district has no row at all in `table`, tombstones included.
async fn district_has_none(tx: &mut Tx, table: &str, district_id: i64) -> Result<bool, StoreError> {
    let any = tx
        .scalar(
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE district_id = $1 LIMIT 1) x"
            ),
            &args![district_id],
        )
        .await?;
    Ok(any == 0)
}

/// Refreshes statistics on the live tables a run grows (inside the applying transaction, so that
/// coaching derivation is planned on the new sizes).
pub async fn analyze_applied(tx: &mut Tx) -> Result<(), StoreError> {
    let grown = [
        RecordKind::Classes.table(),
        RecordKind::Users.table(),
        RecordKind::Enrollments.table(),
        "coaching_sources",
    ];
    super::staging::refresh_statistics(tx, &grown).await
}

/// Settles how PostgreSQL runs the applying transaction, for that transaction only (`SET
/// LOCAL`; nothing on SQLite):
/// - no JIT compilation. A run's set-based statements are planned on estimates that overshoot,
///   so PostgreSQL compiled statements that then ran in less time than the compiling took (0.3 s
///   of a 1 % delta's apply at 100,000 students);
/// - an index probe priced near a sequential read (`random_page_cost` 1.1, from the default 4,
///   which prices every probe as a read from a spinning disk). A delta's statements join a few
///   thousand staged rows with the district's tables, whose indexes the run has just read; at 4
///   PostgreSQL read all 732,000 enrollments, or all 800,000 coaching sources, in each of a dozen
///   statements (hash joins) rather than probe them by key: a 1 % delta's apply took 1.9-2.1 s,
///   and 0.7 s at 1.1. A first import, whose statements read every row, planned and took the same.
pub async fn settle_apply_transaction(tx: &mut Tx) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres {
        tx.execute("SET LOCAL jit = off", &[]).await?;
        tx.execute("SET LOCAL random_page_cost = 1.1", &[]).await?;
    }
    Ok(())
}

/// Refreshes statistics on the accounts and their links after a provisioning that filled them (a
/// first import). Planned as empty, the next delta's account statements walked every link of the
/// district to find the few hundred users it changed or removed (0.23–0.35 s each, three of them,
/// at 100,000 students).
pub async fn analyze_accounts(tx: &mut Tx) -> Result<(), StoreError> {
    super::staging::refresh_statistics(tx, &["account_links", "accounts"]).await
}

/// Refreshes statistics on the coaching sources after a derivation that filled them (a first
/// import), so that the next run's derivation is not planned on an empty table.
pub async fn analyze_coaching(tx: &mut Tx) -> Result<(), StoreError> {
    super::staging::refresh_statistics(tx, &["coaching_sources"]).await
}

/// Which classes a coaching derivation looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoachingScope {
    /// Every class of the district: coaching was never derived.
    AllClasses,
    /// The classes [`mark_coaching_classes`] wrote for the run; every other class's coaching is
    /// as the last derivation left it.
    MarkedClasses,
}

impl CoachingScope {
    /// The predicate "the class in `column` is looked at", written to drive the query: the
    /// marked classes are looked up, each by key, in the table `column` belongs to.
    fn drives(self, column: &str) -> String {
        match self {
            CoachingScope::AllClasses => "1 = 1".into(),
            CoachingScope::MarkedClasses => format!(
                "{column} IN (SELECT m.class_sourced_id FROM stage_coaching_classes m WHERE m.run_id = $1)"
            ),
        }
    }

    /// What follows `coaching_sources c` in a statement that looks at the sources of the
    /// classes in scope. SQLite, which plans without statistics, would rather read every source
    /// of the district through the covering index by student and test each against the marked
    /// classes (0.5–0.6 s for the removals of a 1 % delta at 100,000 students) than look up the
    /// marked classes' sources through the index by class (0.2 s): it is told to.
    fn sources_hint(self, backend: Backend) -> &'static str {
        match (self, backend) {
            (CoachingScope::MarkedClasses, Backend::Sqlite) => {
                " INDEXED BY coaching_sources_class_idx"
            }
            _ => "",
        }
    }

    /// The same predicate as a check on a row already found: a key lookup wherever it sits
    /// (inside a NOT, inside another subquery), where an IN list there can be re-read per row.
    fn includes(self, column: &str) -> String {
        match self {
            CoachingScope::AllClasses => "1 = 1".into(),
            CoachingScope::MarkedClasses => format!(
                "EXISTS (SELECT 1 FROM stage_coaching_classes m WHERE m.run_id = $1 AND m.class_sourced_id = {column})"
            ),
        }
    }
}

/// Writes, before the run's changes are applied (it compares staged rows with live ones), the
/// classes whose coaching can move:
/// - with the run's changes: classes an enrollment comes to, leaves or changes in (as it was and
///   as it will be), classes of users who come or go, and classes that come or go (a user's or
///   class's other changes move no coaching). `modes` are the planned kinds whose changes count,
///   each with the mode its staged rows are compared in (none: the run's changes mark nothing);
/// - with the day, when `day_moved` holds the last derivation's cut-off and this run's: classes
///   with an enrollment in effect whose end date lies between the two (in either order). An
///   enrollment counts while its end date is on or after the cut-off, so these are the only ones
///   that count on one day and not on the other.
///
/// Returns how many classes it marked.
pub async fn mark_coaching_classes(
    tx: &mut Tx,
    run_id: &str,
    district_id: i64,
    modes: &[(RecordKind, Mode)],
    day_moved: Option<(NaiveDate, NaiveDate)>,
) -> Result<u64, StoreError> {
    tx.execute(
        "DELETE FROM stage_coaching_classes WHERE run_id = $1",
        &args![run_id],
    )
    .await?;
    let mut marked = 0;
    if let Some(sql) = mark_coaching_classes_sql(modes) {
        marked += tx.execute(&sql, &args![run_id, district_id]).await?;
    }
    if let Some((from, to)) = day_moved {
        let (earlier, later) = (from.min(to), from.max(to));
        let args = args![run_id, district_id, earlier, later];
        marked += tx.execute(MARK_CLASSES_THE_DAY_MOVED, &args).await?;
    }
    // Even when none are marked: the derivation is then planned on an empty table, not on the
    // last run's classes.
    super::staging::refresh_statistics(tx, &["stage_coaching_classes"]).await?;
    Ok(marked)
}

/// The classes of enrollments in effect ending on or after `$3` and before `$4`, added to run
/// `$1`'s marked classes in district `$2`. The check for a class is written so that it is not a
/// range: on SQLite it made the district's enrollments be read in class order, each row a
/// look-up (0.52 s against 0.23 s at 100,000 students).
const MARK_CLASSES_THE_DAY_MOVED: &str =
    "INSERT INTO stage_coaching_classes (run_id, class_sourced_id) \
     SELECT DISTINCT $1, e.class_sourced_id FROM enrollments e \
     WHERE e.district_id = $2 AND e.deleted_at IS NULL AND (e.class_sourced_id IS NOT NULL) = TRUE \
     AND e.end_date >= $3 AND e.end_date < $4 \
     AND NOT EXISTS (SELECT 1 FROM stage_coaching_classes m WHERE m.run_id = $1 \
         AND m.class_sourced_id = e.class_sourced_id)";

/// The statement [`mark_coaching_classes`] writes the classes with (`$1` the run, `$2` the
/// district); `None` when the run has no kind that moves coaching.
fn mark_coaching_classes_sql(modes: &[(RecordKind, Mode)]) -> Option<String> {
    let mode_of = |kind| modes.iter().find(|(k, _)| *k == kind).map(|(_, m)| *m);
    let mut selects = Vec::new();
    if let Some(mode) = mode_of(RecordKind::Enrollments) {
        let joined = "FROM stage_enrollments s LEFT JOIN enrollments l \
             ON l.district_id = $2 AND l.sourced_id = s.sourced_id WHERE s.run_id = $1 AND NOT s.deleting";
        // As it will be (new, back, or changed), and as it was (changed).
        selects.push(format!(
            "SELECT s.class_sourced_id AS c {joined} AND (l.sourced_id IS NULL \
             OR l.deleted_at IS NOT NULL OR l.hash <> s.hash)"
        ));
        selects.push(format!(
            "SELECT l.class_sourced_id AS c {joined} AND l.deleted_at IS NULL AND l.hash <> s.hash"
        ));
        selects.push(format!(
            "SELECT l.class_sourced_id AS c FROM enrollments l WHERE {}",
            removed_predicate(RecordKind::Enrollments, mode)
        ));
    }
    if let Some(mode) = mode_of(RecordKind::Users) {
        selects.push(format!(
            "SELECT e.class_sourced_id AS c FROM enrollments e WHERE e.district_id = $2 AND e.user_sourced_id IN \
             (SELECT s.sourced_id FROM stage_users s WHERE s.run_id = $1 AND NOT s.deleting AND NOT EXISTS ({entering}) \
              UNION SELECT l.sourced_id FROM users l WHERE {leaving})",
            entering = same_live_sql(RecordKind::Users),
            leaving = removed_predicate(RecordKind::Users, mode),
        ));
    }
    if let Some(mode) = mode_of(RecordKind::Classes) {
        selects.push(format!(
            "SELECT s.sourced_id AS c FROM stage_classes s WHERE s.run_id = $1 AND NOT s.deleting AND NOT EXISTS ({})",
            same_live_sql(RecordKind::Classes)
        ));
        selects.push(format!(
            "SELECT l.sourced_id AS c FROM classes l WHERE {}",
            removed_predicate(RecordKind::Classes, mode)
        ));
    }
    if selects.is_empty() {
        return None;
    }
    Some(format!(
        // Written so that it is not a range on the class: SQLite pushes the outer
        // condition into each branch, and `class_sourced_id IS NOT NULL` there made it
        // read the removed enrollments through the index by class, all of them, rather
        // than each by key (0.66 s against 0.07 s in a 1 % delta at 100,000 students).
        "INSERT INTO stage_coaching_classes (run_id, class_sourced_id) \
         SELECT DISTINCT $1, x.c FROM ({}) x WHERE (x.c IS NOT NULL) = TRUE",
        selects.join(" UNION ")
    ))
}

/// Re-derives the coaching sources that come from district classes (those in `scope`): a teacher
/// or aide enrolled in a class coaches its students, while the class, both users and both
/// enrollments are in effect (an enrollment counts while `end_date >= cutoff`). Detached classes
/// keep what they had.
pub async fn derive_coaching(
    tx: &mut Tx,
    run_id: &str,
    district_id: i64,
    (cutoff, scope): (NaiveDate, CoachingScope),
    now: DateTime<Utc>,
) -> Result<CoachingCounts, StoreError> {
    let coaching_roles = COACHING_ROLES
        .iter()
        .map(|r| format!("'{r}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let params = args![run_id, district_id, cutoff, now];
    let pairs = format!(
        "SELECT t.user_sourced_id AS teacher, s.user_sourced_id AS student, t.class_sourced_id AS class \
         FROM enrollments t \
         JOIN enrollments s ON s.district_id = t.district_id AND s.class_sourced_id = t.class_sourced_id \
         JOIN classes c ON c.district_id = t.district_id AND c.sourced_id = t.class_sourced_id \
         JOIN users tu ON tu.district_id = t.district_id AND tu.sourced_id = t.user_sourced_id \
         JOIN users su ON su.district_id = s.district_id AND su.sourced_id = s.user_sourced_id \
         WHERE t.district_id = $2 AND t.role IN ({coaching_roles}) AND s.role = '{COACHED_ROLE}' \
           AND t.deleted_at IS NULL AND s.deleted_at IS NULL \
           AND c.deleted_at IS NULL AND c.detached_at IS NULL \
           AND tu.deleted_at IS NULL AND su.deleted_at IS NULL \
           AND (t.end_date IS NULL OR t.end_date >= $3) AND (s.end_date IS NULL OR s.end_date >= $3) \
           AND t.user_sourced_id <> s.user_sourced_id AND {in_scope}",
        in_scope = scope.drives("t.class_sourced_id"),
    );
    let (pair_event, pair_data) = pair_event_sql(tx.backend());
    let insert = outbox::INSERT_EVENTS;
    if district_has_none(tx, "coaching_sources", district_id).await? {
        // The district's first coaching: every derived source is new and nothing ends, so the
        // sources go straight in (in key order) and each pair's event is read back from them.
        tx.execute(
            &format!(
                "INSERT INTO coaching_sources (district_id, teacher_sourced_id, student_sourced_id, source_type, source_id, created_at) \
                 SELECT $2, p.teacher, p.student, 'class', p.class, $4 FROM (SELECT DISTINCT * FROM ({pairs}) d) p \
                 ORDER BY p.teacher, p.student, p.class"
            ),
            &params,
        )
        .await?;
        let started = tx
            .execute(
                &format!(
                    "{insert} \
                     SELECT $2, $1, 'coaching.added', {pair_event}, {pair_data}, $4 FROM \
                     (SELECT DISTINCT teacher_sourced_id, student_sourced_id FROM coaching_sources \
                      WHERE district_id = $2) c"
                ),
                &params,
            )
            .await?;
        clear_coaching_stages(tx, run_id).await?;
        return Ok(CoachingCounts { started, ended: 0 });
    }
    tx.execute(
        "DELETE FROM stage_coaching WHERE run_id = $1",
        &args![run_id],
    )
    .await?;
    tx.execute(
        &format!(
            "INSERT INTO stage_coaching (run_id, teacher_sourced_id, student_sourced_id, class_sourced_id) \
             SELECT $1, p.teacher, p.student, p.class FROM ({pairs}) p"
        ),
        &params,
    )
    .await?;

    super::staging::refresh_statistics(tx, &["stage_coaching".to_string()]).await?;
    let started = tx
        .execute(
            &format!(
                "{insert} \
                 SELECT DISTINCT $2, $1, 'coaching.added', {pair_event}, {pair_data}, $4 FROM stage_coaching c \
                 WHERE c.run_id = $1 AND NOT EXISTS (SELECT 1 FROM coaching_sources x WHERE x.district_id = $2 \
                   AND x.teacher_sourced_id = c.teacher_sourced_id AND x.student_sourced_id = c.student_sourced_id)"
            ),
            &params,
        )
        .await?;

    let (ended_pairs, stale_sources) = ended_coaching_sql(scope, tx.backend());
    let ended = tx.execute(&ended_pairs, &params).await?;
    tx.execute(&stale_sources, &params).await?;
    tx.execute(
        "INSERT INTO coaching_sources (district_id, teacher_sourced_id, student_sourced_id, source_type, source_id, created_at) \
         SELECT $2, d.teacher_sourced_id, d.student_sourced_id, 'class', d.class_sourced_id, $4 FROM stage_coaching d \
         WHERE d.run_id = $1 AND NOT EXISTS (SELECT 1 FROM coaching_sources x WHERE x.district_id = $2 \
             AND x.teacher_sourced_id = d.teacher_sourced_id AND x.student_sourced_id = d.student_sourced_id \
             AND x.source_type = 'class' AND x.source_id = d.class_sourced_id) \
         ORDER BY d.teacher_sourced_id, d.student_sourced_id ON CONFLICT DO NOTHING",
        &params,
    )
    .await?;
    clear_coaching_stages(tx, run_id).await?;
    Ok(CoachingCounts { started, ended })
}

/// The statements that end what a derivation no longer finds (parameters as in
/// [`derive_coaching`]): the `coaching.removed` events of pairs left with no source, then the
/// deletion of the stale sources, both over `stage_coaching` as the derivation filled it.
fn ended_coaching_sql(scope: CoachingScope, backend: Backend) -> (String, String) {
    // Class sources in scope this run no longer derives, except those of detached classes.
    let stale = format!(
        "c.district_id = $2 AND {in_scope} AND c.source_type = 'class' \
        AND NOT EXISTS (SELECT 1 FROM stage_coaching d WHERE d.run_id = $1 AND d.teacher_sourced_id = c.teacher_sourced_id \
            AND d.student_sourced_id = c.student_sourced_id AND d.class_sourced_id = c.source_id) \
        AND NOT EXISTS (SELECT 1 FROM classes k WHERE k.district_id = $2 AND k.sourced_id = c.source_id \
            AND k.deleted_at IS NULL AND k.detached_at IS NOT NULL)",
        in_scope = scope.drives("c.source_id"),
    );
    // A pair ends when no source of it is left: a source stays if it is not a class, a class out
    // of scope, or a detached class.
    let out_of_scope = format!("NOT ({})", scope.includes("o.source_id"));
    let by_class = scope.sources_hint(backend);
    let insert = outbox::INSERT_EVENTS;
    let (pair_event, pair_data) = pair_event_sql(backend);
    let ended = format!(
        "{insert} \
         SELECT DISTINCT $2, $1, 'coaching.removed', {pair_event}, {pair_data}, $4 FROM coaching_sources c{by_class} WHERE {stale} \
         AND NOT EXISTS (SELECT 1 FROM stage_coaching d WHERE d.run_id = $1 \
             AND d.teacher_sourced_id = c.teacher_sourced_id AND d.student_sourced_id = c.student_sourced_id) \
         AND NOT EXISTS (SELECT 1 FROM coaching_sources o WHERE o.district_id = $2 \
             AND o.teacher_sourced_id = c.teacher_sourced_id AND o.student_sourced_id = c.student_sourced_id \
             AND (o.source_type <> 'class' OR {out_of_scope} OR EXISTS (SELECT 1 FROM classes k WHERE k.district_id = $2 \
                 AND k.sourced_id = o.source_id AND k.deleted_at IS NULL AND k.detached_at IS NOT NULL)))"
    );
    let delete = format!("DELETE FROM coaching_sources AS c{by_class} WHERE {stale}");
    (ended, delete)
}

/// A coaching pair's event subject and payload, over a row `c` with its teacher and student.
fn pair_event_sql(backend: Backend) -> (&'static str, String) {
    let subject = "c.teacher_sourced_id || '/' || c.student_sourced_id";
    let data = outbox::json_object_sql(
        backend,
        &[
            ("teacher", "c.teacher_sourced_id"),
            ("student", "c.student_sourced_id"),
        ],
    );
    (subject, data)
}

async fn clear_coaching_stages(tx: &mut Tx, run_id: &str) -> Result<(), StoreError> {
    for table in ["stage_coaching", "stage_coaching_classes"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE run_id = $1"),
            &args![run_id],
        )
        .await?;
    }
    Ok(())
}

/// The cut-off date coaching was last derived with for a district, if ever.
pub async fn coaching_cutoff(
    tx: &mut Tx,
    district_id: i64,
) -> Result<Option<NaiveDate>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        coaching_cutoff: Option<NaiveDate>,
    }
    let row: Option<Row> = tx
        .fetch_optional(
            "SELECT coaching_cutoff FROM districts WHERE id = $1",
            &args![district_id],
        )
        .await?;
    Ok(row.and_then(|r| r.coaching_cutoff))
}

pub async fn set_coaching_cutoff(
    tx: &mut Tx,
    district_id: i64,
    cutoff: NaiveDate,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE districts SET coaching_cutoff = $1 WHERE id = $2",
        &args![cutoff, district_id],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! SQLite plans these statements without statistics, on a district's worth of rows as on
    //! none: the plans below are the ones a 1 % delta runs with. (PostgreSQL plans on
    //! statistics, so a plan over empty tables would prove nothing there.)

    use super::*;
    use crate::store::query_plans::{plan, sqlite};

    /// The plan's lines about the table read as `alias`.
    async fn sqlite_plan(sql: &str, args: &[Arg], alias: &str) -> (Vec<String>, String) {
        let each = sqlite().await;
        let plan = plan(&each.db, sql, args).await;
        each.finish().await;
        let lines = plan
            .lines()
            .filter(|l| l.contains(&format!(" {alias} ")))
            .map(str::to_string)
            .collect();
        (lines, plan)
    }

    #[tokio::test]
    async fn marking_a_deltas_classes_looks_its_live_enrollments_up_by_key_on_sqlite() {
        let modes = [
            (RecordKind::Users, Mode::Delta),
            (RecordKind::Classes, Mode::Delta),
            (RecordKind::Enrollments, Mode::Delta),
        ];
        let sql = mark_coaching_classes_sql(&modes).expect("enrollments move coaching");
        let (live, plan) = sqlite_plan(&sql, &args!["run-1", 1_i64], "l").await;
        assert!(!plan.contains("class_sourced_id>"), "{plan}");
        assert!(!live.is_empty(), "{plan}");
        assert!(
            live.iter()
                .all(|l| l.contains("(district_id=? AND sourced_id=?)")),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn a_new_days_classes_are_found_in_one_pass_over_the_enrollments_on_sqlite() {
        let args = args!["run-1", 1_i64, "2026-01-01", "2026-01-02"];
        let (enrollments, plan) = sqlite_plan(MARK_CLASSES_THE_DAY_MOVED, &args, "e").await;
        assert!(!plan.contains("class_sourced_id>"), "{plan}");
        assert_eq!(enrollments.len(), 1, "{plan}");
    }

    #[tokio::test]
    async fn the_coaching_a_delta_ends_is_found_through_its_classes_on_sqlite() {
        let args = args!["run-1", 1_i64, "2026-01-01", "2026-01-01T00:00:00Z"];
        for scope in [CoachingScope::MarkedClasses, CoachingScope::AllClasses] {
            let (ended, stale) = ended_coaching_sql(scope, Backend::Sqlite);
            for sql in [ended, stale] {
                let (sources, plan) = sqlite_plan(&sql, &args, "c").await;
                assert_eq!(sources.len(), 1, "{scope:?}: {plan}");
                if scope == CoachingScope::MarkedClasses {
                    assert!(
                        sources[0]
                            .contains("coaching_sources_class_idx (district_id=? AND source_id=?)"),
                        "{plan}"
                    );
                }
            }
        }
    }
}
