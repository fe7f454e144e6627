//! Ingests on disk: the partial blobs writers append to, kept across
//! restarts so an interrupted upload resumes where it stopped.
//!
//! ```text
//! <root>/ingest/<hex sha256 of "NAMESPACE/REF">/
//!     data        the bytes written so far (its length is the offset)
//!     ref         the ingest ref, as the client named it
//!     namespace   the namespace it belongs to
//!     startedat   when the ingest began: <unix seconds>.<nanoseconds>
//!     total       the expected size, when the writer gave one
//!     expected    the expected digest, when the writer gave one
//!     updatedat   when it was last written, as its last writer closed it
//! ```
//!
//! The directory name hashes the namespace with the ref (a namespace never
//! contains `/`), so every namespace has its own ingests — as containerd's
//! metadata store gives each namespace its own backend ref — and names stay
//! one length whatever the ref. A directory is assembled under a temporary
//! name and renamed into place, so one that exists is complete.
//!
//! Updated-at is the time of the last write as the writer saw it, which the
//! writer records in `updatedat` when it closes (containerd's local store
//! does the same). The data file's modification time cannot serve: the
//! kernel stamps it from a clock that lags by up to a tick, so a resumed
//! writer would report a time before its last write. A writer that never
//! closed (a crash) leaves no newer `updatedat`; then the modification time
//! is the best there is, and the later of the two is taken.

use super::blobs::io_error;
use berth_core::{Digest, Error, Result};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The ingest directory.
#[derive(Debug)]
pub(crate) struct Ingests {
    dir: PathBuf,
}

/// What an ingest directory records, with its current offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestInfo {
    /// The namespace the ingest belongs to.
    pub namespace: String,
    /// The ingest ref.
    pub reference: String,
    /// Bytes written so far.
    pub offset: u64,
    /// The expected total size, 0 if unknown.
    pub total: i64,
    /// The expected digest, if the writer gave one.
    pub expected: Option<Digest>,
    /// When the ingest began.
    pub started_at: SystemTime,
    /// When it was last written (or began, if never written).
    pub updated_at: SystemTime,
}

/// A name for temporary directories that no other call in this process uses.
fn temp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".tmp-{}-{n}", std::process::id())
}

/// The directory name of ingest `reference` in namespace `ns`.
pub(crate) fn key(ns: &str, reference: &str) -> String {
    Digest::sha256_of(format!("{ns}/{reference}").as_bytes())
        .encoded()
        .to_owned()
}

impl Ingests {
    /// Opens (creating if needed) `<root>/ingest`, clearing temporary
    /// directories a crash left behind.
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let dir = root.join("ingest");
        fs::create_dir_all(&dir).map_err(|e| io_error(e, "creating", &dir))?;
        let ingests = Ingests { dir };
        for entry in ingests.entries()? {
            if entry.starts_with(".tmp-") {
                let path = ingests.dir.join(&entry);
                if let Err(err) = fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %err, "removing stale ingest");
                }
            }
        }
        Ok(ingests)
    }

    /// The directory of ingest `key`.
    pub(crate) fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The data file of ingest `key`.
    pub(crate) fn data_path(&self, key: &str) -> PathBuf {
        self.path(key).join("data")
    }

    /// Creates ingest `key` afresh (replacing any directory there) with an
    /// empty data file.
    pub(crate) fn create(
        &self,
        key: &str,
        ns: &str,
        reference: &str,
        total: i64,
        expected: Option<&Digest>,
    ) -> Result<IngestInfo> {
        let tmp = self.dir.join(temp_name());
        let started_at = SystemTime::now();
        let write = |name: &str, value: &[u8]| {
            let path = tmp.join(name);
            fs::write(&path, value).map_err(|e| io_error(e, "writing", &path))
        };
        fs::create_dir(&tmp).map_err(|e| io_error(e, "creating", &tmp))?;
        write("data", b"")?;
        write("ref", reference.as_bytes())?;
        write("namespace", ns.as_bytes())?;
        write("startedat", encode_time(started_at).as_bytes())?;
        if total > 0 {
            write("total", total.to_string().as_bytes())?;
        }
        if let Some(expected) = expected {
            write("expected", expected.as_str().as_bytes())?;
        }
        let target = self.path(key);
        if target.exists() {
            self.remove(key)?;
        }
        fs::rename(&tmp, &target).map_err(|e| io_error(e, "renaming into place", &tmp))?;
        Ok(IngestInfo {
            namespace: ns.to_owned(),
            reference: reference.to_owned(),
            offset: 0,
            total: total.max(0),
            expected: expected.cloned(),
            started_at,
            updated_at: started_at,
        })
    }

    /// Records the expected total of ingest `key`, which had none.
    pub(crate) fn set_total(&self, key: &str, total: i64) -> Result<()> {
        let path = self.path(key).join("total");
        fs::write(&path, total.to_string()).map_err(|e| io_error(e, "writing", &path))
    }

    /// Records when ingest `key` was last written.
    pub(crate) fn set_updated_at(&self, key: &str, updated_at: SystemTime) -> Result<()> {
        let path = self.path(key).join("updatedat");
        fs::write(&path, encode_time(updated_at)).map_err(|e| io_error(e, "writing", &path))
    }

    /// Reads ingest `key`; `NotFound` if there is none.
    pub(crate) fn load(&self, key: &str) -> Result<IngestInfo> {
        let dir = self.path(key);
        let read = |name: &str| -> Result<Option<String>> {
            let path = dir.join(name);
            match fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error(e, "reading", &path)),
            }
        };
        let data = dir.join("data");
        let meta = fs::metadata(&data).map_err(|e| io_error(e, "reading metadata of", &data))?;
        let missing =
            |name: &str| Error::not_found(format_args!("ingest {}: no {name} file", dir.display()));
        let reference = read("ref")?.ok_or_else(|| missing("ref"))?;
        let namespace = read("namespace")?.ok_or_else(|| missing("namespace"))?;
        let started_at = read("startedat")?
            .and_then(|s| decode_time(&s))
            .ok_or_else(|| missing("startedat"))?;
        let total = read("total")?
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let expected = read("expected")?.and_then(|s| Digest::parse(s.trim()).ok());
        let modified = meta.modified().unwrap_or(started_at);
        let recorded = read("updatedat")?
            .and_then(|s| decode_time(&s))
            .unwrap_or(started_at);
        Ok(IngestInfo {
            namespace,
            reference,
            offset: meta.len(),
            total,
            expected,
            started_at,
            updated_at: modified.max(recorded).max(started_at),
        })
    }

    /// Removes ingest `key`; whether it existed. The directory is renamed
    /// away first, so a concurrent `load` sees it whole or not at all.
    pub(crate) fn remove(&self, key: &str) -> Result<bool> {
        let path = self.path(key);
        let doomed = self.dir.join(temp_name());
        match fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error(e, "removing", &path)),
        }
        fs::remove_dir_all(&doomed).map_err(|e| io_error(e, "removing", &doomed))?;
        Ok(true)
    }

    /// Every complete ingest, of every namespace.
    pub(crate) fn list(&self) -> Result<Vec<(String, IngestInfo)>> {
        let mut out = Vec::new();
        for key in self.entries()? {
            if key.starts_with('.') {
                continue;
            }
            match self.load(&key) {
                Ok(info) => out.push((key, info)),
                // Removed while listing, or a leftover a crash made
                // unreadable: containerd skips these too.
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }

    fn entries(&self) -> Result<Vec<String>> {
        let read = fs::read_dir(&self.dir).map_err(|e| io_error(e, "listing", &self.dir))?;
        let mut out = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| io_error(e, "listing", &self.dir))?;
            if let Ok(name) = entry.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }
}

fn encode_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn decode_time(s: &str) -> Option<SystemTime> {
    let (secs, nanos) = s.trim().split_once('.')?;
    let d = Duration::new(secs.parse().ok()?, nanos.parse().ok()?);
    Some(UNIX_EPOCH + d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn create_load_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let ingests = Ingests::open(dir.path()).unwrap();
        let k = key("ns", "ref-1");
        assert_ne!(k, key("other", "ref-1"), "namespaces never share an ingest");
        let expected = Digest::sha256_of(b"abc");
        let created = ingests
            .create(&k, "ns", "ref-1", 3, Some(&expected))
            .unwrap();
        fs::write(ingests.data_path(&k), b"ab").unwrap();
        let loaded = ingests.load(&k).unwrap();
        assert_eq!(loaded.reference, "ref-1");
        assert_eq!(loaded.namespace, "ns");
        assert_eq!(loaded.offset, 2);
        assert_eq!(loaded.total, 3);
        assert_eq!(loaded.expected, Some(expected));
        assert_eq!(loaded.started_at, created.started_at);
        assert!(loaded.updated_at >= loaded.started_at);
        assert_eq!(ingests.list().unwrap(), vec![(k.clone(), loaded)]);
        assert!(ingests.remove(&k).unwrap());
        assert!(!ingests.remove(&k).unwrap());
        assert!(ingests.load(&k).unwrap_err().is_not_found());
        assert!(ingests.list().unwrap().is_empty());
    }

    #[test]
    fn leftovers_of_a_crash_are_skipped_or_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let ingests = Ingests::open(dir.path()).unwrap();
        // A directory without its files, and a half-built temporary one.
        fs::create_dir(ingests.path("broken")).unwrap();
        fs::create_dir(dir.path().join("ingest/.tmp-1-1")).unwrap();
        assert!(ingests.list().unwrap().is_empty());
        let reopened = Ingests::open(dir.path()).unwrap();
        assert!(!dir.path().join("ingest/.tmp-1-1").exists());
        // Creating over a broken directory replaces it.
        reopened.create("broken", "ns", "r", 0, None).unwrap();
        assert_eq!(reopened.load("broken").unwrap().reference, "r");
    }
}
