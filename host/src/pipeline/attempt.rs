//! How one attempt at an artifact ends short of success.
//!
//! Owns: the one classification of every error an attempt meets (a
//! transfer's, a server-side copy's, a decoder's) into retry, quarantine or
//! failure. The retry loop in [`super`] acts on it: it waits and tries
//! again, and quarantines a checksum mismatch only on the last attempt.
//!
//! It must not act: no waiting, no lake writes.

use super::DecodeError;
use crate::transfer::TransferError;

/// How one attempt ended short of success.
pub(super) enum Attempt {
    /// Worth another attempt.
    Retry {
        error: String,
        wait: Option<std::time::Duration>,
    },
    /// The bytes do not match the published checksum.
    Mismatch {
        staged: tempfile::NamedTempFile,
        expected: String,
        actual: String,
    },
    /// A server-side copy did not match; it is already at the quarantine key.
    MismatchInLake { expected: String, actual: String },
    /// The source must not enter the lake; what is kept of it is already
    /// at the quarantine key.
    QuarantinedInLake { reason: String },
    /// The archive must not enter the lake.
    Quarantine {
        staged: tempfile::NamedTempFile,
        reason: String,
    },
    /// Final failure; no retry can help.
    Fail(String),
}

impl Attempt {
    /// A transfer failed while fetching `what`: a transient error (a
    /// retryable status, a reset connection) is worth another attempt,
    /// after the server's `Retry-After` when it gave one.
    pub(super) fn from_transfer(error: TransferError, what: &str) -> Self {
        let message = format!("{what}: {error}");
        if error.is_transient() {
            Attempt::Retry {
                error: message,
                wait: error.retry_after(),
            }
        } else {
            Attempt::Fail(message)
        }
    }

    /// Decoding the verified archive `staged` failed: an unusable archive
    /// or input a plugin judged malformed is quarantined with it; a plugin's
    /// transient error is retried; anything else (a trap, a write error)
    /// fails the artifact.
    pub(super) fn from_decode(error: DecodeError, staged: tempfile::NamedTempFile) -> Self {
        match error {
            DecodeError::Archive(message) => Attempt::Quarantine {
                staged,
                reason: format!("archive verified but unusable: {message}"),
            },
            DecodeError::Plugin(error) if error.is_malformed_input() => Attempt::Quarantine {
                staged,
                reason: error.to_string(),
            },
            DecodeError::Plugin(error) if error.is_transient() => Attempt::Retry {
                error: error.to_string(),
                wait: None,
            },
            error => Attempt::Fail(error.to_string()),
        }
    }
}
