//! One delivery on the wire: a POST of the event's envelope, signed the Standard Webhooks way
//! with every live secret of the subscription, within a whole-request timeout, following no
//! redirect, reading at most a little of the answer.
//!
//! The connection only goes to addresses the [`TargetGuard`] vetted: host names are resolved by
//! a resolver that runs the guard, so the address checked is the address connected to (a DNS
//! answer that changes between a check and the connection cannot reach a private network), and
//! literal addresses are checked before the request. No proxy is used: it would resolve the
//! host itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;

use super::schedule::Answer;
use crate::events::signing::{
    sign_all, WebhookSecret, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use crate::outbound::diagnostics::{describe_transport_error, error_excerpt};
use crate::outbound::response::read_capped;
use crate::outbound::retry::parse_retry_after;
use crate::outbound::target_guard::{GuardedResolver, TargetGuard};
use crate::outbound::USER_AGENT;

/// Bytes of an answer read: enough for an excerpt; the rest is not waited for.
const ANSWER_READ_BYTES: u64 = 4096;

/// How an attempt went on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub answer: Answer,
    pub duration: Duration,
    /// Why there was no answer, or `HTTP <code>` for a non-2xx one.
    pub error: Option<String>,
    /// A short, cleaned excerpt of the answer's body.
    pub excerpt: Option<String>,
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct ClientError(String);

/// The one HTTP client of the delivery worker.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    guard: TargetGuard,
    timeout: Duration,
}

impl Sender {
    pub fn new(
        guard: TargetGuard,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Sender, ClientError> {
        crate::outbound::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(guard)))
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(concurrency.max(1))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ClientError(describe_transport_error(&e)))?;
        Ok(Sender {
            http,
            guard,
            timeout,
        })
    }

    /// POSTs `body` to `url` as message `msg_id`, signed with `secrets`.
    pub async fn send(
        &self,
        url: &str,
        msg_id: &str,
        body: Vec<u8>,
        secrets: &[WebhookSecret],
    ) -> Sent {
        let started = Instant::now();
        let no_answer = |error: String| Sent {
            answer: Answer::None,
            duration: started.elapsed(),
            error: Some(error),
            excerpt: None,
        };
        let url = match Url::parse(url) {
            Ok(url) => url,
            Err(e) => return no_answer(format!("the subscription URL is not a URL: {e}")),
        };
        // Literal addresses never reach the resolver.
        let literal = url.host_str().is_none_or(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
        });
        if literal {
            if let Err(e) = self.guard.check(&url).await {
                return no_answer(e.to_string());
            }
        }
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign_all(secrets, msg_id, timestamp, &body);
        let request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, msg_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body)
            .send();
        // reqwest's timeout covers the exchange; this one also bounds reading the answer.
        let exchange = async {
            let mut response = request.await?;
            let code = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            // A subscriber that answers and then trickles its body is not waited for.
            let body = read_capped(&mut response, ANSWER_READ_BYTES)
                .await
                .map(|b| b.bytes)
                .unwrap_or_default();
            Ok::<_, reqwest::Error>((code, retry_after, body))
        };
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), exchange).await {
            Err(_) => no_answer(format!("timed out after {} s", self.timeout.as_secs_f64())),
            Ok(Err(e)) => no_answer(describe_transport_error(&e)),
            Ok(Ok((code, retry_after, body))) => {
                let excerpt = error_excerpt(&body, &[]);
                let excerpt = excerpt.strip_prefix(": ").map(str::to_string);
                Sent {
                    answer: Answer::Status {
                        code,
                        retry_after: retry_after.filter(|_| matches!(code, 429 | 503)),
                    },
                    duration: started.elapsed(),
                    error: (!(200..300).contains(&code)).then(|| format!("HTTP {code}")),
                    excerpt,
                }
            }
        }
    }
}
