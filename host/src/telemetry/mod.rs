//! Telemetry: log output and the agent's metrics.
//!
//! Owns: installing the `tracing` subscriber (human-readable on a terminal,
//! JSON when asked) and the metric registry whose names are defined in one
//! place ([`metrics::Metric`]). It must not decide what is logged: modules
//! log their own events as sentences with structured fields.

pub mod metrics;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_level`.
/// Logs go to stderr so stdout stays for command output.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_level},wasmtime=warn,cranelift=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests calling the CLI in-process) keeps the first.
    let _ = result;
}
