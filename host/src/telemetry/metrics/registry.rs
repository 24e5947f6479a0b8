//! The in-process registry of metric values: one short mutex section per
//! recording, no I/O, so recording never waits on an exporter.
//!
//! Owns: the values by metric and label set, histograms over
//! [`DURATION_BUCKETS`], the data lag computed when read, and reading them
//! back ([`snapshot`], [`numbers`], [`value`], [`sum`]), and handing each
//! histogram observation to a [`HistogramMirror`] when one is set (the
//! OpenTelemetry SDK has no observable histograms). It must not render
//! them: [`super::prometheus`] reads [`snapshot`], the OTLP bridge
//! [`numbers`].

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use super::catalogue::{DURATION_BUCKETS, Metric};

/// Label pairs, in the order given.
pub type Labels = Vec<(String, String)>;

/// A recorded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total or a gauge's latest value.
    Number(f64),
    /// A histogram over [`DURATION_BUCKETS`].
    Histogram {
        /// Observations per bucket (the last one is `+Inf`).
        buckets: Vec<u64>,
        /// Sum of observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

impl Value {
    /// A number's value, or a histogram's count.
    fn scalar(&self) -> f64 {
        match self {
            Value::Number(n) => *n,
            Value::Histogram { count, .. } => *count as f64,
        }
    }
}

type Registry = BTreeMap<(Metric, Labels), Value>;

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Newest committed data per pipeline (unix seconds), for [`Metric::DataLag`],
/// which is computed when read.
fn newest_data() -> &'static Mutex<BTreeMap<String, i64>> {
    static NEWEST: OnceLock<Mutex<BTreeMap<String, i64>>> = OnceLock::new();
    NEWEST.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Remembers that `pipeline` holds data up to `until` (unix seconds).
pub(super) fn newest_data_until(pipeline: &str, until: i64) {
    if let Ok(mut newest) = newest_data().lock() {
        let entry = newest.entry(pipeline.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn add(metric: Metric, pairs: &[(&str, &str)], value: f64) {
    if let Ok(mut registry) = registry().lock() {
        let entry = registry
            .entry((metric, labels(pairs)))
            .or_insert(Value::Number(0.0));
        if let Value::Number(total) = entry {
            *total += value;
        }
    }
}

pub(super) fn set(metric: Metric, pairs: &[(&str, &str)], value: f64) {
    if let Ok(mut registry) = registry().lock() {
        registry.insert((metric, labels(pairs)), Value::Number(value));
    }
}

pub(super) fn set_max(metric: Metric, pairs: &[(&str, &str)], value: f64) {
    if let Ok(mut registry) = registry().lock() {
        let entry = registry
            .entry((metric, labels(pairs)))
            .or_insert(Value::Number(0.0));
        if let Value::Number(current) = entry
            && value > *current
        {
            *current = value;
        }
    }
}

/// Receives every histogram observation as it is recorded.
pub type HistogramMirror = fn(Metric, &[(&str, &str)], f64);

static HISTOGRAM_MIRROR: OnceLock<HistogramMirror> = OnceLock::new();

/// Sets where histogram observations also go (once per process).
pub fn mirror_histograms(mirror: HistogramMirror) {
    let _ = HISTOGRAM_MIRROR.set(mirror);
}

pub(super) fn observe(metric: Metric, pairs: &[(&str, &str)], seconds: f64) {
    if let Some(mirror) = HISTOGRAM_MIRROR.get() {
        mirror(metric, pairs, seconds);
    }
    if let Ok(mut registry) = registry().lock() {
        let entry = registry
            .entry((metric, labels(pairs)))
            .or_insert_with(|| Value::Histogram {
                buckets: vec![0; DURATION_BUCKETS.len() + 1],
                sum: 0.0,
                count: 0,
            });
        if let Value::Histogram {
            buckets,
            sum,
            count,
        } = entry
        {
            let index = DURATION_BUCKETS
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(DURATION_BUCKETS.len());
            buckets[index] += 1;
            *sum += seconds;
            *count += 1;
        }
    }
}

/// Every recorded series, with the data lag computed for now.
pub fn snapshot() -> Vec<(Metric, Labels, Value)> {
    let mut out: Vec<(Metric, Labels, Value)> = registry()
        .lock()
        .map(|r| {
            r.iter()
                .map(|((m, l), v)| (*m, l.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    out.extend(
        numbers(Metric::DataLag)
            .into_iter()
            .map(|(labels, lag)| (Metric::DataLag, labels, Value::Number(lag))),
    );
    out
}

/// The series of a counter or gauge with their values (the data lag
/// computed for now); nothing for a histogram.
pub fn numbers(metric: Metric) -> Vec<(Labels, f64)> {
    if metric == Metric::DataLag {
        let now = unix_seconds(SystemTime::now());
        return newest_data().lock().map_or_else(
            |_| Vec::new(),
            |newest| {
                newest
                    .iter()
                    .map(|(pipeline, at)| {
                        (
                            vec![("pipeline".to_owned(), pipeline.clone())],
                            (now - at).max(0) as f64,
                        )
                    })
                    .collect()
            },
        );
    }
    registry().lock().map_or_else(
        |_| Vec::new(),
        |r| {
            r.range((metric, Labels::new())..)
                .take_while(|((m, _), _)| *m == metric)
                .filter_map(|((_, labels), value)| match value {
                    Value::Number(n) => Some((labels.clone(), *n)),
                    Value::Histogram { .. } => None,
                })
                .collect()
        },
    )
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The value of `metric` with exactly `pairs` as labels (0 when unset; a
/// histogram's count).
pub fn value(metric: Metric, pairs: &[(&str, &str)]) -> f64 {
    registry()
        .lock()
        .ok()
        .and_then(|r| r.get(&(metric, labels(pairs))).map(Value::scalar))
        .unwrap_or(0.0)
}

/// The sum of `metric` over all label sets containing `pairs`.
pub fn sum(metric: Metric, pairs: &[(&str, &str)]) -> f64 {
    let wanted = labels(pairs);
    registry().lock().map_or(0.0, |r| {
        r.iter()
            .filter(|((m, l), _)| *m == metric && wanted.iter().all(|w| l.contains(w)))
            .map(|(_, v)| v.scalar())
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_measured_from_the_newest_data() {
        let now = unix_seconds(SystemTime::now());
        newest_data_until("lag-test", now - 7200);
        newest_data_until("lag-test", now - 3600);
        newest_data_until("lag-test", now - 86_400);
        let lag = snapshot()
            .into_iter()
            .find(|(m, l, _)| *m == Metric::DataLag && l[0].1 == "lag-test")
            .map(|(_, _, v)| v);
        let Some(Value::Number(lag)) = lag else {
            panic!("no lag recorded");
        };
        assert!((3600.0..3700.0).contains(&lag), "{lag}");
    }
}
