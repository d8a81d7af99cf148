//! The digest of a bundle file: SHA-256 over its bytes in chunks of [`CHUNK_BYTES`], salted with
//! what decides how those bytes are read (the gateway's version, the bundle's OneRoster version,
//! the kind and its mode), so that an upgrade or a changed manifest never carries a kind over.
//!
//! The digest is SHA-256 over the salt, then the SHA-256 of each chunk in order. Chunks of one
//! file can be hashed on several threads at once ([`chunk_digest`], [`combine`]); read as one
//! stream ([`HashingReader`], [`digest_of`]) the same bytes give the same digest. A bundle's
//! bytes are mostly one file (enrollments), so without chunks hashing it could use one core.

use std::io::{self, Read};

use aws_lc_rs::digest::{Context, SHA256, SHA256_OUTPUT_LEN};

use super::columns::Version;
use crate::domain::records::{Mode, RecordKind};

/// Bytes of a file hashed on their own: small enough that a bundle's largest file is shared by
/// every hashing thread (with two, they end at most a chunk apart: about a millisecond), large
/// enough that combining the chunks' digests costs nothing measurable. Part of every digest:
/// changing it makes every file look changed once.
pub const CHUNK_BYTES: u64 = 2 << 20;

/// The SHA-256 of one chunk.
pub type ChunkDigest = [u8; SHA256_OUTPUT_LEN];

/// What a file's bytes are read as.
#[derive(Debug, Clone, Copy)]
pub struct Salt {
    pub version: Version,
    pub kind: RecordKind,
    pub mode: Mode,
}

fn context(salt: Salt) -> Context {
    let mut ctx = Context::new(&SHA256);
    let header = format!(
        "rostergate {} oneroster-csv {:?} {} {:?} sha256-chunks {CHUNK_BYTES}\n",
        env!("CARGO_PKG_VERSION"),
        salt.version,
        salt.kind.oneroster_name(),
        salt.mode
    );
    ctx.update(header.as_bytes());
    ctx
}

/// A file's digest from its chunks' digests, in the file's order (none for an empty file).
pub fn combine(salt: Salt, chunks: &[ChunkDigest]) -> String {
    let mut ctx = context(salt);
    for chunk in chunks {
        ctx.update(chunk);
    }
    hex::encode(ctx.finish().as_ref())
}

/// Hashes bytes as they come, a chunk at a time.
struct ChunkedHash {
    file: Context,
    chunk: Context,
    in_chunk: u64,
}

impl ChunkedHash {
    fn new(salt: Salt) -> Self {
        ChunkedHash {
            file: context(salt),
            chunk: Context::new(&SHA256),
            in_chunk: 0,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = (CHUNK_BYTES - self.in_chunk) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.chunk.update(now);
            self.in_chunk += now.len() as u64;
            if self.in_chunk == CHUNK_BYTES {
                self.end_chunk();
            }
            bytes = rest;
        }
    }

    fn end_chunk(&mut self) {
        let chunk = std::mem::replace(&mut self.chunk, Context::new(&SHA256));
        self.file.update(chunk.finish().as_ref());
        self.in_chunk = 0;
    }

    fn finish(mut self) -> String {
        if self.in_chunk > 0 {
            self.end_chunk();
        }
        hex::encode(self.file.finish().as_ref())
    }
}

/// Hashes everything read through it; [`HashingReader::digest`] is only given once the inner
/// reader reached its end, so a file read in part never stands for the whole.
pub struct HashingReader<R> {
    inner: R,
    hash: ChunkedHash,
    at_end: bool,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, salt: Salt) -> Self {
        HashingReader {
            inner,
            hash: ChunkedHash::new(salt),
            at_end: false,
        }
    }

    /// The digest, if every byte was read.
    pub fn digest(self) -> Option<String> {
        self.at_end.then(|| self.hash.finish())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.at_end = true;
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Bytes read at a time when a file is only hashed: as large as the bundle's read buffer, so
/// each read goes from the file straight into this one (a smaller one would be filled by
/// copying out of the read buffer, a copy of every byte).
const HASH_READ_BYTES: usize = super::bundle::READ_BUFFER_BYTES;

/// Reads `reader` to its end and returns its digest.
pub fn digest_of(reader: &mut dyn Read, salt: Salt) -> io::Result<String> {
    let mut hashing = HashingReader::new(reader, salt);
    let mut buf = vec![0; HASH_READ_BYTES];
    loop {
        match hashing.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hashing.digest().expect("read to the end"))
}

/// Reads exactly `len` bytes of `reader` (a chunk of a file, [`CHUNK_BYTES`] but for the last)
/// and returns their SHA-256. A reader that ends sooner (the file shrank) is an error.
pub fn chunk_digest(reader: &mut dyn Read, len: u64) -> io::Result<ChunkDigest> {
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0; HASH_READ_BYTES.min(len as usize)];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(left as usize);
        match reader.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended sooner than its size said",
                ))
            }
            Ok(n) => {
                ctx.update(&buf[..n]);
                left -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut digest = [0; SHA256_OUTPUT_LEN];
    digest.copy_from_slice(ctx.finish().as_ref());
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: Salt = Salt {
        version: Version::V1_1,
        kind: RecordKind::Users,
        mode: Mode::Bulk,
    };

    #[test]
    fn the_same_bytes_read_the_same_way_have_the_same_digest() {
        let a = digest_of(&mut &b"sourcedId,x\nu1,a\n"[..], SALT).unwrap();
        assert_eq!(
            a,
            digest_of(&mut &b"sourcedId,x\nu1,a\n"[..], SALT).unwrap()
        );
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            digest_of(&mut &b"sourcedId,x\nu1,b\n"[..], SALT).unwrap()
        );
    }

    #[test]
    fn the_same_bytes_read_as_another_version_kind_or_mode_differ() {
        let bytes = b"sourcedId\nx1\n";
        let base = digest_of(&mut &bytes[..], SALT).unwrap();
        for other in [
            Salt {
                version: Version::V1_2,
                ..SALT
            },
            Salt {
                kind: RecordKind::Orgs,
                ..SALT
            },
            Salt {
                mode: Mode::Delta,
                ..SALT
            },
        ] {
            assert_ne!(
                base,
                digest_of(&mut &bytes[..], other).unwrap(),
                "{other:?}"
            );
        }
    }

    /// `len` bytes that differ from chunk to chunk (a chunk repeated would hide a mix-up): 251
    /// is prime, so no two chunks start at one place of the pattern.
    fn bytes(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_file_hashed_in_chunks_apart_has_the_digest_of_the_file_read_whole() {
        for len in [
            0,
            1,
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            CHUNK_BYTES + 1,
            2 * CHUNK_BYTES + 5,
        ] {
            let file = bytes(len);
            let chunks: Vec<ChunkDigest> = file
                .chunks(CHUNK_BYTES as usize)
                .map(|chunk| chunk_digest(&mut &chunk[..], chunk.len() as u64).unwrap())
                .collect();
            assert_eq!(
                combine(SALT, &chunks),
                digest_of(&mut &file[..], SALT).unwrap(),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn chunks_in_another_order_or_a_byte_moved_across_a_chunk_edge_differ() {
        let file = bytes(2 * CHUNK_BYTES);
        let (a, b) = file.split_at(CHUNK_BYTES as usize);
        let (da, db) = (
            chunk_digest(&mut &a[..], CHUNK_BYTES).unwrap(),
            chunk_digest(&mut &b[..], CHUNK_BYTES).unwrap(),
        );
        assert_ne!(combine(SALT, &[da, db]), combine(SALT, &[db, da]));
        let mut moved = file.clone();
        moved.swap(CHUNK_BYTES as usize - 1, CHUNK_BYTES as usize);
        assert_ne!(moved, file);
        assert_ne!(
            digest_of(&mut &moved[..], SALT).unwrap(),
            digest_of(&mut &file[..], SALT).unwrap()
        );
    }

    #[test]
    fn a_chunk_that_ends_before_its_length_is_an_error() {
        let err = chunk_digest(&mut &b"sourcedId\n"[..], 11).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_file_read_in_part_has_no_digest() {
        let mut reader = HashingReader::new(&b"sourcedId\nx1\nx2\n"[..], SALT);
        let mut first = [0u8; 4];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(reader.digest(), None);
    }
}
