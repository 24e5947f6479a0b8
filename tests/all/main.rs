//! cryptolake's integration tests: one binary, one module per topic.
//!
//! They start real components: a moto S3 server on loopback for the public
//! archive, the `cryptolake` binary itself, and DuckDB to read the lake back.

// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

mod agent_mode;
mod azure_lake;
mod coinbase;
mod command_line;
mod config_errors;
mod crash_resume;
mod data_types;
mod deploy_recipes;
mod discovery;
mod example_plugin;
mod layering;
mod mirror;
mod network_faults;
mod object_store_lake;
mod observability;
mod plugin_containment;
mod plugin_decoding;
mod plugin_loading;
mod replicas;
mod s3_lake;
mod sharding;
mod sync_end_to_end;
mod sync_failures;
mod transforms;
