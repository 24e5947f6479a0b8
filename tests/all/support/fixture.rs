//! A Binance archive on moto with daily 1m kline files, and a local lake,
//! for tests that run the agent end to end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use time::macros::date;

use crate::support::archive::KlineFile;
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, write_agent_config};

/// Rows per daily 1m archive.
pub const ROWS: usize = 1440;

/// Generous bound for events that take a second on an idle machine.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// An archive with `days` daily 1m kline files per symbol, from 2024-08-01.
pub struct Fixture {
    pub moto: Moto,
    pub dir: tempfile::TempDir,
    pub archive: String,
}

impl Fixture {
    pub fn new(symbols: &[&'static str], days: i64) -> Self {
        let moto = Moto::start();
        moto.create_public_bucket(ARCHIVE_BUCKET);
        let first = date!(2024 - 08 - 01);
        for symbol in symbols {
            for i in 0..days {
                KlineFile::spot(symbol, first + time::Duration::days(i), ROWS).upload(&moto);
            }
        }
        let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
        Self {
            moto,
            dir: tempfile::tempdir().expect("tempdir"),
            archive,
        }
    }

    /// The local lake.
    pub fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    /// A curated pipeline over `symbol` with `extra` lines (transforms,
    /// schedule, …).
    pub fn pipeline(&self, name: &str, symbol: &str, extra: &str) -> String {
        binance_pipeline(
            name,
            &self.archive,
            &format!(r#"interval = "1m", symbols = ["{symbol}"]"#),
            &format!("table = \"ohlcv\"\nwindow = {{ start = \"2024-08-01\" }}\n{extra}"),
        )
    }

    /// Writes the config: `plugins` (TOML tables) and `pipelines`.
    pub fn write_config(&self, plugins: &str, pipelines: &str) -> PathBuf {
        write_agent_config(
            self.dir.path(),
            r#"{ url = "lake" }"#,
            &self.moto.host_port(),
            &format!("{plugins}\n{pipelines}"),
        )
    }

    /// Writes the built-in `ohlcv` transform's bytes to a file in the
    /// fixture's directory, as a third-party plugin would be deployed.
    pub fn deploy_ohlcv(&self, name: &str) -> (PathBuf, Vec<u8>) {
        let bytes = cryptolake::builtin::bytes("ohlcv")
            .expect("ohlcv is built in")
            .to_vec();
        let path = self.dir.path().join(name);
        std::fs::write(&path, &bytes).expect("write plugin");
        (path, bytes)
    }
}

/// Rows per Parquet file of the `ohlcv` table (each must be whole).
pub fn rows_per_file(lake: &Path) -> Vec<(String, u64)> {
    if !crate::support::duckdb::has_parquet(&lake.join("ohlcv")) {
        return Vec::new();
    }
    crate::support::duckdb::query(
        lake,
        "SELECT filename, count(*) AS n FROM read_parquet('{lake}/ohlcv/**/*.parquet', filename = true) GROUP BY 1",
    )
    .into_iter()
    .map(|row| {
        (
            row["filename"].as_str().unwrap_or_default().to_owned(),
            row["n"].as_u64().unwrap_or(0),
        )
    })
    .collect()
}

/// The SHA-256 of the plugin named `plugin` in a manifest entry's lineage.
pub fn lineage_sha(entry: &serde_json::Value, plugin: &str) -> String {
    entry["plugins"]
        .as_array()
        .and_then(|plugins| plugins.iter().find(|p| p["name"] == plugin))
        .and_then(|p| p["sha256"].as_str())
        .unwrap_or_default()
        .to_owned()
}
