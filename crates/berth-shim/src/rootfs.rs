//! The container's root filesystem and spec adjustments made before runc.
//!
//! The create request carries the rootfs as mounts (an overlay of snapshot
//! layers, or a bind); the shim mounts them on `<bundle>/rootfs` and
//! unmounts on delete. A request without mounts (`ctr run --rootfs DIR`) has
//! the root path in the spec and needs nothing.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use containerd_shim_protos::api::Mount;
use nix::mount::{umount2, MntFlags};
use tokio::task::JoinHandle;

/// Mounts `mounts` on `target` in order, through `berth_core::mount` (the
/// one implementation of mount options, shared with the daemon's differ).
fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    let mounts: Vec<berth_core::mount::Mount> = mounts
        .iter()
        .map(|m| berth_core::mount::Mount {
            mount_type: m.type_.clone(),
            source: m.source.clone(),
            target: m.target.clone(),
            options: m.options.clone(),
        })
        .collect();
    berth_core::mount::mount_all(&mounts, target).map_err(|e| e.to_string())
}

/// Unmounts everything stacked on `target`, detaching lazily what is busy;
/// a target that is not a mount point is fine.
pub fn unmount_all(target: &Path) {
    for _ in 0..32 {
        if berth_core::mount::unmount(target).is_err() {
            // Busy (something still holds it) or not mounted at all: a lazy
            // detach handles the first and fails harmlessly on the second.
            if umount2(target, MntFlags::MNT_DETACH).is_err() {
                return;
            }
        }
    }
}

/// A rootfs mounted on `<bundle>/rootfs`, unmounted once.
///
/// Unmounting an overlay syncs the whole filesystem holding its upper
/// directory (the kernel's `ovl_sync_fs`), which costs a journal commit and
/// a disk cache flush even when little is dirty. So the unmount may start in
/// the background as soon as nothing can use the rootfs any more (the init
/// exited and took every process of its pid namespace with it), overlapping
/// the client's Wait, Get and Delete; Delete then only waits for it to end.
pub struct MountedRootfs {
    target: PathBuf,
    unmount: Mutex<Unmount>,
}

enum Unmount {
    NotStarted,
    Running(JoinHandle<()>),
    Done,
}

impl MountedRootfs {
    /// Mounts `mounts` on `target`.
    pub fn mount(mounts: &[Mount], target: &Path) -> Result<MountedRootfs, String> {
        mount_all(mounts, target)?;
        Ok(MountedRootfs {
            target: target.to_path_buf(),
            unmount: Mutex::new(Unmount::NotStarted),
        })
    }

    /// Starts unmounting in the background unless it has started already.
    pub fn start_unmount(&self) {
        let mut state = self.unmount.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, Unmount::NotStarted) {
            let target = self.target.clone();
            *state = Unmount::Running(tokio::task::spawn_blocking(move || unmount_all(&target)));
        }
    }

    /// Unmounts (or waits for the unmount already started to finish).
    pub async fn unmount(&self) {
        self.start_unmount();
        let running = {
            let mut state = self.unmount.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *state, Unmount::Done)
        };
        if let Unmount::Running(task) = running {
            let _ = task.await;
        }
    }
}

/// This process's `oom_score_adj`.
pub fn own_oom_score_adj() -> i64 {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Raises `process.oomScoreAdj` to at least `floor` in an OCI process
/// object. Lowering a score needs CAP_SYS_RESOURCE, which a shim may not
/// have; runc would then fail (containerd's `restrict_oom_score_adj`).
/// Returns whether it changed anything.
pub fn clamp_oom_score_adj(process: &mut serde_json::Value, floor: i64) -> bool {
    let Some(score) = process.get("oomScoreAdj").and_then(|v| v.as_i64()) else {
        return false;
    };
    if score >= floor {
        return false;
    }
    process["oomScoreAdj"] = floor.into();
    true
}

/// Applies [`clamp_oom_score_adj`] to `<bundle>/config.json`; returns the
/// spec.
pub fn clamp_bundle_spec(bundle: &Path, floor: i64) -> Result<serde_json::Value, String> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    if clamp_oom_score_adj(&mut spec["process"], floor) {
        let text = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(spec)
}

/// Whether an OCI spec has `poststop` hooks (run by `runc delete`, and free
/// to look at the rootfs).
pub fn has_poststop_hooks(spec: &serde_json::Value) -> bool {
    spec["hooks"]["poststop"]
        .as_array()
        .is_some_and(|hooks| !hooks.is_empty())
}

/// Whether an OCI spec gives the container a new pid namespace (a `pid`
/// namespace without a `path` to join).
pub fn has_own_pid_namespace(spec: &serde_json::Value) -> bool {
    spec["linux"]["namespaces"]
        .as_array()
        .is_some_and(|namespaces| {
            namespaces
                .iter()
                .any(|ns| ns["type"] == "pid" && ns["path"].as_str().is_none_or(str::is_empty))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_namespace_is_own_unless_joined() {
        let own =
            serde_json::json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}});
        assert!(has_own_pid_namespace(&own));
        let joined = serde_json::json!({"linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}});
        assert!(!has_own_pid_namespace(&joined));
        let host = serde_json::json!({"linux": {"namespaces": [{"type": "network"}]}});
        assert!(!has_own_pid_namespace(&host));
        assert!(!has_own_pid_namespace(&serde_json::json!({})));
    }

    #[test]
    fn poststop_hooks_are_found() {
        let hooks = serde_json::json!({"hooks": {"poststop": [{"path": "/bin/true"}]}});
        assert!(has_poststop_hooks(&hooks));
        let empty = serde_json::json!({"hooks": {"poststop": [], "prestart": [{"path": "/x"}]}});
        assert!(!has_poststop_hooks(&empty));
        assert!(!has_poststop_hooks(&serde_json::json!({})));
    }

    #[test]
    fn oom_score_below_own_is_raised() {
        let mut p = serde_json::json!({"oomScoreAdj": -999});
        assert!(clamp_oom_score_adj(&mut p, 0));
        assert_eq!(p["oomScoreAdj"], 0);
        let mut p = serde_json::json!({"oomScoreAdj": 500});
        assert!(!clamp_oom_score_adj(&mut p, 0));
        let mut p = serde_json::json!({"args": ["sh"]});
        assert!(!clamp_oom_score_adj(&mut p, 0));
    }
}
