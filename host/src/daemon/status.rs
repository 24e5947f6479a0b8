//! What each pipeline of the daemon is doing and did: last run, next run,
//! failures. Kept in memory for the admin API and written to the lake
//! (`_cryptolake/status/<pipeline>.json`) so `cryptolake status` can read it
//! from another process or machine.
//!
//! Owns: the status record's shape and its persistence. It must not decide
//! when anything runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::lake::{Lake, layout};
use crate::pipeline::{Outcome, RunCounts, RunReport};

/// Failures kept per pipeline in the status record.
const RECENT_FAILURES: usize = 20;

/// One pipeline's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStatus {
    /// The pipeline.
    pub pipeline: String,
    /// Its schedule, for people.
    pub schedule: String,
    /// `running`, `idle`, or `stopped`.
    pub state: String,
    /// The last finished run.
    pub last_run: Option<LastRun>,
    /// When the next run starts (RFC 3339, UTC).
    pub next_run: Option<String>,
    /// Runs in a row that did not succeed.
    pub consecutive_failures: u32,
    /// Runs since the agent started.
    pub runs: u64,
    /// Artifacts that failed or were quarantined recently, newest first.
    pub recent_failures: Vec<FailedArtifact>,
    /// When this record was written (RFC 3339, UTC).
    pub updated_at: String,
    /// The replica that wrote it, when replicas share the work
    /// (`[leases]`): the lake keeps the latest writer's record; each
    /// replica's own is in its `/api/v1/status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// A finished run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// End, RFC 3339 UTC.
    pub finished_at: String,
    /// `succeeded`, `failed` (some artifacts failed or were quarantined) or
    /// `error` (the run could not start: discovery or lake failure).
    pub outcome: String,
    /// The window's first date, if bounded.
    pub window_start: Option<String>,
    /// What the run did, counted (zero when it could not start).
    #[serde(flatten)]
    pub counts: RunCounts,
    /// The run-level error, when `outcome` is `error`.
    pub error: Option<String>,
}

/// An artifact that did not make it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedArtifact {
    /// Source key.
    pub key: String,
    /// `failed` or `quarantined`.
    pub outcome: String,
    /// Why.
    pub error: String,
    /// When, RFC 3339 UTC.
    pub at: String,
}

/// The daemon's shared status board.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<Mutex<BTreeMap<String, PipelineStatus>>>);

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

pub use crate::period::rfc3339;

impl StatusBoard {
    /// Every pipeline's status, by name.
    pub fn snapshot(&self) -> BTreeMap<String, PipelineStatus> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Applies `change` to `pipeline`'s record and returns the result.
    pub fn update(
        &self,
        pipeline: &str,
        change: impl FnOnce(&mut PipelineStatus),
    ) -> PipelineStatus {
        let Ok(mut map) = self.0.lock() else {
            return PipelineStatus::default();
        };
        let status = map
            .entry(pipeline.to_owned())
            .or_insert_with(|| PipelineStatus {
                pipeline: pipeline.to_owned(),
                ..PipelineStatus::default()
            });
        change(status);
        status.updated_at = now_rfc3339();
        status.clone()
    }

    /// Forgets a pipeline removed from the configuration.
    pub fn remove(&self, pipeline: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(pipeline);
        }
    }
}

impl PipelineStatus {
    /// Records a finished run's report.
    pub fn record_report(
        &mut self,
        started_at: String,
        window_start: Option<String>,
        report: &RunReport,
    ) {
        let outcome = if report.succeeded() {
            "succeeded"
        } else {
            "failed"
        };
        self.runs += 1;
        if report.succeeded() {
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures += 1;
        }
        let finished_at = now_rfc3339();
        for artifact in &report.artifacts {
            let (label, error) = match &artifact.outcome {
                Outcome::Completed { .. } | Outcome::CommittedElsewhere => continue,
                Outcome::Quarantined { reason } => ("quarantined", reason.clone()),
                Outcome::StillQuarantined {
                    quarantine_reason, ..
                } => ("still-quarantined", quarantine_reason.clone()),
                Outcome::Failed { error, .. } => ("failed", error.clone()),
            };
            self.recent_failures.insert(
                0,
                FailedArtifact {
                    key: artifact.key.clone(),
                    outcome: label.to_owned(),
                    error,
                    at: finished_at.clone(),
                },
            );
        }
        self.recent_failures.truncate(RECENT_FAILURES);
        self.last_run = Some(LastRun {
            started_at,
            finished_at,
            outcome: outcome.to_owned(),
            window_start,
            counts: report.counts,
            error: None,
        });
    }

    /// Records a run that could not start.
    pub fn record_error(
        &mut self,
        started_at: String,
        window_start: Option<String>,
        error: String,
    ) {
        self.runs += 1;
        self.consecutive_failures += 1;
        self.last_run = Some(LastRun {
            started_at,
            finished_at: now_rfc3339(),
            outcome: "error".to_owned(),
            window_start,
            error: Some(error),
            ..LastRun::default()
        });
    }
}

/// Writes `status` to the lake; a failure is logged, not fatal.
pub async fn persist(lake: &Lake, status: &PipelineStatus) {
    let key = layout::status_key(&status.pipeline);
    match serde_json::to_vec_pretty(status) {
        Ok(bytes) => {
            if let Err(error) = lake.put(&key, bytes).await {
                tracing::warn!(pipeline = %status.pipeline, error = %error, "Could not store the pipeline status in the lake.");
            }
        }
        Err(error) => tracing::warn!(error = %error, "Could not serialise the pipeline status."),
    }
}

/// Reads a pipeline's status from the lake, if `run` ever wrote one.
pub async fn read(lake: &Lake, pipeline: &str) -> Result<Option<PipelineStatus>, String> {
    match lake.get(&layout::status_key(pipeline)).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", layout::status_key(pipeline))),
        Ok(None) => Ok(None),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_run_keeps_its_counts_at_its_top_level_and_reads_back() {
        let last = LastRun {
            started_at: "2026-11-26T10:00:00Z".into(),
            finished_at: "2026-11-26T10:00:05Z".into(),
            outcome: "failed".into(),
            window_start: Some("2025-01-01".into()),
            counts: RunCounts {
                discovered: 4,
                up_to_date: 1,
                completed: 2,
                failed: 1,
                rows: 1440,
                bytes: 2048,
                ..RunCounts::default()
            },
            error: None,
        };
        let json = serde_json::to_value(&last).unwrap();
        // `cryptolake status` on another machine reads records written by
        // older agents, whose counts were fields of the run itself.
        assert_eq!(json["completed"], 2);
        assert_eq!(json["rows"], 1440);
        assert!(json.get("counts").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<LastRun>(json).unwrap(), last);
    }
}
