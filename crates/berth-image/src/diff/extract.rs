//! The entry loop of an apply: each tar entry placed under the root.

use super::apply::{ApplyOptions, Whiteouts};
use super::fsops::{self, Root};
use super::meta::{self, Meta};
use super::path::{self, RelPath};
use super::{
    OVERLAY_OPAQUE_XATTR, OVERLAY_USER_OPAQUE_XATTR, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
};
use berth_core::{Error, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;
use tar::EntryType;

/// What an extraction did beyond the files.
pub(crate) struct Extracted {
    /// Device nodes skipped.
    pub skipped_devices: u64,
    /// Directories that entries needed and the layer did not have, made
    /// with default attributes (or, with [`ApplyOptions::parents`], those
    /// of the lower layers).
    pub implicit_dirs: Vec<std::path::PathBuf>,
}

/// State across the entries of one layer.
pub(crate) struct Extractor<'a> {
    root: &'a Root,
    options: &'a ApplyOptions,
    /// The last parent directory used; most entries share it. Dropped
    /// whenever something is removed, as that may have been it.
    parent: Option<(RelPath, Rc<OwnedFd>)>,
    /// Paths this layer created: an opaque marker keeps them.
    unpacked: HashSet<RelPath>,
    /// Directory times, set once nothing more is created inside.
    dir_times: Vec<(RelPath, Timestamps)>,
    buf: Vec<u8>,
    skipped_devices: u64,
    /// Every parent directory entries were placed in, to tell the
    /// directories the layer made implicitly (see [`Extracted`]).
    parents_used: HashSet<RelPath>,
    /// The lower directories of [`ApplyOptions::parents`], open.
    parents: Vec<Root>,
}

impl<'a> Extractor<'a> {
    pub(crate) fn new(root: &'a Root, options: &'a ApplyOptions) -> Result<Self> {
        let parents = options
            .parents
            .iter()
            .map(|p| {
                Root::open(p)
                    .map_err(|e| Error::from(e).context(format!("open parent {}", p.display())))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Extractor {
            parents,
            root,
            options,
            parent: None,
            unpacked: HashSet::new(),
            dir_times: Vec::new(),
            buf: vec![0; 256 << 10],
            skipped_devices: 0,
            parents_used: HashSet::new(),
        })
    }

    /// Applies every entry of the tar `input`.
    pub(crate) fn run(mut self, input: &mut impl Read) -> Result<Extracted> {
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .map_err(|e| Error::from(e).context("read layer"))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| Error::invalid_argument(format!("read layer: {e}")))?;
            let name = entry.path_bytes().into_owned();
            self.entry(&mut entry, &name).map_err(|e| {
                e.context(format!("layer entry {:?}", String::from_utf8_lossy(&name)))
            })?;
        }
        self.finish_dirs()?;
        let mut implicit_dirs = std::collections::BTreeSet::new();
        for dir in &self.parents_used {
            for ancestor in dir.ancestors() {
                if ancestor.as_os_str().is_empty() || self.unpacked.contains(ancestor) {
                    continue;
                }
                implicit_dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(Extracted {
            skipped_devices: self.skipped_devices,
            implicit_dirs: implicit_dirs.into_iter().collect(),
        })
    }

    fn entry(&mut self, entry: &mut tar::Entry<'_, impl Read>, name: &[u8]) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            return Ok(());
        }
        let rel = path::clean(name).map_err(strip_context)?;
        if rel.as_os_str().is_empty() {
            return Ok(()); // the root itself, which containerd leaves alone
        }
        let (parent_rel, base) = path::split(&rel);
        let parent = self.parent(parent_rel)?;
        let dir = parent.as_fd();
        if base.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            let meta = Meta::of(entry)?;
            return self.whiteout(parent_rel, dir, base, &meta);
        }
        if let Some(st) = fsops::lstat(dir, base)? {
            if !(fsops::is_dir(&st) && kind == EntryType::Directory) {
                self.removed();
                fsops::remove_all(dir, base)?;
            }
        }
        let meta = Meta::of(entry)?;
        let same_owner = self.options.same_owner;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, dir, base, &meta)?
            }
            EntryType::Directory => {
                if fsops::lstat(dir, base)?.is_none() {
                    rfs::mkdirat(dir, base, Mode::from_raw_mode(meta.mode))
                        .map_err(io::Error::from)?;
                }
                let fd = fsops::open_dir(dir, base)?;
                meta.set_fd_keep_times(fd.as_fd(), same_owner)?;
                self.dir_times.push((rel.clone(), meta.times));
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                rfs::symlinkat(OsStr::from_bytes(&target), dir, base).map_err(io::Error::from)?;
                meta.set_at(dir, base, same_owner, true)?;
                meta::set_times_at(dir, base, &meta.times)?;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hardlink(&target, dir, base)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if kind != EntryType::Fifo && !self.options.devices {
                    self.skipped_devices += 1;
                    return Ok(());
                }
                self.node(entry, kind, dir, base, &meta)?;
            }
            other => {
                return Err(Error::invalid_argument(format!(
                    "unsupported tar entry type {:?}",
                    other.as_byte() as char
                )))
            }
        }
        self.unpacked.insert(rel);
        Ok(())
    }

    /// The parent directory `rel`, created if missing.
    fn parent(&mut self, rel: &Path) -> Result<Rc<OwnedFd>> {
        if let Some((cached, fd)) = &self.parent {
            if cached == rel {
                return Ok(fd.clone());
            }
        }
        self.parents_used.insert(rel.to_path_buf());
        let fd = Rc::new(self.root.dir_all(rel, &self.parents).map_err(|e| {
            Error::from(e).context(format!("parent directory {:?}", rel.display().to_string()))
        })?);
        self.parent = Some((rel.to_path_buf(), fd.clone()));
        Ok(fd)
    }

    fn removed(&mut self) {
        self.parent = None;
    }

    fn file(
        &mut self,
        entry: &mut impl Read,
        dir: BorrowedFd<'_>,
        base: &OsStr,
        meta: &Meta,
    ) -> Result<()> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd =
            rfs::openat(dir, base, flags, Mode::from_raw_mode(0o600)).map_err(io::Error::from)?;
        let mut file = File::from(fd);
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            file.write_all(&self.buf[..n])?;
        }
        meta.set_fd(file.as_fd(), self.options.same_owner)?;
        Ok(())
    }

    fn hardlink(&mut self, target: &[u8], dir: BorrowedFd<'_>, base: &OsStr) -> Result<()> {
        let rel = path::clean(target).map_err(|_| {
            Error::invalid_argument("hard link target escapes the target directory")
        })?;
        if rel.as_os_str().is_empty() {
            return Err(Error::invalid_argument("hard link to the target directory"));
        }
        let (tparent, tbase) = path::split(&rel);
        let tdir = self.root.dir(tparent).map_err(|e| {
            Error::invalid_argument(format!(
                "hard link target {:?}: {e}",
                rel.display().to_string()
            ))
        })?;
        rfs::linkat(&tdir, tbase, dir, base, AtFlags::empty()).map_err(|e| {
            Error::invalid_argument(format!("hard link to {:?}: {e}", rel.display().to_string()))
        })?;
        Ok(())
    }

    fn node(
        &mut self,
        entry: &tar::Entry<'_, impl Read>,
        kind: EntryType,
        dir: BorrowedFd<'_>,
        base: &OsStr,
        meta: &Meta,
    ) -> Result<()> {
        let header = entry.header();
        let (file_type, major, minor) = match kind {
            EntryType::Char | EntryType::Block => {
                let major = header.device_major()?.unwrap_or(0);
                let minor = header.device_minor()?.unwrap_or(0);
                let t = if kind == EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                (t, major, minor)
            }
            // A FIFO's device fields are often left blank.
            _ => (FileType::Fifo, 0, 0),
        };
        let mode = Mode::from_raw_mode(meta.mode);
        rfs::mknodat(dir, base, file_type, mode, rfs::makedev(major, minor))
            .map_err(io::Error::from)?;
        meta.set_at(dir, base, self.options.same_owner, false)?;
        meta::set_times_at(dir, base, &meta.times)?;
        Ok(())
    }

    fn whiteout(
        &mut self,
        parent_rel: &Path,
        dir: BorrowedFd<'_>,
        base: &OsStr,
        meta: &Meta,
    ) -> Result<()> {
        let base = base.as_bytes();
        if base == WHITEOUT_OPAQUE.as_bytes() {
            return match self.options.whiteouts {
                Whiteouts::Remove => {
                    self.removed();
                    let fd = fsops::open_dir(dir, OsStr::new("."))?;
                    self.make_opaque(parent_rel, fd.as_fd())
                }
                Whiteouts::Overlay { user_xattr } => {
                    let name = if user_xattr {
                        OVERLAY_USER_OPAQUE_XATTR
                    } else {
                        OVERLAY_OPAQUE_XATTR
                    };
                    let fd = fsops::open_dir(dir, OsStr::new("."))?;
                    rfs::fsetxattr(&fd, name, b"y", XattrFlags::empty())
                        .map_err(io::Error::from)?;
                    Ok(())
                }
            };
        }
        if base.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
            return Ok(()); // other AUFS metadata (`.wh..wh..plnk`): not a removal
        }
        let original = OsStr::from_bytes(&base[WHITEOUT_PREFIX.len()..]);
        if matches!(original.as_bytes(), b"" | b"." | b"..") {
            return Err(Error::invalid_argument("whiteout names no file"));
        }
        self.removed();
        fsops::remove_all(dir, original)?;
        if let Whiteouts::Overlay { .. } = self.options.whiteouts {
            rfs::mknodat(
                dir,
                original,
                FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .map_err(io::Error::from)?;
            if self.options.same_owner {
                meta.set_owner_at(dir, original)?;
            }
        }
        Ok(())
    }

    /// Removes what lower layers put under the directory `rel` (open as
    /// `fd`): everything this layer did not create, recursing into the
    /// directories it did, as containerd's walk over `unpackedPaths` does.
    fn make_opaque(&self, rel: &Path, fd: BorrowedFd<'_>) -> Result<()> {
        for name in fsops::list(fd)? {
            let child = fsops::child(rel, &name);
            if !self.unpacked.contains(&child) {
                fsops::remove_all(fd, &name)?;
            } else if fsops::lstat(fd, &name)?.is_some_and(|st| fsops::is_dir(&st)) {
                let sub = fsops::open_dir(fd, &name)?;
                self.make_opaque(&child, sub.as_fd())?;
            }
        }
        Ok(())
    }

    /// Directory times, last, so creating their contents cannot move them.
    fn finish_dirs(&mut self) -> Result<()> {
        for (rel, times) in std::mem::take(&mut self.dir_times) {
            let (parent, base) = path::split(&rel);
            let dir = match self.root.dir(parent) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            match meta::set_times_at(dir.as_fd(), base, &times) {
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
                other => other?,
            }
        }
        Ok(())
    }
}

/// [`path::clean`]'s error already names the entry; the loop adds it again.
fn strip_context(err: Error) -> Error {
    match err.message().split_once(": ") {
        Some((_, why)) => Error::new(err.kind(), why.to_string()),
        None => err,
    }
}
