//! Computing a layer between two trees: containerd's `walking` differ
//! (`archive.WriteDiff` over continuity's double walk) and, for an overlay
//! upper directory, a walk of the upper alone that reads overlayfs's own
//! whiteouts.
//!
//! Entries come in walk order — each directory's names sorted bytewise,
//! a directory before its contents — so the same trees always give the
//! same bytes. As containerd's `ChangeWriter` does, a changed entry deep in
//! an unchanged directory brings its parent directories' headers first;
//! whiteouts have zero times; mtimes are whole seconds; of the xattrs only
//! `security.capability` is carried.

use super::writer::{Hashing, LayerCompression, Sink};
use super::{
    OVERLAY_OPAQUE_XATTR, OVERLAY_USER_OPAQUE_XATTR, PAX_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX,
};
use berth_core::{Digest, Result};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// How to write the layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompareOptions {
    /// Its compression.
    pub compression: LayerCompression,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareStats {
    /// The digest of the bytes written (the blob).
    pub digest: Digest,
    /// Their count.
    pub size: u64,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// Writes to `out` the layer that turns `lower` into `upper` (both plain
/// directory trees, e.g. mounted snapshots).
pub fn compare(
    lower: &Path,
    upper: &Path,
    out: impl Write,
    options: &CompareOptions,
) -> Result<CompareStats> {
    let mut w = LayerWriter::new(upper, out, options.compression);
    w.walk_pair(Some(lower), Path::new(""))?;
    w.finish()
}

/// Writes to `out` the layer an overlayfs upper directory holds: its
/// entries, its whiteout devices as `.wh.` entries and its opaque
/// directories with `.wh..wh..opq`.
pub fn compare_overlay(
    upper: &Path,
    out: impl Write,
    options: &CompareOptions,
) -> Result<CompareStats> {
    let mut w = LayerWriter::new(upper, out, options.compression);
    w.walk_overlay(Path::new(""))?;
    w.finish()
}

struct LayerWriter<W: Write> {
    upper: PathBuf,
    tar: tar::Builder<Hashing<Sink<W>>>,
    /// Directories entered whose header is not written yet, and how many
    /// of the enclosing ones are.
    parents: Vec<PathBuf>,
    parents_written: usize,
    /// The first name written for each hard-linked inode.
    links: HashMap<(u64, u64), PathBuf>,
}

fn list(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.sort();
    Ok(names)
}

fn lstat(p: &Path) -> io::Result<Option<Metadata>> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl<W: Write> LayerWriter<W> {
    fn new(upper: &Path, out: W, compression: LayerCompression) -> Self {
        let mut tar = tar::Builder::new(Hashing::new(Sink::new(out, compression)));
        tar.follow_symlinks(false);
        LayerWriter {
            upper: upper.to_path_buf(),
            tar,
            parents: Vec::new(),
            parents_written: 0,
            links: HashMap::new(),
        }
    }

    fn finish(self) -> Result<CompareStats> {
        let hashed = self.tar.into_inner()?;
        let (sink, diff_id, _) = hashed.finish();
        let (digest, size) = sink.finish()?;
        Ok(CompareStats {
            digest,
            size,
            diff_id,
        })
    }

    /// Compares directory `rel` of the upper with the same in `lower`
    /// (none: everything under it is new).
    fn walk_pair(&mut self, lower: Option<&Path>, rel: &Path) -> Result<()> {
        let upper_names = list(&self.upper.join(rel))?;
        let lower_names = match lower {
            Some(l) => list(&l.join(rel))?,
            None => Vec::new(),
        };
        let (mut i, mut j) = (0, 0);
        while i < lower_names.len() || j < upper_names.len() {
            let take_lower = j == upper_names.len()
                || (i < lower_names.len() && lower_names[i] < upper_names[j]);
            if take_lower {
                self.whiteout(&rel.join(&lower_names[i]))?;
                i += 1;
                continue;
            }
            let name = &upper_names[j];
            let child = rel.join(name);
            let same_name = i < lower_names.len() && lower_names[i] == *name;
            let old = match (same_name, lower) {
                (true, Some(l)) => lstat(&l.join(&child))?,
                _ => None,
            };
            if same_name {
                i += 1;
            }
            j += 1;
            let new = fs::symlink_metadata(self.upper.join(&child))?;
            match old {
                Some(old) if old.is_dir() && new.is_dir() => {
                    let changed = meta_changed(&old, &new);
                    if changed {
                        self.add(&child, &new)?;
                    }
                    self.enter(&child, changed, |w| w.walk_pair(lower, &child))?;
                }
                Some(old) if !self.changed(lower, &child, &old, &new)? => {}
                _ => {
                    self.add(&child, &new)?;
                    if new.is_dir() {
                        self.enter(&child, true, |w| w.walk_pair(None, &child))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Walks directory `rel` of an overlay upper.
    fn walk_overlay(&mut self, rel: &Path) -> Result<()> {
        for name in list(&self.upper.join(rel))? {
            let child = rel.join(&name);
            let path = self.upper.join(&child);
            let md = fs::symlink_metadata(&path)?;
            if md.file_type().is_char_device() && md.rdev() == 0 {
                self.whiteout(&child)?;
                continue;
            }
            self.add(&child, &md)?;
            if md.is_dir() {
                if is_opaque(&path) {
                    self.write_empty(&child.join(WHITEOUT_OPAQUE))?;
                }
                self.enter(&child, true, |w| w.walk_overlay(&child))?;
            }
        }
        Ok(())
    }

    /// Runs `f` inside directory `rel`, whose header is `written` already
    /// or will be when something inside needs it.
    fn enter(
        &mut self,
        rel: &Path,
        written: bool,
        f: impl FnOnce(&mut Self) -> Result<()>,
    ) -> Result<()> {
        self.parents.push(rel.to_path_buf());
        if written {
            self.parents_written = self.parents.len();
        }
        let result = f(self);
        self.parents.pop();
        self.parents_written = self.parents_written.min(self.parents.len());
        result
    }

    /// Whether a non-directory (or a type change) differs, as continuity's
    /// `sameFile` decides: metadata first, then content when the times
    /// cannot tell.
    fn changed(
        &self,
        lower: Option<&Path>,
        rel: &Path,
        old: &Metadata,
        new: &Metadata,
    ) -> Result<bool> {
        if meta_changed(old, new) || old.size() != new.size() {
            return Ok(true);
        }
        let (Some(lower), true) = (lower, new.file_type().is_symlink() || new.is_file()) else {
            return Ok(false);
        };
        let (a, b) = (lower.join(rel), self.upper.join(rel));
        if new.file_type().is_symlink() {
            return Ok(fs::read_link(a)? != fs::read_link(b)?);
        }
        if new.mtime_nsec() != 0 {
            return Ok(false); // equal nanosecond mtimes and sizes: unchanged
        }
        Ok(!same_content(&a, &b)?)
    }

    /// Writes the headers of parent directories not written yet.
    fn parents(&mut self) -> Result<()> {
        while self.parents_written < self.parents.len() {
            let rel = self.parents[self.parents_written].clone();
            self.parents_written += 1;
            let md = fs::symlink_metadata(self.upper.join(&rel))?;
            self.entry(&rel, &md)?;
        }
        Ok(())
    }

    fn whiteout(&mut self, rel: &Path) -> Result<()> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let mut name = OsString::from(WHITEOUT_PREFIX);
        name.push(rel.file_name().unwrap_or_default());
        self.write_empty(&parent.join(name))
    }

    /// An empty regular file with zero times (whiteouts, opaque markers).
    fn write_empty(&mut self, rel: &Path) -> Result<()> {
        self.parents()?;
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0);
        h.set_size(0);
        h.set_mtime(0);
        self.tar.append_data(&mut h, rel, io::empty())?;
        Ok(())
    }

    /// Writes `rel` (its parents first).
    fn add(&mut self, rel: &Path, md: &Metadata) -> Result<()> {
        self.parents()?;
        self.entry(rel, md)
    }

    fn entry(&mut self, rel: &Path, md: &Metadata) -> Result<()> {
        let path = self.upper.join(rel);
        let ft = md.file_type();
        if ft.is_socket() {
            return Ok(()); // containerd skips sockets
        }
        let mut h = Header::new_ustar();
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(u64::from(md.uid()));
        h.set_gid(u64::from(md.gid()));
        h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
        h.set_size(0);
        if let Some(cap) = capability(&path) {
            let key = format!("{PAX_XATTR}security.capability");
            self.tar.append_pax_extensions([(key.as_str(), &cap[..])])?;
        }
        let name = if ft.is_dir() {
            let mut n = rel.as_os_str().to_os_string();
            n.push("/");
            PathBuf::from(n)
        } else {
            rel.to_path_buf()
        };
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            self.tar.append_data(&mut h, &name, io::empty())?;
        } else if ft.is_symlink() {
            h.set_entry_type(EntryType::Symlink);
            self.tar.append_link(&mut h, &name, fs::read_link(&path)?)?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    h.set_entry_type(EntryType::Link);
                    self.tar.append_link(&mut h, &name, first)?;
                    return Ok(());
                }
                self.links.insert(key, name.clone());
            }
            h.set_entry_type(EntryType::Regular);
            h.set_size(md.size());
            let file = fs::File::open(&path)?;
            self.tar.append_data(&mut h, &name, file.take(md.size()))?;
        } else {
            let kind = if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            };
            h.set_entry_type(kind);
            let rdev = md.rdev();
            h.set_device_major(rustix::fs::major(rdev))?;
            h.set_device_minor(rustix::fs::minor(rdev))?;
            self.tar.append_data(&mut h, &name, io::empty())?;
        }
        Ok(())
    }
}

/// Whether type, mode, owner, device or mtime differ.
fn meta_changed(a: &Metadata, b: &Metadata) -> bool {
    a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
        || a.rdev() != b.rdev()
        || a.mtime() != b.mtime()
        || a.mtime_nsec() != b.mtime_nsec()
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn capability(path: &Path) -> Option<Vec<u8>> {
    xattr(path, "security.capability").filter(|v| !v.is_empty())
}

fn is_opaque(dir: &Path) -> bool {
    [OVERLAY_OPAQUE_XATTR, OVERLAY_USER_OPAQUE_XATTR]
        .iter()
        .any(|name| xattr(dir, name).as_deref() == Some(b"y"))
}
