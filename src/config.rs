//! Layered, typed settings: embedded `config/default.toml` < `config/<env>.toml` < `ROSTERGATE_*`
//! environment variables < command-line flags. Nothing else in the crate reads the environment.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: cannot read {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A value that must never reach a log line or a `Debug` dump.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Deserialize)]
pub struct Settings {
    pub bind: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub import: ImportSettings,
    /// Bearer token that may do everything: for bootstrapping and operations.
    #[serde(default)]
    pub operator_token: Option<Secret>,
    /// Master key from which token-signing and encryption keys are derived. When unset, a key
    /// file under `data_dir` is created on first use.
    #[serde(default)]
    pub secret_key: Option<Secret>,
    /// Calls the gateway makes to other systems (SIS APIs, token endpoints).
    #[serde(default)]
    pub outbound: OutboundSettings,
    #[serde(default)]
    pub jobs: JobSettings,
    /// Pushes to the gateway (`POST …/roster`, `POST …/scores`).
    #[serde(default)]
    pub inbound: InboundSettings,
    /// Events delivered to webhook subscribers (`delivery`).
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// Assessment results and the learning plans made from them.
    #[serde(default)]
    pub scores: ScoreSettings,
    /// The gateway as an LTI 1.3 tool.
    #[serde(default)]
    pub lti: LtiSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("database_url", &redact_url(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field("log", &self.log)
            .field("auth", &self.auth)
            .field("import", &self.import)
            .field("operator_token", &self.operator_token)
            .field("secret_key", &self.secret_key)
            .field("outbound", &self.outbound)
            .field("jobs", &self.jobs)
            .field("inbound", &self.inbound)
            .field("webhooks", &self.webhooks)
            .field("scores", &self.scores)
            .field("lti", &self.lti)
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter; unset means the command's own default (`telemetry::LogAudience`).
    #[serde(default)]
    pub filter: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AuthSettings {
    pub token_ttl_secs: u64,
    pub issuer: String,
    pub audience: String,
    /// How long a client's revocation status is trusted before it is read again; a revoked
    /// client's tokens stop working at most this long after the revocation.
    pub client_check_ttl_secs: u64,
    /// Requests to `POST /oauth/token` allowed per minute from one IP address (burst included).
    pub token_requests_per_minute_per_ip: u32,
    /// Requests to `POST /oauth/token` allowed per minute naming one client id.
    pub token_requests_per_minute_per_client: u32,
    /// A bearer token that may read `/metrics` (and nothing else); the operator token may too.
    #[serde(default)]
    pub metrics_token: Option<Secret>,
}

#[cfg(test)]
impl AuthSettings {
    /// The shipped defaults, for unit tests that build keys without loading configuration.
    pub fn for_tests() -> AuthSettings {
        Settings::load_from(Path::new("/nonexistent"), &[], &Overrides::default())
            .expect("the shipped defaults load")
            .auth
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct ImportSettings {
    pub max_file_bytes: u64,
    pub max_field_bytes: usize,
    /// Bytes of one CSV row, checked while it is read (an unclosed quote stops here).
    pub max_record_bytes: usize,
    /// Fields in one CSV row, the header included.
    pub max_columns: usize,
    pub max_reported_errors: usize,
    /// Distinct warnings kept in a run report; the rest are only counted.
    pub max_reported_warnings: usize,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            max_file_bytes: 8 << 30,
            max_field_bytes: 64 << 10,
            max_record_bytes: 1 << 20,
            max_columns: 512,
            max_reported_errors: 1000,
            max_reported_warnings: 100,
        }
    }
}

/// Retries and limits of outbound HTTP calls (`outbound::retry`, `outbound::client`). A
/// connection's own rate, concurrency and timeout live in its `RequestLimits`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct OutboundSettings {
    /// Tries of one request, the first included.
    pub max_attempts: u32,
    /// The first pause before a retry; each later pause doubles, with jitter.
    pub initial_backoff_ms: u64,
    /// The longest pause between two tries.
    pub max_backoff_secs: u64,
    /// The longest `Retry-After` honoured; a source asking for more fails the request at once.
    pub max_retry_after_secs: u64,
    /// No retry starts once this long has passed since the first try.
    pub max_retry_elapsed_secs: u64,
    /// Time allowed to open a connection (TCP and TLS).
    pub connect_timeout_secs: u64,
    /// The largest response body read; a larger one fails the request.
    pub max_response_bytes: u64,
    /// Let partner-given targets (webhook subscribers) be private, loopback or link-local
    /// addresses (`outbound::target_guard`); for tests and closed networks only.
    #[serde(default)]
    pub allow_private_targets: bool,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        OutboundSettings {
            max_attempts: 6,
            initial_backoff_ms: 500,
            max_backoff_secs: 30,
            max_retry_after_secs: 300,
            max_retry_elapsed_secs: 900,
            connect_timeout_secs: 10,
            max_response_bytes: 256 << 20,
            allow_private_targets: false,
        }
    }
}

/// Background jobs (`serve`): the runner that claims them and the scheduler that enqueues pulls.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Runs jobs and schedules in this process. Off: the process only serves the API.
    pub enabled: bool,
    /// How often an idle runner looks for due jobs.
    pub poll_interval_ms: u64,
    /// How long a claimed job is leased; the runner renews it every third of this while the job
    /// runs. A process that dies keeps its jobs at most this long.
    pub lease_secs: u64,
    /// Jobs one process runs at once.
    pub concurrency: usize,
    /// Delay before the n-th retry of a failed job (the last one repeats).
    pub retry_delays_secs: Vec<u64>,
    /// Attempts of a job, the first included, before it is failed for good.
    pub max_attempts: u32,
    /// How often the scheduler looks for schedules that came due.
    pub schedule_interval_ms: u64,
    /// How long shutdown waits for running jobs before stopping them (they are queued again).
    pub shutdown_grace_secs: u64,
    /// How long a job whose district is busy with another sync waits before it tries again
    /// (the wait uses up no attempt).
    pub busy_retry_secs: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            enabled: true,
            poll_interval_ms: 1000,
            lease_secs: 300,
            concurrency: 1,
            retry_delays_secs: vec![30, 300, 1800],
            max_attempts: 3,
            schedule_interval_ms: 15_000,
            shutdown_grace_secs: 30,
            busy_retry_secs: 60,
        }
    }
}

/// Assessment results and learning plans.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreSettings {
    /// A folder of learning-plan mappings (`<subject>.toml`, as in `config/learning-plans/`)
    /// used instead of the ones built into the gateway.
    pub learning_plans_dir: Option<PathBuf>,
}

/// The gateway as an LTI 1.3 tool: where platforms reach it, where launches may land.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LtiSettings {
    /// The gateway's public base URL as browsers reach it (`https://gateway.example.org`): the
    /// redirect URI registered with platforms is `{public_url}/lti/launch`. Unset: LTI logins
    /// and launches are refused (`503 lti_not_configured`).
    pub public_url: Option<String>,
    /// Where a launch may land: the learning platform's URLs. A launch's `target_link_uri` must
    /// be one of them or a path under one; in the environment a comma-separated list.
    #[serde(deserialize_with = "text_list")]
    pub target_link_uris: Vec<String>,
    /// How long a login's state (and nonce) waits for its launch.
    pub state_ttl_secs: u64,
    /// How long the session a launch hands to the learning platform is good for.
    pub session_ttl_secs: u64,
    /// Platforms whose key sets are on plain http or a private address (tests, closed
    /// networks only).
    pub allow_insecure_platforms: bool,
}

impl Default for LtiSettings {
    fn default() -> Self {
        LtiSettings {
            public_url: None,
            target_link_uris: Vec::new(),
            state_ttl_secs: 600,
            session_ttl_secs: 300,
            allow_insecure_platforms: false,
        }
    }
}

/// A list of texts: a TOML array, or (from the environment) `"a, b"`.
fn text_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Given::deserialize(d)? {
        Given::List(items) => items,
        Given::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// Pushes to the gateway (rosters, scores): what a push may weigh, and how long its body is kept.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct InboundSettings {
    /// The largest body accepted, in bytes; a larger one is refused (413) while it is read.
    pub max_body_bytes: u64,
    /// Bodies up to this size are kept in their delivery's database row, durable with its one
    /// commit; larger ones are written (and synced) to a file under `data_dir/inbound/`.
    pub inline_body_bytes: u64,
    /// Days a body is kept once its delivery is final (applied, held, failed); then the body is
    /// deleted and the delivery says so. 0 deletes it at the next sweep.
    pub keep_bodies_days: u32,
    /// How often a gateway running background jobs looks for bodies past their retention.
    pub purge_interval_secs: u64,
}

impl Default for InboundSettings {
    fn default() -> Self {
        InboundSettings {
            max_body_bytes: 50 << 20,
            inline_body_bytes: 1 << 20,
            keep_bodies_days: 30,
            purge_interval_secs: 3600,
        }
    }
}

/// The webhook delivery worker (`serve`): how events reach subscribers, how failures are
/// retried, and when a failing subscription is turned off.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Delivers events in this process. Off: the process only serves the API.
    pub enabled: bool,
    /// How often an idle worker looks for new events and due deliveries.
    pub poll_interval_ms: u64,
    /// Deliveries claimed (and events fanned out) per database round trip.
    pub batch_size: u32,
    /// Requests in flight at once in one process.
    pub concurrency: usize,
    /// Time allowed for one whole request (connect, send, answer).
    pub request_timeout_secs: u64,
    /// Pauses before the 1st, 2nd, … retry of a failed delivery; after the last, it fails for
    /// good. Fractions allowed; in the environment a comma-separated list.
    #[serde(deserialize_with = "seconds_list")]
    pub retry_schedule_secs: Vec<f64>,
    /// Each pause is moved by up to this fraction either way, so retries of many deliveries
    /// do not arrive together.
    pub jitter_fraction: f64,
    /// The longest `Retry-After` (429, 503) honoured; longer asks wait this long.
    pub max_retry_after_secs: u64,
    /// A subscription whose deliveries have failed for this long (with no success in between)
    /// is disabled. Fractions allowed.
    pub disable_after_days: f64,
    /// How long a claimed delivery is leased; a process that dies keeps its deliveries at most
    /// this long. At least the request timeout plus a margin is used.
    pub lease_secs: u64,
    /// How long shutdown waits for requests in flight; unfinished ones are retried by a later
    /// worker once their lease runs out.
    pub shutdown_grace_secs: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            enabled: true,
            poll_interval_ms: 500,
            batch_size: 200,
            concurrency: 64,
            request_timeout_secs: 15,
            retry_schedule_secs: vec![5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
            jitter_fraction: 0.2,
            max_retry_after_secs: 3600,
            disable_after_days: 5.0,
            lease_secs: 120,
            shutdown_grace_secs: 20,
        }
    }
}

/// A list of seconds: a TOML array, or (from the environment) `"5, 300, 1800"`.
fn seconds_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<f64>),
        Text(String),
    }
    let secs = match Given::deserialize(d)? {
        Given::List(secs) => secs,
        Given::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<f64>().map_err(|_| {
                    serde::de::Error::custom(format!("{t:?} is not a number of seconds"))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if let Some(bad) = secs.iter().find(|s| !s.is_finite() || **s < 0.0) {
        return Err(serde::de::Error::custom(format!(
            "{bad} is not a pause: seconds are 0 or more"
        )));
    }
    Ok(secs)
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub bind: Option<String>,
}

impl Settings {
    /// Loads settings from the embedded defaults, `config/<env>.toml` under `config_dir` (when
    /// present), the process environment, and `overrides`.
    pub fn load(config_dir: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(config_dir, &vars, overrides)
    }

    /// As [`Settings::load`], with the environment given explicitly (tests use this).
    pub fn load_from(
        config_dir: &Path,
        vars: &[(String, String)],
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let env_name = lookup(vars, "ROSTERGATE_ENV").unwrap_or_else(|| "local".to_string());
        let env_map: std::collections::HashMap<String, String> = vars
            .iter()
            .filter(|(k, _)| k.starts_with("ROSTERGATE_") && !k.ends_with("_FILE"))
            .cloned()
            .collect();
        let mut settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from(config_dir.join(&env_name)).required(false))
            .add_source(
                config::Environment::with_prefix("ROSTERGATE")
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(env_map)),
            )
            .build()?
            .try_deserialize()?;
        if let Some(token) = secret_from_file(vars, "ROSTERGATE_OPERATOR_TOKEN_FILE")? {
            settings.operator_token = Some(token);
        }
        if let Some(key) = secret_from_file(vars, "ROSTERGATE_SECRET_KEY_FILE")? {
            settings.secret_key = Some(key);
        }
        if let Some(url) = secret_from_file(vars, "ROSTERGATE_DATABASE_URL_FILE")? {
            settings.database_url = url.expose().to_string();
        }
        // An empty operator token would let an empty bearer through: treat it as unset.
        if settings
            .operator_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            settings.operator_token = None;
        }
        if let Some(url) = &overrides.database_url {
            settings.database_url = url.clone();
        }
        if let Some(bind) = &overrides.bind {
            settings.bind = bind.clone();
        }
        Ok(settings)
    }
}

fn lookup(vars: &[(String, String)], key: &str) -> Option<String> {
    vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn secret_from_file(vars: &[(String, String)], key: &str) -> Result<Option<Secret>, ConfigError> {
    let Some(path) = lookup(vars, key) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path)
        .map_err(|source| ConfigError::SecretFile { path, source })?;
    Ok(Some(Secret::new(text.trim_end_matches(['\n', '\r']))))
}

/// `postgres://user:password@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_bind_loopback_and_embedded_sqlite() {
        let s = Settings::load_from(Path::new("/nonexistent"), &[], &Overrides::default()).unwrap();
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://data/rostergate.db");
        assert_eq!(s.auth.token_ttl_secs, 3600);
        assert!(s.operator_token.is_none());
        assert_eq!(s.jobs, JobSettings::default());
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let env = vars(&[
            ("ROSTERGATE_BIND", "0.0.0.0:9000"),
            ("ROSTERGATE_DATABASE_URL", "postgres://a@b/c"),
            ("ROSTERGATE_AUTH__TOKEN_TTL_SECS", "60"),
        ]);
        let s =
            Settings::load_from(Path::new("/nonexistent"), &env, &Overrides::default()).unwrap();
        assert_eq!(s.bind, "0.0.0.0:9000");
        assert_eq!(s.database_url, "postgres://a@b/c");
        assert_eq!(s.auth.token_ttl_secs, 60);
        let flags = Overrides {
            database_url: Some("sqlite://x.db".into()),
            bind: None,
        };
        let s = Settings::load_from(Path::new("/nonexistent"), &env, &flags).unwrap();
        assert_eq!(s.database_url, "sqlite://x.db");
    }

    #[test]
    fn secrets_come_from_files_and_never_show_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let env = vars(&[
            ("ROSTERGATE_OPERATOR_TOKEN_FILE", path.to_str().unwrap()),
            ("ROSTERGATE_DATABASE_URL", "postgres://u:pw@h/db"),
        ]);
        let s =
            Settings::load_from(Path::new("/nonexistent"), &env, &Overrides::default()).unwrap();
        assert_eq!(s.operator_token.as_ref().unwrap().expose(), "s3cret-token");
        let dump = format!("{s:?}");
        assert!(!dump.contains("s3cret-token"), "{dump}");
        assert!(!dump.contains("pw"), "{dump}");
    }

    #[test]
    fn outbound_defaults_match_the_shipped_file() {
        let s = Settings::load_from(Path::new("/nonexistent"), &[], &Overrides::default()).unwrap();
        assert_eq!(s.outbound, OutboundSettings::default());
    }

    #[test]
    fn private_outbound_targets_are_refused_unless_the_environment_allows_them() {
        let s = Settings::load_from(Path::new("/nonexistent"), &[], &Overrides::default()).unwrap();
        assert!(!s.outbound.allow_private_targets);
        let env = vars(&[("ROSTERGATE_OUTBOUND__ALLOW_PRIVATE_TARGETS", "true")]);
        let s =
            Settings::load_from(Path::new("/nonexistent"), &env, &Overrides::default()).unwrap();
        assert!(s.outbound.allow_private_targets);
    }

    #[test]
    fn webhook_defaults_match_the_shipped_file() {
        let s = Settings::load_from(Path::new("/nonexistent"), &[], &Overrides::default()).unwrap();
        assert_eq!(s.webhooks, WebhookSettings::default());
    }

    #[test]
    fn a_retry_schedule_comes_from_the_environment_as_a_list() {
        let env = vars(&[("ROSTERGATE_WEBHOOKS__RETRY_SCHEDULE_SECS", "0.2, 1,30")]);
        let s =
            Settings::load_from(Path::new("/nonexistent"), &env, &Overrides::default()).unwrap();
        assert_eq!(s.webhooks.retry_schedule_secs, vec![0.2, 1.0, 30.0]);
        for bad in ["1,x", "-1", "NaN"] {
            let env = vars(&[("ROSTERGATE_WEBHOOKS__RETRY_SCHEDULE_SECS", bad)]);
            let err = Settings::load_from(Path::new("/nonexistent"), &env, &Overrides::default())
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(
                err.to_string().contains("retry_schedule_secs")
                    || err.to_string().contains("second")
                    || err.to_string().contains("pause"),
                "{err}"
            );
        }
    }

    #[test]
    fn empty_operator_token_counts_as_unset() {
        let env = vars(&[("ROSTERGATE_OPERATOR_TOKEN", "  ")]);
        let s =
            Settings::load_from(Path::new("/nonexistent"), &env, &Overrides::default()).unwrap();
        assert!(s.operator_token.is_none());
    }

    #[test]
    fn missing_secret_file_is_a_clear_error() {
        let env = vars(&[("ROSTERGATE_SECRET_KEY_FILE", "/nonexistent/key")]);
        let err = Settings::load_from(Path::new("/nonexistent"), &env, &Overrides::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/key"), "{err}");
    }
}
