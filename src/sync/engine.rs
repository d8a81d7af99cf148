//! Runs: stage → validate → diff → guard → apply (one transaction, with outbox events).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use chrono::Utc;
use tokio::sync::mpsc;

use super::input::{Feed, Plan, PlannedKind, SourceEnd, SpentRecords};
use super::known_records::{self, KnownRecords, RemovedTargets};
use super::live_ahead::{LiveAhead, LiveRecords};
use super::progress::{self, Phase, Progress, ProgressFn};
use super::report::{RunReport, RunStatus};
use crate::domain::account::{ambiguity_message, decide, Decision};
use crate::domain::district::District;
use crate::domain::problem::{Location, Problem, ProblemLog, Warning};
use crate::domain::records::{enrollment_cutoff, ColumnType, Mode, RecordKind, SourceRecord};
use crate::domain::run::{AccountCounts, CoachingCounts, Origin};
use crate::domain::thresholds::{hold_reasons, KindCounts};
use crate::store::accounts::{self as account_store, DistrictRef, RosterChanges};
use crate::store::digests::{self, AppliedDigest};
use crate::store::known_records as live_records;
use crate::store::locks::{self, DistrictLock};
use crate::store::sync_apply::{self, CoachingScope};
use crate::store::{connections, districts, runs, staging, Db, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("another sync of district {0} is in progress")]
    Busy(String),
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("run {run} is {status}, not held")]
    NotHeld { run: String, status: String },
    #[error(
        "run {0}: its staged records are gone (the database restarted?); import the bundle again"
    )]
    StagingLost(String),
    #[error("a source sent {0} records its run did not plan to read")]
    Unplanned(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    /// A spooled upload the run reads: if the process dies mid-run, the next run deletes it.
    pub input_file: Option<std::path::PathBuf>,
    /// Notified once the run holds its district and is recorded: a source that costs someone
    /// else work (a pull asks an SIS) waits for it, so a run refused as busy asked for nothing.
    pub started: Option<std::sync::Arc<tokio::sync::Notify>>,
}

#[derive(Clone)]
pub struct Engine {
    db: Db,
    max_reported_errors: usize,
    progress: Option<ProgressFn>,
    /// Bytes a kind's live records (keys, then sourcedIds) may take while its file is compared
    /// with them.
    comparison_bytes: u64,
}

impl Engine {
    pub fn new(db: Db, max_reported_errors: usize) -> Self {
        Engine {
            db,
            max_reported_errors,
            progress: None,
            comparison_bytes: known_records::MAX_HELD_BYTES,
        }
    }

    /// The same engine, holding at most `bytes` of a kind's live records while comparing its
    /// file: their keys, then their sourcedIds if they fit (a kind whose ids do not reads its
    /// live records again at its end). Keys are held up to [`known_records::MAX_KNOWN`] records
    /// whatever the budget.
    pub fn with_comparison_bytes(self, bytes: u64) -> Self {
        Engine {
            comparison_bytes: bytes,
            ..self
        }
    }

    /// The same engine, telling `listener` which phase its runs are in.
    pub fn with_progress(self, listener: ProgressFn) -> Self {
        Engine {
            progress: Some(listener),
            ..self
        }
    }

    fn phase(&self, phase: Phase) {
        progress::report(self.progress.as_ref(), Progress::Phase(phase));
    }

    /// Runs one sync: consumes the feed, waits for the source's end (its own problems, and where
    /// its connection moves), and applies the result unless something is wrong, a safeguard
    /// holds it, or it is a dry run.
    pub async fn run(
        &self,
        district: &District,
        source: &str,
        plan: Plan,
        feed: mpsc::Receiver<Feed>,
        source_end: impl Future<Output = SourceEnd>,
        options: RunOptions,
    ) -> Result<RunReport, SyncError> {
        let locked = self.lock_run(district).await?;
        self.run_locked(locked, source, plan, feed, source_end, options)
            .await
    }

    /// Takes `district`'s lock for a run that [`Engine::run_locked`] then runs. A source that
    /// settles its plan against what the district applied last (a bundle's unchanged files)
    /// reads that under the lock, so no other run changes it in between; and the lock, the
    /// clean-up of runs that died and the connections they need are taken while the source
    /// gets ready (a bundle is hashed), not after.
    #[tracing::instrument(name = "sync_lock", skip_all, fields(district = %district.slug))]
    pub async fn lock_run(&self, district: &District) -> Result<LockedRun, SyncError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let started_at = Utc::now();
        let lock = self.lock(district, &run_id).await?;
        Ok(LockedRun {
            district: district.clone(),
            run_id,
            started_at,
            lock,
            applied: None,
        })
    }

    /// Runs one sync, as [`Engine::run`] does, in a district already locked for it.
    #[tracing::instrument(name = "sync_run", skip_all, fields(district = %locked.district.slug, source = source, run_id = %locked.run_id))]
    pub async fn run_locked(
        &self,
        locked: LockedRun,
        source: &str,
        plan: Plan,
        feed: mpsc::Receiver<Feed>,
        source_end: impl Future<Output = SourceEnd>,
        options: RunOptions,
    ) -> Result<RunReport, SyncError> {
        let LockedRun {
            district,
            run_id,
            started_at,
            lock,
            applied,
        } = locked;
        let district = &district;
        let result = async {
            let run = runs::NewRun {
                id: &run_id,
                district_id: district.id,
                source,
                dry_run: options.dry_run,
                plan: &plan,
                started_at,
                input_file: options.input_file.as_deref().and_then(|p| p.to_str()),
            };
            runs::insert(&self.db, run).await?;
            if let Some(started) = &options.started {
                started.notify_one();
            }
            let mut report = RunReport {
                source: source.to_string(),
                started_at,
                ..placeholder_report(district, &run_id)
            };
            let outcome = self
                .stage_and_apply(
                    district,
                    (&plan, applied),
                    feed,
                    source_end,
                    options,
                    &mut report,
                )
                .await;
            if let Err(e) = &outcome {
                // Whatever went wrong, nothing stays half-staged and the run says it failed.
                tracing::error!(run_id = %run_id, error = %e, "sync run failed");
                let _ = staging::clear(&self.db, &run_id).await;
                report.status = RunStatus::Failed;
                report
                    .errors
                    .push(Problem::file("*", format!("internal error: {e}")));
                report.finished_at = Some(Utc::now());
                let _ = runs::finish(&self.db, &report, 0).await;
            }
            outcome.map(|()| report)
        }
        .await;
        lock.release().await?;
        if let Ok(report) = &result {
            crate::telemetry::metrics().record_run(report.status.as_str());
            tracing::info!(
                status = report.status.as_str(),
                errors = report.errors.len(),
                "sync run finished"
            );
        }
        result
    }

    /// Takes the district's lock for `run_id`, then cleans up after runs that died holding it.
    async fn lock(&self, district: &District, run_id: &str) -> Result<DistrictLock, SyncError> {
        let lock = locks::try_lock(&self.db, district.id, run_id)
            .await?
            .ok_or_else(|| SyncError::Busy(district.slug.to_string()))?;
        if let Err(e) = self.fail_abandoned(district, run_id).await {
            let _ = lock.release().await;
            return Err(e);
        }
        Ok(lock)
    }

    /// Runs still marked running while their district's lock is free died without finishing
    /// (a crash, a kill): each is marked failed with a report saying so, and its staged rows and
    /// spooled upload are deleted. Nothing of such a run was applied (apply is one transaction).
    async fn fail_abandoned(&self, district: &District, current: &str) -> Result<(), SyncError> {
        for abandoned in runs::running_except(&self.db, district.id, current).await? {
            tracing::warn!(abandoned_run = %abandoned.id, "a run that never finished is marked failed");
            staging::clear(&self.db, &abandoned.id).await?;
            if let Some(file) = &abandoned.input_file {
                match std::fs::remove_file(file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not delete an abandoned run's upload")
                    }
                }
            }
            let row = runs::find(&self.db, district.id, &abandoned.id).await?;
            let mut report = placeholder_report(district, &abandoned.id);
            if let Some(row) = row {
                report.source = row.source;
                report.started_at = row.started_at;
            }
            report.status = RunStatus::Failed;
            report.errors.push(Problem::file(
                "*",
                "the gateway process running this sync stopped before it finished; nothing of it was applied",
            ));
            report.finished_at = Some(Utc::now());
            runs::finish(&self.db, &report, 0).await?;
            crate::telemetry::metrics().record_run(report.status.as_str());
        }
        Ok(())
    }

    /// At start-up: finds runs left `running` by a process that is gone and fails them, for
    /// every district whose lock is free. Districts with a live run are left alone.
    pub async fn recover_abandoned_runs(&self) -> Result<usize, SyncError> {
        let mut recovered = 0;
        for district_id in runs::districts_with_running_runs(&self.db).await? {
            let Some(district) = districts::find_by_id(&self.db, district_id).await? else {
                continue;
            };
            let probe = uuid::Uuid::new_v4().to_string();
            if let Some(lock) = locks::try_lock(&self.db, district.id, &probe).await? {
                let result = self.fail_abandoned(&district, &probe).await;
                lock.release().await?;
                result?;
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// `applied`: the digests the district applied last, when the source read them under this
    /// run's lock (nothing can have changed them since).
    async fn stage_and_apply(
        &self,
        district: &District,
        (plan, applied): (&Plan, Option<HashMap<RecordKind, AppliedDigest>>),
        mut feed: mpsc::Receiver<Feed>,
        source_end: impl Future<Output = SourceEnd>,
        options: RunOptions,
        report: &mut RunReport,
    ) -> Result<(), SyncError> {
        let run_id = report.run_id.clone();
        let mut log = ProblemLog::new(self.max_reported_errors);
        let mut known: HashMap<RecordKind, HashSet<String>> = HashMap::new();
        let mut staged = Staged::default();
        let applied = match applied {
            Some(applied) => applied,
            None if plan.kinds.iter().any(|p| p.carried) => {
                digests::applied(&self.db, district.id).await?
            }
            None => HashMap::new(),
        };
        if let Some(problem) = carried_changed(plan, &applied) {
            // The source already skipped those records: this run cannot be completed.
            drop(feed);
            log.error(problem);
            return self.finish(report, log, RunStatus::Failed, 0).await;
        }
        report.carried_over = plan
            .kinds
            .iter()
            .filter(|p| p.carried)
            .map(|p| p.kind.oneroster_name().to_string())
            .collect();
        let mut digests = HashMap::new();
        // This run's plan: a kind compared while read says so in it (and a held run keeps it).
        let mut plan = plan.clone();
        let mut comparing: Option<KnownRecords> = None;
        let mut begun: HashSet<RecordKind> = HashSet::new();
        let compared = (0..plan.kinds.len())
            .filter(|&at| comparable(&plan, at))
            .map(|at| plan.kinds[at].kind)
            .collect();
        let budget = self.comparison_bytes;
        let mut live = LiveAhead::start(self.db.clone(), district.id, compared, budget);
        // Records in effect per compared kind, as counted when their file began.
        let mut counted: HashMap<RecordKind, u64> = HashMap::new();
        let phase_start = std::time::Instant::now();
        let mut spent = SpentRecords::default();
        while let Some(item) = feed.recv().await {
            let (kind, records) = match item {
                Feed::ReturnTo(to) => {
                    spent.return_to(to);
                    continue;
                }
                Feed::Records(kind, records) => (kind, Some(records)),
                Feed::Digest(kind, digest) => {
                    digests.insert(kind, digest);
                    continue;
                }
                Feed::Done(kind) => (kind, None),
            };
            // A compared kind ends with its `Done`, or with the first records of the next kind.
            if comparing
                .as_ref()
                .is_some_and(|c| (c.kind() == kind) == records.is_none())
            {
                let done = comparing.take().expect("checked");
                let done_kind = done.kind();
                let kind_staged = staged.of(done_kind);
                let absent = self
                    .end_comparison(
                        (district.id, &run_id),
                        &mut plan,
                        (done, kind_staged),
                        &mut log,
                    )
                    .await?;
                staged.add(done_kind, absent as usize);
            }
            let Some(records) = records else {
                continue;
            };
            // Applying clears the stages of the kinds the plan reads, so a source must feed no
            // other: such records would be neither applied nor cleared.
            if !plan.kinds.iter().any(|p| p.kind == kind && !p.carried) {
                return Err(SyncError::Unplanned(kind.oneroster_name()));
            }
            if begun.insert(kind) {
                comparing = self
                    .begin_comparison(
                        (district.id, &run_id),
                        &plan,
                        kind,
                        (&mut live, &mut counted),
                    )
                    .await?;
            }
            let records: Vec<SourceRecord> = match comparing.as_mut() {
                Some(known) if known.kind() == kind => {
                    let (changed, unchanged) =
                        records.into_iter().partition(|r| known.must_stage(r));
                    spent.give_back(unchanged);
                    changed
                }
                _ => records,
            };
            if records.is_empty() {
                continue;
            }
            self.check_list_references(district.id, &run_id, &plan, &records, &mut known, &mut log)
                .await?;
            staging::stage(&self.db, &run_id, kind, &records).await?;
            staged.add(kind, records.len());
            crate::telemetry::metrics().record_staged(records.len() as u64);
            spent.give_back(records);
            if log.full() {
                break;
            }
        }
        drop(feed);
        drop(spent);
        drop(live);
        if let Some(done) = comparing.take() {
            let done_kind = done.kind();
            let kind_staged = staged.of(done_kind);
            let absent = self
                .end_comparison(
                    (district.id, &run_id),
                    &mut plan,
                    (done, kind_staged),
                    &mut log,
                )
                .await?;
            staged.add(done_kind, absent as usize);
        }
        if plan.kinds.iter().any(|p| p.unstaged_unchanged.is_some()) {
            runs::set_plan(&self.db, &run_id, &plan).await?;
        }
        let plan = &plan;
        self.phase(Phase::Validating);
        // Only tables that received rows: statistics of an empty stage (a kind carried over,
        // an empty file) would cost an unchanged import more than everything else it does.
        let kinds: Vec<RecordKind> = plan
            .kinds
            .iter()
            .map(|p| p.kind)
            .filter(|&k| staged.has(k))
            .collect();
        staging::analyze_staged(&self.db, &kinds).await?;
        tracing::debug!(
            phase = "stage",
            ms = phase_start.elapsed().as_millis() as u64,
            rows = staged.rows
        );
        let phase_start = std::time::Instant::now();
        let SourceEnd {
            mut problems,
            cursor,
        } = source_end.await;
        if let Some(cursor) = &cursor {
            runs::set_cursor_move(&self.db, &run_id, cursor).await?;
        }
        problems.merge(log);
        let mut log = problems;

        let limit = self.max_reported_errors as i64;
        // Repeats and dangling references are looked for among staged rows only: a kind that
        // received none (carried over, or every record as held) has nothing to check.
        let checked: Vec<&PlannedKind> = plan.kinds.iter().filter(|p| staged.has(p.kind)).collect();
        for planned in checked.iter().copied() {
            if planned.origin == Origin::Endpoint {
                let dropped =
                    staging::drop_earlier_duplicates(&self.db, &run_id, planned.kind).await?;
                if dropped > 0 {
                    log.warn(Problem::at(
                        Location::record(&planned.label, None, None),
                        Some("sourcedId"),
                        format!(
                            "{dropped} records came twice (paging over a collection that changed meanwhile): the later copy of each was kept"
                        ),
                    ));
                }
                continue;
            }
            for dup in staging::duplicates(&self.db, &run_id, planned.kind, limit).await? {
                log.error(Problem::at(
                    planned.locate(dup.line as u64, Some(&dup.sourced_id)),
                    Some("sourcedId"),
                    format!(
                        "duplicate sourcedId {:?} (first on line {})",
                        dup.sourced_id, dup.first_line
                    ),
                ));
            }
        }
        // Reference checks after a parse error would mostly repeat it (a rejected row leaves
        // every reference to it dangling), so they wait until the rows themselves are clean.
        if !log.has_errors() {
            self.check_references(district.id, &run_id, (plan, &checked), &mut log)
                .await?;
        }

        tracing::debug!(
            phase = "validate",
            ms = phase_start.elapsed().as_millis() as u64
        );
        let phase_start = std::time::Instant::now();
        if log.has_errors() {
            staging::clear(&self.db, &run_id).await?;
            return self.finish(report, log, RunStatus::Failed, 0).await;
        }

        self.phase(Phase::Comparing);
        let mut planned_counts = Vec::new();
        for planned in &plan.kinds {
            let (counts, live) = match applied.get(&planned.kind).filter(|_| planned.carried) {
                // Carried over: in effect as counted when applied, and nothing to compare.
                Some(carried) => (
                    KindCounts {
                        unchanged: carried.records,
                        ..KindCounts::default()
                    },
                    carried.records,
                ),
                None => (
                    self.diff(&run_id, district.id, planned).await?,
                    match counted.get(&planned.kind) {
                        Some(&live) => live,
                        None => sync_apply::live_count(&self.db, district.id, planned.kind).await?,
                    },
                ),
            };
            report
                .counts
                .insert(planned.kind.oneroster_name().to_string(), counts);
            planned_counts.push((planned.kind, counts, live));
        }
        let mut reasons: Vec<String> = hold_reasons(&district.settings, &planned_counts)
            .iter()
            .map(|r| r.message())
            .collect();
        if district.settings.review_every_sync {
            reasons
                .push("the district reviews every sync before it is applied (preview mode)".into());
        }
        report.held_reasons = reasons;
        tracing::debug!(
            phase = "diff",
            ms = phase_start.elapsed().as_millis() as u64
        );

        if options.dry_run {
            // Apply and roll back: the counts, coaching included, are exactly what applying would do.
            let diff = report.counts.clone();
            let rehearsed = self
                .apply(district, &run_id, plan, (&diff, &digests), None)
                .await?;
            report.coaching = rehearsed.coaching;
            report.accounts = rehearsed.accounts;
            for warning in rehearsed.warnings {
                log.warn(warning);
            }
            staging::clear(&self.db, &run_id).await?;
            return self.finish(report, log, RunStatus::DryRun, 0).await;
        }
        if !report.held_reasons.is_empty() {
            return self.finish(report, log, RunStatus::Held, staged.rows).await;
        }
        self.supersede_held(district.id, &run_id).await?;
        let (errors, warnings) = log.into_parts();
        report.errors = errors;
        report.warnings = warnings;
        let diff = report.counts.clone();
        self.apply(district, &run_id, plan, (&diff, &digests), Some(report))
            .await?;
        Ok(())
    }

    /// What applying the run would do to one planned kind: the staged rows against the live
    /// ones, and the records found unchanged while read (never staged).
    async fn diff(
        &self,
        run_id: &str,
        district_id: i64,
        planned: &PlannedKind,
    ) -> Result<KindCounts, SyncError> {
        let mut counts = sync_apply::diff(
            &self.db,
            run_id,
            district_id,
            planned.kind,
            planned.compare_mode(),
        )
        .await?;
        counts.unchanged += planned.unstaged_unchanged.unwrap_or(0);
        Ok(counts)
    }

    /// Before a bulk file's first records: the district's records of its kind (read ahead by
    /// `live`), to compare the file with as it is read, when the district has some and not too
    /// many to hold, and every kind it refers to was read before it (so that what the run
    /// removes of those is known). Notes in `counted` how many records of the kind are in effect.
    async fn begin_comparison(
        &self,
        (district_id, run_id): (i64, &str),
        plan: &Plan,
        kind: RecordKind,
        (live, counted): (&mut LiveAhead, &mut HashMap<RecordKind, u64>),
    ) -> Result<Option<KnownRecords>, SyncError> {
        let Some(at) = plan.kinds.iter().position(|p| p.kind == kind) else {
            return Ok(None);
        };
        if !comparable(plan, at) {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let (records, loader) = match live.take(kind).await? {
            LiveRecords::Empty => {
                counted.insert(kind, 0);
                return Ok(None);
            }
            LiveRecords::TooMany => return Ok(None),
            LiveRecords::Read { live, loader } => (live, loader),
        };
        counted.insert(kind, records);
        let mut removed = Vec::new();
        for (index, column) in kind.columns().iter().enumerate() {
            let Some(target) = column.references else {
                continue;
            };
            let Some(target_plan) = plan.kinds.iter().find(|p| p.kind == target) else {
                continue;
            };
            if target_plan.carried {
                continue;
            }
            let ids = sync_apply::removed_ids(
                &self.db,
                run_id,
                district_id,
                (target, target_plan.compare_mode()),
                known_records::MAX_REMOVED_TARGETS,
            )
            .await?;
            match ids {
                None => return Ok(None),
                Some(ids) if ids.is_empty() => {}
                Some(ids) => removed.push(RemovedTargets {
                    index,
                    ty: column.ty,
                    ids: ids.into_iter().collect(),
                }),
            }
        }
        let known = loader.finish(kind, removed);
        tracing::debug!(
            step = "compare_begin",
            kind = kind.oneroster_name(),
            records,
            ms = started.elapsed().as_millis() as u64
        );
        Ok(known)
    }

    /// After a compared kind's last record: stages the removal of every record in effect the
    /// file did not have, reports a staged record whose sourcedId the file also repeated
    /// unchanged (a duplicate the staged rows alone do not show), and notes in the plan how many
    /// records were not staged. `staged` is how many records of the kind the file staged
    /// (changed or new). Returns how many removals were staged.
    async fn end_comparison(
        &self,
        (district_id, run_id): (i64, &str),
        plan: &mut Plan,
        (mut known, staged): (KnownRecords, u64),
        log: &mut ProblemLog,
    ) -> Result<u64, SyncError> {
        let kind = known.kind();
        let started = std::time::Instant::now();
        if staged >= REFRESH_STAGE_STATISTICS_AT {
            // The stage's statistics predate the run's rows, and PostgreSQL would take the run
            // for one that staged none: each statement below would read all its staged rows
            // (255 s for 1,465 statements when all 732,242 enrollments of a district changed).
            staging::analyze_staged(&self.db, &[kind]).await?;
        }
        // The staged rows that meet a live one first: each is reported if the file also
        // repeated that record unchanged, and noted, so that a changed record is not taken for
        // one the file no longer has (when every record changed, 1,465 statements of 7 ms at
        // 100,000 students found nothing absent).
        let planned = plan
            .kinds
            .iter_mut()
            .find(|p| p.kind == kind)
            .expect("a compared kind is planned");
        let mut after: Option<String> = None;
        loop {
            let page = live_records::staged_over_live(
                &self.db,
                run_id,
                district_id,
                kind,
                after.as_deref(),
            )
            .await?;
            for row in &page {
                if let Some(repeated) = known.repeated_on(&row.sourced_id, row.live_hash) {
                    // Reported on the later line, as a duplicate among staged rows is.
                    let staged = row.line as u64;
                    let (first, later) = (staged.min(repeated), staged.max(repeated));
                    log.error(Problem::at(
                        planned.locate(later, Some(&row.sourced_id)),
                        Some("sourcedId"),
                        format!(
                            "duplicate sourcedId {:?} (first on line {first})",
                            row.sourced_id
                        ),
                    ));
                }
                known.note_staged(&row.sourced_id, row.live_hash);
            }
            if (page.len() as i64) < live_records::PAGE {
                break;
            }
            after = page.last().map(|row| row.sourced_id.clone());
        }
        planned.unstaged_unchanged = Some(known.unchanged());
        tracing::debug!(
            step = "compare_repeats",
            kind = kind.oneroster_name(),
            unchanged = known.unchanged(),
            ms = started.elapsed().as_millis() as u64
        );
        let started = std::time::Instant::now();
        let mut absent_staged = 0;
        let held = known.maybe_absent_ids();
        if let Some(ids) = &held {
            for ids in ids.chunks(ABSENT_PER_STATEMENT) {
                absent_staged +=
                    live_records::stage_absent(&self.db, run_id, district_id, kind, ids).await?;
            }
        } else {
            let mut after: Option<String> = None;
            loop {
                let page =
                    live_records::live_page(&self.db, district_id, kind, after.as_deref()).await?;
                let absent: Vec<&str> = page
                    .records()?
                    .into_iter()
                    .filter(|&(id, hash)| known.maybe_absent(id, hash))
                    .map(|(id, _)| id)
                    .collect();
                for ids in absent.chunks(ABSENT_PER_STATEMENT) {
                    absent_staged +=
                        live_records::stage_absent(&self.db, run_id, district_id, kind, ids)
                            .await?;
                }
                drop(absent);
                if page.is_last() {
                    break;
                }
                after = page.last;
            }
        }
        tracing::debug!(
            step = "compare_absent",
            kind = kind.oneroster_name(),
            absent = absent_staged,
            ids_held = held.is_some(),
            ms = started.elapsed().as_millis() as u64
        );
        Ok(absent_staged)
    }

    /// The digests the district's live rows were applied from, by kind: what a source compares
    /// its input with to carry kinds over. Read under `locked`'s lock, and kept with it: the run
    /// checks its carried kinds against them without reading them again.
    pub async fn applied_digests(
        &self,
        locked: &mut LockedRun,
    ) -> Result<HashMap<RecordKind, String>, SyncError> {
        let applied = digests::applied(&self.db, locked.district.id).await?;
        let digests = applied
            .iter()
            .map(|(kind, applied)| (*kind, applied.digest.clone()))
            .collect();
        locked.applied = Some(applied);
        Ok(digests)
    }

    /// Applies a run's staged rows in one transaction that also records the run as applied, with
    /// the digests its bulk kinds were read from. Without a report to complete, it is a
    /// rehearsal: everything is rolled back.
    async fn apply(
        &self,
        district: &District,
        run_id: &str,
        plan: &Plan,
        (diff, digests): (&BTreeMap<String, KindCounts>, &HashMap<RecordKind, String>),
        report: Option<&mut RunReport>,
    ) -> Result<Applied, SyncError> {
        self.phase(Phase::Applying);
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        // A write first: SQLite then takes its write lock at once (waiting for it if need be),
        // where a transaction that read first fails to upgrade if another write came between.
        districts::bump_roster_version(&mut tx, district.id).await?;
        sync_apply::settle_apply_transaction(&mut tx).await?;
        let phase_start = std::time::Instant::now();
        let cutoff = enrollment_cutoff(
            district.timezone.today(),
            district.settings.end_date_inclusive,
        );
        let coaching_scope = self
            .coaching_scope(&mut tx, district.id, run_id, plan, (diff, cutoff))
            .await?;
        for planned in &plan.kinds {
            let counts = diff
                .get(planned.kind.oneroster_name())
                .copied()
                .unwrap_or(KindCounts {
                    created: 1,
                    updated: 1,
                    deleted: 1,
                    unchanged: 0,
                });
            sync_apply::apply_kind(
                &mut tx,
                run_id,
                district.id,
                (planned.kind, planned.compare_mode()),
                counts,
                now,
            )
            .await?;
        }
        // Coaching is planned on these tables' statistics: refreshed when a district's share of
        // one at least doubles (a first import); smaller drift is autovacuum's to catch.
        let doubled = [
            RecordKind::Classes,
            RecordKind::Users,
            RecordKind::Enrollments,
        ]
        .iter()
        .filter_map(|k| diff.get(k.oneroster_name()))
        .any(|c| c.created > 0 && c.created >= c.updated + c.unchanged);
        if doubled {
            sync_apply::analyze_applied(&mut tx).await?;
        }
        tracing::debug!(
            phase = "apply",
            ms = phase_start.elapsed().as_millis() as u64
        );
        let phase_start = std::time::Instant::now();
        let (accounts, warnings) = self
            .provision_accounts(&mut tx, district, run_id, plan, diff, now)
            .await?;
        if doubled {
            sync_apply::analyze_accounts(&mut tx).await?;
        }
        tracing::debug!(
            phase = "accounts",
            ms = phase_start.elapsed().as_millis() as u64
        );
        // Results stored before their students were rostered are matched (and placed) now.
        let users_moved = diff
            .get(RecordKind::Users.oneroster_name())
            .is_some_and(|c| c.created > 0 || c.updated > 0);
        if users_moved {
            let matched = crate::scores::ingest::match_late(
                &mut tx,
                district,
                &crate::scores::plans(),
                run_id,
            )
            .await?;
            tracing::debug!(phase = "scores", matched);
        }
        let phase_start = std::time::Instant::now();
        self.phase(Phase::Coaching);
        let coaching = match coaching_scope {
            Some(scope) => {
                let counts =
                    sync_apply::derive_coaching(&mut tx, run_id, district.id, (cutoff, scope), now)
                        .await?;
                sync_apply::set_coaching_cutoff(&mut tx, district.id, cutoff).await?;
                if doubled {
                    sync_apply::analyze_coaching(&mut tx).await?;
                }
                counts
            }
            None => CoachingCounts::default(),
        };
        tracing::debug!(
            phase = "coaching",
            ms = phase_start.elapsed().as_millis() as u64
        );
        match report {
            Some(report) => {
                // A carried kind was never read, so never staged; the coaching stages were
                // emptied by the derivation that filled them.
                let read: Vec<RecordKind> = plan
                    .kinds
                    .iter()
                    .filter(|p| !p.carried)
                    .map(|p| p.kind)
                    .collect();
                staging::clear_kinds_in(&mut tx, run_id, &read).await?;
                if let Some(cursor) = runs::cursor_move_in(&mut tx, run_id).await? {
                    connections::advance_in(&mut tx, district.id, &cursor, now).await?;
                }
                digests::record_in(&mut tx, district.id, run_id, plan, (digests, diff)).await?;
                report.status = RunStatus::Applied;
                report.coaching = coaching;
                report.accounts = accounts;
                report
                    .warnings
                    .extend(warnings.iter().cloned().map(|problem| Warning {
                        problem,
                        occurrences: 1,
                    }));
                report.finished_at = Some(Utc::now());
                runs::finish_in(&mut tx, report, 0).await?;
                let phase_start = std::time::Instant::now();
                tx.commit().await?;
                tracing::debug!(
                    phase = "commit",
                    ms = phase_start.elapsed().as_millis() as u64
                );
            }
            None => tx.rollback().await?,
        }
        Ok(Applied {
            coaching,
            accounts,
            warnings,
        })
    }

    /// Which coaching the run must derive again, decided (and, when only some, written)
    /// before its changes are applied: every class's when there was no derivation yet; none when
    /// nothing coaching depends on changes (enrollments, and users or classes coming or going;
    /// their other details never move it) and the cut-off date is the last derivation's; else
    /// what the run's changes touch (a changed enrollment's user in its class, a class that
    /// comes or goes whole) and, when the cut-off moved, the users of the enrollments that
    /// ended between the two, in their classes.
    async fn coaching_scope(
        &self,
        tx: &mut crate::store::Tx,
        district_id: i64,
        run_id: &str,
        plan: &Plan,
        (diff, cutoff): (&BTreeMap<String, KindCounts>, chrono::NaiveDate),
    ) -> Result<Option<CoachingScope>, SyncError> {
        let Some(last_cutoff) = sync_apply::coaching_cutoff(tx, district_id).await? else {
            return Ok(Some(CoachingScope::AllClasses));
        };
        let inputs_change = Self::coaching_inputs_change(diff);
        if last_cutoff == cutoff && !inputs_change {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        // With nothing coaching depends on changed, the run's own changes mark no class (and
        // are not looked for): only the new day's do.
        let modes: Vec<(RecordKind, Mode)> = if inputs_change {
            plan.kinds
                .iter()
                .map(|p| (p.kind, p.compare_mode()))
                .collect()
        } else {
            Vec::new()
        };
        // A new day (the nightly sync's case) moves only the coaching of the enrollments that
        // ended between the two cut-offs.
        let day_moved = (last_cutoff != cutoff).then_some((last_cutoff, cutoff));
        let marked = sync_apply::mark_coaching(tx, run_id, district_id, &modes, day_moved).await?;
        tracing::debug!(
            step = "coaching_scope",
            marks = marked,
            ms = started.elapsed().as_millis() as u64
        );
        Ok(Some(CoachingScope::Marked))
    }

    /// Whether the run changes anything coaching depends on.
    fn coaching_inputs_change(diff: &BTreeMap<String, KindCounts>) -> bool {
        let changed = |kind: RecordKind, f: fn(&KindCounts) -> u64| {
            diff.get(kind.oneroster_name()).is_some_and(|c| f(c) > 0)
        };
        changed(RecordKind::Classes, |c| c.created + c.deleted)
            || changed(RecordKind::Users, |c| c.created + c.deleted)
            || changed(RecordKind::Enrollments, |c| {
                c.created + c.updated + c.deleted
            })
    }

    /// Provisions and links accounts for the users the run brought in, and moves roster
    /// statuses, inside the applying transaction. Steps nothing in the run could affect are
    /// skipped. Ambiguous matches become warnings naming the user's sourcedId only.
    async fn provision_accounts(
        &self,
        tx: &mut crate::store::Tx,
        district: &District,
        run_id: &str,
        plan: &Plan,
        diff: &BTreeMap<String, KindCounts>,
        now: chrono::DateTime<Utc>,
    ) -> Result<(AccountCounts, Vec<Problem>), SyncError> {
        let changed = |kind: RecordKind, f: fn(&KindCounts) -> u64| {
            diff.get(kind.oneroster_name()).is_some_and(|c| f(c) > 0)
        };
        let changes = RosterChanges {
            users_entered_or_changed: changed(RecordKind::Users, |c| c.created + c.updated)
                || changed(RecordKind::Roles, |c| c.created + c.updated + c.deleted),
            users_removed: changed(RecordKind::Users, |c| c.deleted),
        };
        let (counts, ambiguous) = account_store::provision(
            tx,
            run_id,
            DistrictRef {
                id: district.id,
                slug: district.slug.as_str(),
            },
            &district.settings.identity_keys,
            changes,
            now,
            self.max_reported_errors as i64,
        )
        .await?;
        let label = plan.label(RecordKind::Users);
        let warnings = ambiguous
            .iter()
            .filter(|a| decide(a.candidates as u64, a.claimants as u64) == Decision::NewAmbiguous)
            .map(|a| {
                Problem::file(
                    label.clone(),
                    ambiguity_message(&a.user_sourced_id, a.candidates as u64, a.claimants as u64),
                )
            })
            .collect();
        Ok((counts, warnings))
    }

    async fn finish(
        &self,
        report: &mut RunReport,
        log: ProblemLog,
        status: RunStatus,
        staged_rows: i64,
    ) -> Result<(), SyncError> {
        let (errors, warnings) = log.into_parts();
        report.errors = errors;
        report.warnings = warnings;
        report.status = status;
        report.finished_at = Some(Utc::now());
        runs::finish(&self.db, report, staged_rows).await?;
        Ok(())
    }

    /// Validates list-valued references (class terms, user orgs) against the small kinds they
    /// point at, which are complete by the time the referring kind arrives.
    async fn check_list_references(
        &self,
        district_id: i64,
        run_id: &str,
        plan: &Plan,
        records: &[SourceRecord],
        known: &mut HashMap<RecordKind, HashSet<String>>,
        log: &mut ProblemLog,
    ) -> Result<(), SyncError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let kind = first.kind;
        for (index, column) in kind.columns().iter().enumerate() {
            let (ColumnType::List, Some(target)) = (column.ty, column.references) else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = known.entry(target) {
                let mode = plan.compare_mode(target);
                slot.insert(staging::known_ids(&self.db, run_id, district_id, target, mode).await?);
            }
            let ids = &known[&target];
            let planned = plan.planned(kind);
            for record in records {
                let Some(list) = record.values[index].as_text() else {
                    continue;
                };
                for id in list.split(',') {
                    if !ids.contains(id) {
                        let (at, field) = match planned {
                            Some(p) => (
                                p.locate(record.line, Some(&record.sourced_id)),
                                p.field(&column.field_name()),
                            ),
                            None => (
                                Location::File {
                                    file: kind.oneroster_name().to_string(),
                                    line: Some(record.line),
                                },
                                column.field_name(),
                            ),
                        };
                        log.error(Problem::at(
                            at,
                            Some(&field),
                            format!("{id:?} is not a known {}", target.oneroster_name()),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    async fn check_references(
        &self,
        district_id: i64,
        run_id: &str,
        (plan, checked): (&Plan, &[&PlannedKind]),
        log: &mut ProblemLog,
    ) -> Result<(), SyncError> {
        let limit = self.max_reported_errors as i64;
        for planned in checked {
            for column in planned.kind.columns() {
                let (ColumnType::Text, Some(target)) = (column.ty, column.references) else {
                    continue;
                };
                let dangling = staging::dangling_references(
                    &self.db,
                    run_id,
                    district_id,
                    (planned.kind, column),
                    plan.compare_mode(target),
                    limit,
                )
                .await?;
                for d in dangling {
                    log.error(Problem::at(
                        planned.locate(d.line as u64, Some(&d.sourced_id)),
                        Some(&planned.field(&column.field_name())),
                        format!("{:?} is not a known {}", d.value, target.oneroster_name()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A newer applied run makes older held runs moot.
    async fn supersede_held(&self, district_id: i64, run_id: &str) -> Result<(), SyncError> {
        for id in runs::held_ids(&self.db, district_id, run_id).await? {
            staging::clear(&self.db, &id).await?;
            runs::set_status(&self.db, &id, RunStatus::Superseded).await?;
        }
        Ok(())
    }

    async fn held_run(&self, district: &District, run_id: &str) -> Result<runs::RunRow, SyncError> {
        let row = runs::find(&self.db, district.id, run_id)
            .await?
            .ok_or_else(|| SyncError::RunNotFound(run_id.to_string()))?;
        if row.status() != Some(RunStatus::Held) {
            return Err(SyncError::NotHeld {
                run: run_id.to_string(),
                status: row.status.clone(),
            });
        }
        Ok(row)
    }

    /// Applies a held run after an administrator looked at it. The comparison is made again:
    /// the store may have changed since the run was held.
    pub async fn approve(&self, district: &District, run_id: &str) -> Result<RunReport, SyncError> {
        let row = self.held_run(district, run_id).await?;
        let lock = self.lock(district, run_id).await?;
        let result = async {
            if staging::staged_rows(&self.db, run_id).await? != row.staged_rows {
                staging::clear(&self.db, run_id).await?;
                runs::set_status(&self.db, run_id, RunStatus::Failed).await?;
                return Err(SyncError::StagingLost(run_id.to_string()));
            }
            let plan = row.plan()?;
            let mut report = row
                .report()
                .unwrap_or_else(|| placeholder_report(district, run_id));
            for planned in plan.kinds.iter().filter(|p| !p.carried) {
                // A carried kind keeps its held counts: nothing was applied since (a newer
                // applied run would have superseded this one).
                let counts = self.diff(run_id, district.id, planned).await?;
                report
                    .counts
                    .insert(planned.kind.oneroster_name().to_string(), counts);
            }
            report.held_reasons.clear();
            self.supersede_held(district.id, run_id).await?;
            // A held run's digests were not kept: its kinds are read in full next time.
            let diff = report.counts.clone();
            let digests = HashMap::new();
            self.apply(
                district,
                run_id,
                &plan,
                (&diff, &digests),
                Some(&mut report),
            )
            .await?;
            Ok(report)
        }
        .await;
        lock.release().await?;
        result
    }

    /// Drops a held run: nothing of it is applied.
    pub async fn discard(&self, district: &District, run_id: &str) -> Result<RunReport, SyncError> {
        let row = self.held_run(district, run_id).await?;
        staging::clear(&self.db, run_id).await?;
        let mut report = row
            .report()
            .unwrap_or_else(|| placeholder_report(district, run_id));
        report.status = RunStatus::Discarded;
        report.finished_at = Some(Utc::now());
        runs::finish(&self.db, &report, 0).await?;
        Ok(report)
    }

    /// Records a run whose input could not even be opened (no manifest, not a zip…).
    pub async fn record_failure(
        &self,
        district: &District,
        source: &str,
        log: ProblemLog,
    ) -> Result<RunReport, SyncError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let now = Utc::now();
        let run = runs::NewRun {
            id: &run_id,
            district_id: district.id,
            source,
            dry_run: false,
            plan: &Plan::default(),
            started_at: now,
            input_file: None,
        };
        runs::insert(&self.db, run).await?;
        let mut report = RunReport {
            source: source.to_string(),
            started_at: now,
            ..placeholder_report(district, &run_id)
        };
        self.finish(&mut report, log, RunStatus::Failed, 0).await?;
        crate::telemetry::metrics().record_run(report.status.as_str());
        Ok(report)
    }
}

/// A district locked for a run that has not begun: see [`Engine::lock_run`]. Dropped unused, or
/// given back with [`LockedRun::release`], it frees the district.
pub struct LockedRun {
    district: District,
    run_id: String,
    started_at: chrono::DateTime<Utc>,
    lock: DistrictLock,
    /// The digests the district applied last, once read under this lock.
    applied: Option<HashMap<RecordKind, AppliedDigest>>,
}

impl LockedRun {
    /// Frees the district without running anything (the source could not get ready).
    pub async fn release(self) -> Result<(), SyncError> {
        Ok(self.lock.release().await?)
    }
}

/// What a run staged: how many rows, and of which kinds.
#[derive(Default)]
struct Staged {
    /// Rows staged per kind, for the kinds that staged any.
    kinds: HashMap<RecordKind, u64>,
    rows: i64,
}

impl Staged {
    fn add(&mut self, kind: RecordKind, rows: usize) {
        if rows > 0 {
            *self.kinds.entry(kind).or_default() += rows as u64;
            self.rows += rows as i64;
        }
    }

    fn has(&self, kind: RecordKind) -> bool {
        self.kinds.contains_key(&kind)
    }

    fn of(&self, kind: RecordKind) -> u64 {
        self.kinds.get(&kind).copied().unwrap_or(0)
    }
}

/// Whether the file of the plan's `at`-th kind is compared with the district's records as it is
/// read: a bulk file (not carried over) whose references all point at kinds read before it.
fn comparable(plan: &Plan, at: usize) -> bool {
    let planned = &plan.kinds[at];
    if planned.origin != Origin::File || planned.mode != Mode::Bulk || planned.carried {
        return false;
    }
    planned.kind.columns().iter().all(|column| {
        column.references.is_none_or(|target| {
            plan.kinds
                .iter()
                .position(|p| p.kind == target)
                .is_none_or(|target_at| target_at < at)
        })
    })
}

/// Removals of absent records staged per statement (an `IN` list of sourcedIds).
const ABSENT_PER_STATEMENT: usize = 500;

/// Rows of a kind a run stages from which the stage's statistics are refreshed before its
/// removals are looked for.
const REFRESH_STAGE_STATISTICS_AT: u64 = 20_000;

/// What applying a run did (or, rehearsed, would do) beyond the records themselves.
struct Applied {
    coaching: CoachingCounts,
    accounts: AccountCounts,
    /// Ambiguous identity matches, for the run's warnings.
    warnings: Vec<Problem>,
}

/// A kind the source carried over must still be as the plan found it: another run of the
/// district may have applied between the source's look and this run taking the lock.
fn carried_changed(plan: &Plan, applied: &HashMap<RecordKind, AppliedDigest>) -> Option<Problem> {
    plan.kinds
        .iter()
        .find(|p| p.carried && applied.get(&p.kind).map(|a| &a.digest) != p.digest.as_ref())
        .map(|p| {
            Problem::file(
                &p.label,
                format!(
                    "another sync changed this district's {} while this run was starting; run it again",
                    p.kind.oneroster_name()
                ),
            )
        })
}

/// A report with nothing in it yet.
fn placeholder_report(district: &District, run_id: &str) -> RunReport {
    RunReport {
        run_id: run_id.to_string(),
        district: district.slug.to_string(),
        source: String::new(),
        status: RunStatus::Running,
        counts: BTreeMap::new(),
        coaching: CoachingCounts::default(),
        accounts: AccountCounts::default(),
        held_reasons: Vec::new(),
        carried_over: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        started_at: Utc::now(),
        finished_at: None,
    }
}
