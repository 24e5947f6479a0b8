//! What every decoded row must satisfy against the artifact it came from,
//! so that a crafted or broken archive (one row repeated to a gigabyte, a
//! day's file holding another day) is malformed input, not data.
//!
//! Owns: which data types have which rule, and the period arithmetic: the
//! row's time within the artifact's period (day or month), its key above
//! the previous row's (klines, aggTrades and trades files are written in
//! key order, so a key that does not grow is a repeated or reordered row),
//! and no more kline rows than the period has bars. Metrics and book depth
//! snapshots, liquidation snapshots (rows repeat) and the option files get
//! no rule: their real files are unsorted, repeat rows, or are stamped at
//! the period's end. It must not parse fields: the decoder hands it each
//! row's values.

use cryptolake_plugin_sdk::dates::{self, format_date};
use cryptolake_plugin_sdk::{PartitionValues, PluginError};

use crate::datatypes::{KLINE_TYPES, Layout};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The checks for one file's rows.
#[derive(Debug)]
pub struct RowChecks {
    period: Period,
    /// The column placing a row in time (µs), and its name.
    time: (usize, &'static str),
    /// The column identifying a row, its name and the previous row's value.
    key: Option<(usize, &'static str, Option<i64>)>,
    /// The most rows the period can hold.
    max_rows: Option<u64>,
    rows: u64,
}

/// An artifact's period: `[start, end)` in µs, and as the partition spells it.
#[derive(Debug)]
struct Period {
    start: i64,
    end: i64,
    text: String,
}

impl Period {
    /// `YYYY-MM-DD` (a day) or `YYYY-MM` (a month).
    fn parse(text: &str) -> Option<Self> {
        let (start_day, end_day) = match text.len() {
            10 => {
                let day = dates::parse_date(text)?;
                (day, day + 1)
            }
            7 => {
                let first = dates::parse_date(&format!("{text}-01"))?;
                let (year, month, _) = dates::civil_from_days(first);
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                (first, dates::days_from_civil(year, month, 1))
            }
            _ => return None,
        };
        Some(Self {
            start: start_day * MICROS_PER_DAY,
            end: end_day * MICROS_PER_DAY,
            text: text.to_owned(),
        })
    }
}

impl RowChecks {
    /// The checks for a file of `data_type` in `layout`, for the artifact at
    /// `partition`; `None` for data types without rules (see the module
    /// docs) or a period that is not a day or a month.
    pub fn for_artifact(layout: Layout, partition: &PartitionValues) -> Option<Self> {
        let data_type = partition.data_type.as_str();
        let (time, key) = match data_type {
            t if KLINE_TYPES.contains(&t) => ("open_time", Some("open_time")),
            "aggTrades" => ("transact_time", Some("agg_trade_id")),
            "trades" => ("time", Some("id")),
            "fundingRate" => ("calc_time", None),
            _ => return None,
        };
        let column = |name: &'static str| {
            let index = layout.columns.iter().position(|c| c.name == name)?;
            Some((index, name))
        };
        let period = Period::parse(&partition.period)?;
        let max_rows = match (KLINE_TYPES.contains(&data_type), &partition.interval) {
            (true, Some(interval)) => dates::interval_seconds(interval)
                .filter(|seconds| *seconds > 0)
                .map(|seconds| {
                    let period_seconds = (period.end - period.start) / 1_000_000;
                    // A bar that starts in the period counts, however long.
                    u64::try_from((period_seconds + seconds - 1) / seconds).unwrap_or(u64::MAX)
                })
                // `1mo`: one bar per monthly file.
                .or(Some(1).filter(|_| interval == "1mo")),
            _ => None,
        };
        Some(Self {
            period,
            time: column(time)?,
            key: match key {
                Some(name) => {
                    let (index, name) = column(name)?;
                    Some((index, name, None))
                }
                None => None,
            },
            max_rows,
            rows: 0,
        })
    }

    /// Checks the row at `line`; `value(column)` is its value in that
    /// column (time in µs), `None` when null.
    #[inline(always)]
    pub fn check(
        &mut self,
        line: u64,
        value: impl Fn(usize) -> Option<i64>,
    ) -> Result<(), PluginError> {
        let malformed = |message: String| Err(PluginError::malformed(Some(line), message));
        self.rows += 1;
        if let Some(max) = self.max_rows
            && self.rows > max
        {
            return malformed(format!(
                "more rows than the {max} bars that period {} has",
                self.period.text
            ));
        }
        let (column, name) = self.time;
        match value(column) {
            Some(time) if time >= self.period.start && time < self.period.end => {}
            Some(time) => {
                return malformed(format!(
                    "{name} {} is outside the artifact's period {}",
                    format_micros(time),
                    self.period.text
                ));
            }
            None => return malformed(format!("{name} is empty")),
        }
        if let Some((column, name, previous)) = &mut self.key {
            let Some(key) = value(*column) else {
                return malformed(format!("{name} is empty"));
            };
            if let Some(previous) = *previous
                && key <= previous
            {
                let key = if *column == self.time.0 {
                    format_micros(key)
                } else {
                    key.to_string()
                };
                return malformed(format!(
                    "{name} {key} does not follow the previous row's: a repeated or reordered row"
                ));
            }
            *previous = Some(key);
        }
        Ok(())
    }
}

/// A time in µs as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC), for messages.
fn format_micros(micros: i64) -> String {
    let day = dates::date_of_micros(micros);
    let of_day = micros - day * MICROS_PER_DAY;
    let seconds = of_day / 1_000_000;
    format!(
        "{} {:02}:{:02}:{:02}.{:06}",
        format_date(day),
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        of_day % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datatypes;

    fn partition(data_type: &str, interval: Option<&str>, period: &str) -> PartitionValues {
        PartitionValues {
            exchange: "binance".into(),
            market: "spot".into(),
            data_type: data_type.into(),
            symbol: "BTCUSDT".into(),
            interval: interval.map(str::to_owned),
            period: period.into(),
        }
    }

    fn message(result: Result<(), PluginError>) -> String {
        match result {
            Err(PluginError::MalformedInput(m)) => m.message,
            other => panic!("malformed input expected: {other:?}"),
        }
    }

    const DAY: i64 = 1_704_067_200_000_000; // 2024-01-01

    #[test]
    fn periods_are_days_and_months() {
        let day = Period::parse("2024-02-29").unwrap();
        assert_eq!(day.end - day.start, MICROS_PER_DAY);
        let month = Period::parse("2024-12").unwrap();
        assert_eq!(month.start, Period::parse("2024-12-01").unwrap().start);
        assert_eq!(month.end, Period::parse("2025-01-01").unwrap().start);
        assert!(Period::parse("2024-13").is_none() && Period::parse("24-01-01").is_none());
    }

    #[test]
    fn a_kline_row_repeated_is_malformed_at_its_second_line() {
        let p = partition("klines", Some("1m"), "2024-01-01");
        let mut checks = RowChecks::for_artifact(datatypes::KLINES, &p).unwrap();
        assert_eq!(checks.max_rows, Some(1440));
        assert!(checks.check(1, |_| Some(DAY)).is_ok());
        let m = message(checks.check(2, |_| Some(DAY)));
        assert!(
            m.contains("open_time 2024-01-01 00:00:00.000000 does not follow"),
            "{m}"
        );
    }

    #[test]
    fn a_row_of_another_day_is_malformed() {
        let p = partition("aggTrades", None, "2024-01-01");
        let mut checks = RowChecks::for_artifact(datatypes::AGG_TRADES_SPOT, &p).unwrap();
        // Columns: agg_trade_id is 0, transact_time 5.
        let row =
            |id: i64, time: i64| move |column: usize| Some(if column == 0 { id } else { time });
        assert!(checks.check(1, row(7, DAY + 5)).is_ok());
        assert!(checks.check(2, row(8, DAY + MICROS_PER_DAY - 1)).is_ok());
        let m = message(checks.check(3, row(9, DAY + MICROS_PER_DAY)));
        assert!(
            m.contains("transact_time 2024-01-02 00:00:00.000000 is outside"),
            "{m}"
        );
        let mut checks = RowChecks::for_artifact(datatypes::AGG_TRADES_SPOT, &p).unwrap();
        assert!(checks.check(1, row(7, DAY)).is_ok());
        let m = message(checks.check(2, row(7, DAY + 1)));
        assert!(m.contains("agg_trade_id 7 does not follow"), "{m}");
    }

    #[test]
    fn a_day_holds_only_its_bars() {
        let p = partition("klines", Some("1h"), "2024-01-01");
        let mut checks = RowChecks::for_artifact(datatypes::KLINES, &p).unwrap();
        for hour in 0..24 {
            let time = DAY + hour * 3_600_000_000;
            assert!(checks.check(hour as u64 + 1, |_| Some(time)).is_ok());
        }
        let m = message(checks.check(25, |_| Some(DAY + 86_399_999_999)));
        assert!(m.contains("more rows than the 24 bars"), "{m}");
        let monthly = partition("klines", Some("1mo"), "2024-01");
        let checks = RowChecks::for_artifact(datatypes::KLINES, &monthly).unwrap();
        assert_eq!(checks.max_rows, Some(1));
    }

    #[test]
    fn snapshots_and_unknown_periods_have_no_rules() {
        assert!(
            RowChecks::for_artifact(
                datatypes::METRICS,
                &partition("metrics", None, "2024-01-01")
            )
            .is_none()
        );
        assert!(
            RowChecks::for_artifact(datatypes::KLINES, &partition("klines", Some("1m"), "2024"))
                .is_none()
        );
    }
}
