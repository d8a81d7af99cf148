//! The digests of a bundle's bulk files, worked out on threads of their own as soon as the bundle
//! is open. An unchanged bundle is carried over whole, and hashing it is most of what such an
//! import does: started ahead, it runs while the importer connects to the database and finds the
//! district, instead of after; and on as many cores as there are files to hash (up to
//! [`MAX_HASHING_THREADS`]), since one file's SHA-256 cannot be split.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use super::bundle::Bundle;
use super::{digest, plan, salt};
use crate::config::ImportSettings;
use crate::domain::records::{Mode, RecordKind};
use crate::domain::run::PlannedKind;

/// Most threads hashing one bundle. A bundle's bytes are mostly in two files (enrollments, then
/// users), so more threads rarely find work.
pub const MAX_HASHING_THREADS: usize = 4;

/// The bulk files' digests as they come. Each thread takes the largest file not yet taken: the
/// hashing ends when its largest file does (enrollments, most of a bundle's bytes), so that one
/// starts at once, and the smaller ones share the other threads. Dropping it stops the hashing
/// after the files at hand.
pub struct DigestsAhead {
    arriving: mpsc::Receiver<(RecordKind, Option<String>)>,
    arrived: HashMap<RecordKind, Option<String>>,
}

impl DigestsAhead {
    /// Starts hashing every bulk file of `bundle` (a file that cannot be read has no digest:
    /// reading it later reports why).
    pub fn start(bundle: Arc<Bundle>, limits: &ImportSettings) -> Self {
        let (send, arriving) = mpsc::channel();
        let files = Arc::new(Self::largest_first(&bundle));
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..Self::threads_for(files.len()) {
            let (bundle, files, next, send) =
                (bundle.clone(), files.clone(), next.clone(), send.clone());
            let max_bytes = limits.max_file_bytes;
            let hashing = move || {
                while let Some(planned) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let digest = bundle
                        .with_file(&planned.label, max_bytes, |r| {
                            digest::digest_of(r, salt(&bundle, planned))
                        })
                        .ok();
                    if send.send((planned.kind, digest)).is_err() {
                        return;
                    }
                }
            };
            if let Err(e) = std::thread::Builder::new()
                .name("bundle-digests".into())
                .spawn(hashing)
            {
                // The files this thread would have hashed are taken by the others; without any
                // thread every digest reads as unknown: nothing is carried, all is read.
                tracing::warn!(error = %e, "could not start hashing the bundle ahead");
            }
        }
        DigestsAhead {
            arriving,
            arrived: HashMap::new(),
        }
    }

    /// The bundle's bulk files in the order they are hashed: largest first, a file whose size
    /// cannot be found out first of all (it may be the largest), equals in dependency order.
    fn largest_first(bundle: &Bundle) -> Vec<PlannedKind> {
        let mut files: Vec<(Option<u64>, PlannedKind)> = plan(bundle)
            .kinds
            .into_iter()
            .filter(|p| p.mode == Mode::Bulk)
            .map(|p| (bundle.file_bytes(&p.label), p))
            .collect();
        files.sort_by_key(|(bytes, _)| std::cmp::Reverse(bytes.unwrap_or(u64::MAX)));
        files.into_iter().map(|(_, p)| p).collect()
    }

    /// The threads that hash `files` bulk files: one per core, at most one per file.
    pub fn threads_for(files: usize) -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_HASHING_THREADS)
            .min(files)
    }

    /// The digest of `kind`'s file, waiting for it if it is still being hashed (blocking).
    /// `None` when the file is not a bulk file of the bundle or could not be read.
    pub fn get(&mut self, kind: RecordKind) -> Option<String> {
        while !self.arrived.contains_key(&kind) {
            match self.arriving.recv() {
                Ok((arrived, digest)) => {
                    self.arrived.insert(arrived, digest);
                }
                Err(mpsc::RecvError) => return None,
            }
        }
        self.arrived.get(&kind).cloned().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::problem::ProblemLog;

    fn bundle(dir: &std::path::Path, users_mode: &str) -> Arc<Bundle> {
        std::fs::write(
            dir.join("manifest.csv"),
            format!(
                "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\n\
                 file.orgs,bulk\nfile.users,{users_mode}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("orgs.csv"),
            "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
             org-1,,,Lincoln,district,,\n",
        )
        .unwrap();
        std::fs::write(dir.join("users.csv"), "sourcedId\nu-1\n").unwrap();
        let mut log = ProblemLog::new(10);
        Arc::new(Bundle::open(dir, &mut log).expect("the test bundle opens"))
    }

    /// A synthetic district's bundle, written into `dir`.
    fn synthetic_bundle(dir: &std::path::Path) -> Bundle {
        let district = crate::synthetic::SyntheticDistrict {
            students: 200,
            seed: 5,
        };
        crate::synthetic::write_bundle(&district, dir).unwrap();
        let mut log = ProblemLog::new(10);
        Bundle::open(dir, &mut log).expect("a synthetic bundle opens")
    }

    fn hashing_order(bundle: &Bundle) -> Vec<RecordKind> {
        DigestsAhead::largest_first(bundle)
            .iter()
            .map(|p| p.kind)
            .collect()
    }

    fn digest_read_now(bundle: &Bundle, kind: RecordKind) -> String {
        let planned = plan(bundle)
            .kinds
            .into_iter()
            .find(|p| p.kind == kind)
            .unwrap();
        bundle
            .with_file(&planned.label, u64::MAX, |r| {
                digest::digest_of(r, salt(bundle, &planned))
            })
            .unwrap()
    }

    #[test]
    fn digests_ahead_are_those_of_the_files_read_then_in_any_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = bundle(dir.path(), "bulk");
        let mut ahead = DigestsAhead::start(bundle.clone(), &ImportSettings::default());
        assert_eq!(
            ahead.get(RecordKind::Users),
            Some(digest_read_now(&bundle, RecordKind::Users))
        );
        assert_eq!(
            ahead.get(RecordKind::Orgs),
            Some(digest_read_now(&bundle, RecordKind::Orgs))
        );
        assert_eq!(ahead.get(RecordKind::Classes), None, "not in the bundle");
    }

    #[test]
    fn every_file_of_a_bundle_is_hashed_once_whatever_the_threads_hashing_it() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = Arc::new(synthetic_bundle(dir.path()));
        let kinds: Vec<RecordKind> = plan(&bundle).kinds.iter().map(|p| p.kind).collect();
        assert!(kinds.len() >= 6, "{kinds:?}");
        let mut ahead = DigestsAhead::start(bundle.clone(), &ImportSettings::default());
        // Asked last file first: every digest arrives, whichever thread hashed it.
        for kind in kinds.iter().rev() {
            assert_eq!(
                ahead.get(*kind),
                Some(digest_read_now(&bundle, *kind)),
                "{kind:?}"
            );
        }
        assert!(DigestsAhead::threads_for(kinds.len()) <= MAX_HASHING_THREADS);
        assert_eq!(DigestsAhead::threads_for(1), 1);
    }

    #[test]
    fn the_largest_file_is_hashed_first_and_files_of_one_size_in_dependency_order() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = synthetic_bundle(dir.path());
        let order = hashing_order(&bundle);
        assert_eq!(order[..2], [RecordKind::Enrollments, RecordKind::Users]);
        assert_eq!(order.len(), plan(&bundle).kinds.len());

        // Two files of one size keep their dependency order.
        let dir = tempfile::tempdir().unwrap();
        let bundle = self::bundle(dir.path(), "bulk");
        std::fs::write(dir.path().join("orgs.csv"), "0123456789").unwrap();
        std::fs::write(dir.path().join("users.csv"), "9876543210").unwrap();
        assert_eq!(
            hashing_order(&bundle),
            [RecordKind::Orgs, RecordKind::Users]
        );
        std::fs::write(dir.path().join("orgs.csv"), "0").unwrap();
        assert_eq!(
            hashing_order(&bundle),
            [RecordKind::Users, RecordKind::Orgs]
        );
    }

    #[test]
    fn a_delta_file_and_a_file_over_the_size_limit_have_no_digest_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = bundle(dir.path(), "delta");
        let mut ahead = DigestsAhead::start(bundle.clone(), &ImportSettings::default());
        assert_eq!(
            ahead.get(RecordKind::Users),
            None,
            "a delta is never carried"
        );
        assert!(ahead.get(RecordKind::Orgs).is_some());

        let limits = ImportSettings {
            max_file_bytes: 8,
            ..ImportSettings::default()
        };
        let mut ahead = DigestsAhead::start(bundle, &limits);
        assert_eq!(ahead.get(RecordKind::Orgs), None, "read only in part");
    }
}
