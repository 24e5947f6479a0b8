//! The `quality` transform over `ohlcv` rows.
//!
//! Checks every bar: OHLC invariants (low ≤ open, close ≤ high), non-positive
//! prices, negative volumes, duplicate and non-monotonic open times (state
//! carried across batches), and gaps against the interval. Per the `action`
//! param it flags bad rows (a `quality_issue` column, null when the row is
//! fine), drops them, or fails the artifact as malformed so the host
//! quarantines it. Counts go to the host's metrics, and so into the
//! artifact's manifest entry. Gaps are counted, never "fixed".

use std::cell::RefCell;

use cryptolake_plugin_sdk::columns::{self, DictionaryBuilder};
use cryptolake_plugin_sdk::transform::{Guest, GuestTransformer, Transformer};
use cryptolake_plugin_sdk::{Batch, PartitionValues, PluginError, PluginInfo, dates, host};
use serde::Deserialize;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "quality transform params",
  "type": "object",
  "additionalProperties": false,
  "properties": {"action": {"enum": ["flag", "drop", "quarantine"], "default": "flag"}}
}"#;

/// What to do with a bad row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Keep it, naming the issue in `quality_issue`.
    #[default]
    Flag,
    /// Remove it.
    Drop,
    /// Refuse the whole artifact.
    Quarantine,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    action: Action,
}

/// Counts of what the checks found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Rows checked.
    pub rows: u64,
    /// Rows with an issue.
    pub bad_rows: u64,
    /// By issue name.
    pub by_issue: std::collections::BTreeMap<&'static str, u64>,
    /// Gaps (runs of missing bars).
    pub gaps: u64,
    /// Bars missing inside those gaps.
    pub missing_bars: u64,
}

/// The checker's state across batches of one artifact.
#[derive(Debug)]
pub struct Checker {
    action: Action,
    bar_us: Option<i64>,
    last_time: Option<i64>,
    row: u64,
    /// What was found so far.
    pub findings: Findings,
}

impl Checker {
    /// A checker for bars of `interval`.
    pub fn new(action: Action, interval: Option<&str>) -> Self {
        Self {
            action,
            bar_us: interval
                .and_then(dates::interval_seconds)
                .map(|s| s * 1_000_000),
            last_time: None,
            row: 0,
            findings: Findings::default(),
        }
    }

    fn issue(&mut self, time: i64, o: f64, h: f64, l: f64, c: f64, v: f64) -> Option<&'static str> {
        let issue = if o <= 0.0 || h <= 0.0 || l <= 0.0 || c <= 0.0 {
            Some("non_positive_price")
        } else if !(l <= o.min(c) && h >= o.max(c) && l <= h) {
            Some("ohlc_invariant")
        } else if v < 0.0 {
            Some("negative_volume")
        } else {
            match self.last_time {
                Some(last) if time == last => Some("duplicate_time"),
                Some(last) if time < last => Some("non_monotonic_time"),
                _ => None,
            }
        };
        if let (Some(last), Some(bar)) = (self.last_time, self.bar_us)
            && time > last + bar
        {
            self.findings.gaps += 1;
            self.findings.missing_bars += ((time - last) / bar - 1) as u64;
        }
        if self.last_time.is_none_or(|last| time > last) {
            self.last_time = Some(time);
        }
        issue
    }

    /// Checks one batch and applies the action.
    pub fn check(&mut self, batch: Batch) -> Result<Batch, PluginError> {
        let floats = |name: &str| -> Result<Vec<f64>, PluginError> {
            batch
                .column(name)
                .and_then(|c| c.as_float64())
                .map(<[f64]>::to_vec)
                .ok_or_else(|| {
                    PluginError::InvalidParams(format!(
                        "quality needs a float64 `{name}` column (run `ohlcv` first)"
                    ))
                })
        };
        let times = batch
            .column("open_time")
            .and_then(|c| c.as_timestamp_us())
            .map(<[i64]>::to_vec)
            .ok_or_else(|| {
                PluginError::InvalidParams("quality needs an `open_time` timestamp column".into())
            })?;
        let (open, high, low, close, volume) = (
            floats("open")?,
            floats("high")?,
            floats("low")?,
            floats("close")?,
            floats("volume")?,
        );
        let mut issues = DictionaryBuilder::default();
        let mut keep = Vec::with_capacity(times.len());
        for i in 0..times.len() {
            self.row += 1;
            self.findings.rows += 1;
            match self.issue(times[i], open[i], high[i], low[i], close[i], volume[i]) {
                Some(issue) => {
                    self.findings.bad_rows += 1;
                    *self.findings.by_issue.entry(issue).or_insert(0) += 1;
                    if self.action == Action::Quarantine {
                        return Err(PluginError::malformed(
                            Some(self.row),
                            format!("quality check failed: {issue}"),
                        ));
                    }
                    issues.push(issue);
                    keep.push(false);
                }
                None => {
                    issues.push_null();
                    keep.push(true);
                }
            }
        }
        Ok(match self.action {
            Action::Drop => columns::filter(batch, &keep),
            _ => {
                let mut batch = batch;
                batch.columns.retain(|c| c.name != "quality_issue");
                batch.columns.push(issues.finish("quality_issue"));
                batch
            }
        })
    }
}

/// The exported plugin.
pub struct Quality;

impl Guest for Quality {
    type Transformer = QualityStream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "quality".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Checks ohlcv bars (OHLC invariants, prices, volumes, time order, gaps); flags, drops or quarantines.".to_owned(),
            params_schema: SCHEMA.to_owned(),
        }
    }
}

/// One artifact's stream.
pub struct QualityStream(RefCell<Checker>);

impl GuestTransformer for QualityStream {
    fn open(params: String, partition: PartitionValues) -> Result<Transformer, PluginError> {
        let params: Params = cryptolake_plugin_sdk::parse_params(&params)?;
        Ok(Transformer::new(QualityStream(RefCell::new(Checker::new(
            params.action,
            partition.interval.as_deref(),
        )))))
    }

    fn push(&self, input: Batch) -> Result<Vec<Batch>, PluginError> {
        Ok(vec![self.0.borrow_mut().check(input)?])
    }

    fn finish(&self) -> Result<Vec<Batch>, PluginError> {
        let findings = self.0.borrow().findings.clone();
        host::counter_add("rows_checked", findings.rows);
        host::counter_add("rows_with_issues", findings.bad_rows);
        for (issue, count) in &findings.by_issue {
            host::counter_add(issue, *count);
        }
        host::counter_add("gaps", findings.gaps);
        host::counter_add("missing_bars", findings.missing_bars);
        Ok(Vec::new())
    }
}

#[cfg(target_arch = "wasm32")]
cryptolake_plugin_sdk::export_transform_plugin!(Quality);

#[cfg(test)]
mod tests {
    use super::*;
    use cryptolake_plugin_sdk::ColumnValues;
    use cryptolake_plugin_sdk::columns::ColumnBuilder;

    fn bars(rows: &[(i64, [f64; 5])]) -> Batch {
        let mut t = ColumnBuilder::<i64>::default();
        let mut cols: [ColumnBuilder<f64>; 5] = Default::default();
        for (time, values) in rows {
            t.push(time * 60_000_000);
            for (c, v) in cols.iter_mut().zip(values) {
                c.push(*v);
            }
        }
        let [o, h, l, c, v] = &mut cols;
        columns::batch(vec![
            t.finish_timestamp_us("open_time"),
            o.finish_float64("open"),
            h.finish_float64("high"),
            l.finish_float64("low"),
            c.finish_float64("close"),
            v.finish_float64("volume"),
        ])
    }

    const OK: [f64; 5] = [10.0, 11.0, 9.0, 10.5, 1.0];

    fn issues(batch: &Batch) -> Vec<Option<String>> {
        let c = batch.column("quality_issue").unwrap();
        match &c.values {
            ColumnValues::Utf8Dict(d) => d
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    (!c.nulls.as_ref().is_some_and(|n| n[i]))
                        .then(|| d.dictionary[*k as usize].clone())
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_issue_is_named_and_gaps_counted() {
        let mut checker = Checker::new(Action::Flag, Some("1m"));
        let first = checker
            .check(bars(&[
                (0, OK),
                (1, [10.0, 9.5, 9.0, 10.0, 1.0]),
                (2, [0.0, 1.0, 0.0, 1.0, 1.0]),
            ]))
            .unwrap();
        // State carries over: a duplicate of minute 2, then minute 1, then a 3-minute gap.
        let second = checker
            .check(bars(&[
                (2, OK),
                (1, OK),
                (6, [10.0, 11.0, 9.0, 10.0, -1.0]),
            ]))
            .unwrap();
        assert_eq!(
            issues(&first),
            [
                None,
                Some("ohlc_invariant".into()),
                Some("non_positive_price".into())
            ]
        );
        assert_eq!(
            issues(&second),
            [
                Some("duplicate_time".into()),
                Some("non_monotonic_time".into()),
                Some("negative_volume".into())
            ]
        );
        assert_eq!(
            (checker.findings.gaps, checker.findings.missing_bars),
            (1, 3)
        );
        assert_eq!(checker.findings.bad_rows, 5);
    }

    #[test]
    fn drop_removes_bad_rows_and_quarantine_refuses() {
        let mut dropper = Checker::new(Action::Drop, Some("1m"));
        let out = dropper.check(bars(&[(0, OK), (0, OK), (1, OK)])).unwrap();
        assert_eq!(out.rows, 2);
        let mut strict = Checker::new(Action::Quarantine, Some("1m"));
        let e = strict
            .check(bars(&[(0, OK), (1, [1.0, 0.5, 1.0, 1.0, 1.0])]))
            .unwrap_err();
        assert!(matches!(e, PluginError::MalformedInput(m) if m.line == Some(2)));
    }
}
