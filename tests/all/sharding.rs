//! `sync --shard I/N`: N agents with shards 0 to N-1 together do every
//! series once, and any of them can show any shard's plan.

use std::collections::BTreeSet;

use crate::support::fixture::Fixture;
use crate::support::{binance_pipeline, cryptolake, describe, sync_report, sync_report_env};

const SYMBOLS: [&str; 6] = [
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT",
];

/// The planned keys of the one pipeline in a dry run's report.
fn planned(report: &serde_json::Value) -> BTreeSet<String> {
    report["plans"][0]["planned"]
        .as_array()
        .expect("planned artifacts")
        .iter()
        .map(|a| a["key"].as_str().expect("key").to_owned())
        .collect()
}

#[test]
fn shards_split_the_series_and_together_do_every_one_once() {
    let fixture = Fixture::new(&SYMBOLS, 1);
    let symbols = SYMBOLS.map(|s| format!("\"{s}\"")).join(", ");
    let config = fixture.write_config(
        "",
        &binance_pipeline(
            "mirror",
            &fixture.archive,
            &format!(r#"interval = "1m", symbols = [{symbols}]"#),
            r#"window = { start = "2024-08-01", end = "2024-08-01" }"#,
        ),
    );
    let dry = |extra: &[&str]| {
        let mut args = vec!["--dry-run"];
        args.extend_from_slice(extra);
        sync_report(&config, &args, 0).0
    };
    let everything = planned(&dry(&[]));
    assert_eq!(everything.len(), SYMBOLS.len(), "{everything:?}");

    let halves = [dry(&["--shard", "0/2"]), dry(&["--shard", "1/2"])];
    let (first, second) = (planned(&halves[0]), planned(&halves[1]));
    assert!(first.is_disjoint(&second), "{first:?} and {second:?}");
    assert_eq!(&first | &second, everything);
    assert!(
        !first.is_empty() && !second.is_empty(),
        "six series, one shard empty"
    );
    assert_eq!(
        halves[1]["plans"][0]["shard"],
        serde_json::json!({"index": 1, "count": 2})
    );
    // A Kubernetes Indexed Job's pod computes the same plan from its index.
    let (indexed, _) = sync_report_env(
        &config,
        &["--dry-run", "--shards", "2"],
        0,
        &[("JOB_COMPLETION_INDEX", "1")],
    );
    assert_eq!(planned(&indexed), second);

    // Shard 0 runs: shard 1's work is untouched, then shard 1 finishes it.
    let (run, _) = sync_report(&config, &["--shard", "0/2"], 0);
    assert_eq!(run["pipelines"][0]["completed"], first.len());
    assert_eq!(planned(&dry(&[])), second);
    assert!(planned(&dry(&["--shard", "0/2"])).is_empty());
    sync_report(&config, &["--shard", "1/2"], 0);
    assert!(planned(&dry(&[])).is_empty());
    for shard in ["0-of-2", "1-of-2"] {
        let report = fixture.lake().join(format!(
            "_cryptolake/reports/mirror/last-run-shard-{shard}.json"
        ));
        assert!(report.is_file(), "{} is missing", report.display());
    }
}

#[test]
fn a_shard_that_does_not_exist_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "lake = { url = \"lake\" }\n").expect("config");
    for (args, env, says) in [
        (vec!["--shard", "2/2"], None, "numbered 0 to 1"),
        (vec!["--shard", "two"], None, "expected I/N"),
        (
            vec!["--shards", "4"],
            None,
            "JOB_COMPLETION_INDEX is not set",
        ),
        (vec!["--shards", "4"], Some("4"), "JOB_COMPLETION_INDEX = 4"),
    ] {
        let mut command = cryptolake();
        command.args(["sync", "--config"]).arg(&config).args(&args);
        command.env_remove("JOB_COMPLETION_INDEX");
        if let Some(index) = env {
            command.env("JOB_COMPLETION_INDEX", index);
        }
        let output = command.output().expect("the cryptolake binary runs");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
