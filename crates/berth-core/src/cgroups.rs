//! Reading a cgroup's figures — a task's for the metrics endpoint, a
//! container's or a pod's for the CRI's stats — from the cgroup file system, named as
//! containerd 1.6's cgroup metrics name them (`metrics/cgroups/v1` and
//! `v2` in its tree: `container_` + name + unit).
//!
//! A task's cgroup is the spec's `linux.cgroupsPath` when it is a plain
//! absolute path (containerd's `/<namespace>/<id>`), found under every
//! hierarchy: on a v1 or hybrid host each controller has its own at
//! `/sys/fs/cgroup/<controller>/`; on a unified (v2) host there is one,
//! `/sys/fs/cgroup/`. Any other form (systemd's `slice:prefix:name`, a
//! relative path) is resolved through the task's init process,
//! `/proc/<pid>/cgroup`.

mod v1;
mod v2;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The controllers whose figures are read on a v1 host.
const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "pids", "blkio"];

/// One series of one task: a metric, its extra labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The full metric name, `container_cpu_total_nanoseconds`.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Labels beyond `container_id` and `namespace` (`cpu`, `op`, …).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// Where a task's cgroup is.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// v1: a directory per controller.
    V1(HashMap<String, PathBuf>),
    /// v2: the one directory.
    V2(PathBuf),
}

/// Whether the host has only the unified (v2) hierarchy.
pub fn unified() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// The cgroup of a task whose spec names `cgroups_path` and whose init
/// process is `pid`.
pub fn locate(cgroups_path: Option<&str>, pid: u32) -> Option<Location> {
    let unified = unified();
    match cgroups_path.filter(|p| p.starts_with('/') && !p.contains(':')) {
        Some(path) => {
            let relative = path.trim_start_matches('/');
            Some(if unified {
                Location::V2(Path::new(CGROUP_ROOT).join(relative))
            } else {
                Location::V1(
                    V1_CONTROLLERS
                        .iter()
                        .map(|c| (c.to_string(), Path::new(CGROUP_ROOT).join(c).join(relative)))
                        .collect(),
                )
            })
        }
        None if pid > 0 => {
            let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            Some(from_proc(&text, unified))
        }
        None => None,
    }
}

/// The location `/proc/<pid>/cgroup` gives.
fn from_proc(text: &str, unified: bool) -> Location {
    if unified {
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/");
        return Location::V2(Path::new(CGROUP_ROOT).join(path.trim_start_matches('/')));
    }
    let mut dirs = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        for controller in controllers
            .split(',')
            .filter(|c| V1_CONTROLLERS.contains(c))
        {
            let dir = Path::new(CGROUP_ROOT)
                .join(controllers)
                .join(path.trim_start_matches('/'));
            dirs.insert(controller.to_string(), dir);
        }
    }
    Location::V1(dirs)
}

/// The task's figures; none when its cgroup is gone (it was deleted).
pub fn read(location: &Location) -> Vec<Sample> {
    match location {
        Location::V1(dirs) => {
            if !dirs.values().any(|d| d.is_dir()) {
                return Vec::new();
            }
            v1::read(dirs)
        }
        Location::V2(dir) if dir.is_dir() => v2::read(dir),
        Location::V2(_) => Vec::new(),
    }
}

/// The value of the first sample named `name` (a series without extra
/// labels: `container_memory_usage_usage_bytes`, …).
pub fn value(samples: &[Sample], name: &str) -> Option<u64> {
    samples
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.value as u64)
}

/// A file holding one number; `max` and unreadable files read as 0, as
/// containerd's cgroups library reports an unlimited limit.
fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    Some(text.trim().parse().unwrap_or(0))
}

/// `key value` lines (`memory.stat`, `cpu.stat`, …).
fn read_kv(dir: &Path, file: &str) -> HashMap<String, u64> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

/// A sample without extra labels.
fn sample(name: &'static str, help: &'static str, value: u64) -> Sample {
    Sample {
        name,
        help,
        labels: Vec::new(),
        value: value as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_splits_joined_controllers() {
        let text = "12:cpu,cpuacct:/default/c1\n5:memory:/default/c1\n1:name=systemd:/x\n0::/u\n";
        let Location::V1(dirs) = from_proc(text, false) else {
            panic!("expected v1");
        };
        assert_eq!(
            dirs["cpuacct"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct/default/c1")
        );
        assert_eq!(
            dirs["memory"],
            Path::new("/sys/fs/cgroup/memory/default/c1")
        );
        assert_eq!(dirs.len(), 3);
        assert_eq!(
            from_proc(text, true),
            Location::V2(PathBuf::from("/sys/fs/cgroup/u"))
        );
    }

    #[test]
    fn an_absolute_path_is_found_under_each_hierarchy() {
        let location = locate(Some("/default/c1"), 0).expect("a location");
        match location {
            Location::V1(dirs) => {
                assert_eq!(dirs["pids"], Path::new("/sys/fs/cgroup/pids/default/c1"))
            }
            Location::V2(dir) => assert_eq!(dir, Path::new("/sys/fs/cgroup/default/c1")),
        }
        assert_eq!(locate(Some("system.slice:berth:c1"), 0), None);
    }
}
