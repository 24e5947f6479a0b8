//! `cryptolake lake …`: look at a lake without changing it.

use crate::lake::inspect;

use super::{ConfigArg, EXIT_FAILED, Output};

/// Lake verbs.
#[derive(Debug, clap::Subcommand)]
pub enum LakeCommand {
    /// List tables, partitions, files and row counts (from the manifest).
    Ls {
        #[command(flatten)]
        config: ConfigArg,
        /// Also list every partition.
        #[arg(long)]
        partitions: bool,
        /// Result format on stdout.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Check that every manifest entry's outputs exist with the recorded row
    /// counts, and that its raw copy exists. Exit code 1 on any problem.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Result format on stdout.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

pub(super) fn run(command: LakeCommand) -> u8 {
    let config = match &command {
        LakeCommand::Ls { config, .. } | LakeCommand::Verify { config, .. } => {
            config.config.clone()
        }
    };
    let plan = match super::load_plan(&config) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let tokio = match super::tokio_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let lake = match crate::transfer::http_client()
        .and_then(|http| crate::agent::open_lake(&plan.lake, &http))
    {
        Ok(lake) => lake,
        Err(error) => {
            eprintln!("error: {error:#}");
            return EXIT_FAILED;
        }
    };
    match command {
        LakeCommand::Ls {
            partitions, output, ..
        } => match tokio.block_on(inspect::summarize(&lake)) {
            Ok(tables) => {
                match output {
                    Output::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&tables).unwrap_or_default()
                    ),
                    Output::Text => {
                        println!("{}", lake.location());
                        for t in &tables {
                            println!(
                                "{:<24} {:>6} partitions {:>8} files {:>14} rows",
                                t.table,
                                t.partitions.len(),
                                t.files,
                                t.rows
                            );
                            if partitions {
                                for p in &t.partitions {
                                    println!(
                                        "  {:<70} {:>6} files {:>12} rows",
                                        p.partition, p.files, p.rows
                                    );
                                }
                            }
                        }
                    }
                }
                0
            }
            Err(error) => {
                eprintln!("error: {error}");
                EXIT_FAILED
            }
        },
        LakeCommand::Verify { output, .. } => match tokio.block_on(inspect::verify(&lake)) {
            Ok(verification) => {
                match output {
                    Output::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&verification).unwrap_or_default()
                    ),
                    Output::Text => {
                        println!(
                            "{}: {} manifest entries, {} output files, {} problem(s)",
                            lake.location(),
                            verification.entries,
                            verification.files,
                            verification.problems.len()
                        );
                        for p in &verification.problems {
                            println!("  {}: {}", p.manifest, p.problem);
                        }
                    }
                }
                if verification.problems.is_empty() {
                    0
                } else {
                    EXIT_FAILED
                }
            }
            Err(error) => {
                eprintln!("error: {error}");
                EXIT_FAILED
            }
        },
    }
}
