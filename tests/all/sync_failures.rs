//! Bad input loses nothing: a checksum mismatch, a missing checksum file, a
//! corrupt zip and a malformed row each affect only their own artifact, which
//! is reported (and quarantined where the bytes are bad), never written to the
//! lake as good data; the others complete.

use time::macros::date;

use crate::support::archive::{KlineFile, checksum_file, upload_csv, zip_one};
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, duckdb, sync_report, write_agent_config};

/// A local lake and one curated pipeline `spot` of BTCUSDT 1m klines from
/// `archive`, with `extra` pipeline lines after its table.
fn spot_config(
    dir: &std::path::Path,
    moto: &Moto,
    archive: &str,
    extra: &str,
) -> std::path::PathBuf {
    write_agent_config(
        dir,
        r#"{ url = "lake" }"#,
        &moto.host_port(),
        &binance_pipeline(
            "spot",
            archive,
            r#"interval = "1m", symbols = ["BTCUSDT"]"#,
            &format!("table = \"ohlcv\"\n{extra}"),
        ),
    )
}

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
    let mut fields: Vec<&str> = lines[2].split(',').collect();
    fields[1] = "not-a-price";
    lines[2] = fields.join(",");
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
    let config = spot_config(
        dir.path(),
        &moto,
        &archive,
        "attempts = 2\nwindow = { start = \"2024-03-01\", end = \"2024-03-05\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
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
    // Why it was processed and why it was refused, both kept.
    assert_eq!(m["reason"], "new", "{m}");
    assert!(
        m["quarantine_reason"]
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
        c["quarantine_reason"]
            .as_str()
            .unwrap_or("")
            .contains("not a valid zip"),
        "{c}"
    );
    let mal = by_key(&malformed);
    assert_eq!(mal["outcome"], "quarantined");
    let reason = mal["quarantine_reason"].as_str().unwrap_or("");
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

/// Archives crafted to pass every byte-level check (a valid zip, a
/// matching checksum) whose rows cannot be the artifact's: each is
/// quarantined with its first offending line, and the good day completes.
#[test]
fn crafted_archives_are_quarantined_with_their_first_offending_line() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    let good = KlineFile::spot("BTCUSDT", date!(2024 - 03 - 01), 10);
    good.upload(&moto);
    let upload = |day: time::Date, csv: &str| {
        let key = KlineFile::spot("BTCUSDT", day, 0).key();
        upload_csv(&moto, &key, csv);
        key
    };
    let first_row = |day: time::Date| {
        KlineFile::spot("BTCUSDT", day, 1)
            .csv()
            .lines()
            .next()
            .map(str::to_owned)
            .expect("a row")
    };
    // 03-02: a row bomb, one row repeated 200,000 times (the real one was
    // 8 million rows from a 7 MB zip).
    let day = date!(2024 - 03 - 02);
    let bomb = upload(day, &format!("{}\n", first_row(day)).repeat(200_000));
    // 03-03 and 03-04: a row with 11 fields, and one with 13.
    let rows = |day| {
        KlineFile::spot("BTCUSDT", day, 5)
            .csv()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let day = date!(2024 - 03 - 03);
    let mut short = rows(day);
    short[3] = short[3].trim_end_matches(",0").to_owned();
    let short = upload(day, &short.join("\n"));
    let day = date!(2024 - 03 - 04);
    let mut long = rows(day);
    long[1].push_str(",0");
    let long = upload(day, &long.join("\n"));
    // 03-05: 64 MiB of zeros without a line ending (the real one was 1 GiB).
    let zeros = upload(date!(2024 - 03 - 05), &"0".repeat(64 << 20));
    // 03-06: a row of the next day.
    let day = date!(2024 - 03 - 06);
    let mut spilled = rows(day);
    spilled.push(first_row(date!(2024 - 03 - 07)));
    let spilled = upload(day, &spilled.join("\n"));

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
    let config = spot_config(
        dir.path(),
        &moto,
        &archive,
        "window = { start = \"2024-03-01\", end = \"2024-03-06\" }",
    );
    let (report, _) = sync_report(&config, &[], 1);
    let spot = &report["pipelines"][0];
    assert_eq!(
        (spot["completed"].as_u64(), spot["quarantined"].as_u64()),
        (Some(1), Some(5)),
        "{report:#}"
    );
    let reason = |key: &str| {
        let artifact = spot["artifacts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["key"] == key))
            .cloned()
            .unwrap_or_default();
        assert_eq!(artifact["outcome"], "quarantined", "{artifact}");
        artifact["quarantine_reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for (key, line, says) in [
        (&bomb, "line 2", "a repeated or reordered row"),
        (
            &short,
            "line 4",
            "expected 12 fields, as every line of this file has, found 11",
        ),
        (&long, "line 2", "found 13"),
        (&zeros, "line 1", "longer than 1048576 bytes"),
        (
            &spilled,
            "line 6",
            "is outside the artifact's period 2024-03-06",
        ),
    ] {
        let reason = reason(key);
        assert!(
            reason.contains(line) && reason.contains(says),
            "{key}: {reason}"
        );
    }
    let lake = dir.path().join("lake");
    let days = duckdb::query(
        &lake,
        "SELECT CAST(date AS VARCHAR) AS d, count(*) AS n FROM read_parquet('{lake}/ohlcv/**/*.parquet', hive_partitioning = true) GROUP BY d",
    );
    assert_eq!(days, vec![serde_json::json!({"d": "2024-03-01", "n": 10})]);
}

/// A password in a source URL reaches the server it is for and nothing
/// else: not the report, the manifest, the quarantine notes or the logs.
#[test]
fn credentials_in_a_source_url_are_never_printed_or_stored() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    KlineFile::spot("BTCUSDT", date!(2024 - 03 - 01), 10).upload(&moto);
    // 03-02 is listed, but its checksum file is missing: an error that
    // names the URL.
    let unverifiable = KlineFile::spot("BTCUSDT", date!(2024 - 03 - 02), 10);
    moto.put(ARCHIVE_BUCKET, &unverifiable.key(), unverifiable.zip());
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = format!(
        "http://mirror-user:hunter2-secret@{}/{ARCHIVE_BUCKET}",
        moto.host_port()
    );
    let config = spot_config(
        dir.path(),
        &moto,
        &archive,
        "attempts = 1\nwindow = { start = \"2024-03-01\", end = \"2024-03-02\" }",
    );
    let (report, output) = sync_report(&config, &[], 1);
    let spot = &report["pipelines"][0];
    assert_eq!(
        (spot["completed"].as_u64(), spot["failed"].as_u64()),
        (Some(1), Some(1)),
        "{report:#}"
    );
    let failed = spot["artifacts"].to_string();
    assert!(failed.contains("http://redacted@"), "{failed}");
    let mut seen = vec![
        ("report", report.to_string()),
        (
            "stderr",
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
    ];
    for path in crate::support::files_under(&dir.path().join("lake/_cryptolake")) {
        if let Ok(text) = std::fs::read_to_string(&path) {
            seen.push(("lake file", text));
        }
    }
    assert!(seen.iter().any(|(_, text)| text.contains("redacted@")));
    for (what, text) in seen {
        assert!(
            !text.contains("hunter2"),
            "the password is in the {what}: {text}"
        );
    }
}

/// A quarantined archive the source has not changed is not downloaded
/// again on every run: it is reported as still quarantined until the source
/// changes it, or `--retry-quarantined` asks for another try.
#[test]
fn an_unchanged_quarantined_archive_is_skipped_until_it_changes_or_is_retried() {
    let moto = Moto::start();
    moto.create_public_bucket(ARCHIVE_BUCKET);
    KlineFile::spot("BTCUSDT", date!(2024 - 03 - 01), 10).upload(&moto);
    let broken = KlineFile::spot("BTCUSDT", date!(2024 - 03 - 02), 10);
    let mut lines: Vec<String> = broken.csv().lines().map(str::to_owned).collect();
    lines[4] = lines[4].replacen(',', ",not-a-price", 1);
    upload_csv(&moto, &broken.key(), &lines.join("\n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = spot_config(
        dir.path(),
        &moto,
        &format!("{}/{ARCHIVE_BUCKET}", moto.endpoint()),
        "window = { start = \"2024-03-01\", end = \"2024-03-02\" }",
    );
    let counts = |report: &serde_json::Value| {
        let run = &report["pipelines"][0];
        [
            "completed",
            "quarantined",
            "still_quarantined",
            "up_to_date",
            "bytes",
        ]
        .map(|name| run[name].as_u64().unwrap_or(u64::MAX))
    };

    let (first, _) = sync_report(&config, &[], 1);
    assert_eq!(counts(&first)[..4], [1, 1, 0, 0], "{first:#}");

    let (second, _) = sync_report(&config, &[], 1);
    assert_eq!(counts(&second), [0, 0, 1, 1, 0], "{second:#}");
    let skipped = &second["pipelines"][0]["artifacts"][0];
    assert_eq!(skipped["outcome"], "still-quarantined", "{skipped}");
    assert!(
        skipped["quarantine_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("line 5"),
        "{skipped}"
    );
    assert!(skipped["quarantined_at"].is_string(), "{skipped}");
    let (plan, _) = sync_report(&config, &["--dry-run"], 0);
    assert_eq!(
        plan["plans"][0]["still_quarantined"][0],
        broken.key(),
        "{plan:#}"
    );

    let (retried, _) = sync_report(&config, &["--retry-quarantined"], 1);
    // Downloaded and decoded again: the same line refuses it.
    assert_eq!(counts(&retried)[..3], [0, 1, 0], "{retried:#}");
    assert!(
        retried["pipelines"][0]["artifacts"][0]["quarantine_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("line 5"),
        "{retried:#}"
    );

    // The source publishes a good archive under the key: tried at once.
    broken.upload(&moto);
    let (fixed, _) = sync_report(&config, &[], 0);
    assert_eq!(counts(&fixed)[..4], [1, 0, 0, 1], "{fixed:#}");
}
