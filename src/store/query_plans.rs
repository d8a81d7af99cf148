//! Query plans, for tests: a plan that walks a whole district turns a statement about a few
//! rows into one about hundreds of thousands, and no result-based test notices. SQLite plans
//! without statistics, so its plan on an empty database is the plan it uses on a full one.

use super::{Arg, Db};

/// A migrated, empty database of its own; PostgreSQL's is dropped by `finish`.
pub struct PlanDb {
    pub db: Db,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl PlanDb {
    pub async fn finish(self) {
        self.db.close().await;
        if let Some((admin, name)) = self.pg {
            let admin = Db::connect(&admin).await.unwrap();
            admin
                .conn()
                .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[])
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

/// A migrated, empty SQLite database.
pub async fn sqlite() -> PlanDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plan.db").display());
    PlanDb {
        db: Db::connect_and_migrate(&url).await.unwrap(),
        pg: None,
        _dir: dir,
    }
}

/// SQLite always; PostgreSQL when the test server answers.
pub async fn databases() -> Vec<PlanDb> {
    let mut out = vec![sqlite().await];
    let admin = std::env::var("ROSTERGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let server = match Db::connect(&admin).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("skipping PostgreSQL plans: {e}");
            return out;
        }
    };
    let name = format!("rg_plan_{}", uuid::Uuid::new_v4().simple());
    server
        .conn()
        .execute(&format!("CREATE DATABASE {name}"), &[])
        .await
        .unwrap();
    server.close().await;
    let (base, _) = admin
        .rsplit_once('/')
        .expect("a database URL ends in /NAME");
    out.push(PlanDb {
        db: Db::connect_and_migrate(&format!("{base}/{name}"))
            .await
            .unwrap(),
        pg: Some((admin.clone(), name)),
        _dir: tempfile::tempdir().unwrap(),
    });
    out
}

/// The plan's text, one node per line, for `sql` with its arguments bound.
pub async fn plan(db: &Db, sql: &str, args: &[Arg]) -> String {
    use sqlx::Row;
    fn bind<'q, DB: sqlx::Database>(
        mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
        args: &[Arg],
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        for a in args {
            q = match a {
                Arg::I64(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                other => panic!("unexpected argument {other:?}"),
            };
        }
        q
    }
    match db {
        Db::Sqlite(pool) => {
            let text = format!("EXPLAIN QUERY PLAN {sql}");
            let rows = bind(sqlx::query(&text), args)
                .fetch_all(pool)
                .await
                .unwrap();
            let details: Vec<String> = rows.iter().map(|r| r.get("detail")).collect();
            details.join("\n")
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            // Empty tables make a sequential scan the cheapest plan; what matters is
            // which index the planner would use, so scans are priced out.
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await
                .unwrap();
            let text = format!("EXPLAIN {sql}");
            let rows = bind(sqlx::query(&text), args)
                .fetch_all(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            let lines: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            lines.join("\n")
        }
    }
}
