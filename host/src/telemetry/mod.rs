//! Telemetry: log output and the agent's metrics.
//!
//! Owns: installing the `tracing` subscriber (human-readable on a terminal,
//! JSON when asked, and OTLP export when configured) and the metric registry whose names are defined in one
//! place ([`metrics::Metric`]). It must not decide what is logged: modules
//! log their own events as sentences with structured fields.

pub mod metrics;
pub mod otlp;
pub mod progress;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The target of the one-line-per-archive events ("Artifact committed to
/// the lake."): on a terminal, where progress bars show the same, text
/// logs leave them out at the `info` level; JSON logs, files and
/// collectors get them all.
pub const PER_ARTIFACT: &str = "cryptolake::artifact";

/// Installs the global subscriber. `RUST_LOG` overrides `default_level`.
/// Logs go to stderr so stdout stays for command output.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // The SDK's own records (building, shutting down) are not the
        // agent's news; its warnings are.
        EnvFilter::new(format!(
            "{default_level},wasmtime=warn,cranelift=warn,opentelemetry=warn"
        ))
    });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(progress::StderrAboveBars)
        // Colours only for a terminal: log files and collectors get plain text.
        .with_ansi(progress::stderr_is_terminal())
        .with_target(false);
    // The OTLP layer is empty until `otlp::start` (the file is read after
    // the subscriber is installed). The filter, though added after it,
    // applies to every layer.
    let registry = tracing_subscriber::registry()
        .with(otlp::install())
        .with(filter);
    // On a terminal a 100,000-archive backfill would print 100,000 lines and
    // scroll the bars away: those lines show from `debug` on.
    let quiet_archives = progress::stderr_is_terminal()
        && std::env::var_os("RUST_LOG").is_none()
        && matches!(default_level, "error" | "warn" | "info");
    let per_archive = tracing_subscriber::filter::filter_fn(move |meta| {
        !(quiet_archives && meta.target() == PER_ARTIFACT)
    });
    use tracing_subscriber::Layer;
    let result = match format {
        LogFormat::Text => registry.with(fmt.with_filter(per_archive)).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
    // A second init (tests calling the CLI in-process) keeps the first.
    let _ = result;
}
