//! When to collect: containerd's GC scheduler (`plugins/gc/scheduler.go`).
//!
//! The scheduler counts the metadata store's mutations (every committed
//! write calls back, saying whether a deletion happened since the last
//! collection) and collects:
//!
//! - soon after a deletion (`deletion_threshold` 0: the first deletion when
//!   nothing is scheduled; otherwise at the next tick), so a burst of
//!   deletions — `ctr images rm a b c` — is one collection, not three;
//! - at the next tick once `mutation_threshold` writes have happened;
//! - at once when asked (`schedule_and_wait`: `sync` deletes), answering
//!   every waiter with that collection's stats;
//! - on a schedule: after each collection the next tick is set so that
//!   collection pauses take at most `pause_threshold` of real time; a tick
//!   with nothing to do only reschedules.
//!
//! Collections run one at a time on the blocking pool; events arriving
//! meanwhile are counted for the next one. An event older than the start of
//! the last collection is ignored: that collection saw its write.

use super::collect::{collect, Cleanup, GcStats};
use crate::events::Exchange;
use crate::metrics::daemon::GcMetrics;
use berth_core::{Error, Result};
use berth_store::MetadataStore;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// containerd's scheduler settings, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// The largest share of real time collection pauses may take (0–0.5).
    pub pause_threshold: f64,
    /// Deletions that force a collection at once (0: the first deletion
    /// schedules one if none is scheduled).
    pub deletion_threshold: u32,
    /// Writes after which the next tick collects (0: never by count).
    pub mutation_threshold: u32,
    /// Delay from a trigger to its collection.
    pub schedule_delay: Duration,
    /// Delay of the first collection after startup.
    pub startup_delay: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            pause_threshold: 0.02,
            deletion_threshold: 0,
            mutation_threshold: 100,
            schedule_delay: Duration::ZERO,
            startup_delay: Duration::from_millis(100),
        }
    }
}

/// The least average collection time the interval is computed from, so a
/// fast collector is not rescheduled in a busy loop (containerd's).
const MINIMUM_GC_TIME: Duration = Duration::from_millis(5);

/// The interval before the first collection has measured anything.
const FIRST_INTERVAL: Duration = Duration::from_secs(1);

enum Event {
    /// A committed write; `dirty` if something was deleted since the last
    /// collection.
    Mutation { at: Instant, dirty: bool },
    /// Collect now and tell `waiter` how it went.
    Trigger {
        waiter: oneshot::Sender<Result<GcStats>>,
    },
}

/// The running scheduler. Dropping the last handle stops it after the
/// collection in progress, if any.
pub struct GcScheduler {
    events: mpsc::UnboundedSender<Event>,
    cleanup: Arc<RwLock<Cleanup>>,
    config: SchedulerConfig,
    metrics: GcMetrics,
}

impl GcScheduler {
    /// Starts the scheduler on the current tokio runtime, collecting
    /// `store` and publishing removals to `events`. Fails outside a runtime.
    pub fn start(
        store: MetadataStore,
        events: Exchange,
        config: SchedulerConfig,
    ) -> Result<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::internal(format!("garbage collector needs a runtime: {e}")))?;
        let config = SchedulerConfig {
            pause_threshold: config.pause_threshold.clamp(0.0, 0.5),
            ..config
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // The store holds only a weak sender: the loop holds the store, and
        // must end when the last scheduler handle goes.
        let weak = tx.downgrade();
        store.register_mutation_callback(Box::new(move |dirty| {
            if let Some(tx) = weak.upgrade() {
                let _ = tx.send(Event::Mutation {
                    at: Instant::now(),
                    dirty,
                });
            }
        }));
        let cleanup = Arc::new(RwLock::new(Cleanup::default()));
        let metrics = GcMetrics::default();
        let worker = Worker {
            store,
            events,
            cleanup: cleanup.clone(),
            orphans_checked: false,
            metrics: metrics.clone(),
        };
        runtime.spawn(run(rx, worker, config.clone()));
        Ok(Arc::new(GcScheduler {
            events: tx,
            cleanup,
            config,
            metrics,
        }))
    }

    /// Sets what removes blob files and snapshots after a sweep.
    pub fn set_cleanup(&self, cleanup: Cleanup) {
        match self.cleanup.write() {
            Ok(mut guard) => *guard = cleanup,
            Err(poisoned) => *poisoned.into_inner() = cleanup,
        }
    }

    /// Sets only what removes snapshots after a sweep (the snapshots
    /// service's prune), leaving the rest of the cleanup as it is.
    pub fn set_snapshot_remover(&self, remover: super::SnapshotRemover) {
        match self.cleanup.write() {
            Ok(mut guard) => guard.snapshots = Some(remover),
            Err(poisoned) => poisoned.into_inner().snapshots = Some(remover),
        }
    }

    /// Runs a collection as soon as possible and waits for it:
    /// containerd's `ScheduleAndWait`, behind every `sync` delete.
    pub async fn schedule_and_wait(&self) -> Result<GcStats> {
        let (waiter, done) = oneshot::channel();
        self.events
            .send(Event::Trigger { waiter })
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// The collections' figures, for the metrics endpoint.
    pub fn metrics(&self) -> &GcMetrics {
        &self.metrics
    }

    /// The settings, as introspection shows them (containerd's export keys).
    pub fn exports(&self) -> HashMap<String, String> {
        let c = &self.config;
        HashMap::from([
            ("PauseThreshold".into(), c.pause_threshold.to_string()),
            ("DeletionThreshold".into(), c.deletion_threshold.to_string()),
            ("MutationThreshold".into(), c.mutation_threshold.to_string()),
            (
                "ScheduleDelay".into(),
                berth_core::goduration::format(c.schedule_delay),
            ),
        ])
    }
}

fn stopped() -> Error {
    Error::unavailable("garbage collector is not running: unavailable")
}

/// What a collection needs.
struct Worker {
    store: MetadataStore,
    events: Exchange,
    cleanup: Arc<RwLock<Cleanup>>,
    /// Whether a collection has checked every blob file for orphans yet
    /// (the first one with a content store does).
    orphans_checked: bool,
    /// Counts each collection.
    metrics: GcMetrics,
}

impl Worker {
    async fn collect(&mut self) -> Result<GcStats> {
        let store = self.store.clone();
        let events = self.events.clone();
        let cleanup = match self.cleanup.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let orphans = !self.orphans_checked && cleanup.content.is_some();
        let stats =
            crate::local::blocking(move || collect(&store, &cleanup, &events, orphans)).await;
        match &stats {
            Ok(s) => {
                let r = &s.report.removed;
                let removed = r.content.len() + r.snapshots.len() + r.images.len() + r.leases.len();
                let removed = removed as u64;
                self.metrics.collected(true, s.report.pause, removed);
            }
            Err(_) => self.metrics.collected(false, Duration::ZERO, 0),
        }
        let stats = stats?;
        self.orphans_checked |= orphans;
        Ok(stats)
    }
}

/// The scheduler's state between collections.
struct State {
    config: SchedulerConfig,
    next: Option<Instant>,
    last_start: Option<Instant>,
    interval: Duration,
    pause_sum: Duration,
    collections: u32,
    triggered: bool,
    deletions: u32,
    mutations: u32,
    waiters: Vec<oneshot::Sender<Result<GcStats>>>,
}

async fn run(mut rx: mpsc::UnboundedReceiver<Event>, mut worker: Worker, config: SchedulerConfig) {
    let mut state = State {
        next: (!config.startup_delay.is_zero()).then(|| Instant::now() + config.startup_delay),
        config,
        last_start: None,
        interval: FIRST_INTERVAL,
        pause_sum: Duration::ZERO,
        collections: 0,
        triggered: false,
        deletions: 0,
        mutations: 0,
        waiters: Vec::new(),
    };
    loop {
        let tick = async {
            match state.next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tick => {
                if !state.due() {
                    state.next = Some(Instant::now() + state.interval);
                    continue;
                }
            }
            event = rx.recv() => {
                match event {
                    Some(event) => state.receive(event),
                    None => break,
                }
                continue;
            }
        }
        let started = Instant::now();
        let result = worker.collect().await;
        state.collected(started, result);
    }
}

impl State {
    /// Whether a scheduled tick has anything to collect.
    fn due(&self) -> bool {
        let c = &self.config;
        self.triggered
            || self.last_start.is_none()
            || self.deletions > 0
            || (c.mutation_threshold > 0 && self.mutations >= c.mutation_threshold)
    }

    fn receive(&mut self, event: Event) {
        match event {
            Event::Mutation { at, dirty } => {
                if self.last_start.is_some_and(|start| start > at) {
                    return;
                }
                self.deletions += u32::from(dirty);
                self.mutations += 1;
            }
            Event::Trigger { waiter } => {
                self.waiters.push(waiter);
                self.triggered = true;
            }
        }
        let c = &self.config;
        let now = self.triggered
            || (c.deletion_threshold > 0 && self.deletions >= c.deletion_threshold)
            || (self.next.is_none()
                && ((c.deletion_threshold == 0 && self.deletions > 0)
                    || (c.mutation_threshold > 0 && self.mutations >= c.mutation_threshold)));
        if now {
            let soon = Instant::now() + c.schedule_delay;
            if self.next.is_none_or(|next| next > soon) {
                self.next = Some(soon);
            }
        }
    }

    fn collected(&mut self, started: Instant, result: Result<GcStats>) {
        self.last_start = Some(started);
        match &result {
            Ok(stats) => {
                self.pause_sum += stats.report.pause;
                self.collections += 1;
                self.triggered = false;
                self.deletions = 0;
                self.mutations = 0;
                self.interval = self.interval_after_success();
                self.next = Some(Instant::now() + self.interval);
            }
            Err(err) => {
                tracing::error!(error = %err, "garbage collection failed");
                self.next = Some(Instant::now() + self.interval + Duration::from_secs(1));
            }
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
    }

    /// The average pause divided by the pause threshold, minus the pause:
    /// collections then take at most that share of real time.
    fn interval_after_success(&self) -> Duration {
        let threshold = self.config.pause_threshold;
        if threshold <= 0.0 {
            return self.interval;
        }
        let average = (self.pause_sum / self.collections.max(1)).max(MINIMUM_GC_TIME);
        average.mul_f64(1.0 / threshold) - average
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            config: SchedulerConfig::default(),
            next: None,
            last_start: Some(Instant::now()),
            interval: FIRST_INTERVAL,
            pause_sum: Duration::ZERO,
            collections: 0,
            triggered: false,
            deletions: 0,
            mutations: 0,
            waiters: Vec::new(),
        }
    }

    fn mutation(dirty: bool) -> Event {
        Event::Mutation {
            at: Instant::now(),
            dirty,
        }
    }

    #[tokio::test]
    async fn a_deletion_schedules_a_collection_and_plain_writes_do_not() {
        let mut s = state();
        s.receive(mutation(false));
        assert!(s.next.is_none());
        assert!(!s.due());
        s.receive(mutation(true));
        assert!(s.next.is_some());
        assert!(s.due());
    }

    #[tokio::test]
    async fn enough_writes_schedule_a_collection() {
        let mut s = state();
        for _ in 0..99 {
            s.receive(mutation(false));
        }
        assert!(s.next.is_none());
        s.receive(mutation(false));
        assert!(s.next.is_some());
    }

    #[tokio::test]
    async fn writes_the_last_collection_saw_are_ignored() {
        let mut s = state();
        let old = Event::Mutation {
            at: Instant::now() - Duration::from_secs(1),
            dirty: true,
        };
        s.receive(old);
        assert_eq!(s.deletions, 0);
        assert!(s.next.is_none());
    }

    #[tokio::test]
    async fn the_interval_keeps_pauses_under_the_threshold() {
        let mut s = state();
        let stats = GcStats {
            report: berth_store::gc::GcReport {
                pause: Duration::from_millis(10),
                ..Default::default()
            },
            ..Default::default()
        };
        let (waiter, done) = oneshot::channel();
        s.receive(Event::Trigger { waiter });
        assert!(s.triggered);
        s.collected(Instant::now(), Ok(stats));
        assert!(!s.triggered);
        // 10ms / 0.02 - 10ms
        assert_eq!(s.interval, Duration::from_millis(490));
        assert!(done.await.expect("answered").is_ok());
        // Tiny pauses count as 5ms.
        s.pause_sum = Duration::ZERO;
        assert_eq!(s.interval_after_success(), Duration::from_millis(245));
    }
}
