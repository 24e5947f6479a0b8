//! A lake in an S3 bucket: the whole sync writes to s3s-fs (which verifies
//! every request's signature) with the operator's credentials from the
//! environment, and a second run reads the manifest back from the bucket.

use time::macros::date;

use crate::support::archive::KlineFile;
use crate::support::s3::{ARCHIVE_BUCKET, Moto, S3sFs, test_credentials};
use crate::support::{binance_pipeline, duckdb, sync_report_env, write_agent_config};

#[test]
fn sync_writes_a_query_ready_lake_into_an_s3_bucket() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let files = [
        KlineFile::spot("BTCUSDT", date!(2024 - 12 - 31), 30),
        KlineFile::spot("BTCUSDT", date!(2025 - 01 - 01), 40),
    ];
    for file in &files {
        file.upload(&moto);
    }
    let lake = S3sFs::start();
    lake.create_bucket("lake");

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let config = write_agent_config(
        dir.path(),
        &format!(
            "{{ url = \"s3://lake/crypto\", endpoint = \"{}\", staging_dir = \"staging\" }}",
            lake.endpoint
        ),
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            &archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            "table = \"ohlcv\"\nwindow = { start = \"2024-12-31\", end = \"2025-01-01\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
        ),
    );
    let credentials = test_credentials();
    let env = [
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id.as_str()),
        (
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.as_str(),
        ),
    ];

    let (report, _) = sync_report_env(&config, &[], 0, &env);
    assert_eq!(report["pipelines"][0]["completed"], 2, "{report:#}");

    // s3s-fs keeps objects as files; read them with DuckDB.
    let bucket = lake.bucket_dir("lake");
    let rows = duckdb::query(
        &bucket,
        "SELECT count(*) AS n, min(epoch_us(open_time)) AS first FROM read_parquet('{lake}/crypto/ohlcv/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(rows[0]["n"], 70);
    assert_eq!(rows[0]["first"], files[0].expected_rows()[0].open_time_us);
    assert!(bucket.join("crypto/raw").join(files[1].key()).is_file());
    assert!(
        bucket
            .join("crypto/_cryptolake/manifest/spot")
            .join(format!("{}.json", files[1].key()))
            .is_file()
    );

    // `lake verify` lists the bucket (ListObjectsV2) and reads the footers.
    let verify = crate::support::cryptolake()
        .args([
            "lake",
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
        ])
        .envs(env)
        .output()
        .expect("runs");
    assert!(
        verify.status.success(),
        "{}",
        crate::support::describe(&verify)
    );
    let verification: serde_json::Value = serde_json::from_slice(&verify.stdout).expect("json");
    assert_eq!(
        (
            verification["entries"].as_u64(),
            verification["files"].as_u64()
        ),
        (Some(2), Some(2))
    );

    // The manifest is read back from the bucket: nothing to do.
    let (report, _) = sync_report_env(&config, &[], 0, &env);
    assert_eq!(report["pipelines"][0]["up_to_date"], 2, "{report:#}");

    // Wrong credentials are refused by the server: the start-up check of the
    // lake says so, naming the field, before any work.
    let wrong = [
        ("AWS_ACCESS_KEY_ID", "cryptolake-test"),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
    ];
    let output = crate::support::cryptolake()
        .args(["sync", "--config", config.to_str().unwrap()])
        .envs(wrong)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lake.url") && stderr.contains("403"),
        "{stderr}"
    );

    // Without credentials the chain ends at the instance metadata service
    // (moved to a loopback port where nothing listens): the agent refuses to
    // start and says where it looked, rather than guess.
    let output = crate::support::cryptolake()
        .args(["sync", "--config", config.to_str().unwrap()])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lake.url") && stderr.contains("instance metadata"),
        "{stderr}"
    );
}

/// Every credential source but static keys, against loopback stand-ins: the
/// lake on s3s-fs accepts only requests signed with the test key, so a
/// completed sync proves the credentials from each source were used, and
/// the fetch counts prove short-lived ones were fetched again mid-run.
#[test]
fn instance_container_and_profile_credentials_sign_the_lake_and_are_refreshed() {
    use crate::support::credentials::{CredentialServer, Role};

    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    // Enough archives that the run outlasts object_store's 100 ms between
    // fetches of a credential that is due for renewal.
    let days = 20;
    for day in 0..days {
        KlineFile::spot(
            "BTCUSDT",
            date!(2025 - 01 - 01) + time::Duration::days(day),
            20,
        )
        .upload(&moto);
    }
    let lake = S3sFs::start();
    lake.create_bucket("lake");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let config = |prefix: &str| {
        let sub = dir.path().join(prefix);
        std::fs::create_dir_all(&sub).unwrap();
        write_agent_config(
            &sub,
            &format!(
                "{{ url = \"s3://lake/{prefix}\", endpoint = \"{}\", staging_dir = \"staging\" }}",
                lake.endpoint
            ),
            &moto.host_port(),
            &binance_pipeline(
                "spot",
                &archive,
                r#"interval = "1m", symbols = ["BTCUSDT"]"#,
                "table = \"ohlcv\"\nwindow = { start = \"2025-01-01\", end = \"2025-01-20\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
            ),
        )
    };

    // EC2: IMDSv2 (token, role, credentials that are already within the
    // five minutes the agent renews before expiry, so they are fetched again
    // during the run).
    let imds = CredentialServer::start(Role::Imds, 300);
    let (report, _) = sync_report_env(
        &config("imds"),
        &[],
        0,
        &[("AWS_METADATA_ENDPOINT", imds.endpoint.as_str())],
    );
    assert_eq!(report["pipelines"][0]["completed"], days, "{report:#}");
    assert!(imds.fetches() > 1, "fetched {} times", imds.fetches());

    // ECS/EKS: the container endpoint with its authorization token file.
    let token_file = dir.path().join("container-token");
    std::fs::write(&token_file, "container-secret").unwrap();
    let container = CredentialServer::start(
        Role::Container {
            token: "container-secret".into(),
        },
        3600,
    );
    let uri = format!("{}/credentials", container.endpoint);
    let (report, _) = sync_report_env(
        &config("container"),
        &[],
        0,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
        ],
    );
    assert_eq!(report["pipelines"][0]["completed"], days, "{report:#}");
    // Long-lived: fetched once, then cached.
    assert_eq!(container.fetches(), 1);

    // A named profile whose credential_process prints the keys.
    let credentials = test_credentials();
    let aws_config = dir.path().join("aws-config");
    std::fs::write(
        &aws_config,
        format!(
            "[default]\nregion = us-east-1\n\n[profile lake]\ncredential_process = printf '{{\"Version\":1,\"AccessKeyId\":\"{}\",\"SecretAccessKey\":\"{}\"}}'\n",
            credentials.access_key_id, credentials.secret_access_key
        ),
    )
    .unwrap();
    let (report, _) = sync_report_env(
        &config("profile"),
        &[],
        0,
        &[
            ("AWS_CONFIG_FILE", aws_config.to_str().unwrap()),
            ("AWS_PROFILE", "lake"),
        ],
    );
    assert_eq!(report["pipelines"][0]["completed"], days, "{report:#}");

    // A profile that does not exist is named, not skipped.
    let output = crate::support::cryptolake()
        .args(["sync", "--config", config("profile").to_str().unwrap()])
        .env("AWS_CONFIG_FILE", &aws_config)
        .env("AWS_PROFILE", "nonesuch")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("nonesuch"), "{stderr}");
}
