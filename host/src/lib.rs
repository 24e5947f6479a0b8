//! cryptolake: an agent that keeps a data lake filled with crypto market
//! data, extended by sandboxed WASM component plugins.
//!
//! The binary is a thin CLI ([`cli`]) over these libraries: [`config`]
//! (file → plan), [`plugin`] (sandboxed runtime), [`pipeline`] (the stages of
//! a run), [`transfer`] (verified downloads), [`lake`] (Parquet, manifest,
//! quarantine) and [`telemetry`]. [`agent`] assembles them.

pub mod agent;
pub mod builtin;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod early_sync;
pub mod lake;
pub mod memory;
pub mod period;
pub mod pipeline;
pub mod plugin;
pub mod schedule;
pub mod storage;
pub mod telemetry;
pub mod transfer;
pub mod wit;
