//! The request log: what each request carried, for assertions such as "the second pull sent
//! `filter=dateLastModified>'…'`" or "every results request carried a bearer token".

use super::{AuthKind, FaultAction, BASE_PATH, TOKEN_PATH};
use crate::synthetic::provider::query_pairs;

/// One request the gradebook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradebookRequest {
    pub method: String,
    /// As received, e.g. `/ims/oneroster/gradebook/v1p2/assessmentResults` or `/oauth/token`.
    pub path: String,
    /// The raw query string.
    pub query: String,
    pub status: u16,
    /// The `Authorization` scheme: Basic on token requests (or None with credentials in the
    /// body), Bearer on collection requests.
    pub auth: AuthKind,
    /// The scripted fault this request consumed.
    pub fault: Option<FaultAction>,
}

impl GradebookRequest {
    /// A query parameter, decoded (`limit`, `offset`, `filter`).
    pub fn param(&self, name: &str) -> Option<String> {
        query_pairs(&self.query)?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn is_token_request(&self) -> bool {
        self.path == TOKEN_PATH
    }

    /// A request to `{base}/assessmentResults`.
    pub fn is_results_request(&self) -> bool {
        self.path == format!("{BASE_PATH}/assessmentResults")
    }

    /// A request to `{base}/assessmentLineItems`.
    pub fn is_line_items_request(&self) -> bool {
        self.path == format!("{BASE_PATH}/assessmentLineItems")
    }
}
