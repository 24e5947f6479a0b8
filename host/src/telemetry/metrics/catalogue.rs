//! The metric catalogue: every metric's name on `/metrics` (unit and
//! `_total` in it, as Prometheus spells them) and on OTLP (OpenTelemetry's
//! dotted names, with the unit apart), kind and help, in one table, and every label value the
//! agent's own recorders use. Dashboards rely on these; docs/telemetry.md
//! lists them, and a test checks that it lists every one.
//!
//! Owns: the table and the label vocabularies. It must not record or
//! render values: [`super::registry`] and [`super::prometheus`] do.

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

/// Generates [`Metric`], [`Metric::ALL`] and each metric's description
/// from one table, so a metric cannot be added in one place and forgotten
/// in another.
macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident => ($name:literal, $otel_name:literal, $unit:literal, $kind:ident, $help:literal),)*) => {
        /// Every metric the agent records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Metric {
            $($(#[$doc])* $variant,)*
        }

        impl Metric {
            /// How many metrics there are.
            pub const COUNT: usize = [$(Metric::$variant),*].len();

            /// Every metric, in the catalogue's order.
            pub const ALL: [Metric; Metric::COUNT] = [$(Metric::$variant),*];

            fn describe(self) -> Description {
                match self {
                    $(Metric::$variant => Description {
                        name: $name,
                        otel_name: $otel_name,
                        unit: $unit,
                        kind: Kind::$kind,
                        help: $help,
                    },)*
                }
            }
        }
    };
}

catalogue! {
    /// Calls into plugins, by plugin, call and outcome (`ok`, `error`,
    /// `fault`).
    PluginCalls => ("cryptolake_plugin_calls_total", "cryptolake.plugin.calls", "{call}", Counter, "Calls into plugins."),
    /// Duration of plugin calls, by plugin and call.
    PluginCallDuration => ("cryptolake_plugin_call_duration_seconds", "cryptolake.plugin.call.duration", "s", Histogram, "Duration of plugin calls."),
    /// Plugin faults, by plugin and kind (`timeout`, `memory_limit`, `trap`).
    PluginFaults => ("cryptolake_plugin_faults_total", "cryptolake.plugin.faults", "{fault}", Counter, "Plugin traps, timeouts and memory-limit hits."),
    /// Plugin instances created, by plugin.
    PluginInstantiations => ("cryptolake_plugin_instantiations_total", "cryptolake.plugin.instantiations", "{instance}", Counter, "Plugin instances created."),
    /// Plugin instances retired after their call budget, by plugin.
    PluginRecycles => ("cryptolake_plugin_recycles_total", "cryptolake.plugin.recycles", "{instance}", Counter, "Plugin instances retired after their call budget."),
    /// Plugin HTTP requests refused by the allow-list, by plugin.
    PluginFetchDenied => ("cryptolake_plugin_fetch_denied_total", "cryptolake.plugin.fetch.denied", "{request}", Counter, "Plugin HTTP requests refused by the allow-list."),
    /// Largest linear memory an instance of the plugin reached, by plugin.
    PluginMemoryHighWater => ("cryptolake_plugin_memory_high_water_bytes", "cryptolake.plugin.memory.high_water", "By", Gauge, "Largest linear memory a plugin instance reached."),
    /// Gauges a plugin sets itself, by plugin, name and its labels.
    PluginCustom => ("cryptolake_plugin_custom", "cryptolake.plugin.custom", "1", Gauge, "Gauges plugins set themselves."),
    /// Counters a plugin adds to itself, by plugin, name and its labels: a
    /// counter of its own, apart from the gauges, so rates work on it.
    PluginCustomCounter => ("cryptolake_plugin_custom_total", "cryptolake.plugin.custom.count", "1", Counter, "Counters plugins add to themselves."),
    /// Metric points a plugin recorded that the host refused, by plugin and
    /// reason (`name`, `label`, `value`, `series_limit`).
    PluginMetricsDropped => ("cryptolake_plugin_metrics_dropped_total", "cryptolake.plugin.metrics.dropped", "{point}", Counter, "Plugin metric points refused: bad name, label or value, or over the plugin's series limit."),
    /// Seconds from a plugin file's modification to the first call its new
    /// version served, by plugin (last swap).
    PluginSwapLatency => ("cryptolake_plugin_swap_latency_seconds", "cryptolake.plugin.swap.latency", "s", Gauge, "File change to first call on the new version, last swap."),
    /// Artifacts the sources listed, by pipeline.
    ArtifactsDiscovered => ("cryptolake_artifacts_discovered_total", "cryptolake.artifacts.discovered", "{artifact}", Counter, "Artifacts the sources listed."),
    /// Artifacts that reached the lake, by pipeline and mode (`direct`,
    /// `stream`).
    ArtifactsTransferred => ("cryptolake_artifacts_transferred_total", "cryptolake.artifacts.transferred", "{artifact}", Counter, "Artifacts that reached the lake, by transfer mode."),
    /// Artifacts whose SHA-256 matched the published checksum, by pipeline.
    ArtifactsVerified => ("cryptolake_artifacts_verified_total", "cryptolake.artifacts.verified", "{artifact}", Counter, "Artifacts whose SHA-256 matched the published checksum."),
    /// Artifacts finished, by pipeline and outcome (`completed`,
    /// `quarantined`, `failed`).
    Artifacts => ("cryptolake_artifacts_total", "cryptolake.artifacts.finished", "{artifact}", Counter, "Artifacts finished, by outcome."),
    /// Archive bytes moved into the lake, by pipeline and mode (`direct`:
    /// server-side, `stream`: through the agent).
    BytesTransferred => ("cryptolake_bytes_transferred_total", "cryptolake.transferred", "By", Counter, "Archive bytes moved into the lake, by transfer mode."),
    /// Archive bytes downloaded through the agent, by pipeline.
    BytesDownloaded => ("cryptolake_bytes_downloaded_total", "cryptolake.downloaded", "By", Counter, "Archive bytes downloaded through the agent."),
    /// Archives copied server-side, by pipeline and verification.
    DirectCopies => ("cryptolake_direct_copies_total", "cryptolake.direct.copies", "{artifact}", Counter, "Archives copied server-side, by verification."),
    /// Archives streamed after a failed server-side copy, by pipeline.
    DirectFallbacks => ("cryptolake_direct_fallbacks_total", "cryptolake.direct.fallbacks", "{artifact}", Counter, "Archives streamed after a failed server-side copy."),
    /// Bytes read back to verify a server-side copy, by pipeline.
    BytesReadBack => ("cryptolake_bytes_read_back_total", "cryptolake.read_back", "By", Counter, "Bytes read back to verify server-side copies."),
    /// Rows written to the lake, by table.
    RowsWritten => ("cryptolake_rows_written_total", "cryptolake.rows.written", "{row}", Counter, "Rows written to the lake."),
    /// Duration of a pipeline stage for one artifact (or one run, for
    /// `discover` and `reconcile`), by pipeline and stage.
    StageDuration => ("cryptolake_stage_duration_seconds", "cryptolake.stage.duration", "s", Histogram, "Duration of pipeline stages."),
    /// Age of the newest data the pipeline holds in the lake: now minus the
    /// end of the newest committed period, by pipeline.
    DataLag => ("cryptolake_data_lag_seconds", "cryptolake.data.lag", "s", Gauge, "Now minus the end of the newest period in the lake."),
    /// Reloads, by kind (`plugin`, `config`) and outcome (`success`,
    /// `rejected`, `unchanged`).
    Reloads => ("cryptolake_reloads_total", "cryptolake.reloads", "{reload}", Counter, "Plugin and configuration reloads, by outcome."),
    /// Pipeline runs started by the daemon, by pipeline and outcome
    /// (`succeeded`, `failed`, `error`).
    PipelineRuns => ("cryptolake_pipeline_runs_total", "cryptolake.pipeline.runs", "{run}", Counter, "Scheduled pipeline runs, by outcome."),
    /// Failed OTLP export requests, by signal.
    TelemetryExportFailures => ("cryptolake_telemetry_export_failures_total", "cryptolake.telemetry.export.failures", "{request}", Counter, "Failed OTLP export requests."),
}

/// One row of the table.
struct Description {
    name: &'static str,
    otel_name: &'static str,
    unit: &'static str,
    kind: Kind,
    help: &'static str,
}

impl Metric {
    /// The name on `/metrics`, as Prometheus spells it (unit and `_total`
    /// in the name).
    pub fn name(self) -> &'static str {
        self.describe().name
    }

    /// The name on OTLP, as OpenTelemetry's conventions spell it: dotted
    /// namespaces, no unit or `_total` (those are the unit and the kind).
    pub fn otel_name(self) -> &'static str {
        self.describe().otel_name
    }

    /// The unit in UCUM, as OTLP carries it (`s`, `By`, `{artifact}`).
    pub fn unit(self) -> &'static str {
        self.describe().unit
    }

    /// How it aggregates.
    pub fn kind(self) -> Kind {
        self.describe().kind
    }

    /// One-line help text.
    pub fn help(self) -> &'static str {
        self.describe().help
    }
}

/// Upper bounds of the duration histograms' buckets, seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// A label vocabulary: an enum whose values are the only ones a label
/// takes.
macro_rules! labels {
    ($($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)* })*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub enum $name {
                $($(#[$vdoc])* $variant,)*
            }

            impl $name {
                /// The label's value.
                pub fn label(self) -> &'static str {
                    match self {
                        $($name::$variant => $label,)*
                    }
                }
            }
        )*
    };
}

labels! {
    /// How a plugin call ended (`outcome` of [`Metric::PluginCalls`]).
    CallOutcome {
        /// It returned a value.
        Ok => "ok",
        /// It returned an error.
        Error => "error",
        /// It trapped, timed out or hit its memory limit.
        Fault => "fault",
    }

    /// What went wrong in a faulted call (`kind` of [`Metric::PluginFaults`]).
    FaultKind {
        /// Its deadline passed.
        Timeout => "timeout",
        /// It asked for more memory than its limit.
        MemoryLimit => "memory_limit",
        /// Any other trap.
        Trap => "trap",
    }

    /// Whether an archive's bytes passed through the agent (`mode` of
    /// [`Metric::ArtifactsTransferred`] and [`Metric::BytesTransferred`]).
    TransferMode {
        /// A server-side copy.
        Direct => "direct",
        /// Downloaded through the agent (a fallback from a copy too).
        Stream => "stream",
    }

    /// How a server-side copy was verified (`verification` of
    /// [`Metric::DirectCopies`]).
    Verification {
        /// The server computed the copy's SHA-256 while copying.
        ServerChecksum => "server-checksum",
        /// The server reported the SHA-256 it stored.
        StoredChecksum => "stored-checksum",
        /// The agent read the copy back.
        ReadBack => "read-back",
    }

    /// How an artifact ended (`outcome` of [`Metric::Artifacts`]).
    ArtifactOutcome {
        /// Committed to the lake.
        Completed => "completed",
        /// Quarantined by this run.
        Quarantined => "quarantined",
        /// Quarantined earlier and unchanged at the source: skipped.
        StillQuarantined => "still-quarantined",
        /// Another agent sharing the lake committed it first.
        CommittedElsewhere => "committed-elsewhere",
        /// Could not be processed.
        Failed => "failed",
    }

    /// A pipeline stage (`stage` of [`Metric::StageDuration`]).
    Stage {
        /// The source plugin's listing (once per run).
        Discover => "discover",
        /// Comparing the listing with the lake (once per run).
        Reconcile => "reconcile",
        /// Download or server-side copy.
        Transfer => "transfer",
        /// The source plugin's decoder.
        Decode => "decode",
        /// The transforms.
        Transform => "transform",
        /// Parquet writing.
        Write => "write",
        /// Checksum mirror and manifest entry.
        Commit => "commit",
    }

    /// What was reloaded (`kind` of [`Metric::Reloads`]).
    ReloadKind {
        /// A plugin file.
        Plugin => "plugin",
        /// The configuration file.
        Config => "config",
    }

    /// How a reload ended (`outcome` of [`Metric::Reloads`]).
    ReloadOutcome {
        /// The new version serves.
        Success => "success",
        /// The new version was refused; the old one keeps serving.
        Rejected => "rejected",
        /// Nothing had changed.
        Unchanged => "unchanged",
    }

    /// How a scheduled run ended (`outcome` of [`Metric::PipelineRuns`]).
    RunOutcome {
        /// Every artifact committed or up to date.
        Succeeded => "succeeded",
        /// Some artifact failed or was quarantined.
        Failed => "failed",
        /// The run itself could not be made (discovery, the lake).
        Error => "error",
    }

    /// Why a plugin's metric point was refused (`reason` of
    /// [`Metric::PluginMetricsDropped`]).
    DropReason {
        /// The metric's name breaks the naming rules.
        Name => "name",
        /// A label key breaks the rules, is reserved or repeated, a value is
        /// too long, or there are too many labels.
        Label => "label",
        /// A gauge value that is not a finite number.
        Value => "value",
        /// The plugin already has as many series as it may.
        SeriesLimit => "series_limit",
    }

    /// An OTLP signal (`signal` of the telemetry metrics).
    Signal {
        /// Spans.
        Traces => "traces",
        /// Metrics.
        Metrics => "metrics",
        /// Log records.
        Logs => "logs",
    }
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
    fn otel_names_follow_the_semantic_conventions() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.otel_name()).collect();
        for name in &names {
            assert!(name.starts_with("cryptolake."), "{name}");
            assert!(
                !name.ends_with("_total") && !name.ends_with("_seconds") && !name.contains("bytes"),
                "units and kinds are not part of an OTel name: {name}"
            );
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{name}"
            );
        }
        for metric in Metric::ALL {
            let unit = metric.unit();
            if metric.name().ends_with("_seconds") {
                assert_eq!(unit, "s", "{metric:?}");
            } else if metric.name().ends_with("_bytes") || metric.name().contains("_bytes_") {
                assert_eq!(unit, "By", "{metric:?}");
            } else {
                assert!(
                    unit == "1" || (unit.starts_with('{') && unit.ends_with('}')),
                    "{metric:?}"
                );
            }
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
    }
}
