//! API client credentials: ids are public, secrets are shown once and stored as a hash.

use base64::Engine as _;

use super::keys::random_bytes;

/// A new client's credentials, to print once.
pub struct NewCredentials {
    pub client_id: String,
    pub client_secret: String,
}

pub fn generate() -> NewCredentials {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    NewCredentials {
        client_id: format!("rgc_{}", hex::encode(random_bytes::<12>())),
        client_secret: format!("rgs_{}", b64.encode(random_bytes::<32>())),
    }
}

/// Secrets are 256 random bits, so a plain SHA-256 stores them safely (no password stretching
/// is needed for values nobody can guess).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        secret.as_bytes(),
    ))
}

pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    super::secrets_equal(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_verify_against_their_hash_only() {
        let a = generate();
        let b = generate();
        assert_ne!(a.client_id, b.client_id);
        assert_ne!(a.client_secret, b.client_secret);
        let stored = hash_secret(&a.client_secret);
        assert!(!stored.contains(&a.client_secret));
        assert!(verify_secret(&a.client_secret, &stored));
        assert!(!verify_secret(&b.client_secret, &stored));
        assert!(!verify_secret("", &stored));
    }
}
