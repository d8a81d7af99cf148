//! Webhook subscriptions: what a new one must be (a URL the gateway may call, event types of
//! the catalogue), and its signing secrets, made, sealed and stored in one step, rotated with
//! an overlap, and opened as the live set deliveries are signed with.

use chrono::{DateTime, Duration, Utc};
use reqwest::Url;
use uuid::Uuid;

use super::catalogue::{is_event_type, EVENT_TYPES};
use super::signing::{SecretParseError, WebhookSecret};
use crate::auth::secrets::{SecretBox, SecretError};
use crate::domain::problem::quoted;
use crate::outbound::target_guard::{TargetError, TargetGuard};
use crate::store::subscriptions::{self, NewSubscription, Subscription};
use crate::store::{Db, StoreError};

/// Longest subscription URL accepted, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// How long the previous secret stays live after a rotation, unless told otherwise: time for
/// the subscriber to switch without missing a delivery.
pub const DEFAULT_PREVIOUS_SECRET_LIFETIME: Duration = Duration::hours(24);

/// What a caller asks for, unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionInput {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
}

/// The part of the input a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Url,
    /// The n-th event type (from 0).
    EventType(usize),
    Description,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

/// Why a subscription's secrets could not be opened. Names the subscription, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionSecretError {
    #[error("subscription {id}: {source}")]
    Sealed { id: String, source: SecretError },
    #[error("subscription {id}: {source}")]
    Invalid {
        id: String,
        source: SecretParseError,
    },
}

/// The URL's form: http(s), a host, no user or password (a secret in a URL ends up in logs),
/// no fragment (never sent), at most [`MAX_URL_CHARS`]. Where it points is [`TargetGuard`]'s.
pub fn check_url_form(text: &str) -> Result<Url, String> {
    let chars = text.chars().count();
    if chars > MAX_URL_CHARS {
        return Err(format!(
            "is {chars} characters long; at most {MAX_URL_CHARS} are accepted"
        ));
    }
    let url = Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, not {}",
            quoted(url.scheme())
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (#…)".into());
    }
    Ok(url)
}

/// Checks every event type against the catalogue; duplicates are kept once, in first order.
fn check_event_types(names: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if !is_event_type(name) {
            errors.push(FieldError {
                field: Field::EventType(i),
                message: format!(
                    "{} is not an event type (known: {})",
                    quoted(name),
                    EVENT_TYPES.join(", ")
                ),
            });
        } else if !kept.contains(name) {
            kept.push(name.clone());
        }
    }
    kept
}

fn target_message(error: &TargetError) -> String {
    format!("is not a target the gateway may call: {error}")
}

/// Checks a new subscription: every problem is reported, each at its field. The URL is checked
/// with `guard` (its host resolved) only when its form is right.
pub async fn validate(
    input: &SubscriptionInput,
    guard: &TargetGuard,
) -> Result<NewSubscription, Vec<FieldError>> {
    let mut errors = Vec::new();
    let url = match check_url_form(&input.url) {
        Ok(url) => match guard.check(&url).await {
            Ok(_) => Some(url),
            Err(e) => {
                errors.push(FieldError {
                    field: Field::Url,
                    message: target_message(&e),
                });
                None
            }
        },
        Err(message) => {
            errors.push(FieldError {
                field: Field::Url,
                message,
            });
            None
        }
    };
    let event_types = check_event_types(&input.event_types, &mut errors);
    let description = input.description.clone().unwrap_or_default();
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError {
            field: Field::Description,
            message: format!(
                "is {chars} characters long; at most {MAX_DESCRIPTION_CHARS} are accepted"
            ),
        });
    }
    match url {
        Some(url) if errors.is_empty() => Ok(NewSubscription {
            url: url.to_string(),
            event_types,
            description,
        }),
        _ => Err(errors),
    }
}

/// Stores a new subscription with a new secret; the secret is returned only here.
pub async fn create(
    db: &Db,
    secrets: &SecretBox,
    district_id: i64,
    new: &NewSubscription,
) -> Result<(Subscription, WebhookSecret), StoreError> {
    let secret = WebhookSecret::generate();
    let id = Uuid::new_v4().to_string();
    let sealed = secrets.seal_subscription_secret(district_id, &id, &secret.to_text());
    let stored = subscriptions::insert(db, district_id, &id, new, &sealed).await?;
    Ok((stored, secret))
}

/// Gives a subscription a new secret, returned only here; the one it had stays live for
/// `previous_lifetime`. `None` when the district has no subscription of that id.
pub async fn rotate_secret(
    db: &Db,
    secrets: &SecretBox,
    district_id: i64,
    id: &str,
    previous_lifetime: Duration,
) -> Result<Option<(Subscription, WebhookSecret)>, StoreError> {
    let secret = WebhookSecret::generate();
    let sealed = secrets.seal_subscription_secret(district_id, id, &secret.to_text());
    let rotated =
        subscriptions::rotate_secret(db, district_id, id, &sealed, Utc::now() + previous_lifetime)
            .await?;
    Ok(rotated.map(|stored| (stored, secret)))
}

/// The secrets a delivery made at `now` is signed with: the current one first, then the
/// previous one while it has not expired.
pub fn live_secrets(
    secrets: &SecretBox,
    subscription: &Subscription,
    now: DateTime<Utc>,
) -> Result<Vec<WebhookSecret>, SubscriptionSecretError> {
    let open = |sealed: &str| {
        let id = &subscription.id;
        let text = secrets
            .open_subscription_secret(subscription.district_id, id, sealed)
            .map_err(|source| SubscriptionSecretError::Sealed {
                id: id.clone(),
                source,
            })?;
        WebhookSecret::parse(text.expose()).map_err(|source| SubscriptionSecretError::Invalid {
            id: id.clone(),
            source,
        })
    };
    let mut live = vec![open(&subscription.sealed_secret)?];
    if let (Some(previous), Some(expires_at)) = (
        &subscription.sealed_previous_secret,
        subscription.previous_secret_expires_at,
    ) {
        if now < expires_at {
            live.push(open(previous)?);
        }
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms_are_accepted_or_refused_with_a_reason() {
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_CHARS));
        let cases: &[(&str, Option<&str>)] = &[
            ("https://hooks.example.org/rostergate", None),
            ("http://hooks.example.org:8080/in?district=lincoln", None),
            ("ftp://hooks.example.org/", Some("http or https")),
            ("hooks.example.org/in", Some("is not a URL")),
            (
                "https://user:pw@hooks.example.org/",
                Some("user name or password"),
            ),
            (
                "https://user@hooks.example.org/",
                Some("user name or password"),
            ),
            ("https://hooks.example.org/in#part", Some("fragment")),
            ("https://hooks.example.org/in#", Some("fragment")),
            ("", Some("is not a URL")),
            (&long, Some("at most 2048")),
        ];
        for (text, want) in cases {
            match (check_url_form(text), want) {
                (Ok(_), None) => {}
                (Err(message), Some(want)) => assert!(message.contains(want), "{text}: {message}"),
                (got, want) => panic!("{text}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn a_url_of_exactly_the_longest_length_is_accepted() {
        let base = "https://example.org/";
        let url = format!("{base}{}", "a".repeat(MAX_URL_CHARS - base.len()));
        assert_eq!(url.len(), MAX_URL_CHARS);
        assert!(check_url_form(&url).is_ok());
    }

    #[test]
    fn unknown_event_types_are_refused_at_their_index_and_duplicates_kept_once() {
        let names: Vec<String> = ["class.created", "users.created", "class.created", ""]
            .map(String::from)
            .to_vec();
        let mut errors = Vec::new();
        let kept = check_event_types(&names, &mut errors);
        assert_eq!(kept, ["class.created"]);
        let fields: Vec<Field> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, [Field::EventType(1), Field::EventType(3)]);
    }

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        let input = |url: &str| SubscriptionInput {
            url: url.into(),
            ..Default::default()
        };
        let strict = TargetGuard::new(false);
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://169.254.169.254/latest",
            "https://10.0.0.1/hook",
            "http://[::1]/hook",
        ] {
            let errors = validate(&input(url), &strict).await.expect_err(url);
            assert_eq!(errors[0].field, Field::Url, "{url}");
        }
        let open = TargetGuard::new(true);
        let made = validate(&input("http://127.0.0.1:8080/hook"), &open)
            .await
            .unwrap();
        assert_eq!(made.url, "http://127.0.0.1:8080/hook");
        assert!(made.event_types.is_empty());
        assert_eq!(made.description, "");
    }
}
