//! Bad input loses nothing: a checksum mismatch, a missing checksum file, a
//! corrupt zip and a malformed row each affect only their own artifact, which
//! is reported (and quarantined where the bytes are bad), never written to the
//! lake as good data; the others complete.

use time::macros::date;

use crate::support::archive::{KlineFile, checksum_file, zip_one};
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, duckdb, sync_report, write_agent_config};

#[test]
fn bad_archives_are_reported_or_quarantined_and_the_rest_complete() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let good = KlineFile::spot("BTCUSDT", date!(2024 - 03 - 01), 10);
    good.upload(&moto);

    // 03-02: the published checksum does not match the bytes, every time.
    let mismatch = KlineFile::spot("BTCUSDT", date!(2024 - 03 - 02), 10);
    moto.put(ARCHIVE_BUCKET, &mismatch.key(), mismatch.zip());
    moto.put(
        ARCHIVE_BUCKET,
        &format!("{}.CHECKSUM", mismatch.key()),
        checksum_file(b"other bytes", &mismatch.zip_name()).into_bytes(),
    );

    // 03-03: no .CHECKSUM at all (404).
    let unverifiable = KlineFile::spot("BTCUSDT", date!(2024 - 03 - 03), 10);
    moto.put(ARCHIVE_BUCKET, &unverifiable.key(), unverifiable.zip());

    // 03-04: the checksum matches, but the bytes are not a zip.
    let corrupt = KlineFile::spot("BTCUSDT", date!(2024 - 03 - 04), 10);
    let junk = b"PK\x03\x04 this is not really a zip".to_vec();
    moto.put(ARCHIVE_BUCKET, &corrupt.key(), junk.clone());
    moto.put(
        ARCHIVE_BUCKET,
        &format!("{}.CHECKSUM", corrupt.key()),
        checksum_file(&junk, &corrupt.zip_name()).into_bytes(),
    );

    // 03-05: a valid zip whose CSV has a malformed third row.
    let malformed = KlineFile::spot("BTCUSDT", date!(2024 - 03 - 05), 5);
    let mut lines: Vec<String> = malformed.csv().lines().map(str::to_owned).collect();
    lines[2] = lines[2].replacen(',', ",not-a-price,", 1);
    let zip = zip_one(
        &malformed.zip_name().replace(".zip", ".csv"),
        lines.join("\n").as_bytes(),
    );
    moto.put(ARCHIVE_BUCKET, &malformed.key(), zip.clone());
    moto.put(
        ARCHIVE_BUCKET,
        &format!("{}.CHECKSUM", malformed.key()),
        checksum_file(&zip, &malformed.zip_name()).into_bytes(),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let config = write_agent_config(
        dir.path(),
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            &archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            "table = \"ohlcv\"\nattempts = 2\nwindow = { start = \"2024-03-01\", end = \"2024-03-05\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
        ),
    );

    let (report, output) = sync_report(&config, &[], 1);
    let spot = &report["pipelines"][0];
    assert_eq!(spot["completed"], 1, "{report:#}");
    assert_eq!(spot["quarantined"], 3, "{report:#}");
    assert_eq!(spot["failed"], 1, "{report:#}");
    let by_key = |file: &KlineFile| {
        spot["artifacts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["key"] == file.key()))
            .cloned()
            .unwrap_or_default()
    };
    let m = by_key(&mismatch);
    assert_eq!(m["outcome"], "quarantined");
    assert!(
        m["reason"]
            .as_str()
            .unwrap_or("")
            .contains("SHA-256 mismatch after 2 attempts"),
        "{m}"
    );
    let u = by_key(&unverifiable);
    assert_eq!(u["outcome"], "failed");
    assert!(u["error"].as_str().unwrap_or("").contains("404"), "{u}");
    let c = by_key(&corrupt);
    assert_eq!(c["outcome"], "quarantined");
    assert!(
        c["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not a valid zip"),
        "{c}"
    );
    let mal = by_key(&malformed);
    assert_eq!(mal["outcome"], "quarantined");
    let reason = mal["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("plugin `binance`") && reason.contains("line 3") && reason.contains("open"),
        "{mal}"
    );

    // Only the good day is in the table; bad bytes are kept aside with a reason.
    let lake = dir.path().join("lake");
    let days = duckdb::query(
        &lake,
        "SELECT DISTINCT CAST(date AS VARCHAR) AS d FROM read_parquet('{lake}/ohlcv/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(days, vec![serde_json::json!({"d": "2024-03-01"})]);
    for file in [&mismatch, &corrupt, &malformed] {
        let quarantined = lake.join("_cryptolake/quarantine/spot").join(file.key());
        assert!(quarantined.is_file(), "{}", quarantined.display());
        let reason = lake
            .join("_cryptolake/quarantine/spot")
            .join(format!("{}.reason.json", file.key()));
        let note: serde_json::Value =
            serde_json::from_slice(&std::fs::read(reason).expect("reason")).expect("json");
        assert_eq!(note["source"]["key"], file.key());
        assert!(
            !lake.join("raw").join(file.key()).exists(),
            "bad bytes never enter the raw zone"
        );
        assert!(
            !lake
                .join("_cryptolake/manifest/spot")
                .join(format!("{}.json", file.key()))
                .exists()
        );
    }
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("Artifact quarantined"), "{text}");
}
