//! A district's connection to a source system (an SIS's OneRoster REST API): where it is, how
//! the gateway authenticates, how fast it may ask, and when it pulls. Secrets travel beside the
//! configuration, never inside it, so the configuration can be listed, logged and returned.

use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::domain::schedule::Schedule;

/// The OneRoster 1.2 scopes a connection asks for unless told otherwise (oneroster.md §8.3).
pub const DEFAULT_SCOPES_1_2: &[&str] =
    &["https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"];
/// The OneRoster 1.1 scopes asked for over OAuth 2 unless told otherwise (oneroster.md §8.2).
pub const DEFAULT_SCOPES_1_1: &[&str] =
    &["https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionKind {
    #[serde(rename = "oneroster-rest")]
    OneRosterRest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OneRosterVersion {
    #[serde(rename = "1.1")]
    V1_1,
    #[serde(rename = "1.2")]
    V1_2,
}

/// How an OAuth 2 client proves who it is at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthStyle {
    /// HTTP Basic (PowerSchool, Infinite Campus, Skyward).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (Aeries, Visma).
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SignatureMethod {
    #[default]
    #[serde(rename = "HMAC-SHA256")]
    HmacSha256,
    #[serde(rename = "HMAC-SHA1")]
    HmacSha1,
}

/// How the gateway authenticates to the source, secrets left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AuthConfig {
    Oauth2 {
        token_url: String,
        client_id: String,
        #[serde(default)]
        client_auth: ClientAuthStyle,
        scopes: Vec<String>,
    },
    Oauth1 {
        consumer_key: String,
        #[serde(default)]
        signature_method: SignatureMethod,
    },
}

/// The one secret of a connection: the OAuth 2 client secret or the OAuth 1.0a consumer secret.
pub type ConnectionSecret = Secret;

/// When a connection pulls by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullSchedule {
    /// Delta pulls (`None`: only on demand).
    pub delta: Option<Schedule>,
    /// Full, reconciling pulls (weekly by default).
    pub full: Option<Schedule>,
}

/// Politeness towards the source: requests per second and requests in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLimits {
    pub requests_per_second: u32,
    pub max_in_flight: u32,
    /// Seconds one request may take, the body included.
    pub timeout_secs: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            requests_per_second: 10,
            max_in_flight: 2,
            timeout_secs: 60,
        }
    }
}

/// A connection's configuration (everything but its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionConfig {
    pub name: String,
    pub kind: ConnectionKind,
    pub version: OneRosterVersion,
    /// What the collection paths are appended to: `GET {base_url}/users`.
    pub base_url: String,
    /// Records asked for per page (`limit`); a source that returns fewer is followed anyway.
    pub page_size: u32,
    pub auth: AuthConfig,
    pub limits: RequestLimits,
    pub schedule: PullSchedule,
}

/// Default page size: what most SIS plugins allow without tuning (oneroster.md §5).
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
/// Delta pulls ask for records modified since the cursor minus this many seconds, so that clock
/// skew and late commits at the source lose nothing (the engine makes repeats no-ops).
pub const DELTA_OVERLAP_SECS: i64 = 300;
