//! What a bulk re-import reads of the live rows to stage only what differs: the district's records
//! of a kind as (sourcedId, hash), page by page; the removals of records its file no longer has,
//! staged from the live rows; and the staged rows that meet a live one.

use super::staging::active_predicate;
use super::tables::KindTables;
use super::{placeholders, Arg, Backend, Db, StoreError};
use crate::args;
use crate::domain::records::RecordKind;

/// The `line` of a removal the engine staged for a record absent from a bulk file: no line of
/// the file has it, and the removal is recorded as `absent_from_bulk`, not `tobedeleted`.
pub const ABSENT_LINE: i64 = -1;

/// Records per page when reading a kind's live records.
pub const PAGE: i64 = 50_000;

/// One page of a kind's live records, packed by the database into one string: a row per record
/// would cost more to decode than the database spends finding them.
#[derive(Debug, sqlx::FromRow)]
pub struct LivePage {
    /// `hash,length,sourcedId` per record, back to back (the length in characters, so that a
    /// sourcedId may hold any character).
    entries: Option<String>,
    /// The page's last sourcedId: where the next page starts.
    pub last: Option<String>,
    pub records: i64,
}

impl LivePage {
    /// Whether this is the last page.
    pub fn is_last(&self) -> bool {
        self.records < PAGE
    }

    /// The page's records as (sourcedId, hash).
    pub fn records(&self) -> Result<Vec<(&str, i64)>, StoreError> {
        let mut rest = self.entries.as_deref().unwrap_or("");
        let mut out = Vec::with_capacity(self.records as usize);
        let corrupt = || StoreError::Corrupt("a page of live records does not parse".into());
        while !rest.is_empty() {
            let (hash, after) = rest.split_once(',').ok_or_else(corrupt)?;
            let (chars, after) = after.split_once(',').ok_or_else(corrupt)?;
            let hash: i64 = hash.parse().map_err(|_| corrupt())?;
            let chars: usize = chars.parse().map_err(|_| corrupt())?;
            let end = after
                .char_indices()
                .nth(chars)
                .map_or(after.len(), |(at, _)| at);
            let (sourced_id, after) = after.split_at(end);
            if sourced_id.chars().count() != chars {
                return Err(corrupt());
            }
            out.push((sourced_id, hash));
            rest = after;
        }
        Ok(out)
    }
}

/// The district's records of `kind` in effect, in sourcedId order, after `after` (from the
/// start when `None`), at most [`PAGE`] of them.
pub async fn live_page(
    db: &Db,
    district_id: i64,
    kind: RecordKind,
    after: Option<&str>,
) -> Result<LivePage, StoreError> {
    let concat = match db.backend() {
        Backend::Sqlite => "group_concat(p.entry, '')",
        Backend::Postgres => "string_agg(p.entry, '')",
    };
    let sql = format!(
        "SELECT {concat} AS entries, MAX(p.sourced_id) AS last, COUNT(*) AS records FROM \
         (SELECT l.sourced_id, l.hash || ',' || length(l.sourced_id) || ',' || l.sourced_id AS entry \
          FROM {live} l WHERE l.district_id = $1 AND {active} AND l.sourced_id > $2 \
          ORDER BY l.sourced_id LIMIT $3) p",
        live = kind.table(),
        active = active_predicate(kind, "l"),
    );
    Ok(db
        .conn()
        .fetch_optional(&sql, &args![district_id, after.unwrap_or(""), PAGE])
        .await?
        .expect("an aggregate returns a row"))
}

/// Stages the removal of each of `ids` (records in effect that the run's file no longer has),
/// unless the run staged a row of that sourcedId: a copy of the live row, marked deleting, on
/// [`ABSENT_LINE`]. Returns how many were staged.
pub async fn stage_absent(
    db: &Db,
    run_id: &str,
    district_id: i64,
    kind: RecordKind,
    ids: &[&str],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let columns: Vec<&str> = kind.columns().iter().map(|c| c.name).collect();
    let copied = columns
        .iter()
        .map(|c| format!("l.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Both sides bounded by `ids`: the stage's statistics, taken before this run staged its
    // rows, could otherwise make PostgreSQL compare every candidate with every staged row.
    let sql = format!(
        "INSERT INTO {stage} (run_id, line, sourced_id, deleting, hash, {columns}, extra) \
         SELECT $1, {ABSENT_LINE}, l.sourced_id, TRUE, l.hash, {copied}, l.extra \
         FROM {live} l WHERE l.district_id = $2 AND {active} AND l.sourced_id IN ({list}) \
         AND l.sourced_id NOT IN (SELECT s.sourced_id FROM {stage} s WHERE s.run_id = $1 AND s.sourced_id IN ({list}))",
        stage = kind.stage_table(),
        live = kind.table(),
        columns = columns.join(", "),
        active = active_predicate(kind, "l"),
        list = placeholders(3, ids.len()),
    );
    let mut params: Vec<Arg> = args![run_id, district_id].into();
    params.extend(ids.iter().map(|id| Arg::Text(id.to_string())));
    db.conn().execute(&sql, &params).await
}

/// A staged row (not a removal) whose sourcedId the district holds in effect, with the live
/// row's hash.
#[derive(Debug, sqlx::FromRow)]
pub struct StagedOverLive {
    pub line: i64,
    pub sourced_id: String,
    pub live_hash: i64,
}

/// The run's staged rows of `kind` that meet a live row in effect, in sourcedId order, after
/// `after`, at most [`PAGE`] of them.
pub async fn staged_over_live(
    db: &Db,
    run_id: &str,
    district_id: i64,
    kind: RecordKind,
    after: Option<&str>,
) -> Result<Vec<StagedOverLive>, StoreError> {
    let sql = format!(
        "SELECT s.line, s.sourced_id, l.hash AS live_hash FROM {stage} s \
         JOIN {live} l ON l.district_id = $2 AND l.sourced_id = s.sourced_id AND {active} \
         WHERE s.run_id = $1 AND NOT s.deleting AND s.sourced_id > $3 \
         ORDER BY s.sourced_id, s.line LIMIT $4",
        stage = kind.stage_table(),
        live = kind.table(),
        active = active_predicate(kind, "l"),
    );
    db.conn()
        .fetch_all(&sql, &args![run_id, district_id, after.unwrap_or(""), PAGE])
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(entries: &str, records: i64) -> LivePage {
        LivePage {
            entries: (!entries.is_empty()).then(|| entries.to_string()),
            last: None,
            records,
        }
    }

    #[test]
    fn a_page_unpacks_sourced_ids_holding_any_character() {
        let packed = "-7,3,e,15,2,ü\u{1F600}12,4,a,b\n";
        assert_eq!(
            page(packed, 3).records().unwrap(),
            vec![("e,1", -7), ("ü\u{1F600}", 5), ("a,b\n", 12)]
        );
        assert_eq!(page("", 0).records().unwrap(), vec![]);
    }

    #[test]
    fn a_garbled_page_is_an_error_not_a_guess() {
        for garbled in ["x,1,a", "1,9,a", "1,a", "1,1"] {
            assert!(page(garbled, 1).records().is_err(), "{garbled}");
        }
    }
}
