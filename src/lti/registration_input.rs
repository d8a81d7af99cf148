//! A platform registration as a person writes it (CLI flags or an API body), checked into a
//! [`NewPlatform`]. The one place the rules live: every refusal names the field, and the CLI and
//! the API translate the field into a flag or a JSON pointer, as for connections.
//!
//! Values are stored exactly as written, never normalized: a launch compares the issuer
//! byte for byte (reference §5 check 7), and Canvas refuses a client assertion whose `aud` is
//! its token URL with a slash added (§8).

use std::collections::HashMap;
use std::fmt;

use crate::domain::problem::quoted;
use crate::lti::UnknownDeployments;

/// Longest issuer and endpoint URL.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest client id and deployment id (as the launch checks claims: `validate::MAX_ID_LEN`).
pub const MAX_ID_CHARS: usize = 255;
/// Most deployments given at once; a platform's later ones can arrive pending a claim.
pub const MAX_DEPLOYMENTS: usize = 100;

/// A field of a registration's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Issuer,
    ClientId,
    /// The list as a whole (how many).
    DeploymentIds,
    /// One deployment id of the list, by position.
    DeploymentId(usize),
    AuthLoginUrl,
    TokenUrl,
    JwksUrl,
    UnknownDeployments,
    TokenAudience,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Field::Issuer => "issuer",
            Field::ClientId => "client_id",
            Field::DeploymentIds => "deployment_ids",
            Field::DeploymentId(i) => return write!(f, "deployment_ids[{i}]"),
            Field::AuthLoginUrl => "auth_login_url",
            Field::TokenUrl => "token_url",
            Field::JwksUrl => "jwks_url",
            Field::UnknownDeployments => "unknown_deployments",
            Field::TokenAudience => "token_audience",
        };
        f.write_str(name)
    }
}

/// What is wrong with one field.
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

/// A registration as written, before any check.
#[derive(Debug, Clone, Default)]
pub struct PlatformInput {
    pub issuer: String,
    pub client_id: String,
    pub deployment_ids: Vec<String>,
    pub auth_login_url: String,
    pub token_url: String,
    pub jwks_url: String,
    /// `refuse` (when left out) or `pending`.
    pub unknown_deployments: Option<String>,
    /// The `aud` of the gateway's client assertions when the token endpoint wants another
    /// than its own URL (Canvas: its `authorization_server`).
    pub token_audience: Option<String>,
}

/// A checked registration, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlatform {
    pub issuer: String,
    pub client_id: String,
    /// At least one, each once, in the order given.
    pub deployment_ids: Vec<String>,
    pub auth_login_url: String,
    pub token_url: String,
    pub jwks_url: String,
    pub unknown_deployments: UnknownDeployments,
    pub token_audience: Option<String>,
}

impl PlatformInput {
    /// The checked registration, or every problem found.
    pub fn validate(&self) -> Result<NewPlatform, InputErrors> {
        let mut problems = Vec::new();
        let mut check = |field: Field, result: Result<(), String>| {
            if let Err(message) = result {
                problems.push(FieldError { field, message });
            }
        };
        check(Field::Issuer, check_issuer(&self.issuer));
        check(Field::ClientId, check_client_id(&self.client_id));
        check(Field::AuthLoginUrl, check_endpoint(&self.auth_login_url));
        check(Field::TokenUrl, check_endpoint(&self.token_url));
        check(Field::JwksUrl, check_endpoint(&self.jwks_url));
        if let Some(audience) = &self.token_audience {
            check(Field::TokenAudience, check_audience(audience));
        }
        let unknown_deployments = parse_unknown_deployments(self.unknown_deployments.as_deref());
        if let Err(message) = &unknown_deployments {
            problems.push(FieldError {
                field: Field::UnknownDeployments,
                message: message.clone(),
            });
        }
        problems.extend(deployment_problems(&self.deployment_ids));
        match unknown_deployments {
            Ok(unknown_deployments) if problems.is_empty() => Ok(NewPlatform {
                issuer: self.issuer.clone(),
                client_id: self.client_id.clone(),
                deployment_ids: self.deployment_ids.clone(),
                auth_login_url: self.auth_login_url.clone(),
                token_url: self.token_url.clone(),
                jwks_url: self.jwks_url.clone(),
                unknown_deployments,
                token_audience: self.token_audience.clone(),
            }),
            _ => Err(InputErrors(problems)),
        }
    }
}

/// The policy's wire name, as stored and shown.
pub fn unknown_deployments_text(policy: UnknownDeployments) -> &'static str {
    match policy {
        UnknownDeployments::Refuse => "refuse",
        UnknownDeployments::Pending => "pending",
    }
}

pub fn parse_unknown_deployments(raw: Option<&str>) -> Result<UnknownDeployments, String> {
    match raw {
        None | Some("refuse") => Ok(UnknownDeployments::Refuse),
        Some("pending") => Ok(UnknownDeployments::Pending),
        Some(other) => Err(format!("{} is not refuse or pending", quoted(other))),
    }
}

/// 1..=[`MAX_DEPLOYMENTS`] ids, each printable ASCII of at most [`MAX_ID_CHARS`], none twice.
fn deployment_problems(ids: &[String]) -> Vec<FieldError> {
    if ids.is_empty() {
        return vec![FieldError {
            field: Field::DeploymentIds,
            message: "at least one deployment id is required".into(),
        }];
    }
    if ids.len() > MAX_DEPLOYMENTS {
        return vec![FieldError {
            field: Field::DeploymentIds,
            message: format!("at most {MAX_DEPLOYMENTS} deployment ids"),
        }];
    }
    let mut first_at: HashMap<&str, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let problem = check_deployment_id(id).err().or_else(|| {
            first_at
                .insert(id, i)
                .map(|j| format!("repeats deployment_ids[{j}]"))
        });
        if let Some(message) = problem {
            problems.push(FieldError {
                field: Field::DeploymentId(i),
                message,
            });
        }
    }
    problems
}

fn check_deployment_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        Err("must not be empty".into())
    } else if id.len() > MAX_ID_CHARS {
        Err(format!("at most {MAX_ID_CHARS} characters"))
    } else if !id.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        Err(format!(
            "{} must be printable ASCII (a platform's deployment ids are)",
            quoted(id)
        ))
    } else {
        Ok(())
    }
}

/// Compared exactly with a launch's `aud`: printable, without surrounding spaces.
fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        Err("is required".into())
    } else if id.chars().count() > MAX_ID_CHARS {
        Err(format!("at most {MAX_ID_CHARS} characters"))
    } else if id.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else if id.trim() != id {
        Err("must not start or end with a space".into())
    } else {
        Ok(())
    }
}

/// A client assertion's audience: any non-blank identifier (Canvas's is a bare host name).
fn check_audience(audience: &str) -> Result<(), String> {
    check_client_id(audience)
}

/// The issuer: an https URL without query or fragment (Sec §5.1.2; reference §2).
fn check_issuer(raw: &str) -> Result<(), String> {
    let url = check_url(raw)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{} must not have a query (?…) or fragment (#…)",
            quoted(raw)
        ));
    }
    Ok(())
}

/// A platform endpoint the gateway sends browsers or requests to. A query is the platform's
/// business; a fragment never reaches it.
fn check_endpoint(raw: &str) -> Result<(), String> {
    let url = check_url(raw)?;
    if url.fragment().is_some() {
        return Err(format!("{} must not have a fragment (#…)", quoted(raw)));
    }
    Ok(())
}

/// An https URL with a host and no credentials, as written (no surrounding spaces); plain
/// http only to this machine, for tests and local platforms.
fn check_url(raw: &str) -> Result<reqwest::Url, String> {
    if raw.is_empty() {
        return Err("is required".into());
    }
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters"));
    }
    if raw.trim() != raw {
        return Err("must not start or end with a space".into());
    }
    let url = reqwest::Url::parse(raw).map_err(|e| format!("{} is not a URL: {e}", quoted(raw)))?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        "http" => {
            return Err(format!(
                "{} must be https (plain http only to localhost)",
                quoted(raw)
            ))
        }
        _ => return Err(format!("{} must be an https URL", quoted(raw))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{} has no host", quoted(raw)));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas() -> PlatformInput {
        PlatformInput {
            issuer: "https://canvas.instructure.com".into(),
            client_id: "10000000000042".into(),
            deployment_ids: vec!["42:8865aa05b4b79b64a91a86042e43af5ea8ae79eb".into()],
            auth_login_url: "https://sso.canvaslms.com/api/lti/authorize_redirect".into(),
            token_url: "https://sso.canvaslms.com/login/oauth2/token".into(),
            jwks_url: "https://sso.canvaslms.com/api/lti/security/jwks".into(),
            unknown_deployments: None,
            token_audience: None,
        }
    }

    fn fields(input: &PlatformInput) -> Vec<Field> {
        input
            .validate()
            .expect_err("refused")
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_valid_registration_is_kept_as_written_and_refuses_unknown_deployments_by_default() {
        let input = PlatformInput {
            token_url: "https://sso.canvaslms.com/login/oauth2/token".into(),
            auth_login_url: "https://lms.example.org/auth?tenant=7".into(),
            ..canvas()
        };
        let platform = input.validate().unwrap();
        assert_eq!(platform.issuer, "https://canvas.instructure.com");
        assert_eq!(
            platform.auth_login_url,
            "https://lms.example.org/auth?tenant=7"
        );
        assert_eq!(
            platform.token_url,
            "https://sso.canvaslms.com/login/oauth2/token"
        );
        assert_eq!(platform.unknown_deployments, UnknownDeployments::Refuse);
        let pending = PlatformInput {
            unknown_deployments: Some("pending".into()),
            deployment_ids: vec!["a".into(), "b c".into(), "x".repeat(MAX_ID_CHARS)],
            ..canvas()
        };
        let platform = pending.validate().unwrap();
        assert_eq!(platform.unknown_deployments, UnknownDeployments::Pending);
        assert_eq!(platform.deployment_ids.len(), 3);
    }

    #[test]
    fn localhost_may_speak_plain_http_and_nothing_else_may() {
        for issuer in [
            "http://127.0.0.1:9001",
            "http://localhost:9001/lti",
            "http://[::1]:9001",
        ] {
            let input = PlatformInput {
                issuer: issuer.into(),
                jwks_url: format!("{issuer}/jwks"),
                ..canvas()
            };
            assert!(input.validate().is_ok(), "{issuer}");
        }
        for issuer in ["http://canvas.instructure.com", "http://10.0.0.1"] {
            let input = PlatformInput {
                issuer: issuer.into(),
                ..canvas()
            };
            assert_eq!(fields(&input), [Field::Issuer], "{issuer}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let long_url = format!("https://lms.example.org/{}", "a".repeat(MAX_URL_CHARS));
        let ids = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(&str, PlatformInput, Vec<Field>)> = vec![
            (
                "empty issuer",
                PlatformInput {
                    issuer: "".into(),
                    ..canvas()
                },
                vec![Field::Issuer],
            ),
            (
                "issuer with a query",
                PlatformInput {
                    issuer: "https://lms.example.org/?x=1".into(),
                    ..canvas()
                },
                vec![Field::Issuer],
            ),
            (
                "issuer with a fragment",
                PlatformInput {
                    issuer: "https://lms.example.org#f".into(),
                    ..canvas()
                },
                vec![Field::Issuer],
            ),
            (
                "issuer not a URL",
                PlatformInput {
                    issuer: "canvas".into(),
                    ..canvas()
                },
                vec![Field::Issuer],
            ),
            (
                "issuer with spaces around",
                PlatformInput {
                    issuer: " https://lms.example.org".into(),
                    ..canvas()
                },
                vec![Field::Issuer],
            ),
            (
                "issuer with credentials",
                PlatformInput {
                    issuer: "https://u:p@lms.example.org".into(),
                    ..canvas()
                },
                vec![Field::Issuer],
            ),
            (
                "issuer too long",
                PlatformInput {
                    issuer: long_url.clone(),
                    ..canvas()
                },
                vec![Field::Issuer],
            ),
            (
                "empty client id",
                PlatformInput {
                    client_id: "".into(),
                    ..canvas()
                },
                vec![Field::ClientId],
            ),
            (
                "client id too long",
                PlatformInput {
                    client_id: "c".repeat(MAX_ID_CHARS + 1),
                    ..canvas()
                },
                vec![Field::ClientId],
            ),
            (
                "client id with a control character",
                PlatformInput {
                    client_id: "a\tb".into(),
                    ..canvas()
                },
                vec![Field::ClientId],
            ),
            (
                "client id with a trailing space",
                PlatformInput {
                    client_id: "abc ".into(),
                    ..canvas()
                },
                vec![Field::ClientId],
            ),
            (
                "no deployment",
                PlatformInput {
                    deployment_ids: vec![],
                    ..canvas()
                },
                vec![Field::DeploymentIds],
            ),
            (
                "too many deployments",
                PlatformInput {
                    deployment_ids: (0..=MAX_DEPLOYMENTS).map(|i| i.to_string()).collect(),
                    ..canvas()
                },
                vec![Field::DeploymentIds],
            ),
            (
                "an empty deployment id",
                PlatformInput {
                    deployment_ids: ids(&["a", ""]),
                    ..canvas()
                },
                vec![Field::DeploymentId(1)],
            ),
            (
                "a deployment id too long",
                PlatformInput {
                    deployment_ids: ids(&[&"d".repeat(MAX_ID_CHARS + 1)]),
                    ..canvas()
                },
                vec![Field::DeploymentId(0)],
            ),
            (
                "a deployment id not ASCII",
                PlatformInput {
                    deployment_ids: ids(&["a", "b", "déploiement"]),
                    ..canvas()
                },
                vec![Field::DeploymentId(2)],
            ),
            (
                "a deployment id with a newline",
                PlatformInput {
                    deployment_ids: ids(&["a\nb"]),
                    ..canvas()
                },
                vec![Field::DeploymentId(0)],
            ),
            (
                "a repeated deployment id",
                PlatformInput {
                    deployment_ids: ids(&["a", "b", "a"]),
                    ..canvas()
                },
                vec![Field::DeploymentId(2)],
            ),
            (
                "auth URL over plain http",
                PlatformInput {
                    auth_login_url: "http://lms.example.org/auth".into(),
                    ..canvas()
                },
                vec![Field::AuthLoginUrl],
            ),
            (
                "auth URL with a fragment",
                PlatformInput {
                    auth_login_url: "https://lms.example.org/auth#x".into(),
                    ..canvas()
                },
                vec![Field::AuthLoginUrl],
            ),
            (
                "token URL of another scheme",
                PlatformInput {
                    token_url: "ftp://lms.example.org/token".into(),
                    ..canvas()
                },
                vec![Field::TokenUrl],
            ),
            (
                "token URL too long",
                PlatformInput {
                    token_url: long_url.clone(),
                    ..canvas()
                },
                vec![Field::TokenUrl],
            ),
            (
                "empty JWKS URL",
                PlatformInput {
                    jwks_url: "".into(),
                    ..canvas()
                },
                vec![Field::JwksUrl],
            ),
            (
                "blank token audience",
                PlatformInput {
                    token_audience: Some(String::new()),
                    ..canvas()
                },
                vec![Field::TokenAudience],
            ),
            (
                "unknown policy",
                PlatformInput {
                    unknown_deployments: Some("accept".into()),
                    ..canvas()
                },
                vec![Field::UnknownDeployments],
            ),
            (
                "everything at once",
                PlatformInput {
                    issuer: "nope".into(),
                    client_id: "".into(),
                    deployment_ids: ids(&["a", "a"]),
                    auth_login_url: "nope".into(),
                    token_url: "nope".into(),
                    jwks_url: "nope".into(),
                    unknown_deployments: Some("Pending".into()),
                    token_audience: Some(" padded ".into()),
                },
                vec![
                    Field::Issuer,
                    Field::ClientId,
                    Field::AuthLoginUrl,
                    Field::TokenUrl,
                    Field::JwksUrl,
                    Field::TokenAudience,
                    Field::UnknownDeployments,
                    Field::DeploymentId(1),
                ],
            ),
        ];
        for (what, input, want) in cases {
            assert_eq!(fields(&input), want, "{what}");
        }
    }

    #[test]
    fn fields_are_named_as_the_api_names_them() {
        let cases = [
            (Field::Issuer, "issuer"),
            (Field::ClientId, "client_id"),
            (Field::DeploymentIds, "deployment_ids"),
            (Field::DeploymentId(3), "deployment_ids[3]"),
            (Field::AuthLoginUrl, "auth_login_url"),
            (Field::TokenUrl, "token_url"),
            (Field::JwksUrl, "jwks_url"),
            (Field::UnknownDeployments, "unknown_deployments"),
            (Field::TokenAudience, "token_audience"),
        ];
        for (field, name) in cases {
            assert_eq!(field.to_string(), name);
        }
        let errors = PlatformInput {
            client_id: "".into(),
            ..canvas()
        }
        .validate()
        .unwrap_err();
        assert_eq!(errors.to_string(), "client_id: is required");
    }

    #[test]
    fn policies_read_and_print_by_their_wire_names() {
        for policy in [UnknownDeployments::Refuse, UnknownDeployments::Pending] {
            let text = unknown_deployments_text(policy);
            assert_eq!(parse_unknown_deployments(Some(text)), Ok(policy));
        }
        assert_eq!(
            parse_unknown_deployments(None),
            Ok(UnknownDeployments::Refuse)
        );
        assert!(parse_unknown_deployments(Some("")).is_err());
    }
}
