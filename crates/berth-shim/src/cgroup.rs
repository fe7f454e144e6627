//! Moving the serving shim into the cgroup its runtime options name
//! (`containerd.runc.v1.Options.shim_cgroup`, the Go client's
//! `WithShimCgroup`), as containerd's runc shim does in `start`
//! (`runtime/v2/runc/manager`): on a unified (v2) host the pid goes to
//! `/sys/fs/cgroup/<path>/cgroup.procs`; otherwise to `cgroup.procs` of
//! `<path>` in every mounted cgroup hierarchy where that directory exists —
//! each v1 controller and, on a hybrid host, the v2 hierarchy at
//! `/sys/fs/cgroup/unified`. A cgroup that exists nowhere is an error, as
//! in containerd.

use std::path::{Component, Path, PathBuf};

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The runtime options the daemon wrote to `start`'s stdin (a
/// `google.protobuf.Any`, empty when there are none): the shim cgroup, if
/// one is named.
pub fn shim_cgroup_from_options(data: &[u8]) -> Result<Option<String>, String> {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::Message;
    use containerd_shim_protos::shim::oci::Options;
    if data.is_empty() {
        return Ok(None);
    }
    let any = Any::parse_from_bytes(data).map_err(|e| format!("runtime options: {e}"))?;
    if !any.type_url.ends_with("containerd.runc.v1.Options") {
        return Ok(None);
    }
    let opts = Options::parse_from_bytes(&any.value).map_err(|e| format!("runc options: {e}"))?;
    Ok(Some(opts.shim_cgroup).filter(|c| !c.is_empty()))
}

/// Moves `pid` into cgroup `path` (e.g. `/berth/shims`).
pub fn join(path: &str, pid: u32) -> Result<(), String> {
    let relative = relative_path(path)?;
    let dirs = if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        vec![Path::new(CGROUP_ROOT).join(&relative)]
    } else {
        hierarchies()?
            .into_iter()
            .map(|h| h.join(&relative))
            .filter(|d| d.is_dir())
            .collect()
    };
    if dirs.is_empty() {
        return Err(format!("shim cgroup {path}: no such cgroup"));
    }
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .map_err(|e| format!("shim cgroup {path}: writing {}: {e}", procs.display()))?;
    }
    Ok(())
}

/// Removes what is left of a container's cgroup, `linux.cgroupsPath` of
/// its `spec`, in every hierarchy, after runc failed to. runc leaves it when
/// `runc create` fails once its init is in the cgroup but a later stage of
/// it outlives runc's clean-up (the `runc init` parent killed: the child in
/// the new pid namespace is still there when runc removes the cgroup, and
/// exits right after). Only empty directories go (rmdir), retried for up
/// to a second while busy; the namespace's parent cgroup stays, as runc
/// leaves it. Paths for systemd (`slice:prefix:name`) and relative ones
/// (below runc's own cgroup) are runc's alone.
pub fn remove_leftover(spec: &serde_json::Value) {
    let Some(path) = spec["linux"]["cgroupsPath"].as_str() else {
        return;
    };
    if !path.starts_with('/') || path.contains(':') {
        return;
    }
    let Ok(relative) = relative_path(path) else {
        return;
    };
    if relative.as_os_str().is_empty() {
        return;
    }
    let Ok(roots) = hierarchies() else { return };
    let mut left: Vec<PathBuf> = roots
        .iter()
        .map(|h| h.join(&relative))
        .filter(|d| d.is_dir())
        .collect();
    for _ in 0..20 {
        left.retain(|dir| match std::fs::remove_dir(dir) {
            Ok(()) => false,
            Err(e) => e.raw_os_error() == Some(libc::EBUSY),
        });
        if left.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::log::line(format_args!(
        "cgroup {path} left in {} hierarchies: still busy",
        left.len()
    ));
}

/// `path` relative to a hierarchy's root; it may not climb out of it.
fn relative_path(path: &str) -> Result<PathBuf, String> {
    let mut relative = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => relative.push(part),
            _ => return Err(format!("shim cgroup {path:?}: invalid path")),
        }
    }
    Ok(relative)
}

/// The mount points of every cgroup (v1) and cgroup2 file system.
fn hierarchies() -> Result<Vec<PathBuf>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    Ok(cgroup_mounts(&text))
}

/// The cgroup mount points in a mountinfo text: the fifth field of the
/// lines whose file system type (after ` - `) is `cgroup` or `cgroup2`.
fn cgroup_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, rest) = line.split_once(" - ")?;
            let fstype = rest.split_whitespace().next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            fields.split_whitespace().nth(4).map(PathBuf::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_mounts_of_a_hybrid_host() {
        let text = "\
25 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw shared:13 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup_mounts(text),
            vec![
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                PathBuf::from("/sys/fs/cgroup/memory"),
            ]
        );
    }

    #[test]
    fn cgroup_paths_stay_inside_the_hierarchy() {
        assert_eq!(relative_path("/a/b").expect("path"), PathBuf::from("a/b"));
        assert_eq!(relative_path("a/./b").expect("path"), PathBuf::from("a/b"));
        assert!(relative_path("/a/../../etc").is_err());
    }

    #[test]
    fn options_name_the_shim_cgroup() {
        use containerd_shim_protos::protobuf::well_known_types::any::Any;
        use containerd_shim_protos::protobuf::Message;
        use containerd_shim_protos::shim::oci::Options;
        assert_eq!(shim_cgroup_from_options(&[]), Ok(None));
        let mut opts = Options::new();
        opts.shim_cgroup = "/berth/shim".into();
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.Options".into();
        any.value = opts.write_to_bytes().expect("encode");
        let bytes = any.write_to_bytes().expect("encode");
        assert_eq!(
            shim_cgroup_from_options(&bytes),
            Ok(Some("/berth/shim".to_string()))
        );
        any.type_url = "other.Options".into();
        let bytes = any.write_to_bytes().expect("encode");
        assert_eq!(shim_cgroup_from_options(&bytes), Ok(None));
        assert!(shim_cgroup_from_options(b"\xff\xff").is_err());
    }
}
