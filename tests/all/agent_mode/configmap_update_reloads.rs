//! A configuration mounted from a Kubernetes ConfigMap is reloaded when the
//! kubelet updates it: the file is a symlink through `..data`, and an update
//! renames a new `..data` link over the old one, so no event names the file.

use std::path::Path;

use super::{Fixture, PATIENCE};
use crate::support::agent::RunningAgent;

/// Publishes `text` as the ConfigMap's version `n`, as the kubelet does: a
/// new timestamped directory, a `..data_tmp` link to it renamed over
/// `..data`, then the old version removed.
fn publish_configmap(dir: &Path, n: u32, text: &str) {
    let version = format!("..2026_12_04_15_00_{n:02}.000000001");
    std::fs::create_dir_all(dir.join(&version)).expect("version directory");
    std::fs::write(dir.join(&version).join("agent.toml"), text).expect("agent.toml");
    let staged = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&version, &staged).expect("..data_tmp");
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&staged, dir.join("..data")).expect("..data replaced");
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).expect("old version removed");
    }
    if !dir.join("agent.toml").exists() {
        std::os::unix::fs::symlink("..data/agent.toml", dir.join("agent.toml"))
            .expect("agent.toml link");
    }
}

#[test]
fn a_configmap_update_reloads_the_configuration() {
    let fixture = Fixture::new(&["BTCUSDT"], 2);
    let config_text = |concurrency: u32| {
        let written = fixture.write_config(
            "",
            &fixture.pipeline(
                "btc",
                "BTCUSDT",
                &format!("concurrency = {concurrency}\nschedule = {{ every = \"1h\" }}"),
            ),
        );
        // Relative paths are relative to the mounted file: make the lake's
        // absolute, as it is where the ConfigMap is mounted.
        std::fs::read_to_string(written)
            .expect("read config")
            .replace(
                r#"lake = { url = "lake" }"#,
                &format!(r#"lake = {{ url = "{}" }}"#, fixture.lake().display()),
            )
    };
    let mounted = fixture.dir.path().join("configmap");
    publish_configmap(&mounted, 1, &config_text(2));
    let mut agent = RunningAgent::start(&mounted.join("agent.toml"));
    agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);

    publish_configmap(&mounted, 2, &config_text(3));
    let reloaded = agent.wait_for_message(
        "Configuration reloaded; unchanged pipelines kept running.",
        1,
        PATIENCE,
    );
    assert_eq!(reloaded[0]["restarted"], r#"["btc"]"#, "{}", reloaded[0]);
    agent.signal("TERM");
    assert!(agent.wait_exit(PATIENCE).success());
}
