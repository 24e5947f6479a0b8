//! `cryptolake run`: the agent, until SIGTERM or SIGINT.

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE};
use crate::daemon::{self, DaemonError};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
}

pub(super) fn run(args: RunArgs, started: std::time::Instant) -> u8 {
    let tokio = match super::tokio_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match tokio.block_on(daemon::run(args.config.config, started)) {
        Ok(()) => 0,
        Err(
            error @ (DaemonError::Config(_) | DaemonError::Pipelines { .. } | DaemonError::Lake(_)),
        ) => {
            eprintln!("error: {error}");
            EXIT_USAGE
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_FAILED
        }
    }
}
