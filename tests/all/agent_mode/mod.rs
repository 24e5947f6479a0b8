//! Agent mode (`cryptolake run`), one scenario per file, each against a real
//! moto archive and the real binary: hot reload of plugins and
//! configuration, and shutdown on signals. (`kill -9` then resume is in
//! `crash_resume`.)

mod a_stuck_pipeline_does_not_stall_the_others;
mod bad_plugin_keeps_old_version;
mod config_change_restarts_only_changed_pipeline;
mod configmap_update_reloads;
mod invalid_config_keeps_old;
mod plugin_swap_under_load;
mod sigterm_leaves_no_partial_output;

pub use crate::support::fixture::{Fixture, PATIENCE, ROWS, lineage_sha, rows_per_file};
