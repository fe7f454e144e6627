//! Reaching a path inside a tree someone else controls (an image's rootfs,
//! a container's filesystem) without leaving it.
//!
//! `root.join(path)` follows whatever symlinks the tree holds: an image
//! whose `/etc/passwd` links to `/dev/zero`, or whose volume `/data` links
//! to `/`, would make berth read the host's files (or read forever).
//! Here the kernel resolves the path with `openat2(RESOLVE_IN_ROOT)`: `..`
//! and absolute symlinks stop at the root, as if it were `/`, and magic
//! links (`/proc/self/...`) are refused.

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

fn resolve() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Opens `rel` (absolute or relative: both mean "from the root") for
/// reading, resolved inside `root`. It opens without blocking, so a FIFO
/// planted there cannot hang the caller.
pub fn open_in_root(root: &Path, rel: &str) -> io::Result<File> {
    let dir = rfs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let fd = rfs::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        resolve(),
    )?;
    Ok(File::from(fd))
}

/// The text of the regular file `rel` inside `root`, at most `limit`
/// bytes of it. A missing file is `NotFound`; anything but a regular file
/// (a device, a FIFO, a directory) is `InvalidInput`.
pub fn read_in_root(root: &Path, rel: &str, limit: u64) -> io::Result<String> {
    let file = open_in_root(root, rel)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{rel} is not a regular file"),
        ));
    }
    let mut text = String::new();
    file.take(limit).read_to_string(&mut text)?;
    Ok(text)
}

/// A directory inside a root, held open: [`InRootDir::path`] names it
/// through `/proc/self/fd`, so walking it from there cannot be redirected
/// by a symlink swapped in on the way.
#[derive(Debug)]
pub struct InRootDir {
    file: File,
}

impl InRootDir {
    /// Opens the directory `rel` inside `root`; `NotADirectory` if it is
    /// something else.
    pub fn open(root: &Path, rel: &str) -> io::Result<InRootDir> {
        let file = open_in_root(root, rel)?;
        if !file.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{rel} is not a directory"),
            ));
        }
        Ok(InRootDir { file })
    }

    /// A path to the open directory, valid while `self` lives.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// The directory's metadata.
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file.metadata()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).expect("etc");
        std::fs::write(dir.path().join("secret"), "host secret").expect("secret");
        (dir, root)
    }

    #[test]
    fn absolute_and_dotdot_symlinks_stay_inside_the_root() {
        let (dir, root) = tree();
        std::fs::write(root.join("etc/real"), "inside").expect("real");
        symlink("/etc/real", root.join("etc/abs")).expect("symlink");
        symlink("../../../../secret", root.join("etc/up")).expect("symlink");
        let outside = dir.path().join("secret");
        symlink(&outside, root.join("etc/out")).expect("symlink");
        assert_eq!(
            read_in_root(&root, "/etc/abs", 1 << 20).expect("abs"),
            "inside"
        );
        for escaping in ["etc/up", "etc/out", "../secret", "/../../secret"] {
            let err = read_in_root(&root, escaping, 1 << 20).expect_err(escaping);
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{escaping}: {err}");
        }
    }

    #[test]
    fn devices_fifos_and_directories_are_not_read() {
        let (_dir, root) = tree();
        symlink("/dev/zero", root.join("etc/zero")).expect("symlink");
        std::fs::create_dir_all(root.join("dev")).expect("dev");
        // /dev/zero inside the root does not exist: not the host's.
        assert_eq!(
            read_in_root(&root, "etc/zero", 1 << 20)
                .expect_err("no zero")
                .kind(),
            io::ErrorKind::NotFound
        );
        nix::unistd::mkfifo(&root.join("etc/fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let err = read_in_root(&root, "etc/fifo", 1 << 20).expect_err("a fifo");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = read_in_root(&root, "etc", 1 << 20).expect_err("a directory");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn reads_are_bounded_and_directories_open_by_fd() {
        let (_dir, root) = tree();
        std::fs::write(root.join("etc/big"), "x".repeat(100)).expect("big");
        assert_eq!(read_in_root(&root, "etc/big", 10).expect("read").len(), 10);
        symlink("/etc", root.join("link")).expect("symlink");
        let dir = InRootDir::open(&root, "/link").expect("dir");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["big"]);
        assert!(InRootDir::open(&root, "etc/big").is_err());
    }
}
