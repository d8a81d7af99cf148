//! What the server refuses to start with, on SQLite and PostgreSQL.

use crate::common::{backends, settings_with, TestDb};
use rostergate::startup::{Application, StartupError};

/// A variable, its value, and the token name and length the refusal must give (none: starts).
type Case<'a> = (&'a str, &'a str, Option<(&'a str, usize)>);

#[tokio::test]
async fn short_operator_and_metrics_tokens_stop_the_server_from_starting() {
    let token = |n: usize| "t".repeat(n);
    let (t5, t31, t32) = (token(5), token(31), token(32));
    let table: [Case; 5] = [
        (
            "ROSTERGATE_OPERATOR_TOKEN",
            &t5,
            Some(("operator token", 5)),
        ),
        (
            "ROSTERGATE_OPERATOR_TOKEN",
            &t31,
            Some(("operator token", 31)),
        ),
        ("ROSTERGATE_OPERATOR_TOKEN", &t32, None),
        (
            "ROSTERGATE_AUTH__METRICS_TOKEN",
            &t5,
            Some(("metrics token", 5)),
        ),
        ("ROSTERGATE_AUTH__METRICS_TOKEN", &t32, None),
    ];
    for backend in backends().await {
        for (variable, value, refusal) in &table {
            let db = TestDb::new(backend).await;
            let data_dir = tempfile::tempdir().unwrap();
            let settings = settings_with(&db.url, data_dir.path(), &[(variable, value)]);
            let built = Application::build(settings).await;
            match (refusal, built) {
                (None, Ok(_)) => {}
                (Some((name, len)), Err(StartupError::TokenTooShort { name: n, len: l })) => {
                    assert_eq!((*name, *len), (n, l), "{backend:?} {variable}");
                }
                (want, Err(e)) => panic!("{backend:?} {variable}={value}: want {want:?}, got {e}"),
                (want, Ok(_)) => {
                    panic!("{backend:?} {variable}={value}: want {want:?}, it started")
                }
            }
        }
    }
}
