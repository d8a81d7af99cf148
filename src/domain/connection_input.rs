//! A connection as a person writes it (CLI flags or an API body), checked into a
//! [`ConnectionConfig`] and its secret. The one place the rules live: every refusal names the
//! field, and the CLI and the API translate the field into a flag or a JSON pointer.

use std::fmt;

use crate::config::Secret;
use crate::domain::connection::{
    ApiVersion, AuthConfig, ClientAuthStyle, ConnectionConfig, ConnectionKind, ConnectionSecrets,
    OneRosterVersion, PartnerResultsVersion, PullSchedule, RequestLimits, SignatureMethod,
    DEFAULT_API_KEY_HEADER, DEFAULT_PAGE_SIZE, DEFAULT_SCOPES_1_1, DEFAULT_SCOPES_1_2,
    DEFAULT_SCOPES_GRADEBOOK_1_2,
};
use crate::domain::problem::quoted;
use crate::domain::schedule::Schedule;

/// Largest page asked of a source.
pub const MAX_PAGE_SIZE: i64 = 50_000;
/// OneRoster providers cap concurrency at 5 (oneroster.md §1).
pub const MAX_IN_FLIGHT: i64 = 5;
pub const MAX_REQUESTS_PER_SECOND: i64 = 1000;
pub const MAX_TIMEOUT_SECS: i64 = 600;
pub const MAX_URL_CHARS: usize = 2048;
/// Client ids, consumer keys and scopes.
pub const MAX_TOKEN_CHARS: usize = 256;
pub const MAX_SCOPES: usize = 20;
pub const MAX_SECRET_CHARS: usize = 1024;
/// Longest API key header name.
pub const MAX_HEADER_NAME_CHARS: usize = 64;
/// Headers the gateway sets itself, which an API key may not take the place of.
const RESERVED_HEADERS: [&str; 8] = [
    "authorization",
    "accept",
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "connection",
    "transfer-encoding",
];
/// Default pull schedules: deltas hourly, a full reconciliation weekly (oneroster.md §6).
pub const DEFAULT_DELTA_SCHEDULE: Schedule = Schedule::Every(3600);
pub const DEFAULT_FULL_SCHEDULE: Schedule = Schedule::Every(7 * 86_400);

/// A field of a connection's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Kind,
    Version,
    BaseUrl,
    PageSize,
    /// `oauth2` or `oauth1`.
    AuthMethod,
    TokenUrl,
    ClientId,
    ClientAuth,
    Scopes,
    /// One scope of the list, by position.
    Scope(usize),
    ConsumerKey,
    SignatureMethod,
    /// The client secret (OAuth 2) or consumer secret (OAuth 1.0a).
    Secret,
    ApiKeyHeader,
    ApiKey,
    RequestsPerSecond,
    MaxInFlight,
    TimeoutSecs,
    DeltaSchedule,
    FullSchedule,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Field::Name => "name",
            Field::Kind => "kind",
            Field::Version => "version",
            Field::BaseUrl => "base_url",
            Field::PageSize => "page_size",
            Field::AuthMethod => "auth",
            Field::TokenUrl => "token_url",
            Field::ClientId => "client_id",
            Field::ClientAuth => "client_auth",
            Field::Scopes => "scopes",
            Field::Scope(i) => return write!(f, "scopes[{i}]"),
            Field::ConsumerKey => "consumer_key",
            Field::SignatureMethod => "signature_method",
            Field::Secret => "secret",
            Field::ApiKeyHeader => "api_key_header",
            Field::ApiKey => "api_key",
            Field::RequestsPerSecond => "requests_per_second",
            Field::MaxInFlight => "max_in_flight",
            Field::TimeoutSecs => "timeout_secs",
            Field::DeltaSchedule => "delta_schedule",
            Field::FullSchedule => "full_schedule",
        };
        f.write_str(name)
    }
}

/// What is wrong with one field. The message never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

/// Every problem found in one input (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InputErrors(pub Vec<FieldError>);

/// A schedule as written: left out (the default), turned off, or a schedule's text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScheduleInput {
    #[default]
    Default,
    Off,
    Text(String),
}

impl ScheduleInput {
    /// `off` (any case) turns a schedule off; anything else is a schedule's text.
    pub fn from_text(text: &str) -> ScheduleInput {
        if text.trim().eq_ignore_ascii_case("off") {
            ScheduleInput::Off
        } else {
            ScheduleInput::Text(text.to_string())
        }
    }
}

/// Authentication as written. Fields that do not belong to the chosen method must be absent.
#[derive(Debug, Clone, Default)]
pub struct AuthInput {
    pub method: String,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_auth: Option<String>,
    /// Empty: the version's default scopes.
    pub scopes: Vec<String>,
    pub consumer_key: Option<String>,
    pub signature_method: Option<String>,
    /// oauth2: the header an API key goes in (`apikey` when a key is given without one).
    pub api_key_header: Option<String>,
}

/// A connection as written, before any check.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInput {
    pub name: String,
    pub kind: String,
    /// Empty: the kind's only version (`assessment-rest`); a OneRoster connection names its own.
    pub version: String,
    pub base_url: String,
    pub page_size: Option<i64>,
    pub auth: AuthInput,
    pub secret: Option<Secret>,
    /// An API key sent besides the OAuth 2 token, for sources that ask for one.
    pub api_key: Option<Secret>,
    pub requests_per_second: Option<i64>,
    pub max_in_flight: Option<i64>,
    pub timeout_secs: Option<i64>,
    pub delta_schedule: ScheduleInput,
    pub full_schedule: ScheduleInput,
}

/// Collects refusals so that one answer names every bad field.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: Field, message: impl Into<String>) {
        self.0.push(FieldError {
            field,
            message: message.into(),
        });
    }

    /// The value, or `None` after noting why not.
    fn check<T>(&mut self, field: Field, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.add(field, m)).ok()
    }
}

impl ConnectionInput {
    /// The checked configuration and secret, or every problem found.
    pub fn validate(&self) -> Result<(ConnectionConfig, ConnectionSecrets), InputErrors> {
        let mut p = Problems::default();
        let name = p.check(Field::Name, check_name(&self.name).map(str::to_string));
        let kind = p.check(Field::Kind, parse_kind(&self.kind));
        let version =
            kind.and_then(|kind| p.check(Field::Version, parse_version(kind, &self.version)));
        let base_url = p.check(Field::BaseUrl, check_url(&self.base_url));
        let page_size = p.check(
            Field::PageSize,
            in_range(self.page_size, DEFAULT_PAGE_SIZE.into(), 1, MAX_PAGE_SIZE),
        );
        let auth = self.auth.validate(kind.zip(version), &mut p);
        let secret = p.check(Field::Secret, check_secret(self.secret.as_ref()));
        let api_key = self.checked_api_key(&mut p);
        let auth = match (auth, &api_key) {
            // A key needs a header to travel in: the usual one unless another is named.
            (
                Some(AuthConfig::Oauth2 {
                    token_url,
                    client_id,
                    client_auth,
                    scopes,
                    api_key_header: None,
                }),
                Some(Some(_)),
            ) => Some(AuthConfig::Oauth2 {
                token_url,
                client_id,
                client_auth,
                scopes,
                api_key_header: Some(DEFAULT_API_KEY_HEADER.to_string()),
            }),
            (Some(AuthConfig::Oauth1 { .. }), Some(Some(_))) => {
                p.add(Field::ApiKey, "does not apply to oauth1 authentication");
                None
            }
            (auth, _) => auth,
        };
        let defaults = RequestLimits::default();
        let requests_per_second = p.check(
            Field::RequestsPerSecond,
            in_range(
                self.requests_per_second,
                defaults.requests_per_second.into(),
                1,
                MAX_REQUESTS_PER_SECOND,
            ),
        );
        let max_in_flight = p.check(
            Field::MaxInFlight,
            in_range(
                self.max_in_flight,
                defaults.max_in_flight.into(),
                1,
                MAX_IN_FLIGHT,
            ),
        );
        let timeout_secs = p.check(
            Field::TimeoutSecs,
            in_range(
                self.timeout_secs,
                defaults.timeout_secs.into(),
                1,
                MAX_TIMEOUT_SECS,
            ),
        );
        let delta = p.check(
            Field::DeltaSchedule,
            parse_schedule(&self.delta_schedule, DEFAULT_DELTA_SCHEDULE),
        );
        let full = p.check(
            Field::FullSchedule,
            parse_schedule(&self.full_schedule, DEFAULT_FULL_SCHEDULE),
        );
        match (
            name,
            kind,
            version,
            base_url,
            page_size,
            auth,
            secret,
            requests_per_second,
            max_in_flight,
            timeout_secs,
            delta,
            full,
            api_key,
        ) {
            (
                Some(name),
                Some(kind),
                Some(version),
                Some(base_url),
                Some(page_size),
                Some(auth),
                Some(secret),
                Some(requests_per_second),
                Some(max_in_flight),
                Some(timeout_secs),
                Some(delta),
                Some(full),
                Some(api_key),
            ) if p.0.is_empty() => Ok((
                ConnectionConfig {
                    name,
                    kind,
                    version,
                    base_url,
                    page_size,
                    auth,
                    limits: RequestLimits {
                        requests_per_second,
                        max_in_flight,
                        timeout_secs,
                    },
                    schedule: PullSchedule { delta, full },
                },
                ConnectionSecrets { secret, api_key },
            )),
            _ => Err(InputErrors(p.0)),
        }
    }
}

impl ConnectionInput {
    /// The API key, which goes with a header: a header named without a key is refused, and a
    /// key without a header goes in [`DEFAULT_API_KEY_HEADER`]. `Some(None)`: no key.
    fn checked_api_key(&self, p: &mut Problems) -> Option<Option<Secret>> {
        match (&self.api_key, &self.auth.api_key_header) {
            (None, None) => Some(None),
            (None, Some(_)) => {
                p.add(Field::ApiKey, "is required when api_key_header is set");
                None
            }
            (Some(key), _) => p.check(Field::ApiKey, check_api_key(key)).map(Some),
        }
    }
}

impl AuthInput {
    fn validate(
        &self,
        target: Option<(ConnectionKind, ApiVersion)>,
        p: &mut Problems,
    ) -> Option<AuthConfig> {
        let version = target.map(|(_, v)| v);
        let before = p.0.len();
        let refuse_foreign = |p: &mut Problems, field: Field, present: bool, method: &str| {
            if present {
                p.add(field, format!("does not apply to {method} authentication"));
            }
        };
        match self.method.as_str() {
            "oauth2" => {
                refuse_foreign(p, Field::ConsumerKey, self.consumer_key.is_some(), "oauth2");
                refuse_foreign(
                    p,
                    Field::SignatureMethod,
                    self.signature_method.is_some(),
                    "oauth2",
                );
                let token_url = p.check(
                    Field::TokenUrl,
                    required(&self.token_url).and_then(|url| check_url(&url)),
                );
                let client_id = p.check(
                    Field::ClientId,
                    required(&self.client_id).and_then(|id| check_token(&id).map(|_| id)),
                );
                let client_auth = p.check(
                    Field::ClientAuth,
                    match self.client_auth.as_deref() {
                        None => Ok(ClientAuthStyle::default()),
                        Some("basic") => Ok(ClientAuthStyle::Basic),
                        Some("body") => Ok(ClientAuthStyle::Body),
                        Some(other) => Err(format!("{} is not basic or body", quoted(other))),
                    },
                );
                let scopes = self.checked_scopes(target, p);
                let api_key_header = p.check(
                    Field::ApiKeyHeader,
                    self.api_key_header
                        .as_deref()
                        .map(check_header_name)
                        .transpose(),
                );
                if p.0.len() > before {
                    return None;
                }
                Some(AuthConfig::Oauth2 {
                    token_url: token_url?,
                    client_id: client_id?,
                    client_auth: client_auth?,
                    scopes: scopes?,
                    api_key_header: api_key_header?,
                })
            }
            "oauth1" => {
                refuse_foreign(p, Field::TokenUrl, self.token_url.is_some(), "oauth1");
                refuse_foreign(p, Field::ClientId, self.client_id.is_some(), "oauth1");
                refuse_foreign(p, Field::ClientAuth, self.client_auth.is_some(), "oauth1");
                refuse_foreign(p, Field::Scopes, !self.scopes.is_empty(), "oauth1");
                refuse_foreign(
                    p,
                    Field::ApiKeyHeader,
                    self.api_key_header.is_some(),
                    "oauth1",
                );
                match version {
                    Some(ApiVersion::OneRoster(OneRosterVersion::V1_2)) => p.add(
                        Field::AuthMethod,
                        "OneRoster 1.2 allows only oauth2 (OAuth 1.0a is a 1.1 method)",
                    ),
                    Some(ApiVersion::PartnerResults(_)) => p.add(
                        Field::AuthMethod,
                        "an assessment-rest connection authenticates with oauth2 only",
                    ),
                    _ => {}
                }
                let consumer_key = p.check(
                    Field::ConsumerKey,
                    required(&self.consumer_key).and_then(|key| check_token(&key).map(|_| key)),
                );
                let signature_method = p.check(
                    Field::SignatureMethod,
                    match self.signature_method.as_deref() {
                        None => Ok(SignatureMethod::default()),
                        Some("HMAC-SHA256") => Ok(SignatureMethod::HmacSha256),
                        Some("HMAC-SHA1") => Ok(SignatureMethod::HmacSha1),
                        Some(other) => {
                            Err(format!("{} is not HMAC-SHA256 or HMAC-SHA1", quoted(other)))
                        }
                    },
                );
                if p.0.len() > before {
                    return None;
                }
                Some(AuthConfig::Oauth1 {
                    consumer_key: consumer_key?,
                    signature_method: signature_method?,
                })
            }
            other => {
                p.add(
                    Field::AuthMethod,
                    format!("{} is not oauth2 or oauth1", quoted(other)),
                );
                None
            }
        }
    }

    /// The scopes asked for, or the version's defaults when none are given.
    fn checked_scopes(
        &self,
        target: Option<(ConnectionKind, ApiVersion)>,
        p: &mut Problems,
    ) -> Option<Vec<String>> {
        if self.scopes.len() > MAX_SCOPES {
            p.add(Field::Scopes, format!("at most {MAX_SCOPES} scopes"));
            return None;
        }
        let before = p.0.len();
        for (i, scope) in self.scopes.iter().enumerate() {
            if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
                p.add(Field::Scope(i), "a scope is one word, without spaces");
            } else if let Err(m) = check_token(scope) {
                p.add(Field::Scope(i), m);
            }
        }
        if p.0.len() > before {
            return None;
        }
        if !self.scopes.is_empty() {
            return Some(self.scopes.clone());
        }
        // A partner's scopes are its own: none are asked for unless configured.
        let defaults: &[&str] = match target? {
            (ConnectionKind::OneRosterAssessmentResults, _) => DEFAULT_SCOPES_GRADEBOOK_1_2,
            (_, ApiVersion::OneRoster(OneRosterVersion::V1_1)) => DEFAULT_SCOPES_1_1,
            (_, ApiVersion::OneRoster(OneRosterVersion::V1_2)) => DEFAULT_SCOPES_1_2,
            (_, ApiVersion::PartnerResults(_)) => &[],
        };
        Some(defaults.iter().map(|s| s.to_string()).collect())
    }
}

/// A connection's name: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn check_name(raw: &str) -> Result<&str, String> {
    let ok = (1..=63).contains(&raw.len())
        && raw.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(raw)
    } else {
        Err(format!(
            "{} is not a name: 1-63 characters of a-z, 0-9 and '-', not starting with '-'",
            quoted(raw)
        ))
    }
}

fn parse_kind(raw: &str) -> Result<ConnectionKind, String> {
    match raw {
        "oneroster-rest" => Ok(ConnectionKind::OneRosterRest),
        "assessment-rest" => Ok(ConnectionKind::AssessmentRest),
        "oneroster-assessment-results" => Ok(ConnectionKind::OneRosterAssessmentResults),
        other => Err(format!(
            "{} is not a known kind: use oneroster-rest, assessment-rest or \
             oneroster-assessment-results",
            quoted(other)
        )),
    }
}

fn parse_version(kind: ConnectionKind, raw: &str) -> Result<ApiVersion, String> {
    match (kind, raw) {
        (ConnectionKind::OneRosterRest, "1.1") => Ok(ApiVersion::OneRoster(OneRosterVersion::V1_1)),
        (ConnectionKind::OneRosterRest, "1.2") => Ok(ApiVersion::OneRoster(OneRosterVersion::V1_2)),
        (ConnectionKind::OneRosterRest, "") => {
            Err("is required: the OneRoster version, 1.1 or 1.2".into())
        }
        (ConnectionKind::OneRosterRest, other) => Err(format!(
            "{} is not a OneRoster version: use 1.1 or 1.2",
            quoted(other)
        )),
        (ConnectionKind::AssessmentRest, "" | "1") => {
            Ok(ApiVersion::PartnerResults(PartnerResultsVersion::V1))
        }
        (ConnectionKind::AssessmentRest, other) => Err(format!(
            "{} is not a version of the partner results API: use 1",
            quoted(other)
        )),
        // The Assessment Results Profile is a OneRoster 1.2 service.
        (ConnectionKind::OneRosterAssessmentResults, "" | "1.2") => {
            Ok(ApiVersion::OneRoster(OneRosterVersion::V1_2))
        }
        (ConnectionKind::OneRosterAssessmentResults, other) => Err(format!(
            "{} is not a version with assessment results: use 1.2",
            quoted(other)
        )),
    }
}

/// An HTTP header name (RFC 9110 token characters) that the gateway does not set itself.
fn check_header_name(raw: &str) -> Result<String, String> {
    let name = raw.trim().to_ascii_lowercase();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > MAX_HEADER_NAME_CHARS || !name.chars().all(token) {
        return Err(format!(
            "{} is not a header name: 1-{MAX_HEADER_NAME_CHARS} letters, digits and - _ . ! # $ % & ' * + ^ ` | ~",
            quoted(raw)
        ));
    }
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(format!(
            "{} is a header the gateway sets itself",
            quoted(raw)
        ));
    }
    Ok(name)
}

/// An API key: what a header value may carry (visible ASCII and spaces inside).
fn check_api_key(key: &Secret) -> Result<Secret, String> {
    let text = key.expose();
    if text.trim().is_empty() {
        Err("must not be empty".into())
    } else if text.len() > MAX_SECRET_CHARS {
        Err(format!("at most {MAX_SECRET_CHARS} characters"))
    } else if text != text.trim() || !text.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        Err(
            "must be printable ASCII without leading or trailing spaces (it travels in a header)"
                .into(),
        )
    } else {
        Ok(key.clone())
    }
}

/// An absolute http(s) URL with a host, no credentials, query or fragment; returned in its
/// normal form without a trailing `/`, so that paths append to it cleanly.
pub fn check_url(raw: &str) -> Result<String, String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters"));
    }
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| format!("{} is not a URL: {e}", quoted(raw)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{} must be an http or https URL", quoted(raw)));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{} has no host", quoted(raw)));
    }
    // Credentials in a URL would be stored and shown in the clear.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password: use the auth fields".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{} must not have a query (?…) or fragment (#…)",
            quoted(raw)
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// A client id, consumer key or scope: printable, at most [`MAX_TOKEN_CHARS`].
fn check_token(raw: &str) -> Result<(), String> {
    if raw.trim().is_empty() {
        Err("must not be empty".into())
    } else if raw.chars().count() > MAX_TOKEN_CHARS {
        Err(format!("at most {MAX_TOKEN_CHARS} characters"))
    } else if raw.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

fn check_secret(secret: Option<&Secret>) -> Result<Secret, String> {
    let secret = secret.ok_or("is required")?;
    let text = secret.expose();
    if text.is_empty() {
        Err("must not be empty".into())
    } else if text.chars().count() > MAX_SECRET_CHARS {
        Err(format!("at most {MAX_SECRET_CHARS} characters"))
    } else if text.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(secret.clone())
    }
}

fn required(value: &Option<String>) -> Result<String, String> {
    value.clone().ok_or_else(|| "is required".to_string())
}

fn in_range(value: Option<i64>, default: i64, min: i64, max: i64) -> Result<u32, String> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(u32::try_from(value).expect("the range fits in u32"))
    } else {
        Err(format!("{value} is out of range: use {min} to {max}"))
    }
}

fn parse_schedule(input: &ScheduleInput, default: Schedule) -> Result<Option<Schedule>, String> {
    match input {
        ScheduleInput::Default => Ok(Some(default)),
        ScheduleInput::Off => Ok(None),
        ScheduleInput::Text(text) => text
            .parse::<Schedule>()
            .map(Some)
            .map_err(|e| format!("{e}, or \"off\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth2() -> ConnectionInput {
        ConnectionInput {
            name: "sis".into(),
            kind: "oneroster-rest".into(),
            version: "1.2".into(),
            base_url: "https://sis.example.org/ims/oneroster/rostering/v1p2/".into(),
            auth: AuthInput {
                method: "oauth2".into(),
                token_url: Some("https://sis.example.org/oauth/token".into()),
                client_id: Some("gateway".into()),
                ..Default::default()
            },
            secret: Some(Secret::new("s3cret")),
            ..Default::default()
        }
    }

    fn oauth1() -> ConnectionInput {
        ConnectionInput {
            version: "1.1".into(),
            base_url: "https://sis.example.org/ims/oneroster/v1p1".into(),
            auth: AuthInput {
                method: "oauth1".into(),
                consumer_key: Some("key".into()),
                ..Default::default()
            },
            ..oauth2()
        }
    }

    fn fields(input: &ConnectionInput) -> Vec<Field> {
        input
            .validate()
            .expect_err("refused")
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let (config, secrets) = oauth2().validate().unwrap();
        assert_eq!(secrets.secret.expose(), "s3cret");
        assert!(secrets.api_key.is_none());
        assert_eq!(
            config.base_url,
            "https://sis.example.org/ims/oneroster/rostering/v1p2"
        );
        assert_eq!(config.page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(config.limits, RequestLimits::default());
        assert_eq!(
            config.schedule,
            PullSchedule {
                delta: Some(Schedule::Every(3600)),
                full: Some(Schedule::Every(7 * 86_400)),
            }
        );
        assert_eq!(
            config.auth,
            AuthConfig::Oauth2 {
                token_url: "https://sis.example.org/oauth/token".into(),
                client_id: "gateway".into(),
                client_auth: ClientAuthStyle::Basic,
                scopes: vec![DEFAULT_SCOPES_1_2[0].into()],
                api_key_header: None,
            }
        );
        let (config, _) = oauth1().validate().unwrap();
        assert_eq!(
            config.auth,
            AuthConfig::Oauth1 {
                consumer_key: "key".into(),
                signature_method: SignatureMethod::HmacSha256,
            }
        );
        let eleven = ConnectionInput {
            version: "1.1".into(),
            ..oauth2()
        };
        let (config, _) = eleven.validate().unwrap();
        assert!(
            matches!(&config.auth, AuthConfig::Oauth2 { scopes, .. } if scopes == &[DEFAULT_SCOPES_1_1[0]])
        );
    }

    fn partner() -> ConnectionInput {
        ConnectionInput {
            name: "map".into(),
            kind: "assessment-rest".into(),
            version: String::new(),
            base_url: "https://partner.example.org/v1".into(),
            api_key: Some(Secret::new("k3y-value")),
            ..oauth2()
        }
    }

    #[test]
    fn a_partner_connection_has_one_version_no_default_scopes_and_its_key_in_apikey() {
        let (config, secrets) = partner().validate().unwrap();
        assert_eq!(config.kind, ConnectionKind::AssessmentRest);
        assert_eq!(
            config.version,
            ApiVersion::PartnerResults(PartnerResultsVersion::V1)
        );
        assert_eq!(secrets.api_key.unwrap().expose(), "k3y-value");
        assert!(matches!(
            &config.auth,
            AuthConfig::Oauth2 { scopes, api_key_header: Some(h), .. }
                if scopes.is_empty() && h == "apikey"
        ));
        let named = ConnectionInput {
            version: "1".into(),
            auth: AuthInput {
                api_key_header: Some("X-Api-Key".into()),
                ..partner().auth
            },
            ..partner()
        };
        let (config, _) = named.validate().unwrap();
        assert!(matches!(
            &config.auth,
            AuthConfig::Oauth2 { api_key_header: Some(h), .. } if h == "x-api-key"
        ));
        // A OneRoster connection may carry a key too; without one it sends no header.
        let (config, secrets) = oauth2().validate().unwrap();
        assert!(secrets.api_key.is_none());
        assert!(matches!(
            &config.auth,
            AuthConfig::Oauth2 {
                api_key_header: None,
                ..
            }
        ));
    }

    #[test]
    fn a_gradebook_connection_speaks_1_2_and_asks_for_the_gradebook_scope() {
        let gradebook = ConnectionInput {
            kind: "oneroster-assessment-results".into(),
            version: String::new(),
            ..oauth2()
        };
        let (config, _) = gradebook.validate().unwrap();
        assert_eq!(config.kind, ConnectionKind::OneRosterAssessmentResults);
        assert_eq!(
            config.version,
            ApiVersion::OneRoster(OneRosterVersion::V1_2)
        );
        assert!(matches!(
            &config.auth,
            AuthConfig::Oauth2 { scopes, .. } if scopes == &[DEFAULT_SCOPES_GRADEBOOK_1_2[0]]
        ));
        let eleven = ConnectionInput {
            version: "1.1".into(),
            ..gradebook.clone()
        };
        assert_eq!(fields(&eleven), vec![Field::Version]);
        let signed = ConnectionInput {
            kind: "oneroster-assessment-results".into(),
            version: "1.2".into(),
            ..oauth1()
        };
        assert_eq!(fields(&signed), vec![Field::AuthMethod]);
    }

    #[test]
    fn partner_and_api_key_mistakes_are_named() {
        let with_header = |header: &str| ConnectionInput {
            auth: AuthInput {
                api_key_header: Some(header.into()),
                ..partner().auth
            },
            ..partner()
        };
        let cases: Vec<(ConnectionInput, Vec<Field>)> = vec![
            (
                ConnectionInput {
                    version: "1.2".into(),
                    ..partner()
                },
                vec![Field::Version],
            ),
            (
                ConnectionInput {
                    version: String::new(),
                    ..oauth2()
                },
                vec![Field::Version],
            ),
            (
                ConnectionInput {
                    kind: "assessment-rest".into(),
                    version: String::new(),
                    api_key: None,
                    ..oauth1()
                },
                vec![Field::AuthMethod],
            ),
            (
                ConnectionInput {
                    api_key: Some(Secret::new("k")),
                    ..oauth1()
                },
                vec![Field::ApiKey],
            ),
            (
                ConnectionInput {
                    api_key: None,
                    ..with_header("apikey")
                },
                vec![Field::ApiKey],
            ),
            (with_header("Authorization"), vec![Field::ApiKeyHeader]),
            (with_header("host"), vec![Field::ApiKeyHeader]),
            (with_header("api key"), vec![Field::ApiKeyHeader]),
            (with_header("x:y"), vec![Field::ApiKeyHeader]),
            (with_header(""), vec![Field::ApiKeyHeader]),
            (with_header(&"x".repeat(65)), vec![Field::ApiKeyHeader]),
            (
                ConnectionInput {
                    api_key: Some(Secret::new("line\nbreak")),
                    ..partner()
                },
                vec![Field::ApiKey],
            ),
            (
                ConnectionInput {
                    api_key: Some(Secret::new(" padded")),
                    ..partner()
                },
                vec![Field::ApiKey],
            ),
            (
                ConnectionInput {
                    api_key: Some(Secret::new("clé")),
                    ..partner()
                },
                vec![Field::ApiKey],
            ),
            (
                ConnectionInput {
                    api_key: Some(Secret::new("k".repeat(MAX_SECRET_CHARS + 1))),
                    ..partner()
                },
                vec![Field::ApiKey],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(fields(&input), want, "{input:?}");
        }
        let refused = ConnectionInput {
            api_key: Some(Secret::new("s3cret-key\u{7}")),
            ..partner()
        }
        .validate()
        .unwrap_err();
        assert!(!refused.to_string().contains("s3cret-key"), "{refused}");
    }

    #[test]
    fn schedules_can_be_set_or_turned_off() {
        let input = ConnectionInput {
            delta_schedule: ScheduleInput::from_text("OFF"),
            full_schedule: ScheduleInput::from_text("daily 02:30"),
            ..oauth2()
        };
        let (config, _) = input.validate().unwrap();
        assert_eq!(config.schedule.delta, None);
        assert_eq!(config.schedule.full, Some("daily 02:30".parse().unwrap()));
    }

    #[test]
    fn names_follow_the_pattern() {
        for good in ["a", "0", "sis-1", &"a".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "é", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_query_or_fragment() {
        let cases: [(&str, Option<&str>); 12] = [
            ("https://sis.example.org", Some("https://sis.example.org")),
            ("https://sis.example.org/", Some("https://sis.example.org")),
            (
                "http://SIS.example.org:8080/a/b/",
                Some("http://sis.example.org:8080/a/b"),
            ),
            (
                "https://sis.example.org/ims/oneroster/v1p1",
                Some("https://sis.example.org/ims/oneroster/v1p1"),
            ),
            ("ftp://sis.example.org", None),
            ("sis.example.org/api", None),
            ("https://", None),
            ("https://sis.example.org/?a=1", None),
            ("https://sis.example.org/?", None),
            ("https://sis.example.org/#x", None),
            ("https://user:pw@sis.example.org", None),
            ("file:///etc/passwd", None),
        ];
        for (raw, want) in cases {
            assert_eq!(check_url(raw).ok().as_deref(), want, "{raw}");
        }
        assert!(check_url(&format!("https://x.org/{}", "a".repeat(MAX_URL_CHARS))).is_err());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(ConnectionInput, Vec<Field>)> = vec![
            (
                ConnectionInput {
                    name: "Bad Name".into(),
                    ..oauth2()
                },
                vec![Field::Name],
            ),
            (
                ConnectionInput {
                    kind: "csv".into(),
                    ..oauth2()
                },
                vec![Field::Kind],
            ),
            (
                ConnectionInput {
                    version: "1.0".into(),
                    ..oauth2()
                },
                vec![Field::Version],
            ),
            (
                ConnectionInput {
                    base_url: "nope".into(),
                    ..oauth2()
                },
                vec![Field::BaseUrl],
            ),
            (
                ConnectionInput {
                    page_size: Some(0),
                    ..oauth2()
                },
                vec![Field::PageSize],
            ),
            (
                ConnectionInput {
                    page_size: Some(50_001),
                    ..oauth2()
                },
                vec![Field::PageSize],
            ),
            (
                ConnectionInput {
                    secret: None,
                    ..oauth2()
                },
                vec![Field::Secret],
            ),
            (
                ConnectionInput {
                    secret: Some(Secret::new("")),
                    ..oauth2()
                },
                vec![Field::Secret],
            ),
            (
                ConnectionInput {
                    secret: Some(Secret::new("x".repeat(MAX_SECRET_CHARS + 1))),
                    ..oauth2()
                },
                vec![Field::Secret],
            ),
            (
                ConnectionInput {
                    requests_per_second: Some(0),
                    ..oauth2()
                },
                vec![Field::RequestsPerSecond],
            ),
            (
                ConnectionInput {
                    requests_per_second: Some(1001),
                    ..oauth2()
                },
                vec![Field::RequestsPerSecond],
            ),
            (
                ConnectionInput {
                    max_in_flight: Some(6),
                    ..oauth2()
                },
                vec![Field::MaxInFlight],
            ),
            (
                ConnectionInput {
                    timeout_secs: Some(601),
                    ..oauth2()
                },
                vec![Field::TimeoutSecs],
            ),
            (
                ConnectionInput {
                    delta_schedule: ScheduleInput::Text("hourly".into()),
                    ..oauth2()
                },
                vec![Field::DeltaSchedule],
            ),
            (
                ConnectionInput {
                    full_schedule: ScheduleInput::Text("every 10s".into()),
                    ..oauth2()
                },
                vec![Field::FullSchedule],
            ),
            (
                ConnectionInput {
                    version: "1.2".into(),
                    ..oauth1()
                },
                vec![Field::AuthMethod],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        method: "basic".into(),
                        ..oauth2().auth
                    },
                    ..oauth2()
                },
                vec![Field::AuthMethod],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        token_url: None,
                        ..oauth2().auth
                    },
                    ..oauth2()
                },
                vec![Field::TokenUrl],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        token_url: Some("https://t.org/token?x=1".into()),
                        ..oauth2().auth
                    },
                    ..oauth2()
                },
                vec![Field::TokenUrl],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        client_id: Some("x".repeat(257)),
                        ..oauth2().auth
                    },
                    ..oauth2()
                },
                vec![Field::ClientId],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        client_auth: Some("header".into()),
                        ..oauth2().auth
                    },
                    ..oauth2()
                },
                vec![Field::ClientAuth],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        scopes: vec!["ok".into(), "two words".into()],
                        ..oauth2().auth
                    },
                    ..oauth2()
                },
                vec![Field::Scope(1)],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        consumer_key: Some("k".into()),
                        ..oauth2().auth
                    },
                    ..oauth2()
                },
                vec![Field::ConsumerKey],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        token_url: Some("https://t.org".into()),
                        ..oauth1().auth
                    },
                    ..oauth1()
                },
                vec![Field::TokenUrl],
            ),
            (
                ConnectionInput {
                    auth: AuthInput {
                        signature_method: Some("PLAINTEXT".into()),
                        ..oauth1().auth
                    },
                    ..oauth1()
                },
                vec![Field::SignatureMethod],
            ),
            (
                ConnectionInput {
                    name: "".into(),
                    page_size: Some(-1),
                    secret: None,
                    ..oauth2()
                },
                vec![Field::Name, Field::PageSize, Field::Secret],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(fields(&input), want, "{input:?}");
        }
    }

    #[test]
    fn refusals_never_quote_the_secret() {
        let input = ConnectionInput {
            secret: Some(Secret::new(format!("s3cret\u{7}{}", "x".repeat(2000)))),
            ..oauth2()
        };
        let errors = input.validate().unwrap_err();
        assert!(!errors.to_string().contains("s3cret"));
    }
}
