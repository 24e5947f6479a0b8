//! Discovery through the Binance plugin against a real S3 listing: marker
//! pagination over more than one page, window filtering, layouts.

use cryptolake::wit::Window;
use time::macros::date;

use crate::support::archive::checksum_file;
use crate::support::runtime;
use crate::support::s3::{ARCHIVE_BUCKET, Moto};

/// Puts a placeholder spot 1m archive and its `.CHECKSUM`: discovery reads
/// only the listing and the checksum files.
fn put_listed(moto: &Moto, symbol: &str, day: &str) {
    let name = format!("{symbol}-1m-{day}.zip");
    let key = format!("data/spot/daily/klines/{symbol}/1m/{name}");
    moto.put(ARCHIVE_BUCKET, &key, b"zip".to_vec());
    moto.put(
        ARCHIVE_BUCKET,
        &format!("{key}.CHECKSUM"),
        checksum_file(b"zip", &name).into_bytes(),
    );
}

/// Discovers spot 1m klines of `symbols` in `window` on the archive bucket
/// of `moto`.
fn discover_in(moto: &Moto, symbols: &str, window: &Window) -> Vec<cryptolake::wit::Artifact> {
    let binance = runtime::builtin("binance", &[&moto.host_port()]);
    let endpoint = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let params = serde_json::json!({
        "symbols": [symbols], "interval": "1m",
        "listing_url": endpoint, "download_url": endpoint,
    })
    .to_string();
    binance.discover(&params, window).expect("discover")
}

/// No window bounds.
const OPEN: Window = Window {
    start: None,
    end: None,
};

#[test]
fn listing_pagination_reaches_every_key() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    // 520 days, each a zip and a .CHECKSUM: 1040 keys under one prefix, more
    // than one 1000-key page. Contents do not matter to discovery.
    let first = date!(2023 - 06 - 01);
    let days: Vec<String> = (0..520)
        .map(|i| (first + time::Duration::days(i)).to_string())
        .collect();
    for day in &days {
        put_listed(&moto, "BTCUSDT", day);
    }
    let all = discover_in(&moto, "BTCUSDT", &OPEN);
    assert_eq!(all.len(), days.len());
    let periods: Vec<&str> = all.iter().map(|a| a.partition.period.as_str()).collect();
    assert_eq!(periods, days.iter().map(String::as_str).collect::<Vec<_>>());
    let pages = cryptolake::telemetry::metrics::value(
        cryptolake::telemetry::metrics::Metric::PluginCustomCounter,
        &[("plugin", "binance"), ("name", "artifacts_listed")],
    );
    assert!(pages >= days.len() as f64);

    // A window in the middle of the second page.
    let window = Window {
        start: Some("2024-10-01".into()),
        end: Some("2024-10-03".into()),
    };
    let some = discover_in(&moto, "BTCUSDT", &window);
    let keys: Vec<&str> = some.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.zip",
            "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-10-02.zip",
            "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-10-03.zip",
        ]
    );
    let a = &some[0];
    assert_eq!(
        a.url,
        format!("{}/{ARCHIVE_BUCKET}/{}", moto.endpoint(), a.key)
    );
    assert_eq!(a.size, Some(3));
    assert!(a.etag.is_some() && a.last_modified.is_some());
    let s3 = a.s3.as_ref().expect("s3 location");
    assert_eq!(
        (s3.bucket.as_str(), s3.region.as_str()),
        (ARCHIVE_BUCKET, "ap-northeast-1")
    );
}

#[test]
fn discovery_of_a_host_outside_the_allow_list_is_denied() {
    // The listing URL is a loopback port the plugin was not granted.
    let binance = runtime::builtin("binance", &["data.binance.vision"]);
    let params = serde_json::json!({
        "symbols": ["BTCUSDT"], "interval": "1m",
        "listing_url": "http://127.0.0.1:9/data.binance.vision",
    })
    .to_string();
    let error = binance
        .discover(
            &params,
            &Window {
                start: None,
                end: None,
            },
        )
        .expect_err("denied");
    let text = error.to_string();
    assert!(
        text.contains("plugin `binance`")
            && text.contains("127.0.0.1")
            && text.contains("allowed_hosts"),
        "{text}"
    );
}

#[test]
fn symbol_patterns_list_the_archive_and_filter() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    for symbol in [
        "BTCUSDT",
        "ETHUSDT",
        "BTCUPUSDT",
        "USDCUSDT",
        "ETHBTC",
        "JUPUSDT",
    ] {
        put_listed(&moto, symbol, "2024-06-01");
    }
    let found = discover_in(&moto, "*USDT", &OPEN);
    let symbols: Vec<&str> = found.iter().map(|a| a.partition.symbol.as_str()).collect();
    assert_eq!(
        symbols,
        ["BTCUSDT", "ETHUSDT", "JUPUSDT"],
        "leveraged and stablecoin pairs are filtered"
    );
}

#[test]
fn probe_mode_finds_archives_the_listing_does_not_show() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    for day in ["2024-06-01", "2024-06-03"] {
        put_listed(&moto, "BTCUSDT", day);
    }
    let binance = runtime::builtin("binance", &[&moto.host_port()]);
    // The listing endpoint is unreachable: probing must not need it.
    let params = serde_json::json!({
        "symbols": ["BTCUSDT"], "interval": "1m", "discovery": "probe",
        "listing_url": "http://127.0.0.1:9/nowhere",
        "download_url": format!("{}/{ARCHIVE_BUCKET}", moto.endpoint()),
    })
    .to_string();
    let window = Window {
        start: Some("2024-06-01".into()),
        end: Some("2024-06-03".into()),
    };
    let found = binance.discover(&params, &window).expect("discover");
    let periods: Vec<&str> = found.iter().map(|a| a.partition.period.as_str()).collect();
    assert_eq!(periods, ["2024-06-01", "2024-06-03"]);
    assert!(
        matches!(&found[0].checksum, cryptolake::wit::ChecksumSource::Sha256(h) if h.len() == 64)
    );
}
