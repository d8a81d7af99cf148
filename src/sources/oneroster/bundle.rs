//! A OneRoster CSV bundle: a folder or a zip, its manifest, and readers over its files with the
//! limits that keep hostile input from exhausting the gateway.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::columns::{Version, NOT_IMPORTED};
use super::records::{Limits, Records};
use crate::domain::problem::{quoted, Problem, ProblemLog};
use crate::domain::records::{Mode, RecordKind};

const MANIFEST: &str = "manifest.csv";
/// A manifest is a few dozen short lines; anything bigger is not one.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

#[derive(Debug)]
enum Container {
    Dir(PathBuf),
    Zip { path: PathBuf, prefix: String },
}

/// What the manifest declares.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub version: Version,
    pub files: BTreeMap<RecordKind, Mode>,
}

#[derive(Debug)]
pub struct Bundle {
    container: Container,
    /// Lower-cased file name → name as stored.
    names: HashMap<String, String>,
    pub manifest: Manifest,
}

impl Bundle {
    /// Opens a bundle and checks its manifest against its files. Problems that make the bundle
    /// unusable are errors in `log`, and `None` is returned.
    pub fn open(path: &Path, log: &mut ProblemLog) -> Option<Bundle> {
        Bundle::open_as(path, &path.display().to_string(), log)
    }

    /// As [`Bundle::open`], naming the bundle `label` in problems (an upload's temporary path
    /// means nothing to the person who sent it).
    pub fn open_as(path: &Path, label: &str, log: &mut ProblemLog) -> Option<Bundle> {
        let label = label.to_string();
        let container = if path.is_dir() {
            Container::Dir(path.to_path_buf())
        } else if path.is_file() {
            Container::Zip {
                path: path.to_path_buf(),
                prefix: String::new(),
            }
        } else {
            log.error(Problem::file(label, "no such file or folder"));
            return None;
        };
        let (container, files) = match list_files(container, &label, log) {
            Ok(listed) => listed,
            Err(message) => {
                log.error(Problem::file(label, message));
                return None;
            }
        };
        let mut names = HashMap::new();
        for name in files {
            let key = name.to_ascii_lowercase();
            if let Some(previous) = names.insert(key, name.clone()) {
                log.error(Problem::file(
                    &name,
                    format!("the bundle holds this file twice (also as {previous})"),
                ));
                return None;
            }
        }
        let mut bundle = Bundle {
            container,
            names,
            manifest: Manifest {
                version: Version::V1_1,
                files: BTreeMap::new(),
            },
        };
        let Some(manifest_name) = bundle.names.get(MANIFEST).cloned() else {
            log.error(Problem::file(MANIFEST, "the bundle has no manifest.csv"));
            return None;
        };
        if manifest_name != MANIFEST {
            log.warn(Problem::file(
                &manifest_name,
                "manifest file name is not lower case",
            ));
        }
        let manifest = bundle
            .with_file(&manifest_name, MAX_MANIFEST_BYTES, |r| {
                Ok(parse_manifest(&manifest_name, r, log))
            })
            .unwrap_or_else(|e| {
                log.error(Problem::file(&manifest_name, e.to_string()));
                None
            })?;
        bundle.manifest = manifest;
        if bundle.check_files_against_manifest(log) {
            Some(bundle)
        } else {
            None
        }
    }

    /// The file name of a kind as it is stored in the bundle.
    pub fn file_name(&self, kind: RecordKind) -> String {
        let wanted = format!("{}.csv", kind.oneroster_name());
        self.names
            .get(&wanted.to_ascii_lowercase())
            .cloned()
            .unwrap_or(wanted)
    }

    fn check_files_against_manifest(&self, log: &mut ProblemLog) -> bool {
        let mut ok = true;
        for kind in RecordKind::ALL {
            let file = format!("{}.csv", kind.oneroster_name());
            let present = self.names.contains_key(&file.to_ascii_lowercase());
            let declared = self.manifest.files.contains_key(&kind);
            if declared && !present {
                log.error(Problem::file(
                    &file,
                    "the manifest declares this file but the bundle lacks it",
                ));
                ok = false;
            } else if present && !declared {
                log.error(Problem::file(
                    self.file_name(kind),
                    format!("the bundle holds this file but the manifest does not declare it (file.{} is absent)", kind.oneroster_name()),
                ));
                ok = false;
            }
            if present && file != self.file_name(kind) {
                log.warn(Problem::file(
                    self.file_name(kind),
                    format!("file name differs in letter case from {file}"),
                ));
            }
        }
        for (stem, why) in NOT_IMPORTED {
            if self
                .names
                .contains_key(&format!("{stem}.csv").to_ascii_lowercase())
            {
                log.warn(Problem::file(
                    format!("{stem}.csv"),
                    format!("not imported: {why}"),
                ));
            }
        }
        ok
    }

    /// The size of the named file (unzipped), `None` when it cannot be found out.
    pub fn file_bytes(&self, name: &str) -> Option<u64> {
        match &self.container {
            Container::Dir(dir) => std::fs::metadata(dir.join(name)).ok().map(|m| m.len()),
            Container::Zip { path, prefix } => {
                let file = BufReader::new(File::open(path).ok()?);
                let mut archive = zip::ZipArchive::new(file).ok()?;
                let size = archive.by_name(&format!("{prefix}{name}")).ok()?.size();
                Some(size)
            }
        }
    }

    /// Where the named file lies, in a folder bundle; `None` in a zip, whose files can only be
    /// read from their start.
    pub fn file_path(&self, name: &str) -> Option<PathBuf> {
        match &self.container {
            Container::Dir(dir) => Some(dir.join(name)),
            Container::Zip { .. } => None,
        }
    }

    /// Runs `f` over a reader of the named file, limited to `max_bytes` of (unzipped) content.
    pub fn with_file<T>(
        &self,
        name: &str,
        max_bytes: u64,
        f: impl FnOnce(&mut dyn Read) -> io::Result<T>,
    ) -> io::Result<T> {
        match &self.container {
            Container::Dir(dir) => {
                let file = File::open(dir.join(name))?;
                let mut reader =
                    Guarded::new(BufReader::with_capacity(READ_BUFFER_BYTES, file), max_bytes);
                f(&mut reader)
            }
            Container::Zip { path, prefix } => {
                let mut archive =
                    zip::ZipArchive::new(BufReader::new(File::open(path)?)).map_err(zip_error)?;
                let entry = archive
                    .by_name(&format!("{prefix}{name}"))
                    .map_err(zip_error)?;
                let mut reader = Guarded::new(
                    BufReader::with_capacity(READ_BUFFER_BYTES, entry),
                    max_bytes,
                );
                f(&mut reader)
            }
        }
    }
}

/// The read buffer of a bundle file.
pub(crate) const READ_BUFFER_BYTES: usize = 256 << 10;

fn zip_error(e: zip::result::ZipError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zip: {e}"))
}

/// Lists the bundle's files, naming the bundle `label` in problems (never its path on this
/// server). A zip whose files all sit in one folder is accepted (zipping a
/// folder does that); deeper nesting is not.
fn list_files(
    container: Container,
    label: &str,
    log: &mut ProblemLog,
) -> Result<(Container, Vec<String>), String> {
    match container {
        Container::Dir(dir) => {
            let mut files = Vec::new();
            let entries =
                std::fs::read_dir(&dir).map_err(|e| format!("cannot read folder: {e}"))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("cannot read folder: {e}"))?;
                if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    if let Some(name) = entry.file_name().to_str() {
                        files.push(name.to_string());
                    }
                }
            }
            Ok((Container::Dir(dir), files))
        }
        Container::Zip { path, .. } => {
            let file = File::open(&path).map_err(|e| format!("cannot open: {e}"))?;
            let archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
                format!("not a readable zip file ({e}): a bundle is a folder or a zip of CSV files")
            })?;
            let names: Vec<String> = archive
                .file_names()
                .map(|n| n.map(|n| n.into_owned()))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| format!("unreadable file name in the zip: {e}"))?
                .into_iter()
                .filter(|n| !n.ends_with('/'))
                .filter(|n| {
                    !n.starts_with("__MACOSX/")
                        && !n.rsplit('/').next().unwrap_or("").starts_with("._")
                })
                .collect();
            let folders: std::collections::BTreeSet<&str> = names
                .iter()
                .map(|n| n.rsplit_once('/').map(|(d, _)| d).unwrap_or(""))
                .collect();
            let prefix = match folders.len() {
                0 => String::new(),
                1 => {
                    let folder = *folders.iter().next().expect("one folder");
                    if folder.is_empty() {
                        String::new()
                    } else if folder.contains('/') {
                        return Err(format!("files are nested in {folder}/: a bundle's CSV files sit at the top of the zip"));
                    } else {
                        log.warn(Problem::file(label, format!("files read from the folder {folder}/ inside the zip")));
                        format!("{folder}/")
                    }
                }
                _ => return Err("files are spread over several folders: a bundle's CSV files sit at the top of the zip".into()),
            };
            let files = names
                .iter()
                .map(|n| n[prefix.len()..].to_string())
                .collect();
            Ok((Container::Zip { path, prefix }, files))
        }
    }
}

fn parse_manifest(file: &str, reader: &mut dyn Read, log: &mut ProblemLog) -> Option<Manifest> {
    let mut csv = Records::new(
        BufReader::new(reader),
        Limits {
            max_record_bytes: MAX_MANIFEST_BYTES as usize,
            max_columns: 64,
        },
    );
    let mut properties: Vec<(u64, String, String)> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        let line = match csv.read(&mut record) {
            Ok(None) => break,
            Ok(Some(line)) => line,
            Err(e) => {
                log.error(Problem::new(file, Some(e.line()), None, e.to_string()));
                return None;
            }
        };
        let key = record
            .get(0)
            .unwrap_or("")
            .trim_start_matches('\u{feff}')
            .to_string();
        let value = record.get(1).unwrap_or("").to_string();
        if first {
            first = false;
            if !key.eq_ignore_ascii_case("propertyName") || !value.eq_ignore_ascii_case("value") {
                log.error(Problem::new(
                    file,
                    Some(line),
                    None,
                    "the header must be propertyName,value",
                ));
                return None;
            }
            continue;
        }
        properties.push((line, key, value));
    }
    let mut version = None;
    let mut files = BTreeMap::new();
    let mut ok = true;
    for (line, key, value) in properties {
        if key.eq_ignore_ascii_case("oneroster.version") {
            version = match value.as_str() {
                "1.1" | "1.1.0" => Some(Version::V1_1),
                "1.2" | "1.2.0" | "1.2.1" => Some(Version::V1_2),
                other => {
                    log.error(Problem::new(
                        file,
                        Some(line),
                        Some("oneroster.version"),
                        format!(
                            "{} is not a supported version (1.1, 1.2, 1.2.1)",
                            quoted(other)
                        ),
                    ));
                    ok = false;
                    None
                }
            };
        } else if let Some(stem) = key
            .strip_prefix("file.")
            .or_else(|| key.strip_prefix("File."))
        {
            let mode = match value.to_ascii_lowercase().as_str() {
                "bulk" => Some(Mode::Bulk),
                "delta" => Some(Mode::Delta),
                "absent" => None,
                "" => {
                    log.warn(Problem::new(
                        file,
                        Some(line),
                        Some(&key),
                        "empty value read as absent",
                    ));
                    None
                }
                _ => {
                    log.error(Problem::new(
                        file,
                        Some(line),
                        Some(&key),
                        format!("{} is not bulk, delta or absent", quoted(&value)),
                    ));
                    ok = false;
                    None
                }
            };
            match (RecordKind::from_oneroster_name(stem), mode) {
                (Some(kind), Some(mode)) => {
                    files.insert(kind, mode);
                }
                (None, Some(_))
                    if !NOT_IMPORTED
                        .iter()
                        .any(|(s, _)| s.eq_ignore_ascii_case(stem)) =>
                {
                    log.warn(Problem::new(
                        file,
                        Some(line),
                        Some(&key),
                        "unknown file type: ignored",
                    ));
                }
                _ => {}
            }
        }
    }
    if !ok {
        return None;
    }
    let version = version.unwrap_or_else(|| {
        let guess = if files.contains_key(&RecordKind::Roles) {
            Version::V1_2
        } else {
            Version::V1_1
        };
        log.warn(Problem::file(
            file,
            format!(
                "no oneroster.version: read as {}",
                if guess == Version::V1_2 { "1.2" } else { "1.1" }
            ),
        ));
        guess
    });
    if version == Version::V1_1 {
        for kind in [RecordKind::Roles, RecordKind::UserProfiles] {
            if files.contains_key(&kind) {
                log.error(Problem::file(
                    file,
                    format!(
                        "{} is a OneRoster 1.2 file but the manifest says 1.1",
                        kind.oneroster_name()
                    ),
                ));
                return None;
            }
        }
    }
    Some(Manifest { version, files })
}

/// Caps a reader's total size, so that a zip bomb fails with a clear error instead of running
/// for ever. (Rows are capped while they are parsed: see [`Records`].) Shared with the score
/// file reader (`sources::scores::cdf`), which opens zips of its own.
pub(crate) struct Guarded<R> {
    inner: R,
    remaining: u64,
    max_bytes: u64,
}

impl<R: Read> Guarded<R> {
    pub(crate) fn new(inner: R, max_bytes: u64) -> Self {
        Guarded {
            inner,
            remaining: max_bytes,
            max_bytes,
        }
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.remaining {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is larger than the limit of {} bytes", self.max_bytes),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_manifest_is_refused_before_it_fills_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = String::from("propertyName,value\n");
        while manifest.len() <= MAX_MANIFEST_BYTES as usize {
            manifest.push_str("source.systemName,padding padding padding\n");
        }
        std::fs::write(dir.path().join("manifest.csv"), manifest).unwrap();
        let mut log = ProblemLog::new(10);
        assert!(Bundle::open(dir.path(), &mut log).is_none());
        let (errors, _) = log.into_parts();
        assert!(
            errors[0].message.contains("larger than the limit"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_file_has_its_unzipped_size_in_a_folder_and_in_a_zip() {
        use std::io::Write;
        let manifest =
            "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.orgs,bulk\n";
        let orgs = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
                    org-1,,,Lincoln,district,,\n"
            .repeat(50);
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("bundle");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("manifest.csv"), manifest).unwrap();
        std::fs::write(folder.join("orgs.csv"), &orgs).unwrap();
        let zipped = dir.path().join("bundle.zip");
        let mut writer = zip::ZipWriter::new(File::create(&zipped).unwrap());
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, contents) in [("manifest.csv", manifest), ("orgs.csv", orgs.as_str())] {
            writer.start_file(name, deflated).unwrap();
            writer.write_all(contents.as_bytes()).unwrap();
        }
        writer.finish().unwrap();
        for path in [&folder, &zipped] {
            let mut log = ProblemLog::new(10);
            let bundle = Bundle::open(path, &mut log).unwrap();
            assert_eq!(bundle.file_bytes("orgs.csv"), Some(orgs.len() as u64));
            assert_eq!(bundle.file_bytes("users.csv"), None, "not in the bundle");
        }
    }

    #[test]
    fn guarded_reader_stops_oversized_files() {
        let mut out = Vec::new();
        let err = Guarded::new(&b"a,b\nc,d\n"[..], 4)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("larger than the limit"), "{err}");
        let mut fine = Vec::new();
        Guarded::new(&b"a\nb\n"[..], 100)
            .read_to_end(&mut fine)
            .unwrap();
        assert_eq!(fine, b"a\nb\n");
    }
}
