//! The Parquet outputs of one artifact: one file, or, for an archive that
//! covers a month, one file per UTC day, so every table is partitioned by
//! `date=YYYY-MM-DD` whichever period the source publishes.
//!
//! Owns: routing rows to days (by the batch's first timestamp column) and the
//! staging file of each day. It must not publish: the pipeline does, after
//! the archive is verified and decoded whole.

use std::collections::BTreeMap;

use super::parquet::ParquetSink;
use crate::config::ParquetConfig;
use crate::early_sync::EarlySync;
use crate::period;
use crate::wit::{Batch, Column, ColumnValues, PartitionValues};

/// Creates a staging file for one output.
pub type NewFile = Box<dyn FnMut() -> Result<tempfile::NamedTempFile, String> + Send>;

/// One finished output, staged.
pub struct StagedOutput {
    /// Its partition (the artifact's, with the day as period when split).
    pub partition: PartitionValues,
    /// The staged Parquet file.
    pub file: tempfile::NamedTempFile,
    /// Rows in it.
    pub rows: u64,
}

/// The outputs of one artifact being written.
pub struct Outputs {
    base: PartitionValues,
    settings: ParquetConfig,
    by_day: bool,
    new_file: NewFile,
    /// Whether each file is synced as it grows (see [`EarlySync`]).
    sync_early: bool,
    open: BTreeMap<String, (tempfile::NamedTempFile, ParquetSink)>,
    rows: u64,
}

impl Outputs {
    /// Outputs for an artifact of `partition`; split by day when its period
    /// is a month (`YYYY-MM`). `sync_early`: the files will be published
    /// with `fsync`, so they are synced as they grow.
    pub fn new(
        partition: PartitionValues,
        settings: ParquetConfig,
        new_file: NewFile,
        sync_early: bool,
    ) -> Self {
        let by_day = period::is_month(&partition.period);
        Self {
            base: partition,
            settings,
            by_day,
            new_file,
            sync_early,
            open: BTreeMap::new(),
            rows: 0,
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes a batch, split by day if this artifact is split.
    pub fn write(&mut self, batch: Batch) -> Result<(), String> {
        self.rows += u64::from(batch.rows);
        if !self.by_day {
            let period = self.base.period.clone();
            return self.sink(&period)?.write(batch);
        }
        for (day, part) in split_by_day(batch, &self.base.period) {
            self.sink(&day)?.write(part)?;
        }
        Ok(())
    }

    fn sink(&mut self, period: &str) -> Result<&mut ParquetSink, String> {
        if !self.open.contains_key(period) {
            let file = (self.new_file)()?;
            let handle = file.reopen().map_err(|e| e.to_string())?;
            let mut partition = self.base.clone();
            partition.period = period.to_owned();
            self.open.insert(
                period.to_owned(),
                (
                    file,
                    ParquetSink::new(
                        handle,
                        partition,
                        self.settings,
                        EarlySync::when(self.sync_early),
                    ),
                ),
            );
        }
        self.open
            .get_mut(period)
            .map(|(_, sink)| sink)
            .ok_or_else(|| "an output vanished".to_owned())
    }

    /// Finishes every file; those that received no row are dropped.
    pub fn finish(self) -> Result<Vec<StagedOutput>, String> {
        let mut out = Vec::new();
        for (period, (file, sink)) in self.open {
            let rows = sink.rows();
            if sink.finish()? {
                let mut partition = self.base.clone();
                partition.period = period;
                out.push(StagedOutput {
                    partition,
                    file,
                    rows,
                });
            }
        }
        Ok(out)
    }
}

/// Splits rows by the UTC day of the batch's first timestamp column, in
/// order of first appearance; rows without a time stay in `fallback`.
fn split_by_day(batch: Batch, fallback: &str) -> Vec<(String, Batch)> {
    let times = batch.columns.iter().find_map(|c| match &c.values {
        ColumnValues::TimestampUs(v) => Some((v, c.nulls.as_deref())),
        _ => None,
    });
    let Some((times, nulls)) = times else {
        return vec![(fallback.to_owned(), batch)];
    };
    let mut groups: Vec<(i64, Vec<u32>)> = Vec::new();
    let mut fallback_rows = Vec::new();
    for (row, micros) in times.iter().enumerate() {
        if nulls.is_some_and(|n| n[row]) {
            fallback_rows.push(row as u32);
            continue;
        }
        let day = micros.div_euclid(period::MICROS_PER_DAY);
        // Rows come in time order, so the current day is almost always the
        // last one seen; the search is for the rare unsorted file.
        match groups.iter_mut().rev().find(|(d, _)| *d == day) {
            Some((_, rows)) => rows.push(row as u32),
            None => groups.push((day, vec![row as u32])),
        }
    }
    if groups.len() == 1 && fallback_rows.is_empty() {
        return vec![(day_name(groups[0].0), batch)];
    }
    let mut out: Vec<(String, Batch)> = groups
        .iter()
        .map(|(day, rows)| (day_name(*day), select(&batch, rows)))
        .collect();
    if !fallback_rows.is_empty() {
        out.push((fallback.to_owned(), select(&batch, &fallback_rows)));
    }
    out
}

/// `YYYY-MM-DD` of a day counted from the Unix epoch.
fn day_name(day: i64) -> String {
    period::format_day(period::epoch_day(day))
}

/// The rows `rows` of `batch`.
fn select(batch: &Batch, rows: &[u32]) -> Batch {
    fn pick<T: Clone>(values: &[T], rows: &[u32]) -> Vec<T> {
        rows.iter().map(|r| values[*r as usize].clone()).collect()
    }
    let columns = batch
        .columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            values: match &c.values {
                ColumnValues::Int64(v) => ColumnValues::Int64(pick(v, rows)),
                ColumnValues::Float64(v) => ColumnValues::Float64(pick(v, rows)),
                ColumnValues::Boolean(v) => ColumnValues::Boolean(pick(v, rows)),
                ColumnValues::Utf8(v) => ColumnValues::Utf8(pick(v, rows)),
                ColumnValues::TimestampUs(v) => ColumnValues::TimestampUs(pick(v, rows)),
                ColumnValues::Utf8Dict(d) => ColumnValues::Utf8Dict(crate::wit::DictionaryUtf8 {
                    dictionary: d.dictionary.clone(),
                    keys: pick(&d.keys, rows),
                }),
            },
            nulls: c.nulls.as_deref().map(|n| pick(n, rows)),
        })
        .collect();
    Batch {
        rows: rows.len() as u32,
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(times: Vec<i64>, nulls: Option<Vec<bool>>) -> Batch {
        let rows = times.len() as u32;
        Batch {
            rows,
            columns: vec![
                Column {
                    name: "open_time".into(),
                    values: ColumnValues::TimestampUs(times),
                    nulls,
                },
                Column {
                    name: "n".into(),
                    values: ColumnValues::Int64((0..i64::from(rows)).collect()),
                    nulls: None,
                },
            ],
        }
    }

    #[test]
    fn months_are_split_by_utc_day() {
        let day = period::MICROS_PER_DAY;
        let start = 1_709_251_200_000_000; // 2024-03-01
        let parts = split_by_day(
            batch(
                vec![start, start + 5, start + day, start + 2 * day - 1],
                None,
            ),
            "2024-03",
        );
        let days: Vec<&str> = parts.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(days, ["2024-03-01", "2024-03-02"]);
        assert_eq!(parts[0].1.rows, 2);
        assert!(matches!(&parts[1].1.columns[1].values, ColumnValues::Int64(v) if v == &[2, 3]));
    }

    #[test]
    fn rows_without_a_time_stay_in_the_artifacts_period() {
        let start = 1_709_251_200_000_000;
        let parts = split_by_day(batch(vec![start, 0], Some(vec![false, true])), "2024-03");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].0, "2024-03");
        assert_eq!(parts[1].1.columns[0].nulls.as_deref(), Some(&[true][..]));
    }
}
