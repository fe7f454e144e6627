//! The container's root filesystem and spec adjustments made before runc.
//!
//! The create request carries the rootfs as mounts (an overlay of snapshot
//! layers, or a bind); the shim mounts them on `<bundle>/rootfs` and
//! unmounts on delete. A request without mounts (`ctr run --rootfs DIR`) has
//! the root path in the spec and needs nothing.

use std::path::Path;

use containerd_shim_protos::api::Mount;
use nix::mount::{umount2, MntFlags, MsFlags};

/// Mounts `mounts` on `target` in order.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    for m in mounts {
        mount_one(m, target).map_err(|e| {
            format!(
                "mount {} ({}) on {}: {e}",
                m.source,
                m.type_,
                target.display()
            )
        })?;
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> nix::Result<()> {
    let (mut flags, data) = parse_options(&m.options);
    if m.type_ == "bind" {
        flags |= MsFlags::MS_BIND;
    }
    let bind = flags.contains(MsFlags::MS_BIND);
    let fstype = (!bind).then_some(m.type_.as_str());
    let data = (!data.is_empty()).then_some(data.as_str());
    nix::mount::mount(Some(m.source.as_str()), target, fstype, flags, data)?;
    if bind && flags.contains(MsFlags::MS_RDONLY) {
        let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>)?;
    }
    Ok(())
}

/// Splits `mount -o` options into flags and the filesystem's data string.
fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "defaults" => flags &= !MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Unmounts everything stacked on `target` (lazily if busy); a target that
/// is not a mount point is fine.
pub fn unmount_all(target: &Path) {
    for _ in 0..32 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(nix::Error::EBUSY) => {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
            Err(_) => return,
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

/// Applies [`clamp_oom_score_adj`] to `<bundle>/config.json`.
pub fn clamp_bundle_spec(bundle: &Path, floor: i64) -> Result<(), String> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    if clamp_oom_score_adj(&mut spec["process"], floor) {
        let text = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["ro", "lowerdir=/a:/b", "upperdir=/u", "nosuid"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = parse_options(&opts);
        assert!(flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(data, "lowerdir=/a:/b,upperdir=/u");
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
