//! `cryptolake config`: facts about the configuration format.

/// Configuration subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the configuration file (generated from the
    /// types the agent parses, so it cannot drift).
    Schema,
}

pub(super) fn run(command: ConfigCommand) -> u8 {
    match command {
        ConfigCommand::Schema => {
            let schema = crate::config::json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            0
        }
    }
}
