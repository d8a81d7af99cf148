//! When a failed outbound request is tried again, and after how long: exponential backoff with
//! jitter, bounded by a number of attempts and a total time, or the source's own `Retry-After`
//! within a cap. The only user of the `backoff` crate (unmaintained), so that swapping it for
//! `backon` touches this file alone.

use std::time::{Duration, SystemTime};

use backoff::backoff::Backoff as _;

use crate::config::OutboundSettings;

/// The retry rules of one kind of call, from `[outbound]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_elapsed: Duration,
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &OutboundSettings) -> RetryPolicy {
        RetryPolicy {
            max_attempts: settings.max_attempts.max(1),
            initial_backoff: Duration::from_millis(settings.initial_backoff_ms),
            max_backoff: Duration::from_secs(settings.max_backoff_secs),
            max_elapsed: Duration::from_secs(settings.max_retry_elapsed_secs),
            max_retry_after: Duration::from_secs(settings.max_retry_after_secs),
        }
    }

    /// The retry state of one request, started now.
    pub fn start(&self) -> Retries {
        let backoff = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial_backoff)
            .with_max_interval(self.max_backoff.max(self.initial_backoff))
            .with_multiplier(2.0)
            .with_randomization_factor(0.5)
            .with_max_elapsed_time(Some(self.max_elapsed))
            .build();
        Retries {
            max_attempts: self.max_attempts,
            max_retry_after: self.max_retry_after,
            backoff,
            attempts: 0,
        }
    }
}

/// Why a request is not tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Out of attempts, or out of time.
    Exhausted,
    /// The source asked to wait longer than the policy allows.
    RetryAfterTooLong { asked: Duration, max: Duration },
}

/// One request's attempts so far and the pauses still to come.
pub struct Retries {
    max_attempts: u32,
    max_retry_after: Duration,
    backoff: backoff::ExponentialBackoff,
    attempts: u32,
}

impl Retries {
    /// Counts an attempt about to start; returns its number (1 for the first).
    pub fn begin_attempt(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a failed attempt that may be retried: how long to wait before the next one.
    /// `retry_after` is what the source asked for, if anything.
    pub fn pause_before_next(&mut self, retry_after: Option<Duration>) -> Result<Duration, Stop> {
        if let Some(asked) = retry_after {
            if asked > self.max_retry_after {
                return Err(Stop::RetryAfterTooLong {
                    asked,
                    max: self.max_retry_after,
                });
            }
        }
        if self.attempts >= self.max_attempts {
            return Err(Stop::Exhausted);
        }
        // The backoff is advanced even when Retry-After wins, so its elapsed bound holds.
        let backoff = self.backoff.next_backoff().ok_or(Stop::Exhausted)?;
        Ok(retry_after.unwrap_or(backoff))
    }
}

/// A `Retry-After` value: delay seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past
/// means now; anything else unreadable is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(date.with_timezone(&chrono::Utc));
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_elapsed: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 07:28:00 GMT
        let cases = [
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            (
                "Wed, 21 Oct 2015 07:30:00 GMT",
                Some(Duration::from_secs(120)),
            ),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let mut retries = policy(3).start();
        for _ in 0..2 {
            retries.begin_attempt();
            assert!(retries.pause_before_next(None).is_ok());
        }
        retries.begin_attempt();
        assert_eq!(retries.pause_before_next(None), Err(Stop::Exhausted));
        assert_eq!(retries.attempts(), 3);
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut retries = policy(10).start();
        let pauses: Vec<Duration> = (0..6)
            .map(|_| {
                retries.begin_attempt();
                retries.pause_before_next(None).unwrap()
            })
            .collect();
        // ±50 % jitter around 100, 200, 400, 400… ms.
        assert!(pauses[0] >= Duration::from_millis(50) && pauses[0] <= Duration::from_millis(150));
        for pause in &pauses {
            assert!(*pause <= Duration::from_millis(600), "{pauses:?}");
        }
        assert!(pauses[5] >= Duration::from_millis(200), "{pauses:?}");
    }

    #[test]
    fn retry_after_wins_over_backoff_within_the_cap() {
        let mut retries = policy(5).start();
        retries.begin_attempt();
        assert_eq!(
            retries.pause_before_next(Some(Duration::from_secs(7))),
            Ok(Duration::from_secs(7))
        );
        retries.begin_attempt();
        assert_eq!(
            retries.pause_before_next(Some(Duration::from_secs(3600))),
            Err(Stop::RetryAfterTooLong {
                asked: Duration::from_secs(3600),
                max: Duration::from_secs(300)
            })
        );
    }

    #[test]
    fn elapsed_time_bounds_retries() {
        let mut p = policy(100);
        p.max_elapsed = Duration::ZERO;
        let mut retries = p.start();
        retries.begin_attempt();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(retries.pause_before_next(None), Err(Stop::Exhausted));
    }
}
