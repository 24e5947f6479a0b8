//! Transform chains through the real path: `ohlcv` then `vwap`, checked in
//! DuckDB against values computed independently in SQL.

use time::macros::date;

use crate::support::archive::KlineFile;
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, duckdb, sync_report, write_agent_config};

#[test]
fn vwap_and_returns_match_an_independent_computation() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    KlineFile::spot("BTCUSDT", date!(2024 - 02 - 01), 1440).upload(&moto);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            &format!("{}/{ARCHIVE_BUCKET}", moto.endpoint()),
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            "table = \"bars\"\nwindow = { start = \"2024-02-01\", end = \"2024-02-01\" }\ntransforms = [{ plugin = \"ohlcv\" }, { plugin = \"vwap\" }]",
        ),
    );
    let (report, _) = sync_report(&config, &[], 0);
    assert_eq!(report["pipelines"][0]["rows"], 1440, "{report:#}");

    let checks = duckdb::query(
        &dir.path().join("lake"),
        "WITH t AS (SELECT *, lag(close) OVER (ORDER BY open_time) AS prev \
                    FROM read_parquet('{lake}/bars/**/*.parquet', hive_partitioning = true)) \
         SELECT count(*) AS n, \
                count(*) FILTER (WHERE abs(vwap - least(greatest(quote_volume / volume, low), high)) > 1e-9) AS bad_vwap, \
                count(*) FILTER (WHERE vwap < low OR vwap > high) AS outside, \
                count(*) FILTER (WHERE prev IS NOT NULL AND abs(return_simple - (close / prev - 1)) > 1e-12) AS bad_simple, \
                count(*) FILTER (WHERE prev IS NOT NULL AND abs(return_log - ln(close / prev)) > 1e-12) AS bad_log, \
                count(*) FILTER (WHERE return_simple IS NULL) AS no_return \
         FROM t",
    );
    assert_eq!(
        checks[0],
        serde_json::json!({"n": 1440, "bad_vwap": 0, "outside": 0, "bad_simple": 0, "bad_log": 0, "no_return": 1})
    );
}
