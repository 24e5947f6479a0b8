//! A broken new plugin file (not wasm, the wrong kind of plugin, or bytes
//! other than the pinned SHA-256) is rejected; the old version keeps
//! serving and the run completes on it.

use super::{Fixture, PATIENCE, lineage_sha};
use crate::support::agent::{RunningAgent, manifest_entries, rebuilt, replace_file};
use crate::support::archive::sha256_hex;

#[test]
fn a_bad_plugin_keeps_the_old_version_serving() {
    let days = 24;
    let fixture = Fixture::new(&["ETHUSDT"], days);
    let (plugin, v1) = fixture.deploy_ohlcv("ohlcv.wasm");
    let pipeline = fixture.pipeline(
        "spot",
        "ETHUSDT",
        "concurrency = 1\nrate_limit = { per_second = 10, burst = 1 }\ntransforms = [{ plugin = \"normalise\" }]",
    );
    let plugin_table = format!("\n[plugins.normalise]\nfile = \"{}\"\n", plugin.display());
    let config = fixture.write_config(&plugin_table, &pipeline);
    let mut agent = RunningAgent::start(&config);
    agent.wait_for_message("Artifact committed to the lake.", 2, PATIENCE);

    let rejected = "Plugin reload rejected; the running version keeps serving.";
    replace_file(&plugin, b"\0asm but not really");
    let events = agent.wait_for_message(rejected, 1, PATIENCE);
    assert_eq!(events[0]["plugin"], "normalise");
    assert!(
        events[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("ohlcv.wasm"),
        "{}",
        events[0]
    );

    // A source plugin in place of a transform.
    let source = cryptolake::builtin::bytes("binance").expect("built in");
    replace_file(&plugin, source);
    let events = agent.wait_for_message(rejected, 2, PATIENCE);
    assert!(
        events[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("source"),
        "{}",
        events[1]
    );

    // Back to the good build, now pinned by SHA-256 in the configuration.
    replace_file(&plugin, &v1);
    fixture.write_config(
        &format!("{plugin_table}sha256 = \"{}\"\n", sha256_hex(&v1)),
        &pipeline,
    );
    agent.wait_for_message(
        "Configuration reloaded; unchanged pipelines kept running.",
        1,
        PATIENCE,
    );
    // A valid transform, but not the pinned build.
    replace_file(&plugin, &rebuilt(&v1, "unpinned"));
    let events = agent.wait_for_message(rejected, 3, PATIENCE);
    assert!(
        events[2]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("pins"),
        "{}",
        events[2]
    );

    let finished = agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);
    assert_eq!(finished[0]["failed"], 0, "{}", agent.log_text());
    assert_eq!(finished[0]["completed"], days);
    agent.signal("TERM");
    assert!(agent.wait_exit(PATIENCE).success());
    let entries = manifest_entries(&fixture.lake(), "spot");
    assert_eq!(entries.len(), days as usize);
    assert!(
        entries
            .iter()
            .all(|e| lineage_sha(e, "normalise") == sha256_hex(&v1))
    );
    assert!(
        agent
            .with_message("Plugin reloaded; new work uses the new version.")
            .is_empty()
    );
}
