//! From the agent's records to OTLP protobuf messages.

use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::telemetry::metrics::{self, Kind, Labels, Value};

fn key_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn resource(attributes: &[(String, String)]) -> Option<Resource> {
    Some(Resource {
        attributes: attributes.iter().map(|(k, v)| key_value(k, v)).collect(),
        ..Resource::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "cryptolake".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    })
}

pub(super) fn resource_spans(attributes: &[(String, String)], spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: resource(attributes),
        scope_spans: vec![ScopeSpans {
            scope: scope(),
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }
}

pub(super) fn resource_logs(
    attributes: &[(String, String)],
    log_records: Vec<LogRecord>,
) -> ResourceLogs {
    ResourceLogs {
        resource: resource(attributes),
        scope_logs: vec![ScopeLogs {
            scope: scope(),
            log_records,
            ..ScopeLogs::default()
        }],
        ..ResourceLogs::default()
    }
}

fn nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// When cumulative series started: the first export's process.
fn start_time() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| nanos(SystemTime::now()))
}

/// One OTLP metric per registry metric, with a data point per label set.
pub(super) fn resource_metrics(
    attributes: &[(String, String)],
    snapshot: Vec<(metrics::Metric, Labels, Value)>,
) -> ResourceMetrics {
    let start = start_time();
    let now = nanos(SystemTime::now());
    let mut out: Vec<Metric> = Vec::new();
    for metric in metrics::Metric::ALL {
        let series: Vec<&(metrics::Metric, Labels, Value)> =
            snapshot.iter().filter(|(m, _, _)| *m == metric).collect();
        if series.is_empty() {
            continue;
        }
        let labels = |labels: &Labels| -> Vec<KeyValue> {
            labels.iter().map(|(k, v)| key_value(k, v)).collect()
        };
        let numbers = || -> Vec<NumberDataPoint> {
            series
                .iter()
                .filter_map(|(_, l, v)| match v {
                    Value::Number(n) => Some(NumberDataPoint {
                        attributes: labels(l),
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        value: Some(number_data_point::Value::AsDouble(*n)),
                        ..NumberDataPoint::default()
                    }),
                    Value::Histogram { .. } => None,
                })
                .collect()
        };
        let data = match metric.kind() {
            Kind::Counter => metric::Data::Sum(Sum {
                data_points: numbers(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            Kind::Gauge => metric::Data::Gauge(Gauge {
                data_points: numbers(),
            }),
            Kind::Histogram => metric::Data::Histogram(Histogram {
                data_points: series
                    .iter()
                    .filter_map(|(_, l, v)| match v {
                        Value::Histogram {
                            buckets,
                            sum,
                            count,
                        } => Some(HistogramDataPoint {
                            attributes: labels(l),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: *count,
                            sum: Some(*sum),
                            bucket_counts: buckets.clone(),
                            explicit_bounds: metrics::DURATION_BUCKETS.to_vec(),
                            ..HistogramDataPoint::default()
                        }),
                        Value::Number(_) => None,
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        };
        let unit = if metric.name().ends_with("_seconds") {
            "s"
        } else if metric.name().contains("bytes") {
            "By"
        } else {
            "1"
        };
        out.push(Metric {
            name: metric.name().to_owned(),
            description: metric.help().to_owned(),
            unit: unit.to_owned(),
            data: Some(data),
            ..Metric::default()
        });
    }
    ResourceMetrics {
        resource: resource(attributes),
        scope_metrics: vec![ScopeMetrics {
            scope: scope(),
            metrics: out,
            ..ScopeMetrics::default()
        }],
        ..ResourceMetrics::default()
    }
}
