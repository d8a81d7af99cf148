//! The black-box suite: the gateway through HTTP, its CLI and real processes, on SQLite and
//! PostgreSQL. One test binary: the crate is linked once, not once per file.

#[macro_use]
mod common;

mod accounts;
mod auth;
mod carried_over;
mod cli;
mod coaching_updates;
mod connections;
mod contract;
mod corrupt_data;
mod crash_recovery;
mod deliveries;
mod districts;
mod events;
mod generate;
mod gradebook_pulls;
mod health_and_errors;
mod import_limits;
mod imports;
mod inbound;
mod jobs;
mod learning_plans;
mod lti_launches;
mod lti_platform_pypi;
mod lti_platforms;
mod lti_registration;
mod lti_services;
mod metrics;
mod pull_jobs;
mod pulls;
mod push_secrets;
mod read_paths;
mod reimports;
mod roster_read;
mod runs;
mod score_pulls;
mod score_pushes;
mod startup;
mod subscriptions;
