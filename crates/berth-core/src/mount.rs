//! Mounts: containerd's `mount.Mount` and the code that performs one.
//!
//! A snapshotter never mounts anything itself; it *returns* the mounts that
//! would assemble a snapshot (`overlay` with its `lowerdir`/`upperdir`/
//! `workdir` options, or a `bind` of one directory), so that whoever needs
//! the tree — the diff applier, a shim, `ctr snapshots mounts` — mounts it
//! where it likes. [`mount_all`] and [`unmount`] do that on Linux.

use crate::Result;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One mount: what `mount -t TYPE -o OPTIONS SOURCE TARGET` would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    /// The filesystem type, e.g. `overlay` or `bind`.
    pub mount_type: String,
    /// The source: a directory for `bind`, `overlay` for overlay.
    pub source: String,
    /// Where to mount, relative to the mount point; usually empty.
    pub target: String,
    /// Options as `mount -o` takes them (`ro`, `rbind`, `lowerdir=…`).
    pub options: Vec<String>,
}

impl Mount {
    /// Whether this mount is read-only (`ro` among its options).
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Mounts `mounts` on `target` in order (later ones on top).
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        let dest = if m.target.is_empty() {
            target.to_path_buf()
        } else {
            target.join(m.target.trim_start_matches('/'))
        };
        sys::mount(m, &dest)?;
    }
    Ok(())
}

/// Unmounts `target`: a plain unmount (no lazy detach), retried while the
/// mount is briefly busy, as containerd's `mount.Unmount` with no flags.
pub fn unmount(target: &Path) -> Result<()> {
    sys::unmount(target)
}

/// A private mount point with `mounts` mounted on it, for as long as the
/// guard lives: containerd's `mount.WithTempMount`. Dropping it unmounts
/// (lazily, if busy) and removes the directory, on every path, panics
/// included; [`TempMount::unmount`] does the same and reports errors.
///
/// ```no_run
/// # fn demo(mounts: &[berth_core::mount::Mount]) -> berth_core::Result<()> {
/// let root = berth_core::mount::TempMount::new(mounts, &std::env::temp_dir())?;
/// std::fs::write(root.path().join("hello"), "layer data")?;
/// root.unmount()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TempMount {
    path: PathBuf,
    mounted: bool,
}

impl TempMount {
    /// Mounts `mounts` on a new directory under `parent`.
    pub fn new(mounts: &[Mount], parent: &Path) -> Result<TempMount> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = parent.join(format!(
            "berth-mount-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        let mut guard = TempMount {
            path,
            mounted: false,
        };
        mount_all(mounts, &guard.path)?;
        guard.mounted = true;
        Ok(guard)
    }

    /// Where the tree is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts and removes the directory, reporting failures.
    pub fn unmount(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        if self.mounted {
            unmount(&self.path)?;
            self.mounted = false;
        }
        match std::fs::remove_dir(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if self.release().is_err() && self.mounted {
            sys::detach(&self.path);
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use super::Mount;
    use crate::{Error, Result};
    use nix::mount::{umount2, MntFlags, MsFlags};
    use std::path::Path;

    /// Splits options into mount flags and the data string.
    fn parse(options: &[String]) -> (MsFlags, Vec<&str>) {
        let mut flags = MsFlags::empty();
        let mut data = Vec::new();
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
                "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
                other => data.push(other),
            }
        }
        (flags, data)
    }

    pub(super) fn mount(m: &Mount, target: &Path) -> Result<()> {
        let (mut flags, data) = parse(&m.options);
        let data = data.join(",");
        if m.mount_type == "bind" {
            flags |= MsFlags::MS_BIND;
        }
        let fstype = (!flags.contains(MsFlags::MS_BIND)).then_some(m.mount_type.as_str());
        let fail = |e: nix::Error| {
            Error::internal(format!(
                "mount {} ({}) on {}: {e}",
                m.source,
                m.mount_type,
                target.display()
            ))
        };
        if m.mount_type == "overlay" && data.len() >= PAGE_SIZE {
            return overlay_by_fsconfig(m, target);
        }
        let data_arg = (!data.is_empty()).then_some(data.as_str());
        nix::mount::mount(Some(m.source.as_str()), target, fstype, flags, data_arg)
            .map_err(fail)?;
        // A bind mount ignores MS_RDONLY until it is remounted read-only.
        if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
            let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>)
                .map_err(fail)?;
        }
        Ok(())
    }

    /// The kernel copies `mount(2)` data into one page.
    const PAGE_SIZE: usize = 4096;

    /// Mounts an overlay whose options do not fit in a page through the
    /// new mount API (Linux 6.8+), which takes each lower directory as its
    /// own `lowerdir+` parameter, so the list has no length limit. (On older
    /// kernels containerd shortens the paths and mounts from a child that
    /// changed its working directory; berth's overlay snapshotter keeps its
    /// paths short with numeric ids instead.)
    fn overlay_by_fsconfig(m: &Mount, target: &Path) -> Result<()> {
        use rustix::fs::CWD;
        use rustix::mount::{
            fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
            FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
        };
        let fail = |what: &str, e: rustix::io::Errno| {
            Error::internal(format!(
                "mount overlay on {} ({what}): {e}",
                target.display()
            ))
        };
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| fail("fsopen", e))?;
        let mut attrs = MountAttrFlags::empty();
        for option in m.options.iter().map(String::as_str) {
            match option.split_once('=') {
                Some(("lowerdir", dirs)) => {
                    for dir in dirs.split(':') {
                        fsconfig_set_string(&fs, "lowerdir+", dir)
                            .map_err(|e| fail("lowerdir+", e))?;
                    }
                }
                Some((key, value)) => {
                    fsconfig_set_string(&fs, key, value).map_err(|e| fail(key, e))?
                }
                None if option == "ro" => attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY,
                None if option == "rw" => {}
                None => fsconfig_set_flag(&fs, option).map_err(|e| fail(option, e))?,
            }
        }
        fsconfig_create(&fs).map_err(|e| fail("create", e))?;
        let mnt =
            fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| fail("fsmount", e))?;
        move_mount(
            &mnt,
            "",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| fail("move_mount", e))
    }

    /// Unmounts `target`, retrying while it is busy for up to 2.5 s, as
    /// containerd's `mount.Unmount` does: a file held open in the tree by a
    /// process that another thread has just forked (and that has not yet
    /// exec'd, closing its CLOEXEC descriptors) keeps the mount busy briefly.
    pub(super) fn unmount(target: &Path) -> Result<()> {
        const ATTEMPTS: u32 = 50;
        let mut attempt = 1;
        loop {
            match umount2(target, MntFlags::empty()) {
                Err(nix::errno::Errno::EBUSY) if attempt < ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                result => {
                    return result.map_err(|e| {
                        Error::internal(format!("unmount {}: {e}", target.display()))
                    });
                }
            }
        }
    }

    /// Lazily detaches `target`, ignoring errors (cleanup paths).
    pub(super) fn detach(target: &Path) {
        let _ = umount2(target, MntFlags::MNT_DETACH);
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::Mount;
    use crate::{Error, Result};
    use std::path::Path;

    pub(super) fn mount(_: &Mount, _: &Path) -> Result<()> {
        Err(Error::not_implemented("mounts need Linux"))
    }

    pub(super) fn unmount(_: &Path) -> Result<()> {
        Err(Error::not_implemented("mounts need Linux"))
    }

    pub(super) fn detach(_: &Path) {}
}
