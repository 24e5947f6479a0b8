//! Editing one pipeline in the configuration file restarts that pipeline
//! only; the other keeps its schedule untouched.

use super::{Fixture, PATIENCE};
use crate::support::agent::RunningAgent;

#[test]
fn a_config_change_restarts_only_the_changed_pipeline() {
    let fixture = Fixture::new(&["ETHUSDT", "BTCUSDT"], 3);
    let pipelines = |btc_concurrency: u32| {
        format!(
            "{}{}",
            fixture.pipeline("eth", "ETHUSDT", "schedule = { every = \"1h\" }\ntransforms = [{ plugin = \"ohlcv\" }]"),
            fixture.pipeline(
                "btc",
                "BTCUSDT",
                &format!("concurrency = {btc_concurrency}\nschedule = {{ every = \"1h\" }}\ntransforms = [{{ plugin = \"ohlcv\" }}]"),
            )
        )
    };
    let config = fixture.write_config("", &pipelines(2));
    let mut agent = RunningAgent::start(&config);
    agent.wait_for_message("Pipeline run finished.", 2, PATIENCE);
    let runs_of = |agent: &RunningAgent, name: &str| {
        agent
            .with_message("Scheduled run starting.")
            .iter()
            .filter(|e| e["pipeline"] == name)
            .count()
    };
    assert_eq!((runs_of(&agent, "eth"), runs_of(&agent, "btc")), (1, 1));

    fixture.write_config("", &pipelines(3));
    let reloaded = agent.wait_for_message(
        "Configuration reloaded; unchanged pipelines kept running.",
        1,
        PATIENCE,
    );
    assert_eq!(reloaded[0]["restarted"], r#"["btc"]"#, "{}", reloaded[0]);
    // The restarted pipeline runs at once (catching up); the other waits
    // for its hour.
    agent.wait_for("btc's second run", 1, PATIENCE, |e| {
        e["message"] == "Pipeline run finished." && e["pipeline"] == "btc"
    });
    agent.wait_for("btc's second run to finish", 3, PATIENCE, |e| {
        e["message"] == "Pipeline run finished."
    });
    assert_eq!((runs_of(&agent, "eth"), runs_of(&agent, "btc")), (1, 2));

    // Touching the file without changing it restarts nothing.
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(&config, text).expect("rewrite config");
    agent.wait_for_message(
        "Configuration file changed, but nothing in it did.",
        1,
        PATIENCE,
    );
    assert_eq!((runs_of(&agent, "eth"), runs_of(&agent, "btc")), (1, 2));
    agent.signal("TERM");
    assert!(agent.wait_exit(PATIENCE).success());
}
