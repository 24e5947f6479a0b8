//! Reads the lake back with DuckDB (Python package), an independent reader.

use std::path::Path;
use std::process::Command;

/// Runs `sql` in DuckDB with `{lake}` replaced by the lake's path; returns
/// each row as a JSON object.
pub fn query(lake: &Path, sql: &str) -> Vec<serde_json::Value> {
    super::tools::ensure_python_tools();
    let sql = sql.replace("{lake}", &lake.display().to_string());
    let script = r#"
import json, sys, duckdb
con = duckdb.connect()
cur = con.execute(sys.argv[1])
cols = [d[0] for d in cur.description]
for row in cur.fetchall():
    print(json.dumps(dict(zip(cols, [v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for v in row]))))
"#;
    let output = Command::new("python3")
        .args(["-c", script, &sql])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "duckdb query failed: {sql}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json row"))
        .collect()
}

/// Whether any `.parquet` file exists under `dir` (DuckDB refuses a glob
/// that matches nothing, and a run killed between creating a partition
/// directory and publishing into it leaves an empty directory).
pub fn has_parquet(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            has_parquet(&path)
        } else {
            path.extension().is_some_and(|e| e == "parquet")
        }
    })
}
