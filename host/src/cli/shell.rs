//! `cryptolake completions SHELL` and `cryptolake man`: shell completions
//! and man pages, generated from the one command-line definition, so they
//! cannot drift from it.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{Cli, EXIT_FAILED};

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `cryptolake.1` and one page per command (`cryptolake-sync.1`
    /// and so on) into this directory instead of printing `cryptolake.1`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script for the shell.
pub(super) fn completions(args: CompletionsArgs) -> u8 {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "cryptolake",
        &mut std::io::stdout(),
    );
    0
}

/// Prints the man page, or writes every page into a directory.
pub(super) fn man(args: ManArgs) -> u8 {
    let command = Cli::command();
    let written = match &args.dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout()),
        Some(dir) => {
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir))
        }
    };
    match written {
        Ok(()) => 0,
        Err(error) => {
            match &args.dir {
                Some(dir) => eprintln!(
                    "error: cannot write man pages into {}: {error}",
                    dir.display()
                ),
                None => eprintln!("error: cannot print the man page: {error}"),
            }
            EXIT_FAILED
        }
    }
}
