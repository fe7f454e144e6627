//! Every task's cgroup figures, read at scrape time.
//!
//! Each task the task managers hold is looked up in its cgroup
//! ([`cgroups`]) and its series are labelled
//! `container_id` and `namespace`, as containerd labels them. A task whose
//! cgroup is gone (its container exited and was cleaned up) adds nothing.

use berth_core::cgroups::{self, Sample};
use berth_runtime::{Task, TaskManager};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One scrape's task series, by metric name.
#[derive(Debug, Default)]
pub struct TaskSamples {
    families: BTreeMap<&'static str, Family>,
}

/// One metric's help and series.
#[derive(Debug)]
struct Family {
    help: &'static str,
    series: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Reads the cgroups of every task `managers` hold, off the runtime.
pub async fn collect(managers: &[Arc<TaskManager>]) -> TaskSamples {
    let tasks: Vec<Arc<Task>> = managers.iter().flat_map(|m| m.all()).collect();
    let read = tokio::task::spawn_blocking(move || {
        let mut samples = TaskSamples::default();
        for task in tasks {
            samples.add(&task.namespace, &task.id, task_samples(&task));
        }
        samples
    });
    read.await.unwrap_or_default()
}

/// The figures of one task's cgroup.
fn task_samples(task: &Task) -> Vec<Sample> {
    let spec = std::fs::read(task.bundle.path.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let path = spec
        .as_ref()
        .and_then(|s| s.pointer("/linux/cgroupsPath"))
        .and_then(|p| p.as_str());
    match cgroups::locate(path, task.pid()) {
        Some(location) => cgroups::read(&location),
        None => Vec::new(),
    }
}

impl TaskSamples {
    /// Adds one task's samples under its id and namespace.
    pub fn add(&mut self, namespace: &str, id: &str, samples: Vec<Sample>) {
        for s in samples {
            let family = self.families.entry(s.name).or_insert_with(|| Family {
                help: s.help,
                series: Vec::new(),
            });
            let mut labels = vec![
                ("container_id", id.to_string()),
                ("namespace", namespace.to_string()),
            ];
            labels.extend(s.labels);
            family.series.push((labels, s.value));
        }
    }
}

impl Collector for TaskSamples {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (name, family) in &self.families {
            let gauge = ConstGauge::new(0.0f64);
            let mut metric =
                encoder.encode_descriptor(name, family.help, None, gauge.metric_type())?;
            for (labels, value) in &family.series {
                let series = metric.encode_family(labels)?;
                ConstGauge::new(*value).encode(series)?;
            }
        }
        Ok(())
    }
}
