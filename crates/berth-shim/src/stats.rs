//! Task metrics from the container's cgroups, in containerd's types.
//!
//! The cgroups are found from the init process (`/proc/<pid>/cgroup`), so
//! cgroupfs and systemd paths work alike. On cgroup v1 (this project's
//! machines: hybrid, controllers on v1) the answer is
//! `io.containerd.cgroups.v1.Metrics`; on a pure v2 host it is
//! `io.containerd.cgroups.v2.Metrics` — what `ctr tasks metrics` decodes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;

use crate::events::pack;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The metrics of the cgroups `pid` belongs to.
pub fn collect(pid: u32) -> Result<Any, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("reading cgroups of pid {pid}: {e}"))?;
    let v1_paths = v1_paths(&text);
    if v1_paths.is_empty() {
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| format!("pid {pid} is in no cgroup"))?;
        return Ok(pack(&collect_v2(
            &Path::new(CGROUP_ROOT).join(path.trim_start_matches('/')),
        )));
    }
    Ok(pack(&collect_v1(&v1_paths)))
}

/// controller → directory, for each v1 hierarchy.
fn v1_paths(text: &str) -> HashMap<String, PathBuf> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        for ctrl in ctrls
            .split(',')
            .filter(|c| !c.is_empty() && !c.starts_with("name="))
        {
            let dir = Path::new(CGROUP_ROOT)
                .join(ctrls)
                .join(path.trim_start_matches('/'));
            out.insert(ctrl.to_string(), dir);
        }
    }
    out
}

fn read_u64(dir: &Path, file: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat…).
fn read_kv(dir: &Path, file: &str) -> HashMap<String, u64> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

fn collect_v1(paths: &HashMap<String, PathBuf>) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(dir) = paths.get("pids") {
        let p = m.pids.mut_or_insert_default();
        p.current = read_u64(dir, "pids.current");
        p.limit = read_u64(dir, "pids.max");
    }
    if let Some(dir) = paths.get("cpuacct") {
        let usage = m.cpu.mut_or_insert_default().usage.mut_or_insert_default();
        usage.total = read_u64(dir, "cpuacct.usage");
        usage.per_cpu = std::fs::read_to_string(dir.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // cpuacct.stat counts USER_HZ ticks (100 per second).
        let stat = read_kv(dir, "cpuacct.stat");
        usage.user = stat.get("user").copied().unwrap_or(0) * 10_000_000;
        usage.kernel = stat.get("system").copied().unwrap_or(0) * 10_000_000;
    }
    if let Some(dir) = paths.get("cpu") {
        let stat = read_kv(dir, "cpu.stat");
        let t = m
            .cpu
            .mut_or_insert_default()
            .throttling
            .mut_or_insert_default();
        t.periods = stat.get("nr_periods").copied().unwrap_or(0);
        t.throttled_periods = stat.get("nr_throttled").copied().unwrap_or(0);
        t.throttled_time = stat.get("throttled_time").copied().unwrap_or(0);
    }
    if let Some(dir) = paths.get("memory") {
        m.memory = Some(memory_v1(dir)).into();
    }
    m
}

fn memory_v1(dir: &Path) -> v1::MemoryStat {
    let s = read_kv(dir, "memory.stat");
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    let mut mem = v1::MemoryStat::new();
    mem.cache = g("cache");
    mem.rss = g("rss");
    mem.rss_huge = g("rss_huge");
    mem.mapped_file = g("mapped_file");
    mem.dirty = g("dirty");
    mem.writeback = g("writeback");
    mem.pg_pg_in = g("pgpgin");
    mem.pg_pg_out = g("pgpgout");
    mem.pg_fault = g("pgfault");
    mem.pg_maj_fault = g("pgmajfault");
    mem.inactive_anon = g("inactive_anon");
    mem.active_anon = g("active_anon");
    mem.inactive_file = g("inactive_file");
    mem.active_file = g("active_file");
    mem.unevictable = g("unevictable");
    mem.hierarchical_memory_limit = g("hierarchical_memory_limit");
    mem.hierarchical_swap_limit = g("hierarchical_memsw_limit");
    mem.total_cache = g("total_cache");
    mem.total_rss = g("total_rss");
    mem.total_rss_huge = g("total_rss_huge");
    mem.total_mapped_file = g("total_mapped_file");
    mem.total_dirty = g("total_dirty");
    mem.total_writeback = g("total_writeback");
    mem.total_pg_pg_in = g("total_pgpgin");
    mem.total_pg_pg_out = g("total_pgpgout");
    mem.total_pg_fault = g("total_pgfault");
    mem.total_pg_maj_fault = g("total_pgmajfault");
    mem.total_inactive_anon = g("total_inactive_anon");
    mem.total_active_anon = g("total_active_anon");
    mem.total_inactive_file = g("total_inactive_file");
    mem.total_active_file = g("total_active_file");
    mem.total_unevictable = g("total_unevictable");
    for (field, prefix) in [
        (&mut mem.usage, "memory"),
        (&mut mem.swap, "memory.memsw"),
        (&mut mem.kernel, "memory.kmem"),
        (&mut mem.kernel_tcp, "memory.kmem.tcp"),
    ] {
        let e = field.mut_or_insert_default();
        e.usage = read_u64(dir, &format!("{prefix}.usage_in_bytes"));
        e.limit = read_u64(dir, &format!("{prefix}.limit_in_bytes"));
        e.max = read_u64(dir, &format!("{prefix}.max_usage_in_bytes"));
        e.failcnt = read_u64(dir, &format!("{prefix}.failcnt"));
    }
    mem
}

fn collect_v2(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let p = m.pids.mut_or_insert_default();
    p.current = read_u64(dir, "pids.current");
    p.limit = read_u64(dir, "pids.max");
    let cpu = read_kv(dir, "cpu.stat");
    let c = m.cpu.mut_or_insert_default();
    let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
    c.usage_usec = g("usage_usec");
    c.user_usec = g("user_usec");
    c.system_usec = g("system_usec");
    c.nr_periods = g("nr_periods");
    c.nr_throttled = g("nr_throttled");
    c.throttled_usec = g("throttled_usec");
    let stat = read_kv(dir, "memory.stat");
    let g = |k: &str| stat.get(k).copied().unwrap_or(0);
    let mem = m.memory.mut_or_insert_default();
    mem.anon = g("anon");
    mem.file = g("file");
    mem.kernel_stack = g("kernel_stack");
    mem.slab = g("slab");
    mem.sock = g("sock");
    mem.shmem = g("shmem");
    mem.file_mapped = g("file_mapped");
    mem.file_dirty = g("file_dirty");
    mem.inactive_anon = g("inactive_anon");
    mem.active_anon = g("active_anon");
    mem.inactive_file = g("inactive_file");
    mem.active_file = g("active_file");
    mem.unevictable = g("unevictable");
    mem.pgfault = g("pgfault");
    mem.pgmajfault = g("pgmajfault");
    mem.usage = read_u64(dir, "memory.current");
    mem.usage_limit = read_u64(dir, "memory.max");
    mem.swap_usage = read_u64(dir, "memory.swap.current");
    mem.swap_limit = read_u64(dir, "memory.swap.max");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_paths_split_joined_controllers() {
        let text = "12:cpu,cpuacct:/default/c1\n5:memory:/default/c1\n1:name=systemd:/x\n0::/u\n";
        let p = v1_paths(text);
        assert_eq!(
            p["cpuacct"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct/default/c1")
        );
        assert_eq!(p["memory"], Path::new("/sys/fs/cgroup/memory/default/c1"));
        assert!(!p.contains_key("name=systemd"));
    }

    #[test]
    fn own_metrics_have_the_v1_type_url() {
        let any = collect(std::process::id()).expect("metrics of this process");
        assert!(
            any.type_url.starts_with("io.containerd.cgroups.v"),
            "{}",
            any.type_url
        );
    }
}
