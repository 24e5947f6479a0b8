//! `cryptolake run`: the long-running agent.
//!
//! Owns: starting one [`worker`] per pipeline, hot reload (plugin files and
//! the configuration, on change or SIGHUP), and orderly shutdown on
//! SIGTERM/SIGINT. A reload is all-or-nothing: the new configuration and
//! every changed plugin are loaded and checked first; only then are plugins
//! swapped and the pipelines whose settings changed restarted. Everything
//! else keeps running untouched. It must not do pipeline work itself.

mod admin;
mod notify;
pub mod status;
mod watch;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::agent::{Agent, PreparedSwap};
use crate::config::{self, Plan, PluginLocation};
use crate::telemetry::metrics;
use admin::{AdminState, AgentInfo};
pub use status::{PipelineStatus, StatusBoard};
use watch::FileWatcher;
use worker::Worker;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Pipelines cannot be assembled: a plugin does not load, is of the
    /// wrong kind, or refuses its params.
    #[error("invalid configuration in {}\n  - {}", file.display(), problems.join("\n  - "))]
    Pipelines {
        /// The configuration file.
        file: PathBuf,
        /// One line per problem.
        problems: Vec<String>,
    },
    /// The lake cannot be written (store unreachable, no such bucket,
    /// credentials refused).
    #[error("{0}")]
    Lake(String),
    /// Something else stopped the start (lake, runtime, signals, watcher).
    #[error("{0}")]
    Start(String),
}

/// The running agent's state, owned by the control loop.
struct Daemon {
    config_path: PathBuf,
    plan: Plan,
    agent: Agent,
    workers: BTreeMap<String, Worker>,
    board: StatusBoard,
    changes: mpsc::UnboundedSender<PathBuf>,
    watcher: Option<FileWatcher>,
    info: Arc<RwLock<AgentInfo>>,
    /// This replica's leases and their renewals, with `[leases]`.
    leases: Option<(Arc<crate::pipeline::Leases>, AbortOnDrop)>,
    /// The admin server, unless off or unable to listen.
    admin: Option<AdminServer>,
}

/// Runs the agent until SIGTERM or SIGINT. `started` is when the process
/// started, to report the time to ready.
pub async fn run(config_path: PathBuf, started: Instant) -> Result<(), DaemonError> {
    let plan = config::load(&config_path)?;
    let _telemetry = crate::telemetry::otlp::start(plan.otlp.as_ref());
    let mut agent = Agent::new(plan.clone(), tokio::runtime::Handle::current())
        .map_err(|e| DaemonError::Start(format!("{e:#}")))?;
    let probed = crate::agent::prepare_lake(agent.lake())
        .await
        .map_err(|e| DaemonError::Lake(format!("{}: {e:#}", config_path.display())))?;
    let leases = match &plan.leases {
        Some(settings) => {
            if probed != Some(crate::storage::Preconditions::Honoured) {
                return Err(DaemonError::Lake(format!(
                    "{}: leases: the lake's store does not honour conditional writes, so replicas could both claim one series; use S3, GCS or Azure with conditional writes, or remove [leases]",
                    config_path.display()
                )));
            }
            let leases = crate::pipeline::Leases::new(agent.lake().clone(), settings.clone());
            agent.share_work(Arc::clone(&leases));
            let keeper = AbortOnDrop(leases.keep());
            Some((leases, keeper))
        }
        None => None,
    };
    let (changes, mut changed) = mpsc::unbounded_channel();
    let now = status::now_rfc3339();
    let info = Arc::new(RwLock::new(AgentInfo {
        config: config_path.display().to_string(),
        version: env!("CARGO_PKG_VERSION"),
        started_at: now.clone(),
        config_loaded_at: now,
        plugins_loaded: false,
        plugins: Vec::new(),
        lake: Some(agent.lake().clone()),
        lake_location: plan.lake.to_string(),
        replica: leases.as_ref().map(|(l, _)| l.replica().to_owned()),
    }));
    let board = StatusBoard::default();
    // The admin server answers /health while the plugins load.
    let admin = plan
        .admin
        .as_ref()
        .and_then(|settings| start_admin(settings, board.clone(), info.clone()));
    let mut daemon = Daemon {
        config_path,
        plan,
        agent,
        workers: BTreeMap::new(),
        board,
        changes,
        watcher: None,
        info,
        leases,
        admin,
    };
    let signal_error =
        |e: std::io::Error| DaemonError::Start(format!("cannot listen for signals: {e}"));
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;

    // At start, every pipeline must assemble, as `validate` would check;
    // later reloads are all-or-nothing the same way.
    let specs = daemon.plan.pipelines.clone();
    let runs = match tokio::task::block_in_place(|| daemon.agent.pipelines(&specs)) {
        Ok(runs) => runs,
        Err(problems) => {
            return Err(DaemonError::Pipelines {
                file: daemon.config_path,
                problems,
            });
        }
    };
    for run in runs {
        let worker = Worker::start_after(None, run, daemon.board.clone());
        daemon.workers.insert(worker.spec.name.clone(), worker);
    }
    daemon.publish_info(false);
    daemon.rewatch();
    tracing::info!(
        pipelines = daemon.workers.len(),
        config = %daemon.config_path.display(),
        ready_ms = started.elapsed().as_secs_f64() * 1000.0,
        "Agent ready."
    );
    notify::notify("READY=1");

    let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        let debounce = async {
            match quiet_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(path) = changed.recv() => {
                pending.insert(path);
                quiet_until = Some(tokio::time::Instant::now() + daemon.plan.daemon.reload_debounce);
            }
            _ = debounce => {
                quiet_until = None;
                let files = std::mem::take(&mut pending);
                daemon.on_files_changed(files);
            }
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration.");
                notify::notify("RELOADING=1");
                daemon.reload_config();
                notify::notify("READY=1");
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    daemon.shutdown(&mut terminate, &mut interrupt).await;
    Ok(())
}

impl Daemon {
    /// Starts `spec`'s worker, after `previous` (the same pipeline's old
    /// worker) has finished its in-flight artifacts.
    fn start_pipeline(&mut self, spec: &config::PipelineSpec, previous: Option<Worker>) {
        let run = tokio::task::block_in_place(|| self.agent.pipeline(spec));
        match run {
            Ok(run) => {
                let worker = Worker::start_after(previous, run, self.board.clone());
                self.workers.insert(spec.name.clone(), worker);
            }
            Err(error) => {
                tracing::error!(pipeline = %spec.name, error = %error, "Pipeline cannot start; the others run.");
                self.board.update(&spec.name, |s| {
                    s.state = "not-started".to_owned();
                    s.next_run = None;
                    s.schedule = spec.schedule.when.to_string();
                    s.record_error(status::now_rfc3339(), spec.start.clone(), error);
                });
                if let Some(previous) = previous {
                    tokio::spawn(previous.finished());
                }
            }
        }
    }

    /// Refreshes what the admin server reports (after start and reloads).
    fn publish_info(&self, config_reloaded: bool) {
        if let Ok(mut info) = self.info.write() {
            info.plugins_loaded = true;
            info.plugins = self.agent.plugin_identities();
            info.lake = Some(self.agent.lake().clone());
            info.lake_location = self.plan.lake.to_string();
            if config_reloaded {
                info.config_loaded_at = status::now_rfc3339();
            }
        }
    }

    /// The files whose change triggers a reload.
    fn watched_files(&self) -> Vec<PathBuf> {
        watched_files_of(&self.plan, &self.config_path)
    }

    /// (Re)starts the file watcher for the current configuration.
    fn rewatch(&mut self) {
        self.watcher = None;
        if !self.plan.daemon.watch {
            return;
        }
        match FileWatcher::start(&self.watched_files(), self.changes.clone()) {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(error) => tracing::error!(
                error = %error,
                "Cannot watch files; reload with SIGHUP instead."
            ),
        }
    }

    fn on_files_changed(&mut self, files: BTreeSet<PathBuf>) {
        if files.contains(&watch::normalise(&self.config_path)) {
            self.reload_config();
        }
        let plugins: Vec<config::PluginSpec> = self
            .plan
            .plugins
            .values()
            .filter(|p| match &p.location {
                PluginLocation::File(path) => files.contains(&watch::normalise(path)),
                PluginLocation::Builtin(_) => false,
            })
            .cloned()
            .collect();
        for spec in plugins {
            self.reload_plugin(&spec);
        }
    }

    /// A plugin file changed: load, check, swap, or keep the old version.
    fn reload_plugin(&mut self, spec: &config::PluginSpec) {
        let changed_at = match &spec.location {
            PluginLocation::File(path) => modified(path),
            PluginLocation::Builtin(_) => None,
        };
        match tokio::task::block_in_place(|| self.agent.prepare_swap(spec)) {
            Ok(Some(prepared)) => {
                let new = prepared.identity().clone();
                let old = prepared.apply(changed_at);
                metrics::reload(metrics::ReloadKind::Plugin, metrics::ReloadOutcome::Success);
                self.publish_info(false);
                tracing::info!(
                    plugin = %spec.name,
                    old_version = %old.version,
                    old_sha256 = %old.sha256,
                    version = %new.version,
                    sha256 = %new.sha256,
                    "Plugin reloaded; new work uses the new version."
                );
            }
            Ok(None) => {
                metrics::reload(
                    metrics::ReloadKind::Plugin,
                    metrics::ReloadOutcome::Unchanged,
                );
                tracing::debug!(plugin = %spec.name, "Plugin file touched but unchanged.");
            }
            Err(error) => {
                metrics::reload(
                    metrics::ReloadKind::Plugin,
                    metrics::ReloadOutcome::Rejected,
                );
                tracing::error!(
                    plugin = %spec.name,
                    error = %error,
                    "Plugin reload rejected; the running version keeps serving."
                );
            }
        }
    }

    /// Re-reads the configuration and applies what changed, or keeps the
    /// running one when the new one is invalid.
    fn reload_config(&mut self) {
        let new = match config::load(&self.config_path) {
            Ok(plan) => plan,
            Err(error) => {
                metrics::reload(
                    metrics::ReloadKind::Config,
                    metrics::ReloadOutcome::Rejected,
                );
                tracing::error!(error = %error, "Configuration reload rejected; the running configuration stays.");
                return;
            }
        };
        let old_admin = self.plan.admin.clone();
        let old_telemetry = self.plan.otlp.clone();
        let applied = self.apply_config(new).map(|mut summary| {
            if self.plan.admin != old_admin {
                self.apply_admin();
                summary.admin = true;
            }
            if self.plan.otlp != old_telemetry {
                summary.telemetry = self.apply_telemetry();
            }
            summary
        });
        match applied {
            Ok(summary) if summary.is_empty() => {
                metrics::reload(
                    metrics::ReloadKind::Config,
                    metrics::ReloadOutcome::Unchanged,
                );
                tracing::info!("Configuration file changed, but nothing in it did.");
            }
            Ok(summary) => self.reloaded(&summary),
            Err(error) => {
                metrics::reload(
                    metrics::ReloadKind::Config,
                    metrics::ReloadOutcome::Rejected,
                );
                tracing::error!(error = %error, "Configuration reload rejected; the running configuration stays.");
            }
        }
    }

    fn reloaded(&self, summary: &ReloadSummary) {
        metrics::reload(metrics::ReloadKind::Config, metrics::ReloadOutcome::Success);
        self.publish_info(true);
        tracing::info!(
            started = ?summary.started,
            restarted = ?summary.restarted,
            stopped = ?summary.stopped,
            plugins_swapped = ?summary.plugins,
            admin_changed = summary.admin,
            telemetry_changed = summary.telemetry,
            "Configuration reloaded; unchanged pipelines kept running."
        );
    }

    /// Brings the admin server in line with the plan after a reload: a new
    /// token applies to the next request; a new address is bound before
    /// the old one is let go (if it cannot be bound, the old server keeps
    /// serving); `listen = ""` stops it.
    fn apply_admin(&mut self) {
        let wanted = self.plan.admin.clone();
        match (&mut self.admin, wanted) {
            (Some(running), Some(settings)) if running.listen == settings.listen => {
                if let Ok(mut token) = running.token.write() {
                    *token = settings.token;
                }
                tracing::info!("The admin server's token changed.");
            }
            (_, Some(settings)) => {
                match start_admin(&settings, self.board.clone(), self.info.clone()) {
                    Some(server) => self.admin = Some(server),
                    None if self.admin.is_some() => tracing::warn!(
                        listen = %settings.listen,
                        "The admin server keeps its old address."
                    ),
                    None => {}
                }
            }
            (Some(_), None) => {
                self.admin = None;
                tracing::info!("The admin server stopped (admin.listen is empty).");
            }
            (None, None) => {}
        }
    }

    /// Brings OTLP export in line with the plan's `[telemetry.otlp]` (and
    /// the environment) after a reload; new exporters start before the old
    /// ones flush and stop. Whether export changed.
    fn apply_telemetry(&mut self) -> bool {
        let otlp = self.plan.otlp.clone();
        let outcome =
            tokio::task::block_in_place(|| crate::telemetry::otlp::reconfigure(otlp.as_ref()));
        outcome == crate::telemetry::otlp::Reconfigured::Applied
    }

    fn apply_config(&mut self, new: Plan) -> Result<ReloadSummary, String> {
        if self.leases.is_some() && (new.leases != self.plan.leases || new.lake != self.plan.lake) {
            return Err(
                "[leases] and the lake of a replica that shares work change only with a restart"
                    .into(),
            );
        }
        if new.lake != self.plan.lake
            || new.parquet != self.plan.parquet
            || new.cache_dir != self.plan.cache_dir
        {
            return self.replace_agent(new);
        }
        // Check everything before changing anything.
        let mut swaps: Vec<(String, PreparedSwap)> = Vec::new();
        for (name, spec) in &new.plugins {
            if self.plan.plugins.get(name) != Some(spec)
                && let Some(prepared) =
                    tokio::task::block_in_place(|| self.agent.prepare_swap(spec))?
            {
                swaps.push((name.clone(), prepared));
            }
        }
        let old_plan = std::mem::replace(&mut self.plan, new.clone());
        self.agent.set_plan(new.clone());
        let mut summary = ReloadSummary::default();
        let mut runs = Vec::new();
        for spec in &new.pipelines {
            let unchanged = self
                .workers
                .get(&spec.name)
                .is_some_and(|w| w.spec == *spec);
            if unchanged {
                continue;
            }
            match tokio::task::block_in_place(|| self.agent.pipeline(spec)) {
                Ok(run) => runs.push(run),
                Err(error) => {
                    self.agent.set_plan(old_plan.clone());
                    self.plan = old_plan;
                    return Err(error);
                }
            }
        }
        for (name, prepared) in swaps {
            prepared.apply(None);
            summary.plugins.push(name);
        }
        let names: BTreeSet<&str> = new.pipelines.iter().map(|p| p.name.as_str()).collect();
        let removed: Vec<String> = self
            .workers
            .keys()
            .filter(|n| !names.contains(n.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(worker) = self.workers.remove(&name) {
                worker.stop();
                tokio::spawn(worker.finished());
            }
            self.board.remove(&name);
            summary.stopped.push(name);
        }
        for run in runs {
            let name = run.spec.name.clone();
            let previous = self.workers.remove(&name);
            if let Some(previous) = &previous {
                previous.stop();
                summary.restarted.push(name.clone());
            } else {
                summary.started.push(name.clone());
            }
            let worker = Worker::start_after(previous, run, self.board.clone());
            self.workers.insert(name, worker);
        }
        if self.watched_files() != watched_files_of(&old_plan, &self.config_path)
            || self.plan.daemon.watch != old_plan.daemon.watch
        {
            self.rewatch();
        }
        Ok(summary)
    }

    /// A new lake or cache: every pipeline restarts on a new agent.
    fn replace_agent(&mut self, new: Plan) -> Result<ReloadSummary, String> {
        let mut agent = Agent::new(new.clone(), tokio::runtime::Handle::current())
            .map_err(|e| format!("{e:#}"))?;
        if let Some((leases, _)) = &self.leases {
            agent.share_work(Arc::clone(leases));
        }
        let mut summary = ReloadSummary::default();
        let old_workers = std::mem::take(&mut self.workers);
        self.agent = agent;
        self.plan = new.clone();
        let mut previous: BTreeMap<String, Worker> = old_workers;
        for worker in previous.values() {
            worker.stop();
        }
        for spec in &new.pipelines {
            let prev = previous.remove(&spec.name);
            if prev.is_some() {
                summary.restarted.push(spec.name.clone());
            } else {
                summary.started.push(spec.name.clone());
            }
            self.start_pipeline(spec, prev);
        }
        for (name, worker) in previous {
            tokio::spawn(worker.finished());
            self.board.remove(&name);
            summary.stopped.push(name);
        }
        self.rewatch();
        Ok(summary)
    }

    /// Stops scheduling, lets in-flight artifacts finish within the grace
    /// period, then stops. A second signal stops at once.
    async fn shutdown(
        self,
        terminate: &mut tokio::signal::unix::Signal,
        interrupt: &mut tokio::signal::unix::Signal,
    ) {
        let grace = self.plan.daemon.shutdown_grace;
        notify::notify("STOPPING=1");
        tracing::info!(
            grace_s = grace.as_secs_f64(),
            "Stopping: no new artifacts start; in-flight ones get the grace period to finish."
        );
        for worker in self.workers.values() {
            worker.stop();
        }
        let aborts: Vec<_> = self.workers.values().map(Worker::abort_handle).collect();
        let all = futures::future::join_all(self.workers.into_values().map(Worker::finished));
        tokio::select! {
            _ = all => tracing::info!("Stopped cleanly."),
            _ = tokio::time::sleep(grace) => {
                tracing::warn!("Grace period over: stopping in-flight work; the next start redoes it.");
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
            }
            _ = terminate.recv() => {
                tracing::warn!("Second signal: stopping at once; the next start redoes unfinished work.");
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
            }
            _ = interrupt.recv() => {
                tracing::warn!("Second signal: stopping at once; the next start redoes unfinished work.");
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
            }
        }
        if let Some((leases, keeper)) = self.leases {
            drop(keeper);
            leases.shutdown().await;
        }
    }
}

/// A running admin server.
struct AdminServer {
    listen: std::net::SocketAddr,
    token: Arc<RwLock<Option<String>>>,
    _task: AbortOnDrop,
}

/// Starts the admin server; a bind failure is logged and the agent runs on
/// without it.
fn start_admin(
    settings: &config::AdminSettings,
    board: StatusBoard,
    info: Arc<RwLock<AgentInfo>>,
) -> Option<AdminServer> {
    if settings.token.is_none() && !settings.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %settings.listen,
            "The admin server listens beyond loopback without a token; set admin.token."
        );
    }
    match admin::bind(settings.listen) {
        Ok(listener) => {
            let address = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(address = %address, "Admin server listening.");
            let token = Arc::new(RwLock::new(settings.token.clone()));
            let state = AdminState {
                board,
                info,
                token: Arc::clone(&token),
                unauthenticated_ready: Arc::default(),
            };
            Some(AdminServer {
                listen: settings.listen,
                token,
                _task: AbortOnDrop(tokio::spawn(admin::serve(listener, state))),
            })
        }
        Err(error) => {
            tracing::error!(
                listen = %settings.listen,
                error = %error,
                "The admin server cannot listen; the agent runs without it."
            );
            None
        }
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn watched_files_of(plan: &Plan, config_path: &Path) -> Vec<PathBuf> {
    let mut files = vec![config_path.to_owned()];
    files.extend(plan.plugins.values().filter_map(|p| match &p.location {
        PluginLocation::File(path) => Some(path.clone()),
        PluginLocation::Builtin(_) => None,
    }));
    files
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What a configuration reload changed.
#[derive(Debug, Default)]
struct ReloadSummary {
    started: Vec<String>,
    restarted: Vec<String>,
    stopped: Vec<String>,
    plugins: Vec<String>,
    admin: bool,
    telemetry: bool,
}

impl ReloadSummary {
    fn is_empty(&self) -> bool {
        self.started.is_empty()
            && self.restarted.is_empty()
            && self.stopped.is_empty()
            && self.plugins.is_empty()
            && !self.admin
            && !self.telemetry
    }
}
