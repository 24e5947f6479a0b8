//! The Coinbase Exchange public candles connector.
//!
//! Owns: splitting a date range into request windows of at most 300 candles
//! (one UTC day per artifact, so partitions are days), and decoding the API's
//! answer: a JSON array of `[time, low, high, open, close, volume]` (note the
//! order), newest first, with no row for intervals without trades. It must
//! not fetch: the host downloads each window (rate-limited, retrying 429 and
//! 5xx) and keeps the raw response.

use std::cell::RefCell;

use cryptolake_plugin_sdk::columns::{self, ColumnBuilder};
use cryptolake_plugin_sdk::source::{Decoder, Guest, GuestDecoder};
use cryptolake_plugin_sdk::{
    Artifact, Batch, ChecksumSource, Compression, PartitionValues, PluginError, PluginInfo, Window,
    dates, host,
};
use serde::Deserialize;

/// Candles per request the API allows.
pub const MAX_CANDLES: i64 = 300;

/// Granularities the API accepts, in seconds, with the lake's interval name.
pub const GRANULARITIES: [(i64, &str); 6] = [
    (60, "1m"),
    (300, "5m"),
    (900, "15m"),
    (3600, "1h"),
    (21600, "6h"),
    (86400, "1d"),
];

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "coinbase source params",
  "type": "object",
  "additionalProperties": false,
  "required": ["products"],
  "properties": {
    "products": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z0-9]+-[A-Z0-9]+$"}, "minItems": 1},
    "granularity": {"enum": [60, 300, 900, 3600, 21600, 86400], "default": 60},
    "api_url": {"type": "string", "format": "uri", "default": "https://api.exchange.coinbase.com"}
  }
}"#;

/// The connector's params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Product ids, e.g. `BTC-USD`.
    pub products: Vec<String>,
    /// Candle length in seconds.
    #[serde(default = "default_granularity")]
    pub granularity: i64,
    /// Base URL of the Exchange REST API.
    #[serde(default = "default_api_url")]
    pub api_url: String,
}

fn default_granularity() -> i64 {
    60
}

fn default_api_url() -> String {
    "https://api.exchange.coinbase.com".to_owned()
}

impl Params {
    /// Parses and validates params JSON.
    pub fn parse(json: &str) -> Result<Params, PluginError> {
        let params: Params = cryptolake_plugin_sdk::parse_params(json)?;
        if interval_of(params.granularity).is_none() {
            return Err(PluginError::InvalidParams(format!(
                "granularity {} is not one of 60, 300, 900, 3600, 21600, 86400",
                params.granularity
            )));
        }
        if params.products.is_empty() {
            return Err(PluginError::InvalidParams(
                "products must name at least one product".into(),
            ));
        }
        for product in &params.products {
            let valid = product.split_once('-').is_some_and(|(base, quote)| {
                [base, quote].iter().all(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                })
            });
            if !valid {
                return Err(PluginError::InvalidParams(format!(
                    "product `{product}` must look like `BTC-USD`"
                )));
            }
        }
        Ok(params)
    }
}

/// The lake's interval name of a granularity.
pub fn interval_of(granularity: i64) -> Option<&'static str> {
    GRANULARITIES
        .iter()
        .find(|(g, _)| *g == granularity)
        .map(|(_, name)| *name)
}

fn iso(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        dates::format_date(days),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The request windows for `params` over `window`. The window needs a start;
/// an open end stops at yesterday (UTC), the last complete day, given
/// `today` in days since the epoch.
pub fn windows(params: &Params, window: &Window, today: i64) -> Result<Vec<Artifact>, PluginError> {
    let start = window
        .start
        .as_deref()
        .map(|s| {
            dates::parse_date(s).ok_or_else(|| {
                PluginError::InvalidParams(format!("window start `{s}` is not YYYY-MM-DD"))
            })
        })
        .transpose()?
        .ok_or_else(|| {
            PluginError::InvalidParams(
                "the Coinbase API has no listing: give the window a start".into(),
            )
        })?;
    let end = match window.end.as_deref() {
        Some(e) => dates::parse_date(e).ok_or_else(|| {
            PluginError::InvalidParams(format!("window end `{e}` is not YYYY-MM-DD"))
        })?,
        None => today - 1,
    };
    let g = params.granularity;
    let interval = interval_of(g).unwrap_or("?");
    let span = MAX_CANDLES * g;
    let base = params.api_url.trim_end_matches('/');
    let mut artifacts = Vec::new();
    for product in &params.products {
        for day in start..=end.min(today - 1) {
            let date = dates::format_date(day);
            let day_start = day * 86_400;
            let mut from = day_start;
            let mut chunk = 0;
            while from < day_start + 86_400 {
                let to = (from + span).min(day_start + 86_400);
                // `end` is the start of the last candle: windows never overlap.
                let last = to - g;
                artifacts.push(Artifact {
                    key: format!("coinbase/candles/{product}/{g}/{date}/{product}-{interval}-{date}-{chunk:02}.json"),
                    url: format!(
                        "{base}/products/{product}/candles?granularity={g}&start={}&end={}",
                        iso(from),
                        iso(last)
                    ),
                    s3: None,
                    size: None,
                    last_modified: None,
                    etag: None,
                    checksum: ChecksumSource::None,
                    compression: Compression::None,
                    partition: PartitionValues {
                        exchange: "coinbase".to_owned(),
                        market: "spot".to_owned(),
                        data_type: "candles".to_owned(),
                        symbol: product.clone(),
                        interval: Some(interval.to_owned()),
                        period: date.clone(),
                    },
                });
                from = to;
                chunk += 1;
            }
        }
    }
    Ok(artifacts)
}

/// The `[start, end]` candle starts (seconds) a window's URL asks for.
fn requested_range(url: &str) -> Option<(i64, i64)> {
    let query = url.split_once('?')?.1;
    let mut start = None;
    let mut end = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("start", v)) => start = parse_iso(v),
            Some(("end", v)) => end = parse_iso(v),
            _ => {}
        }
    }
    Some((start?, end?))
}

fn parse_iso(text: &str) -> Option<i64> {
    let date = dates::parse_date(text.get(0..10)?)?;
    let h: i64 = text.get(11..13)?.parse().ok()?;
    let m: i64 = text.get(14..16)?.parse().ok()?;
    let s: i64 = text.get(17..19)?.parse().ok()?;
    Some(date * 86_400 + h * 3600 + m * 60 + s)
}

/// Decodes one API answer into ascending candles within the requested range.
pub fn decode(body: &[u8], range: Option<(i64, i64)>) -> Result<Batch, PluginError> {
    let rows: Vec<Vec<f64>> = serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        PluginError::malformed(
            None,
            format!("expected an array of candles: {e}; the answer starts with `{text}`"),
        )
    })?;
    let mut candles: Vec<[f64; 6]> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let candle: [f64; 6] = row.as_slice().try_into().map_err(|_| {
            PluginError::malformed(
                Some(i as u64 + 1),
                format!("candle has {} fields, expected 6", row.len()),
            )
        })?;
        if candle[0].fract() != 0.0 || candle.iter().any(|v| !v.is_finite()) {
            return Err(PluginError::malformed(
                Some(i as u64 + 1),
                "candle time is not whole seconds".to_owned(),
            ));
        }
        candles.push(candle);
    }
    // The API answers newest first; the lake wants time order, once each.
    candles.sort_by(|a, b| a[0].total_cmp(&b[0]));
    candles.dedup_by(|a, b| a[0] == b[0]);
    if let Some((start, end)) = range {
        candles.retain(|c| (start..=end).contains(&(c[0] as i64)));
    }
    let mut time = ColumnBuilder::<i64>::with_capacity(candles.len());
    let mut cols: [ColumnBuilder<f64>; 5] = Default::default();
    for c in &candles {
        time.push(c[0] as i64 * 1_000_000);
        // [time, low, high, open, close, volume] → open, high, low, close, volume
        for (builder, index) in cols.iter_mut().zip([3, 2, 1, 4, 5]) {
            builder.push(c[index]);
        }
    }
    let [open, high, low, close, volume] = &mut cols;
    Ok(columns::batch(vec![
        time.finish_timestamp_us("open_time"),
        open.finish_float64("open"),
        high.finish_float64("high"),
        low.finish_float64("low"),
        close.finish_float64("close"),
        volume.finish_float64("volume"),
    ]))
}

/// The exported plugin.
pub struct CoinbaseSource;

impl Guest for CoinbaseSource {
    type Decoder = CandleDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "coinbase".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Coinbase Exchange public candles (/products/{id}/candles).".to_owned(),
            params_schema: SCHEMA.to_owned(),
        }
    }

    fn discover(params: String, window: Window) -> Result<Vec<Artifact>, PluginError> {
        let params = Params::parse(&params)?;
        windows(&params, &window, dates::date_of_micros(host::now_us()))
    }
}

/// One window's answer so far, and the range it asked for.
#[derive(Default)]
pub struct Answer {
    body: Vec<u8>,
    range: Option<(i64, i64)>,
}

/// Accumulates one window's answer (at most 300 candles) and decodes it at the end.
pub struct CandleDecoder(RefCell<Answer>);

impl GuestDecoder for CandleDecoder {
    fn open(params: String, artifact: Artifact) -> Result<Decoder, PluginError> {
        Params::parse(&params)?;
        Ok(Decoder::new(CandleDecoder(RefCell::new(Answer {
            body: Vec::new(),
            range: requested_range(&artifact.url),
        }))))
    }

    fn push(&self, chunk: Vec<u8>) -> Result<Vec<Batch>, PluginError> {
        let mut state = self.0.borrow_mut();
        if state.body.len() + chunk.len() > 16 << 20 {
            return Err(PluginError::malformed(
                None,
                "a candles answer larger than 16 MiB".to_owned(),
            ));
        }
        state.body.extend_from_slice(&chunk);
        Ok(Vec::new())
    }

    fn finish(&self) -> Result<Vec<Batch>, PluginError> {
        let state = self.0.borrow();
        let batch = decode(&state.body, state.range)?;
        Ok(if batch.rows == 0 {
            Vec::new()
        } else {
            vec![batch]
        })
    }
}

#[cfg(target_arch = "wasm32")]
cryptolake_plugin_sdk::export_source_plugin!(CoinbaseSource);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        Params::parse(json).unwrap()
    }

    #[test]
    fn one_minute_days_split_into_five_windows_without_overlap() {
        let p = params(r#"{"products":["BTC-USD"],"api_url":"http://api"}"#);
        let w = Window {
            start: Some("2024-01-01".into()),
            end: Some("2024-01-01".into()),
        };
        let a = windows(&p, &w, 20_000).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(
            a[0].url,
            "http://api/products/BTC-USD/candles?granularity=60&start=2024-01-01T00:00:00Z&end=2024-01-01T04:59:00Z"
        );
        assert!(
            a[4].url
                .ends_with("start=2024-01-01T20:00:00Z&end=2024-01-01T23:59:00Z")
        );
        assert_eq!(a[0].partition.period, "2024-01-01");
        assert_eq!(a[0].partition.interval.as_deref(), Some("1m"));
        assert!(a[0].key.ends_with("BTC-USD-1m-2024-01-01-00.json"));
    }

    #[test]
    fn open_windows_stop_at_yesterday() {
        let p = params(r#"{"products":["ETH-USD"],"granularity":86400}"#);
        let today = dates::parse_date("2024-03-10").unwrap();
        let w = Window {
            start: Some("2024-03-07".into()),
            end: None,
        };
        let a = windows(&p, &w, today).unwrap();
        let periods: Vec<&str> = a.iter().map(|x| x.partition.period.as_str()).collect();
        assert_eq!(periods, ["2024-03-07", "2024-03-08", "2024-03-09"]);
        assert!(
            windows(
                &p,
                &Window {
                    start: None,
                    end: None
                },
                today
            )
            .is_err()
        );
    }

    #[test]
    fn answers_are_reordered_and_mapped_from_low_high_open_close() {
        let body = br#"[[1704067260, 41990.5, 42010, 42000, 42005.25, 1.5],
                        [1704067200, 41980, 42001, 41985, 42000, 2.25]]"#;
        let b = decode(body, Some((1_704_067_200, 1_704_067_260))).unwrap();
        assert_eq!(
            b.column("open_time").unwrap().as_timestamp_us().unwrap(),
            &[1_704_067_200_000_000, 1_704_067_260_000_000]
        );
        assert_eq!(
            b.column("open").unwrap().as_float64().unwrap(),
            &[41985.0, 42000.0]
        );
        assert_eq!(
            b.column("low").unwrap().as_float64().unwrap(),
            &[41980.0, 41990.5]
        );
        assert_eq!(
            b.column("high").unwrap().as_float64().unwrap(),
            &[42001.0, 42010.0]
        );
        assert_eq!(
            b.column("close").unwrap().as_float64().unwrap(),
            &[42000.0, 42005.25]
        );
    }

    #[test]
    fn rows_outside_the_window_and_bad_answers() {
        let body = b"[[1704067140, 1, 2, 1, 2, 1], [1704067200, 1, 2, 1, 2, 1]]";
        assert_eq!(
            decode(body, Some((1_704_067_200, 1_704_067_260)))
                .unwrap()
                .rows,
            1
        );
        assert!(decode(br#"{"message":"rate limited"}"#, None).is_err());
        assert!(
            matches!(decode(b"[[1, 2, 3]]", None), Err(PluginError::MalformedInput(m)) if m.line == Some(1))
        );
    }

    #[test]
    fn params_are_checked() {
        assert!(Params::parse(r#"{"products":["BTC-USD"],"granularity":120}"#).is_err());
        assert!(Params::parse(r#"{"products":["btc-usd"]}"#).is_err());
        assert!(Params::parse(r#"{"products":[]}"#).is_err());
    }
}
