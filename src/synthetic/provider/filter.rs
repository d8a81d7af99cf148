//! The `filter` query parameter (reference §5): one or two `field<op>'value'` clauses joined by
//! ` AND ` or ` OR `, on `sourcedId`, `status` and `dateLastModified`.

use chrono::{DateTime, Utc};

/// Why a filter was refused; the provider answers 400 with the imsx code minor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter field {0:?} is not supported")]
    UnknownField(String),
    #[error("filter {0:?} is not `field<op>'value'`")]
    Syntax(String),
    #[error("{0:?} is not an ISO 8601 date-time")]
    BadTimestamp(String),
}

impl FilterError {
    /// The imsx code minor a provider answers with.
    pub fn code_minor(&self) -> &'static str {
        match self {
            FilterError::UnknownField(_) => "invalid_filter_field",
            _ => "invaliddata",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
}

impl Op {
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
            Op::Gt => ordering == Greater,
            Op::Ge => ordering != Less,
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
            Op::Contains => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Clause {
    SourcedId(Op, String),
    Status(Op, String),
    Modified(Op, DateTime<Utc>),
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    clauses: Vec<Clause>,
    /// True for ` AND `, false for ` OR ` (irrelevant with one clause).
    all: bool,
}

/// What a filter looks at in a record.
pub(super) struct Fields<'a> {
    pub(super) sourced_id: &'a str,
    pub(super) status: &'a str,
    pub(super) modified: DateTime<Utc>,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let (parts, all) = if let Some((a, b)) = split_outside_quotes(text, " AND ") {
            (vec![a, b], true)
        } else if let Some((a, b)) = split_outside_quotes(text, " OR ") {
            (vec![a, b], false)
        } else {
            (vec![text], true)
        };
        let clauses = parts
            .into_iter()
            .map(|p| parse_clause(p.trim()))
            .collect::<Result<_, _>>()?;
        Ok(Filter { clauses, all })
    }

    pub(super) fn matches(&self, fields: &Fields<'_>) -> bool {
        let one = |clause: &Clause| match clause {
            Clause::SourcedId(Op::Contains, v) => fields.sourced_id.contains(v.as_str()),
            Clause::SourcedId(op, v) => op.holds(fields.sourced_id.cmp(v.as_str())),
            Clause::Status(Op::Contains, v) => fields.status.contains(v.as_str()),
            Clause::Status(op, v) => op.holds(fields.status.cmp(v.as_str())),
            Clause::Modified(op, t) => op.holds(fields.modified.cmp(t)),
        };
        if self.all {
            self.clauses.iter().all(one)
        } else {
            self.clauses.iter().any(one)
        }
    }
}

/// Splits at the first `sep` that is not inside a quoted value.
fn split_outside_quotes<'a>(text: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '\'' {
            quoted = !quoted;
        } else if !quoted && text[i..].starts_with(sep) {
            return Some((&text[..i], &text[i + sep.len()..]));
        }
    }
    None
}

fn parse_clause(text: &str) -> Result<Clause, FilterError> {
    let syntax = || FilterError::Syntax(text.to_string());
    let field_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
        .ok_or_else(syntax)?;
    let (field, rest) = text.split_at(field_end);
    let rest = rest.trim_start();
    let (op, rest) = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("~", Op::Contains),
    ]
    .into_iter()
    .find_map(|(token, op)| rest.strip_prefix(token).map(|r| (op, r.trim())))
    .ok_or_else(syntax)?;
    let value = rest
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .or_else(|| rest.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
        .ok_or_else(syntax)?
        .to_string();
    match field {
        "sourcedId" => Ok(Clause::SourcedId(op, value)),
        "status" => Ok(Clause::Status(op, value)),
        "dateLastModified" => {
            if op == Op::Contains {
                return Err(syntax());
            }
            let at = DateTime::parse_from_rfc3339(&value)
                .map_err(|_| FilterError::BadTimestamp(value.clone()))?;
            Ok(Clause::Modified(op, at.with_timezone(&Utc)))
        }
        "" => Err(syntax()),
        other => Err(FilterError::UnknownField(other.to_string())),
    }
}
