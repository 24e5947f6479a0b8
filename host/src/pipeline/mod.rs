//! One run of one pipeline: discover → reconcile → transfer → decode →
//! transform → write → commit.
//!
//! Owns: the order of the stages, retries per artifact, and the decision
//! between retry, quarantine and failure. Every step is restartable: outputs
//! are published atomically under names derived from the artifact, and the
//! manifest entry is written last, so a crash anywhere leaves the lake
//! consistent and the next run finishes the job without duplicating rows.
//! It must not parse exchange data (plugins do) or know file formats beyond
//! what [`crate::lake`] and [`crate::transfer`] expose.

mod decode;
mod deliver;
mod payload;
mod report;
mod shape;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use tracing::Instrument;

pub use decode::{Configured, DecodeError};
pub use report::{
    ArtifactReport, MissingSeries, Outcome, PlanReport, PlannedArtifact, RunCounts, RunReport,
};

use crate::config::PipelineSpec;
use crate::lake::manifest::{self, Lineage, ManifestEntry, ReplacedVersion, SourceIdentity};
use crate::lake::{Lake, WriteMode, Written, layout};
use crate::plugin::{Artifact, PluginCallError, Window};
use crate::telemetry::metrics;
use crate::transfer::rate::RateLimiter;
use crate::transfer::{self, TransferError};
use deliver::Delivered;

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
}

/// Receives a run's progress (the CLI draws bars from it).
pub trait Progress: Send + Sync {
    /// The run will process `artifacts` artifacts of about `bytes` bytes.
    fn planned(&self, artifacts: usize, bytes: u64);
    /// One artifact ended: committed (`ok`), quarantined or failed.
    fn artifact_done(&self, bytes: u64, ok: bool);
    /// The run ended.
    fn finished(&self);
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

/// The outcome of discovery and reconciliation.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Artifacts to process, with the reason and what an earlier entry
    /// leaves behind.
    pub todo: Vec<(Artifact, Reason, Prior)>,
    /// Quarantined by an earlier run and unchanged at the source: skipped,
    /// with the earlier verdict.
    pub still_quarantined: Vec<(Artifact, QuarantineNote)>,
    /// How many the source listed.
    pub discovered: usize,
    /// Gaps in the source's series.
    pub missing: Vec<MissingSeries>,
}

/// What an artifact's earlier manifest entry leaves to its next one.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// The history the new entry carries (the replaced publications, for a
    /// re-published artifact).
    pub history: Vec<ReplacedVersion>,
    /// The earlier entry's output files: those the new run does not write
    /// again are deleted, so a re-published archive with other days leaves
    /// no stale rows behind.
    pub outputs: Vec<String>,
    /// The version of the earlier entry that was read, `None` when there is
    /// none: the new entry replaces exactly that version, or is created, so
    /// an agent sharing the lake that committed meanwhile is not overwritten.
    pub entry_version: Option<crate::lake::Version>,
}

/// Why an artifact is (re)processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Never processed.
    New,
    /// The source re-published it under the same key.
    Republished,
    /// Its manifest entry exists but an output is missing.
    OutputsMissing,
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
        let discovered = tokio::task::spawn_blocking(move || {
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
        metrics::stage(&self.spec.name, "discover", started.elapsed());
        metrics::artifacts_discovered(&self.spec.name, discovered.len());
        let reconcile_started = Instant::now();
        let missing = report::missing_periods(&discovered);
        let total = discovered.len();
        // One listing tells which artifacts have an entry at all, so a new
        // artifact costs no request here; existing entries are read to
        // compare identities. The listing is walked as a stream and only
        // the discovered keys are remembered, so memory follows the window,
        // not the manifest's size.
        let has_entry = self
            .listed(
                &layout::manifest_prefix(&self.spec.name),
                discovered
                    .iter()
                    .map(|artifact| Some(layout::manifest_key(&self.spec.name, &artifact.key))),
            )
            .await?;
        // Only artifacts without an entry can be quarantined ones, and their
        // notes matter only when they are not to be retried anyway.
        let has_note = self
            .listed(
                &layout::quarantine_prefix(&self.spec.name),
                discovered
                    .iter()
                    .zip(&has_entry)
                    .map(|(artifact, has_entry)| {
                        (!has_entry && !self.retry_quarantined)
                            .then(|| layout::quarantine_reason_key(&self.spec.name, &artifact.key))
                    }),
            )
            .await?;
        let mut todo = Vec::new();
        let mut still_quarantined = Vec::new();
        for ((artifact, has_entry), has_note) in discovered.into_iter().zip(has_entry).zip(has_note)
        {
            if has_note {
                let note = self.read_quarantine_note(&artifact).await?;
                if let Some(note) =
                    note.filter(|n| n.source.same_publication(&SourceIdentity::of(&artifact)))
                {
                    still_quarantined.push((artifact, note));
                    continue;
                }
            }
            let recorded = if has_entry {
                manifest::read_versioned(&self.lake, &self.spec.name, &artifact.key)
                    .await
                    .map_err(|source| self.lake_error(source))?
            } else {
                None
            };
            let decision = match recorded {
                None => Some((Reason::New, Prior::default())),
                Some((entry, version))
                    if !entry
                        .source
                        .same_publication(&SourceIdentity::of(&artifact)) =>
                {
                    // The replaced publication joins the history now, so
                    // the commit need not read the entry again.
                    let outputs = entry.outputs.iter().map(|o| o.key.clone()).collect();
                    let mut history = entry.history;
                    history.push(ReplacedVersion {
                        source: entry.source,
                        sha256: entry.sha256,
                        completed_at: entry.completed_at,
                    });
                    let prior = Prior {
                        history,
                        outputs,
                        entry_version: Some(version),
                    };
                    Some((Reason::Republished, prior))
                }
                Some((entry, version)) => {
                    let present = manifest::outputs_present(&self.lake, &entry)
                        .await
                        .map_err(|source| self.lake_error(source))?;
                    let outputs = entry.outputs.iter().map(|o| o.key.clone()).collect();
                    let prior = Prior {
                        history: entry.history,
                        outputs,
                        entry_version: Some(version),
                    };
                    (!present).then_some((Reason::OutputsMissing, prior))
                }
            };
            match decision {
                Some((reason, prior)) => todo.push((artifact, reason, prior)),
                None => record_data_until(&self.spec.name, &artifact),
            }
        }
        metrics::stage(&self.spec.name, "reconcile", reconcile_started.elapsed());
        Ok(Planned {
            todo,
            still_quarantined,
            discovered: total,
            missing,
        })
    }

    /// Which of `keys` (`None`: not asked) exist under `prefix`: one
    /// listing, walked as a stream, remembering only the keys asked for, so
    /// memory follows the window, not the prefix's size. No listing when no
    /// key is asked for.
    async fn listed(
        &self,
        prefix: &str,
        keys: impl Iterator<Item = Option<String>>,
    ) -> Result<Vec<bool>, PipelineError> {
        let keys: Vec<Option<String>> = keys.collect();
        let mut present = vec![false; keys.len()];
        let wanted: std::collections::HashMap<String, usize> = keys
            .into_iter()
            .enumerate()
            .filter_map(|(i, key)| Some((key?, i)))
            .collect();
        if wanted.is_empty() {
            return Ok(present);
        }
        let mut listing = self.lake.list_stream(prefix);
        while let Some(key) = listing.next().await {
            let key = key.map_err(|source| self.lake_error(source))?;
            if let Some(&index) = wanted.get(&key) {
                present[index] = true;
            }
        }
        Ok(present)
    }

    /// The note an earlier quarantine of `artifact` left; `None` when it is
    /// gone or unreadable (the artifact is then tried again).
    async fn read_quarantine_note(
        &self,
        artifact: &Artifact,
    ) -> Result<Option<QuarantineNote>, PipelineError> {
        let key = layout::quarantine_reason_key(&self.spec.name, &artifact.key);
        let bytes = self
            .lake
            .get(&key)
            .await
            .map_err(|source| self.lake_error(source))?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
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
        Ok(PlanReport {
            pipeline: self.spec.name.clone(),
            discovered: planned.discovered,
            up_to_date: planned.discovered - items.len() - still_quarantined.len(),
            still_quarantined,
            total_bytes: items.iter().filter_map(|a| a.size).sum(),
            unknown_sizes: items.iter().filter(|a| a.size.is_none()).count(),
            planned: items,
            missing: planned.missing,
        })
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
                metrics::artifact_finished(&self.spec.name, "still-quarantined");
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
        let mut artifacts: Vec<ArtifactReport> = futures::stream::iter(todo)
            .take_while(|_| std::future::ready(!stop.is_stopped()))
            .map(|(artifact, reason, prior)| self.process(artifact, reason, prior))
            .buffer_unordered(self.spec.concurrency)
            .collect()
            .await;
        let deferred = planned - artifacts.len();
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
            discovered,
            artifacts,
            deferred,
            missing,
            started.elapsed(),
        );
        // The last run's report, machine-readable, next to the manifest.
        let key = layout::run_report_key(&self.spec.name);
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
            rows = report.counts.rows,
            elapsed_ms = report.elapsed_ms,
            "Pipeline run finished."
        );
        Ok(report)
    }

    /// This run with its plugins fixed to their current versions.
    fn pinned(&self) -> Self {
        Self {
            source: self.source.pinned(),
            transforms: self.transforms.iter().map(Configured::pinned).collect(),
            ..self.clone()
        }
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
        metrics::artifact_finished(&self.spec.name, report.outcome.label());
        if let Some(progress) = &self.progress {
            match &report.outcome {
                Outcome::Completed { bytes, .. } => progress.artifact_done(*bytes, true),
                _ => progress.artifact_done(0, false),
            }
        }
        match &report.outcome {
            Outcome::Completed { rows, .. } => tracing::info!(
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
                    return self.quarantine(artifact, staged, reason).await;
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
                    return self.note_quarantine(artifact, reason).await;
                }
                Err(Attempt::MismatchInLake { .. }) => {
                    tokio::time::sleep(transfer::backoff(attempt)).await;
                }
                Err(Attempt::Quarantine { staged, reason }) => {
                    return self.quarantine(artifact, staged, reason).await;
                }
                Err(Attempt::QuarantinedInLake { reason }) => {
                    return self.note_quarantine(artifact, reason).await;
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
        let checksum = self.expected_checksum(artifact).await?;
        let fresh = prior.entry_version.is_none();
        let delivered = match &self.spec.table {
            None => {
                let started = Instant::now();
                let delivered = self
                    .mirror(artifact, checksum.as_ref(), fresh)
                    .instrument(tracing::info_span!("transfer"))
                    .await?;
                metrics::stage(&self.spec.name, "transfer", started.elapsed());
                delivered
            }
            Some(table) => {
                self.curate(artifact, table, checksum.as_ref(), fresh)
                    .await?
            }
        };
        let started = Instant::now();
        let outcome = self
            .commit(artifact, prior, checksum, delivered)
            .instrument(tracing::info_span!("commit"))
            .await;
        metrics::stage(&self.spec.name, "commit", started.elapsed());
        outcome
    }

    /// Mirrors the checksum file and writes the manifest entry, last.
    async fn commit(
        &self,
        artifact: &Artifact,
        prior: &Prior,
        checksum: Option<transfer::ChecksumFile>,
        delivered: Delivered,
    ) -> Result<Outcome, Attempt> {
        let sidecar = checksum.as_ref().is_some_and(|c| !c.raw.is_empty());
        let requests = delivered
            .copy_requests
            .map(|copy| copy + 2 * u32::from(sidecar) + 1);
        if delivered.raw_key.is_some()
            && let Some(checksum) = checksum.as_ref().filter(|c| !c.raw.is_empty())
        {
            self.lake
                .put(
                    &layout::raw_checksum_key(&artifact.key),
                    checksum.raw.clone(),
                )
                .await
                .map_err(|e| Attempt::Fail(e.to_string()))?;
        }
        let mut plugins = vec![Lineage::from(self.source.plugin.current().identity())];
        plugins.extend(
            self.transforms
                .iter()
                .map(|t| Lineage::from(t.plugin.current().identity())),
        );
        let entry = ManifestEntry {
            version: manifest::ENTRY_VERSION,
            pipeline: self.spec.name.clone(),
            source: SourceIdentity::of(artifact),
            sha256: delivered.sha256,
            checksum_verified: checksum.is_some(),
            raw_key: delivered.raw_key,
            transfer: Some(delivered.transfer.to_owned()),
            copy_verification: delivered.verification,
            counters: delivered.counters,
            table: self.spec.table.clone(),
            outputs: delivered.outputs,
            rows: delivered.rows,
            plugins,
            completed_at: manifest::now_rfc3339(),
            // A re-publication keeps what it replaced, so a changed
            // checksum stays visible.
            history: prior.history.clone(),
        };
        // Outputs of the earlier entry that this run did not write again go
        // before the new entry is written: a crash in between leaves the
        // old entry, whose identity or missing outputs make the next run
        // redo the artifact.
        for stale in prior
            .outputs
            .iter()
            .filter(|key| !entry.outputs.iter().any(|o| &o.key == *key))
        {
            self.lake
                .delete(stale)
                .await
                .map_err(|e| Attempt::Fail(format!("removing the stale output {stale}: {e}")))?;
            tracing::info!(
                pipeline = %self.spec.name,
                artifact = %artifact.key,
                output = %stale,
                "Removed an output the re-processed archive no longer produces."
            );
        }
        let mode = match &prior.entry_version {
            None => WriteMode::Create,
            Some(version) => WriteMode::Replace(version.clone()),
        };
        let written = manifest::write(&self.lake, &entry, mode)
            .await
            .map_err(|e| Attempt::Fail(e.to_string()))?;
        if written == Written::Conflict {
            tracing::info!(
                pipeline = %self.spec.name,
                artifact = %artifact.key,
                "Another agent sharing the lake committed this archive first; its manifest entry stands."
            );
            return Ok(Outcome::CommittedElsewhere);
        }
        if let Some(table) = &self.spec.table {
            metrics::rows_written(table, delivered.rows);
        }
        let mode = if delivered.transfer == "direct" {
            "direct"
        } else {
            "stream"
        };
        let bytes = if mode == "direct" {
            artifact.size.unwrap_or(0)
        } else {
            delivered.bytes
        };
        metrics::artifact_transferred(&self.spec.name, mode, bytes);
        if checksum.is_some() {
            metrics::artifact_verified(&self.spec.name);
        }
        record_data_until(&self.spec.name, artifact);
        Ok(Outcome::Completed {
            rows: delivered.rows,
            bytes: delivered.bytes,
            transfer: delivered.transfer.to_owned(),
            requests,
        })
    }

    /// Moves a refused archive to quarantine with its reason.
    async fn quarantine(
        &self,
        artifact: &Artifact,
        staged: tempfile::NamedTempFile,
        reason: String,
    ) -> Outcome {
        let key = layout::quarantine_key(&self.spec.name, &artifact.key);
        if let Err(error) = self.lake.publish(staged, &key).await {
            return Outcome::Failed {
                error: format!("{reason}; and quarantining it failed: {error}"),
                attempts: self.spec.attempts,
            };
        }
        self.note_quarantine(artifact, reason).await
    }

    /// Writes why an archive (already at its quarantine key) was refused.
    async fn note_quarantine(&self, artifact: &Artifact, reason: String) -> Outcome {
        let note = QuarantineNote {
            pipeline: self.spec.name.clone(),
            source: SourceIdentity::of(artifact),
            reason: reason.clone(),
            quarantined_at: manifest::now_rfc3339(),
        };
        let written = self
            .lake
            .put(
                &layout::quarantine_reason_key(&self.spec.name, &artifact.key),
                serde_json::to_vec_pretty(&note).unwrap_or_default(),
            )
            .await;
        match written {
            Ok(()) => Outcome::Quarantined { reason },
            Err(error) => Outcome::Failed {
                error: format!("{reason}; and recording the quarantine failed: {error}"),
                attempts: self.spec.attempts,
            },
        }
    }
}

/// Why an archive was quarantined: `<quarantine key>.reason.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct QuarantineNote {
    /// The pipeline that refused it.
    pub pipeline: String,
    /// The source's identity of what was refused: while it stays the same,
    /// later runs skip the archive.
    pub source: SourceIdentity,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub quarantined_at: String,
}

/// How one attempt ended short of success.
enum Attempt {
    /// Worth another attempt.
    Retry {
        error: String,
        wait: Option<std::time::Duration>,
    },
    /// The bytes do not match the published checksum.
    Mismatch {
        staged: tempfile::NamedTempFile,
        expected: String,
        actual: String,
    },
    /// A server-side copy did not match; it is already at the quarantine key.
    MismatchInLake { expected: String, actual: String },
    /// The source must not enter the lake; what is kept of it is already
    /// at the quarantine key.
    QuarantinedInLake { reason: String },
    /// The archive must not enter the lake.
    Quarantine {
        staged: tempfile::NamedTempFile,
        reason: String,
    },
    /// Final failure; no retry can help.
    Fail(String),
}

impl Attempt {
    fn from_transfer(error: TransferError, what: &str) -> Self {
        let message = format!("{what}: {error}");
        if error.is_transient() {
            Attempt::Retry {
                error: message,
                wait: error.retry_after(),
            }
        } else {
            Attempt::Fail(message)
        }
    }
}

/// Feeds the data-lag metric with the end of `artifact`'s period
/// (`YYYY-MM-DD` or `YYYY-MM`).
fn record_data_until(pipeline: &str, artifact: &Artifact) {
    let period = artifact.partition.period.as_str();
    let end = match crate::period::parse_day(period) {
        Some(day) => day.next_day(),
        None => crate::period::parse_month(period).and_then(crate::period::next_month),
    };
    if let Some(end) = end {
        metrics::data_until(pipeline, end.midnight().assume_utc().unix_timestamp());
    }
}
