//! What an attempt's answer means for its delivery and its subscription: delivered, retried
//! later (the configured schedule with jitter, or later still when the subscriber asks with
//! `Retry-After`), failed for good; and whether the subscription is healthy, failing, or so
//! broken that it is disabled. A pure function of its inputs, the clock and the dice included.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::WebhookSettings;
use crate::store::deliveries::Next;

/// The retry rules, from `[webhooks]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Pauses before the 1st, 2nd, … retry.
    pub schedule: Vec<Duration>,
    /// Each pause moves by up to this fraction either way.
    pub jitter_fraction: f64,
    pub max_retry_after: Duration,
    /// A subscription failing this long is disabled.
    pub disable_after: chrono::Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &WebhookSettings) -> RetryPolicy {
        RetryPolicy {
            schedule: settings
                .retry_schedule_secs
                .iter()
                .map(|s| Duration::from_secs_f64(s.max(0.0)))
                .collect(),
            jitter_fraction: settings.jitter_fraction.clamp(0.0, 1.0),
            max_retry_after: Duration::from_secs(settings.max_retry_after_secs),
            disable_after: chrono::Duration::milliseconds(
                (settings.disable_after_days.max(0.0) * 86_400_000.0).min(i64::MAX as f64) as i64,
            ),
        }
    }

    /// Attempts a delivery gets in all: the first and one per pause.
    pub fn max_attempts(&self) -> i64 {
        self.schedule.len() as i64 + 1
    }
}

/// How an attempt ended, as far as the decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The subscriber answered with this status; `retry_after` when it sent one on 429 or 503.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: refused target, connection error, timeout, or nothing to send.
    None,
}

/// What happens to the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionChange {
    /// A success: any run of failures is over.
    Healthy,
    /// A failure in a run that began at `since`.
    Failing { since: DateTime<Utc> },
    /// Turned off, with the reason shown to administrators.
    Disable {
        since: DateTime<Utc>,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub next: Next,
    pub subscription: SubscriptionChange,
}

/// The decision after attempt number `attempt` (1 for the first) ended with `answer` at `now`.
/// `failing_since` is the subscription's current run of failures; `dice` is uniform in [0, 1)
/// and places the jitter.
pub fn decide(
    policy: &RetryPolicy,
    answer: Answer,
    attempt: i64,
    failing_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    dice: f64,
) -> Decision {
    if let Answer::Status { code, .. } = answer {
        if (200..300).contains(&code) {
            return Decision {
                next: Next::Delivered,
                subscription: SubscriptionChange::Healthy,
            };
        }
        if code == 410 {
            return Decision {
                next: Next::Failed,
                subscription: SubscriptionChange::Disable {
                    since: failing_since.unwrap_or(now),
                    reason: "the subscriber answered 410 Gone: it no longer wants these events"
                        .into(),
                },
            };
        }
    }
    let since = failing_since.unwrap_or(now);
    let subscription = if now - since >= policy.disable_after {
        SubscriptionChange::Disable {
            since,
            reason: format!(
                "every delivery has failed since {} (longer than {})",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                describe(policy.disable_after)
            ),
        }
    } else {
        SubscriptionChange::Failing { since }
    };
    Decision {
        next: retry_at(policy, answer, attempt, now, dice),
        subscription,
    }
}

/// When to try again after a failed attempt, or `Failed` once the schedule is used up.
fn retry_at(
    policy: &RetryPolicy,
    answer: Answer,
    attempt: i64,
    now: DateTime<Utc>,
    dice: f64,
) -> Next {
    let Some(pause) = usize::try_from(attempt - 1)
        .ok()
        .and_then(|i| policy.schedule.get(i))
    else {
        return Next::Failed;
    };
    let spread = policy.jitter_fraction * (2.0 * dice.clamp(0.0, 1.0) - 1.0);
    let mut wait = pause.mul_f64((1.0 + spread).max(0.0));
    if let Answer::Status {
        code: 429 | 503,
        retry_after: Some(asked),
    } = answer
    {
        // Never sooner than the subscriber asked, within reason.
        wait = wait.max(asked.min(policy.max_retry_after));
    }
    Next::RetryAt(now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1)))
}

/// `5 days`, `2 hours`, `90 seconds`: the threshold in a reason.
fn describe(span: chrono::Duration) -> String {
    let secs = span.num_seconds();
    if secs >= 86_400 && secs % 86_400 == 0 {
        format!("{} days", secs / 86_400)
    } else if secs >= 3600 && secs % 3600 == 0 {
        format!("{} hours", secs / 3600)
    } else {
        format!("{} seconds", span.num_milliseconds() as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::from_secs(5), Duration::from_secs(300)],
            jitter_fraction: 0.2,
            max_retry_after: Duration::from_secs(60),
            disable_after: chrono::Duration::days(5),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn status(code: u16) -> Answer {
        Answer::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn the_decision_table() {
        let now = at("2026-09-10T12:00:00Z");
        let secs = |s: i64| Next::RetryAt(now + chrono::Duration::seconds(s));
        let failing = SubscriptionChange::Failing { since: now };
        let after = |code, secs| Answer::Status {
            code,
            retry_after: Some(Duration::from_secs(secs)),
        };
        // (answer, attempt, failing_since, dice, next, subscription)
        type Case = (
            Answer,
            i64,
            Option<DateTime<Utc>>,
            f64,
            Next,
            SubscriptionChange,
        );
        let cases: Vec<Case> = vec![
            (
                status(200),
                1,
                None,
                0.5,
                Next::Delivered,
                SubscriptionChange::Healthy,
            ),
            (
                status(204),
                3,
                Some(now),
                0.5,
                Next::Delivered,
                SubscriptionChange::Healthy,
            ),
            (status(500), 1, None, 0.5, secs(5), failing.clone()),
            (status(500), 2, None, 0.5, secs(300), failing.clone()),
            (status(500), 3, None, 0.5, Next::Failed, failing.clone()),
            (Answer::None, 1, None, 0.5, secs(5), failing.clone()),
            (status(302), 1, None, 0.5, secs(5), failing.clone()),
            (status(400), 2, None, 0.5, secs(300), failing.clone()),
            // Jitter: ±20 % at the extremes of the dice.
            (status(500), 1, None, 0.0, secs(4), failing.clone()),
            (status(500), 2, None, 1.0, secs(360), failing.clone()),
            // Retry-After: honoured on 429 and 503 when longer, capped at 60 s; ignored on 500.
            (after(429, 30), 1, None, 0.5, secs(30), failing.clone()),
            (after(503, 3600), 1, None, 0.5, secs(60), failing.clone()),
            (after(429, 1), 2, None, 0.5, secs(300), failing.clone()),
            (after(500, 30), 1, None, 0.5, secs(5), failing.clone()),
            (after(429, 30), 3, None, 0.5, Next::Failed, failing.clone()),
        ];
        for (answer, attempt, since, dice, next, subscription) in cases {
            let got = decide(&policy(), answer, attempt, since, now, dice);
            assert_eq!(
                got,
                Decision { next, subscription },
                "{answer:?} attempt {attempt} dice {dice}"
            );
        }
    }

    #[test]
    fn gone_fails_the_delivery_and_disables_the_subscription() {
        let now = at("2026-09-10T12:00:00Z");
        let got = decide(&policy(), status(410), 1, None, now, 0.5);
        assert_eq!(got.next, Next::Failed);
        match got.subscription {
            SubscriptionChange::Disable { reason, .. } => {
                assert!(reason.contains("410"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failing_for_the_configured_days_disables_while_the_delivery_waits() {
        let now = at("2026-09-10T12:00:00Z");
        let began = now - chrono::Duration::days(5);
        let got = decide(&policy(), status(500), 1, Some(began), now, 0.5);
        assert_eq!(got.next, Next::RetryAt(now + chrono::Duration::seconds(5)));
        match got.subscription {
            SubscriptionChange::Disable { since, reason } => {
                assert_eq!(since, began);
                assert!(reason.contains("2026-09-05T12:00:00Z"), "{reason}");
                assert!(reason.contains("5 days"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let almost = now - chrono::Duration::days(5) + chrono::Duration::seconds(1);
        assert_eq!(
            decide(&policy(), Answer::None, 1, Some(almost), now, 0.5).subscription,
            SubscriptionChange::Failing { since: almost }
        );
        // A success clears the run, however long it was.
        assert_eq!(
            decide(&policy(), status(200), 1, Some(began), now, 0.5).subscription,
            SubscriptionChange::Healthy
        );
    }

    #[test]
    fn the_policy_reads_fractional_settings() {
        let settings = WebhookSettings {
            retry_schedule_secs: vec![0.25, 2.0],
            disable_after_days: 0.5,
            jitter_fraction: 3.0,
            ..WebhookSettings::default()
        };
        let policy = RetryPolicy::from_settings(&settings);
        assert_eq!(
            policy.schedule,
            [Duration::from_millis(250), Duration::from_secs(2)]
        );
        assert_eq!(policy.disable_after, chrono::Duration::hours(12));
        assert_eq!(policy.jitter_fraction, 1.0);
        assert_eq!(policy.max_attempts(), 3);
        let shipped = RetryPolicy::from_settings(&WebhookSettings::default());
        assert_eq!(shipped.max_attempts(), 8);
        assert_eq!(shipped.schedule[1], Duration::from_secs(300));
    }
}
