//! The command line: one module per verb, each a thin layer over the
//! libraries. Exit codes: 0 success, 1 some work failed, 2 bad usage or
//! configuration.

mod config;
mod lake;
mod plugin;
mod run;
mod shell;
mod status;
mod sync;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::telemetry::{self, LogFormat};

/// Exit code when work failed (some artifact, pipeline or plugin).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad usage or an invalid configuration.
pub const EXIT_USAGE: u8 = 2;

/// Keeps a data lake filled with crypto market data.
#[derive(Debug, Parser)]
#[command(
    name = "cryptolake",
    version,
    about,
    propagate_version = true,
    after_help = "Exit codes: 0 success; 1 some work failed (an archive, a pipeline, a plugin); 2 bad usage or an invalid configuration.\nDocumentation: README.md and docs/ in the repository."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "CRYPTOLAKE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Log level when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "CRYPTOLAKE_LOG_LEVEL"
    )]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: every pipeline on its schedule, reloading changed
    /// plugins and configuration, until SIGTERM or SIGINT.
    Run(run::RunArgs),
    /// Run the configured pipelines once, now, then exit.
    Sync(sync::SyncArgs),
    /// Each pipeline's last run, next run, failures and quarantine.
    Status(status::StatusArgs),
    /// Facts about the configuration format.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Check a configuration file and its plugins without running anything.
    Validate(validate::ValidateArgs),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Look at the lake: tables, partitions, row counts, integrity.
    #[command(subcommand)]
    Lake(lake::LakeCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(shell::CompletionsArgs),
    /// Print the man page, or write every page into a directory.
    Man(shell::ManArgs),
}

/// Output format of a command's result on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For scripts.
    Json,
}

/// The configuration file argument shared by verbs.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The agent's configuration file.
    #[arg(
        long,
        short,
        env = "CRYPTOLAKE_CONFIG",
        default_value = "config/quickstart.toml"
    )]
    pub config: PathBuf,
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    run(cli, started)
}

/// Runs a parsed command line; `started` is when the process started.
pub fn run(cli: Cli, started: std::time::Instant) -> ExitCode {
    telemetry::init(cli.log_format, &cli.log_level);
    let code = match cli.command {
        Command::Run(args) => run::run(args, started),
        Command::Sync(args) => sync::run(args),
        Command::Status(args) => status::run(args),
        Command::Config(command) => config::run(command),
        Command::Validate(args) => validate::run(args),
        Command::Plugin(command) => plugin::run(command),
        Command::Lake(command) => lake::run(command),
        Command::Completions(args) => shell::completions(args),
        Command::Man(args) => shell::man(args),
    };
    ExitCode::from(code)
}

/// Builds the multi-threaded Tokio runtime the verbs run on.
fn tokio_runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cryptolake")
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            EXIT_FAILED
        })
}

/// Prints problems found while assembling pipelines, as configuration
/// errors are printed.
fn print_invalid(file: &std::path::Path, problems: &[String]) {
    eprintln!("error: invalid configuration in {}", file.display());
    for problem in problems {
        eprintln!("  - {problem}");
    }
}

/// Loads a plan, printing a configuration error (exit code 2).
fn load_plan(config: &std::path::Path) -> Result<crate::config::Plan, u8> {
    crate::config::load(config).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })
}
