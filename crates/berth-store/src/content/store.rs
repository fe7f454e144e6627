//! The content store root ([`Content`]) and a namespace's view of it
//! ([`LocalContent`], berth's `ContentStore` implementation).

use super::blobs::BlobStore;
use super::ingest::{self, IngestInfo, Ingests};
use super::locks::RefLocks;
use super::writer::{self, LocalWriter};
use crate::validation::namespace_required;
use crate::MetadataStore;
use berth_core::content::{
    ContentReader, ContentStore, ContentWriter, Info, Status, WriterOptions,
};
use berth_core::digest::Digester;
use berth_core::filters::Filter;
use berth_core::{Digest, Error, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Told after a namespace deletes a blob: (namespace, digest). The daemon
/// publishes containerd's `/content/delete` event from it.
pub type DeleteHook = Arc<dyn Fn(&str, &Digest) + Send + Sync>;

/// The content store: blob files, ingests, ref locks, and the metadata
/// database that records which namespace holds which blob. Cheap to clone;
/// clones share everything.
#[derive(Clone)]
pub struct Content {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    root: PathBuf,
    pub(super) blobs: BlobStore,
    pub(super) ingests: Ingests,
    pub(super) locks: Arc<RefLocks>,
    pub(super) metadata: MetadataStore,
    /// The digest state of writers closed without committing, by ingest
    /// key, with the offset it covers: reopening the ingest resumes from it
    /// instead of re-reading the data file (containerd re-reads). Only used
    /// when the data file still has exactly that length.
    resume: Mutex<HashMap<String, (u64, Digester)>>,
    /// Blobs an open writer offers from another namespace (containerd's
    /// shared content): removal leaves them alone until the writer closes.
    pinned: Mutex<HashMap<Digest, usize>>,
    on_delete: OnceLock<DeleteHook>,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex whose data a panic cannot leave half-updated (single map
/// operations), ignoring poison.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Content {
    /// Opens the content store in `root` (the daemon's `<root>/content`),
    /// creating `blobs/sha256` and `ingest` if needed, with ownership
    /// recorded in `metadata`.
    pub fn open(root: &Path, metadata: MetadataStore) -> Result<Self> {
        Ok(Content {
            inner: Arc::new(Inner {
                root: root.to_owned(),
                blobs: BlobStore::open(root)?,
                ingests: Ingests::open(root)?,
                locks: Arc::default(),
                metadata,
                resume: Mutex::default(),
                pinned: Mutex::default(),
                on_delete: OnceLock::new(),
            }),
        })
    }

    /// Sets the function told about every blob a namespace deletes (once;
    /// later calls are ignored).
    pub fn set_delete_hook(&self, hook: DeleteHook) {
        let _ = self.inner.on_delete.set(hook);
    }

    /// The directory holding `blobs/` and `ingest/`.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The blob files and their commit lock.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// The metadata database recording ownership.
    pub fn metadata(&self) -> &MetadataStore {
        &self.inner.metadata
    }

    /// Namespace `ns`'s view of the store, working under `lease` (whose
    /// resources then record what it writes). `FailedPrecondition` for an
    /// empty namespace, `InvalidArgument` for a malformed one.
    pub fn namespace(&self, ns: &str, lease: Option<&str>) -> Result<LocalContent> {
        namespace_required(ns)?;
        Ok(LocalContent {
            content: self.clone(),
            ns: ns.to_owned(),
            lease: lease.filter(|l| !l.is_empty()).map(str::to_owned),
        })
    }

    /// Removes the file of blob `digest` if no namespace holds it (and no
    /// open writer offers it); whether it removed one.
    ///
    /// Takes the blob store's removal lock, which commits also take (see
    /// [`BlobStore`]), and checks ownership in a read transaction under it:
    /// a commit of the same digest in another namespace either finished
    /// first (its row is seen, the file stays) or starts after (it installs
    /// its own file). Garbage collection removes blob files only through
    /// this function or [`Content::remove_unowned`].
    pub fn remove_if_unowned(&self, digest: &Digest) -> Result<bool> {
        Ok(!self
            .remove_unowned(std::slice::from_ref(digest))?
            .is_empty())
    }

    /// [`Content::remove_if_unowned`] for many digests under one lock and
    /// one read transaction; the digests whose files it removed.
    pub fn remove_unowned(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let inner = &self.inner;
        let _guard = inner.blobs.removal_guard();
        let unowned = inner.metadata.content_unowned(digests)?;
        let pinned = lock(&inner.pinned);
        let mut removed = Vec::new();
        for (digest, unowned) in digests.iter().zip(unowned) {
            if unowned && !pinned.contains_key(digest) && inner.blobs.remove(digest)? {
                tracing::debug!(%digest, "removed blob");
                removed.push(digest.clone());
            }
        }
        Ok(removed)
    }

    /// Every ingest on disk, of every namespace (for garbage collection,
    /// which expires ingests no lease holds, as containerd does 24 hours
    /// after a writer last opened them).
    pub fn ingests(&self) -> Result<Vec<IngestInfo>> {
        let all = self.inner.ingests.list()?;
        Ok(all.into_iter().map(|(_, info)| info).collect())
    }

    /// Whether ingest `reference` of namespace `ns` has an open writer.
    pub fn ingest_active(&self, ns: &str, reference: &str) -> bool {
        self.inner.locks.is_locked(&ingest::key(ns, reference))
    }

    /// Removes ingest `reference` of namespace `ns` and its bytes; whether
    /// it existed. Lease entries are left to the caller.
    pub fn remove_ingest(&self, ns: &str, reference: &str) -> Result<bool> {
        let key = ingest::key(ns, reference);
        lock(&self.inner.resume).remove(&key);
        self.inner.ingests.remove(&key)
    }

    /// The saved digest state of ingest `key`, if it covers `offset` bytes.
    pub(super) fn take_resume(&self, key: &str, offset: u64) -> Option<Digester> {
        let mut resume = lock(&self.inner.resume);
        match resume.remove(key) {
            Some((at, digester)) if at == offset => Some(digester),
            _ => None,
        }
    }

    /// Saves the digest state of a writer closing at `offset`.
    pub(super) fn save_resume(&self, key: &str, offset: u64, digester: Digester) {
        lock(&self.inner.resume).insert(key.to_owned(), (offset, digester));
    }

    /// Forgets the saved digest state of ingest `key`.
    pub(super) fn forget_resume(&self, key: &str) {
        lock(&self.inner.resume).remove(key);
    }

    /// Keeps blob `digest` from removal while an open writer offers it.
    pub(super) fn pin(&self, digest: &Digest) {
        *lock(&self.inner.pinned).entry(digest.clone()).or_default() += 1;
    }

    /// Releases one [`Content::pin`].
    pub(super) fn unpin(&self, digest: &Digest) {
        let mut pinned = lock(&self.inner.pinned);
        if let Some(n) = pinned.get_mut(digest) {
            *n -= 1;
            if *n == 0 {
                pinned.remove(digest);
            }
        }
    }
}

/// One namespace's view of the content store, optionally under a lease:
/// berth's local [`ContentStore`]. The trait methods run their file and
/// database work on tokio's blocking pool; the `*_blocking` methods are the
/// same operations for callers already off the runtime.
#[derive(Clone)]
pub struct LocalContent {
    pub(super) content: Content,
    pub(super) ns: String,
    pub(super) lease: Option<String>,
}

impl std::fmt::Debug for LocalContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalContent")
            .field("namespace", &self.ns)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// `reference R: not found`, containerd's words for a missing ingest.
fn ingest_not_found(reference: &str) -> Error {
    Error::not_found(format_args!("reference {reference}"))
}

impl LocalContent {
    /// The namespace this view works in.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The lease this view works under, if any.
    pub fn lease(&self) -> Option<&str> {
        self.lease.as_deref()
    }

    /// Opens blob `digest` for reading: the file and its size. `NotFound`
    /// unless this namespace holds it.
    pub fn open_blob_blocking(&self, digest: &Digest) -> Result<(File, u64)> {
        self.content.inner.metadata.content_info(&self.ns, digest)?;
        self.content.inner.blobs.open_blob(digest)
    }

    /// [`ContentStore::delete`], off the runtime: removes this namespace's
    /// hold, tells the delete hook, and removes the file if nobody else
    /// holds it.
    pub fn delete_blocking(&self, digest: &Digest) -> Result<()> {
        let inner = &self.content.inner;
        inner
            .metadata
            .delete_content(&self.ns, digest, self.lease.as_deref())?;
        if let Some(hook) = inner.on_delete.get() {
            hook(&self.ns, digest);
        }
        // The namespace's delete has happened; a file left behind (an I/O
        // error here) is garbage collection's to retry.
        if let Err(err) = self.content.remove_if_unowned(digest) {
            tracing::warn!(%digest, error = %err, "removing unowned blob");
        }
        Ok(())
    }

    /// [`ContentStore::status`], off the runtime.
    pub fn status_blocking(&self, reference: &str) -> Result<Status> {
        let key = ingest::key(&self.ns, reference);
        match self.content.inner.ingests.load(&key) {
            Ok(info) if info.reference == reference => Ok(status_of(info)),
            Ok(_) => Err(ingest_not_found(reference)),
            Err(err) if err.is_not_found() => Err(ingest_not_found(reference)),
            Err(err) => Err(err),
        }
    }

    /// [`ContentStore::list_statuses`], off the runtime.
    pub fn list_statuses_blocking(&self, filter: &Filter) -> Result<Vec<Status>> {
        let mut out: Vec<Status> = self
            .content
            .inner
            .ingests
            .list()?
            .into_iter()
            .filter(|(_, info)| info.namespace == self.ns)
            .map(|(_, info)| status_of(info))
            .filter(|status| filter.matches(status))
            .collect();
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// [`ContentStore::abort`], off the runtime. Like containerd, it removes
    /// the ingest even while a writer has it open; that writer's commit
    /// then fails.
    pub fn abort_blocking(&self, reference: &str) -> Result<()> {
        if !self.content.remove_ingest(&self.ns, reference)? {
            return Err(ingest_not_found(reference));
        }
        if let Some(lease) = &self.lease {
            self.content
                .inner
                .metadata
                .content_abort(&self.ns, lease, reference)?;
        }
        Ok(())
    }

    /// Opens (or resumes) a writer, off the runtime; the concrete type, whose
    /// [`LocalWriter::digest`] the gRPC Write stream reports.
    pub fn writer_blocking(&self, options: WriterOptions) -> Result<LocalWriter> {
        writer::open(self, options)
    }

    /// Whether this namespace holds blob `digest`; if it does, the
    /// writer's lease (if any) now holds it too, atomically with the
    /// answer (what a Write stream naming an existing blob needs).
    pub async fn hold_existing(&self, digest: &Digest) -> Result<bool> {
        let (this, digest) = (self.clone(), digest.clone());
        blocking(move || {
            this.content
                .inner
                .metadata
                .content_hold(&this.ns, this.lease.as_deref(), &digest)
        })
        .await
    }

    /// Opens (or resumes) a writer on tokio's blocking pool.
    pub async fn local_writer(&self, options: WriterOptions) -> Result<LocalWriter> {
        let this = self.clone();
        blocking(move || this.writer_blocking(options)).await
    }
}

/// An ingest's record as a [`Status`].
fn status_of(info: IngestInfo) -> Status {
    Status {
        reference: info.reference,
        offset: i64::try_from(info.offset).unwrap_or(i64::MAX),
        total: info.total,
        expected: info.expected,
        started_at: info.started_at,
        updated_at: info.updated_at,
    }
}

/// Runs blocking file and database work on tokio's blocking pool.
pub(super) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::internal(format!("content store task failed: {err}")))?
}

#[async_trait::async_trait]
impl ContentStore for LocalContent {
    async fn info(&self, digest: &Digest) -> Result<Info> {
        let (this, digest) = (self.clone(), digest.clone());
        blocking(move || this.content.inner.metadata.content_info(&this.ns, &digest)).await
    }

    async fn update(&self, info: Info, paths: &[String]) -> Result<Info> {
        let (this, paths) = (self.clone(), paths.to_vec());
        blocking(move || {
            this.content
                .inner
                .metadata
                .update_content(&this.ns, info, &paths)
        })
        .await
    }

    async fn list(&self, filters: &[String]) -> Result<Vec<Info>> {
        let filter = Filter::parse_all(filters)?;
        let this = self.clone();
        blocking(move || this.content.inner.metadata.list_content(&this.ns, &filter)).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let (this, digest) = (self.clone(), digest.clone());
        blocking(move || this.delete_blocking(&digest)).await
    }

    async fn reader(&self, digest: &Digest, offset: u64) -> Result<ContentReader> {
        let (this, digest) = (self.clone(), digest.clone());
        let file = blocking(move || {
            let (mut file, size) = this.open_blob_blocking(&digest)?;
            if offset > size {
                return Err(Error::new(
                    berth_core::ErrorKind::OutOfRange,
                    format!("read past object length {size} bytes"),
                ));
            }
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::internal(format!("seeking in blob {digest}: {e}")))?;
            Ok(file)
        })
        .await?;
        Ok(Box::pin(tokio::fs::File::from_std(file)))
    }

    async fn status(&self, reference: &str) -> Result<Status> {
        let (this, reference) = (self.clone(), reference.to_owned());
        blocking(move || this.status_blocking(&reference)).await
    }

    async fn list_statuses(&self, filters: &[String]) -> Result<Vec<Status>> {
        let filter = Filter::parse_all(filters)?;
        let this = self.clone();
        blocking(move || this.list_statuses_blocking(&filter)).await
    }

    async fn abort(&self, reference: &str) -> Result<()> {
        let (this, reference) = (self.clone(), reference.to_owned());
        blocking(move || this.abort_blocking(&reference)).await
    }

    async fn writer(&self, options: WriterOptions) -> Result<Box<dyn ContentWriter>> {
        Ok(Box::new(self.local_writer(options).await?))
    }
}
