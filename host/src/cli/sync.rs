//! `cryptolake sync`: run pipelines once, now.

use crate::agent::Agent;
use crate::pipeline::{Outcome, RunReport};
use crate::plugin::Window;

use super::{ConfigArg, EXIT_FAILED, EXIT_USAGE, Output};

/// Arguments of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Run only these pipelines (repeatable). Default: all.
    #[arg(long = "pipeline", short = 'p')]
    pipelines: Vec<String>,
    /// First date, YYYY-MM-DD (overrides the pipeline's window start).
    #[arg(long, value_parser = parse_date)]
    from: Option<String>,
    /// Last date, YYYY-MM-DD (overrides the pipeline's window end).
    #[arg(long, value_parser = parse_date)]
    to: Option<String>,
    /// Result format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

fn parse_date(text: &str) -> Result<String, String> {
    time::Date::parse(
        text,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(|_| text.to_owned())
    .map_err(|_| format!("`{text}` is not a YYYY-MM-DD date"))
}

/// A pipeline that could not even start.
#[derive(Debug, serde::Serialize)]
struct NotRun {
    pipeline: String,
    error: String,
}

pub(super) fn run(args: SyncArgs) -> u8 {
    let plan = match super::load_plan(&args.config.config) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    for name in &args.pipelines {
        if plan.pipeline(name).is_none() {
            let known: Vec<&str> = plan.pipelines.iter().map(|p| p.name.as_str()).collect();
            eprintln!(
                "error: {}: no pipeline named `{name}` (pipelines: {})",
                args.config.config.display(),
                known.join(", ")
            );
            return EXIT_USAGE;
        }
    }
    if let (Some(from), Some(to)) = (&args.from, &args.to)
        && from > to
    {
        eprintln!("error: --from {from} is after --to {to}");
        return EXIT_USAGE;
    }
    let tokio = match super::tokio_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let selected: Vec<_> = plan
        .pipelines
        .iter()
        .filter(|p| args.pipelines.is_empty() || args.pipelines.contains(&p.name))
        .cloned()
        .collect();
    let mut agent = match Agent::new(plan, tokio.handle().clone()) {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_FAILED;
        }
    };
    let mut reports = Vec::new();
    let mut not_run = Vec::new();
    for spec in &selected {
        let window = Window {
            start: args.from.clone().or_else(|| spec.start.clone()),
            end: args.to.clone().or_else(|| spec.end.clone()),
        };
        let outcome = agent
            .pipeline(spec)
            .and_then(|run| tokio.block_on(run.run(&window)).map_err(|e| e.to_string()));
        match outcome {
            Ok(report) => reports.push(report),
            Err(error) => {
                tracing::error!(pipeline = %spec.name, error = %error, "Pipeline could not run.");
                not_run.push(NotRun {
                    pipeline: spec.name.clone(),
                    error,
                });
            }
        }
    }
    match args.output {
        Output::Json => {
            let json = serde_json::json!({ "pipelines": reports, "not_run": not_run });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        Output::Text => print_text(&reports, &not_run),
    }
    let ok = not_run.is_empty() && reports.iter().all(RunReport::succeeded);
    if ok { 0 } else { EXIT_FAILED }
}

fn print_text(reports: &[RunReport], not_run: &[NotRun]) {
    for r in reports {
        println!(
            "{}: {} discovered, {} up to date, {} completed, {} quarantined, {} failed; {} rows from {} archive bytes in {:.1}s",
            r.pipeline,
            r.discovered,
            r.up_to_date,
            r.completed,
            r.quarantined,
            r.failed,
            r.rows,
            r.bytes,
            r.elapsed_ms as f64 / 1000.0
        );
        for a in &r.artifacts {
            match &a.outcome {
                Outcome::Completed { .. } => {}
                Outcome::Quarantined { reason } => println!("  quarantined {}: {reason}", a.key),
                Outcome::Failed { error, attempts } => {
                    println!("  failed {} after {attempts} attempt(s): {error}", a.key)
                }
            }
        }
    }
    for n in not_run {
        println!("{}: not run: {}", n.pipeline, n.error);
    }
}
