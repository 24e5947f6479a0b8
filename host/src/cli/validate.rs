//! `cryptolake validate`: check a configuration and its plugins.

use crate::agent::Agent;

use super::{ConfigArg, EXIT_USAGE};

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    config: ConfigArg,
}

pub(super) fn run(args: ValidateArgs) -> u8 {
    let plan = match super::load_plan(&args.config.config) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let tokio = match super::tokio_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let pipelines = plan.pipelines.clone();
    let file = plan.config_file.clone();
    let mut agent = match Agent::new(plan, tokio.handle().clone()) {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("error: {}: {e:#}", file.display());
            return EXIT_USAGE;
        }
    };
    let errors: Vec<String> = pipelines
        .iter()
        .filter_map(|spec| agent.pipeline(spec).err())
        .collect();
    if errors.is_empty() {
        println!(
            "{}: valid ({} pipeline(s))",
            file.display(),
            pipelines.len()
        );
        0
    } else {
        eprintln!("error: invalid configuration in {}", file.display());
        for error in errors {
            eprintln!("  - {error}");
        }
        EXIT_USAGE
    }
}
