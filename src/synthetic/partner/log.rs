//! The request log: what each request carried, for assertions such as "the API key was sent
//! on every request" or "`modified_since` was X on the second pull".

use super::{AuthKind, FaultAction, TOKEN_PATH};
use crate::synthetic::provider::query_pairs;

/// One request the partner answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerRequest {
    pub method: String,
    /// As received, e.g. `/v1/results` or `/oauth/token`.
    pub path: String,
    /// The raw query string.
    pub query: String,
    pub status: u16,
    /// The `Authorization` scheme: Basic on token requests (or None with credentials in the
    /// body), Bearer on results requests.
    pub auth: AuthKind,
    /// Whether the API key header (the configured one, else `apikey`) was present, whatever
    /// it held.
    pub api_key: bool,
    /// The scripted fault this request consumed.
    pub fault: Option<FaultAction>,
}

impl PartnerRequest {
    /// A query parameter, decoded (`modified_since`, `limit`, `page_token`).
    pub fn param(&self, name: &str) -> Option<String> {
        query_pairs(&self.query)?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn is_token_request(&self) -> bool {
        self.path == TOKEN_PATH
    }

    /// A request to the results route (`…/results`).
    pub fn is_results_request(&self) -> bool {
        self.path.ends_with("/results")
    }
}
