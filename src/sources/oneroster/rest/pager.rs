//! Pages through one OneRoster collection with `limit` and `offset` (oneroster.md §5): follows
//! `Link rel="next"` when a provider sends one, and otherwise asks for the next offset until a
//! page comes back empty or shorter than the longest page seen, since providers cap `limit`
//! silently and `X-Total-Count` is only a hint. Pages are parsed one at a time, so what is held
//! is one page whatever the size of the collection.

use std::collections::HashSet;
use std::fmt;

use reqwest::Url;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;

use crate::domain::problem::{quoted, Location, Problem};
use crate::outbound::{FetchError, Fetched};

/// Pages one collection may take before the pull gives up on it: far past any real district
/// (100 million records at 100 a page), near enough to end a provider that pages forever.
pub const MAX_PAGES: u64 = 1_000_000;

/// Pages equal to the one before them that are put down to a collection changing while it is
/// paged; one more and the provider is taken to ignore `offset`.
const REPEATS_TOLERATED: u32 = 2;

/// Why a collection could not be paged through. Each says at which offset.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{source}")]
    Fetch { offset: u64, source: FetchError },
    #[error("the response is not a OneRoster collection: {source}")]
    NotJson {
        offset: u64,
        source: serde_json::Error,
    },
    #[error("the response has no {key:?} array")]
    NoKey { offset: u64, key: &'static str },
    #[error("{key:?} in the response is {found}, not an array")]
    NotArray {
        offset: u64,
        key: &'static str,
        found: &'static str,
    },
    #[error("the next link points back to offset {to}, at or before this page: not followed")]
    LinkBack { offset: u64, to: u64 },
    #[error("the next link repeats a request already made: not followed")]
    LinkRepeats { offset: u64 },
    #[error("the next link leads to another host ({host}): not followed, the connection's credentials stay with its own host")]
    LinkElsewhere { offset: u64, host: String },
    #[error("the records at offset {offset} are those of offset {earlier} again: the provider seems to ignore offset")]
    Repeated { offset: u64, earlier: u64 },
    #[error("more than {max} pages: paging stopped")]
    TooManyPages { offset: u64, max: u64 },
    #[error("the base URL cannot take a collection path")]
    BaseUrl { offset: u64 },
}

impl PageError {
    /// The offset of the request the error is about.
    pub fn offset(&self) -> u64 {
        match self {
            PageError::Fetch { offset, .. }
            | PageError::NotJson { offset, .. }
            | PageError::NoKey { offset, .. }
            | PageError::NotArray { offset, .. }
            | PageError::LinkBack { offset, .. }
            | PageError::LinkRepeats { offset }
            | PageError::LinkElsewhere { offset, .. }
            | PageError::Repeated { offset, .. }
            | PageError::TooManyPages { offset, .. }
            | PageError::BaseUrl { offset } => *offset,
        }
    }

    /// The error as a problem of the pull, at `endpoint` (`GET /users`) and its offset.
    pub fn problem(&self, endpoint: &str) -> Problem {
        Problem::at(
            Location::record(endpoint, Some(self.offset()), None),
            None,
            self.to_string(),
        )
    }
}

/// One page: its records and the offset of the first.
#[derive(Debug)]
pub struct Page {
    pub offset: u64,
    pub records: Vec<Json>,
}

/// What one page looked like, to notice a provider that hands out the same page again.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    len: usize,
    first: Option<String>,
    last: Option<String>,
}

/// The paging state of one collection. Ask [`Pager::next_request`] what to GET, hand the
/// answer to [`Pager::accept`], and repeat until there is no next request.
#[derive(Debug)]
pub struct Pager {
    base: Url,
    collection: &'static str,
    /// The envelope key the records come under (`users` for `/users`).
    key: &'static str,
    page_size: u32,
    filter: Option<String>,
    pub max_pages: u64,
    /// The next request and the collection offset of its first record.
    next: Result<Option<(Url, u64)>, PageError>,
    /// Offset of the request whose answer is awaited.
    offset: u64,
    pages: u64,
    largest: usize,
    /// The last distinct page: its offset, what it looked like, and how often it came again.
    previous: Option<(u64, Fingerprint, u32)>,
    /// Next links without an offset, already requested (a cursor that comes round again).
    cursors: HashSet<String>,
}

impl Pager {
    /// Pages through `{base}/{collection}`, records under `key`, `page_size` a request,
    /// keeping to `filter` (a OneRoster filter expression) when given.
    pub fn new(
        base: &Url,
        collection: &'static str,
        key: &'static str,
        page_size: u32,
        filter: Option<String>,
    ) -> Self {
        let mut pager = Pager {
            base: base.clone(),
            collection,
            key,
            page_size: page_size.max(1),
            filter,
            max_pages: MAX_PAGES,
            next: Ok(None),
            offset: 0,
            pages: 0,
            largest: 0,
            previous: None,
            cursors: HashSet::new(),
        };
        pager.next = pager.url(0).map(|url| Some((url, 0)));
        pager
    }

    /// `GET {base}/{collection}?limit=N&offset=M[&filter=…]`.
    fn url(&self, offset: u64) -> Result<Url, PageError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| PageError::BaseUrl { offset })?
            .pop_if_empty()
            .push(self.collection);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("limit", &self.page_size.to_string())
                .append_pair("offset", &offset.to_string());
            if let Some(filter) = &self.filter {
                query.append_pair("filter", filter);
            }
        }
        Ok(url)
    }

    /// The next URL to GET, `None` when the collection is done, or why paging cannot go on.
    pub fn next_request(&mut self) -> Result<Option<Url>, PageError> {
        let next = std::mem::replace(&mut self.next, Ok(None))?;
        let Some((url, offset)) = next else {
            return Ok(None);
        };
        if self.pages >= self.max_pages {
            return Err(PageError::TooManyPages {
                offset,
                max: self.max_pages,
            });
        }
        self.pages += 1;
        self.offset = offset;
        Ok(Some(url))
    }

    /// The offset of the request last handed out (where a failed GET failed).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the answer to the last request: its records, and from it what to ask next.
    pub fn accept(&mut self, fetched: Fetched) -> Result<Page, PageError> {
        let offset = self.offset;
        let records = parse_page(&fetched.body, self.key, offset)?;
        self.next = self.follow(&fetched, &records, offset);
        Ok(Page { offset, records })
    }

    fn follow(
        &mut self,
        fetched: &Fetched,
        records: &[Json],
        offset: u64,
    ) -> Result<Option<(Url, u64)>, PageError> {
        let n = records.len();
        if n == 0 {
            return Ok(None);
        }
        let fingerprint = Fingerprint {
            len: n,
            first: records.first().and_then(sourced_id),
            last: records.last().and_then(sourced_id),
        };
        // One page equal to the one before can be a collection that shifted between two
        // requests; a third in a row is a provider that does not page.
        match &mut self.previous {
            Some((earlier, previous, repeats))
                if *previous == fingerprint && fingerprint.first.is_some() =>
            {
                *repeats += 1;
                if *repeats >= REPEATS_TOLERATED {
                    return Err(PageError::Repeated {
                        offset,
                        earlier: *earlier,
                    });
                }
            }
            _ => self.previous = Some((offset, fingerprint, 0)),
        }
        self.largest = self.largest.max(n);
        let following = offset + n as u64;
        let Some(link) = &fetched.next else {
            // A provider paging with links says where the last page is; one without is done
            // on a page shorter than the largest seen (it may cap `limit` silently).
            if fetched.pages_by_link || n < self.largest {
                return Ok(None);
            }
            return self.url(following).map(|url| Some((url, following)));
        };
        if link.origin() != self.base.origin() {
            return Err(PageError::LinkElsewhere {
                offset,
                host: link.host_str().unwrap_or("").to_string(),
            });
        }
        let linked = link
            .query_pairs()
            .find(|(name, _)| name == "offset")
            .and_then(|(_, value)| value.parse::<u64>().ok());
        match linked {
            Some(to) if to <= offset => Err(PageError::LinkBack { offset, to }),
            Some(to) => Ok(Some((link.clone(), to))),
            None => {
                if *link == fetched.url || !self.cursors.insert(link.to_string()) {
                    return Err(PageError::LinkRepeats { offset });
                }
                Ok(Some((link.clone(), following)))
            }
        }
    }
}

/// A record's sourcedId, when it has a plain one.
fn sourced_id(record: &Json) -> Option<String> {
    match record.get("sourcedId")? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The records of a collection page: the array under `key`, other top-level keys skipped
/// unread (1.1 servers add `statusInfoSet`, some vendors paging fields).
pub fn parse_page(body: &[u8], key: &'static str, offset: u64) -> Result<Vec<Json>, PageError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = Envelope { key }
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found))
        .map_err(|source| PageError::NotJson { offset, source })?;
    match found {
        Some(Json::Array(records)) => Ok(records),
        None => Err(PageError::NoKey { offset, key }),
        Some(other) => Err(PageError::NotArray {
            offset,
            key,
            found: match other {
                Json::Null => "null",
                Json::Bool(_) => "a boolean",
                Json::Number(_) => "a number",
                Json::String(_) => "a string",
                _ => "an object",
            },
        }),
    }
}

/// Reads the top-level object of a response, keeping only the value under `key`.
struct Envelope {
    key: &'static str,
}

impl<'de> DeserializeSeed<'de> for Envelope {
    type Value = Option<Json>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope {
    type Value = Option<Json>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a {} array", quoted(self.key))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name == self.key {
                found = Some(map.next_value::<Json>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
