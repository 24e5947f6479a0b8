//! An OTLP receiver on loopback: HTTP/protobuf (HTTP/1.1, `/v1/traces`,
//! `/v1/metrics`, `/v1/logs`) and gRPC (HTTP/2 with prior knowledge, the
//! collector services' `Export` methods). Requests are decoded with the
//! official `opentelemetry-proto` types (gzip bodies inflated first) and
//! kept for assertions. An HTTP receiver can also misbehave as collectors
//! do: refuse its first requests with 503, or never answer at all; and
//! speak TLS with certificates of a CA made for the test, asking for the
//! client's certificate too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// What the receiver got.
#[derive(Debug, Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    /// Request headers, lowercased names, of every request.
    pub headers: Vec<Vec<(String, String)>>,
    /// Requests answered 503 (and not kept).
    pub refused: usize,
}

impl Received {
    pub fn spans(&self) -> Vec<Span> {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    pub fn log_records(&self) -> Vec<LogRecord> {
        self.logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| s.log_records.clone())
            .collect()
    }

    /// Metrics of the last export (cumulative values).
    pub fn last_metrics(&self) -> Vec<Metric> {
        self.metrics
            .last()
            .into_iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| s.metrics.clone())
            .collect()
    }

    /// `service.name` of the first trace export's resource.
    pub fn service_name(&self) -> Option<String> {
        self.traces
            .first()
            .and_then(|r| r.resource_spans.first())
            .and_then(|r| r.resource.as_ref())
            .and_then(|r| attribute(&r.attributes, "service.name"))
    }
}

/// A string (or the display of any scalar) attribute's value.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    scalar(value)
}

pub fn scalar(value: &AnyValue) -> Option<String> {
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        _ => return None,
    })
}

/// How an HTTP receiver answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Answer this many requests (the first ones) with 503, the second of
    /// them with `Retry-After: 1`.
    pub refuse_first: usize,
    /// Read requests and never answer them.
    pub never_answer: bool,
}

/// A certificate (chain) and its key, PEM files.
pub struct TlsFiles {
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Makes a CA and, signed by it, a server certificate for 127.0.0.1 and a
/// client certificate, with `openssl` in `dir`: (CA file, server, client).
pub fn make_certificates(dir: &std::path::Path) -> (std::path::PathBuf, TlsFiles, TlsFiles) {
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=cryptolake test CA",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&ca);
    let sign = |name: &str, extensions: &str| {
        std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("extensions file");
        let mut request = vec!["req", "-subj"];
        let subject = format!("/CN={name}");
        request.push(&subject);
        request.extend(ec);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        request.extend(["-keyout", &key, "-out", &csr]);
        openssl(&request);
        let pem = format!("{name}.pem");
        let ext = format!("{name}.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ]);
        TlsFiles {
            certificate: dir.join(pem),
            key: dir.join(key),
        }
    };
    let server = sign(
        "server",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    );
    let client = sign(
        "client",
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    );
    (dir.join("ca.pem"), server, client)
}

/// A running receiver.
pub struct Receiver {
    pub port: u16,
    pub received: Arc<Mutex<Received>>,
}

impl Receiver {
    /// HTTP/protobuf on a free port.
    pub fn http() -> Self {
        Self::http_behaving(Behaviour::default())
    }

    /// HTTP/protobuf on a free port, answering as `behaviour` says.
    pub fn http_behaving(behaviour: Behaviour) -> Self {
        Self::http1(move |stream, shared| serve_http1(stream, shared, behaviour))
    }

    /// Accepts HTTP/1.1 connections on a free port, each served by `serve`
    /// on a thread of its own.
    fn http1(
        serve: impl Fn(std::net::TcpStream, &Mutex<Received>) + Clone + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (shared, serve) = (shared.clone(), serve.clone());
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Self { port, received }
    }

    /// HTTP/protobuf over TLS on a free port, with the certificate chain and
    /// key in `tls` (PEM files); with `client_roots`, only clients with a
    /// certificate those roots signed are served (mutual TLS).
    pub fn https(tls: &TlsFiles, client_roots: Option<&std::path::Path>) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.certificate)
            .expect("certificate file")
            .map(|c| c.expect("a PEM certificate"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(&tls.key).expect("a PEM key");
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = match client_roots {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in CertificateDer::pem_file_iter(path).expect("roots file") {
                    roots.add(certificate.expect("a PEM root")).expect("a root");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(
            builder
                .with_single_cert(chain, key)
                .expect("server certificate"),
        );
        Self::http1(move |stream, shared| {
            let connection = rustls::ServerConnection::new(config.clone()).expect("TLS session");
            let stream = rustls::StreamOwned::new(connection, stream);
            serve_http1(stream, shared, Behaviour::default());
        })
    }

    /// gRPC (cleartext HTTP/2) on a free port.
    pub fn grpc() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                listener.set_nonblocking(true).expect("nonblocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((stream, _)) = listener.accept().await {
                    let shared = shared.clone();
                    tokio::spawn(async move { serve_grpc(stream, shared).await });
                }
            });
        });
        Self { port, received }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn store(shared: &Mutex<Received>, path: &str, headers: Vec<(String, String)>, body: &[u8]) {
    let gzip = headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v == "gzip");
    let inflated;
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .expect("a valid gzip body");
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    let mut received = shared.lock().expect("lock");
    received.headers.push(headers);
    if path.ends_with("/v1/traces") || path.contains("TraceService") {
        received
            .traces
            .push(ExportTraceServiceRequest::decode(body).expect("a valid trace export"));
    } else if path.ends_with("/v1/metrics") || path.contains("MetricsService") {
        received
            .metrics
            .push(ExportMetricsServiceRequest::decode(body).expect("a valid metrics export"));
    } else if path.ends_with("/v1/logs") || path.contains("LogsService") {
        received
            .logs
            .push(ExportLogsServiceRequest::decode(body).expect("a valid logs export"));
    } else {
        panic!("unexpected OTLP path {path}");
    }
}

fn serve_http1<S: Read + Write>(stream: S, shared: &Mutex<Received>, behaviour: Behaviour) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
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
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if behaviour.never_answer {
            // Hold the connection open, answering nothing, until the
            // client gives up.
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
            return;
        }
        let refusal = {
            let mut received = shared.lock().expect("lock");
            let refused = received.refused;
            (refused < behaviour.refuse_first).then(|| {
                received.refused += 1;
                refused
            })
        };
        match refusal {
            Some(0) => {
                let _ = reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
            }
            Some(_) => {
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n",
                );
            }
            None => {
                store(shared, &path, headers, &body);
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                );
            }
        }
    }
}

async fn serve_grpc(stream: tokio::net::TcpStream, shared: Arc<Mutex<Received>>) {
    let Ok(mut connection) = h2::server::handshake(stream).await else {
        return;
    };
    // The connection must keep being polled (accept) for request bodies to
    // make progress, so each request is handled on its own task.
    while let Some(Ok((request, respond))) = connection.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move { answer_grpc(request, respond, &shared).await });
    }
}

async fn answer_grpc(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
    shared: &Mutex<Received>,
) {
    let path = request.uri().path().to_owned();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let mut body = request.into_body();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    assert!(
        bytes.len() >= 5 && bytes[0] == 0,
        "a length-prefixed gRPC message"
    );
    let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    store(shared, &path, headers, &bytes[5..5 + length]);
    let response = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .expect("response");
    if let Ok(mut send) = respond.send_response(response, false) {
        // Every Export response message is empty when all was accepted.
        let _ = send.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), false);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let _ = send.send_trailers(trailers);
    }
}
