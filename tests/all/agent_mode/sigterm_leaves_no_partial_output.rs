//! SIGTERM mid-run: no new artifact starts, in-flight ones finish, the agent
//! exits 0, nothing partial is visible, the status says what was deferred,
//! and the next run completes the rest exactly once.

use super::{Fixture, PATIENCE, ROWS, rows_per_file};
use crate::support::agent::{RunningAgent, manifest_entries};
use crate::support::{run_cryptolake, sync_report};

/// `days` of archives and a curated pipeline paced at 12 requests/s, so a
/// signal lands mid-run.
fn paced(days: i64, concurrency: u32) -> (Fixture, std::path::PathBuf) {
    let fixture = Fixture::new(&["ETHUSDT"], days);
    let config = fixture.write_config(
        "",
        &fixture.pipeline(
            "spot",
            "ETHUSDT",
            &format!("concurrency = {concurrency}\nrate_limit = {{ per_second = 12, burst = 1 }}\ntransforms = [{{ plugin = \"ohlcv\" }}]"),
        ),
    );
    (fixture, config)
}

#[test]
fn sigterm_leaves_no_partial_output() {
    let days = 40;
    let (fixture, config) = paced(days, 3);
    let mut agent = RunningAgent::start(&config);
    agent.wait_for_message("Artifact committed to the lake.", 4, PATIENCE);
    agent.signal("TERM");
    let status = agent.wait_exit(PATIENCE);
    assert!(status.success(), "{status}: {}", agent.log_text());
    let finished = agent.with_message("Pipeline run finished.");
    assert_eq!(finished.len(), 1, "{}", agent.log_text());
    let completed = finished[0]["completed"].as_u64().unwrap_or(0);
    assert_eq!(finished[0]["failed"], 0);
    assert!(completed < days as u64, "the run was not interrupted");
    assert!(!agent.with_message("Stopped cleanly.").is_empty());

    let lake = fixture.lake();
    let files = rows_per_file(&lake);
    assert_eq!(files.len() as u64, completed, "{files:?}");
    assert!(files.iter().all(|(_, n)| *n == ROWS as u64), "{files:?}");
    assert_eq!(manifest_entries(&lake, "spot").len() as u64, completed);

    let status = run_cryptolake(&[
        "status",
        "--config",
        config.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let record = &status["pipelines"][0]["status"];
    assert_eq!(record["state"], "stopped", "{record}");
    assert_eq!(
        record["last_run"]["deferred"],
        days as u64 - completed,
        "{record}"
    );
    assert_eq!(record["last_run"]["completed"], completed);

    let (report, _) = sync_report(&config, &[], 0);
    assert_eq!(report["pipelines"][0]["completed"], days as u64 - completed);
    let files = rows_per_file(&lake);
    assert_eq!(files.len(), days as usize);
    assert!(files.iter().all(|(_, n)| *n == ROWS as u64));
}

#[test]
fn a_second_signal_stops_at_once_and_the_lake_stays_consistent() {
    let days = 30;
    let (fixture, config) = paced(days, 4);
    // A long grace period: only the second signal can make it exit soon.
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("runtime = {", "runtime = { shutdown_grace = \"10m\","),
    )
    .expect("config");
    let mut agent = RunningAgent::start(&config);
    agent.wait_for_message("Artifact committed to the lake.", 2, PATIENCE);
    agent.signal("INT");
    agent.wait_for_message(
        "Stopping: no new artifacts start; in-flight ones get the grace period to finish.",
        1,
        PATIENCE,
    );
    agent.signal("INT");
    let started = std::time::Instant::now();
    agent.wait_exit(PATIENCE);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    let lake = fixture.lake();
    let files = rows_per_file(&lake);
    assert!(files.iter().all(|(_, n)| *n == ROWS as u64), "{files:?}");
    assert!(manifest_entries(&lake, "spot").len() <= files.len());
    let (report, _) = sync_report(&config, &[], 0);
    assert_eq!(report["pipelines"][0]["failed"], 0);
    let files = rows_per_file(&lake);
    assert_eq!(files.len(), days as usize);
    assert!(files.iter().all(|(_, n)| *n == ROWS as u64));
    assert_eq!(manifest_entries(&lake, "spot").len(), days as usize);
}
