//! Times in exchange files: integer epochs whose unit (seconds,
//! milliseconds, microseconds, nanoseconds) is detected per file and
//! normalised to microseconds, and UTC text datetimes.
//!
//! Owns: unit detection and the rule that one file keeps one unit. It must
//! not split lines or read plain numbers: [`super::lines`] and
//! `super::numbers` do.

use super::numbers::parse_int;
use crate::PluginError;

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

/// Parses a decimal epoch such as `1704067200.1234` (seconds, as Bybit
/// writes them) or `1704067200123.4` (milliseconds) into microseconds,
/// exactly: the digits are read as a decimal, never through a float, so
/// `.1234` s is 123,400 µs and not 123,399. Digits below a microsecond must
/// be zeros (a value that µs cannot hold is an error, not a rounding).
pub fn parse_decimal_epoch_us(
    field: &str,
    unit: EpochUnit,
    line: u64,
    column: &str,
) -> Result<i64, PluginError> {
    let bad = |why: &str| PluginError::malformed(Some(line), format!("{column}: `{field}` {why}"));
    let text = field.trim_ascii();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(bad("is not a decimal number"));
    }
    // Fraction digits that make up whole microseconds in this unit.
    let places: usize = match unit {
        EpochUnit::Seconds => 6,
        EpochUnit::Millis => 3,
        EpochUnit::Micros => 0,
    };
    let (kept, below) = fraction.split_at(fraction.len().min(places));
    if below.bytes().any(|b| b != b'0') {
        return Err(bad("is more precise than a microsecond"));
    }
    let overflow = || bad("is out of range");
    let whole: i64 = whole.parse().map_err(|_| overflow())?;
    let kept_value: i64 = if kept.is_empty() {
        0
    } else {
        kept.parse::<i64>().map_err(|_| overflow())? * 10_i64.pow((places - kept.len()) as u32)
    };
    let micros = whole
        .checked_mul(unit.to_micros(1))
        .and_then(|m| m.checked_add(kept_value))
        .ok_or_else(overflow)?;
    Ok(if negative { -micros } else { micros })
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
