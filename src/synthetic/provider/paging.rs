//! `limit`/`offset` paging (reference §5): the default page of 100, a silent clamp to the
//! provider's maximum, `X-Total-Count` (exact, wrong or absent) and RFC 5988 `Link` headers.

use super::auth::percent_decode;

/// The OneRoster default `limit`.
pub const DEFAULT_LIMIT: usize = 100;

/// What `X-Total-Count` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotalCount {
    #[default]
    Exact,
    /// Off by this many (clamped at 0), as drifting providers are.
    Wrong(i64),
    Absent,
}

impl TotalCount {
    pub(super) fn header(self, total: usize) -> Option<String> {
        match self {
            TotalCount::Exact => Some(total.to_string()),
            TotalCount::Wrong(delta) => {
                Some((total as i64).saturating_add(delta).max(0).to_string())
            }
            TotalCount::Absent => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("limit must be a whole number of at least 1, not {0:?}")]
    Limit(String),
    #[error("offset must be a whole number of at least 0, not {0:?}")]
    Offset(String),
}

/// The page a request asks for, after the clamp (shared with the gradebook server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paging {
    pub(crate) limit: usize,
    pub(crate) offset: usize,
}

impl Paging {
    pub(crate) fn from_query(
        pairs: &[(String, String)],
        max_page_size: Option<usize>,
    ) -> Result<Paging, PagingError> {
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| PagingError::Limit(v.clone()))?,
        };
        let offset = match get("offset") {
            None => 0,
            Some(v) => v.parse().map_err(|_| PagingError::Offset(v.clone()))?,
        };
        let limit = max_page_size.map_or(limit, |max| limit.min(max.max(1)));
        Ok(Paging { limit, offset })
    }

    /// `<…>; rel="first", <…>; rel="prev", <…>; rel="next", <…>; rel="last"`, each URL the
    /// request's own with `limit` and `offset` replaced (the clamped limit, as servers that
    /// clamp advertise it) and every other parameter kept as it was sent.
    pub(crate) fn link_header(
        &self,
        url_without_query: &str,
        raw_query: &str,
        total: usize,
    ) -> String {
        let kept: Vec<&str> = raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or_default();
                let name = percent_decode(name, true).unwrap_or_default();
                name != "limit" && name != "offset"
            })
            .collect();
        let url = |offset: usize| {
            let mut query = kept.join("&");
            if !query.is_empty() {
                query.push('&');
            }
            format!(
                "{url_without_query}?{query}limit={}&offset={offset}",
                self.limit
            )
        };
        let last = if total == 0 {
            0
        } else {
            (total - 1) / self.limit * self.limit
        };
        let mut links = vec![format!("<{}>; rel=\"first\"", url(0))];
        if self.offset > 0 {
            let prev = self.offset.saturating_sub(self.limit);
            links.push(format!("<{}>; rel=\"prev\"", url(prev)));
        }
        let next = self.offset.saturating_add(self.limit);
        if next < total {
            links.push(format!("<{}>; rel=\"next\"", url(next)));
        }
        links.push(format!("<{}>; rel=\"last\"", url(last)));
        links.join(", ")
    }
}
