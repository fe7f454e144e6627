//! Filesystem helpers: disk usage (containerd's `fs.DiskUsage`) and a
//! tree copy that keeps what a layer needs (containerd's `fs.CopyDir`).

use berth_core::snapshots::Usage;
use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Blocks and inodes used under `root` (each inode counted once).
pub(crate) fn disk_usage(root: &Path) -> io::Result<Usage> {
    let mut seen = HashSet::new();
    let mut usage = Usage::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        if seen.insert((meta.dev(), meta.ino())) {
            usage.inodes += 1;
            usage.size += i64::try_from(meta.blocks() * 512).unwrap_or(i64::MAX);
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(usage)
}

/// Copies the tree `src` into the existing directory `dst`: regular files,
/// directories, symlinks, hard links, device nodes and FIFOs, with owners,
/// permissions, extended attributes (file capabilities, ACLs, `user.*`,
/// `trusted.*`) and modification times.
pub(crate) fn copy_dir(src: &Path, dst: &Path) -> io::Result<()> {
    let mut links = HashMap::new();
    copy_entries(src, dst, &mut links)?;
    copy_attributes(src, &fs::symlink_metadata(src)?, dst)
}

fn copy_entries(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from)?;
        let file_type = meta.file_type();
        if file_type.is_dir() {
            fs::create_dir(&to)?;
            copy_entries(&from, &to, links)?;
        } else if meta.nlink() > 1 && !file_type.is_dir() {
            match links.get(&(meta.dev(), meta.ino())) {
                Some(first) => {
                    fs::hard_link(first, &to)?;
                    continue;
                }
                None => {
                    links.insert((meta.dev(), meta.ino()), to.clone());
                    copy_one(&from, &to, &meta)?;
                }
            }
        } else {
            copy_one(&from, &to, &meta)?;
        }
        copy_attributes(&from, &meta, &to)?;
    }
    Ok(())
}

fn copy_one(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)
    } else if file_type.is_file() {
        fs::copy(from, to).map(|_| ())
    } else {
        let kind = SFlag::from_bits_truncate(meta.mode() & SFlag::S_IFMT.bits());
        let perm = Mode::from_bits_truncate(meta.mode() & 0o7777);
        mknod(to, kind, perm, meta.rdev()).map_err(io::Error::from)
    }
}

fn copy_attributes(from: &Path, meta: &fs::Metadata, to: &Path) -> io::Result<()> {
    // chown clears setuid/setgid bits and `security.capability`: it goes
    // first, then the mode and the extended attributes.
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    copy_xattrs(from, to)?;
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        to,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

/// Copies every extended attribute of `from` to `to` (neither followed if
/// a symlink). A filesystem without xattr support has none to copy; one
/// that cannot store an attribute the source has is an error, as in
/// containerd's `fs.CopyDir`.
fn copy_xattrs(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{lgetxattr, lgetxattr_query, llistxattr, llistxattr_query, lsetxattr};
    let unsupported = |e: &rustix::io::Errno| *e == rustix::io::Errno::NOTSUP;
    let size = match llistxattr_query(from) {
        Ok(0) => return Ok(()),
        Ok(size) => size,
        Err(e) if unsupported(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; size];
    let n = llistxattr(from, &mut names[..])?;
    names.truncate(n);
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::OsStr::from_bytes(name);
        let len = match lgetxattr_query(from, name) {
            Ok(len) => len,
            // Removed since it was listed.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; len];
        let n = lgetxattr(from, name, &mut value[..])?;
        value.truncate(n);
        lsetxattr(to, name, &value, rustix::fs::XattrFlags::empty()).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "copy xattr {} to {}: {e}",
                    name.to_string_lossy(),
                    to.display()
                ),
            )
        })?;
    }
    Ok(())
}

/// Removes `path` and everything under it; absent is fine.
pub(crate) fn remove_all(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn copy_keeps_links_modes_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d/f"), b"data").unwrap();
        fs::set_permissions(src.join("d/f"), fs::Permissions::from_mode(0o741)).unwrap();
        fs::hard_link(src.join("d/f"), src.join("h")).unwrap();
        std::os::unix::fs::symlink("d/f", src.join("s")).unwrap();
        fs::create_dir(&dst).unwrap();
        copy_dir(&src, &dst).unwrap();
        assert_eq!(fs::read(dst.join("d/f")).unwrap(), b"data");
        let meta = fs::metadata(dst.join("d/f")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o741);
        assert_eq!(meta.ino(), fs::metadata(dst.join("h")).unwrap().ino());
        assert_eq!(fs::read_link(dst.join("s")).unwrap(), Path::new("d/f"));
        let usage = disk_usage(&dst).unwrap();
        assert_eq!(usage.inodes, 4, "dst, d, f (= h), s");
    }

    #[test]
    fn copy_keeps_extended_attributes() {
        use rustix::fs::{lgetxattr, lsetxattr, XattrFlags};
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d/f"), b"data").unwrap();
        let set = |p: &Path, k: &str, v: &[u8]| lsetxattr(p, k, v, XattrFlags::empty());
        if let Err(e) = set(&src.join("d/f"), "user.berth.test", b"file value") {
            eprintln!("skipping: no user xattrs on this filesystem ({e})");
            return;
        }
        set(&src.join("d"), "user.berth.dir", b"dir value").unwrap();
        set(&src, "user.berth.root", b"").unwrap();
        fs::create_dir(&dst).unwrap();
        copy_dir(&src, &dst).unwrap();
        let get = |p: &Path, k: &str| {
            let mut buf = vec![0u8; 64];
            let n = lgetxattr(p, k, &mut buf[..]).unwrap();
            buf.truncate(n);
            buf
        };
        assert_eq!(get(&dst.join("d/f"), "user.berth.test"), b"file value");
        assert_eq!(get(&dst.join("d"), "user.berth.dir"), b"dir value");
        assert_eq!(get(&dst, "user.berth.root"), b"");
    }
}
