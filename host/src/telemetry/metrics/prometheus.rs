//! The registry rendered in the Prometheus text exposition format (0.0.4)
//! for `/metrics`.
//!
//! Owns: the text format: `# HELP` and `# TYPE` lines, cumulative histogram
//! buckets, label escaping. It must not record values.

use super::catalogue::{DURATION_BUCKETS, Kind};
use super::registry::{Labels, Value, snapshot};

/// Renders the registry in the Prometheus text exposition format (0.0.4).
pub fn prometheus_text() -> String {
    let mut series = snapshot();
    series.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut out = String::new();
    let mut current = None;
    for (metric, labels, value) in series {
        if current != Some(metric) {
            let kind = match metric.kind() {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            out.push_str(&format!("# HELP {} {}\n", metric.name(), metric.help()));
            out.push_str(&format!("# TYPE {} {kind}\n", metric.name()));
            current = Some(metric);
        }
        match value {
            Value::Number(n) => {
                out.push_str(&format!(
                    "{}{} {}\n",
                    metric.name(),
                    label_text(&labels, None),
                    number(n)
                ));
            }
            Value::Histogram {
                buckets,
                sum,
                count,
            } => {
                let mut cumulative = 0;
                for (i, n) in buckets.iter().enumerate() {
                    cumulative += n;
                    let bound = DURATION_BUCKETS
                        .get(i)
                        .map(|b| number(*b))
                        .unwrap_or_else(|| "+Inf".to_owned());
                    out.push_str(&format!(
                        "{}_bucket{} {cumulative}\n",
                        metric.name(),
                        label_text(&labels, Some(&bound))
                    ));
                }
                out.push_str(&format!(
                    "{}_sum{} {}\n",
                    metric.name(),
                    label_text(&labels, None),
                    number(sum)
                ));
                out.push_str(&format!(
                    "{}_count{} {count}\n",
                    metric.name(),
                    label_text(&labels, None)
                ));
            }
        }
    }
    out
}

/// A sample value as the text format spells it (`+Inf`, `-Inf`, `NaN`).
fn number(n: f64) -> String {
    if n.is_nan() {
        "NaN".to_owned()
    } else if n.is_infinite() {
        if n > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::super::catalogue::Metric;
    use super::super::registry::observe;
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        observe(
            Metric::StageDuration,
            &[("pipeline", "render-test"), ("stage", "decode")],
            0.003,
        );
        observe(
            Metric::StageDuration,
            &[("pipeline", "render-test"), ("stage", "decode")],
            7.0,
        );
        let text = prometheus_text();
        assert!(
            text.contains("# TYPE cryptolake_stage_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains(r#"cryptolake_stage_duration_seconds_bucket{pipeline="render-test",stage="decode",le="0.0025"} 0"#), "{text}");
        assert!(text.contains(r#"cryptolake_stage_duration_seconds_bucket{pipeline="render-test",stage="decode",le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"cryptolake_stage_duration_seconds_bucket{pipeline="render-test",stage="decode",le="+Inf"} 2"#), "{text}");
        assert!(text.contains(r#"cryptolake_stage_duration_seconds_count{pipeline="render-test",stage="decode"} 2"#), "{text}");
    }
}
