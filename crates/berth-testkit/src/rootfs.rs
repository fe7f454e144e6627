//! A minimal root filesystem from Debian's static busybox.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{Context, Result};

/// Where Debian's `busybox-static` installs the binary.
const BUSYBOX: &str = "/bin/busybox";

/// The applets linked into `bin/`: a shell and the commands tests run in it.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ash", "cat", "chmod", "cp", "date", "echo", "env", "false", "grep", "head", "hostname",
    "id", "ip", "kill", "ls", "mkdir", "mount", "mv", "nc", "ping", "printf", "ps", "pwd", "rm",
    "sed", "sleep", "stat", "tail", "test", "top", "touch", "true", "uname", "wc", "wget",
];

/// Builds a busybox root filesystem in `dir` (created if missing): `bin/busybox`
/// with a symlink per [`BUSYBOX_APPLETS`] entry, the mount-point directories a
/// runtime expects (`proc`, `sys`, `dev`, `tmp`, …), and an `/etc/passwd` and
/// `/etc/group` that know root, so user lookups in the rootfs succeed.
/// Running it again on the same directory is harmless.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    for sub in [
        "bin", "dev", "etc", "proc", "root", "run", "sys", "tmp", "var",
    ] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    let target = dir.join("bin/busybox");
    fs::copy(BUSYBOX, &target).with_context(|| {
        format!(
            "copying {BUSYBOX} to {} (install busybox-static)",
            target.display()
        )
    })?;
    for applet in BUSYBOX_APPLETS {
        let link = dir.join("bin").join(applet);
        if link.symlink_metadata().is_err() {
            symlink("busybox", &link).with_context(|| format!("linking {}", link.display()))?;
        }
    }
    write(dir, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")?;
    write(dir, "etc/group", "root:x:0:\n")?;
    Ok(())
}

fn write(dir: &Path, rel: &str, contents: &str) -> Result<()> {
    let path = dir.join(rel);
    fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn rootfs_has_a_working_shell() {
        let dir = tempfile::tempdir().expect("tempdir");
        busybox_rootfs(dir.path()).expect("build rootfs");
        busybox_rootfs(dir.path()).expect("build rootfs");
        let out = Command::new(dir.path().join("bin/sh"))
            .args(["-c", "echo hello"])
            .output()
            .expect("run the rootfs shell");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
        assert!(dir.path().join("proc").is_dir());
    }
}
