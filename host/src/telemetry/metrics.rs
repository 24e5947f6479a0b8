//! The agent's metrics: every name and label is defined here and nowhere
//! else, so dashboards can rely on them (see `docs/architecture.md`).
//!
//! Values live in an in-process registry that the `sync` report reads; an
//! exporter can read the same snapshot.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Every metric the agent records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Calls into plugins, by plugin, call and outcome (`ok`, `fault`).
    PluginCalls,
    /// Total seconds spent in plugin calls, by plugin and call.
    PluginCallSeconds,
    /// Plugin faults, by plugin and kind (`timeout`, `memory_limit`, `trap`).
    PluginFaults,
    /// Plugin instances created, by plugin.
    PluginInstantiations,
    /// Plugin instances retired after their call budget, by plugin.
    PluginRecycles,
    /// Plugin HTTP requests refused by the allow-list, by plugin.
    PluginFetchDenied,
    /// Counters and gauges a plugin records itself, by plugin and name.
    PluginCustom,
    /// Artifacts finished, by pipeline and outcome.
    Artifacts,
    /// Archive bytes downloaded through the agent, by pipeline.
    BytesDownloaded,
    /// Archives copied server-side, by pipeline and verification.
    DirectCopies,
    /// Archives streamed after a failed server-side copy, by pipeline.
    DirectFallbacks,
    /// Bytes read back to verify a server-side copy, by pipeline.
    BytesReadBack,
    /// Rows written to the lake, by table.
    RowsWritten,
    /// Reloads, by kind (`plugin`, `config`) and outcome (`success`,
    /// `rejected`, `unchanged`).
    Reloads,
    /// Pipeline runs started by the daemon, by pipeline and outcome
    /// (`succeeded`, `failed`, `error`).
    PipelineRuns,
    /// Seconds from a plugin file's modification to the first call its new
    /// version served, by plugin (last swap).
    PluginSwapLatency,
}

impl Metric {
    /// The exported name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::PluginCalls => "cryptolake_plugin_calls_total",
            Metric::PluginCallSeconds => "cryptolake_plugin_call_seconds_total",
            Metric::PluginFaults => "cryptolake_plugin_faults_total",
            Metric::PluginInstantiations => "cryptolake_plugin_instantiations_total",
            Metric::PluginRecycles => "cryptolake_plugin_recycles_total",
            Metric::PluginFetchDenied => "cryptolake_plugin_fetch_denied_total",
            Metric::PluginCustom => "cryptolake_plugin_custom",
            Metric::Artifacts => "cryptolake_artifacts_total",
            Metric::BytesDownloaded => "cryptolake_bytes_downloaded_total",
            Metric::DirectCopies => "cryptolake_direct_copies_total",
            Metric::DirectFallbacks => "cryptolake_direct_fallbacks_total",
            Metric::BytesReadBack => "cryptolake_bytes_read_back_total",
            Metric::RowsWritten => "cryptolake_rows_written_total",
            Metric::Reloads => "cryptolake_reloads_total",
            Metric::PipelineRuns => "cryptolake_pipeline_runs_total",
            Metric::PluginSwapLatency => "cryptolake_plugin_swap_latency_seconds",
        }
    }
}

type Labels = Vec<(String, String)>;

fn registry() -> &'static Mutex<BTreeMap<(Metric, Labels), f64>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<(Metric, Labels), f64>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn add(metric: Metric, pairs: &[(&str, &str)], value: f64) {
    if let Ok(mut registry) = registry().lock() {
        *registry.entry((metric, labels(pairs))).or_insert(0.0) += value;
    }
}

fn set(metric: Metric, pairs: &[(&str, &str)], value: f64) {
    if let Ok(mut registry) = registry().lock() {
        registry.insert((metric, labels(pairs)), value);
    }
}

/// The value of `metric` with exactly `pairs` as labels (0 when unset).
pub fn value(metric: Metric, pairs: &[(&str, &str)]) -> f64 {
    registry()
        .lock()
        .ok()
        .and_then(|r| r.get(&(metric, labels(pairs))).copied())
        .unwrap_or(0.0)
}

/// The sum of `metric` over all label sets containing `pairs`.
pub fn sum(metric: Metric, pairs: &[(&str, &str)]) -> f64 {
    let wanted = labels(pairs);
    registry().lock().map_or(0.0, |r| {
        r.iter()
            .filter(|((m, l), _)| *m == metric && wanted.iter().all(|w| l.contains(w)))
            .map(|(_, v)| v)
            .sum()
    })
}

pub(crate) fn plugin_call(plugin: &str, call: &str, elapsed: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "fault" };
    add(
        Metric::PluginCalls,
        &[("plugin", plugin), ("call", call), ("outcome", outcome)],
        1.0,
    );
    add(
        Metric::PluginCallSeconds,
        &[("plugin", plugin), ("call", call)],
        elapsed.as_secs_f64(),
    );
}

pub(crate) fn plugin_fault(plugin: &str, kind: &str) {
    add(
        Metric::PluginFaults,
        &[("plugin", plugin), ("kind", kind)],
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

pub(crate) fn plugin_counter_add(plugin: &str, name: &str, value: u64, extra: &[(String, String)]) {
    let mut pairs = vec![("plugin", plugin), ("name", name)];
    pairs.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    add(Metric::PluginCustom, &pairs, value as f64);
}

pub(crate) fn plugin_gauge_set(plugin: &str, name: &str, value: f64, extra: &[(String, String)]) {
    let mut pairs = vec![("plugin", plugin), ("name", name)];
    pairs.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    set(Metric::PluginCustom, &pairs, value);
}

pub(crate) fn artifact_finished(pipeline: &str, outcome: &str) {
    add(
        Metric::Artifacts,
        &[("pipeline", pipeline), ("outcome", outcome)],
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

pub(crate) fn direct_copy(
    pipeline: &str,
    verification: crate::lake::CopyVerification,
    bytes_read: u64,
) {
    let verification = match verification {
        crate::lake::CopyVerification::ServerChecksum => "server-checksum",
        crate::lake::CopyVerification::StoredChecksum => "stored-checksum",
        crate::lake::CopyVerification::ReadBack => "read-back",
    };
    add(
        Metric::DirectCopies,
        &[("pipeline", pipeline), ("verification", verification)],
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

pub(crate) fn reload(kind: &str, outcome: &str) {
    add(
        Metric::Reloads,
        &[("kind", kind), ("outcome", outcome)],
        1.0,
    );
}

pub(crate) fn pipeline_run(pipeline: &str, outcome: &str) {
    add(
        Metric::PipelineRuns,
        &[("pipeline", pipeline), ("outcome", outcome)],
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
