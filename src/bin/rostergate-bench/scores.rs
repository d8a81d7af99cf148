//! Score-import benchmark: a synthetic district and a MAP Growth export (CDF) for its students;
//! per backend the district is imported into a fresh database, then `rostergate scores import`
//! is timed as a child process (its peak RSS its own): the first import, and the same file
//! again. The baseline is the export's AssessmentResults.csv loaded by the database's own bulk
//! loader into a table keyed on the test event.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use rostergate::synthetic::cdf::{self, CdfGenError, CdfOptions, CdfSubject, RESULTS_FILE};
use rostergate::synthetic::GeneratedCounts;

use crate::import::{
    blocking, fresh_sqlite, generate_bundle, io_err, parse_summary, ratio, rejected_output,
    run_importer, run_step, Backend, BenchError, ImportMeasurement, BENCH_SEED, DISTRICT_SLUG,
};
use crate::raw_load::{self, rate, RawFile, RawLoadResult};
use crate::scratch_db::ScratchDb;

/// A school year of tests, in a subject the shipped learning plans place (mathematics) and one
/// they do not (reading).
pub const TERMS: [&str; 3] = ["Fall 2025-2026", "Winter 2025-2026", "Spring 2025-2026"];
pub const SUBJECTS: [CdfSubject; 2] = [CdfSubject::Mathematics, CdfSubject::Reading];

/// AssessmentResults.csv as the raw load stores it: every column as text, with a composite
/// primary key on the test event (no generated row id), the key the gateway stores a result by.
pub const RAW_RESULTS: [RawFile; 1] = [RawFile {
    file: RESULTS_FILE,
    table: "raw_assessment_results",
    key: &[
        "student_id",
        "term_name",
        "subject",
        "test_start_date",
        "test_start_time",
    ],
    indexes: &[],
}];

#[derive(Debug, Clone)]
pub struct ScoresOptions {
    /// District sizes to run, in students.
    pub students: Vec<usize>,
    pub backends: Vec<Backend>,
    /// Rosters, exports and SQLite files go here; each is removed once measured.
    pub work_dir: PathBuf,
    /// The `rostergate` binary to benchmark.
    pub exe: PathBuf,
}

/// The export one size is measured with, counted from its AssessmentResults.csv.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExportCounts {
    /// Data rows of AssessmentResults.csv.
    pub results: u64,
    /// Distinct StudentIDs.
    pub students: u64,
    /// Distinct StudentIDs with a Mathematics result: the students a first import places.
    pub math_students: u64,
    pub zip_bytes: u64,
    /// AssessmentResults.csv unpacked (what the raw load reads).
    pub csv_bytes: u64,
    /// Writing the export (the roster already written).
    pub generate_seconds: f64,
    /// Unpacking AssessmentResults.csv for the raw load (not part of its time).
    pub unzip_seconds: f64,
}

/// The counts of a `scores import --json` report the benchmark checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreCounts {
    pub received: u64,
    pub new: u64,
    pub restated: u64,
    pub unchanged: u64,
    pub matched: u64,
    pub unmatched: u64,
    pub students_placed: u64,
}

impl ScoreCounts {
    /// A first import into a district that rosters every student of the export.
    pub fn first(export: &ExportCounts) -> Self {
        Self {
            received: export.results,
            new: export.results,
            matched: export.results,
            students_placed: export.math_students,
            ..Self::default()
        }
    }

    /// The same file again: every result as stored, nobody placed again.
    pub fn again(export: &ExportCounts) -> Self {
        Self {
            received: export.results,
            unchanged: export.results,
            matched: export.results,
            ..Self::default()
        }
    }
}

/// One timed `scores import`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreImportMeasurement {
    /// What the report said (checked exactly).
    pub counts: ScoreCounts,
    pub seconds: f64,
    pub results_per_sec: f64,
    pub peak_rss_kib: u64,
}

/// One (district size, backend) measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoresRun {
    pub students: usize,
    pub backend: String,
    pub roster: GeneratedCounts,
    pub roster_generate_seconds: f64,
    pub export: ExportCounts,
    /// District creation and roster import (not part of the comparison).
    pub roster_import: ImportMeasurement,
    /// The export imported into the freshly rostered district.
    pub first: ScoreImportMeasurement,
    /// The same export again.
    pub again: ScoreImportMeasurement,
    /// AssessmentResults.csv bulk-loaded into a keyed table.
    pub raw: RawLoadResult,
    /// `first.seconds / raw.seconds`.
    pub first_ratio: f64,
    /// `again.seconds / first.seconds`.
    pub again_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoresReport {
    pub seed: u64,
    pub terms: Vec<String>,
    pub subjects: Vec<String>,
    pub runs: Vec<ScoresRun>,
}

impl ScoresReport {
    /// Plain-text table, one line per run.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{:>9}  {:<8}  {:>9}  {:>8}  {:>9}  {:>7}  {:>9}  {:>8}  {:>11}  {:>8}\n",
            "students",
            "backend",
            "results",
            "first s",
            "results/s",
            "raw s",
            "first/raw",
            "again s",
            "again/first",
            "peak MiB"
        );
        for r in &self.runs {
            let peak = r.first.peak_rss_kib.max(r.again.peak_rss_kib);
            out += &format!(
                "{:>9}  {:<8}  {:>9}  {:>8.2}  {:>9.0}  {:>7.2}  {:>9.1}  {:>8.2}  {:>11.2}  {:>8.1}\n",
                r.students,
                r.backend,
                r.export.results,
                r.first.seconds,
                r.first.results_per_sec,
                r.raw.seconds,
                r.first_ratio,
                r.again.seconds,
                r.again_ratio,
                peak as f64 / 1024.0
            );
        }
        out +=
            "results: rows of AssessmentResults.csv (3 terms, mathematics and reading); first s: \
                `scores import` into the freshly rostered district; raw s: AssessmentResults.csv \
                bulk-loaded (COPY / .import) into a table of text columns keyed on (StudentID, \
                TermName, Subject, TestStartDate, TestStartTime); again s: the same file again; \
                peak MiB: the importer's higher peak RSS of the two\n";
        out
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

impl fmt::Display for ScoresReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_table())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoresBenchError {
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error("writing the score export for {students} students failed: {source}")]
    Export {
        students: usize,
        source: CdfGenError,
    },
    #[error("cannot unpack {RESULTS_FILE} from {path}: {source}")]
    Unzip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("cannot read {path}: {source}")]
    ReadResults { path: PathBuf, source: csv::Error },
    #[error("{path} has no {column} column")]
    NoColumn { path: PathBuf, column: &'static str },
    #[error("the export is not what the benchmark needs: {0}")]
    ExportMismatch(String),
}

/// Runs every (student count, backend) combination in order and collects the results.
/// The first failure stops the run; its roster and export are left in `work_dir`.
pub async fn run_scores_benchmark(opts: ScoresOptions) -> Result<ScoresReport, ScoresBenchError> {
    std::fs::create_dir_all(&opts.work_dir)
        .map_err(io_err("cannot create work folder", &opts.work_dir))?;
    let work_dir = std::path::absolute(&opts.work_dir)
        .map_err(io_err("cannot resolve work folder", &opts.work_dir))?;
    let mut runs = Vec::new();
    for &students in &opts.students {
        let files = ExportFiles::in_dir(&work_dir, students);
        let (roster, roster_generate_seconds) = generate_bundle(students, &files.roster).await?;
        let export = {
            let files = files.clone();
            blocking(move || write_export(students, &files)).await?
        };
        for backend in &opts.backends {
            tracing::info!(
                students,
                backend = backend.name(),
                "benchmarking score import"
            );
            let measured = run_backend(&opts.exe, backend, &files, &export, &work_dir).await?;
            runs.push(ScoresRun {
                students,
                backend: backend.name().to_string(),
                roster,
                roster_generate_seconds,
                export,
                roster_import: measured.roster_import,
                first_ratio: ratio(measured.first.seconds, measured.raw.seconds),
                again_ratio: ratio(measured.again.seconds, measured.first.seconds),
                first: measured.first,
                again: measured.again,
                raw: measured.raw,
            });
        }
        files.remove();
    }
    Ok(ScoresReport {
        seed: BENCH_SEED,
        terms: TERMS.iter().map(|t| t.to_string()).collect(),
        subjects: SUBJECTS.iter().map(|s| s.to_string()).collect(),
        runs,
    })
}

/// Where one size's roster, export and unpacked results go.
#[derive(Debug, Clone)]
struct ExportFiles {
    roster: PathBuf,
    zip: PathBuf,
    /// Holds AssessmentResults.csv unpacked, for the raw load.
    unpacked: PathBuf,
}

impl ExportFiles {
    fn in_dir(work_dir: &Path, students: usize) -> Self {
        Self {
            roster: work_dir.join(format!("roster-{students}")),
            zip: work_dir.join(format!("cdf-{students}.zip")),
            unpacked: work_dir.join(format!("cdf-{students}")),
        }
    }

    /// Large exports are hundreds of megabytes; keep disk use flat across sizes.
    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.roster);
        let _ = std::fs::remove_file(&self.zip);
        let _ = std::fs::remove_dir_all(&self.unpacked);
    }
}

/// Writes the export for the roster (as `generate cdf` does), unpacks AssessmentResults.csv and
/// counts what the imports must report.
fn write_export(students: usize, files: &ExportFiles) -> Result<ExportCounts, ScoresBenchError> {
    let options = CdfOptions {
        terms: TERMS.iter().map(|t| t.to_string()).collect(),
        subjects: SUBJECTS.to_vec(),
        seed: BENCH_SEED,
        ..CdfOptions::default()
    };
    let started = Instant::now();
    let summary = cdf::write_cdf(&files.roster, &files.zip, &options)
        .map_err(|source| ScoresBenchError::Export { students, source })?;
    let generate_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let csv_path = unpack_results(&files.zip, &files.unpacked)?;
    let unzip_seconds = started.elapsed().as_secs_f64();
    let (results, students_in_file, math_students) = count_results(&csv_path)?;
    if results != summary.results || summary.malformed > 0 {
        return Err(ScoresBenchError::ExportMismatch(format!(
            "{results} rows in {RESULTS_FILE}, the generator wrote {} ({} malformed)",
            summary.results, summary.malformed
        )));
    }
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(ExportCounts {
        results,
        students: students_in_file,
        math_students,
        zip_bytes: size(&files.zip),
        csv_bytes: size(&csv_path),
        generate_seconds,
        unzip_seconds,
    })
}

/// `zip`'s AssessmentResults.csv, written into the folder `into` (created afresh).
fn unpack_results(zip_path: &Path, into: &Path) -> Result<PathBuf, ScoresBenchError> {
    let unzip_err = |source| ScoresBenchError::Unzip {
        path: zip_path.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_dir_all(into);
    std::fs::create_dir_all(into).map_err(io_err("cannot create folder", into))?;
    let file = File::open(zip_path).map_err(io_err("cannot open export", zip_path))?;
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file)).map_err(unzip_err)?;
    let mut entry = archive.by_name(RESULTS_FILE).map_err(unzip_err)?;
    let out_path = into.join(RESULTS_FILE);
    let mut out = File::create(&out_path).map_err(io_err("cannot write", &out_path))?;
    io::copy(&mut entry, &mut out).map_err(io_err("cannot unpack into", &out_path))?;
    Ok(out_path)
}

/// Rows, distinct students and distinct students with a Mathematics result of a results file.
fn count_results(path: &Path) -> Result<(u64, u64, u64), ScoresBenchError> {
    let read_err = |source| ScoresBenchError::ReadResults {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(read_err)?;
    let headers = reader.byte_headers().map_err(read_err)?.clone();
    let column = |name: &'static str| {
        headers
            .iter()
            .position(|h| h == name.as_bytes())
            .ok_or_else(|| ScoresBenchError::NoColumn {
                path: path.to_path_buf(),
                column: name,
            })
    };
    let (student_col, subject_col) = (column("StudentID")?, column("Subject")?);
    let mut rows = 0;
    let mut students = HashSet::new();
    let mut math = HashSet::new();
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(read_err)? {
        rows += 1;
        let student = record.get(student_col).unwrap_or_default();
        if !students.contains(student) {
            students.insert(student.to_vec());
        }
        if record.get(subject_col) == Some(b"Mathematics".as_slice()) && !math.contains(student) {
            math.insert(student.to_vec());
        }
    }
    Ok((rows, students.len() as u64, math.len() as u64))
}

/// What one backend measured.
struct Measured {
    roster_import: ImportMeasurement,
    first: ScoreImportMeasurement,
    again: ScoreImportMeasurement,
    raw: RawLoadResult,
}

async fn run_backend(
    exe: &Path,
    backend: &Backend,
    files: &ExportFiles,
    export: &ExportCounts,
    work_dir: &Path,
) -> Result<Measured, ScoresBenchError> {
    match backend {
        Backend::Sqlite => {
            let (db_dir, url) = fresh_sqlite(work_dir)?;
            let (exe, files, export, raw_dir) =
                (exe.to_path_buf(), files.clone(), *export, db_dir.clone());
            let result = blocking(move || {
                let (roster_import, first, again) = run_imports(&exe, &url, &files, &export)?;
                let raw = raw_load::load_sqlite(&files.unpacked, &RAW_RESULTS, &raw_dir).map_err(
                    |source| BenchError::RawLoad {
                        backend: "sqlite",
                        source,
                    },
                )?;
                Ok(Measured {
                    roster_import,
                    first,
                    again,
                    raw,
                })
            })
            .await;
            let _ = std::fs::remove_dir_all(&db_dir);
            result
        }
        Backend::Postgres(admin_url) => {
            let db = ScratchDb::create(admin_url)
                .await
                .map_err(BenchError::from)?;
            let result = async {
                let (exe, url, owned, export) =
                    (exe.to_path_buf(), db.url.clone(), files.clone(), *export);
                let (roster_import, first, again) =
                    blocking(move || run_imports(&exe, &url, &owned, &export)).await?;
                let raw = raw_load::load_postgres(&files.unpacked, &RAW_RESULTS, &db.url)
                    .await
                    .map_err(|source| BenchError::RawLoad {
                        backend: "postgres",
                        source,
                    })?;
                Ok(Measured {
                    roster_import,
                    first,
                    again,
                    raw,
                })
            }
            .await;
            db.drop_database().await;
            result
        }
    }
}

/// On one fresh database: the district and its roster (untimed for the comparison), then the
/// export twice.
fn run_imports(
    exe: &Path,
    url: &str,
    files: &ExportFiles,
    export: &ExportCounts,
) -> Result<
    (
        ImportMeasurement,
        ScoreImportMeasurement,
        ScoreImportMeasurement,
    ),
    BenchError,
> {
    let roster_import = run_importer(exe, url, &files.roster)?;
    let first = run_score_import(
        exe,
        url,
        &files.zip,
        "scores import",
        ScoreCounts::first(export),
    )?;
    let again = run_score_import(
        exe,
        url,
        &files.zip,
        "scores import (again)",
        ScoreCounts::again(export),
    )?;
    Ok((roster_import, first, again))
}

/// Times `scores import --json` of `zip` into the bench district and checks its report says
/// exactly `expected`.
fn run_score_import(
    exe: &Path,
    url: &str,
    zip: &Path,
    step: &'static str,
    expected: ScoreCounts,
) -> Result<ScoreImportMeasurement, BenchError> {
    let args: [&OsStr; 6] = [
        "scores".as_ref(),
        "import".as_ref(),
        "--district".as_ref(),
        DISTRICT_SLUG.as_ref(),
        "--json".as_ref(),
        zip.as_os_str(),
    ];
    let run = run_step(exe, url, step, &args)?;
    let counts = checked_counts(&run.stdout, expected)
        .map_err(|reason| rejected_output(step, &run, reason))?;
    Ok(ScoreImportMeasurement {
        counts,
        seconds: run.seconds,
        results_per_sec: rate(counts.received, run.seconds),
        peak_rss_kib: run.peak_rss_kib,
    })
}

/// The counts of a `scores import --json` report, once it says `applied` and counts exactly
/// `expected`.
fn checked_counts(stdout: &[u8], expected: ScoreCounts) -> Result<ScoreCounts, String> {
    let report = parse_summary(stdout)?;
    match report.get("status").and_then(|s| s.as_str()) {
        Some("applied") => {}
        other => return Err(format!("status is {other:?}, expected \"applied\"")),
    }
    let counts: ScoreCounts =
        serde_json::from_value(report).map_err(|e| format!("the report's counts: {e}"))?;
    if counts == expected {
        Ok(counts)
    } else {
        Err(format!("counts are {counts:?}, expected {expected:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    fn export(results: u64, math_students: u64) -> ExportCounts {
        ExportCounts {
            results,
            students: math_students,
            math_students,
            zip_bytes: 1,
            csv_bytes: 1,
            generate_seconds: 0.1,
            unzip_seconds: 0.1,
        }
    }

    fn report(counts: &str) -> Vec<u8> {
        format!(
            r#"{{"import_id":"scores-1","district":"bench","source":"cdf","status":"applied",{counts},"matched_earlier_results":0,"without_plan":600,"errors":[],"error_count":0,"warnings":[]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_first_import_must_store_match_and_place_everything() {
        let want = ScoreCounts::first(&export(1200, 200));
        let ok = report(
            r#""received":1200,"new":1200,"restated":0,"unchanged":0,"matched":1200,"unmatched":0,"students_placed":200"#,
        );
        assert_eq!(checked_counts(&ok, want), Ok(want));
        for wrong in [
            r#""received":1199,"new":1199,"restated":0,"unchanged":0,"matched":1199,"unmatched":0,"students_placed":200"#,
            r#""received":1200,"new":1200,"restated":0,"unchanged":0,"matched":1199,"unmatched":1,"students_placed":200"#,
            r#""received":1200,"new":1200,"restated":0,"unchanged":0,"matched":1200,"unmatched":0,"students_placed":199"#,
        ] {
            let err = checked_counts(&report(wrong), want).unwrap_err();
            assert!(err.starts_with("counts are ScoreCounts"), "{err}");
        }
    }

    #[test]
    fn the_same_file_again_must_change_nothing_and_place_nobody() {
        let want = ScoreCounts::again(&export(1200, 200));
        let ok = report(
            r#""received":1200,"new":0,"restated":0,"unchanged":1200,"matched":1200,"unmatched":0,"students_placed":0"#,
        );
        assert_eq!(checked_counts(&ok, want), Ok(want));
        for wrong in [
            r#""received":1200,"new":0,"restated":3,"unchanged":1197,"matched":1200,"unmatched":0,"students_placed":0"#,
            r#""received":1200,"new":0,"restated":0,"unchanged":1200,"matched":1200,"unmatched":0,"students_placed":2"#,
            r#""received":1200,"new":1200,"restated":0,"unchanged":0,"matched":1200,"unmatched":0,"students_placed":200"#,
        ] {
            assert!(checked_counts(&report(wrong), want).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_report_that_is_not_applied_or_lacks_a_count_is_refused() {
        let want = ScoreCounts::first(&export(1, 1));
        let refused = br#"{"status":"refused","received":1,"new":0,"restated":0,"unchanged":0,"matched":0,"unmatched":0,"students_placed":0}"#;
        assert!(checked_counts(refused, want)
            .unwrap_err()
            .contains("\"refused\""));
        let missing = br#"{"status":"applied","received":1,"new":1}"#;
        assert!(checked_counts(missing, want)
            .unwrap_err()
            .contains("the report's counts"));
        assert!(checked_counts(b"not json", want).is_err());
    }

    fn sample_report() -> ScoresReport {
        let measurement = |seconds: f64, peak_mib: u64| ScoreImportMeasurement {
            counts: ScoreCounts::default(),
            seconds,
            results_per_sec: 60_000.0 / seconds,
            peak_rss_kib: peak_mib * 1024,
        };
        ScoresReport {
            seed: BENCH_SEED,
            terms: TERMS.iter().map(|t| t.to_string()).collect(),
            subjects: vec!["Mathematics".into(), "Reading".into()],
            runs: vec![ScoresRun {
                students: 10_000,
                backend: "postgres".into(),
                roster: GeneratedCounts::default(),
                roster_generate_seconds: 1.0,
                export: export(60_000, 10_000),
                roster_import: ImportMeasurement {
                    rows: 90_000,
                    seconds: 5.0,
                    rows_per_sec: 18_000.0,
                    peak_rss_kib: 40 * 1024,
                    phases: Vec::new(),
                },
                first: measurement(4.0, 30),
                again: measurement(2.0, 28),
                raw: RawLoadResult {
                    rows: 60_000,
                    seconds: 1.6,
                    rows_per_sec: 37_500.0,
                    peak_rss_kib: None,
                },
                first_ratio: 2.5,
                again_ratio: 0.5,
            }],
        }
    }

    #[test]
    fn report_prints_one_table_line_per_run() {
        let table = sample_report().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("first/raw") && lines[0].contains("again/first"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "10000", "postgres", "60000", "4.00", "15000", "1.60", "2.5", "2.00", "0.50",
                "30.0"
            ]
        );
    }

    #[test]
    fn report_serializes_every_measurement() {
        let json: serde_json::Value =
            serde_json::from_str(&sample_report().to_json().unwrap()).unwrap();
        let run = &json["runs"][0];
        assert_eq!(run["first"]["peak_rss_kib"], 30 * 1024);
        assert_eq!(run["again"]["seconds"], 2.0);
        assert_eq!(run["raw"]["rows"], 60_000);
        assert_eq!(run["export"]["math_students"], 10_000);
        assert_eq!(run["roster_import"]["rows"], 90_000);
        assert_eq!(run["first_ratio"], 2.5);
        assert_eq!(json["terms"][2], "Spring 2025-2026");
    }

    /// A stand-in for the rostergate binary: checks its arguments and database, imports a
    /// roster as the real `--json` output says, and reports a score import from the export's
    /// own AssessmentResults.csv (read with `unzip -p`): everything new, matched and each
    /// student with a Mathematics result placed the first time; everything unchanged after.
    const FAKE_EXE: &str = r#"#!/bin/sh
[ "$1" = "--database-url" ] || { echo "no --database-url" >&2; exit 2; }
url="$2"; shift 2
case "$url" in
  sqlite://*) [ -f "${url#sqlite://}" ] || { echo "no sqlite file $url" >&2; exit 2; } ;;
  postgres://*) if command -v psql >/dev/null; then psql -qAt "$url" -c 'select 1' >/dev/null || exit 2; fi ;;
esac
state="${TMPDIR:-/tmp}/fake-rostergate-scores-$(printf %s "$url" | cksum | cut -d' ' -f1)"
case "$*" in
  "district create --slug bench --name Bench --timezone America/Chicago") rm -f "$state"; exit 0 ;;
  "import oneroster --district bench --json "*)
    users=$(($(wc -l < "$6/users.csv") - 1))
    enr=$(($(wc -l < "$6/enrollments.csv") - 1))
    echo "{\"status\":\"applied\",\"counts\":{\"users\":{\"created\":$users},\"enrollments\":{\"created\":$enr}}}"
    ;;
  "scores import --district bench --json "*)
    rows=$(unzip -p "$6" AssessmentResults.csv | awk 'END { print NR - 1 }')
    math=$(unzip -p "$6" AssessmentResults.csv | awk -F, '
      NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "StudentID") s = i; if ($i == "Subject") j = i }; next }
      $j == "Mathematics" && !seen[$s]++ { n++ } END { print n + 0 }')
    if [ -f "$state" ]; then new=0; unchanged=$rows; placed=0; else new=$rows; unchanged=0; placed=$math; fi
    placed=$((placed + ${FAKE_EXTRA_PLACED:-0}))
    echo "{\"status\":\"applied\",\"received\":$rows,\"new\":$new,\"restated\":0,\"unchanged\":$unchanged,\"matched\":$rows,\"unmatched\":0,\"matched_earlier_results\":0,\"students_placed\":$placed,\"without_plan\":0,\"errors\":[],\"error_count\":0,\"warnings\":[]}"
    touch "$state"
    ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
"#;

    fn fake_exe(dir: &Path, body: &str) -> PathBuf {
        let exe = dir.join("fake-rostergate");
        std::fs::write(&exe, body).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread may fork while the file is still open for writing
        // ("text file busy"); wait until it can be executed.
        for _ in 0..100 {
            match Command::new(&exe).output() {
                Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => break,
            }
        }
        exe
    }

    fn tools_available() -> bool {
        ["sqlite3", "unzip"].iter().all(|tool| {
            let found = Command::new(tool).arg("-v").output().is_ok();
            if !found {
                println!("skipped: {tool} is not on PATH");
            }
            found
        })
    }

    #[test]
    fn the_raw_results_table_is_keyed_on_the_test_event() {
        if !tools_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let header = "TermName,StudentID,Subject,TestStartDate,TestStartTime,TestRITScore\n";
        let row = "Fall 2025-2026,1,Mathematics,2025-09-22,08:58:45,234\n";
        let other_subject = "Fall 2025-2026,1,Reading,2025-09-22,08:58:45,201\n";
        let csv = dir.path().join(RESULTS_FILE);
        std::fs::write(&csv, format!("{header}{row}{other_subject}")).unwrap();
        let work = tempfile::tempdir().unwrap();
        let loaded = raw_load::load_sqlite(dir.path(), &RAW_RESULTS, work.path()).unwrap();
        assert_eq!(loaded.rows, 2);
        // The same test event twice breaks the key: the load fails loudly.
        std::fs::write(&csv, format!("{header}{row}{row}")).unwrap();
        let err = raw_load::load_sqlite(dir.path(), &RAW_RESULTS, work.path()).unwrap_err();
        assert!(
            matches!(err, raw_load::RawLoadError::SqliteFailed { .. }),
            "{err}"
        );
        // A file without a key column is refused before anything is loaded.
        std::fs::write(&csv, "TermName,StudentID,Subject,TestStartDate\n").unwrap();
        let err = raw_load::load_sqlite(dir.path(), &RAW_RESULTS, work.path()).unwrap_err();
        assert!(
            err.to_string().contains("no test_start_time column"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn sqlite_benchmark_imports_the_export_twice_and_loads_it_raw() {
        if !tools_available() {
            return;
        }
        let work = tempfile::tempdir().unwrap();
        let opts = ScoresOptions {
            students: vec![200],
            backends: vec![Backend::Sqlite],
            work_dir: work.path().join("bench"),
            exe: fake_exe(work.path(), FAKE_EXE),
        };
        let report = run_scores_benchmark(opts).await.unwrap();
        assert_eq!(report.runs.len(), 1);
        let run = &report.runs[0];
        assert_eq!(run.backend, "sqlite");
        // Every student tested in both subjects in each of the three terms.
        assert_eq!(run.export.students, 200);
        assert_eq!(run.export.math_students, 200);
        assert_eq!(run.export.results, 200 * 2 * 3);
        assert_eq!(run.first.counts, ScoreCounts::first(&run.export));
        assert_eq!(run.again.counts, ScoreCounts::again(&run.export));
        assert_eq!(run.raw.rows, run.export.results);
        assert_eq!(
            run.roster_import.rows,
            run.roster.users + run.roster.enrollments
        );
        assert!(run.first_ratio > 0.0 && run.again_ratio > 0.0);
        assert!(run.first.peak_rss_kib > 0 && run.raw.peak_rss_kib.is_some());
        // Roster, export and databases are cleaned up.
        assert_eq!(
            std::fs::read_dir(work.path().join("bench"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn a_report_with_wrong_counts_fails_the_benchmark() {
        if !tools_available() {
            return;
        }
        let work = tempfile::tempdir().unwrap();
        let body = FAKE_EXE.replacen("#!/bin/sh\n", "#!/bin/sh\nFAKE_EXTRA_PLACED=1\n", 1);
        let opts = ScoresOptions {
            students: vec![20],
            backends: vec![Backend::Sqlite],
            work_dir: work.path().join("bench"),
            exe: fake_exe(work.path(), &body),
        };
        let err = run_scores_benchmark(opts).await.unwrap_err();
        assert!(
            matches!(
                err,
                ScoresBenchError::Bench(BenchError::ImportOutput {
                    step: "scores import",
                    ..
                })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("students_placed: 21 }"), "{err}");
    }

    #[tokio::test]
    async fn a_second_import_that_places_students_fails_the_benchmark() {
        if !tools_available() {
            return;
        }
        let work = tempfile::tempdir().unwrap();
        let body = FAKE_EXE.replacen("placed=0; else", "placed=5; else", 1);
        let opts = ScoresOptions {
            students: vec![20],
            backends: vec![Backend::Sqlite],
            work_dir: work.path().join("bench"),
            exe: fake_exe(work.path(), &body),
        };
        let err = run_scores_benchmark(opts).await.unwrap_err();
        assert!(
            matches!(
                err,
                ScoresBenchError::Bench(BenchError::ImportOutput {
                    step: "scores import (again)",
                    ..
                })
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn postgres_benchmark_uses_a_fresh_database_and_drops_it() {
        let Ok(url) = std::env::var("ROSTERGATE_TEST_POSTGRES_URL") else {
            println!("skipped: ROSTERGATE_TEST_POSTGRES_URL is unset");
            return;
        };
        if !tools_available() {
            return;
        }
        use sqlx::{Connection, PgConnection};
        let Ok(mut admin) = PgConnection::connect(&url).await else {
            println!("skipped: PostgreSQL at ROSTERGATE_TEST_POSTGRES_URL unreachable");
            return;
        };
        let count_sql = "SELECT count(*) FROM pg_database WHERE datname LIKE 'rostergate_bench_%'";
        let before: i64 = sqlx::query_scalar(count_sql)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let work = tempfile::tempdir().unwrap();
        let opts = ScoresOptions {
            students: vec![100],
            backends: vec![Backend::Postgres(url.clone())],
            work_dir: work.path().join("bench"),
            exe: fake_exe(work.path(), FAKE_EXE),
        };
        let report = run_scores_benchmark(opts).await.unwrap();
        let run = &report.runs[0];
        assert_eq!(run.backend, "postgres");
        assert_eq!(run.raw.rows, run.export.results);
        assert_eq!(run.raw.peak_rss_kib, None);
        let after: i64 = sqlx::query_scalar(count_sql)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(after, before);
    }
}
