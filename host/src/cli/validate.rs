//! `cryptolake validate`: check a configuration and its plugins.

use crate::agent::Agent;
use crate::storage::Preconditions;

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
    let preconditions = match tokio.block_on(crate::agent::check_lake(agent.lake())) {
        Ok(probed) => probed,
        Err(e) => {
            eprintln!("error: {}: {e:#}", file.display());
            return EXIT_USAGE;
        }
    };
    match agent.pipelines(&pipelines) {
        Ok(_) => {
            println!(
                "{}: valid ({} pipeline(s))",
                file.display(),
                pipelines.len()
            );
            match preconditions {
                Some(Preconditions::Honoured) => {
                    println!("lake: conditional writes honoured (agents may share it)")
                }
                Some(Preconditions::Ignored) => println!(
                    "lake: WARNING: the store ignores conditional writes; run one agent per lake"
                ),
                Some(Preconditions::Disabled) => {
                    println!("lake: WARNING: conditional writes are off; run one agent per lake")
                }
                None => {}
            }
            0
        }
        Err(problems) => {
            super::print_invalid(&file, &problems);
            EXIT_USAGE
        }
    }
}
