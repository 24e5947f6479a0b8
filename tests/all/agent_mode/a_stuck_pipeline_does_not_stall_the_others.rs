//! Pipelines are isolated: one whose source never answers does not delay
//! another's runs.

use std::net::TcpListener;

use super::{Fixture, PATIENCE};
use crate::support::agent::RunningAgent;

#[test]
fn a_stuck_pipeline_does_not_stall_the_others() {
    let fixture = Fixture::new(&["ETHUSDT"], 3);
    // A source that accepts connections and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hole_address = hole.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hole.incoming().flatten() {
            held.push(stream);
        }
    });
    let stuck_plugin = format!(
        "\n[plugins.stuck]\nfile = \"builtin:binance\"\nallowed_hosts = [\"{hole_address}\"]\nlimits = {{ fetch_timeout = \"10m\", call_timeout = \"10m\" }}\n"
    );
    let stuck = format!(
        "\n[[pipelines]]\nname = \"stuck\"\ntable = \"ohlcv\"\nschedule = {{ every = \"1h\" }}\nsource = {{ plugin = \"stuck\", params = {{ symbols = [\"BTCUSDT\"], interval = \"1m\", listing_url = \"http://{hole_address}\" }} }}\ntransforms = [{{ plugin = \"ohlcv\" }}]\n"
    );
    let healthy = fixture.pipeline(
        "healthy",
        "ETHUSDT",
        "schedule = { every = \"1h\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
    );
    let config = fixture.write_config(&stuck_plugin, &format!("{stuck}{healthy}"));
    let mut agent = RunningAgent::start(&config);
    let finished = agent.wait_for("the healthy pipeline's run", 1, PATIENCE, |e| {
        e["message"] == "Pipeline run finished." && e["pipeline"] == "healthy"
    });
    assert_eq!(finished[0]["completed"], 3);
    // The stuck one started and is still waiting on its source.
    let started = agent.with_message("Scheduled run starting.");
    assert!(started.iter().any(|e| e["pipeline"] == "stuck"));
    assert!(
        !agent
            .events()
            .iter()
            .any(|e| e["pipeline"] == "stuck" && e["message"] == "Pipeline run finished."),
        "the stuck pipeline cannot have finished"
    );
    agent.signal("TERM");
    agent.signal("TERM");
    agent.wait_exit(PATIENCE);
}
