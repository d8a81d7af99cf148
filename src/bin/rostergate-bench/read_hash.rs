//! The floors the import benchmark compares re-imports with, measured in this process with the
//! gateway's own code and no database: reading every declared file of a bundle and hashing its
//! bytes (what an unchanged import cannot avoid), and reading it into records (parse, check,
//! hash each record: what an import that stages a file does before the database).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use rostergate::config::ImportSettings;
use rostergate::domain::problem::ProblemLog;
use rostergate::domain::records::Mode;
use rostergate::sources::oneroster::{self, ahead::DigestsAhead, bundle::Bundle, digest};
use rostergate::sync::input::Feed;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReadMeasurement {
    /// Bytes of the declared files.
    pub bytes: u64,
    /// Reading and hashing them one after another (SHA-256, as the importer does); the median
    /// of [`FLOOR_RUNS`] passes.
    pub hash_seconds: f64,
    /// Reading and hashing them as the importer does ahead of an import, on its hashing
    /// threads (a folder's large files a chunk at a time); the median of [`FLOOR_RUNS`] passes.
    pub hash_threads_seconds: f64,
    /// The threads that hashed (as many as the machine's cores, at most one per piece).
    pub hash_threads: usize,
    /// Records read (every declared file).
    pub records: u64,
    /// Reading them into records.
    pub parse_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the bundle does not open: {0}")]
    Open(String),
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("the bundle has problems: {0}")]
    Problems(String),
}

/// Measures both floors for the bundle in `dir` (blocking).
pub fn measure(dir: &Path) -> Result<ReadMeasurement, ReadError> {
    let limits = ImportSettings::default();
    let mut log = ProblemLog::new(10);
    let bundle = Bundle::open(dir, &mut log)
        .ok_or_else(|| ReadError::Open(format!("{:?}", log.into_parts().0)))?;
    let plan = oneroster::plan(&bundle);

    let mut bytes = 0;
    let mut passes = Vec::new();
    for _ in 0..FLOOR_RUNS {
        let started = Instant::now();
        bytes = 0;
        for planned in &plan.kinds {
            let salt = digest::Salt {
                version: bundle.manifest.version,
                kind: planned.kind,
                mode: planned.mode,
            };
            bundle
                .with_file(&planned.label, limits.max_file_bytes, |r| {
                    let mut counted = Counted { inner: r, bytes: 0 };
                    digest::digest_of(&mut counted, salt)?;
                    bytes += counted.bytes;
                    Ok(())
                })
                .map_err(|source| ReadError::Io {
                    file: planned.label.clone(),
                    source,
                })?;
        }
        passes.push(started.elapsed().as_secs_f64());
    }
    let hash_seconds = median_by_seconds(&mut passes, |s| *s);

    let bundle = Arc::new(bundle);
    let bulk: Vec<_> = plan
        .kinds
        .iter()
        .filter(|p| p.mode == Mode::Bulk)
        .map(|p| p.kind)
        .collect();
    let mut passes = Vec::new();
    let mut hash_threads = 0;
    for _ in 0..FLOOR_RUNS {
        let started = Instant::now();
        let mut ahead = DigestsAhead::start(bundle.clone(), &limits);
        hash_threads = ahead.threads();
        for kind in &bulk {
            if ahead.get(*kind).is_none() {
                return Err(ReadError::Problems(format!(
                    "{} was not hashed",
                    kind.oneroster_name()
                )));
            }
        }
        passes.push(started.elapsed().as_secs_f64());
    }
    let hash_threads_seconds = median_by_seconds(&mut passes, |s| *s);

    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel(4);
    let consumer = std::thread::spawn(move || {
        let mut records = 0u64;
        while let Some(item) = rx.blocking_recv() {
            if let Feed::Records(_, chunk) = item {
                records += chunk.len() as u64;
            }
        }
        records
    });
    let problems = oneroster::produce(&bundle, &plan, &limits, tx, None);
    let records = consumer.join().expect("the counting thread does not panic");
    let parse_seconds = started.elapsed().as_secs_f64();
    if problems.has_errors() {
        return Err(ReadError::Problems(format!(
            "{:?}",
            problems.into_parts().0
        )));
    }
    Ok(ReadMeasurement {
        bytes,
        hash_seconds,
        hash_threads_seconds,
        hash_threads,
        records,
        parse_seconds,
    })
}

/// Passes each hashing floor is timed over: a pass takes tens of milliseconds, where one
/// pass's scheduling moves the time by more than the difference being measured.
pub const FLOOR_RUNS: usize = 5;

/// The middle one of `runs` by `seconds` (the upper middle for an even count).
pub(crate) fn median_by_seconds<T: Clone>(runs: &mut [T], seconds: impl Fn(&T) -> f64) -> T {
    runs.sort_by(|a, b| seconds(a).total_cmp(&seconds(b)));
    runs[runs.len() / 2].clone()
}

struct Counted<'a> {
    inner: &'a mut dyn std::io::Read,
    bytes: u64,
}

impl std::io::Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rostergate::synthetic::{write_bundle, SyntheticDistrict};

    #[test]
    fn the_median_is_the_middle_run_whatever_order_the_runs_came_in() {
        assert_eq!(
            median_by_seconds(&mut [0.3, 0.1, 0.9, 0.2, 0.5], |s| *s),
            0.3
        );
        assert_eq!(median_by_seconds(&mut [0.4, 0.1], |s| *s), 0.4);
        let mut runs = [("slow", 2.0), ("fast", 1.0), ("middle", 1.5)];
        assert_eq!(median_by_seconds(&mut runs, |r| r.1).0, "middle");
    }

    #[test]
    fn both_floors_read_every_declared_file_of_a_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let counts = write_bundle(
            &SyntheticDistrict {
                students: 300,
                seed: 3,
            },
            dir.path(),
        )
        .unwrap();
        let m = measure(dir.path()).unwrap();
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name() != "manifest.csv")
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(m.bytes, on_disk);
        assert!(m.records >= counts.users + counts.enrollments);
        assert!(m.hash_seconds > 0.0 && m.parse_seconds > 0.0);
        assert!(m.hash_threads_seconds > 0.0 && m.hash_threads >= 1);
    }
}
