//! When something recurs: every so often, or daily at a wall-clock time in the district's time
//! zone. Written as text in the CLI, the API and the store: `every 6h`, `daily 02:30`.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveTime;
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
}
