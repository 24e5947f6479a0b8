//! What plain-HTTP archives show instead of an API: HTML directory indexes
//! (nginx, Apache, S3 website and hand-made pages) and the dates on them and
//! in HTTP headers.
//!
//! Owns reading links out of an index page and turning HTTP-dates and the
//! common listing date formats into RFC 3339. It must not fetch or decide
//! which links are archives: connectors do, from the names.

use crate::dates::{civil_from_days, days_from_civil};

/// The links of an HTML directory index, in page order, entities decoded
/// (`&amp;` → `&`), without the parent directory (`../`), the column-sorting
/// links (`?C=N;O=D`) and in-page anchors. Relative links stay relative:
/// join them with the index's URL.
pub fn index_links(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut links = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find("<a") {
        let start = at + found + 2;
        let Some(end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        at = end;
        // `<a` must be the whole tag name (not `<abbr`).
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        if let Some(href) = attribute(&html[start..end], &lower[start..end], "href") {
            let href = decode_entities(&href);
            let skipped = href.is_empty()
                || href.starts_with('?')
                || href.starts_with('#')
                || href == "../"
                || href == ".."
                || href == "/";
            if !skipped {
                links.push(href);
            }
        }
    }
    links
}

/// The value of `name` in a tag's attribute text (`lower` is the same text
/// in lower case, for matching), quoted with `"` or `'` or unquoted.
fn attribute(tag: &str, lower: &str, name: &str) -> Option<String> {
    let mut at = 0;
    while let Some(found) = lower[at..].find(name) {
        let position = at + found;
        at = position + name.len();
        let before = lower[..position].chars().last();
        if !before.is_some_and(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let rest = lower[at..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let value_at = lower.len() - rest.trim_start().len();
        let value = &tag[value_at..];
        return Some(match value.chars().next() {
            Some(quote @ ('"' | '\'')) => value[1..].split(quote).next().unwrap_or("").to_owned(),
            _ => value
                .split(|c: char| c.is_ascii_whitespace() || c == '>')
                .next()
                .unwrap_or("")
                .to_owned(),
        });
    }
    None
}

/// Decodes the character references an index page uses in links.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|s| *s <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month(name: &str) -> Option<i64> {
    let name = name.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == name).map(|i| i as i64 + 1)
}

/// `HH:MM` or `HH:MM:SS` as seconds of the day.
fn clock(text: &str) -> Option<i64> {
    let mut parts = text.split(':');
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let second: i64 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    (parts.next().is_none() && hour < 24 && minute < 60 && second <= 60)
        .then_some(hour * 3600 + minute * 60 + second)
}

/// Seconds since the epoch of a valid calendar date and time of day.
fn instant(year: i64, month: i64, day: i64, seconds_of_day: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    (civil_from_days(days) == (year, month, day)).then_some(days * 86_400 + seconds_of_day)
}

/// Formats seconds since the epoch as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
pub fn rfc3339(seconds: i64) -> String {
    let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Seconds since the epoch of an HTTP-date (`Last-Modified`, `Date`): the
/// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` and the two obsolete forms
/// RFC 9110 says recipients accept, `Sunday, 06-Nov-94 08:49:37 GMT` and
/// asctime's `Sun Nov  6 08:49:37 1994`.
pub fn http_date_seconds(text: &str) -> Option<i64> {
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    match words.as_slice() {
        [_weekday, day, mon, year, time, "GMT"] => instant(
            year.parse().ok()?,
            month(mon)?,
            day.parse().ok()?,
            clock(time)?,
        ),
        [_weekday, date, time, "GMT"] => {
            let mut parts = date.split('-');
            let (day, mon, year) = (parts.next()?, parts.next()?, parts.next()?);
            let year: i64 = year.parse().ok()?;
            // Two-digit years: RFC 9110 reads those more than 50 years
            // ahead as the past century.
            let year = if year < 100 {
                if year < 70 { 2000 + year } else { 1900 + year }
            } else {
                year
            };
            instant(year, month(mon)?, day.parse().ok()?, clock(time)?)
        }
        [_weekday, mon, day, time, year] => instant(
            year.parse().ok()?,
            month(mon)?,
            day.parse().ok()?,
            clock(time)?,
        ),
        _ => None,
    }
}

/// An HTTP-date as RFC 3339 UTC; see [`http_date_seconds`].
pub fn http_date_to_rfc3339(text: &str) -> Option<String> {
    http_date_seconds(text).map(rfc3339)
}

/// Seconds since the epoch of a date as directory listings print it:
/// nginx's `06-Nov-1994 08:49`, Apache's `1994-11-06 08:49` (seconds
/// optional), S3's `1994-11-06T08:49:37.000Z` and RFC 3339 with an offset
/// (`+02:00`), or an HTTP-date. Listings without a zone are UTC (as nginx and
/// the S3 console print them).
pub fn listing_date_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(seconds) = http_date_seconds(text) {
        return Some(seconds);
    }
    let (date, time) = text.split_once([' ', 'T'])?;
    let time = time.trim();
    let (time, offset) = split_offset(time)?;
    // Fractions of a second are dropped: listings are minute or second
    // precise.
    let time = time.split('.').next()?;
    let seconds_of_day = clock(time)?;
    let parts: Vec<&str> = date.split('-').collect();
    let seconds = match parts.as_slice() {
        [year, mon, day] if year.len() == 4 => instant(
            year.parse().ok()?,
            mon.parse().ok()?,
            day.parse().ok()?,
            seconds_of_day,
        ),
        [day, mon, year] if year.len() == 4 => instant(
            year.parse().ok()?,
            month(mon)?,
            day.parse().ok()?,
            seconds_of_day,
        ),
        _ => None,
    }?;
    Some(seconds - offset)
}

/// A listing date as RFC 3339 UTC; see [`listing_date_seconds`].
pub fn listing_date_to_rfc3339(text: &str) -> Option<String> {
    listing_date_seconds(text).map(rfc3339)
}

/// Splits a trailing `Z`, `+HH:MM` or `-HH:MM` off a time: (the time, the
/// offset in seconds east of UTC).
fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(time) = time.strip_suffix(['Z', 'z']) {
        return Some((time, 0));
    }
    let sign_at = time.rfind(['+', '-']);
    match sign_at {
        Some(at) if time.len() - at == 6 => {
            let sign = if time[at..].starts_with('-') { -1 } else { 1 };
            let offset = clock(&time[at + 1..])?;
            Some((&time[..at], sign * offset))
        }
        _ => Some((time, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_of_index_pages() {
        let nginx = r##"<html><head><title>Index of /trading/BTCUSDT/</title></head>
<body><h1>Index of /trading/BTCUSDT/</h1><hr><pre><a href="../">../</a>
<a href="BTCUSDT2020-03-25.csv.gz">BTCUSDT2020-03-25.csv.gz</a>      26-Mar-2020 03:01   123
<A HREF='BTCUSDT2020-03-26.csv.gz'>BTCUSDT2020-03-26.csv.gz</A>
<a class="x" href=plain.csv.gz>plain</a>
<abbr href="not-a-link">x</abbr>
<a href="?C=N;O=D">Name</a> <a href="#top">top</a>
<a href="q?a=1&amp;b=2">q</a>
</pre><hr></body></html>"##;
        assert_eq!(
            index_links(nginx),
            vec![
                "BTCUSDT2020-03-25.csv.gz",
                "BTCUSDT2020-03-26.csv.gz",
                "plain.csv.gz",
                "q?a=1&b=2",
            ]
        );
        assert_eq!(decode_entities("a&#38;b&#x26;c&bogus;"), "a&b&c&bogus;");
        assert!(index_links("<p>no links</p><a").is_empty());
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                http_date_to_rfc3339(text).as_deref(),
                Some("1994-11-06T08:49:37Z"),
                "{text}"
            );
        }
        assert_eq!(http_date_seconds("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        for bad in [
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "yesterday",
        ] {
            assert_eq!(http_date_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn listing_dates() {
        for (text, expected) in [
            ("26-Mar-2020 03:01", "2020-03-26T03:01:00Z"),
            ("2020-03-26 03:01", "2020-03-26T03:01:00Z"),
            ("2020-03-26 03:01:09", "2020-03-26T03:01:09Z"),
            ("2020-03-26T03:01:09.000Z", "2020-03-26T03:01:09Z"),
            ("2020-03-26T05:01:09+02:00", "2020-03-26T03:01:09Z"),
            ("2020-03-26T00:01:09-03:00", "2020-03-26T03:01:09Z"),
            ("Thu, 26 Mar 2020 03:01:09 GMT", "2020-03-26T03:01:09Z"),
        ] {
            assert_eq!(
                listing_date_to_rfc3339(text).as_deref(),
                Some(expected),
                "{text}"
            );
        }
        assert_eq!(listing_date_seconds("2020-02-30 00:00"), None);
        assert_eq!(listing_date_seconds("26-Mar-20 03:01"), None);
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
