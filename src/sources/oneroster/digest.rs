//! The digest of a bundle file: SHA-256 over its bytes, salted with what decides how those bytes
//! are read (the gateway's version, the bundle's OneRoster version, the kind and its mode), so
//! that an upgrade or a changed manifest never carries a kind over.

use std::io::{self, Read};

use aws_lc_rs::digest::{Context, SHA256};

use super::columns::Version;
use crate::domain::records::{Mode, RecordKind};

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
        "rostergate {} oneroster-csv {:?} {} {:?}\n",
        env!("CARGO_PKG_VERSION"),
        salt.version,
        salt.kind.oneroster_name(),
        salt.mode
    );
    ctx.update(header.as_bytes());
    ctx
}

/// Hashes everything read through it; [`HashingReader::digest`] is only given once the inner
/// reader reached its end, so a file read in part never stands for the whole.
pub struct HashingReader<R> {
    inner: R,
    ctx: Context,
    at_end: bool,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, salt: Salt) -> Self {
        HashingReader {
            inner,
            ctx: context(salt),
            at_end: false,
        }
    }

    /// The digest, if every byte was read.
    pub fn digest(self) -> Option<String> {
        self.at_end.then(|| hex::encode(self.ctx.finish().as_ref()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.at_end = true;
        }
        self.ctx.update(&buf[..n]);
        Ok(n)
    }
}

/// Bytes read at a time when a file is only hashed: as large as the bundle's read buffer, so
/// each read goes from the file straight into this one (a smaller one would be filled by
/// copying out of the read buffer, a copy of every byte).
const HASH_CHUNK_BYTES: usize = super::bundle::READ_BUFFER_BYTES;

/// Reads `reader` to its end and returns its digest.
pub fn digest_of(reader: &mut dyn Read, salt: Salt) -> io::Result<String> {
    let mut hashing = HashingReader::new(reader, salt);
    let mut chunk = vec![0; HASH_CHUNK_BYTES];
    loop {
        match hashing.read(&mut chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hashing.digest().expect("read to the end"))
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

    #[test]
    fn a_file_read_in_part_has_no_digest() {
        let mut reader = HashingReader::new(&b"sourcedId\nx1\nx2\n"[..], SALT);
        let mut first = [0u8; 4];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(reader.digest(), None);
    }
}
