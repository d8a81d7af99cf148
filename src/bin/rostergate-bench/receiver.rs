//! A webhook receiver for the deliveries benchmark: an HTTP server on a loopback port that
//! checks each request's Standard Webhooks signature against the subscription's secret, answers
//! 200 at once when it holds (401 when not) and counts the distinct `webhook-id`s it accepted (a
//! retried delivery is counted once).

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;

use rostergate::events::signing::{self, SignedHeaders, WebhookSecret};

struct Counts {
    /// The subscription's secret; `None` until it is known (everything is refused until then).
    secret: Mutex<Option<WebhookSecret>>,
    ids: Mutex<HashSet<String>>,
    requests: AtomicU64,
    refused: AtomicU64,
}

/// The running receiver; stop it with [`Receiver::stop`].
pub struct Receiver {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    server: ServerHandle,
}

impl Receiver {
    pub fn start() -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts {
            secret: Mutex::new(None),
            ids: Mutex::new(HashSet::new()),
            requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let shared = web::Data::from(counts.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Receiver {
            addr,
            counts,
            server: handle,
        })
    }

    /// The secret deliveries must be signed with (the subscription's, known once it is made).
    pub fn expect_secret(&self, secret: WebhookSecret) {
        *self
            .counts
            .secret
            .lock()
            .expect("the secret is not poisoned") = Some(secret);
    }

    /// Distinct deliveries received with a valid signature.
    pub fn delivered(&self) -> u64 {
        self.counts
            .ids
            .lock()
            .expect("the id set is not poisoned")
            .len() as u64
    }

    /// Requests refused for a missing or wrong signature.
    pub fn refused(&self) -> u64 {
        self.counts.refused.load(Ordering::Relaxed)
    }

    /// Requests received, repeats included.
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::Relaxed)
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, counts: web::Data<Counts>) -> HttpResponse {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let headers = SignedHeaders {
        id: header(signing::HEADER_ID),
        timestamp: header(signing::HEADER_TIMESTAMP),
        signature: header(signing::HEADER_SIGNATURE),
    };
    let secrets: Vec<WebhookSecret> = counts
        .secret
        .lock()
        .expect("the secret is not poisoned")
        .iter()
        .cloned()
        .collect();
    let verified = signing::verify(&secrets, &headers, &body, Utc::now());
    match (verified, headers.id) {
        (Ok(()), Some(id)) => {
            counts
                .ids
                .lock()
                .expect("the id set is not poisoned")
                .insert(id.to_string());
            HttpResponse::Ok().finish()
        }
        _ => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            HttpResponse::Unauthorized().finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Connection;

    #[tokio::test]
    async fn signed_deliveries_are_counted_once_by_webhook_id_and_unsigned_ones_refused() {
        let receiver = Receiver::start().unwrap();
        let secret = WebhookSecret::generate();
        receiver.expect_secret(secret.clone());
        let mut conn = Connection::new(receiver.addr);
        let ts = Utc::now().timestamp();
        let sends = [
            ("msg_1", signing::sign(&secret, "msg_1", ts, b"{}"), 200),
            ("msg_2", signing::sign(&secret, "msg_2", ts, b"{}"), 200),
            ("msg_1", signing::sign(&secret, "msg_1", ts, b"{}"), 200),
            ("msg_3", signing::sign(&secret, "msg_1", ts, b"{}"), 401),
            (
                "msg_4",
                signing::sign(&WebhookSecret::generate(), "msg_4", ts, b"{}"),
                401,
            ),
        ];
        for (id, signature, status) in sends {
            let headers = format!(
                "webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\n\
                 Content-Type: application/json\r\n"
            );
            let response = conn
                .request("POST", "/hook", &headers, b"{}")
                .await
                .unwrap();
            assert_eq!(response.status, status, "{id}");
        }
        assert_eq!(
            (
                receiver.delivered(),
                receiver.refused(),
                receiver.requests()
            ),
            (2, 2, 5)
        );
        receiver.stop().await;
    }
}
