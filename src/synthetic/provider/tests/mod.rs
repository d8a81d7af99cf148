//! The provider's own checks: its primitives against published vectors, and the running
//! server driven by reqwest.

mod primitives;
mod serving;

use aws_lc_rs::hmac;
use base64::Engine as _;
use reqwest::Client;

use super::auth::hmac_algorithm;
use super::*;

const CLIENT_ID: &str = "district-client";
const CLIENT_SECRET: &str = "s3cret/with+odd=chars";
const CONSUMER_KEY: &str = "consumer-key";
const CONSUMER_SECRET: &str = "consumer&secret";

/// reqwest builds its TLS configuration even for plain HTTP, so a crypto provider must be set.
fn client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Client::new()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hmac_b64(method: SignatureMethod, key: &str, text: &str) -> String {
    let key = hmac::Key::new(hmac_algorithm(method), key.as_bytes());
    b64(hmac::sign(&key, text.as_bytes()).as_ref())
}
