//! The digest each kind's input had when a run last applied it in bulk: what lets an import
//! whose file did not change carry that kind over without reading, staging or comparing it.

use std::collections::{BTreeMap, HashMap};

use super::{Db, StoreError, Tx};
use crate::args;
use crate::domain::records::{Mode, RecordKind};
use crate::domain::run::Plan;
use crate::domain::thresholds::KindCounts;

/// What a kind's live records were applied from in bulk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedDigest {
    pub digest: String,
    /// Records of the kind in effect since.
    pub records: u64,
}

/// The digests a district's live rows stand for, by kind. A kind without one was last changed by
/// a run that had none (a delta, a pull, a push, an approved run), or never.
pub async fn applied(
    db: &Db,
    district_id: i64,
) -> Result<HashMap<RecordKind, AppliedDigest>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        kind: String,
        digest: String,
        records: i64,
    }
    let rows: Vec<Row> = db
        .conn()
        .fetch_all(
            "SELECT kind, digest, records FROM applied_digests WHERE district_id = $1",
            &args![district_id],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let kind = RecordKind::from_oneroster_name(&row.kind)?;
            let applied = AppliedDigest {
                digest: row.digest,
                records: row.records.max(0) as u64,
            };
            Some((kind, applied))
        })
        .collect())
}

/// Records, in the applying transaction, what each planned kind now stands for: the digest a
/// bulk kind was read with (`read`) and its records in effect after the run (from `counts`, the
/// run's diff), unchanged for a carried kind, and nothing for a kind this run changed without one.
pub async fn record_in(
    tx: &mut Tx,
    district_id: i64,
    run_id: &str,
    plan: &Plan,
    (read, counts): (&HashMap<RecordKind, String>, &BTreeMap<String, KindCounts>),
) -> Result<(), StoreError> {
    for planned in plan.kinds.iter().filter(|p| !p.carried) {
        let kind = planned.kind.oneroster_name();
        tx.execute(
            "DELETE FROM applied_digests WHERE district_id = $1 AND kind = $2",
            &args![district_id, kind],
        )
        .await?;
        if planned.mode != Mode::Bulk {
            continue;
        }
        let (Some(digest), Some(c)) = (read.get(&planned.kind), counts.get(kind)) else {
            continue;
        };
        // A bulk file's records are exactly what is in effect after it.
        let records = (c.created + c.updated + c.unchanged) as i64;
        tx.execute(
            "INSERT INTO applied_digests (district_id, kind, digest, records, run_id) \
             VALUES ($1, $2, $3, $4, $5)",
            &args![district_id, kind, digest.as_str(), records, run_id],
        )
        .await?;
    }
    Ok(())
}
