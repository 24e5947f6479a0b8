//! The Binance connector's params: what to mirror and where the archive is.
//!
//! Owns: the params' JSON shape, defaults, validation and published JSON
//! Schema. It must not fetch anything.

use cryptolake_plugin_sdk::PluginError;
use serde::Deserialize;

use crate::datatypes::{self, ALL_TYPES, KLINE_TYPES};

/// Where the public archive is listed (S3 ListObjects v1, path-style).
pub const DEFAULT_LISTING_URL: &str = "https://s3-ap-northeast-1.amazonaws.com/data.binance.vision";
/// Where archive files are downloaded (the CDN in front of the bucket).
pub const DEFAULT_DOWNLOAD_URL: &str = "https://data.binance.vision";

/// Kline intervals Binance publishes, in archive spelling.
pub const INTERVALS: &[&str] = &[
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
    "1mo",
];

/// A market of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Market {
    /// Spot.
    #[serde(rename = "spot")]
    Spot,
    /// USDⓈ-margined futures.
    #[serde(rename = "futures/um")]
    FuturesUm,
    /// Coin-margined futures.
    #[serde(rename = "futures/cm")]
    FuturesCm,
    /// European options (BVOL index, end-of-hour summaries).
    #[serde(rename = "option")]
    Options,
}

impl Market {
    /// The path segment(s) in archive keys.
    pub fn path(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::FuturesUm => "futures/um",
            Market::FuturesCm => "futures/cm",
            Market::Options => "option",
        }
    }

    /// The lake partition value (no `/`).
    pub fn partition(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::FuturesUm => "futures-um",
            Market::FuturesCm => "futures-cm",
            Market::Options => "option",
        }
    }
}

/// Daily or monthly files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// One file per day, `YYYY-MM-DD`.
    Daily,
    /// One file per month, `YYYY-MM`.
    Monthly,
}

impl Period {
    /// The path segment in archive keys.
    pub fn path(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Monthly => "monthly",
        }
    }
}

/// The connector's params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `spot`, `futures/um` or `futures/cm`.
    #[serde(default = "default_market")]
    pub market: Market,
    /// `daily` or `monthly`.
    #[serde(default = "default_period")]
    pub period: Period,
    /// Archive data type, e.g. `klines`.
    #[serde(default = "default_data_type")]
    pub data_type: String,
    /// Symbols as Binance spells them, e.g. `BTCUSDT`.
    pub symbols: Vec<String>,
    /// Kline interval, e.g. `1m`; only for kline-like data types.
    #[serde(default)]
    pub interval: Option<String>,
    /// S3 ListObjects v1 endpoint of the archive bucket (path-style).
    #[serde(default = "default_listing_url")]
    pub listing_url: String,
    /// Base URL archive keys are downloaded from.
    #[serde(default = "default_download_url")]
    pub download_url: String,
    /// Bucket name of the archive, for server-side copies.
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// Region of the archive bucket.
    #[serde(default = "default_region")]
    pub region: String,
    /// Rows per decoded batch.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// For symbol patterns: keep only these quote assets (empty: any).
    #[serde(default)]
    pub quote_assets: Vec<String>,
    /// For symbol patterns: drop leveraged tokens (`BTCUPUSDT`, …).
    #[serde(default = "default_true")]
    pub exclude_leveraged: bool,
    /// For symbol patterns: drop stablecoin pairs (`USDCUSDT`, …).
    #[serde(default = "default_true")]
    pub exclude_stablecoin_pairs: bool,
    /// For symbol patterns: keep delivery contracts that have settled
    /// (`BTCUSD_230929` after 2023-09-29; SETTLED on the exchange).
    #[serde(default)]
    pub include_settled: bool,
    /// `listing` (S3 ListObjects) or `probe` (GET each expected
    /// `<key>.CHECKSUM`, for when the listing lags the CDN).
    #[serde(default)]
    pub discovery: DiscoveryMode,
    /// Check every row against its artifact (see [`crate::rows`]): off only
    /// for a pipeline whose `quality` transform handles repeated and
    /// reordered rows itself.
    #[serde(default = "default_true")]
    pub check_rows: bool,
}

/// How artifacts are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryMode {
    /// S3 ListObjects v1 with marker pagination.
    #[default]
    Listing,
    /// Probe the expected keys' `.CHECKSUM` files directly.
    Probe,
}

fn default_true() -> bool {
    true
}

fn default_market() -> Market {
    Market::Spot
}
fn default_period() -> Period {
    Period::Daily
}
fn default_data_type() -> String {
    "klines".to_owned()
}
fn default_listing_url() -> String {
    DEFAULT_LISTING_URL.to_owned()
}
fn default_download_url() -> String {
    DEFAULT_DOWNLOAD_URL.to_owned()
}
fn default_bucket() -> String {
    "data.binance.vision".to_owned()
}
fn default_region() -> String {
    "ap-northeast-1".to_owned()
}
/// Rows per decoded batch unless `batch_rows` says otherwise. Speed hardly
/// depends on it (docs/benchmarks.md, sessions 5 and 6) but a decode's peak
/// memory does, so it is small; the Parquet writer's row groups stay larger.
pub const DEFAULT_BATCH_ROWS: usize = 16_384;

fn default_batch_rows() -> usize {
    DEFAULT_BATCH_ROWS
}

impl Params {
    /// Parses and validates params JSON.
    pub fn parse(json: &str) -> Result<Params, PluginError> {
        let params: Params = cryptolake_plugin_sdk::parse_params(json)?;
        params.validate()?;
        Ok(params)
    }

    fn validate(&self) -> Result<(), PluginError> {
        if !ALL_TYPES.contains(&self.data_type.as_str()) {
            return Err(PluginError::InvalidParams(format!(
                "data_type `{}` is not one of {}",
                self.data_type,
                ALL_TYPES.join(", ")
            )));
        }
        if !datatypes::available(&self.data_type, self.market, self.period) {
            return Err(PluginError::InvalidParams(format!(
                "Binance publishes no {} {} files for {}",
                self.period.path(),
                self.data_type,
                self.market.path()
            )));
        }
        if KLINE_TYPES.contains(&self.data_type.as_str()) {
            let interval = self.interval.as_deref().ok_or_else(|| {
                PluginError::InvalidParams(format!("interval is required for {}", self.data_type))
            })?;
            if !INTERVALS.contains(&interval) {
                return Err(PluginError::InvalidParams(format!(
                    "interval `{interval}` is not one of {}",
                    INTERVALS.join(" ")
                )));
            }
            if self.period == Period::Daily && matches!(interval, "3d" | "1w" | "1mo") {
                return Err(PluginError::InvalidParams(format!(
                    "interval `{interval}` is published in monthly files only"
                )));
            }
            if interval == "1s" && self.market != Market::Spot {
                return Err(PluginError::InvalidParams(
                    "interval `1s` exists for spot only".to_owned(),
                ));
            }
        } else if let Some(interval) = &self.interval {
            return Err(PluginError::InvalidParams(format!(
                "{} files have no interval, but interval = `{interval}` was given",
                self.data_type
            )));
        }
        if self.symbols.is_empty() {
            return Err(PluginError::InvalidParams(
                "symbols must name at least one symbol".to_owned(),
            ));
        }
        for symbol in &self.symbols {
            let valid = !symbol.is_empty()
                && symbol.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b'*' | b'?')
                });
            if !valid {
                return Err(PluginError::InvalidParams(format!(
                    "symbol `{symbol}` must be upper-case letters, digits or `_` as Binance spells it, or a pattern with `*` and `?`"
                )));
            }
            if self.discovery == DiscoveryMode::Probe && crate::symbols::is_pattern(symbol) {
                return Err(PluginError::InvalidParams(format!(
                    "symbol pattern `{symbol}` needs the listing; probe mode takes explicit symbols"
                )));
            }
        }
        if self.batch_rows == 0 || self.batch_rows > 1 << 20 {
            return Err(PluginError::InvalidParams(
                "batch_rows must be between 1 and 1048576".to_owned(),
            ));
        }
        Ok(())
    }
}

/// The params' JSON Schema, published through `info()`.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "binance source params",
  "type": "object",
  "additionalProperties": false,
  "required": ["symbols"],
  "properties": {
    "market": {"enum": ["spot", "futures/um", "futures/cm", "option"], "default": "spot"},
    "period": {"enum": ["daily", "monthly"], "default": "daily"},
    "data_type": {"enum": ["klines", "indexPriceKlines", "markPriceKlines", "premiumIndexKlines", "aggTrades", "trades", "fundingRate", "bookTicker", "bookDepth", "metrics", "liquidationSnapshot", "BVOLIndex", "EOHSummary"], "default": "klines"},
    "symbols": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z0-9_*?]+$"}, "minItems": 1},
    "interval": {"enum": ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1mo"]},
    "listing_url": {"type": "string", "format": "uri", "default": "https://s3-ap-northeast-1.amazonaws.com/data.binance.vision"},
    "download_url": {"type": "string", "format": "uri", "default": "https://data.binance.vision"},
    "bucket": {"type": "string", "default": "data.binance.vision"},
    "region": {"type": "string", "default": "ap-northeast-1"},
    "batch_rows": {"type": "integer", "minimum": 1, "maximum": 1048576, "default": 16384},
    "quote_assets": {"type": "array", "items": {"type": "string"}, "default": []},
    "exclude_leveraged": {"type": "boolean", "default": true},
    "exclude_stablecoin_pairs": {"type": "boolean", "default": true},
    "include_settled": {"type": "boolean", "default": false},
    "discovery": {"enum": ["listing", "probe"], "default": "listing"},
    "check_rows": {"type": "boolean", "default": true}
  }
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in() {
        let p = Params::parse(r#"{"symbols":["BTCUSDT"],"interval":"1m"}"#).unwrap();
        assert_eq!(p.market, Market::Spot);
        assert_eq!(p.period, Period::Daily);
        assert_eq!(p.listing_url, DEFAULT_LISTING_URL);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Params::parse(r#"{"symbols":["BTCUSDT"],"interval":"1M"}"#).unwrap_err();
        assert!(e.to_string().contains("interval `1M`"), "{e}");
        let e = Params::parse(r#"{"symbols":["btcusdt"],"interval":"1m"}"#).unwrap_err();
        assert!(e.to_string().contains("btcusdt"), "{e}");
        let e = Params::parse(r#"{"symbols":["X"],"interval":"1m","colour":1}"#).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = Params::parse(r#"{"symbols":["X"],"interval":"1w"}"#).unwrap_err();
        assert!(e.to_string().contains("monthly"), "{e}");
        let e =
            Params::parse(r#"{"symbols":["X"],"data_type":"fundingRate","market":"futures/um"}"#)
                .unwrap_err();
        assert!(
            e.to_string()
                .contains("no daily fundingRate files for futures/um"),
            "{e}"
        );
        let e =
            Params::parse(r#"{"symbols":["X"],"data_type":"trades","interval":"1m"}"#).unwrap_err();
        assert!(e.to_string().contains("no interval"), "{e}");
        assert!(Params::parse(r#"{"symbols":["X"],"data_type":"trades"}"#).is_ok());
    }

    #[test]
    fn schema_is_valid_json() {
        let v: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(v["required"][0], "symbols");
    }

    /// The schema publishes the defaults; they must be the ones parsing fills in.
    #[test]
    fn schema_defaults_are_the_parsed_defaults() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let default = |name: &str| schema["properties"][name]["default"].clone();
        let p = Params::parse(r#"{"symbols":["BTCUSDT"],"interval":"1m"}"#).unwrap();
        assert_eq!(default("batch_rows"), p.batch_rows);
        assert_eq!(p.batch_rows, DEFAULT_BATCH_ROWS);
        assert_eq!(default("listing_url"), p.listing_url.as_str());
        assert_eq!(default("download_url"), p.download_url.as_str());
        assert_eq!(default("bucket"), p.bucket.as_str());
        assert_eq!(default("region"), p.region.as_str());
    }
}
