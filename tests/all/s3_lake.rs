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

    // A bucket that does not exist is named before any work (on moto:
    // s3s-fs creates a bucket's directory on the first PUT).
    let missing = dir.path().join("missing");
    std::fs::create_dir_all(&missing).unwrap();
    let missing = write_agent_config(
        &missing,
        &format!(
            "{{ url = \"s3://no-such-bucket/crypto\", endpoint = \"{}\" }}",
            moto.endpoint()
        ),
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            &format!("{}/{ARCHIVE_BUCKET}", moto.endpoint()),
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            "",
        ),
    );
    let output = crate::support::cryptolake()
        .args(["validate", "--config", missing.to_str().unwrap()])
        .envs(env)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lake.url") && stderr.contains("no-such-bucket"),
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
fn instance_container_web_identity_and_profile_credentials_sign_the_lake() {
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

    // EKS IRSA: a web identity token file and a role, exchanged at STS.
    let token_file = dir.path().join("web-identity-token");
    std::fs::write(&token_file, "irsa-token").unwrap();
    let sts = CredentialServer::start(
        Role::Sts {
            token: "irsa-token".into(),
        },
        3600,
    );
    let web_identity = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/cryptolake"),
        ("AWS_ENDPOINT_URL_STS", sts.endpoint.as_str()),
    ];
    let (report, _) = sync_report_env(&config("web-identity"), &[], 0, &web_identity);
    assert_eq!(report["pipelines"][0]["completed"], days, "{report:#}");
    assert_eq!(sts.fetches(), 1);
    // A token STS refuses stops the agent before any work, saying where the
    // credentials were to come from.
    std::fs::write(&token_file, "stolen-token").unwrap();
    let output = crate::support::cryptolake()
        .args(["sync", "--config", config("web-identity").to_str().unwrap()])
        .envs(web_identity)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("web identity"), "{stderr}");

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

/// Two `sync` processes on one S3 lake over the same 200 archives, started
/// together: each archive ends in `raw/` exactly once, byte for byte, with
/// one manifest entry, and is reported completed by exactly one of them (the
/// other finds it up to date, or loses the race to commit it and says
/// `committed-elsewhere`).
#[test]
fn two_agents_racing_on_one_lake_write_every_archive_once() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let days = 200;
    let mut archives = Vec::new();
    for day in 0..days {
        let file = KlineFile::spot(
            "BTCUSDT",
            date!(2024 - 01 - 01) + time::Duration::days(day),
            5,
        );
        let bytes = file.upload(&moto);
        archives.push((file.key(), bytes));
    }
    // The lake is on moto too: s3s-fs checks If-None-Match before it
    // writes, not atomically with the write, so two creates at the same
    // moment can both succeed there (seen in 5 of 200 archives).
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let config = write_agent_config(
        dir.path(),
        &format!(
            "{{ url = \"s3://lake/crypto\", endpoint = \"{}\", staging_dir = \"staging\" }}",
            moto.endpoint()
        ),
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            &archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            "window = { start = \"2024-01-01\", end = \"2024-07-18\" }\ntransfer = \"stream\"",
        ),
    );
    let credentials = test_credentials();
    let agents: Vec<_> = (0..2)
        .map(|_| {
            crate::support::cryptolake()
                .args([
                    "sync",
                    "--output",
                    "json",
                    "--config",
                    config.to_str().unwrap(),
                ])
                .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &credentials.secret_access_key)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("starts")
        })
        .collect();
    let mut completed = 0;
    let mut elsewhere = 0;
    for agent in agents {
        let output = agent.wait_with_output().expect("finishes");
        assert!(
            output.status.success(),
            "{}",
            crate::support::describe(&output)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        let counts = &report["pipelines"][0];
        assert_eq!(counts["discovered"], days, "{report:#}");
        assert_eq!(
            counts["completed"].as_i64().unwrap()
                + counts["up_to_date"].as_i64().unwrap()
                + counts["committed_elsewhere"].as_i64().unwrap(),
            days,
            "{counts:#}"
        );
        completed += counts["completed"].as_i64().unwrap();
        elsewhere += counts["committed_elsewhere"].as_i64().unwrap();
    }
    assert_eq!(
        completed, days,
        "each archive completed by exactly one agent"
    );
    eprintln!("{elsewhere} archive(s) lost a commit race and were left to the other agent");

    for (key, bytes) in &archives {
        let stored = moto
            .get("lake", &format!("crypto/raw/{key}"))
            .expect("in raw/");
        assert!(stored == *bytes, "{key} differs from the archive");
        let entry = moto
            .get(
                "lake",
                &format!("crypto/_cryptolake/manifest/spot/{key}.json"),
            )
            .expect("a manifest entry");
        let entry: serde_json::Value = serde_json::from_slice(&entry).expect("json");
        assert_eq!(entry["source"]["key"], key.as_str());
    }
}
