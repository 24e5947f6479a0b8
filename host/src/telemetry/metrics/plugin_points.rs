//! What a plugin may record through `metrics.counter-add` and
//! `metrics.gauge-set`: plugins are untrusted, and their points end up in
//! the host's registry, `/metrics` and OTLP.
//!
//! Owns: the rules for a plugin's metric names (Prometheus' metric-name
//! characters, no colon, at most 64 bytes), label keys (Prometheus'
//! label-name rules, not `__`-prefixed, not the keys the host adds, at most
//! 8 per point), label values (at most 128 bytes; escaping is
//! [`super::prometheus`]'s), gauge values (finite), and the number of
//! distinct series per plugin ([`MAX_SERIES_PER_PLUGIN`]). A refused point
//! is dropped and counted in `cryptolake_plugin_metrics_dropped_total`,
//! with one warning per plugin and reason. It must not record accepted
//! points: the recorders in [`super`] do.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use super::catalogue::{DropReason, Metric};

/// Distinct series (metric, name, labels) one plugin may create; points of
/// series it already has are always accepted.
pub const MAX_SERIES_PER_PLUGIN: usize = 1_000;
const MAX_NAME_BYTES: usize = 64;
const MAX_LABELS: usize = 8;
const MAX_VALUE_BYTES: usize = 128;
/// Keys the host sets itself, or that Prometheus gives a meaning.
const RESERVED_KEYS: [&str; 4] = ["plugin", "name", "le", "quantile"];

/// Whether `name` may name a plugin's metric: an ASCII letter or `_`, then
/// letters, digits and `_`, at most 64 bytes.
fn valid_name(name: &str) -> bool {
    identifier(name) && name.len() <= MAX_NAME_BYTES
}

fn identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check(name: &str, labels: &[(String, String)], value: f64) -> Result<(), DropReason> {
    if !valid_name(name) {
        return Err(DropReason::Name);
    }
    if !value.is_finite() {
        return Err(DropReason::Value);
    }
    if labels.len() > MAX_LABELS {
        return Err(DropReason::Label);
    }
    let mut keys = HashSet::new();
    for (key, value) in labels {
        let bad_key = !valid_name(key)
            || key.starts_with("__")
            || RESERVED_KEYS.contains(&key.as_str())
            || !keys.insert(key.as_str());
        if bad_key || value.len() > MAX_VALUE_BYTES {
            return Err(DropReason::Label);
        }
    }
    Ok(())
}

#[derive(Default)]
struct PerPlugin {
    series: HashSet<u64>,
    warned: HashSet<&'static str>,
}

fn plugins() -> &'static Mutex<HashMap<String, PerPlugin>> {
    static PLUGINS: OnceLock<Mutex<HashMap<String, PerPlugin>>> = OnceLock::new();
    PLUGINS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn series_id(metric: Metric, name: &str, labels: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (metric.name(), name, labels).hash(&mut hasher);
    hasher.finish()
}

/// The labels to record `plugin`'s point with (`plugin`, `name`, then the
/// plugin's, sorted), or `None` when the point is refused (counted, and
/// warned about once per plugin and reason).
pub(super) fn admit(
    plugin: &str,
    metric: Metric,
    name: &str,
    labels: &[(String, String)],
    value: f64,
) -> Option<Vec<(String, String)>> {
    let mut sorted = labels.to_vec();
    sorted.sort();
    // One lock per point; the plugin's entry is made once, not per point.
    let (verdict, first_refusal) = {
        let mut plugins = plugins()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !plugins.contains_key(plugin) {
            plugins.insert(plugin.to_owned(), PerPlugin::default());
        }
        let known = plugins.get_mut(plugin)?;
        let verdict = check(name, &sorted, value).and_then(|()| {
            let id = series_id(metric, name, &sorted);
            if known.series.contains(&id) {
                Ok(())
            } else if known.series.len() >= MAX_SERIES_PER_PLUGIN {
                Err(DropReason::SeriesLimit)
            } else {
                known.series.insert(id);
                Ok(())
            }
        });
        let first_refusal = verdict
            .as_ref()
            .err()
            .is_some_and(|reason| known.warned.insert(reason.label()));
        (verdict, first_refusal)
    };
    match verdict {
        Ok(()) => {
            let mut pairs = vec![
                ("plugin".to_owned(), plugin.to_owned()),
                ("name".to_owned(), name.to_owned()),
            ];
            pairs.extend(sorted);
            Some(pairs)
        }
        Err(reason) => {
            super::plugin_point_dropped(plugin, reason);
            if first_refusal {
                tracing::warn!(
                    plugin,
                    reason = reason.label(),
                    metric = %truncated(name),
                    "A plugin recorded a metric point the host refuses; it and later ones like it are dropped and counted in cryptolake_plugin_metrics_dropped_total."
                );
            }
            None
        }
    }
}

/// At most 64 bytes of `text`, on a character boundary, for a log line.
fn truncated(text: &str) -> &str {
    let mut end = text.len().min(MAX_NAME_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn names_keys_and_values_follow_the_rules() {
        assert_eq!(check("rows_seen", &labels(&[("side", "buy")]), 1.0), Ok(()));
        for bad in ["", "9lives", "a-b", "a:b", "a b", "name\n", &"x".repeat(65)] {
            assert_eq!(check(bad, &[], 1.0), Err(DropReason::Name), "{bad:?}");
        }
        for key in ["a\"b", "a\nb", "__x", "plugin", "name", "le", "", "1a"] {
            assert_eq!(
                check("m", &labels(&[(key, "v")]), 1.0),
                Err(DropReason::Label),
                "{key:?}"
            );
        }
        assert_eq!(
            check("m", &labels(&[("k", "a"), ("k", "b")]), 1.0),
            Err(DropReason::Label),
            "a repeated key"
        );
        let long = "v".repeat(129);
        assert_eq!(
            check("m", &labels(&[("k", &long)]), 1.0),
            Err(DropReason::Label)
        );
        assert_eq!(check("m", &[], f64::NAN), Err(DropReason::Value));
        assert_eq!(check("m", &[], f64::INFINITY), Err(DropReason::Value));
    }

    #[test]
    fn a_plugin_gets_a_bounded_number_of_series() {
        let plugin = "series-limit-test";
        for i in 0..MAX_SERIES_PER_PLUGIN + 50 {
            let accepted = admit(
                plugin,
                Metric::PluginCustom,
                "g",
                &labels(&[("i", &i.to_string())]),
                1.0,
            );
            assert_eq!(accepted.is_some(), i < MAX_SERIES_PER_PLUGIN, "{i}");
        }
        // A series it already has keeps being accepted.
        assert!(
            admit(
                plugin,
                Metric::PluginCustom,
                "g",
                &labels(&[("i", "0")]),
                2.0
            )
            .is_some()
        );
        assert_eq!(
            super::super::value(
                Metric::PluginMetricsDropped,
                &[("plugin", plugin), ("reason", "series_limit")]
            ),
            50.0
        );
    }
}
