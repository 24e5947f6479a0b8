//! An example transform, written as a third-party author would: it depends on
//! the guest SDK only, builds with `cargo build --target wasm32-wasip2
//! --release`, and drops bars whose volume is zero (exchanges publish such
//! bars for minutes without trades, e.g. during halts).
//!
//! Params: `{ "column": "volume" }` (the default) names the volume column.

use std::cell::RefCell;

use cryptolake_plugin_sdk::columns;
use cryptolake_plugin_sdk::transform::{Guest, GuestTransformer, Transformer};
use cryptolake_plugin_sdk::{Batch, PartitionValues, PluginError, PluginInfo};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_column")]
    column: String,
}

fn default_column() -> String {
    "volume".to_owned()
}

/// Drops the rows of `batch` whose `column` is zero. Nulls are kept: an
/// unknown volume is not a zero volume.
pub fn drop_zero_volume(batch: Batch, column: &str) -> Result<Batch, PluginError> {
    let volumes = batch
        .column(column)
        .ok_or_else(|| PluginError::InvalidParams(format!("the input has no `{column}` column")))?;
    let values = volumes
        .as_float64()
        .ok_or_else(|| PluginError::InvalidParams(format!("column `{column}` must be float64")))?;
    let keep: Vec<bool> = values
        .iter()
        .enumerate()
        .map(|(i, v)| *v != 0.0 || volumes.nulls.as_ref().is_some_and(|n| n[i]))
        .collect();
    Ok(columns::filter(batch, &keep))
}

/// The plugin.
pub struct ZeroVolumeFilter;

impl Guest for ZeroVolumeFilter {
    type Transformer = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "zero-volume-filter".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Drops bars with zero volume.".to_owned(),
            params_schema: r#"{"type":"object","additionalProperties":false,"properties":{"column":{"type":"string","default":"volume"}}}"#.to_owned(),
        }
    }
}

/// One artifact's stream.
pub struct Stream(RefCell<String>);

impl GuestTransformer for Stream {
    fn open(params: String, _partition: PartitionValues) -> Result<Transformer, PluginError> {
        let params: Params = cryptolake_plugin_sdk::parse_params(&params)?;
        Ok(Transformer::new(Stream(RefCell::new(params.column))))
    }

    fn push(&self, input: Batch) -> Result<Vec<Batch>, PluginError> {
        Ok(vec![drop_zero_volume(input, &self.0.borrow())?])
    }

    fn finish(&self) -> Result<Vec<Batch>, PluginError> {
        Ok(Vec::new())
    }
}

#[cfg(target_arch = "wasm32")]
cryptolake_plugin_sdk::export_transform_plugin!(ZeroVolumeFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use cryptolake_plugin_sdk::columns::ColumnBuilder;

    #[test]
    fn zero_volume_rows_are_dropped_and_nulls_kept() {
        let mut v = ColumnBuilder::<f64>::default();
        v.push(0.0);
        v.push(2.0);
        v.push_null();
        let mut t = ColumnBuilder::<i64>::default();
        (1..=3).for_each(|i| t.push(i));
        let batch = columns::batch(vec![
            t.finish_timestamp_us("open_time"),
            v.finish_float64("volume"),
        ]);
        let out = drop_zero_volume(batch, "volume").unwrap();
        assert_eq!(out.rows, 2);
        assert_eq!(
            out.column("open_time").unwrap().as_timestamp_us(),
            Some(&[2, 3][..])
        );
    }
}
