//! berthd's Prometheus endpoint, as containerd's: `GET /v1/metrics` on the
//! `[metrics] address` of the config (empty: no endpoint, the default).
//!
//! The answer is the OpenMetrics text exposition of one
//! [`prometheus_client`] registry holding
//!
//! - [`grpc`]: the gRPC server's figures as go-grpc-prometheus names them
//!   (`grpc_server_started_total`, `grpc_server_handled_total` by
//!   `grpc_code`, `grpc_server_msg_received_total`,
//!   `grpc_server_msg_sent_total`, and with `grpc_histogram = true`
//!   `grpc_server_handling_seconds`), kept by a tower layer on the server;
//! - [`tasks`]: each task's cgroup figures with containerd 1.6's names and
//!   labels (`container_cpu_total_nanoseconds{container_id, namespace}`, …),
//!   read from the cgroup files ([`berth_core::cgroups`]) at scrape time;
//! - [`daemon`]: berth's own figures — pulls, garbage collections, shims.
//!
//! The plugins that own a figure keep it (a counter is a shared handle);
//! [`Metrics::new`] gathers them from the loaded plugins into the registry.
//! [`endpoint`] serves it.

pub mod daemon;
pub mod endpoint;
pub mod grpc;
pub mod tasks;

use crate::gc::GcScheduler;
use crate::local::transfer::TransferService;
use crate::plugin::{types, Plugins};
use berth_runtime::TaskManager;
use prometheus_client::registry::Registry;
use std::sync::Arc;

pub use grpc::{GrpcMetrics, GrpcMetricsLayer};

/// Everything the endpoint reports.
pub struct Metrics {
    /// The registry encoded at every scrape.
    registry: Registry,
    /// The task managers whose tasks' cgroups are read at every scrape.
    managers: Vec<Arc<TaskManager>>,
}

impl Metrics {
    /// The registry over `grpc` and the figures of the loaded `plugins`.
    pub fn new(grpc: &GrpcMetrics, plugins: &Plugins) -> Metrics {
        let mut registry = Registry::default();
        grpc.register(&mut registry);
        for transfer in plugins.all::<TransferService>(TRANSFER) {
            transfer.pull_metrics().register(&mut registry);
        }
        for gc in plugins.all::<GcScheduler>(types::GC) {
            gc.metrics().register(&mut registry);
        }
        let managers = plugins.all::<TaskManager>(crate::local::tasks::RUNTIME_PLUGIN);
        daemon::register_shims(&mut registry, managers.clone());
        Metrics { registry, managers }
    }

    /// The text exposition: the registry, then every task's cgroup figures.
    pub async fn render(&self) -> String {
        let samples = tasks::collect(&self.managers).await;
        let mut out = String::new();
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(samples));
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &scrape);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// containerd's transfer plugin type.
const TRANSFER: &str = "io.containerd.transfer.v1";
