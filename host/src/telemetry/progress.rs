//! Progress bars for artifacts and bytes when stderr is a terminal; plain
//! log lines otherwise.
//!
//! Owns: the [`Progress`] interface pipelines report through, the bars
//! drawing it and the stderr writer the log subscriber uses, which prints
//! log lines above the bars instead of through them. It must not decide
//! what progress is: that is the pipeline's.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, OnceLock};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Receives a run's progress (the CLI draws bars from it).
pub trait Progress: Send + Sync {
    /// The run will process `artifacts` artifacts of about `bytes` bytes.
    fn planned(&self, artifacts: usize, bytes: u64);
    /// One artifact ended: committed (`ok`, with its archive's bytes and
    /// the rows written), quarantined or failed.
    fn artifact_done(&self, bytes: u64, rows: u64, ok: bool);
    /// The run ended.
    fn finished(&self);
}

/// Whether bars would be visible: stderr is a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Starts drawing bars on stderr (log lines then print above them).
pub fn enable() -> bool {
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
    true
}

/// A bar for one pipeline's run, if bars are enabled.
pub fn pipeline_bar(pipeline: &str) -> Option<Arc<dyn Progress>> {
    let bars = BARS.get()?;
    let style = ProgressStyle::with_template(
        "{prefix:>24} [{bar:30}] {pos}/{len} archives ({per_sec})  {msg}  {elapsed_precise} (eta {eta})",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = bars.add(ProgressBar::new(0).with_style(style));
    bar.set_prefix(pipeline.to_owned());
    Some(Arc::new(PipelineBar {
        bar,
        bytes: std::sync::atomic::AtomicU64::new(0),
        rows: std::sync::atomic::AtomicU64::new(0),
        failed: std::sync::atomic::AtomicU64::new(0),
    }))
}

struct PipelineBar {
    bar: ProgressBar,
    bytes: std::sync::atomic::AtomicU64,
    rows: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

impl Progress for PipelineBar {
    fn planned(&self, artifacts: usize, _bytes: u64) {
        self.bar.set_length(artifacts as u64);
        self.bar.set_message("0 B, 0 rows");
    }

    fn artifact_done(&self, bytes: u64, rows: u64, ok: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let total = self.bytes.fetch_add(bytes, Relaxed) + bytes;
        let rows = self.rows.fetch_add(rows, Relaxed) + rows;
        let failed = self.failed.fetch_add(u64::from(!ok), Relaxed) + u64::from(!ok);
        let failed = if failed > 0 {
            format!(", {failed} not ok")
        } else {
            String::new()
        };
        let rate = indicatif::HumanBytes(
            (total as f64 / self.bar.elapsed().as_secs_f64().max(0.001)) as u64,
        );
        self.bar.set_message(format!(
            "{} ({rate}/s), {} rows{failed}",
            indicatif::HumanBytes(total),
            indicatif::HumanCount(rows)
        ));
        self.bar.inc(1);
    }

    fn finished(&self) {
        self.bar.finish();
    }
}

/// The log subscriber's writer: stderr, above the bars when they show.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrAboveBars;

/// One log line, written when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        let write = || {
            let _ = std::io::stderr().lock().write_all(&line);
        };
        match BARS.get() {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrAboveBars {
    type Writer = LogLine;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine(Vec::with_capacity(256))
    }
}
