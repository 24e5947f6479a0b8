//! An invalid configuration, on file change or SIGHUP, is rejected with the
//! reason; the running configuration keeps working, and a later valid edit
//! is applied.

use super::{Fixture, PATIENCE};
use crate::support::agent::RunningAgent;

#[test]
fn an_invalid_config_keeps_the_old_one() {
    let fixture = Fixture::new(&["ETHUSDT"], 2);
    let pipeline = |concurrency: &str| {
        fixture.pipeline(
            "eth",
            "ETHUSDT",
            &format!("concurrency = {concurrency}\nschedule = {{ every = \"1h\" }}\ntransforms = [{{ plugin = \"ohlcv\" }}]"),
        )
    };
    let config = fixture.write_config("", &pipeline("2"));
    let mut agent = RunningAgent::start(&config);
    agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);

    let rejected = "Configuration reload rejected; the running configuration stays.";
    fixture.write_config("", &pipeline("\"lots\""));
    let events = agent.wait_for_message(rejected, 1, PATIENCE);
    let error = events[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("pipelines[0].concurrency"), "{error}");
    assert!(error.contains(&config.display().to_string()), "{error}");

    // SIGHUP re-reads the (still invalid) file: rejected again.
    agent.signal("HUP");
    agent.wait_for_message(rejected, 2, PATIENCE);
    // A reference to a plugin that does not exist is caught too.
    fixture.write_config(
        "",
        &pipeline("2").replace("plugin = \"ohlcv\"", "plugin = \"no-such-plugin\""),
    );
    let events = agent.wait_for_message(rejected, 3, PATIENCE);
    assert!(
        events[2]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-plugin")
    );
    // An empty file is no configuration either: applying it would stop
    // every pipeline.
    std::fs::write(&config, "").expect("empty the config");
    let events = agent.wait_for_message(rejected, 4, PATIENCE);
    let error = events[3]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no pipeline is configured"), "{error}");

    // The agent still works: a valid edit is applied and the pipeline runs.
    fixture.write_config("", &pipeline("3"));
    agent.wait_for_message(
        "Configuration reloaded; unchanged pipelines kept running.",
        1,
        PATIENCE,
    );
    agent.wait_for_message("Pipeline run finished.", 2, PATIENCE);
    agent.signal("TERM");
    assert!(agent.wait_exit(PATIENCE).success());
}
