//! Writes Binance kline archives in the exact published format: a zip holding
//! one CSV with the same stem, a `.CHECKSUM` sidecar `<sha256>  <zip name>`
//! with no trailing newline; spot files without header, in ms before 2025 and
//! µs from 2025-01-01; futures files with a header row, in ms.

use std::io::Write;

use sha2::{Digest, Sha256};
use time::macros::format_description;

use super::s3::{ARCHIVE_BUCKET, Moto};

/// Timestamp unit of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds (13 digits).
    Millis,
    /// Microseconds (16 digits).
    Micros,
}

/// One kline file.
#[derive(Debug, Clone)]
pub struct KlineFile {
    /// `spot`, `futures/um` or `futures/cm`.
    pub market: &'static str,
    /// e.g. `BTCUSDT`.
    pub symbol: &'static str,
    /// The day.
    pub date: time::Date,
    /// Rows (minutes from midnight).
    pub rows: usize,
}

/// One expected row, as the lake must hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Open time, µs since epoch.
    pub open_time_us: i64,
    /// OHLC, volume, close time (µs), quote volume, count, taker buy volumes.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Volume.
    pub volume: f64,
    /// Close time, µs.
    pub close_time_us: i64,
    /// Quote volume.
    pub quote_volume: f64,
    /// Trade count.
    pub count: i64,
    /// Taker buy base volume.
    pub taker_buy_volume: f64,
    /// Taker buy quote volume.
    pub taker_buy_quote_volume: f64,
}

impl KlineFile {
    /// A spot 1m file.
    pub fn spot(symbol: &'static str, date: time::Date, rows: usize) -> Self {
        Self {
            market: "spot",
            symbol,
            date,
            rows,
        }
    }

    /// A USDⓈ-M futures 1m file.
    pub fn futures_um(symbol: &'static str, date: time::Date, rows: usize) -> Self {
        Self {
            market: "futures/um",
            symbol,
            date,
            rows,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn day(&self) -> String {
        self.date
            .format(format_description!("[year]-[month]-[day]"))
            .expect("date formats")
    }

    /// The zip's file name.
    pub fn zip_name(&self) -> String {
        format!("{}-1m-{}.zip", self.symbol, self.day())
    }

    /// The zip's key in the bucket.
    pub fn key(&self) -> String {
        format!(
            "data/{}/daily/klines/{}/1m/{}",
            self.market,
            self.symbol,
            self.zip_name()
        )
    }

    /// Whether this file has a header row (futures files do).
    pub fn has_header(&self) -> bool {
        self.market != "spot"
    }

    /// The unit Binance uses for this file.
    pub fn unit(&self) -> Unit {
        if self.market == "spot" && self.date >= time::macros::date!(2025 - 01 - 01) {
            Unit::Micros
        } else {
            Unit::Millis
        }
    }

    /// The rows, deterministic from symbol, date and index.
    pub fn expected_rows(&self) -> Vec<Row> {
        let midnight_us = self.date.midnight().assume_utc().unix_timestamp() * 1_000_000;
        let base = 100.0
            + f64::from(self.date.ordinal())
            + if self.symbol == "BTCUSDT" {
                40_000.0
            } else {
                3_000.0
            };
        (0..self.rows)
            .map(|i| {
                let t = midnight_us + i as i64 * 60_000_000;
                let open = base + i as f64 * 0.25;
                Row {
                    open_time_us: t,
                    open,
                    high: open + 1.5,
                    low: open - 0.75,
                    close: open + 0.5,
                    volume: 10.125 + i as f64,
                    close_time_us: t
                        + 59_999_000
                        + if self.unit() == Unit::Micros { 999 } else { 0 },
                    quote_volume: 1000.5 + i as f64,
                    count: 100 + i as i64,
                    taker_buy_volume: 5.0625 + i as f64,
                    taker_buy_quote_volume: 500.25 + i as f64,
                }
            })
            .collect()
    }

    /// The CSV text, CRLF-free, final line without newline as often seen.
    pub fn csv(&self) -> String {
        let mut csv = String::new();
        if self.has_header() {
            csv.push_str("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n");
        }
        let scale = |us: i64| match self.unit() {
            Unit::Millis => us / 1000,
            Unit::Micros => us,
        };
        let lines: Vec<String> = self
            .expected_rows()
            .iter()
            .map(|r| {
                format!(
                    "{},{:.8},{:.8},{:.8},{:.8},{:.8},{},{:.8},{},{:.8},{:.8},0",
                    scale(r.open_time_us),
                    r.open,
                    r.high,
                    r.low,
                    r.close,
                    r.volume,
                    scale(r.close_time_us),
                    r.quote_volume,
                    r.count,
                    r.taker_buy_volume,
                    r.taker_buy_quote_volume
                )
            })
            .collect();
        csv.push_str(&lines.join("\n"));
        csv
    }

    /// The zip bytes: one deflated CSV entry named like the zip.
    pub fn zip(&self) -> Vec<u8> {
        zip_one(
            &self.zip_name().replace(".zip", ".csv"),
            self.csv().as_bytes(),
        )
    }

    /// Uploads the zip and its `.CHECKSUM`.
    pub fn upload(&self, moto: &Moto) -> Vec<u8> {
        let zip = self.zip();
        moto.put(ARCHIVE_BUCKET, &self.key(), zip.clone());
        moto.put(
            ARCHIVE_BUCKET,
            &format!("{}.CHECKSUM", self.key()),
            checksum_file(&zip, &self.zip_name()).into_bytes(),
        );
        zip
    }
}

/// A zip with one deflated entry.
pub fn zip_one(name: &str, content: &[u8]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        writer.start_file(name, options).expect("zip entry");
        writer.write_all(content).expect("zip write");
        writer.finish().expect("zip finish");
    }
    buffer.into_inner()
}

/// A `.CHECKSUM` file's content, without trailing newline as Binance writes it.
pub fn checksum_file(zip: &[u8], zip_name: &str) -> String {
    format!("{}  {zip_name}", sha256_hex(zip))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Uploads `csv` as the archive `key` (a zip holding `<stem>.csv`) with its
/// `.CHECKSUM`, the way Binance publishes any data type.
pub fn upload_csv(moto: &Moto, key: &str, csv: &str) {
    let zip_name = key.rsplit('/').next().expect("key has a file name");
    let zip = zip_one(&zip_name.replace(".zip", ".csv"), csv.as_bytes());
    moto.put(ARCHIVE_BUCKET, key, zip.clone());
    moto.put(
        ARCHIVE_BUCKET,
        &format!("{key}.CHECKSUM"),
        checksum_file(&zip, zip_name).into_bytes(),
    );
}
