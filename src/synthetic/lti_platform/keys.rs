//! The platform's signing keys: the one that signs, the ones its JWKS publishes, and one it
//! never publishes (for tokens whose `kid` no key set knows).
//!
//! Rotation as platforms do it (Sec §6.4): a new key under a new kid signs at once, while the
//! old one stays published until [`PlatformKeys::publish_only_new`] for tokens already out and
//! key sets already cached.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::lti::tool_keys::{ToolKey, ToolKeyError};

pub(super) struct PlatformKeys {
    signing: ToolKey,
    /// Oldest first; always holds the signing key.
    published: Vec<ToolKey>,
    unknown: ToolKey,
}

impl PlatformKeys {
    pub fn generate() -> Result<PlatformKeys, ToolKeyError> {
        let signing = ToolKey::generate()?;
        Ok(PlatformKeys {
            published: vec![signing.clone()],
            signing,
            unknown: ToolKey::generate()?,
        })
    }

    /// `{"keys":[…]}`, every published key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published.iter().map(ToolKey::public_jwk).collect::<Vec<_>>() })
    }

    pub fn signing_kid(&self) -> &str {
        self.signing.kid()
    }

    pub fn published_kids(&self) -> Vec<String> {
        self.published.iter().map(|k| k.kid().to_string()).collect()
    }

    /// The header and key to sign with: the signing key's, or the unpublished one's.
    pub fn signer(&self, unknown: bool) -> (Header, EncodingKey) {
        let key = if unknown {
            &self.unknown
        } else {
            &self.signing
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid().to_string());
        (header, key.encoding_key())
    }

    /// A new key signs from now on; the old ones stay published. Returns the new kid.
    pub fn rotate(&mut self) -> Result<String, ToolKeyError> {
        let fresh = ToolKey::generate()?;
        self.published.push(fresh.clone());
        self.signing = fresh;
        Ok(self.signing.kid().to_string())
    }

    /// Stops publishing every key but the signing one.
    pub fn publish_only_new(&mut self) {
        self.published = vec![self.signing.clone()];
    }
}
