//! Rate limits on the token endpoint, per IP address and per client id (governor's GCRA), so
//! that guessing secrets is slow however the guesses are spread.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Keys kept before idle ones are dropped: client ids come from the request, so an attacker
/// could otherwise grow the table without bound.
const MAX_KEYS: usize = 10_000;
/// Longest client id used as a key; real ids are 28 characters.
const MAX_KEY_CHARS: usize = 64;

/// The request was refused; it may be retried after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many token requests: retry after {0} s")]
pub struct RetryAfter(pub u64);

pub struct TokenRateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_client: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl TokenRateLimits {
    /// Limits of `per_ip` and `per_client` requests a minute, each also the burst allowed
    /// (a limit of 0 is taken as 1).
    pub fn new(per_ip: u32, per_client: u32) -> TokenRateLimits {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        TokenRateLimits {
            per_ip: DefaultKeyedRateLimiter::keyed(quota(per_ip)),
            per_client: DefaultKeyedRateLimiter::keyed(quota(per_client)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request from `ip` naming `client_id`. A request refused by the IP limit is not
    /// counted against the client, so one noisy address cannot lock a client out everywhere.
    pub fn check(&self, ip: Option<IpAddr>, client_id: Option<&str>) -> Result<(), RetryAfter> {
        if let Some(ip) = ip {
            Self::prune(&self.per_ip);
            self.per_ip
                .check_key(&ip)
                .map_err(|n| self.retry_after(n))?;
        }
        if let Some(id) = client_id {
            Self::prune(&self.per_client);
            let key: String = id.chars().take(MAX_KEY_CHARS).collect();
            self.per_client
                .check_key(&key)
                .map_err(|n| self.retry_after(n))?;
        }
        Ok(())
    }

    fn retry_after(
        &self,
        not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>,
    ) -> RetryAfter {
        let wait = not_until.wait_time_from(self.clock.now());
        RetryAfter((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
    }

    fn prune<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>) {
        if limiter.len() >= MAX_KEYS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_and_the_next_request_is_told_when_to_retry() {
        let limits = TokenRateLimits::new(3, 100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limits.check(Some(ip), Some("rgc_a")), Ok(()));
        }
        let refused = limits.check(Some(ip), Some("rgc_a")).unwrap_err();
        // One request a minute comes back: about 20 s after a burst of 3.
        assert!((1..=20).contains(&refused.0), "{refused:?}");
        // Another address is not affected.
        assert_eq!(
            limits.check("192.0.2.2".parse().ok(), Some("rgc_a")),
            Ok(())
        );
    }

    #[test]
    fn one_client_id_is_limited_across_addresses() {
        let limits = TokenRateLimits::new(100, 2);
        for n in 0..2u8 {
            let ip = IpAddr::from([192, 0, 2, n]);
            assert_eq!(limits.check(Some(ip), Some("rgc_a")), Ok(()));
        }
        let ip = IpAddr::from([192, 0, 2, 9]);
        assert!(limits.check(Some(ip), Some("rgc_a")).is_err());
        assert_eq!(limits.check(Some(ip), Some("rgc_b")), Ok(()));
    }
}
