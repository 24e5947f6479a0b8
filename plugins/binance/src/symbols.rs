//! Choosing symbols: explicit names, glob patterns over the symbols the
//! archive lists (its CommonPrefixes), and filters.
//!
//! Owns: glob matching, quote-asset, leveraged-token and stablecoin-pair
//! filters. Filters apply to symbols found by patterns; an explicitly named
//! symbol is always kept.

/// Quote assets recognised when splitting a symbol, longest first so that
/// `FDUSD` wins over `USD`-like suffixes.
const QUOTES: &[&str] = &[
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY",
    "BRL", "GBP", "AUD", "JPY", "RUB", "UAH", "BIDR", "IDRT", "NGN", "ZAR", "PLN", "RON", "ARS",
    "MXN", "COP", "CZK", "XRP", "DOGE", "TRX", "DOT", "SOL", "USD",
];

/// Stablecoins: a pair of two of them is not a market most users want.
const STABLECOINS: &[&str] = &[
    "USDT", "USDC", "BUSD", "TUSD", "USDP", "FDUSD", "DAI", "PAX", "UST", "USTC", "SUSD", "USDS",
    "EURI", "AEUR", "PYUSD", "USD1", "RLUSD",
];

/// Whether `text` matches `pattern` (`*` any run, `?` any one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a symbol list entry is a pattern rather than a name.
pub fn is_pattern(entry: &str) -> bool {
    entry.contains(['*', '?'])
}

/// Splits a symbol into (base, quote) by the known quote assets.
pub fn split(symbol: &str) -> Option<(&str, &str)> {
    QUOTES.iter().find_map(|q| {
        symbol
            .strip_suffix(q)
            .filter(|base| !base.is_empty())
            .map(|base| (base, *q))
    })
}

/// Whether a symbol is a Binance leveraged token pair (`BTCUPUSDT`,
/// `ETHDOWNUSDT`, `XRPBULLUSDT`, `EOSBEARUSDT`). Requires a base of at least
/// two letters before the suffix, so tokens such as `JUP` are not caught.
pub fn is_leveraged(symbol: &str) -> bool {
    let Some((base, _)) = split(symbol) else {
        return false;
    };
    ["UP", "DOWN", "BULL", "BEAR"].iter().any(|suffix| {
        base.strip_suffix(suffix)
            .is_some_and(|rest| rest.len() >= if *suffix == "UP" { 3 } else { 2 })
    })
}

/// Whether both sides of a pair are stablecoins (`USDCUSDT`).
pub fn is_stablecoin_pair(symbol: &str) -> bool {
    split(symbol)
        .is_some_and(|(base, quote)| STABLECOINS.contains(&base) && STABLECOINS.contains(&quote))
}

/// Filters applied to pattern-selected symbols.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Keep only these quote assets (empty: any).
    pub quote_assets: Vec<String>,
    /// Drop leveraged tokens.
    pub exclude_leveraged: bool,
    /// Drop stablecoin-to-stablecoin pairs.
    pub exclude_stablecoin_pairs: bool,
    /// Drop delivery contracts delivered before this day (`YYYY-MM-DD`):
    /// they are SETTLED on the exchange and their series has ended.
    pub settled_before: Option<String>,
}

/// The delivery day of a dated delivery contract, `YYYY-MM-DD`:
/// `BTCUSD_230929` → `2023-09-29`. `None` for perpetuals and spot pairs.
pub fn delivery_date(symbol: &str) -> Option<String> {
    let (_, suffix) = symbol.rsplit_once('_')?;
    if suffix.len() != 6 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, month, day) = (&suffix[0..2], &suffix[2..4], &suffix[4..6]);
    let valid =
        matches!(month.parse::<u8>(), Ok(1..=12)) && matches!(day.parse::<u8>(), Ok(1..=31));
    valid.then(|| format!("20{year}-{month}-{day}"))
}

impl Filters {
    /// Whether `symbol` passes.
    pub fn keep(&self, symbol: &str) -> bool {
        let quote_ok = self.quote_assets.is_empty()
            || split(symbol).is_some_and(|(_, q)| self.quote_assets.iter().any(|w| w == q));
        let settled = match (&self.settled_before, delivery_date(symbol)) {
            (Some(today), Some(delivered)) => delivered < *today,
            _ => false,
        };
        let leveraged = self.exclude_leveraged && is_leveraged(symbol);
        let stablecoins = self.exclude_stablecoin_pairs && is_stablecoin_pair(symbol);
        quote_ok && !settled && !leveraged && !stablecoins
    }
}

/// Resolves the configured entries against the symbols the archive lists:
/// names are kept as given, patterns select listed symbols that pass the
/// filters. Sorted, without duplicates.
pub fn resolve(entries: &[String], listed: &[String], filters: &Filters) -> Vec<String> {
    let mut out: Vec<String> = entries.iter().filter(|e| !is_pattern(e)).cloned().collect();
    for pattern in entries.iter().filter(|e| is_pattern(e)) {
        out.extend(
            listed
                .iter()
                .filter(|s| glob(pattern, s) && filters.keep(s))
                .cloned(),
        );
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*USDT", "BTCUSDT"));
        assert!(!glob("*USDT", "ETHBTC"));
        assert!(glob("BTC*", "BTCUSDT"));
        assert!(glob("*", "ANY"));
        assert!(glob("?TCUSDT", "BTCUSDT"));
        assert!(!glob("BTC", "BTCUSDT"));
    }

    #[test]
    fn leveraged_and_stablecoin_pairs() {
        assert!(is_leveraged("BTCUPUSDT"));
        assert!(is_leveraged("ETHDOWNUSDT"));
        assert!(is_leveraged("XRPBULLUSDT"));
        assert!(!is_leveraged("JUPUSDT"));
        assert!(!is_leveraged("SUPERUSDT"));
        assert!(is_stablecoin_pair("USDCUSDT"));
        assert!(is_stablecoin_pair("FDUSDUSDT"));
        assert!(!is_stablecoin_pair("BTCUSDT"));
        assert_eq!(split("BTCFDUSD"), Some(("BTC", "FDUSD")));
    }

    #[test]
    fn patterns_are_filtered_names_are_not() {
        let listed: Vec<String> = ["BTCUSDT", "ETHUSDT", "BTCUPUSDT", "USDCUSDT", "ETHBTC"]
            .map(String::from)
            .to_vec();
        let filters = Filters {
            quote_assets: vec![],
            exclude_leveraged: true,
            exclude_stablecoin_pairs: true,
            settled_before: None,
        };
        let entries = vec!["*USDT".to_owned(), "USDCUSDT".to_owned()];
        assert_eq!(
            resolve(&entries, &listed, &filters),
            vec!["BTCUSDT", "ETHUSDT", "USDCUSDT"]
        );
        let btc_quote = Filters {
            quote_assets: vec!["BTC".into()],
            ..filters
        };
        assert_eq!(
            resolve(&["*".to_owned()], &listed, &btc_quote),
            vec!["ETHBTC"]
        );
    }

    #[test]
    fn settled_delivery_contracts_are_dropped_unless_asked_for() {
        assert_eq!(
            delivery_date("BTCUSD_230929").as_deref(),
            Some("2023-09-29")
        );
        assert_eq!(delivery_date("BTCUSD_PERP"), None);
        assert_eq!(delivery_date("BTCUSDT"), None);
        assert_eq!(delivery_date("BTCUSD_231399"), None);
        let listed: Vec<String> = ["BTCUSD_230929", "BTCUSD_261225", "BTCUSD_PERP"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let filters = Filters {
            settled_before: Some("2026-11-25".to_owned()),
            ..Filters::default()
        };
        assert_eq!(
            resolve(&["BTCUSD_*".to_owned()], &listed, &filters),
            vec!["BTCUSD_261225", "BTCUSD_PERP"]
        );
        assert_eq!(
            resolve(&["BTCUSD_*".to_owned()], &listed, &Filters::default()).len(),
            3
        );
        // Named explicitly: kept.
        assert_eq!(
            resolve(&["BTCUSD_230929".to_owned()], &listed, &filters),
            vec!["BTCUSD_230929"]
        );
    }
}
