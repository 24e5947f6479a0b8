//! The calendar periods the lake is partitioned by: UTC days (`YYYY-MM-DD`)
//! and months (`YYYY-MM`), as sources publish archives and as `date=`
//! partitions are named.
//!
//! Owns: parsing and formatting them, and the period that follows one. It
//! must not know what a period holds.

use time::Date;
use time::format_description::BorrowedFormatItem;

const DAY: &[BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Microseconds in a UTC day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `YYYY-MM-DD`.
pub fn format_day(date: Date) -> String {
    date.format(DAY).unwrap_or_default()
}

/// The UTC day `day` days after 1970-01-01 (a timestamp's is
/// `micros.div_euclid(MICROS_PER_DAY)`).
pub fn epoch_day(day: i64) -> Date {
    time::OffsetDateTime::UNIX_EPOCH
        .saturating_add(time::Duration::days(day))
        .date()
}

/// A `YYYY-MM-DD` day.
pub fn parse_day(text: &str) -> Option<Date> {
    Date::parse(text, DAY).ok()
}

/// Whether `text` is a `YYYY-MM` month.
pub fn is_month(text: &str) -> bool {
    parse_month(text).is_some()
}

/// The first day of a `YYYY-MM` month.
pub fn parse_month(text: &str) -> Option<Date> {
    (text.len() == 7).then(|| parse_day(&format!("{text}-01")))?
}

/// The first day of the month after `date`'s.
pub fn next_month(date: Date) -> Option<Date> {
    let (year, month) = match date.month() {
        time::Month::December => (date.year() + 1, time::Month::January),
        month => (date.year(), month.next()),
    };
    Date::from_calendar_date(year, month, 1).ok()
}

/// A time as RFC 3339 UTC, to the second.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn days_and_months_parse_and_format() {
        assert_eq!(parse_day("2024-02-29"), Some(date!(2024 - 02 - 29)));
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_month("2024-03"), Some(date!(2024 - 03 - 01)));
        assert!(is_month("2024-03"));
        assert!(!is_month("2024-03-01") && !is_month("2024-3") && !is_month("2024-13"));
        assert_eq!(format_day(date!(2024 - 03 - 05)), "2024-03-05");
        assert_eq!(
            next_month(date!(2024 - 12 - 15)),
            Some(date!(2025 - 01 - 01))
        );
        assert_eq!(
            epoch_day((1_709_251_200_000_000 - 1_i64).div_euclid(MICROS_PER_DAY)),
            date!(2024 - 02 - 29)
        );
    }
}
