//! Turning the archive's listing into artifacts.
//!
//! Owns: the archive's key layout (`data/{market}/{period}/{type}/{SYMBOL}/{interval}/…`),
//! parsing a file name back into its period, filtering by the date window,
//! and describing each zip as an artifact (URL, S3 location, `.CHECKSUM`
//! sidecar, partition values). It must not perform I/O itself: listing pages
//! come through the `fetch` argument.

use cryptolake_plugin_sdk::{
    Artifact, ChecksumSource, Compression, PartitionValues, PluginError, S3Location, Window,
};

use crate::listing::{self, ListedObject};
use crate::params::{Params, Period};

/// The key prefix under which one symbol's files live.
pub fn symbol_prefix(params: &Params, symbol: &str) -> String {
    let mut prefix = format!(
        "data/{}/{}/{}/{}/",
        params.market.path(),
        params.period.path(),
        params.data_type,
        symbol
    );
    if let Some(interval) = &params.interval {
        prefix.push_str(interval);
        prefix.push('/');
    }
    prefix
}

/// The file stem before the period, e.g. `BTCUSDT-1m-`.
fn file_stem_prefix(params: &Params, symbol: &str) -> String {
    match &params.interval {
        Some(interval) => format!("{symbol}-{interval}-"),
        None => format!("{symbol}-{}-", params.data_type),
    }
}

/// Extracts the period (`YYYY-MM-DD` or `YYYY-MM`) from a zip's file name,
/// or `None` when the name does not follow the layout.
pub fn period_of(file_name: &str, stem_prefix: &str, period: Period) -> Option<String> {
    let rest = file_name.strip_prefix(stem_prefix)?.strip_suffix(".zip")?;
    let valid = match period {
        Period::Daily => is_date(rest),
        Period::Monthly => is_month(rest),
    };
    valid.then(|| rest.to_owned())
}

fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[5..].iter().all(u8::is_ascii_digit)
        && (1..=12).contains(&s[5..].parse::<u8>().unwrap_or(0))
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[7] == b'-'
        && is_month(&s[..7])
        && b[8..].iter().all(u8::is_ascii_digit)
        && (1..=31).contains(&s[8..].parse::<u8>().unwrap_or(0))
}

/// Whether a period lies within the window. A month is in the window when
/// any of its days is.
pub fn in_window(period: &str, window: &Window) -> bool {
    let after_start = window
        .start
        .as_deref()
        .is_none_or(|start| period >= &start[..period.len().min(start.len())]);
    let before_end = window
        .end
        .as_deref()
        .is_none_or(|end| period <= &end[..period.len().min(end.len())]);
    after_start && before_end
}

/// Validates a window's dates.
pub fn check_window(window: &Window) -> Result<(), PluginError> {
    for (name, value) in [("start", &window.start), ("end", &window.end)] {
        if let Some(value) = value
            && !is_date(value)
        {
            return Err(PluginError::InvalidParams(format!(
                "window {name} `{value}` is not a YYYY-MM-DD date"
            )));
        }
    }
    if let (Some(start), Some(end)) = (&window.start, &window.end)
        && start > end
    {
        return Err(PluginError::InvalidParams(format!(
            "window start {start} is after its end {end}"
        )));
    }
    Ok(())
}

/// Discovers every artifact for `params` within `window`.
pub fn discover(
    params: &Params,
    window: &Window,
    mut fetch: impl FnMut(&str) -> Result<String, PluginError>,
) -> Result<Vec<Artifact>, PluginError> {
    check_window(window)?;
    let mut artifacts = Vec::new();
    for symbol in &params.symbols {
        let prefix = symbol_prefix(params, symbol);
        let stem = file_stem_prefix(params, symbol);
        // Keys sort by date, so the listing can start just before the window
        // and stop at its end instead of paging through years of files.
        let start_after = window.start.as_deref().map(|start| {
            let start = match params.period {
                Period::Daily => start,
                Period::Monthly => &start[..7],
            };
            format!("{prefix}{stem}{start}")
        });
        let end_period = window.end.clone();
        let objects = listing::list_all(
            &params.listing_url,
            &prefix,
            start_after.as_deref(),
            |key| {
                let name = key.rsplit('/').next().unwrap_or(key);
                match (period_of(name, &stem, params.period), &end_period) {
                    (Some(period), Some(end)) => !in_window(
                        &period,
                        &Window {
                            start: None,
                            end: Some(end.clone()),
                        },
                    ),
                    _ => false,
                }
            },
            &mut fetch,
        )?;
        for object in objects {
            if let Some(artifact) = to_artifact(params, symbol, &stem, object, window) {
                artifacts.push(artifact);
            }
        }
    }
    Ok(artifacts)
}

fn to_artifact(
    params: &Params,
    symbol: &str,
    stem: &str,
    object: ListedObject,
    window: &Window,
) -> Option<Artifact> {
    let name = object.key.rsplit('/').next()?;
    let period = period_of(name, stem, params.period)?;
    if !in_window(&period, window) {
        return None;
    }
    let url = format!(
        "{}/{}",
        params.download_url.trim_end_matches('/'),
        object.key
    );
    Some(Artifact {
        checksum: ChecksumSource::SidecarUrl(format!("{url}.CHECKSUM")),
        url,
        s3: Some(S3Location {
            bucket: params.bucket.clone(),
            key: object.key.clone(),
            region: params.region.clone(),
        }),
        size: object.size,
        last_modified: object.last_modified,
        etag: object.etag,
        compression: Compression::Zip,
        partition: PartitionValues {
            exchange: "binance".to_owned(),
            market: params.market.partition().to_owned(),
            data_type: params.data_type.clone(),
            symbol: symbol.to_owned(),
            interval: params.interval.clone(),
            period,
        },
        key: object.key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params::parse(r#"{"symbols":["BTCUSDT"],"interval":"1m","listing_url":"http://s3/data.binance.vision","download_url":"http://cdn"}"#).unwrap()
    }

    fn page(keys: &[&str], truncated: bool) -> String {
        let contents: String = keys
            .iter()
            .map(|k| {
                format!("<Contents><Key>{k}</Key><Size>10</Size><ETag>\"e\"</ETag></Contents>")
            })
            .collect();
        format!(
            "<ListBucketResult><IsTruncated>{truncated}</IsTruncated>{contents}</ListBucketResult>"
        )
    }

    const P: &str = "data/spot/daily/klines/BTCUSDT/1m/";

    #[test]
    fn zips_in_window_become_artifacts() {
        let keys: Vec<String> = ["2024-01-01", "2024-01-02", "2024-01-03"]
            .iter()
            .flat_map(|d| {
                let zip = format!("{P}BTCUSDT-1m-{d}.zip");
                [zip.clone(), format!("{zip}.CHECKSUM")]
            })
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut urls = Vec::new();
        let window = Window {
            start: Some("2024-01-02".into()),
            end: Some("2024-01-02".into()),
        };
        let artifacts = discover(&params(), &window, |url| {
            urls.push(url.to_owned());
            Ok(page(&keys, false))
        })
        .unwrap();
        assert_eq!(artifacts.len(), 1);
        let a = &artifacts[0];
        assert_eq!(a.key, format!("{P}BTCUSDT-1m-2024-01-02.zip"));
        assert_eq!(a.url, format!("http://cdn/{P}BTCUSDT-1m-2024-01-02.zip"));
        assert!(
            matches!(&a.checksum, ChecksumSource::SidecarUrl(u) if u.ends_with(".zip.CHECKSUM"))
        );
        assert_eq!(a.partition.period, "2024-01-02");
        assert_eq!(a.partition.market, "spot");
        assert!(urls[0].contains(
            "marker=data%2Fspot%2Fdaily%2Fklines%2FBTCUSDT%2F1m%2FBTCUSDT-1m-2024-01-02"
        ));
    }

    #[test]
    fn listing_stops_paging_past_the_window_end() {
        let mut calls = 0;
        let window = Window {
            start: None,
            end: Some("2024-01-01".into()),
        };
        let artifacts = discover(&params(), &window, |_| {
            calls += 1;
            Ok(page(
                &[
                    &format!("{P}BTCUSDT-1m-2024-01-01.zip"),
                    &format!("{P}BTCUSDT-1m-2024-01-02.zip"),
                ],
                true,
            ))
        })
        .unwrap();
        assert_eq!(calls, 1);
        assert_eq!(artifacts.len(), 1);
    }

    #[test]
    fn months_overlapping_the_window_are_kept() {
        let w = Window {
            start: Some("2024-01-15".into()),
            end: Some("2024-03-01".into()),
        };
        assert!(in_window("2024-01", &w));
        assert!(in_window("2024-03", &w));
        assert!(!in_window("2024-04", &w));
        assert!(!in_window("2023-12", &w));
    }

    #[test]
    fn file_names_outside_the_layout_are_ignored() {
        assert_eq!(
            period_of("BTCUSDT-1m-2024-01-01.zip", "BTCUSDT-1m-", Period::Daily).as_deref(),
            Some("2024-01-01")
        );
        assert_eq!(
            period_of(
                "BTCUSDT-1m-2024-01-01.zip.CHECKSUM",
                "BTCUSDT-1m-",
                Period::Daily
            ),
            None
        );
        assert_eq!(
            period_of("BTCUSDT-1m-2024-13-01.zip", "BTCUSDT-1m-", Period::Daily),
            None
        );
        assert_eq!(
            period_of("BTCUSDT-1m-2024-01.zip", "BTCUSDT-1m-", Period::Monthly).as_deref(),
            Some("2024-01")
        );
    }

    #[test]
    fn bad_windows_are_rejected() {
        let w = Window {
            start: Some("2024-02-01".into()),
            end: Some("2024-01-01".into()),
        };
        assert!(check_window(&w).is_err());
        let w = Window {
            start: Some("20240101".into()),
            end: None,
        };
        assert!(check_window(&w).is_err());
    }
}
