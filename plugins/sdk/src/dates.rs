//! Calendar dates without a date library: days since the Unix epoch to and
//! from `YYYY-MM-DD` (proleptic Gregorian, Howard Hinnant's algorithms).

/// Days since 1970-01-01 of a date.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01, as (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i64 = text.get(0..4)?.parse().ok()?;
    let month: i64 = text.get(5..7)?.parse().ok()?;
    let day: i64 = text.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // Reject impossible days such as 2024-02-30.
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

/// Formats days since the epoch as `YYYY-MM-DD`.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC date of an instant in microseconds since the epoch.
pub fn date_of_micros(micros: i64) -> i64 {
    micros.div_euclid(86_400_000_000)
}

/// Seconds in a bar interval such as `1s`, `5m`, `1h`, `1d`, `1w`; `None`
/// for variable ones (`1mo`) and anything else.
pub fn interval_seconds(interval: &str) -> Option<i64> {
    let split = interval.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = interval.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    (n > 0).then_some(n * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(interval_seconds("15m"), Some(900));
        assert_eq!(interval_seconds("1d"), Some(86_400));
        assert_eq!(interval_seconds("1mo"), None);
        assert_eq!(interval_seconds("0m"), None);
        assert_eq!(interval_seconds("m"), None);
    }

    #[test]
    fn round_trips() {
        for text in [
            "1970-01-01",
            "2000-02-29",
            "2024-12-31",
            "2025-01-01",
            "2100-03-01",
        ] {
            assert_eq!(parse_date(text).map(format_date).as_deref(), Some(text));
        }
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(
            format_date(date_of_micros(1_735_689_600_000_000)),
            "2025-01-01"
        );
    }
}
