//! What a planned run would cost (`sync --plan`): archives, bytes,
//! requests and time.
//!
//! Owns: turning a [`PlanReport`] into an [`Estimate`], at the rates the
//! pipeline's last stored run report measured (archives and bytes per
//! second, requests per server-side copy), or, without one, with the
//! request count of each transfer path and no time. It must not plan
//! (`dry_run` does) or run anything.

use serde::Serialize;

use super::report::PlanReport;
use crate::config::{PipelineSpec, TransferMode};

/// The cost of one pipeline's plan.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// The pipeline.
    pub pipeline: String,
    /// Archives to fetch.
    pub archives: usize,
    /// Their bytes, as the source lists them.
    pub bytes: u64,
    /// Archives whose size the source does not list (not in `bytes`).
    pub unknown_sizes: usize,
    /// Archives the pipeline's `missing_checksum = "reject"` would fail.
    pub rejected_for_no_checksum: usize,
    /// Requests the run would make, to the source and the lake.
    pub requests: u64,
    /// Requests per archive used for `requests`.
    pub requests_per_archive: f64,
    /// Whether `requests_per_archive` was measured by the last run (else
    /// counted from the transfer path).
    pub requests_measured: bool,
    /// The last run's rates, when it processed anything.
    pub rate: Option<Rate>,
    /// Seconds the run would take at that rate (0 with nothing to do).
    pub eta_s: Option<f64>,
}

/// Rates a finished run measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    /// Archives committed per second.
    pub archives_per_s: f64,
    /// Archive bytes transferred through the agent per second (0 for
    /// server-side copies).
    pub bytes_per_s: f64,
}

/// The figures of a stored run report this estimate reads.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct LastRun {
    #[serde(default)]
    completed: u64,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    elapsed_ms: u64,
    #[serde(default)]
    artifacts: Vec<LastArtifact>,
}

#[derive(Debug, serde::Deserialize)]
struct LastArtifact {
    #[serde(default)]
    requests: Option<u32>,
}

/// Requests one archive takes on each path, counted from what the
/// pipeline does: a server-side copy (the archive's tail, its checksum,
/// the copy, the checksum's copy and the manifest entry), or a download
/// (archive and checksum from the source; raw copy and checksum, the
/// Parquet file, the manifest entry to the lake).
fn counted_requests(spec: &PipelineSpec) -> f64 {
    let mirror = spec.table.is_none();
    if mirror && spec.transfer != TransferMode::Stream {
        return 5.0;
    }
    let raw = if spec.raw { 2.0 } else { 0.0 };
    let table = if spec.table.is_some() { 1.0 } else { 0.0 };
    2.0 + raw + table + 1.0
}

/// The estimate of `plan` for `spec`, at the rates of `last` when given.
pub(super) fn estimate(spec: &PipelineSpec, plan: &PlanReport, last: Option<&LastRun>) -> Estimate {
    let archives = plan.planned.len();
    let measured: Vec<u32> = last
        .map(|l| l.artifacts.iter().filter_map(|a| a.requests).collect())
        .unwrap_or_default();
    let (requests_per_archive, requests_measured) = if measured.is_empty() {
        (counted_requests(spec), false)
    } else {
        let total: u64 = measured.iter().map(|&r| u64::from(r)).sum();
        // The tail's ranged GET goes to the source and is not counted there.
        (total as f64 / measured.len() as f64 + 1.0, true)
    };
    let rate = last
        .filter(|l| l.completed > 0 && l.elapsed_ms > 0)
        .map(|l| {
            let seconds = l.elapsed_ms as f64 / 1000.0;
            Rate {
                archives_per_s: l.completed as f64 / seconds,
                bytes_per_s: l.bytes as f64 / seconds,
            }
        });
    // Whichever bounds the run: archives at their rate, or bytes at theirs.
    let eta_s = if archives == 0 {
        Some(0.0)
    } else {
        rate.map(|rate| {
            let by_archives = archives as f64 / rate.archives_per_s;
            let by_bytes = if rate.bytes_per_s > 0.0 {
                plan.total_bytes as f64 / rate.bytes_per_s
            } else {
                0.0
            };
            by_archives.max(by_bytes)
        })
    };
    Estimate {
        pipeline: plan.pipeline.clone(),
        archives,
        bytes: plan.total_bytes,
        unknown_sizes: plan.unknown_sizes,
        rejected_for_no_checksum: plan.rejected_for_no_checksum,
        requests: (archives as f64 * requests_per_archive).round() as u64,
        requests_per_archive,
        requests_measured,
        rate,
        eta_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(archives: usize, bytes: u64) -> PlanReport {
        PlanReport {
            pipeline: "p".into(),
            discovered: archives,
            up_to_date: 0,
            still_quarantined: Vec::new(),
            planned: (0..archives)
                .map(|i| super::super::report::PlannedArtifact {
                    key: format!("k{i}"),
                    reason: super::super::Reason::New,
                    size: Some(bytes / archives as u64),
                })
                .collect(),
            total_bytes: bytes,
            unknown_sizes: 0,
            rejected_for_no_checksum: 0,
            missing: Vec::new(),
            shard: None,
        }
    }

    /// A mirror pipeline (no table), as the config file gives it.
    fn mirror() -> PipelineSpec {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "[[pipelines]]\nname = \"p\"\nsource = { plugin = \"binance\", params = { symbols = [\"BTCUSDT\"], interval = \"1m\" } }\n",
        )
        .unwrap();
        crate::config::load(&path).unwrap().pipelines.remove(0)
    }

    #[test]
    fn the_slower_of_archives_and_bytes_bounds_the_time() {
        let spec = mirror();
        let last = LastRun {
            completed: 10,
            bytes: 10_000_000,
            elapsed_ms: 10_000,
            artifacts: Vec::new(),
        };
        // 1 archive/s and 1 MB/s: 100 archives of 5 MB are bound by bytes.
        let estimate = estimate(&spec, &plan(100, 500_000_000), Some(&last));
        assert_eq!(estimate.eta_s, Some(500.0));
        assert!(!estimate.requests_measured);
        assert_eq!(estimate.requests, 100 * counted_requests(&spec) as u64);
        // No earlier run: no time, requests still counted.
        let estimate = super::estimate(&spec, &plan(3, 30), None);
        assert!(estimate.rate.is_none() && estimate.eta_s.is_none());
        assert_eq!(estimate.archives, 3);
    }

    #[test]
    fn copies_use_the_requests_the_last_run_measured() {
        let spec = mirror();
        let last = LastRun {
            completed: 2,
            bytes: 0,
            elapsed_ms: 1000,
            artifacts: vec![
                LastArtifact { requests: Some(4) },
                LastArtifact { requests: Some(6) },
            ],
        };
        let estimate = estimate(&spec, &plan(10, 1000), Some(&last));
        assert!(estimate.requests_measured);
        assert_eq!(estimate.requests_per_archive, 6.0);
        assert_eq!(estimate.eta_s, Some(5.0));
    }
}
