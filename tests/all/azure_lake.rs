//! A lake in Azure Blob Storage, on its emulator (Azurite): a whole curated
//! `sync` into it, read back by pyarrow and DuckDB, verified by `lake
//! verify`, and a second run that finds nothing to do; `validate` reports
//! that the store honours conditional writes.

use time::macros::date;

use crate::support::archive::KlineFile;
use crate::support::emulators::{AZURITE_ACCOUNT, AZURITE_KEY, Azurite, read_lake};
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, sync_report_env, write_agent_config};

/// Syncs two days into the lake `lake` (a `[lake]` table), checks the run,
/// that `validate` says `expect_preconditions` of conditional writes, `lake
/// verify`, and that a second run is a no-op; returns the archives.
fn sync_into(
    lake: &str,
    env: &[(&str, &str)],
    expect_preconditions: &str,
) -> (Vec<KlineFile>, tempfile::TempDir) {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let files = vec![
        KlineFile::spot("BTCUSDT", date!(2024 - 12 - 31), 30),
        KlineFile::spot("BTCUSDT", date!(2025 - 01 - 01), 40),
    ];
    for file in &files {
        file.upload(&moto);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let config = write_agent_config(
        dir.path(),
        lake,
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            &archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            "table = \"ohlcv\"\nwindow = { start = \"2024-12-31\", end = \"2025-01-01\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
        ),
    );
    let (report, _) = sync_report_env(&config, &[], 0, env);
    assert_eq!(report["pipelines"][0]["completed"], 2, "{report:#}");

    let run = |verb: &[&str]| {
        let output = crate::support::cryptolake()
            .args(verb)
            .args(["--config", config.to_str().unwrap()])
            .envs(env.iter().copied())
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}",
            crate::support::describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let validated = run(&["validate"]);
    assert!(validated.contains(expect_preconditions), "{validated}");
    let verified: serde_json::Value =
        serde_json::from_str(&run(&["lake", "verify", "--output", "json"])).expect("json");
    assert_eq!(
        (verified["entries"].as_u64(), verified["files"].as_u64()),
        (Some(2), Some(2)),
        "{verified:#}"
    );
    let (report, _) = sync_report_env(&config, &[], 0, env);
    assert_eq!(report["pipelines"][0]["up_to_date"], 2, "{report:#}");
    (files, dir)
}

fn assert_rows(rows: &[serde_json::Value], files: &[KlineFile]) {
    assert_eq!(rows[0]["n"], 70, "{rows:?}");
    assert_eq!(rows[0]["first"], files[0].expected_rows()[0].open_time_us);
    assert_eq!(rows[0]["symbols"], 1);
}

const SQL: &str = "SELECT count(*) AS n, min(epoch_us(open_time)) AS first, count(DISTINCT symbol) AS symbols FROM t";

#[test]
fn an_azure_lake_is_written_and_read_back() {
    let azurite = Azurite::start();
    azurite.create_container("lake");
    let (files, _dir) = sync_into(
        &format!(
            "{{ url = \"az://lake/crypto\", endpoint = \"{}\", staging_dir = \"staging\", options = {{ azure_storage_account_name = \"{AZURITE_ACCOUNT}\" }} }}",
            azurite.account_url()
        ),
        &[("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)],
        "conditional writes honoured",
    );
    let rows = read_lake(&azurite, "lake/crypto/ohlcv", SQL);
    assert_rows(&rows, &files);
}
