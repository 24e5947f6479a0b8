//! The `resample` transform: `ohlcv` bars of a base interval into coarser
//! bars (`to`), aligned to the epoch plus an optional `offset`.
//!
//! A coarse bar takes the first open, the highest high, the lowest low, the
//! last close and the sums of the volumes and counts (null when every input
//! is null). Only complete bars are emitted: a bucket missing any base bar is
//! dropped, never reported as if whole. Input must be in time order; the open
//! bucket is carried across batch boundaries.

use std::cell::RefCell;

use cryptolake_plugin_sdk::columns::{self, ColumnBuilder};
use cryptolake_plugin_sdk::transform::{Guest, GuestTransformer, Transformer};
use cryptolake_plugin_sdk::{Batch, Column, PartitionValues, PluginError, PluginInfo, dates};
use serde::Deserialize;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "resample transform params",
  "type": "object",
  "additionalProperties": false,
  "required": ["to"],
  "properties": {
    "to": {"type": "string", "description": "target interval, e.g. 5m, 1h, 1d"},
    "offset": {"type": "string", "default": "0s", "description": "bucket alignment offset, e.g. 30m"}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    to: String,
    #[serde(default)]
    offset: Option<String>,
}

/// Microseconds of an interval such as `1s`, `5m`, `1h`, `1d`, `1w`.
fn interval_us(text: &str) -> Option<i64> {
    dates::interval_seconds(text).map(|s| s * 1_000_000)
}

/// A numeric column's values, `None` where null.
type Numbers = Vec<Option<f64>>;

/// Summed columns, in output order.
const SUMS: [&str; 5] = [
    "volume",
    "quote_volume",
    "trade_count",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
];

#[derive(Debug, Clone)]
struct Bucket {
    start: i64,
    bars: i64,
    last_time: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    sums: [Option<f64>; 5],
}

/// Resampling state for one artifact.
#[derive(Debug)]
pub struct Resampler {
    to_name: String,
    to_us: i64,
    offset_us: i64,
    base_us: i64,
    current: Option<Bucket>,
    out: Vec<Bucket>,
    /// Buckets dropped because a base bar was missing.
    pub dropped_partial: u64,
}

impl Resampler {
    /// A resampler from `base` bars to `to` bars, offset by `offset`.
    pub fn new(base: &str, to: &str, offset: Option<&str>) -> Result<Self, PluginError> {
        let base_us = interval_us(base).ok_or_else(|| {
            PluginError::InvalidParams(format!("cannot resample from interval `{base}`"))
        })?;
        let to_us = interval_us(to).ok_or_else(|| {
            PluginError::InvalidParams(format!("`to` = `{to}` is not an interval like 5m, 1h, 1d"))
        })?;
        let offset_us = match offset {
            None => 0,
            Some("0") => 0,
            Some(o) => interval_us(o).ok_or_else(|| {
                PluginError::InvalidParams(format!("`offset` = `{o}` is not an interval"))
            })?,
        };
        if to_us <= base_us || to_us % base_us != 0 {
            return Err(PluginError::InvalidParams(format!(
                "`to` = `{to}` must be a multiple of the base interval `{base}`, and coarser"
            )));
        }
        if offset_us % base_us != 0 || offset_us >= to_us {
            return Err(PluginError::InvalidParams(format!(
                "`offset` must be a multiple of `{base}` and shorter than `{to}`"
            )));
        }
        Ok(Self {
            to_name: to.to_owned(),
            to_us,
            offset_us,
            base_us,
            current: None,
            out: Vec::new(),
            dropped_partial: 0,
        })
    }

    fn close_bucket(&mut self) {
        if let Some(bucket) = self.current.take() {
            if bucket.bars == self.to_us / self.base_us {
                self.out.push(bucket);
            } else {
                self.dropped_partial += 1;
            }
        }
    }

    /// Consumes a batch of base bars; returns the coarse bars completed.
    pub fn push(
        &mut self,
        batch: &Batch,
        partition: &PartitionValues,
    ) -> Result<Option<Batch>, PluginError> {
        let floats = |name: &str| -> Result<Option<Numbers>, PluginError> {
            let Some(c) = batch.column(name) else {
                return Ok(None);
            };
            let is_null = |i: usize| c.nulls.as_ref().is_some_and(|n| n[i]);
            if let Some(v) = c.as_float64() {
                Ok(Some(
                    v.iter()
                        .enumerate()
                        .map(|(i, x)| (!is_null(i)).then_some(*x))
                        .collect(),
                ))
            } else if let Some(v) = c.as_int64() {
                Ok(Some(
                    v.iter()
                        .enumerate()
                        .map(|(i, x)| (!is_null(i)).then_some(*x as f64))
                        .collect(),
                ))
            } else {
                Err(PluginError::InvalidParams(format!(
                    "column `{name}` must be numeric"
                )))
            }
        };
        let required = |name: &str| -> Result<Vec<f64>, PluginError> {
            floats(name)?
                .ok_or_else(|| {
                    PluginError::InvalidParams(format!(
                        "resample needs a `{name}` column (run `ohlcv` first)"
                    ))
                })?
                .into_iter()
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| PluginError::malformed(None, format!("column `{name}` has nulls")))
        };
        let times = batch
            .column("open_time")
            .and_then(Column::as_timestamp_us)
            .ok_or_else(|| {
                PluginError::InvalidParams("resample needs an `open_time` timestamp column".into())
            })?
            .to_vec();
        let (open, high, low, close) = (
            required("open")?,
            required("high")?,
            required("low")?,
            required("close")?,
        );
        let sums: Vec<Option<Numbers>> =
            SUMS.iter().map(|n| floats(n)).collect::<Result<_, _>>()?;
        for i in 0..times.len() {
            let t = times[i];
            if let Some(current) = &self.current
                && t <= current.last_time
            {
                return Err(PluginError::malformed(
                    None,
                    format!(
                        "open_time {t} is not after {}: resample needs bars in time order",
                        current.last_time
                    ),
                ));
            }
            let start = (t - self.offset_us).div_euclid(self.to_us) * self.to_us + self.offset_us;
            if self.current.as_ref().is_some_and(|b| b.start != start) {
                self.close_bucket();
            }
            let value = |k: usize| -> Option<f64> { sums[k].as_ref().and_then(|v| v[i]) };
            match &mut self.current {
                None => {
                    self.current = Some(Bucket {
                        start,
                        bars: 1,
                        last_time: t,
                        open: open[i],
                        high: high[i],
                        low: low[i],
                        close: close[i],
                        sums: std::array::from_fn(value),
                    });
                }
                Some(b) => {
                    b.bars += 1;
                    b.last_time = t;
                    b.high = b.high.max(high[i]);
                    b.low = b.low.min(low[i]);
                    b.close = close[i];
                    for (k, sum) in b.sums.iter_mut().enumerate() {
                        if let Some(v) = value(k) {
                            *sum = Some(sum.unwrap_or(0.0) + v);
                        }
                    }
                }
            }
            // A bucket with all its bars is done: emit it now rather than
            // when the next bucket's first bar arrives.
            if self
                .current
                .as_ref()
                .is_some_and(|b| b.bars == self.to_us / self.base_us)
            {
                self.close_bucket();
            }
        }
        Ok(self.emit(partition))
    }

    /// Ends the stream: the last bucket is emitted if complete.
    pub fn finish(&mut self, partition: &PartitionValues) -> Option<Batch> {
        self.close_bucket();
        self.emit(partition)
    }

    fn emit(&mut self, partition: &PartitionValues) -> Option<Batch> {
        if self.out.is_empty() {
            return None;
        }
        let bars = std::mem::take(&mut self.out);
        let n = bars.len();
        let mut time = ColumnBuilder::<i64>::with_capacity(n);
        let mut ohlc: [ColumnBuilder<f64>; 4] = Default::default();
        let mut sums: [ColumnBuilder<f64>; 5] = Default::default();
        let mut count = ColumnBuilder::<i64>::with_capacity(n);
        for b in &bars {
            time.push(b.start);
            for (builder, v) in ohlc.iter_mut().zip([b.open, b.high, b.low, b.close]) {
                builder.push(v);
            }
            for (k, builder) in sums.iter_mut().enumerate() {
                if k == 2 {
                    count.push_option(b.sums[k].map(|v| v as i64));
                    builder.push_null();
                } else {
                    builder.push_option(b.sums[k]);
                }
            }
        }
        let [o, h, l, c] = &mut ohlc;
        let [volume, quote, _, taker_base, taker_quote] = &mut sums;
        Some(columns::batch(vec![
            columns::constant_utf8("exchange", &partition.exchange, n),
            columns::constant_utf8("market", &partition.market, n),
            columns::constant_utf8("symbol", &partition.symbol, n),
            columns::constant_utf8("interval", &self.to_name, n),
            time.finish_timestamp_us("open_time"),
            o.finish_float64("open"),
            h.finish_float64("high"),
            l.finish_float64("low"),
            c.finish_float64("close"),
            volume.finish_float64("volume"),
            quote.finish_float64("quote_volume"),
            count.finish_int64("trade_count"),
            taker_base.finish_float64("taker_buy_base_volume"),
            taker_quote.finish_float64("taker_buy_quote_volume"),
        ]))
    }
}

/// The exported plugin.
pub struct Resample;

impl Guest for Resample {
    type Transformer = ResampleStream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "resample".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Resamples ohlcv bars to a coarser interval; partial bars are dropped."
                .to_owned(),
            params_schema: SCHEMA.to_owned(),
        }
    }
}

/// One artifact's stream.
pub struct ResampleStream(RefCell<(Resampler, PartitionValues)>);

impl GuestTransformer for ResampleStream {
    fn open(params: String, partition: PartitionValues) -> Result<Transformer, PluginError> {
        let params: Params = cryptolake_plugin_sdk::parse_params(&params)?;
        let base = partition.interval.clone().ok_or_else(|| {
            PluginError::InvalidParams("resample needs bars with an interval".into())
        })?;
        let resampler = Resampler::new(&base, &params.to, params.offset.as_deref())?;
        Ok(Transformer::new(ResampleStream(RefCell::new((
            resampler, partition,
        )))))
    }

    fn push(&self, input: Batch) -> Result<Vec<Batch>, PluginError> {
        let mut state = self.0.borrow_mut();
        let (resampler, partition) = &mut *state;
        Ok(resampler.push(&input, partition)?.into_iter().collect())
    }

    fn finish(&self) -> Result<Vec<Batch>, PluginError> {
        let mut state = self.0.borrow_mut();
        let (resampler, partition) = &mut *state;
        let out = resampler.finish(partition).into_iter().collect();
        cryptolake_plugin_sdk::host::counter_add("partial_bars_dropped", resampler.dropped_partial);
        Ok(out)
    }
}

#[cfg(target_arch = "wasm32")]
cryptolake_plugin_sdk::export_transform_plugin!(Resample);

#[cfg(test)]
mod tests {
    use super::*;

    fn partition() -> PartitionValues {
        PartitionValues {
            exchange: "binance".into(),
            market: "spot".into(),
            data_type: "klines".into(),
            symbol: "BTCUSDT".into(),
            interval: Some("1m".into()),
            period: "2024-01-01".into(),
        }
    }

    fn minutes(range: std::ops::Range<i64>) -> Batch {
        let mut t = ColumnBuilder::<i64>::default();
        let mut cols: [ColumnBuilder<f64>; 5] = Default::default();
        for m in range {
            t.push(m * 60_000_000);
            let p = 100.0 + m as f64;
            for (c, v) in cols.iter_mut().zip([p, p + 2.0, p - 1.0, p + 0.5, 1.0]) {
                c.push(v);
            }
        }
        let [o, h, l, c, v] = &mut cols;
        columns::batch(vec![
            t.finish_timestamp_us("open_time"),
            o.finish_float64("open"),
            h.finish_float64("high"),
            l.finish_float64("low"),
            c.finish_float64("close"),
            v.finish_float64("volume"),
        ])
    }

    #[test]
    fn five_minute_bars_across_batch_boundaries() {
        let mut r = Resampler::new("1m", "5m", None).unwrap();
        let p = partition();
        let first = r.push(&minutes(0..7), &p).unwrap().unwrap();
        assert_eq!(first.rows, 1);
        let second = r.push(&minutes(7..10), &p).unwrap().unwrap();
        assert_eq!(
            second
                .column("open_time")
                .unwrap()
                .as_timestamp_us()
                .unwrap(),
            &[300_000_000]
        );
        assert_eq!(
            second.column("open").unwrap().as_float64().unwrap(),
            &[105.0]
        );
        assert_eq!(
            second.column("high").unwrap().as_float64().unwrap(),
            &[111.0]
        );
        assert_eq!(
            second.column("low").unwrap().as_float64().unwrap(),
            &[104.0]
        );
        assert_eq!(
            second.column("close").unwrap().as_float64().unwrap(),
            &[109.5]
        );
        assert_eq!(
            second.column("volume").unwrap().as_float64().unwrap(),
            &[5.0]
        );
        assert!(r.finish(&p).is_none());
    }

    #[test]
    fn partial_bars_are_dropped_and_offsets_shift_buckets() {
        let mut r = Resampler::new("1m", "5m", Some("2m")).unwrap();
        let p = partition();
        // Buckets start at 2, 7, 12: minutes 0..1 are a partial bucket, 2..6 whole, 7..9 partial.
        let out = r.push(&minutes(0..10), &p).unwrap().unwrap();
        assert_eq!(
            out.column("open_time").unwrap().as_timestamp_us().unwrap(),
            &[120_000_000]
        );
        assert!(r.finish(&p).is_none());
        assert_eq!(r.dropped_partial, 2);
    }

    #[test]
    fn bad_params_and_out_of_order_input() {
        assert!(Resampler::new("1m", "90s", None).is_err());
        assert!(Resampler::new("5m", "1m", None).is_err());
        assert!(Resampler::new("1m", "1h", Some("1h")).is_err());
        let mut r = Resampler::new("1m", "5m", None).unwrap();
        let p = partition();
        r.push(&minutes(3..4), &p).unwrap();
        assert!(r.push(&minutes(2..3), &p).is_err());
    }
}
