//! What the command line prints about districts, clients and runs: one line of text each, or JSON
//! in the shapes the API uses (districts through their domain serialisation, scopes as arrays).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::clients::NewCredentials;
use crate::domain::district::District;
use crate::domain::scope::Scope;
use crate::store::runs::RunRow;

/// `district list --json`.
#[derive(Serialize)]
pub struct Districts<'a> {
    pub districts: &'a [District],
}

/// One district as a tab-separated line: slug, name, time zone.
pub fn district_line(d: &District) -> String {
    format!("{}\t{}\t{}", d.slug, d.name.as_str(), d.timezone.name())
}

/// A client just created: the only time its secret is shown.
#[derive(Serialize)]
pub struct CreatedClient<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub scopes: &'a [Scope],
    pub district: &'a str,
}

impl<'a> CreatedClient<'a> {
    pub fn new(
        credentials: &'a NewCredentials,
        scopes: &'a [Scope],
        district: &'a District,
    ) -> Self {
        CreatedClient {
            client_id: &credentials.client_id,
            client_secret: &credentials.client_secret,
            scopes,
            district: district.slug.as_str(),
        }
    }
}

/// `sync runs --json`.
#[derive(Serialize)]
pub struct Runs<'a> {
    pub runs: Vec<Run<'a>>,
}

/// One run of `sync runs`: what it was and how it ended, without its report.
#[derive(Serialize)]
pub struct Run<'a> {
    pub run_id: &'a str,
    pub status: &'a str,
    pub source: &'a str,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a RunRow> for Run<'a> {
    fn from(r: &'a RunRow) -> Self {
        Run {
            run_id: &r.id,
            status: &r.status,
            source: &r.source,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// One run as a tab-separated line: id, status, source, start.
pub fn run_line(r: &RunRow) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        r.id,
        r.status,
        r.source,
        r.started_at.to_rfc3339()
    )
}
