//! Writing plugin batches as Parquet.
//!
//! Owns: converting WIT batches to Arrow (timestamps as `timestamp[us, UTC]`,
//! null masks as validity), holding one schema per file, moving partition
//! columns into the path (checking their values match it), and the writer
//! settings: zstd (per float column, the configured level or its fast mode:
//! the fast mode where it compresses the column's first values as small, or
//! where the level barely compresses them), 256k-row groups, column
//! statistics. It must not choose file names or publish files:
//! [`super::Lake`] does that.

use std::fs::File;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::layout::PARTITION_COLUMNS;
use crate::config::{FloatEncoding, IntegerEncoding, ParquetConfig};
use crate::early_sync::EarlySync;
use crate::wit::{Batch, ColumnValues, PartitionValues};

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Writes batches into one Parquet file.
pub struct ParquetSink {
    file: File,
    settings: ParquetConfig,
    writer: Option<ArrowWriter<File>>,
    schema: Option<SchemaRef>,
    partition: PartitionValues,
    rows: u64,
    early_sync: EarlySync,
}

impl ParquetSink {
    /// A sink writing into `file`, for rows of `partition`, syncing the
    /// file as it grows as `early_sync` says.
    pub fn new(
        file: File,
        partition: PartitionValues,
        settings: ParquetConfig,
        early_sync: EarlySync,
    ) -> Self {
        Self {
            file,
            settings,
            writer: None,
            schema: None,
            partition,
            rows: 0,
            early_sync,
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends a batch. The first batch fixes the schema; later ones must
    /// have the same column names and types.
    pub fn write(&mut self, batch: Batch) -> Result<(), String> {
        if batch.rows == 0 {
            return Ok(());
        }
        let rows = batch.rows;
        let record = self.to_record_batch(batch)?;
        match &self.schema {
            None => {
                let writer = ArrowWriter::try_new(
                    self.file.try_clone().map_err(|e| e.to_string())?,
                    record.schema(),
                    Some(properties(&record, self.settings)),
                )
                .map_err(|e| e.to_string())?;
                self.schema = Some(record.schema());
                self.writer = Some(writer);
            }
            Some(schema) if *schema != record.schema() => {
                return Err(format!(
                    "a batch's schema changed mid-file: first {}, now {}",
                    describe(schema),
                    describe(&record.schema())
                ));
            }
            Some(_) => {}
        }
        if let Some(writer) = &mut self.writer {
            writer.write(&record).map_err(|e| e.to_string())?;
            // Row groups reach the file as they fill; they become durable
            // now rather than all at once in the fsync at publish.
            self.early_sync
                .advance(&self.file, writer.bytes_written() as u64);
        }
        self.rows += u64::from(rows);
        Ok(())
    }

    /// Finishes the file. Returns `false` when no row was written (no file
    /// should be published then).
    pub fn finish(self) -> Result<bool, String> {
        match self.writer {
            Some(writer) => {
                // The last row group and the footer: publishing follows
                // at once, so its `fsync` covers them.
                writer.close().map_err(|e| e.to_string())?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Converts a batch, moving its value buffers into Arrow arrays (no copy).
    fn to_record_batch(&self, batch: Batch) -> Result<RecordBatch, String> {
        let mut fields = Vec::with_capacity(batch.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(batch.columns.len());
        for column in batch.columns {
            if let Some(index) = PARTITION_COLUMNS.iter().position(|p| *p == column.name) {
                let expected = [
                    &self.partition.exchange,
                    &self.partition.market,
                    &self.partition.symbol,
                ][index];
                check_partition_column(&column.name, &column.values, expected)?;
                continue;
            }
            let valid = column
                .nulls
                .as_ref()
                .map(|nulls| nulls.iter().map(|null| !null).collect::<Vec<bool>>());
            let nullable = valid.is_some();
            let (data_type, array): (DataType, ArrayRef) = match column.values {
                ColumnValues::Int64(v) => (
                    DataType::Int64,
                    Arc::new(Int64Array::new(v.into(), valid.map(Into::into))),
                ),
                ColumnValues::Float64(v) => (
                    DataType::Float64,
                    Arc::new(Float64Array::new(v.into(), valid.map(Into::into))),
                ),
                ColumnValues::Boolean(v) => (
                    DataType::Boolean,
                    Arc::new(BooleanArray::new(
                        v.as_slice().into(),
                        valid.map(Into::into),
                    )),
                ),
                ColumnValues::Utf8(v) => (
                    DataType::Utf8,
                    Arc::new(strings(
                        v.iter().map(String::as_str),
                        column.nulls.as_deref(),
                    )?),
                ),
                // Keys were bounds-checked by `plugin::validate` before any
                // batch from a plugin reaches a writer.
                ColumnValues::Utf8Dict(d) => (
                    DataType::Utf8,
                    Arc::new(strings(
                        d.keys.iter().map(|k| d.dictionary[*k as usize].as_str()),
                        column.nulls.as_deref(),
                    )?),
                ),
                ColumnValues::TimestampUs(v) => (
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    Arc::new(
                        TimestampMicrosecondArray::new(v.into(), valid.map(Into::into))
                            .with_timezone("UTC"),
                    ),
                ),
            };
            fields.push(Field::new(&column.name, data_type, nullable));
            arrays.push(array);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
    }
}

/// A string array from values and an optional null mask (`true` = null),
/// built from the values' bytes in one pass (Arrow's builder took an
/// `Option<&str>` and a validity bit per row, which made a constant column
/// such as `interval` more than a percent of a curate run's CPU).
/// Dictionary columns are materialised too: Parquet dictionary-encodes them
/// again on write, and readers see one string type whichever form a plugin
/// sent.
fn strings<'a>(
    values: impl Iterator<Item = &'a str> + Clone,
    nulls: Option<&[bool]>,
) -> Result<StringArray, String> {
    let total: usize = values.clone().map(str::len).sum();
    if i32::try_from(total).is_err() {
        return Err(format!(
            "a text column holds {total} bytes in one batch, more than a string array's {}",
            i32::MAX
        ));
    }
    let mut bytes = Vec::with_capacity(total);
    let mut offsets = Vec::with_capacity(values.size_hint().0 + 1);
    offsets.push(0i32);
    for value in values {
        bytes.extend_from_slice(value.as_bytes());
        // At most `total`, which fits an i32.
        offsets.push(bytes.len() as i32);
    }
    let validity = nulls.map(|nulls| NullBuffer::from_iter(nulls.iter().map(|null| !null)));
    StringArray::try_new(OffsetBuffer::new(offsets.into()), bytes.into(), validity)
        .map_err(|e| e.to_string())
}

/// A partition column must hold the partition's value on every row, since
/// it is stored once in the path.
fn check_partition_column(name: &str, values: &ColumnValues, expected: &str) -> Result<(), String> {
    let other = match values {
        ColumnValues::Utf8(values) => values.iter().find(|v| v.as_str() != expected),
        // Usually a one-entry dictionary: checking the entries is enough
        // when they all match; otherwise find a row that uses another one.
        ColumnValues::Utf8Dict(d) if d.dictionary.iter().all(|v| v == expected) => None,
        ColumnValues::Utf8Dict(d) => d
            .keys
            .iter()
            .map(|k| &d.dictionary[*k as usize])
            .find(|v| v.as_str() != expected),
        _ => return Err(format!("partition column `{name}` must be utf8")),
    };
    match other {
        Some(other) => Err(format!(
            "partition column `{name}` holds `{other}` but the artifact's partition is `{expected}`"
        )),
        None => Ok(()),
    }
}

/// zstd at the configured level (1 unless set: pyarrow's default), page
/// statistics, and an encoding chosen per column type:
/// - text: dictionary (exchange, interval and side repeat on every row);
/// - integers and timestamps: DELTA_BINARY_PACKED unless configured plain,
///   since times and ids rise steadily and their deltas pack into a few
///   bits, leaving zstd almost nothing to do (read by DuckDB, Polars,
///   pyarrow, Spark ≥ 3.3);
/// - floats: plain, or BYTE_STREAM_SPLIT when configured; a plain float
///   column whose first values zstd's fast mode compresses as small as the
///   configured level, or that the level barely compresses, gets the fast
///   mode ([`LevelProbe`]).
///
/// No dictionary is tried for numbers: prices, volumes and timestamps are
/// nearly all distinct, so it costs a hash per value and is then abandoned.
/// `first` is the file's first batch.
fn properties(first: &RecordBatch, settings: ParquetConfig) -> WriterProperties {
    let level = ZstdLevel::try_new(settings.zstd_level).unwrap_or_default();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(false)
        .set_created_by(concat!("cryptolake ", env!("CARGO_PKG_VERSION")).to_owned());
    let mut probe = LevelProbe::new(settings.zstd_level);
    let fast = ZstdLevel::try_new(FAST_ZSTD_LEVEL).unwrap_or_default();
    for (field, column) in first.schema().fields().iter().zip(first.columns()) {
        let path = ColumnPath::from(field.name().as_str());
        builder = match field.data_type() {
            DataType::Utf8 | DataType::Dictionary(..) => {
                builder.set_column_dictionary_enabled(path, true)
            }
            DataType::Int64 | DataType::Timestamp(..)
                if settings.integer_encoding == IntegerEncoding::DeltaBinaryPacked =>
            {
                builder.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED)
            }
            DataType::Float64 if settings.float_encoding == FloatEncoding::ByteStreamSplit => {
                builder.set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT)
            }
            DataType::Float64 if probe.fast_mode_suffices(column.as_ref()) => {
                builder.set_column_compression(path, Compression::ZSTD(fast))
            }
            _ => builder,
        };
    }
    builder.build()
}

/// zstd's fast mode (`zstd --fast=1`): it still finds repeats but skips the
/// Huffman coding of literals, which saves nothing on columns that repeats
/// compress and costs time there.
const FAST_ZSTD_LEVEL: i32 = -1;

/// Values of a float column compressed at both levels to choose between them.
const SAMPLE_VALUES: usize = 4096;

/// Fewer first values than this are no evidence: the configured level stays.
const MIN_SAMPLE_VALUES: usize = 1024;

/// How much larger (in parts per thousand) the fast mode's output of the
/// sample may be and still be chosen.
const FAST_MODE_TOLERANCE_PER_MILLE: usize = 10;

/// A column the configured level cannot shrink below this share (in parts
/// per thousand) of its size gets the fast mode whatever it gives up:
/// volumes with eight random decimals, which level 1 shrinks by 6% at
/// ~0.5 GB/s and decompresses at ~1.4 GB/s, where the fast mode stores
/// them raw at ~5 GB/s and reads them back at memory speed.
const INCOMPRESSIBLE_PER_MILLE: usize = 900;

/// Compresses the first values of float columns at the configured level and
/// in zstd's fast mode, to choose between them per column. On prices the
/// fast mode loses nothing (repeats do the work: 2.97× either way, and 2.5×
/// at level 3). On volumes it gives up level 1's literal coding, which
/// saves only 6% there at ten times the fast mode's cost, writing and
/// reading: a column that nothing shrinks by a tenth gets the fast mode
/// too. Other columns keep the configured level. Costs two compressions of
/// at most 32 KiB per float column, once per file.
struct LevelProbe {
    /// `None` when the configured level is already the fast mode or faster,
    /// or a compressor could not be made: every column keeps that level.
    compressors: Option<(
        zstd::bulk::Compressor<'static>,
        zstd::bulk::Compressor<'static>,
    )>,
}

impl LevelProbe {
    fn new(level: i32) -> Self {
        let compressors = (level > FAST_ZSTD_LEVEL)
            .then(|| {
                Some((
                    zstd::bulk::Compressor::new(level).ok()?,
                    zstd::bulk::Compressor::new(FAST_ZSTD_LEVEL).ok()?,
                ))
            })
            .flatten();
        Self { compressors }
    }

    /// Whether the fast mode compresses `column`'s first values within 1%
    /// as small as the configured level, or the configured level cannot
    /// shrink them by a tenth; `false` for anything but a float column with
    /// at least [`MIN_SAMPLE_VALUES`] values that are not null.
    fn fast_mode_suffices(&mut self, column: &dyn Array) -> bool {
        let (Some((configured, fast)), Some(values)) = (
            self.compressors.as_mut(),
            column.as_any().downcast_ref::<Float64Array>(),
        ) else {
            return false;
        };
        // Only the values a page will hold: nulls are not written.
        let sample: Vec<u8> = values
            .iter()
            .flatten()
            .take(SAMPLE_VALUES)
            .flat_map(f64::to_le_bytes)
            .collect();
        if sample.len() < MIN_SAMPLE_VALUES * size_of::<f64>() {
            return false;
        }
        let Ok(configured) = configured.compress(&sample) else {
            return false;
        };
        // A column the level barely shrinks needs no second compression.
        configured.len() * 1000 >= sample.len() * INCOMPRESSIBLE_PER_MILLE
            || fast.compress(&sample).is_ok_and(|fast| {
                fast.len() * 1000 <= configured.len() * (1000 + FAST_MODE_TOLERANCE_PER_MILLE)
            })
    }
}

fn describe(schema: &Schema) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    format!("[{}]", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Encoding;

    use super::*;
    use crate::wit::Column;

    fn batch() -> Batch {
        let column = |name: &str, values: ColumnValues| Column {
            name: name.to_owned(),
            values,
            nulls: None,
        };
        Batch {
            rows: 3,
            columns: vec![
                column(
                    "open_time",
                    ColumnValues::TimestampUs(vec![
                        1_735_689_600_000_000,
                        1_735_689_601_000_000,
                        1_735_689_602_000_000,
                    ]),
                ),
                column(
                    "close",
                    ColumnValues::Float64(vec![93_000.5, 93_001.25, -0.0]),
                ),
                column("trade_count", ColumnValues::Int64(vec![7, 0, -3])),
            ],
        }
    }

    /// Writes `batch` into a file, then returns each column's encodings and
    /// the rows read back, as one batch.
    fn round_trip(batch: Batch, settings: ParquetConfig) -> (Vec<Vec<Encoding>>, RecordBatch) {
        let rows = batch.rows as usize;
        let file = tempfile::tempfile().expect("temp file");
        let mut sink = ParquetSink::new(
            file.try_clone().expect("clone"),
            crate::lake::fixtures::spot_btcusdt("1s", "2025-01-01"),
            settings,
            EarlySync::off(),
        );
        sink.write(batch).expect("write");
        assert!(sink.finish().expect("finish"));
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
        let encodings = reader.metadata().row_group(0).columns().iter();
        let encodings = encodings.map(|c| c.encodings().collect()).collect();
        let mut batches = reader.with_batch_size(rows).build().expect("reader");
        (encodings, batches.next().expect("a batch").expect("read"))
    }

    #[test]
    fn dictionary_columns_are_written_as_their_strings_with_their_nulls() {
        let mut batch = batch();
        batch.columns.push(Column {
            name: "side".to_owned(),
            values: ColumnValues::Utf8Dict(crate::wit::DictionaryUtf8 {
                dictionary: vec!["buy".to_owned(), "sell".to_owned()],
                keys: vec![1, 0, 1],
            }),
            nulls: Some(vec![false, true, false]),
        });
        let (_, read) = round_trip(batch, ParquetConfig::default());
        let side = read
            .column_by_name("side")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .expect("a string column");
        assert_eq!(
            side.iter().collect::<Vec<_>>(),
            [Some("sell"), None, Some("sell")]
        );
    }

    #[test]
    fn integers_are_delta_encoded_and_floats_as_configured() {
        let (encodings, plain) = round_trip(batch(), ParquetConfig::default());
        assert!(
            encodings[0].contains(&Encoding::DELTA_BINARY_PACKED),
            "{encodings:?}"
        );
        assert!(
            encodings[2].contains(&Encoding::DELTA_BINARY_PACKED),
            "{encodings:?}"
        );
        assert!(encodings[1].contains(&Encoding::PLAIN), "{encodings:?}");
        let (encodings, split) = round_trip(
            batch(),
            ParquetConfig {
                float_encoding: FloatEncoding::ByteStreamSplit,
                integer_encoding: IntegerEncoding::Plain,
                zstd_level: 9,
            },
        );
        assert!(
            !encodings[0].contains(&Encoding::DELTA_BINARY_PACKED),
            "{encodings:?}"
        );
        assert!(
            encodings[1].contains(&Encoding::BYTE_STREAM_SPLIT),
            "{encodings:?}"
        );
        // Same values either way, bit for bit, and in zstd's fast mode.
        assert_eq!(plain, split);
        let (_, fast) = round_trip(
            batch(),
            ParquetConfig {
                zstd_level: -3,
                ..ParquetConfig::default()
            },
        );
        assert_eq!(plain, fast);
        let close = plain
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        assert_eq!(
            close
                .values()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            [93_000.5f64, 93_001.25, -0.0].map(f64::to_bits)
        );
    }

    /// Deterministic pseudo-random numbers (xorshift64).
    fn randoms() -> impl Iterator<Item = u64> {
        std::iter::successors(Some(0x2545_f491_4f6c_dd1d_u64), |x| {
            let x = x ^ (x << 13);
            let x = x ^ (x >> 7);
            Some(x ^ (x << 17))
        })
    }

    /// A random walk of prices in cents, as a 1s kline's open.
    fn prices(count: usize) -> Float64Array {
        let mut cents = 9_300_000_i64;
        randoms()
            .take(count)
            .map(|r| {
                cents += (r % 1001) as i64 - 500;
                cents as f64 / 100.0
            })
            .collect()
    }

    /// Volumes with eight random decimals.
    fn volumes(count: usize) -> Float64Array {
        randoms()
            .take(count)
            .map(|r| (r % 100_000_000) as f64 / 1e8)
            .collect()
    }

    /// Whole quantities below 1,000, as contract counts: few distinct bytes,
    /// which level 1's literal coding shrinks a quarter further than the
    /// fast mode does.
    fn whole_quantities(count: usize) -> Float64Array {
        randoms().take(count).map(|r| (r % 1000) as f64).collect()
    }

    #[test]
    fn float_columns_that_repeats_compress_or_nothing_does_get_zstds_fast_mode() {
        let suffices =
            |column: &dyn Array, level: i32| LevelProbe::new(level).fast_mode_suffices(column);
        // Prices: the fast mode compresses them as small as level 1 does,
        // and smaller than level 3.
        assert!(suffices(&prices(SAMPLE_VALUES), 1));
        assert!(suffices(&prices(SAMPLE_VALUES), 3));
        // Volumes: level 1 shrinks them by only 6%, the fast mode not at all.
        assert!(suffices(&volumes(SAMPLE_VALUES), 1));
        assert!(suffices(&volumes(SAMPLE_VALUES), 3));
        // Whole quantities: level 1's literal coding shrinks them to a fifth.
        assert!(!suffices(&whole_quantities(SAMPLE_VALUES), 1));
        // Too few values to judge (nulls do not count), already in fast
        // mode, or not floats.
        assert!(!suffices(&prices(MIN_SAMPLE_VALUES - 1), 1));
        let mostly_null: Float64Array = (0..SAMPLE_VALUES)
            .map(|row| (row < MIN_SAMPLE_VALUES / 2).then_some(93_000.0))
            .collect();
        assert!(!suffices(&mostly_null, 1));
        assert!(!suffices(&prices(SAMPLE_VALUES), -1));
        assert!(!suffices(&Int64Array::from(vec![7; SAMPLE_VALUES]), 1));
        // One probe judges column after column.
        let mut probe = LevelProbe::new(1);
        assert!(probe.fast_mode_suffices(&prices(SAMPLE_VALUES)));
        assert!(!probe.fast_mode_suffices(&whole_quantities(SAMPLE_VALUES)));
        assert!(probe.fast_mode_suffices(&volumes(SAMPLE_VALUES)));
    }

    #[test]
    fn columns_at_either_level_read_back_bit_for_bit() {
        let column = |name: &str, values: Float64Array| Column {
            name: name.to_owned(),
            values: ColumnValues::Float64(values.values().to_vec()),
            nulls: None,
        };
        let batch = Batch {
            rows: SAMPLE_VALUES as u32,
            columns: vec![
                column("open", prices(SAMPLE_VALUES)),
                column("volume", volumes(SAMPLE_VALUES)),
                column("contracts", whole_quantities(SAMPLE_VALUES)),
            ],
        };
        let (_, read) = round_trip(batch, ParquetConfig::default());
        let bits = |array: &dyn Array| -> Vec<u64> {
            let values = array.as_any().downcast_ref::<Float64Array>().expect("f64");
            values.values().iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(read.column(0)), bits(&prices(SAMPLE_VALUES)));
        assert_eq!(bits(read.column(1)), bits(&volumes(SAMPLE_VALUES)));
        assert_eq!(bits(read.column(2)), bits(&whole_quantities(SAMPLE_VALUES)));
    }
}
