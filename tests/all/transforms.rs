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

#[test]
fn quality_flags_drops_or_quarantines_and_records_its_findings() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let t0 = 1_709_251_200_000_i64; // 2024-03-01 00:00 UTC, ms
    let bar = |minute: i64, open: f64, high: f64, low: f64, close: f64| {
        let t = t0 + minute * 60_000;
        format!(
            "{t},{open},{high},{low},{close},1.5,{},150,10,0.5,50,0",
            t + 59_999
        )
    };
    let csv = [
        bar(0, 10.0, 11.0, 9.0, 10.5),
        bar(1, 10.0, 9.5, 9.0, 10.0),  // high below open
        bar(1, 10.0, 11.0, 9.0, 10.5), // same minute again
        bar(5, 10.0, 11.0, 9.0, 10.5), // minutes 2..4 missing
        bar(4, 10.0, 11.0, 9.0, 10.5), // back in time
        bar(6, 0.0, 11.0, 9.0, 10.5),  // zero price
    ]
    .join("\n");
    let key = "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03-01.zip";
    crate::support::archive::upload_csv(&moto, key, &csv);

    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let pipeline = |action: &str| {
        binance_pipeline(
            &format!("q-{action}"),
            &archive,
            // The rows are the quality transform's to judge: the source's
            // own checks would quarantine the repeated minute first.
            r#"interval = "1m", symbols = ["BTCUSDT"], check_rows = false"#,
            &format!(
                "table = \"q_{action}\"\nwindow = {{ start = \"2024-03-01\", end = \"2024-03-01\" }}\ntransforms = [{{ plugin = \"ohlcv\" }}, {{ plugin = \"quality\", params = {{ action = \"{action}\" }} }}]"
            ),
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &[pipeline("flag"), pipeline("drop"), pipeline("quarantine")].concat(),
    );
    let (report, _) = sync_report(&config, &[], 1);
    let outcome = |i: usize| report["pipelines"][i]["artifacts"][0].clone();
    assert_eq!(outcome(0)["outcome"], "completed", "{report:#}");
    assert_eq!(outcome(1)["rows"], 2, "{report:#}");
    assert_eq!(outcome(2)["outcome"], "quarantined", "{report:#}");
    let reason = outcome(2)["quarantine_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("plugin `quality`")
            && reason.contains("line 2")
            && reason.contains("ohlc_invariant"),
        "{reason}"
    );

    let lake = dir.path().join("lake");
    let flagged = duckdb::query(
        &lake,
        "SELECT quality_issue AS q FROM read_parquet('{lake}/q_flag/**/*.parquet', file_row_number = true) ORDER BY file_row_number",
    );
    let issues: Vec<serde_json::Value> = flagged.into_iter().map(|r| r["q"].clone()).collect();
    assert_eq!(
        issues,
        serde_json::json!([
            null,
            "ohlc_invariant",
            "duplicate_time",
            null,
            "non_monotonic_time",
            "non_positive_price"
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()
    );
    let entry: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            lake.join("_cryptolake/manifest/q-flag")
                .join(format!("{key}.json")),
        )
        .expect("manifest"),
    )
    .expect("json");
    let counters = &entry["counters"];
    assert_eq!(counters["quality.rows_checked"], 6, "{entry:#}");
    assert_eq!(counters["quality.rows_with_issues"], 4, "{entry:#}");
    assert_eq!(
        (
            counters["quality.gaps"].as_u64(),
            counters["quality.missing_bars"].as_u64()
        ),
        (Some(1), Some(3))
    );
    assert_eq!(counters["quality.ohlc_invariant"], 1);
}

#[test]
fn resampled_hours_equal_duckdbs_own_aggregation_of_the_minutes() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    KlineFile::spot("BTCUSDT", date!(2024 - 04 - 01), 1440).upload(&moto);
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let pipeline = |name: &str, table: &str, transforms: &str| {
        binance_pipeline(
            name,
            &archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            &format!(
                "table = \"{table}\"\nwindow = {{ start = \"2024-04-01\", end = \"2024-04-01\" }}\ntransforms = [{transforms}]"
            ),
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &[
            pipeline("minutes", "ohlcv", r#"{ plugin = "ohlcv" }"#),
            pipeline(
                "hours",
                "ohlcv_1h",
                r#"{ plugin = "ohlcv" }, { plugin = "resample", params = { to = "1h" } }"#,
            ),
        ]
        .concat(),
    );
    sync_report(&config, &[], 0);
    let mismatches = duckdb::query(
        &dir.path().join("lake"),
        "WITH m AS (SELECT date_trunc('hour', open_time) AS h, arg_min(open, open_time) AS o, max(high) AS hi, min(low) AS lo, \
                           arg_max(close, open_time) AS c, sum(volume) AS v, sum(trade_count) AS n \
                    FROM read_parquet('{lake}/ohlcv/**/*.parquet') GROUP BY 1), \
              r AS (SELECT * FROM read_parquet('{lake}/ohlcv_1h/**/*.parquet', hive_partitioning = true)) \
         SELECT (SELECT count(*) FROM r) AS hours, \
                (SELECT count(*) FROM r WHERE \"interval\" = '1h') AS labelled, \
                (SELECT count(*) FROM r JOIN m ON r.open_time = m.h \
                 WHERE r.open = m.o AND r.high = m.hi AND r.low = m.lo AND r.close = m.c \
                   AND abs(r.volume - m.v) < 1e-6 AND r.trade_count = m.n) AS equal",
    );
    assert_eq!(
        mismatches[0],
        serde_json::json!({"hours": 24, "labelled": 24, "equal": 24})
    );
}
