//! S3 ListObjects v1 over HTTP, as the Binance archive bucket answers it.
//!
//! Owns: building listing URLs, parsing `ListBucketResult` pages (a page may
//! hold a single `Contents` or `CommonPrefixes`), and marker pagination
//! (`NextMarker` when given, else the page's last key or prefix). It must not
//! know the archive's key layout.

use cryptolake_plugin_sdk::PluginError;

/// One object of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Object key.
    pub key: String,
    /// `LastModified`, as given (ISO 8601).
    pub last_modified: Option<String>,
    /// `ETag`, quotes removed.
    pub etag: Option<String>,
    /// `Size` in bytes.
    pub size: Option<u64>,
}

/// One parsed listing page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// `NextMarker`, present only when a delimiter was given.
    pub next_marker: Option<String>,
    /// Objects.
    pub contents: Vec<ListedObject>,
    /// `CommonPrefixes/Prefix` values (sub-"directories").
    pub prefixes: Vec<String>,
}

impl ListPage {
    /// The marker to continue from, or `None` when this is the last page.
    pub fn continuation(&self) -> Option<String> {
        if !self.is_truncated {
            return None;
        }
        if let Some(marker) = &self.next_marker {
            return Some(marker.clone());
        }
        let last_key = self.contents.last().map(|o| o.key.as_str());
        let last_prefix = self.prefixes.last().map(String::as_str);
        // Keys and prefixes are interleaved in one sorted order; continue
        // after the greater of the two.
        match (last_key, last_prefix) {
            (Some(k), Some(p)) => Some(k.max(p).to_owned()),
            (Some(k), None) => Some(k.to_owned()),
            (None, Some(p)) => Some(p.to_owned()),
            (None, None) => None,
        }
    }
}

/// Builds the URL of one listing page.
pub fn page_url(listing_url: &str, prefix: &str, marker: Option<&str>) -> String {
    let mut url = format!(
        "{}?delimiter=%2F&prefix={}",
        listing_url.trim_end_matches('/'),
        encode(prefix)
    );
    if let Some(marker) = marker {
        url.push_str("&marker=");
        url.push_str(&encode(marker));
    }
    url
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses one `ListBucketResult` page.
pub fn parse_page(xml: &str) -> Result<ListPage, PluginError> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| PluginError::Transient(format!("listing is not valid XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "ListBucketResult" {
        let code = child_text(root, "Code").unwrap_or_default();
        let message = child_text(root, "Message").unwrap_or_default();
        return Err(PluginError::Internal(format!(
            "listing answered <{}> {code} {message}",
            root.tag_name().name()
        )));
    }
    let mut page = ListPage {
        is_truncated: child_text(root, "IsTruncated")
            .is_some_and(|t| t.eq_ignore_ascii_case("true")),
        next_marker: child_text(root, "NextMarker").filter(|m| !m.is_empty()),
        ..ListPage::default()
    };
    for node in root.children().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "Contents" => {
                let key = child_text(node, "Key").ok_or_else(|| {
                    PluginError::Internal("listing has a Contents without Key".to_owned())
                })?;
                page.contents.push(ListedObject {
                    key,
                    last_modified: child_text(node, "LastModified"),
                    etag: child_text(node, "ETag").map(|e| e.trim_matches('"').to_owned()),
                    size: child_text(node, "Size").and_then(|s| s.parse().ok()),
                });
            }
            "CommonPrefixes" => {
                if let Some(prefix) = child_text(node, "Prefix") {
                    page.prefixes.push(prefix);
                }
            }
            _ => {}
        }
    }
    Ok(page)
}

fn child_text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .map(|c| c.text().unwrap_or("").to_owned())
}

/// The markers one listing has followed, so that a listing whose markers
/// cycle (A → B → A) fails at once instead of paging until a timeout.
/// Compared for equality only: some S3 implementations hand out opaque
/// markers that do not sort like keys.
#[derive(Default)]
struct SeenMarkers(std::collections::HashSet<String>);

impl SeenMarkers {
    fn follow(&mut self, next: &str) -> Result<(), PluginError> {
        if self.0.insert(next.to_owned()) {
            return Ok(());
        }
        Err(PluginError::Internal(format!(
            "the listing's markers cycle: `{next}` was already followed, {} page(s) ago or fewer",
            self.0.len()
        )))
    }
}

/// Lists every object under `prefix`, starting after `start_after`, following
/// markers until the listing ends or `stop` says the keys are past the wanted
/// range. `fetch` returns a page's body.
pub fn list_all(
    listing_url: &str,
    prefix: &str,
    start_after: Option<&str>,
    mut stop: impl FnMut(&str) -> bool,
    mut fetch: impl FnMut(&str) -> Result<String, PluginError>,
) -> Result<Vec<ListedObject>, PluginError> {
    let mut objects = Vec::new();
    let mut marker = start_after.map(str::to_owned);
    let mut seen = SeenMarkers::default();
    loop {
        let url = page_url(listing_url, prefix, marker.as_deref());
        let page = parse_page(&fetch(&url)?)?;
        let mut past_range = false;
        for object in page.contents.iter().cloned() {
            if stop(&object.key) {
                past_range = true;
                break;
            }
            objects.push(object);
        }
        let Some(next) = page.continuation() else {
            break;
        };
        if past_range {
            break;
        }
        seen.follow(&next)?;
        marker = Some(next);
    }
    Ok(objects)
}

/// Lists the sub-"directories" (CommonPrefixes) under `prefix`, following
/// markers, e.g. the symbols of one data type.
pub fn list_prefixes(
    listing_url: &str,
    prefix: &str,
    mut fetch: impl FnMut(&str) -> Result<String, PluginError>,
) -> Result<Vec<String>, PluginError> {
    let mut prefixes = Vec::new();
    let mut marker: Option<String> = None;
    let mut seen = SeenMarkers::default();
    loop {
        let url = page_url(listing_url, prefix, marker.as_deref());
        let page = parse_page(&fetch(&url)?)?;
        prefixes.extend(page.prefixes.iter().cloned());
        let Some(next) = page.continuation() else {
            break;
        };
        seen.follow(&next)?;
        marker = Some(next);
    }
    Ok(prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>data.binance.vision</Name><Prefix>data/spot/daily/klines/BTCUSDT/1m/</Prefix><Marker></Marker><NextMarker>data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip.CHECKSUM</NextMarker><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>
<Contents><Key>data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip</Key><LastModified>2024-01-02T05:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>55000</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip.CHECKSUM</Key><LastModified>2024-01-02T05:00:00.000Z</LastModified><ETag>"def"</ETag><Size>105</Size></Contents>
</ListBucketResult>"#;

    #[test]
    fn parses_contents_etag_and_next_marker() {
        let page = parse_page(TWO).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.contents.len(), 2);
        assert_eq!(page.contents[0].etag.as_deref(), Some("abc"));
        assert_eq!(page.contents[0].size, Some(55000));
        assert_eq!(
            page.continuation().as_deref(),
            Some("data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip.CHECKSUM")
        );
    }

    #[test]
    fn single_prefix_page_without_next_marker_continues_from_it() {
        let xml = r#"<ListBucketResult><IsTruncated>true</IsTruncated><CommonPrefixes><Prefix>data/spot/daily/klines/ETHUSDT/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let page = parse_page(xml).unwrap();
        assert_eq!(page.prefixes, vec!["data/spot/daily/klines/ETHUSDT/"]);
        assert_eq!(
            page.continuation().as_deref(),
            Some("data/spot/daily/klines/ETHUSDT/")
        );
    }

    #[test]
    fn error_document_is_reported() {
        let xml = "<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>";
        let e = parse_page(xml).unwrap_err();
        assert!(e.to_string().contains("NoSuchBucket"), "{e}");
    }

    #[test]
    fn pagination_follows_markers_until_not_truncated() {
        let pages = [
            r#"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>p/a</Key></Contents></ListBucketResult>"#,
            r#"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>p/b</Key></Contents></ListBucketResult>"#,
        ];
        let mut urls = Vec::new();
        let objects = list_all(
            "http://x/bucket/",
            "p/",
            None,
            |_| false,
            |url| {
                urls.push(url.to_owned());
                Ok(pages[urls.len() - 1].to_owned())
            },
        )
        .unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(urls[0], "http://x/bucket?delimiter=%2F&prefix=p%2F");
        assert_eq!(
            urls[1],
            "http://x/bucket?delimiter=%2F&prefix=p%2F&marker=p%2Fa"
        );
    }

    #[test]
    fn a_listing_that_does_not_advance_is_an_error() {
        let page = r#"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>p/a</Key></Contents></ListBucketResult>"#;
        let e = list_all("http://x/b", "p/", None, |_| false, |_| Ok(page.to_owned())).unwrap_err();
        assert!(e.to_string().contains("markers cycle: `p/a`"), "{e}");
    }

    #[test]
    fn a_listing_whose_markers_cycle_fails_at_once() {
        let page = |key: &str| {
            format!(
                "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>{key}</Key></Contents></ListBucketResult>"
            )
        };
        let mut fetched = 0;
        let e = list_all(
            "http://x/b",
            "p/",
            None,
            |_| false,
            |url| {
                fetched += 1;
                // A → B → A → …
                Ok(page(if url.ends_with("p%2Fa") { "p/b" } else { "p/a" }))
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("markers cycle: `p/a`"), "{e}");
        assert_eq!(fetched, 3);
        let prefixes = |url: &str| {
            let next = if url.ends_with("p%2Fx%2F") {
                "p/y/"
            } else {
                "p/x/"
            };
            Ok(format!(
                "<ListBucketResult><IsTruncated>true</IsTruncated><CommonPrefixes><Prefix>{next}</Prefix></CommonPrefixes></ListBucketResult>"
            ))
        };
        let e = list_prefixes("http://x/b", "p/", prefixes).unwrap_err();
        assert!(e.to_string().contains("markers cycle"), "{e}");
    }
}
