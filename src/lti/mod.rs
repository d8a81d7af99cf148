//! The gateway as an LTI 1.3 tool (shared/reference/lti13.md): what an LMS launch carries, and
//! the checks a launch passes before anyone is signed in.
//!
//! - [`validate`]: an id_token checked in the reference's order (§5), every failure with its
//!   own code, into a [`validate::Launch`];
//! - [`platform_keys`]: a platform's JWKS, fetched, cached and refetched once on an unknown
//!   `kid`, as the [`KeySource`] validation asks;
//! - [`tool_keys`]: the tool's own RSA keys and the JWKS it publishes (two live keys, for
//!   rotation);
//! - [`tool_key_store`]: that key set sealed at rest, made on first use and rotated;
//! - [`registration_input`]: a platform registration as written, checked field by field;
//! - [`deep_linking`]: the signed answer to a deep linking request;
//! - [`service_tokens`], [`platform_http`]: calling a platform's services as the tool;
//! - [`memberships`]: NRPS memberships (read by `sources::lti_nrps`) synced into the roster
//!   through the sync engine;
//! - [`grades`]: AGS line items and scores posted for a class.

pub mod deep_linking;
pub mod dynamic_registration;
pub mod grades;
pub mod launch;
pub mod memberships;
pub mod platform_http;
pub mod platform_keys;
pub mod registration_input;
pub mod service_tokens;
pub mod tool_key_store;
pub mod tool_keys;
pub mod validate;

use jsonwebtoken::DecodingKey;

/// Where a launch's signing key comes from: a platform's key set, by `kid`.
pub trait KeySource: Send + Sync {
    /// The key with this `kid`. A source that caches asks its platform again (once, and not
    /// too often) before answering [`KeyError::UnknownKid`].
    fn key(
        &self,
        kid: &str,
    ) -> impl std::future::Future<Output = Result<DecodingKey, KeyError>> + Send;
}

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The platform's key set, fetched again, has no key of this `kid`.
    #[error("the platform's key set has no key {0:?}")]
    UnknownKid(String),
    /// The key set could not be fetched or read.
    #[error("the platform's key set cannot be had: {0}")]
    Unavailable(String),
}

/// What a launch is checked against: the platform registration its login named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The platform's issuer, compared exactly (case-sensitive).
    pub issuer: String,
    /// The client id the platform gave the gateway.
    pub client_id: String,
    /// Deployments the district has: a launch from another one is refused, or accepted as
    /// pending an administrator's claim, as `unknown_deployments` says.
    pub deployment_ids: Vec<String>,
    pub unknown_deployments: UnknownDeployments,
}

/// What a launch from a deployment the registration does not list gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownDeployments {
    #[default]
    Refuse,
    /// Accepted, and recorded as pending until an administrator claims it.
    Pending,
}
