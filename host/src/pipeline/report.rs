//! The outcome of a pipeline run, for people and for scripts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Reason;
use crate::lake::TransferPath;
use crate::period;
use crate::telemetry::metrics::ArtifactOutcome;
use crate::wit::Artifact;

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
        transfer: TransferPath,
        /// Requests a server-side copy took from start to commit: the
        /// checksum, the copy (and its checks), the checksum file's mirror
        /// and the manifest entry. Direct copies only.
        #[serde(skip_serializing_if = "Option::is_none")]
        requests: Option<u32>,
    },
    /// Refused and kept aside under `_cryptolake/quarantine/`.
    Quarantined {
        /// Why it was refused; apart from the report's `reason` (why it was
        /// processed), which it would hide in the flattened JSON otherwise.
        #[serde(rename = "quarantine_reason")]
        reason: String,
    },
    /// Quarantined by an earlier run, and unchanged at the source since: not
    /// downloaded again (`sync --retry-quarantined` does).
    StillQuarantined {
        /// Why it was refused then.
        quarantine_reason: String,
        /// When.
        quarantined_at: String,
    },
    /// Another agent sharing the lake committed it first (its manifest entry
    /// was written between this run's reconcile and commit); nothing of
    /// this run's overwrote it.
    CommittedElsewhere,
    /// Could not be processed (missing at the source, network, plugin fault).
    Failed {
        /// Why.
        error: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl Outcome {
    /// Which kind of ending this is, as the metrics and the counts name it.
    pub fn kind(&self) -> ArtifactOutcome {
        match self {
            Outcome::Completed { .. } => ArtifactOutcome::Completed,
            Outcome::Quarantined { .. } => ArtifactOutcome::Quarantined,
            Outcome::StillQuarantined { .. } => ArtifactOutcome::StillQuarantined,
            Outcome::CommittedElsewhere => ArtifactOutcome::CommittedElsewhere,
            Outcome::Failed { .. } => ArtifactOutcome::Failed,
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

/// Expected periods of one series (exchange, market, data type, symbol,
/// interval) that the source does not have, between the first and the last
/// period it has in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingSeries {
    /// Exchange.
    pub exchange: String,
    /// Market.
    pub market: String,
    /// Data type.
    pub data_type: String,
    /// Symbol.
    pub symbol: String,
    /// Interval, for kline-like data.
    pub interval: Option<String>,
    /// First period available.
    pub first: String,
    /// Last period available.
    pub last: String,
    /// Periods in between with no archive.
    pub missing: Vec<String>,
}

/// A series: exchange, market, data type, symbol, interval.
type SeriesKey = (String, String, String, String, Option<String>);

/// Finds the gaps in each series of `artifacts` (periods `YYYY-MM-DD` or
/// `YYYY-MM`). Series without gaps are left out.
pub fn missing_periods(artifacts: &[Artifact]) -> Vec<MissingSeries> {
    use std::collections::BTreeMap;
    let mut series: BTreeMap<SeriesKey, Vec<&str>> = BTreeMap::new();
    for a in artifacts {
        let p = &a.partition;
        series
            .entry((
                p.exchange.clone(),
                p.market.clone(),
                p.data_type.clone(),
                p.symbol.clone(),
                p.interval.clone(),
            ))
            .or_default()
            .push(p.period.as_str());
    }
    let mut out = Vec::new();
    for ((exchange, market, data_type, symbol, interval), mut periods) in series {
        periods.sort_unstable();
        periods.dedup();
        let (Some(first), Some(last)) = (periods.first().copied(), periods.last().copied()) else {
            continue;
        };
        let missing: Vec<String> = expected_periods(first, last)
            .into_iter()
            .filter(|p| periods.binary_search(&p.as_str()).is_err())
            .collect();
        if !missing.is_empty() {
            out.push(MissingSeries {
                exchange,
                market,
                data_type,
                symbol,
                interval,
                first: first.to_owned(),
                last: last.to_owned(),
                missing,
            });
        }
    }
    out
}

/// Every day (or month) from `first` to `last` inclusive.
fn expected_periods(first: &str, last: &str) -> Vec<String> {
    let parse = |p: &str| period::parse_month(p).or_else(|| period::parse_day(p));
    let (Some(mut date), Some(end)) = (parse(first), parse(last)) else {
        return Vec::new();
    };
    let monthly = first.len() == 7;
    let mut out = Vec::new();
    while date <= end && out.len() < 100_000 {
        let text = period::format_day(date);
        out.push(if monthly { text[..7].to_owned() } else { text });
        let next = if monthly {
            period::next_month(date)
        } else {
            date.next_day()
        };
        date = match next {
            Some(next) => next,
            None => break,
        };
    }
    out
}

/// One artifact a run would process.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedArtifact {
    /// Source key.
    pub key: String,
    /// Why.
    pub reason: Reason,
    /// Size in bytes, when the source lists it.
    pub size: Option<u64>,
}

/// What a run would do (`sync --dry-run`).
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// The pipeline.
    pub pipeline: String,
    /// Artifacts the source lists in the window.
    pub discovered: usize,
    /// Already in the lake and unchanged at the source.
    pub up_to_date: usize,
    /// Quarantined by an earlier run and unchanged at the source: skipped.
    pub still_quarantined: Vec<String>,
    /// What would be processed, sorted by key.
    pub planned: Vec<PlannedArtifact>,
    /// Sum of the known sizes.
    pub total_bytes: u64,
    /// Planned artifacts whose size the source does not list.
    pub unknown_sizes: usize,
    /// Planned artifacts without a published checksum that the pipeline's
    /// `missing_checksum = "reject"` would fail: every one of them, for a
    /// source that publishes none.
    #[serde(default)]
    pub rejected_for_no_checksum: usize,
    /// Gaps in the source's series.
    pub missing: Vec<MissingSeries>,
    /// The shard planned, when only one was (`--shard`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<super::Shard>,
}

/// What a pipeline run did, counted: the run report's figures, which the
/// daemon's status record keeps for the last run too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Artifacts the source listed in the window.
    pub discovered: usize,
    /// Already in the lake and unchanged at the source.
    pub up_to_date: usize,
    /// Committed this run.
    pub completed: usize,
    /// Quarantined this run.
    pub quarantined: usize,
    /// Quarantined by an earlier run and unchanged at the source: skipped.
    #[serde(default)]
    pub still_quarantined: usize,
    /// Committed by another agent sharing the lake while this run worked on
    /// them.
    #[serde(default)]
    pub committed_elsewhere: usize,
    /// Failed this run.
    pub failed: usize,
    /// Not started because the agent was stopping; the next run does them.
    pub deferred: usize,
    /// Planned here, then done, held or quarantined by another replica
    /// sharing the work (`[leases]`).
    #[serde(default)]
    pub other_replicas: usize,
    /// Rows written this run.
    pub rows: u64,
    /// Archive bytes downloaded this run.
    pub bytes: u64,
}

/// A pipeline run's result.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The pipeline.
    pub pipeline: String,
    /// What the run did, counted.
    #[serde(flatten)]
    pub counts: RunCounts,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// Every processed artifact, sorted by key.
    pub artifacts: Vec<ArtifactReport>,
    /// Gaps in the source's series (expected periods with no archive).
    pub missing: Vec<MissingSeries>,
    /// The shard run, when only one was (`--shard`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<super::Shard>,
    /// The replica that ran it, when replicas share the work (`[leases]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

impl RunReport {
    pub(super) fn new(
        pipeline: &str,
        shard: Option<super::Shard>,
        discovered: usize,
        mut artifacts: Vec<ArtifactReport>,
        deferred: usize,
        missing: Vec<MissingSeries>,
        elapsed: Duration,
    ) -> Self {
        artifacts.sort_by(|a, b| a.key.cmp(&b.key));
        let count = |kind: ArtifactOutcome| {
            artifacts
                .iter()
                .filter(|a| a.outcome.kind() == kind)
                .count()
        };
        let (rows, bytes) = artifacts.iter().fold((0, 0), |(r, b), a| match a.outcome {
            Outcome::Completed { rows, bytes, .. } => (r + rows, b + bytes),
            _ => (r, b),
        });
        Self {
            pipeline: pipeline.to_owned(),
            counts: RunCounts {
                discovered,
                up_to_date: discovered.saturating_sub(artifacts.len() + deferred),
                completed: count(ArtifactOutcome::Completed),
                quarantined: count(ArtifactOutcome::Quarantined),
                still_quarantined: count(ArtifactOutcome::StillQuarantined),
                committed_elsewhere: count(ArtifactOutcome::CommittedElsewhere),
                failed: count(ArtifactOutcome::Failed),
                deferred,
                other_replicas: 0,
                rows,
                bytes,
            },
            elapsed_ms: elapsed.as_millis() as u64,
            artifacts,
            missing,
            shard,
            replica: None,
        }
    }

    /// This report as `replica`'s, which left `other_replicas` of the
    /// planned artifacts to the replicas it shares the work with.
    pub(super) fn shared_with(mut self, replica: &str, other_replicas: usize) -> Self {
        self.replica = Some(replica.to_owned());
        self.counts.other_replicas = other_replicas;
        self.counts.up_to_date = self.counts.up_to_date.saturating_sub(other_replicas);
        self
    }

    /// Whether every artifact ended in the lake (deferred ones are not
    /// failures: the next run does them).
    pub fn succeeded(&self) -> bool {
        self.counts.failed == 0
            && self.counts.quarantined == 0
            && self.counts.still_quarantined == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_and_monthly_gaps() {
        assert_eq!(
            expected_periods("2024-02-28", "2024-03-01"),
            vec!["2024-02-28", "2024-02-29", "2024-03-01"]
        );
        assert_eq!(
            expected_periods("2023-11", "2024-02"),
            vec!["2023-11", "2023-12", "2024-01", "2024-02"]
        );
        assert!(expected_periods("x", "y").is_empty());
    }
}
