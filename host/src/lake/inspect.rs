//! Looking at a lake: what tables and partitions it holds (`lake ls`) and
//! whether every manifest entry's outputs are there, whole (`lake verify`).
//!
//! Owns: reading the manifest entries and Parquet footers. It must not
//! change anything in the lake.

use std::collections::BTreeMap;

use serde::Serialize;

use super::manifest::ManifestEntry;
use super::{Lake, LakeError};

/// One table's summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TableSummary {
    /// Table name.
    pub table: String,
    /// Partition directories, with their files and rows.
    pub partitions: Vec<PartitionSummary>,
    /// Files in the table.
    pub files: usize,
    /// Rows in the table.
    pub rows: u64,
}

/// One partition directory's summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PartitionSummary {
    /// `exchange=…/market=…/symbol=…/date=…`.
    pub partition: String,
    /// Files.
    pub files: usize,
    /// Rows.
    pub rows: u64,
}

/// A problem `verify` found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The manifest entry (its key).
    pub manifest: String,
    /// What is wrong.
    pub problem: String,
}

/// The result of `verify`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    /// Manifest entries checked.
    pub entries: usize,
    /// Output files checked.
    pub files: usize,
    /// Problems found.
    pub problems: Vec<Problem>,
}

/// Reads every manifest entry, with its key.
pub async fn entries(lake: &Lake) -> Result<Vec<(String, ManifestEntry)>, LakeError> {
    let mut out = Vec::new();
    for key in lake.list("_cryptolake/manifest/").await? {
        if !key.ends_with(".json") {
            continue;
        }
        let Some(bytes) = lake.get(&key).await? else {
            continue;
        };
        let entry = serde_json::from_slice(&bytes).map_err(|e| LakeError::Manifest {
            key: key.clone(),
            message: e.to_string(),
        })?;
        out.push((key, entry));
    }
    Ok(out)
}

/// Tables, partitions, files and rows, as the manifest records them.
pub async fn summarize(lake: &Lake) -> Result<Vec<TableSummary>, LakeError> {
    let mut tables: BTreeMap<String, BTreeMap<String, PartitionSummary>> = BTreeMap::new();
    for (_, entry) in entries(lake).await? {
        let Some(table) = entry.table else {
            continue;
        };
        for output in entry.outputs {
            let partition = output
                .key
                .strip_prefix(&format!("{table}/"))
                .and_then(|rest| rest.rsplit_once('/'))
                .map_or_else(String::new, |(dir, _)| dir.to_owned());
            let summary = tables
                .entry(table.clone())
                .or_default()
                .entry(partition.clone())
                .or_insert_with(|| PartitionSummary {
                    partition,
                    ..PartitionSummary::default()
                });
            summary.files += 1;
            summary.rows += output.rows;
        }
    }
    Ok(tables
        .into_iter()
        .map(|(table, partitions)| {
            let partitions: Vec<PartitionSummary> = partitions.into_values().collect();
            TableSummary {
                files: partitions.iter().map(|p| p.files).sum(),
                rows: partitions.iter().map(|p| p.rows).sum(),
                table,
                partitions,
            }
        })
        .collect())
}

/// Checks that every output of every manifest entry exists, is readable
/// Parquet, and holds the recorded number of rows; and that every raw copy
/// exists.
pub async fn verify(lake: &Lake) -> Result<Verification, LakeError> {
    let entries = entries(lake).await?;
    let mut problems = Vec::new();
    let mut files = 0;
    for (key, entry) in &entries {
        let mut problem = |text: String| {
            problems.push(Problem {
                manifest: key.clone(),
                problem: text,
            })
        };
        if let Some(raw) = &entry.raw_key
            && lake.size(raw).await?.is_none()
        {
            problem(format!("raw copy {raw} is missing"));
        }
        for output in &entry.outputs {
            files += 1;
            let Some(bytes) = lake.get(&output.key).await? else {
                problem(format!("output {} is missing", output.key));
                continue;
            };
            match parquet_rows(bytes) {
                Ok(rows) if rows == output.rows => {}
                Ok(rows) => problem(format!(
                    "output {} has {rows} rows, the manifest records {}",
                    output.key, output.rows
                )),
                Err(error) => problem(format!(
                    "output {} is not readable Parquet: {error}",
                    output.key
                )),
            }
        }
    }
    Ok(Verification {
        entries: entries.len(),
        files,
        problems,
    })
}

fn parquet_rows(bytes: bytes::Bytes) -> Result<u64, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(bytes).map_err(|e| e.to_string())?;
    u64::try_from(reader.metadata().file_metadata().num_rows()).map_err(|e| e.to_string())
}
