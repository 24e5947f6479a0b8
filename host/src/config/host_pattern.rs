//! Host patterns of a plugin's HTTP allow-list.

/// One allowed host: `example.com`, `example.com:8443`, `*.example.com`
/// (any subdomain, not the apex), or an IP address with optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl HostPattern {
    /// Parses a pattern, explaining what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        if lower.contains("://") || lower.contains('/') {
            return Err(format!(
                "`{text}` must be a host name (like `data.binance.vision` or `127.0.0.1:9000`), not a URL"
            ));
        }
        let (host, port) = match lower.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("`{text}`: `{port}` is not a port number"))?;
                (host.to_owned(), Some(port))
            }
            _ => (lower.clone(), None),
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest.to_owned(), true),
            None => (host, false),
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(format!("`{text}` is not a valid host pattern"));
        }
        Ok(Self {
            host,
            wildcard,
            port,
        })
    }

    /// Whether a request to `host` (lowercase) on `port` is allowed.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let host_ok = if self.wildcard {
            host.strip_suffix(self.host.as_str())
                .is_some_and(|prefix| prefix.ends_with('.'))
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| Some(p) == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wildcard_and_port() {
        let p = HostPattern::parse("data.binance.vision").unwrap();
        assert!(p.matches("data.binance.vision", Some(443)));
        assert!(!p.matches("evil.data.binance.vision", Some(443)));
        let w = HostPattern::parse("*.amazonaws.com").unwrap();
        assert!(w.matches("s3-ap-northeast-1.amazonaws.com", Some(443)));
        assert!(!w.matches("amazonaws.com", Some(443)));
        assert!(!w.matches("evilamazonaws.com", Some(443)));
        let l = HostPattern::parse("127.0.0.1:9000").unwrap();
        assert!(l.matches("127.0.0.1", Some(9000)));
        assert!(!l.matches("127.0.0.1", Some(9001)));
    }

    #[test]
    fn urls_are_rejected() {
        assert!(HostPattern::parse("https://data.binance.vision/").is_err());
        assert!(HostPattern::parse("host:http").is_err());
    }
}
