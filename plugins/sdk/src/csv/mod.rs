//! CSV helpers for exchange archives, by concern: lines and fields
//! ([`lines`]), the one-pass field cursor of the decoders' fast path
//! ([`cursor`]), numbers (`numbers`, with its SIMD block reader), and
//! epoch and text times ([`time`]). Everything is re-exported here, so a
//! decoder writes `csv::LineReader`, `csv::parse_int`, `csv::FieldCursor`.
//!
//! Owns: splitting a byte stream that arrives in arbitrary chunks into lines
//! (`\n` or `\r\n`, a last line without newline), counting 1-based line
//! numbers, detecting a header row, reading numbers and booleans, and
//! detecting and normalising epoch time units. Exchange archives use
//! unquoted CSV, so fields are split on commas. It must not know any
//! exchange's columns.

pub mod cursor;
pub mod lines;
mod numbers;
#[cfg(test)]
mod tests;
pub mod time;

pub use cursor::FieldCursor;
pub use lines::{DEFAULT_MAX_LINE_BYTES, LineReader, fields, is_header, split_fields};
pub use numbers::{parse_bool, parse_float, parse_int};
pub use time::{EpochNormalizer, EpochUnit, parse_datetime_us, parse_decimal_epoch_us};
