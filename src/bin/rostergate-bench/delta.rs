//! The 1 % delta of the import benchmark: a copy of a generated bundle in which one user row in
//! a hundred, and one enrollment row in a hundred, is changed, removed or added (in turn), and
//! the enrollments of removed users go with them. Every other file is the same, byte for byte.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What the delta bundle changes, as the importer's report should count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeltaCounts {
    pub users: Changes,
    pub enrollments: Changes,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} has no {column} column")]
    NoColumn { path: PathBuf, column: &'static str },
}

/// One row in `EVERY` is touched.
const EVERY: u64 = 100;

/// Writes the delta of the bundle in `from` to `to` (replaced if present).
pub fn write_delta(from: &Path, to: &Path) -> Result<DeltaCounts, DeltaError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DeltaError::Io { path, source }
    };
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).map_err(io_err(to))?;
    for entry in std::fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let name = entry.file_name();
        if name != "users.csv" && name != "enrollments.csv" {
            std::fs::copy(entry.path(), to.join(&name)).map_err(io_err(&entry.path()))?;
        }
    }
    let mut removed_users = std::collections::HashSet::new();
    let users = rewrite(
        &from.join("users.csv"),
        &to.join("users.csv"),
        &["sourcedId", "givenName", "username", "email", "identifier"],
        |turn, row, columns, out| {
            let [id, given, username, email, identifier] = columns[..] else {
                unreachable!("five columns asked for")
            };
            match turn {
                Turn::Change => {
                    row[given] = format!("{}x", row[given]);
                    out.push(row.clone());
                }
                Turn::Remove => {
                    removed_users.insert(row[id].clone());
                }
                Turn::Add => {
                    out.push(row.clone());
                    for column in [id, username, identifier] {
                        row[column] = format!("{}-d", row[column]);
                    }
                    row[email] = format!("d-{}", row[email]);
                    out.push(row.clone());
                }
                Turn::Keep => out.push(row.clone()),
            }
            Ok(turn)
        },
    )?;
    let mut cascaded = 0;
    let mut previous: Option<Vec<String>> = None;
    let mut enrollments = rewrite(
        &from.join("enrollments.csv"),
        &to.join("enrollments.csv"),
        &[
            "sourcedId",
            "userSourcedId",
            "classSourcedId",
            "schoolSourcedId",
            "primary",
        ],
        |turn, row, columns, out| {
            let [id, user, class, school, primary] = columns[..] else {
                unreachable!("five columns asked for")
            };
            if removed_users.contains(&row[user]) {
                cascaded += 1;
                return Ok(Turn::Keep);
            }
            match turn {
                Turn::Change => {
                    row[primary] = if row[primary] == "true" {
                        "false"
                    } else {
                        "true"
                    }
                    .into();
                    out.push(row.clone());
                }
                Turn::Remove => {}
                Turn::Add => {
                    out.push(row.clone());
                    // The same user in the class before this row's.
                    if let Some(previous) = &previous {
                        row[class] = previous[class].clone();
                        row[school] = previous[school].clone();
                    }
                    row[id] = format!("{}-d", row[id]);
                    out.push(row.clone());
                }
                Turn::Keep => out.push(row.clone()),
            }
            previous = Some(row.clone());
            Ok(turn)
        },
    )?;
    enrollments.deleted += cascaded;
    Ok(DeltaCounts { users, enrollments })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Keep,
    Change,
    Remove,
    Add,
}

/// Row `n` (from 0): every `EVERY`th is changed, removed or added, in turn.
fn turn(n: u64) -> Turn {
    if n % EVERY != EVERY / 2 {
        return Turn::Keep;
    }
    match (n / EVERY) % 3 {
        0 => Turn::Change,
        1 => Turn::Remove,
        _ => Turn::Add,
    }
}

/// Streams `from` to `to` through `edit`, which gets each row's turn, the row, the positions of
/// `wanted` columns and the rows to write, and says what it did; returns the count of each.
fn rewrite(
    from: &Path,
    to: &Path,
    wanted: &[&'static str],
    mut edit: impl FnMut(
        Turn,
        &mut Vec<String>,
        &[usize],
        &mut Vec<Vec<String>>,
    ) -> Result<Turn, DeltaError>,
) -> Result<Changes, DeltaError> {
    let csv_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DeltaError::Csv { path, source }
    };
    let mut reader = csv::Reader::from_path(from).map_err(csv_err(from))?;
    let mut writer = csv::Writer::from_path(to).map_err(csv_err(to))?;
    let headers = reader.headers().map_err(csv_err(from))?.clone();
    writer.write_record(&headers).map_err(csv_err(to))?;
    let columns = wanted
        .iter()
        .map(|&column| {
            headers
                .iter()
                .position(|h| h == column)
                .ok_or_else(|| DeltaError::NoColumn {
                    path: from.to_path_buf(),
                    column,
                })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let mut changes = Changes::default();
    let mut out = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(csv_err(from))?;
        let mut row: Vec<String> = record.iter().map(str::to_string).collect();
        match edit(turn(n as u64), &mut row, &columns, &mut out)? {
            Turn::Change => changes.updated += 1,
            Turn::Remove => changes.deleted += 1,
            Turn::Add => changes.created += 1,
            Turn::Keep => {}
        }
        for row in out.drain(..) {
            writer.write_record(&row).map_err(csv_err(to))?;
        }
    }
    writer.flush().map_err(|source| DeltaError::Io {
        path: to.to_path_buf(),
        source,
    })?;
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rostergate::synthetic::{write_bundle, SyntheticDistrict};

    fn rows(path: &Path) -> Vec<csv::StringRecord> {
        csv::Reader::from_path(path)
            .unwrap()
            .records()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_delta_touches_one_row_in_a_hundred_and_leaves_the_other_files_alone() {
        let bundle = tempfile::tempdir().unwrap();
        let counts = write_bundle(
            &SyntheticDistrict {
                students: 2000,
                seed: 7,
            },
            bundle.path(),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let delta = write_delta(bundle.path(), out.path()).unwrap();

        let touched = |c: Changes| c.created + c.updated + c.deleted;
        let turns = (0..counts.users).filter(|&n| turn(n) != Turn::Keep).count() as u64;
        assert_eq!(touched(delta.users), turns);
        assert!(turns >= counts.users / EVERY);
        assert!(delta.users.created > 0 && delta.users.updated > 0 && delta.users.deleted > 0);
        assert!(delta.enrollments.created > 0 && delta.enrollments.updated > 0);
        // Removed users took their enrollments with them.
        assert!(delta.enrollments.deleted > delta.enrollments.created);

        let users = rows(&out.path().join("users.csv"));
        assert_eq!(
            users.len() as u64,
            counts.users + delta.users.created - delta.users.deleted
        );
        let enrollments = rows(&out.path().join("enrollments.csv"));
        assert_eq!(
            enrollments.len() as u64,
            counts.enrollments + delta.enrollments.created - delta.enrollments.deleted
        );
        let ids: std::collections::HashSet<&str> = users.iter().map(|r| &r[0]).collect();
        assert_eq!(ids.len(), users.len(), "sourcedIds stay unique");
        for name in [
            "orgs.csv",
            "classes.csv",
            "courses.csv",
            "academicSessions.csv",
            "manifest.csv",
        ] {
            assert_eq!(
                std::fs::read(bundle.path().join(name)).unwrap(),
                std::fs::read(out.path().join(name)).unwrap(),
                "{name}"
            );
        }
    }
}
