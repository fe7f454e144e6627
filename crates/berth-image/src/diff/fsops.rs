//! File system operations confined to a root directory.
//!
//! Every directory is reached with `openat2(RESOLVE_IN_ROOT)`: the kernel
//! resolves `..` and symlinks as if the root were `/`, so a symlink an
//! earlier entry planted (`evil -> /etc`) leads to `ROOT/etc`, never to the
//! host's. The last component of an entry is then created, replaced or
//! changed relative to that directory's descriptor with the `*at` calls and
//! no following of symlinks.

use super::path::RelPath;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The target directory, open.
pub(crate) struct Root {
    fd: OwnedFd,
}

const DIR_PATH: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

impl Root {
    /// Opens `path` as the root.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(path, DIR_PATH, Mode::empty())?;
        Ok(Root { fd })
    }

    /// The directory `rel`, resolved inside the root.
    pub(crate) fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        Ok(rfs::openat2(
            &self.fd,
            rel,
            DIR_PATH,
            Mode::empty(),
            in_root(),
        )?)
    }

    /// The directory `rel`, creating missing components with mode 0755 as
    /// containerd's `mkparent` does.
    ///
    /// A created directory takes the mode, owner and times of the same
    /// directory in the first of `parents` that has one.
    pub(crate) fn dir_all(&self, rel: &Path, parents: &[Root]) -> io::Result<OwnedFd> {
        match self.dir(rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let mut prefix = PathBuf::new();
        let mut cur = self.dir(Path::new(""))?;
        for comp in rel.iter() {
            prefix.push(comp);
            cur = match self.dir(&prefix) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rfs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) => copy_dir_info(parents, &prefix, cur.as_fd(), comp)?,
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.dir(&prefix)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }
}

/// Gives the new directory `name` in `dir` the mode, owner and times of
/// `rel` in the first parent holding it (stopping at a non-directory: the
/// lower one was replaced).
fn copy_dir_info(
    parents: &[Root],
    rel: &Path,
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> io::Result<()> {
    for parent in parents {
        let st = match rfs::openat2(
            &parent.fd,
            rel,
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            in_root(),
        ) {
            Ok(fd) => rfs::fstat(&fd)?,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue,
            Err(Errno::LOOP) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !is_dir(&st) {
            return Ok(());
        }
        let uid = rfs::Uid::from_raw_unchecked(st.st_uid);
        let gid = rfs::Gid::from_raw_unchecked(st.st_gid);
        rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
        rfs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )?;
        let times = rfs::Timestamps {
            last_access: rfs::Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: rfs::Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
        return Ok(());
    }
    Ok(())
}

/// A path that reaches `name` in the directory `dir` without resolving
/// anything but the descriptor itself: for calls that exist only in a
/// path form (`lsetxattr`).
pub(crate) fn fd_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(name);
    p
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub(crate) fn lstat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `st` is a directory.
pub(crate) fn is_dir(st: &rfs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Opens the directory `name` in `dir` for reading, refusing a symlink.
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rfs::openat(dir, name, flags, Mode::empty())?)
}

/// The names in the open directory `fd` (without `.` and `..`), sorted.
pub(crate) fn list(fd: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Removes `name` in `dir` and, for a directory, everything under it,
/// never following a symlink. A missing `name` is not an error.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    match open_dir(dir, name) {
        Ok(sub) => {
            for child in list(sub.as_fd())? {
                remove_all(sub.as_fd(), &child)?;
            }
        }
        Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(()),
        Err(e) => return Err(e),
    }
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The relative path of `name` under `parent`.
pub(crate) fn child(parent: &Path, name: &OsStr) -> RelPath {
    parent.join(name)
}

/// Whether the process may create device nodes and own files as anyone:
/// root outside a user namespace (containerd skips devices in one).
pub(crate) fn privileged() -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            map.split_whitespace()
                .collect::<Vec<_>>()
                .starts_with(&["0", "0", "4294967295"])
        }
        Err(_) => true,
    }
}
