//! The host's SigV4 signer against s3s-fs, an S3 server that verifies the
//! signature of every request: what the agent will send to an operator's
//! bucket is accepted, and a wrong secret or no signature is refused.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cryptolake::transfer::sigv4::Credentials;

use crate::support::s3::{client, free_port, signed, test_credentials};
use crate::support::tools;

struct S3sFs {
    child: Child,
    endpoint: String,
    _root: tempfile::TempDir,
}

impl S3sFs {
    fn start() -> S3sFs {
        let root = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let credentials = test_credentials();
        let child = Command::new(tools::s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &credentials.access_key_id])
            .args(["--secret-key", &credentials.secret_access_key])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3sFs {
            child,
            endpoint,
            _root: root,
        }
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn signed_writes_are_accepted_and_bad_signatures_refused() {
    let server = S3sFs::start();
    let http = client();
    let good = test_credentials();
    let bucket = format!("{}/lake", server.endpoint);
    let response = signed(&http, &good, "PUT", &bucket, "", Vec::new());
    assert!(
        response.status().is_success(),
        "create bucket: {}",
        response.status()
    );

    // A key with characters that need encoding, as archive keys can have.
    let object =
        format!("{bucket}/raw/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01 (v2).zip");
    let body = b"archive bytes".to_vec();
    let response = signed(
        &http,
        &good,
        "PUT",
        &object,
        "application/zip",
        body.clone(),
    );
    assert!(response.status().is_success(), "put: {}", response.status());
    let response = signed(&http, &good, "GET", &object, "", Vec::new());
    assert!(response.status().is_success(), "get: {}", response.status());
    assert_eq!(response.bytes().expect("body").to_vec(), body);

    let wrong = Credentials {
        secret_access_key: "not-the-secret".into(),
        ..good.clone()
    };
    let response = signed(
        &http,
        &wrong,
        "PUT",
        &object,
        "application/zip",
        body.clone(),
    );
    assert_eq!(
        response.status().as_u16(),
        403,
        "a wrong secret must be refused"
    );
    let response = http.put(&object).body(body).send().expect("unsigned put");
    assert_eq!(
        response.status().as_u16(),
        403,
        "an unsigned write must be refused"
    );
}
