//! The CRI plugin: Kubernetes' `runtime.v1` RuntimeService and ImageService,
//! served on berthd's own socket as containerd's `io.containerd.grpc.v1.cri`
//! plugin serves them.
//!
//! Like containerd's, the plugin is a *client* of the containerd API: it
//! keeps pods and containers as container records in the namespace
//! [`NAMESPACE`] (`k8s.io`), runs them as tasks through shims, pulls and
//! unpacks images through the transfer service, all with `berth-client` over
//! the daemon's socket. What CRI adds on top lives here: pod sandboxes (a
//! pause container plus a network namespace attached with `berth-cni`),
//! the CRI views of containers and images, CRI-format container logs, and
//! the in-memory indexes (truncated ids, reserved names) the kubelet
//! relies on. Everything needed to rebuild that state after a restart is
//! kept in the container records' extensions and in status files under
//! [`CriOptions::root`].
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the `[plugins."io.containerd.grpc.v1.cri"]` settings |
//! | `server` | the tonic adapters: requests in, domain calls, statuses out |
//! | [`store`] | sandboxes and containers in memory, id prefixes, reserved names |
//! | `sandbox` | Run/Stop/Remove/Status/ListPodSandbox |
//! | `container` | Create/Start/Stop/Remove/Status/ListContainers, ExecSync |
//! | `image` | the ImageService, image lookup for containers, the sandbox image |
//! | `pause` | the built-in pause image |
//! | `events` | the one `/tasks/oom` subscription |
//! | `logs` | CRI-format log files from container stdio |
//! | `status` | Version, Status, UpdateRuntimeConfig |
//! | `cni_template` | the CNI config template UpdateRuntimeConfig fills |
//! | `recover` | reloading pods and containers after a restart |
//! | `stream` | the streaming server of Exec, Attach and PortForward |

#![warn(missing_docs)]

mod cni_template;
pub mod config;
mod container;
mod events;
mod ids;
mod image;
mod logs;
mod pause;
mod recover;
mod sandbox;
mod server;
mod stats;
mod status;
pub mod store;
mod stream;

pub use config::CriConfig;
pub use logs::format_stream;
pub use server::{ImageServer, RuntimeServer};

use berth_client::Client;
use berth_core::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// The containerd namespace CRI works in.
pub const NAMESPACE: &str = "k8s.io";
/// containerd's id for the plugin (type `io.containerd.grpc.v1`).
pub const PLUGIN_ID: &str = "cri";
/// The runtime name reported by Version.
pub const RUNTIME_NAME: &str = "berth";
/// The CRI API version served.
pub const RUNTIME_API_VERSION: &str = "v1";

/// How long a call waits for start-up recovery before it answers
/// `Unavailable`.
const RECOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the daemon tells the plugin.
#[derive(Debug, Clone)]
pub struct CriOptions {
    /// The settings.
    pub config: CriConfig,
    /// berthd's gRPC socket: the plugin's containerd client dials it.
    pub address: PathBuf,
    /// `<root>/io.containerd.grpc.v1.cri`: sandboxes' and containers'
    /// files (hostname, hosts, resolv.conf, shm, volumes, status).
    pub root: PathBuf,
    /// `<state>/io.containerd.grpc.v1.cri`: FIFOs and other runtime state.
    pub state: PathBuf,
    /// Where pod network namespaces are bind-mounted.
    pub netns_dir: PathBuf,
    /// The CNI result cache.
    pub cni_cache_dir: PathBuf,
}

/// The CRI plugin's state, shared by both services.
#[derive(Debug)]
pub struct Cri {
    config: CriConfig,
    options: CriOptions,
    /// A containerd client in [`NAMESPACE`], over berthd's own socket.
    client: Client,
    sandboxes: store::Store<store::Sandbox>,
    containers: store::Store<store::Container>,
    sandbox_names: store::Names,
    container_names: store::Names,
    network: sandbox::network::PodNetworks,
    /// What the image side remembers: what image targets say, read once;
    /// when the sandbox image last failed to pull.
    images: image::State,
    /// Whether start-up recovery has run.
    recovered: tokio::sync::watch::Sender<bool>,
    /// Set when the daemon stops: background waits end.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Containers the OOM killer hit.
    ooms: events::OomEvents,
    /// Container lifecycle events for GetContainerEvents.
    container_events: container::events::EventSender,
    /// The last CPU sample of each container and pod, for rates.
    cpu_samples: stats::CpuSamples,
    /// The streaming server behind Exec, Attach and PortForward.
    stream: Arc<stream::StreamServer>,
}

impl Cri {
    /// The plugin over the daemon at `options.address`. Nothing is dialled
    /// until the first call; call [`Cri::start`] once the daemon serves.
    pub fn new(options: CriOptions) -> Result<Arc<Cri>> {
        let client = berth_client::Client::builder(options.address.to_string_lossy())
            .namespace(NAMESPACE)
            .connect_lazy()?;
        for dir in [&options.root, &options.state] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::internal(format!("create {}: {e}", dir.display())))?;
        }
        let network = sandbox::network::PodNetworks::new(&options);
        let stream = Arc::new(stream::StreamServer::bind(&options.config)?);
        Ok(Arc::new(Cri {
            config: options.config.clone(),
            options,
            client,
            sandboxes: store::Store::default(),
            containers: store::Store::default(),
            sandbox_names: store::Names::default(),
            container_names: store::Names::default(),
            network,
            images: image::State::default(),
            recovered: tokio::sync::watch::Sender::new(false),
            stopping: tokio::sync::watch::Sender::new(false),
            ooms: events::OomEvents::default(),
            container_events: tokio::sync::broadcast::Sender::new(container::events::EVENT_BUFFER),
            cpu_samples: stats::CpuSamples::default(),
            stream,
        }))
    }

    /// The two tonic services, ready to be added to the daemon's routes.
    pub fn services(self: &Arc<Self>) -> (RuntimeServer, ImageServer) {
        server::services(self.clone())
    }

    /// Reloads pods and containers from the daemon's records (after a
    /// restart) and starts watching their tasks. Call once the socket
    /// serves.
    ///
    /// Until it has run, every call but Version, Status and the runtime
    /// config waits, so the kubelet never sees a restarted daemon without
    /// the pods it had.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        self.watch_oom_events();
        self.stream.serve(Arc::downgrade(self))?;
        let result = recover::recover(self).await;
        self.recovered.send_replace(true);
        result
    }

    /// Runs `call` once [`Cri::start`] has reloaded what CRI made.
    /// A recovery that takes longer than [`RECOVERY_WAIT`] answers
    /// `Unavailable`, which the kubelet retries.
    pub(crate) async fn after_recovery<T>(
        &self,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(RECOVERY_WAIT, self.recovered())
            .await
            .map_err(|_| {
                Error::unavailable("the CRI plugin is still reloading its pods and containers")
            })?;
        call.await
    }

    /// Ends the plugin's background work (task waits, the event
    /// subscription), so that its calls on the daemon's socket do not hold
    /// up the daemon's shutdown. What runs keeps running; a restarted
    /// daemon picks it up again.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Cri::stop`] was called.
    pub(crate) async fn stopping(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stop| *stop).await;
    }

    /// Waits until [`Cri::start`] has reloaded what CRI made.
    pub(crate) async fn recovered(&self) {
        let mut done = self.recovered.subscribe();
        // The sender lives as long as `self`.
        let _ = done.wait_for(|done| *done).await;
    }

    /// The settings.
    pub fn config(&self) -> &CriConfig {
        &self.config
    }

    /// The OOM score a process asking for `requested` gets: with
    /// `restrict_oom_score_adj`, nothing below berthd's own score (which
    /// an unprivileged daemon cannot go below).
    pub(crate) fn oom_score_adj(&self, requested: i64) -> i64 {
        if !self.config.restrict_oom_score_adj {
            return requested;
        }
        let own = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(requested);
        requested.max(own)
    }
}
