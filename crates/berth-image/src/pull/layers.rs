//! Layer downloads and the unpack pipeline (see the module documentation
//! of [`crate::pull`] for the design).

use super::documents::{ManifestInfo, Tree};
use super::progress::{ALREADY_EXISTS, COMPLETE, DOWNLOADING, WAITING};
use super::{Ctx, UnpackTarget};
use crate::diff::apply_to_mounts;
use crate::gc::UNCOMPRESSED_LABEL;
use crate::images::chain_id;
use crate::spec::Descriptor;
use crate::unpack::{unpack_key, Unpacker, SNAPSHOT_REF_LABEL};
use berth_core::content::{ContentWriter, WriterOptions};
use berth_core::mount::Mount;
use berth_core::snapshots::Snapshotter;
use berth_core::{Digest, Error, ErrorKind, Result};
use futures::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

/// How much of a layer is read, written and handed to the applier at once.
const CHUNK: usize = 512 << 10;
/// How many chunks may wait for a layer's applier (bounds memory per layer).
const QUEUE: usize = 8;
/// How often a broken download is picked up again from its offset.
const RETRIES: u32 = 3;
/// How long to wait for another writer of the same blob in all.
const LOCK_WAIT: Duration = Duration::from_secs(300);

/// What to fetch and what to unpack.
pub(crate) struct Plan {
    /// Every distinct layer blob of the selected manifests.
    blobs: Vec<Descriptor>,
    /// The manifest to unpack: its layers and diff IDs.
    unpack: Option<(Vec<Descriptor>, Vec<Digest>)>,
}

impl Plan {
    pub(crate) fn new(tree: &Tree, unpack: Option<&ManifestInfo>) -> Result<Plan> {
        let mut seen = HashSet::new();
        let mut blobs = Vec::new();
        // The layers to unpack first, base first, so their downloads (and
        // applies) start before other platforms'.
        let order = unpack.into_iter().chain(tree.manifests.iter());
        for m in order {
            for layer in &m.layers {
                if seen.insert(layer.digest.clone()) {
                    blobs.push(layer.clone());
                }
            }
        }
        let unpack = match unpack {
            Some(m) if m.diff_ids.len() != m.layers.len() => {
                return Err(Error::invalid_argument(format!(
                    "image {}: {} diff IDs for {} layers",
                    m.desc.digest,
                    m.diff_ids.len(),
                    m.layers.len()
                )))
            }
            Some(m) => Some((m.layers.clone(), m.diff_ids.clone())),
            None => None,
        };
        Ok(Plan { blobs, unpack })
    }
}

/// Downloads every layer blob, `max` at a time.
pub(crate) async fn fetch_only(ctx: &Ctx<'_>, plan: &Plan, max: usize) -> Result<()> {
    let results: Vec<Result<()>> = stream::iter(&plan.blobs)
        .map(|desc| async move { ensure_blob(ctx, desc).await })
        .buffer_unordered(max)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Downloads every layer blob and unpacks the chosen manifest's layers.
pub(crate) async fn fetch_and_unpack(
    ctx: &Ctx<'_>,
    plan: &Plan,
    target: &UnpackTarget<'_>,
    max: usize,
) -> Result<()> {
    let Some((layers, diff_ids)) = &plan.unpack else {
        return fetch_only(ctx, plan, max).await;
    };
    let chains: Vec<Digest> = (1..=diff_ids.len())
        .filter_map(|n| chain_id(&diff_ids[..n]))
        .collect();
    // Committed chains are a prefix: a snapshot's parents exist.
    let mut first = 0;
    for (i, chain) in chains.iter().enumerate().rev() {
        if exists(target.snapshotter, chain.as_str()).await? {
            first = i + 1;
            break;
        }
    }
    let todo = LayerChain {
        layers: &layers[first..],
        diff_ids: &diff_ids[first..],
        chains: &chains[first..],
        parent: first.checked_sub(1).map(|i| chains[i].to_string()),
    };
    let applying: HashSet<&Digest> = todo.layers.iter().map(|l| &l.digest).collect();
    let others: Vec<&Descriptor> = plan
        .blobs
        .iter()
        .filter(|d| !applying.contains(&d.digest))
        .collect();
    // Rebasing needs local paths: a layer's implicit directories get the
    // attributes of its lower layers once they are known.
    let applied =
        if let (true, Some(scratch)) = (target.snapshotter.can_rebase(), &target.local_scratch) {
            parallel(ctx, &todo, &others, target, scratch, max).await?
        } else {
            sequential(ctx, &todo, &others, target, max).await?
        };
    for i in applied {
        super::documents::set_label(
            ctx.content,
            &todo.layers[i].digest,
            UNCOMPRESSED_LABEL,
            todo.diff_ids[i].as_str(),
        )
        .await?;
    }
    Ok(())
}

/// The layers left to apply, with their chain IDs and the chain below.
struct LayerChain<'p> {
    layers: &'p [Descriptor],
    diff_ids: &'p [Digest],
    chains: &'p [Digest],
    parent: Option<String>,
}

impl LayerChain<'_> {
    fn parent_of(&self, i: usize) -> String {
        match i {
            0 => self.parent.clone().unwrap_or_default(),
            _ => self.chains[i - 1].to_string(),
        }
    }
}

/// A finished job: the snapshot it prepared (layer index and key), if
/// any, and how it went (for an apply: the directory it wrote and the
/// implicit directories it made there).
type JobResult = (Option<(usize, String)>, Result<Option<Applied>>);

/// A layer applied to a rebase snapshot.
struct Applied {
    /// The snapshot's upper directory.
    upper: PathBuf,
    /// Directories the layer needed but did not carry.
    implicit_dirs: Vec<PathBuf>,
}

/// One unit of download work.
enum Job<'p> {
    /// Download layer `i` of the chain and apply it to a rebase snapshot.
    Apply(usize),
    /// Only download.
    Fetch(&'p Descriptor),
}

/// The rebase pipeline: every layer of `todo` is prepared without a
/// parent and applied while it downloads, all at once (bounded by `max`),
/// then committed onto its parent in order. Returns the indexes applied.
async fn parallel(
    ctx: &Ctx<'_>,
    todo: &LayerChain<'_>,
    others: &[&Descriptor],
    target: &UnpackTarget<'_>,
    scratch: &Path,
    max: usize,
) -> Result<Vec<usize>> {
    let jobs = (0..todo.layers.len())
        .map(Job::Apply)
        .chain(others.iter().map(|d| Job::Fetch(d)));
    let results: Vec<JobResult> = stream::iter(jobs)
        .map(|job| async move {
            match job {
                Job::Fetch(desc) => (None, ensure_blob(ctx, desc).await.map(|()| None)),
                Job::Apply(i) => {
                    let key = unpack_key(&todo.chains[i]);
                    let labels = ref_labels(&todo.chains[i]);
                    let result = match target.snapshotter.prepare_rebase(&key, labels).await {
                        Ok(mounts) => {
                            apply_layer(ctx, &todo.layers[i], &todo.diff_ids[i], mounts, scratch)
                                .await
                                .map(Some)
                        }
                        Err(e) => return (None, Err(e)),
                    };
                    (Some((i, key)), result)
                }
            }
        })
        .buffer_unordered(max)
        .collect()
        .await;
    let mut keys: Vec<Option<String>> = vec![None; todo.layers.len()];
    let mut layers: Vec<Option<Applied>> = (0..todo.layers.len()).map(|_| None).collect();
    let mut failure = None;
    for (prepared, result) in results {
        let index = prepared.map(|(i, key)| {
            keys[i] = Some(key);
            i
        });
        match (index, result) {
            (Some(i), Ok(applied)) => layers[i] = applied,
            (None, Ok(_)) => {}
            (_, Err(e)) => {
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(err) = failure {
        return Err(remove_all(target.snapshotter, keys, err).await);
    }
    let mut applied = Vec::new();
    for i in 0..todo.layers.len() {
        let Some(key) = keys[i].take() else {
            continue;
        };
        let chain = todo.chains[i].as_str();
        let parent = todo.parent_of(i);
        let mut result = Ok(());
        if let Some(applied) = layers[i].take() {
            if !applied.implicit_dirs.is_empty() && !parent.is_empty() {
                result = inherit_dirs(target.snapshotter, &key, &parent, applied).await;
            }
        }
        if result.is_ok() {
            result = target
                .snapshotter
                .commit_rebase(chain, &key, &parent, ref_labels(&todo.chains[i]))
                .await;
        }
        match result {
            Ok(()) => applied.push(i),
            // Another pull committed it first: theirs is as good as ours.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let _ = target.snapshotter.remove(&key).await;
            }
            Err(e) => {
                keys[i] = Some(key);
                return Err(remove_all(target.snapshotter, keys, e).await);
            }
        }
    }
    Ok(applied)
}

/// The pipeline for snapshotters that cannot rebase: every blob
/// downloads at once (bounded by `max`) while the layers are applied in
/// order, each as soon as its blob is stored and its parent committed.
async fn sequential(
    ctx: &Ctx<'_>,
    todo: &LayerChain<'_>,
    others: &[&Descriptor],
    target: &UnpackTarget<'_>,
    max: usize,
) -> Result<Vec<usize>> {
    let mut ready: HashMap<&Digest, (watch::Sender<bool>, watch::Receiver<bool>)> = HashMap::new();
    for layer in todo.layers {
        ready
            .entry(&layer.digest)
            .or_insert_with(|| watch::channel(false));
    }
    let senders: HashMap<&Digest, watch::Sender<bool>> =
        ready.iter().map(|(d, (tx, _))| (*d, tx.clone())).collect();
    let receivers: HashMap<&Digest, watch::Receiver<bool>> =
        ready.into_iter().map(|(d, (_, rx))| (d, rx)).collect();
    let mut seen = HashSet::new();
    let blobs: Vec<&Descriptor> = todo
        .layers
        .iter()
        .chain(others.iter().copied())
        .filter(|d| seen.insert(&d.digest))
        .collect();
    let downloads = async {
        let results: Vec<Result<()>> = stream::iter(blobs)
            .map(|desc| {
                let done = senders.get(&desc.digest).cloned();
                async move {
                    let result = ensure_blob(ctx, desc).await;
                    if let (Ok(()), Some(done)) = (&result, done) {
                        let _ = done.send(true);
                    }
                    result
                }
            })
            .buffer_unordered(max)
            .collect()
            .await;
        drop(senders);
        results.into_iter().collect::<Result<()>>()
    };
    let unpacker = Unpacker {
        content: ctx.content,
        snapshotter: target.snapshotter,
        snapshotter_name: target.snapshotter_name,
        applier: target.applier,
    };
    let applies = async {
        let mut applied = Vec::new();
        let mut receivers = receivers;
        for i in 0..todo.layers.len() {
            let layer = &todo.layers[i];
            if let Some(rx) = receivers.get_mut(&layer.digest) {
                if rx.wait_for(|done| *done).await.is_err() {
                    // The download failed; its error is the one to report.
                    return Ok(applied);
                }
            }
            let parent = todo.parent_of(i);
            if unpacker
                .layer_on(layer, &todo.chains[i], &parent, &todo.diff_ids[i])
                .await?
            {
                applied.push(i);
            }
        }
        Ok::<_, Error>(applied)
    };
    let (downloaded, applied) = futures::join!(downloads, applies);
    downloaded?;
    applied
}

/// Applies `layer` to the rebase snapshot `mounts`: while it downloads
/// when the download starts from scratch, else from the content store once
/// it is there. Checks the diff ID.
async fn apply_layer(
    ctx: &Ctx<'_>,
    layer: &Descriptor,
    diff_id: &Digest,
    mounts: Vec<Mount>,
    scratch: &Path,
) -> Result<Applied> {
    let upper = mounts
        .first()
        .and_then(|m| m.options.iter().find_map(|o| o.strip_prefix("upperdir=")))
        .map(PathBuf::from)
        .ok_or_else(|| Error::internal("a rebase snapshot without an upperdir"))?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let scratch = scratch.to_path_buf();
    let applier = tokio::task::spawn_blocking(move || {
        apply_to_mounts(ChannelReader::new(rx), &mounts, &scratch)
    });
    let fed = match open_writer(ctx, layer).await {
        Ok(Some(writer)) if writer.status().offset == 0 => {
            download(ctx, layer, writer, Some(tx)).await
        }
        Ok(Some(writer)) => match download(ctx, layer, writer, None).await {
            Ok(()) => feed_from_store(ctx, layer, tx).await,
            Err(e) => Err(e),
        },
        Ok(None) => feed_from_store(ctx, layer, tx).await,
        Err(e) => Err(e),
    };
    let applied = applier
        .await
        .map_err(|e| Error::internal(format!("layer apply task: {e}")))?;
    // A failed download explains a failed apply (a truncated or corrupt
    // stream), so it is the error to report.
    fed?;
    let stats =
        applied.map_err(|e| e.context(format!("failed to extract layer {}", layer.digest)))?;
    check_diff_id(layer, diff_id, &stats.diff_id)?;
    Ok(Applied {
        upper,
        implicit_dirs: stats.implicit_dirs,
    })
}

/// Sends a stored blob to an applier.
async fn feed_from_store(
    ctx: &Ctx<'_>,
    layer: &Descriptor,
    tx: mpsc::Sender<Vec<u8>>,
) -> Result<()> {
    let mut reader = ctx.content.reader(&layer.digest, 0).await?;
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        chunk.truncate(n);
        if tx.send(chunk).await.is_err() {
            return Ok(()); // the applier failed: its error is reported
        }
    }
}

/// Gives the directories a rebased layer made implicitly the attributes
/// of the same directories in its lower layers (the nearest that has one),
/// as an apply onto the parent would have (containerd's `WithParents`):
/// an upper `tmp/` must not hide the lower `tmp/`'s mode and owner.
async fn inherit_dirs(
    snapshotter: &dyn Snapshotter,
    key: &str,
    parent: &str,
    applied: Applied,
) -> Result<()> {
    let view = format!("{key} lowers");
    let mounts = snapshotter.view(&view, parent, HashMap::new()).await?;
    let lowers: Vec<PathBuf> = mounts
        .iter()
        .flat_map(
            |m| match m.options.iter().find_map(|o| o.strip_prefix("lowerdir=")) {
                Some(list) => list.split(':').map(PathBuf::from).collect(),
                None => vec![PathBuf::from(&m.source)],
            },
        )
        .collect();
    let copied = tokio::task::spawn_blocking(move || {
        for rel in &applied.implicit_dirs {
            copy_dir_attrs(&lowers, rel, &applied.upper.join(rel))?;
        }
        Ok::<_, Error>(())
    })
    .await
    .map_err(|e| Error::internal(format!("directory attributes task: {e}")));
    let removed = snapshotter.remove(&view).await;
    copied??;
    removed
}

/// Copies mode, owner and times of `rel` in the first of `lowers` that
/// has it onto `dir`, if that is a directory reached through directories.
fn copy_dir_attrs(lowers: &[PathBuf], rel: &Path, dir: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for lower in lowers {
        let mut path = lower.clone();
        let mut found = None;
        for component in rel.components() {
            path.push(component);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => found = Some(m),
                // Something else is there: it hides the layers below.
                Ok(_) => return Ok(()),
                Err(_) => {
                    found = None;
                    break;
                }
            }
        }
        let Some(meta) = found else {
            continue;
        };
        std::os::unix::fs::lchown(dir, Some(meta.uid()), Some(meta.gid()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        let times = std::fs::FileTimes::new()
            .set_accessed(meta.accessed()?)
            .set_modified(meta.modified()?);
        std::fs::File::open(dir)?.set_times(times)?;
        return Ok(());
    }
    Ok(())
}

fn check_diff_id(layer: &Descriptor, want: &Digest, got: &Digest) -> Result<()> {
    if want != got {
        return Err(Error::failed_precondition(format!(
            "layer {}: wrong diff id calculated on extraction {want}: got {got}",
            layer.digest
        )));
    }
    Ok(())
}

/// Makes sure blob `desc` is in the content store.
async fn ensure_blob(ctx: &Ctx<'_>, desc: &Descriptor) -> Result<()> {
    match open_writer(ctx, desc).await? {
        Some(writer) => download(ctx, desc, writer, None).await,
        None => Ok(()),
    }
}

/// containerd's ingest ref for a blob (`remotes.MakeRefKey`).
fn ref_key(desc: &Descriptor) -> String {
    format!(
        "{}-{}",
        super::documents::ref_kind(&desc.media_type),
        desc.digest
    )
}

/// Opens the ingest of `desc`, waiting while another writer holds it;
/// `None` when the blob is in the store. An ingest that already holds the
/// whole blob (an interrupted commit, or a blob another namespace has) is
/// committed here, or restarted if it fails the checks.
async fn open_writer(ctx: &Ctx<'_>, desc: &Descriptor) -> Result<Option<Box<dyn ContentWriter>>> {
    let reference = ref_key(desc);
    let options = WriterOptions {
        reference: reference.clone(),
        total: desc.size,
        expected: Some(desc.digest.clone()),
    };
    let mut waited = Duration::ZERO;
    let mut retried_full = false;
    loop {
        let writer = match ctx.content.writer(options.clone()).await {
            Ok(writer) => writer,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                ctx.report(ALREADY_EXISTS, reference, desc, desc.size);
                return Ok(None);
            }
            Err(e) if e.kind() == ErrorKind::Unavailable && waited < LOCK_WAIT => {
                ctx.report(WAITING, reference.clone(), desc, 0);
                let pause = Duration::from_millis(100);
                tokio::time::sleep(pause).await;
                waited += pause;
                continue;
            }
            Err(e) => return Err(e),
        };
        if writer.status().offset != desc.size || retried_full {
            return Ok(Some(writer));
        }
        match writer
            .commit(desc.size, Some(desc.digest.clone()), ctx.source_labels())
            .await
        {
            Ok(()) => {
                ctx.report(COMPLETE, reference, desc, desc.size);
                return Ok(None);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
            Err(e) if e.kind() == ErrorKind::FailedPrecondition => {
                tracing::warn!(%reference, error = %e, "complete ingest failed its checks; fetching again");
                ctx.content.abort(&reference).await?;
                retried_full = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Downloads the rest of `desc` into `writer` (and `sink`), picking a
/// broken transfer up again at its offset, and commits it.
async fn download(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    mut writer: Box<dyn ContentWriter>,
    mut sink: Option<mpsc::Sender<Vec<u8>>>,
) -> Result<()> {
    let reference = ref_key(desc);
    let size = u64::try_from(desc.size).unwrap_or(0);
    let mut offset = u64::try_from(writer.status().offset).unwrap_or(0);
    let mut failures = 0;
    ctx.report(DOWNLOADING, reference.clone(), desc, offset as i64);
    while offset < size {
        let copied = match ctx.fetcher.fetch(desc, offset).await {
            Ok(reader) => copy(ctx, desc, reader, &mut writer, &mut sink, &mut offset).await,
            Err(e) => Err(Copy::Read(e)),
        };
        let err = match copied {
            Ok(()) if offset < size => {
                Error::unavailable(format!("stream ended at byte {offset} of {size}"))
            }
            Ok(()) => break,
            Err(Copy::Write(e)) => return Err(e),
            Err(Copy::Read(e)) => e,
        };
        failures += 1;
        if failures > RETRIES || !retryable(&err) {
            return Err(err.context(format!("fetch {} (at byte {offset})", desc.digest)));
        }
        tracing::info!(digest = %desc.digest, offset, error = %err, "download broke; resuming");
        tokio::time::sleep(Duration::from_millis(200 << failures)).await;
    }
    drop(sink);
    match writer
        .commit(desc.size, Some(desc.digest.clone()), ctx.source_labels())
        .await
    {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == ErrorKind::FailedPrecondition => {
            // Wrong bytes cannot be resumed: drop them.
            let _ = ctx.content.abort(&reference).await;
            return Err(Error::failed_precondition(format!(
                "blob {} failed verification: {e}",
                desc.digest
            )));
        }
        Err(e) => return Err(e),
    }
    ctx.report(COMPLETE, reference, desc, desc.size);
    Ok(())
}

/// Which side of a copy failed.
enum Copy {
    Read(Error),
    Write(Error),
}

fn retryable(err: &Error) -> bool {
    !matches!(
        err.kind(),
        ErrorKind::NotFound
            | ErrorKind::InvalidArgument
            | ErrorKind::PermissionDenied
            | ErrorKind::Unauthenticated
            | ErrorKind::FailedPrecondition
    )
}

/// Copies `reader` to `writer` and `sink` until it ends.
async fn copy(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    mut reader: crate::remotes::RemoteReader,
    writer: &mut Box<dyn ContentWriter>,
    sink: &mut Option<mpsc::Sender<Vec<u8>>>,
    offset: &mut u64,
) -> std::result::Result<(), Copy> {
    let reference = ref_key(desc);
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match reader.read(&mut chunk[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    // Keep what arrived: the next fetch resumes after it.
                    if filled > 0 {
                        chunk.truncate(filled);
                        write_chunk(writer, sink, chunk).await?;
                        *offset += filled as u64;
                    }
                    return Err(Copy::Read(Error::from(e)));
                }
            }
        }
        if filled == 0 {
            return Ok(());
        }
        chunk.truncate(filled);
        write_chunk(writer, sink, chunk).await?;
        *offset += filled as u64;
        ctx.report(DOWNLOADING, reference.clone(), desc, *offset as i64);
    }
}

async fn write_chunk(
    writer: &mut Box<dyn ContentWriter>,
    sink: &mut Option<mpsc::Sender<Vec<u8>>>,
    chunk: Vec<u8>,
) -> std::result::Result<(), Copy> {
    if let Some(tx) = sink {
        if tx.send(chunk.clone()).await.is_err() {
            // The applier stopped (it failed): keep downloading so the
            // blob is still verified and stored; its error is reported.
            *sink = None;
        }
    }
    writer.write_owned(chunk).await.map_err(Copy::Write)
}

async fn exists(snapshotter: &dyn Snapshotter, key: &str) -> Result<bool> {
    match snapshotter.stat(key).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn ref_labels(chain: &Digest) -> HashMap<String, String> {
    HashMap::from([(SNAPSHOT_REF_LABEL.to_string(), chain.to_string())])
}

/// Removes the prepared snapshots in `keys`, adding any failure to `err`.
async fn remove_all(snapshotter: &dyn Snapshotter, keys: Vec<Option<String>>, err: Error) -> Error {
    let mut err = err;
    for key in keys.into_iter().flatten() {
        if let Err(cleanup) = snapshotter.remove(&key).await {
            err = err.context(format!("(and removing {key:?} failed: {cleanup})"));
        }
    }
    err
}

/// The layer bytes a download sends, read on the applier's thread.
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                // The download ended (or failed, which it reports).
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
