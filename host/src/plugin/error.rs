//! Errors of loading and calling plugins. Every one names the plugin.

use std::time::Duration;

use crate::wit::types::PluginError as WitPluginError;

/// A plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("plugin {origin}: {reason}")]
pub struct PluginLoadError {
    /// File path or `builtin:<name>`.
    pub origin: String,
    /// Why.
    pub reason: String,
}

impl PluginLoadError {
    pub(crate) fn new(origin: &str, reason: impl Into<String>) -> Self {
        Self {
            origin: origin.to_owned(),
            reason: reason.into(),
        }
    }
}

/// An error a plugin returned on purpose (the WIT's `plugin-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// Its params are wrong.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// A temporary failure; retrying may help.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The input data is malformed.
    #[error("malformed input{}: {message}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    MalformedInput {
        /// What is wrong.
        message: String,
        /// 1-based line, when known.
        line: Option<u64>,
    },
    /// Something it needed does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A bug inside the plugin.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<WitPluginError> for GuestError {
    fn from(error: WitPluginError) -> Self {
        match error {
            WitPluginError::InvalidParams(m) => GuestError::InvalidParams(m),
            WitPluginError::Transient(m) => GuestError::Transient(m),
            WitPluginError::MalformedInput(m) => GuestError::MalformedInput {
                message: m.message,
                line: m.line,
            },
            WitPluginError::NotFound(m) => GuestError::NotFound(m),
            WitPluginError::Internal(m) => GuestError::Internal(m),
        }
    }
}

/// What went wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum CallErrorKind {
    /// The call ran past its wall-clock limit and was interrupted.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The instance tried to grow its memory past the limit.
    #[error("exceeded its memory limit of {0} bytes")]
    MemoryLimit(usize),
    /// The guest trapped (a panic, an out-of-bounds access, `unreachable`).
    #[error("trapped: {0}")]
    Trap(String),
    /// A fresh instance could not be created.
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// The plugin returned something that breaks the contract.
    #[error("returned invalid output: {0}")]
    InvalidOutput(String),
    /// The plugin returned an error value.
    #[error("{0}")]
    Guest(GuestError),
}

/// A failed call into a plugin.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}` failed in {call}: {kind}")]
pub struct PluginCallError {
    /// The plugin's configured name.
    pub plugin: String,
    /// The call, e.g. `discover`, `decoder.push`.
    pub call: &'static str,
    /// What went wrong.
    pub kind: CallErrorKind,
}

impl PluginCallError {
    /// Whether retrying the same work may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, CallErrorKind::Guest(GuestError::Transient(_)))
    }

    /// Whether the instance that made the call must be dropped: anything but
    /// an error value the guest returned on purpose (a trap, a timeout, a
    /// memory-limit hit, or output that breaks the contract).
    pub fn poisons_instance(&self) -> bool {
        !matches!(self.kind, CallErrorKind::Guest(_))
    }

    /// Whether the plugin judged the input data malformed.
    pub fn is_malformed_input(&self) -> bool {
        matches!(
            self.kind,
            CallErrorKind::Guest(GuestError::MalformedInput { .. })
        )
    }
}

/// The innermost message of an error chain.
pub(crate) fn root_cause(error: &anyhow::Error) -> String {
    // wasmparser appends multi-line byte dumps; the first clause is the news.
    let text = error.root_cause().to_string();
    let first = text.lines().next().unwrap_or_default();
    first
        .split(" - expected")
        .next()
        .unwrap_or(first)
        .trim()
        .to_owned()
}
