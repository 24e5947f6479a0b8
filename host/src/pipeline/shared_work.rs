//! A run's work shared with other replicas: a series at a time, each under
//! its lease (`[leases]`).
//!
//! Owns: grouping the planned artifacts by series, claiming the next series
//! only when the work of the previous one has started (so replicas that
//! start together spread over the series instead of one taking all),
//! checking again what a series needs when its lease was written since the
//! run looked at the lake, waiting for series other replicas hold until
//! they finish, release or die, and releasing each series when its work
//! ends. It must not process artifacts or speak the lease protocol itself
//! (`lease` does).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::Stream;

use super::lease::{Claim, Hold, Leases};
use super::reconcile::{Prior, Reason};
use super::{PipelineRun, shard};
use crate::lake::{Version, layout};
use crate::wit::Artifact;

/// One planned artifact, as reconcile plans it (`Planned::todo`).
pub(super) type Todo = (Artifact, Reason, Prior);

/// The planned work of one series.
struct SeriesWork {
    key: String,
    label: String,
    items: Vec<Todo>,
}

/// A claimed series whose work is under way: released finished when its
/// last artifact ends.
pub(super) struct Ticket {
    hold: Arc<Hold>,
    remaining: AtomicUsize,
    /// Some of its archives were left undone (the lease could not be kept
    /// renewed): released for others, not finished, when the rest end.
    abandoned: AtomicBool,
}

impl Ticket {
    fn new(hold: Arc<Hold>, archives: usize) -> Self {
        Self {
            hold,
            remaining: AtomicUsize::new(archives),
            abandoned: AtomicBool::new(false),
        }
    }

    /// One archive of the series ended. `Some(finished)` when it was the
    /// last: the lease is to be released, as finished unless some archives
    /// were abandoned.
    fn end_one(&self) -> Option<bool> {
        (self.remaining.fetch_sub(1, Ordering::SeqCst) == 1)
            .then(|| !self.abandoned.load(Ordering::SeqCst))
    }

    /// `left` archives will not start here (the lease could not be kept).
    /// True when nothing is in flight either: release the lease now.
    fn abandon(&self, left: usize) -> bool {
        self.abandoned.store(true, Ordering::SeqCst);
        self.remaining.fetch_sub(left, Ordering::SeqCst) == left
    }

    /// Whether archives of it are still to end.
    fn unfinished(&self) -> bool {
        self.remaining.load(Ordering::SeqCst) > 0
    }
}

/// The shared part of one run.
pub(super) struct SharedWork {
    leases: Arc<Leases>,
    pipeline: String,
    listed: HashMap<String, Version>,
    tickets: Mutex<Vec<Arc<Ticket>>>,
    /// Planned here, then found done, quarantined or taken by another
    /// replica.
    elsewhere: AtomicUsize,
}

impl SharedWork {
    /// The shared part of a run of `pipeline`; `listed` is what
    /// [`Leases::listed`] gave before the lake was reconciled.
    pub(super) fn new(
        leases: Arc<Leases>,
        pipeline: &str,
        listed: HashMap<String, Version>,
    ) -> Arc<Self> {
        Arc::new(Self {
            leases,
            pipeline: pipeline.to_owned(),
            listed,
            tickets: Mutex::new(Vec::new()),
            elsewhere: AtomicUsize::new(0),
        })
    }

    /// The planned artifacts this replica does, as their series are
    /// claimed; each with the ticket to hand to [`SharedWork::done`].
    pub(super) fn claimed(
        self: &Arc<Self>,
        run: PipelineRun,
        todo: Vec<Todo>,
    ) -> impl Stream<Item = (Todo, Arc<Ticket>)> + Send + 'static {
        let queue = self.by_series(todo);
        let state = Claiming {
            shared: Arc::clone(self),
            run,
            queue,
            waiting: Vec::new(),
            waiting_said: 0,
            current: None,
        };
        futures::stream::unfold(state, |mut state| async move {
            let next = state.next().await?;
            Some((next, state))
        })
    }

    /// Artifacts planned here that another replica did or holds.
    pub(super) fn elsewhere(&self) -> usize {
        self.elsewhere.load(Ordering::SeqCst)
    }

    /// This replica's name.
    pub(super) fn replica(&self) -> &str {
        self.leases.replica()
    }

    /// One artifact of `ticket`'s series has ended.
    pub(super) async fn done(&self, ticket: &Ticket) {
        if let Some(finished) = ticket.end_one() {
            self.leases.release(&ticket.hold, finished).await;
        }
    }

    /// The run has ended: series with work left (the agent is stopping, or
    /// a lease was lost) are released for another replica to continue.
    pub(super) async fn finish(&self) {
        let tickets = std::mem::take(
            &mut *self
                .tickets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut released = 0;
        for ticket in tickets {
            if ticket.unfinished() {
                self.leases.release(&ticket.hold, false).await;
                released += 1;
            }
        }
        if released > 0 {
            tracing::info!(
                pipeline = %self.pipeline,
                series = released,
                "Released the series with work left for the other replicas."
            );
        }
    }

    /// `todo` by series, in the order their first artifacts come, starting
    /// at a series that depends on this replica's name: replicas starting
    /// together begin at different series.
    fn by_series(&self, todo: Vec<Todo>) -> VecDeque<SeriesWork> {
        let mut index: HashMap<u64, usize> = HashMap::new();
        let mut series: Vec<SeriesWork> = Vec::new();
        for planned in todo {
            let hash = shard::series_hash(&planned.0.partition);
            let at = *index.entry(hash).or_insert_with(|| {
                series.push(SeriesWork {
                    key: layout::lease_key(&self.pipeline, hash),
                    label: shard::series_label(&planned.0.partition),
                    items: Vec::new(),
                });
                series.len() - 1
            });
            series[at].items.push(planned);
        }
        if !series.is_empty() {
            let start = fnv1a(self.leases.replica()) as usize % series.len();
            series.rotate_left(start);
        }
        series.into()
    }
}

/// A stable number from a name (FNV-1a), to spread starting points.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

struct Claiming {
    shared: Arc<SharedWork>,
    run: PipelineRun,
    queue: VecDeque<SeriesWork>,
    waiting: Vec<SeriesWork>,
    /// How many waiting series the log last mentioned.
    waiting_said: usize,
    current: Option<(Arc<Ticket>, std::vec::IntoIter<Todo>)>,
}

impl Claiming {
    async fn next(&mut self) -> Option<(Todo, Arc<Ticket>)> {
        loop {
            if self.run.stop.is_stopped() {
                return None;
            }
            if let Some((ticket, items)) = &mut self.current {
                if self.shared.leases.is_live(&ticket.hold) {
                    if let Some(item) = items.next() {
                        return Some((item, Arc::clone(ticket)));
                    }
                } else {
                    let left = items.len();
                    if left > 0 {
                        self.shared.elsewhere.fetch_add(left, Ordering::SeqCst);
                        // The undispatched ones will never end here.
                        if ticket.abandon(left) {
                            // Nothing in flight either: let it go now.
                            self.shared.leases.release(&ticket.hold, false).await;
                        }
                    }
                }
                self.current = None;
            }
            if let Some(series) = self.queue.pop_front() {
                self.start(series).await;
                continue;
            }
            if self.waiting.is_empty() {
                return None;
            }
            // Said when the number changes, not at every look.
            if self.waiting.len() != self.waiting_said {
                self.waiting_said = self.waiting.len();
                tracing::info!(
                    pipeline = %self.shared.pipeline,
                    series = self.waiting.len(),
                    "Waiting for series other replicas hold: they are taken over if their holders stop renewing."
                );
            }
            let pause = self.shared.leases.poll_every();
            let until = tokio::time::Instant::now() + pause;
            while tokio::time::Instant::now() < until {
                if self.run.stop.is_stopped() {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200).min(pause)).await;
            }
            self.queue.extend(self.waiting.drain(..));
        }
    }

    /// Claims `series`, or puts it on the waiting list when another replica
    /// holds it.
    async fn start(&mut self, series: SeriesWork) {
        let shared = &self.shared;
        let claim = shared
            .leases
            .claim(
                &shared.pipeline,
                &series.key,
                &series.label,
                shared.listed.get(&series.key),
            )
            .await;
        let claimed = match claim {
            Ok(Claim::Held {
                hold,
                changed,
                took_over,
            }) => {
                if let Some(holder) = took_over {
                    tracing::warn!(
                        pipeline = %shared.pipeline,
                        series = %series.label,
                        holder = %holder,
                        "Took over a series whose holder stopped renewing its lease."
                    );
                }
                Some((hold, changed))
            }
            Ok(Claim::Busy { holder }) => {
                tracing::debug!(
                    pipeline = %shared.pipeline,
                    series = %series.label,
                    holder = %holder,
                    "Another replica holds this series; looking again later."
                );
                None
            }
            Err(error) => {
                tracing::warn!(
                    pipeline = %shared.pipeline,
                    series = %series.label,
                    error = %error,
                    "Could not claim the series' lease; trying again later."
                );
                None
            }
        };
        let Some((hold, changed)) = claimed else {
            self.waiting.push(series);
            return;
        };
        let planned = series.items.len();
        let items = if changed {
            self.recheck(series.items).await
        } else {
            series.items
        };
        shared
            .elsewhere
            .fetch_add(planned - items.len(), Ordering::SeqCst);
        if items.is_empty() {
            shared.leases.release(&hold, true).await;
            return;
        }
        tracing::debug!(
            pipeline = %shared.pipeline,
            series = %series.label,
            artifacts = items.len(),
            "Claimed a series."
        );
        let ticket = Arc::new(Ticket::new(hold, items.len()));
        shared
            .tickets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::clone(&ticket));
        self.current = Some((ticket, items.into_iter()));
    }

    /// What a series still needs now that this replica holds it: another
    /// replica worked on it since the run's reconcile. One listing of the
    /// series' part of the manifest tells which planned archives were
    /// committed meanwhile (an entry that is new, or not the version
    /// reconcile read); those are dropped, the rest keep their plan. A
    /// failed listing keeps the plan: the manifest's conditional writes
    /// still stop a second commit.
    async fn recheck(&self, items: Vec<Todo>) -> Vec<Todo> {
        let pipeline = &self.shared.pipeline;
        let keys: Vec<String> = items
            .iter()
            .map(|(artifact, _, _)| layout::manifest_key(pipeline, &artifact.key))
            .collect();
        let prefix = common_prefix(&keys);
        let listed = match self.run.lake.list_versions(prefix).await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(
                    pipeline = %self.shared.pipeline,
                    error = %error,
                    "Could not check again what a series needs; keeping the plan."
                );
                return items;
            }
        };
        let now: HashMap<String, Version> =
            listed.into_iter().map(|l| (l.key, l.version)).collect();
        items
            .into_iter()
            .zip(keys)
            .filter(|((_, _, prior), key)| match now.get(key) {
                None => true,
                // ETags only: a listing carries no version id.
                Some(version) => prior
                    .entry_version
                    .as_ref()
                    .is_some_and(|read| read.etag.is_some() && read.etag == version.etag),
            })
            .map(|(planned, _)| planned)
            .collect()
    }
}

/// The longest prefix all `keys` share, cut back to a `/`.
fn common_prefix(keys: &[String]) -> &str {
    let Some(first) = keys.first() else {
        return "";
    };
    let mut length = first.len();
    for key in &keys[1..] {
        length = first
            .bytes()
            .zip(key.bytes())
            .take(length)
            .take_while(|(a, b)| a == b)
            .count();
    }
    match first[..length].rfind('/') {
        Some(slash) => &first[..=slash],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn held() -> Arc<Hold> {
        let leases = Leases::new(
            crate::lake::fixtures::memory_lake(),
            crate::config::LeaseSettings {
                duration: std::time::Duration::from_secs(60),
                renew_every: std::time::Duration::from_secs(20),
                replica: "r".into(),
            },
        );
        match leases
            .claim("p", "_cryptolake/leases/p/s.json", "s", None)
            .await
            .unwrap()
        {
            Claim::Held { hold, .. } => hold,
            Claim::Busy { .. } => unreachable!("a fresh lake"),
        }
    }

    #[tokio::test]
    async fn a_series_is_finished_only_when_every_archive_of_it_ended_here() {
        let ticket = Ticket::new(held().await, 3);
        assert_eq!(ticket.end_one(), None);
        assert_eq!(ticket.end_one(), None);
        assert!(ticket.unfinished());
        assert_eq!(ticket.end_one(), Some(true));
        assert!(!ticket.unfinished());
    }

    #[tokio::test]
    async fn an_abandoned_series_is_released_for_others_not_finished() {
        // Five planned, two in flight when the lease could not be kept.
        let ticket = Ticket::new(held().await, 5);
        assert_eq!(ticket.end_one(), None);
        assert!(!ticket.abandon(2), "two are still in flight");
        assert_eq!(ticket.end_one(), None);
        assert_eq!(ticket.end_one(), Some(false));
        // Nothing in flight: released at once.
        let idle = Ticket::new(held().await, 2);
        assert!(idle.abandon(2));
        assert!(!idle.unfinished());
    }

    #[test]
    fn the_common_prefix_ends_at_a_directory() {
        let keys = |k: &[&str]| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            common_prefix(&keys(&[
                "m/p/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip.json",
                "m/p/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-02.zip.json",
            ])),
            "m/p/data/spot/daily/klines/BTCUSDT/1m/"
        );
        assert_eq!(common_prefix(&keys(&["a/b/c.json"])), "a/b/");
        assert_eq!(common_prefix(&keys(&["a/x", "b/x"])), "");
        assert_eq!(common_prefix(&[]), "");
    }
}
