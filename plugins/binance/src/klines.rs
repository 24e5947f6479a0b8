//! Streaming decoder for kline CSVs (klines and index/mark/premium klines).
//!
//! Owns: the kline column order, per-file header detection, per-file epoch
//! unit detection (spot files switched from ms to µs on 2025-01-01; futures
//! files are ms), and cutting rows into bounded batches. It must not know
//! where the bytes came from.

use cryptolake_plugin_sdk::columns::{self, ColumnBuilder};
use cryptolake_plugin_sdk::csv::{self, EpochNormalizer, LineReader};
use cryptolake_plugin_sdk::{Batch, PluginError};

/// Output column names, in order.
pub const COLUMNS: [&str; 11] = [
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

/// Decodes one kline file, chunk by chunk.
#[derive(Debug)]
pub struct KlineDecoder {
    lines: LineReader,
    epoch: EpochNormalizer,
    batch_rows: usize,
    seen_data: bool,
    open_time: ColumnBuilder<i64>,
    open: ColumnBuilder<f64>,
    high: ColumnBuilder<f64>,
    low: ColumnBuilder<f64>,
    close: ColumnBuilder<f64>,
    volume: ColumnBuilder<f64>,
    close_time: ColumnBuilder<i64>,
    quote_volume: ColumnBuilder<f64>,
    count: ColumnBuilder<i64>,
    taker_buy_volume: ColumnBuilder<f64>,
    taker_buy_quote_volume: ColumnBuilder<f64>,
}

impl KlineDecoder {
    /// A decoder emitting batches of at most `batch_rows` rows.
    pub fn new(batch_rows: usize) -> Self {
        let cap = batch_rows.min(8192);
        Self {
            lines: LineReader::new(),
            epoch: EpochNormalizer::default(),
            batch_rows,
            seen_data: false,
            open_time: ColumnBuilder::with_capacity(cap),
            open: ColumnBuilder::with_capacity(cap),
            high: ColumnBuilder::with_capacity(cap),
            low: ColumnBuilder::with_capacity(cap),
            close: ColumnBuilder::with_capacity(cap),
            volume: ColumnBuilder::with_capacity(cap),
            close_time: ColumnBuilder::with_capacity(cap),
            quote_volume: ColumnBuilder::with_capacity(cap),
            count: ColumnBuilder::with_capacity(cap),
            taker_buy_volume: ColumnBuilder::with_capacity(cap),
            taker_buy_quote_volume: ColumnBuilder::with_capacity(cap),
        }
    }

    /// Consumes a chunk, returning the batches it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Batch>, PluginError> {
        let mut out = Vec::new();
        let mut lines = std::mem::take(&mut self.lines);
        let result = lines.push(chunk, |line_no, line| {
            self.row(line_no, line)?;
            if self.open_time.len() >= self.batch_rows {
                out.push(self.flush());
            }
            Ok::<(), PluginError>(())
        });
        self.lines = lines;
        result.map(|()| out)
    }

    /// Ends the input, returning the last batches.
    pub fn finish(&mut self) -> Result<Vec<Batch>, PluginError> {
        let mut lines = std::mem::take(&mut self.lines);
        let result = lines.finish(|line_no, line| self.row(line_no, line));
        self.lines = lines;
        result?;
        Ok(if self.open_time.is_empty() {
            Vec::new()
        } else {
            vec![self.flush()]
        })
    }

    fn row(&mut self, line_no: u64, line: &str) -> Result<(), PluginError> {
        if !self.seen_data && csv::is_header(line) {
            // Only the first line of a file may be a header; later text rows
            // fall through to the numeric parse and are reported.
            self.seen_data = true;
            return Ok(());
        }
        self.seen_data = true;
        let Some(f) = csv::split_fields::<11>(line) else {
            let found = line.split(',').count();
            return Err(PluginError::malformed(
                Some(line_no),
                format!("expected at least 11 fields, found {found}"),
            ));
        };
        let open_time = self.epoch.micros(f[0], line_no, "open_time")?;
        let open = csv::parse_float(f[1], line_no, "open")?;
        let high = csv::parse_float(f[2], line_no, "high")?;
        let low = csv::parse_float(f[3], line_no, "low")?;
        let close = csv::parse_float(f[4], line_no, "close")?;
        let volume = csv::parse_float(f[5], line_no, "volume")?;
        let close_time = self.epoch.micros(f[6], line_no, "close_time")?;
        let quote_volume = csv::parse_float(f[7], line_no, "quote_volume")?;
        let count = csv::parse_int(f[8], line_no, "count")?;
        let taker_buy_volume = csv::parse_float(f[9], line_no, "taker_buy_volume")?;
        let taker_buy_quote_volume = csv::parse_float(f[10], line_no, "taker_buy_quote_volume")?;
        self.open_time.push(open_time);
        self.open.push(open);
        self.high.push(high);
        self.low.push(low);
        self.close.push(close);
        self.volume.push(volume);
        self.close_time.push(close_time);
        self.quote_volume.push(quote_volume);
        self.count.push(count);
        self.taker_buy_volume.push(taker_buy_volume);
        self.taker_buy_quote_volume.push(taker_buy_quote_volume);
        Ok(())
    }

    fn flush(&mut self) -> Batch {
        let [t, o, h, l, c, v, ct, qv, n, tbv, tbqv] = COLUMNS;
        columns::batch(vec![
            self.open_time.finish_timestamp_us(t),
            self.open.finish_float64(o),
            self.high.finish_float64(h),
            self.low.finish_float64(l),
            self.close.finish_float64(c),
            self.volume.finish_float64(v),
            self.close_time.finish_timestamp_us(ct),
            self.quote_volume.finish_float64(qv),
            self.count.finish_int64(n),
            self.taker_buy_volume.finish_float64(tbv),
            self.taker_buy_quote_volume.finish_float64(tbqv),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPOT_2024: &str = "1704067200000,42283.58000000,42298.62000000,42261.02000000,42298.61000000,35.92724000,1704067259999,1519032.06433720,1327,14.69437000,621337.08891380,0\n\
1704067260000,42298.62000000,42320.00000000,42298.61000000,42320.00000000,21.50007000,1704067319999,909641.75009750,827,12.85416000,543774.74669420,0\n";

    fn decode(text: &str, chunk: usize) -> Result<Vec<Batch>, PluginError> {
        let mut d = KlineDecoder::new(1000);
        let mut out = Vec::new();
        for c in text.as_bytes().chunks(chunk) {
            out.extend(d.push(c)?);
        }
        out.extend(d.finish()?);
        Ok(out)
    }

    #[test]
    fn milliseconds_become_microseconds() {
        let batches = decode(SPOT_2024, 7).unwrap();
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
    fn microsecond_files_stay_microseconds() {
        let text = "1735689600000000,93576.00,93610.93,93537.50,93610.93,8.21827,1735689659999999,768978.03,1711,3.65,341641.47,0\r\n";
        let b = &decode(text, 5).unwrap()[0];
        assert_eq!(
            b.column("close_time").unwrap().as_timestamp_us().unwrap(),
            &[1_735_689_659_999_999]
        );
    }

    #[test]
    fn header_row_is_skipped_and_no_final_newline_is_fine() {
        let text = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\r\n\
1704067200000,1,2,0.5,1.5,10,1704067259999,15,3,4,6,0";
        let b = &decode(text, 3).unwrap()[0];
        assert_eq!(b.rows, 1);
    }

    #[test]
    fn malformed_rows_name_the_line() {
        let text = format!("{SPOT_2024}1704067320000,abc,1,1,1,1,1704067379999,1,1,1,1,0\n");
        let e = decode(&text, 64).unwrap_err();
        match e {
            PluginError::MalformedInput(m) => {
                assert_eq!(m.line, Some(3));
                assert!(m.message.contains("open"), "{}", m.message);
            }
            other => panic!("unexpected {other}"),
        }
        let e = decode("1704067200000,1,2\n", 64).unwrap_err();
        assert!(e.to_string().contains("found 3"), "{e}");
    }

    #[test]
    fn batches_are_bounded() {
        let mut d = KlineDecoder::new(1);
        let out = d.push(SPOT_2024.as_bytes()).unwrap();
        assert_eq!(out.len(), 2);
        assert!(d.finish().unwrap().is_empty());
    }
}
