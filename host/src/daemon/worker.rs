//! One pipeline's scheduling loop in the daemon: wait for the next run time,
//! run, record the status, repeat.
//!
//! Owns: the run loop of a single pipeline (never two runs of one pipeline
//! at once: the loop is sequential), the window of each run (the whole
//! window first, then the lookback once a run completed), and retry timing
//! after failures. It must not touch other pipelines or the configuration;
//! the daemon starts and stops workers.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::status::{self, StatusBoard, rfc3339};
use crate::config::PipelineSpec;
use crate::pipeline::{PipelineRun, StopSignal};
use crate::telemetry::metrics;
use crate::wit::Window;

/// A running worker.
pub struct Worker {
    /// The pipeline as configured when the worker started.
    pub spec: PipelineSpec,
    stop: StopSignal,
    cancel: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Worker {
    /// Starts the loop for `run` once `previous` (the same pipeline's old
    /// worker, already told to stop) has finished, so two runs of one
    /// pipeline never overlap. The run's stop signal is replaced by the
    /// worker's own, so one pipeline can be stopped alone.
    pub fn start_after(previous: Option<Worker>, mut run: PipelineRun, board: StatusBoard) -> Self {
        let stop = StopSignal::default();
        run.stop = stop.clone();
        let (cancel, cancelled) = watch::channel(false);
        let spec = run.spec.clone();
        let handle = tokio::spawn(async move {
            if let Some(previous) = previous {
                previous.finished().await;
            }
            run_loop(run, board, cancelled).await;
        });
        Self {
            spec,
            stop,
            cancel,
            handle,
        }
    }

    /// Stops scheduling and asks the current run to start no new artifact;
    /// artifacts in flight finish. Await [`Worker::finished`] to wait.
    pub fn stop(&self) {
        self.stop.stop();
        let _ = self.cancel.send(true);
    }

    /// Waits for the loop to end (after [`Worker::stop`]).
    pub async fn finished(self) {
        let _ = self.handle.await;
    }

    /// A handle that ends the loop at once, abandoning the run in flight.
    /// The lake stays consistent: outputs are published atomically and the
    /// manifest entry is written last, so the next run redoes what was cut
    /// off.
    pub fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.handle.abort_handle()
    }
}

async fn run_loop(run: PipelineRun, board: StatusBoard, mut cancelled: watch::Receiver<bool>) {
    let name = run.spec.name.clone();
    let schedule = run.spec.schedule.clone();
    let replica = run.leases.as_ref().map(|l| l.replica().to_owned());
    let mut caught_up = false;
    // The first run starts at once: a (re)started agent catches up first.
    let mut next = OffsetDateTime::now_utc();
    loop {
        if *cancelled.borrow() {
            break;
        }
        let status = board.update(&name, |s| {
            s.schedule = schedule.when.to_string();
            s.replica.clone_from(&replica);
            s.state = "idle".to_owned();
            s.next_run = Some(rfc3339(next));
        });
        status::persist(&run.lake, &status).await;
        let wait = (next - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancelled.changed() => break,
        }
        if *cancelled.borrow() {
            break;
        }
        let started = OffsetDateTime::now_utc();
        let window = window_for(&run.spec, caught_up, started);
        board.update(&name, |s| {
            s.state = "running".to_owned();
            s.next_run = None;
        });
        tracing::info!(pipeline = %name, start = ?window.start, end = ?window.end, "Scheduled run starting.");
        let succeeded = match run.run(&window).await {
            Ok(report) => {
                let ok = report.succeeded();
                if ok && report.counts.deferred == 0 {
                    caught_up = true;
                }
                metrics::pipeline_run(
                    &name,
                    if ok {
                        metrics::RunOutcome::Succeeded
                    } else {
                        metrics::RunOutcome::Failed
                    },
                );
                board.update(&name, |s| {
                    s.record_report(rfc3339(started), window.start.clone(), &report)
                });
                ok
            }
            Err(error) => {
                metrics::pipeline_run(&name, metrics::RunOutcome::Error);
                tracing::error!(pipeline = %name, error = %error, "Scheduled run could not run; retrying later.");
                board.update(&name, |s| {
                    s.record_error(rfc3339(started), window.start.clone(), error.to_string())
                });
                false
            }
        };
        // The run's buffers were kept for reuse while it ran; the wait for
        // the next one should not hold them.
        crate::memory::release_freed_memory();
        let now = OffsetDateTime::now_utc();
        let mut following = schedule.when.next_after(started);
        if following <= now {
            // A run longer than the interval: start the next one now, once
            // (missed ticks are not queued up).
            following = now;
        }
        if !succeeded {
            following = following.min(now + schedule.retry_after);
        }
        next = following;
    }
    let status = board.update(&name, |s| {
        s.state = "stopped".to_owned();
        s.next_run = None;
    });
    status::persist(&run.lake, &status).await;
}

/// The window of a run starting at `now`: the configured window, narrowed
/// to the lookback once a run has completed.
fn window_for(spec: &PipelineSpec, caught_up: bool, now: OffsetDateTime) -> Window {
    let mut start = spec.start.clone();
    if caught_up && let Some(lookback) = spec.schedule.lookback {
        let from = crate::period::format_day((now - lookback).date());
        if start.as_ref().is_none_or(|s| *s < from) {
            start = Some(from);
        }
    }
    Window {
        start,
        end: spec.end.clone(),
    }
}
