//! berth's own figures: pulls, garbage collections and live shims.
//!
//! The plugin doing the work keeps the counters (clones share them) and
//! [`Metrics::new`](super::Metrics::new) registers them.

use berth_runtime::TaskManager;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// How a pull or a collection ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: &'static str,
}

impl ResultLabel {
    fn of(ok: bool) -> Self {
        ResultLabel {
            result: if ok { "ok" } else { "error" },
        }
    }
}

/// Image pulls through the transfer service.
#[derive(Debug, Clone)]
pub struct PullMetrics {
    pulls: Family<ResultLabel, Counter>,
    bytes: Counter,
    seconds: Histogram,
}

impl Default for PullMetrics {
    fn default() -> Self {
        PullMetrics {
            pulls: Family::default(),
            bytes: Counter::default(),
            // 0.1 s to ~27 min.
            seconds: Histogram::new(exponential_buckets(0.1, 2.0, 15)),
        }
    }
}

impl PullMetrics {
    /// Counts a pull that took `took`.
    pub fn pulled(&self, ok: bool, took: Duration) {
        self.pulls.get_or_create(&ResultLabel::of(ok)).inc();
        if ok {
            self.seconds.observe(took.as_secs_f64());
        }
    }

    /// Counts `bytes` a pull wrote into the content store.
    pub fn downloaded(&self, bytes: u64) {
        self.bytes.inc_by(bytes);
    }

    /// Adds the series to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_image_pulls",
            "Image pulls by result",
            self.pulls.clone(),
        );
        registry.register(
            "berth_image_pull_bytes",
            "Bytes of blobs image pulls downloaded into the content store",
            self.bytes.clone(),
        );
        registry.register(
            "berth_image_pull_duration_seconds",
            "How long successful image pulls took, unpacking included",
            self.seconds.clone(),
        );
    }
}

/// Garbage collections of the metadata store.
#[derive(Debug, Clone)]
pub struct GcMetrics {
    runs: Family<ResultLabel, Counter>,
    pause: Histogram,
    removed: Counter,
}

impl Default for GcMetrics {
    fn default() -> Self {
        GcMetrics {
            runs: Family::default(),
            pause: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            removed: Counter::default(),
        }
    }
}

impl GcMetrics {
    /// Counts a collection; `pause` is how long it held the metadata
    /// store and `removed` how many records it removed.
    pub fn collected(&self, ok: bool, pause: Duration, removed: u64) {
        self.runs.get_or_create(&ResultLabel::of(ok)).inc();
        if ok {
            self.pause.observe(pause.as_secs_f64());
            self.removed.inc_by(removed);
        }
    }

    /// Adds the series to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_gc_runs",
            "Garbage collections by result",
            self.runs.clone(),
        );
        registry.register(
            "berth_gc_pause_seconds",
            "How long each garbage collection held the metadata store",
            self.pause.clone(),
        );
        registry.register(
            "berth_gc_removed_records",
            "Metadata records garbage collection removed",
            self.removed.clone(),
        );
    }
}

/// The live shims, counted at scrape time: one per task the managers hold.
struct Shims(Vec<Arc<TaskManager>>);

impl std::fmt::Debug for Shims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Shims").field(&self.0.len()).finish()
    }
}

impl Collector for Shims {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let alive: usize = self.0.iter().map(|m| m.all().len()).sum();
        let gauge = ConstGauge::new(alive as i64);
        let metric = encoder.encode_descriptor(
            "berth_shims_alive",
            "Shims running a task for berthd.",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

/// Adds `berth_shims_alive` over `managers` to `registry`.
pub fn register_shims(registry: &mut Registry, managers: Vec<Arc<TaskManager>>) {
    registry.register_collector(Box::new(Shims(managers)));
}
