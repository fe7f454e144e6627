//! Writing a blob under an ingest ref ([`LocalWriter`]).
//!
//! A writer holds its ref's lock from open to commit or close. It appends to
//! the ingest's data file and feeds the same bytes to a running sha256, so
//! commit knows the digest without reading the file again; the bytes pass
//! through memory once, in the caller's buffer. Reopening a ref resumes at
//! the data file's length: from the digest state the last writer left behind
//! when the file still has that length (same daemon run), otherwise by
//! hashing the file.
//!
//! Commit follows containerd's metadata and local stores, check for check:
//! the labels are validated; a non-zero `size` must equal the bytes written
//! (`"REF" failed size validation: WRITTEN != SIZE: failed precondition`); the
//! data is fsynced; an `expected` digest must match (`unexpected commit
//! digest D, expected E: failed precondition`). A failed check keeps the
//! ingest, so the client can resume or abort. Then, under the blob store's
//! commit lock, the file is renamed into place (or dropped, if the blob is on
//! disk already — it is stored once) and the namespace's row recorded; a
//! namespace that held the blob already gets `content D: already exists`.
//!
//! A writer opened with an expected digest that another namespace already
//! holds starts *shared* (containerd's default sharing policy): it reports
//! the whole blob as written, and committing it records ownership without
//! writing a byte. Writing or truncating first copies the blob into a real
//! ingest.

use super::blobs::{self, io_error};
use super::ingest::{self, IngestInfo};
use super::locks::RefLock;
use super::record::{not_found, OpenCheck};
use super::store::{Content, LocalContent};
use berth_core::content::{ContentWriter, Status, WriterOptions};
use berth_core::digest::Digester;
use berth_core::{labels, Digest, Error, ErrorKind, Result};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::SystemTime;

/// The buffer size for hashing and copying files: containerd's 1 MiB.
const COPY_BUFFER: usize = 1 << 20;

/// An open ingest; see the module docs. Dropping it closes it and keeps the
/// bytes, so the same ref can be reopened to resume.
pub struct LocalWriter {
    /// `None` only after a blocking task holding it was lost (a panic).
    state: Option<Box<WriterState>>,
    status: Status,
}

impl std::fmt::Debug for LocalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWriter")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Everything a writer owns; moved to a blocking thread for each operation.
struct WriterState {
    content: Content,
    ns: String,
    lease: Option<String>,
    reference: String,
    /// The ingest directory name.
    key: String,
    /// The open data file; `None` while shared (nothing written yet).
    data: Option<File>,
    digester: Digester,
    offset: u64,
    total: i64,
    expected: Option<Digest>,
    started_at: SystemTime,
    updated_at: SystemTime,
    /// The blob another namespace holds that this writer offers, until it
    /// writes.
    shared: Option<SharedBlob>,
    /// Committed: nothing to keep for a resume.
    done: bool,
    /// Released last, after the file is closed.
    _lock: RefLock,
}

struct SharedBlob {
    digest: Digest,
    size: u64,
}

/// Opens (or resumes) the writer `options` describe in `lc`'s namespace.
pub(super) fn open(lc: &LocalContent, options: WriterOptions) -> Result<LocalWriter> {
    let WriterOptions {
        reference,
        total,
        expected,
    } = options;
    if reference.is_empty() {
        return Err(Error::invalid_argument(
            "ref must not be empty: invalid argument",
        ));
    }
    if let Some(digest) = &expected {
        blobs::supported(digest)?;
    }
    let inner = &lc.content.inner;
    let check = inner.metadata.content_open_check(
        &lc.ns,
        lc.lease.as_deref(),
        &reference,
        expected.as_ref(),
    )?;
    if let (OpenCheck::Exists, Some(digest)) = (check, &expected) {
        return Err(Error::already_exists(format_args!("content {digest}")));
    }
    let key = ingest::key(&lc.ns, &reference);
    let lock = inner.locks.try_lock(&key, &reference)?;
    let now = SystemTime::now();
    let mut state = Box::new(WriterState {
        content: lc.content.clone(),
        ns: lc.ns.clone(),
        lease: lc.lease.clone(),
        reference,
        key,
        data: None,
        digester: Digester::new(),
        offset: 0,
        total: total.max(0),
        expected,
        started_at: now,
        updated_at: now,
        shared: None,
        done: false,
        _lock: lock,
    });
    if !state.try_share() {
        state.resume_or_create()?;
    }
    Ok(LocalWriter::new(state))
}

impl WriterState {
    /// Starts shared if the expected blob is on disk with the expected
    /// size (or no size was given); whether it did.
    ///
    /// The pin comes before the look at the file: a collection removing the
    /// blob either sees the pin and keeps the file, or finished unlinking
    /// it before the pin (it holds the pin table while it unlinks), and then
    /// the file is seen gone. Looking first would let the file go between
    /// the look and the pin, and the commit would find nothing to record.
    fn try_share(&mut self) -> bool {
        let Some(digest) = self.expected.clone() else {
            return false;
        };
        self.content.pin(&digest);
        let blobs = &self.content.inner.blobs;
        let size = blobs.path(&digest).and_then(|p| file_len(&p));
        let size = match size {
            Ok(size) if self.total == 0 || u64::try_from(self.total) == Ok(size) => size,
            _ => {
                self.content.unpin(&digest);
                return false;
            }
        };
        self.total = i64::try_from(size).unwrap_or(i64::MAX);
        self.offset = size;
        self.shared = Some(SharedBlob { digest, size });
        true
    }

    /// Resumes the ingest on disk, or starts a new one when there is none
    /// or it cannot be resumed (another total, unreadable metadata), as
    /// containerd's local store does.
    fn resume_or_create(&mut self) -> Result<()> {
        let ingests = &self.content.inner.ingests;
        match ingests.load(&self.key) {
            Ok(info)
                if info.reference == self.reference && totals_agree(self.total, info.total) =>
            {
                return self.resume(info)
            }
            Ok(info) => tracing::info!(
                reference = %self.reference,
                stored_total = info.total,
                total = self.total,
                "ingest cannot be resumed: starting it again"
            ),
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err),
        }
        self.create()
    }

    fn resume(&mut self, info: IngestInfo) -> Result<()> {
        let path = self.content.inner.ingests.data_path(&self.key);
        if info.total == 0 && self.total > 0 {
            self.content
                .inner
                .ingests
                .set_total(&self.key, self.total)?;
        } else {
            self.total = info.total;
        }
        self.expected = self.expected.take().or(info.expected);
        self.started_at = info.started_at;
        self.updated_at = info.updated_at;
        self.offset = info.offset;
        self.digester = match self.content.take_resume(&self.key, info.offset) {
            Some(digester) => digester,
            None => hash_file(&path, info.offset)?,
        };
        self.data = Some(open_append(&path)?);
        Ok(())
    }

    fn create(&mut self) -> Result<()> {
        self.content.forget_resume(&self.key);
        let info = self.content.inner.ingests.create(
            &self.key,
            &self.ns,
            &self.reference,
            self.total,
            self.expected.as_ref(),
        )?;
        self.started_at = info.started_at;
        self.updated_at = info.updated_at;
        self.offset = 0;
        self.digester = Digester::new();
        let path = self.content.inner.ingests.data_path(&self.key);
        self.data = Some(open_append(&path)?);
        Ok(())
    }

    /// Turns a shared writer into a real ingest holding the first `len`
    /// bytes of the shared blob (all of it, if shorter; containerd's
    /// `createAndCopy`).
    fn unshare(&mut self, len: u64) -> Result<()> {
        let Some(shared) = self.shared.take() else {
            return Ok(());
        };
        self.content.unpin(&shared.digest);
        self.create()?;
        let (mut blob, _) = self.content.inner.blobs.open_blob(&shared.digest)?;
        let mut remaining = len.min(shared.size);
        let mut buf = vec![0u8; COPY_BUFFER];
        while remaining > 0 {
            let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
            let n = blob
                .read(&mut buf[..want])
                .map_err(|e| Error::internal(format!("copying blob {}: {e}", shared.digest)))?;
            if n == 0 {
                return Err(Error::internal(format!(
                    "blob {} ended before {len} bytes",
                    shared.digest
                )));
            }
            self.append(&buf[..n])?;
            remaining -= n as u64;
        }
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> Result<()> {
        // Appending to a shared blob extends a copy of all of it.
        self.unshare(u64::MAX)?;
        let file = self.data.as_mut().ok_or_else(closed)?;
        file.write_all(data).map_err(|e| {
            let path = self.content.inner.ingests.data_path(&self.key);
            io_error(e, "writing", &path)
        })?;
        self.digester.update(data);
        self.offset += data.len() as u64;
        self.updated_at = SystemTime::now();
        Ok(())
    }

    fn truncate(&mut self, size: i64) -> Result<()> {
        let size = u64::try_from(size)
            .ok()
            .filter(|s| *s <= self.offset)
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "cannot truncate ingest {} to {size} bytes: it holds {}: invalid argument",
                    self.reference, self.offset
                ))
            })?;
        if self.shared.is_some() {
            return self.unshare(size);
        }
        let path = self.content.inner.ingests.data_path(&self.key);
        let file = self.data.as_mut().ok_or_else(closed)?;
        file.set_len(size)
            .map_err(|e| io_error(e, "truncating", &path))?;
        self.digester = hash_file(&path, size)?;
        self.offset = size;
        self.updated_at = SystemTime::now();
        Ok(())
    }

    fn status(&self) -> Status {
        let offset = i64::try_from(self.offset).unwrap_or(i64::MAX);
        Status {
            reference: self.reference.clone(),
            offset,
            total: self.total,
            expected: match &self.shared {
                Some(shared) => Some(shared.digest.clone()),
                None => self.expected.clone(),
            },
            started_at: self.started_at,
            updated_at: self.updated_at,
        }
    }

    fn digest(&self) -> Digest {
        match &self.shared {
            Some(shared) => shared.digest.clone(),
            None => self.digester.clone().finish(),
        }
    }

    fn commit(
        &mut self,
        size: i64,
        expected: Option<Digest>,
        labels: &HashMap<String, String>,
    ) -> Result<()> {
        labels::validate_all(labels).map_err(|e| e.context("info.Labels"))?;
        let written = i64::try_from(self.offset).unwrap_or(i64::MAX);
        if size != 0 && size != written {
            return Err(Error::classed(
                ErrorKind::FailedPrecondition,
                format_args!(
                    "{:?} failed size validation: {written} != {size}",
                    self.reference
                ),
            ));
        }
        if let Some(shared) = &self.shared {
            if expected.as_ref().is_some_and(|e| *e != shared.digest) {
                return Err(Error::classed(
                    ErrorKind::FailedPrecondition,
                    format_args!("{:?} unexpected digest", self.reference),
                ));
            }
            let digest = shared.digest.clone();
            return self.record(&digest, None, labels);
        }
        let path = self.content.inner.ingests.data_path(&self.key);
        let file = self.data.as_ref().ok_or_else(closed)?;
        file.sync_data()
            .map_err(|e| io_error(e, "syncing", &path))?;
        let digest = self.digester.clone().finish();
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(Error::classed(
                ErrorKind::FailedPrecondition,
                format_args!("unexpected commit digest {digest}, expected {expected}"),
            ));
        }
        self.record(&digest, Some(&path), labels)
    }

    /// Installs `data` (if any) as blob `digest` and records this
    /// namespace's hold, under the commit lock; then removes the ingest.
    fn record(
        &mut self,
        digest: &Digest,
        data: Option<&Path>,
        labels: &HashMap<String, String>,
    ) -> Result<()> {
        let inner = &self.content.inner;
        let size = i64::try_from(self.offset).unwrap_or(i64::MAX);
        let created = {
            let _guard = inner.blobs.commit_guard();
            match data {
                Some(path) => {
                    inner.blobs.install(path, digest)?;
                }
                None if !inner.blobs.exists(digest) => return Err(not_found(digest)),
                None => {}
            }
            inner.metadata.content_commit(
                &self.ns,
                self.lease.as_deref(),
                &self.reference,
                digest,
                size,
                labels,
            )?
        };
        self.done = true;
        self.data = None;
        if data.is_some() {
            if let Err(err) = self.content.remove_ingest(&self.ns, &self.reference) {
                tracing::warn!(reference = %self.reference, error = %err, "removing committed ingest");
            }
        }
        if created {
            Ok(())
        } else {
            Err(Error::already_exists(format_args!("content {digest}")))
        }
    }
}

impl Drop for WriterState {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            self.content.unpin(&shared.digest);
        }
        if !self.done && self.data.is_some() {
            self.content
                .save_resume(&self.key, self.offset, self.digester.clone());
            // What a resumed writer reports as updated-at (see `ingest`).
            if let Err(err) = self
                .content
                .inner
                .ingests
                .set_updated_at(&self.key, self.updated_at)
            {
                tracing::warn!(reference = %self.reference, error = %err, "recording an ingest's updated-at");
            }
        }
    }
}

/// Whether a writer's total and a stored ingest's agree (0 is "unknown").
fn totals_agree(given: i64, stored: i64) -> bool {
    given == 0 || stored == 0 || given == stored
}

fn closed() -> Error {
    Error::failed_precondition("cannot use a closed writer: failed precondition")
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| io_error(e, "reading metadata of", path))
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_error(e, "opening", path))
}

/// The digest state of the first `len` bytes of the file at `path`.
fn hash_file(path: &Path, len: u64) -> Result<Digester> {
    let file = File::open(path).map_err(|e| io_error(e, "opening", path))?;
    let mut reader = file.take(len);
    let mut digester = Digester::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| io_error(e, "reading", path))?;
        if n == 0 {
            return Ok(digester);
        }
        digester.update(&buf[..n]);
    }
}

impl LocalWriter {
    fn new(state: Box<WriterState>) -> Self {
        LocalWriter {
            status: state.status(),
            state: Some(state),
        }
    }

    /// The digest of the bytes written so far (the blob's digest for a
    /// shared writer): what containerd's Write stream reports.
    pub fn digest(&self) -> Digest {
        match &self.state {
            Some(state) => state.digest(),
            None => Digester::new().finish(),
        }
    }

    /// [`ContentWriter::write`] for callers off the async runtime.
    pub fn write_blocking(&mut self, data: &[u8]) -> Result<()> {
        self.with_state(|state| state.append(data))
    }

    /// [`ContentWriter::truncate`] for callers off the async runtime.
    pub fn truncate_blocking(&mut self, size: i64) -> Result<()> {
        self.with_state(|state| state.truncate(size))
    }

    /// [`ContentWriter::commit`] for callers off the async runtime.
    pub fn commit_blocking(
        mut self,
        size: i64,
        expected: Option<Digest>,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        self.with_state(|state| state.commit(size, expected, &labels))
    }

    fn with_state<T>(&mut self, f: impl FnOnce(&mut WriterState) -> Result<T>) -> Result<T> {
        let state = self.state.as_mut().ok_or_else(closed)?;
        let out = f(state);
        self.status = state.status();
        out
    }

    /// Runs `f` on the writer's state on tokio's blocking pool.
    async fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut WriterState) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut state = self.state.take().ok_or_else(closed)?;
        let (state, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut state);
            (state, out)
        })
        .await
        .map_err(|err| Error::internal(format!("content writer task failed: {err}")))?;
        self.status = state.status();
        self.state = Some(state);
        out
    }
}

#[async_trait::async_trait]
impl ContentWriter for LocalWriter {
    fn status(&self) -> Status {
        self.status.clone()
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.write_owned(data.to_vec()).await
    }

    async fn write_owned(&mut self, data: Vec<u8>) -> Result<()> {
        self.run(move |state| state.append(&data)).await
    }

    async fn truncate(&mut self, size: i64) -> Result<()> {
        self.run(move |state| state.truncate(size)).await
    }

    async fn commit(
        mut self: Box<Self>,
        size: i64,
        expected: Option<Digest>,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        self.run(move |state| state.commit(size, expected, &labels))
            .await
    }
}
