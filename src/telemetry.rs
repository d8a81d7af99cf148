//! Logging (tracing, pretty or JSON) and the Prometheus metrics registry.

use std::io::IsTerminal;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Who reads the log, which decides what it says when no filter is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAudience {
    /// `serve`: an operator or a log shipper wants to see the server's work.
    Server,
    /// A one-off command: its output is the result; the log only says what went wrong.
    Terminal,
}

impl LogAudience {
    /// The filter used unless `log.filter` is set. sqlx warns about every slow statement, which
    /// a large import has by design, so a command shows only its errors.
    pub fn default_filter(self) -> &'static str {
        match self {
            LogAudience::Server => "info,sqlx=warn",
            LogAudience::Terminal => "warn,sqlx=error",
        }
    }
}

/// Installs the global subscriber once; later calls (tests) are no-ops. Logs go to stderr so
/// that command output (`--json`) stays clean on stdout, and carry colour only when stderr is a
/// terminal (escape codes are noise in a file or a pipe).
pub fn init(settings: &LogSettings, audience: LogAudience) {
    let filter = EnvFilter::new(
        settings
            .filter
            .as_deref()
            .unwrap_or(audience.default_filter()),
    );
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

/// Labels of one HTTP series. Every value comes from a closed set (see [`method_label`],
/// [`status_class`] and the route table), so no request can add a series of its own.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    /// The matched route pattern (`/api/v1/districts/{district}`), or [`UNMATCHED_ROUTE`].
    pub route: &'static str,
    pub status: &'static str,
}

/// The route label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The method label: the methods HTTP defines, and `other` for any other token a client sends.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// The status label: its class (`2xx` … `5xx`), which is what alerts look at.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    sync_runs: Family<RunLabels, Counter>,
    records_staged: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rostergate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let sync_runs = Family::<RunLabels, Counter>::default();
        let records_staged = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        registry.register(
            "sync_runs",
            "Sync runs finished, by outcome",
            sync_runs.clone(),
        );
        registry.register(
            "records_staged",
            "Roster records read into staging",
            records_staged.clone(),
        );
        Metrics {
            registry,
            http_requests,
            sync_runs,
            records_staged,
        }
    }

    /// Counts one answered request. `route` must be a pattern from the route table (or
    /// [`UNMATCHED_ROUTE`]): the caller maps what actix matched onto that closed set.
    pub fn record_http(&self, method: &str, route: &'static str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method_label(method),
                route,
                status: status_class(status),
            })
            .inc();
    }

    pub fn record_run(&self, status: &str) {
        self.sync_runs
            .get_or_create(&RunLabels {
                status: status.to_string(),
            })
            .inc();
    }

    pub fn record_staged(&self, n: u64) {
        self.records_staged.inc_by(n);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding to a String");
        out
    }
}

pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The span every HTTP request runs in. It names the route's pattern, never the path as sent:
/// paths and queries carry credentials (a registration invitation's token, a login's hints).
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %request.match_pattern().unwrap_or_else(|| "unmatched".into()),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_come_from_closed_sets() {
        let cases = [
            ("GET", 200, "GET", "2xx"),
            ("DELETE", 405, "DELETE", "4xx"),
            ("get", 404, "other", "4xx"),
            ("XYZZY", 599, "other", "5xx"),
            ("PROPFIND", 101, "other", "1xx"),
            ("HEAD", 304, "HEAD", "3xx"),
        ];
        for (method, status, want_method, want_status) in cases {
            assert_eq!(
                (method_label(method), status_class(status)),
                (want_method, want_status),
                "{method} {status}"
            );
        }
    }
}
