//! The agent's metrics: what they are ([`catalogue`]: every name, kind,
//! unit, help and label value, defined there and nowhere else, so
//! dashboards can rely on them; `docs/telemetry.md` lists them), where their
//! values live ([`registry`]), how `/metrics` renders them ([`prometheus`]),
//! and the recorders below, one per event, the only way values get in.
//!
//! The Prometheus endpoint and the OTLP exporter both render the same
//! [`snapshot`]; recording never blocks on either.
//!
//! It must not decide what is worth recording: callers do, with the
//! catalogue's label enums.

pub mod catalogue;
mod plugin_points;
pub mod prometheus;
pub mod registry;

use std::time::Duration;

pub use catalogue::{
    ArtifactOutcome, CallOutcome, DURATION_BUCKETS, DropReason, FaultKind, Kind, Metric,
    ReloadKind, ReloadOutcome, RunOutcome, Signal, Stage, TransferMode, Verification,
};
pub use plugin_points::MAX_SERIES_PER_PLUGIN;
pub use prometheus::prometheus_text;
pub use registry::{Labels, Value, snapshot, sum, value};
use registry::{add, observe, set, set_max};

pub(crate) fn plugin_call(plugin: &str, call: &str, elapsed: Duration, outcome: CallOutcome) {
    add(
        Metric::PluginCalls,
        &[
            ("plugin", plugin),
            ("call", call),
            ("outcome", outcome.label()),
        ],
        1.0,
    );
    observe(
        Metric::PluginCallDuration,
        &[("plugin", plugin), ("call", call)],
        elapsed.as_secs_f64(),
    );
}

pub(crate) fn plugin_memory(plugin: &str, bytes: usize) {
    set_max(
        Metric::PluginMemoryHighWater,
        &[("plugin", plugin)],
        bytes as f64,
    );
}

pub(crate) fn plugin_fault(plugin: &str, kind: FaultKind) {
    add(
        Metric::PluginFaults,
        &[("plugin", plugin), ("kind", kind.label())],
        1.0,
    );
}

pub(crate) fn plugin_instantiated(plugin: &str) {
    add(Metric::PluginInstantiations, &[("plugin", plugin)], 1.0);
}

pub(crate) fn plugin_recycled(plugin: &str) {
    add(Metric::PluginRecycles, &[("plugin", plugin)], 1.0);
}

pub(crate) fn plugin_fetch_denied(plugin: &str) {
    add(Metric::PluginFetchDenied, &[("plugin", plugin)], 1.0);
}

/// A plugin's own counter: [`Metric::PluginCustomCounter`], apart from its
/// gauges, once [`plugin_points`] accepts the point. Returns whether it did.
pub(crate) fn plugin_counter_add(
    plugin: &str,
    name: &str,
    value: u64,
    extra: &[(String, String)],
) -> bool {
    let accepted = plugin_points::admit(
        plugin,
        Metric::PluginCustomCounter,
        name,
        extra,
        value as f64,
    );
    if let Some(pairs) = &accepted {
        add(Metric::PluginCustomCounter, &borrowed(pairs), value as f64);
    }
    accepted.is_some()
}

/// A plugin's own gauge: [`Metric::PluginCustom`], once [`plugin_points`]
/// accepts the point.
pub(crate) fn plugin_gauge_set(plugin: &str, name: &str, value: f64, extra: &[(String, String)]) {
    if let Some(pairs) = plugin_points::admit(plugin, Metric::PluginCustom, name, extra, value) {
        set(Metric::PluginCustom, &borrowed(&pairs), value);
    }
}

fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A plugin's metric point refused, for `reason`.
fn plugin_point_dropped(plugin: &str, reason: DropReason) {
    add(
        Metric::PluginMetricsDropped,
        &[("plugin", plugin), ("reason", reason.label())],
        1.0,
    );
}

pub(crate) fn plugin_swap_latency(plugin: &str, latency: Duration) {
    set(
        Metric::PluginSwapLatency,
        &[("plugin", plugin)],
        latency.as_secs_f64(),
    );
}

pub(crate) fn artifacts_discovered(pipeline: &str, count: usize) {
    add(
        Metric::ArtifactsDiscovered,
        &[("pipeline", pipeline)],
        count as f64,
    );
}

pub(crate) fn artifact_transferred(pipeline: &str, mode: TransferMode, bytes: u64) {
    let pairs = [("pipeline", pipeline), ("mode", mode.label())];
    add(Metric::ArtifactsTransferred, &pairs, 1.0);
    add(Metric::BytesTransferred, &pairs, bytes as f64);
}

pub(crate) fn artifact_verified(pipeline: &str) {
    add(Metric::ArtifactsVerified, &[("pipeline", pipeline)], 1.0);
}

pub(crate) fn artifact_finished(pipeline: &str, outcome: ArtifactOutcome) {
    add(
        Metric::Artifacts,
        &[("pipeline", pipeline), ("outcome", outcome.label())],
        1.0,
    );
}

pub(crate) fn bytes_downloaded(pipeline: &str, bytes: u64) {
    add(
        Metric::BytesDownloaded,
        &[("pipeline", pipeline)],
        bytes as f64,
    );
}

pub(crate) fn rows_written(table: &str, rows: u64) {
    add(Metric::RowsWritten, &[("table", table)], rows as f64);
}

pub(crate) fn stage(pipeline: &str, stage: Stage, elapsed: Duration) {
    observe(
        Metric::StageDuration,
        &[("pipeline", pipeline), ("stage", stage.label())],
        elapsed.as_secs_f64(),
    );
}

/// Records that `pipeline` holds data up to `until` (unix seconds); the lag
/// is measured from the newest such time.
pub(crate) fn data_until(pipeline: &str, until: i64) {
    registry::newest_data_until(pipeline, until);
}

/// A verified server-side copy, and the bytes read back to verify it.
pub(crate) fn direct_copy(pipeline: &str, verification: Verification, bytes_read: u64) {
    add(
        Metric::DirectCopies,
        &[
            ("pipeline", pipeline),
            ("verification", verification.label()),
        ],
        1.0,
    );
    add(
        Metric::BytesReadBack,
        &[("pipeline", pipeline)],
        bytes_read as f64,
    );
}

pub(crate) fn direct_fallback(pipeline: &str) {
    add(Metric::DirectFallbacks, &[("pipeline", pipeline)], 1.0);
}

pub(crate) fn reload(kind: ReloadKind, outcome: ReloadOutcome) {
    add(
        Metric::Reloads,
        &[("kind", kind.label()), ("outcome", outcome.label())],
        1.0,
    );
}

pub(crate) fn pipeline_run(pipeline: &str, outcome: RunOutcome) {
    add(
        Metric::PipelineRuns,
        &[("pipeline", pipeline), ("outcome", outcome.label())],
        1.0,
    );
}

pub(crate) fn telemetry_export_failed(signal: Signal) {
    add(
        Metric::TelemetryExportFailures,
        &[("signal", signal.label())],
        1.0,
    );
}
