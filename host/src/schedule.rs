//! When a pipeline runs: a fixed interval, or a cron expression in UTC.
//!
//! Owns: parsing schedules and computing the next run time. It must not
//! sleep, spawn or run anything; the daemon does that.
//!
//! Cron expressions have the classic five fields, `minute hour day-of-month
//! month day-of-week`, each `*`, a number, a range `a-b`, a list `a,b`, or a
//! step `*/n` / `a-b/n`; day of week is 0–7 with 0 and 7 both Sunday. As in
//! Vixie cron, when both day fields are restricted a day matches if either
//! does. Times are UTC: exchanges publish their archives on UTC days.

use std::time::Duration;

use time::OffsetDateTime;

/// A pipeline's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every so often, counted from the end of the previous run's start.
    Every(Duration),
    /// At the times a cron expression matches, UTC.
    Cron(Cron),
}

impl Schedule {
    /// The first run time strictly after `now`.
    pub fn next_after(&self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Schedule::Every(interval) => now + *interval,
            Schedule::Cron(cron) => cron.next_after(now),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(interval) => {
                write!(f, "every {}", humantime::format_duration(*interval))
            }
            Schedule::Cron(cron) => write!(f, "cron `{}` (UTC)", cron.text),
        }
    }
}

/// A parsed five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

impl Cron {
    /// Parses `text`, e.g. `15 1 * * *` (01:15 UTC every day). Also takes
    /// `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly`
    /// (`@annually`), and month and weekday names (`JAN`, `MON-FRI`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *".to_owned(),
            "@daily" | "@midnight" => "0 0 * * *".to_owned(),
            "@weekly" => "0 0 * * 0".to_owned(),
            "@monthly" => "0 0 1 * *".to_owned(),
            "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
            other if other.starts_with('@') => {
                return Err(format!(
                    "`{other}` is not a cron shorthand (use @hourly, @daily, @weekly, @monthly or @yearly)"
                ));
            }
            other => other.to_owned(),
        };
        let mut fields: Vec<String> = expanded.split_whitespace().map(str::to_owned).collect();
        if let [_, _, _, month, weekday] = fields.as_mut_slice() {
            *month = names_to_numbers(month, &MONTHS, 1);
            *weekday = names_to_numbers(weekday, &WEEKDAYS, 0);
        }
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(format!(
                "`{text}` has {} fields; a cron expression has five: minute hour day-of-month month day-of-week",
                fields.len()
            ));
        };
        let weekdays = field(weekday, "day-of-week", 0, 7)?;
        // 7 is Sunday too.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(Self {
            text: fields.join(" "),
            minutes: field(minute, "minute", 0, 59)?,
            hours: field(hour, "hour", 0, 23)? as u32,
            days: field(day, "day-of-month", 1, 31)? as u32,
            months: field(month, "month", 1, 12)? as u16,
            weekdays: weekdays as u8,
            days_restricted: *day != "*",
            weekdays_restricted: *weekday != "*",
        })
    }

    fn day_matches(&self, at: OffsetDateTime) -> bool {
        let day = self.days & (1 << at.day()) != 0;
        let weekday = self.weekdays & (1 << at.weekday().number_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            (true, false) => day,
            (false, true) => weekday,
            (false, false) => true,
        }
    }

    /// The first matching minute strictly after `now`.
    pub fn next_after(&self, now: OffsetDateTime) -> OffsetDateTime {
        let mut at = now
            .replace_second(0)
            .and_then(|t| t.replace_nanosecond(0))
            .unwrap_or(now)
            + Duration::from_secs(60);
        // Any valid expression matches within eight years (29 February on a
        // given weekday); the bound only guards against a bug looping forever.
        let limit = at + time::Duration::days(366 * 8);
        while at < limit {
            if self.months & (1 << u8::from(at.month())) == 0 || !self.day_matches(at) {
                at = (at.date() + time::Duration::days(1))
                    .midnight()
                    .assume_utc();
                continue;
            }
            if self.hours & (1 << at.hour()) == 0 {
                at = at.replace_minute(0).unwrap_or(at) + Duration::from_secs(3600);
                continue;
            }
            if self.minutes & (1 << at.minute()) == 0 {
                at += Duration::from_secs(60);
                continue;
            }
            return at;
        }
        limit
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Replaces three-letter names (any case) with their numbers, the first name
/// being `first`.
fn names_to_numbers(field: &str, names: &[&str], first: usize) -> String {
    let mut out = field.to_ascii_uppercase();
    for (i, name) in names.iter().enumerate() {
        out = out.replace(name, &(i + first).to_string());
    }
    out
}

/// Parses one cron field into a bit set of the values it matches.
fn field(text: &str, name: &str, min: u32, max: u32) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name} field `{text}`: `{step}` is not a step"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a, name, min, max)?, number(b, name, min, max)?)
        } else {
            let value = number(range, name, min, max)?;
            // `5/15` means from 5 to the end, every 15.
            (value, if step > 1 { max } else { value })
        };
        if low > high {
            return Err(format!(
                "{name} field `{text}`: range {low}-{high} is empty"
            ));
        }
        for value in (low..=high).step_by(step as usize) {
            bits |= 1 << value;
        }
    }
    Ok(bits)
}

fn number(text: &str, name: &str, min: u32, max: u32) -> Result<u32, String> {
    text.parse()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("{name} `{text}` is not a number from {min} to {max}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn next(expr: &str, now: OffsetDateTime) -> OffsetDateTime {
        Cron::parse(expr).unwrap().next_after(now)
    }

    #[test]
    fn daily_at_a_fixed_time() {
        let now = datetime!(2026-11-25 22:55:52 UTC);
        assert_eq!(next("15 1 * * *", now), datetime!(2026-11-26 01:15 UTC));
        assert_eq!(
            next("15 1 * * *", datetime!(2026-11-26 01:14:59 UTC)),
            datetime!(2026-11-26 01:15 UTC)
        );
        // Strictly after: at the matching minute, the next day.
        assert_eq!(
            next("15 1 * * *", datetime!(2026-11-26 01:15 UTC)),
            datetime!(2026-11-27 01:15 UTC)
        );
    }

    #[test]
    fn steps_lists_and_ranges() {
        let now = datetime!(2026-11-25 10:07 UTC);
        assert_eq!(next("*/15 * * * *", now), datetime!(2026-11-25 10:15 UTC));
        assert_eq!(next("5,50 * * * *", now), datetime!(2026-11-25 10:50 UTC));
        assert_eq!(next("0 9-17/4 * * *", now), datetime!(2026-11-25 13:00 UTC));
        assert_eq!(next("10/20 * * * *", now), datetime!(2026-11-25 10:10 UTC));
        assert_eq!(next("0 0 1 */3 *", now), datetime!(2027-01-01 00:00 UTC));
    }

    #[test]
    fn day_of_week_with_sunday_as_0_or_7() {
        // 2026-11-25 is a Wednesday.
        let now = datetime!(2026-11-25 12:00 UTC);
        assert_eq!(next("0 0 * * 0", now), datetime!(2026-11-29 00:00 UTC));
        assert_eq!(next("0 0 * * 7", now), datetime!(2026-11-29 00:00 UTC));
        assert_eq!(next("0 0 * * 1-5", now), datetime!(2026-11-26 00:00 UTC));
        // Both day fields restricted: either matches (Vixie cron).
        assert_eq!(next("0 0 1 * 5", now), datetime!(2026-11-27 00:00 UTC));
    }

    #[test]
    fn shorthands_and_names() {
        let now = datetime!(2026-11-25 12:00 UTC);
        assert_eq!(next("@daily", now), datetime!(2026-11-26 00:00 UTC));
        assert_eq!(next("@hourly", now), datetime!(2026-11-25 13:00 UTC));
        assert_eq!(next("@monthly", now), datetime!(2026-12-01 00:00 UTC));
        assert_eq!(
            next("0 6 * * mon-fri", now),
            datetime!(2026-11-26 06:00 UTC)
        );
        assert_eq!(next("0 0 1 JAN *", now), datetime!(2027-01-01 00:00 UTC));
        assert_eq!(
            next("30 2 * * SAT,sun", now),
            datetime!(2026-11-28 02:30 UTC)
        );
        assert!(Cron::parse("@often").unwrap_err().contains("shorthand"));
    }

    #[test]
    fn leap_day_is_found() {
        let now = datetime!(2026-03-01 00:00 UTC);
        assert_eq!(next("0 0 29 2 *", now), datetime!(2028-02-29 00:00 UTC));
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(Cron::parse("* * * *").unwrap_err().contains("five"));
        assert!(
            Cron::parse("60 * * * *")
                .unwrap_err()
                .contains("minute `60`")
        );
        assert!(Cron::parse("* 5-2 * * *").unwrap_err().contains("empty"));
        assert!(Cron::parse("*/0 * * * *").unwrap_err().contains("step"));
        assert!(
            Cron::parse("* * 0 * *")
                .unwrap_err()
                .contains("day-of-month")
        );
    }

    #[test]
    fn intervals_add_up() {
        let now = datetime!(2026-11-25 10:00 UTC);
        assert_eq!(
            Schedule::Every(Duration::from_secs(90)).next_after(now),
            datetime!(2026-11-25 10:01:30 UTC)
        );
    }
}
