//! Bad networks lose nothing: with a fault-injecting proxy between the agent
//! and the archive (503 with Retry-After, resets, truncated bodies, stalls,
//! and one archive corrupted on every request), every archive ends in the
//! lake with its exact rows, or in quarantine.

use time::macros::date;

use crate::support::archive::KlineFile;
use crate::support::faulty_proxy::FaultyProxy;
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, duckdb, sync_report, write_agent_config};

#[test]
fn every_archive_ends_correct_or_quarantined_through_a_faulty_network() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let first = date!(2024 - 07 - 01);
    let files: Vec<KlineFile> = (0..10)
        .map(|i| KlineFile::spot("BTCUSDT", first + time::Duration::days(i), 60))
        .collect();
    for file in &files {
        file.upload(&moto);
    }
    // Bytes of the 2024-07-05 archive are flipped on every request.
    let poisoned = "BTCUSDT-1m-2024-07-05.zip";
    let proxy = FaultyProxy::start(moto.host_port(), poisoned);

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("http://{}/{ARCHIVE_BUCKET}", proxy.host_port());
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &proxy.host_port(),
        &binance_pipeline(
            "spot",
            &archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            "table = \"ohlcv\"\nattempts = 4\nconcurrency = 4\nwindow = { start = \"2024-07-01\", end = \"2024-07-10\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
        ),
    );

    let (report, _) = sync_report(&config, &[], 1);
    let run = &report["pipelines"][0];
    assert_eq!(run["discovered"], 10, "{report:#}");
    assert_eq!(run["completed"], 9, "{report:#}");
    assert_eq!(run["quarantined"], 1, "{report:#}");
    assert_eq!(run["failed"], 0, "{report:#}");
    let faults = proxy.counts();
    assert!(
        faults.unavailable > 0 && faults.resets > 0 && faults.truncated > 0 && faults.stalled > 0,
        "every kind of fault was exercised: {faults:?}"
    );
    // Four attempts; the first request of each path may draw a transport
    // fault instead, so at least three corrupted downloads were refused.
    assert!(faults.poisoned >= 3, "{faults:?}");

    // Exactly the rows of the nine good archives, no partial or corrupt data.
    let lake = dir.path().join("lake");
    let rows = duckdb::query(
        &lake,
        "SELECT CAST(date AS VARCHAR) AS d, count(*) AS n, sum(open) AS s FROM read_parquet('{lake}/ohlcv/**/*.parquet', hive_partitioning = true) GROUP BY 1 ORDER BY 1",
    );
    let expected: Vec<serde_json::Value> = files
        .iter()
        .filter(|f| f.zip_name() != poisoned)
        .map(|f| {
            let sum: f64 = f.expected_rows().iter().map(|r| r.open).sum();
            serde_json::json!({ "d": f.day(), "n": 60, "s": sum })
        })
        .collect();
    assert_eq!(rows, expected);
    assert!(
        lake.join("_cryptolake/quarantine/spot")
            .join(files[4].key())
            .is_file()
    );
}
