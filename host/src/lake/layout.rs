//! Where everything lives in the lake.
//!
//! ```text
//! raw/<source key>                        byte-exact archive (and .CHECKSUM)
//! <table>/exchange=…/market=…/symbol=…/date=…/part-<artifact stem>.parquet
//! _cryptolake/manifest/<pipeline>/<source key>.json
//! _cryptolake/quarantine/<pipeline>/<source key>   (+ .reason.json)
//! _cryptolake/reports/<pipeline>/last-run.json      the last run's report
//! _cryptolake/leases/<pipeline>/<series>.json   who works on a series (`[leases]`)
//! _cryptolake/replicas/<replica>.json     each `run` replica's heartbeat
//! _cryptolake/staging/                    files being written (never final)
//! ```
//!
//! Partition columns live in the path, as Spark and Hive write them, so
//! readers with hive partitioning get them as columns without duplicates.

use crate::wit::PartitionValues;

/// Directory of files being written.
pub const STAGING_DIR: &str = "_cryptolake/staging";

/// The partition keys in path order. Columns with these names are stored
/// in the path, not in the files.
pub const PARTITION_COLUMNS: [&str; 3] = ["exchange", "market", "symbol"];

/// Key of the raw copy of an archive.
pub fn raw_key(source_key: &str) -> String {
    format!("raw/{source_key}")
}

/// Key of the raw copy of an archive's checksum sidecar.
pub fn raw_checksum_key(source_key: &str) -> String {
    format!("raw/{source_key}.CHECKSUM")
}

/// The partition directory of an artifact's rows in `table`.
pub fn partition_dir(table: &str, partition: &PartitionValues) -> String {
    format!(
        "{table}/exchange={}/market={}/symbol={}/date={}",
        partition.exchange, partition.market, partition.symbol, partition.period
    )
}

/// The Parquet file an artifact's rows go to. One artifact, one file, under
/// a name derived from the artifact, so re-processing replaces it.
pub fn output_key(table: &str, partition: &PartitionValues, source_key: &str) -> String {
    let name = source_key.rsplit('/').next().unwrap_or(source_key);
    let stem = name
        .strip_suffix(".zip")
        .or_else(|| name.strip_suffix(".gz"))
        .unwrap_or(name);
    let stem = stem.strip_suffix(".csv").unwrap_or(stem);
    format!("{}/part-{stem}.parquet", partition_dir(table, partition))
}

/// Prefix of a pipeline's manifest entries.
pub fn manifest_prefix(pipeline: &str) -> String {
    format!("_cryptolake/manifest/{pipeline}/")
}

/// Key of an artifact's manifest entry.
pub fn manifest_key(pipeline: &str, source_key: &str) -> String {
    format!("{}{source_key}.json", manifest_prefix(pipeline))
}

/// Key of a pipeline's last run report (JSON); of one shard's, for
/// `shard = Some((index, count))` (`sync --shard I/N`): shards run on
/// several machines at once, and each keeps its own.
pub fn run_report_key(pipeline: &str, shard: Option<(u32, u32)>) -> String {
    match shard {
        None => format!("_cryptolake/reports/{pipeline}/last-run.json"),
        Some((index, count)) => {
            format!("_cryptolake/reports/{pipeline}/last-run-shard-{index}-of-{count}.json")
        }
    }
}

/// Key of a pipeline's schedule status, written by `cryptolake run`.
pub fn status_key(pipeline: &str) -> String {
    format!("_cryptolake/status/{pipeline}.json")
}

/// Prefix of a pipeline's series leases.
pub fn lease_prefix(pipeline: &str) -> String {
    format!("_cryptolake/leases/{pipeline}/")
}

/// Key of the lease of one series (named by its stable hash, in hex).
pub fn lease_key(pipeline: &str, series_hash: u64) -> String {
    format!("{}{series_hash:016x}.json", lease_prefix(pipeline))
}

/// Prefix of the replicas' heartbeats.
pub const REPLICAS_PREFIX: &str = "_cryptolake/replicas/";

/// Key of one replica process's heartbeat.
pub fn replica_key(replica: &str) -> String {
    format!("{REPLICAS_PREFIX}{replica}.json")
}

/// Prefix of a pipeline's quarantined archives and reasons.
pub fn quarantine_prefix(pipeline: &str) -> String {
    format!("_cryptolake/quarantine/{pipeline}/")
}

/// Key of a quarantined archive.
pub fn quarantine_key(pipeline: &str, source_key: &str) -> String {
    format!("{}{source_key}", quarantine_prefix(pipeline))
}

/// Key of the reason a quarantined archive was refused.
pub fn quarantine_reason_key(pipeline: &str, source_key: &str) -> String {
    format!("{}{source_key}.reason.json", quarantine_prefix(pipeline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_key_is_hive_partitioned_and_named_after_the_artifact() {
        let p = crate::lake::fixtures::spot_btcusdt("1m", "2024-01-01");
        assert_eq!(
            output_key(
                "ohlcv",
                &p,
                "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip"
            ),
            "ohlcv/exchange=binance/market=spot/symbol=BTCUSDT/date=2024-01-01/part-BTCUSDT-1m-2024-01-01.parquet"
        );
    }
}
