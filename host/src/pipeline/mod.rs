//! One run of one pipeline: discover → reconcile → transfer → decode →
//! transform → write → commit, one file per stage: discovery is a plugin
//! call made here, then [`reconcile`], `deliver` (transfer, or a
//! server-side copy, with `shape` and `payload`), `decode` (decode,
//! transform, write), [`commit`]; `report` tells how it went. With
//! `[leases]`, `shared_work` hands out the planned work a series at a time
//! under the series' `lease`.
//!
//! Owns: the order of the stages and the retry loop per artifact, acting on
//! the one classification of errors in `attempt` (retry, quarantine or
//! failure). Every step is restartable: outputs
//! are published atomically under names derived from the artifact, and the
//! manifest entry is written last, so a crash anywhere leaves the lake
//! consistent and the next run finishes the job without duplicating rows.
//! It must not parse exchange data (plugins do) or know file formats beyond
//! what [`crate::lake`] and [`crate::transfer`] expose.

mod attempt;
mod commit;
mod decode;
mod deliver;
mod estimate;
mod lease;
mod payload;
mod reconcile;
mod report;
mod shape;
mod shard;
mod shared_work;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tracing::Instrument;

use attempt::Attempt;
pub use commit::QuarantineNote;
pub use decode::{Configured, DecodeError};
pub use estimate::{Estimate, Rate};
pub use lease::{Heartbeat, HeldLease, Leases, ReplicaState, ReplicaStatus, replicas};
pub use reconcile::{Planned, Prior, Reason};
pub use report::{
    ArtifactReport, MissingSeries, Outcome, PlanReport, PlannedArtifact, RunCounts, RunReport,
};
pub use shard::Shard;

use crate::config::PipelineSpec;
use crate::lake::manifest::Lineage;
use crate::lake::{Lake, layout};
use crate::plugin::PluginCallError;
use crate::telemetry::metrics;
use crate::telemetry::progress::Progress;
use crate::transfer;
use crate::transfer::rate::RateLimiter;
use crate::wit::{Artifact, Window};

/// Everything a pipeline run needs.
#[derive(Clone)]
pub struct PipelineRun {
    /// The pipeline.
    pub spec: PipelineSpec,
    /// Its source plugin and params.
    pub source: Configured,
    /// Its transforms and params.
    pub transforms: Vec<Configured>,
    /// The lake.
    pub lake: Lake,
    /// HTTP client for transfers.
    pub http: reqwest::Client,
    /// Paces this pipeline's transfer requests, when configured.
    pub rate: Option<Arc<RateLimiter>>,
    /// Set when the agent is stopping: no new artifact starts.
    pub stop: StopSignal,
    /// Told how far the run is, for progress bars.
    pub progress: Option<Arc<dyn Progress>>,
    /// Download again archives quarantined by an earlier run even when the
    /// source has not changed them (`sync --retry-quarantined`).
    pub retry_quarantined: bool,
    /// Only the series in this shard (`sync --shard I/N`); all when `None`.
    pub shard: Option<Shard>,
    /// Shares the work with other replicas, a series at a time under its
    /// lease (`[leases]`, `run` only); all work is this agent's when `None`.
    pub leases: Option<Arc<Leases>>,
}

/// Tells a run to start no new artifacts; those in flight finish.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<std::sync::atomic::AtomicBool>);

impl StopSignal {
    /// Asks the runs holding this signal to stop starting artifacts.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A run-level failure (no artifact could even be planned).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Discovery failed.
    #[error("pipeline `{pipeline}`: discovery failed: {source}")]
    Discover {
        /// The pipeline.
        pipeline: String,
        /// The cause.
        source: PluginCallError,
    },
    /// The lake could not be read.
    #[error("pipeline `{pipeline}`: {source}")]
    Lake {
        /// The pipeline.
        pipeline: String,
        /// The cause.
        source: crate::lake::LakeError,
    },
    /// A blocking task panicked or was cancelled.
    #[error("pipeline `{pipeline}`: internal task failed: {message}")]
    Task {
        /// The pipeline.
        pipeline: String,
        /// What happened.
        message: String,
    },
}

impl PipelineRun {
    /// Lists what exists and decides what must be done.
    pub async fn plan(&self, window: &Window) -> Result<Planned, PipelineError> {
        let source = self.source.clone();
        let window_owned = window.clone();
        let started = Instant::now();
        let span = tracing::info_span!("discover", pipeline = %self.spec.name);
        let mut discovered = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            source
                .plugin
                .current()
                .discover(&source.params, &window_owned)
        })
        .await
        .map_err(|e| self.task_error(e))?
        .map_err(|source| PipelineError::Discover {
            pipeline: self.spec.name.clone(),
            source,
        })?;
        metrics::stage(&self.spec.name, metrics::Stage::Discover, started.elapsed());
        if let Some(shard) = self.shard {
            let listed = discovered.len();
            discovered.retain(|artifact| shard.contains(&artifact.partition));
            tracing::info!(
                pipeline = %self.spec.name,
                shard = %shard,
                listed,
                in_shard = discovered.len(),
                "Kept the artifacts of this shard's series."
            );
        }
        metrics::artifacts_discovered(&self.spec.name, discovered.len());
        let reconcile_started = Instant::now();
        let planned = reconcile::reconcile(
            &self.lake,
            &self.spec.name,
            discovered,
            self.retry_quarantined,
        )
        .await
        .map_err(|source| self.lake_error(source))?;
        metrics::stage(
            &self.spec.name,
            metrics::Stage::Reconcile,
            reconcile_started.elapsed(),
        );
        Ok(planned)
    }

    /// What a run over `window` would do, without doing it.
    pub async fn dry_run(&self, window: &Window) -> Result<PlanReport, PipelineError> {
        let planned = self.plan(window).await?;
        let mut still_quarantined: Vec<String> = planned
            .still_quarantined
            .iter()
            .map(|(artifact, _)| artifact.key.clone())
            .collect();
        still_quarantined.sort();
        let mut items: Vec<PlannedArtifact> = planned
            .todo
            .iter()
            .map(|(a, reason, _)| PlannedArtifact {
                key: a.key.clone(),
                reason: *reason,
                size: a.size,
            })
            .collect();
        items.sort_by(|a, b| a.key.cmp(&b.key));
        let rejected_for_no_checksum = planned
            .todo
            .iter()
            .filter(|(a, _, _)| self.rejects_for_no_checksum(a))
            .count();
        if rejected_for_no_checksum > 0 {
            tracing::warn!(
                pipeline = %self.spec.name,
                artifacts = rejected_for_no_checksum,
                "The source publishes no checksum for these archives, and missing_checksum = \"reject\" fails them: set missing_checksum = \"accept\" to take them unverified."
            );
        }
        Ok(PlanReport {
            pipeline: self.spec.name.clone(),
            rejected_for_no_checksum,
            discovered: planned.discovered,
            up_to_date: planned.discovered - items.len() - still_quarantined.len(),
            still_quarantined,
            total_bytes: items.iter().filter_map(|a| a.size).sum(),
            unknown_sizes: items.iter().filter(|a| a.size.is_none()).count(),
            planned: items,
            missing: planned.missing,
            shard: self.shard,
        })
    }

    /// What `plan` (this pipeline's [`PipelineRun::dry_run`]) would cost, at
    /// the rates the last stored run report of this pipeline (and shard)
    /// measured.
    pub async fn estimate(&self, plan: &PlanReport) -> Estimate {
        let key = self.run_report_key();
        let last: Option<estimate::LastRun> = match self.lake.get(&key).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(pipeline = %self.spec.name, error = %error, "Could not read the last run report; estimating without its rates.");
                None
            }
        };
        estimate::estimate(&self.spec, plan, last.as_ref())
    }

    /// Runs the pipeline over `window`.
    pub async fn run(&self, window: &Window) -> Result<RunReport, PipelineError> {
        let span = tracing::info_span!(
            "pipeline.run",
            pipeline = %self.spec.name,
            window.start = window.start.as_deref().unwrap_or(""),
            window.end = window.end.as_deref().unwrap_or(""),
        );
        self.run_in_span(window).instrument(span).await
    }

    async fn run_in_span(&self, window: &Window) -> Result<RunReport, PipelineError> {
        let started = Instant::now();
        // Leases are listed before the lake is reconciled: a series whose
        // lease was written since is checked again when claimed.
        let shared = match &self.leases {
            Some(leases) => {
                let listed = leases
                    .listed(&self.spec.name)
                    .await
                    .map_err(|source| self.lake_error(source))?;
                Some(shared_work::SharedWork::new(
                    Arc::clone(leases),
                    &self.spec.name,
                    listed,
                ))
            }
            None => None,
        };
        let Planned {
            todo,
            still_quarantined,
            discovered,
            missing,
        } = self.plan(window).await?;
        tracing::info!(
            pipeline = %self.spec.name,
            discovered,
            to_process = todo.len(),
            still_quarantined = still_quarantined.len(),
            up_to_date = discovered - todo.len() - still_quarantined.len(),
            "Planned pipeline run."
        );
        let skipped: Vec<ArtifactReport> = still_quarantined
            .into_iter()
            .map(|(artifact, note)| {
                tracing::warn!(
                    pipeline = %self.spec.name,
                    artifact = %artifact.key,
                    quarantined_at = %note.quarantined_at,
                    error = %note.reason,
                    "Artifact still quarantined and unchanged at the source; not downloaded again."
                );
                metrics::artifact_finished(
                    &self.spec.name,
                    metrics::ArtifactOutcome::StillQuarantined,
                );
                ArtifactReport::new(
                    artifact.key,
                    Reason::New,
                    Outcome::StillQuarantined {
                        quarantine_reason: note.reason,
                        quarantined_at: note.quarantined_at,
                    },
                    std::time::Duration::ZERO,
                )
            })
            .collect();
        let planned = todo.len();
        if let Some(progress) = &self.progress {
            progress.planned(planned, todo.iter().filter_map(|(a, _, _)| a.size).sum());
        }
        let stop = self.stop.clone();
        let work = match &shared {
            None => futures::stream::iter(todo).map(|t| (t, None)).boxed(),
            Some(shared) => shared
                .claimed(self.clone(), todo)
                .map(|(t, ticket)| (t, Some(ticket)))
                .boxed(),
        };
        let mut artifacts: Vec<ArtifactReport> = work
            .take_while(|_| std::future::ready(!stop.is_stopped()))
            .map(|((artifact, reason, prior), ticket)| {
                let shared = shared.clone();
                async move {
                    let report = self.process(artifact, reason, prior).await;
                    if let (Some(shared), Some(ticket)) = (shared, ticket) {
                        shared.done(&ticket).await;
                    }
                    report
                }
            })
            .buffer_unordered(self.spec.concurrency)
            .collect()
            .await;
        let elsewhere = match &shared {
            Some(shared) => {
                shared.finish().await;
                shared.elsewhere()
            }
            None => 0,
        };
        let deferred = planned.saturating_sub(artifacts.len() + elsewhere);
        artifacts.extend(skipped);
        if let Some(progress) = &self.progress {
            progress.finished();
        }
        if deferred > 0 {
            tracing::info!(
                pipeline = %self.spec.name,
                deferred,
                "Agent stopping: artifacts not started are left for the next run."
            );
        }
        let report = RunReport::new(
            &self.spec.name,
            self.shard,
            discovered,
            artifacts,
            deferred,
            missing,
            started.elapsed(),
        );
        let report = match &shared {
            Some(shared) => report.shared_with(shared.replica(), elsewhere),
            None => report,
        };
        // The last run's report, machine-readable, next to the manifest.
        let key = self.run_report_key();
        match serde_json::to_vec_pretty(&report) {
            Ok(bytes) => {
                if let Err(error) = self.lake.put(&key, bytes).await {
                    tracing::warn!(pipeline = %self.spec.name, error = %error, "Could not store the run report.");
                }
            }
            Err(error) => tracing::warn!(error = %error, "Could not serialise the run report."),
        }
        tracing::info!(
            pipeline = %self.spec.name,
            completed = report.counts.completed,
            failed = report.counts.failed,
            quarantined = report.counts.quarantined,
            committed_elsewhere = report.counts.committed_elsewhere,
            other_replicas = report.counts.other_replicas,
            rows = report.counts.rows,
            elapsed_ms = report.elapsed_ms,
            "Pipeline run finished."
        );
        Ok(report)
    }

    /// Where this pipeline's (or this shard's) last run report is kept.
    fn run_report_key(&self) -> String {
        layout::run_report_key(&self.spec.name, self.shard.map(|s| (s.index, s.count)))
    }

    /// This run with its plugins fixed to their current versions.
    fn pinned(&self) -> Self {
        Self {
            source: self.source.pinned(),
            transforms: self.transforms.iter().map(Configured::pinned).collect(),
            ..self.clone()
        }
    }

    /// The plugins that ran, in order: the source, then each transform.
    fn lineage(&self) -> Vec<Lineage> {
        let mut plugins = vec![Lineage::from(self.source.plugin.current().identity())];
        plugins.extend(
            self.transforms
                .iter()
                .map(|t| Lineage::from(t.plugin.current().identity())),
        );
        plugins
    }

    /// Waits for the pipeline's rate limit, if any.
    async fn pace(&self) {
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
    }

    fn task_error(&self, error: tokio::task::JoinError) -> PipelineError {
        PipelineError::Task {
            pipeline: self.spec.name.clone(),
            message: error.to_string(),
        }
    }

    fn lake_error(&self, source: crate::lake::LakeError) -> PipelineError {
        PipelineError::Lake {
            pipeline: self.spec.name.clone(),
            source,
        }
    }

    /// Processes one artifact to completion, quarantine or failure.
    async fn process(&self, artifact: Artifact, reason: Reason, prior: Prior) -> ArtifactReport {
        let started = Instant::now();
        let key = artifact.key.clone();
        // One plugin version per artifact: a hot reload during this artifact
        // affects the next one, and the lineage names what ran.
        let pinned = self.pinned();
        let span = tracing::info_span!(
            "artifact",
            pipeline = %self.spec.name,
            artifact = %artifact.key,
            reason = ?reason,
        );
        let outcome = pinned
            .process_with_retries(&artifact, &prior)
            .instrument(span)
            .await;
        let report = ArtifactReport::new(key, reason, outcome, started.elapsed());
        metrics::artifact_finished(&self.spec.name, report.outcome.kind());
        if let Some(progress) = &self.progress {
            match &report.outcome {
                Outcome::Completed { bytes, rows, .. } => {
                    progress.artifact_done(*bytes, *rows, true)
                }
                _ => progress.artifact_done(0, 0, false),
            }
        }
        match &report.outcome {
            Outcome::Completed { rows, .. } => tracing::info!(
                target: crate::telemetry::PER_ARTIFACT,
                pipeline = %self.spec.name,
                artifact = %report.key,
                reason = ?reason,
                rows,
                "Artifact committed to the lake."
            ),
            Outcome::CommittedElsewhere | Outcome::StillQuarantined { .. } => {}
            Outcome::Quarantined { reason } => tracing::warn!(
                pipeline = %self.spec.name,
                artifact = %report.key,
                error = %reason,
                "Artifact quarantined; it was not written to the lake as good data."
            ),
            Outcome::Failed { error, .. } => tracing::error!(
                pipeline = %self.spec.name,
                artifact = %report.key,
                error = %error,
                "Artifact failed; the other artifacts continue."
            ),
        }
        report
    }

    async fn process_with_retries(&self, artifact: &Artifact, prior: &Prior) -> Outcome {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.spec.attempts;
            match self.attempt(artifact, prior).await {
                Ok(outcome) => return outcome,
                Err(Attempt::Retry { error, wait }) if !last => {
                    let wait = wait.unwrap_or_else(|| transfer::backoff(attempt));
                    tracing::warn!(
                        pipeline = %self.spec.name,
                        artifact = %artifact.key,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %error,
                        "Artifact attempt failed; retrying."
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(Attempt::Retry { error, .. }) => {
                    return Outcome::Failed {
                        error,
                        attempts: attempt,
                    };
                }
                Err(Attempt::Mismatch {
                    staged,
                    expected,
                    actual,
                }) if last => {
                    let reason = format!(
                        "SHA-256 mismatch after {attempt} attempts: the published checksum is {expected}, the archive hashes to {actual}"
                    );
                    return commit::quarantine(&self.lake, &self.spec, artifact, staged, reason)
                        .await;
                }
                Err(Attempt::Mismatch {
                    expected, actual, ..
                }) => {
                    tracing::warn!(
                        pipeline = %self.spec.name,
                        artifact = %artifact.key,
                        attempt,
                        expected = %expected,
                        actual = %actual,
                        "Archive checksum mismatch; downloading again."
                    );
                    tokio::time::sleep(transfer::backoff(attempt)).await;
                }
                Err(Attempt::MismatchInLake { expected, actual }) if last => {
                    let reason = format!(
                        "SHA-256 mismatch after {attempt} attempts: the published checksum is {expected}, the server-side copy hashes to {actual}"
                    );
                    return commit::note_quarantine(&self.lake, &self.spec, artifact, reason).await;
                }
                Err(Attempt::MismatchInLake { .. }) => {
                    tokio::time::sleep(transfer::backoff(attempt)).await;
                }
                Err(Attempt::Quarantine { staged, reason }) => {
                    return commit::quarantine(&self.lake, &self.spec, artifact, staged, reason)
                        .await;
                }
                Err(Attempt::QuarantinedInLake { reason }) => {
                    return commit::note_quarantine(&self.lake, &self.spec, artifact, reason).await;
                }
                Err(Attempt::Fail(error)) => {
                    return Outcome::Failed {
                        error,
                        attempts: attempt,
                    };
                }
            }
        }
    }

    /// One attempt: expected checksum, delivery into the lake, commit.
    async fn attempt(&self, artifact: &Artifact, prior: &Prior) -> Result<Outcome, Attempt> {
        let fresh = prior.entry_version.is_none();
        let (checksum, delivered) = match &self.spec.table {
            None => {
                let started = Instant::now();
                let mirrored = self
                    .mirror(artifact, fresh)
                    .instrument(tracing::info_span!("transfer"))
                    .await?;
                metrics::stage(&self.spec.name, metrics::Stage::Transfer, started.elapsed());
                mirrored
            }
            Some(table) => {
                let checksum = self.expected_checksum(artifact).await?;
                let delivered = self
                    .curate(artifact, table, checksum.as_ref(), fresh)
                    .await?;
                (checksum, delivered)
            }
        };
        let started = Instant::now();
        let outcome = commit::commit(
            &self.lake,
            &self.spec,
            self.lineage(),
            artifact,
            prior,
            checksum,
            delivered,
        )
        .instrument(tracing::info_span!("commit"))
        .await;
        metrics::stage(&self.spec.name, metrics::Stage::Commit, started.elapsed());
        outcome
    }
}

/// Feeds the data-lag metric with the end of `artifact`'s period
/// (`YYYY-MM-DD` or `YYYY-MM`).
pub(super) fn record_data_until(pipeline: &str, artifact: &Artifact) {
    let period = artifact.partition.period.as_str();
    let end = match crate::period::parse_day(period) {
        Some(day) => day.next_day(),
        None => crate::period::parse_month(period).and_then(crate::period::next_month),
    };
    if let Some(end) = end {
        metrics::data_until(pipeline, end.midnight().assume_utc().unix_timestamp());
    }
}
