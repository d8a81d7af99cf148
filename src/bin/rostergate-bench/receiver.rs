//! A webhook receiver for the deliveries benchmark: an HTTP server on a loopback port that
//! answers every request 200 at once and counts the distinct `webhook-id`s it was sent (a
//! retried delivery is counted once).

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

#[derive(Default)]
struct Counts {
    ids: Mutex<HashSet<String>>,
    requests: AtomicU64,
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
        let counts = Arc::new(Counts::default());
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

    /// Distinct deliveries received.
    pub fn delivered(&self) -> u64 {
        self.counts
            .ids
            .lock()
            .expect("the id set is not poisoned")
            .len() as u64
    }

    /// Requests received, repeats included.
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::Relaxed)
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

async fn receive(req: HttpRequest, _body: web::Bytes, counts: web::Data<Counts>) -> HttpResponse {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(id) = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
    {
        counts
            .ids
            .lock()
            .expect("the id set is not poisoned")
            .insert(id.to_string());
    }
    HttpResponse::Ok().finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Connection;

    #[tokio::test]
    async fn deliveries_are_counted_once_by_webhook_id() {
        let receiver = Receiver::start().unwrap();
        let mut conn = Connection::new(receiver.addr);
        for id in ["msg_1", "msg_2", "msg_1"] {
            let headers = format!("webhook-id: {id}\r\nContent-Type: application/json\r\n");
            let response = conn
                .request("POST", "/hook", &headers, b"{}")
                .await
                .unwrap();
            assert_eq!(response.status, 200);
        }
        assert_eq!((receiver.delivered(), receiver.requests()), (2, 3));
        receiver.stop().await;
    }
}
