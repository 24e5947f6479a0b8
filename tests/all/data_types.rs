//! Every family of Binance data types through the real path: listing,
//! download, checksum, decode, Parquet, read back by DuckDB. Formats follow
//! the reference: spot files have no header and switch from ms to µs on
//! 2025-01-01; futures files have headers; funding is monthly; metrics use
//! text datetimes.

use crate::support::archive::upload_csv;
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, duckdb, sync_report, write_agent_config};

fn pipeline(moto: &Moto, name: &str, table: &str, params: &str, window: (&str, &str)) -> String {
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let extra = format!(
        "table = \"{table}\"\nwindow = {{ start = \"{}\", end = \"{}\" }}",
        window.0, window.1
    );
    binance_pipeline(name, &archive, params, &extra)
}

#[test]
fn trades_agg_trades_funding_and_metrics_land_typed_and_normalised() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    // Spot trades: no header; ms in 2024, µs from 2025; `True`/`False`.
    upload_csv(
        &moto,
        "data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-12-31.zip",
        "3000000001,93500.01000000,0.00100000,93.50001000,1735689599999,True,True\n\
         3000000002,93500.02000000,0.00200000,187.00004000,1735689599999,False,True",
    );
    upload_csv(
        &moto,
        "data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-01.zip",
        "3000000003,93600.50000000,0.01000000,936.00500000,1735689600000123,False,True\r\n",
    );
    // USDⓈ-M aggTrades: header since 2022-08, ms, `true`/`false`.
    upload_csv(
        &moto,
        "data/futures/um/daily/aggTrades/ETHUSDT/ETHUSDT-aggTrades-2024-03-01.zip",
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n\
         1001,3400.5,1.25,5001,5003,1709251200100,true\n\
         1002,3400.75,0.5,5004,5004,1709251200200,false\n",
    );
    // Funding: monthly only, with header; rows on two days of the month.
    upload_csv(
        &moto,
        "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-03.zip",
        "calc_time,funding_interval_hours,last_funding_rate\n\
         1709251200000,8,0.00010000\n\
         1709280000000,8,-0.00002500\n\
         1711843200000,8,0.00003000\n",
    );
    // Metrics: text datetimes, rows not sorted.
    upload_csv(
        &moto,
        "data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-03-01.zip",
        "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n\
         2024-03-01 00:10:00,BTCUSDT,81000.5,5100000000.25,1.5,1.25,1.75,0.95\n\
         2024-03-01 00:05:00,BTCUSDT,80000.5,5000000000.25,1.4,1.2,1.7,0.9\n",
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &[
            pipeline(
                &moto,
                "spot-trades",
                "trades",
                r#"data_type = "trades", symbols = ["BTCUSDT"]"#,
                ("2024-12-31", "2025-01-01"),
            ),
            pipeline(
                &moto,
                "um-agg",
                "agg_trades",
                r#"market = "futures/um", data_type = "aggTrades", symbols = ["ETHUSDT"]"#,
                ("2024-03-01", "2024-03-01"),
            ),
            pipeline(
                &moto,
                "um-funding",
                "funding_rate",
                r#"market = "futures/um", period = "monthly", data_type = "fundingRate", symbols = ["BTCUSDT"]"#,
                ("2024-03-01", "2024-03-31"),
            ),
            pipeline(
                &moto,
                "um-metrics",
                "metrics",
                r#"market = "futures/um", data_type = "metrics", symbols = ["BTCUSDT"]"#,
                ("2024-03-01", "2024-03-01"),
            ),
        ]
        .concat(),
    );
    let (report, _) = sync_report(&config, &[], 0);
    let completed: Vec<u64> = report["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .map(|p| p["completed"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(completed, vec![2, 1, 1, 1], "{report:#}");
    let lake = dir.path().join("lake");

    let trades = duckdb::query(
        &lake,
        "SELECT id, price, qty, quote_qty, base_qty, epoch_us(time) AS t, is_buyer_maker, is_best_match, symbol, market \
         FROM read_parquet('{lake}/trades/**/*.parquet', hive_partitioning = true) ORDER BY id",
    );
    assert_eq!(trades.len(), 3);
    assert_eq!(trades[0]["t"], 1_735_689_599_999_000_i64, "ms became µs");
    assert_eq!(trades[2]["t"], 1_735_689_600_000_123_i64, "µs stayed µs");
    assert_eq!(trades[0]["is_buyer_maker"], true);
    assert_eq!(trades[1]["is_buyer_maker"], false);
    assert_eq!(trades[0]["quote_qty"], 93.50001);
    assert_eq!(trades[0]["base_qty"], serde_json::Value::Null);
    assert_eq!(
        (trades[2]["symbol"].as_str(), trades[2]["market"].as_str()),
        (Some("BTCUSDT"), Some("spot"))
    );

    let agg = duckdb::query(
        &lake,
        "SELECT agg_trade_id, price, quantity, epoch_ms(transact_time) AS t, is_buyer_maker, is_best_match, market \
         FROM read_parquet('{lake}/agg_trades/**/*.parquet', hive_partitioning = true) ORDER BY 1",
    );
    assert_eq!(agg.len(), 2, "the header row is not data");
    assert_eq!(agg[0]["t"], 1_709_251_200_100_i64);
    assert_eq!(
        agg[0]["is_best_match"],
        serde_json::Value::Null,
        "futures have no best-match flag"
    );
    assert_eq!(agg[1]["is_buyer_maker"], false);
    assert_eq!(agg[0]["market"], "futures-um");

    let funding = duckdb::query(
        &lake,
        "SELECT epoch_ms(calc_time) AS t, funding_interval_hours AS h, last_funding_rate AS r, CAST(date AS VARCHAR) AS d \
         FROM read_parquet('{lake}/funding_rate/**/*.parquet', hive_partitioning = true) ORDER BY 1",
    );
    assert_eq!(funding.len(), 3);
    assert_eq!(funding[1]["r"], -0.000025);
    assert_eq!(funding[0]["h"], 8);
    // A monthly archive lands in daily partitions, like daily archives do.
    assert_eq!(funding[0]["d"], "2024-03-01");
    assert_eq!(funding[1]["d"], "2024-03-01");
    assert_eq!(funding[2]["d"], "2024-03-31");
    let files = duckdb::query(
        &lake,
        "SELECT count(DISTINCT filename) AS n FROM read_parquet('{lake}/funding_rate/**/*.parquet', filename = true)",
    );
    assert_eq!(files[0]["n"], 2, "one file per day");

    let metrics = duckdb::query(
        &lake,
        "SELECT CAST(create_time AS VARCHAR) AS t, sum_open_interest AS oi FROM read_parquet('{lake}/metrics/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(metrics.len(), 2);
    assert!(
        metrics[0]["t"]
            .as_str()
            .unwrap_or("")
            .starts_with("2024-03-01 00:10:00"),
        "{metrics:?}"
    );
    assert_eq!(metrics[1]["oi"], 80000.5);
}

/// Option archives (daily only, under `data/option/`): the BVOL index and
/// end-of-hour summaries, read by header name; settled delivery contracts
/// are left out of a symbol pattern unless asked for.
#[test]
fn option_archives_land_by_header_name_and_settled_contracts_are_skipped() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    upload_csv(
        &moto,
        "data/option/daily/BVOLIndex/BTCBVOLUSDT/BTCBVOLUSDT-BVOLIndex-2023-08-16.zip",
        "calc_time,symbol,base_asset,quote_asset,index_value\n\
         1692144000000,BTCBVOLUSDT,BTC,USDT,41.25\n\
         1692144060000,BTCBVOLUSDT,BTC,USDT,41.3\n",
    );
    upload_csv(
        &moto,
        "data/option/daily/EOHSummary/BTCUSDT/BTCUSDT-EOHSummary-2023-08-16.zip",
        "date,hour,symbol,underlying,type,strike,open,high,low,close,volume_contracts,volume_usdt,best_bid_price,best_ask_price,best_bid_qty,best_ask_qty,best_buy_iv,best_sell_iv,mark_price,mark_iv,delta,gamma,vega,theta,openinterest_contracts,openinterest_usdt\n\
         2023-08-16,0,BTC-230818-30000-C,BTCUSDT,C,30000,45,50,40,48,1.5,44000,47,49,2,3,0.31,0.35,48.2,0.33,0.2,0.0001,5.1,-20.5,12.5,370000\n",
    );
    // Cm delivery contracts: one long settled, one delivering in the future.
    for symbol in ["BTCUSD_230929", "BTCUSD_991231"] {
        upload_csv(
            &moto,
            &format!("data/futures/cm/daily/klines/{symbol}/1m/{symbol}-1m-2023-08-16.zip"),
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n\
             1692144000000,29000,29010,28990,29005,10,1692144059999,34,5,4,14,0\n",
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let window = ("2023-08-16", "2023-08-16");
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &[
            pipeline(
                &moto,
                "bvol",
                "bvol_index",
                r#"market = "option", data_type = "BVOLIndex", symbols = ["BTCBVOLUSDT"]"#,
                window,
            ),
            pipeline(
                &moto,
                "eoh",
                "eoh_summary",
                r#"market = "option", data_type = "EOHSummary", symbols = ["BTCUSDT"]"#,
                window,
            ),
            pipeline(
                &moto,
                "cm",
                "cm_klines",
                r#"market = "futures/cm", interval = "1m", symbols = ["BTCUSD_*"]"#,
                window,
            ),
        ]
        .concat(),
    );
    let (report, _) = sync_report(&config, &[], 0);
    for pipeline in report["pipelines"].as_array().expect("pipelines") {
        assert_eq!(pipeline["completed"], 1, "{pipeline:#}");
    }
    let lake = dir.path().join("lake");
    let bvol = duckdb::query(
        &lake,
        "SELECT epoch_us(calc_time) AS t, index_value, market, symbol FROM read_parquet('{lake}/bvol_index/**/*.parquet', hive_partitioning = true) ORDER BY t",
    );
    assert_eq!(bvol.len(), 2);
    assert_eq!(bvol[0]["t"], 1_692_144_000_000_000_i64);
    assert_eq!(bvol[1]["index_value"], 41.3);
    assert_eq!(bvol[0]["market"], "option");
    assert_eq!(bvol[0]["symbol"], "BTCBVOLUSDT");
    let eoh = duckdb::query(
        &lake,
        "SELECT hour, contract, symbol, type, strike, mark_iv, openinterest_usdt FROM read_parquet('{lake}/eoh_summary/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(eoh.len(), 1);
    assert_eq!(eoh[0]["hour"], 0);
    assert_eq!(eoh[0]["contract"], "BTC-230818-30000-C");
    assert_eq!(
        eoh[0]["symbol"], "BTCUSDT",
        "the partition is the underlying"
    );
    assert_eq!(eoh[0]["type"], "C");
    assert_eq!(eoh[0]["strike"], 30000.0);
    assert_eq!(eoh[0]["mark_iv"], 0.33);
    assert_eq!(eoh[0]["openinterest_usdt"], 370000.0);
    let cm = duckdb::query(
        &lake,
        "SELECT DISTINCT symbol FROM read_parquet('{lake}/cm_klines/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(cm.len(), 1, "{cm:?}");
    assert_eq!(cm[0]["symbol"], "BTCUSD_991231");
}

/// A re-published monthly archive whose rows now fall on other days: its new
/// daily files replace the old ones, and a day it no longer has is removed,
/// so no stale row survives.
#[test]
fn a_republished_monthly_archive_leaves_no_stale_day_behind() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let key = "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-03.zip";
    let header = "calc_time,funding_interval_hours,last_funding_rate\n";
    // 2024-03-01 and 2024-03-31.
    upload_csv(
        &moto,
        key,
        &format!("{header}1709251200000,8,0.0001\n1711843200000,8,0.0003\n"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &pipeline(
            &moto,
            "funding",
            "funding_rate",
            r#"market = "futures/um", period = "monthly", data_type = "fundingRate", symbols = ["BTCUSDT"]"#,
            ("2024-03-01", "2024-03-31"),
        ),
    );
    sync_report(&config, &[], 0);
    // Re-published: 2024-03-01 corrected, 2024-03-31 gone, 2024-03-15 new.
    upload_csv(
        &moto,
        key,
        &format!("{header}1709251200000,8,0.0002\n1710460800000,8,0.0005\n"),
    );
    let (report, _) = sync_report(&config, &[], 0);
    assert_eq!(
        report["pipelines"][0]["artifacts"][0]["reason"], "republished",
        "{report:#}"
    );
    let lake = dir.path().join("lake");
    let rows = duckdb::query(
        &lake,
        "SELECT CAST(date AS VARCHAR) AS d, last_funding_rate AS r FROM read_parquet('{lake}/funding_rate/**/*.parquet', hive_partitioning = true) ORDER BY d",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0]["d"].as_str(), rows[0]["r"].as_f64()),
        (Some("2024-03-01"), Some(0.0002))
    );
    assert_eq!(
        (rows[1]["d"].as_str(), rows[1]["r"].as_f64()),
        (Some("2024-03-15"), Some(0.0005))
    );
    let verify =
        crate::support::run_cryptolake(&["lake", "verify", "--config", config.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "{}",
        crate::support::describe(&verify)
    );
}
