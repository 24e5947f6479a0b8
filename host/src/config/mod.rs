//! Configuration: the file format, loading, and resolution into a plan.
//!
//! Owns: reading one TOML file, reporting every problem with the file name
//! and the field path (exit code 2 at the CLI), and resolving the raw types
//! into a [`Plan`] with absolute paths, parsed sizes and durations, and
//! checked cross-references. It must not load plugins or touch the lake.

mod plan;
mod types;
mod units;

pub use plan::{
    LakeLocation, Limits, PipelineSpec, Plan, PluginLocation, PluginRef, PluginSpec, load,
};
pub use types::{ConfigFile, MissingChecksumPolicy, RateLimitConfig, TransferMode};
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
            if problem.field.is_empty() {
                write!(f, "\n  - {}", problem.message)?;
            } else {
                write!(f, "\n  - {}: {}", problem.field, problem.message)?;
            }
        }
        Ok(())
    }
}
