//! The client-credentials grant (RFC 6749 §4.4): who asks, what they ask, and when, in; a token
//! or the exact reason for refusing it, out. No I/O: the caller looks the client up first.

use chrono::{DateTime, Utc};

use super::clients::verify_secret;
use super::tokens::TokenKeys;
use crate::domain::scope::{Scope, UnknownScope};

/// The credentials a client presented (HTTP Basic or the form body).
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub client_id: String,
    pub secret: String,
}

/// The grant's own parameters from the token request.
#[derive(Debug, Clone, Default)]
pub struct GrantRequest {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
}

/// A registered client as the grant sees it.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    /// The slug of the district the client belongs to.
    pub district: String,
    /// The scopes the client was granted, as stored (space-separated).
    pub scopes: String,
    pub secret_hash: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token issued by the grant.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub scopes: Vec<Scope>,
    pub expires_in: u64,
}

/// Why a token was refused. The HTTP answer folds the client-authentication variants into one
/// `invalid_client`, so a caller cannot tell them apart; logs and tests can.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error("grant type {0:?} is not supported: only client_credentials is")]
    UnsupportedGrantType(String),
    #[error("the request has no client credentials")]
    MissingCredentials,
    #[error("no client {0:?} is registered")]
    UnknownClient(String),
    #[error("the secret presented for client {0:?} does not match")]
    WrongSecret(String),
    #[error("client {0:?} was revoked")]
    Revoked(String),
    #[error("the requested scope is not valid: {0}")]
    UnknownScope(#[from] UnknownScope),
    #[error("scope {0} is neither granted to this client nor implied by a scope it has")]
    ScopeNotGranted(Scope),
    #[error("client {client:?} has stored scopes that no longer parse: {source}")]
    CorruptClient {
        client: String,
        source: UnknownScope,
    },
}

impl GrantError {
    /// Whether the refusal is about who the client is (as opposed to what it asked for).
    pub fn is_client_authentication(&self) -> bool {
        matches!(
            self,
            GrantError::MissingCredentials
                | GrantError::UnknownClient(_)
                | GrantError::WrongSecret(_)
                | GrantError::Revoked(_)
        )
    }
}

/// Runs the grant for `auth` (the credentials presented), `client` (the record registered under
/// the presented id, if any) and `request`, at time `now`.
pub fn client_credentials(
    keys: &TokenKeys,
    auth: Option<&ClientAuth>,
    client: Option<&RegisteredClient>,
    request: &GrantRequest,
    now: DateTime<Utc>,
) -> Result<IssuedToken, GrantError> {
    let grant_type = request.grant_type.as_deref().unwrap_or_default();
    if grant_type != "client_credentials" {
        return Err(GrantError::UnsupportedGrantType(grant_type.to_string()));
    }
    let auth = auth.ok_or(GrantError::MissingCredentials)?;
    let client = client
        .filter(|c| c.client_id == auth.client_id)
        .ok_or_else(|| GrantError::UnknownClient(auth.client_id.clone()))?;
    if !verify_secret(&auth.secret, &client.secret_hash) {
        return Err(GrantError::WrongSecret(client.client_id.clone()));
    }
    if client.revoked_at.is_some_and(|at| at <= now) {
        return Err(GrantError::Revoked(client.client_id.clone()));
    }
    let granted =
        Scope::parse_list(&client.scopes).map_err(|source| GrantError::CorruptClient {
            client: client.client_id.clone(),
            source,
        })?;
    let requested = Scope::parse_list(request.scope.as_deref().unwrap_or_default())?;
    // No scope asked for means everything granted; a scope may be asked for when a granted one
    // implies it (an admin client may ask for a read-only token).
    let scopes = if requested.is_empty() {
        granted
    } else {
        if let Some(missing) = requested.iter().find(|s| !s.satisfied_by(&granted)) {
            return Err(GrantError::ScopeNotGranted(*missing));
        }
        requested
    };
    let access_token = keys.issue_at(&client.client_id, &client.district, &scopes, now);
    Ok(IssuedToken {
        access_token,
        scopes,
        expires_in: keys.ttl_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::clients::hash_secret;
    use crate::auth::keys::MasterKey;
    use crate::config::AuthSettings;

    const SECRET: &str = "rgs_the-right-secret";

    fn keys() -> TokenKeys {
        TokenKeys::new(
            &MasterKey::from_secret(&"k".repeat(32)).unwrap(),
            &AuthSettings::for_tests(),
        )
    }

    fn client(scopes: &str, revoked_at: Option<DateTime<Utc>>) -> RegisteredClient {
        RegisteredClient {
            client_id: "rgc_1".into(),
            district: "lincoln".into(),
            scopes: scopes.into(),
            secret_hash: hash_secret(SECRET),
            revoked_at,
        }
    }

    fn auth(secret: &str) -> ClientAuth {
        ClientAuth {
            client_id: "rgc_1".into(),
            secret: secret.into(),
        }
    }

    fn request(scope: Option<&str>) -> GrantRequest {
        GrantRequest {
            grant_type: Some("client_credentials".into()),
            scope: scope.map(String::from),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-09-01T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_valid_client_gets_a_token_for_its_district_and_granted_scopes() {
        let k = keys();
        let issued = client_credentials(
            &k,
            Some(&auth(SECRET)),
            Some(&client("roster:read roster:write", None)),
            &request(None),
            now(),
        )
        .unwrap();
        assert_eq!(issued.scopes, vec![Scope::RosterRead, Scope::RosterWrite]);
        assert_eq!(issued.expires_in, 3600);
        let later = |secs| now() + chrono::Duration::seconds(secs);
        let principal = k.verify_at(&issued.access_token, later(3599)).unwrap();
        assert_eq!(principal.subject, "rgc_1");
        assert_eq!(principal.district.as_deref(), Some("lincoln"));
        assert_eq!(principal.scopes, issued.scopes);
        // The token's lifetime runs from the grant's clock, not the machine's.
        assert_eq!(
            k.verify_at(&issued.access_token, later(3600 + 60)),
            Err(crate::auth::tokens::TokenError::Expired)
        );
    }

    #[test]
    fn a_scope_implied_by_a_granted_one_may_be_asked_for_and_narrows_the_token() {
        let issued = client_credentials(
            &keys(),
            Some(&auth(SECRET)),
            Some(&client("admin", None)),
            &request(Some("roster:read")),
            now(),
        )
        .unwrap();
        assert_eq!(issued.scopes, vec![Scope::RosterRead]);
    }

    /// A name, the request, the credentials presented, the client registered, and the outcome.
    type Case = (
        &'static str,
        GrantRequest,
        Option<ClientAuth>,
        Option<RegisteredClient>,
        Result<Vec<Scope>, GrantError>,
    );

    #[test]
    fn each_refusal_has_its_own_reason() {
        let revoked_before = Some(now() - chrono::Duration::seconds(1));
        let revoked_later = Some(now() + chrono::Duration::hours(1));
        let other_id = RegisteredClient {
            client_id: "rgc_2".into(),
            ..client("admin", None)
        };
        let cases: Vec<Case> = vec![
            (
                "invalid secret",
                request(None),
                Some(auth("rgs_wrong")),
                Some(client("admin", None)),
                Err(GrantError::WrongSecret("rgc_1".into())),
            ),
            (
                "unknown client",
                request(None),
                Some(auth(SECRET)),
                None,
                Err(GrantError::UnknownClient("rgc_1".into())),
            ),
            (
                "record of another client",
                request(None),
                Some(auth(SECRET)),
                Some(other_id),
                Err(GrantError::UnknownClient("rgc_1".into())),
            ),
            (
                "no credentials",
                request(None),
                None,
                Some(client("admin", None)),
                Err(GrantError::MissingCredentials),
            ),
            (
                "revoked",
                request(None),
                Some(auth(SECRET)),
                Some(client("admin", revoked_before)),
                Err(GrantError::Revoked("rgc_1".into())),
            ),
            (
                "revocation scheduled later",
                request(None),
                Some(auth(SECRET)),
                Some(client("roster:read", revoked_later)),
                Ok(vec![Scope::RosterRead]),
            ),
            (
                "over-broad",
                request(Some("roster:read admin")),
                Some(auth(SECRET)),
                Some(client("roster:read", None)),
                Err(GrantError::ScopeNotGranted(Scope::Admin)),
            ),
            (
                "write asked of a read-only client",
                request(Some("roster:write")),
                Some(auth(SECRET)),
                Some(client("roster:read", None)),
                Err(GrantError::ScopeNotGranted(Scope::RosterWrite)),
            ),
            (
                "scores asked of a roster client",
                request(Some("scores:write")),
                Some(auth(SECRET)),
                Some(client("roster:read roster:write", None)),
                Err(GrantError::ScopeNotGranted(Scope::ScoresWrite)),
            ),
            (
                "scores asked of an admin client",
                request(Some("scores:write")),
                Some(auth(SECRET)),
                Some(client("admin", None)),
                Ok(vec![Scope::ScoresWrite]),
            ),
            (
                "unknown scope",
                request(Some("root")),
                Some(auth(SECRET)),
                Some(client("admin", None)),
                Err(GrantError::UnknownScope(UnknownScope("root".into()))),
            ),
            (
                "unsupported grant type",
                GrantRequest {
                    grant_type: Some("password".into()),
                    scope: None,
                },
                Some(auth(SECRET)),
                Some(client("admin", None)),
                Err(GrantError::UnsupportedGrantType("password".into())),
            ),
            (
                "no grant type",
                GrantRequest::default(),
                Some(auth(SECRET)),
                Some(client("admin", None)),
                Err(GrantError::UnsupportedGrantType(String::new())),
            ),
            (
                "corrupt stored scopes",
                request(None),
                Some(auth(SECRET)),
                Some(client("roster:delete", None)),
                Err(GrantError::CorruptClient {
                    client: "rgc_1".into(),
                    source: UnknownScope("roster:delete".into()),
                }),
            ),
        ];
        let k = keys();
        for (name, req, auth, client, want) in cases {
            let got = client_credentials(&k, auth.as_ref(), client.as_ref(), &req, now())
                .map(|t| t.scopes);
            assert_eq!(got, want, "{name}");
        }
    }
}
