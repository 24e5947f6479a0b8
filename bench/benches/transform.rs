//! The `ohlcv` transform on 100k-row batches: through the WASM plugin (as
//! the agent runs it: lower the batch into the sandbox, transform, lift the
//! result back, validate) versus the same Rust function compiled natively.
//!
//! And the Binance kline decoder on 100k CSV lines (µs timestamps), through
//! the WASM plugin versus natively.
//!
//! Run: `cargo bench -p cryptolake-bench --bench transform`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cryptolake::config::{Limits, PluginLocation, PluginSpec};
use cryptolake::plugin::{DecoderSession, Runtime};
use cryptolake::wit as host;
use cryptolake_plugin_sdk as sdk;

#[macro_use]
mod common;

const ROWS: usize = 100_000;

/// Column values shared by both representations.
struct Klines {
    open_time: Vec<i64>,
    prices: [Vec<f64>; 5],
    close_time: Vec<i64>,
    quote_volume: Vec<f64>,
    count: Vec<i64>,
    taker_buy_volume: Vec<f64>,
    taker_buy_quote_volume: Vec<f64>,
}

fn klines() -> Klines {
    let t0 = 1_735_689_600_000_000_i64;
    let f = |k: f64| {
        (0..ROWS)
            .map(|i| 40_000.0 + k + i as f64 * 0.01)
            .collect::<Vec<_>>()
    };
    Klines {
        open_time: (0..ROWS as i64).map(|i| t0 + i * 1_000_000).collect(),
        prices: [f(0.0), f(1.0), f(-1.0), f(0.5), f(10.0)],
        close_time: (0..ROWS as i64)
            .map(|i| t0 + i * 1_000_000 + 999_999)
            .collect(),
        quote_volume: f(100.0),
        count: (0..ROWS as i64).collect(),
        taker_buy_volume: f(5.0),
        taker_buy_quote_volume: f(50.0),
    }
}

const NAMES: [&str; 11] = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
];

macro_rules! batch_of {
    ($k:expr, $types:path) => {{
        use $types as t;
        let k = $k;
        let col = |name: &str, values: t::ColumnValues| t::Column {
            name: name.to_owned(),
            values,
            nulls: None,
        };
        t::Batch {
            rows: ROWS as u32,
            columns: vec![
                col(NAMES[0], t::ColumnValues::TimestampUs(k.open_time.clone())),
                col(NAMES[1], t::ColumnValues::Float64(k.prices[0].clone())),
                col(NAMES[2], t::ColumnValues::Float64(k.prices[1].clone())),
                col(NAMES[3], t::ColumnValues::Float64(k.prices[2].clone())),
                col(NAMES[4], t::ColumnValues::Float64(k.prices[3].clone())),
                col(NAMES[5], t::ColumnValues::Float64(k.prices[4].clone())),
                col(NAMES[6], t::ColumnValues::TimestampUs(k.close_time.clone())),
                col(NAMES[7], t::ColumnValues::Float64(k.quote_volume.clone())),
                col(NAMES[8], t::ColumnValues::Int64(k.count.clone())),
                col(
                    NAMES[9],
                    t::ColumnValues::Float64(k.taker_buy_volume.clone()),
                ),
                col(
                    NAMES[10],
                    t::ColumnValues::Float64(k.taker_buy_quote_volume.clone()),
                ),
            ],
        }
    }};
}

/// The plugin runtime (and the Tokio runtime its HTTP would use) with a
/// built-in plugin loaded, never recycled, so iterations measure calls only.
fn load_builtin(
    name: &str,
) -> (
    tokio::runtime::Runtime,
    Runtime,
    std::sync::Arc<cryptolake::plugin::Plugin>,
) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new(
        None,
        cryptolake::transfer::http_client().expect("http client"),
        tokio.handle().clone(),
    )
    .expect("runtime");
    let spec = PluginSpec {
        name: name.into(),
        location: PluginLocation::Builtin(name.into()),
        sha256: None,
        allowed_hosts: Vec::new(),
        limits: Limits {
            recycle_after_calls: u64::MAX,
            ..Limits::default()
        },
    };
    let plugin = runtime.load(&spec).expect("built-in plugin loads");
    (tokio, runtime, plugin)
}

fn transform(c: &mut Criterion) {
    // The allocator policy of the agent's `main`: both sides allocate
    // megabytes of columns per iteration, which glibc's defaults would
    // fault in afresh every time (this group runs first, before any other
    // thread starts).
    cryptolake::memory::keep_freed_memory();
    let k = klines();
    let native_batch: sdk::Batch = batch_of!(&k, sdk);
    let host_batch: host::Batch = batch_of!(&k, host);
    let native_partition: sdk::PartitionValues = partition_of!(sdk);
    let host_partition: host::PartitionValues = partition_of!(host);

    let (_tokio, _runtime, plugin) = load_builtin("ohlcv");
    let mut session = plugin
        .open_transformer("{}", &host_partition)
        .expect("open");

    let mut group = c.benchmark_group("ohlcv_100k_rows");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("native", |b| {
        b.iter(|| {
            let out = cryptolake_plugin_ohlcv::normalise(
                black_box(native_batch.clone()),
                &native_partition,
            );
            black_box(out.expect("normalise"))
        })
    });
    group.bench_function("wasm", |b| {
        b.iter(|| black_box(session.push(black_box(&host_batch)).expect("push")))
    });
    group.finish();
}

/// 100k kline lines as Binance spot files have them since 2025.
fn kline_csv() -> Vec<u8> {
    let mut csv = String::with_capacity(ROWS * 130);
    let t0 = 1_735_689_600_000_000_i64;
    for i in 0..ROWS as i64 {
        let t = t0 + i * 1_000_000;
        let p = 93_000.0 + (i % 1000) as f64 * 0.01;
        csv.push_str(&format!(
            "{t},{p:.2},{:.2},{:.2},{:.2},0.51234000,{},47650.12345678,{},0.25000000,23250.50000000,0\n",
            p + 3.0,
            p - 3.0,
            p + 1.0,
            t + 999_999,
            i % 300
        ));
    }
    csv.into_bytes()
}

/// A decoder as the benchmark drives it: the native one or the plugin's.
trait Decode {
    /// Rows of the batches one chunk completes.
    fn push_rows(&mut self, chunk: &[u8]) -> u32;
    /// Rows of the batches the end of input flushes.
    fn finish_rows(self) -> u32;
}

impl Decode for cryptolake_plugin_binance::decoder::CsvDecoder {
    fn push_rows(&mut self, chunk: &[u8]) -> u32 {
        self.push(chunk).expect("push").iter().map(|b| b.rows).sum()
    }
    fn finish_rows(mut self) -> u32 {
        self.finish().expect("finish").iter().map(|b| b.rows).sum()
    }
}

impl Decode for DecoderSession {
    fn push_rows(&mut self, chunk: &[u8]) -> u32 {
        self.push(chunk).expect("push").iter().map(|b| b.rows).sum()
    }
    fn finish_rows(self) -> u32 {
        self.finish().expect("finish").iter().map(|b| b.rows).sum()
    }
}

/// Feeds `csv` to `decoder` in the host's 1 MiB chunks; the rows decoded.
fn decode_all(csv: &[u8], mut decoder: impl Decode) -> u32 {
    let rows: u32 = csv.chunks(1 << 20).map(|c| decoder.push_rows(c)).sum();
    rows + decoder.finish_rows()
}

fn decode(c: &mut Criterion) {
    let csv = kline_csv();
    let (_tokio, _runtime, plugin) = load_builtin("binance");
    let native_partition: sdk::PartitionValues = partition_of!(sdk);
    let artifact = host::Artifact {
        key: "data/spot/monthly/klines/BTCUSDT/1s/BTCUSDT-1s-2025-01.zip".into(),
        url: "http://127.0.0.1/x".into(),
        s3: None,
        size: None,
        last_modified: None,
        etag: None,
        checksum: host::ChecksumSource::None,
        compression: host::Compression::Zip,
        partition: partition_of!(host),
    };
    let params = r#"{"symbols":["BTCUSDT"],"interval":"1s"}"#;
    let mut group = c.benchmark_group("binance_decode_100k_lines");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("native", |b| {
        b.iter(|| {
            black_box(decode_all(
                &csv,
                cryptolake_plugin_binance::decoder::CsvDecoder::new(
                    cryptolake_plugin_binance::datatypes::KLINES,
                    cryptolake_plugin_binance::params::DEFAULT_BATCH_ROWS,
                )
                .checking(
                    cryptolake_plugin_binance::rows::RowChecks::for_artifact(
                        cryptolake_plugin_binance::datatypes::KLINES,
                        &native_partition,
                    ),
                ),
            ))
        })
    });
    group.bench_function("wasm", |b| {
        b.iter(|| {
            let decoder = plugin.open_decoder(params, &artifact).expect("open");
            black_box(decode_all(&csv, decoder))
        })
    });
    // What the rows' checks against the artifact cost.
    let unchecked = r#"{"symbols":["BTCUSDT"],"interval":"1s","check_rows":false}"#;
    group.bench_function("wasm_unchecked", |b| {
        b.iter(|| {
            let decoder = plugin.open_decoder(unchecked, &artifact).expect("open");
            black_box(decode_all(&csv, decoder))
        })
    });
    group.finish();
}

criterion_group!(benches, transform, decode);
criterion_main!(benches);
