//! The one `filter` the gradebook understands, `dateLastModified>'<RFC 3339>'` (strictly
//! after), which is what an incremental pull sends. The provider's [`Filter`] reads typed
//! roster records and takes every operator, so a narrower parser stands here: anything else is
//! refused with a 400, as a SIS that supports only this filter answers.
//!
//! [`Filter`]: crate::synthetic::provider::Filter

use chrono::{DateTime, Utc};

/// Why a filter was refused; the server answers 400 with the imsx code minor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum FilterRefusal {
    #[error("filter field {0:?} is not supported; only dateLastModified is")]
    Field(String),
    #[error("filter {0:?} is not supported; only dateLastModified>'<RFC 3339 date-time>' is")]
    Form(String),
    #[error("{0:?} is not an RFC 3339 date-time")]
    Timestamp(String),
}

impl FilterRefusal {
    /// The imsx code minor, as the provider answers a refused filter.
    pub(super) fn code_minor(&self) -> &'static str {
        match self {
            FilterRefusal::Field(_) => "invalid_filter_field",
            _ => "invaliddata",
        }
    }
}

/// The instant records must have been modified after.
pub(super) fn modified_after(text: &str) -> Result<DateTime<Utc>, FilterRefusal> {
    let form = || FilterRefusal::Form(text.to_string());
    let trimmed = text.trim();
    let field_end = trimmed
        .find(|c: char| !c.is_ascii_alphanumeric())
        .ok_or_else(form)?;
    let (field, rest) = trimmed.split_at(field_end);
    if field != "dateLastModified" {
        return Err(FilterRefusal::Field(field.to_string()));
    }
    // `>` alone: `>=` leaves `=` before the quote and is refused below.
    let value = rest
        .trim_start()
        .strip_prefix('>')
        .map(str::trim_start)
        .and_then(|v| v.strip_prefix('\''))
        .and_then(|v| v.strip_suffix('\''))
        .filter(|v| !v.contains('\''))
        .ok_or_else(form)?;
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| FilterRefusal::Timestamp(value.to_string()))
}
