//! `cryptolake plugin …`: work with plugin files.

use std::path::PathBuf;

use crate::config::{Limits, PluginLocation, PluginSpec};
use crate::plugin::Runtime;

use super::{EXIT_FAILED, Output};

/// Plugin verbs.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's name, version, kind, WIT version, sha256 and params schema.
    Inspect {
        /// The `.wasm` component, or `builtin:<name>`.
        file: String,
        /// Result format on stdout.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

pub(super) fn run(command: PluginCommand) -> u8 {
    match command {
        PluginCommand::Inspect { file, output } => inspect(&file, output),
    }
}

fn inspect(file: &str, output: Output) -> u8 {
    let location = match file.strip_prefix("builtin:") {
        Some(name) => PluginLocation::Builtin(name.to_owned()),
        None => PluginLocation::File(PathBuf::from(file)),
    };
    let spec = PluginSpec {
        name: file.to_owned(),
        location,
        sha256: None,
        allowed_hosts: Vec::new(),
        limits: Limits::default(),
    };
    let tokio = match super::tokio_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let loaded = crate::transfer::http_client()
        .and_then(|http| Runtime::new(None, http, tokio.handle().clone()))
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.load(&spec).map_err(|e| e.to_string()));
    let plugin = match loaded {
        Ok(plugin) => plugin,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_FAILED;
        }
    };
    let id = plugin.identity();
    match output {
        Output::Json => {
            let mut value = serde_json::to_value(id).unwrap_or_default();
            if let Ok(schema) = serde_json::from_str::<serde_json::Value>(&id.params_schema) {
                value["params_schema"] = schema;
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        Output::Text => {
            println!("name:        {}", id.plugin_name);
            println!("version:     {}", id.version);
            println!("kind:        {}", id.kind);
            println!("wit:         cryptolake:plugin@{}", id.wit_version);
            println!("sha256:      {}", id.sha256);
            println!("description: {}", id.description);
            let schema = serde_json::from_str::<serde_json::Value>(&id.params_schema)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| id.params_schema.clone());
            println!("params schema:\n{schema}");
        }
    }
    0
}
