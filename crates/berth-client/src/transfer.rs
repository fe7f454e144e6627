//! `containerd.services.transfer.v1.Transfer` and the streams it uses
//! (`containerd.services.streaming.v1.Streaming`): pull and push run
//! inside the daemon, next to its content store, as containerd 2.x's
//! `client.Transfer` does; archives are imported and exported through it
//! too.
//!
//! A transfer names a source and a destination, containerd's transfer
//! objects packed in `Any` ([`Transfer::pull`], [`Transfer::push`],
//! [`Transfer::import`] and [`Transfer::export`] build them;
//! [`Transfer::transfer`] takes any pair). What needs the client's help
//! during the transfer goes over streams this module opens with
//! [`Stream::open`] and names in the request: progress events
//! ([`Progress`]), registry credentials ([`RegistryOptions::credentials`],
//! answered here when the daemon asks) and archive bytes (flow controlled
//! by the receiver with `WindowUpdate`, as containerd's
//! `core/transfer/streaming` does).
//!
//! ```no_run
//! # async fn demo() -> berth_client::Result<()> {
//! use berth_client::transfer::{PullOptions, RegistryOptions};
//!
//! let client = berth_client::Client::connect("/run/berth/berth.sock").await?;
//! let progress = |p: berth_client::transfer::Progress| println!("{} {}", p.event, p.name);
//! client
//!     .transfer()
//!     .pull(
//!         "docker.io/library/busybox:latest",
//!         &RegistryOptions::default(),
//!         &PullOptions::default(),
//!         Some(std::sync::Arc::new(progress)),
//!     )
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::{Descriptor, Digest, Error, Result};
use berth_image::Platform;
use prost_types::Any;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::status_error;
use crate::pb::services::v1::streaming_client::StreamingClient;
use crate::pb::services::v1::transfer_client::TransferClient;
use crate::pb::services::v1::{StreamInit, TransferOptions, TransferRequest};
use crate::pb::types::transfer::{
    AuthRequest, AuthResponse, AuthType, ImageExportStream, ImageImportStream, ImageReference,
    ImageStore, OciRegistry, Progress as WireProgress, RegistryResolver, UnpackConfiguration,
};
use crate::pb::types::Platform as WirePlatform;
use crate::typeurl::{pack, unpack};
use crate::Client;
use berth_api::flow::{self, MessageStream};

/// How long progress events may trail the end of the transfer call.
const PROGRESS_DRAIN: Duration = Duration::from_secs(30);

/// One progress event of a transfer (containerd's `transfer.Progress`).
///
/// A pull reports `resolving`/`resolved`, then per blob `waiting`,
/// `downloading` (with `progress` of `total` bytes), `complete` or
/// `already exists`, then `unpacking`/`unpacked` and `saved` per image;
/// events whose `name` is empty are free-form status lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// What happened (`downloading`, `complete`, `saved`, …).
    pub event: String,
    /// What it happened to: a blob's ref key or an image name.
    pub name: String,
    /// The names of what contains it.
    pub parents: Vec<String>,
    /// Bytes done.
    pub progress: i64,
    /// Bytes in all.
    pub total: i64,
    /// The blob or image target, if any.
    pub desc: Option<Descriptor>,
}

/// Receives progress events.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Registry credentials, as a credential helper returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user name; empty with a `secret` means a refresh token.
    pub username: String,
    /// The password or token.
    pub secret: String,
}

/// Answers the daemon's credential requests: `(host, reference)` to
/// credentials, or `None` for anonymous access.
pub type CredentialsFn = Arc<dyn Fn(&str, &str) -> Option<Credentials> + Send + Sync>;

/// How the daemon reaches a registry (containerd's `RegistryResolver`).
#[derive(Clone, Default)]
pub struct RegistryOptions {
    /// Extra HTTP headers on every request.
    pub headers: HashMap<String, String>,
    /// A `hosts.toml` directory (containerd's `certs.d` layout).
    pub hosts_dir: Option<String>,
    /// Use plain HTTP for hosts without configuration (`--plain-http`).
    /// Loopback registries use it anyway, as containerd does.
    pub plain_http: bool,
    /// Credentials the daemon asks for over an auth stream.
    pub credentials: Option<CredentialsFn>,
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("hosts_dir", &self.hosts_dir)
            .field("plain_http", &self.plain_http)
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

/// What a pull fetches and where it unpacks.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The name to store the image under (default: the reference).
    pub name: Option<String>,
    /// The platforms to fetch (default: the daemon's).
    pub platforms: Vec<Platform>,
    /// Fetch every platform of an index.
    pub all_platforms: bool,
    /// Unpack into this snapshotter (`None`: do not unpack; empty: the
    /// daemon's default).
    pub unpack: Option<String>,
    /// Labels for the image record.
    pub labels: HashMap<String, String>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            name: None,
            platforms: Vec::new(),
            all_platforms: false,
            unpack: Some(String::new()),
            labels: HashMap::new(),
        }
    }
}

/// How an imported archive's images are named and unpacked (ctr's
/// `images import` flags as containerd's `image.Store` takes them).
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Keep the archive's index as an image of this name.
    pub index_name: Option<String>,
    /// The name prefix: with `filter_prefix`, only images named under it
    /// are imported (`--base-name`); otherwise unnamed manifests get it.
    pub prefix: String,
    /// Whether `prefix` filters names rather than being added to them.
    pub filter_prefix: bool,
    /// Also name every manifest `PREFIX@DIGEST` (`--digests`).
    pub digests: bool,
    /// With `digests`, skip manifests that have a name.
    pub skip_digest_for_named: bool,
    /// The platforms whose content is kept (default: the daemon's).
    pub platforms: Vec<Platform>,
    /// Keep every platform's content.
    pub all_platforms: bool,
    /// Unpack into this snapshotter (`None`: do not unpack).
    pub unpack: Option<String>,
    /// Labels for the image records.
    pub labels: HashMap<String, String>,
}

/// What an export writes.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The platforms whose content is written (default: the daemon's).
    pub platforms: Vec<Platform>,
    /// Write every platform's content.
    pub all_platforms: bool,
    /// Leave out Docker's `manifest.json`.
    pub skip_docker_manifest: bool,
    /// Leave out non-distributable layers.
    pub skip_non_distributable: bool,
}

/// The transfer service; see [`Client::transfer`].
#[derive(Clone, Debug)]
pub struct Transfer {
    client: Client,
}

impl Client {
    /// The transfer service, in the client's namespace.
    pub fn transfer(&self) -> Transfer {
        Transfer {
            client: self.clone(),
        }
    }
}

impl Transfer {
    /// Pulls `reference` into the daemon's image store, unpacking it as
    /// `options` say, reporting to `progress`.
    pub async fn pull(
        &self,
        reference: &str,
        registry: &RegistryOptions,
        options: &PullOptions,
        progress: Option<ProgressFn>,
    ) -> Result<()> {
        let (source, auth) = self.registry(reference, registry).await?;
        let mut store = ImageStore {
            name: options.name.clone().unwrap_or_else(|| {
                berth_image::reference::normalize(reference)
                    .unwrap_or_else(|_| reference.to_string())
            }),
            labels: options.labels.clone(),
            platforms: options.platforms.iter().map(platform_to_wire).collect(),
            all_metadata: options.all_platforms,
            ..ImageStore::default()
        };
        if let Some(snapshotter) = &options.unpack {
            store.unpacks = unpack_configs(&options.platforms, snapshotter);
        }
        let result = self.run(source, pack(&store), progress, None).await;
        drop(auth);
        result
    }

    /// Pushes image `name` from the daemon's image store to `reference`
    /// (the platforms of an index: `platforms`, or all).
    pub async fn push(
        &self,
        name: &str,
        reference: &str,
        registry: &RegistryOptions,
        platforms: &[Platform],
        progress: Option<ProgressFn>,
    ) -> Result<()> {
        let (destination, auth) = self.registry(reference, registry).await?;
        let store = ImageStore {
            name: name.to_string(),
            platforms: platforms.iter().map(platform_to_wire).collect(),
            all_metadata: platforms.is_empty(),
            ..ImageStore::default()
        };
        let result = self.run(pack(&store), destination, progress, None).await;
        drop(auth);
        result
    }

    /// Imports the archive read from `reader` (an OCI layout or Docker
    /// `save` tar) through the daemon.
    pub async fn import(
        &self,
        reader: impl AsyncRead + Unpin + Send,
        options: &ImportOptions,
        progress: Option<ProgressFn>,
    ) -> Result<()> {
        let stream = Stream::open(&self.client, &stream_id("import")).await?;
        let source = ImageImportStream {
            stream: stream.id().to_string(),
            media_type: String::new(),
            force_compress: false,
        };
        let mut store = ImageStore {
            name: options.index_name.clone().unwrap_or_default(),
            labels: options.labels.clone(),
            platforms: options.platforms.iter().map(platform_to_wire).collect(),
            all_metadata: options.all_platforms,
            ..ImageStore::default()
        };
        if !options.prefix.is_empty() {
            store.extra_references.push(ImageReference {
                name: options.prefix.clone(),
                is_prefix: true,
                allow_overwrite: !options.filter_prefix,
                add_digest: options.digests,
                skip_named_digest: options.skip_digest_for_named,
            });
        }
        if let Some(snapshotter) = &options.unpack {
            store.unpacks = unpack_configs(&options.platforms, snapshotter);
        }
        let data = async move {
            let mut reader = reader;
            send_data(&stream, &mut reader).await
        };
        self.run(pack(&source), pack(&store), progress, Some(Box::pin(data)))
            .await
    }

    /// Exports images `names` as an OCI archive written to `writer`.
    pub async fn export(
        &self,
        names: &[String],
        writer: impl AsyncWrite + Unpin + Send,
        options: &ExportOptions,
        progress: Option<ProgressFn>,
    ) -> Result<()> {
        let stream = Stream::open(&self.client, &stream_id("export")).await?;
        let source = ImageStore {
            extra_references: names
                .iter()
                .map(|name| ImageReference {
                    name: name.clone(),
                    ..ImageReference::default()
                })
                .collect(),
            ..ImageStore::default()
        };
        let destination = ImageExportStream {
            stream: stream.id().to_string(),
            media_type: String::new(),
            platforms: options.platforms.iter().map(platform_to_wire).collect(),
            all_platforms: options.all_platforms,
            skip_compatibility_manifest: options.skip_docker_manifest,
            skip_non_distributable: options.skip_non_distributable,
        };
        let data = async move {
            let mut writer = writer;
            receive_data(&stream, &mut writer).await
        };
        self.run(
            pack(&source),
            pack(&destination),
            progress,
            Some(Box::pin(data)),
        )
        .await
    }

    /// Runs a transfer of `source` to `destination`, both packed transfer
    /// objects, with progress sent to `progress`.
    pub async fn transfer(
        &self,
        source: Any,
        destination: Any,
        progress: Option<ProgressFn>,
    ) -> Result<()> {
        self.run(source, destination, progress, None).await
    }

    /// An `OCIRegistry` for `reference`, and the task answering its
    /// credential requests (dropping it stops answering).
    async fn registry(
        &self,
        reference: &str,
        options: &RegistryOptions,
    ) -> Result<(Any, Option<AbortOnDrop>)> {
        let mut resolver = RegistryResolver {
            headers: options.headers.clone(),
            host_dir: options.hosts_dir.clone().unwrap_or_default(),
            default_scheme: if options.plain_http {
                "http".into()
            } else {
                String::new()
            },
            ..RegistryResolver::default()
        };
        let mut task = None;
        if let Some(credentials) = &options.credentials {
            let stream = Stream::open(&self.client, &stream_id("creds")).await?;
            resolver.auth_stream = stream.id().to_string();
            let credentials = credentials.clone();
            task = Some(AbortOnDrop(tokio::spawn(answer_auth(stream, credentials))));
        }
        let registry = OciRegistry {
            reference: reference.to_string(),
            resolver: Some(resolver),
        };
        Ok((pack(&registry), task))
    }

    /// The Transfer call, with its progress stream and (for archives) the
    /// data stream's side of the work running alongside.
    async fn run(
        &self,
        source: Any,
        destination: Any,
        progress: Option<ProgressFn>,
        data: Option<DataTask<'_>>,
    ) -> Result<()> {
        let mut options = TransferOptions::default();
        let mut progress_loop = None;
        if let Some(report) = progress {
            let stream = Stream::open(&self.client, &stream_id("progress")).await?;
            options.progress_stream = stream.id().to_string();
            progress_loop = Some(tokio::spawn(forward_progress(stream, report)));
        }
        let request = self.client.request(
            TransferRequest {
                source: Some(source),
                destination: Some(destination),
                options: Some(options),
            },
            false,
        )?;
        let call = async {
            TransferClient::new(self.client.channel())
                .transfer(request)
                .await
                .map(|_| ())
                .map_err(status_error)
        };
        let result = match data {
            None => call.await,
            Some(data) => with_data(call, data).await,
        };
        if let Some(mut task) = progress_loop {
            // The daemon closes the progress stream before it answers; what
            // it sent may still be on its way. A failed call may not have
            // reached the stream at all: wait less for it.
            let drain = if result.is_ok() {
                PROGRESS_DRAIN
            } else {
                Duration::from_secs(2)
            };
            if tokio::time::timeout(drain, &mut task).await.is_err() {
                task.abort();
            }
        }
        result
    }
}

/// The client's half of an archive's bytes.
type DataTask<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>> + Send + 'a>>;

/// Runs the call and the data side together. When the call fails, the
/// data side is dropped (the daemon may never have looked at the stream);
/// when it succeeds, the daemon has closed the stream and the data side
/// finishes on its own.
async fn with_data(
    call: impl std::future::Future<Output = Result<()>>,
    data: DataTask<'_>,
) -> Result<()> {
    tokio::pin!(call);
    let mut data = data;
    tokio::select! {
        result = &mut call => {
            result?;
            data.await.map(|_| ())
        }
        moved = &mut data => {
            let result = call.await;
            result?;
            moved.map(|_| ())
        }
    }
}

/// A task aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reports every progress event until the daemon closes the stream.
async fn forward_progress(stream: Stream, report: ProgressFn) {
    loop {
        match stream.recv().await {
            Ok(Some(message)) => match unpack::<WireProgress>(&message) {
                Some(p) => report(progress_from_wire(p)),
                None => continue,
            },
            Ok(None) | Err(_) => return,
        }
    }
}

/// Answers the daemon's `AuthRequest`s until it closes the stream.
async fn answer_auth(stream: Stream, credentials: CredentialsFn) {
    while let Ok(Some(message)) = stream.recv().await {
        let Some(request) = unpack::<AuthRequest>(&message) else {
            continue;
        };
        let response = match credentials(&request.host, &request.reference) {
            Some(c) if !c.username.is_empty() => AuthResponse {
                auth_type: AuthType::Credentials as i32,
                username: c.username,
                secret: c.secret,
                expire_at: None,
            },
            Some(c) => AuthResponse {
                auth_type: AuthType::Refresh as i32,
                secret: c.secret,
                ..AuthResponse::default()
            },
            None => AuthResponse::default(),
        };
        if stream.send(pack(&response)).await.is_err() {
            return;
        }
    }
}

/// A message stream registered with the daemon's streaming service.
pub struct Stream {
    id: String,
    tx: Mutex<Option<mpsc::Sender<Any>>>,
    rx: tokio::sync::Mutex<tonic::Streaming<Any>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("id", &self.id).finish()
    }
}

impl Stream {
    /// Opens stream `id` in the client's namespace and waits until the
    /// daemon has registered it, so a transfer may name it at once.
    pub async fn open(client: &Client, id: &str) -> Result<Stream> {
        let (tx, rx) = mpsc::channel::<Any>(16);
        let init = StreamInit { id: id.to_string() };
        tx.send(pack(&init))
            .await
            .map_err(|_| Error::internal("stream channel closed"))?;
        let request = client
            .with_lease(None)
            .request(ReceiverStream::new(rx), false)?;
        let mut inbound = StreamingClient::new(client.channel())
            .stream(request)
            .await
            .map_err(status_error)?
            .into_inner();
        // The daemon's acknowledgement: the stream is registered.
        match inbound.message().await.map_err(status_error)? {
            Some(_) => Ok(Stream {
                id: id.to_string(),
                tx: Mutex::new(Some(tx)),
                rx: tokio::sync::Mutex::new(inbound),
            }),
            None => Err(Error::unavailable(format!(
                "stream {id:?}: closed before it was registered"
            ))),
        }
    }

    /// The stream's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends a message to the daemon.
    pub async fn send(&self, message: Any) -> Result<()> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| self.closed())?;
        tx.send(message).await.map_err(|_| self.closed())
    }

    /// The next message from the daemon; `None` once it closed the stream.
    pub async fn recv(&self) -> Result<Option<Any>> {
        self.rx.lock().await.message().await.map_err(status_error)
    }

    /// Closes the sending side: the daemon reads the end of the stream.
    pub fn close_send(&self) {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    fn closed(&self) -> Error {
        Error::unavailable(format!("stream {:?} is closed", self.id))
    }
}

impl MessageStream for Stream {
    fn id(&self) -> &str {
        Stream::id(self)
    }

    async fn send(&self, message: Any) -> Result<()> {
        Stream::send(self, message).await
    }

    async fn recv(&self) -> Result<Option<Any>> {
        Stream::recv(self).await
    }
}

/// Sends `reader`'s bytes within the windows the daemon grants, then
/// half-closes and waits for the daemon to end the stream: going away at
/// once would cancel the call under data it has not read.
async fn send_data(stream: &Stream, reader: &mut (impl AsyncRead + Unpin)) -> Result<u64> {
    let total = flow::send_data(stream, reader).await?;
    stream.close_send();
    while stream.recv().await?.is_some() {}
    Ok(total)
}

/// Receives bytes into `writer` until the daemon closes the stream,
/// granting windows as they are used, then closes this side.
async fn receive_data(stream: &Stream, writer: &mut (impl AsyncWrite + Unpin)) -> Result<u64> {
    let total = flow::receive_data(stream, writer).await?;
    stream.close_send();
    Ok(total)
}

/// An unpack configuration per platform (or one for the daemon's).
fn unpack_configs(platforms: &[Platform], snapshotter: &str) -> Vec<UnpackConfiguration> {
    if platforms.is_empty() {
        return vec![UnpackConfiguration {
            platform: None,
            snapshotter: snapshotter.to_string(),
        }];
    }
    platforms
        .iter()
        .map(|p| UnpackConfiguration {
            platform: Some(platform_to_wire(p)),
            snapshotter: snapshotter.to_string(),
        })
        .collect()
}

fn platform_to_wire(p: &Platform) -> WirePlatform {
    WirePlatform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
        os_version: p.os_version.clone(),
    }
}

fn progress_from_wire(p: WireProgress) -> Progress {
    Progress {
        event: p.event,
        name: p.name,
        parents: p.parents,
        progress: p.progress,
        total: p.total,
        desc: p.desc.and_then(|d| {
            Some(Descriptor {
                media_type: d.media_type,
                digest: d.digest.parse::<Digest>().ok()?,
                size: d.size,
                annotations: d.annotations,
            })
        }),
    }
}

/// A stream id shaped like containerd's `streaming.GenerateID`.
fn stream_id(prefix: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let noise = u64::from(now.subsec_nanos()) ^ u64::from(std::process::id()).rotate_left(17);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{noise:x}{n}", now.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_unique() {
        let a = stream_id("progress");
        let b = stream_id("progress");
        assert!(a.starts_with("progress-"));
        assert_ne!(a, b);
    }

    #[test]
    fn unpack_configs_cover_each_platform() {
        let none = unpack_configs(&[], "");
        assert_eq!(none.len(), 1);
        assert!(none[0].platform.is_none());
        let p = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            ..Platform::default()
        };
        let two = unpack_configs(&[p.clone(), p], "native");
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].snapshotter, "native");
    }
}
