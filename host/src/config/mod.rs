//! Configuration: the file format, loading, and resolution into a plan.
//!
//! Owns: reading one TOML file (with `CRYPTOLAKE_…` environment overrides),
//! reporting every problem with the file name
//! and the field path (exit code 2 at the CLI), and resolving the raw types
//! into a [`Plan`] with absolute paths, parsed sizes and durations, and
//! checked cross-references. It must not load plugins or touch the lake.

mod host_pattern;
mod lake;
mod plan;
mod resolve;
mod source;
mod types;
mod units;

pub use host_pattern::HostPattern;
pub use lake::{LakeLocation, ObjectLake, ObjectService};
pub use plan::{
    AdminSettings, DaemonSettings, LeaseSettings, Limits, OtlpCompression, OtlpFileSettings,
    OtlpProtocol, PipelineSchedule, PipelineSpec, Plan, PluginLocation, PluginRef, PluginSpec,
};
pub use resolve::{kernel_host_name, resolve};
pub use source::line_of;
pub use types::{
    ConfigFile, FloatEncoding, IntegerEncoding, MissingChecksumPolicy, OtlpConfig, ParquetConfig,
    RateLimitConfig, TransferMode,
};
pub use units::{parse_duration, parse_size};

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `pipelines[0].source.plugin`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// The 1-based line in the file, where it can be told.
    pub line: Option<usize>,
}

/// A configuration that cannot be used. Lists every problem found.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The problems, at least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}", self.file.display())?;
        for problem in &self.problems {
            let line = problem
                .line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            if problem.field.is_empty() {
                write!(f, "\n  - {}", problem.message)?;
            } else {
                write!(f, "\n  - {}{line}: {}", problem.field, problem.message)?;
            }
        }
        Ok(())
    }
}

/// Reads, parses and resolves the configuration file at `path`, with the
/// process environment's `CRYPTOLAKE_…` overrides.
pub fn load(path: &std::path::Path) -> Result<Plan, ConfigError> {
    let file = source::read(path)?;
    resolve(path, file).map_err(|mut error| {
        if let Ok(text) = std::fs::read_to_string(path) {
            for problem in &mut error.problems {
                problem.line = source::line_of(&text, &problem.field);
            }
        }
        error
    })
}

/// The JSON Schema of the configuration file, generated from its types.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ConfigFile)).unwrap_or_default()
}
