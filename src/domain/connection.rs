//! A district's connection to a source system (an SIS's OneRoster REST API, or an assessment
//! partner's results API): where it is, how the gateway authenticates, how fast it may ask, and
//! when it pulls. Secrets travel beside the configuration, never inside it, so the
//! configuration can be listed, logged and returned.

use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::domain::schedule::Schedule;

/// The OneRoster 1.2 scopes a connection asks for unless told otherwise (oneroster.md §8.3).
pub const DEFAULT_SCOPES_1_2: &[&str] =
    &["https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"];
/// The scopes a OneRoster 1.2 gradebook (assessment results) connection asks for unless told
/// otherwise (oneroster.md §8.3; the Assessment Results Profile names none of its own).
pub const DEFAULT_SCOPES_GRADEBOOK_1_2: &[&str] =
    &["https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.readonly"];
/// The OneRoster 1.1 scopes asked for over OAuth 2 unless told otherwise (oneroster.md §8.2).
pub const DEFAULT_SCOPES_1_1: &[&str] =
    &["https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly"];

/// The header an API key travels in when none is named (NWEA's API calls it `apikey`).
pub const DEFAULT_API_KEY_HEADER: &str = "apikey";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionKind {
    /// A SIS's OneRoster REST API: rosters, through the sync engine.
    #[serde(rename = "oneroster-rest")]
    OneRosterRest,
    /// An assessment partner's results API (contracts/partner-results.openapi.json): scores,
    /// through the score import.
    #[serde(rename = "assessment-rest")]
    AssessmentRest,
    /// A SIS's OneRoster 1.2 gradebook service, its assessment results
    /// (`assessmentLineItems`, `assessmentResults`): scores, through the score import.
    #[serde(rename = "oneroster-assessment-results")]
    OneRosterAssessmentResults,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::OneRosterRest => "oneroster-rest",
            ConnectionKind::AssessmentRest => "assessment-rest",
            ConnectionKind::OneRosterAssessmentResults => "oneroster-assessment-results",
        }
    }

    /// Whether a pull of this kind imports scores (rather than syncing a roster).
    pub fn pulls_scores(self) -> bool {
        !matches!(self, ConnectionKind::OneRosterRest)
    }

    /// Whether a connection of this kind can speak `version`.
    pub fn accepts(self, version: ApiVersion) -> bool {
        matches!(
            (self, version),
            (ConnectionKind::OneRosterRest, ApiVersion::OneRoster(_))
                | (
                    ConnectionKind::AssessmentRest,
                    ApiVersion::PartnerResults(_)
                )
                | (
                    ConnectionKind::OneRosterAssessmentResults,
                    ApiVersion::OneRoster(OneRosterVersion::V1_2)
                )
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OneRosterVersion {
    #[serde(rename = "1.1")]
    V1_1,
    #[serde(rename = "1.2")]
    V1_2,
}

/// Versions of the partner results contract (contracts/partner-results.openapi.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartnerResultsVersion {
    #[serde(rename = "1")]
    V1,
}

/// The version of the API a connection speaks: a OneRoster version for `oneroster-rest` (and
/// 1.2 for `oneroster-assessment-results`), a partner results contract version for
/// `assessment-rest`. Written as the API writes it (`1.1`, `1.2`, `1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApiVersion {
    OneRoster(OneRosterVersion),
    PartnerResults(PartnerResultsVersion),
}

impl ApiVersion {
    pub fn oneroster(self) -> Option<OneRosterVersion> {
        match self {
            ApiVersion::OneRoster(v) => Some(v),
            ApiVersion::PartnerResults(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::OneRoster(OneRosterVersion::V1_1) => "1.1",
            ApiVersion::OneRoster(OneRosterVersion::V1_2) => "1.2",
            ApiVersion::PartnerResults(PartnerResultsVersion::V1) => "1",
        }
    }
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
        /// The header an API key travels in, on the token request and every other, when the
        /// source asks for one besides the token (the key itself is a secret).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_header: Option<String>,
    },
    Oauth1 {
        consumer_key: String,
        #[serde(default)]
        signature_method: SignatureMethod,
    },
}

/// A connection's secrets: the OAuth 2 client secret or the OAuth 1.0a consumer secret, and the
/// API key of a source that asks for one besides.
#[derive(Debug, Clone)]
pub struct ConnectionSecrets {
    pub secret: Secret,
    pub api_key: Option<Secret>,
}

impl From<Secret> for ConnectionSecrets {
    /// A secret alone, without an API key.
    fn from(secret: Secret) -> Self {
        ConnectionSecrets {
            secret,
            api_key: None,
        }
    }
}

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
    pub version: ApiVersion,
    /// What the collection paths are appended to: `GET {base_url}/users`, `GET {base_url}/results`.
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
