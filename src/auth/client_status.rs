//! Whether a token's client is still active, read through a short cache so that revocation
//! reaches tokens already issued without a database read on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before stale ones are dropped; clients are few, so this bounds memory only.
const MAX_ENTRIES: usize = 10_000;

/// Client id → (when it was read, whether it was active then).
pub struct ClientStatusCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, bool)>>,
}

impl ClientStatusCache {
    pub fn new(ttl: Duration) -> ClientStatusCache {
        ClientStatusCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The remembered status, if it was read less than the TTL before `now`.
    pub fn get(&self, client_id: &str, now: Instant) -> Option<bool> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(client_id)
            .filter(|(read_at, _)| now.saturating_duration_since(*read_at) < self.ttl)
            .map(|(_, active)| *active)
    }

    /// Remembers a status read at `now`.
    pub fn put(&self, client_id: &str, active: bool, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (read_at, _)| now.saturating_duration_since(*read_at) < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(client_id.to_string(), (now, active));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_trusted_for_the_ttl_and_then_read_again() {
        let cache = ClientStatusCache::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(cache.get("rgc_1", t0), None);
        cache.put("rgc_1", true, t0);
        assert_eq!(cache.get("rgc_1", t0 + Duration::from_secs(4)), Some(true));
        assert_eq!(cache.get("rgc_1", t0 + Duration::from_secs(5)), None);
        assert_eq!(cache.get("rgc_2", t0), None);
    }

    #[test]
    fn a_zero_ttl_reads_the_status_every_time() {
        let cache = ClientStatusCache::new(Duration::ZERO);
        let t0 = Instant::now();
        cache.put("rgc_1", true, t0);
        assert_eq!(cache.get("rgc_1", t0), None);
    }
}
