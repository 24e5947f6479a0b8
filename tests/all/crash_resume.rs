//! `kill -9` at any moment, then a restart, completes the work exactly once:
//! nothing lost, nothing duplicated, no partial file under its final name.

use std::time::{Duration, Instant};

use time::macros::date;

use crate::support::archive::KlineFile;
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, cryptolake, duckdb, sync_report, write_agent_config};

#[test]
fn kill_9_at_many_points_then_resume_is_exactly_once() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let first = date!(2024 - 08 - 01);
    let files: Vec<KlineFile> = (0..60)
        .map(|i| KlineFile::spot("ETHUSDT", first + time::Duration::days(i), 1440))
        .collect();
    for file in &files {
        file.upload(&moto);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            &archive,
            r#"interval = "1m", symbols = ["ETHUSDT"]"#,
            "table = \"ohlcv\"\nconcurrency = 3\nwindow = { start = \"2024-08-01\", end = \"2024-09-29\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
        ),
    );

    // Kill runs at growing delays, so the kills land in different stages
    // (discovery, downloads, decoding, publishing, manifest writes).
    let mut kills = 0;
    for delay_ms in (1..=12).map(|i| 40 * i as u64) {
        let mut child = cryptolake()
            .args(["sync", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_millis(delay_ms);
        while Instant::now() < deadline {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
        // Whatever is visible now must be whole: every Parquet file reads.
        let lake = dir.path().join("lake");
        if duckdb::has_parquet(&lake.join("ohlcv")) {
            let counts = duckdb::query(
                &lake,
                "SELECT filename, count(*) AS n FROM read_parquet('{lake}/ohlcv/**/*.parquet', filename = true) GROUP BY 1",
            );
            for c in &counts {
                assert_eq!(
                    c["n"], 1440,
                    "a partial file is visible after a kill at {delay_ms} ms: {c}"
                );
            }
        }
    }
    assert!(
        kills >= 3,
        "the runs finished before they could be killed ({kills} kills)"
    );

    let (report, _) = sync_report(&config, &[], 0);
    let run = &report["pipelines"][0];
    assert_eq!(
        run["up_to_date"].as_u64().unwrap_or(0) + run["completed"].as_u64().unwrap_or(0),
        60,
        "{report:#}"
    );
    let totals = duckdb::query(
        &dir.path().join("lake"),
        "SELECT count(*) AS n, count(DISTINCT open_time) AS distinct_times FROM read_parquet('{lake}/ohlcv/**/*.parquet')",
    );
    assert_eq!(totals[0]["n"], 60 * 1440, "exactly once: {totals:?}");
    assert_eq!(totals[0]["distinct_times"], 60 * 1440);
    // The killed runs' staging files are gone: the last run removed them.
    let left: Vec<_> = crate::support::files_under(&dir.path().join("lake/_cryptolake/staging"))
        .into_iter()
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("stage-"))
        })
        .collect();
    assert!(
        left.is_empty(),
        "staging files left after the kills: {left:?}"
    );
}
