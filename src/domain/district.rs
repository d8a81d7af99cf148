//! Districts: the tenants. Every record belongs to exactly one.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::account::{default_identity_keys, IdentityKey};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DistrictError {
    #[error("slug must be 2-63 characters of a-z, 0-9 and '-', starting with a letter: {0:?}")]
    BadSlug(String),
    #[error("name must be 1-200 characters")]
    BadName,
    #[error("unknown time zone {0:?}: use an IANA name such as America/Chicago")]
    BadTimezone(String),
    #[error("{0} must be a percentage between 0 and 100")]
    BadPercent(&'static str),
    #[error("identity_keys lists {0:?} twice")]
    DuplicateIdentityKey(IdentityKey),
    #[error("score_student_key must be identifier, sourcedId or userIds:TYPE (TYPE of a-z, 0-9, '-', '_', '.'), not {0:?}")]
    BadScoreStudentKey(String),
}

/// A district's handle in URLs and on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, DistrictError> {
        let ok = (2..=63).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !raw.ends_with('-');
        if ok {
            Ok(Slug(raw.to_string()))
        } else {
            Err(DistrictError::BadSlug(raw.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DistrictName(String);

impl DistrictName {
    pub fn parse(raw: &str) -> Result<DistrictName, DistrictError> {
        let trimmed = raw.trim();
        if trimmed.is_empty()
            || trimmed.chars().count() > 200
            || trimmed.chars().any(char::is_control)
        {
            return Err(DistrictError::BadName);
        }
        Ok(DistrictName(trimmed.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone: term dates and "today" are computed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timezone(chrono_tz::Tz);

impl Timezone {
    pub fn parse(raw: &str) -> Result<Timezone, DistrictError> {
        raw.parse::<chrono_tz::Tz>()
            .map(Timezone)
            .map_err(|_| DistrictError::BadTimezone(raw.to_string()))
    }
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
    pub fn zone(&self) -> chrono_tz::Tz {
        self.0
    }
    /// The calendar date it is now in this zone.
    pub fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now().with_timezone(&self.0).date_naive()
    }
}

impl Serialize for Timezone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What a district agreed to about how syncs are applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistrictSettings {
    /// A sync deleting more than this share of any record type is held for review.
    pub delete_threshold_percent: f64,
    /// A sync updating more than this share of any record type is held for review.
    pub update_threshold_percent: f64,
    /// Fewer changes than this never trip a threshold (deleting 2 of 5 classes is no mass deletion).
    pub threshold_min_changes: u64,
    /// Preview mode: every sync waits for an administrator.
    pub review_every_sync: bool,
    /// OneRoster end dates are exclusive, but most SIS mean "last day, inclusive". True reads
    /// them as inclusive.
    pub end_date_inclusive: bool,
    /// Identity matching keys, tried in this order when a user enters the roster.
    #[serde(default = "default_identity_keys")]
    pub identity_keys: Vec<IdentityKey>,
    /// Which user field an assessment result's student id (MAP's `StudentID`) is matched on.
    pub score_student_key: ScoreStudentKey,
}

/// The user field assessment results name students by. A result that names a sourcedId (a push
/// may) is matched on it whatever this says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScoreStudentKey {
    /// The OneRoster `identifier`: the SIS student number MAP exports carry as `StudentID`.
    #[default]
    Identifier,
    /// The OneRoster `sourcedId`.
    SourcedId,
    /// The `userIds` entry of this type (`{MAP:12345}` → `userIds:MAP`).
    UserId(String),
}

impl ScoreStudentKey {
    pub fn parse(raw: &str) -> Result<ScoreStudentKey, DistrictError> {
        match raw {
            "identifier" => Ok(ScoreStudentKey::Identifier),
            "sourcedId" => Ok(ScoreStudentKey::SourcedId),
            _ => match raw.strip_prefix("userIds:") {
                Some(t)
                    if (1..=64).contains(&t.len())
                        && t.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
                {
                    Ok(ScoreStudentKey::UserId(t.to_string()))
                }
                _ => Err(DistrictError::BadScoreStudentKey(raw.to_string())),
            },
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            ScoreStudentKey::Identifier => "identifier".into(),
            ScoreStudentKey::SourcedId => "sourcedId".into(),
            ScoreStudentKey::UserId(t) => format!("userIds:{t}"),
        }
    }
}

impl Serialize for ScoreStudentKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for ScoreStudentKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ScoreStudentKey::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl DistrictSettings {
    /// Thresholds are percentages; anything else would silently hold or pass every sync.
    pub fn validate(self) -> Result<DistrictSettings, DistrictError> {
        for (name, value) in [
            ("delete_threshold_percent", self.delete_threshold_percent),
            ("update_threshold_percent", self.update_threshold_percent),
        ] {
            if !(0.0..=100.0).contains(&value) {
                return Err(DistrictError::BadPercent(name));
            }
        }
        for (i, key) in self.identity_keys.iter().enumerate() {
            if self.identity_keys[..i].contains(key) {
                return Err(DistrictError::DuplicateIdentityKey(*key));
            }
        }
        Ok(self)
    }
}

impl Default for DistrictSettings {
    fn default() -> Self {
        DistrictSettings {
            delete_threshold_percent: 10.0,
            update_threshold_percent: 75.0,
            threshold_min_changes: 5,
            review_every_sync: false,
            end_date_inclusive: true,
            identity_keys: default_identity_keys(),
            score_student_key: ScoreStudentKey::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct District {
    #[serde(skip)]
    pub id: i64,
    pub slug: Slug,
    pub name: DistrictName,
    pub timezone: Timezone,
    pub settings: DistrictSettings,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Bumped by every applied sync: the roster as read now is the one of this version.
    #[serde(skip)]
    pub roster_version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_url_safe_handles() {
        for ok in ["lincoln", "grand-bend-isd", "d2"] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Lincoln",
            "2lincoln",
            "lin coln",
            "lincoln-",
            "l/../x",
            &"a".repeat(64),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_must_be_iana_names() {
        assert_eq!(
            Timezone::parse("America/Chicago").unwrap().name(),
            "America/Chicago"
        );
        assert!(Timezone::parse("Central Time").is_err());
        assert!(Timezone::parse("").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            DistrictName::parse("  Lincoln Unified ").unwrap().as_str(),
            "Lincoln Unified"
        );
        assert!(DistrictName::parse("   ").is_err());
        assert!(DistrictName::parse(&"x".repeat(201)).is_err());
        assert!(DistrictName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn settings_default_to_the_documented_thresholds() {
        let s = DistrictSettings::default();
        assert_eq!(s.delete_threshold_percent, 10.0);
        assert_eq!(s.update_threshold_percent, 75.0);
        let parsed: DistrictSettings =
            serde_json::from_str(r#"{"review_every_sync":true}"#).unwrap();
        assert!(parsed.review_every_sync);
        assert!(serde_json::from_str::<DistrictSettings>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn identity_keys_default_to_sis_id_then_email_and_are_validated() {
        let s: DistrictSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s.identity_keys, [IdentityKey::SisId, IdentityKey::Email]);
        let only_sis: DistrictSettings =
            serde_json::from_str(r#"{"identity_keys":["sis_id"]}"#).unwrap();
        assert_eq!(only_sis.identity_keys, [IdentityKey::SisId]);
        assert!(serde_json::from_str::<DistrictSettings>(r#"{"identity_keys":["ssn"]}"#).is_err());
        let twice: DistrictSettings =
            serde_json::from_str(r#"{"identity_keys":["email","email"]}"#).unwrap();
        assert_eq!(
            twice.validate(),
            Err(DistrictError::DuplicateIdentityKey(IdentityKey::Email))
        );
    }
}
