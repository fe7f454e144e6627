//! The content store: blobs addressed by digest, and the ingests that write
//! them.
//!
//! A blob is written under an *ingest ref* (a client-chosen name such as
//! `manifest-sha256:…`): the writer appends bytes, may be dropped and
//! reopened by the same ref to resume at its offset, and *commits* with the
//! expected size and digest, which the store verifies before the blob becomes
//! visible. Only one writer holds a ref at a time; a second gets
//! `Unavailable` ("ref … locked"). Committing content that already exists is
//! `AlreadyExists`, which callers that only want the blob present treat as
//! success ([`write_blob`] does).
//!
//! A [`ContentStore`] is always scoped to one namespace (and possibly a
//! lease): the local store in `berth-store` and the remote one in
//! `berth-client` both implement it, so image import, export and pull run
//! unchanged inside the daemon and in a client.

#[cfg(feature = "testsuite")]
pub mod testsuite;

use crate::digest::{Digest, Digester};
use crate::filters::{labels_field, Adaptor};
use crate::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::pin::Pin;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What the store knows about a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: i64,
    /// When this namespace first held it.
    pub created_at: SystemTime,
    /// When its labels last changed.
    pub updated_at: SystemTime,
    /// Labels, e.g. `containerd.io/gc.ref.content.l.0`.
    pub labels: HashMap<String, String>,
}

/// The state of an ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The ingest ref.
    pub reference: String,
    /// Bytes written so far.
    pub offset: i64,
    /// The expected total size, 0 if unknown.
    pub total: i64,
    /// The expected digest, if the writer said.
    pub expected: Option<Digest>,
    /// When the ingest started.
    pub started_at: SystemTime,
    /// When it was last written.
    pub updated_at: SystemTime,
}

/// How to open a writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterOptions {
    /// The ingest ref (required).
    pub reference: String,
    /// The expected total size, 0 if unknown.
    pub total: i64,
    /// The expected digest: if that blob exists already, opening fails with
    /// `AlreadyExists`.
    pub expected: Option<Digest>,
}

impl Adaptor for Info {
    /// containerd's `AdaptInfo`: `digest` and `labels.KEY`. `size` is a
    /// known field that containerd never answers ("TODO: support size based
    /// filtering"), so it is absent here too.
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match first.as_str() {
            "digest" => Some(self.digest.to_string()),
            "labels" => labels_field(&self.labels, rest),
            _ => None,
        }
    }
}

impl Adaptor for Status {
    /// containerd's `adaptContentStatus`: `ref` only.
    fn field(&self, path: &[String]) -> Option<String> {
        match path.first()?.as_str() {
            "ref" => Some(self.reference.clone()),
            _ => None,
        }
    }
}

/// A blob's bytes from some offset on.
pub type ContentReader = Pin<Box<dyn AsyncRead + Send>>;

/// An open ingest. Dropping it closes it but keeps the bytes written, so the
/// same ref can be reopened to resume.
#[async_trait::async_trait]
pub trait ContentWriter: Send {
    /// The ingest's current state.
    fn status(&self) -> Status;
    /// Appends `data` at the current offset.
    async fn write(&mut self, data: &[u8]) -> Result<()>;
    /// Appends `data` at the current offset, taking ownership of the bytes.
    ///
    /// Callers that already own a buffer (a decoded gRPC message) use this so
    /// an implementation that hands the bytes to another thread — the local
    /// store writes files off the async runtime — needs no copy.
    async fn write_owned(&mut self, data: Vec<u8>) -> Result<()> {
        self.write(&data).await
    }
    /// Cuts the ingest back to `size` bytes (0 restarts it).
    async fn truncate(&mut self, size: i64) -> Result<()>;
    /// Verifies `size` (if non-zero) and `expected` (if given), then makes the
    /// blob visible with `labels`. A mismatch fails and leaves no blob.
    async fn commit(
        self: Box<Self>,
        size: i64,
        expected: Option<Digest>,
        labels: HashMap<String, String>,
    ) -> Result<()>;
}

/// A namespace's view of the content store.
#[async_trait::async_trait]
pub trait ContentStore: Send + Sync {
    /// Info of a blob this namespace holds; `NotFound` otherwise.
    async fn info(&self, digest: &Digest) -> Result<Info>;
    /// Updates labels by field paths (`labels`, `labels.KEY`; none = all).
    async fn update(&self, info: Info, paths: &[String]) -> Result<Info>;
    /// Lists the blobs passing `filters` (containerd's filter syntax).
    async fn list(&self, filters: &[String]) -> Result<Vec<Info>>;
    /// Removes a blob from this namespace (and from disk when no namespace
    /// holds it any longer).
    async fn delete(&self, digest: &Digest) -> Result<()>;
    /// Reads a blob from `offset` to its end.
    async fn reader(&self, digest: &Digest, offset: u64) -> Result<ContentReader>;
    /// The status of an ingest; `NotFound` if there is none.
    async fn status(&self, reference: &str) -> Result<Status>;
    /// The ingests passing `filters` (field `ref`).
    async fn list_statuses(&self, filters: &[String]) -> Result<Vec<Status>>;
    /// Abandons an ingest and its bytes.
    async fn abort(&self, reference: &str) -> Result<()>;
    /// Opens (or reopens, to resume) the ingest `options.reference`.
    async fn writer(&self, options: WriterOptions) -> Result<Box<dyn ContentWriter>>;
}

/// Reads a whole blob into memory, refusing blobs over `limit` bytes (for
/// manifests, indexes and configs, never layers).
pub async fn read_blob(store: &dyn ContentStore, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
    let info = store.info(digest).await?;
    let size = u64::try_from(info.size).unwrap_or(u64::MAX);
    if size > limit {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!("blob {digest} is {size} bytes, more than the {limit} allowed here"),
        ));
    }
    let mut reader = store.reader(digest, 0).await?;
    let mut out = Vec::with_capacity(size as usize);
    reader.read_to_end(&mut out).await?;
    Ok(out)
}

/// Writes `data` from `reader` as blob `expected` (size and digest verified)
/// under ingest `reference`, resuming a partial ingest of the same ref and
/// treating "already exists" as success.
///
/// An ingest that already holds `size` bytes (a finished upload that was
/// never committed, or a blob another namespace holds, which the store offers
/// at full offset) is committed without reading `reader`; if that commit
/// fails its checks, the ingest is rewritten from the start.
pub async fn write_blob(
    store: &dyn ContentStore,
    reference: &str,
    mut reader: impl AsyncRead + Unpin + Send,
    size: i64,
    expected: &Digest,
    labels: HashMap<String, String>,
) -> Result<()> {
    let options = WriterOptions {
        reference: reference.to_string(),
        total: size,
        expected: Some(expected.clone()),
    };
    let Some(mut writer) = open_unless_exists(store, &options).await? else {
        return Ok(());
    };
    let offset = writer.status().offset;
    if offset > 0 && offset == size {
        match commit_existing(
            writer
                .commit(size, Some(expected.clone()), labels.clone())
                .await,
        ) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == ErrorKind::FailedPrecondition => {}
            Err(err) => return Err(err),
        }
        let Some(reopened) = open_unless_exists(store, &options).await? else {
            return Ok(());
        };
        writer = reopened;
    }
    // A resumed ingest of a non-seekable source cannot skip ahead: restart it.
    if writer.status().offset != 0 {
        writer.truncate(0).await?;
    }
    loop {
        // A fresh buffer per chunk is handed over whole (no copy) and freed
        // by the writer; memory stays at one chunk in flight.
        let mut buf = vec![0u8; WRITE_CHUNK];
        let n = read_full(&mut reader, &mut buf).await?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        writer.write_owned(buf).await?;
    }
    commit_existing(writer.commit(size, Some(expected.clone()), labels).await)
}

/// Opens a writer, or `None` when the blob exists already.
async fn open_unless_exists(
    store: &dyn ContentStore,
    options: &WriterOptions,
) -> Result<Option<Box<dyn ContentWriter>>> {
    match store.writer(options.clone()).await {
        Ok(writer) => Ok(Some(writer)),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(None),
        Err(err) => Err(err),
    }
}

/// A commit result with "already exists" counted as success.
fn commit_existing(result: Result<()>) -> Result<()> {
    match result {
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// The chunk size [`write_blob`] writes in: containerd's clients use 1 MiB.
const WRITE_CHUNK: usize = 1 << 20;

/// Reads until `buf` is full or the reader ends; the number of bytes read.
async fn read_full(reader: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Digests everything `reader` yields: (digest, size).
pub async fn digest_reader(mut reader: impl AsyncRead + Unpin) -> Result<(Digest, u64)> {
    let mut digester = Digester::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok((digester.finish(), total));
        }
        digester.update(&buf[..n]);
        total += n as u64;
    }
}
