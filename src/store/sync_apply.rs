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

/// Which coaching a derivation looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoachingScope {
    /// Every class of the district: coaching was never derived.
    AllClasses,
    /// What [`mark_coaching`] marked for the run: whole classes, and single members of classes
    /// (the coaching a user gives or gets in that class). Everything else is as the last
    /// derivation left it.
    Marked,
}

/// The mark of a whole class in `stage_coaching_marks.user_sourced_id`.
const WHOLE_CLASS: &str = "''";

impl CoachingScope {
    /// The coaching pairs in scope, a teacher or aide and a student in effect in a class in
    /// effect, as rows `(teacher, student, class)` (`$1` the run, `$2` the district, `$3` the
    /// cut-off). A marked member's pairs are looked up from the mark, from that member's
    /// enrollment in the class, never from the whole class: a delta's students are a few in
    /// each class it touches.
    fn pairs_sql(self, backend: Backend) -> String {
        let coaching_roles = COACHING_ROLES
            .iter()
            .map(|r| format!("'{r}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let select = "t.user_sourced_id AS teacher, s.user_sourced_id AS student, t.class_sourced_id AS class";
        let filter = format!(
            "t.district_id = $2 AND s.district_id = $2 \
             AND t.role IN ({coaching_roles}) AND s.role = '{COACHED_ROLE}' \
             AND t.deleted_at IS NULL AND s.deleted_at IS NULL \
             AND c.deleted_at IS NULL AND c.detached_at IS NULL \
             AND tu.deleted_at IS NULL AND su.deleted_at IS NULL \
             AND (t.end_date IS NULL OR t.end_date >= $3) AND (s.end_date IS NULL OR s.end_date >= $3) \
             AND t.user_sourced_id <> s.user_sourced_id"
        );
        // How the five tables meet, as joins (a whole class's pairs) or as conditions (a
        // member's, whose tables are read in the order given).
        let meet = [
            "s.class_sourced_id = t.class_sourced_id",
            "c.district_id = $2 AND c.sourced_id = t.class_sourced_id",
            "tu.district_id = $2 AND tu.sourced_id = t.user_sourced_id",
            "su.district_id = $2 AND su.sourced_id = s.user_sourced_id",
        ];
        let class_pairs = format!(
            "enrollments t JOIN enrollments s ON {} JOIN classes c ON {} \
             JOIN users tu ON {} JOIN users su ON {}",
            meet[0], meet[1], meet[2], meet[3]
        );
        match self {
            CoachingScope::AllClasses => {
                format!("SELECT {select} FROM {class_pairs} WHERE {filter}")
            }
            CoachingScope::Marked => {
                let whole = format!(
                    "SELECT {select} FROM {class_pairs} WHERE {filter} AND t.class_sourced_id IN \
                     (SELECT m.class_sourced_id FROM stage_coaching_marks m \
                      WHERE m.run_id = $1 AND m.user_sourced_id = {WHOLE_CLASS})"
                );
                let member = format!("m.user_sourced_id <> {WHOLE_CLASS}");
                let of_member = |alias: &str, first: &str, then: &str| {
                    for_each_mark(
                        backend,
                        &member,
                        select,
                        &[first, then, "classes c", "users tu", "users su"],
                        &format!(
                            "{filter} AND {} AND {alias}.user_sourced_id = m.user_sourced_id \
                             AND {alias}.class_sourced_id = m.class_sourced_id",
                            meet.join(" AND ")
                        ),
                    )
                };
                [
                    whole,
                    of_member("t", "enrollments t", "enrollments s"),
                    of_member("s", "enrollments s", "enrollments t"),
                ]
                .join(" UNION ")
            }
        }
    }

    /// The district's coaching sources in scope (`$1` the run, `$2` the district), as the body
    /// of a derived table. A marked class's sources are looked up by class, a marked member's
    /// by class and that member, each from its mark (a source can come twice: as its teacher's
    /// and as its student's). Read any other way, both databases read every source of the
    /// district, or of every marked class, to keep a few (0.3 s in a 1 % delta at 100,000
    /// students on PostgreSQL).
    fn sources_sql(self, backend: Backend) -> String {
        let select = "c.teacher_sourced_id, c.student_sourced_id, c.source_type, c.source_id";
        match self {
            CoachingScope::AllClasses => {
                format!("SELECT {select} FROM coaching_sources c WHERE c.district_id = $2")
            }
            CoachingScope::Marked => {
                let of_mark = "c.district_id = $2 AND c.source_id = m.class_sourced_id";
                let member = format!("m.user_sourced_id <> {WHOLE_CLASS}");
                // SQLite would rather walk the district's sources in the covering index by
                // student than look a class's up in the index by class: it is told to.
                let by_class = match backend {
                    Backend::Sqlite => "coaching_sources c INDEXED BY coaching_sources_class_idx",
                    Backend::Postgres => "coaching_sources c",
                };
                [
                    for_each_mark(
                        backend,
                        &format!("m.user_sourced_id = {WHOLE_CLASS}"),
                        select,
                        &[by_class],
                        of_mark,
                    ),
                    for_each_mark(
                        backend,
                        &member,
                        select,
                        &["coaching_sources c"],
                        &format!("{of_mark} AND c.teacher_sourced_id = m.user_sourced_id"),
                    ),
                    for_each_mark(
                        backend,
                        &member,
                        select,
                        &["coaching_sources c"],
                        &format!("{of_mark} AND c.student_sourced_id = m.user_sourced_id"),
                    ),
                ]
                .join(" UNION ALL ")
            }
        }
    }
}

/// `SELECT {select} FROM {tables} WHERE {filter}` for each of the run's marks that `marks`
/// selects, `filter` reading the mark as `m`: looked up from each mark in turn, the tables
/// read in the order given, whatever the planner makes of their sizes. PostgreSQL, costing
/// every index probe as a read from disk, would rather hash the marks against every coaching
/// source or user of the district (0.15 s each at 100,000 students) than probe a few thousand
/// times: a lateral subquery it cannot flatten (`OFFSET 0`) is probed once per mark. SQLite,
/// planning without statistics, would start from the district's enrollments (1.4 s): it keeps
/// the order of tables joined with CROSS JOIN.
fn for_each_mark(
    backend: Backend,
    marks: &str,
    select: &str,
    tables: &[&str],
    filter: &str,
) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SELECT {select} FROM stage_coaching_marks m CROSS JOIN {} \
             WHERE m.run_id = $1 AND {marks} AND {filter}",
            tables.join(" CROSS JOIN ")
        ),
        Backend::Postgres => format!(
            "SELECT x.* FROM stage_coaching_marks m CROSS JOIN LATERAL \
             (SELECT {select} FROM {} WHERE {filter} OFFSET 0) x \
             WHERE m.run_id = $1 AND {marks}",
            tables.join(", ")
        ),
    }
}

/// Writes, before the run's changes are applied (it compares staged rows with live ones), the
/// coaching that can move, as marks of a class and a member of it (a user's enrollments there
/// move only the coaching that user gives or gets there), or of a whole class:
/// - with the run's changes: an enrollment's class and user when it comes, leaves or changes
///   (as it was and as it will be), the enrollments of users who come or go, and whole classes
///   that come or go (a user's or class's other changes move no coaching). `modes` are the
///   planned kinds whose changes count, each with the mode its staged rows are compared in
///   (none: the run's changes mark nothing);
/// - with the day, when `day_moved` holds the last derivation's cut-off and this run's: the
///   enrollments in effect whose end date lies between the two (in either order). An
///   enrollment counts while its end date is on or after the cut-off, so these are the only ones
///   that count on one day and not on the other.
///
/// Returns how many marks it wrote.
pub async fn mark_coaching(
    tx: &mut Tx,
    run_id: &str,
    district_id: i64,
    modes: &[(RecordKind, Mode)],
    day_moved: Option<(NaiveDate, NaiveDate)>,
) -> Result<u64, StoreError> {
    tx.execute(
        "DELETE FROM stage_coaching_marks WHERE run_id = $1",
        &args![run_id],
    )
    .await?;
    let mut marked = 0;
    if let Some(sql) = mark_coaching_sql(modes) {
        marked += tx.execute(&sql, &args![run_id, district_id]).await?;
    }
    if let Some((from, to)) = day_moved {
        let (earlier, later) = (from.min(to), from.max(to));
        let args = args![run_id, district_id, earlier, later];
        marked += tx.execute(MARK_ENROLLMENTS_THE_DAY_MOVED, &args).await?;
    }
    // Even when none are marked: the derivation is then planned on an empty table, not on the
    // last run's marks.
    super::staging::refresh_statistics(tx, &["stage_coaching_marks"]).await?;
    Ok(marked)
}

/// The class and user of enrollments in effect ending on or after `$3` and before `$4`, added
/// to run `$1`'s marks in district `$2`. The check for a class is written so that it is not a
/// range: on SQLite it made the district's enrollments be read in class order, each row a
/// look-up (0.52 s against 0.23 s at 100,000 students).
const MARK_ENROLLMENTS_THE_DAY_MOVED: &str =
    "INSERT INTO stage_coaching_marks (run_id, class_sourced_id, user_sourced_id) \
     SELECT DISTINCT $1, e.class_sourced_id, e.user_sourced_id FROM enrollments e \
     WHERE e.district_id = $2 AND e.deleted_at IS NULL \
     AND (e.class_sourced_id IS NOT NULL AND e.user_sourced_id IS NOT NULL) = TRUE \
     AND e.end_date >= $3 AND e.end_date < $4 \
     AND NOT EXISTS (SELECT 1 FROM stage_coaching_marks m WHERE m.run_id = $1 \
         AND m.class_sourced_id = e.class_sourced_id AND m.user_sourced_id = e.user_sourced_id)";

/// The statement [`mark_coaching`] writes the run's marks with (`$1` the run, `$2` the
/// district); `None` when the run has no kind that moves coaching.
fn mark_coaching_sql(modes: &[(RecordKind, Mode)]) -> Option<String> {
    let mode_of = |kind| modes.iter().find(|(k, _)| *k == kind).map(|(_, m)| *m);
    let mut selects = Vec::new();
    if let Some(mode) = mode_of(RecordKind::Enrollments) {
        let joined = "FROM stage_enrollments s LEFT JOIN enrollments l \
             ON l.district_id = $2 AND l.sourced_id = s.sourced_id WHERE s.run_id = $1 AND NOT s.deleting";
        // As it will be (new, back, or changed), and as it was (changed).
        selects.push(format!(
            "SELECT s.class_sourced_id AS c, s.user_sourced_id AS u {joined} AND (l.sourced_id IS NULL \
             OR l.deleted_at IS NOT NULL OR l.hash <> s.hash)"
        ));
        selects.push(format!(
            "SELECT l.class_sourced_id AS c, l.user_sourced_id AS u {joined} \
             AND l.deleted_at IS NULL AND l.hash <> s.hash"
        ));
        selects.push(format!(
            "SELECT l.class_sourced_id AS c, l.user_sourced_id AS u FROM enrollments l WHERE {}",
            removed_predicate(RecordKind::Enrollments, mode)
        ));
    }
    if let Some(mode) = mode_of(RecordKind::Users) {
        selects.push(format!(
            "SELECT e.class_sourced_id AS c, e.user_sourced_id AS u FROM enrollments e \
             WHERE e.district_id = $2 AND e.user_sourced_id IN \
             (SELECT s.sourced_id FROM stage_users s WHERE s.run_id = $1 AND NOT s.deleting AND NOT EXISTS ({entering}) \
              UNION SELECT l.sourced_id FROM users l WHERE {leaving})",
            entering = same_live_sql(RecordKind::Users),
            leaving = removed_predicate(RecordKind::Users, mode),
        ));
    }
    if let Some(mode) = mode_of(RecordKind::Classes) {
        selects.push(format!(
            "SELECT s.sourced_id AS c, {WHOLE_CLASS} AS u FROM stage_classes s \
             WHERE s.run_id = $1 AND NOT s.deleting AND NOT EXISTS ({})",
            same_live_sql(RecordKind::Classes)
        ));
        selects.push(format!(
            "SELECT l.sourced_id AS c, {WHOLE_CLASS} AS u FROM classes l WHERE {}",
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
        // An enrollment without a class or a user gives no coaching: nothing to mark.
        "INSERT INTO stage_coaching_marks (run_id, class_sourced_id, user_sourced_id) \
         SELECT DISTINCT $1, x.c, x.u FROM ({}) x WHERE (x.c IS NOT NULL AND x.u IS NOT NULL) = TRUE",
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
    let params = args![run_id, district_id, cutoff, now];
    let pairs = scope.pairs_sql(tx.backend());
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

    tx.execute(&stale_coaching_sql(scope, tx.backend()), &params)
        .await?;
    super::staging::refresh_statistics(tx, &["stage_coaching_stale".to_string()]).await?;
    let ended = tx
        .execute(&ended_coaching_sql(tx.backend()), &params)
        .await?;
    tx.execute(DELETE_STALE_COACHING, &params).await?;
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

/// The statement that writes the class sources in scope this run no longer derives, except
/// those of detached classes, to `stage_coaching_stale` (parameters as in [`derive_coaching`],
/// after `stage_coaching` is filled).
fn stale_coaching_sql(scope: CoachingScope, backend: Backend) -> String {
    format!(
        "INSERT INTO stage_coaching_stale (run_id, teacher_sourced_id, student_sourced_id, class_sourced_id) \
         SELECT DISTINCT $1, c.teacher_sourced_id, c.student_sourced_id, c.source_id FROM ({sources}) c \
         WHERE c.source_type = 'class' \
         AND NOT EXISTS (SELECT 1 FROM stage_coaching d WHERE d.run_id = $1 AND d.teacher_sourced_id = c.teacher_sourced_id \
             AND d.student_sourced_id = c.student_sourced_id AND d.class_sourced_id = c.source_id) \
         AND NOT EXISTS (SELECT 1 FROM classes k WHERE k.district_id = $2 AND k.sourced_id = c.source_id \
             AND k.deleted_at IS NULL AND k.detached_at IS NOT NULL)",
        sources = scope.sources_sql(backend),
    )
}

/// The `coaching.removed` events of the pairs the stale sources leave with none: no other
/// source of the pair stays (one that is not stale), and the derivation did not find the pair
/// again in another class.
fn ended_coaching_sql(backend: Backend) -> String {
    let insert = outbox::INSERT_EVENTS;
    let (pair_event, pair_data) = pair_event_sql(backend);
    format!(
        "{insert} \
         SELECT DISTINCT $2, $1, 'coaching.removed', {pair_event}, {pair_data}, $4 FROM stage_coaching_stale c \
         WHERE c.run_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM stage_coaching d WHERE d.run_id = $1 \
             AND d.teacher_sourced_id = c.teacher_sourced_id AND d.student_sourced_id = c.student_sourced_id) \
         AND NOT EXISTS (SELECT 1 FROM coaching_sources o WHERE o.district_id = $2 \
             AND o.teacher_sourced_id = c.teacher_sourced_id AND o.student_sourced_id = c.student_sourced_id \
             AND NOT (o.source_type = 'class' AND EXISTS (SELECT 1 FROM stage_coaching_stale z WHERE z.run_id = $1 \
                 AND z.teacher_sourced_id = o.teacher_sourced_id AND z.student_sourced_id = o.student_sourced_id \
                 AND z.class_sourced_id = o.source_id)))"
    )
}

/// Deletes the stale sources, each by its key.
const DELETE_STALE_COACHING: &str = "DELETE FROM coaching_sources \
     WHERE district_id = $2 AND source_type = 'class' \
     AND (teacher_sourced_id, student_sourced_id, source_id) IN \
     (SELECT z.teacher_sourced_id, z.student_sourced_id, z.class_sourced_id FROM stage_coaching_stale z WHERE z.run_id = $1)";

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
    for table in [
        "stage_coaching",
        "stage_coaching_marks",
        "stage_coaching_stale",
    ] {
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
    async fn marking_a_deltas_coaching_looks_its_live_enrollments_up_by_key_on_sqlite() {
        let modes = [
            (RecordKind::Users, Mode::Delta),
            (RecordKind::Classes, Mode::Delta),
            (RecordKind::Enrollments, Mode::Delta),
        ];
        let sql = mark_coaching_sql(&modes).expect("enrollments move coaching");
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
    async fn a_new_days_enrollments_are_found_in_one_pass_on_sqlite() {
        let args = args!["run-1", 1_i64, "2026-01-01", "2026-01-02"];
        let (enrollments, plan) = sqlite_plan(MARK_ENROLLMENTS_THE_DAY_MOVED, &args, "e").await;
        assert!(!plan.contains("class_sourced_id>"), "{plan}");
        assert_eq!(enrollments.len(), 1, "{plan}");
    }

    /// The plan's lines that read one of `aliases`, each found in `plan`: every one must be a
    /// search on at least two columns of an index (the district and a key), never a scan or a
    /// walk over the whole district.
    fn wide_reads(plan: &str, aliases: &[&str]) -> Vec<String> {
        plan.lines()
            .filter(|l| {
                aliases.iter().any(|a| {
                    l.contains(&format!("SCAN {a} ")) || l.contains(&format!("SEARCH {a} "))
                })
            })
            .filter(|l| !(l.contains("SEARCH") && l.contains(" AND ")))
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn a_marked_members_coaching_is_derived_from_the_mark_by_key_on_sqlite() {
        let sql = CoachingScope::Marked.pairs_sql(Backend::Sqlite);
        let each = sqlite().await;
        let plan = plan(&each.db, &sql, &args!["run-1", 1_i64, "2026-01-01"]).await;
        each.finish().await;
        assert!(plan.contains("SEARCH m "), "{plan}");
        let wide = wide_reads(&plan, &["t", "s", "c", "tu", "su"]);
        assert!(wide.is_empty(), "{wide:?} in {plan}");
    }

    #[tokio::test]
    async fn the_coaching_a_delta_ends_is_found_from_its_marks_and_deleted_by_key_on_sqlite() {
        let args = args!["run-1", 1_i64, "2026-01-01", "2026-01-01T00:00:00Z"];
        let stale = stale_coaching_sql(CoachingScope::Marked, Backend::Sqlite);
        let ended = ended_coaching_sql(Backend::Sqlite);
        // Each statement with the alias it reads the coaching sources under.
        for (sql, sources) in [
            (stale.as_str(), "c"),
            (ended.as_str(), "o"),
            (DELETE_STALE_COACHING, "coaching_sources"),
        ] {
            let each = sqlite().await;
            let plan = plan(&each.db, sql, &args).await;
            each.finish().await;
            assert!(plan.contains(&format!("SEARCH {sources} ")), "{plan}");
            let wide = wide_reads(&plan, &[sources]);
            assert!(wide.is_empty(), "{wide:?} in {plan}");
        }
    }
}
