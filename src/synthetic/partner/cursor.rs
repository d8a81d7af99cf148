//! Page tokens: opaque to clients (base64url of the last served result's position), and
//! accepted only when this server issued them, so a forged or edited token is a 400.

use std::collections::HashSet;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

/// Where a result sits in the served order: by `modified_at`, then by when it was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Position {
    pub(super) modified_at: DateTime<Utc>,
    pub(super) seq: u64,
}

/// The tokens issued so far. A token names the position after which the next page starts, not
/// an index, so results added or replaced between pages neither repeat nor skip one.
#[derive(Default)]
pub(super) struct Cursors {
    issued: Mutex<HashSet<String>>,
}

impl Cursors {
    /// The token for the page after `last`.
    pub(super) fn issue(&self, last: Position) -> String {
        let text = format!(
            "{}.{}.{}",
            last.modified_at.timestamp(),
            last.modified_at.timestamp_subsec_nanos(),
            last.seq
        );
        let token = URL_SAFE_NO_PAD.encode(text);
        self.lock().insert(token.clone());
        token
    }

    /// The position a token names; None when this server did not issue it.
    pub(super) fn resolve(&self, token: &str) -> Option<Position> {
        if !self.lock().contains(token) {
            return None;
        }
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let mut parts = text.split('.');
        let secs = parts.next()?.parse().ok()?;
        let nanos = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        Some(Position {
            modified_at: DateTime::from_timestamp(secs, nanos)?,
            seq,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }
}
