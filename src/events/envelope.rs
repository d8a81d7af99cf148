//! What a subscriber receives for one event: the same JSON object whether it arrives as a
//! webhook body or is read from the events API. The `id` is the event's for life (it is also the
//! Standard Webhooks `webhook-id`), so a receiver that dedupes by it sees each event once.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::store::outbox::EventRow;

/// The prefix of every event id.
pub const EVENT_ID_PREFIX: &str = "evt_";

/// One event as it is sent: `{id, type, district, subject, occurred_at, run_id, data}`.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The district's slug.
    pub district: String,
    /// What the event is about (a class's sourcedId, an account id, `teacher/student` for a
    /// coaching pair, a run id); events about one subject are delivered in order.
    pub subject: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub occurred_at: DateTime<Utc>,
    /// The sync run that made the change.
    pub run_id: String,
    /// The thin payload: ids and changed fields; `{}` when the event carries none.
    pub data: Value,
}

/// The public id of the outbox row `seq`.
pub fn event_id(seq: i64) -> String {
    format!("{EVENT_ID_PREFIX}{seq}")
}

/// The outbox row an event id names, if it is one.
pub fn parse_event_id(id: &str) -> Option<i64> {
    let digits = id.strip_prefix(EVENT_ID_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

impl Envelope {
    pub fn of(row: &EventRow, district_slug: &str) -> Envelope {
        let data = row
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .unwrap_or_else(|| Value::Object(Default::default()));
        Envelope {
            id: event_id(row.id),
            event_type: row.event_type.clone(),
            district: district_slug.to_string(),
            subject: row.subject_id.clone(),
            occurred_at: row.created_at,
            run_id: row.run_id.clone(),
            data,
        }
    }

    /// The exact bytes that are signed and sent.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }
}

fn rfc3339_millis<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payload: Option<&str>) -> EventRow {
        EventRow {
            id: 42,
            run_id: "run-1".into(),
            event_type: "class.created".into(),
            subject_id: "class-1".into(),
            payload: payload.map(String::from),
            created_at: DateTime::parse_from_rfc3339("2026-09-01T08:00:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn an_envelope_carries_id_type_district_subject_time_and_data() {
        let body: Value = serde_json::from_slice(
            &Envelope::of(&row(Some(r#"{"title":"Math"}"#)), "lincoln").to_body(),
        )
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": "evt_42",
                "type": "class.created",
                "district": "lincoln",
                "subject": "class-1",
                "occurred_at": "2026-09-01T08:00:00.123Z",
                "run_id": "run-1",
                "data": {"title": "Math"},
            })
        );
    }

    #[test]
    fn an_event_without_payload_has_empty_data() {
        assert_eq!(Envelope::of(&row(None), "d").data, serde_json::json!({}));
    }

    #[test]
    fn event_ids_round_trip_and_nothing_else_parses() {
        assert_eq!(parse_event_id(&event_id(7)), Some(7));
        for bad in [
            "",
            "evt_",
            "evt_0",
            "evt_-1",
            "evt_1a",
            "7",
            "EVT_7",
            "evt_ 7",
            "evt_99999999999999999999",
        ] {
            assert_eq!(parse_event_id(bad), None, "{bad:?}");
        }
    }
}
