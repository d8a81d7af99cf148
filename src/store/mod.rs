//! Persistence on SQLite (the embedded default) and PostgreSQL (production).
//!
//! SQL is written once, in the dialect both databases share (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`, `FILTER`), and run through [`Db`] or [`Tx`], which bind the same arguments on
//! either backend. Only the migrations and the bulk loader differ per backend.

pub mod accounts;
pub mod bulk;
pub mod clients;
pub mod connections;
pub mod deliveries;
pub mod digests;
pub mod districts;
pub mod inbound;
pub mod jobs;
pub mod known_records;
pub mod locks;
pub mod lti;
pub mod lti_contexts;
pub mod lti_launches;
pub mod lti_registration_invites;
pub mod outbox;
pub mod push_secrets;
#[cfg(test)]
pub(crate) mod query_plans;
pub mod roster;
pub mod runs;
pub mod scores;
pub mod staging;
pub mod subscriptions;
pub mod sync_apply;
pub mod tables;

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    /// A stored row that does not decode: the gateway's fault (or the database's), not the caller's.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    NotFound(String),
}

impl StoreError {
    /// Is this a unique-constraint violation?
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    /// Did a `NOWAIT` lock find its table held by another transaction (PostgreSQL's
    /// `lock_not_available`)?
    pub fn is_lock_unavailable(&self) -> bool {
        matches!(self, StoreError::Sqlx(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool on either backend.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Begins a PostgreSQL transaction whose commit returns before it is flushed (see
/// [`Db::begin_unflushed`]): one round trip.
pub(crate) const BEGIN_UNFLUSHED: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// An open transaction on either backend.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// `$first, $first+1, …` for `n` values: an `IN (…)` list of query arguments.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An argument bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub enum Arg {
    I64(i64),
    Text(String),
    OptText(Option<String>),
    Bool(bool),
    OptBool(Option<bool>),
    OptI64(Option<i64>),
    F64(f64),
    OptF64(Option<f64>),
    OptDate(Option<NaiveDate>),
    Date(NaiveDate),
    Time(DateTime<Utc>),
    /// A BLOB (SQLite) or BYTEA (PostgreSQL), or NULL.
    OptBytes(Option<Vec<u8>>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}
impl From<Option<bool>> for Arg {
    fn from(v: Option<bool>) -> Self {
        Arg::OptBool(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptI64(v)
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::F64(v)
    }
}
impl From<Option<f64>> for Arg {
    fn from(v: Option<f64>) -> Self {
        Arg::OptF64(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(v)
    }
}
impl From<Option<Vec<u8>>> for Arg {
    fn from(v: Option<Vec<u8>>) -> Self {
        Arg::OptBytes(v)
    }
}
impl From<NaiveDate> for Arg {
    fn from(v: NaiveDate) -> Self {
        Arg::Date(v)
    }
}

/// `args![a, b, c]` → `[Arg; 3]`.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$($crate::store::Arg::from($a)),*] };
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::I64(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                Arg::OptText(v) => q.bind(v.clone()),
                Arg::Bool(v) => q.bind(*v),
                Arg::OptBool(v) => q.bind(*v),
                Arg::OptI64(v) => q.bind(*v),
                Arg::F64(v) => q.bind(*v),
                Arg::OptF64(v) => q.bind(*v),
                Arg::OptDate(v) => q.bind(*v),
                Arg::Date(v) => q.bind(*v),
                Arg::Time(v) => q.bind(*v),
                Arg::OptBytes(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

/// Rows that decode on both backends (`#[derive(sqlx::FromRow)]` gives this).
pub trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// The same query methods on a pool and on a transaction.
macro_rules! query_methods {
    ($self_:ident, $sqlite:pat => $se:expr, $pg:pat => $pe:expr) => {
        pub async fn execute(&mut $self_, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
            Ok(match $self_ {
                $sqlite => bind_args!(sqlx::query(sql), args).execute($se).await?.rows_affected(),
                $pg => bind_args!(sqlx::query(sql), args).execute($pe).await?.rows_affected(),
            })
        }

        pub async fn fetch_all<T: AnyRow>(&mut $self_, sql: &str, args: &[Arg]) -> Result<Vec<T>, StoreError> {
            Ok(match $self_ {
                $sqlite => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_all($se).await?,
                $pg => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_all($pe).await?,
            })
        }

        pub async fn fetch_optional<T: AnyRow>(&mut $self_, sql: &str, args: &[Arg]) -> Result<Option<T>, StoreError> {
            Ok(match $self_ {
                $sqlite => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_optional($se).await?,
                $pg => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_optional($pe).await?,
            })
        }

        /// The first column of the first row, as an integer (counts, ids).
        pub async fn scalar(&mut $self_, sql: &str, args: &[Arg]) -> Result<i64, StoreError> {
            Ok(match $self_ {
                $sqlite => bind_args!(sqlx::query_scalar::<_, i64>(sql), args).fetch_one($se).await?,
                $pg => bind_args!(sqlx::query_scalar::<_, i64>(sql), args).fetch_one($pe).await?,
            })
        }

        /// Every column of every row, as text (`CAST(… AS TEXT)` in the SQL makes that so).
        pub async fn text_rows(&mut $self_, sql: &str, args: &[Arg]) -> Result<Vec<Vec<Option<String>>>, StoreError> {
            use sqlx::Row;
            Ok(match $self_ {
                $sqlite => {
                    let rows = bind_args!(sqlx::query(sql), args).fetch_all($se).await?;
                    rows.iter()
                        .map(|r| (0..r.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect::<Result<Vec<_>, _>>())
                        .collect::<Result<Vec<_>, _>>()?
                }
                $pg => {
                    let rows = bind_args!(sqlx::query(sql), args).fetch_all($pe).await?;
                    rows.iter()
                        .map(|r| (0..r.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect::<Result<Vec<_>, _>>())
                        .collect::<Result<Vec<_>, _>>()?
                }
            })
        }

        /// The first column of every row, as text.
        pub async fn strings(&mut $self_, sql: &str, args: &[Arg]) -> Result<Vec<String>, StoreError> {
            Ok(match $self_ {
                $sqlite => bind_args!(sqlx::query_scalar::<_, String>(sql), args).fetch_all($se).await?,
                $pg => bind_args!(sqlx::query_scalar::<_, String>(sql), args).fetch_all($pe).await?,
            })
        }
    };
}

/// Pools are cheap handles; the query methods take `&mut self` only so that `Db` and `Tx` share
/// one signature.
pub struct Conn<'a>(&'a Db);

impl Conn<'_> {
    query_methods!(self, Conn(Db::Sqlite(p)) => p, Conn(Db::Postgres(p)) => p);
}

impl Tx {
    query_methods!(self, Tx::Sqlite(t) => &mut **t, Tx::Postgres(t) => &mut **t);

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// How long a pool is kept, which decides whether a PostgreSQL connection is checked before
/// each use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolLife {
    /// A server's: a connection idle for hours may have been dropped (a database restart, a
    /// proxy's timeout), so each is pinged before use and replaced if it is gone.
    Service,
    /// One command's: its connections are seconds old, and a ping would be a round trip before
    /// every statement.
    Command,
}

impl Db {
    /// Connects for a server ([`PoolLife::Service`]), creating a SQLite file (and its folder)
    /// that does not exist yet.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        Db::connect_for(url, PoolLife::Service).await
    }

    /// Connects, as [`Db::connect`] does, for a pool that lives as long as `life` says.
    pub async fn connect_for(url: &str, life: PoolLife) -> Result<Db, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(std::time::Duration::from_secs(30))
                .log_statements(log::LevelFilter::Off)
                .log_slow_statements(log::LevelFilter::Off, std::time::Duration::from_secs(60));
            let path = options.get_filename();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            // No ping before each statement: a connection to a file in this process cannot
            // have been dropped by a server, and the ping is a round trip to its thread.
            let pool = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(8)
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // Statement text is logged by our own spans where useful; sqlx's copies are noise.
            let options = PgConnectOptions::from_str(url)?
                .log_statements(log::LevelFilter::Off)
                .log_slow_statements(log::LevelFilter::Off, std::time::Duration::from_secs(60));
            let pool = PgPoolOptions::new()
                .test_before_acquire(life == PoolLife::Service)
                .max_connections(16)
                .acquire_timeout(std::time::Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(crate::config::redact_url(url)))
        }
    }

    /// Connects for a server and brings the schema up to date.
    pub async fn connect_and_migrate(url: &str) -> Result<Db, StoreError> {
        Db::connect_and_migrate_for(url, PoolLife::Service).await
    }

    /// Connects and brings the schema up to date. The migrator (which locks the schema, and
    /// checks what it finds as [`Db::migrations_current`] does) runs only when the schema is not
    /// exactly the shipped one: a schema already current costs one query, not the migrator's
    /// half a dozen round trips on every start of a command.
    pub async fn connect_and_migrate_for(url: &str, life: PoolLife) -> Result<Db, StoreError> {
        let db = Db::connect_for(url, life).await?;
        // A database never migrated has no table to read: the migrator makes it.
        if !db.migrations_current().await.unwrap_or(false) {
            db.migrate().await?;
        }
        Ok(db)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    /// Is the schema exactly the shipped one: every shipped migration applied as shipped (same
    /// checksum), none failed, and none this build does not know (a newer gateway's)?
    /// (readiness)
    pub async fn migrations_current(&self) -> Result<bool, StoreError> {
        const APPLIED: &str = "SELECT version, checksum, success FROM _sqlx_migrations";
        /// A migration as the database recorded it: version, checksum, whether it succeeded.
        type Applied = (i64, Vec<u8>, bool);
        let (migrator, applied): (&sqlx::migrate::Migrator, Vec<Applied>) = match self {
            Db::Sqlite(p) => (
                &SQLITE_MIGRATIONS,
                sqlx::query_as(APPLIED).fetch_all(p).await?,
            ),
            Db::Postgres(p) => (
                &POSTGRES_MIGRATIONS,
                sqlx::query_as(APPLIED).fetch_all(p).await?,
            ),
        };
        let shipped: std::collections::HashMap<i64, &[u8]> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| (m.version, &*m.checksum))
            .collect();
        Ok(applied.len() == shipped.len()
            && applied.iter().all(|(version, checksum, success)| {
                *success && shipped.get(version) == Some(&checksum.as_slice())
            }))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn conn(&self) -> Conn<'_> {
        Conn(self)
    }

    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Begins a transaction whose commit does not wait for the server to flush it to disk
    /// (PostgreSQL's `synchronous_commit = off`, for this transaction only). For bookkeeping
    /// that acknowledges nothing: the next durable commit flushes it too, since the log is
    /// written in order, and a server crash before then loses only the bookkeeping. SQLite's
    /// write-ahead log at `synchronous = NORMAL` never syncs on commit, so there it is `begin`.
    pub async fn begin_unflushed(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin_with(BEGIN_UNFLUSHED).await?),
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.conn()
            .scalar("SELECT CAST(1 AS BIGINT)", &[])
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}
