//! The third-party example (`examples/zero-volume-filter`), built against the
//! SDK only, loads from its `.wasm` file and transforms batches in the host.

use cryptolake::config::{Limits, PluginLocation};
use cryptolake::wit::{Batch, Column, ColumnValues, PluginKind};

use crate::support::{runtime, spot_btcusdt};

#[test]
fn the_example_transform_drops_zero_volume_bars() {
    let plugin = runtime::runtime()
        .load(&runtime::spec(
            "zero-volume-filter",
            PluginLocation::File(env!("CRYPTOLAKE_TEST_GUEST_ZERO_VOLUME_FILTER").into()),
            &[],
            Limits::default(),
        ))
        .expect("the example loads");
    assert_eq!(plugin.identity().kind, PluginKind::Transform);
    let partition = spot_btcusdt("1m", "2024-01-01");
    let batch = Batch {
        rows: 4,
        columns: vec![
            Column {
                name: "open_time".into(),
                values: ColumnValues::TimestampUs(vec![1, 2, 3, 4]),
                nulls: None,
            },
            Column {
                name: "volume".into(),
                values: ColumnValues::Float64(vec![0.0, 1.5, 0.0, 0.0]),
                nulls: Some(vec![false, false, false, true]),
            },
        ],
    };
    let mut session = plugin.open_transformer("{}", &partition).expect("open");
    let out = session.push(&batch).expect("push");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rows, 2);
    assert!(matches!(&out[0].columns[0].values, ColumnValues::TimestampUs(v) if v == &[2, 4]));
    assert!(session.finish().expect("finish").is_empty());

    let error = plugin
        .open_transformer(r#"{"colum": "v"}"#, &partition)
        .err()
        .expect("bad params are refused");
    assert!(error.to_string().contains("colum"), "{error}");
}
