//! A container's mounts and devices, as containerd's CRI `WithMounts` and
//! `WithDevices` add them: CRI mounts win over the pod's files and image
//! volumes with the same destination; all are bind mounts sorted by depth
//! (so `/a` is mounted before `/a/b`), with the propagation asked for; a
//! missing host path is created as a directory (containerd does the same);
//! `/sys/fs/cgroup` is mounted read-only; default mounts a CRI mount
//! replaces, or everything under `/dev` when `/dev` itself is mounted, go.

use berth_core::{Error, Result};
use berth_oci::spec::{DeviceRule, Mount as SpecMount};
use berth_oci::Spec;
use k8s_cri::v1::{Device, Mount, MountPropagation};
use serde_json::{json, Value};
use std::path::{Component, Path, PathBuf};

/// `filepath.Clean` of an absolute container path.
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether a CRI mount has `destination`.
pub(crate) fn in_cri_mounts(destination: &str, mounts: &[Mount]) -> bool {
    mounts
        .iter()
        .any(|m| clean(&m.container_path) == clean(destination))
}

/// The CRI mounts plus the `extra` ones they do not override, sorted by
/// depth.
pub(crate) fn merged(cri: &[Mount], extra: &[Mount]) -> Vec<Mount> {
    let mut mounts = cri.to_vec();
    mounts.extend(
        extra
            .iter()
            .filter(|e| !in_cri_mounts(&e.container_path, cri))
            .cloned(),
    );
    mounts.sort_by_key(|m| clean(&m.container_path).matches('/').count());
    mounts
}

/// Adds the mounts to `spec`.
pub(crate) fn apply(spec: &mut Spec, cri: &[Mount], extra: &[Mount]) -> Result<()> {
    let mounts = merged(cri, extra);
    spec.mounts.push(SpecMount {
        destination: "/sys/fs/cgroup".into(),
        kind: "cgroup".into(),
        source: "cgroup".into(),
        options: ["nosuid", "noexec", "nodev", "relatime", "ro"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    });
    let supplied: Vec<String> = mounts.iter().map(|m| clean(&m.container_path)).collect();
    let dev = supplied.iter().any(|d| d == "/dev");
    spec.mounts.retain(|m| {
        let dst = clean(&m.destination);
        let replaced = supplied.contains(&dst) || (dev && dst.starts_with("/dev/"));
        !replaced
    });
    for mount in &mounts {
        let source = host_source(&mount.host_path)?;
        let mut options = vec!["rbind".to_string()];
        let propagation = MountPropagation::try_from(mount.propagation)
            .unwrap_or(MountPropagation::PropagationPrivate);
        let linux = spec.linux_mut();
        let root_propagation = linux
            .extra
            .get("rootfsPropagation")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match propagation {
            MountPropagation::PropagationPrivate => options.push("rprivate".into()),
            MountPropagation::PropagationBidirectional => {
                ensure_propagation(&source, false)?;
                options.push("rshared".into());
                linux
                    .extra
                    .insert("rootfsPropagation".into(), json!("rshared"));
            }
            MountPropagation::PropagationHostToContainer => {
                ensure_propagation(&source, true)?;
                options.push("rslave".into());
                if root_propagation != "rshared" && root_propagation != "rslave" {
                    linux
                        .extra
                        .insert("rootfsPropagation".into(), json!("rslave"));
                }
            }
        }
        options.push(if mount.readonly { "ro" } else { "rw" }.into());
        spec.mounts.push(SpecMount {
            destination: mount.container_path.clone(),
            kind: "bind".into(),
            source: source.to_string_lossy().into_owned(),
            options,
        });
    }
    Ok(())
}

/// The host path, created as a directory if missing, symlinks resolved.
fn host_source(path: &str) -> Result<PathBuf> {
    if path.is_empty() {
        return Err(Error::invalid_argument("mount host path must be set"));
    }
    let path = Path::new(path);
    if std::fs::symlink_metadata(path).is_err() {
        std::fs::create_dir_all(path).map_err(|e| {
            Error::invalid_argument(format!("failed to mkdir {:?}: {e}", path.display()))
        })?;
    }
    std::fs::canonicalize(path).map_err(|e| {
        Error::invalid_argument(format!(
            "failed to resolve symlink {:?}: {e}",
            path.display()
        ))
    })
}

/// Checks that the mount holding `path` is shared (or, with `slave_ok`,
/// a slave), as bidirectional and host-to-container propagation need.
fn ensure_propagation(path: &Path, slave_ok: bool) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::internal(format!("read mountinfo: {e}")))?;
    let mut best: Option<(&str, Vec<&str>)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else { continue };
        let optional: Vec<&str> = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .copied()
            .collect();
        if path.starts_with(point) && best.as_ref().is_none_or(|(b, _)| point.len() >= b.len()) {
            best = Some((point, optional));
        }
    }
    let (point, optional) = best.unwrap_or(("/", Vec::new()));
    let ok = optional
        .iter()
        .any(|o| o.starts_with("shared:") || (slave_ok && o.starts_with("master:")));
    if ok {
        return Ok(());
    }
    let kind = if slave_ok {
        "shared or slave"
    } else {
        "shared"
    };
    Err(Error::invalid_argument(format!(
        "path {:?} is mounted on {point:?} but it is not a {kind} mount",
        path.display()
    )))
}

/// Adds the CRI devices: each device node (or every node under a
/// directory) to `linux.devices`, with a cgroup rule allowing its
/// permissions.
pub(crate) fn apply_devices(spec: &mut Spec, devices: &[Device]) -> Result<()> {
    for device in devices {
        let host = std::fs::canonicalize(&device.host_path)
            .map_err(|e| Error::invalid_argument(format!("device {:?}: {e}", device.host_path)))?;
        let target = if device.container_path.is_empty() {
            host.clone()
        } else {
            PathBuf::from(&device.container_path)
        };
        for (node, path) in device_nodes(&host, &target)? {
            add_device(spec, &node, &path, &device.permissions)?;
        }
    }
    Ok(())
}

/// Directories under `/dev` that hold no devices to pass on (containerd's
/// `getDevices` skips them, and `/dev/console`).
const SKIPPED_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// `WithHostDevices`: every device node of the host's `/dev`, for a
/// privileged container (whose cgroup already allows every device).
pub(crate) fn apply_host_devices(spec: &mut Spec) -> Result<()> {
    for (node, path) in device_nodes(Path::new("/dev"), Path::new("/dev"))? {
        // A node that went away meanwhile is skipped.
        if let Ok(entry) = device_entry(&node, &path) {
            push_device(spec, entry.0);
        }
    }
    Ok(())
}

/// The device nodes at `host` (a node, or a directory searched
/// recursively) with their container paths.
fn device_nodes(host: &Path, target: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(host)
        .map_err(|e| Error::invalid_argument(format!("device {:?}: {e}", host.display())))?;
    let kind = meta.file_type();
    if kind.is_char_device() || kind.is_block_device() {
        return Ok(vec![(host.to_path_buf(), target.to_path_buf())]);
    }
    if !kind.is_dir() {
        return Err(Error::invalid_argument(format!(
            "{:?} is not a device node",
            host.display()
        )));
    }
    let mut nodes = Vec::new();
    let entries = std::fs::read_dir(host)
        .map_err(|e| Error::invalid_argument(format!("device {:?}: {e}", host.display())))?;
    for entry in entries.flatten() {
        let t = entry.file_type().ok();
        let path = entry.path();
        let name = entry.file_name();
        let sub = target.join(&name);
        let name = name.to_string_lossy();
        if t.is_some_and(|t| t.is_dir()) {
            if SKIPPED_DIRS.contains(&name.as_ref()) {
                continue;
            }
            nodes.extend(device_nodes(&path, &sub)?);
        } else if name != "console" && t.is_some_and(|t| t.is_char_device() || t.is_block_device())
        {
            nodes.push((path, sub));
        }
    }
    Ok(nodes)
}

fn add_device(spec: &mut Spec, host: &Path, target: &Path, permissions: &str) -> Result<()> {
    let (entry, rule) = device_entry(host, target)?;
    push_device(spec, entry);
    spec.resources_mut().devices.push(DeviceRule {
        access: permissions.to_string(),
        ..rule
    });
    Ok(())
}

/// `linux.devices`' entry for the node at `host`, and the cgroup rule
/// that allows it.
fn device_entry(host: &Path, target: &Path) -> Result<(Value, DeviceRule)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(host)
        .map_err(|e| Error::invalid_argument(format!("device {:?}: {e}", host.display())))?;
    let kind = if meta.file_type().is_block_device() {
        "b"
    } else {
        "c"
    };
    let rdev = meta.rdev();
    let (major, minor) = (
        nix::sys::stat::major(rdev) as i64,
        nix::sys::stat::minor(rdev) as i64,
    );
    let entry = json!({
        "path": target.to_string_lossy(),
        "type": kind,
        "major": major,
        "minor": minor,
        "fileMode": meta.mode() & 0o7777 | if kind == "b" { 0o060000 } else { 0o020000 },
        "uid": meta.uid(),
        "gid": meta.gid(),
    });
    let rule = DeviceRule {
        allow: true,
        kind: Some(kind.into()),
        major: Some(major),
        minor: Some(minor),
        access: String::new(),
    };
    Ok((entry, rule))
}

fn push_device(spec: &mut Spec, entry: Value) {
    let list = spec
        .linux_mut()
        .extra
        .entry("devices")
        .or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        list.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(dst: &str, src: &str) -> Mount {
        Mount {
            container_path: dst.into(),
            host_path: src.into(),
            ..Mount::default()
        }
    }

    #[test]
    fn cri_mounts_win_and_are_sorted_by_depth() {
        let cri = [mount("/a/b/c", "/x"), mount("/etc/hosts", "/mine")];
        let extra = [
            mount("/etc/hosts/", "/pod"),
            mount("/etc/resolv.conf", "/r"),
        ];
        let got: Vec<(String, String)> = merged(&cri, &extra)
            .into_iter()
            .map(|m| (m.container_path, m.host_path))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/etc/hosts".to_string(), "/mine".to_string()),
                ("/etc/resolv.conf".into(), "/r".into()),
                ("/a/b/c".into(), "/x".into()),
            ]
        );
        assert_eq!(clean("/a//b/../c/"), "/a/c");
    }

    #[test]
    fn binds_get_propagation_and_access_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("made/by/mount");
        let mut spec = berth_oci::default_spec("k8s.io", "c");
        let mut ro = mount("/data", &dir.path().to_string_lossy());
        ro.readonly = true;
        let created = mount("/new", &missing.to_string_lossy());
        let dev = mount("/dev", "/dev");
        apply(&mut spec, &[ro, created, dev], &[]).expect("apply");
        assert!(missing.is_dir());
        let find = |dst: &str| {
            spec.mounts
                .iter()
                .find(|m| m.destination == dst)
                .unwrap_or_else(|| panic!("{dst}"))
                .clone()
        };
        assert_eq!(find("/data").options, ["rbind", "rprivate", "ro"]);
        assert_eq!(find("/new").options, ["rbind", "rprivate", "rw"]);
        assert_eq!(find("/dev").kind, "bind");
        assert!(find("/sys/fs/cgroup").options.contains(&"ro".to_string()));
        // A supplied /dev replaces every default mount under it.
        assert!(!spec.mounts.iter().any(|m| m.destination == "/dev/pts"));
    }

    #[test]
    fn host_to_container_propagation_needs_a_shared_or_slave_mount() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = berth_oci::default_spec("k8s.io", "c");
        let mut m = mount("/data", &dir.path().to_string_lossy());
        m.propagation = MountPropagation::PropagationHostToContainer as i32;
        match apply(&mut spec, &[m], &[]) {
            Ok(()) => {
                let linux = spec.linux.as_ref().expect("linux");
                assert_eq!(linux.extra["rootfsPropagation"], "rslave");
            }
            Err(err) => assert!(err.to_string().contains("not a shared or slave"), "{err}"),
        }
    }

    #[test]
    fn devices_become_nodes_and_cgroup_rules() {
        let mut spec = berth_oci::default_spec("k8s.io", "c");
        let device = Device {
            container_path: "/dev/mynull".into(),
            host_path: "/dev/null".into(),
            permissions: "rwm".into(),
        };
        apply_devices(&mut spec, &[device]).expect("devices");
        let linux = spec.linux.as_ref().expect("linux");
        let node = &linux.extra["devices"][0];
        assert_eq!(node["path"], "/dev/mynull");
        assert_eq!(
            (node["major"].as_i64(), node["minor"].as_i64()),
            (Some(1), Some(3))
        );
        let rule = linux
            .resources
            .as_ref()
            .expect("resources")
            .devices
            .last()
            .expect("rule")
            .clone();
        assert!(rule.allow);
        assert_eq!(rule.access, "rwm");
        let mut privileged = berth_oci::default_spec("k8s.io", "p");
        apply_host_devices(&mut privileged).expect("host devices");
        let devices = privileged.linux.expect("linux").extra["devices"].clone();
        let paths: Vec<&str> = devices
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|d| d["path"].as_str())
            .collect();
        assert!(paths.contains(&"/dev/null"), "{paths:?}");
        assert!(!paths
            .iter()
            .any(|p| p.starts_with("/dev/pts/") || *p == "/dev/console"));
        let bad = Device {
            container_path: "/x".into(),
            host_path: "/nonexistent-device".into(),
            permissions: "r".into(),
        };
        assert!(apply_devices(&mut spec, &[bad]).is_err());
    }
}
