//! Foreign formats and protocols. Each source parses or fetches and hands domain values to the
//! sync engine; none writes to the store.

pub mod lti_nrps;
pub mod oneroster;
pub mod scores;
