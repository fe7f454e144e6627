//! cgroup v2 figures with containerd 1.6's names
//! (`metrics/cgroups/v2/{cpu,memory,pids,io}.go`).

use super::{read_kv, read_u64, sample, Sample};
use std::path::Path;

/// Every figure of the unified cgroup `dir`.
pub fn read(dir: &Path) -> Vec<Sample> {
    let mut out = Vec::new();
    for (file, name, help) in [
        (
            "pids.current",
            "container_pids_current",
            "The current number of pids",
        ),
        (
            "pids.max",
            "container_pids_limit",
            "The limit to the number of pids allowed",
        ),
        (
            "memory.current",
            "container_memory_usage_bytes",
            "Current memory usage (cgroup v2)",
        ),
        (
            "memory.max",
            "container_memory_usage_limit_bytes",
            "Current memory usage limit (cgroup v2)",
        ),
        (
            "memory.swap.current",
            "container_memory_swap_usage_bytes",
            "Current swap usage (cgroup v2)",
        ),
        (
            "memory.swap.max",
            "container_memory_swap_limit_bytes",
            "Current swap usage limit (cgroup v2)",
        ),
    ] {
        if let Some(v) = read_u64(dir, file) {
            out.push(sample(name, help, v));
        }
    }
    let cpu = read_kv(dir, "cpu.stat");
    for (key, name, help) in [
        ("usage_usec", "container_cpu_usage_usec_microseconds", "Total cpu usage (cgroup v2)"),
        ("user_usec", "container_cpu_user_usec_microseconds", "Current cpu usage in user space (cgroup v2)"),
        ("system_usec", "container_cpu_system_usec_microseconds", "Current cpu usage in kernel space (cgroup v2)"),
        ("nr_periods", "container_cpu_nr_periods_total", "Current cpu number of periods (only if controller is enabled)"),
        ("nr_throttled", "container_cpu_nr_throttled_total", "Total number of times tasks have been throttled (only if controller is enabled)"),
        ("throttled_usec", "container_cpu_throttled_usec_microseconds", "Total time duration for which tasks have been throttled. (only if controller is enabled)"),
    ] {
        if let Some(v) = cpu.get(key) {
            out.push(sample(name, help, *v));
        }
    }
    let memory = read_kv(dir, "memory.stat");
    for (key, name) in [
        ("anon", "container_memory_anon_bytes"),
        ("file", "container_memory_file_bytes"),
        ("kernel_stack", "container_memory_kernel_stack_bytes"),
        ("slab", "container_memory_slab_bytes"),
        ("sock", "container_memory_sock_bytes"),
        ("shmem", "container_memory_shmem_bytes"),
        ("file_mapped", "container_memory_file_mapped_bytes"),
        ("file_dirty", "container_memory_file_dirty_bytes"),
        ("inactive_anon", "container_memory_inactive_anon_bytes"),
        ("active_anon", "container_memory_active_anon_bytes"),
        ("inactive_file", "container_memory_inactive_file_bytes"),
        ("active_file", "container_memory_active_file_bytes"),
        ("unevictable", "container_memory_unevictable_bytes"),
        ("pgfault", "container_memory_pgfault_bytes"),
        ("pgmajfault", "container_memory_pgmajfault_bytes"),
    ] {
        if let Some(v) = memory.get(key) {
            out.push(sample(name, "The memory.stat amount (cgroup v2)", *v));
        }
    }
    if let Some(oom) = read_kv(dir, "memory.events").get("oom") {
        out.push(sample(
            "container_memory_oom_total",
            "The number of times a container has received an oom event",
            *oom,
        ));
    }
    io(dir, &mut out);
    out
}

/// `io.stat`: `MAJ:MIN rbytes=… wbytes=… rios=… wios=… …` per device.
fn io(dir: &Path, out: &mut Vec<Sample>) {
    let text = std::fs::read_to_string(dir.join("io.stat")).unwrap_or_default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let (name, help) = match key {
                "rbytes" => ("container_io_rbytes_bytes", "IO bytes read"),
                "wbytes" => ("container_io_wbytes_bytes", "IO bytes written"),
                "rios" => ("container_io_rios_total", "Number of read IOs"),
                "wios" => ("container_io_wios_total", "Number of write IOs"),
                _ => continue,
            };
            out.push(Sample {
                name,
                help,
                labels: vec![("major", major.to_string()), ("minor", minor.to_string())],
                value: value.parse().unwrap_or(0.0),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_files_give_containerds_v2_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (file, text) in [
            ("pids.current", "2\n"),
            ("pids.max", "max\n"),
            ("memory.current", "65536\n"),
            (
                "cpu.stat",
                "usage_usec 300\nuser_usec 200\nsystem_usec 100\n",
            ),
            (
                "io.stat",
                "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
            ),
        ] {
            std::fs::write(dir.path().join(file), text).expect("write");
        }
        let samples = read(dir.path());
        let value = |name: &str| {
            samples
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.value)
                .unwrap_or_else(|| panic!("{name} missing from {samples:?}"))
        };
        assert_eq!(value("container_pids_current"), 2.0);
        assert_eq!(value("container_pids_limit"), 0.0);
        assert_eq!(value("container_memory_usage_bytes"), 65536.0);
        assert_eq!(value("container_cpu_usage_usec_microseconds"), 300.0);
        assert_eq!(value("container_io_rbytes_bytes"), 4096.0);
        let io = samples
            .iter()
            .find(|s| s.name == "container_io_rios_total")
            .expect("rios");
        assert_eq!(
            io.labels,
            [("major", "8".to_string()), ("minor", "0".to_string())]
        );
    }
}
