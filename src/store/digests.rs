//! The digest each kind's input had when a run last applied it in bulk: what lets an import
//! whose file did not change carry that kind over without reading, staging or comparing it.

use std::collections::HashMap;

use super::{Db, StoreError, Tx};
use crate::args;
use crate::domain::records::{Mode, RecordKind};
use crate::domain::run::Plan;

/// The digests a district's live rows stand for, by kind. A kind without one was last changed by
/// a run that had none (a delta, a pull, a push, an approved run), or never.
pub async fn applied(db: &Db, district_id: i64) -> Result<HashMap<RecordKind, String>, StoreError> {
    let rows = db
        .conn()
        .text_rows(
            "SELECT kind, digest FROM applied_digests WHERE district_id = $1",
            &args![district_id],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let mut cells = row.into_iter();
            let kind = RecordKind::from_oneroster_name(cells.next()??.as_str())?;
            Some((kind, cells.next()??))
        })
        .collect())
}

/// Records, in the applying transaction, what each planned kind now stands for: the digest a
/// bulk kind was read with (`read`), unchanged for a carried kind, and nothing for a kind this
/// run changed without one.
pub async fn record_in(
    tx: &mut Tx,
    district_id: i64,
    run_id: &str,
    plan: &Plan,
    read: &HashMap<RecordKind, String>,
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
        if let Some(digest) = read.get(&planned.kind) {
            tx.execute(
                "INSERT INTO applied_digests (district_id, kind, digest, run_id) VALUES ($1, $2, $3, $4)",
                &args![district_id, kind, digest.as_str(), run_id],
            )
            .await?;
        }
    }
    Ok(())
}
