//! Writing one row group of `ohlcv` rows (262,144 rows, the shape and value
//! distribution of a Binance 1s kline day) as zstd Parquet through the lake's
//! writer: Arrow conversion, encoding, statistics and compression, with the
//! default settings and the two alternatives `[lake.parquet]` offers.
//!
//! Run: `cargo bench -p cryptolake-bench --bench lake`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cryptolake::config::{FloatEncoding, ParquetConfig};
use cryptolake::early_sync::EarlySync;
use cryptolake::lake::parquet::{ParquetSink, ROW_GROUP_ROWS};
use cryptolake::wit::{Batch, Column, ColumnValues, DictionaryUtf8};

#[macro_use]
mod common;

/// A small deterministic generator (xorshift64*), so every run writes the
/// same values.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// What the `ohlcv` transform emits for a 1s kline file: a random walk of
/// cent-rounded prices, 8-decimal volumes, small trade counts.
fn ohlcv_batch(rows: usize) -> Batch {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = 1_735_689_600_000_000_i64;
    let mut price = 93_000.0;
    let mut columns: [Vec<f64>; 8] = Default::default();
    let mut open_time = Vec::with_capacity(rows);
    let mut trade_count = Vec::with_capacity(rows);
    for i in 0..rows {
        price = round(price + (rng.unit() - 0.5) * 10.0, 2);
        let row = [
            price,
            price + 3.0,
            price - 3.0,
            price + 1.0,
            round(rng.unit(), 8),
            round(rng.unit() * 90_000.0, 8),
            round(rng.unit() / 2.0, 8),
            round(rng.unit() * 45_000.0, 8),
        ];
        for (column, value) in columns.iter_mut().zip(row) {
            column.push(value);
        }
        open_time.push(t0 + i as i64 * 1_000_000);
        trade_count.push(1 + (rng.unit() * 300.0) as i64);
    }
    let constant = |name: &str, value: &str| Column {
        name: name.to_owned(),
        values: ColumnValues::Utf8Dict(DictionaryUtf8 {
            dictionary: vec![value.to_owned()],
            keys: vec![0; rows],
        }),
        nulls: None,
    };
    let column = |name: &str, values: ColumnValues| Column {
        name: name.to_owned(),
        values,
        nulls: None,
    };
    let [
        open,
        high,
        low,
        close,
        volume,
        quote,
        taker_base,
        taker_quote,
    ] = columns;
    Batch {
        rows: rows as u32,
        columns: vec![
            constant("exchange", "binance"),
            constant("market", "spot"),
            constant("symbol", "BTCUSDT"),
            constant("interval", "1s"),
            column("open_time", ColumnValues::TimestampUs(open_time)),
            column("open", ColumnValues::Float64(open)),
            column("high", ColumnValues::Float64(high)),
            column("low", ColumnValues::Float64(low)),
            column("close", ColumnValues::Float64(close)),
            column("volume", ColumnValues::Float64(volume)),
            column("quote_volume", ColumnValues::Float64(quote)),
            column("trade_count", ColumnValues::Int64(trade_count)),
            column("taker_buy_base_volume", ColumnValues::Float64(taker_base)),
            column("taker_buy_quote_volume", ColumnValues::Float64(taker_quote)),
        ],
    }
}

fn parquet_write(c: &mut Criterion) {
    let batch = ohlcv_batch(ROW_GROUP_ROWS);
    let partition = partition_of!(cryptolake::wit);
    let mut group = c.benchmark_group("parquet_write_ohlcv_row_group");
    group.throughput(Throughput::Elements(ROW_GROUP_ROWS as u64));
    group.measurement_time(Duration::from_secs(8));
    let default = ParquetConfig::default();
    let settings = [
        ("default", default),
        (
            "byte_stream_split",
            ParquetConfig {
                float_encoding: FloatEncoding::ByteStreamSplit,
                ..default
            },
        ),
        (
            "zstd_level_3",
            ParquetConfig {
                zstd_level: 3,
                ..default
            },
        ),
        (
            "zstd_level_minus_1",
            ParquetConfig {
                zstd_level: -1,
                ..default
            },
        ),
        (
            "zstd_level_minus_3",
            ParquetConfig {
                zstd_level: -3,
                ..default
            },
        ),
    ];
    for (name, settings) in settings {
        group.bench_function(name, |b| {
            b.iter_batched(
                || batch.clone(),
                |batch| {
                    let file = tempfile::tempfile().expect("temp file");
                    let mut sink =
                        ParquetSink::new(file, partition.clone(), settings, EarlySync::off());
                    sink.write(batch).expect("write");
                    black_box(sink.finish().expect("finish"))
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, parquet_write);
criterion_main!(benches);
