//! What the in-library servers of a peer (an assessment partner, a SIS gradebook, an LTI
//! platform) share: an actix server on a free port of 127.0.0.1 answering every request with one
//! handler over shared state, and the log of the requests it answered.

use std::net::TcpListener;
use std::sync::Mutex;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, FromRequest, Handler, HttpServer, Responder};

/// Largest request body the servers read.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A listener on a free port of 127.0.0.1, and its origin (`http://127.0.0.1:PORT`).
pub fn bind() -> std::io::Result<(TcpListener, String)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let origin = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    Ok((listener, origin))
}

/// A running server; [`Serving::stop`] ends it (dropping it leaves it running until the runtime
/// ends).
pub struct Serving {
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Serving {
    /// Serves every request with `handler` (which reads `state` as `web::Data<S>`), on
    /// `workers` threads of its own; call it within a Tokio runtime, which runs the server.
    pub fn start<S, F, Args>(
        listener: TcpListener,
        workers: usize,
        state: web::Data<S>,
        handler: F,
    ) -> std::io::Result<Serving>
    where
        S: Send + Sync + 'static,
        F: Handler<Args> + Clone + Send + 'static,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .default_service(web::to(handler.clone()))
        })
        .workers(workers.max(1))
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(Serving { handle, task })
    }

    /// Stops the server without waiting for requests in flight (a delayed answer is dropped).
    pub async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.task.await;
    }
}

/// The requests a server answered, in the order the answers were ready.
#[derive(Debug)]
pub struct RequestLog<T>(Mutex<Vec<T>>);

impl<T> Default for RequestLog<T> {
    fn default() -> Self {
        RequestLog(Mutex::default())
    }
}

impl<T: Clone> RequestLog<T> {
    pub fn push(&self, entry: T) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }

    pub fn all(&self) -> Vec<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
