//! Agents sharing one config and one S3 lake: three `sync --shard I/3`
//! processes at once, and `run` replicas through leases (`[leases]`). Every
//! archive is done exactly once; a killed replica's series are taken over
//! once its leases expire, a stopped one's at once, and clocks minutes
//! apart change neither.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use time::macros::date;

use crate::support::agent::RunningAgent;
use crate::support::archive::KlineFile;
use crate::support::fixture::PATIENCE;
use crate::support::s3::{ARCHIVE_BUCKET, Moto, test_credentials};
use crate::support::{binance_pipeline, write_agent_config};

const SYMBOLS: [&str; 10] = [
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "TRXUSDT",
    "DOTUSDT", "LTCUSDT",
];

/// Ten series of `days` small daily archives on moto, which is also the
/// lake (its conditional writes are atomic), and a config whose curated
/// pipeline is paced so that a run lasts seconds.
struct Replicated {
    moto: Moto,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    keys: Vec<String>,
}

impl Replicated {
    fn new(days: i64, per_second: u32, leases: &str) -> Self {
        let moto = Moto::start();
        moto.create_public_bucket(ARCHIVE_BUCKET);
        moto.create_bucket("lake");
        let mut keys = Vec::new();
        for symbol in SYMBOLS {
            for day in 0..days {
                let file =
                    KlineFile::spot(symbol, date!(2024 - 08 - 01) + time::Duration::days(day), 5);
                file.upload(&moto);
                keys.push(file.key());
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = format!("{}/{ARCHIVE_BUCKET}", moto.endpoint());
        let symbols = SYMBOLS.map(|s| format!("\"{s}\"")).join(", ");
        let config = write_agent_config(
            dir.path(),
            &format!(
                "{{ url = \"s3://lake/crypto\", endpoint = \"{}\", staging_dir = \"staging\" }}\nleases = {leases}",
                moto.endpoint()
            ),
            &moto.host_port(),
            &binance_pipeline(
                "spot",
                &archive,
                &format!(r#"interval = "1m", symbols = [{symbols}]"#),
                &format!(
                    "table = \"ohlcv\"\ntransforms = [{{ plugin = \"ohlcv\" }}]\nwindow = {{ start = \"2024-08-01\" }}\ntransfer = \"stream\"\nconcurrency = 2\nrate_limit = {{ per_second = {per_second}, burst = 1 }}"
                ),
            ),
        );
        Self {
            moto,
            _dir: dir,
            config,
            keys,
        }
    }

    /// `sync` with `args`, not waited for.
    fn spawn_sync(&self, args: &[&str]) -> std::process::Child {
        let credentials = test_credentials();
        crate::support::cryptolake()
            .args(["sync", "--output", "json", "--config"])
            .arg(&self.config)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &credentials.secret_access_key)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sync starts")
    }

    fn start(&self, skew_s: i64) -> RunningAgent {
        let credentials = test_credentials();
        let skew = skew_s.to_string();
        RunningAgent::start_env(
            &self.config,
            &[
                ("AWS_ACCESS_KEY_ID", credentials.access_key_id.as_str()),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    credentials.secret_access_key.as_str(),
                ),
                ("CRYPTOLAKE_TEST_CLOCK_SKEW", skew.as_str()),
            ],
        )
    }

    /// The archives whose manifest entry is in the lake.
    fn in_manifest(&self) -> BTreeSet<String> {
        self.keys
            .iter()
            .filter(|key| {
                self.moto
                    .get(
                        "lake",
                        &format!("crypto/_cryptolake/manifest/spot/{key}.json"),
                    )
                    .is_some()
            })
            .cloned()
            .collect()
    }

    /// The lake's status as `cryptolake status --output json` prints it.
    fn status(&self) -> serde_json::Value {
        let credentials = test_credentials();
        let output = crate::support::cryptolake()
            .args(["status", "--output", "json", "--config"])
            .arg(&self.config)
            .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &credentials.secret_access_key)
            .output()
            .expect("status runs");
        assert!(
            output.status.success(),
            "{}",
            crate::support::describe(&output)
        );
        serde_json::from_slice(&output.stdout).expect("status prints JSON")
    }
}

/// The artifacts each agent committed, by agent index; panics when one
/// was committed by two.
fn committed_once(agents: &[&RunningAgent]) -> BTreeSet<String> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for (index, agent) in agents.iter().enumerate() {
        for event in agent.with_message("Artifact committed to the lake.") {
            let key = event["artifact"].as_str().expect("artifact").to_owned();
            if let Some(other) = by.insert(key.clone(), index) {
                panic!("{key} was committed by replicas {other} and {index}");
            }
        }
    }
    by.into_keys().collect()
}

fn finished_counts(agent: &RunningAgent) -> serde_json::Value {
    agent
        .with_message("Pipeline run finished.")
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[test]
fn three_shards_synced_at_once_do_every_archive_once() {
    let lake = Replicated::new(30, 1000, r#"{ duration = "1m" }"#);
    let shards: Vec<_> = ["0/3", "1/3", "2/3"]
        .iter()
        .map(|shard| lake.spawn_sync(&["--shard", shard]))
        .collect();
    let mut done: BTreeMap<String, usize> = BTreeMap::new();
    for (index, shard) in shards.into_iter().enumerate() {
        let output = shard.wait_with_output().expect("sync finishes");
        assert!(
            output.status.success(),
            "{}",
            crate::support::describe(&output)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let pipeline = &report["pipelines"][0];
        assert_eq!(pipeline["committed_elsewhere"], 0, "{pipeline:#}");
        assert!(
            pipeline["completed"].as_u64().unwrap_or(0) > 0,
            "shard {index} had nothing"
        );
        for artifact in pipeline["artifacts"].as_array().expect("artifacts") {
            assert_eq!(artifact["outcome"], "completed", "{artifact}");
            let key = artifact["key"].as_str().expect("key").to_owned();
            if let Some(other) = done.insert(key.clone(), index) {
                panic!("{key} was done by shards {other} and {index}");
            }
        }
    }
    let keys: BTreeSet<String> = lake.keys.iter().cloned().collect();
    assert_eq!(done.into_keys().collect::<BTreeSet<_>>(), keys);
    assert_eq!(lake.in_manifest(), keys);
}

#[test]
fn three_replicas_share_the_work_and_take_over_a_killed_ones_series() {
    // 300 archives; replicas whose clocks are five minutes ahead, five
    // minutes behind, and right.
    let lake = Replicated::new(30, 12, r#"{ duration = "4s", renew_every = "1s" }"#);
    let mut ahead = lake.start(300);
    let behind = lake.start(-300);
    let right = lake.start(0);
    ahead.wait_for_message("Artifact committed to the lake.", 6, PATIENCE);
    // While all three live, nobody takes over anybody's series, whatever
    // their clocks say.
    for agent in [&ahead, &behind, &right] {
        assert!(
            agent
                .with_message("Took over a series whose holder stopped renewing its lease.")
                .is_empty(),
            "a live lease was taken over:\n{}",
            agent.log_text()
        );
    }
    ahead.signal("KILL");
    ahead.wait_exit(PATIENCE);
    let killed_at = Instant::now();
    let mut survivors = [behind, right];
    for agent in &mut survivors {
        agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);
    }
    let took_over: usize = survivors
        .iter()
        .map(|a| {
            a.with_message("Took over a series whose holder stopped renewing its lease.")
                .len()
        })
        .sum();
    assert!(
        took_over >= 1,
        "the killed replica's series were not taken over:\n{}\n{}",
        survivors[0].log_text(),
        survivors[1].log_text()
    );
    eprintln!(
        "killed replica's work finished {:?} after the kill; {took_over} series taken over",
        killed_at.elapsed()
    );

    // Every archive exactly once: one manifest entry each, committed by
    // one replica; the survivors found nothing done twice.
    let committed = committed_once(&[&ahead, &survivors[0], &survivors[1]]);
    let manifest = lake.in_manifest();
    assert_eq!(manifest.len(), lake.keys.len(), "archives left undone");
    assert!(committed.is_subset(&manifest));
    // At most the killed replica's in-flight artifacts (concurrency 2)
    // committed without its log line reaching the file.
    assert!(committed.len() + 2 >= manifest.len(), "{}", committed.len());
    let mut done_here = 0;
    for agent in &survivors {
        let counts = finished_counts(agent);
        assert_eq!(counts["committed_elsewhere"], 0, "{counts}");
        assert_eq!(counts["failed"], 0, "{counts}");
        assert!(
            counts["other_replicas"].as_u64().unwrap_or(0) > 0,
            "{counts}"
        );
        done_here += counts["completed"].as_u64().unwrap_or(0);
    }
    assert!(done_here > 0);
    for key in &lake.keys {
        assert!(
            lake.moto
                .get("lake", &format!("crypto/raw/{key}"))
                .is_some(),
            "{key} is not in raw/"
        );
    }

    // `status` shows the replicas from their heartbeats: the two live ones
    // with no lease left, and the killed one silent once two lease
    // durations passed without its heartbeat.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = lake.status();
        let replicas = status["replicas"].as_array().expect("replicas").clone();
        assert_eq!(replicas.len(), 3, "{status:#}");
        let live: Vec<_> = replicas.iter().filter(|r| r["live"] == true).collect();
        if live.len() == 2 {
            for replica in &live {
                assert!(replica["host"].is_string() && replica["pid"].is_u64());
                assert_eq!(replica["leases"], serde_json::json!([]), "{status:#}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "{status:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_stopped_replica_releases_its_series_and_another_continues_at_once() {
    // Leases far longer than the test: only a release explains a quick
    // pickup.
    let lake = Replicated::new(12, 8, r#"{ duration = "5m", renew_every = "1s" }"#);
    let mut first = lake.start(0);
    first.wait_for_message("Artifact committed to the lake.", 2, PATIENCE);
    let mut second = lake.start(0);
    second.wait_for_message(
        "Sharing work with other replicas through leases in the lake.",
        1,
        PATIENCE,
    );
    first.wait_for_message("Artifact committed to the lake.", 6, PATIENCE);
    first.signal("TERM");
    assert!(first.wait_exit(PATIENCE).success(), "{}", first.log_text());
    assert_eq!(
        first
            .with_message("Released the series with work left for the other replicas.")
            .len(),
        1,
        "{}",
        first.log_text()
    );
    let stopped = Instant::now();
    second.wait_for_message("Pipeline run finished.", 1, PATIENCE);
    assert!(
        stopped.elapsed() < Duration::from_secs(150),
        "the released series waited for their leases to expire"
    );
    assert!(
        second
            .with_message("Took over a series whose holder stopped renewing its lease.")
            .is_empty(),
        "{}",
        second.log_text()
    );
    let committed = committed_once(&[&first, &second]);
    assert_eq!(lake.in_manifest().len(), lake.keys.len());
    assert_eq!(committed.len(), lake.keys.len());

    let status = lake.status();
    let replicas = status["replicas"].as_array().expect("replicas");
    let states: BTreeSet<String> = replicas
        .iter()
        .map(|r| r["state"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        states,
        BTreeSet::from(["running".to_owned(), "stopped".to_owned()]),
        "{status:#}"
    );
    // The pipeline's record names the replica that wrote it last.
    let writer = status["pipelines"][0]["status"]["replica"]
        .as_str()
        .expect("the writer of the pipeline's status");
    assert!(
        replicas.iter().any(|r| r["replica"] == writer),
        "{status:#}"
    );
}
