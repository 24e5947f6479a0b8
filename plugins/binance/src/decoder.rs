//! One streaming CSV decoder for every archive data type, driven by the
//! column layouts in [`crate::datatypes`].
//!
//! Owns: per-file header detection (a first line whose first field does not
//! parse as the first column's type), per-file epoch unit detection shared by
//! all time columns of the file (spot files switched from ms to µs on
//! 2025-01-01; a row of another unit is malformed), empty fields as nulls,
//! and cutting rows into bounded batches. It must not know where bytes come
//! from.

use cryptolake_plugin_sdk::columns::{self, ColumnBuilder, DictionaryBuilder};
use cryptolake_plugin_sdk::csv::{self, EpochNormalizer, EpochUnit, FieldCursor, LineReader};
use cryptolake_plugin_sdk::{Batch, PluginError};

use crate::datatypes::{Kind, Layout, OutputColumn, header_name, min_fields};
use crate::rows::RowChecks;

// An explicit tag: without it the variant is encoded in a niche of the
// builders' fields, and each field of the one-pass path decoded it with a
// handful of instructions before its jump.
#[repr(u8)]
enum Buffer {
    Time(ColumnBuilder<i64>),
    Float(ColumnBuilder<f64>),
    Int(ColumnBuilder<i64>),
    Bool(ColumnBuilder<bool>),
    Text(DictionaryBuilder),
}

impl Buffer {
    fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Epoch | Kind::DateTime => Buffer::Time(ColumnBuilder::with_capacity(capacity)),
            Kind::Float => Buffer::Float(ColumnBuilder::with_capacity(capacity)),
            Kind::Int => Buffer::Int(ColumnBuilder::with_capacity(capacity)),
            Kind::Bool => Buffer::Bool(ColumnBuilder::with_capacity(capacity)),
            Kind::Text => Buffer::Text(DictionaryBuilder::default()),
        }
    }

    fn push_null(&mut self) {
        match self {
            Buffer::Time(b) | Buffer::Int(b) => b.push_null(),
            Buffer::Float(b) => b.push_null(),
            Buffer::Bool(b) => b.push_null(),
            Buffer::Text(b) => b.push_null(),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Buffer::Time(b) | Buffer::Int(b) => b.truncate(len),
            Buffer::Float(b) => b.truncate(len),
            Buffer::Bool(b) => b.truncate(len),
            Buffer::Text(b) => b.truncate(len),
        }
    }

    /// Reads the cursor's next field in its plain form and appends it; `None`
    /// (and possibly a value appended) when the field is not plain, or is
    /// an epoch of another unit than `unit`, the file's.
    #[inline(always)]
    fn push_plain(
        &mut self,
        kind: Kind,
        cursor: &mut FieldCursor<'_>,
        unit: Option<EpochUnit>,
    ) -> Option<()> {
        match self {
            Buffer::Time(b) => b.push(match kind {
                Kind::DateTime => csv::parse_datetime_us(cursor.text()?, 0, "").ok()?,
                _ => {
                    let value = cursor.integer()?;
                    EpochUnit::detect(value)
                        .filter(|detected| Some(*detected) == unit)?
                        .to_micros(value)
                }
            }),
            Buffer::Float(b) => b.push(cursor.decimal()?),
            Buffer::Int(b) => b.push(cursor.integer()?),
            Buffer::Bool(b) => b.push(cursor.boolean()?),
            Buffer::Text(b) => b.push(cursor.text()?),
        }
        Some(())
    }

    /// The last value pushed, as an integer (times in µs), unless it is null
    /// or of another kind.
    fn last_integer(&self) -> Option<i64> {
        match self {
            Buffer::Time(b) | Buffer::Int(b) => b.last().copied(),
            _ => None,
        }
    }

    fn finish(&mut self, name: &str) -> cryptolake_plugin_sdk::Column {
        match self {
            Buffer::Time(b) => b.finish_timestamp_us(name),
            Buffer::Float(b) => b.finish_float64(name),
            Buffer::Int(b) => b.finish_int64(name),
            Buffer::Bool(b) => b.finish_boolean(name),
            Buffer::Text(b) => b.finish(name),
        }
    }
}

/// Fields read from a line; every layout reads fewer.
pub const MAX_FIELDS: usize = 32;

/// Decodes one CSV file of a known layout, chunk by chunk.
pub struct CsvDecoder {
    layout: &'static [OutputColumn],
    /// Fields every line has: the layout's, or the header's when the file
    /// is read by header names.
    fields_per_line: usize,
    /// What each row must satisfy against its artifact, if anything.
    checks: Option<RowChecks>,
    /// Which CSV field feeds each output column: the layout's positions, or
    /// the header's, for a layout read by header name.
    fields: Vec<Option<usize>>,
    /// How a line is read in one pass; `None` when a field feeds two
    /// columns: every line then takes the general path.
    one_pass: Option<OnePass>,
    by_header: bool,
    min_fields: usize,
    first_field_kind: Option<Kind>,
    lines: LineReader,
    epoch: EpochNormalizer,
    batch_rows: usize,
    seen_first_line: bool,
    rows: usize,
    buffers: Vec<Buffer>,
    /// Set by the first error: a row may be half pushed then, so the decoder
    /// refuses further input instead of emitting misaligned columns.
    failed: bool,
}

impl CsvDecoder {
    /// A decoder for `layout`, emitting batches of at most `batch_rows` rows.
    pub fn new(layout: Layout, batch_rows: usize) -> Self {
        let capacity = batch_rows.min(8192);
        let Layout {
            columns: layout,
            fields_per_line,
        } = layout;
        let fields: Vec<Option<usize>> = layout.iter().map(|c| c.field).collect();
        let min_fields = min_fields(fields.iter().copied());
        Self {
            layout,
            fields_per_line,
            checks: None,
            one_pass: OnePass::plan(layout, &fields, min_fields, fields_per_line),
            fields,
            by_header: false,
            min_fields,
            first_field_kind: layout.iter().find(|c| c.field == Some(0)).map(|c| c.kind),
            lines: LineReader::new(),
            epoch: EpochNormalizer::default(),
            batch_rows,
            seen_first_line: false,
            rows: 0,
            buffers: layout
                .iter()
                .map(|c| Buffer::new(c.kind, capacity))
                .collect(),
            failed: false,
        }
    }

    /// A decoder that, when a file has a header row, finds each column by
    /// its name there (case, `_`, `-` and spaces ignored) instead of by
    /// position; a column the header lacks is null.
    pub fn by_header(layout: Layout, batch_rows: usize) -> Self {
        Self {
            by_header: true,
            ..Self::new(layout, batch_rows)
        }
    }

    /// The same decoder, checking every row with `checks`.
    pub fn checking(self, checks: Option<RowChecks>) -> Self {
        Self { checks, ..self }
    }

    /// Consumes a chunk, returning the batches it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Batch>, PluginError> {
        self.check_not_failed()?;
        let mut out = Vec::new();
        let mut lines = std::mem::take(&mut self.lines);
        let result = lines.push(chunk, |line_no, line| {
            self.row(line_no, line)?;
            if self.rows >= self.batch_rows {
                out.push(self.flush());
            }
            Ok::<(), PluginError>(())
        });
        self.lines = lines;
        self.failed = result.is_err();
        result.map(|()| out)
    }

    fn check_not_failed(&self) -> Result<(), PluginError> {
        if self.failed {
            Err(PluginError::Internal(
                "the decoder already failed on this file".to_owned(),
            ))
        } else {
            Ok(())
        }
    }

    /// Ends the input, returning the last batch.
    pub fn finish(&mut self) -> Result<Vec<Batch>, PluginError> {
        self.check_not_failed()?;
        let mut lines = std::mem::take(&mut self.lines);
        let result = lines.finish(|line_no, line| self.row(line_no, line));
        self.lines = lines;
        self.failed = result.is_err();
        result?;
        Ok(if self.rows == 0 {
            Vec::new()
        } else {
            vec![self.flush()]
        })
    }

    fn is_header(&self, line: &str) -> bool {
        let first = line.split(',').next().unwrap_or("").trim();
        match self.first_field_kind {
            Some(Kind::DateTime) => csv::parse_datetime_us(first, 0, "").is_err(),
            Some(Kind::Text) | None => false,
            Some(_) => first.is_empty() || first.parse::<f64>().is_err(),
        }
    }

    /// For a layout read by name: whether `line` names at least two of its
    /// columns.
    fn names_columns(&self, line: &str) -> bool {
        let names: Vec<String> = self
            .layout
            .iter()
            .map(|c| normalise(header_name(c.name)))
            .collect();
        line.split(',')
            .filter(|field| names.contains(&normalise(field)))
            .count()
            >= 2
    }

    /// Locates each column in the header row by name.
    fn map_header(&mut self, line_no: u64, line: &str) -> Result<(), PluginError> {
        let header: Vec<String> = line.split(',').map(normalise).collect();
        self.fields_per_line = header.len();
        self.fields = self
            .layout
            .iter()
            .map(|c| {
                header
                    .iter()
                    .position(|h| *h == normalise(header_name(c.name)))
            })
            .collect();
        if let Some(index) = self.fields.iter().flatten().find(|i| **i >= MAX_FIELDS) {
            return Err(PluginError::malformed(
                Some(line_no),
                format!(
                    "the header puts a column at position {index}, beyond the {MAX_FIELDS} fields read"
                ),
            ));
        }
        self.min_fields = min_fields(self.fields.iter().copied());
        self.one_pass = OnePass::plan(
            self.layout,
            &self.fields,
            self.min_fields,
            self.fields_per_line,
        );
        Ok(())
    }

    fn row(&mut self, line_no: u64, line: &str) -> Result<(), PluginError> {
        if !self.seen_first_line {
            self.seen_first_line = true;
            // Only a file's first line may be a header; a text row later
            // fails its numeric parse and is reported.
            if self.by_header && self.names_columns(line) {
                return self.map_header(line_no, line);
            }
            if self.is_header(line) {
                return Ok(());
            }
        }
        if self.plain_row(line) {
            self.check_row(line_no)?;
            self.rows += 1;
            return Ok(());
        }
        // Field slices on the stack: no allocation per line.
        let mut fields = [""; MAX_FIELDS];
        let mut found = 0;
        for field in csv::fields(line) {
            if found < MAX_FIELDS {
                fields[found] = field;
            }
            found += 1;
        }
        if found != self.fields_per_line {
            return Err(PluginError::malformed(
                Some(line_no),
                format!(
                    "expected {} fields, as every line of this file has, found {found}",
                    self.fields_per_line
                ),
            ));
        }
        for ((column, index), buffer) in self
            .layout
            .iter()
            .zip(&self.fields)
            .zip(self.buffers.iter_mut())
        {
            let Some(index) = *index else {
                buffer.push_null();
                continue;
            };
            let field = fields[index].trim_ascii();
            if field.is_empty() && !matches!(column.kind, Kind::Epoch | Kind::DateTime) {
                buffer.push_null();
                continue;
            }
            let name = column.name;
            match buffer {
                Buffer::Time(b) => b.push(match column.kind {
                    Kind::DateTime => csv::parse_datetime_us(field, line_no, name)?,
                    _ => self.epoch.micros(field, line_no, name)?,
                }),
                Buffer::Float(b) => b.push(csv::parse_float(field, line_no, name)?),
                Buffer::Int(b) => b.push(csv::parse_int(field, line_no, name)?),
                Buffer::Bool(b) => b.push(csv::parse_bool(field, line_no, name)?),
                Buffer::Text(b) => b.push(field),
            }
        }
        self.check_row(line_no)?;
        self.rows += 1;
        Ok(())
    }

    /// Checks the row just pushed against the artifact.
    #[inline(always)]
    fn check_row(&mut self, line_no: u64) -> Result<(), PluginError> {
        let Some(checks) = &mut self.checks else {
            return Ok(());
        };
        let buffers = &self.buffers;
        checks.check(line_no, |column| buffers[column].last_integer())
    }

    /// Reads `line` in one pass when every field it needs is in its plain
    /// form (most lines of most files); otherwise leaves the buffers as they
    /// were and returns false, for the general path to read the line and
    /// name whatever is wrong with it. The file's first epoch value fixes
    /// its unit on the general path, so every line after it can come here.
    fn plain_row(&mut self, line: &str) -> bool {
        let Some(plan) = &self.one_pass else {
            return false;
        };
        let unit = self.epoch.unit();
        let mut cursor = FieldCursor::new(line);
        let mut read_all = || {
            for step in &plan.fields {
                match *step {
                    None => cursor.skip()?,
                    Some((column, kind)) => {
                        self.buffers[column].push_plain(kind, &mut cursor, unit)?
                    }
                }
            }
            Some(())
        };
        // A line with more or fewer fields than the file's is read (and
        // reported) by the general path.
        if read_all().is_none() || cursor.fields_left() != plan.unused_fields {
            for buffer in &mut self.buffers {
                buffer.truncate(self.rows);
            }
            return false;
        }
        for &column in &plan.absent {
            self.buffers[column].push_null();
        }
        true
    }

    fn flush(&mut self) -> Batch {
        self.rows = 0;
        columns::batch(
            self.layout
                .iter()
                .zip(self.buffers.iter_mut())
                .map(|(column, buffer)| buffer.finish(column.name))
                .collect(),
        )
    }
}

/// How [`CsvDecoder`] reads a line in one pass.
struct OnePass {
    /// Per CSV field up to the last one read: the column it feeds and its
    /// kind, or `None` (skipped).
    fields: Vec<Option<(usize, Kind)>>,
    /// Columns no field feeds: null on every row.
    absent: Vec<usize>,
    /// Fields a line has after the last one read.
    unused_fields: usize,
}

impl OnePass {
    /// The plan for `layout`'s columns fed by `fields`, the first
    /// `fields_read` of the line's `fields_per_line`; `None` when a field
    /// feeds two columns.
    fn plan(
        layout: &[OutputColumn],
        fields: &[Option<usize>],
        fields_read: usize,
        fields_per_line: usize,
    ) -> Option<Self> {
        let mut plan = Self {
            fields: vec![None; fields_read],
            absent: Vec::new(),
            unused_fields: fields_per_line.checked_sub(fields_read)?,
        };
        for (column, (field, output)) in fields.iter().zip(layout).enumerate() {
            match *field {
                None => plan.absent.push(column),
                Some(field) if plan.fields[field].is_some() => return None,
                Some(field) => plan.fields[field] = Some((column, output.kind)),
            }
        }
        Some(plan)
    }
}

/// A column name as compared with a header: lowercase, without `_`, `-`
/// and spaces.
fn normalise(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datatypes;
    use cryptolake_plugin_sdk::ColumnValues;

    const SPOT_2024: &str = "1704067200000,42283.58000000,42298.62000000,42261.02000000,42298.61000000,35.92724000,1704067259999,1519032.06433720,1327,14.69437000,621337.08891380,0\n\
1704067260000,42298.62000000,42320.00000000,42298.61000000,42320.00000000,21.50007000,1704067319999,909641.75009750,827,12.85416000,543774.74669420,0\n";

    fn decode(layout: Layout, text: &str, chunk: usize) -> Result<Vec<Batch>, PluginError> {
        let mut d = CsvDecoder::new(layout, 1000);
        let mut out = Vec::new();
        for c in text.as_bytes().chunks(chunk) {
            out.extend(d.push(c)?);
        }
        out.extend(d.finish()?);
        Ok(out)
    }

    /// Lines in every form the general path accepts, most of them plain,
    /// some declined by the one-pass path at any field: both paths must
    /// give the same batches (the one-pass path gives up a half-read row
    /// without a trace).
    #[test]
    fn the_one_pass_path_reads_exactly_what_the_general_path_reads() {
        let forms = |field: usize, row: u64, plain: &str| -> String {
            match (row * 7 + field as u64 * 3) % 13 {
                0 => format!(" {plain}"),
                1 => format!("{plain} "),
                2 if plain.parse::<f64>().is_ok() && plain.contains('.') => format!("{plain}e0"),
                3 if plain.contains('.') => String::new(),
                4 => plain.to_uppercase(),
                _ => plain.to_owned(),
            }
        };
        let cases: [(Layout, &[&str]); 4] = [
            (
                datatypes::KLINES,
                &[
                    "1704067200000",
                    "42283.58",
                    "42298.62",
                    "42261.02",
                    "42298.61",
                    "35.92724",
                    "1704067259999",
                    "1519032.0643372",
                    "1327",
                    "14.69437",
                    "621337.0889138",
                    "0",
                ],
            ),
            (
                datatypes::AGG_TRADES_SPOT,
                &[
                    "26129",
                    "0.01633102",
                    "4.7",
                    "27781",
                    "27781",
                    "1498793709153",
                    "true",
                    "False",
                ],
            ),
            (
                datatypes::METRICS,
                &[
                    "2024-01-01 00:05:00",
                    "BTCUSDT",
                    "81843.461",
                    "3464617.2",
                    "1.90",
                    "2.07",
                    "1.77",
                    "0.98",
                ],
            ),
            (
                datatypes::TRADES_UM,
                &[
                    "3960287889",
                    "42310.6",
                    "0.005",
                    "211.553",
                    "1704067200003",
                    "true",
                ],
            ),
        ];
        for (layout, plain) in cases {
            let mut text = String::new();
            for row in 0..200u64 {
                let line: Vec<String> = plain
                    .iter()
                    .enumerate()
                    .map(|(field, value)| {
                        // The first line stays plain: it fixes the epoch unit.
                        if row == 0 {
                            (*value).to_owned()
                        } else {
                            forms(field, row, value)
                        }
                    })
                    .collect();
                text.push_str(&line.join(","));
                text.push_str(if row % 5 == 0 { "\r\n" } else { "\n" });
            }
            let run = |one_pass: bool| {
                let mut decoder = CsvDecoder::new(layout, 64);
                if !one_pass {
                    decoder.one_pass = None;
                }
                let mut out = Vec::new();
                for chunk in text.as_bytes().chunks(97) {
                    out.extend(decoder.push(chunk).map_err(|e| format!("{e:?}"))?);
                }
                out.extend(decoder.finish().map_err(|e| format!("{e:?}"))?);
                Ok::<_, String>(format!("{out:?}"))
            };
            let general = run(false);
            let name = layout.columns[0].name;
            assert!(general.is_ok(), "{name}: {general:?}");
            assert_eq!(run(true), general, "{name}");
        }
    }

    #[test]
    fn kline_milliseconds_become_microseconds() {
        let batches = decode(datatypes::KLINES, SPOT_2024, 7).unwrap();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.rows, 2);
        assert_eq!(
            b.column("open_time").unwrap().as_timestamp_us().unwrap(),
            &[1_704_067_200_000_000, 1_704_067_260_000_000]
        );
        assert_eq!(b.column("count").unwrap().as_int64().unwrap(), &[1327, 827]);
        assert_eq!(b.column("close").unwrap().as_float64().unwrap()[1], 42320.0);
    }

    #[test]
    fn kline_microsecond_files_stay_microseconds() {
        let text = "1735689600000000,93576.00,93610.93,93537.50,93610.93,8.21827,1735689659999999,768978.03,1711,3.65,341641.47,0\r\n";
        let b = &decode(datatypes::KLINES, text, 5).unwrap()[0];
        assert_eq!(
            b.column("close_time").unwrap().as_timestamp_us().unwrap(),
            &[1_735_689_659_999_999]
        );
    }

    #[test]
    fn header_row_is_skipped_and_no_final_newline_is_fine() {
        let text = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\r\n\
1704067200000,1,2,0.5,1.5,10,1704067259999,15,3,4,6,0";
        let b = &decode(datatypes::KLINES, text, 3).unwrap()[0];
        assert_eq!(b.rows, 1);
    }

    #[test]
    fn malformed_rows_name_the_line_and_end_the_file() {
        let text = format!("{SPOT_2024}1704067320000,abc,1,1,1,1,1704067379999,1,1,1,1,0\n");
        let e = decode(datatypes::KLINES, &text, 64).unwrap_err();
        match e {
            PluginError::MalformedInput(m) => {
                assert_eq!(m.line, Some(3));
                assert!(m.message.contains("open"), "{}", m.message);
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut d = CsvDecoder::new(datatypes::KLINES, 10);
        assert!(d.push(b"1704067200000,1,2\n").is_err());
        assert!(matches!(
            d.push(SPOT_2024.as_bytes()),
            Err(PluginError::Internal(_))
        ));
    }

    #[test]
    fn rows_with_another_number_of_fields_are_malformed() {
        let row = "1704067320000,1,1,1,1,1,1704067379999,1,1,1,1";
        for (line, found) in [(row.to_owned(), 11), (format!("{row},0,0"), 13)] {
            let text = format!("{SPOT_2024}{line}\n");
            match decode(datatypes::KLINES, &text, 64).unwrap_err() {
                PluginError::MalformedInput(m) => {
                    assert_eq!(m.line, Some(3));
                    assert!(
                        m.message.contains(&format!(
                            "expected 12 fields, as every line of this file has, found {found}"
                        )),
                        "{}",
                        m.message
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // A file read by header names has the header's number of fields.
        let text = "index_value,calc_time,symbol,base_asset,quote_asset,extra\n\
41.25,1692144000000,BTCBVOLUSDT,BTC,USDT\n";
        let mut d = CsvDecoder::by_header(datatypes::BVOL_INDEX, 1000);
        let e = d.push(text.as_bytes()).unwrap_err();
        assert!(
            matches!(e, PluginError::MalformedInput(m) if m.line == Some(2) && m.message.contains("expected 6"))
        );
    }

    #[test]
    fn checked_rows_must_belong_to_the_artifact() {
        use cryptolake_plugin_sdk::PartitionValues;
        let partition = PartitionValues {
            exchange: "binance".into(),
            market: "spot".into(),
            data_type: "klines".into(),
            symbol: "BTCUSDT".into(),
            interval: Some("1m".into()),
            period: "2024-01-01".into(),
        };
        let checked = || {
            CsvDecoder::new(datatypes::KLINES, 1000)
                .checking(RowChecks::for_artifact(datatypes::KLINES, &partition))
        };
        let mut d = checked();
        assert_eq!(d.push(SPOT_2024.as_bytes()).unwrap().len(), 0);
        assert_eq!(d.finish().unwrap()[0].rows, 2);
        // The first row again, on both the one-pass and the general path.
        let first = SPOT_2024.lines().next().unwrap();
        for repeated in [first.to_owned(), format!(" {first}")] {
            let mut d = checked();
            let e = d
                .push(format!("{SPOT_2024}{repeated}\n").as_bytes())
                .unwrap_err();
            assert!(
                matches!(&e, PluginError::MalformedInput(m) if m.line == Some(3) && m.message.contains("repeated")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn batches_are_bounded() {
        let mut d = CsvDecoder::new(datatypes::KLINES, 1);
        assert_eq!(d.push(SPOT_2024.as_bytes()).unwrap().len(), 2);
        assert!(d.finish().unwrap().is_empty());
    }

    #[test]
    fn spot_agg_trades_have_capitalised_booleans_and_no_header() {
        let text = "3400000000,42283.58,0.001,3500000000,3500000001,1704067200012,True,True\n3400000001,42283.59,0.5,3500000002,3500000002,1704067200099,False,True";
        let b = &decode(datatypes::AGG_TRADES_SPOT, text, 11).unwrap()[0];
        assert!(
            matches!(&b.column("is_buyer_maker").unwrap().values, ColumnValues::Boolean(v) if v == &[true, false])
        );
        assert_eq!(
            b.column("transact_time")
                .unwrap()
                .as_timestamp_us()
                .unwrap()[0],
            1_704_067_200_012_000
        );
    }

    #[test]
    fn futures_trades_with_header_leave_spot_only_columns_null() {
        let text = "id,price,qty,quote_qty,time,is_buyer_maker\n1,100.5,2,201,1704067200000,true\n";
        let b = &decode(datatypes::TRADES_UM, text, 4).unwrap()[0];
        assert_eq!(b.rows, 1);
        assert_eq!(b.column("is_best_match").unwrap().nulls, Some(vec![true]));
        assert_eq!(b.column("base_qty").unwrap().nulls, Some(vec![true]));
        assert_eq!(
            b.column("quote_qty").unwrap().as_float64().unwrap(),
            &[201.0]
        );
    }

    #[test]
    fn metrics_text_datetimes_are_not_mistaken_for_a_header() {
        let with_header = "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n\
2024-03-01 00:05:00,BTCUSDT,80000.5,5000000000.25,1.5,1.25,1.75,0.9\n";
        let without = "2024-03-01 00:10:00,BTCUSDT,80000.5,5000000000.25,1.5,1.25,1.75,0.9\n";
        for text in [with_header, without] {
            let b = &decode(datatypes::METRICS, text, 9).unwrap()[0];
            assert_eq!(b.rows, 1, "{text}");
            assert!(
                matches!(&b.column("symbol").unwrap().values, ColumnValues::Utf8Dict(d) if d.dictionary == ["BTCUSDT"])
            );
        }
    }

    #[test]
    fn a_file_mixing_epoch_units_is_malformed() {
        let text = "1704067200000,8,0.0001\n1735689600000000,8,0.0001\n";
        let e = decode(datatypes::FUNDING_RATE, text, 100).unwrap_err();
        assert!(matches!(e, PluginError::MalformedInput(m) if m.line == Some(2)));
    }

    #[test]
    fn empty_numeric_fields_are_null() {
        let text = "calc_time,funding_interval_hours,last_funding_rate\n1704067200000,,0.0001\n";
        let b = &decode(datatypes::FUNDING_RATE, text, 100).unwrap()[0];
        assert_eq!(
            b.column("funding_interval_hours").unwrap().nulls,
            Some(vec![true])
        );
    }

    #[test]
    fn option_files_are_read_by_header_name() {
        // Columns reordered and one extra: found by name.
        let text = "index_value,calc_time,symbol,base_asset,quote_asset,extra\n\
41.25,1692144000000,BTCBVOLUSDT,BTC,USDT,x\n\
41.30,1692144060000,BTCBVOLUSDT,BTC,USDT,y\n";
        let mut d = CsvDecoder::by_header(datatypes::BVOL_INDEX, 1000);
        let mut batches = d.push(text.as_bytes()).unwrap();
        batches.extend(d.finish().unwrap());
        let b = &batches[0];
        assert_eq!(b.rows, 2);
        assert_eq!(
            b.column("calc_time").unwrap().as_timestamp_us().unwrap(),
            &[1_692_144_000_000_000, 1_692_144_060_000_000]
        );
        assert_eq!(
            b.column("index_value").unwrap().as_float64().unwrap(),
            &[41.25, 41.30]
        );
    }

    #[test]
    fn a_column_the_header_lacks_is_null_and_a_headerless_file_uses_positions() {
        let with_header = "date,hour,symbol,underlying,type,strike,open,high,low,close\n\
2023-08-16,0,BTC-230818-30000-C,BTCUSDT,C,30000,5.0,6.0,4.0,5.5\n";
        let mut d = CsvDecoder::by_header(datatypes::EOH_SUMMARY, 1000);
        let mut batches = d.push(with_header.as_bytes()).unwrap();
        batches.extend(d.finish().unwrap());
        let b = &batches[0];
        assert_eq!(b.rows, 1);
        assert_eq!(
            b.column("strike").unwrap().as_float64().unwrap(),
            &[30000.0]
        );
        assert_eq!(
            b.column("mark_iv").unwrap().nulls.as_deref(),
            Some(&[true][..])
        );

        let fields: Vec<String> = (0..26)
            .map(|i| {
                if i < 6 {
                    [
                        "2023-08-16",
                        "1",
                        "BTC-230818-30000-P",
                        "BTCUSDT",
                        "P",
                        "30000",
                    ][i]
                        .to_owned()
                } else {
                    format!("{i}.5")
                }
            })
            .collect();
        let mut d = CsvDecoder::by_header(datatypes::EOH_SUMMARY, 1000);
        let mut batches = d.push(fields.join(",").as_bytes()).unwrap();
        batches.extend(d.finish().unwrap());
        assert_eq!(
            batches[0]
                .column("openinterest_usdt")
                .unwrap()
                .as_float64()
                .unwrap(),
            &[25.5]
        );
        assert_eq!(batches[0].column("hour").unwrap().as_int64().unwrap(), &[1]);
    }
}
