//! What the benchmarks share.

/// The partition of a Binance spot 1s kline day, as the SDK's or the host's
/// type (`partition_of!(cryptolake_plugin_sdk)`, `partition_of!(host)`).
macro_rules! partition_of {
    ($types:path) => {{
        use $types as t;
        t::PartitionValues {
            exchange: "binance".into(),
            market: "spot".into(),
            data_type: "klines".into(),
            symbol: "BTCUSDT".into(),
            interval: Some("1s".into()),
            period: "2025-01".into(),
        }
    }};
}
