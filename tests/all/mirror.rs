//! Mirror-only pipelines (no table): archives go byte for byte into the raw
//! zone, server-side when the source and the lake are one S3 service.

use time::macros::date;

use crate::support::archive::{KlineFile, checksum_file, sha256_hex};
use crate::support::s3::{ARCHIVE_BUCKET, Moto, S3sFs, test_credentials};
use crate::support::{binance_pipeline, sync_report_env, write_agent_config};

fn config(
    dir: &std::path::Path,
    lake: &str,
    moto: &Moto,
    pipeline_extra: &str,
) -> std::path::PathBuf {
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let extra = format!(
        "attempts = 2\nwindow = {{ start = \"2024-05-01\", end = \"2024-05-03\" }}\n{pipeline_extra}"
    );
    write_agent_config(
        dir,
        lake,
        &moto.host_port(),
        &binance_pipeline(
            "mirror",
            &archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            &extra,
        ),
    )
}

/// Two good days and one whose published checksum is wrong.
fn seed(moto: &Moto) -> (Vec<(KlineFile, Vec<u8>)>, KlineFile) {
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let good: Vec<(KlineFile, Vec<u8>)> = [date!(2024 - 05 - 01), date!(2024 - 05 - 02)]
        .into_iter()
        .map(|d| {
            let f = KlineFile::spot("BTCUSDT", d, 50);
            let zip = f.upload(moto);
            (f, zip)
        })
        .collect();
    let bad = KlineFile::spot("BTCUSDT", date!(2024 - 05 - 03), 50);
    moto.put(ARCHIVE_BUCKET, &bad.key(), bad.zip());
    moto.put(
        ARCHIVE_BUCKET,
        &format!("{}.CHECKSUM", bad.key()),
        checksum_file(b"not these bytes", &bad.zip_name()).into_bytes(),
    );
    (good, bad)
}

fn credentials_env() -> [(&'static str, String); 2] {
    let c = test_credentials();
    [
        ("AWS_ACCESS_KEY_ID", c.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key),
    ]
}

#[test]
fn direct_mode_copies_server_side_and_quarantines_a_mismatch() {
    let moto = Moto::start();
    let (good, bad) = seed(&moto);
    moto.create_bucket("mirror");
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = format!(
        "{{ url = \"s3://mirror/binance\", endpoint = \"{}\" }}",
        moto.endpoint()
    );
    let config = config(dir.path(), &lake, &moto, r#"transfer = "direct""#);
    let env = credentials_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (report, _) = sync_report_env(&config, &[], 1, &env);
    let run = &report["pipelines"][0];
    assert_eq!(run["completed"], 2, "{report:#}");
    assert_eq!(run["quarantined"], 1, "{report:#}");
    assert_eq!(
        run["bytes"], 0,
        "no archive bytes pass through the agent: {report:#}"
    );
    for artifact in run["artifacts"].as_array().expect("artifacts") {
        if artifact["outcome"] == "completed" {
            assert_eq!(artifact["transfer"], "direct", "{artifact}");
        }
    }
    for (file, zip) in &good {
        let raw = moto
            .get("mirror", &format!("binance/raw/{}", file.key()))
            .expect("raw copy");
        assert_eq!(sha256_hex(&raw), sha256_hex(zip));
        let sidecar = moto
            .get("mirror", &format!("binance/raw/{}.CHECKSUM", file.key()))
            .expect("checksum copy");
        assert!(String::from_utf8_lossy(&sidecar).starts_with(&sha256_hex(zip)));
    }
    assert_eq!(
        moto.get("mirror", &format!("binance/raw/{}", bad.key())),
        None,
        "a mismatch never enters raw/"
    );
    assert!(
        moto.get(
            "mirror",
            &format!("binance/_cryptolake/quarantine/mirror/{}", bad.key())
        )
        .is_some()
    );
    let note = moto
        .get(
            "mirror",
            &format!(
                "binance/_cryptolake/quarantine/mirror/{}.reason.json",
                bad.key()
            ),
        )
        .expect("reason");
    assert!(String::from_utf8_lossy(&note).contains("server-side copy hashes to"));
    let entry = moto
        .get(
            "mirror",
            &format!(
                "binance/_cryptolake/manifest/mirror/{}.json",
                good[0].0.key()
            ),
        )
        .expect("manifest");
    let entry: serde_json::Value = serde_json::from_slice(&entry).expect("json");
    assert_eq!(entry["transfer"], "direct");
    // moto computes the copy's SHA-256 itself, so nothing was read back.
    assert_eq!(entry["copy_verification"], "server-checksum", "{entry:#}");
    assert_eq!(entry["table"], serde_json::Value::Null);
    assert_eq!(entry["sha256"], sha256_hex(&good[0].1));
    // Staging objects are cleaned up.
    assert_eq!(moto.get("mirror", "binance/_cryptolake/staging/"), None);
}

#[test]
fn auto_mode_streams_a_file_whose_direct_copy_fails() {
    let moto = Moto::start();
    let (good, _) = seed(&moto);
    // The lake's server does not hold the source bucket, but the config
    // claims the same service: every direct copy fails and falls back.
    let lake_server = S3sFs::start();
    lake_server.create_bucket("lake");
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = format!(
        "{{ url = \"s3://lake\", endpoint = \"{}\" }}",
        lake_server.endpoint
    );
    let extra = format!(
        "transfer = \"auto\"\nsource_endpoint = \"{}\"",
        lake_server.endpoint
    );
    let config = config(dir.path(), &lake, &moto, &extra);
    let env = credentials_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (report, output) = sync_report_env(&config, &["--to", "2024-05-02"], 0, &env);
    let run = &report["pipelines"][0];
    assert_eq!(run["completed"], 2, "{report:#}");
    for artifact in run["artifacts"].as_array().expect("artifacts") {
        assert_eq!(artifact["transfer"], "stream-fallback", "{artifact}");
    }
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Server-side copy failed; streaming this archive instead.")
    );
    for (file, zip) in &good {
        let raw = std::fs::read(lake_server.bucket_dir("lake").join("raw").join(file.key()))
            .expect("raw");
        assert_eq!(sha256_hex(&raw), sha256_hex(zip));
    }
}

#[test]
fn stream_mode_mirrors_into_a_local_lake() {
    let moto = Moto::start();
    let (good, bad) = seed(&moto);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), r#"{ url = "lake" }"#, &moto, "");
    let (report, _) = sync_report_env(&config, &[], 1, &[]);
    let run = &report["pipelines"][0];
    assert_eq!(
        (run["completed"].as_u64(), run["quarantined"].as_u64()),
        (Some(2), Some(1)),
        "{report:#}"
    );
    let lake = dir.path().join("lake");
    for (file, zip) in &good {
        assert_eq!(
            sha256_hex(&std::fs::read(lake.join("raw").join(file.key())).expect("raw")),
            sha256_hex(zip)
        );
    }
    assert!(!lake.join("raw").join(bad.key()).exists());
    assert!(
        !lake.join("ohlcv").exists(),
        "a mirror-only pipeline writes no table"
    );
}

/// What an S3 origin sends for a key it does not hold: a mirror that stored
/// it under the archive's key, with a checksum of these bytes, published
/// them as the archive.
const NO_SUCH_KEY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-05-03.zip</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>";

#[test]
fn a_non_archive_whose_checksum_matches_is_quarantined_in_both_mirror_modes() {
    let moto = Moto::start();
    let (_, bad) = seed(&moto);
    moto.put(ARCHIVE_BUCKET, &bad.key(), NO_SUCH_KEY.as_bytes().to_vec());
    moto.put(
        ARCHIVE_BUCKET,
        &format!("{}.CHECKSUM", bad.key()),
        checksum_file(NO_SUCH_KEY.as_bytes(), &bad.zip_name()).into_bytes(),
    );
    moto.create_bucket("mirror");
    let env = credentials_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for transfer in ["direct", "stream"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = match transfer {
            "direct" => format!(
                "{{ url = \"s3://mirror/direct\", endpoint = \"{}\" }}",
                moto.endpoint()
            ),
            _ => r#"{ url = "lake" }"#.to_owned(),
        };
        let config = config(
            dir.path(),
            &lake,
            &moto,
            &format!("transfer = \"{transfer}\""),
        );
        let (report, _) = sync_report_env(&config, &[], 1, &env);
        let run = &report["pipelines"][0];
        assert_eq!(
            (run["completed"].as_u64(), run["quarantined"].as_u64()),
            (Some(2), Some(1)),
            "{transfer}: {report:#}"
        );
        let quarantined = run["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .find(|a| a["outcome"] == "quarantined")
            .expect("the quarantined artifact");
        let reason = quarantined.to_string();
        assert!(
            reason.contains("match the published checksum but are not the archive"),
            "{transfer}: {quarantined:#}"
        );
        let (raw, kept, reason_note) = match transfer {
            "direct" => {
                let key = |zone: &str| format!("direct/{zone}{}", bad.key());
                (
                    moto.get("mirror", &key("raw/")),
                    moto.get("mirror", &key("_cryptolake/quarantine/mirror/")),
                    moto.get(
                        "mirror",
                        &format!("{}.reason.json", key("_cryptolake/quarantine/mirror/")),
                    ),
                )
            }
            _ => {
                let lake = dir.path().join("lake");
                let quarantine = lake.join("_cryptolake/quarantine/mirror").join(bad.key());
                (
                    std::fs::read(lake.join("raw").join(bad.key())).ok(),
                    std::fs::read(&quarantine).ok(),
                    std::fs::read(format!("{}.reason.json", quarantine.display())).ok(),
                )
            }
        };
        assert_eq!(raw, None, "{transfer}: the error page never enters raw/");
        assert_eq!(
            kept.as_deref(),
            Some(NO_SUCH_KEY.as_bytes()),
            "{transfer}: its bytes are kept in quarantine"
        );
        assert!(
            String::from_utf8_lossy(&reason_note.expect("reason note")).contains("not the archive"),
            "{transfer}"
        );
    }
}
