//! Loopback stand-ins for the AWS credential endpoints the agent's chain
//! asks: the EC2 instance metadata service (IMDSv2), the ECS/EKS container
//! credentials endpoint, and STS's `AssumeRoleWithWebIdentity`. Each hands
//! out the test credentials (which s3s-fs checks every signature against)
//! with an expiry, and counts how often they were fetched.
//!
//! STS is ours, not moto's: moto serves every service on one port and tells
//! them apart by host or body, and `AssumeRoleWithWebIdentity` sent as query
//! parameters to `127.0.0.1` is routed to its S3.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::s3::test_credentials;

/// A running credentials endpoint.
pub struct CredentialServer {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    fetches: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// What the server is standing in for.
#[derive(Debug, Clone)]
pub enum Role {
    /// IMDSv2: `PUT /latest/api/token`, then the role and its credentials,
    /// each with the token.
    Imds,
    /// A container endpoint: `GET /credentials` with this `Authorization`.
    Container {
        /// The token the request must carry.
        token: String,
    },
    /// STS `AssumeRoleWithWebIdentity` (query parameters, as the AWS SDKs
    /// and object_store send it), for this web identity token.
    Sts {
        /// The token the request must carry.
        token: String,
    },
}

impl CredentialServer {
    /// Starts a server whose credentials expire `lifetime_s` seconds after
    /// each fetch (the agent refreshes five minutes before expiry, so 301 s
    /// makes it fetch again about a second later).
    pub fn start(role: Role, lifetime_s: i64) -> CredentialServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let fetches = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopping) = (Arc::clone(&fetches), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        answer(stream, &role, lifetime_s, &counted);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        CredentialServer {
            endpoint,
            fetches,
            stop,
        }
    }

    /// How many times credentials were handed out.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for CredentialServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn answer(stream: std::net::TcpStream, role: &Role, lifetime_s: i64, fetches: &AtomicUsize) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            headers.push((name, value));
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let credentials = || {
        fetches.fetch_add(1, Ordering::SeqCst);
        let expiration = time::OffsetDateTime::now_utc() + time::Duration::seconds(lifetime_s);
        let c = test_credentials();
        serde_json::json!({
            "Code": "Success",
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key,
            "Token": "session-token",
            "Expiration": expiration
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        })
        .to_string()
    };
    let (status, text) = match role {
        Role::Imds => match (method, path) {
            ("PUT", "/latest/api/token") => ("200 OK", "imds-token".to_owned()),
            (_, _) if header("x-aws-ec2-metadata-token") != Some("imds-token") => {
                ("401 Unauthorized", String::new())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") => {
                ("200 OK", "cryptolake-role".to_owned())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/cryptolake-role") => {
                ("200 OK", credentials())
            }
            _ => ("404 Not Found", String::new()),
        },
        Role::Container { token } => match header("authorization") {
            Some(given) if given == token => ("200 OK", credentials()),
            _ => ("403 Forbidden", String::new()),
        },
        Role::Sts { token } => {
            let query = path.split_once('?').map_or("", |(_, q)| q);
            let has = |pair: String| query.split('&').any(|p| p == pair);
            if method == "POST"
                && has("Action=AssumeRoleWithWebIdentity".into())
                && has(format!("WebIdentityToken={token}"))
            {
                let json: serde_json::Value =
                    serde_json::from_str(&credentials()).expect("credentials json");
                let xml = format!(
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                    json["AccessKeyId"].as_str().unwrap_or_default(),
                    json["SecretAccessKey"].as_str().unwrap_or_default(),
                    json["Token"].as_str().unwrap_or_default(),
                    json["Expiration"].as_str().unwrap_or_default(),
                );
                ("200 OK", xml)
            } else {
                ("403 Forbidden", String::new())
            }
        }
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}
