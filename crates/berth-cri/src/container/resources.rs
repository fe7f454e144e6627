//! Linux resources and cgroup paths, as containerd's CRI
//! `WithResources` and `getCgroupsPath` set them.

use berth_oci::spec::{Cpu, Memory};
use berth_oci::Spec;
use k8s_cri::v1::LinuxContainerResources;
use serde_json::{json, Value};
use std::path::Path;

/// containerd's `getCgroupsPath`.
pub(crate) fn cgroups_path(parent: &str, id: &str) -> String {
    let base = Path::new(parent)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if base.ends_with(".slice") {
        return format!("{base}:cri-containerd:{id}");
    }
    Path::new(parent).join(id).to_string_lossy().into_owned()
}

/// containerd's CRI `WithResources`: only the values set (non-zero) are
/// written; a memory limit without a swap limit gets swap equal to it when
/// the swap controller is there.
pub(crate) fn with_resources(spec: &mut Spec, r: &LinuxContainerResources) {
    let resources = spec.resources_mut();
    let cpu = resources.cpu.get_or_insert_with(Cpu::default);
    if r.cpu_period != 0 {
        cpu.period = Some(r.cpu_period as u64);
    }
    if r.cpu_quota != 0 {
        cpu.quota = Some(r.cpu_quota);
    }
    if r.cpu_shares != 0 {
        cpu.shares = Some(r.cpu_shares as u64);
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.extra.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.extra.insert("mems".into(), json!(r.cpuset_mems));
    }
    let memory = resources.memory.get_or_insert_with(Memory::default);
    if r.memory_limit_in_bytes != 0 {
        memory.limit = Some(r.memory_limit_in_bytes);
        if r.memory_swap_limit_in_bytes == 0 && swap_controller() {
            memory
                .extra
                .insert("swap".into(), json!(r.memory_limit_in_bytes));
        }
    }
    if r.memory_swap_limit_in_bytes != 0 {
        memory
            .extra
            .insert("swap".into(), json!(r.memory_swap_limit_in_bytes));
    }
    // containerd tolerates a missing hugetlb controller by default
    // (`tolerate_missing_hugetlb_controller`): the limits are skipped.
    if !r.hugepage_limits.is_empty() && !hugetlb_controller() {
        tracing::warn!("hugetlb cgroup controller is absent; skipping huge page limits");
    } else if !r.hugepage_limits.is_empty() {
        let limits: Vec<Value> = r
            .hugepage_limits
            .iter()
            .map(|h| json!({ "pageSize": h.page_size, "limit": h.limit }))
            .collect();
        resources
            .extra
            .insert("hugepageLimits".into(), json!(limits));
    }
    if !r.unified.is_empty() {
        resources.extra.insert("unified".into(), json!(r.unified));
    }
}

/// Whether the hugetlb controller is there: cgroup v1's hierarchy, or
/// among cgroup v2's controllers.
pub(crate) fn hugetlb_controller() -> bool {
    Path::new("/sys/fs/cgroup/hugetlb").is_dir()
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|n| n == "hugetlb"))
}

/// Whether memory+swap can be limited (cgroup v1's `memsw` files).
fn swap_controller() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || Path::new("/sys/fs/cgroup/memory.swap.max").exists()
}
