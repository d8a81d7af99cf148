//! Throwaway PostgreSQL databases: created through an administrative URL for one
//! measurement, dropped afterwards.

use sqlx::{Connection, PgConnection};

use rostergate::config::redact_url;

#[derive(Debug, thiserror::Error)]
pub enum ScratchDbError {
    #[error("not a postgres:// URL with a host part: {0}")]
    Url(String),
    #[error("PostgreSQL {step} failed: {source}")]
    Postgres {
        step: &'static str,
        source: sqlx::Error,
    },
}

/// A database of its own on the server behind the admin URL.
pub struct ScratchDb {
    admin_url: String,
    name: String,
    /// Connects to the scratch database itself.
    pub url: String,
}

impl ScratchDb {
    pub async fn create(admin_url: &str) -> Result<Self, ScratchDbError> {
        let name = format!(
            "rostergate_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let url = with_database(admin_url, &name)?;
        let mut admin = PgConnection::connect(admin_url)
            .await
            .map_err(pg_err("admin connect"))?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .map_err(pg_err("CREATE DATABASE"))?;
        let _ = admin.close().await;
        Ok(Self {
            admin_url: admin_url.to_string(),
            name,
            url,
        })
    }

    /// Best effort: a failed drop is logged, not returned, so it cannot hide the
    /// benchmark's own error.
    pub async fn drop_database(self) {
        // FORCE (PostgreSQL 13+) ends connections the measured code may have leaked.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let outcome = match PgConnection::connect(&self.admin_url).await {
            Ok(mut admin) => {
                let dropped = sqlx::raw_sql(&sql).execute(&mut admin).await.map(|_| ());
                let _ = admin.close().await;
                dropped
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(database = %self.name, error = %e, "could not drop benchmark database");
        }
    }
}

fn pg_err(step: &'static str) -> impl FnOnce(sqlx::Error) -> ScratchDbError {
    move |source| ScratchDbError::Postgres { step, source }
}

/// `scheme://authority/olddb?query` -> `scheme://authority/{database}?query`.
fn with_database(url: &str, database: &str) -> Result<String, ScratchDbError> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| ScratchDbError::Url(redact_url(url)))?
        + 3;
    let (head, rest) = url.split_at(scheme_end);
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = &before_query[..before_query.find('/').unwrap_or(before_query.len())];
    Ok(format!("{head}{authority}/{database}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_swaps_only_the_database_name() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/b",
            ),
            (
                "postgres://u:p@h/test?sslmode=disable",
                "postgres://u:p@h/b?sslmode=disable",
            ),
            ("postgresql://h:5432", "postgresql://h:5432/b"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "b").unwrap(), expected, "{url}");
        }
    }

    #[test]
    fn a_url_without_a_scheme_is_refused() {
        let err = with_database("h:5432/test", "b").unwrap_err();
        assert!(matches!(err, ScratchDbError::Url(_)), "{err}");
    }
}
