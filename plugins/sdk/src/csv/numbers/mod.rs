//! Numbers in CSV fields: integers, decimals and booleans, read by one
//! module with two readers — word by word ([`read_plain_int`],
//! [`read_plain_decimal`]) and, in guests with SIMD, a whole number from
//! one 16-byte block ([`block`]) — and the general parsers they fall back
//! to.
//!
//! Owns: the plain forms read fast (digits, one point, a sign, up to the
//! exact range of a double) and every other form through `str::parse` and
//! `fast_float2`, with errors naming the column and line. It must not know
//! lines or the cursor's walk: [`super::cursor`] calls these readers.

pub(crate) mod block;

use self::block::BlockNumber;
use crate::PluginError;

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
pub(super) fn short_int(text: &str) -> Option<i64> {
    whole(text, plain_int(text.as_bytes(), 0))
}

/// A scan's value when it consumed all of `text` (a comma stops a scan).
pub(super) fn whole<T>(text: &str, scanned: Option<(T, usize)>) -> Option<T> {
    scanned.and_then(|(value, end)| (end == text.len()).then_some(value))
}

/// [`short_int`]'s form read from `bytes[start..]` up to the first comma or
/// the end: the value and where it stopped.
#[inline(always)]
pub(super) fn plain_int(bytes: &[u8], start: usize) -> Option<(i64, usize)> {
    read_plain_int(bytes, start, block::VECTORISED)
}

/// [`plain_int`], reading a whole number from one block first if `blocks`.
#[inline(always)]
pub(super) fn read_plain_int(bytes: &[u8], start: usize, blocks: bool) -> Option<(i64, usize)> {
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
/// [`block::VECTORISED`]) and the 16 bytes from there hold all of it
/// (most fields of exchange files), and where it ends; `None` leaves the
/// field to the word-by-word reading, which accepts longer numbers and
/// fields near the line's end, and declines what is not plain.
#[inline(always)]
pub(super) fn block_number(bytes: &[u8], at: usize, blocks: bool) -> Option<(BlockNumber, usize)> {
    if !blocks {
        return None;
    }
    let block: &[u8; 16] = bytes.get(at..at.checked_add(16)?)?.try_into().ok()?;
    let number = block::read(block)?;
    let end = at + number.len;
    matches!(bytes.get(end), Some(b',') | None).then_some((number, end))
}

/// Whether the number is negative, and where its digits start.
#[inline(always)]
pub(super) fn sign(bytes: &[u8], start: usize) -> (bool, usize) {
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
pub(super) fn digit_run(bytes: &[u8], at: usize, value: u64) -> (u64, usize, u8) {
    short_digit_run(bytes, at, value).unwrap_or_else(|| long_digit_run(bytes, at, value))
}

/// [`digit_run`] for a run of at most 16 digits (every number of an
/// exchange file but the rarest); `None` for a longer one. Two words at most
/// and no loop, so neither a loop's branch nor wasmtime's interruption check
/// on its every turn: a timestamp of 16 digits took three turns of the loop,
/// a decimal with eight places two.
#[inline(always)]
pub(super) fn short_digit_run(bytes: &[u8], at: usize, value: u64) -> Option<(u64, usize, u8)> {
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
pub(super) fn long_digit_run(bytes: &[u8], mut at: usize, mut value: u64) -> (u64, usize, u8) {
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
pub(super) fn word_digits(bytes: &[u8], at: usize) -> (usize, u64, u8) {
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
pub(super) fn append_digits(value: u64, count: usize, digits: u64) -> u64 {
    value
        .wrapping_mul(POWERS_OF_TEN[count])
        .wrapping_add(digits)
}

/// Whether a field ends at `at`, where `byte` is: a comma or the end (a
/// zero byte inside the line is neither).
#[inline(always)]
pub(super) fn ends_field(bytes: &[u8], at: usize, byte: u8) -> bool {
    byte == b',' || at == bytes.len()
}

/// `10^count` for the digit counts [`leading_digits`] returns.
pub(super) const POWERS_OF_TEN: [u64; 9] = [
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
pub(super) const ONES: u64 = 0x0101_0101_0101_0101;

/// The eight bytes at `at` as a little-endian word, zero bytes past the end
/// of `bytes` (a zero byte is not a digit, so it ends a number).
#[inline(always)]
pub(super) fn word_at(bytes: &[u8], at: usize) -> u64 {
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
pub(super) fn leading_digits(word: u64) -> (usize, u64) {
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
pub(super) fn first_comma(word: u64) -> Option<usize> {
    let zeroed = word ^ (u64::from(b',') * ONES);
    // The top bit of the first zero byte (bytes after it may be marked too,
    // by the borrow; only the first mark is used).
    let first_zero = zeroed.wrapping_sub(ONES) & !zeroed & (0x80 * ONES);
    (first_zero != 0).then(|| (first_zero.trailing_zeros() / 8) as usize)
}

/// Powers of ten that a double holds exactly.
pub(super) const EXACT_POWERS_OF_TEN: [f64; 23] = [
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
pub(super) fn short_decimal(text: &str) -> Option<f64> {
    whole(text, plain_decimal(text.as_bytes(), 0))
}

/// [`short_decimal`]'s form read from `bytes[start..]` up to the first
/// comma or the end: the value and where it stopped.
#[inline(always)]
pub(super) fn plain_decimal(bytes: &[u8], start: usize) -> Option<(f64, usize)> {
    read_plain_decimal(bytes, start, block::VECTORISED)
}

/// [`plain_decimal`], reading a whole number from one block first if
/// `blocks`.
#[inline(always)]
pub(super) fn read_plain_decimal(bytes: &[u8], start: usize, blocks: bool) -> Option<(f64, usize)> {
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
