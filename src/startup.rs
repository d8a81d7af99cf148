//! Building and running the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::auth::client_status::ClientStatusCache;
use crate::auth::keys::{KeyError, MasterKey};
use crate::auth::rate_limit::TokenRateLimits;
use crate::auth::secrets::SecretBox;
use crate::auth::tokens::TokenKeys;
use crate::config::Settings;
use crate::delivery::DeliveryHandle;
use crate::http::{self, AppState};
use crate::inbound::{InboundJobs, INBOUND_ROSTER_KIND, INBOUND_SCORES_KIND};
use crate::jobs::{Handlers, JobsHandle, PULL_KIND};
use crate::pulls::{scheduled_items, PullJobs};
use crate::store::{Db, PoolLife, StoreError};
use crate::sync::Engine;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the {name} is {len} characters long: it must have at least {MIN_TOKEN_CHARS}")]
    TokenTooShort { name: &'static str, len: usize },
    #[error(transparent)]
    Webhooks(#[from] crate::delivery::send::ClientError),
    #[error("cannot load the learning plans: {0}")]
    LearningPlans(#[from] crate::domain::learning_plan::PlanError),
    #[error("cannot build the LTI platform service client: {0}")]
    LtiClient(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Opens the configured database for a pool that lives as `life` says, creating and migrating
/// it as needed.
pub async fn open_database(settings: &Settings, life: PoolLife) -> Result<Db, StoreError> {
    Db::connect_and_migrate_for(&settings.database_url, life).await
}

/// Shortest operator or metrics token accepted, as for the master key: long enough that
/// guessing is hopeless even without rate limits.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Refuses bearer secrets from the settings that are too short to be safe.
fn check_token_lengths(settings: &Settings) -> Result<(), StartupError> {
    let tokens = [
        ("operator token", settings.operator_token.as_ref()),
        ("metrics token", settings.auth.metrics_token.as_ref()),
    ];
    for (name, token) in tokens {
        let len = token.map_or(MIN_TOKEN_CHARS, |t| t.expose().chars().count());
        if len < MIN_TOKEN_CHARS {
            return Err(StartupError::TokenTooShort { name, len });
        }
    }
    Ok(())
}

pub struct Application {
    port: u16,
    server: Server,
    jobs: JobsHandle,
    deliveries: DeliveryHandle,
}

impl Application {
    /// Connects, migrates, and binds (port 0 picks a free port, as tests do).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        check_token_lengths(&settings)?;
        crate::scores::install_plans(&settings)?;
        let db = open_database(&settings, PoolLife::Service).await?;
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
        // Score pushes an earlier version stored without processing them get their job now (at
        // start-up rather than in a migration: it also catches those an earlier replica stores
        // during a rolling upgrade, and the job takes this gateway's `max_attempts`).
        match crate::inbound::enqueue_waiting(&db, &settings).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                jobs = n,
                "queued score pushes stored before they were processed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not queue the score pushes waiting without a job")
            }
        }
        let settings = Arc::new(settings);
        let secrets = SecretBox::new(&master);
        let jobs = {
            let pulls = PullJobs {
                engine: engine.clone(),
                db: db.clone(),
                secrets: secrets.clone(),
                settings: settings.clone(),
            };
            let pushes = InboundJobs {
                engine: engine.clone(),
                db: db.clone(),
                settings: settings.clone(),
            };
            let items_db = db.clone();
            crate::jobs::spawn(
                db.clone(),
                settings.jobs.clone(),
                Handlers::new()
                    .with(PULL_KIND, pulls)
                    .with(INBOUND_ROSTER_KIND, pushes.clone())
                    .with(INBOUND_SCORES_KIND, pushes),
                move || {
                    let db = items_db.clone();
                    async move { scheduled_items(&db).await }
                },
            )
        };
        let deliveries = crate::delivery::spawn(db.clone(), &settings, secrets.clone())?;
        // Deleting pushed bodies past their retention is background work too.
        if settings.jobs.enabled {
            crate::inbound::retention::spawn(db.clone(), settings.clone());
        }
        // Platform key sets, cached across launches (each refetched only on an unknown kid).
        let lti_keys = web::Data::new(crate::lti::launch::PlatformKeyCache::default());
        // Service tokens for platforms' NRPS and AGS, cached per registration and scope set.
        let lti_services = web::Data::new(crate::lti::service_tokens::ServiceTokens::new(
            crate::lti::platform_http::PlatformHttp::new(settings.lti.allow_insecure_platforms)
                .map_err(StartupError::LtiClient)?,
        ));
        let state = web::Data::new(AppState {
            listing_totals: Default::default(),
            engine,
            tokens: TokenKeys::new(&master, &settings.auth),
            secrets,
            client_status: ClientStatusCache::new(Duration::from_secs(
                settings.auth.client_check_ttl_secs,
            )),
            token_limits: TokenRateLimits::new(
                settings.auth.token_requests_per_minute_per_ip,
                settings.auth.token_requests_per_minute_per_client,
            ),
            db,
            settings,
        });
        let server = HttpServer::new(move || {
            App::new()
                // Refuses over-long request targets in the error shape, before routing (innermost, so the
                // metrics and the request log below see them).
                .wrap_fn(|req, srv| {
                    use actix_web::dev::Service as _;
                    use futures_util::future::{ready, Either};
                    match http::uri_too_long(&req) {
                        Some(refusal) => {
                            let response = actix_web::ResponseError::error_response(&refusal);
                            Either::Left(ready(Ok(req.into_response(response))))
                        }
                        None => Either::Right(srv.call(req)),
                    }
                })
                // Counts every answer, including the refusals above, with closed-set labels.
                .wrap_fn(|req, srv| {
                    use actix_web::dev::Service as _;
                    let method = req.method().clone();
                    let fut = srv.call(req);
                    async move {
                        let res = fut.await?;
                        let route = http::route_label(res.request().match_pattern().as_deref());
                        crate::telemetry::metrics().record_http(
                            method.as_str(),
                            route,
                            res.status().as_u16(),
                        );
                        Ok(res)
                    }
                })
                .wrap(tracing_actix_web::TracingLogger::<
                    crate::telemetry::RequestSpan,
                >::new())
                .app_data(state.clone())
                .app_data(lti_keys.clone())
                .app_data(lti_services.clone())
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
        Ok(Application {
            port,
            server,
            jobs,
            deliveries,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server stops (a signal), then stops the background jobs and the webhook
    /// deliveries: running work gets its grace period to finish, then is left to another
    /// process (a job queued again, a delivery retried once its lease runs out).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        tokio::join!(self.jobs.shutdown(), self.deliveries.shutdown());
        served
    }
}
