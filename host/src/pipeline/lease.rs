//! Leases in the lake: how `run` replicas of one config share the work
//! without a database, a broker or static shard numbers.
//!
//! Owns: the lease protocol on one object per series
//! (`_cryptolake/leases/<pipeline>/<series hash>.json`) and each replica's
//! heartbeat (`_cryptolake/replicas/<replica>.json`). A replica claims a
//! series by creating its lease with `If-None-Match: *`, or by replacing a
//! released or expired one with `If-Match: <etag>`; it renews what it holds
//! with `If-Match` before the lease expires, and releases by replacing the
//! lease with a released one (again `If-Match`), so no write ever clobbers
//! another holder's: a lost race is a refused request, never two holders.
//!
//! **Expiry never reads a clock of another machine.** A lease is expired
//! when the replica looking at it has seen the same version of it, on its
//! own monotonic clock, for a whole lease duration (as Kubernetes' leader
//! election judges its lease records). Every renewal writes a new version,
//! so a live holder is never taken over, and a holder whose wall clock is
//! minutes off neither extends nor shortens its lease. The holder stops
//! starting work in a series once its last successful renewal was sent
//! longer ago than the duration less one renewal period: before anyone
//! else can have seen that version for a whole duration.
//!
//! It must not decide what to process; `shared_work` does, with what this
//! module lends it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::LeaseSettings;
use crate::lake::{Lake, LakeError, Version, WriteMode, layout};

/// What a lease object says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseBody {
    /// The pipeline.
    pub pipeline: String,
    /// The series, readable (`binance/spot/klines/BTCUSDT/1m`).
    pub series: String,
    /// The replica process that wrote it.
    pub holder: String,
    /// Its host.
    pub host: String,
    /// Held, or given up.
    pub state: LeaseState,
    /// Renewals since it was claimed: each renewal is a new version.
    pub renewals: u64,
    /// The lease duration its holder works with, in milliseconds.
    pub duration_ms: u64,
    /// When it was written, by its holder's clock (for people; expiry does
    /// not read it).
    pub written_at: String,
}

/// A lease's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseState {
    /// Its holder works on the series.
    Held,
    /// Its holder did all it had planned in the series and let it go.
    Finished,
    /// Its holder stopped with work left (shutdown, a lost renewal).
    Released,
}

/// A replica's heartbeat, at `_cryptolake/replicas/<replica>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The replica process (`<replica>-<instance>`).
    pub replica: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The agent's version.
    pub version: String,
    /// When it started (its clock).
    pub started_at: String,
    /// When it wrote this (its clock).
    pub heartbeat_at: String,
    /// Running, or stopped after a clean shutdown.
    pub state: ReplicaState,
    /// The lease duration it works with, in milliseconds.
    pub lease_duration_ms: u64,
    /// The leases it holds.
    pub leases: Vec<HeldLease>,
}

/// Whether a replica runs, as its heartbeat says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaState {
    /// It runs and renews.
    Running,
    /// It shut down cleanly, its leases released.
    Stopped,
}

/// One lease a replica holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldLease {
    /// The pipeline.
    pub pipeline: String,
    /// The series.
    pub series: String,
    /// The lease's key in the lake.
    pub key: String,
    /// Since when (this replica's clock).
    pub since: String,
}

/// A series this replica holds, lent to the work on it.
#[derive(Debug)]
pub struct Hold {
    key: String,
    pipeline: String,
    series: String,
    /// Milliseconds after the keeper's epoch until which new work may
    /// start; zero once the lease is lost.
    valid_until_ms: AtomicU64,
    released: AtomicBool,
}

/// What a claim got.
#[derive(Debug)]
pub enum Claim {
    /// The series is this replica's until released.
    Held {
        /// The hold, to check and release.
        hold: Arc<Hold>,
        /// The lease was written since `listed` was taken: another replica
        /// may have done some of the series' work meanwhile.
        changed: bool,
        /// The holder whose expired lease was taken over, if any.
        took_over: Option<String>,
    },
    /// Another replica holds it.
    Busy {
        /// Who, as its lease says.
        holder: String,
    },
}

struct Held {
    hold: Arc<Hold>,
    version: Version,
    renewals: u64,
    since: String,
}

struct Observed {
    version: Version,
    since: Instant,
}

#[derive(Default)]
struct State {
    held: HashMap<String, Held>,
    observed: HashMap<String, Observed>,
}

/// This process's leases, renewed in the background.
pub struct Leases {
    lake: Lake,
    settings: LeaseSettings,
    replica: String,
    host: String,
    started_at: String,
    epoch: Instant,
    /// Shifts this process's wall clock, for the clock-skew tests
    /// (`CRYPTOLAKE_TEST_CLOCK_SKEW`, seconds); expiry must not depend on it.
    skew: time::Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Leases {
    /// Leases for this process on `lake`. Nothing is requested yet; start
    /// the renewals with [`Leases::keep`].
    pub fn new(lake: Lake, settings: LeaseSettings) -> Arc<Self> {
        let skew = std::env::var("CRYPTOLAKE_TEST_CLOCK_SKEW")
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .map(time::Duration::seconds)
            .unwrap_or(time::Duration::ZERO);
        let replica = format!("{}-{:08x}", settings.replica, fastrand::u32(..));
        let host = crate::config::kernel_host_name().unwrap_or_else(|| settings.replica.clone());
        Arc::new(Self {
            lake,
            replica,
            host,
            started_at: wall_clock(skew),
            epoch: Instant::now(),
            skew,
            settings,
            state: Mutex::new(State::default()),
        })
    }

    /// This replica process's name: the configured replica and a random
    /// instance suffix.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn wall_clock(&self) -> String {
        wall_clock(self.skew)
    }

    fn duration_ms(&self) -> u64 {
        u64::try_from(self.settings.duration.as_millis()).unwrap_or(u64::MAX)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether new work may start under `hold`: the lease is held and its
    /// last renewal recent enough that nobody can have taken it over.
    pub fn is_live(&self, hold: &Hold) -> bool {
        !hold.released.load(Ordering::SeqCst)
            && self.elapsed_ms() < hold.valid_until_ms.load(Ordering::SeqCst)
    }

    /// The versions of `pipeline`'s leases now: one listing, taken before
    /// the lake is reconciled, so a claim can tell whether someone held the
    /// series since.
    pub async fn listed(&self, pipeline: &str) -> Result<HashMap<String, Version>, LakeError> {
        Ok(self
            .lake
            .list_versions(&layout::lease_prefix(pipeline))
            .await?
            .into_iter()
            .map(|listed| (listed.key, listed.version))
            .collect())
    }

    fn body(&self, pipeline: &str, series: &str, state: LeaseState, renewals: u64) -> Vec<u8> {
        let body = LeaseBody {
            pipeline: pipeline.to_owned(),
            series: series.to_owned(),
            holder: self.replica.clone(),
            host: self.host.clone(),
            state,
            renewals,
            duration_ms: self.duration_ms(),
            written_at: self.wall_clock(),
        };
        serde_json::to_vec_pretty(&body).unwrap_or_default()
    }

    /// Until when (keeper epoch, ms) work may start under a lease whose
    /// last renewal was sent at `sent_ms`.
    fn valid_until(&self, sent_ms: u64) -> u64 {
        let margin = self
            .settings
            .duration
            .saturating_sub(self.settings.renew_every);
        sent_ms.saturating_add(u64::try_from(margin.as_millis()).unwrap_or(u64::MAX))
    }

    /// Tries to claim `series` of `pipeline` (its lease at `key`). `listed`
    /// is the version [`Leases::listed`] saw, `None` when there was none.
    pub async fn claim(
        &self,
        pipeline: &str,
        key: &str,
        series: &str,
        listed: Option<&Version>,
    ) -> Result<Claim, LakeError> {
        let sent = self.elapsed_ms();
        let current = self.lake.get_versioned(key).await?;
        let (mode, changed, took_over) = match &current {
            None => (WriteMode::Create, listed.is_some(), None),
            Some((bytes, version)) => {
                let body: Option<LeaseBody> = serde_json::from_slice(bytes).ok();
                // ETags only: a listing carries no version id.
                let changed = listed.is_none_or(|l| l.etag.is_none() || l.etag != version.etag);
                match body {
                    Some(body) if body.state != LeaseState::Held => {
                        (WriteMode::Replace(version.clone()), changed, None)
                    }
                    other => {
                        let holder = other
                            .map(|b| b.holder)
                            .unwrap_or_else(|| "an unreadable lease".to_owned());
                        if !self.expired(key, version) {
                            return Ok(Claim::Busy { holder });
                        }
                        (WriteMode::Replace(version.clone()), true, Some(holder))
                    }
                }
            }
        };
        let written = self
            .lake
            .put_versioned(key, self.body(pipeline, series, LeaseState::Held, 0), mode)
            .await?;
        let Some(version) = written else {
            return Ok(Claim::Busy {
                holder: "another replica".to_owned(),
            });
        };
        let hold = Arc::new(Hold {
            key: key.to_owned(),
            pipeline: pipeline.to_owned(),
            series: series.to_owned(),
            valid_until_ms: AtomicU64::new(self.valid_until(sent)),
            released: AtomicBool::new(false),
        });
        let mut state = self.state();
        state.observed.remove(key);
        state.held.insert(
            key.to_owned(),
            Held {
                hold: Arc::clone(&hold),
                version,
                renewals: 0,
                since: self.wall_clock(),
            },
        );
        Ok(Claim::Held {
            hold,
            changed,
            took_over,
        })
    }

    /// Whether another holder's lease at `key`, now at `version`, has gone
    /// unrenewed for a whole duration as this replica has watched it.
    fn expired(&self, key: &str, version: &Version) -> bool {
        let mut state = self.state();
        let observed = state
            .observed
            .entry(key.to_owned())
            .or_insert_with(|| Observed {
                version: version.clone(),
                since: Instant::now(),
            });
        if observed.version != *version {
            *observed = Observed {
                version: version.clone(),
                since: Instant::now(),
            };
        }
        observed.since.elapsed() >= self.settings.duration
    }

    /// Replaces `hold`'s lease, if it is still at `version`, with one in
    /// `state`; the version written, `None` when another replica wrote it
    /// since.
    async fn replace(
        &self,
        hold: &Hold,
        version: Version,
        state: LeaseState,
        renewals: u64,
    ) -> Result<Option<Version>, LakeError> {
        let body = self.body(&hold.pipeline, &hold.series, state, renewals);
        self.lake
            .put_versioned(&hold.key, body, WriteMode::Replace(version))
            .await
    }

    /// Lets `hold`'s series go: `finished` when all planned work in it is
    /// done, else released for another replica to continue at once.
    pub async fn release(&self, hold: &Hold, finished: bool) {
        if hold.released.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(held) = self.state().held.remove(&hold.key) else {
            return;
        };
        let state = if finished {
            LeaseState::Finished
        } else {
            LeaseState::Released
        };
        match self
            .replace(hold, held.version, state, held.renewals + 1)
            .await
        {
            Ok(Some(_)) => tracing::debug!(
                pipeline = %hold.pipeline,
                series = %hold.series,
                finished,
                "Released the series' lease."
            ),
            Ok(None) => tracing::warn!(
                pipeline = %hold.pipeline,
                series = %hold.series,
                "The series' lease had already been taken over when it was to be released."
            ),
            Err(error) => tracing::warn!(
                pipeline = %hold.pipeline,
                series = %hold.series,
                error = %error,
                "Could not release the series' lease; it expires by itself."
            ),
        }
    }

    /// Renews every held lease once, and writes the heartbeat.
    async fn renew(&self) {
        let due: Vec<(Version, u64, Arc<Hold>)> = self
            .state()
            .held
            .values()
            .map(|held| {
                (
                    held.version.clone(),
                    held.renewals + 1,
                    Arc::clone(&held.hold),
                )
            })
            .collect();
        for (version, renewals, hold) in due {
            let sent = self.elapsed_ms();
            let renewed = self
                .replace(&hold, version, LeaseState::Held, renewals)
                .await;
            let mut state = self.state();
            match renewed {
                Ok(Some(version)) => {
                    if let Some(held) = state.held.get_mut(&hold.key) {
                        held.version = version;
                        held.renewals = renewals;
                        hold.valid_until_ms
                            .store(self.valid_until(sent), Ordering::SeqCst);
                    }
                }
                Ok(None) => {
                    state.held.remove(&hold.key);
                    hold.released.store(true, Ordering::SeqCst);
                    tracing::warn!(
                        pipeline = %hold.pipeline,
                        series = %hold.series,
                        "Lost the series' lease to another replica (it was not renewed in time); no new work of it starts here."
                    );
                }
                Err(error) => tracing::warn!(
                    pipeline = %hold.pipeline,
                    series = %hold.series,
                    error = %error,
                    "Could not renew the series' lease; trying again at the next renewal."
                ),
            }
        }
        self.beat(ReplicaState::Running).await;
    }

    /// The leases held now.
    pub fn held(&self) -> Vec<HeldLease> {
        let mut held: Vec<HeldLease> = self
            .state()
            .held
            .values()
            .map(|held| HeldLease {
                pipeline: held.hold.pipeline.clone(),
                series: held.hold.series.clone(),
                key: held.hold.key.clone(),
                since: held.since.clone(),
            })
            .collect();
        held.sort_by(|a, b| a.key.cmp(&b.key));
        held
    }

    /// This replica's heartbeat now.
    pub fn heartbeat(&self, state: ReplicaState) -> Heartbeat {
        Heartbeat {
            replica: self.replica.clone(),
            host: self.host.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: self.started_at.clone(),
            heartbeat_at: self.wall_clock(),
            state,
            lease_duration_ms: self.duration_ms(),
            leases: self.held(),
        }
    }

    async fn beat(&self, state: ReplicaState) {
        let bytes = serde_json::to_vec_pretty(&self.heartbeat(state)).unwrap_or_default();
        if let Err(error) = self
            .lake
            .put(&layout::replica_key(&self.replica), bytes)
            .await
        {
            tracing::warn!(replica = %self.replica, error = %error, "Could not write this replica's heartbeat.");
        }
    }

    /// Writes the first heartbeat, removes heartbeats the store last wrote
    /// more than a day before it (replicas long gone), and renews held
    /// leases every `renew_every` until the task is aborted.
    pub fn keep(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let leases = Arc::clone(self);
        tokio::spawn(async move {
            leases.beat(ReplicaState::Running).await;
            leases.forget_gone_replicas().await;
            tracing::info!(
                replica = %leases.replica,
                duration_ms = leases.duration_ms(),
                renew_every_ms = leases.settings.renew_every.as_millis() as u64,
                "Sharing work with other replicas through leases in the lake."
            );
            let mut ticks = tokio::time::interval(leases.settings.renew_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                leases.renew().await;
            }
        })
    }

    /// Heartbeats older than a day by the store's own clock, compared with
    /// the time the store gave this replica's first one.
    async fn forget_gone_replicas(&self) {
        let Ok(listed) = self.lake.list_versions(layout::REPLICAS_PREFIX).await else {
            return;
        };
        let mine = layout::replica_key(&self.replica);
        let Some(now) = listed
            .iter()
            .find(|l| l.key == mine)
            .and_then(|l| l.last_modified)
        else {
            return;
        };
        for gone in listed.iter().filter(|l| {
            l.last_modified
                .is_some_and(|at| now - at > time::Duration::days(1))
        }) {
            let _ = self.lake.delete(&gone.key).await;
        }
    }

    /// Releases every lease still held (with work left) and marks the
    /// heartbeat stopped: what a replica does on SIGTERM, after its runs
    /// ended.
    pub async fn shutdown(&self) {
        let holds: Vec<Arc<Hold>> = self
            .state()
            .held
            .values()
            .map(|held| Arc::clone(&held.hold))
            .collect();
        for hold in &holds {
            self.release(hold, false).await;
        }
        if !holds.is_empty() {
            tracing::info!(
                replica = %self.replica,
                released = holds.len(),
                "Released this replica's leases for the others to continue."
            );
        }
        self.beat(ReplicaState::Stopped).await;
    }

    /// How long to wait before looking again at series others hold: a
    /// quarter of the renewal period, between 250 ms and 2 s, so a series
    /// released at the end of another replica's run is picked up soon,
    /// for one `GET` per waiting series each time.
    pub fn poll_every(&self) -> Duration {
        (self.settings.renew_every / 4).clamp(Duration::from_millis(250), Duration::from_secs(2))
    }
}

/// Now by this process's wall clock (shifted by `skew` in the clock-skew
/// tests), for people reading leases and heartbeats.
fn wall_clock(skew: time::Duration) -> String {
    crate::period::rfc3339(time::OffsetDateTime::now_utc() + skew)
}

/// A replica as the lake shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// Its last heartbeat.
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    /// When the store wrote that heartbeat (the store's clock).
    pub last_heartbeat: Option<String>,
    /// Seconds since then, by the clock of the machine asking.
    pub heartbeat_age_s: Option<i64>,
    /// Running, and heard from within two lease durations.
    pub live: bool,
}

/// Every replica that wrote a heartbeat into `lake`, by name.
pub async fn replicas(lake: &Lake) -> Result<Vec<ReplicaStatus>, LakeError> {
    let now = time::OffsetDateTime::now_utc();
    let mut replicas = Vec::new();
    for listed in lake.list_versions(layout::REPLICAS_PREFIX).await? {
        let Some(bytes) = lake.get(&listed.key).await? else {
            continue;
        };
        let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(&bytes) else {
            continue;
        };
        let age = listed.last_modified.map(|at| (now - at).whole_seconds());
        let limit = 2 * i64::try_from(heartbeat.lease_duration_ms / 1000).unwrap_or(i64::MAX);
        replicas.push(ReplicaStatus {
            live: heartbeat.state == ReplicaState::Running
                && age.is_some_and(|age| age <= limit.max(1)),
            last_heartbeat: listed.last_modified.map(crate::period::rfc3339),
            heartbeat_age_s: age,
            heartbeat,
        });
    }
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(replica: &str) -> LeaseSettings {
        LeaseSettings {
            duration: Duration::from_millis(400),
            renew_every: Duration::from_millis(100),
            replica: replica.into(),
        }
    }

    async fn claim(leases: &Leases, listed: Option<&Version>) -> Claim {
        leases
            .claim(
                "p",
                "_cryptolake/leases/p/s.json",
                "binance/spot/klines/BTCUSDT/1m",
                listed,
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_expiry_by_what_the_observer_saw() {
        let lake = crate::lake::fixtures::memory_lake();
        let (a, b) = (
            Leases::new(lake.clone(), settings("a")),
            Leases::new(lake.clone(), settings("b")),
        );
        let Claim::Held {
            hold,
            changed,
            took_over,
        } = claim(&a, None).await
        else {
            panic!("a free series is claimed");
        };
        assert!(!changed && took_over.is_none());
        assert!(a.is_live(&hold));
        assert_eq!(a.held().len(), 1);
        // Renewed, the lease stays a's however long b watches.
        for _ in 0..6 {
            assert!(
                matches!(claim(&b, None).await, Claim::Busy { ref holder } if holder == a.replica())
            );
            a.renew().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(a.is_live(&hold));
        // a stops renewing: once b has seen one version for a whole
        // duration it takes over, and a has stopped starting work before.
        let started = Instant::now();
        let taken = loop {
            match claim(&b, None).await {
                Claim::Busy { .. } => tokio::time::sleep(Duration::from_millis(50)).await,
                held => break held,
            }
        };
        assert!(started.elapsed() >= Duration::from_millis(400));
        let Claim::Held {
            took_over, changed, ..
        } = taken
        else {
            unreachable!()
        };
        assert_eq!(took_over.as_deref(), Some(a.replica()));
        assert!(changed);
        assert!(
            !a.is_live(&hold),
            "a must not start work on a lease it may have lost"
        );
        // a's next renewal is refused: it knows it lost the series.
        a.renew().await;
        assert!(a.held().is_empty());
    }

    #[tokio::test]
    async fn a_release_hands_the_series_over_at_once() {
        let lake = crate::lake::fixtures::memory_lake();
        let (a, b) = (
            Leases::new(lake.clone(), settings("a")),
            Leases::new(lake.clone(), settings("b")),
        );
        let listed = b.listed("p").await.unwrap();
        assert!(listed.is_empty());
        let Claim::Held { hold, .. } = claim(&a, None).await else {
            panic!("claimed");
        };
        a.release(&hold, true).await;
        assert!(!a.is_live(&hold));
        let Claim::Held {
            changed,
            took_over,
            hold,
        } = claim(&b, None).await
        else {
            panic!("a released series is free at once");
        };
        assert!(changed, "a worked on it after b listed the leases");
        assert!(took_over.is_none());
        let listed = a.listed("p").await.unwrap();
        b.release(&hold, true).await;
        let now = a.listed("p").await.unwrap();
        let version = now.values().next().cloned();
        assert_ne!(listed.values().next().cloned(), version);
        let Claim::Held { changed, .. } = claim(&a, version.as_ref()).await else {
            panic!("claimed again");
        };
        assert!(!changed, "nobody wrote it since it was listed");
        // The heartbeat names the replica and what it holds.
        a.beat(ReplicaState::Running).await;
        let replicas = replicas(&lake).await.unwrap();
        let mine = replicas
            .iter()
            .find(|r| r.heartbeat.replica == a.replica())
            .expect("a's heartbeat");
        assert!(mine.live);
        assert_eq!(mine.heartbeat.leases.len(), 1);
    }
}
