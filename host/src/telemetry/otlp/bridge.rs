//! The metric registry on OTLP: every catalogue metric as an SDK instrument
//! under its OpenTelemetry name and unit.
//!
//! Counters and gauges are observable instruments whose callbacks read the
//! registry at each collection, so `/metrics` and OTLP report the same
//! totals, and a reload's new provider goes on from them. The SDK has no
//! observable histogram: histogram observations are mirrored into SDK
//! histograms with the registry's buckets as they are recorded
//! ([`crate::telemetry::metrics::registry::mirror_histograms`]).
//!
//! Owns the instruments and the mirror. It must not record anything the
//! registry does not hold.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Histogram, Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::providers::SCOPE;
use crate::telemetry::metrics::{self, DURATION_BUCKETS, Kind, Labels, Metric};

/// The SDK histograms of the catalogue's histograms.
pub(super) type Histograms = Arc<BTreeMap<Metric, Histogram<f64>>>;

static MIRROR: RwLock<Option<Histograms>> = RwLock::new(None);

/// Registers every catalogue metric with `provider`; returns the
/// histograms to mirror into (see [`swap_histograms`]).
pub(super) fn register(provider: &SdkMeterProvider) -> Histograms {
    let meter = provider.meter_with_scope(
        opentelemetry::InstrumentationScope::builder(SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    );
    let mut histograms = BTreeMap::new();
    for metric in Metric::ALL {
        match metric.kind() {
            Kind::Counter => observe_counter(&meter, metric),
            Kind::Gauge => observe_gauge(&meter, metric),
            Kind::Histogram => {
                let histogram = meter
                    .f64_histogram(metric.otel_name())
                    .with_unit(metric.unit())
                    .with_description(metric.help())
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build();
                histograms.insert(metric, histogram);
            }
        }
    }
    Arc::new(histograms)
}

fn attributes(labels: &Labels) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect()
}

fn observe_counter(meter: &Meter, metric: Metric) {
    meter
        .f64_observable_counter(metric.otel_name())
        .with_unit(metric.unit())
        .with_description(metric.help())
        .with_callback(move |observer| report(metric, observer))
        .build();
}

fn observe_gauge(meter: &Meter, metric: Metric) {
    meter
        .f64_observable_gauge(metric.otel_name())
        .with_unit(metric.unit())
        .with_description(metric.help())
        .with_callback(move |observer| report(metric, observer))
        .build();
}

/// A collection's reading of one counter or gauge: the registry's series.
fn report(metric: Metric, observer: &dyn AsyncInstrument<f64>) {
    for (labels, value) in metrics::registry::numbers(metric) {
        observer.observe(value, &attributes(&labels));
    }
}

/// Points the registry's histogram mirror at `histograms` (`None`: export
/// is off, observations stay in the registry only).
pub(super) fn swap_histograms(histograms: Option<Histograms>) {
    metrics::registry::mirror_histograms(mirror);
    if let Ok(mut current) = MIRROR.write() {
        *current = histograms;
    }
}

fn mirror(metric: Metric, pairs: &[(&str, &str)], seconds: f64) {
    let Ok(current) = MIRROR.read() else {
        return;
    };
    if let Some(histogram) = current.as_ref().and_then(|h| h.get(&metric)) {
        let attributes: Vec<KeyValue> = pairs
            .iter()
            .map(|(k, v)| KeyValue::new((*k).to_owned(), (*v).to_owned()))
            .collect();
        histogram.record(seconds, &attributes);
    }
}
