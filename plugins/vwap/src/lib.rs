//! The `vwap` enrichment transform over `ohlcv` rows.
//!
//! Adds `vwap` (quote volume / volume, clipped to [low, high]; the open when
//! the volume is zero; null when the quote volume is unknown), and
//! `return_simple` / `return_log` from the previous bar's close. The previous
//! close is carried across batch boundaries; the first bar of an artifact has
//! no previous close and gets null returns. It must not reorder or drop rows.

use std::cell::RefCell;

use cryptolake_plugin_sdk::columns::ColumnBuilder;
use cryptolake_plugin_sdk::transform::{Guest, GuestTransformer, Transformer};
use cryptolake_plugin_sdk::{Batch, Column, PartitionValues, PluginError, PluginInfo};

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "vwap transform params",
  "type": "object",
  "additionalProperties": false,
  "properties": {}
}"#;

/// Columns this transform adds.
pub const ADDED: [&str; 3] = ["vwap", "return_simple", "return_log"];

/// Values of a float column with its nulls as `None`.
fn floats(batch: &Batch, name: &str) -> Result<Vec<Option<f64>>, PluginError> {
    let column = batch.column(name).ok_or_else(|| {
        PluginError::InvalidParams(format!("vwap needs a `{name}` column (run `ohlcv` first)"))
    })?;
    let values = column
        .as_float64()
        .ok_or_else(|| PluginError::InvalidParams(format!("column `{name}` must be float64")))?;
    Ok(values
        .iter()
        .enumerate()
        .map(|(i, v)| (!column.nulls.as_ref().is_some_and(|n| n[i])).then_some(*v))
        .collect())
}

/// Enriches one batch; `previous_close` carries the last close across calls.
pub fn enrich(mut batch: Batch, previous_close: &mut Option<f64>) -> Result<Batch, PluginError> {
    let [open, high, low, close, volume] =
        ["open", "high", "low", "close", "volume"].map(|name| floats(&batch, name));
    let (open, high, low, close, volume) = (open?, high?, low?, close?, volume?);
    let quote_volume = match batch.column("quote_volume") {
        Some(_) => floats(&batch, "quote_volume")?,
        None => vec![None; batch.rows as usize],
    };
    let rows = batch.rows as usize;
    let mut vwap = ColumnBuilder::<f64>::with_capacity(rows);
    let mut simple = ColumnBuilder::<f64>::with_capacity(rows);
    let mut log = ColumnBuilder::<f64>::with_capacity(rows);
    for i in 0..rows {
        let value = match (volume[i], quote_volume[i], open[i], low[i], high[i]) {
            (Some(0.0), _, Some(o), _, _) => Some(o),
            (Some(v), Some(q), _, Some(l), Some(h)) if v > 0.0 && l <= h => {
                Some((q / v).clamp(l, h))
            }
            _ => None,
        };
        vwap.push_option(value);
        let (r_simple, r_log) = match (*previous_close, close[i]) {
            (Some(p), Some(c)) if p > 0.0 && c > 0.0 => (Some(c / p - 1.0), Some((c / p).ln())),
            _ => (None, None),
        };
        simple.push_option(r_simple);
        log.push_option(r_log);
        if close[i].is_some() {
            *previous_close = close[i];
        }
    }
    batch.columns.retain(|c| !ADDED.contains(&c.name.as_str()));
    let added: [Column; 3] = [
        vwap.finish_float64("vwap"),
        simple.finish_float64("return_simple"),
        log.finish_float64("return_log"),
    ];
    batch.columns.extend(added);
    Ok(batch)
}

/// The exported plugin.
pub struct Vwap;

impl Guest for Vwap {
    type Transformer = VwapStream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "vwap".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description:
                "Adds VWAP (clipped to the bar's range) and simple and log returns to ohlcv rows."
                    .to_owned(),
            params_schema: SCHEMA.to_owned(),
        }
    }
}

/// One artifact's stream; remembers the last close.
pub struct VwapStream(RefCell<Option<f64>>);

impl GuestTransformer for VwapStream {
    fn open(params: String, _partition: PartitionValues) -> Result<Transformer, PluginError> {
        let params: serde_json::Map<String, serde_json::Value> =
            cryptolake_plugin_sdk::parse_params(&params)?;
        if let Some(key) = params.keys().next() {
            return Err(PluginError::InvalidParams(format!(
                "vwap takes no params, got `{key}`"
            )));
        }
        Ok(Transformer::new(VwapStream(RefCell::new(None))))
    }

    fn push(&self, input: Batch) -> Result<Vec<Batch>, PluginError> {
        Ok(vec![enrich(input, &mut self.0.borrow_mut())?])
    }

    fn finish(&self) -> Result<Vec<Batch>, PluginError> {
        Ok(Vec::new())
    }
}

#[cfg(target_arch = "wasm32")]
cryptolake_plugin_sdk::export_transform_plugin!(Vwap);

#[cfg(test)]
mod tests {
    use super::*;
    use cryptolake_plugin_sdk::columns;

    fn col(name: &str, values: &[f64]) -> Column {
        let mut b = ColumnBuilder::default();
        values.iter().for_each(|v| b.push(*v));
        b.finish_float64(name)
    }

    fn bars(close: &[f64], volume: &[f64], quote: &[f64]) -> Batch {
        let n = close.len();
        columns::batch(vec![
            col("open", &vec![100.0; n]),
            col("high", &vec![110.0; n]),
            col("low", &vec![90.0; n]),
            col("close", close),
            col("volume", volume),
            col("quote_volume", quote),
        ])
    }

    #[test]
    fn vwap_is_clipped_and_open_on_zero_volume() {
        let out = enrich(
            bars(
                &[100.0, 105.0, 95.0],
                &[2.0, 0.0, 1.0],
                &[205.0, 0.0, 500.0],
            ),
            &mut None,
        )
        .unwrap();
        assert_eq!(
            out.column("vwap").unwrap().as_float64().unwrap(),
            &[102.5, 100.0, 110.0]
        );
    }

    #[test]
    fn returns_carry_the_last_close_across_batches() {
        let mut previous = None;
        let first = enrich(
            bars(&[100.0, 110.0], &[1.0, 1.0], &[100.0, 110.0]),
            &mut previous,
        )
        .unwrap();
        assert_eq!(
            first.column("return_simple").unwrap().nulls,
            Some(vec![true, false])
        );
        let second = enrich(bars(&[99.0], &[1.0], &[99.0]), &mut previous).unwrap();
        let r = second
            .column("return_simple")
            .unwrap()
            .as_float64()
            .unwrap()[0];
        assert!((r - (99.0 / 110.0 - 1.0)).abs() < 1e-12);
        let l = second.column("return_log").unwrap().as_float64().unwrap()[0];
        assert!((l - (99.0_f64 / 110.0).ln()).abs() < 1e-12);
    }

    #[test]
    fn unknown_quote_volume_gives_null_vwap() {
        let mut batch = bars(&[100.0], &[1.0], &[1.0]);
        batch.take_column("quote_volume");
        let out = enrich(batch, &mut None).unwrap();
        assert_eq!(out.column("vwap").unwrap().nulls, Some(vec![true]));
    }
}
