//! `cryptolake sync`: run pipelines once, now.

use crate::agent::Agent;
use crate::pipeline::{Estimate, MissingSeries, Outcome, PlanReport, RunReport, Shard};
use crate::wit::Window;

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
    /// Print what would be transferred and why (new, re-published, outputs
    /// missing), with sizes and totals, without transferring anything.
    #[arg(long)]
    dry_run: bool,
    /// Print, per pipeline and in total, what the run would fetch (archives,
    /// bytes from the listing, requests) and how long it would take at the
    /// rate the last run measured, without transferring anything.
    #[arg(long, conflicts_with = "dry_run")]
    plan: bool,
    /// Download again the archives an earlier run quarantined, even those
    /// the source has not changed since (by default they are reported as
    /// still quarantined and skipped).
    #[arg(long)]
    retry_quarantined: bool,
    /// Only the series (exchange, market, data type, symbol, interval) in
    /// shard I of N, by a stable hash: N machines with shards 0 to N-1
    /// together do every series once. Works with --dry-run.
    #[arg(long, value_name = "I/N", value_parser = Shard::parse, conflicts_with = "shards")]
    shard: Option<Shard>,
    /// Split into N shards and take the one `JOB_COMPLETION_INDEX` names,
    /// as a Kubernetes Indexed Job sets it.
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
    /// Result format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// The variable a Kubernetes Indexed Job sets to each pod's index.
const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// The shard of `count` that `JOB_COMPLETION_INDEX` (`index`) names.
fn job_completion_shard(index: Option<&str>, count: u32) -> Result<Shard, String> {
    let index = index.ok_or_else(|| {
        format!("{JOB_COMPLETION_INDEX} is not set (a Kubernetes Indexed Job sets it; elsewhere use --shard I/N)")
    })?;
    let index = index
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{JOB_COMPLETION_INDEX} = `{index}` is not a shard index"))?;
    Shard::new(index, count).map_err(|e| format!("{JOB_COMPLETION_INDEX} = {index}: {e}"))
}

fn parse_date(text: &str) -> Result<String, String> {
    crate::period::parse_day(text)
        .map(|_| text.to_owned())
        .ok_or_else(|| format!("`{text}` is not a YYYY-MM-DD date"))
}

/// A pipeline that could not even start.
#[derive(Debug, serde::Serialize)]
struct NotRun {
    pipeline: String,
    error: String,
}

pub(super) fn run(args: SyncArgs) -> u8 {
    let shard = match (args.shard, args.shards) {
        (Some(shard), _) => Some(shard),
        (None, Some(count)) => {
            match job_completion_shard(std::env::var(JOB_COMPLETION_INDEX).ok().as_deref(), count) {
                Ok(shard) => Some(shard),
                Err(message) => {
                    eprintln!("error: --shards {count}: {message}");
                    return EXIT_USAGE;
                }
            }
        }
        (None, None) => None,
    };
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
    let _telemetry = crate::telemetry::otlp::start(plan.otlp.as_ref());
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
    if !args.dry_run
        && let Err(e) = tokio.block_on(crate::agent::prepare_lake(agent.lake()))
    {
        eprintln!("error: {}: {e:#}", agent.plan().config_file.display());
        return EXIT_USAGE;
    }
    // Every selected pipeline must assemble (plugins load, are of the right
    // kind, accept their params) before anything runs: that is a
    // configuration error, exit code 2, like `validate`.
    let runs = match agent.pipelines(&selected) {
        Ok(runs) => runs,
        Err(problems) => {
            super::print_invalid(&agent.plan().config_file, &problems);
            return EXIT_USAGE;
        }
    };
    // Bars only for people: a terminal on stderr and text logs.
    let planning = args.dry_run || args.plan;
    let bars = !planning
        && crate::telemetry::progress::stderr_is_terminal()
        && crate::telemetry::progress::enable();
    let mut reports = Vec::new();
    let mut plans = Vec::new();
    let mut estimates = Vec::new();
    let mut not_run = Vec::new();
    for mut run in runs {
        if bars {
            run.progress = crate::telemetry::progress::pipeline_bar(&run.spec.name);
        }
        run.retry_quarantined = args.retry_quarantined;
        run.shard = shard;
        let window = Window {
            start: args.from.clone().or_else(|| run.spec.start.clone()),
            end: args.to.clone().or_else(|| run.spec.end.clone()),
        };
        let outcome = if planning {
            tokio.block_on(async {
                let plan = run.dry_run(&window).await?;
                if args.plan {
                    estimates.push(run.estimate(&plan).await);
                } else {
                    plans.push(plan);
                }
                Ok(())
            })
        } else {
            tokio
                .block_on(run.run(&window))
                .map(|report| reports.push(report))
        };
        if let Err(error) = outcome {
            tracing::error!(pipeline = %run.spec.name, error = %error, "Pipeline could not run.");
            not_run.push(NotRun {
                pipeline: run.spec.name.clone(),
                error: error.to_string(),
            });
        }
    }
    if planning {
        match (args.output, args.plan) {
            (Output::Json, true) => print_json(&serde_json::json!({
                "estimates": estimates, "total": total_of(&estimates), "not_run": not_run
            })),
            (Output::Json, false) => {
                print_json(&serde_json::json!({ "plans": plans, "not_run": not_run }))
            }
            (Output::Text, true) => print_estimates(&estimates, &total_of(&estimates), &not_run),
            (Output::Text, false) => print_plans(&plans, &not_run),
        }
        return if not_run.is_empty() { 0 } else { EXIT_FAILED };
    }
    match args.output {
        Output::Json => {
            print_json(&serde_json::json!({ "pipelines": reports, "not_run": not_run }))
        }
        Output::Text => print_text(&reports, &not_run),
    }
    let ok = not_run.is_empty() && reports.iter().all(RunReport::succeeded);
    if ok { 0 } else { EXIT_FAILED }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Every pipeline's estimate added up; pipelines run one after another, so
/// their times add up too (`null` when any is unknown).
#[derive(Debug, serde::Serialize)]
struct Total {
    archives: usize,
    bytes: u64,
    unknown_sizes: usize,
    requests: u64,
    eta_s: Option<f64>,
}

fn total_of(estimates: &[Estimate]) -> Total {
    Total {
        archives: estimates.iter().map(|e| e.archives).sum(),
        bytes: estimates.iter().map(|e| e.bytes).sum(),
        unknown_sizes: estimates.iter().map(|e| e.unknown_sizes).sum(),
        requests: estimates.iter().map(|e| e.requests).sum(),
        eta_s: estimates.iter().map(|e| e.eta_s).sum(),
    }
}

fn print_estimates(estimates: &[Estimate], total: &Total, not_run: &[NotRun]) {
    let eta = |eta: Option<f64>| match eta {
        Some(seconds) => format!("about {}", human_duration(seconds)),
        None => "unknown (no earlier run to measure a rate)".to_owned(),
    };
    let unknown = |n: usize| {
        if n > 0 {
            format!(" (+{n} of unknown size)")
        } else {
            String::new()
        }
    };
    for e in estimates {
        let rate = e
            .rate
            .map(|r| {
                format!(
                    " at {:.1} archives/s, {}/s as the last run went",
                    r.archives_per_s,
                    human_bytes(r.bytes_per_s as u64)
                )
            })
            .unwrap_or_default();
        println!(
            "{}: {} archives, {}{}, ~{} requests ({:.1} per archive, {}); {}{rate}",
            e.pipeline,
            e.archives,
            human_bytes(e.bytes),
            unknown(e.unknown_sizes),
            e.requests,
            e.requests_per_archive,
            if e.requests_measured {
                "as the last run's copies took"
            } else {
                "counted from the transfer path"
            },
            if e.archives == 0 {
                "nothing to do".to_owned()
            } else {
                eta(e.eta_s)
            }
        );
        if e.rejected_for_no_checksum > 0 {
            println!(
                "  warning: {} of them have no published checksum and missing_checksum = \"reject\" would fail them",
                e.rejected_for_no_checksum
            );
        }
    }
    println!(
        "total: {} archives, {}{}, ~{} requests; {}",
        total.archives,
        human_bytes(total.bytes),
        unknown(total.unknown_sizes),
        total.requests,
        eta(total.eta_s)
    );
    for n in not_run {
        println!("{}: not run: {}", n.pipeline, n.error);
    }
}

/// `1h 02m`, `3m 20s`, `12s`.
fn human_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

fn print_plans(plans: &[PlanReport], not_run: &[NotRun]) {
    for p in plans {
        println!(
            "{}{}: {} discovered, {} up to date, {} to process ({}{})",
            p.pipeline,
            shard_label(p.shard),
            p.discovered,
            p.up_to_date,
            p.planned.len(),
            human_bytes(p.total_bytes),
            if p.unknown_sizes > 0 {
                format!(", {} of unknown size", p.unknown_sizes)
            } else {
                String::new()
            }
        );
        if p.rejected_for_no_checksum > 0 {
            println!(
                "  warning: {} of them have no published checksum and missing_checksum = \"reject\" would fail them (set missing_checksum = \"accept\" to take them unverified)",
                p.rejected_for_no_checksum
            );
        }
        for a in &p.planned {
            let reason = serde_json::to_value(a.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let size = a.size.map(human_bytes).unwrap_or_else(|| "?".into());
            println!("  {reason:<16} {size:>10}  {}", a.key);
        }
        print_missing(&p.missing);
    }
    for n in not_run {
        println!("{}: not run: {}", n.pipeline, n.error);
    }
}

fn print_missing(missing: &[MissingSeries]) {
    for m in missing {
        println!(
            "  missing at the source: {} {} {} {}{}: {}",
            m.exchange,
            m.market,
            m.data_type,
            m.symbol,
            m.interval
                .as_deref()
                .map(|i| format!(" {i}"))
                .unwrap_or_default(),
            m.missing.join(", ")
        );
    }
}

/// ` (shard I/N)` after a pipeline's name when only one shard ran.
fn shard_label(shard: Option<Shard>) -> String {
    shard.map(|s| format!(" (shard {s})")).unwrap_or_default()
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn print_text(reports: &[RunReport], not_run: &[NotRun]) {
    for r in reports {
        println!(
            "{}{}: {} discovered, {} up to date, {} completed, {} quarantined, {} failed; {} rows from {} archive bytes in {:.1}s",
            r.pipeline,
            shard_label(r.shard),
            r.counts.discovered,
            r.counts.up_to_date,
            r.counts.completed,
            r.counts.quarantined,
            r.counts.failed,
            r.counts.rows,
            r.counts.bytes,
            r.elapsed_ms as f64 / 1000.0
        );
        for a in &r.artifacts {
            match &a.outcome {
                Outcome::Completed { .. } => {}
                Outcome::CommittedElsewhere => {
                    println!("  committed by another agent meanwhile: {}", a.key)
                }
                Outcome::Quarantined { reason } => println!("  quarantined {}: {reason}", a.key),
                Outcome::StillQuarantined {
                    quarantine_reason,
                    quarantined_at,
                } => println!(
                    "  still quarantined {} (unchanged at the source since {quarantined_at}; --retry-quarantined tries it again): {quarantine_reason}",
                    a.key
                ),
                Outcome::Failed { error, attempts } => {
                    println!("  failed {} after {attempts} attempt(s): {error}", a.key)
                }
            }
        }
        print_missing(&r.missing);
    }
    for n in not_run {
        println!("{}: not run: {}", n.pipeline, n.error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_indexed_job_names_its_shard() {
        assert_eq!(
            job_completion_shard(Some("3"), 8),
            Ok(Shard { index: 3, count: 8 })
        );
        let unset = job_completion_shard(None, 8).unwrap_err();
        assert!(unset.contains("JOB_COMPLETION_INDEX is not set"), "{unset}");
        let beyond = job_completion_shard(Some("8"), 8).unwrap_err();
        assert!(beyond.contains("JOB_COMPLETION_INDEX = 8"), "{beyond}");
        assert!(job_completion_shard(Some("one"), 8).is_err());
    }
}
