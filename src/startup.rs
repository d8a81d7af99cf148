//! Building and running the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::auth::keys::{KeyError, MasterKey};
use crate::auth::tokens::TokenKeys;
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::store::{Db, StoreError};
use crate::sync::Engine;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Opens the configured database, creating and migrating it as needed.
pub async fn open_database(settings: &Settings) -> Result<Db, StoreError> {
    Db::connect_and_migrate(&settings.database_url).await
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connects, migrates, and binds (port 0 picks a free port, as tests do).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let db = open_database(&settings).await?;
        let master = MasterKey::load(&settings)?;
        let listener = TcpListener::bind(&settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.bind.clone(),
                source,
            })?
            .port();
        let engine = Engine::new(db.clone(), settings.import.max_reported_errors);
        // Runs that a crashed gateway left "running" are failed now rather than at the next sync.
        match engine.recover_abandoned_runs().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                districts = n,
                "failed the runs a stopped gateway left running"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not check for runs a stopped gateway left running")
            }
        }
        let state = web::Data::new(AppState {
            engine,
            tokens: TokenKeys::new(&master, &settings.auth),
            db,
            settings: Arc::new(settings),
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(tracing_actix_web::TracingLogger::default())
                .wrap_fn(|req, srv| {
                    use actix_web::dev::Service as _;
                    let method = req.method().to_string();
                    let fut = srv.call(req);
                    async move {
                        let res = fut.await?;
                        crate::telemetry::metrics().record_http(&method, res.status().as_u16());
                        Ok(res)
                    }
                })
                .app_data(state.clone())
                .app_data(http::json_config())
                .app_data(http::query_config())
                .app_data(http::form_config())
                .configure(http::configure)
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: "listener".into(),
            source,
        })?
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
