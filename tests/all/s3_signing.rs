//! The host's SigV4 signer against s3s-fs, an S3 server that verifies the
//! signature of every request: what the agent will send to an operator's
//! bucket is accepted, and a wrong secret or no signature is refused.

use cryptolake::transfer::sigv4::Credentials;

use crate::support::s3::{S3sFs, client, signed, test_credentials};

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

#[test]
fn large_files_upload_in_parts_and_arrive_whole() {
    use cryptolake::transfer::s3::{PART_BYTES, S3Client};

    let server = S3sFs::start();
    server.create_bucket("lake");
    let client = S3Client::new(
        cryptolake::transfer::http_client().expect("client"),
        url::Url::parse(&server.endpoint).expect("endpoint"),
        "us-east-1".into(),
        test_credentials(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.bin");
    // Two full parts and a short third one.
    let bytes: Vec<u8> = (0..PART_BYTES * 2 + 12_345)
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(&path, &bytes).expect("write");
    let rt = crate::support::runtime::tokio();
    rt.block_on(client.upload_file("lake", "ohlcv/big.parquet", &path))
        .expect("multipart upload");
    let info = rt
        .block_on(client.head("lake", "ohlcv/big.parquet"))
        .expect("head")
        .expect("exists");
    assert_eq!(info.size, bytes.len() as u64);
    assert!(
        info.etag.as_deref().is_some_and(|e| e.ends_with("-3")),
        "{info:?}"
    );
    let stored =
        std::fs::read(server.bucket_dir("lake").join("ohlcv/big.parquet")).expect("stored");
    assert!(stored == bytes, "the object differs from the file");
    assert_eq!(
        rt.block_on(client.get("lake", "missing")).expect("get"),
        None
    );
}
