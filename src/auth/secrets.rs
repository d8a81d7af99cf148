//! Secrets at rest: partner credentials sealed with AES-256-GCM under a key derived from the
//! master key, each bound to the row it belongs to.
//!
//! A sealed value is text, `v1:` + base64(nonce ‖ ciphertext ‖ tag), with a random 96-bit nonce
//! per value. The associated data names the row (district and connection), so a ciphertext
//! copied into another row does not open. The version prefix leaves room for a new algorithm
//! or key without guessing what an old value is.

use std::sync::Arc;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;

use crate::auth::keys::MasterKey;
use crate::config::Secret;
use crate::domain::connection::ConnectionSecrets;

/// What [`MasterKey::derive`] is asked for: a new purpose string is a new key.
const KEY_PURPOSE: &str = "connection-secrets/v1";
const V1_PREFIX: &str = "v1:";
const TAG_LEN: usize = 16;

/// Why a sealed value did not open. None of these carries the value or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the sealed secret has an unknown format version")]
    UnknownVersion,
    #[error("the sealed secret is not valid base64 or is too short")]
    Malformed,
    /// Wrong key, wrong row, or altered bytes: AES-GCM cannot tell which, and neither do we.
    #[error("the sealed secret does not open: another key, another row, or altered bytes")]
    Rejected,
    #[error("the opened secret is not UTF-8 text")]
    NotText,
}

/// Seals and opens secrets under the key derived from the master key. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    key: Arc<RandomizedNonceKey>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([redacted])")
    }
}

impl SecretBox {
    pub fn new(master: &MasterKey) -> SecretBox {
        let key = RandomizedNonceKey::new(&AES_256_GCM, &master.derive(KEY_PURPOSE))
            .expect("a 32-byte key suits AES-256-GCM");
        SecretBox { key: Arc::new(key) }
    }

    /// Encrypts `plaintext`, bound to `aad` (what must match when it is opened).
    pub fn seal(&self, plaintext: &Secret, aad: &[u8]) -> String {
        let mut in_out = plaintext.expose().as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .expect("AES-GCM sealing fails only on absurd lengths");
        let mut packed = Vec::with_capacity(NONCE_LEN + in_out.len());
        packed.extend_from_slice(nonce.as_ref());
        packed.extend_from_slice(&in_out);
        format!(
            "{V1_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(packed)
        )
    }

    /// Decrypts what [`SecretBox::seal`] made with the same key and `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Secret, SecretError> {
        let encoded = sealed
            .strip_prefix(V1_PREFIX)
            .ok_or(SecretError::UnknownVersion)?;
        let mut packed = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Malformed)?;
        if packed.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&packed[..NONCE_LEN])
            .map_err(|_| SecretError::Malformed)?;
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut packed[NONCE_LEN..])
            .map_err(|_| SecretError::Rejected)?;
        let text = std::str::from_utf8(plaintext).map_err(|_| SecretError::NotText)?;
        Ok(Secret::new(text))
    }

    /// Seals a connection's secret, bound to its district and name.
    pub fn seal_connection_secret(&self, district_id: i64, name: &str, secret: &Secret) -> String {
        self.seal(secret, &connection_aad(district_id, name))
    }

    /// Opens a connection's sealed secret stored under this district and name.
    pub fn open_connection_secret(
        &self,
        district_id: i64,
        name: &str,
        sealed: &str,
    ) -> Result<Secret, SecretError> {
        self.open(sealed, &connection_aad(district_id, name))
    }

    /// Seals a connection's secrets: (secret, API key).
    pub fn seal_connection(
        &self,
        district_id: i64,
        name: &str,
        secrets: &ConnectionSecrets,
    ) -> (String, Option<String>) {
        (
            self.seal_connection_secret(district_id, name, &secrets.secret),
            secrets
                .api_key
                .as_ref()
                .map(|key| self.seal_connection_api_key(district_id, name, key)),
        )
    }

    /// Opens a connection's sealed secret and, when it has one, its sealed API key.
    pub fn open_connection(
        &self,
        district_id: i64,
        name: &str,
        (secret, api_key): (&str, Option<&str>),
    ) -> Result<ConnectionSecrets, SecretError> {
        Ok(ConnectionSecrets {
            secret: self.open_connection_secret(district_id, name, secret)?,
            api_key: api_key
                .map(|sealed| self.open_connection_api_key(district_id, name, sealed))
                .transpose()?,
        })
    }

    /// Seals a connection's API key, bound to its district and name under a purpose of its
    /// own, so that it cannot be swapped with the connection's secret.
    pub fn seal_connection_api_key(&self, district_id: i64, name: &str, key: &Secret) -> String {
        self.seal(key, &connection_api_key_aad(district_id, name))
    }

    /// Opens a connection's sealed API key stored under this district and name.
    pub fn open_connection_api_key(
        &self,
        district_id: i64,
        name: &str,
        sealed: &str,
    ) -> Result<Secret, SecretError> {
        self.open(sealed, &connection_api_key_aad(district_id, name))
    }

    /// Seals a district's push secret, bound to its district and id.
    pub fn seal_push_secret(&self, district_id: i64, id: &str, secret: &Secret) -> String {
        self.seal(secret, &push_secret_aad(district_id, id))
    }

    /// Opens a push secret stored under this district and id.
    pub fn open_push_secret(
        &self,
        district_id: i64,
        id: &str,
        sealed: &str,
    ) -> Result<Secret, SecretError> {
        self.open(sealed, &push_secret_aad(district_id, id))
    }

    /// Seals a webhook subscription's signing secret, bound to its district and id.
    pub fn seal_subscription_secret(&self, district_id: i64, id: &str, secret: &Secret) -> String {
        self.seal(secret, &subscription_secret_aad(district_id, id))
    }

    /// Opens a subscription's signing secret (current or previous) stored under this district
    /// and id.
    pub fn open_subscription_secret(
        &self,
        district_id: i64,
        id: &str,
        sealed: &str,
    ) -> Result<Secret, SecretError> {
        self.open(sealed, &subscription_secret_aad(district_id, id))
    }

    /// Seals one of the LTI tool's private keys (PKCS#8 DER, carried as base64 text), bound to
    /// its kid.
    pub fn seal_tool_key(&self, kid: &str, pkcs8_der: &[u8]) -> String {
        let text = Secret::new(base64::engine::general_purpose::STANDARD.encode(pkcs8_der));
        self.seal(&text, &tool_key_aad(kid))
    }

    /// Opens a tool key sealed under this kid: its PKCS#8 DER.
    pub fn open_tool_key(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let text = self.open(sealed, &tool_key_aad(kid))?;
        base64::engine::general_purpose::STANDARD
            .decode(text.expose())
            .map_err(|_| SecretError::Malformed)
    }
}

/// The associated data of a connection's secret: its row's key. A NUL separates the parts,
/// which neither holds, so no two rows share one.
pub fn connection_aad(district_id: i64, name: &str) -> Vec<u8> {
    format!("connection\0{district_id}\0{name}").into_bytes()
}

/// The associated data of a connection's API key: its row's key under its own label, so the
/// key and the secret never open as each other.
pub fn connection_api_key_aad(district_id: i64, name: &str) -> Vec<u8> {
    format!("connection-api-key\0{district_id}\0{name}").into_bytes()
}

/// The associated data of a push secret: its row's key, under another label than a
/// connection's, so neither opens as the other.
pub fn push_secret_aad(district_id: i64, id: &str) -> Vec<u8> {
    format!("push-secret\0{district_id}\0{id}").into_bytes()
}

/// The associated data of a subscription's signing secrets: its row's key, under its own label.
/// Both of a rotation's secrets share it, so a rotation moves the sealed text as it is.
pub fn subscription_secret_aad(district_id: i64, id: &str) -> Vec<u8> {
    format!("subscription\0{district_id}\0{id}").into_bytes()
}

/// The associated data of an LTI tool key: its kid, under its own label, so a sealed key
/// opens only as the key of that kid.
pub fn tool_key_aad(kid: &str) -> Vec<u8> {
    format!("lti-tool-key\0{kid}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_box(master: &str) -> SecretBox {
        SecretBox::new(&MasterKey::from_secret(master).unwrap())
    }

    fn a_box() -> SecretBox {
        secret_box(&"m".repeat(32))
    }

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_and_row() {
        let sb = a_box();
        for plain in ["s3cret", "", "ünïcødé and spaces", &"x".repeat(5000)] {
            let sealed = sb.seal(&Secret::new(plain), b"row-1");
            assert!(sealed.starts_with("v1:"));
            assert!(!sealed.contains(plain) || plain.is_empty());
            assert_eq!(sb.open(&sealed, b"row-1").unwrap().expose(), plain);
        }
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let sb = a_box();
        let secret = Secret::new("same");
        assert_ne!(sb.seal(&secret, b"row"), sb.seal(&secret, b"row"));
    }

    #[test]
    fn another_master_key_is_refused() {
        let sealed = a_box().seal(&Secret::new("s3cret"), b"row");
        let other = secret_box(&"o".repeat(32));
        assert_eq!(other.open(&sealed, b"row"), Err(SecretError::Rejected));
    }

    #[test]
    fn another_row_is_refused() {
        let sb = a_box();
        let sealed = sb.seal_connection_secret(1, "sis", &Secret::new("s3cret"));
        assert_eq!(
            sb.open_connection_secret(2, "sis", &sealed),
            Err(SecretError::Rejected)
        );
        assert_eq!(
            sb.open_connection_secret(1, "sis-2", &sealed),
            Err(SecretError::Rejected)
        );
        assert_eq!(
            sb.open_connection_secret(1, "sis", &sealed)
                .unwrap()
                .expose(),
            "s3cret"
        );
    }

    #[test]
    fn a_push_secret_opens_only_in_its_own_row() {
        let sb = a_box();
        let secret = Secret::new("whsec_c2VjcmV0");
        let sealed = sb.seal_push_secret(1, "id-1", &secret);
        assert_eq!(sb.open_push_secret(1, "id-1", &sealed).unwrap(), secret);
        for (district, id) in [(2, "id-1"), (1, "id-2")] {
            assert_eq!(
                sb.open_push_secret(district, id, &sealed),
                Err(SecretError::Rejected)
            );
        }
        assert_eq!(
            sb.open_connection_secret(1, "id-1", &sealed),
            Err(SecretError::Rejected)
        );
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let sb = a_box();
        let sealed = sb.seal(&Secret::new("s3cret"), b"row");
        let packed = base64::engine::general_purpose::STANDARD
            .decode(&sealed[3..])
            .unwrap();
        // Nonce, ciphertext and tag alike.
        for i in 0..packed.len() {
            let mut tampered = packed.clone();
            tampered[i] ^= 0x01;
            let text = format!(
                "v1:{}",
                base64::engine::general_purpose::STANDARD.encode(&tampered)
            );
            assert_eq!(
                sb.open(&text, b"row"),
                Err(SecretError::Rejected),
                "byte {i}"
            );
        }
    }

    #[test]
    fn unknown_versions_and_malformed_values_are_refused_by_kind() {
        let sb = a_box();
        let sealed = sb.seal(&Secret::new("s3cret"), b"row");
        let cases = [
            (format!("v2:{}", &sealed[3..]), SecretError::UnknownVersion),
            (sealed[3..].to_string(), SecretError::UnknownVersion),
            ("s3cret".to_string(), SecretError::UnknownVersion),
            ("v1:not base64!".to_string(), SecretError::Malformed),
            ("v1:".to_string(), SecretError::Malformed),
            ("v1:AAAA".to_string(), SecretError::Malformed),
        ];
        for (text, want) in cases {
            assert_eq!(sb.open(&text, b"row"), Err(want), "{text:?}");
        }
    }

    #[test]
    fn a_tool_key_opens_only_under_its_own_kid() {
        let sb = a_box();
        let der = [0x30, 0x82, 0x04, 0xbe, 0x02, 0x01, 0x00, 0xff];
        let sealed = sb.seal_tool_key("kid-1", &der);
        assert_eq!(sb.open_tool_key("kid-1", &sealed).unwrap(), der);
        assert_eq!(
            sb.open_tool_key("kid-2", &sealed),
            Err(SecretError::Rejected)
        );
        assert_eq!(
            sb.open_push_secret(0, "kid-1", &sealed),
            Err(SecretError::Rejected)
        );
        let clear = base64::engine::general_purpose::STANDARD.encode(der);
        assert!(!sealed.contains(&clear));
    }

    #[test]
    fn debug_output_shows_no_key() {
        assert_eq!(format!("{:?}", a_box()), "SecretBox([redacted])");
    }
}
