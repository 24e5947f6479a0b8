//! A plugin replaced while its pipeline is busy: no artifact is lost or
//! duplicated, and each output's manifest entry names the version that
//! produced it.

use super::{Fixture, PATIENCE, ROWS, lineage_sha, rows_per_file};
use crate::support::agent::{RunningAgent, manifest_entries, rebuilt, replace_file};
use crate::support::archive::sha256_hex;

#[test]
fn plugin_swap_under_load_loses_no_artifact_and_records_the_version() {
    let days = 40;
    let fixture = Fixture::new(&["ETHUSDT"], days);
    let (plugin, v1) = fixture.deploy_ohlcv("ohlcv.wasm");
    let v2 = rebuilt(&v1, "v2");
    let config = fixture.write_config(
        &format!("\n[plugins.normalise]\nfile = \"{}\"\n", plugin.display()),
        &fixture.pipeline(
            "spot",
            "ETHUSDT",
            // Paced so the run is still busy when the swap lands.
            "concurrency = 2\nrate_limit = { per_second = 16, burst = 1 }\ntransforms = [{ plugin = \"normalise\" }]",
        ),
    );
    let mut agent = RunningAgent::start(&config);
    agent.wait_for_message("Artifact committed to the lake.", 5, PATIENCE);
    replace_file(&plugin, &v2);
    let swapped = agent.wait_for_message(
        "Plugin reloaded; new work uses the new version.",
        1,
        PATIENCE,
    );
    assert_eq!(swapped[0]["sha256"], sha256_hex(&v2));
    agent.wait_for_message("The new plugin version served its first call.", 1, PATIENCE);
    let finished = agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);
    assert_eq!(finished[0]["failed"], 0, "{}", agent.log_text());
    assert_eq!(finished[0]["completed"], days, "{}", agent.log_text());
    agent.signal("TERM");
    assert!(agent.wait_exit(PATIENCE).success());

    let entries = manifest_entries(&fixture.lake(), "spot");
    assert_eq!(entries.len(), days as usize);
    let (old, new) = (sha256_hex(&v1), sha256_hex(&v2));
    let by_old = entries
        .iter()
        .filter(|e| lineage_sha(e, "normalise") == old)
        .count();
    let by_new = entries
        .iter()
        .filter(|e| lineage_sha(e, "normalise") == new)
        .count();
    assert_eq!(
        by_old + by_new,
        days as usize,
        "every entry names one of the two versions"
    );
    assert!(by_old >= 5 && by_new >= 1, "old {by_old}, new {by_new}");
    let files = rows_per_file(&fixture.lake());
    assert_eq!(files.len(), days as usize);
    assert!(files.iter().all(|(_, n)| *n == ROWS as u64), "{files:?}");
}
