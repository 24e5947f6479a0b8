//! The agent's metrics: every name, kind, unit and label is defined here and
//! nowhere else, so dashboards can rely on them (`docs/telemetry.md` lists
//! them).
//!
//! Values live in an in-process registry. The Prometheus endpoint and the
//! OTLP exporter both render the same [`snapshot`]; recording never blocks on
//! either (one short mutex section, no I/O).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Every metric the agent records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Calls into plugins, by plugin, call and outcome (`ok`, `error`,
    /// `fault`).
    PluginCalls,
    /// Duration of plugin calls, by plugin and call.
    PluginCallDuration,
    /// Plugin faults, by plugin and kind (`timeout`, `memory_limit`, `trap`).
    PluginFaults,
    /// Plugin instances created, by plugin.
    PluginInstantiations,
    /// Plugin instances retired after their call budget, by plugin.
    PluginRecycles,
    /// Plugin HTTP requests refused by the allow-list, by plugin.
    PluginFetchDenied,
    /// Largest linear memory an instance of the plugin reached, by plugin.
    PluginMemoryHighWater,
    /// Counters and gauges a plugin records itself, by plugin and name.
    PluginCustom,
    /// Seconds from a plugin file's modification to the first call its new
    /// version served, by plugin (last swap).
    PluginSwapLatency,
    /// Artifacts the sources listed, by pipeline.
    ArtifactsDiscovered,
    /// Artifacts that reached the lake, by pipeline and mode (`direct`,
    /// `stream`).
    ArtifactsTransferred,
    /// Artifacts whose SHA-256 matched the published checksum, by pipeline.
    ArtifactsVerified,
    /// Artifacts finished, by pipeline and outcome (`completed`,
    /// `quarantined`, `failed`).
    Artifacts,
    /// Archive bytes moved into the lake, by pipeline and mode (`direct`:
    /// server-side, `stream`: through the agent).
    BytesTransferred,
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
    /// Duration of a pipeline stage for one artifact (or one run, for
    /// `discover` and `reconcile`), by pipeline and stage.
    StageDuration,
    /// Age of the newest data the pipeline holds in the lake: now minus the
    /// end of the newest committed period, by pipeline.
    DataLag,
    /// Reloads, by kind (`plugin`, `config`) and outcome (`success`,
    /// `rejected`, `unchanged`).
    Reloads,
    /// Pipeline runs started by the daemon, by pipeline and outcome
    /// (`succeeded`, `failed`, `error`).
    PipelineRuns,
    /// Telemetry items dropped because the exporter's queue was full, by
    /// signal.
    TelemetryDropped,
    /// Failed OTLP export requests, by signal.
    TelemetryExportFailures,
}

/// How a metric aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Set to the latest value.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

impl Metric {
    /// Every metric, for documentation and tests.
    pub const ALL: [Metric; 25] = [
        Metric::PluginCalls,
        Metric::PluginCallDuration,
        Metric::PluginFaults,
        Metric::PluginInstantiations,
        Metric::PluginRecycles,
        Metric::PluginFetchDenied,
        Metric::PluginMemoryHighWater,
        Metric::PluginCustom,
        Metric::PluginSwapLatency,
        Metric::ArtifactsDiscovered,
        Metric::ArtifactsTransferred,
        Metric::ArtifactsVerified,
        Metric::Artifacts,
        Metric::BytesTransferred,
        Metric::BytesDownloaded,
        Metric::DirectCopies,
        Metric::DirectFallbacks,
        Metric::BytesReadBack,
        Metric::RowsWritten,
        Metric::StageDuration,
        Metric::DataLag,
        Metric::Reloads,
        Metric::PipelineRuns,
        Metric::TelemetryDropped,
        Metric::TelemetryExportFailures,
    ];

    /// The exported name (Prometheus conventions; OTLP uses the same).
    pub fn name(self) -> &'static str {
        self.describe().0
    }

    /// How it aggregates.
    pub fn kind(self) -> Kind {
        self.describe().1
    }

    /// One-line help text.
    pub fn help(self) -> &'static str {
        self.describe().2
    }

    fn describe(self) -> (&'static str, Kind, &'static str) {
        use Kind::*;
        match self {
            Metric::PluginCalls => (
                "cryptolake_plugin_calls_total",
                Counter,
                "Calls into plugins.",
            ),
            Metric::PluginCallDuration => (
                "cryptolake_plugin_call_duration_seconds",
                Histogram,
                "Duration of plugin calls.",
            ),
            Metric::PluginFaults => (
                "cryptolake_plugin_faults_total",
                Counter,
                "Plugin traps, timeouts and memory-limit hits.",
            ),
            Metric::PluginInstantiations => (
                "cryptolake_plugin_instantiations_total",
                Counter,
                "Plugin instances created.",
            ),
            Metric::PluginRecycles => (
                "cryptolake_plugin_recycles_total",
                Counter,
                "Plugin instances retired after their call budget.",
            ),
            Metric::PluginFetchDenied => (
                "cryptolake_plugin_fetch_denied_total",
                Counter,
                "Plugin HTTP requests refused by the allow-list.",
            ),
            Metric::PluginMemoryHighWater => (
                "cryptolake_plugin_memory_high_water_bytes",
                Gauge,
                "Largest linear memory a plugin instance reached.",
            ),
            Metric::PluginCustom => (
                "cryptolake_plugin_custom",
                Gauge,
                "Values plugins record themselves.",
            ),
            Metric::PluginSwapLatency => (
                "cryptolake_plugin_swap_latency_seconds",
                Gauge,
                "File change to first call on the new version, last swap.",
            ),
            Metric::ArtifactsDiscovered => (
                "cryptolake_artifacts_discovered_total",
                Counter,
                "Artifacts the sources listed.",
            ),
            Metric::ArtifactsTransferred => (
                "cryptolake_artifacts_transferred_total",
                Counter,
                "Artifacts that reached the lake, by transfer mode.",
            ),
            Metric::ArtifactsVerified => (
                "cryptolake_artifacts_verified_total",
                Counter,
                "Artifacts whose SHA-256 matched the published checksum.",
            ),
            Metric::Artifacts => (
                "cryptolake_artifacts_total",
                Counter,
                "Artifacts finished, by outcome.",
            ),
            Metric::BytesTransferred => (
                "cryptolake_bytes_transferred_total",
                Counter,
                "Archive bytes moved into the lake, by transfer mode.",
            ),
            Metric::BytesDownloaded => (
                "cryptolake_bytes_downloaded_total",
                Counter,
                "Archive bytes downloaded through the agent.",
            ),
            Metric::DirectCopies => (
                "cryptolake_direct_copies_total",
                Counter,
                "Archives copied server-side, by verification.",
            ),
            Metric::DirectFallbacks => (
                "cryptolake_direct_fallbacks_total",
                Counter,
                "Archives streamed after a failed server-side copy.",
            ),
            Metric::BytesReadBack => (
                "cryptolake_bytes_read_back_total",
                Counter,
                "Bytes read back to verify server-side copies.",
            ),
            Metric::RowsWritten => (
                "cryptolake_rows_written_total",
                Counter,
                "Rows written to the lake.",
            ),
            Metric::StageDuration => (
                "cryptolake_stage_duration_seconds",
                Histogram,
                "Duration of pipeline stages.",
            ),
            Metric::DataLag => (
                "cryptolake_data_lag_seconds",
                Gauge,
                "Now minus the end of the newest period in the lake.",
            ),
            Metric::Reloads => (
                "cryptolake_reloads_total",
                Counter,
                "Plugin and configuration reloads, by outcome.",
            ),
            Metric::PipelineRuns => (
                "cryptolake_pipeline_runs_total",
                Counter,
                "Scheduled pipeline runs, by outcome.",
            ),
            Metric::TelemetryDropped => (
                "cryptolake_telemetry_dropped_total",
                Counter,
                "Telemetry items dropped on a full export queue.",
            ),
            Metric::TelemetryExportFailures => (
                "cryptolake_telemetry_export_failures_total",
                Counter,
                "Failed OTLP export requests.",
            ),
        }
    }
}

/// Upper bounds of the duration histograms' buckets, seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Label pairs, in the order given.
pub type Labels = Vec<(String, String)>;

/// A recorded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total or a gauge's latest value.
    Number(f64),
    /// A histogram over [`DURATION_BUCKETS`].
    Histogram {
        /// Observations per bucket (the last one is `+Inf`).
        buckets: Vec<u64>,
        /// Sum of observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

impl Value {
    /// A number's value, or a histogram's count.
    fn scalar(&self) -> f64 {
        match self {
            Value::Number(n) => *n,
            Value::Histogram { count, .. } => *count as f64,
        }
    }
}

type Registry = BTreeMap<(Metric, Labels), Value>;

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Newest committed data per pipeline (unix seconds), for [`Metric::DataLag`],
/// which is computed when read.
fn newest_data() -> &'static Mutex<BTreeMap<String, i64>> {
    static NEWEST: OnceLock<Mutex<BTreeMap<String, i64>>> = OnceLock::new();
    NEWEST.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn add(metric: Metric, pairs: &[(&str, &str)], value: f64) {
    if let Ok(mut registry) = registry().lock() {
        let entry = registry
            .entry((metric, labels(pairs)))
            .or_insert(Value::Number(0.0));
        if let Value::Number(total) = entry {
            *total += value;
        }
    }
}

fn set(metric: Metric, pairs: &[(&str, &str)], value: f64) {
    if let Ok(mut registry) = registry().lock() {
        registry.insert((metric, labels(pairs)), Value::Number(value));
    }
}

fn set_max(metric: Metric, pairs: &[(&str, &str)], value: f64) {
    if let Ok(mut registry) = registry().lock() {
        let entry = registry
            .entry((metric, labels(pairs)))
            .or_insert(Value::Number(0.0));
        if let Value::Number(current) = entry
            && value > *current
        {
            *current = value;
        }
    }
}

fn observe(metric: Metric, pairs: &[(&str, &str)], seconds: f64) {
    if let Ok(mut registry) = registry().lock() {
        let entry = registry
            .entry((metric, labels(pairs)))
            .or_insert_with(|| Value::Histogram {
                buckets: vec![0; DURATION_BUCKETS.len() + 1],
                sum: 0.0,
                count: 0,
            });
        if let Value::Histogram {
            buckets,
            sum,
            count,
        } = entry
        {
            let index = DURATION_BUCKETS
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(DURATION_BUCKETS.len());
            buckets[index] += 1;
            *sum += seconds;
            *count += 1;
        }
    }
}

/// Every recorded series, with the data lag computed for now.
pub fn snapshot() -> Vec<(Metric, Labels, Value)> {
    let mut out: Vec<(Metric, Labels, Value)> = registry()
        .lock()
        .map(|r| {
            r.iter()
                .map(|((m, l), v)| (*m, l.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let now = unix_seconds(SystemTime::now());
    if let Ok(newest) = newest_data().lock() {
        for (pipeline, at) in newest.iter() {
            out.push((
                Metric::DataLag,
                vec![("pipeline".to_owned(), pipeline.clone())],
                Value::Number((now - at).max(0) as f64),
            ));
        }
    }
    out
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The value of `metric` with exactly `pairs` as labels (0 when unset; a
/// histogram's count).
pub fn value(metric: Metric, pairs: &[(&str, &str)]) -> f64 {
    registry()
        .lock()
        .ok()
        .and_then(|r| r.get(&(metric, labels(pairs))).map(Value::scalar))
        .unwrap_or(0.0)
}

/// The sum of `metric` over all label sets containing `pairs`.
pub fn sum(metric: Metric, pairs: &[(&str, &str)]) -> f64 {
    let wanted = labels(pairs);
    registry().lock().map_or(0.0, |r| {
        r.iter()
            .filter(|((m, l), _)| *m == metric && wanted.iter().all(|w| l.contains(w)))
            .map(|(_, v)| v.scalar())
            .sum()
    })
}

/// Renders the registry in the Prometheus text exposition format (0.0.4).
pub fn prometheus_text() -> String {
    let mut series = snapshot();
    series.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut out = String::new();
    let mut current = None;
    for (metric, labels, value) in series {
        if current != Some(metric) {
            let kind = match metric.kind() {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            out.push_str(&format!("# HELP {} {}\n", metric.name(), metric.help()));
            out.push_str(&format!("# TYPE {} {kind}\n", metric.name()));
            current = Some(metric);
        }
        match value {
            Value::Number(n) => {
                out.push_str(&format!(
                    "{}{} {}\n",
                    metric.name(),
                    label_text(&labels, None),
                    number(n)
                ));
            }
            Value::Histogram {
                buckets,
                sum,
                count,
            } => {
                let mut cumulative = 0;
                for (i, n) in buckets.iter().enumerate() {
                    cumulative += n;
                    let bound = DURATION_BUCKETS
                        .get(i)
                        .map(|b| number(*b))
                        .unwrap_or_else(|| "+Inf".to_owned());
                    out.push_str(&format!(
                        "{}_bucket{} {cumulative}\n",
                        metric.name(),
                        label_text(&labels, Some(&bound))
                    ));
                }
                out.push_str(&format!(
                    "{}_sum{} {}\n",
                    metric.name(),
                    label_text(&labels, None),
                    number(sum)
                ));
                out.push_str(&format!(
                    "{}_count{} {count}\n",
                    metric.name(),
                    label_text(&labels, None)
                ));
            }
        }
    }
    out
}

fn number(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `outcome`: `ok`, `error` (the plugin returned an error) or `fault` (trap,
/// timeout, memory limit).
pub(crate) fn plugin_call(plugin: &str, call: &str, elapsed: Duration, outcome: &str) {
    add(
        Metric::PluginCalls,
        &[("plugin", plugin), ("call", call), ("outcome", outcome)],
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

pub(crate) fn artifact_transferred(pipeline: &str, mode: &str, bytes: u64) {
    add(
        Metric::ArtifactsTransferred,
        &[("pipeline", pipeline), ("mode", mode)],
        1.0,
    );
    add(
        Metric::BytesTransferred,
        &[("pipeline", pipeline), ("mode", mode)],
        bytes as f64,
    );
}

pub(crate) fn artifact_verified(pipeline: &str) {
    add(Metric::ArtifactsVerified, &[("pipeline", pipeline)], 1.0);
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

pub(crate) fn stage(pipeline: &str, stage: &str, elapsed: Duration) {
    observe(
        Metric::StageDuration,
        &[("pipeline", pipeline), ("stage", stage)],
        elapsed.as_secs_f64(),
    );
}

/// Records that `pipeline` holds data up to `until` (unix seconds); the lag
/// is measured from the newest such time.
pub(crate) fn data_until(pipeline: &str, until: i64) {
    if let Ok(mut newest) = newest_data().lock() {
        let entry = newest.entry(pipeline.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }
}

/// A verified server-side copy; `verification` is how it was verified
/// (`CopyVerification::label`).
pub(crate) fn direct_copy(pipeline: &str, verification: &str, bytes_read: u64) {
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

pub(crate) fn telemetry_dropped(signal: &str) {
    add(Metric::TelemetryDropped, &[("signal", signal)], 1.0);
}

pub(crate) fn telemetry_export_failed(signal: &str) {
    add(Metric::TelemetryExportFailures, &[("signal", signal)], 1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prometheus_safe() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        observe(
            Metric::StageDuration,
            &[("pipeline", "render-test"), ("stage", "decode")],
            0.003,
        );
        observe(
            Metric::StageDuration,
            &[("pipeline", "render-test"), ("stage", "decode")],
            7.0,
        );
        let text = prometheus_text();
        assert!(
            text.contains("# TYPE cryptolake_stage_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains(r#"cryptolake_stage_duration_seconds_bucket{pipeline="render-test",stage="decode",le="0.0025"} 0"#), "{text}");
        assert!(text.contains(r#"cryptolake_stage_duration_seconds_bucket{pipeline="render-test",stage="decode",le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"cryptolake_stage_duration_seconds_bucket{pipeline="render-test",stage="decode",le="+Inf"} 2"#), "{text}");
        assert!(text.contains(r#"cryptolake_stage_duration_seconds_count{pipeline="render-test",stage="decode"} 2"#), "{text}");
    }

    #[test]
    fn lag_is_measured_from_the_newest_data() {
        let now = unix_seconds(SystemTime::now());
        data_until("lag-test", now - 7200);
        data_until("lag-test", now - 3600);
        data_until("lag-test", now - 86_400);
        let lag = snapshot()
            .into_iter()
            .find(|(m, l, _)| *m == Metric::DataLag && l[0].1 == "lag-test")
            .map(|(_, _, v)| v);
        let Some(Value::Number(lag)) = lag else {
            panic!("no lag recorded");
        };
        assert!((3600.0..3700.0).contains(&lag), "{lag}");
    }
}
