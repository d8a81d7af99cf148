//! The request log: what each request to the platform carried and how it was answered, for
//! assertions such as "the tool fetched /jwks again after the unknown kid" or "the second
//! authorization request was refused for its nonce".

use crate::synthetic::provider::query_pairs;

/// One request the platform answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRequest {
    pub method: String,
    /// As received: `/jwks`, `/auth`, `/deep_links`.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// A form body (POST `/auth`, `/deep_links`), raw; empty otherwise.
    pub form: String,
    pub status: u16,
    /// Why a 400 was answered: the message sent.
    pub refusal: Option<String>,
}

impl PlatformRequest {
    /// A parameter, decoded, from the query string or else the form body.
    pub fn param(&self, name: &str) -> Option<String> {
        [&self.query, &self.form].into_iter().find_map(|text| {
            query_pairs(text)?
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
        })
    }

    pub fn is_jwks_request(&self) -> bool {
        self.path == super::JWKS_PATH
    }

    pub fn is_auth_request(&self) -> bool {
        self.path == super::AUTH_PATH
    }
}
