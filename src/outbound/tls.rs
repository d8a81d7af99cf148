//! The process's one TLS crypto provider: aws-lc-rs, installed before any client is built.
//! reqwest is built without a provider of its own, and rustls refuses to guess when more than
//! one could be compiled in.

/// Installs aws-lc-rs as rustls's default provider; later calls (and a provider someone else
/// installed first) are fine.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed, which is all that is needed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn installing_twice_is_harmless() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
