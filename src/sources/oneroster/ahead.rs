//! The digests of a bundle's bulk files, worked out on threads of their own as soon as the bundle
//! is open. An unchanged bundle is carried over whole, and hashing it is most of what such an
//! import does: started ahead, it runs while the importer connects to the database and finds the
//! district, instead of after; and on every core (up to [`MAX_HASHING_THREADS`]). A folder's file
//! larger than a chunk ([`digest::CHUNK_BYTES`]) is hashed a chunk at a time, so the largest file,
//! most of a bundle's bytes, is shared by every thread; a zip's files inflate only from their
//! start, so each is hashed whole, by one thread.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use super::bundle::Bundle;
use super::digest::{self, ChunkDigest, Salt, CHUNK_BYTES};
use super::{plan, salt};
use crate::config::ImportSettings;
use crate::domain::records::{Mode, RecordKind};
use crate::domain::run::PlannedKind;

/// Most threads hashing one bundle: four hash a bundle in the page cache at several GB/s, more
/// than most disks read one, and leave a server's other cores to the requests it is serving.
pub const MAX_HASHING_THREADS: usize = 4;

/// The bulk files' digests as they come. The threads take the work in turn: the files hashed
/// whole first, largest first (each may end last, so it starts at once), then the chunks.
/// Dropping it stops the hashing after the work at hand.
pub struct DigestsAhead {
    arriving: mpsc::Receiver<Arrival>,
    /// Files hashed in chunks whose chunks are not all in.
    pending: HashMap<RecordKind, Pending>,
    arrived: HashMap<RecordKind, Option<String>>,
    threads: usize,
}

/// A file hashed in chunks, as far as its chunks came in.
struct Pending {
    salt: Salt,
    chunks: Vec<Option<ChunkDigest>>,
    missing: usize,
}

/// What a thread hashed.
enum Arrival {
    /// A whole file's digest; `None` when it could not be read.
    File(RecordKind, Option<String>),
    /// One chunk's; `None` when it could not be read, which leaves the file without a digest.
    Chunk {
        kind: RecordKind,
        index: usize,
        digest: Option<ChunkDigest>,
    },
}

/// One thread's piece of the hashing.
enum Work {
    File(PlannedKind),
    Chunk {
        kind: RecordKind,
        /// Opened once for all its chunks: a file replaced while it is hashed (a new bundle
        /// written over the folder) is still hashed as the one file it was.
        file: Arc<File>,
        index: usize,
        len: u64,
        /// The file's last chunk, after which it must end.
        last: bool,
    },
}

impl Work {
    fn hash(&self, bundle: &Bundle, max_bytes: u64) -> Arrival {
        match self {
            Work::File(planned) => {
                let digest = bundle
                    .with_file(&planned.label, max_bytes, |r| {
                        digest::digest_of(r, salt(bundle, planned))
                    })
                    .ok();
                Arrival::File(planned.kind, digest)
            }
            Work::Chunk {
                kind,
                file,
                index,
                len,
                last,
            } => Arrival::Chunk {
                kind: *kind,
                index: *index,
                digest: hash_chunk(file, *index as u64 * CHUNK_BYTES, *len, *last).ok(),
            },
        }
    }
}

/// The SHA-256 of `len` bytes of `file` from `start`. The last chunk must end the file: one
/// that grew since its size was read has no digest, as a file read in part has none.
fn hash_chunk(file: &File, start: u64, len: u64, last: bool) -> io::Result<ChunkDigest> {
    let mut reader = ReadAt {
        file,
        offset: start,
    };
    let digest = digest::chunk_digest(&mut reader, len)?;
    if last && reader.read(&mut [0u8])? != 0 {
        return Err(io::Error::other("the file grew while it was hashed"));
    }
    Ok(digest)
}

/// Reads a file from an offset of its own, so that threads share one open file.
struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl DigestsAhead {
    /// Starts hashing every bulk file of `bundle` (a file that cannot be read has no digest:
    /// reading it later reports why).
    pub fn start(bundle: Arc<Bundle>, limits: &ImportSettings) -> Self {
        let (send, arriving) = mpsc::channel();
        let max_bytes = limits.max_file_bytes;
        let (work, pending) = Self::work(&bundle, max_bytes);
        let work = Arc::new(work);
        let next = Arc::new(AtomicUsize::new(0));
        let threads = Self::threads_for(work.len());
        for _ in 0..threads {
            let (bundle, work, next, send) =
                (bundle.clone(), work.clone(), next.clone(), send.clone());
            let hashing = move || {
                while let Some(piece) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if send.send(piece.hash(&bundle, max_bytes)).is_err() {
                        return;
                    }
                }
            };
            if let Err(e) = std::thread::Builder::new()
                .name("bundle-digests".into())
                .spawn(hashing)
            {
                // The work this thread would have done is taken by the others; without any
                // thread every digest reads as unknown: nothing is carried, all is read.
                tracing::warn!(error = %e, "could not start hashing the bundle ahead");
            }
        }
        DigestsAhead {
            arriving,
            pending,
            arrived: HashMap::new(),
            threads,
        }
    }

    /// The hashing to do, in the order it is taken, and the files hashed in chunks. A file is
    /// hashed in chunks when it is in a folder and opens, its size is within `max_bytes`, and it
    /// is larger than one chunk.
    fn work(bundle: &Bundle, max_bytes: u64) -> (Vec<Work>, HashMap<RecordKind, Pending>) {
        let mut whole = Vec::new();
        let mut chunks = Vec::new();
        let mut pending = HashMap::new();
        for planned in Self::largest_first(bundle) {
            let opened = bundle.file_path(&planned.label).and_then(|path| {
                let file = File::open(path).ok()?;
                Some((file.metadata().ok()?.len(), file))
            });
            let Some((bytes, file)) = opened else {
                whole.push(Work::File(planned));
                continue;
            };
            if bytes <= CHUNK_BYTES || bytes > max_bytes {
                whole.push(Work::File(planned));
                continue;
            }
            let count = bytes.div_ceil(CHUNK_BYTES) as usize;
            let file = Arc::new(file);
            for index in 0..count {
                let start = index as u64 * CHUNK_BYTES;
                chunks.push(Work::Chunk {
                    kind: planned.kind,
                    file: file.clone(),
                    index,
                    len: CHUNK_BYTES.min(bytes - start),
                    last: index + 1 == count,
                });
            }
            let pending_file = Pending {
                salt: salt(bundle, &planned),
                chunks: vec![None; count],
                missing: count,
            };
            pending.insert(planned.kind, pending_file);
        }
        whole.extend(chunks);
        (whole, pending)
    }

    /// The bundle's bulk files, largest first: a file whose size cannot be found out first of
    /// all (it may be the largest), equals in dependency order.
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

    /// The threads that do `pieces` pieces of hashing: one per core, at most one per piece.
    fn threads_for(pieces: usize) -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_HASHING_THREADS)
            .min(pieces)
    }

    /// The threads hashing this bundle.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The digest of `kind`'s file, waiting for it if it is still being hashed (blocking).
    /// `None` when the file is not a bulk file of the bundle or could not be read.
    pub fn get(&mut self, kind: RecordKind) -> Option<String> {
        while !self.arrived.contains_key(&kind) {
            match self.arriving.recv() {
                Ok(Arrival::File(arrived, digest)) => {
                    self.arrived.insert(arrived, digest);
                }
                Ok(Arrival::Chunk {
                    kind: arrived,
                    index,
                    digest,
                }) => self.chunk_arrived(arrived, index, digest),
                Err(mpsc::RecvError) => return None,
            }
        }
        self.arrived.get(&kind).cloned().flatten()
    }

    fn chunk_arrived(&mut self, kind: RecordKind, index: usize, digest: Option<ChunkDigest>) {
        // A file already settled (a chunk of it failed) takes no more chunks.
        let Some(file) = self.pending.get_mut(&kind) else {
            return;
        };
        let Some(digest) = digest else {
            self.pending.remove(&kind);
            self.arrived.insert(kind, None);
            return;
        };
        file.chunks[index] = Some(digest);
        file.missing -= 1;
        if file.missing == 0 {
            let file = self.pending.remove(&kind).expect("pending");
            let chunks: Vec<ChunkDigest> = file.chunks.into_iter().flatten().collect();
            self.arrived
                .insert(kind, Some(digest::combine(file.salt, &chunks)));
        }
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

    /// A bundle of orgs and users whose `users.csv` is two chunks and a few rows long, as a
    /// folder and as a zip of the same files.
    fn bundle_with_a_file_of_chunks(dir: &std::path::Path) -> (Arc<Bundle>, Arc<Bundle>) {
        use std::io::Write;
        let folder = dir.join("bundle");
        std::fs::create_dir(&folder).unwrap();
        let _ = bundle(&folder, "bulk");
        let mut users = String::from("sourcedId\n");
        let mut row = 0u64;
        while (users.len() as u64) < 2 * CHUNK_BYTES + 100 {
            users.push_str(&format!("user-{row}\n"));
            row += 1;
        }
        std::fs::write(folder.join("users.csv"), &users).unwrap();
        let zipped = dir.join("bundle.zip");
        let mut writer = zip::ZipWriter::new(File::create(&zipped).unwrap());
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for name in ["manifest.csv", "orgs.csv", "users.csv"] {
            writer.start_file(name, deflated).unwrap();
            writer
                .write_all(&std::fs::read(folder.join(name)).unwrap())
                .unwrap();
        }
        writer.finish().unwrap();
        let open = |path: &std::path::Path| {
            let mut log = ProblemLog::new(10);
            Arc::new(Bundle::open(path, &mut log).expect("the test bundle opens"))
        };
        (open(&folder), open(&zipped))
    }

    /// The pieces of hashing `bundle`: a file hashed whole by its kind, a chunk by its kind
    /// and place.
    fn pieces(bundle: &Bundle, max_bytes: u64) -> Vec<(RecordKind, Option<usize>)> {
        DigestsAhead::work(bundle, max_bytes)
            .0
            .iter()
            .map(|piece| match piece {
                Work::File(planned) => (planned.kind, None),
                Work::Chunk { kind, index, .. } => (*kind, Some(*index)),
            })
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
    fn a_folders_file_of_several_chunks_is_hashed_in_chunks_to_the_digest_of_it_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (folder, zipped) = bundle_with_a_file_of_chunks(dir.path());
        let whole = digest_read_now(&folder, RecordKind::Users);
        assert_eq!(whole, digest_read_now(&zipped, RecordKind::Users));
        assert_eq!(
            pieces(&folder, u64::MAX),
            [
                (RecordKind::Orgs, None),
                (RecordKind::Users, Some(0)),
                (RecordKind::Users, Some(1)),
                (RecordKind::Users, Some(2)),
            ],
            "the files hashed whole first, then the chunks in order"
        );
        assert_eq!(
            pieces(&zipped, u64::MAX),
            [(RecordKind::Users, None), (RecordKind::Orgs, None)],
            "a zip's files are hashed whole, largest first"
        );
        for bundle in [&folder, &zipped] {
            let mut ahead = DigestsAhead::start(bundle.clone(), &ImportSettings::default());
            assert_eq!(ahead.get(RecordKind::Users), Some(whole.clone()));
            assert_eq!(
                ahead.get(RecordKind::Orgs),
                Some(digest_read_now(bundle, RecordKind::Orgs))
            );
        }

        // Over the size limit, the file is not split: read whole, it stops at the limit.
        let bytes = folder.file_bytes("users.csv").unwrap();
        let limits = ImportSettings {
            max_file_bytes: bytes - 1,
            ..ImportSettings::default()
        };
        assert_eq!(pieces(&folder, limits.max_file_bytes).len(), 2);
        let mut ahead = DigestsAhead::start(folder, &limits);
        assert_eq!(ahead.get(RecordKind::Users), None);
    }

    #[test]
    fn a_file_replaced_while_its_chunks_are_hashed_is_hashed_as_the_file_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (folder, _) = bundle_with_a_file_of_chunks(dir.path());
        let before = digest_read_now(&folder, RecordKind::Users);
        let (work, mut pending) = DigestsAhead::work(&folder, u64::MAX);
        // Another bundle written over this one (a new file renamed into place) after the work
        // was planned and before any chunk was hashed.
        let path = folder.file_path("users.csv").unwrap();
        let users = std::fs::read_to_string(&path).unwrap();
        let replacement = dir.path().join("users.csv.new");
        std::fs::write(&replacement, users.replace("user-1\n", "user-X\n")).unwrap();
        std::fs::rename(&replacement, &path).unwrap();
        assert_ne!(digest_read_now(&folder, RecordKind::Users), before);

        let users_file = pending.remove(&RecordKind::Users).unwrap();
        let chunks: Vec<ChunkDigest> = work
            .iter()
            .filter_map(|piece| match piece.hash(&folder, u64::MAX) {
                Arrival::Chunk { digest, .. } => Some(digest.unwrap()),
                Arrival::File(..) => None,
            })
            .collect();
        assert_eq!(chunks.len(), users_file.chunks.len());
        assert_eq!(digest::combine(users_file.salt, &chunks), before);
    }

    #[test]
    fn a_chunk_of_a_file_that_changed_size_since_it_was_measured_has_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        std::fs::write(&path, "sourcedId\nu-1\nu-2\n").unwrap();
        let file = File::open(&path).unwrap();
        assert!(
            hash_chunk(&file, 10, 8, true).is_ok(),
            "the file's last 8 bytes"
        );
        assert!(
            hash_chunk(&file, 10, 4, false).is_ok(),
            "not its last chunk"
        );
        let grown = hash_chunk(&file, 10, 4, true).unwrap_err();
        assert!(grown.to_string().contains("grew"), "{grown}");
        let shrunk = hash_chunk(&file, 10, 12, true).unwrap_err();
        assert_eq!(shrunk.kind(), io::ErrorKind::UnexpectedEof);
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
