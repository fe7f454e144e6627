//! Transfer: containerd 2.x's transfer service (`core/transfer/local`),
//! moving images between a source and a destination named by `Any`
//! messages:
//!
//! | source | destination | what |
//! |---|---|---|
//! | `OCIRegistry` | `ImageStore` | pull, unpacking as `ImageStore.unpacks` asks |
//! | `ImageStore` | `OCIRegistry` | push |
//! | `ImageImportStream` | `ImageStore` | import an archive the client streams |
//! | `ImageStore` | `ImageExportStream` | export an archive to the client |
//!
//! Each transfer runs under a lease: the request's own (`containerd-lease`)
//! or one made for it that expires in a few hours and is deleted when the
//! transfer ends, as containerd's `withLease` does, so that garbage
//! collection cannot take half of a pull or an import. Progress goes to
//! the stream named by `TransferOptions.progress_stream` as `Progress`
//! messages; the stream is closed when the transfer ends.

use super::content::ContentService;
use super::diff::DiffService;
use super::images::{Images, NamespacedImages};
use super::leases::Leases;
use super::snapshots::{Namespaced, Snapshots, DEFAULT_SNAPSHOTTER};
use super::streaming::{ServerStream, StreamManager};
use crate::metrics::daemon::PullMetrics;
use berth_api::flow::{receive_data, send_data};
use berth_api::pb::services::v1::TransferRequest;
use berth_api::pb::types::transfer::{
    AuthRequest, AuthResponse, AuthType, ImageExportStream, ImageImportStream,
    ImageStore as WireImageStore, OciRegistry, Progress, UnpackConfiguration,
};
use berth_api::pb::types::Platform as WirePlatform;
use berth_api::typeurl::{pack, unpack};
use berth_core::diff::Applier;
use berth_core::images::{Image, ImageStore};
use berth_core::mount::Mount;
use berth_core::{Descriptor as CoreDescriptor, Error, ErrorKind, Result};
use berth_image::archive::{self, ExportOptions, ImportOptions, RefTranslator};
use berth_image::platforms::{self, Matcher};
use berth_image::pull::{self, ProgressUpdate, PullOptions, UnpackTarget};
use berth_image::push;
use berth_image::reference::{self, Reference};
use berth_image::registry::{RegistryOptions, RegistryResolver};
use berth_image::spec::{Descriptor, Platform};
use berth_image::unpack::Unpacker;
use berth_store::content::LocalContent;
use prost_types::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::BufReader;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a transfer's own lease lives if berthd dies before deleting
/// it (and no later berthd releases it at start: [`TransferService::release_dead_leases`]).
const LEASE_EXPIRY: Duration = Duration::from_secs(4 * 3600);
/// The label marking a lease a transfer made for itself.
pub const TRANSFER_LEASE_LABEL: &str = "io.berth.transfer";
/// The pipe between a data stream and the archive code.
const PIPE: usize = 256 * 1024;

/// The services a transfer uses.
pub struct TransferService {
    content: Arc<ContentService>,
    images: Arc<Images>,
    snapshots: Arc<Snapshots>,
    differ: Arc<DiffService>,
    leases: Arc<Leases>,
    streams: Arc<StreamManager>,
    /// Where a pull mounts snapshots it cannot write directly.
    scratch: PathBuf,
    /// Pulls counted for the metrics endpoint.
    pulls: PullMetrics,
}

/// The services a transfer runs over, scoped to its namespace and lease.
struct Scope {
    ns: String,
    lease: String,
}

impl TransferService {
    /// A transfer service over the daemon's local services, mounting
    /// under `scratch` when it must.
    pub fn new(
        content: Arc<ContentService>,
        images: Arc<Images>,
        snapshots: Arc<Snapshots>,
        differ: Arc<DiffService>,
        leases: Arc<Leases>,
        streams: Arc<StreamManager>,
        scratch: PathBuf,
    ) -> Self {
        TransferService {
            content,
            images,
            snapshots,
            differ,
            leases,
            streams,
            scratch,
            pulls: PullMetrics::default(),
        }
    }

    /// The pulls' figures, for the metrics endpoint.
    pub fn pull_metrics(&self) -> &PullMetrics {
        &self.pulls
    }

    /// The stream manager transfers find their streams in.
    pub fn streams(&self) -> &Arc<StreamManager> {
        &self.streams
    }

    /// Runs one transfer in namespace `ns`, under `lease` if the request
    /// carried one. The streams it names are closed when it ends, however
    /// it ends, so a client waiting on them sees their end.
    pub async fn transfer(
        &self,
        ns: &str,
        lease: Option<String>,
        request: TransferRequest,
    ) -> Result<()> {
        let progress_id = request
            .options
            .as_ref()
            .map(|o| o.progress_stream.clone())
            .unwrap_or_default();
        let progress = match progress_id.as_str() {
            "" => ProgressSink::none(),
            id => ProgressSink::new(self.streams.get(ns, id)?),
        };
        let result = self.leased(ns, lease, request, &progress).await;
        if let Err(err) = &result {
            tracing::info!(namespace = ns, error = %err, "transfer failed");
        }
        progress.finish().await;
        result
    }

    async fn leased(
        &self,
        ns: &str,
        lease: Option<String>,
        request: TransferRequest,
        progress: &ProgressSink,
    ) -> Result<()> {
        let source = request
            .source
            .ok_or_else(|| Error::invalid_argument("source must be set"))?;
        let destination = request
            .destination
            .ok_or_else(|| Error::invalid_argument("destination must be set"))?;
        let (lease, mut owned) = match lease {
            Some(lease) => (lease, None),
            None => {
                let id = self.new_lease(ns).await?;
                let guard = LeaseGuard {
                    leases: self.leases.clone(),
                    ns: ns.to_owned(),
                    id: Some(id.clone()),
                };
                (id, Some(guard))
            }
        };
        let scope = Scope {
            ns: ns.to_owned(),
            lease,
        };
        let result = self.dispatch(&scope, &source, &destination, progress).await;
        if let Some(guard) = owned.as_mut() {
            guard.delete().await;
        }
        result
    }

    async fn dispatch(
        &self,
        scope: &Scope,
        source: &Any,
        destination: &Any,
        progress: &ProgressSink,
    ) -> Result<()> {
        if let (Some(src), Some(dst)) = (
            unpack::<ImageImportStream>(source),
            unpack::<WireImageStore>(destination),
        ) {
            return self.import(scope, src, dst, progress).await;
        }
        if let (Some(src), Some(dst)) = (
            unpack::<WireImageStore>(source),
            unpack::<ImageExportStream>(destination),
        ) {
            return self.export(scope, src, dst, progress).await;
        }
        if let (Some(src), Some(dst)) = (
            unpack::<OciRegistry>(source),
            unpack::<WireImageStore>(destination),
        ) {
            return self.pull(scope, src, dst, progress).await;
        }
        if let (Some(src), Some(dst)) = (
            unpack::<WireImageStore>(source),
            unpack::<OciRegistry>(destination),
        ) {
            return self.push(scope, src, dst, progress).await;
        }
        Err(Error::not_implemented(format!(
            "transfer from {} to {}: not implemented",
            source.type_url, destination.type_url
        )))
    }

    /// Deletes the leases transfers of an earlier berthd made for
    /// themselves: a transfer dies with its daemon, so a pull killed with
    /// berthd rolls back (the collector frees what it had fetched) at the
    /// next start instead of holding its content and snapshots until the
    /// lease expires. Runs before anything is served, when no transfer of
    /// this daemon can own one. Returns how many it deleted.
    pub async fn release_dead_leases(&self) -> Result<usize> {
        self.leases
            .delete_labelled_everywhere(TRANSFER_LEASE_LABEL)
            .await
    }

    /// A lease for one transfer, expiring on its own if it is never
    /// deleted.
    async fn new_lease(&self, ns: &str) -> Result<String> {
        let expire = berth_core::time::rfc3339_utc(SystemTime::now() + LEASE_EXPIRY);
        let labels = HashMap::from([
            ("containerd.io/gc.expire".to_string(), expire),
            (TRANSFER_LEASE_LABEL.to_string(), "true".to_string()),
        ]);
        let lease = self
            .leases
            .create(ns.to_owned(), String::new(), labels)
            .await?;
        Ok(lease.id)
    }

    /// Streams an archive from the client into the content store and
    /// creates its images, then unpacks them as asked.
    async fn import(
        &self,
        scope: &Scope,
        src: ImageImportStream,
        dst: WireImageStore,
        progress: &ProgressSink,
    ) -> Result<()> {
        let stream = Closing(self.streams.get(&scope.ns, &src.stream)?);
        let content = self.content.store(&scope.ns, Some(&scope.lease))?;
        let images = self.images.namespaced(&scope.ns, Some(scope.lease.clone()));
        let options = import_options(&dst)?;
        let (mut writer, reader) = tokio::io::duplex(PIPE);
        let receive = async {
            let received = receive_data(&*stream, &mut writer).await;
            drop(writer);
            received
        };
        let reader = BufReader::with_capacity(PIPE, reader);
        let (received, imported) = tokio::join!(
            receive,
            archive::import(&content, &images, reader, &options)
        );
        drop(stream);
        let imported = match (received, imported) {
            (Ok(_), Ok(imported)) => imported,
            // The archive code sees a short archive when the stream
            // failed: the stream's error says why.
            (Err(err), _) => return Err(err.context("receiving the archive")),
            (Ok(_), Err(err)) => return Err(err),
        };
        let imported = self.label(&images, imported, &dst.labels).await?;
        for image in &imported {
            progress.report(event("saved", &image.name, Some(&image.target)));
        }
        self.unpack_all(scope, &imported, &dst, progress).await?;
        progress.report(event("Completed import", "", None));
        Ok(())
    }

    /// Writes the named images as an OCI archive to the client.
    async fn export(
        &self,
        scope: &Scope,
        src: WireImageStore,
        dst: ImageExportStream,
        progress: &ProgressSink,
    ) -> Result<()> {
        let stream = Closing(self.streams.get(&scope.ns, &dst.stream)?);
        self.export_to(scope, &src, &dst, &stream, progress).await
    }

    async fn export_to(
        &self,
        scope: &Scope,
        src: &WireImageStore,
        dst: &ImageExportStream,
        stream: &ServerStream,
        progress: &ProgressSink,
    ) -> Result<()> {
        let images = self.images.namespaced(&scope.ns, None);
        let mut targets = Vec::new();
        for name in store_names(src) {
            let image = images.get(&name).await?;
            progress.report(event("exporting", &image.name, Some(&image.target)));
            targets.push(archive::image_target(&image));
        }
        if targets.is_empty() {
            return Err(Error::invalid_argument("no image to export"));
        }
        let mut options = ExportOptions {
            all_platforms: dst.all_platforms,
            skip_docker_manifest: dst.skip_compatibility_manifest,
            skip_non_distributable: dst.skip_non_distributable,
            ..ExportOptions::default()
        };
        if !dst.platforms.is_empty() {
            let list = dst
                .platforms
                .iter()
                .map(|p| platforms::normalize(&platform_from_wire(p)))
                .collect();
            options.platforms = Matcher::Ordered(list);
        }
        let content = self.content.store(&scope.ns, None)?;
        let (writer, mut reader) = tokio::io::duplex(PIPE);
        let write = async {
            let mut writer = writer;
            let written = archive::export(&content, &targets, &mut writer, &options).await;
            drop(writer);
            written
        };
        let (written, sent) = tokio::join!(write, send_data(stream, &mut reader));
        written?;
        sent.map_err(|err| err.context("sending the archive"))?;
        for target in &targets {
            progress.report(Progress {
                event: "exported".into(),
                name: target
                    .annotations
                    .get(berth_image::spec::ANNOTATION_IMAGE_NAME)
                    .cloned()
                    .unwrap_or_default(),
                desc: Some(descriptor_to_wire(&target.to_core())),
                ..Progress::default()
            });
        }
        Ok(())
    }

    /// Pulls an image from a registry into the image store, unpacking it
    /// into the first unpack configuration's snapshotter as it downloads
    /// (and into any further ones after).
    async fn pull(
        &self,
        scope: &Scope,
        src: OciRegistry,
        dst: WireImageStore,
        progress: &ProgressSink,
    ) -> Result<()> {
        let reference = reference::normalize(&src.reference)?;
        let resolver = self.resolver(&scope.ns, &src, &reference).await?;
        let job = PullJob {
            content: self.content.store(&scope.ns, Some(&scope.lease))?,
            images: self.images.namespaced(&scope.ns, Some(scope.lease.clone())),
            unpack: match dst.unpacks.first() {
                Some(config) => Some((
                    self.snapshots.namespaced(
                        &scope.ns,
                        snapshotter_name(config),
                        Some(scope.lease.clone()),
                    )?,
                    config.clone(),
                )),
                None => None,
            },
            applier: self.applier(scope),
            scratch: self.scratch.clone(),
            progress: progress.reporter(),
            pulls: self.pulls.clone(),
            resolver,
            reference,
            store: dst.clone(),
        };
        let began = std::time::Instant::now();
        let pulled = detached(move || job.run()).await;
        self.pulls.pulled(pulled.is_ok(), began.elapsed());
        let image = pulled?;
        let rest = WireImageStore {
            unpacks: dst.unpacks.iter().skip(1).cloned().collect(),
            ..WireImageStore::default()
        };
        self.unpack_all(scope, &[image], &rest, progress).await
    }

    /// Pushes an image from the image store to a registry.
    async fn push(
        &self,
        scope: &Scope,
        src: WireImageStore,
        dst: OciRegistry,
        progress: &ProgressSink,
    ) -> Result<()> {
        let name = store_names(&src)
            .into_iter()
            .next()
            .ok_or_else(|| Error::invalid_argument("no image to push"))?;
        let image = self.images.namespaced(&scope.ns, None).get(&name).await?;
        let reference = reference::normalize(&dst.reference)?;
        let resolver = self.resolver(&scope.ns, &dst, &reference).await?;
        let content = self.content.store(&scope.ns, None)?;
        let platforms = if src.platforms.is_empty() {
            Matcher::All
        } else {
            platform_matcher(&src.platforms)
        };
        let root = Descriptor::from_core(&image.target);
        let reporter = progress.reporter();
        detached(move || async move {
            push::push(
                &content, &resolver, &reference, &root, &platforms, &reporter,
            )
            .await
        })
        .await
    }

    /// A registry client as the request's resolver asks: plain HTTP for
    /// `default_scheme = "http"`, `hosts.toml` from `host_dir`, and
    /// credentials asked of the client over `auth_stream` for the
    /// reference's host.
    async fn resolver(
        &self,
        ns: &str,
        registry: &OciRegistry,
        reference: &str,
    ) -> Result<RegistryResolver> {
        let config = registry.resolver.clone().unwrap_or_default();
        if !config.headers.is_empty() {
            tracing::debug!("registry resolver headers are not supported; ignored");
        }
        let mut options = RegistryOptions {
            plain_http: config.default_scheme == "http",
            hosts_dir: (!config.host_dir.is_empty()).then(|| PathBuf::from(&config.host_dir)),
            ..RegistryOptions::default()
        };
        if !config.auth_stream.is_empty() {
            let stream = self.streams.get(ns, &config.auth_stream)?;
            let host = Reference::parse_normalized(reference)?.domain;
            options.credentials = ask_credentials(&stream, &host, reference).await?;
        }
        RegistryResolver::new(options)
    }

    /// Sets the requested labels on the images just stored.
    async fn label(
        &self,
        images: &dyn ImageStore,
        stored: Vec<Image>,
        labels: &HashMap<String, String>,
    ) -> Result<Vec<Image>> {
        if labels.is_empty() {
            return Ok(stored);
        }
        let paths: Vec<String> = labels.keys().map(|k| format!("labels.{k}")).collect();
        let mut out = Vec::with_capacity(stored.len());
        for mut image in stored {
            image.labels.extend(labels.clone());
            out.push(images.update(image, &paths).await?);
        }
        Ok(out)
    }

    /// Unpacks every image for every unpack configuration of `dst`.
    async fn unpack_all(
        &self,
        scope: &Scope,
        images: &[Image],
        dst: &WireImageStore,
        progress: &ProgressSink,
    ) -> Result<()> {
        for config in &dst.unpacks {
            let matcher = match &config.platform {
                Some(p) => Matcher::only(&platform_from_wire(p)),
                None => Matcher::host(),
            };
            let name = snapshotter_name(config);
            for image in images {
                self.unpack(scope, image, name, &matcher, progress).await?;
            }
        }
        Ok(())
    }

    /// Unpacks one image into snapshotter `name`, under the transfer's
    /// lease.
    async fn unpack(
        &self,
        scope: &Scope,
        image: &Image,
        name: &str,
        matcher: &Matcher,
        progress: &ProgressSink,
    ) -> Result<()> {
        let content = self.content.store(&scope.ns, Some(&scope.lease))?;
        let snapshotter = self
            .snapshots
            .namespaced(&scope.ns, name, Some(scope.lease.clone()))?;
        let applier = self.applier(scope);
        let unpacker = Unpacker {
            content: &content,
            snapshotter: &snapshotter,
            snapshotter_name: name,
            applier: &applier,
        };
        progress.report(event("unpacking", &image.name, Some(&image.target)));
        let target = Descriptor::from_core(&image.target);
        let unpacked = unpacker
            .unpack(&target, matcher)
            .await
            .map_err(|err| err.context(format!("unpacking {} into {name}", image.name)))?;
        tracing::debug!(image = %image.name, chain = %unpacked.chain_id, applied = unpacked.applied, "unpacked");
        progress.report(event("unpacked", &image.name, Some(&image.target)));
        Ok(())
    }

    /// The walking differ, as an [`Applier`] for the transfer's namespace
    /// and lease.
    fn applier(&self, scope: &Scope) -> ScopedApplier {
        ScopedApplier {
            differ: self.differ.clone(),
            ns: scope.ns.clone(),
            lease: scope.lease.clone(),
        }
    }
}

/// Everything one pull needs, owned, so that it can run on a thread of
/// its own (see [`detached`]).
struct PullJob {
    content: LocalContent,
    images: NamespacedImages,
    unpack: Option<(Namespaced, UnpackConfiguration)>,
    applier: ScopedApplier,
    scratch: PathBuf,
    progress: Reporter,
    pulls: PullMetrics,
    resolver: RegistryResolver,
    reference: String,
    store: WireImageStore,
}

impl PullJob {
    async fn run(self) -> Result<Image> {
        let unpack = self
            .unpack
            .as_ref()
            .map(|(snapshotter, config)| UnpackTarget {
                snapshotter,
                snapshotter_name: snapshotter_name(config),
                applier: &self.applier,
                local_scratch: Some(self.scratch.clone()),
                platform: config
                    .platform
                    .as_ref()
                    .map(|p| Matcher::only(&platform_from_wire(p))),
            });
        let options = PullOptions {
            platforms: if self.store.all_metadata {
                Matcher::All
            } else {
                platform_matcher(&self.store.platforms)
            },
            unpack,
            labels: self.store.labels.clone(),
            ..PullOptions::default()
        };
        let image = pull::pull(
            &self.content,
            &self.images,
            &self.resolver,
            &self.reference,
            &options,
            &Counting {
                inner: &self.progress,
                pulls: &self.pulls,
            },
        )
        .await?;
        // A store name that is the reference itself, spelled short
        // (`busybox`), names the image already written.
        let name = &self.store.name;
        let same = reference::normalize(name).is_ok_and(|n| n == image.name);
        if !name.is_empty() && !same {
            let named = Image {
                name: name.clone(),
                ..image.clone()
            };
            put_image(&self.images, named).await?;
        }
        Ok(image)
    }
}

/// Passes a pull's progress on, counting the bytes of every blob it
/// completed (downloaded into the content store, not already there).
struct Counting<'a> {
    inner: &'a Reporter,
    pulls: &'a PullMetrics,
}

impl pull::Progress for Counting<'_> {
    fn report(&self, update: ProgressUpdate) {
        if update.event == pull::progress::COMPLETE {
            self.pulls
                .downloaded(u64::try_from(update.total).unwrap_or(0));
        }
        self.inner.report(update);
    }
}

/// Runs the future `make` builds on a blocking-pool thread, driven by this
/// runtime's handle. The pull and push engines' futures are not provably
/// `Send` (their per-blob closures borrow with higher-ranked lifetimes,
/// rust-lang/rust#102211), so they cannot be awaited inside a gRPC
/// handler; built and polled on one thread, they need not be.
///
/// When the caller goes away (the client cancelled the Transfer call),
/// the work is dropped too: a pull stops, keeping its partial downloads
/// for the next one to resume.
async fn detached<T, F, Fut>(make: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    let handle = tokio::runtime::Handle::current();
    let (_alive, gone) = tokio::sync::oneshot::channel::<()>();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            tokio::select! {
                result = make() => result,
                _ = gone => Err(Error::new(ErrorKind::Canceled, "transfer cancelled")),
            }
        })
    })
    .await
    .map_err(|err| Error::internal(format!("transfer task failed: {err}")))?
}

/// The lease a transfer made for itself: deleted when the transfer ends,
/// or — when the call is dropped half way — by a task of its own.
struct LeaseGuard {
    leases: Arc<Leases>,
    ns: String,
    id: Option<String>,
}

impl LeaseGuard {
    async fn delete(&mut self) {
        if let Some(id) = self.id.take() {
            if let Err(err) = self.leases.delete(self.ns.clone(), id, false).await {
                tracing::warn!(error = %err, "deleting a transfer's lease");
            }
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let (leases, ns) = (self.leases.clone(), self.ns.clone());
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(err) = leases.delete(ns, id, false).await {
                        tracing::warn!(error = %err, "deleting a cancelled transfer's lease");
                    }
                });
            }
        }
    }
}

/// The snapshotter an unpack configuration names (the default if none).
fn snapshotter_name(config: &UnpackConfiguration) -> &str {
    if config.snapshotter.is_empty() {
        DEFAULT_SNAPSHOTTER
    } else {
        config.snapshotter.as_str()
    }
}

/// Points image `image.name` at `image.target`: update, else create.
async fn put_image(images: &dyn ImageStore, image: Image) -> Result<Image> {
    match images.update(image.clone(), &["target".to_string()]).await {
        Err(err) if err.kind() == ErrorKind::NotFound => images.create(image).await,
        other => other,
    }
}

/// Asks the client for credentials for `host` over its auth stream
/// (containerd's `credCallback`): one `AuthRequest`, one `AuthResponse`.
/// Only user name and password are used; a refresh token or a header is
/// not supported yet.
async fn ask_credentials(
    stream: &ServerStream,
    host: &str,
    reference: &str,
) -> Result<Option<(String, String)>> {
    let request = AuthRequest {
        host: host.to_string(),
        reference: reference.to_string(),
        wwwauthenticate: Vec::new(),
    };
    stream.send(pack(&request)).await?;
    let answer = stream
        .recv()
        .await?
        .ok_or_else(|| Error::unavailable(format!("auth stream {:?} closed", stream.id())))?;
    let response = unpack::<AuthResponse>(&answer).ok_or_else(|| {
        Error::invalid_argument(format!(
            "auth stream {:?}: expected AuthResponse, got {}",
            stream.id(),
            answer.type_url
        ))
    })?;
    Ok(match AuthType::try_from(response.auth_type) {
        Ok(AuthType::Credentials) => Some((response.username, response.secret)),
        Ok(AuthType::None) => None,
        _ => {
            return Err(Error::not_implemented(format!(
                "registry credentials of type {}: not implemented",
                response.auth_type
            )))
        }
    })
}

/// The differ applying layers in one namespace, under one lease.
struct ScopedApplier {
    differ: Arc<DiffService>,
    ns: String,
    lease: String,
}

#[async_trait::async_trait]
impl Applier for ScopedApplier {
    async fn apply(
        &self,
        desc: &CoreDescriptor,
        mounts: &[Mount],
        _payloads: HashMap<String, Vec<u8>>,
    ) -> Result<CoreDescriptor> {
        self.differ
            .apply(&self.ns, Some(&self.lease), desc, mounts)
            .await
    }
}

/// A data stream, closed when the transfer is done with it (on every
/// path), which tells the client there is no more.
struct Closing(Arc<ServerStream>);

impl std::ops::Deref for Closing {
    type Target = ServerStream;

    fn deref(&self) -> &ServerStream {
        &self.0
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Where progress goes: a stream's `Progress` messages, sent in order by
/// a task of its own so reporting never waits on the client.
pub struct ProgressSink {
    tx: Option<mpsc::UnboundedSender<Progress>>,
    task: Option<JoinHandle<()>>,
}

impl ProgressSink {
    /// Progress that goes nowhere.
    pub fn none() -> Self {
        ProgressSink {
            tx: None,
            task: None,
        }
    }

    /// Progress sent on `stream`, which is closed by [`Self::finish`].
    pub fn new(stream: Arc<ServerStream>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
        let task = tokio::spawn(async move {
            while let Some(progress) = rx.recv().await {
                if let Err(err) = stream.send(pack(&progress)).await {
                    tracing::debug!(error = %err, "progress stream gone");
                    break;
                }
            }
            stream.close();
        });
        ProgressSink {
            tx: Some(tx),
            task: Some(task),
        }
    }

    /// Reports one event.
    pub fn report(&self, progress: Progress) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(progress);
        }
    }

    /// A handle reporting here.
    pub fn reporter(&self) -> Reporter {
        Reporter {
            tx: self.tx.clone(),
        }
    }

    /// Sends what is queued and closes the stream.
    pub async fn finish(mut self) {
        self.tx.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A handle that reports to a [`ProgressSink`] from elsewhere (the pull
/// and push engines); the sink finishes once every handle is dropped.
pub struct Reporter {
    tx: Option<mpsc::UnboundedSender<Progress>>,
}

impl pull::Progress for Reporter {
    fn report(&self, update: ProgressUpdate) {
        let Some(tx) = &self.tx else { return };
        let _ = tx.send(Progress {
            event: update.event,
            name: update.name,
            parents: update.parents,
            progress: update.progress,
            total: update.total,
            desc: update.desc.map(|d| descriptor_to_wire(&d.to_core())),
        });
    }
}

/// A progress event about `name`.
fn event(event: &str, name: &str, desc: Option<&CoreDescriptor>) -> Progress {
    Progress {
        event: event.to_string(),
        name: name.to_string(),
        desc: desc.map(descriptor_to_wire),
        ..Progress::default()
    }
}

/// A descriptor as containerd's `types.Descriptor`.
pub fn descriptor_to_wire(desc: &CoreDescriptor) -> berth_api::pb::types::Descriptor {
    berth_api::pb::types::Descriptor {
        media_type: desc.media_type.clone(),
        digest: desc.digest.to_string(),
        size: desc.size,
        annotations: desc.annotations.clone(),
    }
}

/// A wire platform as berth's.
fn platform_from_wire(p: &WirePlatform) -> Platform {
    Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        os_version: p.os_version.clone(),
        variant: p.variant.clone(),
        ..Platform::default()
    }
}

/// The image names an `ImageStore` source names: its name, then its extra
/// references.
fn store_names(store: &WireImageStore) -> Vec<String> {
    let mut names = Vec::new();
    if !store.name.is_empty() {
        names.push(store.name.clone());
    }
    for reference in &store.extra_references {
        if !reference.name.is_empty() && !reference.is_prefix {
            names.push(reference.name.clone());
        }
    }
    names
}

/// How an `ImageStore` destination names imported images, in the terms of
/// berth's archive import (ctr's `--base-name`, `--digests`,
/// `--index-name` and `--platform`, as containerd's `image.Store` takes
/// them): the store's name keeps the index; a prefix reference names the
/// manifests — filtering by the prefix, or adding it when the archive's
/// own names may win (`allow_overwrite`) — and may add digest names.
fn import_options(store: &WireImageStore) -> Result<ImportOptions> {
    let mut options = ImportOptions {
        index_name: (!store.name.is_empty()).then(|| store.name.clone()),
        ..ImportOptions::default()
    };
    for reference in store.extra_references.iter().filter(|r| r.is_prefix) {
        options.ref_translator = if reference.allow_overwrite {
            RefTranslator::AddPrefix(reference.name.clone())
        } else {
            RefTranslator::FilterPrefix(reference.name.clone())
        };
        if reference.add_digest {
            options.digest_prefix = Some(reference.name.clone());
            options.skip_digest_for_named = reference.skip_named_digest;
        }
    }
    options.platforms = if store.all_metadata {
        Matcher::all()
    } else {
        platform_matcher(&store.platforms)
    };
    Ok(options)
}

/// The platforms a request lists, and those that run on them; the host's
/// when it lists none.
fn platform_matcher(list: &[WirePlatform]) -> Matcher {
    let mut all = Vec::new();
    for p in list {
        if let Matcher::Ordered(more) = Matcher::only(&platform_from_wire(p)) {
            all.extend(more);
        }
    }
    if all.is_empty() {
        Matcher::host()
    } else {
        Matcher::Ordered(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::pb::types::transfer::ImageReference;

    #[test]
    fn image_store_maps_to_import_options() {
        let store = WireImageStore {
            name: "index".into(),
            extra_references: vec![ImageReference {
                name: "import-2024".into(),
                is_prefix: true,
                allow_overwrite: true,
                add_digest: true,
                skip_named_digest: true,
            }],
            ..WireImageStore::default()
        };
        let options = import_options(&store).expect("options");
        assert_eq!(options.index_name.as_deref(), Some("index"));
        assert_eq!(
            options.ref_translator,
            RefTranslator::AddPrefix("import-2024".into())
        );
        assert_eq!(options.digest_prefix.as_deref(), Some("import-2024"));
        assert!(options.skip_digest_for_named);
        assert_eq!(options.platforms, Matcher::host());
    }

    #[test]
    fn export_names_skip_prefixes() {
        let store = WireImageStore {
            extra_references: vec![
                ImageReference {
                    name: "a:1".into(),
                    ..ImageReference::default()
                },
                ImageReference {
                    name: "pre".into(),
                    is_prefix: true,
                    ..ImageReference::default()
                },
            ],
            ..WireImageStore::default()
        };
        assert_eq!(store_names(&store), ["a:1"]);
    }
}
