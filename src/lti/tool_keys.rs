//! The tool's own signing keys and the JWKS it publishes (reference §15, R6): RSA 2048, RS256,
//! `use: sig`, each named by its RFC 7638 thumbprint.
//!
//! A [`ToolKeySet`] holds two live keys, the current one (which signs) and the next one
//! (published, not yet signing). Platforms cache a tool's JWKS; publishing the next key a whole
//! rotation period before it signs means every platform already has it when it starts to.
//! [`ToolKeySet::rotate`] retires the current key, promotes the next and makes a new next.
//!
//! Private keys are kept as PKCS#8 DER; the caller seals [`ToolKey::to_bytes`] at rest
//! (`auth::secrets`) and keeps `created_at` beside it. Debug output never shows key material.

#[cfg(test)]
mod tests;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::EncodingKey;

/// Why a tool key could not be made or read. None of these carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolKeyError {
    #[error("cannot generate an RSA key")]
    Generate,
    #[error("the stored tool key is not an RSA private key in PKCS#8 DER")]
    Malformed,
    #[error("a tool key set holds exactly two keys with distinct kids (current, next); got {0}")]
    BadSet(String),
}

/// One of the tool's RSA signing keys.
#[derive(Clone)]
pub struct ToolKey {
    kid: String,
    created_at: DateTime<Utc>,
    /// What is sealed at rest.
    private_pkcs8_der: Vec<u8>,
    /// The same key in the form jsonwebtoken signs with (PKCS#1, see [`pkcs1_of_pkcs8`]).
    signing: EncodingKey,
    /// Public modulus and exponent, base64url.
    n: String,
    e: String,
}

impl std::fmt::Debug for ToolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl ToolKey {
    /// A new RSA 2048 key, created now.
    pub fn generate() -> Result<ToolKey, ToolKeyError> {
        ToolKey::generate_at(Utc::now())
    }

    /// A new RSA 2048 key with this creation time.
    pub fn generate_at(created_at: DateTime<Utc>) -> Result<ToolKey, ToolKeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| ToolKeyError::Generate)?;
        let der = pair.as_der().map_err(|_| ToolKeyError::Generate)?;
        ToolKey::from_bytes(der.as_ref(), created_at).map_err(|_| ToolKeyError::Generate)
    }

    /// A key from what [`ToolKey::to_bytes`] gave (PKCS#8 DER) and its creation time; the kid
    /// is derived again from the key.
    pub fn from_bytes(bytes: &[u8], created_at: DateTime<Utc>) -> Result<ToolKey, ToolKeyError> {
        let pair = KeyPair::from_pkcs8(bytes).map_err(|_| ToolKeyError::Malformed)?;
        let pkcs1 = pkcs1_of_pkcs8(bytes).ok_or(ToolKeyError::Malformed)?;
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        Ok(ToolKey {
            kid: rsa_thumbprint(&n, &e),
            created_at,
            private_pkcs8_der: bytes.to_vec(),
            signing: EncodingKey::from_rsa_der(pkcs1),
            n,
            e,
        })
    }

    /// The private key as PKCS#8 DER, for sealing at rest. Never log it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.private_pkcs8_der.clone()
    }

    /// The RFC 7638 thumbprint of the public key: base64url SHA-256 of its canonical JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The public key as a JWK: `{"kty":"RSA","alg":"RS256","use":"sig","kid","n","e"}`.
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        })
    }

    /// The key to sign RS256 JWTs with; put [`ToolKey::kid`] in their header.
    pub fn encoding_key(&self) -> EncodingKey {
        self.signing.clone()
    }
}

/// The RFC 7638 thumbprint of an RSA public key given as base64url `n` and `e`: the required
/// members only, in lexicographic order, no whitespace. Base64url text needs no JSON escaping.
pub fn rsa_thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (RFC 5208):
/// `SEQUENCE { INTEGER version, SEQUENCE { OID rsaEncryption, … }, OCTET STRING key, … }`.
/// jsonwebtoken's aws-lc backend signs with `RsaKeyPair::from_der`, which reads only PKCS#1,
/// while aws-lc-rs generates and exports PKCS#8.
fn pkcs1_of_pkcs8(der: &[u8]) -> Option<&[u8]> {
    /// 1.2.840.113549.1.1.1
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (info, _) = der_element(der, 0x30)?;
    let (_version, rest) = der_element(info, 0x02)?;
    let (algorithm, rest) = der_element(rest, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (key, _) = der_element(rest, 0x04)?;
    Some(key)
}

/// The contents of the DER element at the start of `input` if its tag is `tag`, and what
/// follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// The tool's live keys, oldest first: the current key (signs) and the next one (published
/// ahead of signing).
#[derive(Debug, Clone)]
pub struct ToolKeySet {
    keys: Vec<ToolKey>,
}

impl ToolKeySet {
    /// A fresh set: two new keys, created `now`.
    pub fn generate(now: DateTime<Utc>) -> Result<ToolKeySet, ToolKeyError> {
        Ok(ToolKeySet {
            keys: vec![ToolKey::generate_at(now)?, ToolKey::generate_at(now)?],
        })
    }

    /// A set from stored keys, current first then next.
    pub fn from_keys(keys: Vec<ToolKey>) -> Result<ToolKeySet, ToolKeyError> {
        match keys.as_slice() {
            [current, next] if current.kid != next.kid => Ok(ToolKeySet { keys }),
            [_, _] => Err(ToolKeyError::BadSet("two keys with one kid".into())),
            other => Err(ToolKeyError::BadSet(format!("{} keys", other.len()))),
        }
    }

    /// The key that signs.
    pub fn current(&self) -> &ToolKey {
        &self.keys[0]
    }

    /// The key that signs after the next rotation; already published.
    pub fn next(&self) -> &ToolKey {
        &self.keys[1]
    }

    /// The live keys, current first; what is stored.
    pub fn keys(&self) -> &[ToolKey] {
        &self.keys
    }

    /// Retires the current key, makes the next one current and generates a new next, created
    /// `now`. Tokens signed by the retired key stop verifying once platforms refetch the JWKS.
    pub fn rotate(&mut self, now: DateTime<Utc>) -> Result<(), ToolKeyError> {
        let fresh = ToolKey::generate_at(now)?;
        self.keys.remove(0);
        self.keys.push(fresh);
        Ok(())
    }

    /// The published JWKS: `{"keys":[…]}` with every live key.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": self.keys.iter().map(ToolKey::public_jwk).collect::<Vec<_>>(),
        })
    }
}
