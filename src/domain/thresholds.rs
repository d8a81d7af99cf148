//! Safeguards: a sync that would delete or update too much of any record type is held.

use serde::Serialize;

use super::district::DistrictSettings;
use super::records::RecordKind;

/// What a sync would do to one record type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KindCounts {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
}

/// Why a sync is held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldReason {
    pub kind: RecordKind,
    pub change: &'static str,
    pub count: u64,
    pub of: u64,
    pub percent: f64,
    pub threshold_percent: f64,
}

impl HoldReason {
    pub fn message(&self) -> String {
        format!(
            "{}: {} of {} records would be {} ({:.1}% > {}%)",
            self.kind.oneroster_name(),
            self.count,
            self.of,
            self.change,
            self.percent,
            self.threshold_percent
        )
    }
}

/// Compares planned changes with the live record counts (`live` = active records before the sync).
pub fn hold_reasons(
    settings: &DistrictSettings,
    planned: &[(RecordKind, KindCounts, u64)],
) -> Vec<HoldReason> {
    let mut reasons = Vec::new();
    for &(kind, counts, live) in planned {
        if live == 0 {
            continue;
        }
        let checks = [
            ("deleted", counts.deleted, settings.delete_threshold_percent),
            ("updated", counts.updated, settings.update_threshold_percent),
        ];
        for (change, count, threshold) in checks {
            let percent = 100.0 * count as f64 / live as f64;
            if count >= settings.threshold_min_changes && percent > threshold {
                reasons.push(HoldReason {
                    kind,
                    change,
                    count,
                    of: live,
                    percent,
                    threshold_percent: threshold,
                });
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(updated: u64, deleted: u64) -> KindCounts {
        KindCounts {
            created: 0,
            updated,
            deleted,
            unchanged: 0,
        }
    }

    #[test]
    fn thresholds_hold_mass_deletions_and_mass_updates_only() {
        let s = DistrictSettings::default();
        let table = [
            // (updated, deleted, live, held?)
            (0, 10, 100, false), // exactly 10 % is allowed
            (0, 11, 100, true),
            (75, 0, 100, false),
            (76, 0, 100, true),
            (0, 4, 10, false), // below the minimum number of changes
            (0, 5, 10, true),
            (0, 0, 0, false), // first import: nothing to compare with
        ];
        for (updated, deleted, live, held) in table {
            let reasons = hold_reasons(&s, &[(RecordKind::Users, counts(updated, deleted), live)]);
            assert_eq!(
                !reasons.is_empty(),
                held,
                "updated={updated} deleted={deleted} live={live}"
            );
        }
    }

    #[test]
    fn hold_reasons_say_what_and_how_much() {
        let s = DistrictSettings::default();
        let reasons = hold_reasons(&s, &[(RecordKind::Enrollments, counts(0, 50), 100)]);
        assert_eq!(
            reasons[0].message(),
            "enrollments: 50 of 100 records would be deleted (50.0% > 10%)"
        );
    }
}
