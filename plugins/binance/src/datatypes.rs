//! The archive's data types: where each exists and what its CSV holds.
//!
//! Owns: the availability table (market × period × data type) and each data
//! type's column layout, taken from the published formats (see
//! `shared/reference/market-data-sources.md`). Output schemas are uniform
//! across markets for one data type: a column one market lacks is null
//! there, so one table reads cleanly across spot and futures.

use crate::params::{Market, Period};

/// How a CSV field is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Integer epoch in s, ms or µs (detected per file) → `timestamp-us`.
    Epoch,
    /// Text `YYYY-MM-DD HH:MM:SS` in UTC → `timestamp-us`.
    DateTime,
    /// Decimal → `float64`.
    Float,
    /// Integer → `int64`.
    Int,
    /// `true`/`false` in any case → `boolean`.
    Bool,
    /// Low-cardinality text (symbols, sides, statuses) → dictionary utf8.
    Text,
}

/// One output column: its name, kind, and which CSV field feeds it (`None`:
/// this market's files lack it; the column is null).
#[derive(Debug, Clone, Copy)]
pub struct OutputColumn {
    /// Column name in the lake.
    pub name: &'static str,
    /// How the field is read.
    pub kind: Kind,
    /// 0-based field index in the CSV line.
    pub field: Option<usize>,
}

const fn col(name: &'static str, kind: Kind, field: usize) -> OutputColumn {
    OutputColumn {
        name,
        kind,
        field: Some(field),
    }
}

const fn absent(name: &'static str, kind: Kind) -> OutputColumn {
    OutputColumn {
        name,
        kind,
        field: None,
    }
}

/// A file format: its output columns and how many fields each line has.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The output columns, each with the field that feeds it.
    pub columns: &'static [OutputColumn],
    /// Fields on every line of a file read by position: one past the last
    /// field a column reads, plus the unused ones after it.
    pub fields_per_line: usize,
}

impl Layout {
    /// A layout whose lines end with the last field a column reads.
    pub const fn new(columns: &'static [OutputColumn]) -> Self {
        Self::with_unused_fields(columns, 0)
    }

    /// A layout whose lines have `unused` fields after the last one read.
    pub const fn with_unused_fields(columns: &'static [OutputColumn], unused: usize) -> Self {
        let mut last = 0;
        let mut i = 0;
        while i < columns.len() {
            if let Some(field) = columns[i].field
                && field + 1 > last
            {
                last = field + 1;
            }
            i += 1;
        }
        Self {
            columns,
            fields_per_line: last + unused,
        }
    }
}

use Kind::{Bool, DateTime, Epoch, Float, Int, Text};

/// Kline-like files (klines, index/mark/premium klines), every market.
pub const KLINES: Layout = Layout::with_unused_fields(
    &[
        col("open_time", Epoch, 0),
        col("open", Float, 1),
        col("high", Float, 2),
        col("low", Float, 3),
        col("close", Float, 4),
        col("volume", Float, 5),
        col("close_time", Epoch, 6),
        col("quote_volume", Float, 7),
        col("count", Int, 8),
        col("taker_buy_volume", Float, 9),
        col("taker_buy_quote_volume", Float, 10),
    ],
    // The trailing `ignore` field.
    1,
);

/// Spot aggTrades: `…,timestamp,is_buyer_maker,is_best_match`.
pub const AGG_TRADES_SPOT: Layout = Layout::new(&[
    col("agg_trade_id", Int, 0),
    col("price", Float, 1),
    col("quantity", Float, 2),
    col("first_trade_id", Int, 3),
    col("last_trade_id", Int, 4),
    col("transact_time", Epoch, 5),
    col("is_buyer_maker", Bool, 6),
    col("is_best_match", Bool, 7),
]);

/// Futures aggTrades: `…,transact_time,is_buyer_maker` (no best-match flag).
pub const AGG_TRADES_FUTURES: Layout = Layout::new(&[
    col("agg_trade_id", Int, 0),
    col("price", Float, 1),
    col("quantity", Float, 2),
    col("first_trade_id", Int, 3),
    col("last_trade_id", Int, 4),
    col("transact_time", Epoch, 5),
    col("is_buyer_maker", Bool, 6),
    absent("is_best_match", Bool),
]);

/// Spot trades: `id,price,qty,quote_qty,time,is_buyer_maker,is_best_match`.
pub const TRADES_SPOT: Layout = Layout::new(&[
    col("id", Int, 0),
    col("price", Float, 1),
    col("qty", Float, 2),
    col("quote_qty", Float, 3),
    absent("base_qty", Float),
    col("time", Epoch, 4),
    col("is_buyer_maker", Bool, 5),
    col("is_best_match", Bool, 6),
]);

/// USDⓈ-M trades: `id,price,qty,quote_qty,time,is_buyer_maker`.
pub const TRADES_UM: Layout = Layout::new(&[
    col("id", Int, 0),
    col("price", Float, 1),
    col("qty", Float, 2),
    col("quote_qty", Float, 3),
    absent("base_qty", Float),
    col("time", Epoch, 4),
    col("is_buyer_maker", Bool, 5),
    absent("is_best_match", Bool),
]);

/// COIN-M trades: `id,price,qty,base_qty,time,is_buyer_maker`.
pub const TRADES_CM: Layout = Layout::new(&[
    col("id", Int, 0),
    col("price", Float, 1),
    col("qty", Float, 2),
    absent("quote_qty", Float),
    col("base_qty", Float, 3),
    col("time", Epoch, 4),
    col("is_buyer_maker", Bool, 5),
    absent("is_best_match", Bool),
]);

/// `calc_time,funding_interval_hours,last_funding_rate`.
pub const FUNDING_RATE: Layout = Layout::new(&[
    col("calc_time", Epoch, 0),
    col("funding_interval_hours", Int, 1),
    col("last_funding_rate", Float, 2),
]);

/// `update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time`.
pub const BOOK_TICKER: Layout = Layout::new(&[
    col("update_id", Int, 0),
    col("best_bid_price", Float, 1),
    col("best_bid_qty", Float, 2),
    col("best_ask_price", Float, 3),
    col("best_ask_qty", Float, 4),
    col("transaction_time", Epoch, 5),
    col("event_time", Epoch, 6),
]);

/// `create_time,symbol,sum_open_interest,…` with a text datetime.
pub const METRICS: Layout = Layout::new(&[
    col("create_time", DateTime, 0),
    col("symbol", Text, 1),
    col("sum_open_interest", Float, 2),
    col("sum_open_interest_value", Float, 3),
    col("count_toptrader_long_short_ratio", Float, 4),
    col("sum_toptrader_long_short_ratio", Float, 5),
    col("count_long_short_ratio", Float, 6),
    col("sum_taker_long_short_vol_ratio", Float, 7),
]);

/// `timestamp,percentage,depth,notional` with a text datetime.
pub const BOOK_DEPTH: Layout = Layout::new(&[
    col("timestamp", DateTime, 0),
    col("percentage", Float, 1),
    col("depth", Float, 2),
    col("notional", Float, 3),
]);

/// COIN-M liquidation snapshots.
pub const LIQUIDATION_SNAPSHOT: Layout = Layout::new(&[
    col("time", Epoch, 0),
    col("side", Text, 1),
    col("order_type", Text, 2),
    col("time_in_force", Text, 3),
    col("original_quantity", Float, 4),
    col("price", Float, 5),
    col("average_price", Float, 6),
    col("order_status", Text, 7),
    col("last_fill_quantity", Float, 8),
    col("accumulated_fill_quantity", Float, 9),
]);

/// Option BVOL index files (`data/option/daily/BVOLIndex/BTCBVOLUSDT/…`),
/// `calc_time,symbol,base_asset,quote_asset,index_value`. Read by header
/// name when the file has a header (see [`by_header`]).
pub const BVOL_INDEX: Layout = Layout::new(&[
    col("calc_time", Epoch, 0),
    col("symbol", Text, 1),
    col("base_asset", Text, 2),
    col("quote_asset", Text, 3),
    col("index_value", Float, 4),
]);

/// Option end-of-hour summaries (`data/option/daily/EOHSummary/BTCUSDT/…`),
/// one row per contract and hour. Read by header name when the file has a
/// header (see [`by_header`]); positions are the published order.
pub const EOH_SUMMARY: Layout = Layout::new(&[
    col("date", Text, 0),
    col("hour", Int, 1),
    // The file's `symbol` is the option contract (`BTC-230818-30000-C`);
    // the lake's `symbol` partition is the underlying the file is under.
    col("contract", Text, 2),
    col("underlying", Text, 3),
    col("type", Text, 4),
    col("strike", Float, 5),
    col("open", Float, 6),
    col("high", Float, 7),
    col("low", Float, 8),
    col("close", Float, 9),
    col("volume_contracts", Float, 10),
    col("volume_usdt", Float, 11),
    col("best_bid_price", Float, 12),
    col("best_ask_price", Float, 13),
    col("best_bid_qty", Float, 14),
    col("best_ask_qty", Float, 15),
    col("best_buy_iv", Float, 16),
    col("best_sell_iv", Float, 17),
    col("mark_price", Float, 18),
    col("mark_iv", Float, 19),
    col("delta", Float, 20),
    col("gamma", Float, 21),
    col("vega", Float, 22),
    col("theta", Float, 23),
    col("openinterest_contracts", Float, 24),
    col("openinterest_usdt", Float, 25),
]);

/// The header name of an output column, where the lake renames it.
pub fn header_name(column: &str) -> &str {
    match column {
        "contract" => "symbol",
        other => other,
    }
}

/// Whether `data_type`'s columns are located by the header row's names
/// (falling back to the positions above for a file without a header). The
/// option files' formats are the least documented, so reading them by name
/// keeps them right if Binance reorders or adds columns.
pub fn by_header(data_type: &str) -> bool {
    matches!(data_type, "BVOLIndex" | "EOHSummary")
}

/// Data types whose files live under an interval folder.
pub const KLINE_TYPES: &[&str] = &[
    "klines",
    "indexPriceKlines",
    "markPriceKlines",
    "premiumIndexKlines",
];

/// Every data type this connector knows, for error messages.
pub const ALL_TYPES: &[&str] = &[
    "klines",
    "indexPriceKlines",
    "markPriceKlines",
    "premiumIndexKlines",
    "aggTrades",
    "trades",
    "fundingRate",
    "bookTicker",
    "bookDepth",
    "metrics",
    "liquidationSnapshot",
    "BVOLIndex",
    "EOHSummary",
];

/// Whether the archive publishes `data_type` for `market` and `period`.
pub fn available(data_type: &str, market: Market, period: Period) -> bool {
    use Market::{FuturesCm, FuturesUm, Options};
    use Period::{Daily, Monthly};
    let futures = matches!(market, FuturesUm | FuturesCm);
    if market == Options {
        return matches!(data_type, "BVOLIndex" | "EOHSummary") && period == Daily;
    }
    match data_type {
        "klines" | "aggTrades" | "trades" => true,
        "indexPriceKlines" | "markPriceKlines" | "premiumIndexKlines" | "bookTicker" => futures,
        "fundingRate" => futures && period == Monthly,
        "bookDepth" | "metrics" => futures && period == Daily,
        "liquidationSnapshot" => market == FuturesCm && period == Daily,
        _ => false,
    }
}

/// The column layout of `data_type` files in `market`.
pub fn layout(data_type: &str, market: Market) -> Option<Layout> {
    Some(match (data_type, market) {
        (t, _) if KLINE_TYPES.contains(&t) => KLINES,
        ("aggTrades", Market::Spot) => AGG_TRADES_SPOT,
        ("aggTrades", _) => AGG_TRADES_FUTURES,
        ("trades", Market::Spot) => TRADES_SPOT,
        ("trades", Market::FuturesUm) => TRADES_UM,
        ("trades", Market::FuturesCm) => TRADES_CM,
        ("fundingRate", _) => FUNDING_RATE,
        ("bookTicker", _) => BOOK_TICKER,
        ("metrics", _) => METRICS,
        ("bookDepth", _) => BOOK_DEPTH,
        ("liquidationSnapshot", _) => LIQUIDATION_SNAPSHOT,
        ("BVOLIndex", Market::Options) => BVOL_INDEX,
        ("EOHSummary", Market::Options) => EOH_SUMMARY,
        _ => return None,
    })
}

/// The number of CSV fields a line must have: one past the last field read
/// (`fields`: the field feeding each column, if any).
pub fn min_fields(fields: impl IntoIterator<Item = Option<usize>>) -> usize {
    fields.into_iter().flatten().max().map_or(0, |f| f + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_follows_the_reference_table() {
        assert!(available("klines", Market::Spot, Period::Daily));
        assert!(!available("fundingRate", Market::FuturesUm, Period::Daily));
        assert!(available("fundingRate", Market::FuturesUm, Period::Monthly));
        assert!(!available("bookTicker", Market::Spot, Period::Daily));
        assert!(!available(
            "liquidationSnapshot",
            Market::FuturesUm,
            Period::Daily
        ));
        assert!(available(
            "liquidationSnapshot",
            Market::FuturesCm,
            Period::Daily
        ));
        assert!(!available("metrics", Market::FuturesUm, Period::Monthly));
    }

    const MARKETS: [Market; 4] = [
        Market::Spot,
        Market::FuturesUm,
        Market::FuturesCm,
        Market::Options,
    ];

    #[test]
    fn every_available_type_has_a_layout_with_unique_names_that_fits() {
        for t in ALL_TYPES {
            for m in MARKETS {
                if !available(t, m, Period::Daily) && !available(t, m, Period::Monthly) {
                    continue;
                }
                let layout = layout(t, m).unwrap_or_else(|| panic!("{t} in {m:?}"));
                let columns = layout.columns;
                let mut names: Vec<_> = columns.iter().map(|c| c.name).collect();
                names.sort_unstable();
                names.dedup();
                assert_eq!(names.len(), columns.len(), "{t}");
                let read = min_fields(columns.iter().map(|c| c.field));
                assert!(read <= layout.fields_per_line, "{t}");
                assert!(layout.fields_per_line <= crate::decoder::MAX_FIELDS, "{t}");
            }
        }
    }

    #[test]
    fn lines_have_the_published_number_of_fields() {
        assert_eq!(KLINES.fields_per_line, 12);
        assert_eq!(AGG_TRADES_SPOT.fields_per_line, 8);
        assert_eq!(AGG_TRADES_FUTURES.fields_per_line, 7);
        assert_eq!(TRADES_SPOT.fields_per_line, 7);
        assert_eq!(TRADES_CM.fields_per_line, 6);
        assert_eq!(FUNDING_RATE.fields_per_line, 3);
        assert_eq!(LIQUIDATION_SNAPSHOT.fields_per_line, 10);
        assert_eq!(EOH_SUMMARY.fields_per_line, 26);
    }

    #[test]
    fn options_have_only_their_daily_files() {
        assert!(available("BVOLIndex", Market::Options, Period::Daily));
        assert!(available("EOHSummary", Market::Options, Period::Daily));
        assert!(!available("EOHSummary", Market::Options, Period::Monthly));
        assert!(!available("klines", Market::Options, Period::Daily));
        assert!(!available("BVOLIndex", Market::Spot, Period::Daily));
        assert!(by_header("EOHSummary") && !by_header("klines"));
    }

    #[test]
    fn one_schema_per_type_across_markets() {
        for t in ["trades", "aggTrades"] {
            let names = |m| {
                layout(t, m)
                    .unwrap()
                    .columns
                    .iter()
                    .map(|c| (c.name, c.kind))
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(Market::Spot), names(Market::FuturesUm), "{t}");
            assert_eq!(names(Market::Spot), names(Market::FuturesCm), "{t}");
        }
    }
}
