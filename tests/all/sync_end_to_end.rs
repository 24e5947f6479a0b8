//! `cryptolake sync` against a real S3 server, read back with DuckDB.

use std::path::Path;

use time::macros::date;

use crate::support::archive::{KlineFile, Row, sha256_hex};
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, duckdb, sync_report, write_agent_config};

/// Writes a config whose listing and download endpoints are the local server:
/// spot klines for two symbols, and a futures pipeline.
pub fn write_config(dir: &Path, moto: &Moto) -> std::path::PathBuf {
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let ohlcv = "table = \"ohlcv\"\ntransforms = [{ plugin = \"ohlcv\" }]";
    let pipelines = [
        binance_pipeline(
            "spot-1m",
            &archive,
            r#"market = "spot", interval = "1m", symbols = ["BTCUSDT", "ETHUSDT"]"#,
            &format!(
                "{ohlcv}\nconcurrency = 3\nwindow = {{ start = \"2024-12-28\", end = \"2025-01-02\" }}"
            ),
        ),
        binance_pipeline(
            "um-1m",
            &archive,
            r#"market = "futures/um", interval = "1m", symbols = ["BTCUSDT"]"#,
            &format!("{ohlcv}\nwindow = {{ start = \"2024-12-31\", end = \"2024-12-31\" }}"),
        ),
    ];
    write_agent_config(
        dir,
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &pipelines.concat(),
    )
}

/// The archive set: spot ms (2024) and µs (2025) files, a missing day, a
/// futures file with a header, and files outside the window.
pub fn seed(moto: &Moto) -> Vec<(KlineFile, Vec<u8>)> {
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let files = vec![
        KlineFile::spot("BTCUSDT", date!(2024 - 12 - 27), 3), // before the window
        KlineFile::spot("BTCUSDT", date!(2024 - 12 - 28), 5),
        // 2024-12-29 is missing, as real days sometimes are.
        KlineFile::spot("BTCUSDT", date!(2024 - 12 - 30), 5),
        KlineFile::spot("BTCUSDT", date!(2024 - 12 - 31), 1440),
        KlineFile::spot("BTCUSDT", date!(2025 - 01 - 01), 1440),
        KlineFile::spot("BTCUSDT", date!(2025 - 01 - 02), 7),
        KlineFile::spot("BTCUSDT", date!(2025 - 01 - 03), 3), // after the window
        KlineFile::spot("ETHUSDT", date!(2024 - 12 - 31), 4),
        KlineFile::spot("ETHUSDT", date!(2025 - 01 - 01), 4),
        KlineFile::futures_um("BTCUSDT", date!(2024 - 12 - 31), 6),
    ];
    files
        .into_iter()
        .map(|f| {
            let zip = f.upload(moto);
            (f, zip)
        })
        .collect()
}

fn in_window(file: &KlineFile) -> bool {
    let day = file.day();
    if file.market == "spot" {
        ("2024-12-28".."2025-01-03").contains(&day.as_str())
    } else {
        day == "2024-12-31"
    }
}

const ROWS_SQL: &str = "SELECT exchange, market, symbol, \"interval\", CAST(date AS VARCHAR) AS date, \
    epoch_us(open_time) AS open_time, open, high, low, close, volume, quote_volume, trade_count, \
    taker_buy_base_volume, taker_buy_quote_volume \
    FROM read_parquet('{lake}/ohlcv/**/*.parquet', hive_partitioning = true) \
    ORDER BY market, symbol, open_time";

#[test]
fn sync_mirrors_archives_into_query_ready_parquet() {
    let moto = Moto::start();
    let files = seed(&moto);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &moto);
    let lake = dir.path().join("lake");

    // A dry run lists what would be transferred, and why, and transfers nothing.
    let (plan, _) = sync_report(&config, &["--dry-run", "--pipeline", "spot-1m"], 0);
    let spot_plan = &plan["plans"][0];
    assert_eq!(
        spot_plan["planned"].as_array().map(Vec::len),
        Some(7),
        "{plan:#}"
    );
    assert_eq!(spot_plan["planned"][0]["reason"], "new");
    assert!(spot_plan["total_bytes"].as_u64().unwrap_or(0) > 0);
    assert!(!lake.join("ohlcv").exists(), "a dry run writes nothing");

    let (report, _) = sync_report(&config, &[], 0);
    let spot = &report["pipelines"][0];
    assert_eq!(spot["pipeline"], "spot-1m");
    // The missing day is reported, in the output and in the lake.
    let missing = serde_json::json!([{
        "exchange": "binance", "market": "spot", "data_type": "klines", "symbol": "BTCUSDT",
        "interval": "1m", "first": "2024-12-28", "last": "2025-01-02", "missing": ["2024-12-29"],
    }]);
    assert_eq!(spot["missing"], missing, "{report:#}");
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(lake.join("_cryptolake/reports/spot-1m/last-run.json")).expect("run report"),
    )
    .expect("json");
    assert_eq!(stored["missing"], missing);
    assert_eq!(spot["discovered"], 7, "{report:#}");
    assert_eq!(spot["completed"], 7, "{report:#}");
    assert_eq!(report["pipelines"][1]["completed"], 1, "{report:#}");

    // Every row, every value, read back by DuckDB with hive partitioning.
    let rows = duckdb::query(&lake, ROWS_SQL);
    let mut expected: Vec<(&KlineFile, Row)> = files
        .iter()
        .filter(|(f, _)| in_window(f))
        .flat_map(|(f, _)| f.expected_rows().into_iter().map(move |r| (f, r)))
        .collect();
    expected.sort_by(|(fa, ra), (fb, rb)| {
        (market_partition(fa.market), fa.symbol, ra.open_time_us).cmp(&(
            market_partition(fb.market),
            fb.symbol,
            rb.open_time_us,
        ))
    });
    assert_eq!(rows.len(), expected.len());
    for (got, (file, want)) in rows.iter().zip(&expected) {
        let context = format!("{} {} {}", file.market, file.symbol, want.open_time_us);
        assert_eq!(got["exchange"], "binance", "{context}");
        assert_eq!(got["market"], market_partition(file.market), "{context}");
        assert_eq!(got["symbol"], file.symbol, "{context}");
        assert_eq!(got["interval"], "1m", "{context}");
        assert_eq!(got["date"], file.day(), "{context}");
        assert_eq!(got["open_time"], want.open_time_us, "{context}");
        assert_eq!(got["open"], want.open, "{context}");
        assert_eq!(got["high"], want.high, "{context}");
        assert_eq!(got["low"], want.low, "{context}");
        assert_eq!(got["close"], want.close, "{context}");
        assert_eq!(got["volume"], want.volume, "{context}");
        assert_eq!(got["quote_volume"], want.quote_volume, "{context}");
        assert_eq!(got["trade_count"], want.count, "{context}");
        assert_eq!(
            got["taker_buy_base_volume"], want.taker_buy_volume,
            "{context}"
        );
        assert_eq!(
            got["taker_buy_quote_volume"], want.taker_buy_quote_volume,
            "{context}"
        );
    }

    // ms files (2024) and µs files (2025) land in the same unit: the last
    // minute of 2024 and the first of 2025 are exactly one minute apart.
    let boundary = duckdb::query(
        &lake,
        "SELECT CAST(open_time AS VARCHAR) AS t FROM read_parquet('{lake}/ohlcv/**/*.parquet', hive_partitioning = true) \
         WHERE market = 'spot' AND symbol = 'BTCUSDT' AND open_time BETWEEN '2024-12-31 23:59:00+00' AND '2025-01-01 00:00:00+00' ORDER BY 1",
    );
    let times: Vec<&str> = boundary
        .iter()
        .map(|r| r["t"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(times.len(), 2, "{boundary:?}");
    assert!(times[0].starts_with("2024-12-31 23:59:00"), "{times:?}");
    assert!(times[1].starts_with("2025-01-01 00:00:00"), "{times:?}");

    // The raw zone holds the archives byte for byte, with their checksums.
    for (file, zip) in files.iter().filter(|(f, _)| in_window(f)) {
        let raw = std::fs::read(lake.join("raw").join(file.key())).expect("raw copy");
        assert_eq!(sha256_hex(&raw), sha256_hex(zip), "{}", file.key());
        let checksum =
            std::fs::read_to_string(lake.join("raw").join(format!("{}.CHECKSUM", file.key())))
                .expect("raw checksum");
        assert!(checksum.starts_with(&sha256_hex(zip)));
    }

    // Each manifest entry records identity, outputs and lineage.
    let entry_path = lake
        .join("_cryptolake/manifest/spot-1m")
        .join(format!("{}.json", files[3].0.key()));
    let entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&entry_path).expect("manifest entry")).expect("json");
    assert_eq!(entry["rows"], 1440);
    assert_eq!(entry["checksum_verified"], true);
    assert_eq!(entry["sha256"], sha256_hex(&files[3].1));
    assert_eq!(entry["plugins"][0]["name"], "binance");
    assert_eq!(entry["plugins"][1]["name"], "ohlcv");
    assert_eq!(
        entry["plugins"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );

    // No staging file is left behind, and nothing partial is visible.
    let staging: Vec<_> = std::fs::read_dir(lake.join("_cryptolake/staging"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(staging.is_empty(), "{staging:?}");

    // A second run finds everything up to date and leaves row counts alone.
    let (plan, _) = sync_report(&config, &["--dry-run"], 0);
    assert_eq!(
        plan["plans"][0]["planned"],
        serde_json::json!([]),
        "{plan:#}"
    );
    let (report, _) = sync_report(&config, &[], 0);
    assert_eq!(report["pipelines"][0]["up_to_date"], 7, "{report:#}");
    assert_eq!(report["pipelines"][0]["completed"], 0, "{report:#}");
    // `lake ls` and `lake verify` read the manifest and the Parquet footers.
    let cfg = config.to_str().unwrap();
    let ls = crate::support::run_cryptolake(&["lake", "ls", "--config", cfg, "--output", "json"]);
    assert!(ls.status.success(), "{}", crate::support::describe(&ls));
    let tables: serde_json::Value = serde_json::from_slice(&ls.stdout).expect("json");
    assert_eq!(tables[0]["table"], "ohlcv");
    assert_eq!(tables[0]["files"], 8);
    assert_eq!(tables[0]["rows"], expected.len());
    let verify = crate::support::run_cryptolake(&["lake", "verify", "--config", cfg]);
    assert!(
        verify.status.success(),
        "{}",
        crate::support::describe(&verify)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("0 problem(s)"));

    let count = duckdb::query(
        &lake,
        "SELECT count(*) AS n FROM read_parquet('{lake}/ohlcv/**/*.parquet')",
    );
    assert_eq!(count[0]["n"], expected.len());
}

#[test]
fn a_republished_archive_is_transferred_again() {
    let moto = Moto::start();
    let files = seed(&moto);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &moto);
    sync_report(&config, &["--pipeline", "spot-1m"], 0);

    // Binance re-publishes a corrected day under the same key.
    let corrected = KlineFile::spot("BTCUSDT", date!(2024 - 12 - 30), 9);
    assert_eq!(corrected.key(), files[2].0.key());
    corrected.upload(&moto);

    let (report, _) = sync_report(&config, &["--pipeline", "spot-1m"], 0);
    let spot = &report["pipelines"][0];
    assert_eq!(spot["completed"], 1, "{report:#}");
    assert_eq!(spot["artifacts"][0]["reason"], "republished", "{report:#}");
    let rows = duckdb::query(
        &dir.path().join("lake"),
        "SELECT count(*) AS n FROM read_parquet('{lake}/ohlcv/**/*.parquet', hive_partitioning = true) WHERE date = '2024-12-30'",
    );
    assert_eq!(
        rows[0]["n"], 9,
        "the corrected file replaced the old rows, without duplicates"
    );
}

#[test]
fn lake_verify_reports_missing_and_damaged_outputs() {
    let moto = Moto::start();
    seed(&moto);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &moto);
    sync_report(&config, &["--pipeline", "um-1m"], 0);
    let lake = dir.path().join("lake");
    let part = lake.join(
        "ohlcv/exchange=binance/market=futures-um/symbol=BTCUSDT/date=2024-12-31/part-BTCUSDT-1m-2024-12-31.parquet",
    );
    let bytes = std::fs::read(&part).expect("output");
    std::fs::write(&part, &bytes[..bytes.len() / 2]).expect("truncate");
    std::fs::remove_file(
        lake.join("raw/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-12-31.zip"),
    )
    .expect("remove raw");
    let output = crate::support::run_cryptolake(&[
        "lake",
        "verify",
        "--config",
        config.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        crate::support::describe(&output)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let problems = report["problems"].to_string();
    assert!(problems.contains("is not readable Parquet"), "{report:#}");
    assert!(
        problems.contains("raw copy") && problems.contains("is missing"),
        "{report:#}"
    );
}

fn market_partition(market: &str) -> &'static str {
    match market {
        "spot" => "spot",
        "futures/um" => "futures-um",
        _ => "futures-cm",
    }
}

/// On a terminal the bars show the progress, so the one-line-per-archive
/// log lines are left out (from `--log-level debug` on they show); problems
/// and the summary stay. Run under `script`, which gives `sync` a real
/// pseudo-terminal.
#[test]
fn a_terminal_shows_progress_and_problems_not_a_line_per_archive() {
    let fixture = crate::support::fixture::Fixture::new(&["BTCUSDT"], 3);
    let config = fixture.write_config("", &fixture.pipeline("spot", "BTCUSDT", ""));
    let on_terminal = |level: &str| {
        let command = format!(
            "{} --log-level {level} sync --config {}",
            env!("CARGO_BIN_EXE_cryptolake"),
            config.display()
        );
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .env_remove("RUST_LOG");
        crate::support::isolate_from_cloud(&mut script);
        let output = script.output().expect("script runs");
        assert!(
            output.status.success(),
            "{}",
            crate::support::describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let shown = on_terminal("info");
    assert!(shown.contains("archives"), "no progress bar:\n{shown}");
    assert!(shown.contains("Pipeline run finished."), "{shown}");
    assert!(
        !shown.contains("Artifact committed to the lake."),
        "{shown}"
    );
    // Nothing left to do the second time; with debug, the lines are back.
    std::fs::remove_dir_all(fixture.lake()).expect("empty the lake");
    let debug = on_terminal("debug");
    assert_eq!(
        debug.matches("Artifact committed to the lake.").count(),
        3,
        "{debug}"
    );
}

/// `sync --plan`: what a backfill would fetch and how long it would take at
/// the rate the last run measured; nothing is transferred.
#[test]
fn the_plan_estimates_archives_bytes_requests_and_time() {
    let fixture = crate::support::fixture::Fixture::new(&["BTCUSDT"], 4);
    let config = fixture.write_config("", &fixture.pipeline("spot", "BTCUSDT", ""));
    let estimate = |report: &serde_json::Value| report["estimates"][0].clone();

    // Before any run: archives, bytes and requests, but no rate to time them by.
    let (fresh, _) = sync_report(&config, &["--plan"], 0);
    let first = estimate(&fresh);
    assert_eq!(first["archives"], 4, "{fresh:#}");
    assert!(first["bytes"].as_u64().unwrap_or(0) > 0, "{fresh:#}");
    assert_eq!(first["rate"], serde_json::Value::Null);
    assert_eq!(first["eta_s"], serde_json::Value::Null);
    assert_eq!(fresh["total"]["eta_s"], serde_json::Value::Null);
    assert!(
        !fixture.lake().join("ohlcv").exists(),
        "--plan transferred something"
    );

    // After two days ran, the other two are timed at that run's rate.
    sync_report(&config, &["--to", "2024-08-02"], 0);
    let (later, _) = sync_report(&config, &["--plan"], 0);
    let second = estimate(&later);
    assert_eq!(second["archives"], 2, "{later:#}");
    let rate = second["rate"]["archives_per_s"].as_f64().expect("a rate");
    assert!(rate > 0.0, "{later:#}");
    let eta = second["eta_s"].as_f64().expect("a time");
    assert!(eta >= 2.0 / rate - 1e-9, "{later:#}");
    assert_eq!(
        second["requests"].as_f64().unwrap_or(0.0),
        (2.0 * second["requests_per_archive"].as_f64().unwrap_or(0.0)).round()
    );
    assert_eq!(later["total"]["archives"], 2);

    let text = crate::support::run_cryptolake(&[
        "sync",
        "--plan",
        "--config",
        config.to_str().expect("UTF-8"),
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("spot: 2 archives"), "{text}");
    assert!(text.contains("total: 2 archives"), "{text}");
    assert!(text.contains("as the last run went"), "{text}");
}
