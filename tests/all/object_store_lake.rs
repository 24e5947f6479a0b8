//! The lake on object_store against real S3 servers on loopback: s3s-fs,
//! which verifies every request's SigV4 signature, and moto. Requests the
//! agent signs are accepted and bad signatures refused; large files arrive
//! whole through multipart uploads; conditional writes are honoured where
//! the server supports them, and the probe says which.

use std::collections::BTreeMap;

use cryptolake::config::{ObjectLake, ObjectService};
use cryptolake::lake::{Lake, PART_BYTES, WriteMode, Written};
use cryptolake::storage::Preconditions;

use crate::support::s3::{Credentials, Moto, S3sFs, client, signed, test_credentials};

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

/// A lake in `bucket` at `endpoint`, signed with the test credentials.
fn lake_at(endpoint: &str, bucket: &str, staging: &std::path::Path) -> Lake {
    let credentials = test_credentials();
    let object = ObjectLake {
        service: ObjectService::S3,
        bucket: bucket.into(),
        prefix: "crypto".into(),
        endpoint: Some(url::Url::parse(endpoint).unwrap()),
        region: Some("us-east-1".into()),
        path_style: None,
        sse: None,
        sse_kms_key_id: None,
        storage_class: None,
        requester_pays: false,
        conditional_writes: true,
        options: BTreeMap::from([
            ("aws_access_key_id".into(), credentials.access_key_id),
            (
                "aws_secret_access_key".into(),
                credentials.secret_access_key,
            ),
        ]),
        staging: staging.to_owned(),
    };
    let http = cryptolake::transfer::http_client().unwrap();
    let storage = cryptolake::storage::open(&object, &http).unwrap();
    Lake::open_object(storage, object.url(), &object.prefix, &object.staging)
}

#[test]
fn large_files_upload_in_parts_and_arrive_whole() {
    let server = S3sFs::start();
    server.create_bucket("lake");
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = lake_at(&server.endpoint, "lake", dir.path());
    let rt = crate::support::runtime::tokio();
    // Two full parts and a short third one.
    let bytes: Vec<u8> = (0..PART_BYTES * 2 + 12_345)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut staged = lake.staging_file().unwrap();
    std::io::Write::write_all(&mut staged, &bytes).unwrap();
    rt.block_on(lake.publish(staged, "ohlcv/big.parquet"))
        .expect("multipart upload");
    assert_eq!(
        rt.block_on(lake.size("ohlcv/big.parquet")).unwrap(),
        Some(bytes.len() as u64)
    );
    let stored =
        std::fs::read(server.bucket_dir("lake").join("crypto/ohlcv/big.parquet")).expect("stored");
    assert!(stored == bytes, "the object differs from the file");
    assert_eq!(rt.block_on(lake.get("missing")).unwrap(), None);
    // Only this process's staging directory, with its owner file, is left.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .flat_map(|claimed| {
            std::fs::read_dir(claimed.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.file_name())
        .filter(|name| name != ".owner")
        .collect();
    assert!(
        left.is_empty(),
        "the staging file was left behind: {left:?}"
    );

    // A large conditional create loses to an object already there.
    let mut staged = lake.staging_file().unwrap();
    std::io::Write::write_all(&mut staged, &bytes).unwrap();
    let published = rt
        .block_on(lake.publish_as(staged, "ohlcv/big.parquet", WriteMode::Create))
        .unwrap();
    assert!(matches!(
        published,
        cryptolake::lake::Published::Conflict(_)
    ));
}

#[test]
fn conditional_writes_are_probed_and_honoured_where_supported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = crate::support::runtime::tokio();
    let moto = Moto::start();
    moto.create_bucket("lake");
    let s3s = S3sFs::start();
    s3s.create_bucket("lake");
    for (name, endpoint) in [("moto", moto.endpoint()), ("s3s-fs", s3s.endpoint.clone())] {
        let lake = lake_at(&endpoint, "lake", dir.path());
        let probed = rt.block_on(lake.probe_conditional_writes()).unwrap();
        let key = "_cryptolake/manifest/p/a.json";
        let first = rt
            .block_on(lake.put_as(key, b"1".to_vec(), WriteMode::Create))
            .unwrap();
        let second = rt
            .block_on(lake.put_as(key, b"2".to_vec(), WriteMode::Create))
            .unwrap();
        assert_eq!(first, Written::Written, "{name}");
        match probed {
            Some(Preconditions::Honoured) => {
                assert_eq!(second, Written::Conflict, "{name}");
                assert_eq!(&rt.block_on(lake.get(key)).unwrap().unwrap()[..], b"1");
                let (_, version) = rt.block_on(lake.get_versioned(key)).unwrap().unwrap();
                let stale = cryptolake::lake::Version {
                    etag: Some("\"not-the-etag\"".into()),
                    version: None,
                };
                assert_eq!(
                    rt.block_on(lake.put_as(key, b"3".to_vec(), WriteMode::Replace(stale)))
                        .unwrap(),
                    Written::Conflict,
                    "{name}: If-Match with a stale ETag"
                );
                assert_eq!(
                    rt.block_on(lake.put_as(key, b"4".to_vec(), WriteMode::Replace(version)))
                        .unwrap(),
                    Written::Written,
                    "{name}: If-Match with the ETag read"
                );
            }
            other => {
                // The probe saw what the write shows: the store ignores
                // If-None-Match, and the agent says so at start.
                assert_eq!(other, Some(Preconditions::Ignored), "{name}");
                assert_eq!(second, Written::Written, "{name}");
            }
        }
        eprintln!("{name}: conditional writes {probed:?}");
    }
}
