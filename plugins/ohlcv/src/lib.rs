//! The `ohlcv` transform: one normalised bar schema across exchanges.
//!
//! Owns: mapping a source's kline columns onto the lake's `ohlcv` schema
//! (exchange, market, symbol, interval, open_time, OHLC, volumes, trade
//! count, taker-buy volumes), with nulls where a source does not know a
//! value. It must not resample or judge quality: other transforms do that.

use std::cell::RefCell;

use cryptolake_plugin_sdk::columns::{self, null_float64, null_int64};
use cryptolake_plugin_sdk::transform::{Guest, GuestTransformer, Transformer};
use cryptolake_plugin_sdk::{Batch, Column, PartitionValues, PluginError, PluginInfo};

/// Output columns, in order.
pub const OUTPUT_COLUMNS: [&str; 14] = [
    "exchange",
    "market",
    "symbol",
    "interval",
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trade_count",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
];

/// Input column → output column, for the optional numeric columns.
const OPTIONAL_FLOATS: [(&str, &str); 3] = [
    ("quote_volume", "quote_volume"),
    ("taker_buy_volume", "taker_buy_base_volume"),
    ("taker_buy_quote_volume", "taker_buy_quote_volume"),
];

const PARAMS_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ohlcv transform params",
  "type": "object",
  "additionalProperties": false,
  "properties": {}
}"#;

/// Normalises one batch of kline rows from the artifact in `partition`.
pub fn normalise(mut input: Batch, partition: &PartitionValues) -> Result<Batch, PluginError> {
    let rows = input.rows as usize;
    let interval = partition.interval.as_deref().ok_or_else(|| {
        PluginError::InvalidParams(format!(
            "ohlcv needs an interval, but artifact {} {} has none",
            partition.symbol, partition.period
        ))
    })?;
    let mut required = |name: &str, check: fn(&Column) -> bool, kind: &str| {
        let column = input.take_column(name).ok_or_else(|| {
            PluginError::InvalidParams(format!("ohlcv input has no `{name}` column"))
        })?;
        if check(&column) {
            Ok(column)
        } else {
            Err(PluginError::InvalidParams(format!(
                "ohlcv input column `{name}` must be {kind}"
            )))
        }
    };
    let is_ts = |c: &Column| c.as_timestamp_us().is_some();
    let is_f64 = |c: &Column| c.as_float64().is_some();
    let open_time = required("open_time", is_ts, "timestamp-us")?;
    let ohlcv: Vec<Column> = ["open", "high", "low", "close", "volume"]
        .into_iter()
        .map(|name| required(name, is_f64, "float64"))
        .collect::<Result<_, _>>()?;

    let mut out = Vec::with_capacity(OUTPUT_COLUMNS.len());
    out.push(columns::constant_utf8(
        "exchange",
        &partition.exchange,
        rows,
    ));
    out.push(columns::constant_utf8("market", &partition.market, rows));
    out.push(columns::constant_utf8("symbol", &partition.symbol, rows));
    out.push(columns::constant_utf8("interval", interval, rows));
    out.push(open_time);
    out.extend(ohlcv);
    out.push(optional_float(&mut input, OPTIONAL_FLOATS[0], rows)?);
    out.push(match input.take_column("count") {
        Some(c) if c.as_int64().is_some() => c.renamed("trade_count"),
        Some(_) => {
            return Err(PluginError::InvalidParams(
                "ohlcv input column `count` must be int64".to_owned(),
            ));
        }
        None => null_int64("trade_count", rows),
    });
    for names in &OPTIONAL_FLOATS[1..] {
        out.push(optional_float(&mut input, *names, rows)?);
    }
    Ok(Batch {
        rows: input.rows,
        columns: out,
    })
}

/// Takes an optional float64 column, renamed, or a column of nulls.
fn optional_float(
    input: &mut Batch,
    (from, to): (&str, &str),
    rows: usize,
) -> Result<Column, PluginError> {
    match input.take_column(from) {
        Some(c) if c.as_float64().is_some() => Ok(c.renamed(to)),
        Some(_) => Err(PluginError::InvalidParams(format!(
            "ohlcv input column `{from}` must be float64"
        ))),
        None => Ok(null_float64(to, rows)),
    }
}

/// The exported plugin.
pub struct Ohlcv;

impl Guest for Ohlcv {
    type Transformer = OhlcvStream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "ohlcv".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Normalises kline rows to the lake's ohlcv schema.".to_owned(),
            params_schema: PARAMS_SCHEMA.to_owned(),
        }
    }
}

/// A transformer resource: one artifact's stream.
pub struct OhlcvStream(RefCell<PartitionValues>);

impl GuestTransformer for OhlcvStream {
    fn open(params: String, partition: PartitionValues) -> Result<Transformer, PluginError> {
        let params: serde_json::Map<String, serde_json::Value> =
            cryptolake_plugin_sdk::parse_params(&params)?;
        if let Some(key) = params.keys().next() {
            return Err(PluginError::InvalidParams(format!(
                "ohlcv takes no params, got `{key}`"
            )));
        }
        Ok(Transformer::new(OhlcvStream(RefCell::new(partition))))
    }

    fn push(&self, input: Batch) -> Result<Vec<Batch>, PluginError> {
        Ok(vec![normalise(input, &self.0.borrow())?])
    }

    fn finish(&self) -> Result<Vec<Batch>, PluginError> {
        Ok(Vec::new())
    }
}

// Component exports exist only in the wasm build; natively the crate is a
// plain library (for unit tests and benchmarks).
#[cfg(target_arch = "wasm32")]
cryptolake_plugin_sdk::export_transform_plugin!(Ohlcv);

#[cfg(test)]
mod tests {
    use super::*;
    use cryptolake_plugin_sdk::ColumnValues;
    use cryptolake_plugin_sdk::columns::ColumnBuilder;

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

    fn floats(name: &str, v: &[f64]) -> Column {
        let mut b = ColumnBuilder::default();
        v.iter().for_each(|x| b.push(*x));
        b.finish_float64(name)
    }

    #[test]
    fn maps_columns_and_fills_unknowns_with_nulls() {
        let mut t = ColumnBuilder::default();
        t.push(1_i64);
        let input = columns::batch(vec![
            t.finish_timestamp_us("open_time"),
            floats("open", &[1.0]),
            floats("high", &[2.0]),
            floats("low", &[0.5]),
            floats("close", &[1.5]),
            floats("volume", &[10.0]),
        ]);
        let out = normalise(input, &partition()).unwrap();
        let names: Vec<&str> = out.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, OUTPUT_COLUMNS);
        assert!(
            matches!(&out.column("symbol").unwrap().values, ColumnValues::Utf8Dict(d) if d.dictionary == ["BTCUSDT"] && d.keys == [0])
        );
        assert_eq!(out.column("trade_count").unwrap().nulls, Some(vec![true]));
    }

    #[test]
    fn missing_required_column_is_invalid() {
        let e = normalise(columns::batch(vec![floats("open", &[1.0])]), &partition()).unwrap_err();
        assert!(e.to_string().contains("open_time"), "{e}");
    }
}
