//! A real S3 protocol server on loopback: moto (`moto_server`, from PyPI).
//!
//! Each [`Moto`] is its own server process on a free port, killed on drop, so
//! tests do not share state. Seeding uses the S3 REST API, signed (SigV4)
//! with explicit test credentials; reads by the agent are anonymous, which
//! moto allows once the bucket has a public-read policy, as the real Binance
//! bucket has.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::{AwsAuthorizer, AwsCredential};

/// The archive bucket's real name.
pub const ARCHIVE_BUCKET: &str = "data.binance.vision";

/// A running moto server.
pub struct Moto {
    child: Child,
    port: u16,
    client: reqwest::blocking::Client,
}

impl Moto {
    /// Starts a server and waits until it answers.
    pub fn start() -> Moto {
        super::tools::ensure_python_tools();
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Explicit test credentials: nothing may fall back to a cloud
            // metadata endpoint.
            .env("AWS_ACCESS_KEY_ID", "cryptolake-test")
            .env("AWS_SECRET_ACCESS_KEY", "cryptolake-test-secret")
            .env("AWS_DEFAULT_REGION", "ap-northeast-1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is installed (pip install 'moto[server]'; .ci/run does it)");
        let client = client();
        let moto = Moto {
            child,
            port,
            client,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if moto.client.get(moto.url("")).send().is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not answer on port {port} within 30 s");
    }

    /// The server's base URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `host:port`, for allow-lists.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// URL of a path on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint(), path)
    }

    /// Creates a bucket readable (get and list) by anyone.
    pub fn create_public_bucket(&self, bucket: &str) {
        let response = self.signed("PUT", bucket, "", Vec::new());
        assert!(
            response.status().is_success(),
            "create bucket: {}",
            response.status()
        );
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]
            }]
        });
        let response = self.signed(
            "PUT",
            &format!("{bucket}?policy"),
            "application/json",
            policy.to_string().into_bytes(),
        );
        assert!(
            response.status().is_success(),
            "put policy: {}",
            response.status()
        );
    }

    /// Stores an object.
    pub fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        let response = self.signed(
            "PUT",
            &format!("{bucket}/{key}"),
            "application/octet-stream",
            body,
        );
        assert!(
            response.status().is_success(),
            "put {key}: {}",
            response.status()
        );
    }
}

/// An access key pair.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// Credentials the test servers are started with.
pub fn test_credentials() -> Credentials {
    Credentials {
        access_key_id: "cryptolake-test".into(),
        secret_access_key: "cryptolake-test-secret".into(),
    }
}

/// Sends a SigV4-signed request.
pub fn signed(
    client: &reqwest::blocking::Client,
    credentials: &Credentials,
    method: &str,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::blocking::Response {
    // The path goes on the wire S3-encoded, exactly as it is signed.
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    let (path, query) = url[path_start..]
        .split_once('?')
        .unwrap_or((&url[path_start..], ""));
    let mut url = format!(
        "{}{}",
        &url[..path_start],
        cryptolake::storage::s3_copy::uri_encode(path, false)
    );
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    let url = url.as_str();
    // Signed by object_store's SigV4 signer, as the agent's requests are.
    let mut request = http::Request::builder().method(method).uri(url);
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    let mut request = request
        .body(object_store::client::HttpRequestBody::from(body.clone()))
        .expect("request");
    let credential = AwsCredential {
        key_id: credentials.access_key_id.clone(),
        secret_key: credentials.secret_access_key.clone(),
        token: None,
    };
    AwsAuthorizer::new(&credential, "s3", "us-east-1").authorize(&mut request, None);
    let mut outgoing = client
        .request(method.parse().expect("method"), url)
        .body(body);
    for (name, value) in request.headers() {
        if name != http::header::HOST {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    outgoing.send().expect("request to the S3 server")
}

/// A loopback HTTP client that never uses a proxy.
pub fn client() -> reqwest::blocking::Client {
    cryptolake::transfer::install_tls_provider();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

impl Moto {
    /// Reads an object with the test credentials, `None` when absent.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let response = self.signed("GET", &format!("{bucket}/{key}"), "", Vec::new());
        match response.status().as_u16() {
            200 => Some(response.bytes().expect("body").to_vec()),
            404 => None,
            status => panic!("get {key}: {status}"),
        }
    }

    /// Creates a private bucket (the operator's).
    pub fn create_bucket(&self, bucket: &str) {
        let response = self.signed("PUT", bucket, "", Vec::new());
        assert!(
            response.status().is_success(),
            "create bucket: {}",
            response.status()
        );
    }

    fn signed(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::blocking::Response {
        signed(
            &self.client,
            &test_credentials(),
            method,
            &self.url(path),
            content_type,
            body,
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running s3s-fs server: an S3 implementation that verifies the SigV4
/// signature of every request, storing objects as files under `root`.
pub struct S3sFs {
    child: Child,
    /// Base URL.
    pub endpoint: String,
    root: tempfile::TempDir,
}

impl S3sFs {
    /// Starts a server with the test credentials.
    pub fn start() -> S3sFs {
        let root = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let credentials = test_credentials();
        let child = Command::new(super::tools::s3s_fs())
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
            root,
        }
    }
}

impl S3sFs {
    /// The directory holding `bucket`'s objects as files.
    pub fn bucket_dir(&self, bucket: &str) -> std::path::PathBuf {
        self.root.path().join(bucket)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        let response = signed(
            &client(),
            &test_credentials(),
            "PUT",
            &format!("{}/{bucket}", self.endpoint),
            "",
            Vec::new(),
        );
        assert!(
            response.status().is_success(),
            "create bucket: {}",
            response.status()
        );
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
