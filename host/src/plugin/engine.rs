//! The shared wasmtime engine and its epoch ticker.
//!
//! Owns: engine configuration (epoch interruption, Cranelift) and the thread
//! that advances the epoch every [`EPOCH_TICK`], which turns a per-call epoch
//! deadline into a wall-clock limit on guest execution. It must not know about
//! plugins or their calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine};

/// How often the epoch advances. Guest code is interrupted at most this long
/// after its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// An engine plus the thread ticking its epoch; the thread stops on drop.
pub struct TickingEngine {
    engine: Engine,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl TickingEngine {
    /// Creates the engine and starts the ticker.
    pub fn new() -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // For plugin authors: `perf record` then names the plugin's own
        // functions instead of anonymous JIT addresses.
        if std::env::var_os("CRYPTOLAKE_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("cryptolake-epoch".into())
                .spawn(move || {
                    // Parked rather than asleep, so that dropping the engine
                    // wakes it at once instead of waiting out a tick (a run
                    // of `sync` ended up to 10 ms later). A wake-up before
                    // the tick is up is not a tick.
                    let mut next_tick = Instant::now() + EPOCH_TICK;
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if now < next_tick {
                            std::thread::park_timeout(next_tick - now);
                            continue;
                        }
                        engine.increment_epoch();
                        next_tick = now + EPOCH_TICK;
                    }
                })?
        };
        Ok(Self {
            engine,
            stop,
            ticker: Some(ticker),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for TickingEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            ticker.thread().unpark();
            let _ = ticker.join();
        }
    }
}

/// Epoch ticks that cover `timeout`, rounded up, at least one.
pub fn ticks_for(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    u64::try_from(timeout.as_nanos().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}
