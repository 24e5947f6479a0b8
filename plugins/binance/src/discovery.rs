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

use cryptolake_plugin_sdk::dates;

use crate::listing::{self, ListedObject};
use crate::params::{DiscoveryMode, Params, Period};
use crate::symbols;

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

/// A probed `.CHECKSUM` file.
#[derive(Debug, Clone)]
pub struct Probed {
    /// Its bytes.
    pub body: Vec<u8>,
    /// Its ETag.
    pub etag: Option<String>,
    /// Its Last-Modified.
    pub last_modified: Option<String>,
}

/// The ways discovery reaches the archive.
pub struct Sources<'a> {
    /// Fetches a listing page's body.
    pub list: &'a mut dyn FnMut(&str) -> Result<String, PluginError>,
    /// Fetches a URL, `None` when it does not exist.
    pub probe: &'a mut dyn FnMut(&str) -> Result<Option<Probed>, PluginError>,
}

/// Today's UTC date from the host clock.
pub fn utc_date_of_micros(micros: i64) -> String {
    dates::format_date(dates::date_of_micros(micros))
}

/// Discovers every artifact for `params` within `window`. `today` (UTC,
/// `YYYY-MM-DD`) closes an open window in probe mode: files are published the
/// next day, so probing stops at yesterday.
pub fn discover(
    params: &Params,
    window: &Window,
    today: &str,
    sources: Sources<'_>,
) -> Result<Vec<Artifact>, PluginError> {
    check_window(window)?;
    let symbols = if params.symbols.iter().any(|s| symbols::is_pattern(s)) {
        let root = format!(
            "data/{}/{}/{}/",
            params.market.path(),
            params.period.path(),
            params.data_type
        );
        let listed: Vec<String> =
            listing::list_prefixes(&params.listing_url, &root, &mut *sources.list)?
                .iter()
                .filter_map(|p| p.strip_prefix(&root))
                .map(|p| p.trim_end_matches('/').to_owned())
                .collect();
        let filters = symbols::Filters {
            quote_assets: params.quote_assets.clone(),
            exclude_leveraged: params.exclude_leveraged,
            exclude_stablecoin_pairs: params.exclude_stablecoin_pairs,
            settled_before: (!params.include_settled).then(|| today.to_owned()),
        };
        symbols::resolve(&params.symbols, &listed, &filters)
    } else {
        params.symbols.clone()
    };
    let mut artifacts = Vec::new();
    for symbol in &symbols {
        match params.discovery {
            DiscoveryMode::Listing => {
                artifacts.extend(list_symbol(params, symbol, window, &mut *sources.list)?)
            }
            DiscoveryMode::Probe => artifacts.extend(probe_symbol(
                params,
                symbol,
                window,
                today,
                &mut *sources.probe,
            )?),
        }
    }
    Ok(artifacts)
}

fn list_symbol(
    params: &Params,
    symbol: &str,
    window: &Window,
    fetch: &mut dyn FnMut(&str) -> Result<String, PluginError>,
) -> Result<Vec<Artifact>, PluginError> {
    let prefix = symbol_prefix(params, symbol);
    let stem = file_stem_prefix(params, symbol);
    // Keys sort by date, so the listing can start just before the window and
    // stop at its end instead of paging through years of files.
    let start_after = window.start.as_deref().map(|start| {
        let start = match params.period {
            Period::Daily => start,
            Period::Monthly => &start[..7],
        };
        format!("{prefix}{stem}{start}")
    });
    let end = Window {
        start: None,
        end: window.end.clone(),
    };
    let objects = listing::list_all(
        &params.listing_url,
        &prefix,
        start_after.as_deref(),
        |key| {
            let name = key.rsplit('/').next().unwrap_or(key);
            end.end.is_some()
                && period_of(name, &stem, params.period)
                    .is_some_and(|period| !in_window(&period, &end))
        },
        fetch,
    )?;
    Ok(objects
        .into_iter()
        .filter_map(|object| to_artifact(params, symbol, &stem, object, window))
        .collect())
}

/// Probe mode: GET each expected key's `.CHECKSUM`; the ones that exist are
/// the artifacts, already carrying their digest.
fn probe_symbol(
    params: &Params,
    symbol: &str,
    window: &Window,
    today: &str,
    probe: &mut dyn FnMut(&str) -> Result<Option<Probed>, PluginError>,
) -> Result<Vec<Artifact>, PluginError> {
    let start = window
        .start
        .as_deref()
        .and_then(dates::parse_date)
        .ok_or_else(|| PluginError::InvalidParams("probe mode needs a window start".to_owned()))?;
    let yesterday = dates::parse_date(today).map_or(start, |t| t - 1);
    let end = window
        .end
        .as_deref()
        .and_then(dates::parse_date)
        .unwrap_or(yesterday);
    let mut periods: Vec<String> = (start..=end).map(dates::format_date).collect();
    if params.period == Period::Monthly {
        periods = periods.into_iter().map(|d| d[..7].to_owned()).collect();
        periods.dedup();
    }
    let prefix = symbol_prefix(params, symbol);
    let stem = file_stem_prefix(params, symbol);
    let mut artifacts = Vec::new();
    for period in periods {
        let key = format!("{prefix}{stem}{period}.zip");
        let url = format!("{}/{key}", params.download_url.trim_end_matches('/'));
        let Some(probed) = probe(&format!("{url}.CHECKSUM"))? else {
            continue;
        };
        let text = String::from_utf8_lossy(&probed.body);
        let sha256 = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PluginError::Transient(format!(
                "{url}.CHECKSUM is not a SHA-256 line"
            )));
        }
        let object = ListedObject {
            key,
            last_modified: probed.last_modified,
            etag: probed.etag,
            size: None,
        };
        if let Some(mut artifact) = to_artifact(params, symbol, &stem, object, window) {
            artifact.checksum = ChecksumSource::Sha256(sha256);
            artifacts.push(artifact);
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

    fn listed(
        params: &Params,
        window: &Window,
        mut list: impl FnMut(&str) -> Result<String, PluginError>,
    ) -> Result<Vec<Artifact>, PluginError> {
        let mut no_probe = |_: &str| -> Result<Option<Probed>, PluginError> {
            panic!("no probing in listing mode")
        };
        discover(
            params,
            window,
            "2030-01-01",
            Sources {
                list: &mut list,
                probe: &mut no_probe,
            },
        )
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
        let artifacts = listed(&params(), &window, |url| {
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
        let artifacts = listed(&params(), &window, |_| {
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
    fn probe_mode_finds_the_checksums_that_exist() {
        let params = Params::parse(r#"{"symbols":["BTCUSDT"],"interval":"1m","discovery":"probe","download_url":"http://cdn"}"#).unwrap();
        let window = Window {
            start: Some("2024-12-30".into()),
            end: None,
        };
        let mut probed = Vec::new();
        let mut probe = |url: &str| -> Result<Option<Probed>, PluginError> {
            probed.push(url.to_owned());
            Ok((!url.contains("2024-12-31")).then(|| Probed {
                body: format!("{}  x.zip", "ab".repeat(32)).into_bytes(),
                etag: Some("e".into()),
                last_modified: None,
            }))
        };
        let mut no_list =
            |_: &str| -> Result<String, PluginError> { panic!("no listing in probe mode") };
        let artifacts = discover(
            &params,
            &window,
            "2025-01-02",
            Sources {
                list: &mut no_list,
                probe: &mut probe,
            },
        )
        .unwrap();
        // 12-30 .. 01-01 (yesterday); 12-31 is missing at the source.
        assert_eq!(probed.len(), 3);
        let periods: Vec<&str> = artifacts
            .iter()
            .map(|a| a.partition.period.as_str())
            .collect();
        assert_eq!(periods, ["2024-12-30", "2025-01-01"]);
        assert!(
            matches!(&artifacts[0].checksum, ChecksumSource::Sha256(h) if h == &"ab".repeat(32))
        );
        assert_eq!(
            probed[0],
            format!("http://cdn/{P}BTCUSDT-1m-2024-12-30.zip.CHECKSUM")
        );
    }

    #[test]
    fn symbol_patterns_resolve_against_the_listed_symbols() {
        let params =
            Params::parse(r#"{"symbols":["*USDT"],"interval":"1m","listing_url":"http://s3/b"}"#)
                .unwrap();
        let root = "data/spot/daily/klines/";
        let symbols_page = format!(
            "<ListBucketResult><IsTruncated>false</IsTruncated>{}</ListBucketResult>",
            ["BTCUSDT", "BTCUPUSDT", "ETHBTC", "USDCUSDT"]
                .iter()
                .map(|s| format!("<CommonPrefixes><Prefix>{root}{s}/</Prefix></CommonPrefixes>"))
                .collect::<String>()
        );
        let mut listed_prefixes = Vec::new();
        let artifacts = listed(
            &params,
            &Window {
                start: None,
                end: None,
            },
            |url| {
                listed_prefixes.push(url.to_owned());
                if url.contains("prefix=data%2Fspot%2Fdaily%2Fklines%2F&")
                    || url.ends_with("prefix=data%2Fspot%2Fdaily%2Fklines%2F")
                {
                    Ok(symbols_page.clone())
                } else {
                    Ok(page(&[&format!("{P}BTCUSDT-1m-2024-01-01.zip")], false))
                }
            },
        )
        .unwrap();
        assert_eq!(artifacts.len(), 1, "{listed_prefixes:?}");
        assert_eq!(artifacts[0].partition.symbol, "BTCUSDT");
        assert_eq!(
            listed_prefixes.len(),
            2,
            "one symbol listing, one file listing: {listed_prefixes:?}"
        );
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
