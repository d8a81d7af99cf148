//! Short-lived JWTs (HS256) bound to a district and scopes.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::MasterKey;
use crate::config::AuthSettings;
use crate::domain::scope::{self, Scope};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The client id.
    pub sub: String,
    /// The district slug the token is bound to.
    pub district: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    /// `None` for the operator, who may act on every district.
    pub district: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn operator() -> Principal {
        Principal {
            subject: "operator".into(),
            district: None,
            scopes: vec![Scope::Admin],
        }
    }
    pub fn is_operator(&self) -> bool {
        self.district.is_none()
    }
    pub fn may_see(&self, district: &str) -> bool {
        self.district.as_deref().is_none_or(|d| d == district)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    settings: AuthSettings,
}

impl TokenKeys {
    pub fn new(master: &MasterKey, settings: &AuthSettings) -> TokenKeys {
        let key = master.derive("rostergate/jwt/hs256/v1");
        TokenKeys {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            settings: settings.clone(),
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.settings.token_ttl_secs
    }

    pub fn issue(&self, client_id: &str, district: &str, scopes: &[Scope]) -> String {
        self.issue_at(client_id, district, scopes, Utc::now())
    }

    /// Issues a token whose lifetime starts at `now` (the grant's clock).
    pub fn issue_at(
        &self,
        client_id: &str,
        district: &str,
        scopes: &[Scope],
        now: DateTime<Utc>,
    ) -> String {
        let now = now.timestamp();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: client_id.to_string(),
            district: district.to_string(),
            scope: scope::join(scopes),
            iat: now,
            exp: now + self.settings.token_ttl_secs as i64,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.verify_at(token, Utc::now())
    }

    /// Verifies a token as of `now`: signature, issuer and audience, then expiry against the
    /// given clock (with the same 5 s leeway jsonwebtoken would apply).
    pub fn verify_at(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, TokenError> {
        const LEEWAY_SECS: i64 = 5;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.exp + LEEWAY_SECS < now.timestamp() {
            return Err(TokenError::Expired);
        }
        let scopes = Scope::parse_list(&claims.scope).map_err(|_| TokenError::Invalid)?;
        Ok(Principal {
            subject: claims.sub,
            district: Some(claims.district),
            scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ttl: u64, secret: &str) -> TokenKeys {
        let settings = AuthSettings {
            token_ttl_secs: ttl,
            ..AuthSettings::for_tests()
        };
        TokenKeys::new(&MasterKey::from_secret(secret).unwrap(), &settings)
    }

    #[test]
    fn issued_tokens_verify_with_their_district_and_scopes() {
        let k = keys(60, &"a".repeat(32));
        let token = k.issue("rgc_1", "lincoln", &[Scope::RosterRead]);
        let p = k.verify(&token).unwrap();
        assert_eq!(p.district.as_deref(), Some("lincoln"));
        assert_eq!(p.scopes, vec![Scope::RosterRead]);
        assert!(p.may_see("lincoln") && !p.may_see("other"));
    }

    #[test]
    fn tokens_from_another_key_tampered_or_expired_are_refused() {
        let k = keys(60, &"a".repeat(32));
        let other = keys(60, &"b".repeat(32));
        let token = other.issue("rgc_1", "lincoln", &[Scope::Admin]);
        assert_eq!(k.verify(&token), Err(TokenError::Invalid));
        let good = k.issue("rgc_1", "lincoln", &[Scope::RosterRead]);
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        // Swap in a payload claiming admin: the signature no longer matches.
        let forged = other.issue("rgc_1", "lincoln", &[Scope::Admin]);
        parts[1] = forged.split('.').nth(1).unwrap().to_string();
        assert_eq!(k.verify(&parts.join(".")), Err(TokenError::Invalid));
        assert_eq!(k.verify("not.a.jwt"), Err(TokenError::Invalid));
        let expired = {
            let k0 = keys(0, &"a".repeat(32));
            let now = chrono::Utc::now().timestamp();
            let claims = Claims {
                iss: "rostergate".into(),
                aud: "rostergate-api".into(),
                sub: "c".into(),
                district: "lincoln".into(),
                scope: "admin".into(),
                iat: now - 100,
                exp: now - 60,
                jti: "j".into(),
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k0.encoding).unwrap()
        };
        assert_eq!(k.verify(&expired), Err(TokenError::Expired));
    }

    #[test]
    fn the_none_algorithm_is_refused() {
        let k = keys(60, &"a".repeat(32));
        let good = k.issue("rgc_1", "lincoln", &[Scope::RosterRead]);
        let payload = good.split('.').nth(1).unwrap();
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none","typ":"JWT"}"#,
        );
        assert_eq!(
            k.verify(&format!("{header}.{payload}.")),
            Err(TokenError::Invalid)
        );
    }
}
