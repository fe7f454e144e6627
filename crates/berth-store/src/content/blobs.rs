//! Committed blobs on disk: `<root>/blobs/sha256/<hex>`, one read-only file
//! per digest, shared by every namespace that holds it.
//!
//! A blob file appears only by `rename(2)` of a fully written, fsynced ingest
//! file, followed by an fsync of the `sha256` directory, so a reader never sees
//! a partial blob and a blob the metadata database records survives a crash.
//!
//! # The commit lock
//!
//! Which namespaces hold a blob lives in the metadata database; the file
//! lives here. Two operations touch both and must not interleave:
//!
//! - a **commit** puts the file in place (or finds it there) and then records
//!   its namespace's row;
//! - a **removal** checks that no namespace's row holds the digest and then
//!   unlinks the file.
//!
//! If a removal's check ran between a commit's "file is there" and its "row
//! recorded", the commit would record a blob whose file is gone. So commits
//! hold [`BlobStore::commit_guard`] (shared: commits run concurrently) across
//! both steps, and removals hold [`BlobStore::removal_guard`] (exclusive)
//! across theirs. Garbage collection removes blobs only through
//! `Content::remove_if_unowned`, which follows this rule.

use berth_core::digest::SHA256;
use berth_core::{Digest, Error, ErrorKind, Result};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The blob directory and the lock that orders commits against removals.
#[derive(Debug)]
pub struct BlobStore {
    /// `<root>/blobs/sha256`.
    dir: PathBuf,
    /// Shared by commits, exclusive for removals; see the module docs. It
    /// guards no data, only the ordering of file and metadata changes.
    commit_lock: RwLock<()>,
}

/// How a commit's data reached its blob path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The ingest file was renamed into place.
    Renamed,
    /// The blob existed already (committed by another namespace or ingest);
    /// the ingest file was left alone for its owner to remove.
    Existed,
}

impl BlobStore {
    /// Opens (creating if needed) the blob directory under `root`.
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join("blobs").join(SHA256);
        fs::create_dir_all(&dir).map_err(|e| io_error(e, "creating", &dir))?;
        Ok(BlobStore {
            dir,
            commit_lock: RwLock::new(()),
        })
    }

    /// The path of blob `digest`; `NotImplemented` for algorithms other than
    /// sha256, which berth never writes.
    pub fn path(&self, digest: &Digest) -> Result<PathBuf> {
        supported(digest)?;
        Ok(self.dir.join(digest.encoded()))
    }

    /// Whether blob `digest` is on disk.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_ok_and(|p| p.exists())
    }

    /// Opens blob `digest` for reading: the file and its size. `NotFound`
    /// (`content digest D: not found`) if it is not on disk.
    pub fn open_blob(&self, digest: &Digest) -> Result<(File, u64)> {
        let path = self.path(digest)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format_args!("content digest {digest}")),
            _ => io_error(e, "opening", &path),
        })?;
        let size = file
            .metadata()
            .map_err(|e| io_error(e, "reading metadata of", &path))?
            .len();
        Ok((file, size))
    }

    /// The lock a commit holds while it installs a blob and records it.
    pub fn commit_guard(&self) -> RwLockReadGuard<'_, ()> {
        // A panic while holding the guard leaves nothing half-done that the
        // lock protects (it guards ordering, not data), so poison is ignored.
        self.commit_lock
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The lock a removal holds while it checks ownership and unlinks.
    pub fn removal_guard(&self) -> RwLockWriteGuard<'_, ()> {
        self.commit_lock
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Moves the fsynced file `data` into place as blob `digest`, unless the
    /// blob exists already. Call with [`BlobStore::commit_guard`] held.
    ///
    /// The file is made read-only (as containerd does) and the directory is
    /// fsynced, so the rename is durable before the caller records the blob
    /// in the metadata database.
    pub fn install(&self, data: &Path, digest: &Digest) -> Result<Installed> {
        let target = self.path(digest)?;
        if target.exists() {
            return Ok(Installed::Existed);
        }
        let readonly = fs::Permissions::from_mode(0o444);
        fs::set_permissions(data, readonly).map_err(|e| io_error(e, "protecting", data))?;
        // Two commits of the same digest may both get here: each rename
        // atomically replaces the other's identical file, and readers with
        // the file open keep their inode.
        fs::rename(data, &target).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format_args!(
                "ingest data {}: the ingest was aborted",
                data.display()
            )),
            _ => io_error(e, "renaming into place", data),
        })?;
        sync_dir(&self.dir)?;
        Ok(Installed::Renamed)
    }

    /// Unlinks blob `digest`; whether it was there. Call with
    /// [`BlobStore::removal_guard`] held, after checking that no namespace
    /// holds it.
    pub fn remove(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(e, "removing", &path)),
        }
    }

    /// Every blob on disk, in no particular order. Files whose names are
    /// not sha256 digests are skipped.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_error(e, "listing", &self.dir))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(e, "listing", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(digest) = Digest::parse(&format!("{SHA256}:{name}")) {
                out.push(digest);
            }
        }
        Ok(out)
    }
}

/// Refuses digests berth cannot have written.
pub(crate) fn supported(digest: &Digest) -> Result<()> {
    if digest.algorithm() == SHA256 {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::NotImplemented,
            format!(
                "digest algorithm {:?} is not supported (berth stores sha256): not implemented",
                digest.algorithm()
            ),
        ))
    }
}

/// fsyncs a directory, making renames and creations in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(e, "syncing", dir))
}

/// An I/O error with what was being done to which path.
pub(crate) fn io_error(err: io::Error, doing: &str, path: &Path) -> Error {
    let message = format!("content store: {doing} {}: {err}", path.display());
    match err.kind() {
        io::ErrorKind::NotFound => Error::new(ErrorKind::NotFound, message),
        io::ErrorKind::PermissionDenied => Error::new(ErrorKind::PermissionDenied, message),
        _ => Error::internal(message),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn install_renames_once_and_makes_the_blob_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"hello");
        let data = dir.path().join("data");
        fs::write(&data, b"hello").unwrap();
        assert_eq!(blobs.install(&data, &digest).unwrap(), Installed::Renamed);
        assert!(!data.exists());
        let path = blobs.path(&digest).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);

        fs::write(&data, b"hello").unwrap();
        assert_eq!(blobs.install(&data, &digest).unwrap(), Installed::Existed);
        assert!(data.exists(), "the ingest's owner removes it");
        assert_eq!(blobs.list().unwrap(), vec![digest.clone()]);
        assert!(blobs.remove(&digest).unwrap());
        assert!(!blobs.remove(&digest).unwrap());
        assert!(blobs.list().unwrap().is_empty());
    }

    #[test]
    fn missing_blob_is_not_found_and_other_algorithms_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"absent");
        let err = blobs.open_blob(&digest).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), format!("content digest {digest}: not found"));
        let sha512 = Digest::parse("sha512:abcd").unwrap();
        assert_eq!(
            blobs.path(&sha512).unwrap_err().kind(),
            ErrorKind::NotImplemented
        );
    }
}
