//! The outcome of a pipeline run, for people and for scripts.

use std::time::Duration;

use serde::Serialize;

use super::Reason;

/// How one artifact ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Verified, decoded, written and committed.
    Completed {
        /// Rows written.
        rows: u64,
        /// Archive bytes downloaded through the agent.
        bytes: u64,
        /// `direct`, `stream`, or `stream-fallback` (a failed direct copy).
        transfer: String,
    },
    /// Refused and kept aside under `_cryptolake/quarantine/`.
    Quarantined {
        /// Why.
        reason: String,
    },
    /// Could not be processed (missing at the source, network, plugin fault).
    Failed {
        /// Why.
        error: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl Outcome {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Quarantined { .. } => "quarantined",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// One artifact's result.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactReport {
    /// Source key.
    pub key: String,
    /// Why it was processed.
    pub reason: Reason,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

impl ArtifactReport {
    pub(super) fn new(key: String, reason: Reason, outcome: Outcome, elapsed: Duration) -> Self {
        Self {
            key,
            reason,
            outcome,
            elapsed_ms: elapsed.as_millis() as u64,
        }
    }
}

/// A pipeline run's result.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The pipeline.
    pub pipeline: String,
    /// Artifacts the source listed in the window.
    pub discovered: usize,
    /// Already in the lake and unchanged at the source.
    pub up_to_date: usize,
    /// Committed this run.
    pub completed: usize,
    /// Quarantined this run.
    pub quarantined: usize,
    /// Failed this run.
    pub failed: usize,
    /// Rows written this run.
    pub rows: u64,
    /// Archive bytes downloaded this run.
    pub bytes: u64,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// Every processed artifact, sorted by key.
    pub artifacts: Vec<ArtifactReport>,
}

impl RunReport {
    pub(super) fn new(
        pipeline: &str,
        discovered: usize,
        mut artifacts: Vec<ArtifactReport>,
        elapsed: Duration,
    ) -> Self {
        artifacts.sort_by(|a, b| a.key.cmp(&b.key));
        let count = |label: &str| {
            artifacts
                .iter()
                .filter(|a| a.outcome.label() == label)
                .count()
        };
        let (rows, bytes) = artifacts.iter().fold((0, 0), |(r, b), a| match a.outcome {
            Outcome::Completed { rows, bytes, .. } => (r + rows, b + bytes),
            _ => (r, b),
        });
        Self {
            pipeline: pipeline.to_owned(),
            discovered,
            up_to_date: discovered - artifacts.len(),
            completed: count("completed"),
            quarantined: count("quarantined"),
            failed: count("failed"),
            rows,
            bytes,
            elapsed_ms: elapsed.as_millis() as u64,
            artifacts,
        }
    }

    /// Whether every artifact ended in the lake.
    pub fn succeeded(&self) -> bool {
        self.failed == 0 && self.quarantined == 0
    }
}
