//! `cryptolake status`: what each pipeline did last, what it does next, and
//! what failed, read from the lake (so it works from any machine that can
//! read the lake, whether or not the agent runs here), and the replicas
//! sharing the work, from their heartbeats.

use super::{ConfigArg, EXIT_FAILED, Output};
use crate::agent::open_lake;
use crate::daemon::status::{self, PipelineStatus};
use crate::lake::layout;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Result format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// One pipeline in the `status` output.
#[derive(Debug, serde::Serialize)]
struct Row {
    pipeline: String,
    /// The daemon's record, if `run` ever ran this pipeline on this lake.
    status: Option<PipelineStatus>,
    /// The last run report of `run` or `sync`, when there is no status.
    last_report: Option<serde_json::Value>,
    /// Archives held in quarantine.
    quarantined: usize,
}

pub(super) fn run(args: StatusArgs) -> u8 {
    let plan = match super::load_plan(&args.config.config) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let tokio = match super::tokio_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = tokio.block_on(async {
        let http = crate::transfer::http_client()?;
        let lake = open_lake(&plan.lake, &http)?;
        let mut rows = Vec::new();
        for spec in &plan.pipelines {
            let status = status::read(&lake, &spec.name)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let last_report = match lake.get(&layout::run_report_key(&spec.name, None)).await? {
                Some(bytes) => serde_json::from_slice(&bytes).ok(),
                None => None,
            };
            let quarantined = lake
                .list(&layout::quarantine_prefix(&spec.name))
                .await?
                .iter()
                .filter(|k| !k.ends_with(".reason.json"))
                .count();
            rows.push(Row {
                pipeline: spec.name.clone(),
                status,
                last_report,
                quarantined,
            });
        }
        let replicas = crate::pipeline::replicas(&lake).await?;
        anyhow::Ok((rows, replicas))
    });
    let (rows, replicas) = match result {
        Ok(found) => found,
        Err(error) => {
            eprintln!("error: cannot read the lake {}: {error:#}", plan.lake);
            return EXIT_FAILED;
        }
    };
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "pipelines": rows, "replicas": replicas })
            )
            .unwrap_or_default()
        ),
        Output::Text => {
            print_text(&rows);
            print_replicas(&replicas);
        }
    }
    0
}

fn print_text(rows: &[Row]) {
    for row in rows {
        match &row.status {
            Some(s) => {
                println!("{} [{}] {}", row.pipeline, s.state, s.schedule);
                match &s.last_run {
                    Some(last) => println!(
                        "  last run: {} → {}: {}; {} completed, {} quarantined, {} failed, {} deferred, {} up to date; {} rows{}",
                        last.started_at,
                        last.finished_at,
                        last.outcome,
                        last.counts.completed,
                        last.counts.quarantined,
                        last.counts.failed,
                        last.counts.deferred,
                        last.counts.up_to_date,
                        last.counts.rows,
                        last.error
                            .as_deref()
                            .map(|e| format!("; error: {e}"))
                            .unwrap_or_default()
                    ),
                    None => println!("  last run: none yet"),
                }
                println!(
                    "  next run: {}",
                    s.next_run.as_deref().unwrap_or("not scheduled")
                );
                if s.consecutive_failures > 0 {
                    println!("  consecutive failed runs: {}", s.consecutive_failures);
                }
                for failure in s.recent_failures.iter().take(5) {
                    println!(
                        "  {} {} ({}): {}",
                        failure.outcome, failure.key, failure.at, failure.error
                    );
                }
            }
            None => {
                println!("{} [never run by the agent]", row.pipeline);
                if let Some(report) = &row.last_report {
                    println!(
                        "  last sync: {} completed, {} quarantined, {} failed",
                        report["completed"], report["quarantined"], report["failed"]
                    );
                }
            }
        }
        println!("  quarantined archives: {}", row.quarantined);
    }
}

/// The replicas sharing the work (`[leases]`), from their heartbeats.
fn print_replicas(replicas: &[crate::pipeline::ReplicaStatus]) {
    if replicas.is_empty() {
        return;
    }
    println!("replicas:");
    for replica in replicas {
        let beat = &replica.heartbeat;
        let age = replica
            .heartbeat_age_s
            .map(|s| format!("{s} s ago"))
            .unwrap_or_else(|| "at an unknown time".into());
        let state = match (replica.live, beat.state) {
            (true, _) => "live",
            (false, crate::pipeline::ReplicaState::Stopped) => "stopped",
            (false, crate::pipeline::ReplicaState::Running) => "silent",
        };
        println!(
            "  {} [{state}] on {} (pid {}, {}): last heartbeat {age}; {} lease(s)",
            beat.replica,
            beat.host,
            beat.pid,
            beat.version,
            beat.leases.len()
        );
        for lease in &beat.leases {
            println!(
                "    {} {} since {}",
                lease.pipeline, lease.series, lease.since
            );
        }
    }
}
