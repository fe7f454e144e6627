//! CRI CPU and memory figures out of a cgroup's samples, v1 or v2.

use super::uint;
use berth_core::cgroups::{self, Sample};
use k8s_cri::v1::{CpuUsage, MemoryUsage};
use std::collections::HashMap;
use std::sync::Mutex;

/// The last CPU sample of each container and pod: (timestamp in
/// nanoseconds, cumulative usage in nanoseconds), by id.
#[derive(Debug, Default)]
pub(crate) struct CpuSamples(Mutex<HashMap<String, (i64, u64)>>);

impl CpuSamples {
    /// Records `usage` at `timestamp` for `id` and answers the rate since
    /// the previous sample, in nanocores; none on the first sample or when
    /// time did not move forward.
    fn rate(&self, id: &str, timestamp: i64, usage: u64) -> Option<u64> {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let previous = last.insert(id.to_string(), (timestamp, usage));
        let (then, before) = previous?;
        let elapsed = timestamp.checked_sub(then).filter(|e| *e > 0)? as u128;
        let used = usage.saturating_sub(before) as u128;
        Some((used * 1_000_000_000 / elapsed) as u64)
    }

    /// Forgets `id` (its container or pod is gone).
    pub(crate) fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// The first of `names` that the samples hold.
fn first(samples: &[Sample], names: &[&str]) -> Option<u64> {
    names.iter().find_map(|n| cgroups::value(samples, n))
}

/// The cumulative CPU usage in nanoseconds: v1's `cpuacct.usage`, v2's
/// `cpu.stat usage_usec`.
fn cpu_nanos(samples: &[Sample]) -> Option<u64> {
    cgroups::value(samples, "container_cpu_total_nanoseconds").or_else(|| {
        cgroups::value(samples, "container_cpu_usage_usec_microseconds").map(|us| us * 1000)
    })
}

/// The CPU figures of `samples` for `id`, the rate against its last
/// sample.
pub(crate) fn cpu(
    samples: &[Sample],
    id: &str,
    timestamp: i64,
    last: &CpuSamples,
) -> Option<CpuUsage> {
    let usage = cpu_nanos(samples)?;
    Some(CpuUsage {
        timestamp,
        usage_core_nano_seconds: uint(usage),
        usage_nano_cores: last.rate(id, timestamp, usage).and_then(uint),
    })
}

/// The memory figures of `samples`; the working set is the usage less
/// the inactive file pages, as the kubelet defines it.
pub(crate) fn memory(samples: &[Sample], timestamp: i64) -> Option<MemoryUsage> {
    let usage = first(
        samples,
        &[
            "container_memory_usage_usage_bytes",
            "container_memory_usage_bytes",
        ],
    )?;
    let inactive_file = first(
        samples,
        &[
            "container_memory_total_inactive_file_bytes",
            "container_memory_inactive_file_bytes",
        ],
    )
    .unwrap_or(0);
    let pick = |names: &[&str]| first(samples, names).and_then(uint);
    Some(MemoryUsage {
        timestamp,
        working_set_bytes: uint(usage.saturating_sub(inactive_file)),
        available_bytes: None,
        usage_bytes: uint(usage),
        rss_bytes: pick(&[
            "container_memory_total_rss_bytes",
            "container_memory_anon_bytes",
        ]),
        page_faults: pick(&[
            "container_memory_total_pgfault_bytes",
            "container_memory_pgfault_bytes",
        ]),
        major_page_faults: pick(&[
            "container_memory_total_pgmajfault_bytes",
            "container_memory_pgmajfault_bytes",
        ]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &'static str, value: u64) -> Sample {
        Sample {
            name,
            help: "",
            labels: Vec::new(),
            value: value as f64,
        }
    }

    #[test]
    fn the_rate_needs_two_samples() {
        let last = CpuSamples::default();
        assert_eq!(last.rate("c", 1_000_000_000, 500), None);
        // Half a core over two seconds.
        assert_eq!(
            last.rate("c", 3_000_000_000, 1_000_000_500),
            Some(500_000_000)
        );
        assert_eq!(last.rate("c", 3_000_000_000, 1_000_000_500), None);
        last.forget("c");
        assert_eq!(last.rate("c", 4_000_000_000, 0), None);
    }

    #[test]
    fn v1_and_v2_names_give_the_same_figures() {
        let v1 = [
            sample("container_cpu_total_nanoseconds", 7000),
            sample("container_memory_usage_usage_bytes", 100),
            sample("container_memory_total_inactive_file_bytes", 30),
            sample("container_memory_total_rss_bytes", 60),
            sample("container_memory_total_pgfault_bytes", 5),
            sample("container_memory_total_pgmajfault_bytes", 1),
        ];
        let v2 = [
            sample("container_cpu_usage_usec_microseconds", 7),
            sample("container_memory_usage_bytes", 100),
            sample("container_memory_inactive_file_bytes", 30),
            sample("container_memory_anon_bytes", 60),
            sample("container_memory_pgfault_bytes", 5),
            sample("container_memory_pgmajfault_bytes", 1),
        ];
        for samples in [&v1[..], &v2[..]] {
            let last = CpuSamples::default();
            let c = cpu(samples, "c", 1, &last).expect("cpu");
            assert_eq!(c.usage_core_nano_seconds, uint(7000));
            assert_eq!(c.usage_nano_cores, None);
            let m = memory(samples, 1).expect("memory");
            assert_eq!(m.working_set_bytes, uint(70));
            assert_eq!(m.usage_bytes, uint(100));
            assert_eq!(m.rss_bytes, uint(60));
            assert_eq!(m.page_faults, uint(5));
            assert_eq!(m.major_page_faults, uint(1));
        }
        assert_eq!(memory(&[], 1), None);
    }
}
