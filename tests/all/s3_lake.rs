//! A lake in an S3 bucket: the whole sync writes to s3s-fs (which verifies
//! every request's signature) with the operator's credentials from the
//! environment, and a second run reads the manifest back from the bucket.

use time::macros::date;

use crate::support::archive::KlineFile;
use crate::support::s3::{ARCHIVE_BUCKET, Moto, S3sFs, test_credentials};
use crate::support::{binance_pipeline, duckdb, sync_report_env, write_agent_config};

#[test]
fn sync_writes_a_query_ready_lake_into_an_s3_bucket() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let files = [
        KlineFile::spot("BTCUSDT", date!(2024 - 12 - 31), 30),
        KlineFile::spot("BTCUSDT", date!(2025 - 01 - 01), 40),
    ];
    for file in &files {
        file.upload(&moto);
    }
    let lake = S3sFs::start();
    lake.create_bucket("lake");

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let config = write_agent_config(
        dir.path(),
        &format!(
            "{{ url = \"s3://lake/crypto\", endpoint = \"{}\", staging_dir = \"staging\" }}",
            lake.endpoint
        ),
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            &archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            "table = \"ohlcv\"\nwindow = { start = \"2024-12-31\", end = \"2025-01-01\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
        ),
    );
    let credentials = test_credentials();
    let env = [
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id.as_str()),
        (
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.as_str(),
        ),
    ];

    let (report, _) = sync_report_env(&config, &[], 0, &env);
    assert_eq!(report["pipelines"][0]["completed"], 2, "{report:#}");

    // s3s-fs keeps objects as files; read them with DuckDB.
    let bucket = lake.bucket_dir("lake");
    let rows = duckdb::query(
        &bucket,
        "SELECT count(*) AS n, min(epoch_us(open_time)) AS first FROM read_parquet('{lake}/crypto/ohlcv/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(rows[0]["n"], 70);
    assert_eq!(rows[0]["first"], files[0].expected_rows()[0].open_time_us);
    assert!(bucket.join("crypto/raw").join(files[1].key()).is_file());
    assert!(
        bucket
            .join("crypto/_cryptolake/manifest/spot")
            .join(format!("{}.json", files[1].key()))
            .is_file()
    );

    // `lake verify` lists the bucket (ListObjectsV2) and reads the footers.
    let verify = crate::support::cryptolake()
        .args([
            "lake",
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
        ])
        .envs(env)
        .output()
        .expect("runs");
    assert!(
        verify.status.success(),
        "{}",
        crate::support::describe(&verify)
    );
    let verification: serde_json::Value = serde_json::from_slice(&verify.stdout).expect("json");
    assert_eq!(
        (
            verification["entries"].as_u64(),
            verification["files"].as_u64()
        ),
        (Some(2), Some(2))
    );

    // The manifest is read back from the bucket: nothing to do.
    let (report, _) = sync_report_env(&config, &[], 0, &env);
    assert_eq!(report["pipelines"][0]["up_to_date"], 2, "{report:#}");

    // Wrong credentials are refused by the server; the run says so and fails.
    let wrong = [
        ("AWS_ACCESS_KEY_ID", "cryptolake-test"),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
    ];
    let (report, output) = sync_report_env(&config, &["--to", "2024-12-31"], 1, &wrong);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        report.to_string().contains("403") || stderr.contains("403"),
        "{report:#}\n{stderr}"
    );

    // Without credentials the agent refuses to start rather than guess.
    let none: [(&str, &str); 0] = [];
    let output = crate::support::cryptolake()
        .args(["sync", "--config", config.to_str().unwrap()])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .envs(none)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("AWS_ACCESS_KEY_ID"));
}
