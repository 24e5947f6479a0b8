//! CSV helpers for exchange archives.
//!
//! Owns: splitting a byte stream that arrives in arbitrary chunks into lines
//! (`\n` or `\r\n`, a last line without newline), counting 1-based line
//! numbers, detecting a header row, and detecting and normalising epoch time
//! units. Exchange archives use unquoted CSV, so fields are split on commas.
//! It must not know any exchange's columns.

use crate::PluginError;
use crate::number_block::{self, BlockNumber};

/// Splits chunks into complete lines, carrying a partial last line over to
/// the next chunk. Empty lines are skipped but counted. A line longer than
/// the reader's limit is malformed input, reported as soon as the limit is
/// passed: a payload without newlines must not grow a plugin's memory until
/// the sandbox kills it.
#[derive(Debug)]
pub struct LineReader {
    pending: Vec<u8>,
    line: u64,
    max_line_bytes: usize,
}

/// The longest line a [`LineReader`] accepts by default: exchange CSV rows
/// are a few hundred bytes; a megabyte is no row.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

impl Default for LineReader {
    fn default() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }
}

impl LineReader {
    /// A reader at line 0 that accepts lines of up to
    /// [`DEFAULT_MAX_LINE_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader at line 0 that accepts lines of up to `max_line_bytes`
    /// (without their line ending).
    pub fn with_max_line_bytes(max_line_bytes: usize) -> Self {
        Self {
            pending: Vec::new(),
            line: 0,
            max_line_bytes,
        }
    }

    /// The number of the last line handed out (1-based; 0 before the first).
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// Feeds `chunk`, calling `on_line(line_number, line)` for every complete
    /// line, without its line ending.
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PluginError>,
    {
        let mut rest = chunk;
        if !self.pending.is_empty() {
            match memchr_newline(rest) {
                Some(end) => {
                    self.pending.extend_from_slice(&rest[..end]);
                    rest = &rest[end + 1..];
                    let pending = std::mem::take(&mut self.pending);
                    self.emit(&pending, &mut on_line)?;
                }
                None => {
                    self.pending.extend_from_slice(rest);
                    return self.check_pending();
                }
            }
        }
        // The complete lines of the chunk are checked for UTF-8 in one pass,
        // not line by line; only invalid input takes the per-line path,
        // which names the offending line.
        if let Some(last) = memchr::memrchr(b'\n', rest) {
            let (complete, tail) = rest.split_at(last + 1);
            match simdutf8::basic::from_utf8(complete) {
                Ok(text) => {
                    let mut start = 0;
                    for end in memchr::memchr_iter(b'\n', complete) {
                        self.emit_text(&text[start..end], &mut on_line)?;
                        start = end + 1;
                    }
                }
                Err(_) => {
                    let mut bytes = complete;
                    while let Some(end) = memchr_newline(bytes) {
                        self.emit(&bytes[..end], &mut on_line)?;
                        bytes = &bytes[end + 1..];
                    }
                }
            }
            rest = tail;
        }
        self.pending.extend_from_slice(rest);
        self.check_pending()
    }

    /// Fails once the unfinished line is already longer than a line may be.
    fn check_pending<E: From<PluginError>>(&self) -> Result<(), E> {
        // One byte more than the limit may be the `\r` of a `\r\n` whose
        // `\n` is in the next chunk.
        if self.pending.len() > self.max_line_bytes + 1 {
            return Err(self.too_long(self.line + 1).into());
        }
        Ok(())
    }

    fn too_long(&self, line: u64) -> PluginError {
        PluginError::malformed(
            Some(line),
            format!(
                "the line is longer than {} bytes (no line ending within them)",
                self.max_line_bytes
            ),
        )
    }

    /// Signals the end of input, emitting a last line that had no newline.
    pub fn finish<E>(
        &mut self,
        mut on_line: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PluginError>,
    {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        self.emit(&pending, &mut on_line)
    }

    fn emit<E>(
        &mut self,
        raw: &[u8],
        on_line: &mut impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PluginError>,
    {
        match std::str::from_utf8(raw) {
            Ok(text) => self.emit_text(text, on_line),
            Err(e) => {
                self.line += 1;
                Err(PluginError::malformed(Some(self.line), format!("not UTF-8: {e}")).into())
            }
        }
    }

    fn emit_text<E>(
        &mut self,
        text: &str,
        on_line: &mut impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PluginError>,
    {
        self.line += 1;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return Ok(());
        }
        if text.len() > self.max_line_bytes {
            return Err(self.too_long(self.line).into());
        }
        on_line(self.line, text)
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    // SIMD where the target has it (x86-64 natively; wasm32 with simd128).
    memchr::memchr(b'\n', bytes)
}

/// The fields of an unquoted CSV line, like `line.split(',')` but with a
/// vectorised search for the commas (the decoders' hot loop).
pub fn fields(line: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut commas = memchr::memchr_iter(b',', line.as_bytes());
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        // Commas are ASCII, so every cut is on a character boundary.
        match commas.next() {
            Some(comma) => {
                let field = line.get(start..comma);
                start = comma + 1;
                field
            }
            None => {
                done = true;
                line.get(start..)
            }
        }
    })
}

/// Splits an unquoted CSV line into exactly `N` leading fields, ignoring any
/// extra trailing fields. Returns `None` when there are fewer than `N`.
pub fn split_fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut parts = fields(line);
    for slot in &mut out {
        *slot = parts.next()?;
    }
    Some(out)
}

/// Whether a line is a header row: its first field is not a number.
///
/// Binance archives sometimes carry a header and sometimes not, for the same
/// market, so this must be decided per file from the data itself.
pub fn is_header(line: &str) -> bool {
    let first = line.split(',').next().unwrap_or("").trim();
    first.is_empty() || first.parse::<f64>().is_err()
}

/// The unit of an integer epoch timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Seconds (10 digits for current dates).
    Seconds,
    /// Milliseconds (13 digits for current dates).
    Millis,
    /// Microseconds (16 digits for current dates).
    Micros,
}

impl EpochUnit {
    /// Detects the unit from one value's magnitude: each unit is accepted for
    /// instants between 1973 and about 5000 AD, ranges that do not overlap.
    pub fn detect(value: i64) -> Option<EpochUnit> {
        match value {
            100_000_000..=99_999_999_999 => Some(EpochUnit::Seconds),
            100_000_000_000..=99_999_999_999_999 => Some(EpochUnit::Millis),
            100_000_000_000_000..=99_999_999_999_999_999 => Some(EpochUnit::Micros),
            _ => None,
        }
    }

    /// Converts a value in this unit to microseconds.
    pub fn to_micros(self, value: i64) -> i64 {
        match self {
            EpochUnit::Seconds => value.saturating_mul(1_000_000),
            EpochUnit::Millis => value.saturating_mul(1_000),
            EpochUnit::Micros => value,
        }
    }

    /// Human name, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "seconds",
            EpochUnit::Millis => "milliseconds",
            EpochUnit::Micros => "microseconds",
        }
    }
}

/// Per-file epoch normalisation: the first value fixes the unit, and every
/// later value must have the same magnitude, so a file mixing units is
/// reported instead of silently producing wrong instants.
#[derive(Debug, Default, Clone, Copy)]
pub struct EpochNormalizer {
    unit: Option<EpochUnit>,
}

impl EpochNormalizer {
    /// The unit fixed by the first value, if any was seen.
    pub fn unit(&self) -> Option<EpochUnit> {
        self.unit
    }

    /// Parses `field` as an integer epoch and returns microseconds.
    pub fn micros(&mut self, field: &str, line: u64, column: &str) -> Result<i64, PluginError> {
        let value: i64 = parse_int(field, line, column)?;
        let detected = EpochUnit::detect(value).ok_or_else(|| {
            PluginError::malformed(
                Some(line),
                format!("{column}: {value} is not an epoch timestamp in s, ms or µs"),
            )
        })?;
        match self.unit {
            None => self.unit = Some(detected),
            Some(unit) if unit != detected => {
                return Err(PluginError::malformed(
                    Some(line),
                    format!(
                        "{column}: {value} is in {} but this file's timestamps are in {}",
                        detected.name(),
                        unit.name()
                    ),
                ));
            }
            Some(_) => {}
        }
        Ok(detected.to_micros(value))
    }
}

/// Parses an integer field, naming the column and line on failure.
pub fn parse_int(field: &str, line: u64, column: &str) -> Result<i64, PluginError> {
    let text = field.trim_ascii();
    short_int(text)
        .or_else(|| text.parse::<i64>().ok())
        .ok_or_else(|| {
            PluginError::malformed(Some(line), format!("{column}: `{field}` is not an integer"))
        })
}

/// Up to 18 digits with an optional sign, which cannot overflow an `i64`,
/// so no per-digit overflow check. `str::parse` checks every digit beyond
/// 15, and epoch microseconds have 16; in wasm32 the check is a software
/// 128-bit multiply, which made integer parsing a hot spot of the decoders.
fn short_int(text: &str) -> Option<i64> {
    whole(text, plain_int(text.as_bytes(), 0))
}

/// A scan's value when it consumed all of `text` (a comma stops a scan).
fn whole<T>(text: &str, scanned: Option<(T, usize)>) -> Option<T> {
    scanned.and_then(|(value, end)| (end == text.len()).then_some(value))
}

/// [`short_int`]'s form read from `bytes[start..]` up to the first comma or
/// the end: the value and where it stopped.
#[inline(always)]
fn plain_int(bytes: &[u8], start: usize) -> Option<(i64, usize)> {
    read_plain_int(bytes, start, number_block::VECTORISED)
}

/// [`plain_int`], reading a whole number from one block first if `blocks`.
#[inline(always)]
fn read_plain_int(bytes: &[u8], start: usize, blocks: bool) -> Option<(i64, usize)> {
    let (negative, digits_start) = sign(bytes, start);
    if let Some((number, end)) = block_number(bytes, digits_start, blocks) {
        if number.has_point {
            return None;
        }
        // 16 digits at most.
        let value = number.mantissa as i64;
        return Some((if negative { -value } else { value }, end));
    }
    let (value, at, after) = digit_run(bytes, digits_start, 0);
    if !ends_field(bytes, at, after) || !(1..=18).contains(&(at - digits_start)) {
        return None;
    }
    // 18 digits fit an i64.
    let value = value as i64;
    Some((if negative { -value } else { value }, at))
}

/// The plain number at `at` when `blocks` (where blocks are read with SIMD:
/// [`number_block::VECTORISED`]) and the 16 bytes from there hold all of it
/// (most fields of exchange files), and where it ends; `None` leaves the
/// field to the word-by-word reading, which accepts longer numbers and
/// fields near the line's end, and declines what is not plain.
#[inline(always)]
fn block_number(bytes: &[u8], at: usize, blocks: bool) -> Option<(BlockNumber, usize)> {
    if !blocks {
        return None;
    }
    let block: &[u8; 16] = bytes.get(at..at.checked_add(16)?)?.try_into().ok()?;
    let number = number_block::read(block)?;
    let end = at + number.len;
    matches!(bytes.get(end), Some(b',') | None).then_some((number, end))
}

/// Whether the number is negative, and where its digits start.
#[inline(always)]
fn sign(bytes: &[u8], start: usize) -> (bool, usize) {
    let first = bytes.get(start).copied().unwrap_or(0);
    // Digits and the point sort after both signs: one comparison for most
    // numbers, where a `match` became a jump table in WebAssembly.
    if first > b'-' {
        return (false, start);
    }
    match first {
        b'-' => (true, start + 1),
        b'+' => (false, start + 1),
        _ => (false, start),
    }
}

/// Appends the run of digits at `at` to `value` (wrapping past 19 digits,
/// which callers refuse): the new value, where the run ended, and the byte
/// there (0 at the end).
#[inline(always)]
fn digit_run(bytes: &[u8], at: usize, value: u64) -> (u64, usize, u8) {
    short_digit_run(bytes, at, value).unwrap_or_else(|| long_digit_run(bytes, at, value))
}

/// [`digit_run`] for a run of at most 16 digits (every number of an
/// exchange file but the rarest); `None` for a longer one. Two words at most
/// and no loop, so neither a loop's branch nor wasmtime's interruption check
/// on its every turn: a timestamp of 16 digits took three turns of the loop,
/// a decimal with eight places two.
#[inline(always)]
fn short_digit_run(bytes: &[u8], at: usize, value: u64) -> Option<(u64, usize, u8)> {
    let (count, digits, after) = word_digits(bytes, at);
    let value = append_digits(value, count, digits);
    if !after.is_ascii_digit() {
        return Some((value, at + count, after));
    }
    let (count, digits, after) = word_digits(bytes, at + 8);
    (!after.is_ascii_digit()).then(|| (append_digits(value, count, digits), at + 8 + count, after))
}

/// [`digit_run`] for the runs [`short_digit_run`] declines, out of line:
/// inlined, it would crowd the common path's registers.
#[cold]
#[inline(never)]
fn long_digit_run(bytes: &[u8], mut at: usize, mut value: u64) -> (u64, usize, u8) {
    loop {
        let (count, digits, after) = word_digits(bytes, at);
        value = append_digits(value, count, digits);
        at += count;
        if !after.is_ascii_digit() {
            return (value, at, after);
        }
    }
}

/// The digits at the start of the word at `at`: how many (0 to 8), their
/// value, and the byte after them (0 at the end). A byte that ends fewer
/// than eight is already in the word; after eight, only that byte is read.
#[inline(always)]
fn word_digits(bytes: &[u8], at: usize) -> (usize, u64, u8) {
    let word = word_at(bytes, at);
    let (count, digits) = leading_digits(word);
    let after = match count {
        8 => bytes.get(at + 8).copied().unwrap_or(0),
        _ => (word >> (8 * count)) as u8,
    };
    (count, digits, after)
}

/// `value` followed by `count` more digits worth `digits` (wrapping).
#[inline(always)]
fn append_digits(value: u64, count: usize, digits: u64) -> u64 {
    value
        .wrapping_mul(POWERS_OF_TEN[count])
        .wrapping_add(digits)
}

/// Whether a field ends at `at`, where `byte` is: a comma or the end (a
/// zero byte inside the line is neither).
#[inline(always)]
fn ends_field(bytes: &[u8], at: usize, byte: u8) -> bool {
    byte == b',' || at == bytes.len()
}

/// `10^count` for the digit counts [`leading_digits`] returns.
const POWERS_OF_TEN: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// A one in every byte of a word: times a byte, that byte in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;

/// The eight bytes at `at` as a little-endian word, zero bytes past the end
/// of `bytes` (a zero byte is not a digit, so it ends a number).
#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> u64 {
    if let Some(eight) = bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
    {
        return u64::from_le_bytes(eight);
    }
    let mut padded = [0u8; 8];
    let rest = bytes.get(at..).unwrap_or_default();
    padded[..rest.len()].copy_from_slice(rest);
    u64::from_le_bytes(padded)
}

/// The run of ASCII digits at the start of `word` (eight bytes of text, in
/// order, as [`word_at`] loads them): how many (0 to 8) and their value.
/// Eight digits at a time, without a loop: wasmtime checks for
/// interruption on every loop iteration, and a byte-at-a-time loop made
/// that check a good part of the decoders' time.
#[inline(always)]
fn leading_digits(word: u64) -> (usize, u64) {
    // Digits become 0..=9; a byte that was not a digit becomes 10..=255.
    let values = word ^ (0x30 * ONES);
    // The top bit of each byte that is not a digit: `+ 0x76` carries a byte
    // of 10 or more into its top bit, `| values` catches 128 and more. A
    // carry out of a byte only runs into later bytes, after a non-digit.
    let not_digits = (values.wrapping_add(0x76 * ONES) | values) & (0x80 * ONES);
    let count = (not_digits.trailing_zeros() / 8) as usize;
    if count == 0 {
        return (0, 0);
    }
    // The digits into the top bytes, zeros (leading zeros) below them, then
    // pairs, quads and the octet combined (the first byte is the most
    // significant digit).
    let mut value = values << (8 * (8 - count));
    value = (value.wrapping_mul(10) + (value >> 8)) & 0x00ff_00ff_00ff_00ff;
    value = (value.wrapping_mul(100) + (value >> 16)) & 0x0000_ffff_0000_ffff;
    value = value.wrapping_mul(10_000) + (value >> 32);
    (count, value & 0xffff_ffff)
}

/// Where the first comma of `word` (eight bytes of text, in order, as
/// [`word_at`] loads them) is, if it has one.
#[inline(always)]
fn first_comma(word: u64) -> Option<usize> {
    let zeroed = word ^ (u64::from(b',') * ONES);
    // The top bit of the first zero byte (bytes after it may be marked too,
    // by the borrow; only the first mark is used).
    let first_zero = zeroed.wrapping_sub(ONES) & !zeroed & (0x80 * ONES);
    (first_zero != 0).then(|| (first_zero.trailing_zeros() / 8) as usize)
}

/// Powers of ten that a double holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal (`-123.4567`: sign, digits, at most one point) whose
/// digits form an integer below 2^53 and which has at most 22 digits after
/// the point: the value is `digits / 10^decimals`, two exact doubles and one
/// correctly rounded division, so the result is exactly what a full parser
/// returns (Clinger's fast path). Prices and quantities in exchange files
/// are such decimals; anything else (exponents, long mantissas) is `None`
/// and goes to the full parser. In wasm32 this loop is about twice as fast
/// as the general parser, and floats are most of a kline file's fields.
fn short_decimal(text: &str) -> Option<f64> {
    whole(text, plain_decimal(text.as_bytes(), 0))
}

/// [`short_decimal`]'s form read from `bytes[start..]` up to the first
/// comma or the end: the value and where it stopped.
#[inline(always)]
fn plain_decimal(bytes: &[u8], start: usize) -> Option<(f64, usize)> {
    read_plain_decimal(bytes, start, number_block::VECTORISED)
}

/// [`plain_decimal`], reading a whole number from one block first if
/// `blocks`.
#[inline(always)]
fn read_plain_decimal(bytes: &[u8], start: usize, blocks: bool) -> Option<(f64, usize)> {
    let (negative, digits_start) = sign(bytes, start);
    if let Some((number, end)) = block_number(bytes, digits_start, blocks)
        && number.mantissa < 1 << 53
    {
        // At most 15 decimals: both are exact doubles (see below). Below
        // 2^53 the integer's conversion is a signed one, a single
        // instruction.
        let value = number.mantissa as i64 as f64 / EXACT_POWERS_OF_TEN[number.decimals];
        return Some((if negative { -value } else { value }, end));
    }
    let (mut mantissa, mut at, mut after) = digit_run(bytes, digits_start, 0);
    let mut point = None;
    if after == b'.' {
        point = Some(at);
        (mantissa, at, after) = digit_run(bytes, at + 1, mantissa);
    }
    if !ends_field(bytes, at, after) {
        return None;
    }
    let (digits, decimals) = match point {
        Some(point) => (at - digits_start - 1, at - point - 1),
        None => (at - digits_start, 0),
    };
    // Up to 19 digits the mantissa has not wrapped (10^19 < 2^64).
    if digits == 0 || digits > 19 || mantissa >= 1 << 53 || decimals >= EXACT_POWERS_OF_TEN.len() {
        return None;
    }
    let value = mantissa as f64 / EXACT_POWERS_OF_TEN[decimals];
    Some((if negative { -value } else { value }, at))
}

/// Reads an unquoted CSV line field by field in one pass over its bytes,
/// parsing numbers while it looks for their ends: the decoders' fast path
/// (splitting first and parsing after reads every byte twice or more).
///
/// Each method consumes the next field and returns `None` when it is not in
/// the plain form the method reads (surrounding spaces, an exponent, an
/// empty field, no field left, …). The cursor is then spent: the caller
/// reads the line again the general way ([`fields`] and the `parse_*`
/// functions), which accepts every form they do and names what is wrong.
#[derive(Debug, Clone)]
pub struct FieldCursor<'a> {
    line: &'a str,
    /// Where the next field starts; past the line's end once the last one
    /// was read (a plain index rather than an `Option`: one value less to
    /// keep in a register in the decoders' loops).
    next: usize,
}

impl<'a> FieldCursor<'a> {
    /// A cursor before the first field of `line`.
    pub fn new(line: &'a str) -> Self {
        Self { line, next: 0 }
    }

    /// Where the next field starts, unless the last one was read.
    #[inline(always)]
    fn start(&self) -> Option<usize> {
        (self.next <= self.line.len()).then_some(self.next)
    }

    /// Moves past the field that ended at `end` (a comma or the line's end).
    #[inline(always)]
    fn advance(&mut self, end: usize) {
        self.next = end + 1;
    }

    /// A plain decimal (see [`parse_float`]'s fast path).
    #[inline(always)]
    pub fn decimal(&mut self) -> Option<f64> {
        let (value, end) = plain_decimal(self.line.as_bytes(), self.start()?)?;
        self.advance(end);
        Some(value)
    }

    /// An integer of at most 18 digits with an optional sign.
    #[inline(always)]
    pub fn integer(&mut self) -> Option<i64> {
        let (value, end) = plain_int(self.line.as_bytes(), self.start()?)?;
        self.advance(end);
        Some(value)
    }

    /// Where the field starting at `start` ends: its comma or the line's end.
    #[inline(always)]
    fn field_end(&self, start: usize) -> Option<usize> {
        let bytes = self.line.as_bytes();
        let rest = bytes.get(start..)?;
        // The fields read as text or skipped are mostly short (a side, a
        // flag, an unused `0`): one word often holds their end, without the
        // call and set-up of a vectorised search.
        if let Some(offset) = first_comma(word_at(bytes, start)) {
            return Some(start + offset);
        }
        if rest.len() <= 8 {
            return Some(bytes.len());
        }
        Some(start + 8 + memchr::memchr(b',', &rest[8..]).unwrap_or(rest.len() - 8))
    }

    /// A non-empty field without surrounding spaces, as it is.
    #[inline(always)]
    pub fn text(&mut self) -> Option<&'a str> {
        let start = self.start()?;
        let end = self.field_end(start)?;
        // Commas are ASCII, so the cut is on a character boundary.
        let field = self.line.get(start..end)?;
        let bytes = field.as_bytes();
        if bytes.first()?.is_ascii_whitespace() || bytes.last()?.is_ascii_whitespace() {
            return None;
        }
        self.advance(end);
        Some(field)
    }

    /// `true` or `false` in any letter case.
    #[inline(always)]
    pub fn boolean(&mut self) -> Option<bool> {
        let field = self.text()?;
        if field.eq_ignore_ascii_case("true") {
            Some(true)
        } else if field.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }

    /// How many fields the line has after those read: 0 once the last one
    /// was read.
    #[inline(always)]
    pub fn fields_left(&self) -> usize {
        match self.line.as_bytes().get(self.next..) {
            Some(rest) => 1 + memchr::memchr_iter(b',', rest).count(),
            None => 0,
        }
    }

    /// Skips a field, whatever it holds.
    #[inline(always)]
    pub fn skip(&mut self) -> Option<()> {
        let end = self.field_end(self.start()?)?;
        self.advance(end);
        Some(())
    }
}

/// Parses a decimal field, naming the column and line on failure.
pub fn parse_float(field: &str, line: u64, column: &str) -> Result<f64, PluginError> {
    let text = field.trim_ascii();
    let value = match short_decimal(text) {
        Some(value) => value,
        None => fast_float2::parse::<f64, _>(text).map_err(|_| {
            PluginError::malformed(Some(line), format!("{column}: `{field}` is not a number"))
        })?,
    };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(PluginError::malformed(
            Some(line),
            format!("{column}: `{field}` is not a finite number"),
        ))
    }
}

/// Parses `true`/`false` in any letter case (spot files say `True`).
pub fn parse_bool(field: &str, line: u64, column: &str) -> Result<bool, PluginError> {
    let field = field.trim_ascii();
    if field.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if field.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(PluginError::malformed(
            Some(line),
            format!("{column}: `{field}` is not true or false"),
        ))
    }
}

/// Parses a UTC text datetime `YYYY-MM-DD HH:MM:SS` (a `T` separator and
/// fractional seconds are accepted) into microseconds since the epoch.
pub fn parse_datetime_us(field: &str, line: u64, column: &str) -> Result<i64, PluginError> {
    let bad = || {
        PluginError::malformed(
            Some(line),
            format!("{column}: `{field}` is not a YYYY-MM-DD HH:MM:SS datetime"),
        )
    };
    let text = field.trim_ascii();
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<i64>().ok());
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return Err(bad());
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut micros = 0;
    if let Some(fraction) = text.get(19..).filter(|f| !f.is_empty()) {
        let digits = fraction.strip_prefix('.').ok_or_else(bad)?;
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|d| d.is_ascii_digit()) {
            return Err(bad());
        }
        micros = digits.parse::<i64>().map_err(|_| bad())? * 10_i64.pow(6 - digits.len() as u32);
    }
    let days = crate::dates::days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<(u64, String)> {
        let mut reader = LineReader::new();
        let mut out = Vec::new();
        for chunk in chunks {
            reader
                .push::<PluginError>(chunk, |n, l| {
                    out.push((n, l.to_owned()));
                    Ok(())
                })
                .unwrap();
        }
        reader
            .finish::<PluginError>(|n, l| {
                out.push((n, l.to_owned()));
                Ok(())
            })
            .unwrap();
        out
    }

    fn malformed_line(error: PluginError) -> (Option<u64>, String) {
        match error {
            PluginError::MalformedInput(malformed) => (malformed.line, malformed.message),
            other => panic!("malformed input expected: {other:?}"),
        }
    }

    #[test]
    fn a_line_without_end_is_malformed_once_it_passes_the_limit() {
        let mut reader = LineReader::with_max_line_bytes(1000);
        let mut seen = Vec::new();
        let mut on_line = |n: u64, line: &str| {
            seen.push((n, line.len()));
            Ok::<(), PluginError>(())
        };
        reader.push(b"first\n", &mut on_line).unwrap();
        let zeros = [0u8; 300];
        let mut pushed = 0;
        let error = loop {
            match reader.push(&zeros, &mut on_line) {
                Ok(()) => pushed += zeros.len(),
                Err(error) => break error,
            }
            assert!(
                pushed < 10_000,
                "a 1,000-byte limit must stop a line without end"
            );
        };
        assert_eq!(pushed, 900, "the fourth chunk passes the limit");
        let (line, message) = malformed_line(error);
        assert_eq!(line, Some(2));
        assert!(message.contains("longer than 1000 bytes"), "{message}");
        assert_eq!(seen, vec![(1, 5)]);
    }

    #[test]
    fn a_complete_line_over_the_limit_is_malformed_and_one_at_it_is_not() {
        let at_limit = format!("{}\r\n", "7".repeat(64));
        let over = format!("{}\n", "7".repeat(65));
        let mut reader = LineReader::with_max_line_bytes(64);
        let mut seen = 0;
        // The `\r\n` split across two chunks, then a whole chunk of lines.
        reader
            .push(&at_limit.as_bytes()[..65], |_, _| Ok::<(), PluginError>(()))
            .unwrap();
        reader
            .push(&at_limit.as_bytes()[65..], |_, line| {
                seen += line.len();
                Ok::<(), PluginError>(())
            })
            .unwrap();
        assert_eq!(seen, 64);
        let error = reader
            .push(format!("{at_limit}{over}").as_bytes(), |_, _| {
                Ok::<(), PluginError>(())
            })
            .unwrap_err();
        assert_eq!(malformed_line(error).0, Some(3));
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let mut reader = LineReader::new();
        let mut seen = Vec::new();
        let error = reader
            .push(b"a,1\nb,2\nc,\xff\nd,4\n", |n, line| {
                seen.push((n, line.to_owned()));
                Ok::<(), PluginError>(())
            })
            .unwrap_err();
        let PluginError::MalformedInput(malformed) = error else {
            panic!("malformed input expected: {error:?}");
        };
        assert_eq!(malformed.line, Some(3));
        assert!(malformed.message.contains("UTF-8"), "{}", malformed.message);
        assert_eq!(seen, vec![(1, "a,1".to_owned()), (2, "b,2".to_owned())]);
    }

    #[test]
    fn integers_parse_like_str_parse() {
        for text in [
            "0",
            "7",
            "-12",
            "+12",
            "1735689600000000",
            // Runs of 8, 9, 16 and 17 digits: where the parser reads
            // another word, or falls back to its loop.
            "12345678",
            "123456789",
            "1234567890123456",
            "12345678901234567",
            "999999999999999999",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(
                parse_int(text, 1, "c").ok(),
                text.parse::<i64>().ok(),
                "{text}"
            );
        }
        for bad in [
            "",
            "-",
            "+",
            "1.5",
            "12a",
            "9223372036854775808",
            "1 2",
            "12345678a",
            "1234567812345678a",
            "123456781234567a8",
        ] {
            assert!(parse_int(bad, 1, "c").is_err(), "{bad:?}");
        }
        assert_eq!(parse_int(" 42 ", 1, "c").ok(), Some(42));
    }

    /// 20,000 random runs of 1 to 16 digits (xorshift from `seed`), each
    /// shaped by `shape` with a random number to place a point by.
    fn random_numbers(seed: u64, shape: impl Fn(String, usize) -> String) -> Vec<String> {
        let mut state = seed;
        (0..20_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let digits = format!("{}", state % 10u64.pow((state >> 60) as u32 + 1));
                shape(digits, (state >> 32) as usize)
            })
            .collect()
    }

    /// Numbers read from one block (as guests read them) and word by word
    /// (as native builds do) agree, whatever follows them in the line.
    #[test]
    fn blocks_and_words_read_numbers_alike() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "+7",
            "1.",
            ".5",
            "-.5",
            ".",
            "-",
            "1.2.3",
            "12a",
            "93000.12",
            "42283.58000000",
            "1519032.06433720",
            "9007199254740991",
            "9007199254740993",
            "1735689600000000",
            "17356896000000001",
            "1234567.87654321",
            "123456789012345.6",
            "0.000000000000001",
            "1e5",
            " 5",
            "5 ",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        // Random numbers of every length, with a point anywhere or none.
        cases.extend(random_numbers(
            0x9e37_79b9_7f4a_7c15,
            |digits, place| match place % (digits.len() + 2) {
                0 => digits,
                point => format!("{}.{}", &digits[..point - 1], &digits[point - 1..]),
            },
        ));
        for text in &cases {
            // Followed by a field, by the line's end, and by a bad byte.
            for line in [
                format!("{text},1,2,3,4,5,6,7,8"),
                text.clone(),
                format!("{text}x2345678901234567"),
            ] {
                let bytes = line.as_bytes();
                let decimal = |blocks| {
                    read_plain_decimal(bytes, 0, blocks).map(|(v, end)| (v.to_bits(), end))
                };
                assert_eq!(decimal(true), decimal(false), "{line}");
                assert_eq!(
                    read_plain_int(bytes, 0, true),
                    read_plain_int(bytes, 0, false),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn decimals_parse_exactly_like_str_parse() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "+0",
            "0.0",
            "-0.0",
            "1.",
            ".5",
            "-.5",
            "93000.12",
            "0.00000001",
            "0.12345678",
            "12345.12345678",
            "9007199254740991",
            "9007199254740992",
            "9007199254740993",
            "0.9007199254740993",
            "123456789012345678",
            "1e5",
            "1.5E-3",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "00000000000000000001",
            "1234567890123456789",
            "12345678901234567890",
            "12345678901234567.5",
            "1.12345678901234567",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        // Random decimals of every length and point position.
        cases.extend(random_numbers(0x2545_f491_4f6c_dd1d, |digits, place| {
            let point = place % (digits.len() + 1);
            format!("{}.{}", &digits[..point], &digits[point..])
        }));
        for text in &cases {
            let expected = text.parse::<f64>().ok();
            assert_eq!(
                parse_float(text, 1, "c").ok().map(f64::to_bits),
                expected.map(f64::to_bits),
                "{text}"
            );
        }
        for bad in [
            "",
            "-",
            ".",
            "1.2.3",
            "12a",
            "1,5",
            "nan",
            "inf",
            "--1",
            "1234567a.5",
            "0.1234567:",
            "12/45678",
            "9999999/.99999999",
        ] {
            assert!(parse_float(bad, 1, "c").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fields_split_like_str_split() {
        for line in ["a,b,,c", "", ",", "x", "1,2,3,", ",lead", "é,ü,ß"] {
            assert_eq!(
                fields(line).collect::<Vec<_>>(),
                line.split(',').collect::<Vec<_>>(),
                "{line:?}"
            );
        }
    }

    #[test]
    fn lines_split_across_chunks_crlf_and_no_final_newline() {
        let lines = collect(&[b"a,1\r\nb,", b"2\r", b"\n\nc,3"]);
        assert_eq!(
            lines,
            vec![(1, "a,1".into()), (2, "b,2".into()), (4, "c,3".into())]
        );
    }

    #[test]
    fn one_byte_chunks_give_the_same_lines() {
        let text = b"x,1\ny,2\r\nz,3\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(collect(&chunks).len(), 3);
    }

    #[test]
    fn header_detection_is_by_content() {
        assert!(is_header("open_time,open,high"));
        assert!(!is_header("1704067200000,42283.58,42298.62"));
    }

    #[test]
    fn epoch_units_by_magnitude() {
        assert_eq!(EpochUnit::detect(1_704_067_200), Some(EpochUnit::Seconds));
        assert_eq!(
            EpochUnit::detect(1_704_067_200_000),
            Some(EpochUnit::Millis)
        );
        assert_eq!(
            EpochUnit::detect(1_735_689_600_000_000),
            Some(EpochUnit::Micros)
        );
        assert_eq!(EpochUnit::detect(42), None);
    }

    #[test]
    fn a_file_mixing_units_is_malformed() {
        let mut n = EpochNormalizer::default();
        assert_eq!(
            n.micros("1704067200000", 1, "t").unwrap(),
            1_704_067_200_000_000
        );
        let err = n.micros("1735689600000000", 2, "t").unwrap_err();
        assert!(matches!(err, PluginError::MalformedInput(m) if m.line == Some(2)));
    }

    #[test]
    fn the_cursor_reads_what_the_general_path_reads_or_declines() {
        let fields_seen = [
            "0",
            "-12",
            "+7",
            "93000.12",
            "0.00000001",
            "1.",
            ".5",
            "-.5",
            "-0",
            "",
            " 1",
            "1 ",
            "1e5",
            "nan",
            "True",
            "false",
            "FALSE",
            "yes",
            "BTCUSDT",
            " x",
            "1735689600000000",
            "1234567890123456789",
            "9007199254740993",
            "12345678901234567890",
            "1.2.3",
            "é",
        ];
        for field in fields_seen {
            for line in [field.to_owned(), format!("{field},next")] {
                let general_float = parse_float(field, 1, "c").ok().map(f64::to_bits);
                if let Some(value) = FieldCursor::new(&line).decimal() {
                    assert_eq!(Some(value.to_bits()), general_float, "{line:?}");
                }
                if let Some(value) = FieldCursor::new(&line).integer() {
                    assert_eq!(Some(value), parse_int(field, 1, "c").ok(), "{line:?}");
                }
                if let Some(value) = FieldCursor::new(&line).boolean() {
                    assert_eq!(Some(value), parse_bool(field, 1, "c").ok(), "{line:?}");
                }
                if let Some(value) = FieldCursor::new(&line).text() {
                    assert_eq!(value, field.trim_ascii(), "{line:?}");
                    assert!(!value.is_empty());
                }
            }
        }
        // The plain forms are taken, the rest declined.
        assert_eq!(FieldCursor::new("93000.12").decimal(), Some(93000.12));
        assert_eq!(FieldCursor::new("1e5").decimal(), None);
        assert_eq!(FieldCursor::new(" 1").integer(), None);
        assert_eq!(FieldCursor::new("").text(), None);
        assert_eq!(FieldCursor::new("True").boolean(), Some(true));
    }

    #[test]
    fn the_cursor_walks_fields_in_order_and_stops_at_the_end() {
        let mut cursor = FieldCursor::new("1735689600000000,93000.12,x,,true");
        assert_eq!(cursor.integer(), Some(1_735_689_600_000_000));
        assert_eq!(cursor.decimal(), Some(93000.12));
        assert_eq!(cursor.skip(), Some(()));
        assert_eq!(cursor.skip(), Some(()));
        assert_eq!(cursor.boolean(), Some(true));
        assert_eq!(cursor.skip(), None, "no field after the last");
        let mut trailing = FieldCursor::new("1,");
        assert_eq!(trailing.integer(), Some(1));
        assert_eq!(trailing.text(), None, "the empty last field");
        assert_eq!(trailing.skip(), Some(()));
        assert_eq!(trailing.skip(), None);
    }

    #[test]
    fn fields_of_every_length_end_at_their_comma() {
        // Around the word the cursor looks at before searching further.
        for length in 0..20 {
            let field = "x".repeat(length);
            for line in [
                format!("{field},last"),
                format!("{field},,last"),
                field.clone(),
            ] {
                let expected: Vec<&str> = line.split(',').collect();
                let mut cursor = FieldCursor::new(&line);
                let mut read = Vec::new();
                for field in &expected {
                    if field.is_empty() {
                        assert_eq!(cursor.skip(), Some(()), "{line:?}");
                        read.push("");
                    } else {
                        read.push(cursor.text().expect(&line));
                    }
                }
                assert_eq!(read, expected);
                assert_eq!(cursor.skip(), None, "{line:?}: no field after the last");
            }
        }
    }

    #[test]
    fn split_fields_takes_leading_fields() {
        assert_eq!(split_fields::<2>("a,b,c"), Some(["a", "b"]));
        assert_eq!(split_fields::<3>("a,b"), None);
    }

    #[test]
    fn text_datetimes_are_utc_micros() {
        assert_eq!(parse_datetime_us("1970-01-01 00:00:00", 1, "t").unwrap(), 0);
        assert_eq!(
            parse_datetime_us("2024-03-01 00:05:00", 1, "t").unwrap(),
            1_709_251_500_000_000
        );
        assert_eq!(
            parse_datetime_us("2024-02-29T23:59:59.5", 1, "t").unwrap(),
            1_709_251_199_500_000
        );
        assert!(parse_datetime_us("create_time", 1, "t").is_err());
        assert!(parse_datetime_us("2024-13-01 00:00:00", 1, "t").is_err());
    }

    #[test]
    fn bools_in_any_case() {
        assert!(parse_bool("True", 1, "x").unwrap());
        assert!(!parse_bool("false", 1, "x").unwrap());
        assert!(parse_bool("yes", 1, "x").is_err());
    }
}
