//! Network namespaces that outlive their creator: a thread unshares a new
//! network namespace and bind-mounts its `/proc/<pid>/task/<tid>/ns/net` on
//! a file, as `ip netns add` and containerd's CRI do. The mount keeps the
//! namespace alive after the thread ends and across daemon restarts, and
//! its path is what runc joins and what `CNI_NETNS` names.

use std::path::Path;

use berth_core::{Error, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Creates a network namespace bind-mounted at `path` (a new file; its
/// directory is made). On failure nothing is left.
pub fn create(path: &Path) -> Result<()> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::unavailable(format!("netns {}: {what}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail("create directory", &e))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::already_exists(format!("netns {}", path.display()))
            } else {
                fail("create mount point", &e)
            }
        })?;
    let target = path.to_path_buf();
    // The unshare changes only this thread's namespace; the thread ends
    // right after, so no other work ever runs in the new namespace.
    let mounted = std::thread::spawn(move || -> std::result::Result<(), String> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
        let source = format!(
            "/proc/{}/task/{}/ns/net",
            std::process::id(),
            nix::unistd::gettid()
        );
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind mount: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("thread panicked".into()));
    if let Err(e) = mounted {
        let _ = std::fs::remove_file(path);
        return Err(fail("create", &e));
    }
    Ok(())
}

/// Unmounts and removes a namespace made by [`create`]; absent is fine.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::unavailable(format!(
                "unmount netns {}: {e}",
                path.display()
            )))
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::unavailable(format!(
            "remove netns {}: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Whether `path` is a mounted network namespace.
pub fn is_netns(path: &Path) -> bool {
    // nsfs files have the NSFS magic; a plain file of the mount point does not.
    match nix::sys::statfs::statfs(path) {
        Ok(fs) => fs.filesystem_type().0 == 0x6e73_6673,
        Err(_) => false,
    }
}
