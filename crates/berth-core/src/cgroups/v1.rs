//! cgroup v1 figures, per controller, with containerd 1.6's names
//! (`metrics/cgroups/v1/{cpu,memory,pids,blkio}.go`).

use super::{read_kv, read_u64, sample, Sample};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `cpuacct.stat` counts in USER_HZ ticks: 100 a second on Linux.
const NANOS_PER_TICK: u64 = 1_000_000_000 / 100;

/// Every figure of the controllers in `dirs`.
pub fn read(dirs: &HashMap<String, PathBuf>) -> Vec<Sample> {
    let mut out = Vec::new();
    let dir = |c: &str| dirs.get(c).filter(|d| d.is_dir());
    if let Some(d) = dir("pids") {
        pids(d, &mut out);
    }
    if let Some(d) = dir("cpuacct") {
        cpuacct(d, &mut out);
    }
    if let Some(d) = dir("cpu") {
        throttling(d, &mut out);
    }
    if let Some(d) = dir("memory") {
        memory(d, &mut out);
    }
    if let Some(d) = dir("blkio") {
        blkio(d, &mut out);
    }
    out
}

fn pids(dir: &Path, out: &mut Vec<Sample>) {
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
    ] {
        if let Some(v) = read_u64(dir, file) {
            out.push(sample(name, help, v));
        }
    }
}

fn cpuacct(dir: &Path, out: &mut Vec<Sample>) {
    if let Some(total) = read_u64(dir, "cpuacct.usage") {
        out.push(sample(
            "container_cpu_total_nanoseconds",
            "The total cpu time",
            total,
        ));
    }
    let stat = read_kv(dir, "cpuacct.stat");
    for (key, name, help) in [
        (
            "system",
            "container_cpu_kernel_nanoseconds",
            "The total kernel cpu time",
        ),
        (
            "user",
            "container_cpu_user_nanoseconds",
            "The total user cpu time",
        ),
    ] {
        if let Some(ticks) = stat.get(key) {
            out.push(sample(name, help, ticks * NANOS_PER_TICK));
        }
    }
    let per_cpu = std::fs::read_to_string(dir.join("cpuacct.usage_percpu")).unwrap_or_default();
    for (cpu, v) in per_cpu.split_whitespace().enumerate() {
        out.push(Sample {
            name: "container_per_cpu_nanoseconds",
            help: "The total cpu time per cpu",
            labels: vec![("cpu", cpu.to_string())],
            value: v.parse().unwrap_or(0.0),
        });
    }
}

fn throttling(dir: &Path, out: &mut Vec<Sample>) {
    let stat = read_kv(dir, "cpu.stat");
    for (key, name, help) in [
        (
            "nr_periods",
            "container_cpu_throttle_periods_total",
            "The total cpu throttle periods",
        ),
        (
            "nr_throttled",
            "container_cpu_throttled_periods_total",
            "The total cpu throttled periods",
        ),
        (
            "throttled_time",
            "container_cpu_throttled_time_nanoseconds",
            "The total cpu throttled time",
        ),
    ] {
        if let Some(v) = stat.get(key) {
            out.push(sample(name, help, *v));
        }
    }
}

/// `memory.stat` keys, each `container_memory_<key>_bytes` as containerd
/// names them (its pg* counts included, in "bytes").
const MEMORY_STAT: [(&str, &str, &str); 32] = [
    (
        "cache",
        "container_memory_cache_bytes",
        "The cache amount used",
    ),
    ("rss", "container_memory_rss_bytes", "The rss amount used"),
    (
        "rss_huge",
        "container_memory_rss_huge_bytes",
        "The rss_huge amount used",
    ),
    (
        "mapped_file",
        "container_memory_mapped_file_bytes",
        "The mapped_file amount used",
    ),
    ("dirty", "container_memory_dirty_bytes", "The dirty amount"),
    (
        "writeback",
        "container_memory_writeback_bytes",
        "The writeback amount",
    ),
    (
        "pgpgin",
        "container_memory_pgpgin_bytes",
        "The pgpgin amount",
    ),
    (
        "pgpgout",
        "container_memory_pgpgout_bytes",
        "The pgpgout amount",
    ),
    (
        "pgfault",
        "container_memory_pgfault_bytes",
        "The pgfault amount",
    ),
    (
        "pgmajfault",
        "container_memory_pgmajfault_bytes",
        "The pgmajfault amount",
    ),
    (
        "inactive_anon",
        "container_memory_inactive_anon_bytes",
        "The inactive_anon amount",
    ),
    (
        "active_anon",
        "container_memory_active_anon_bytes",
        "The active_anon amount",
    ),
    (
        "inactive_file",
        "container_memory_inactive_file_bytes",
        "The inactive_file amount",
    ),
    (
        "active_file",
        "container_memory_active_file_bytes",
        "The active_file amount",
    ),
    (
        "unevictable",
        "container_memory_unevictable_bytes",
        "The unevictable amount",
    ),
    (
        "hierarchical_memory_limit",
        "container_memory_hierarchical_memory_limit_bytes",
        "The hierarchical_memory_limit amount",
    ),
    (
        "hierarchical_memsw_limit",
        "container_memory_hierarchical_memsw_limit_bytes",
        "The hierarchical_memsw_limit amount",
    ),
    (
        "total_cache",
        "container_memory_total_cache_bytes",
        "The total_cache amount used",
    ),
    (
        "total_rss",
        "container_memory_total_rss_bytes",
        "The total_rss amount used",
    ),
    (
        "total_rss_huge",
        "container_memory_total_rss_huge_bytes",
        "The total_rss_huge amount used",
    ),
    (
        "total_mapped_file",
        "container_memory_total_mapped_file_bytes",
        "The total_mapped_file amount used",
    ),
    (
        "total_dirty",
        "container_memory_total_dirty_bytes",
        "The total_dirty amount",
    ),
    (
        "total_writeback",
        "container_memory_total_writeback_bytes",
        "The total_writeback amount",
    ),
    (
        "total_pgpgin",
        "container_memory_total_pgpgin_bytes",
        "The total_pgpgin amount",
    ),
    (
        "total_pgpgout",
        "container_memory_total_pgpgout_bytes",
        "The total_pgpgout amount",
    ),
    (
        "total_pgfault",
        "container_memory_total_pgfault_bytes",
        "The total_pgfault amount",
    ),
    (
        "total_pgmajfault",
        "container_memory_total_pgmajfault_bytes",
        "The total_pgmajfault amount",
    ),
    (
        "total_inactive_anon",
        "container_memory_total_inactive_anon_bytes",
        "The total_inactive_anon amount",
    ),
    (
        "total_active_anon",
        "container_memory_total_active_anon_bytes",
        "The total_active_anon amount",
    ),
    (
        "total_inactive_file",
        "container_memory_total_inactive_file_bytes",
        "The total_inactive_file amount",
    ),
    (
        "total_active_file",
        "container_memory_total_active_file_bytes",
        "The total_active_file amount",
    ),
    (
        "total_unevictable",
        "container_memory_total_unevictable_bytes",
        "The total_unevictable amount",
    ),
];

/// The usage counters: file prefix, metric stem, what it counts.
const MEMORY_USAGE: [(&str, &str, &str); 4] = [
    ("memory", "usage", "memory"),
    ("memory.memsw", "swap", "swap"),
    ("memory.kmem", "kernel", "kernel"),
    ("memory.kmem.tcp", "kerneltcp", "kerneltcp"),
];

fn memory(dir: &Path, out: &mut Vec<Sample>) {
    let stat = read_kv(dir, "memory.stat");
    for (key, name, help) in MEMORY_STAT {
        if let Some(v) = stat.get(key) {
            out.push(sample(name, help, *v));
        }
    }
    for (prefix, stem, what) in MEMORY_USAGE {
        for (file, field, unit) in [
            ("failcnt", "failcnt", "total"),
            ("limit_in_bytes", "limit", "bytes"),
            ("max_usage_in_bytes", "max", "bytes"),
            ("usage_in_bytes", "usage", "bytes"),
        ] {
            let Some(v) = read_u64(dir, &format!("{prefix}.{file}")) else {
                continue;
            };
            out.push(Sample {
                name: usage_name(stem, field, unit),
                help: usage_help(what, field),
                labels: Vec::new(),
                value: v as f64,
            });
        }
    }
}

/// `container_memory_<stem>_<field>_<unit>`, from a fixed table so each
/// name is a `'static` string.
fn usage_name(stem: &str, field: &str, unit: &str) -> &'static str {
    const NAMES: [&str; 16] = [
        "container_memory_usage_failcnt_total",
        "container_memory_usage_limit_bytes",
        "container_memory_usage_max_bytes",
        "container_memory_usage_usage_bytes",
        "container_memory_swap_failcnt_total",
        "container_memory_swap_limit_bytes",
        "container_memory_swap_max_bytes",
        "container_memory_swap_usage_bytes",
        "container_memory_kernel_failcnt_total",
        "container_memory_kernel_limit_bytes",
        "container_memory_kernel_max_bytes",
        "container_memory_kernel_usage_bytes",
        "container_memory_kerneltcp_failcnt_total",
        "container_memory_kerneltcp_limit_bytes",
        "container_memory_kerneltcp_max_bytes",
        "container_memory_kerneltcp_usage_bytes",
    ];
    let wanted = format!("container_memory_{stem}_{field}_{unit}");
    NAMES
        .iter()
        .find(|n| **n == wanted)
        .copied()
        .unwrap_or("container_memory_unknown")
}

fn usage_help(what: &str, field: &str) -> &'static str {
    match (what, field) {
        (_, "failcnt") => "The failcnt of the usage",
        (_, "limit") => "The memory limit",
        (_, "max") => "The memory maximum usage",
        _ => "The memory usage",
    }
}

/// blkio files: the CFQ ones when the kernel has them, else the
/// throttle ones, as containerd's cgroups library reads them.
const BLKIO: [(&str, &str, &str); 7] = [
    (
        "io_merged_recursive",
        "container_blkio_io_merged_recursive_total",
        "The blkio io merged recursive",
    ),
    (
        "io_queued_recursive",
        "container_blkio_io_queued_recursive_total",
        "The blkio io queued recursive",
    ),
    (
        "io_service_bytes_recursive",
        "container_blkio_io_service_bytes_recursive_bytes",
        "The blkio io service bytes recursive",
    ),
    (
        "io_service_time_recursive",
        "container_blkio_io_service_time_recursive_total",
        "The blkio io service time recursive",
    ),
    (
        "io_serviced_recursive",
        "container_blkio_io_serviced_recursive_total",
        "The blkio io serviced recursive",
    ),
    (
        "time_recursive",
        "container_blkio_io_time_recursive_total",
        "The blkio io time recursive",
    ),
    (
        "sectors_recursive",
        "container_blkio_sectors_recursive_total",
        "The blkio sectors recursive",
    ),
];

fn blkio(dir: &Path, out: &mut Vec<Sample>) {
    let devices = devices();
    let before = out.len();
    for (file, name, help) in BLKIO {
        blkio_file(dir, &format!("blkio.{file}"), name, help, &devices, out);
    }
    if out.len() == before {
        for (file, i) in [
            ("throttle.io_serviced", 4),
            ("throttle.io_service_bytes", 2),
        ] {
            let (_, name, help) = BLKIO[i];
            blkio_file(dir, &format!("blkio.{file}"), name, help, &devices, out);
        }
    }
}

/// `MAJ:MIN [Op] value` lines; the `Total` line is skipped.
fn blkio_file(
    dir: &Path,
    file: &str,
    name: &'static str,
    help: &'static str,
    devices: &HashMap<(u64, u64), String>,
    out: &mut Vec<Sample>,
) {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split([' ', ':']).collect();
        let (major, minor, op, value) = match fields.as_slice() {
            [major, minor, op, value] => (major, minor, *op, value),
            [major, minor, value] => (major, minor, "", value),
            _ => continue,
        };
        let (Ok(major), Ok(minor), Ok(value)) = (
            major.parse::<u64>(),
            minor.parse::<u64>(),
            value.parse::<f64>(),
        ) else {
            continue;
        };
        out.push(Sample {
            name,
            help,
            labels: vec![
                ("op", op.to_string()),
                (
                    "device",
                    devices.get(&(major, minor)).cloned().unwrap_or_default(),
                ),
                ("major", major.to_string()),
                ("minor", minor.to_string()),
            ],
            value,
        });
    }
}

/// Block devices by (major, minor), from `/proc/partitions`: `/dev/<name>`.
fn devices() -> HashMap<(u64, u64), String> {
    let text = std::fs::read_to_string("/proc/partitions").unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [major, minor, _, name] = f.as_slice() {
            if let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) {
                out.entry((major, minor))
                    .or_insert_with(|| format!("/dev/{name}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines_with_and_without_op() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("blkio.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("blkio.sectors_recursive"), "8:0 8\n").expect("write");
        let mut out = Vec::new();
        blkio(dir.path(), &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0].name,
            "container_blkio_io_service_bytes_recursive_bytes"
        );
        assert_eq!(out[0].labels[0], ("op", "Read".to_string()));
        assert_eq!(out[0].labels[2], ("major", "8".to_string()));
        assert_eq!(out[0].value, 4096.0);
        assert_eq!(out[2].labels[0], ("op", String::new()));
    }

    #[test]
    fn controllers_give_containerds_names_and_units() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut dirs = HashMap::new();
        for (controller, files) in [
            ("pids", vec![("pids.current", "3\n"), ("pids.max", "max\n")]),
            (
                "cpuacct",
                vec![
                    ("cpuacct.usage", "1500\n"),
                    ("cpuacct.stat", "user 2\nsystem 1\n"),
                    ("cpuacct.usage_percpu", "1000 500 \n"),
                ],
            ),
            (
                "memory",
                vec![
                    ("memory.stat", "cache 4096\nrss 8192\n"),
                    ("memory.usage_in_bytes", "12288\n"),
                ],
            ),
        ] {
            let dir = root.path().join(controller);
            std::fs::create_dir(&dir).expect("mkdir");
            for (file, text) in files {
                std::fs::write(dir.join(file), text).expect("write");
            }
            dirs.insert(controller.to_string(), dir);
        }
        let samples = read(&dirs);
        let value = |name: &str| {
            samples
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.value)
                .unwrap_or_else(|| panic!("{name} missing from {samples:?}"))
        };
        assert_eq!(value("container_pids_current"), 3.0);
        assert_eq!(value("container_pids_limit"), 0.0);
        assert_eq!(value("container_cpu_total_nanoseconds"), 1500.0);
        assert_eq!(value("container_cpu_user_nanoseconds"), 20_000_000.0);
        assert_eq!(value("container_cpu_kernel_nanoseconds"), 10_000_000.0);
        assert_eq!(value("container_memory_rss_bytes"), 8192.0);
        assert_eq!(value("container_memory_cache_bytes"), 4096.0);
        assert_eq!(value("container_memory_usage_usage_bytes"), 12288.0);
        let per_cpu: Vec<_> = samples
            .iter()
            .filter(|s| s.name == "container_per_cpu_nanoseconds")
            .map(|s| (s.labels[0].1.as_str(), s.value))
            .collect();
        assert_eq!(per_cpu, [("0", 1000.0), ("1", 500.0)]);
    }

    #[test]
    fn memory_usage_names_are_containerds() {
        assert_eq!(
            usage_name("usage", "usage", "bytes"),
            "container_memory_usage_usage_bytes"
        );
        assert_eq!(
            usage_name("kerneltcp", "failcnt", "total"),
            "container_memory_kerneltcp_failcnt_total"
        );
    }
}
