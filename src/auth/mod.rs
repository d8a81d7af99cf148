//! The gateway's own credentials: the master key, API clients, and the tokens they get.

pub mod client_status;
pub mod clients;
pub mod grant;
pub mod keys;
pub mod oauth1;
pub mod push_secrets;
pub mod rate_limit;
pub mod secrets;
pub mod source_tokens;
pub mod tokens;

/// Compares secrets in constant time, after a length check (lengths are not secret).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_equal_needs_same_length_and_bytes() {
        assert!(super::secrets_equal(b"abc", b"abc"));
        assert!(!super::secrets_equal(b"abc", b"abd"));
        assert!(!super::secrets_equal(b"abc", b"abcd"));
        assert!(!super::secrets_equal(b"", b"a"));
    }
}
