//! The master key. Token-signing (and, later, encryption) keys are derived from it, so one
//! secret protects everything and rotating it invalidates all tokens at once.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the secret key must be at least 32 characters (got {0})")]
    TooShort(usize),
    #[error("cannot read or create the key file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct MasterKey(Vec<u8>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// From `secret_key` in settings, else from `<data_dir>/secret.key`, created (mode 0600) on
    /// first use. Replicas sharing one database must share the key: set ROSTERGATE_SECRET_KEY.
    pub fn load(settings: &Settings) -> Result<MasterKey, KeyError> {
        if let Some(secret) = &settings.secret_key {
            return MasterKey::from_secret(secret.expose());
        }
        MasterKey::from_file(&settings.data_dir.join("secret.key"))
    }

    pub fn from_secret(secret: &str) -> Result<MasterKey, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::TooShort(secret.len()));
        }
        Ok(MasterKey(secret.as_bytes().to_vec()))
    }

    fn from_file(path: &Path) -> Result<MasterKey, KeyError> {
        let fail = |source| KeyError::File {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => MasterKey::from_secret(text.trim()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(fail)?;
                }
                let secret = base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>());
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(secret.as_bytes()).map_err(fail)?;
                        MasterKey::from_secret(&secret)
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        MasterKey::from_file(path)
                    }
                    Err(e) => Err(fail(e)),
                }
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// A key for one purpose: HMAC-SHA256(master, purpose).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0);
        let tag = aws_lc_rs::hmac::sign(&key, purpose.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).expect("the system random generator works");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.key");
        let a = MasterKey::from_file(&path).unwrap();
        let b = MasterKey::from_file(&path).unwrap();
        assert_eq!(a.derive("x"), b.derive("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_short_secrets_are_refused() {
        let k = MasterKey::from_secret(&"k".repeat(32)).unwrap();
        assert_ne!(k.derive("jwt"), k.derive("aead"));
        assert!(matches!(
            MasterKey::from_secret("short"),
            Err(KeyError::TooShort(5))
        ));
        assert!(!format!("{k:?}").contains("kkkk"));
    }
}
