//! Validation of everything a plugin hands back across the sandbox boundary.
//!
//! A plugin is untrusted: its artifact keys become object keys in the lake
//! and its partition values become directory names, so both are checked for
//! path escapes; its batches are checked for consistent lengths before any
//! of them reaches a writer.

use std::collections::HashSet;

use crate::config::HostPattern;
use crate::wit::types::{Artifact, Batch, ColumnValues, PartitionValues};

/// Largest batch accepted from a plugin, in rows.
pub const MAX_BATCH_ROWS: usize = 1 << 22;

/// Checks a discovery result.
pub fn artifacts(artifacts: &[Artifact], allowed: &[HostPattern]) -> Result<(), String> {
    let mut keys = HashSet::with_capacity(artifacts.len());
    for artifact in artifacts {
        key(&artifact.key)?;
        if !keys.insert(artifact.key.as_str()) {
            return Err(format!("artifact key `{}` is listed twice", artifact.key));
        }
        let url = url::Url::parse(&artifact.url)
            .map_err(|e| format!("artifact `{}` has an invalid URL: {e}", artifact.key))?;
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let port = url.port_or_known_default();
        if !matches!(url.scheme(), "http" | "https")
            || !allowed.iter().any(|p| p.matches(&host, port))
        {
            return Err(format!(
                "artifact `{}` points at `{}`, outside the plugin's allowed_hosts",
                artifact.key,
                crate::transfer::redact(&artifact.url)
            ));
        }
        partition(&artifact.partition).map_err(|m| format!("artifact `{}`: {m}", artifact.key))?;
    }
    Ok(())
}

/// A safe relative object key: `/`-separated, no empty, `.` or `..` segment,
/// no backslash or control character.
pub fn key(key: &str) -> Result<(), String> {
    let bad = key.is_empty()
        || key.len() > 1024
        || key.starts_with('/')
        || key.contains('\\')
        || key.chars().any(char::is_control)
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        Err(format!("artifact key `{key}` is not a safe relative path"))
    } else {
        Ok(())
    }
}

fn partition(values: &PartitionValues) -> Result<(), String> {
    let mut fields = vec![
        ("exchange", values.exchange.as_str()),
        ("market", values.market.as_str()),
        ("data_type", values.data_type.as_str()),
        ("symbol", values.symbol.as_str()),
        ("period", values.period.as_str()),
    ];
    if let Some(interval) = &values.interval {
        fields.push(("interval", interval.as_str()));
    }
    for (name, value) in fields {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value != "."
            && value != ".."
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(format!(
                "partition value {name} = `{value}` must be non-empty ASCII letters, digits, `-`, `_` or `.`"
            ));
        }
    }
    let period = values.period.as_bytes();
    let period_ok = (period.len() == 7 || period.len() == 10)
        && period.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !period_ok {
        return Err(format!(
            "partition period `{}` must be YYYY-MM-DD or YYYY-MM",
            values.period
        ));
    }
    Ok(())
}

/// Checks batches: every column as long as `rows`, null masks too, unique
/// non-empty snake_case names, and a bounded row count.
pub fn batches(batches: &[Batch]) -> Result<(), String> {
    for batch in batches {
        let rows = batch.rows as usize;
        if rows > MAX_BATCH_ROWS {
            return Err(format!(
                "a batch of {rows} rows exceeds the {MAX_BATCH_ROWS}-row limit"
            ));
        }
        let mut names = HashSet::with_capacity(batch.columns.len());
        for column in &batch.columns {
            let name_ok = !column.name.is_empty()
                && column
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(format!(
                    "column name `{}` must be snake_case ASCII",
                    column.name
                ));
            }
            if !names.insert(column.name.as_str()) {
                return Err(format!("column `{}` appears twice", column.name));
            }
            let len = values_len(&column.values);
            if len != rows {
                return Err(format!(
                    "column `{}` has {len} values but the batch has {rows} rows",
                    column.name
                ));
            }
            if let ColumnValues::Utf8Dict(d) = &column.values
                && !d.keys.is_empty()
            {
                // The largest key, as a reduction the compiler vectorises:
                // a search for the first bad key took a sixth of a columnar
                // transform's time on the host.
                let largest = d.keys.iter().copied().fold(0, u32::max);
                if largest as usize >= d.dictionary.len() {
                    return Err(format!(
                        "column `{}` has dictionary key {largest} but only {} dictionary entries",
                        column.name,
                        d.dictionary.len()
                    ));
                }
            }
            if let Some(nulls) = &column.nulls
                && nulls.len() != rows
            {
                return Err(format!(
                    "column `{}` has a null mask of {} entries for {rows} rows",
                    column.name,
                    nulls.len()
                ));
            }
        }
    }
    Ok(())
}

/// Number of values in a column.
pub fn values_len(values: &ColumnValues) -> usize {
    match values {
        ColumnValues::Int64(v) | ColumnValues::TimestampUs(v) => v.len(),
        ColumnValues::Float64(v) => v.len(),
        ColumnValues::Boolean(v) => v.len(),
        ColumnValues::Utf8(v) => v.len(),
        ColumnValues::Utf8Dict(d) => d.keys.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::types::Column;

    #[test]
    fn keys_that_escape_are_rejected() {
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "", "a/.."] {
            assert!(key(bad).is_err(), "{bad}");
        }
        assert!(key("data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip").is_ok());
    }

    #[test]
    fn ragged_batches_are_rejected() {
        let batch = Batch {
            rows: 2,
            columns: vec![Column {
                name: "a".into(),
                values: ColumnValues::Int64(vec![1]),
                nulls: None,
            }],
        };
        let e = batches(&[batch]).unwrap_err();
        assert!(e.contains("has 1 values but the batch has 2 rows"), "{e}");
    }

    #[test]
    fn dictionary_keys_must_name_an_entry() {
        let dict = |keys: Vec<u32>| Batch {
            rows: keys.len() as u32,
            columns: vec![Column {
                name: "symbol".into(),
                values: ColumnValues::Utf8Dict(crate::wit::types::DictionaryUtf8 {
                    dictionary: vec!["BTCUSDT".into(), "ETHUSDT".into()],
                    keys,
                }),
                nulls: None,
            }],
        };
        assert!(batches(&[dict(vec![0, 1, 1, 0])]).is_ok());
        assert!(batches(&[dict(Vec::new())]).is_ok());
        let e = batches(&[dict(vec![0, 1, 7, 2])]).unwrap_err();
        assert!(
            e.contains("column `symbol` has dictionary key 7 but only 2 dictionary entries"),
            "{e}"
        );
    }
}
