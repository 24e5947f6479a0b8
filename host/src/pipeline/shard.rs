//! Deterministic shards of a pipeline's series, for backfills split across
//! machines (`sync --shard I/N`, or a Kubernetes Indexed Job's
//! `JOB_COMPLETION_INDEX` with `--shards N`).
//!
//! Owns: the stable hash of a series (exchange, market, data type, symbol,
//! interval) and which shard it falls in. The hash is SHA-256 of the
//! series' fields, so every agent, version and platform computes the same
//! split, and any agent can recompute any shard's plan. It must not know
//! about runs, the lake or the command line.

use sha2::{Digest, Sha256};

use crate::wit::PartitionValues;

/// One of `count` disjoint parts of every pipeline's series. Every series
/// is in exactly one shard, so `count` agents with shards `0..count`
/// together do all the work once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    /// Which part, from 0.
    pub index: u32,
    /// How many parts.
    pub count: u32,
}

impl Shard {
    /// Shard `index` of `count`; an error unless `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("the number of shards must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index} does not exist among {count} (they are numbered 0 to {})",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// Parses `I/N`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let malformed = || format!("`{text}` is not a shard: expected I/N, e.g. 0/4");
        let (index, count) = text.split_once('/').ok_or_else(malformed)?;
        let number = |s: &str| s.trim().parse::<u32>().map_err(|_| malformed());
        Self::new(number(index)?, number(count)?)
    }

    /// Whether the series of an artifact with these partition values is in
    /// this shard.
    pub fn contains(&self, partition: &PartitionValues) -> bool {
        series_hash(partition) % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The first 8 bytes, big-endian, of SHA-256 over the series' fields, each
/// ended by a newline (no interval: an empty field). Changing this moves
/// series between shards under running backfills: a test pins it.
pub(super) fn series_hash(partition: &PartitionValues) -> u64 {
    let mut hasher = Sha256::new();
    for field in [
        partition.exchange.as_str(),
        partition.market.as_str(),
        partition.data_type.as_str(),
        partition.symbol.as_str(),
        partition.interval.as_deref().unwrap_or(""),
    ] {
        hasher.update(field.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A series' fields, readable: `exchange/market/data_type/symbol[/interval]`.
pub(super) fn series_label(partition: &PartitionValues) -> String {
    let mut label = format!(
        "{}/{}/{}/{}",
        partition.exchange, partition.market, partition.data_type, partition.symbol
    );
    if let Some(interval) = &partition.interval {
        label.push('/');
        label.push_str(interval);
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(symbol: &str, period: &str) -> PartitionValues {
        PartitionValues {
            exchange: "binance".into(),
            market: "spot".into(),
            data_type: "klines".into(),
            symbol: symbol.into(),
            interval: Some("1m".into()),
            period: period.into(),
        }
    }

    #[test]
    fn shards_parse_and_refuse_what_does_not_exist() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::parse("0/1").map(|s| s.to_string()), Ok("0/1".into()));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", "1/2/3", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert!(Shard::parse("4/4").unwrap_err().contains("numbered 0 to 3"));
    }

    #[test]
    fn every_series_is_in_exactly_one_shard_whatever_its_period() {
        for count in 1..=7 {
            for i in 0..200 {
                let symbol = format!("SYM{i}USDT");
                let holders: Vec<u32> = (0..count)
                    .filter(|&index| {
                        Shard { index, count }.contains(&series(&symbol, "2024-01-01"))
                    })
                    .collect();
                assert_eq!(holders.len(), 1, "{symbol} in {count} shards: {holders:?}");
                let day_two = Shard {
                    index: holders[0],
                    count,
                };
                assert!(day_two.contains(&series(&symbol, "2024-01-02")));
                assert!(day_two.contains(&series(&symbol, "2024-02")));
            }
        }
    }

    #[test]
    fn the_split_is_pinned() {
        // A change here reassigns series under running backfills.
        assert_eq!(
            series_hash(&series("BTCUSDT", "2024-01-01")),
            PINNED_BTCUSDT
        );
        let spread: Vec<usize> = (0..4)
            .map(|index| {
                (0..400)
                    .filter(|i| {
                        Shard { index, count: 4 }.contains(&series(&format!("S{i}"), "2024-01-01"))
                    })
                    .count()
            })
            .collect();
        assert!(
            spread.iter().all(|&n| (70..=130).contains(&n)),
            "{spread:?}"
        );
    }

    /// SHA-256 of `binance\nspot\nklines\nBTCUSDT\n1m\n`, computed apart (Python's hashlib).
    const PINNED_BTCUSDT: u64 = 9_450_925_682_444_116_237;
}
