//! When something recurs: every so often, or daily at a wall-clock time in the district's time
//! zone. Written as text in the CLI, the API and the store: `every 6h`, `daily 02:30`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every this many seconds (at least 60).
    Every(u64),
    /// Once a day at this local time.
    DailyAt(NaiveTime),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a schedule: write \"every 30m\", \"every 6h\", \"every 7d\" or \"daily 02:30\""
)]
pub struct ScheduleError(pub String);

/// Shortest interval accepted: a source is not polled more than once a minute.
pub const MIN_INTERVAL_SECS: u64 = 60;

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = || ScheduleError(crate::domain::problem::shorten(text, 40));
        let mut words = text.split_whitespace();
        let (Some(word), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(fail());
        };
        match word.to_ascii_lowercase().as_str() {
            "every" => {
                let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(fail)?;
                let (number, unit) = value.split_at(split);
                let number: u64 = number.parse().map_err(|_| fail())?;
                let unit_secs = match unit {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    "w" => 7 * 86_400,
                    _ => return Err(fail()),
                };
                let secs = number.checked_mul(unit_secs).ok_or_else(fail)?;
                if secs < MIN_INTERVAL_SECS {
                    return Err(fail());
                }
                Ok(Schedule::Every(secs))
            }
            "daily" => NaiveTime::parse_from_str(value, "%H:%M")
                .map(Schedule::DailyAt)
                .map_err(|_| fail()),
            _ => Err(fail()),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(secs) => {
                let (n, unit) = [(7 * 86_400, "w"), (86_400, "d"), (3600, "h"), (60, "m")]
                    .into_iter()
                    .find(|(unit, _)| secs % unit == 0)
                    .map_or((*secs, "s"), |(unit, name)| (secs / unit, name));
                write!(f, "every {n}{unit}")
            }
            Schedule::DailyAt(time) => write!(f, "daily {}", time.format("%H:%M")),
        }
    }
}

impl Schedule {
    /// The latest time this schedule came due at or before `now`. Every replica computes the same
    /// slots: intervals count from the Unix epoch, daily times are read in the district's zone.
    pub fn latest_slot(&self, zone: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        self.latest_slot_spread(zone, now, 0)
    }

    /// As [`Schedule::latest_slot`], with interval slots shifted by `spread` seconds (modulo the
    /// interval): connections with the same interval then pull at different moments instead of
    /// all at once, each still on slots every replica computes alike. Daily times are kept.
    pub fn latest_slot_spread(&self, zone: Tz, now: DateTime<Utc>, spread: u64) -> DateTime<Utc> {
        match *self {
            Schedule::Every(secs) => {
                // A zero interval cannot come from text (parsing refuses it); read it as 1 s.
                let secs = i64::try_from(secs.max(1)).unwrap_or(i64::MAX);
                let phase = i64::try_from(spread % secs.unsigned_abs()).unwrap_or(0);
                let slot = (now.timestamp() - phase).div_euclid(secs) * secs + phase;
                DateTime::from_timestamp(slot, 0).unwrap_or(now)
            }
            Schedule::DailyAt(time) => {
                let today = now.with_timezone(&zone).date_naive();
                let slot = daily_slot(zone, today, time);
                if slot <= now {
                    slot
                } else {
                    today
                        .pred_opt()
                        .map_or(slot, |yesterday| daily_slot(zone, yesterday, time))
                }
            }
        }
    }
}

/// The instant `time` falls at on `date` in `zone`. A time the clocks skip (the hour lost when
/// daylight saving starts) runs as if they had not moved: 02:30 on that day is 03:30 daylight
/// time, 24 hours after the day before. A time the clocks repeat runs at its first occurrence.
pub fn daily_slot(zone: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    if let Some(first) = zone.from_local_datetime(&local).earliest() {
        return first.with_timezone(&Utc);
    }
    // In a gap: read the time with the offset in force before it (gaps are shorter than 3 h).
    for back in 1..=3 {
        let before = local - Duration::hours(back);
        if let Some(instant) = zone.from_local_datetime(&before).earliest() {
            return instant.with_timezone(&Utc) + Duration::hours(back);
        }
    }
    Utc.from_utc_datetime(&local)
}

/// Which pull a connection's schedules call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSlot {
    /// A full, reconciling pull rather than a delta.
    pub full: bool,
    /// The slot the pull stands for (the same on every replica).
    pub at: DateTime<Utc>,
}

/// The slots a connection's schedules make due at `now`, in the order to try them: the latest
/// full slot first (a full pull wins over a delta due with it), then the latest delta slot when
/// it is newer than the full one (an older delta is covered by the full pull). Only the latest
/// slot of each schedule is offered, so a gateway that was down catches up with one pull, not
/// one per missed slot. The caller enqueues the first slot that has not been enqueued before.
pub fn due_slots(
    delta: Option<Schedule>,
    full: Option<Schedule>,
    zone: Tz,
    now: DateTime<Utc>,
) -> Vec<DueSlot> {
    due_slots_spread(delta, full, zone, now, 0)
}

/// As [`due_slots`], interval slots shifted by `spread` (see [`Schedule::latest_slot_spread`]).
pub fn due_slots_spread(
    delta: Option<Schedule>,
    full: Option<Schedule>,
    zone: Tz,
    now: DateTime<Utc>,
    spread: u64,
) -> Vec<DueSlot> {
    let full_at = full.map(|s| s.latest_slot_spread(zone, now, spread));
    let delta_at = delta.map(|s| s.latest_slot_spread(zone, now, spread));
    let mut out = Vec::with_capacity(2);
    if let Some(at) = full_at {
        out.push(DueSlot { full: true, at });
    }
    if let Some(at) = delta_at.filter(|d| full_at.is_none_or(|f| *d > f)) {
        out.push(DueSlot { full: false, at });
    }
    out
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_and_print_the_same_way() {
        for (text, printed) in [
            ("every 30m", "every 30m"),
            ("every 6h", "every 6h"),
            ("EVERY 7d", "every 1w"),
            ("every 90s", "every 90s"),
            ("daily 02:30", "daily 02:30"),
        ] {
            let schedule: Schedule = text.parse().unwrap();
            assert_eq!(schedule.to_string(), printed, "{text}");
            assert_eq!(printed.parse::<Schedule>().unwrap(), schedule);
        }
        for bad in [
            "",
            "every",
            "every 10s",
            "every 5x",
            "daily 25:00",
            "hourly",
            "every 1h now",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad:?}");
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn daily(text: &str) -> Schedule {
        Schedule::DailyAt(NaiveTime::parse_from_str(text, "%H:%M").unwrap())
    }

    const NEW_YORK: Tz = chrono_tz::America::New_York;
    const UTC_ZONE: Tz = chrono_tz::UTC;

    #[test]
    fn interval_slots_count_from_the_epoch_whatever_the_zone() {
        let cases = [
            (
                Schedule::Every(3600),
                "2026-12-02T15:10:05Z",
                "2026-12-02T15:00:00Z",
            ),
            (
                Schedule::Every(3600),
                "2026-12-02T15:00:00Z",
                "2026-12-02T15:00:00Z",
            ),
            (
                Schedule::Every(3600),
                "2026-12-02T14:59:59Z",
                "2026-12-02T14:00:00Z",
            ),
            (
                Schedule::Every(6 * 3600),
                "2026-12-02T05:59:59Z",
                "2026-12-02T00:00:00Z",
            ),
            (
                Schedule::Every(90),
                "1970-01-01T00:01:40Z",
                "1970-01-01T00:01:30Z",
            ),
            (
                Schedule::Every(7 * 86_400),
                "2026-12-02T15:00:00Z",
                "2026-11-26T00:00:00Z",
            ),
        ];
        for (schedule, now, want) in cases {
            for zone in [NEW_YORK, chrono_tz::UTC, chrono_tz::Asia::Kolkata] {
                assert_eq!(
                    schedule.latest_slot(zone, at(now)),
                    at(want),
                    "{schedule} at {now}"
                );
            }
        }
    }

    #[test]
    fn daily_slots_are_read_in_the_district_zone_across_daylight_saving() {
        let cases = [
            // Winter (EST, UTC-5) and summer (EDT, UTC-4).
            ("02:30", "2026-01-15T12:00:00Z", "2026-01-15T07:30:00Z"),
            ("02:30", "2026-01-15T07:29:59Z", "2026-01-14T07:30:00Z"),
            ("02:30", "2026-07-15T12:00:00Z", "2026-07-15T06:30:00Z"),
            ("23:30", "2026-07-16T01:00:00Z", "2026-07-15T03:30:00Z"),
            ("23:30", "2026-07-16T03:30:00Z", "2026-07-16T03:30:00Z"),
            // 8 March 2026: 02:00 EST jumps to 03:00 EDT; 02:30 is read as 02:30 EST.
            ("02:30", "2026-03-08T07:15:00Z", "2026-03-07T07:30:00Z"),
            ("02:30", "2026-03-08T07:30:00Z", "2026-03-08T07:30:00Z"),
            ("02:30", "2026-03-09T06:29:00Z", "2026-03-08T07:30:00Z"),
            ("02:30", "2026-03-09T06:30:00Z", "2026-03-09T06:30:00Z"),
            ("03:00", "2026-03-08T07:00:00Z", "2026-03-08T07:00:00Z"),
            // 1 November 2026: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice and
            // runs at the first.
            ("01:30", "2026-11-01T05:30:00Z", "2026-11-01T05:30:00Z"),
            ("01:30", "2026-11-01T06:45:00Z", "2026-11-01T05:30:00Z"),
            ("01:30", "2026-11-02T06:29:00Z", "2026-11-01T05:30:00Z"),
            ("01:30", "2026-11-02T06:30:00Z", "2026-11-02T06:30:00Z"),
            ("02:30", "2026-11-01T07:30:00Z", "2026-11-01T07:30:00Z"),
        ];
        for (time, now, want) in cases {
            assert_eq!(
                daily(time).latest_slot(NEW_YORK, at(now)),
                at(want),
                "daily {time} at {now}"
            );
        }
    }

    #[test]
    fn a_daily_schedule_comes_due_once_a_day_through_both_clock_changes() {
        for (time, from) in [
            ("02:30", "2026-03-06T00:00:00Z"),
            ("02:00", "2026-03-06T00:00:00Z"),
            ("01:30", "2026-10-30T00:00:00Z"),
            ("01:00", "2026-10-30T00:00:00Z"),
        ] {
            let schedule = daily(time);
            let mut slots: Vec<DateTime<Utc>> = Vec::new();
            // Every minute for five days, as a scheduler ticking would see it.
            for minute in 0..5 * 24 * 60 {
                let now = at(from) + Duration::minutes(minute);
                let slot = schedule.latest_slot(NEW_YORK, now);
                assert!(slot <= now, "daily {time}: slot {slot} after {now}");
                if slots.last() != Some(&slot) {
                    slots.push(slot);
                }
            }
            // The slot before the window, then one per day.
            assert_eq!(slots.len(), 6, "daily {time}: {slots:?}");
            for pair in slots.windows(2) {
                let gap = pair[1] - pair[0];
                assert!(
                    (Duration::hours(23)..=Duration::hours(25)).contains(&gap),
                    "daily {time}: {slots:?}"
                );
            }
        }
    }

    #[test]
    fn full_pulls_win_and_a_long_outage_catches_up_with_one_slot() {
        let hourly = Some(Schedule::Every(3600));
        let weekly = Some(Schedule::Every(7 * 86_400));
        let slot = |full: bool, text: &str| DueSlot { full, at: at(text) };
        let cases = [
            // Down for three days with an hourly delta: one slot, the latest.
            (
                hourly,
                None,
                "2026-12-05T15:10:00Z",
                vec![slot(false, "2026-12-05T15:00:00Z")],
            ),
            // The weekly full came due at the same time as the delta: only the full.
            (
                hourly,
                weekly,
                "2026-11-26T00:30:00Z",
                vec![slot(true, "2026-11-26T00:00:00Z")],
            ),
            // A delta newer than the last full comes after it.
            (
                hourly,
                weekly,
                "2026-12-02T15:10:00Z",
                vec![
                    slot(true, "2026-11-26T00:00:00Z"),
                    slot(false, "2026-12-02T15:00:00Z"),
                ],
            ),
            (
                None,
                Some(daily("02:30")),
                "2026-01-15T12:00:00Z",
                vec![slot(true, "2026-01-15T07:30:00Z")],
            ),
            (None, None, "2026-01-15T12:00:00Z", vec![]),
        ];
        for (delta, full, now, want) in cases {
            assert_eq!(
                due_slots(delta, full, NEW_YORK, at(now)),
                want,
                "{delta:?} {full:?} at {now}"
            );
        }
    }

    #[test]
    fn spread_interval_slots_stay_an_interval_apart_and_shift_by_their_spread() {
        let every = Schedule::Every(3600);
        let now = at("2026-12-02T15:40:00Z");
        assert_eq!(
            every.latest_slot_spread(UTC_ZONE, now, 0),
            at("2026-12-02T15:00:00Z")
        );
        // (spread, latest slot at 15:40)
        for (spread, slot) in [
            (600, "2026-12-02T15:10:00Z"),
            (3000, "2026-12-02T14:50:00Z"),
            (3600 + 600, "2026-12-02T15:10:00Z"),
        ] {
            let latest = every.latest_slot_spread(UTC_ZONE, now, spread);
            assert_eq!(latest, at(slot), "{spread}");
            assert!(
                latest <= now && now - latest < Duration::hours(1),
                "{spread}"
            );
        }
        // Daily times are the district's, not spread.
        let daily = Schedule::DailyAt(NaiveTime::from_hms_opt(2, 30, 0).unwrap());
        assert_eq!(
            daily.latest_slot_spread(UTC_ZONE, now, 1234),
            daily.latest_slot(UTC_ZONE, now)
        );
    }
}
