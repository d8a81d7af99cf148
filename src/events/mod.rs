//! Events: what a learning platform can subscribe to about a district's roster.
//!
//! The closed list of event types is [`catalogue::EVENT_TYPES`]; nothing else is written to the
//! outbox. Each event is written in the transaction that makes its change, with a subject (what
//! it is about) and a thin `data` payload (ids and changed field names, never a person's details):
//!
//! - `class.created|updated|archived|removed`: subject the class sourcedId;
//! - `enrollment.added|removed`: subject the enrollment sourcedId;
//! - `coaching.added|removed`: subject `teacher/student` sourcedIds;
//! - `account.provisioned|linked|updated|roster_status_changed`: subject the account id;
//! - `sync_run.held|applied`: subject the run id.
//!
//! [`envelope::Envelope`] is the one wire shape of an event, for webhooks and the events API.
//! `contracts/events/<type>.schema.json` describes each type.

pub mod catalogue;
pub mod envelope;
pub mod signing;
pub mod subscriptions;
