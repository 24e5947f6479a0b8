//! Convenience wrappers over the capabilities the host lends.
//!
//! Owns: mapping the host's HTTP results onto [`PluginError`]s a connector
//! can return directly, and short logging helpers. It must not add
//! capabilities the WIT does not grant.

use crate::PluginError;
use crate::bindings::source::cryptolake::plugin::{clock, http, log, metrics};

pub use http::{HttpError, Method, Request, Response};
pub use log::Level;

/// Fetches `url` with `method` and returns the response whatever its status.
pub fn fetch(method: Method, url: &str) -> Result<Response, HttpError> {
    http::fetch(&Request {
        method,
        url: url.to_owned(),
        headers: Vec::new(),
    })
}

/// GETs `url`, mapping failures to plugin errors: 404 to `not-found`, 429 and
/// 5xx to `transient`, a denied host to `invalid-params`, other non-2xx to
/// `internal`.
pub fn get_ok(url: &str) -> Result<Response, PluginError> {
    let response = fetch(Method::Get, url).map_err(http_error)?;
    match response.status {
        200..=299 => Ok(response),
        404 => Err(PluginError::NotFound(format!("{url} answered 404"))),
        429 | 500..=599 => Err(PluginError::Transient(format!(
            "{url} answered {}",
            response.status
        ))),
        status => Err(PluginError::Internal(format!("{url} answered {status}"))),
    }
}

/// Maps a host HTTP error onto a plugin error.
pub fn http_error(error: HttpError) -> PluginError {
    match error {
        HttpError::Denied(host) => PluginError::InvalidParams(format!(
            "host `{host}` is not in this plugin's allowed_hosts"
        )),
        HttpError::Timeout => PluginError::Transient("request timed out".to_owned()),
        HttpError::TooLarge(limit) => {
            PluginError::Internal(format!("response larger than the host's {limit}-byte cap"))
        }
        HttpError::Network(message) => PluginError::Transient(message),
        HttpError::InvalidUrl(message) => PluginError::Internal(format!("invalid URL: {message}")),
    }
}

/// Logs a message at `level` with structured fields.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    log::log(level, message, &owned(fields));
}

/// Adds to a counter metric.
pub fn counter_add(name: &str, value: u64) {
    metrics::counter_add(name, value, &[]);
}

/// Adds to a counter metric with labels. The host refuses (drops and
/// counts) names and label keys that are not `[A-Za-z_][A-Za-z0-9_]*` of at
/// most 64 bytes, the keys `plugin`, `name`, `le` and `quantile`, values
/// over 128 bytes, more than 8 labels, and new series beyond 1,000 per
/// plugin: keep label values to a small, fixed set.
pub fn counter_add_labelled(name: &str, value: u64, labels: &[(&str, &str)]) {
    metrics::counter_add(name, value, &owned(labels));
}

/// Sets a gauge metric, under the same rules as [`counter_add_labelled`];
/// the value must be finite.
pub fn gauge_set(name: &str, value: f64, labels: &[(&str, &str)]) {
    metrics::gauge_set(name, value, &owned(labels));
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Microseconds since the Unix epoch, from the host's clock.
pub fn now_us() -> i64 {
    clock::now_us()
}
