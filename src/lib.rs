//! rostergate: a rostering integration gateway.
//!
//! Roster data arrives from many sources (OneRoster CSV bundles first), goes through one sync
//! engine (stage → validate → diff → guard → apply) and is served back through a district-scoped
//! read API. See `README.md` and `docs/` for the picture.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod events;
pub mod http;
pub mod imports;
pub mod inbound;
pub mod jobs;
pub mod lti;
pub mod outbound;
pub mod pulls;
pub mod scores;
pub mod sources;
pub mod startup;
pub mod store;
pub mod sync;
pub mod synthetic;
pub mod telemetry;
